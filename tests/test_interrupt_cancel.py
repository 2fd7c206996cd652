"""Interrupting, cancelling and stranded runs, with real processes: Ctrl-C (SIGINT) on
`jackline run`, `jackline cancel` on a run another process drives, cancel through the HTTP API,
a `jackline run` killed between its run record and its workflow, a workflow that errors in a
server."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project
from test_server_api import Server, start_server, stop_server

from jackline.testing import Replace, Round, ScriptedAgent

MARKER = ".jackline/run/first-attempt"
# The first attempt of round 1 sleeps (until it is interrupted or cancelled); a retried round
# finds the marker (inside the inbox folder, which a retried round's restore leaves alone).
SLOW_ONCE = Round(
    edits={"calc.py": Replace("a - b", "a + b")},
    commands=[f"if [ ! -e {MARKER} ]; then touch {MARKER}; sleep 120; fi"],
)


def background_run(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jackline", "run", "Fix add", *args],
        cwd=project.repo,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=ctrl_c_heard,
    )


def ctrl_c_heard() -> None:
    """In the child: SIGINT as a terminal's Ctrl-C finds it. A suite started in the background
    by a shell (`pytest &`) runs with SIGINT ignored, which every child inherits: the run would
    never hear the interrupt the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_agent(project: Project, proc: subprocess.Popen[str] | None = None) -> str:
    """The run id, once its agent has started its slow first attempt."""
    deadline = time.time() + 60
    while not list(project.home.glob(f"workspaces/*/{MARKER}")):
        assert time.time() < deadline, "the agent never started"
        assert proc is None or proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    return only_run(project)


def only_run(project: Project) -> str:
    db = sqlite3.connect(project.home / "jackline.db")
    (run_id,) = db.execute("SELECT id FROM runs").fetchone()
    db.close()
    return str(run_id)


def agent_pid(project: Project, run_id: str) -> int:
    return int((project.home / "runs" / run_id / "round-1" / "agent.pid").read_text())


def gone(pid: int, within: float = 15) -> bool:
    """Whether the process has ended (exited and reaped, or a zombie) within `within` seconds."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_on_run_names_the_run_and_resume_finishes_it(project: Project) -> None:
    project.create(ScriptedAgent([SLOW_ONCE]))
    proc = background_run(project)
    run_id = wait_for_agent(project, proc)
    pid = agent_pid(project, run_id)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"jackline resume {run_id}" in stderr
    assert f"jackline cancel {run_id}" in stderr
    assert gone(pid), "the agent outlived the interrupted run"
    listed = {r["id"]: r["status"] for r in project.jl_json("runs")}
    assert listed[run_id] == "interrupted"
    assert project.jl_json("show", run_id)["status"] == "interrupted"
    assert "interrupted" in project.jl("show", run_id).stdout
    assert "is interrupted" in project.jl("logs", run_id, "--follow").stderr  # it does not wait
    resumed = project.jl_json("resume", run_id)
    assert [r["status"] for r in resumed] == ["awaiting_review"]
    assert project.jl_json("show", run_id)["status"] == "awaiting_review"


def test_cancel_kills_the_agent_of_a_run_another_process_drives(project: Project) -> None:
    project.create(ScriptedAgent([SLOW_ONCE]))
    proc = background_run(project, "--json")
    run_id = wait_for_agent(project, proc)
    pid = agent_pid(project, run_id)
    done = project.jl_json("cancel", run_id, "-m", "wrong task", user="bob")
    assert done["status"] == "cancelled"
    assert gone(pid), "the agent still runs after cancel"
    proc.communicate(timeout=60)  # the process that drove it lets go
    shown = project.jl_json("show", run_id)
    assert shown["status"] == "cancelled"
    assert shown["workspace"] and Path(shown["workspace"]).is_dir()  # kept for a person
    assert "cancelled" in Path(shown["handoff"]).read_text()
    (cancelled,) = project.events_by_kind(run_id)["cancelled"]
    assert cancelled["by"] == "bob" and cancelled["message"] == "wrong task"
    refused = project.jl("resume", run_id, ok=False)
    assert refused.returncode != 0 and "cancelled" in refused.stderr
    assert project.jl_json("resume") == []
    again = project.jl("cancel", run_id, ok=False)
    assert again.returncode == 1 and "nothing to cancel" in again.stderr


@pytest.fixture
def served(project: Project) -> Iterator[Server]:
    project.create(ScriptedAgent([SLOW_ONCE]))
    server = start_server(project)
    yield server
    stop_server(server)


def test_cancel_through_the_api_needs_a_reviewers_token_and_records_who(
    served: Server, project: Project
) -> None:
    # `jackline --server URL run` follows the run the server drives; Ctrl-C stops following.
    following = subprocess.Popen(
        [sys.executable, "-m", "jackline", "--server", served.url, "run", "Fix add"],
        cwd=project.repo,
        env={**project.env, "JACKLINE_TOKEN": served.tokens["alice"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=ctrl_c_heard,
    )
    run_id = wait_for_agent(project, following)
    pid = agent_pid(project, run_id)
    following.send_signal(signal.SIGINT)
    _, stderr = following.communicate(timeout=60)
    assert following.returncode == 130, stderr
    assert f"Stopped following {run_id}; it goes on on the server" in stderr
    assert served.call("vera", "GET", f"/api/runs/{run_id}").json()["status"] == "running"
    assert served.call(None, "POST", f"/api/runs/{run_id}/cancel", json={}).status_code == 401
    assert served.call("vera", "POST", f"/api/runs/{run_id}/cancel", json={}).status_code == 403
    # The CLI's remote mode: the server records the token's person.
    remote = subprocess.run(
        [sys.executable, "-m", "jackline", "--server", served.url, "cancel", run_id, "--json"],
        cwd=project.repo,
        env={**project.env, "JACKLINE_TOKEN": served.tokens["bob"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert remote.returncode == 0, remote.stderr
    assert '"cancelled"' in remote.stdout
    assert gone(pid)
    shown = served.call("vera", "GET", f"/api/runs/{run_id}").json()
    assert shown["status"] == "cancelled"
    assert [e["by"] for e in project.events_by_kind(run_id)["cancelled"]] == ["bob"]


def test_a_run_killed_before_its_workflow_started_is_finished_by_resume(
    project: Project,
) -> None:
    project.create(ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})]))
    # The engine's database held locked: `jackline run` writes its run record, then waits for
    # the engine, and is killed there (a crash between the record and the workflow).
    project.home.mkdir(parents=True, exist_ok=True)
    lock = sqlite3.connect(project.home / "engine.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    proc = background_run(project, "--json")
    deadline = time.time() + 60
    while True:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        if (project.home / "jackline.db").exists():
            db = sqlite3.connect(project.home / "jackline.db")
            try:
                found = db.execute("SELECT id FROM runs").fetchall()
            except sqlite3.OperationalError:
                found = []
            db.close()
            if found:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    lock.execute("ROLLBACK")
    lock.close()
    run_id = only_run(project)
    assert project.jl_json("show", run_id)["status"] in ("queued", "interrupted")
    resumed = project.jl_json("resume")
    assert [(r["id"], r["status"]) for r in resumed] == [(run_id, "awaiting_review")]
    assert project.jl_json("resume") == []


def test_a_workflow_that_errors_in_a_server_fails_its_run_with_the_error(
    project: Project,
) -> None:
    # Unsandboxed, the agent reaches the harness's git directory beside its workspace and
    # removes it: the next step that asks git fails, an error and not an outcome.
    vandal = Round(edits={"calc.py": Replace("a - b", "a + b")}, commands=['rm -rf "$PWD.git"'])
    project.create(ScriptedAgent([vandal]), extra='\n[sandbox]\nmode = "none"\n')
    server = start_server(project)
    try:
        created = server.call("alice", "POST", "/api/runs", json={"task": "Fix add"})
        run_id = created.json()["id"]
        deadline = time.time() + 120
        while (run := server.call("vera", "GET", f"/api/runs/{run_id}").json())["status"] in (
            "queued",
            "running",
        ):
            assert time.time() < deadline, "the run never stopped"
            time.sleep(0.2)
    finally:
        stop_server(server)
    assert run["status"] == "failed"
    # The exception's type and message, never DBOS's pickle of it.
    assert re.match(r"^\w+: \S", run["reason"]), run["reason"]
    assert "gAS" not in run["reason"]
    assert run["handoff"] and "failed" in Path(run["handoff"]).read_text()
