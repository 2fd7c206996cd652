"""The in-loop guard through real processes.

Claude Code's PreToolUse hook is run as a program and fed the JSON Claude Code sends; the git
wrapper is installed first on PATH of a real workspace, cloned the way the harness clones it from
a real origin, and real git commands go through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from jackline.git import git as harness_git
from jackline.git import gitdir_path, lay_agent_gitdir
from jackline.guard.gitwrap import REFUSED, install_wrapper
from jackline.guard.hook import install_claude_hook
from jackline.guard.policy import GATES, Policy
from jackline.workspaces.clone import CloneProvider

IDENTITY = {
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.com",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.com",
}
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("JACKLINE_POLICY", "CLAUDE_PROJECT_DIR")},
    **IDENTITY,
}
HOOK = [sys.executable, "-m", "jackline.guard.hook"]


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env or ENV
    ).stdout.strip()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace on `agent/x`, cloned from an origin whose main has two (published) commits."""
    origin = tmp_path / "origin"
    git(tmp_path, "init", "-q", "-b", "main", str(origin))
    (origin / "src").mkdir()
    for n, text in enumerate(["one", "two"]):
        (origin / "src" / "app.py").write_text(f"VERSION = {text!r}\n")
        (origin / "jackline.toml").write_text(f"# {text}\n")
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", f"commit {n}")
    workspace = CloneProvider().create(origin, "main", "agent/x", tmp_path / "ws").path
    # What the agent works with: a git directory of its own, laid as before each command.
    lay_agent_gitdir(workspace, gitdir_path(workspace) / "objects")
    Policy("main", ["secret_area/**"], list(GATES), str(workspace)).write(workspace)
    return workspace


def hook(
    ws: Path, tool: str, tool_input: Mapping[str, object], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    event = {
        "session_id": "0b6c3a52-session",
        "transcript_path": str(ws.parent / "transcript.jsonl"),
        "cwd": str(cwd or ws),
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": "toolu_01ABC",
    }
    return run_hook(json.dumps(event), cwd or ws)


def run_hook(stdin: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(HOOK, input=stdin, capture_output=True, text=True, cwd=cwd, env=ENV)


def denied(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] == "deny"
    return str(out["permissionDecisionReason"])


def allowed(proc: subprocess.CompletedProcess[str]) -> None:
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def bash(ws: Path, command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return hook(ws, "Bash", {"command": command, "description": "run it"}, cwd)


def write(ws: Path, path: Path | str) -> subprocess.CompletedProcess[str]:
    return hook(ws, "Write", {"file_path": str(path), "content": "x = 1\n"})


# The hook


def test_hook_denies_writing_gate_config_and_says_what_to_do_instead(ws: Path) -> None:
    reason = denied(write(ws, ws / "jackline.toml"))
    assert "gate configuration" in reason and ".jackline/notes.md" in reason
    edit = {"file_path": str(ws / ".github/workflows/ci.yml"), "old_string": "a", "new_string": "b"}
    assert "gate configuration" in denied(hook(ws, "Edit", edit))


def test_hook_allows_ordinary_writes_by_saying_nothing(ws: Path) -> None:
    allowed(write(ws, ws / "src" / "x.py"))
    allowed(hook(ws, "MultiEdit", {"file_path": str(ws / "src/app.py"), "edits": []}))
    allowed(hook(ws, "NotebookEdit", {"notebook_path": str(ws / "nb.ipynb"), "new_source": ""}))
    allowed(write(ws, ws / ".jackline" / "notes.md"))
    allowed(hook(ws, "Grep", {"pattern": "VERSION"}))


def test_hook_denies_writes_outside_the_workspace_in_scope_or_git_and_the_inbox(
    ws: Path, tmp_path: Path
) -> None:
    assert "outside the workspace" in denied(write(ws, tmp_path / "elsewhere.py"))
    assert "outside the workspace" in denied(write(ws, ws / ".." / "origin" / "src" / "app.py"))
    (tmp_path / "outside").mkdir()
    (ws / "link").symlink_to(tmp_path / "outside")
    assert "outside the workspace" in denied(write(ws, ws / "link" / "x.py"))
    assert "[scope] forbidden" in denied(write(ws, ws / "secret_area" / "keys.txt"))
    inbox = ws / ".jackline" / "run" / "policy.json"
    assert "inbox" in denied(hook(ws, "Edit", {"file_path": str(inbox)}))
    assert "git's own data" in denied(write(ws, ws / ".git" / "config"))
    assert "guard settings" in denied(write(ws, ws / ".claude" / "settings.local.json"))


def test_hook_denies_git_push_and_commits_on_main(ws: Path) -> None:
    assert "only the harness pushes" in denied(bash(ws, "git push origin HEAD"))
    (ws / "sub").mkdir()
    allowed(bash(ws, "cd sub && git commit -m x"))  # on agent/x
    git(ws, "switch", "-q", "main")
    assert "you are on main" in denied(bash(ws, "cd sub && git commit -m x"))
    assert "you are on main" in denied(bash(ws, "git commit -am x", cwd=ws / "sub"))


def test_hook_finds_git_behind_env_sudo_paths_pipes_and_nested_shells(ws: Path) -> None:
    for command in [
        "FOO=1 sudo git -C . push",
        "bash -c 'git push origin HEAD'",
        "echo ok; /usr/bin/git push",
        "git status | cat && git push --force",
        "echo $(git push)",
        "git status\ngit push",
        "cd / && git -C " + str(ws) + " push",
    ]:
        assert "only the harness pushes" in denied(bash(ws, command)), command
    allowed(bash(ws, "git status && git diff | cat; git log --oneline -1 > /tmp/log.txt"))


def test_hook_denies_credential_reads_and_redirections_into_gates(ws: Path) -> None:
    assert "credential" in denied(bash(ws, "cat ~/.ssh/id_rsa"))
    assert "credential" in denied(bash(ws, "cp $HOME/.netrc ."))
    home_aws = os.path.expanduser("~/.aws/credentials")
    assert "credential" in denied(hook(ws, "Read", {"file_path": home_aws}))
    assert "gate configuration" in denied(bash(ws, "echo 'x = 1' >> jackline.toml"))
    allowed(bash(ws, "echo hi > notes.txt 2>&1"))
    allowed(hook(ws, "Read", {"file_path": str(ws / "src" / "app.py")}))


def test_hook_fails_closed_on_malformed_input_or_a_missing_policy(ws: Path, tmp_path: Path) -> None:
    for stdin in ["not json", "[]", json.dumps({"hook_event_name": "PreToolUse"})]:
        proc = run_hook(stdin, ws)
        assert proc.returncode == 2 and proc.stdout == "" and "blocked" in proc.stderr
    proc = hook(ws, "Write", {"content": "no path"})
    assert proc.returncode == 2 and "file_path" in proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = hook(ws, "Write", {"file_path": str(elsewhere / "a.py")}, cwd=elsewhere)
    assert proc.returncode == 2 and "no jackline policy" in proc.stderr


def test_installed_claude_settings_run_the_hook_and_stay_out_of_the_commit(ws: Path) -> None:
    settings = ws / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"permissions": {"allow": ["Bash(ls:*)"]}}))
    install_claude_hook(ws, HOOK)
    assert install_claude_hook(ws, HOOK) == settings
    saved = json.loads(settings.read_text())
    assert saved["permissions"] == {"allow": ["Bash(ls:*)"]}
    [entry] = saved["hooks"]["PreToolUse"]
    assert {"Write", "Edit", "Bash"} <= set(entry["matcher"].split("|"))
    [command] = entry["hooks"]
    assert command["type"] == "command"
    # The settings file is not the agent's work: the harness's git (which commits) ignores it.
    assert harness_git(ws, "status", "--porcelain") == ""
    # Claude Code runs the command through a shell, with the event on stdin.
    write = {"file_path": str(ws / "jackline.toml"), "content": ""}
    event = {
        "hook_event_name": "PreToolUse",
        "cwd": str(ws),
        "tool_name": "Write",
        "tool_input": write,
    }
    proc = subprocess.run(
        command["command"], shell=True, input=json.dumps(event), capture_output=True, text=True
    )
    assert "gate configuration" in denied(proc)


# The git wrapper


@pytest.fixture
def wrapped(ws: Path) -> dict[str, str]:
    """The environment the agent runs in: the wrapper first on PATH."""
    bin_dir = install_wrapper(ws / ".jackline" / "run" / "bin").parent
    return {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}", "GIT_SEQUENCE_EDITOR": "true"}


def agent_git(
    cwd: Path, env: dict[str, str], *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == code, f"git {args}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def agent_commit(ws: Path, env: dict[str, str], text: str) -> str:
    (ws / "src" / "app.py").write_text(text)
    agent_git(ws, env, "commit", "-q", "-am", text)
    return git(ws, "rev-parse", "HEAD")


def test_wrapper_refuses_push_and_origin_stays_untouched(ws: Path, wrapped: dict[str, str]) -> None:
    agent_commit(ws, wrapped, "work")
    refused = agent_git(ws, wrapped, "push", "origin", "HEAD", code=REFUSED)
    assert "only the harness pushes" in refused.stderr
    agent_git(ws, wrapped, "push", "origin", "HEAD:main", code=REFUSED)
    agent_git(ws, wrapped, "config", "alias.pu", "push")
    agent_git(ws, wrapped, "pu", code=REFUSED)
    origin = ws.parent / "origin"
    assert git(origin, "branch", "--list", "agent/*") == ""
    assert git(origin, "rev-parse", "main") == git(ws, "rev-parse", "origin/main")


def test_wrapper_refuses_commits_on_main(ws: Path, wrapped: dict[str, str]) -> None:
    agent_git(ws, wrapped, "switch", "-q", "main")
    before = git(ws, "rev-parse", "HEAD")
    (ws / "src" / "app.py").write_text("changed\n")
    refused = agent_git(ws, wrapped, "commit", "-am", "on main", code=REFUSED)
    assert "you are on main" in refused.stderr and "agent/*" in refused.stderr
    agent_git(ws, wrapped, "cherry-pick", "HEAD", code=REFUSED)
    assert git(ws, "rev-parse", "HEAD") == before


def test_wrapper_refuses_hard_reset_to_a_remote_ref(ws: Path, wrapped: dict[str, str]) -> None:
    work = agent_commit(ws, wrapped, "work")
    for target in ["origin/main", "@{u}", "refs/remotes/origin/main~1"]:
        refused = agent_git(ws, wrapped, "reset", "--hard", target, code=REFUSED)
        assert "throw away the work" in refused.stderr and "git restore" in refused.stderr
    assert git(ws, "rev-parse", "HEAD") == work
    agent_git(ws, wrapped, "reset", "-q", "--soft", "HEAD~1")  # unpublished: the agent's own


def test_wrapper_refuses_amending_a_published_commit_but_amends_unpublished_work(
    ws: Path, wrapped: dict[str, str]
) -> None:
    base = git(ws, "rev-parse", "HEAD")
    refused = agent_git(ws, wrapped, "commit", "--amend", "-m", "rewritten", code=REFUSED)
    assert "already published" in refused.stderr and "git revert" in refused.stderr
    assert git(ws, "rev-parse", "HEAD") == base
    mine = agent_commit(ws, wrapped, "work")
    agent_git(ws, wrapped, "commit", "-q", "--amend", "-m", "better message")
    assert git(ws, "rev-parse", "HEAD") != mine
    assert git(ws, "log", "-1", "--format=%s") == "better message"
    assert git(ws, "rev-parse", "HEAD~1") == base


def test_wrapper_refuses_rebase_over_published_commits(ws: Path, wrapped: dict[str, str]) -> None:
    first = agent_commit(ws, wrapped, "work 1")
    work = agent_commit(ws, wrapped, "work 2")
    refused = agent_git(ws, wrapped, "rebase", "-i", "HEAD~3", code=REFUSED)
    assert "already published" in refused.stderr
    agent_git(ws, wrapped, "rebase", "--root", code=REFUSED)
    assert git(ws, "rev-parse", "HEAD") == work
    agent_git(ws, wrapped, "rebase", "-q", "-i", "origin/main")  # only the agent's own commits
    agent_git(ws, wrapped, "reset", "-q", "--hard", first)  # drops only unpublished work


def test_ordinary_git_on_the_agent_branch_works_normally(ws: Path, wrapped: dict[str, str]) -> None:
    (ws / "src" / "new.py").write_text("NEW = 1\n")
    assert "new.py" in agent_git(ws, wrapped, "status", "--short").stdout
    agent_git(ws, wrapped, "add", "src/new.py")
    agent_git(ws, wrapped, "commit", "-q", "-m", "add new")
    assert agent_git(ws, wrapped, "-C", "src", "log", "-1", "--format=%s").stdout == "add new\n"
    agent_git(ws, wrapped, "branch", "scratch")
    agent_git(ws, wrapped, "branch", "-D", "scratch")
    assert git(ws, "symbolic-ref", "--short", "HEAD") == "agent/x"


def test_wrapper_refuses_moving_or_deleting_published_branches(
    ws: Path, wrapped: dict[str, str]
) -> None:
    agent_git(ws, wrapped, "branch", "-D", "main", code=REFUSED)
    agent_git(ws, wrapped, "branch", "-f", "main", "HEAD", code=REFUSED)
    agent_git(ws, wrapped, "branch", "-rd", "origin/main", code=REFUSED)
    agent_git(ws, wrapped, "update-ref", "refs/remotes/origin/main", "HEAD", code=REFUSED)
    agent_git(ws, wrapped, "config", "core.hooksPath", "/tmp/hooks", code=REFUSED)
    agent_git(ws, wrapped, "remote", "set-url", "origin", "/elsewhere", code=REFUSED)
    assert agent_git(ws, wrapped, "config", "remote.origin.url").stdout.strip()


def test_wrapper_leaves_other_repositories_alone(ws: Path, wrapped: dict[str, str]) -> None:
    scratch = ws / "build" / "scratch"  # a repository a test suite makes, inside the workspace
    agent_git(ws, wrapped, "init", "-q", "-b", "main", str(scratch))
    (scratch / "a.txt").write_text("a\n")
    agent_git(scratch, wrapped, "add", "a.txt")
    agent_git(scratch, wrapped, "commit", "-q", "-m", "a test suite's own repository")
    agent_git(scratch, wrapped, "commit", "-q", "--amend", "-m", "amended")
    agent_git(scratch, wrapped, "-C", str(ws), "push", code=REFUSED)


def test_wrapper_start_up_imports_only_the_standard_library_and_the_policy(
    ws: Path, wrapped: dict[str, str]
) -> None:
    env = {**wrapped, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = agent_git(ws, env, "-C", ".", "status", "--short")  # global options: through Python
    imported = {
        line.split("|")[-1].strip(): int(line.split("|")[0].removeprefix("import time:"))
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "cumulative" not in line
    }
    stdlib = sys.stdlib_module_names | {"org"}  # `copy` probes for Jython's org.python.core
    ours = {m for m in imported if m.split(".")[0] not in stdlib}
    assert ours == {"jackline", "jackline.guard", "jackline.guard.gitwrap", "jackline.guard.policy"}
    print(f"\nwrapper imports: {len(imported)} modules, {sum(imported.values()) / 1000:.1f} ms")


def test_wrapper_overhead_on_git_status(ws: Path, wrapped: dict[str, str]) -> None:
    def mean_ms(env: dict[str, str], *args: str, n: int = 20) -> float:
        agent_git(ws, env, *args)
        start = time.perf_counter()
        for _ in range(n):
            agent_git(ws, env, *args)
        return (time.perf_counter() - start) / n * 1000

    real = mean_ms(ENV, "status", "--short")
    fast = mean_ms(wrapped, "status", "--short")
    slow = mean_ms(wrapped, "-C", ".", "status", "--short")
    print(
        f"\ngit status: real {real:.1f} ms; wrapped {fast:.1f} ms (+{fast - real:.1f}); "
        f"with a global option, through Python, {slow:.1f} ms (+{slow - real:.1f})"
    )
