"""Scans inside a real run: secrets stop the run before commit, and block-level findings need
an owner's approval. The CLI runs as a real process against real git repositories."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
from pathlib import Path

from conftest import Project, git

from jackline.testing import Replace, Round, ScriptedAgent


def _token(prefix: str, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def _objects(repo: Path) -> bytes:
    """Every object in the repository, uncompressed: where a committed secret would be."""
    return subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout


REDACTION_LIST = "found-secrets.json"
"""The run's list of values to redact (mode 0600, in the run's folder): the one stored file
meant to hold them."""


def _stored_files(home: Path, workspace: Path) -> list[Path]:
    return [
        p
        for p in home.rglob("*")
        if p.is_file()
        and p.name != REDACTION_LIST
        and workspace not in p.parents
        and p != workspace
        and not p.name.startswith(workspace.name)  # the workspace's git directory, beside it
    ]


def test_a_planted_secret_blocks_the_run_and_no_stored_byte_holds_it(project: Project) -> None:
    aws = _token("AKIA", 16, string.ascii_uppercase + string.digits)
    github = _token("ghp_", 36)
    printed = _token("ghp_", 36)  # only ever printed by a command the agent runs
    reference = "plum-orbit-cascade-" + _token("", 8, string.digits)
    agent = ScriptedAgent(
        [
            Round(
                edits={
                    "calc.py": Replace("a - b", "a + b"),
                    "settings_local.py": f'AWS_KEY = "{aws}"\nGITHUB = "{github}"\n',
                    "notes/where.txt": f"the shop key is {reference}\n",
                },
                commands=[
                    f"echo 'curl -H \"Authorization: token {printed}\" https://api.github.com'",
                    f"echo using $SHOP_API_KEY and {github}",
                ],
                message=f"done; I used {aws} to test",
                notes=f"- Put the key {github} in settings_local.py.\n",
            )
        ]
    )
    project.create(agent, agent_extra='secrets = { SHOP_API_KEY = "env:SHOP_API_KEY" }\n')
    project.env["SHOP_API_KEY"] = reference

    done = project.jl("run", "Fix add", "--json", ok=False)
    run = json.loads(done.stdout)
    assert run["status"] == "blocked", done.stderr
    assert "secret" in run["reason"]
    assert run["head_sha"] is None, "nothing may be committed"

    # The handoff names file and line, with the value masked.
    handoff = Path(run["handoff"]).read_text()
    assert "settings_local.py:1" in handoff and "settings_local.py:2" in handoff
    assert "notes/where.txt:1" in handoff
    assert f"{aws[:4]}…[20 chars]" in handoff
    assert "Blocked" in handoff

    # The workspace is kept for a person; nothing reached the user's repository.
    workspace = Path(run["workspace"])
    assert (workspace / "settings_local.py").exists()
    assert git(project.repo, "branch", "--list", "agent/*") == ""
    objects = _objects(project.repo)
    values = [aws, github, printed, reference]
    for value in values:
        assert value.encode() not in objects, f"{value[:6]} is in the repository's objects"
        for path in _stored_files(project.home, workspace):
            assert value.encode() not in path.read_bytes(), f"{value[:6]}… is in {path}"
    logs = project.jl("logs", run["id"]).stdout
    assert not any(v in logs for v in values)
    assert "redacted" in (project.home / "runs" / run["id"] / "round-1" / "agent.log").read_text()

    # A blocked run waits for a decision: `jackline reject` closes it and removes the kept
    # workspace; the run's record stays.
    rejected = project.jl("reject", run["id"], "--json", ok=False)
    assert json.loads(rejected.stdout)["status"] == "rejected", rejected.stderr
    assert not workspace.exists()
    assert project.jl_json("show", run["id"])["status"] == "rejected"


def test_a_gate_edit_needs_an_owner_to_approve(project: Project) -> None:
    agent = ScriptedAgent(
        [
            Round(
                edits={
                    "calc.py": Replace("a - b", "a + b"),
                    ".github/workflows/ci.yml": "on: push\njobs: {}\n",
                }
            )
        ]
    )
    project.create(agent, extra='\n[review]\nowners = ["carol"]\nallow_as = true\n')
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review"
    assert run["blocking"] == 1

    shown = project.jl_json("show", run["id"])
    gate = [f for f in shown["findings"] if f["rule"] == "scope.gate"]
    assert gate and gate[0]["file"] == ".github/workflows/ci.yml" and gate[0]["level"] == "block"
    handoff = Path(run["handoff"]).read_text()
    assert handoff.index("**block** scope.gate") < handoff.index("## Where to look twice")
    assert "Needs an owner" in handoff
    listing = project.jl("runs").stdout
    assert "1 block" in listing

    refused = project.jl("approve", run["id"], user="bob", ok=False)
    assert refused.returncode == 1
    assert "bob is not an owner" in refused.stderr and "carol" in refused.stderr
    assert "scope.gate .github/workflows/ci.yml" in refused.stderr
    assert project.jl_json("show", run["id"])["status"] == "awaiting_review"

    merged = project.jl_json("approve", run["id"], user="carol")
    assert merged["status"] == "merged"
    assert (project.repo / ".github" / "workflows" / "ci.yml").exists()


def test_clean_refuses_a_live_run_and_says_what_it_would_remove(project: Project) -> None:
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a * b")})])
    project.create(agent)
    failed = project.jl_json("run", "Fix add")
    assert failed["status"] == "failed"
    dry = project.jl_json("clean", "--dry-run")
    assert [d["run"] for d in dry] == [failed["id"]]
    assert Path(failed["workspace"]).exists()
    passing = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})])
    passing.save(project.root / "agent.json")
    live = project.jl_json("run", "Fix add again")
    assert live["status"] == "awaiting_review"
    refused = project.jl("clean", live["id"], ok=False)
    assert refused.returncode == 1 and "still needs its workspace" in refused.stderr
    project.jl("clean")
    assert not Path(failed["workspace"]).exists()
    assert Path(live["workspace"]).exists()


def test_removed_guards_are_quoted_under_look_twice_and_git_push_is_refused(
    project: Project,
) -> None:
    agent = ScriptedAgent(
        [
            Round(
                edits={
                    "calc.py": Replace("a - b", "a + b  # noqa: E501"),
                    "test_calc.py": Replace("    assert add(2, 3) == 5\n", "    add(2, 3)\n"),
                },
                commands=[
                    "git push origin HEAD:refs/heads/main",
                    "git checkout -q main && git commit -q --allow-empty -m sneaky; "
                    "git checkout -q -",
                ],
            )
        ]
    )
    project.create(agent)
    main_before = git(project.repo, "rev-parse", "main")
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review"
    assert run["blocking"] == 0 and run["warnings"] == 2

    handoff = Path(run["handoff"]).read_text()
    look_twice = handoff[handoff.index("## Where to look twice") :]
    assert "guard.assert-removed" in look_twice
    assert "assert add(2, 3) == 5" in look_twice
    findings = {f["rule"] for f in project.jl_json("show", run["id"])["findings"]}
    assert {"guard.assert-removed", "suppression.noqa"} <= findings

    # The wrapper on the agent's PATH refused both, and said why, in the agent's log.
    log = (project.home / "runs" / run["id"] / "round-1" / "agent.log").read_text()
    assert "only the harness pushes" in log
    assert "you are on main" in log.lower() or "on main" in log
    assert git(project.repo, "rev-parse", "main") == main_before
    assert "sneaky" not in git(project.repo, "log", "--all", "--format=%s")


def test_a_secret_the_agent_committed_and_deleted_reaches_no_repository(project: Project) -> None:
    # The agent's git commands run against a git directory the harness does not use, so its own
    # commits never reach the branch the harness commits, pushes and merges.
    aws = _token("AKIA", 16, string.ascii_uppercase + string.digits)
    commit = "git -c user.name=agent -c user.email=agent@example.com commit -q"
    agent = ScriptedAgent(
        [
            Round(
                edits={"calc.py": Replace("a - b", "a + b")},
                commands=[
                    f"echo 'KEY = \"{aws}\"' > leak.py && git add leak.py && {commit} -m leak",
                    f"git rm -q leak.py && {commit} -m 'remove the key'",
                ],
            )
        ]
    )
    project.create(agent)
    run = project.jl_json("run", "Fix add")
    workspace = Path(run["workspace"])
    assert not (workspace / "leak.py").exists()
    harness_git = workspace.with_name(workspace.name + ".git")
    for repo in (project.repo, harness_git):
        assert "leak" not in git(repo, "log", "--all", "--format=%s")
        assert aws.encode() not in _objects(repo)
