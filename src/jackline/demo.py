"""`jackline demo`: the whole path on the bundled shop, with a scripted agent and no model.

The shop has a real bug (a line of exactly 10 units gets no bulk discount). The scripted agent's
first attempt fixes the threshold but rounds with floats, so a test fails and feeds back; its
second attempt passes. Then a named demo reviewer approves and the branch is merged.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from jackline import git as g
from jackline.errors import Refused
from jackline.testing import Replace, Round, ScriptedAgent

TASK = (
    "Fix the bulk discount in shop/pricing.py: a line of exactly 10 units gets no 10% discount "
    "(test_ten_units_get_bulk_discount fails)."
)
REVIEWER = "demo-reviewer"
BUGGY = (
    "    if qty > BULK_THRESHOLD:\n        total -= (total * BULK_DISCOUNT_PERCENT + 50) // 100\n"
)
FLOAT = "    if qty >= BULK_THRESHOLD:\n        total = int(total * 0.9)\n"
FIXED = (
    "    if qty >= BULK_THRESHOLD:\n        total -= (total * BULK_DISCOUNT_PERCENT + 50) // 100\n"
)

AGENT = ScriptedAgent(
    [
        Round(
            edits={"shop/pricing.py": Replace(BUGGY, FLOAT)},
            message="Changed the threshold to >= and simplified the discount.",
        ),
        Round(
            edits={"shop/pricing.py": Replace(FLOAT, FIXED)},
            notes=(
                "- Assumed the threshold is inclusive (10 units get the discount), as the docstring says.\n"
                "- Went back to integer cents with half-up rounding: my first attempt used a float and "
                "lost a cent (test_bulk_discount_rounds_half_up).\n"
            ),
            message="Inclusive threshold; integer half-up rounding kept.",
        ),
    ]
)


def example() -> Path:
    bundled = resources.files("jackline") / "_examples" / "shop"
    if bundled.is_dir():
        return Path(str(bundled))
    source = Path(__file__).resolve().parents[2] / "examples" / "shop"  # an editable install
    if source.is_dir():
        return source
    raise Refused("the bundled example project is missing from this installation")


def require_tools() -> None:
    missing = [m for m in ("pytest", "ruff") if importlib.util.find_spec(m) is None]
    if missing:
        raise Refused(
            f"the demo's checks need {' and '.join(missing)}: pip install 'jackline[demo]'"
        )


def sandbox_problem() -> str | None:
    """Why bubblewrap cannot run here, or None. The demo's agent is scripted and trusted, so the
    demo runs without the sandbox where it cannot start (and says so); real runs refuse."""
    from jackline.sandbox import bubblewrap

    try:
        bubblewrap.check()
    except Refused as e:
        return str(e)
    return None


def make_repo(base: Path | None = None, sandboxed: bool = True) -> Path:
    """Copy the shop into a new git repository with the scripted agents configured, its
    staging and production on free ports of this machine."""
    root = Path(tempfile.mkdtemp(prefix="jackline-demo-", dir=base))
    repo = root / "shop"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "var", ".pytest_cache")
    shutil.copytree(example(), repo, ignore=ignore)
    toml = repo / "jackline.toml"
    text = toml.read_text()
    for port in ("8101", "8102"):  # another shop, or a second demo, may hold the usual ports
        text = text.replace(port, str(_free_port()))
    toml.write_text(text)
    script = AGENT.save(root / "scripted-agent.json")
    second = currency_agent(repo).save(root / "scripted-currency.json")
    with toml.open("a") as f:
        argv = ", ".join(f'"{a}"' for a in ScriptedAgent.command(script))
        argv2 = ", ".join(f'"{a}"' for a in ScriptedAgent.command(second))
        f.write(
            f"\n# The demo's agents: scripted edits, no model.\n[agents.scripted]\ncommand = [{argv}]\n"
            f"[agents.scripted-currency]\ncommand = [{argv2}]\n"
            f"\n# The sandbox hides /tmp; the scripted agents read their scripts from there.\n"
            f'[sandbox]\nreadable = ["{script}", "{second}"]\n'
            + ("" if sandboxed else 'mode = "none"  # bubblewrap cannot start on this machine\n')
            + "\n# The demo plays a reviewer and a releaser besides you: their names are claims.\n"
            "[review]\nallow_as = true\n"
        )
    g.git(root, "init", "--quiet", "-b", "main", str(repo))
    g.git(repo, "add", "-A")
    g.git(repo, "commit", "--quiet", "-m", "The shop, with its bulk-discount bug")
    # The checks call `python`: make it the interpreter that has pytest and ruff.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return repo


def blueprint_line(repo: Path) -> str:
    """The blueprint the demo's runs walk (the shop's own), as the demo says it."""
    from jackline import blueprints, config

    bp = blueprints.load(repo, config.load(repo).blueprint.name)
    where = blueprints.source(repo, bp.name).removeprefix(f"{repo}/")
    return f"{bp.name} ({where}): {bp.outline()}"


# The release part of the demo ---------------------------------------------------------------

RELEASER = "demo-releaser"
"""Starts the releases; the reviewer, a second person, says go."""
CURRENCY_TASK = (
    "Record the currency of each order and show each order's total with its currency symbol "
    "in GET /api/orders."
)


def currency_agent(repo: Path) -> ScriptedAgent:
    """A scripted agent whose one round makes `demo_release`'s change: it passes the checks and
    staging, and production's data trips it."""
    from jackline import demo_release

    texts: dict[str, str] = {}
    for edit in demo_release.EDITS:
        if not edit.old:
            texts[edit.path] = edit.new
            continue
        current = texts.get(edit.path) or (repo / edit.path).read_text(encoding="utf-8")
        texts[edit.path] = current.replace(edit.old, edit.new, 1)
    edits: dict[str, str | Replace | None] = dict(texts)
    return ScriptedAgent(
        [Round(edits=edits, message=demo_release.MESSAGE, notes="- Orders are in euros for now.\n")]
    )


def production_url(repo: Path) -> str:
    from jackline import config

    envs = config.load(repo).release.environments
    url = list(envs.values())[-1].url
    assert url, "the shop's production has a url"
    return url


def stop_shops(repo: Path) -> None:
    """The demo's staging and production end with it."""
    from jackline import config, demo_release

    for env in config.load(repo).release.environments:
        try:
            demo_release.stop(repo, env)
        except Exception:  # noqa: BLE001 - best effort: the demo's answer is already given
            pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
