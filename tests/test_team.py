"""Team mode on one machine: runs enqueued by whoever submits them, workers (real processes, real
DBOS on SQLite, one database) that take them, and the death of a worker (`kill -9`): a live
worker takes its work over within the heartbeat's bound, and every run and release finishes
exactly once. The workers share one workspace root here (one JACKLINE_HOME): a worker taking
over a run whose workspace is on another machine is a part of its own (rebuilding it)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, git

from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.real_cli

BEAT = 0.5
DEAD_AFTER = 5.0
"""Shortened bounds (the defaults are 5 s and 30 s): a dead worker's work moves within ~6 s."""
FIX = Round(edits={"calc.py": Replace("a - b", "a + b")}, message="fixed add")


def team(project: Project) -> Project:
    """Every command of the test in team mode, on the project's one database."""
    project.env.update(
        JACKLINE_DATABASE_URL=f"sqlite:///{project.home / 'engine.db'}",
        JACKLINE_BEAT_SECONDS=str(BEAT),
        JACKLINE_DEAD_AFTER_SECONDS=str(DEAD_AFTER),
    )
    return project


class Worker:
    """`jackline worker` as a process of its own, its output in a log file."""

    def __init__(self, project: Project, log: Path, *args: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jackline", "worker", *args],
            cwd=project.repo,
            env=project.env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.id = ""
        deadline = time.monotonic() + 60
        while not self.id:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.said
            for line in self.said.splitlines():
                if line.startswith("Worker "):
                    self.id = line.split()[1]
            time.sleep(0.05)

    @property
    def said(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@contextlib.contextmanager
def workers(project: Project, tmp_path: Path, count: int, *args: str) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for i in range(count):
            started.append(Worker(project, tmp_path / f"worker-{i}.log", *args))
        yield started
    finally:
        for w in started:
            with contextlib.suppress(Exception):
                w.stop()
            if w.proc.poll() is None:
                w.proc.kill()


def until(what: Callable[[], Any], within: float = 120, step: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while not (found := what()):
        assert time.monotonic() < deadline, f"waited {within}s"
        time.sleep(step)
    return found


def status(project: Project, run_id: str) -> str:
    db = sqlite3.connect(project.home / "jackline.db")
    try:
        [(found,)] = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,))
    finally:
        db.close()
    return str(found)


def executor_of(project: Project, run_id: str) -> str:
    db = sqlite3.connect(project.home / "jackline.db")
    try:
        [(found,)] = db.execute("SELECT executor FROM runs WHERE id = ?", (run_id,))
    finally:
        db.close()
    return str(found or "")


def commits(project: Project, branch: str) -> list[str]:
    return git(project.repo, "log", "--format=%s", f"main..{branch}").splitlines()


def test_a_detached_run_waits_for_a_worker_started_later_and_a_follower_is_told(
    project: Project, tmp_path: Path
) -> None:
    team(project).create(ScriptedAgent([FIX]))
    detached = project.jl("run", "Fix add", "--detach")
    run_id = detached.stdout.strip()
    assert run_id.startswith("run-") and status(project, run_id) == "queued", detached
    assert project.jl_json("show", run_id)["status"] == "queued"  # not interrupted: nobody drives
    following = subprocess.Popen(
        [sys.executable, "-m", "jackline", "run", "Fix add again"],
        cwd=project.repo,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The follower says once that nobody works, in the run's log, where every surface shows it.
        told = until(lambda: [r for r in _runs(project) if r != run_id and _told(project, r)])
        with workers(project, tmp_path, 1) as [worker]:
            out, err = following.communicate(timeout=180)
            assert following.returncode == 0, err
            assert f"{told[0]}  awaiting_review" in out, out
            assert err.count("no worker is running; start one with `jackline worker`") == 1
            until(lambda: status(project, run_id) == "awaiting_review")
            assert executor_of(project, run_id) == worker.id
            # A decision in team mode is sent and followed: the worker merges.
            merged = project.jl_json("approve", run_id, user="bob")
            assert merged["status"] == "merged", merged
        assert worker.stop() == 0, worker.said
    finally:
        if following.poll() is None:
            following.kill()
    assert f"took {run_id} from the queue" in worker.said
    on_main = git(project.repo, "log", "--format=%s", "main").splitlines()
    assert on_main[:2] == [f"Merge {merged['branch']}: Fix add", "Fix add"], on_main
    kinds = [e["kind"] for e in project.events(run_id)]
    assert kinds.count("merge") == 1 and kinds.count("commit") == 1


def _runs(project: Project) -> list[str]:
    if not (project.home / "jackline.db").exists():
        return []
    db = sqlite3.connect(project.home / "jackline.db")
    try:
        return [r for (r,) in db.execute("SELECT id FROM runs")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _told(project: Project, run_id: str) -> bool:
    return any(
        e["kind"] == "warning" and "no worker is running" in e.get("message", "")
        for e in project.events(run_id)
    )
