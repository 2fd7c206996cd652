"""A run resumes on a machine that does not have its workspace: the work each step leaves is kept
in the store (`workspaces.kept`), and a step that finds the run's workspace missing, another
run's, replaced or emptied makes it again from the work of the last finished step
(`steps.moving`). Real git, real runs, real processes killed with -9, real bubblewrap."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, git

from jackline import proc
from jackline.store import Store
from jackline.testing import Replace, Round, ScriptedAgent
from jackline.workspaces import kept
from jackline.workspaces.clone import CloneProvider

bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

HOST_SECRET = "HOST-SECRET-MARKER-5be1f0"


# the work, kept and applied --------------------------------------------------------------------


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "gone.txt").write_text("deleted by the work\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qm", "base")
    return repo


def _workspace(repo: Path, where: Path) -> Path:
    return CloneProvider().create(repo, "main", "agent/fix", where).path


def _hostile_work(ws: Path, root: Path) -> None:
    """What a hostile agent leaves: a change, a link to a host file and one to a host folder,
    a FIFO, and git configuration and hooks of its own that would run a program."""
    host = root / "host-secret.txt"
    host.write_text(HOST_SECRET + "\n")
    (root / "host-dir").mkdir()
    (root / "host-dir" / "inside.txt").write_text(HOST_SECRET + "\n")
    (ws / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (ws / "gone.txt").unlink()
    (ws / "new").mkdir()
    (ws / "new" / "file.txt").write_text("new\n")
    (ws / "leak").symlink_to(host)
    (ws / "leak-dir").symlink_to(root / "host-dir")
    os.mkfifo(ws / "pipe")
    pwn = f"#!/bin/sh\ntouch {root}/pwned-$1\ncat\n"
    (ws / "pwn.sh").write_text(pwn)
    (ws / "pwn.sh").chmod(0o755)
    (ws / ".git" / "hooks").mkdir(parents=True)
    for hook in ("post-checkout", "post-index-change", "reference-transaction", "pre-commit"):
        (ws / ".git" / "hooks" / hook).write_text(pwn)
        (ws / ".git" / "hooks" / hook).chmod(0o755)
    (ws / ".git" / "config").write_text(
        "[core]\n\tfsmonitor = ./pwn.sh fsmonitor\n\thooksPath = .git/hooks\n"
        '[filter "evil"]\n\tclean = ./pwn.sh clean\n\tsmudge = ./pwn.sh smudge\n'
    )
    (ws / ".gitattributes").write_text("* filter=evil\n")


def test_the_kept_work_holds_links_as_links_and_runs_nothing_the_agent_left(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    ws = _workspace(repo, tmp_path / "a" / "run-1")
    base = git(repo, "rev-parse", "main")
    _hostile_work(ws, tmp_path)
    head, tree = kept.head_and_tree(ws, "agent/fix")
    data = kept.bundle(ws, head, tree, base, 50 * 1024 * 1024)
    assert isinstance(data, bytes)
    assert git(ws, "for-each-ref", "refs/jackline") == ""  # the bundle's ref is gone again
    # Applied in a fresh workspace on "another machine".
    again = _workspace(repo, tmp_path / "b" / "run-1")
    entry = kept.Kept("agent:1", head, tree, base, "agent/fix", slot=kept.SLOTS[0])
    kept.apply(again, data, entry)
    assert (again / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not (again / "gone.txt").exists()
    assert (again / "new" / "file.txt").read_text() == "new\n"
    assert os.readlink(again / "leak") == str(tmp_path / "host-secret.txt")
    assert os.readlink(again / "leak-dir") == str(tmp_path / "host-dir")
    assert not os.path.lexists(again / "pipe")
    assert not os.path.lexists(again / ".git")  # the agent's git directory is never carried
    assert git(again, "rev-parse", "HEAD") == head
    assert git(again, "symbolic-ref", "HEAD") == "refs/heads/agent/fix"
    status = git(again, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(line.strip() for line in status) == [
        "?? .gitattributes",
        "?? leak",
        "?? leak-dir",
        "?? new/file.txt",
        "?? pwn.sh",
        "D gone.txt",
        "M calc.py",
    ]
    # Nothing the agent configured ran, and no object holds what a link points at.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned")) == []
    blobs = git(again, "rev-list", "--objects", "--all").split()
    contents = "".join(git(again, "cat-file", "-p", b) for b in blobs if len(b) == 40)
    assert HOST_SECRET not in contents


def test_work_over_the_bound_is_not_bundled_and_says_by_how_much(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    ws = _workspace(repo, tmp_path / "run-1")
    (ws / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    head, tree = kept.head_and_tree(ws, "agent/fix")
    why = kept.bundle(ws, head, tree, git(repo, "rev-parse", "main"), 1024 * 1024)
    assert isinstance(why, str)
    assert "3.0 MiB" in why and "`[workspace] kept_mb`" in why


def test_a_step_run_again_starts_from_the_work_before_its_own(tmp_path: Path) -> None:
    store = Store(tmp_path / "jackline.db")
    entry = kept.Kept("prepare", "h0", "t0", "b", "agent/fix", slot=None)
    kept.record(store, "run-1", entry, b"zero")
    kept.record(store, "run-1", kept.Kept("agent:1", "h1", "t1", "b", "agent/fix", None), b"one")
    index = kept.index_of(store, "run-1")
    assert [index.source(None).step, index.source("agent:1").step] == ["agent:1", "prepare"]
    # agent:1 runs again (it died before the engine recorded it): its new work replaces its
    # own, in its own slot; the work before it is still there.
    again = kept.record(
        store, "run-1", kept.Kept("agent:1", "h2", "t2", "b", "agent/fix", None), b"1"
    )
    assert (again.latest.head, again.previous.step) == ("h2", "prepare")  # type: ignore[union-attr]
    assert again.latest.slot == index.latest.slot  # type: ignore[union-attr]
    assert store.get_artifact("run-1", again.previous.slot) == b"zero"  # type: ignore[union-attr,arg-type]
    # A slot whose bytes are not the ones the index names is never applied.
    assert kept.digest_matches(b"1", again.latest)  # type: ignore[arg-type]
    assert not kept.digest_matches(b"one", again.latest)  # type: ignore[arg-type]


def test_a_workspace_is_the_runs_only_where_its_place_token_and_folder_agree(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    store = Store(tmp_path / "jackline.db")
    ws = _workspace(repo, tmp_path / "run-1")
    place = kept.claim(store, "run-1", ws)
    assert kept.not_here(place, ws, "run-1") is None
    assert "another workspace" in str(kept.not_here(place, ws, "run-2"))
    elsewhere = kept.Place(**{**place.__dict__, "host": "another-machine"})
    assert "made on another-machine" in str(kept.not_here(elsewhere, ws, "run-1"))
    # Another run's workspace moved to this path (its git directory beside it too).
    other = _workspace(repo, tmp_path / "run-2")
    kept.claim(store, "run-2", other)
    shutil.rmtree(ws)
    shutil.rmtree(tmp_path / "run-1.git")
    other.rename(ws)
    (tmp_path / "run-2.git").rename(tmp_path / "run-1.git")
    assert "another workspace" in str(kept.not_here(place, ws, "run-1"))
    # The run's own git directory beside it, but the folder emptied (or made anew), or a link.
    ws = _workspace(repo, tmp_path / "run-3")
    place = kept.claim(store, "run-3", ws)
    shutil.rmtree(ws)
    ws.mkdir()
    assert "is empty" in str(kept.not_here(place, ws, "run-3"))
    ws.rmdir()
    ws.symlink_to(other)
    assert "not on this machine" in str(kept.not_here(place, ws, "run-3"))
    ws.unlink()
    assert "not on this machine" in str(kept.not_here(place, ws, "run-3"))


# a run taken over on a machine without its workspace --------------------------------------------

ROUND_ONE = Round(
    edits={"calc.py": Replace("a - b", "a * b"), "docs/round1.md": "kept from round 1\n"},
    message="tried multiplication",
)


def _gated(flags: Path, started: str) -> str:
    """A shell line that waits (two minutes) until the test lets it go on; `started` tells the
    test it waits. The flag is outside the workspace: a workspace made again does not have it."""
    return f"if [ ! -e {flags}/go ]; then touch {started}; sleep 120; fi"


def _project(project: Project, agent: ScriptedAgent, checks: str = "") -> Path:
    """The calc project whose sandbox may read the agent's script and the test's flags."""
    flags = project.root / "flags"
    flags.mkdir()
    readable = json.dumps([str(project.root / "agent.json"), str(flags)])
    project.create(agent, extra=f"\n[sandbox]\nreadable = {readable}\n{checks}")
    return flags


def _told(project: Project, run: dict[str, Any]) -> str:
    """What a run that did not rest as it should went through: its reason and its log's steps,
    rounds and commands (a failure under load says what happened, not only that it did)."""
    said = [run.get("reason", "")]
    for e in project.events(run["id"]):
        if e["kind"] in ("step", "round", "command", "workspace.rebuilt", "work.not_kept", "error"):
            keep = ("step", "round", "passed", "exit_code", "problem", "why", "reason", "timed_out")
            said.append(f"{e['kind']} " + json.dumps({k: e[k] for k in keep if k in e}))
    return "\n".join(said)


def _killed_when(project: Project, ready: Any) -> str:
    """`jackline run` as a person starts it, killed with -9 once `ready()` holds: the id of the
    run it left."""
    driver = subprocess.Popen(
        [sys.executable, "-m", "jackline", "run", "Fix add", "--json"],
        cwd=project.repo,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 90
    while not ready():
        assert time.time() < deadline and driver.poll() is None, "the step never started"
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    db = sqlite3.connect(project.home / "jackline.db")
    run_id = str(db.execute("SELECT id FROM runs ORDER BY rowid DESC").fetchone()[0])
    db.close()
    assert project.jl_json("show", run_id)["status"] == "interrupted"
    return run_id


def _one_commit_with_both_rounds(project: Project, run: dict[str, Any]) -> None:
    """The branch holds one commit: round 1's new file, and round 2's fix (redone)."""
    branch = run["branch"]
    assert git(project.repo, "log", "--format=%s", f"main..{branch}").splitlines() == ["Fix add"]
    changed = git(project.repo, "diff", "--name-status", "main", branch).splitlines()
    assert sorted(changed) == ["A\tdocs/round1.md", "M\tcalc.py"]
    assert "return a + b" in git(project.repo, "show", f"{branch}:calc.py")


def _rebuilt(project: Project, run_id: str) -> list[dict[str, Any]]:
    return project.events_by_kind(run_id).get("workspace.rebuilt", [])


@bwrap
def test_a_run_killed_in_round_two_resumes_on_a_machine_without_its_workspace_or_run_folder(
    project: Project,
) -> None:
    started = ".jackline/run/round-2-started"
    flags = project.root / "flags"
    second = Round(edits={"calc.py": Replace("a * b", "a + b")}, commands=[_gated(flags, started)])
    _project(project, ScriptedAgent([ROUND_ONE, second]))
    run_id = _killed_when(project, lambda: list(project.home.glob(f"workspaces/*/{started}")))
    old = project.home / "workspaces" / run_id
    assert (old / "docs" / "round1.md").exists()  # round 1 was done there
    # The dead machine took its workspaces and its run folders with it (its agent, too).
    proc.kill_recorded(project.home / "runs" / run_id / "round-2" / "agent.pid")
    shutil.rmtree(project.home / "workspaces")
    shutil.rmtree(project.home / "runs" / run_id)
    project.env["JACKLINE_WORKSPACES"] = str(project.root / "elsewhere")
    (flags / "go").touch()
    resumed = project.jl_json("resume")
    assert [r["status"] for r in resumed] == ["awaiting_review"], _told(project, resumed[0])
    run = resumed[0]
    assert run["workspace"] == str(project.root / "elsewhere" / run_id)
    [rebuilt] = _rebuilt(project, run_id)
    assert rebuilt["step"] == "agent:1" and rebuilt["previous"] == str(old)
    assert "is not on this machine" in rebuilt["why"]
    inbox = ["brief.md", "context.json", "feedback.md", "policy.json"]
    assert sorted(rebuilt["inbox_restored"]) == inbox  # round 2's, with its feedback
    events = project.events(run_id)
    assert [e["kind"] for e in events].count("workspace") == 1  # prepare was not repeated
    agents = [e for e in events if e["kind"] == "command" and e["step"] == "agent"]
    assert [a["round"] for a in agents] == [1, 2]  # round 2 ran again in full, once recorded
    _one_commit_with_both_rounds(project, run)


@bwrap
def test_a_run_killed_during_its_checks_runs_them_again_on_the_work_of_its_round(
    project: Project,
) -> None:
    flags = project.root / "flags"
    waiting = f"\n[checks.wait]\ncommand = \"sh -c '{_gated(flags, '/dev/null')}'\"\n"
    _project(
        project,
        ScriptedAgent([ROUND_ONE, Round(edits={"calc.py": Replace("a * b", "a + b")})]),
        waiting,
    )
    run_id = _killed_when(project, lambda: list(project.home.glob("runs/*/round-1/checks.tree")))
    shutil.rmtree(project.home / "workspaces" / run_id)
    (flags / "go").touch()
    resumed = project.jl_json("resume")
    assert [r["status"] for r in resumed] == ["awaiting_review"], _told(project, resumed[0])
    [rebuilt] = _rebuilt(project, run_id)
    assert rebuilt["step"] == "agent:1"
    rounds = project.events_by_kind(run_id)["round"]
    assert [(r["round"], r["passed"]) for r in rounds] == [(1, False), (2, True)]
    _one_commit_with_both_rounds(project, resumed[0])


@bwrap
@pytest.mark.parametrize("found", ["another run's workspace", "an emptied folder"])
def test_a_workspace_path_holding_something_else_is_made_again_never_used_as_is(
    project: Project, found: str
) -> None:
    started = ".jackline/run/round-2-started"
    flags = project.root / "flags"
    second = Round(edits={"calc.py": Replace("a * b", "a + b")}, commands=[_gated(flags, started)])
    _project(project, ScriptedAgent([ROUND_ONE, second]))
    other = None
    if found == "another run's workspace":
        ScriptedAgent(
            [Round(edits={"calc.py": Replace("a - b", "a + b"), "from_b.txt": "B\n"})]
        ).save(project.root / "agent.json")
        other = project.jl_json("run", "Another task")
        assert other["status"] == "awaiting_review", other["reason"]
        ScriptedAgent([ROUND_ONE, second]).save(project.root / "agent.json")
    run_id = _killed_when(project, lambda: list(project.home.glob(f"workspaces/*/{started}")))
    ws = project.home / "workspaces" / run_id
    if other is not None:  # the other run's workspace, its git directory beside it, put here
        shutil.rmtree(ws)
        shutil.rmtree(f"{ws}.git")
        shutil.copytree(other["workspace"], ws, symlinks=True)
        shutil.copytree(f"{other['workspace']}.git", f"{ws}.git", symlinks=True)
    else:  # emptied in place: the folder and the harness's git directory are still there
        for entry in ws.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (flags / "go").touch()
    resumed = project.jl_json("resume")
    assert [r["status"] for r in resumed] == ["awaiting_review"], _told(project, resumed[0])
    [rebuilt] = _rebuilt(project, run_id)
    assert rebuilt["step"] == "agent:1" and rebuilt["path"] == str(ws)
    said = "holds another workspace" if other else "is empty"
    assert said in rebuilt["why"]
    _one_commit_with_both_rounds(project, resumed[0])
    assert not (ws / "from_b.txt").exists()


def _kept_objects(project: Project, run_id: str, scratch: Path) -> str:
    """Every object of every bundle the run kept, as text: wherever a leaked byte would be."""
    git(project.root, "clone", "-q", str(project.repo), str(scratch))
    db = sqlite3.connect(project.home / "jackline.db")
    rows = db.execute(
        "SELECT name, data FROM artifacts WHERE run_id = ? AND name LIKE 'work/%.bundle'", (run_id,)
    ).fetchall()
    db.close()
    texts = []
    for name, data in rows:
        bundle = scratch.parent / name.replace("/", "-")
        bundle.write_bytes(data)
        sha = git(scratch, "bundle", "unbundle", str(bundle)).split()[0]
        for line in git(scratch, "rev-list", "--objects", sha, "^main").splitlines():
            texts.append(git(scratch, "cat-file", "-p", line.split()[0]))
    return "\n".join(texts)


@bwrap
def test_what_a_hostile_agent_leaves_is_kept_and_made_again_without_being_followed_or_run(
    project: Project,
) -> None:
    root = project.root
    host = root / "host-secret.txt"
    host.write_text(HOST_SECRET + "\n")
    (root / "host-dir").mkdir()
    (root / "host-dir" / "inside.txt").write_text(HOST_SECRET + "\n")
    hostile = (
        "sed -i 's/a - b/a + b/' calc.py && "
        f"ln -s {host} leak && ln -s {root}/host-dir leak-dir && mkfifo pipe && "
        f"printf '#!/bin/sh\\ntouch {root}/pwned-$1\\ncat\\n' > pwn.sh && chmod +x pwn.sh && "
        "printf '[core]\\n\\tfsmonitor = ./pwn.sh fsmonitor\\n\\thooksPath = hooks\\n"
        '[filter "evil"]\\n\\tclean = ./pwn.sh clean\\n\\tsmudge = ./pwn.sh smudge\\n\' '
        ">> .git/config && mkdir -p hooks && "
        "for h in post-checkout post-index-change reference-transaction pre-commit; "
        "do cp pwn.sh hooks/$h; done && echo '* filter=evil' > .gitattributes"
    )
    project.create(
        f'if [ "$JACKLINE_ROUND" = 1 ]; then {hostile}; else echo reviewed > review.txt; fi'
    )
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run["reason"]
    # Its machine is gone: the next round, asked for by a reviewer, runs on another.
    shutil.rmtree(project.home / "workspaces")
    project.env["JACKLINE_WORKSPACES"] = str(root / "elsewhere")
    again = project.jl_json("request-changes", run["id"], "--as", "bob", "-m", "note it")
    assert again["status"] == "awaiting_review", again["reason"]
    [rebuilt] = _rebuilt(project, run["id"])
    assert rebuilt["step"] == "commit"
    ws = Path(again["workspace"])
    assert ws.parent == root / "elsewhere"
    assert os.readlink(ws / "leak") == str(host) and os.readlink(ws / "leak-dir") == str(
        root / "host-dir"
    )
    assert not os.path.lexists(ws / "pipe")
    assert "fsmonitor" not in (ws / ".git" / "config").read_text()  # the agent's is laid anew
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("pwned")) == []
    assert host.read_text() == HOST_SECRET + "\n"
    kept_text = _kept_objects(project, run["id"], root / "scratch" / "repo")
    assert HOST_SECRET not in kept_text and str(host) in kept_text  # the link, not its target
    branch = again["branch"]
    assert git(project.repo, "log", "--format=%s", f"main..{branch}").splitlines() == [
        "Fix add",
        "Fix add",
    ]
    assert git(project.repo, "ls-tree", branch, "leak").startswith("120000 ")
    assert "review.txt" in git(project.repo, "ls-tree", "--name-only", branch)


def _artifacts(project: Project, run_id: str) -> bytes:
    db = sqlite3.connect(project.home / "jackline.db")
    rows = db.execute("SELECT data FROM artifacts WHERE run_id = ?", (run_id,)).fetchall()
    db.close()
    return b"".join(bytes(r[0]) for r in rows)


def test_work_holding_a_secret_is_never_kept_and_the_run_cannot_move_with_it(
    project: Project,
) -> None:
    from test_guardrails import _token

    aws = _token("AKIA", 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    leak = Round(edits={"calc.py": Replace("a - b", "a + b"), "settings.py": f'KEY = "{aws}"\n'})
    project.create(ScriptedAgent([leak]))
    done = project.jl("run", "Fix add", "--json", ok=False)
    run = json.loads(done.stdout)
    assert run["status"] == "blocked", done.stderr
    [not_kept] = project.events_by_kind(run["id"])["work.not_kept"]
    assert not_kept["step"] == "agent:1" and not_kept["secrets"] == ["settings.py:1"]
    assert "holds a secret (settings.py:1)" in not_kept["why"]
    assert aws.encode() not in _artifacts(project, run["id"])
    assert aws not in _kept_objects(project, run["id"], project.root / "scratch" / "repo")
    # On another machine, the round a reviewer asks for cannot start from work that was never
    # kept: the run fails and says why, rather than starting from older work.
    shutil.rmtree(project.home / "workspaces")
    sent = project.jl("request-changes", run["id"], "-m", "remove it", "--json", ok=False)
    failed = json.loads(sent.stdout)
    assert failed["status"] == "failed", sent.stderr
    assert "the work of agent:1 was not kept: it holds a secret" in failed["reason"]
    assert aws not in failed["reason"]


def test_work_over_the_bound_is_not_kept_the_run_goes_on_here_and_cannot_move(
    project: Project,
) -> None:
    big = "head -c 3145728 /dev/urandom > big.bin && sed -i 's/a - b/a + b/' calc.py"
    project.create(big, extra="\n[workspace]\nkept_mb = 1\n")
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run["reason"]  # on its own machine: as ever
    whys = [e["why"] for e in project.events_by_kind(run["id"])["work.not_kept"]]
    assert whys and all("MiB, more than the 1 MiB `[workspace] kept_mb` allows" in w for w in whys)
    assert len(_artifacts(project, run["id"])) < 1024 * 1024
    shutil.rmtree(project.home / "workspaces")
    done = project.jl("approve", run["id"], "--as", "bob", "--json", ok=False)
    failed = json.loads(done.stdout)
    assert failed["status"] == "failed", done.stderr
    assert "is not on this machine" in failed["reason"]
    assert "more than the 1 MiB `[workspace] kept_mb` allows" in failed["reason"]
    assert git(project.repo, "rev-list", "--count", "main") == "1"  # nothing merged


@bwrap
def test_a_run_killed_in_its_first_round_is_made_again_from_its_base(project: Project) -> None:
    started = ".jackline/run/round-1-started"
    flags = project.root / "flags"
    first = Round(edits={"calc.py": Replace("a - b", "a + b")}, commands=[_gated(flags, started)])
    _project(project, ScriptedAgent([first]))
    run_id = _killed_when(project, lambda: list(project.home.glob(f"workspaces/*/{started}")))
    shutil.rmtree(project.home / "workspaces")
    (flags / "go").touch()
    resumed = project.jl_json("resume")
    assert [r["status"] for r in resumed] == ["awaiting_review"], _told(project, resumed[0])
    [rebuilt] = _rebuilt(project, run_id)
    assert rebuilt["step"] == "prepare" and rebuilt["head"] == resumed[0]["base_sha"]
    branch = resumed[0]["branch"]
    assert git(project.repo, "log", "--format=%s", f"main..{branch}").splitlines() == ["Fix add"]
    assert git(project.repo, "diff", "--name-only", "main", branch) == "calc.py"
