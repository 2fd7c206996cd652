"""Snapshots and the warm pool inside real runs: set-up runs once per snapshot, workspaces come
from it (an overlay, or a copy), the pool hands one out and refills in the background."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Project, git

from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

# A virtualenv made by set-up; the check runs through it, at the path set-up saw.
SETUP = f"""
[workspace]
setup = [
    "{sys.executable} -m venv --without-pip --system-site-packages .venv",
    "echo built > .venv/marker",
]
"""
CHECK = ".venv/bin/python -m pytest -q -p no:cacheprovider --junitxml={report}"


def _project(project: Project, extra: str = "") -> Project:
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})])
    project.create(agent, extra=SETUP + extra, files={"requirements.txt": "pytest\n"})
    toml = project.repo / "jackline.toml"
    text = toml.read_text()
    text = text.replace(text.split("command = ", 1)[1].split("\n", 1)[0], json.dumps(CHECK), 1)
    toml.write_text(text)
    git(project.repo, "commit", "-qam", "check through the venv")
    return project


def _workspace_event(project: Project, run_id: str) -> dict:  # type: ignore[type-arg]
    return next(e for e in project.events(run_id) if e["kind"] == "workspace")


def _setups(project: Project, run_id: str) -> int:
    return sum(1 for e in project.events(run_id) if e["kind"] == "command" and e["step"] == "setup")


def test_set_up_runs_once_per_snapshot_and_again_when_its_inputs_change(
    project: Project,
) -> None:
    _project(project)
    first = project.jl_json("run", "Fix add")
    assert first["status"] == "awaiting_review", first
    made = _workspace_event(project, first["id"])
    assert made["method"] in ("overlay", "copy") and made["snapshot"]
    assert _setups(project, first["id"]) == 2  # the cold start built the snapshot

    second = project.jl_json("run", "Fix add again")
    reused = _workspace_event(project, second["id"])
    assert reused["snapshot"] == made["snapshot"]
    assert _setups(project, second["id"]) == 0
    assert (Path(second["workspace"]) / ".venv" / "marker").exists()

    # A source change on main: the workspace catches up, set-up does not run again.
    (project.repo / "README").write_text("calc\n")
    git(project.repo, "add", "README")
    git(project.repo, "commit", "-qm", "readme")
    third = project.jl_json("run", "Fix add, third")
    assert _setups(project, third["id"]) == 0
    assert (Path(third["workspace"]) / "README").exists()

    # A set-up input changes: a new snapshot, set-up again.
    (project.repo / "requirements.txt").write_text("pytest\nruff\n")
    git(project.repo, "commit", "-qam", "a new dependency")
    fourth = project.jl_json("run", "Fix add, fourth")
    assert _setups(project, fourth["id"]) == 2
    assert _workspace_event(project, fourth["id"])["snapshot"] != made["snapshot"]

    # Approved and merged: the workspace (an overlay: unmounted) is removed.
    merged = project.jl_json("approve", second["id"], user="bob")
    assert merged["status"] == "merged"
    assert not os.path.ismount(second["workspace"])
    assert not Path(second["workspace"]).exists()


def test_the_pool_hands_out_a_warm_workspace_and_refills(project: Project) -> None:
    _project(project, extra="\n[pool]\nsize = 1\n")
    warmed = project.jl_json("pool", "warm")
    assert len(warmed) == 1
    status = project.jl_json("pool", "status")
    assert len(status["snapshots"]) == 1 and len(status["warm"]) == 1
    slot = status["warm"][0]

    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    made = _workspace_event(project, run["id"])
    assert made["method"].endswith("+pool")
    assert run["workspace"] == slot["path"]
    assert _setups(project, run["id"]) == 0

    # The run's own process refilled the pool while the agent worked, and waited for that
    # before it ended: no `jackline pool warm` started after it (issue 17).
    warm = project.jl_json("pool", "status")["warm"]
    assert len(warm) == 1 and warm[0]["id"] != slot["id"], warm
    log = (project.home / "logs" / "pool.log").read_text()
    assert f"warm workspace {warm[0]['id']} ready" in log, log

    cleared = project.jl_json("pool", "clear")
    assert len(cleared["warm_removed"]) == 1
    assert project.jl_json("pool", "status")["warm"] == []


def test_the_pool_refills_in_a_thread_of_the_process_that_took_from_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's process refills the pool itself, without a `jackline pool warm` process of its
    own, and does not wait for it until it ends (issue 17)."""
    from jackline.workspaces import pool

    _project(project, extra="\n[pool]\nsize = 2\n")
    monkeypatch.setenv("JACKLINE_HOME", str(project.home))
    root, config, run_setup = pool.setup_for(project.repo)
    assert len(pool.warm(root, config, run_setup)) == 2
    assert pool.take(root, "agent/one") and pool.take(root, "agent/two")
    assert pool.slots(root) == []

    pool.refill_soon(root)
    pool.refill_soon(root)  # asked again while the first is under way: one more pass, no error
    pool.finish_refills()  # the work was this process's: waiting for it saw it done
    assert len(pool.slots(root)) == 2
    assert "failed" not in (project.home / "logs" / "pool.log").read_text()


def test_a_run_refills_the_pool_once_its_agent_starts_or_at_the_latest_when_it_ends(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace a run took is made again once its agent starts, not while the run is on
    its way there (the two met on two cores); a run whose
    agent never starts refills when its process ends, or after `REFILL_LATEST` seconds."""
    from jackline.workspaces import pool

    _project(project, extra="\n[pool]\nsize = 1\n")
    monkeypatch.setenv("JACKLINE_HOME", str(project.home))
    root, config, run_setup = pool.setup_for(project.repo)

    def refilling() -> bool:
        return any(t.name == "pool-refill" and t.is_alive() for t in threading.enumerate())

    assert len(pool.warm(root, config, run_setup)) == 1
    assert pool.take(root, "agent/one")
    pool.refill_after_agent("run-one", root)
    time.sleep(0.3)
    assert not refilling() and pool.slots(root) == []  # its agent has not started
    pool.agent_starting("run-one")
    pool.finish_refills()
    assert len(pool.slots(root)) == 1
    # One that fails before its agent: its process refills as it ends.
    assert pool.take(root, "agent/two")
    pool.refill_after_agent("run-two", root)
    pool.finish_refills()
    assert len(pool.slots(root)) == 1
    # One whose process goes on (a worker): after REFILL_LATEST seconds.
    monkeypatch.setattr(pool, "REFILL_LATEST", 0.2)
    assert pool.take(root, "agent/three")
    pool.refill_after_agent("run-three", root)
    deadline = time.monotonic() + 60
    while len(pool.slots(root)) < 1:
        assert time.monotonic() < deadline, "the owed refill never started"
        time.sleep(0.1)
    pool.finish_refills()


def test_a_failing_set_up_fails_the_run_and_names_the_command(project: Project) -> None:
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})])
    project.create(agent, extra='\n[workspace]\nsetup = ["exit 3"]\n')
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "failed"
    assert "set-up failed" in run["reason"] and "exit 3" in run["reason"]
    assert project.jl_json("pool", "status")["snapshots"] == []
