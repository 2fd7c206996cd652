"""The workspace is hostile once an agent or a check has run in it: a real hostile agent (a
command agent under bubblewrap) and a hostile check try every way from the workspace to the host
that was shown to work before the harness kept its git directory, inbox and redaction list out of
the agent's reach. One run carries all the attacks; each test checks that one of them failed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import pytest
from conftest import CALC, Project, git, unmount_under

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

# Round 1 attacks and leaves the bug; round 2 fixes it, so the run goes through scan and commit
# (the harness's own `git add` there ran a filter the agent had configured).
HOSTILE = r"""
import json, os, sys

ROOT = {root!r}
ROUND = os.environ.get("JACKLINE_ROUND", "1")
PAYLOAD = "#!/bin/sh\ntouch " + ROOT + "/pwned-$1\ncat\n"

def attempt(what, action):
    try:
        action()
        print("attack went through:", what)
    except OSError as e:
        print("attack refused:", what, e)

def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)

def link(target, at):
    if os.path.lexists(at) and not os.path.isdir(at):
        os.unlink(at)
    os.symlink(target, at)

EVIL_CONFIG = (
    "[core]\n\tfsmonitor = ./pwn.sh fsmonitor\n\thooksPath = hooks\n"
    '[filter "evil"]\n\tclean = ./pwn.sh filter\n\tsmudge = ./pwn.sh smudge\n'
    '[diff "evil"]\n\ttextconv = ./pwn.sh textconv\n'
    "[include]\n\tpath = ../evil.config\n"
)

if ROUND == "1":
    write("pwn.sh", PAYLOAD, 0o755)
    write("hooks/pre-commit", PAYLOAD, 0o755)
    write("evil.config", EVIL_CONFIG)
    write(".gitattributes", "* filter=evil diff=evil\n")
    # 1. The brief, its folder and the folder above it, as links to a host folder.
    attempt("brief link", lambda: link(ROOT + "/victim/evil.pth", ".jackline/run/brief.md"))
    attempt("inbox link", lambda: (os.rename(".jackline/run", ".jackline/old"),
                                   link(ROOT + "/victim", ".jackline/run")))
    # 2, 3. Git's configuration: the config itself, commondir, alternates, an include.
    attempt("git config", lambda: write(".git/config", EVIL_CONFIG))
    attempt("commondir", lambda: (write("evil-common/config", EVIL_CONFIG),
                                  write(".git/commondir", "../evil-common\n")))
    attempt("alternates", lambda: open(".git/objects/info/alternates", "a").write(ROOT + "\n"))
    # A repository of the agent's own inside the workspace, configured to run its program.
    write("sub/.git/HEAD", "ref: refs/heads/main\n")
    os.makedirs("sub/.git/objects", exist_ok=True)
    os.makedirs("sub/.git/refs", exist_ok=True)
    write("sub/.git/config", EVIL_CONFIG.replace("./pwn.sh", "../pwn.sh"))
    write("sub/file.txt", "x\n")
    # 4. Every object file the workspace can see, rewritten in place.
    stores = [".git/objects"]
    if os.path.exists(".git/objects/info/alternates"):
        stores += open(".git/objects/info/alternates").read().split()
    for top, _dirs, files in (w for store in stores for w in os.walk(store)):
        for name in files:
            path = os.path.join(top, name)
            def rewrite(path=path):
                os.chmod(path, 0o644)
                with open(path, "r+b") as f:
                    f.write(b"agent was here")
            attempt("object " + path, rewrite)
    # 7. The git files the harness used to restore, as links to a host file.
    attempt("config link", lambda: link(ROOT + "/decoy.db", ".git/config"))
    attempt("exclude link", lambda: link(ROOT + "/decoy.db", ".git/info/exclude"))
    # 11. The redaction list: hide the backdoor's name from the handoff.
    write("backdoor_module.py", "print('backdoor_module')\n")
    for where in (".git/jackline-found-secrets", ".jackline/run/found-secrets.json"):
        attempt("redaction list " + where, lambda where=where: write(where, json.dumps(["backdoor_module"])))
    # 2. A check that rewrites git's configuration after the harness looked.
    write("conftest.py", "import os\n"
          "for p in ('.git/config', '.git/commondir'):\n"
          "    try:\n"
          "        open(p, 'w').write(open('evil.config').read() if p.endswith('config') else '../evil-common\\n')\n"
          "    except OSError:\n"
          "        pass\n"
          "for d in ('made_by_check/.git/objects', 'made_by_check/.git/refs'):\n"
          "    os.makedirs(d, exist_ok=True)\n"
          "open('made_by_check/.git/HEAD', 'w').write('ref: refs/heads/main\\n')\n"
          "open('made_by_check/.git/config', 'w').write(open('evil.config').read().replace('./pwn', '../pwn'))\n"
          "open('made_by_check/f.txt', 'w').write('x\\n')\n")
    write("calc.py", open("calc.py").read().replace("a - b", "a * b"))
else:
    import subprocess
    write("calc.py", open("calc.py").read().replace("a * b", "a + b"))
    # The agent's git works in a git directory of its own, the harness's objects borrowed.
    for argv in (["git", "diff", "--stat"], ["git", "log", "-1", "--format=log: %s"],
                 ["git", "status", "--porcelain"], ["git", "commit", "-qam", "mine"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        print("$", " ".join(argv), "->", done.returncode, done.stdout.strip(), done.stderr.strip())
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("hostile")
    project = Project(root, root / "home")
    (root / "victim").mkdir()
    (root / "decoy.db").write_bytes(b"the audit database's bytes")
    script = root / "agent.py"
    script.write_text(HOSTILE.format(root=str(root)))
    project.create(
        [sys.executable, str(script)],
        extra=f'\n[sandbox]\nreadable = ["{script}"]\n[review]\nallow_as = true\n',
    )
    run = project.jl_json("run", "Fix add in calc.py")
    yield project, run
    unmount_under(root)


def test_hostile_run_still_reaches_review(hostile: Any) -> None:
    project, run = hostile
    assert run["status"] == "awaiting_review", run
    assert run["rounds"] == 2


def test_brief_through_a_link_lands_in_the_inbox_not_on_the_host(hostile: Any) -> None:
    project, run = hostile
    assert sorted(os.listdir(project.root / "victim")) == []
    inbox = project.home / "runs" / run["id"] / "inbox" / "brief.md"
    assert "Fix add in calc.py" in inbox.read_text()
    assert not inbox.is_symlink()


def test_git_configuration_the_agent_or_a_check_wrote_runs_nothing_on_the_host(
    hostile: Any,
) -> None:
    project, run = hostile
    pwned = sorted(p.name for p in project.root.iterdir() if p.name.startswith("pwned"))
    assert pwned == []
    harness = project.home / "workspaces" / f"{run['id']}.git"
    config = (harness / "config").read_text()
    assert "evil" not in config and "fsmonitor" not in config
    assert not (harness / "commondir").exists()
    assert not (harness / "objects" / "info" / "alternates").exists()


def test_the_users_repository_shares_no_object_with_the_workspace(hostile: Any) -> None:
    project, run = hostile
    git(project.repo, "fsck", "--full", "--strict")
    assert git(project.repo, "show", "main:calc.py") + "\n" == CALC
    ours = {
        os.stat(p).st_ino for p in (project.repo / ".git" / "objects").rglob("*") if p.is_file()
    }
    harness = project.home / "workspaces" / f"{run['id']}.git" / "objects"
    theirs = {os.stat(p).st_ino for p in harness.rglob("*") if p.is_file()}
    assert ours and theirs and not ours & theirs


def test_links_where_git_files_were_write_nothing_outside(hostile: Any) -> None:
    project, _run = hostile
    assert (project.root / "decoy.db").read_bytes() == b"the audit database's bytes"


def test_the_agent_cannot_choose_what_the_handoff_hides(hostile: Any) -> None:
    project, run = hostile
    handoff = (project.home / "runs" / run["id"] / "handoff.md").read_text()
    assert "backdoor_module.py" in handoff
    found = project.home / "runs" / run["id"] / "found-secrets.json"
    assert not found.exists() or "backdoor_module" not in json.loads(found.read_text())


def test_the_branch_holds_the_fix_and_nothing_of_the_agents_git_files(hostile: Any) -> None:
    project, run = hostile
    branch = run["branch"]
    assert "a + b" in git(project.repo, "show", f"{branch}:calc.py")
    listed = git(project.repo, "ls-tree", "-r", "--name-only", branch).splitlines()
    assert not [p for p in listed if p.startswith(".git/") or "/.git/" in p]


def test_the_agents_git_works_and_its_commits_stay_its_own(hostile: Any) -> None:
    project, run = hostile
    log = (project.home / "runs" / run["id"] / "round-2" / "agent.log").read_text()
    assert "calc.py | 2 +-" in log
    assert "log: calc with a bug" in log
    commit = next(line for line in log.splitlines() if line.startswith("$ git commit"))
    assert "-> 0" in commit
    # The harness committed the work tree itself: its commit, not the agent's "mine".
    assert git(project.repo, "log", "-1", "--format=%s", run["branch"]) != "mine"


def test_a_repository_the_agent_nests_is_flattened_one_a_check_nests_removed(
    hostile: Any,
) -> None:
    project, run = hostile
    warned = [w["message"] for w in project.events_by_kind(run["id"])["warning"]]
    assert any("agent (round 1)" in w and "sub" in w for w in warned), warned
    assert any("check `test`" in w and "made_by_check" in w for w in warned), warned
    listed = git(project.repo, "ls-tree", "-r", "--name-only", run["branch"]).splitlines()
    # The agent's files are its work; what a check made is no one's (see test_check_outcomes).
    assert "sub/file.txt" in listed and "made_by_check/f.txt" not in listed
