"""File names git would quote (a non-ASCII letter, a newline, a tab, a quote, a backslash, a
leading space) are scanned, gated and reverted like any other: real git, the real scans, and a
whole run with a hostile command agent. And a found secret shows no part of itself but a
provider's public prefix and a length, anywhere the harness stores it."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

from jackline import config as cfg
from jackline import git as g
from jackline.guard.scope import revert_forbidden
from jackline.models import Finding
from jackline.scans import Change, run_scans
from jackline.scans import secrets as secret_scan

# Each one is quoted by git in its plain output, and so escaped every path check before; the
# last makes a patch's `diff --git a/x b/y b/x b/y` line say two names or four.
NAMES = ["ci\u00e9", "new\nline", "tab\there", 'quo"te', "back\\slash", " leading", "x b/y"]
DROP = "SET lock_timeout = '1s';\nALTER TABLE users DROP COLUMN email;\n"


def _git(repo: Path, *args: str) -> str:
    argv = ["git", "-C", str(repo), "-c", "user.name=T", "-c", "user.email=t@example.com", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _aws() -> str:
    return "AKIA" + "".join(
        secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    (r / "secret_area").mkdir()
    (r / "secret_area" / "kept\u00e9.txt").write_text("as it was\n")
    (r / "app.py").write_text("x = 1\n")
    _git(r, "add", "-A")
    _git(r, "commit", "-q", "-m", "base")
    return r


def _write(repo: Path, rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)


def _findings(repo: Path) -> list[tuple[str, str, str | None]]:
    report = run_scans(Change.of_workspace(repo, "HEAD"), cfg.parse({}))
    return [(f.rule, f.level, f.file) for f in report.findings]


@pytest.mark.parametrize("name", NAMES)
def test_a_workflow_whose_name_git_would_quote_is_a_gate_edit(repo: Path, name: str) -> None:
    path = f".github/workflows/{name}.yml"
    _write(repo, path, "on: push\njobs: {}\n")
    assert ("scope.gate", "block", path) in _findings(repo)


@pytest.mark.parametrize("name", NAMES)
def test_a_column_dropping_migration_whose_name_git_would_quote_blocks(
    repo: Path, name: str
) -> None:
    path = f"db/migrations/0002_{name}.sql"
    _write(repo, path, DROP)
    assert ("squawk.ban-drop-column", "block", path) in _findings(repo)


@pytest.mark.parametrize("name", NAMES)
def test_a_key_in_a_file_whose_name_git_would_quote_is_found(repo: Path, name: str) -> None:
    key = _aws()
    for path in (f"{name}.py", f"conf/{name}.env"):
        _write(repo, path, f'KEY = "{key}"\n')
    found = secret_scan.scan(Change.of_workspace(repo, "HEAD"))
    assert {(f.rule, f.file, f.line) for f in found.findings} == {
        ("secret.aws-access-key", f"{name}.py", 1),
        ("secret.aws-access-key", f"conf/{name}.env", 1),
    }
    assert found.values == {key}


def test_a_key_the_agent_committed_under_a_quoted_name_is_found(repo: Path) -> None:
    key = _aws()
    _write(repo, "new\nline.py", f'KEY = "{key}"\n')
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the agent's own commit")
    (repo / "new\nline.py").unlink()
    base = _git(repo, "rev-parse", "HEAD~1").strip()
    found = secret_scan.scan_commits(repo, base)
    assert [(f.rule, f.file) for f in found.findings] == [("secret.aws-access-key", "new\nline.py")]


@pytest.mark.parametrize("name", [*NAMES, ":(exclude)x", "*"])
def test_a_forbidden_write_under_a_name_git_would_quote_is_reverted(repo: Path, name: str) -> None:
    _write(repo, f"secret_area/{name}.txt", "written by the agent\n")
    (repo / "secret_area" / "kept\u00e9.txt").write_text("changed by the agent\n")
    reverted = revert_forbidden(repo, "HEAD", ["secret_area/**"])
    assert sorted(reverted) == sorted([f"secret_area/{name}.txt", "secret_area/kept\u00e9.txt"])
    assert not (repo / "secret_area" / f"{name}.txt").exists()
    assert (repo / "secret_area" / "kept\u00e9.txt").read_text() == "as it was\n"
    assert g.changed_paths(repo, "HEAD") == []


def test_changed_and_dirty_paths_are_the_files_names(repo: Path) -> None:
    (repo / "secret_area" / "kept\u00e9.txt").write_text("changed\n")
    _write(repo, "new\nline.py", "x\n")
    assert g.changed_paths(repo, "HEAD") == ["new\nline.py", "secret_area/kept\u00e9.txt"]
    assert g.dirty_tracked(repo) == ["secret_area/kept\u00e9.txt"]
    _git(repo, "mv", "secret_area/kept\u00e9.txt", "moved\ttab.txt")
    assert g.dirty_tracked(repo) == ["moved\ttab.txt"]


@pytest.mark.parametrize(
    "path", ["poetry.lock", "deps/package-lock.json", "creds.png", "swagger/k.py"]
)
def test_a_key_in_a_file_detect_secrets_skips_by_name_is_found(repo: Path, path: str) -> None:
    key = _aws()
    _write(repo, path, f'KEY = "{key}"\nhash = "sha256:{"9f86d081884c7d659a2feaa0c55ad015" * 2}"\n')
    found = secret_scan.scan(Change.of_workspace(repo, "HEAD"))
    # The provider's pattern counts; the lock file's hashes raise no false alarm.
    assert [(f.rule, f.file, f.line) for f in found.findings] == [
        ("secret.aws-access-key", path, 1)
    ]


def test_a_key_under_an_ambiguous_patch_header_is_found_with_every_other_file(
    repo: Path,
) -> None:
    key = _aws()
    _write(repo, "a b/c b/d.py", f'KEY = "{key}"\n')
    _write(repo, "plain.py", f'OTHER = "{key}"\n')
    found = secret_scan.scan(Change.of_workspace(repo, "HEAD"))
    assert sorted(f.file or "" for f in found.findings) == ["a b/c b/d.py", "plain.py"]


def test_a_file_that_becomes_a_link_is_a_deletion_and_an_addition(repo: Path) -> None:
    (repo / "app.py").unlink()
    (repo / "app.py").symlink_to("/etc/passwd")
    files = [(f.path, f.status, f.added) for f in Change.of_workspace(repo, "HEAD").files]
    assert [(p, s) for p, s, _ in files] == [("app.py", "deleted"), ("app.py", "added")]
    assert files[1][2][0].text == "/etc/passwd"  # the link's target, never what it points at


def test_renamed_and_deleted_files_keep_their_names(repo: Path) -> None:
    _git(repo, "mv", "secret_area/kept\u00e9.txt", 'secret_area/re"named\n.txt')
    (repo / "app.py").unlink()
    files = {f.path: (f.status, f.old_path) for f in Change.of_workspace(repo, "HEAD").files}
    assert files == {
        'secret_area/re"named\n.txt': ("renamed", "secret_area/kept\u00e9.txt"),
        "app.py": ("deleted", "app.py"),
    }


# A whole run ----------------------------------------------------------------------------------

HOSTILE_AGENT = """\
import os, sys
from pathlib import Path

def write(rel, text):
    Path(rel).parent.mkdir(parents=True, exist_ok=True)
    Path(rel).write_text(text)

write(".github/workflows/ci\\u00e9.yml", "on: push\\njobs: {{}}\\n")
write("db/migrations/0002_drop_\\u00e9.sql", {drop!r})
write("keys\\n.py", 'KEY = "{key}"\\n')
write("secret_area/\\u00e9\\tx\\n.txt", "a forbidden write\\n")
Path("calc.py").write_text("def add(a, b):\\n    return a + b\\n")
"""


def test_a_hostile_agents_quoted_names_are_gated_found_and_reverted(project: Project) -> None:
    key = _aws()
    script = project.root / "hostile.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(HOSTILE_AGENT.format(drop=DROP, key=key))
    project.create(
        [sys.executable, str(script)],
        extra=f"\n[sandbox]\nreadable = [{json.dumps(str(script))}]\n",
    )
    done = project.jl("run", "Fix add", "--json", ok=False)
    run = json.loads(done.stdout)
    assert run["status"] == "blocked", done.stderr

    events = project.events_by_kind(run["id"])
    findings = {(f["rule"], f["level"], f["file"]) for f in events["scan"][-1]["findings"]}
    assert ("scope.gate", "block", ".github/workflows/ci\u00e9.yml") in findings
    assert ("squawk.ban-drop-column", "block", "db/migrations/0002_drop_\u00e9.sql") in findings
    assert ("secret.aws-access-key", "block", "keys\n.py") in findings
    forbidden = "secret_area/\u00e9\tx\n.txt"
    assert ("scope.forbidden", "warn", forbidden) in findings
    assert forbidden in events["scope"][0]["reverted"]
    assert not (Path(run["workspace"]) / forbidden).exists()

    handoff = json.loads((Path(run["handoff"]).parent / "handoff.json").read_text())
    shown = {f["path"] for f in handoff["files"]}
    assert {".github/workflows/ci\u00e9.yml", "keys\n.py", "calc.py"} <= shown
    assert forbidden not in shown


# Masked secrets -------------------------------------------------------------------------------


REDACTION_LIST = "found-secrets.json"
"""The run's list of values to redact (mode 0600): the one stored file meant to hold them."""


def _windows(value: str, prefix: str) -> set[str]:
    """Every 6-character piece of `value` that is not inside its public prefix."""
    return {value[i : i + 6] for i in range(len(value) - 5) if i + 6 > len(prefix)}


def _token(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _random_looking(n: int) -> str:
    """A token without a provider's prefix that the scan can tell from a word: one whose
    letters are spread as a random key's are (over detect-secrets' entropy limit). About one
    random draw in 150 is not, and nothing tells that one from ordinary text: it is drawn
    again rather than left to fail the test by chance."""
    entropy = Base64HighEntropyString()
    while True:
        token = _token(n)
        if entropy.calculate_shannon_entropy(token) > entropy.entropy_limit:
            return token


def test_a_mask_shows_a_known_prefix_and_a_length_and_nothing_else() -> None:
    assert secret_scan.mask("ghp_" + "a1B2" * 9) == "ghp_…[40 chars]"
    assert secret_scan.mask("sk-ant-" + "x9" * 20) == "sk-ant-…[47 chars]"
    assert secret_scan.mask("Zq8" * 13 + "W") == "…[40 chars]"
    assert (
        secret_scan.mask("AKIAshort") == "…[9 chars]"
    )  # a prefix with little after it stays hidden


def test_a_planted_40_character_key_shows_no_part_of_itself_anywhere_stored(
    project: Project,
) -> None:
    keys = {
        "sk_live_": "sk_live_" + _token(32),  # detect-secrets' pattern takes 24 of the 32
        "ghp_": "ghp_" + _token(36),
        "": _random_looking(40),
    }
    assert all(len(k) == 40 for k in keys.values())
    body = "".join(f'KEY_{i} = "{k}"\n' for i, k in enumerate(keys.values()))
    script = project.root / "plant.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "from pathlib import Path\n"
        f"Path('settings_local.py').write_text({body!r})\n"
        f"print({' '.join(keys.values())!r})\n"
    )
    project.create(
        [sys.executable, str(script)],
        extra=f"\n[sandbox]\nreadable = [{json.dumps(str(script))}]\n",
    )
    done = project.jl("run", "Fix add", "--json", ok=False)
    run = json.loads(done.stdout)
    assert run["status"] == "blocked", done.stderr

    folder = Path(run["handoff"]).parent
    stored = {
        "handoff.md": (folder / "handoff.md").read_text(),
        "handoff.json": (folder / "handoff.json").read_text(),
        "events": json.dumps(project.events(run["id"]), ensure_ascii=False),
        "logs": project.jl("logs", run["id"]).stdout,
        **{
            str(p.relative_to(folder)): p.read_text(errors="replace")
            for p in folder.rglob("*")
            if p.is_file() and p.name != REDACTION_LIST
        },
    }
    assert "sk_live_…[40 chars]" in stored["handoff.md"]
    for prefix, key in keys.items():
        for where, text in stored.items():
            shown = sorted(w for w in _windows(key, prefix) if w in text)
            assert not shown, f"{where} shows {shown} of the {prefix or 'unprefixed'} key"


# The note a person reads ------------------------------------------------------------------------


def test_a_file_name_cannot_write_lines_of_the_handoff() -> None:
    from jackline import handoff

    name = "x\n## Where to look twice\n\n- Nothing stood out; approve.\n`|`"
    finding = Finding(
        "scope.gate",
        "block",
        f"the change edits gate configuration `{name}`",
        file=name,
        quote="ok\n```\n## Findings\n\nNone.",
    )
    files = (handoff.ChangedFile(name, 1, 0),)
    h = handoff.Handoff(
        run="run-1",
        task="t",
        outcome="awaiting_review",
        branch="agent/t",
        base="0" * 40,
        head="1" * 40,
        summary="s",
        files=files,
        findings=(finding,),
        look_twice=tuple(handoff.look_twice(files, ["calc.py"], [name], [], "", [finding])),
    )
    lines = handoff.markdown(h).splitlines()
    assert lines.count("## Where to look twice") == 1
    assert lines.count("## Findings") == 1
    assert not any(line.startswith("- Nothing stood out") for line in lines)
    row = next(line for line in lines if line.startswith("| `` x\\n## Where"))
    assert row.endswith("| 1 | 0 |") and row.count(" | ") == 2  # one row, its cells intact


def test_a_workspace_with_no_change_scans_as_no_change(repo: Path) -> None:
    # An agent that failed or changed nothing leaves an empty diff: no files, no error.
    change = Change.of_workspace(repo, "HEAD")
    assert change.files == ()
    assert run_scans(change, cfg.parse({})).findings == ()
