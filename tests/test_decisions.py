"""Decisions: each returns once the run's workflow is done with it; eight approvals at once all
land on the newest main; a branch that conflicts with a main that moved gets a round on it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import PLAYS_SEVERAL_PEOPLE, Project, git, spawn

from jackline.testing import Replace, Round, ScriptedAgent

FIX = Round(edits={"calc.py": Replace("a - b", "a + b")})


def operations(project: Project, run_id: str) -> tuple[str, list[str]]:
    """The run's workflow as the engine keeps it: its status, and the names of its recorded
    operations in order (steps, and DBOS.recv / DBOS.sleep for a wait for a decision)."""
    db = sqlite3.connect(project.home / "engine.db")
    (status,) = db.execute(
        "SELECT status FROM workflow_status WHERE workflow_uuid = ?", (run_id,)
    ).fetchone()
    names = [
        name
        for (name,) in db.execute(
            "SELECT function_name FROM operation_outputs WHERE workflow_uuid = ? "
            "ORDER BY function_id",
            (run_id,),
        )
    ]
    db.close()
    return status, names


def waits_for_a_decision(project: Project, run_id: str, handoffs: int) -> bool:
    """The workflow has written its `handoffs`-th handoff and rests, waiting for a decision:
    the last thing it recorded is that it rests (the event the deciding process returns on),
    or the wait's timer after it; every decision before was taken. (The process ends as soon
    as it sees the workflow rest, without waiting for its threads: the timer may not be
    written, and the next decision's replay writes it.)"""
    status, names = operations(project, run_id)
    return (
        status == "PENDING"
        and names.count("handoff_step") == handoffs
        and names.count("DBOS.recv") == handoffs - 1
        and names[-1] in ("DBOS.setEvent", "DBOS.sleep")
    )


@contextmanager
def slack_that_holds_the_engine(home: Path, seconds: float) -> Iterator[str]:
    """A Slack Web API on loopback that, each time it is told of a run, holds the engine's
    database for `seconds` before letting go: the step that told it has set the run's status,
    and its own last write into the engine waits. A decision that returned on the status would
    return now, and its process exit under that write."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            db = sqlite3.connect(home / "engine.db", isolation_level=None, check_same_thread=False)
            db.execute("BEGIN IMMEDIATE")
            threading.Timer(seconds, lambda: (db.execute("COMMIT"), db.close())).start()
            body = json.dumps({"ok": True, "channel": "C0REVIEW", "ts": "1.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()


def test_a_decision_returns_once_the_workflow_is_done_with_it(project: Project) -> None:
    again = Round(edits={"calc.py": Replace("return a + b", "return b + a")})
    with slack_that_holds_the_engine(project.home, seconds=2) as api_url:
        project.env.update(TEST_SLACK_TOKEN="xoxb-test", TEST_SLACK_SIGNING="s3cr3t-signing")
        slack = (
            '\n[surfaces.slack]\nsigning_secret = "env:TEST_SLACK_SIGNING"\n'
            f'bot_token = "env:TEST_SLACK_TOKEN"\nchannel = "C0REVIEW"\napi_url = "{api_url}"\n'
        )
        project.create(ScriptedAgent([FIX, again]), extra=slack)
        run = project.jl_json("run", "Fix add")
        assert run["status"] == "awaiting_review"
        assert waits_for_a_decision(project, run["id"], handoffs=1)
        sent = project.jl_json("request-changes", run["id"], "--as", "bob", "-m", "Swap them")
        assert sent["status"] == "awaiting_review"
        assert waits_for_a_decision(project, run["id"], handoffs=2)
        done = project.jl_json("approve", run["id"], "--as", "bob")
    assert done["status"] == "merged"
    status, names = operations(project, run["id"])
    assert status == "SUCCESS" and names[-1] == "finish_step"
    assert not Path(run["workspace"]).exists()
    pending = sqlite3.connect(project.home / "engine.db").execute(
        "SELECT workflow_uuid FROM workflow_status WHERE status IN ('PENDING', 'ENQUEUED')"
    )
    assert pending.fetchall() == []


# eight at once ------------------------------------------------------------------------------

NOTE_AGENT = """#!/bin/sh
# Writes a file of its own, named after the task, so that eight runs change eight files.
name=$( { printf '%s\n' "$1"; cat "$JACKLINE_BRIEF"; } | grep -o 'Note [0-9]*' | head -n 1 | tr ' ' '-')
echo "written for $name" > "$name.txt"
"""

QUICK = """\
[project]
main = "main"

[checks.present]
command = "test -f calc.py"

[blueprint]
max_rounds = 1

[sandbox]
readable = [{script}]

[agents.default]
command = [{script}, "{{prompt}}"]
"""


def home_processes(home: Path) -> list[int]:
    """Processes whose environment names this test's JACKLINE_HOME: jackline and its children."""
    mark = f"JACKLINE_HOME={home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if mark in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_eight_approvals_at_once_all_land_and_every_process_returns(project: Project) -> None:
    script = project.root / "agent.sh"
    script.write_text(NOTE_AGENT)
    script.chmod(0o755)
    config = QUICK.format(script=json.dumps(str(script))) + PLAYS_SEVERAL_PEOPLE
    project.init({"jackline.toml": config})
    # One process submits all eight and exits leaving them waiting: their workflows belong to
    # one dead executor, the case where taking one over used to take over all eight.
    submit = (
        "from pathlib import Path\n"
        "from jackline import api, cli, engine\n"
        "ids = [api.submit(f'Note {i}', Path('.'), wait=False).id for i in range(8)]\n"
        "engine.drive(ids)\n"
        "print(' '.join(ids))\n"
        "cli._exit(0)\n"
    )
    made = subprocess.run(
        [sys.executable, "-c", submit],
        cwd=project.repo,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    ids = made.stdout.split()
    assert [project.jl_json("show", i)["status"] for i in ids] == ["awaiting_review"] * 8
    started = time.monotonic()
    # Eight processes of their own, forked (`spawn`: the same command without a second of
    # imports each).
    logs = [project.root / f"approve-{n}.log" for n in range(len(ids))]
    deciders = [
        spawn(
            ["approve", run_id, "--as", f"reviewer{n}", "--json"],
            project.repo,
            {**project.env, "JACKLINE_USER": f"reviewer{n}"},
            logs[n],
        )
        for n, run_id in enumerate(ids)
    ]
    codes = []
    try:
        for p in deciders:
            codes.append(p.wait(timeout=max(1.0, 240 - (time.monotonic() - started))))
    finally:
        for p in deciders:
            p.kill()  # only those still running: one that did not return fails the test above
    for code, log in zip(codes, logs, strict=True):
        out = log.read_text()
        assert code == 0, out
        assert json.loads(out)["status"] == "merged", out
    merges = git(project.repo, "rev-list", "--merges", "main").split()
    assert len(merges) == 8
    assert git(project.repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert len(list(project.repo.glob("Note-*.txt"))) == 8
    assert home_processes(project.home) == []


# a conflict --------------------------------------------------------------------------------


def test_a_branch_that_conflicts_with_a_moved_main_gets_a_round_on_it(project: Project) -> None:
    resolve = Round(
        commands=[
            # The round starts on the newest main with the conflict marked in the file.
            "grep -q '^<<<<<<<' calc.py && grep -q 'on main' calc.py && "
            "printf 'def add(a, b):\\n    return a + b  # both\\n' > calc.py"
        ]
    )
    project.create(ScriptedAgent([FIX, resolve]))
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review"
    calc = project.repo / "calc.py"
    calc.write_text(calc.read_text().replace("return a - b", "return a + b  # fixed on main"))
    git(project.repo, "commit", "-q", "-am", "Fix add on main")
    refused = project.jl("approve", run["id"], "--as", "bob", ok=False)
    said = " ".join((refused.stdout + refused.stderr).split())  # however the terminal wraps
    shown = project.jl_json("show", run["id"])
    assert shown["status"] == "awaiting_review"
    for told in (said, shown["reason"]):  # the refusal names the file and the way forward
        assert "conflicts with it in calc.py" in told, told
        assert f"`jackline request-changes {run['id']} -m TEXT` gives the agent a round" in told
    assert git(project.repo, "log", "-1", "--format=%s", "main") == "Fix add on main"

    sent = project.jl_json("request-changes", run["id"], "--as", "bob", "-m", "Merge with main")
    assert sent["status"] == "awaiting_review", sent
    feedback = (project.home / "runs" / run["id"] / "round-2" / "feedback.md").read_text()
    assert "main moved" in feedback and "calc.py" in feedback and "Merge with main" in feedback
    main_tip = git(project.repo, "rev-parse", "main")
    assert git(project.repo, "rev-parse", f"{run['branch']}~1") == main_tip

    done = project.jl_json("approve", run["id"], "--as", "bob")
    assert done["status"] == "merged", done
    assert calc.read_text() == "def add(a, b):\n    return a + b  # both\n"
    assert git(project.repo, "status", "--porcelain") == ""
