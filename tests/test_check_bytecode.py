"""One bytecode cache for a run's checks: what did not change is not compiled again, what
changed is, and nothing an agent plants where the cache lives reaches the host."""

from __future__ import annotations

import colorsys
import json
import marshal
import os
import shutil
import signal
import sqlite3
import sys
from pathlib import Path

import _pytest.python
import pytest
from conftest import Project, git

from jackline.checks import bytecode
from jackline.sandbox import INSIDE
from jackline.testing import Replace, Round, ScriptedAgent
from jackline.workspaces import AGENT_DIR

TAG = sys.implementation.cache_tag


def _cached(run_dir: Path, source: Path) -> Path:
    """Where the checks' Python keeps the bytecode of `source` (as the sandbox sees it)."""
    mirror = run_dir / bytecode.CACHE / str(source.parent).lstrip("/")
    return mirror / f"{source.stem}.{TAG}.pyc"


def _round_ended(project: Project, run_id: str, round_no: int) -> float:
    """When the checks of round `round_no` had finished (the `round` event's time)."""
    db = sqlite3.connect(project.home / "jackline.db")
    rows = db.execute(
        "SELECT ts, data FROM events WHERE run_id = ? AND kind = 'round' ORDER BY seq", (run_id,)
    ).fetchall()
    db.close()
    return float(rows[round_no - 1][0])


def test_the_second_rounds_check_compiles_only_what_changed(project: Project) -> None:
    # Round 2's edit has the size of round 1's and, as a quick edit may, its second of mtime:
    # Python would take round 1's cached .pyc for it, and the check would fail again.
    kept = ".jackline/run/calc-mtime"
    wrong = Round(
        edits={"calc.py": Replace("a - b", "a * b")}, commands=[f"touch -r calc.py {kept}"]
    )
    right = Round(
        edits={"calc.py": Replace("a * b", "a + b")}, commands=[f"touch -r {kept} calc.py"]
    )
    project.create(ScriptedAgent([wrong, right]))
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert run["rounds"] == 2
    first = _round_ended(project, run["id"], 1)
    run_dir = project.home / "runs" / run["id"]
    source = Path(_pytest.python.__file__)
    calc_pyc = _cached(run_dir, INSIDE / "calc.py")
    # pytest's bytecode came from the seed or was compiled in round 1, and was used as it was in
    # round 2; calc.py was compiled again.
    held = [p for p in (_cached(run_dir, source), _seeded(bytecode.seed(), source)) if p.exists()]
    assert held and all(p.stat().st_mtime < first for p in held)
    assert calc_pyc.stat().st_mtime > first


def test_an_agent_cannot_reach_the_checks_bytecode_cache(project: Project) -> None:
    # The agent tries to leave bytecode where the checks' cache lives (in the run's folder on
    # the host): a .pyc there would run in place of the code the checks judge.
    home = project.home
    plant = (
        f"for d in {home}/runs/*; do mkdir -p $d/{bytecode.CACHE}/x && "
        f"echo planted > $d/{bytecode.CACHE}/x/poison.pyc; done; true"
    )
    wrong = Round(edits={"calc.py": Replace("a - b", "a * b")}, commands=[plant])
    right = Round(edits={"calc.py": Replace("a * b", "a + b")}, commands=[plant])
    project.create(ScriptedAgent([wrong, right]))
    run = project.jl_json("run", "Fix add")
    assert run["rounds"] == 2, run
    cache = home / "runs" / run["id"] / bytecode.CACHE
    assert cache.is_dir()  # the checks used it
    assert not (cache / "x").exists()
    assert not list(cache.rglob("poison.pyc"))
    # Nor does the agent's own area hold the cache any more.
    assert not (Path(run["workspace"]) / AGENT_DIR / "pycache").exists()


def test_a_link_a_check_plants_in_the_cache_reaches_nothing_on_the_host(
    project: Project,
) -> None:
    victim = project.root / "victim"
    (victim / "workspace").mkdir(parents=True)
    planted = victim / "workspace" / f"calc.{TAG}.pyc"
    planted.write_bytes(b"the host's own file")
    # A check (which runs the agent's code) makes the cache's copy of the workspace a link to a
    # folder on the host, where round 2 would remove the bytecode of calc.py (which it changes).
    plant = f'rm -rf "$PYTHONPYCACHEPREFIX/tmp" && ln -s {victim} "$PYTHONPYCACHEPREFIX/tmp"'
    extra = f"\n[checks.plant]\ncommand = {json.dumps(plant)}\n"
    wrong = Round(edits={"calc.py": Replace("a - b", "a * b")})
    right = Round(edits={"calc.py": Replace("a * b", "a + b")})
    project.create(ScriptedAgent([wrong, right]), extra=extra)
    run = project.jl_json("run", "Fix add")
    assert run["rounds"] == 2, run
    assert planted.read_bytes() == b"the host's own file"
    assert sorted(os.listdir(victim / "workspace")) == [planted.name]
    assert os.listdir(victim) == ["workspace"]
    cache = project.home / "runs" / run["id"] / bytecode.CACHE
    assert (cache / "tmp").is_symlink()  # it was there all along


def _seeded(seed: Path, source: Path) -> Path:
    """Where the seed keeps the bytecode of `source` (seed: `bytecode.seed()` or its base)."""
    base = seed if seed.name == TAG else seed / TAG
    return base / str(source.parent).lstrip("/") / f"{source.stem}.{TAG}.pyc"


@pytest.mark.parametrize("shared", ["overlay", "copy"])
def test_a_runs_first_check_starts_from_the_seed_the_harness_compiled(
    project: Project, shared: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the harness may mount, a check sees the seed under the run's cache (an overlay,
    unmounted after the check); elsewhere the run's cache is a copy of the seed."""
    if shared == "copy":  # the commands are forked from this process: they copy, as non-root
        monkeypatch.setitem(bytecode._overlay, "ok", False)
    seed = project.root / "seed"
    project.env["JACKLINE_BYTECODE_SEED"] = str(seed)
    project.create(ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})]))
    first = project.jl_json("run", "Fix add")
    assert first["status"] == "awaiting_review", first
    source = Path(_pytest.python.__file__)
    seeded = _seeded(seed, source)
    # The harness compiled pytest's module itself, from its source, into the seed.
    assert marshal.loads(seeded.read_bytes()[16:]).co_filename == str(source)
    project.jl("reject", first["id"], "--as", "bob", "-m", "again")
    before = seeded.read_bytes(), seeded.stat().st_mtime_ns
    second = project.jl_json("run", "Fix add again")
    assert second["status"] == "awaiting_review", second
    run_dir = project.home / "runs" / second["id"]
    held = _cached(run_dir, source)
    assert (seeded.read_bytes(), seeded.stat().st_mtime_ns) == before
    assert not os.path.ismount(run_dir / bytecode.VIEW)
    if shared == "overlay":
        # Its checks read the seed's bytecode through the overlay: the run's own cache holds
        # none of pytest's (it was not compiled), and nothing was copied.
        assert (run_dir / bytecode.VIEW).is_dir() and not held.exists()
    else:
        # Its checks were given that bytecode, copied: they did not compile pytest.
        assert held.read_bytes() == seeded.read_bytes()
        assert held.stat().st_ino != seeded.stat().st_ino


def test_a_check_that_writes_over_the_seeds_bytecode_changes_only_its_runs_cache(
    project: Project,
) -> None:
    """A check (the agent's code) opens bytecode it sees from the seed and writes into it in
    place: the seed, shared by every run, is untouched; the run's own cache holds the change."""
    seed = project.root / "seed"
    project.env["JACKLINE_BYTECODE_SEED"] = str(seed)
    source = Path(_pytest.python.__file__)
    target = f'"$PYTHONPYCACHEPREFIX{source.parent}/{source.stem}.{TAG}.pyc"'
    poison = f"test -f {target} && printf poison >> {target}; true"
    extra = f"\n[checks.poison]\ncommand = {json.dumps(poison)}\n"
    project.create(ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})]))
    seeding = project.jl_json("run", "Fix add")  # the seed learns pytest's bytecode
    project.jl("reject", seeding["id"], "--as", "bob", "-m", "again")
    seeded = _seeded(seed, source)
    before = seeded.read_bytes()
    config = project.repo / "jackline.toml"
    config.write_text(config.read_text() + extra)
    git(project.repo, "commit", "-qam", "a check that writes into its bytecode")
    run = project.jl_json("run", "Fix add again")
    assert run["status"] == "awaiting_review", run
    assert seeded.read_bytes() == before
    assert _cached(project.home / "runs" / run["id"], source).read_bytes() == before + b"poison"


def test_a_harness_killed_while_copying_the_seed_leaves_no_half_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (SIGKILL, in a process of its own) after copying a few of the seed's files, the
    harness leaves no cache: the resumed run's first check copies the seed whole. (A cache
    left half-copied held a truncated `.pyc` that failed every later check of the run.)"""
    monkeypatch.setenv("JACKLINE_BYTECODE_SEED", str(tmp_path / "seed"))
    seeded = bytecode.seed() / "lib"
    seeded.mkdir(parents=True)
    for i in range(40):
        (seeded / f"m{i}.{TAG}.pyc").write_bytes(bytes([i]) * 4096)
    cache = tmp_path / "run" / bytecode.CACHE
    pid = os.fork()
    if pid == 0:  # the harness, killed on its fifth file, half of it written
        copied = 0
        real = shutil.copy2

        def copy(src: str, dst: str, **kwargs: object) -> object:
            nonlocal copied
            copied += 1
            if copied == 5:
                with open(src, "rb") as f, open(dst, "wb") as out:
                    out.write(f.read(100))
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, **kwargs)  # type: ignore[arg-type]

        tree = shutil.copytree

        def copy_tree(src: Path, dst: Path, *rest: object, **kwargs: object) -> object:
            if not rest:  # the top call (copytree calls itself for folders, all arguments given)
                kwargs.setdefault("copy_function", copy)
            return tree(src, dst, *rest, **kwargs)  # type: ignore[arg-type]

        shutil.copytree = copy_tree  # type: ignore[assignment]
        bytecode.start(cache)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), "the copy was not killed halfway"
    bytecode.start(cache)  # the resumed run's first check
    held = {f.name: f.read_bytes() for f in (cache / "lib").iterdir()}
    assert held == {f.name: f.read_bytes() for f in seeded.iterdir()}
    assert sorted(os.listdir(cache.parent)) == [bytecode.CACHE], "a partial copy was left"


def test_bytecode_a_check_writes_never_reaches_the_seed(project: Project) -> None:
    seed = project.root / "seed"
    project.env["JACKLINE_BYTECODE_SEED"] = str(seed)
    source = Path(colorsys.__file__)
    # The agent's code, run by a check, writes its own bytecode for a module of the standard
    # library into the run's cache, and links the cache to the host's root.
    where = f'"$PYTHONPYCACHEPREFIX{source.parent}"'
    plant = (
        f"mkdir -p {where} && echo poison > {where}/colorsys.{TAG}.pyc"
        ' && ln -s / "$PYTHONPYCACHEPREFIX/host"'
    )
    extra = f"\n[checks.plant]\ncommand = {json.dumps(plant)}\n"
    project.create(
        ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})]), extra=extra
    )
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    seeded = seed / TAG / str(source.parent).lstrip("/") / f"colorsys.{TAG}.pyc"
    # The seed took the name, and compiled the module from its own source.
    assert marshal.loads(seeded.read_bytes()[16:]).co_filename == str(source)
    assert not (seed / TAG / "host").exists()
    assert not [p for p in seed.rglob("*") if p.is_symlink()]


def test_learning_stops_after_a_bounded_number_of_names_folders_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check may fill its cache with empty folders: they count toward the bound as files do,
    # so the harness stops looking before it reaches a name it would have compiled.
    monkeypatch.setenv("JACKLINE_BYTECODE_SEED", str(tmp_path / "seed"))
    cache = tmp_path / "cache"
    source = Path(colorsys.__file__)
    named = cache / str(source.parent).lstrip("/") / f"colorsys.{TAG}.pyc"
    named.parent.mkdir(parents=True)
    named.write_bytes(b"poison")
    for i in range(10):
        (cache / f"empty-{i}").mkdir()
    monkeypatch.setattr(bytecode, "LEARN_LIMIT", 5)
    assert bytecode.learn(cache, INSIDE) == 0
    # Under the bound the same name is learnt: the source compiled, not the check's bytes.
    monkeypatch.setattr(bytecode, "LEARN_LIMIT", 20_000)
    assert bytecode.learn(cache, INSIDE) == 1
