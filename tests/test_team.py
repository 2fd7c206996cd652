"""Team mode on one machine: runs enqueued by whoever submits them, workers (real processes, real
DBOS on SQLite, one database) that take them, and the death of a worker (`kill -9`): a live
worker takes its work over within the heartbeat's bound, and every run and release finishes
exactly once. The workers share one workspace root here (one JACKLINE_HOME): a worker taking
over a run whose workspace is on another machine is a part of its own (rebuilding it)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from conftest import Project, git, spawn, unmount_under

from jackline.testing import Replace, Round, ScriptedAgent

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
    # In team mode a command acts as the person its token stands for: alice's, unless a
    # test says whose (`Project.env_as`).
    project.env.pop("JACKLINE_USER", None)
    project.env["JACKLINE_TOKEN"] = project.token("alice")
    return project


class Worker:
    """`jackline worker` as a process of its own, its output in a log file; with `home`, as on a
    machine of its own (its own JACKLINE_HOME: run folders, workspaces, lock files)."""

    def __init__(self, project: Project, log: Path, *args: str, home: Path | None = None) -> None:
        self.log = log
        env = project.env if home is None else {**project.env, "JACKLINE_HOME": str(home)}
        self.proc = spawn(["worker", *args], project.repo, env, log)
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
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
            time.sleep(2)
            raise AssertionError(f"the worker did not stop within 60s:\n{self.said}") from None


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


def test_two_workers_share_many_runs_and_each_run_is_done_once(
    project: Project, tmp_path: Path
) -> None:
    # Each agent round takes a second: a worker at its bound of one cannot take the next run
    # while it works, so the other must. The six wait on the queue before either worker starts:
    # submitted one by one to live workers, each could arrive after the one quick worker was
    # done with the last (on a loaded machine one took all six, once).
    team(project).create(ScriptedAgent([replace(FIX, sleep=1.0)]))
    run_ids = [project.jl("run", f"Fix add {i}", "--detach").stdout.strip() for i in range(6)]
    with workers(project, tmp_path, 2, "--concurrency", "1") as pair:
        listed = project.jl_json("workers")
        assert sorted(w["id"] for w in listed) == sorted(w.id for w in pair)
        assert all(w["alive"] and w["concurrency"] == 1 for w in listed), listed
        # One run at a time each, yet all six: a run waiting for review takes no place.
        until(lambda: all(status(project, r) == "awaiting_review" for r in run_ids), within=300)
        drivers = {r: executor_of(project, r) for r in run_ids}
        listed = {w["id"]: w for w in project.jl_json("workers")}
    assert set(drivers.values()) == {w.id for w in pair}, drivers  # both took some
    for w in pair:
        assert sorted(listed[w.id]["runs"]) == sorted(r for r, d in drivers.items() if d == w.id)
        assert sum(f"took {r} from the queue" in w.said for r in run_ids) == list(
            drivers.values()
        ).count(w.id)
    for i, run_id in enumerate(run_ids):
        events = project.events(run_id)
        agents = [e for e in events if e["kind"] == "step" and e.get("step") == "agent"]
        assert [(e["round"], e.get("retry")) for e in agents] == [(1, None)], agents
        assert [e["kind"] for e in events].count("commit") == 1
        run = project.jl_json("show", run_id)
        assert commits(project, run["branch"]) == [f"Fix add {i}"]
    # Each left, and said so: its row went.
    assert project.jl_json("workers") == [], "\n".join(w.said for w in pair)


def _driver(project: Project, workflow_id: str) -> tuple[str, str]:
    """The workflow's status and executor, as the engine's database has them."""
    db = sqlite3.connect(project.home / "engine.db")
    try:
        [(state, executor)] = db.execute(
            "SELECT status, executor_id FROM workflow_status WHERE workflow_uuid = ?",
            (workflow_id,),
        )
    finally:
        db.close()
    return str(state), str(executor or "")


def _kill_and_time_take_over(
    project: Project, crew: list[Worker], workflow_id: str
) -> tuple[Worker, float]:
    """Kill -9 the worker that drives the workflow; the seconds until another drives it."""
    state, executor = _driver(project, workflow_id)
    assert state == "PENDING", state
    [dead] = [w for w in crew if w.id == executor]
    dead.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    dead.proc.wait(timeout=30)

    def taken() -> bool:
        state, now = _driver(project, workflow_id)
        return state == "PENDING" and now not in ("", dead.id)

    until(taken, within=60, step=0.05)
    took = time.monotonic() - killed
    print(f"\n{workflow_id}: taken over {took:.1f}s after kill -9 (dead after {DEAD_AFTER}s)")
    return dead, took


def test_a_worker_killed_in_an_agent_step_is_taken_over_and_the_run_finishes_once(
    project: Project, tmp_path: Path
) -> None:
    marker = ".jackline/run/first-attempt"  # in the workspace's inbox: kept across a retry
    slow = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=[f"if [ ! -e {marker} ]; then touch {marker}; sleep 120; fi"],
    )
    team(project).create(ScriptedAgent([slow]))
    with workers(project, tmp_path, 3) as crew:
        run_id = project.jl("run", "Fix add", "--detach").stdout.strip()
        until(lambda: list(project.home.glob(f"workspaces/{run_id}/{marker}")))
        dead, took = _kill_and_time_take_over(project, crew, run_id)
        assert took < DEAD_AFTER + 5
        until(lambda: status(project, run_id) == "awaiting_review")
        merged = project.jl_json("approve", run_id, user="bob")
        alive = [w for w in crew if w is not dead]
        said = "".join(w.said for w in alive)
    assert merged["status"] == "merged", merged
    assert said.count(f"took over {run_id}") == 1, said
    events = project.events(run_id)
    agents = [e for e in events if e["kind"] == "step" and e.get("step") == "agent"]
    assert [(e["round"], e.get("retry")) for e in agents] == [(1, None), (1, True)]
    assert [e["kind"] for e in events].count("workspace") == 1  # prepare was not repeated
    kinds = [e["kind"] for e in events]
    assert kinds.count("commit") == 1 and kinds.count("merge") == 1
    assert git(project.repo, "branch", "--list", "agent/*").split() == [merged["branch"]]
    assert commits(project, merged["branch"]) == []  # merged: main has it
    on_main = git(project.repo, "log", "--format=%s", "main").splitlines()
    assert on_main.count("Fix add") == 1 and sum(m.startswith("Merge ") for m in on_main) == 1


def _processes(argv: list[str]) -> list[int]:
    """The processes whose command line is `argv`."""
    want = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes() == want:
                    found.append(int(entry.name))
    return found


def _kill(pids: list[int]) -> None:
    """What the dead worker's machine ran dies with it."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_worker_killed_in_a_merge_is_taken_over_and_the_run_merges_once(
    project: Project, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    nap = f"119.{os.getpid()}"  # this test's own: the merge's checks wait while `hold` is there
    extra = f"""
[checks.gate]
command = "sh -c 'if [ -e {gate}/hold ]; then sleep {nap}; fi'"

[sandbox]
readable = [{json.dumps(str(project.root / "agent.json"))}, {json.dumps(str(gate))}]
"""
    team(project).create(ScriptedAgent([FIX]), extra=extra)
    with workers(project, tmp_path, 3) as crew:
        run_id = project.jl("run", "Fix add", "--detach").stdout.strip()
        until(lambda: status(project, run_id) == "awaiting_review")
        (project.repo / "notes.txt").write_text("main moved\n")  # so the merge runs the checks
        git(project.repo, "add", "notes.txt")
        git(project.repo, "commit", "-qm", "notes")
        (gate / "hold").touch()
        approving = subprocess.Popen(
            [sys.executable, "-m", "jackline", "approve", run_id, "--json"],
            cwd=project.repo,
            env=project.env_as("bob"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            napping = until(lambda: _processes(["sleep", nap]))
            assert status(project, run_id) == "merging"
            dead, took = _kill_and_time_take_over(project, crew, run_id)
            _kill(napping)
            (gate / "hold").unlink()
            assert took < DEAD_AFTER + 5
            out, err = approving.communicate(timeout=180)
        finally:
            if approving.poll() is None:
                approving.kill()
    merged = json.loads(out)
    assert approving.returncode == 0 and merged["status"] == "merged", err
    events = project.events(run_id)
    kinds = [e["kind"] for e in events]
    assert kinds.count("commit") == 1 and kinds.count("merge") == 1, kinds
    # The merge's checks started twice (cut short by the kill, then again), and passed once.
    assert sum(e.get("step") == "merge-checks" for e in events) == 2
    assert kinds.count("merge-check") == 1
    on_main = git(project.repo, "log", "--format=%s", "main").splitlines()
    assert on_main.count("Fix add") == 1 and sum(m.startswith("Merge ") for m in on_main) == 1
    assert git(project.repo, "branch", "--list", "agent/*").split() == [merged["branch"]]


def test_a_worker_killed_in_a_release_deploy_is_taken_over_and_the_release_goes_live_once(
    project: Project, tmp_path: Path
) -> None:
    from test_release import Shop, _deploys

    shop = Shop(team(project))
    try:
        shop.create(staging=False, go=False)
        held = tmp_path / "let-the-deploy-finish"  # production's deploy waits until it exists
        shop.commit("hold the deploy", {"hold-production.txt": str(held)})
        with workers(project, tmp_path, 3) as crew:
            releasing = subprocess.Popen(
                [sys.executable, "-m", "jackline", "release", "--json"],
                cwd=shop.repo,
                env=project.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                deploying = _deploys(shop.ports["production"])
                [release_id] = _releases(project)
                dead, took = _kill_and_time_take_over(project, crew, release_id)
                _kill(deploying)
                held.touch()
                assert took < DEAD_AFTER + 5
                out, err = releasing.communicate(timeout=180)
            finally:
                if releasing.poll() is None:
                    releasing.kill()
        released = json.loads(out)
        # Its reason and log, should it not go live (seen twice in full runs, not alone).
        told = (err, released.get("reason"), shop.show(release_id)["events"])
        assert releasing.returncode == 0 and released["status"] == "live", told
        kinds = [e["kind"] for e in shop.show(release_id)["events"]]
        assert kinds.count("release.promoted") == 1 and kinds.count("release.live") == 1, kinds
        assert kinds.count("release.deploy") == 1, kinds
        assert git(shop.repo, "rev-parse", "production") == shop.head
        assert shop.get("production", "/api/items") == (200, "apples")
    finally:
        shop.stop()


def _releases(project: Project) -> list[str]:
    db = sqlite3.connect(project.home / "jackline.db")
    try:
        return [r for (r,) in db.execute("SELECT id FROM releases")]
    finally:
        db.close()


def test_a_run_whose_submitter_died_before_enqueueing_it_is_enqueued_by_a_worker(
    project: Project, tmp_path: Path
) -> None:
    team(project).create(ScriptedAgent([FIX]))
    # The engine's database held locked: `jackline run` writes the run's record, then waits
    # to enqueue it, and is killed there (a crash between the record and the queue).
    project.home.mkdir(parents=True, exist_ok=True)
    lock = sqlite3.connect(project.home / "engine.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    submitting = subprocess.Popen(
        [sys.executable, "-m", "jackline", "run", "Fix add", "--detach"],
        cwd=project.repo,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    [run_id] = until(lambda: _runs(project))
    submitting.kill()
    submitting.wait(timeout=30)
    lock.execute("ROLLBACK")
    lock.close()
    assert project.jl_json("show", run_id)["status"] == "queued"
    with workers(project, tmp_path, 1) as [worker]:
        until(lambda: status(project, run_id) == "awaiting_review")
    assert f"enqueued {run_id}" in worker.said and f"took {run_id}" in worker.said
    kinds = [e["kind"] for e in project.events(run_id)]
    assert kinds.count("workspace") == 1 and kinds.count("commit") == 1


def test_a_worker_prints_its_threads_on_sigusr1_and_leaves_on_sigterm(
    project: Project, tmp_path: Path
) -> None:
    team(project).create(ScriptedAgent([FIX]))
    with workers(project, tmp_path, 1) as [worker]:
        worker.proc.send_signal(signal.SIGUSR1)
        # Every thread's stack, the main thread's in its loop among them.
        until(lambda: "in work_until_stopped" in worker.said, within=30)
        assert worker.said.count("most recent call first") > 3, worker.said
        assert worker.proc.poll() is None  # it goes on working
        assert worker.stop() == 0, worker.said
    said = worker.said
    assert said.index("Stopping: no more work is taken") < said.index(f"Worker {worker.id} stopped")
    assert not project.store().workers()  # its row went with it: nobody waits for a take-over


def test_a_worker_paused_past_the_bound_finds_its_work_taken_and_exits(
    project: Project, tmp_path: Path
) -> None:
    marker = ".jackline/run/first-attempt"
    slow = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=[f"if [ ! -e {marker} ]; then touch {marker}; sleep 120; fi"],
    )
    team(project).create(ScriptedAgent([slow]))
    with workers(project, tmp_path, 2) as crew:
        run_id = project.jl("run", "Fix add", "--detach").stdout.strip()
        until(lambda: list(project.home.glob(f"workspaces/{run_id}/{marker}")))
        [paused] = [w for w in crew if w.id == executor_of(project, run_id)]
        paused.proc.send_signal(signal.SIGSTOP)  # a machine that froze, its beats late
        until(lambda: executor_of(project, run_id) not in ("", paused.id), within=60)
        paused.proc.send_signal(signal.SIGCONT)
        # Its next beat finds its row gone: it stops rather than go on beside the new driver.
        assert paused.proc.wait(timeout=60) == 75, paused.said
        until(lambda: status(project, run_id) == "awaiting_review")
    assert "was found dead by another worker" in paused.said
    events = project.events(run_id)
    agents = [e for e in events if e["kind"] == "step" and e.get("step") == "agent"]
    assert [(e["round"], e.get("retry")) for e in agents] == [(1, None), (1, True)]
    assert [e["kind"] for e in events].count("commit") == 1
    run = project.jl_json("show", run_id)
    assert commits(project, run["branch"]) == ["Fix add"]


def test_on_one_machine_detach_and_the_team_options_are_refused_with_the_way(
    project: Project,
) -> None:
    project.create(ScriptedAgent([FIX]))  # no JACKLINE_DATABASE_URL: one machine
    detached = project.jl("run", "Fix add", "--detach", ok=False)
    assert detached.returncode == 1 and "set JACKLINE_DATABASE_URL" in detached.stderr
    assert _runs(project) == []  # refused before anything was recorded
    worker = project.jl("worker", "--concurrency", "2", ok=False)
    assert worker.returncode == 1 and "--concurrency and --workspaces are for team mode" in (
        worker.stderr
    )


def test_on_postgresql_a_worker_on_its_own_disk_killed_in_an_agent_step_is_taken_over_elsewhere(
    project: Project, tmp_path: Path, pg_url: str
) -> None:
    """Three workers, one PostgreSQL database, each worker its own workspace folder as on a
    machine of its own: the one driving an agent step is killed with -9; another takes the run
    over, makes its workspace again on its own disk from the work the run kept, and the run
    finishes once."""
    gate = tmp_path / "gate"
    gate.mkdir()
    nap = "97"  # the agent's first round sleeps until the gate opens
    slow = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=[f"[ -e {gate}/open ] || sleep {nap}"],
    )
    extra = f"\n[sandbox]\nreadable = [{json.dumps(str(project.root / 'agent.json'))}, {json.dumps(str(gate))}]\n"
    team(project).env["JACKLINE_DATABASE_URL"] = pg_url
    project.tokens.clear()
    project.env["JACKLINE_TOKEN"] = project.token("alice")
    project.create(ScriptedAgent([slow]), extra=extra)
    roots = [tmp_path / f"disk-{i}" for i in range(3)]
    crew: list[Worker] = []
    try:
        for i, root in enumerate(roots):
            crew.append(Worker(project, tmp_path / f"worker-{i}.log", "--workspaces", str(root)))
        run_id = project.jl("run", "Fix add", "--detach").stdout.strip()
        napping = until(lambda: _processes(["sleep", nap]))
        store = project.store()
        first = until(lambda: store.get_run(run_id).executor)
        [dead] = [w for w in crew if w.id == first]
        first_disk = roots[crew.index(dead)]
        assert (first_disk / run_id).is_dir()
        dead.proc.send_signal(signal.SIGKILL)
        dead.proc.wait(timeout=30)
        _kill(napping)
        # The machine is gone with its disk: here, the dead worker's workspace folder.
        unmount_under(first_disk)
        shutil.rmtree(first_disk)
        (gate / "open").touch()
        until(lambda: store.get_run(run_id).status == "awaiting_review", within=120)
        taker = store.get_run(run_id).executor
        assert taker not in ("", first), taker
        [alive] = [w for w in crew if w.id == taker]
        # Made again on the taker's own disk, never used where the dead worker left it.
        assert store.get_run(run_id).workspace == str(roots[crew.index(alive)] / run_id)
        branch = store.get_run(run_id).branch
        assert commits(project, branch) == ["Fix add"]  # one commit, on the one branch
        merged = project.jl_json("approve", run_id, user="bob")
    finally:
        for w in crew:
            with contextlib.suppress(Exception):
                w.stop()
            if w.proc.poll() is None:
                w.proc.kill()
    assert merged["status"] == "merged", merged
    kinds = [e.kind for e in store.events(run_id)]
    assert kinds.count("workspace.rebuilt") == 1 and kinds.count("commit") == 1, kinds
    assert "a + b" in git(project.repo, "show", "main:calc.py")


def test_a_run_cancelled_from_another_machine_has_its_agent_ended_on_its_workers_machine(
    project: Project, tmp_path: Path, pg_url: str
) -> None:
    """One PostgreSQL database; the worker has a home of its own (another machine), where the
    agent's process runs. `jackline cancel` on the submitter's machine cannot reach that
    process: the worker sees its run cancelled and ends the agent, which would otherwise sleep
    on for minutes."""
    nap = f"98.{os.getpid()}"
    slow = Round(edits={"calc.py": Replace("a - b", "a + b")}, commands=[f"sleep {nap}"])
    team(project).env["JACKLINE_DATABASE_URL"] = pg_url
    project.tokens.clear()
    project.env["JACKLINE_TOKEN"] = project.token("alice")
    project.create(ScriptedAgent([slow]))
    elsewhere = tmp_path / "worker-machine"
    key = secrets.token_hex(32)  # every machine of a team seals audit logs with one key
    for home in (project.home, elsewhere):
        home.mkdir(parents=True, exist_ok=True)
        (home / "audit.key").write_text(key)
        (home / "audit.key").chmod(0o600)
    with workers(project, tmp_path, 0) as crew:
        crew.append(Worker(project, tmp_path / "worker.log", home=elsewhere))
        run_id = project.jl("run", "Fix add", "--detach").stdout.strip()
        napping = until(lambda: _processes(["sleep", nap]))
        assert not list(project.home.glob(f"runs/{run_id}/round-*/agent.pid"))  # not here
        cancelled = project.jl_json("cancel", run_id, "-m", "wrong task")
        assert cancelled["status"] == "cancelled", cancelled
        until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in napping), within=15)
        until(lambda: f"{run_id} was cancelled: its agent here is ended" in crew[0].said, 15)
    assert project.store().get_run(run_id).status == "cancelled"
