"""`jackline worker`: the scheduled pool refresh, in a real process, surviving `kill -9`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Project, git

from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

SCHEDULED = """
[workspace]
setup = ["echo built > built.txt"]

[pool]
size = 1
refresh_every = "2s"
"""


def _worker(project: Project, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jackline", "worker"],
        cwd=project.repo,
        env={**project.env, "JACKLINE_USER": "alice"},
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _snapshot_of(project: Project, commit: str, within: float = 60) -> dict:  # type: ignore[type-arg]
    deadline = time.time() + within
    while time.time() < deadline:
        status = project.jl_json("pool", "status")
        for snap in status["snapshots"]:
            if snap["commit"] == commit and status["warm"]:
                return snap  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"no snapshot of {commit[:10]} with a warm workspace in {within}s")


def _commit(project: Project, text: str) -> str:
    (project.repo / "notes.txt").write_text(text)
    git(project.repo, "add", "notes.txt")
    git(project.repo, "commit", "-qm", f"notes: {text}")
    return git(project.repo, "rev-parse", "HEAD")


def test_the_worker_keeps_the_snapshot_fresh_and_survives_kill_9(
    project: Project, tmp_path: Path
) -> None:
    project.create(ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})]))
    (project.repo / "jackline.toml").write_text(
        (project.repo / "jackline.toml").read_text() + SCHEDULED
    )
    git(project.repo, "commit", "-qam", "schedule the pool refresh")
    first = _worker(project, tmp_path / "worker-1.log")
    try:
        _snapshot_of(project, git(project.repo, "rev-parse", "HEAD"))
        moved = _commit(project, "main moved")
        _snapshot_of(project, moved)  # no one ran `pool refresh`: the schedule did
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    said = (tmp_path / "worker-1.log").read_text()
    assert "pool" in said and "started" in said, said

    second = _worker(project, tmp_path / "worker-2.log")
    try:
        moved = _commit(project, "moved again")
        _snapshot_of(project, moved)
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(timeout=30)
    said = (tmp_path / "worker-2.log").read_text()
    # The loop the killed worker ran is taken over, not started a second time.
    assert "resumed" in said, said
    assert code == 0, said
    project.jl_json("pool", "clear")


def test_a_worker_with_nothing_scheduled_says_so(project: Project) -> None:
    project.create(ScriptedAgent([]))
    done = project.jl("worker")
    assert "Nothing is scheduled" in done.stdout
