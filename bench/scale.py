"""Team mode under load: runs of a trivial agent through `jackline worker` processes sharing one
PostgreSQL database on loopback, one worker killed with -9 midway.

    python bench/scale.py [--runs 200] [--scale-runs 30] [--database-url URL] [--json]

Two measurements, each on a fresh database (a throwaway PostgreSQL cluster made in a temporary
folder, unless `--database-url` names a server whose databases the bench may create):

1. Scaling: `--scale-runs` runs submitted at once to 1, then 2, then 3 workers; throughput
   (runs rested per second, from the first submission to the last run at review) and its
   ratio to one worker's, in the same run of the bench.
2. Death of a worker: `--runs` runs submitted at once to three workers; once half have reached
   review, the worker driving the most runs is killed with -9. Counted from the database when
   every run rests (or after a deadline): lost (a run that never reached review), duplicated (a
   run committed or handed off twice, or whose agent round finished twice), runs per worker,
   throughput per worker, and the queue wait (submission to its `prepare` step) p50 and p95.

A run rests at review: the work a worker does for it ends there (a person's decision is not the
workers' load). Every worker has its own workspace folder, as on machines of its own; they share
one JACKLINE_HOME here (its audit key, which a team shares too). Heartbeat bounds are the
defaults (5 s, dead after 30 s): the take-over is timed as a team would see it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="jackline-scale-bench-"))
HOME = _TMP / "home"
os.environ["JACKLINE_HOME"] = str(HOME)

from jackline import database  # noqa: E402
from jackline.testing import Replace, Round, ScriptedAgent  # noqa: E402
from jackline.testing import postgres as pg  # noqa: E402

CONFIG = """\
[project]
main = "main"

[checks.ok]
command = "true"

[blueprint]
max_rounds = 1

[sandbox]
readable = [{script}]

[agents.default]
command = {command}
"""


WORKER_ARGS: list[str] = []
"""Options every worker is started with (`--concurrency`)."""


@dataclass(frozen=True)
class Phase:
    workers: int
    runs: int
    seconds: float
    """From the first submission to the last run at review."""
    per_second: float
    lost: int
    duplicated: int
    per_worker: dict[str, int]
    wait_p50: float
    wait_p95: float
    killed: str = ""
    taken_over: int = 0
    """Runs the killed worker had started that another finished."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--scale-runs", type=int, default=30)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a throwaway one)")
    parser.add_argument(
        "--concurrency", type=int, help="each worker's --concurrency (default: the machine's)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    repo = _project(_TMP / "project")
    # A folder of its own in /tmp: the `postgres` user must reach it (the bench's is private).
    cluster = (
        None if args.database_url else pg.start(Path(tempfile.mkdtemp(prefix="jackline-scale-pg-")))
    )
    try:
        WORKER_ARGS.extend(["--concurrency", str(args.concurrency)] if args.concurrency else [])
        phases = [_phase(cluster, args.database_url, repo, n, args.scale_runs) for n in (1, 2, 3)]
        killed = _phase(cluster, args.database_url, repo, 3, args.runs, kill=True)
    finally:
        database.dispose_all()
        if cluster is not None:
            pg.stop(cluster.folder)
    if args.json:
        print(json.dumps({"scaling": [asdict(p) for p in phases], "kill": asdict(killed)}))
        return
    _print(phases, killed)


def _project(root: Path) -> Path:
    """A repository with one file and a check that passes; an agent that changes the file."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    script = ScriptedAgent([Round(edits={"app.py": Replace("1", "2")})]).save(root / "agent.json")
    (repo / "app.py").write_text("VALUE = 1\n")
    command = ScriptedAgent.command(script)
    (repo / "jackline.toml").write_text(
        CONFIG.format(script=json.dumps(str(script)), command=json.dumps(command))
    )
    for argv in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "app"],
    ):
        subprocess.run(["git", *argv], cwd=repo, check=True)
    return repo


def _phase(
    cluster: pg.Cluster | None,
    server: str | None,
    repo: Path,
    workers: int,
    runs: int,
    kill: bool = False,
) -> Phase:
    name = f"scale_{uuid.uuid4().hex[:12]}"
    url = cluster.create(name) if cluster else _create(server or "", name)
    env = {**os.environ, "JACKLINE_DATABASE_URL": url}
    os.environ.update(JACKLINE_DATABASE_URL=url)
    token = _token()
    os.environ["JACKLINE_TOKEN"] = token
    procs = [_worker(env, i, repo) for i in range(workers)]
    try:
        run_ids, started = _submit(repo, runs)
        killed = ""
        deadline = time.monotonic() + max(300.0, runs * 3.0)
        while time.monotonic() < deadline:
            rested = _rested(run_ids)
            if kill and not killed and len(rested) >= len(run_ids) // 2:
                killed = _kill_busiest(procs)
            if len(rested) == len(run_ids):
                break
            time.sleep(0.5)
        return _measure(run_ids, started, workers, killed)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        database.dispose_all()


def _create(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    return server.rsplit("/", 1)[0] + f"/{name}"


def _token() -> str:
    from jackline import auth
    from jackline.store import Store

    return auth.create_token(Store(), "bench", "reviewer")[1]


def _worker(env: dict[str, str], i: int, repo: Path) -> subprocess.Popen[bytes]:
    log = _TMP / f"worker-{i}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jackline",
            "worker",
            "--workspaces",
            str(_TMP / f"ws-{i}"),
            *WORKER_ARGS,
        ],
        env=env,
        cwd=repo,  # the repository whose schedules it keeps (none here)
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "Worker " not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {i} did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return proc


def _submit(repo: Path, runs: int) -> tuple[list[str], float]:
    from jackline import api

    started = time.time()
    ids = [api.submit(f"Change the value ({i})", repo, wait=False).id for i in range(runs)]
    return ids, started


def _rested(run_ids: list[str]) -> set[str]:
    from jackline.store import Store

    store = Store()
    wanted = set(run_ids)
    return {
        r.id
        for r in store.list_runs(limit=100_000)
        if r.id in wanted and r.status not in ("queued", "running")
    }


def _kill_busiest(procs: list[subprocess.Popen[bytes]]) -> str:
    """Kill with -9 the worker whose executor drives the most runs now; its id."""
    from jackline.store import Store

    store = Store()
    live = store.workers()
    driving = {w.id: 0 for w in live}
    for run in store.list_runs(status="running", limit=100_000):
        if run.executor in driving:
            driving[run.executor] += 1
    busiest = max(live, key=lambda w: driving[w.id])
    for p in procs:
        if p.pid == busiest.pid:
            p.send_signal(signal.SIGKILL)
            p.wait()
    return busiest.id


def _measure(run_ids: list[str], started: float, workers: int, killed: str) -> Phase:
    from jackline.store import Store

    store = Store()
    wanted = set(run_ids)
    runs = {r.id: r for r in store.list_runs(limit=100_000) if r.id in wanted}
    lost = [r for r in run_ids if runs[r].status != "awaiting_review"]
    duplicated, waits, rested_at = 0, [], []
    per_worker: dict[str, int] = {}
    for run_id in run_ids:
        events = store.events(run_id)
        kinds = [e.kind for e in events]
        data = [json.loads(e.data) for e in events]
        agent_done = [
            d
            for k, d in zip(kinds, data, strict=True)
            if k == "command" and d.get("step") == "agent"
        ]
        handoffs = [
            d
            for k, d in zip(kinds, data, strict=True)
            if k == "handoff" and d.get("outcome") == "awaiting_review"
        ]
        if kinds.count("commit") > 1 or len(handoffs) > 1 or len(agent_done) > 1:
            duplicated += 1
        prepared = [
            e.ts
            for e, d in zip(events, data, strict=True)
            if e.kind == "step" and d.get("step") == "prepare"
        ]
        if prepared:
            waits.append(prepared[0] - runs[run_id].created_at)
        rested = [e.ts for e, d in zip(events, data, strict=True) if e.kind == "handoff"]
        if rested:
            rested_at.append(rested[-1])
        driver = runs[run_id].executor or "?"
        per_worker[driver] = per_worker.get(driver, 0) + 1
    seconds = (max(rested_at) - started) if rested_at else float("nan")
    return Phase(
        workers=workers,
        runs=len(run_ids),
        seconds=round(seconds, 2),
        per_second=round(len(rested_at) / seconds, 3) if rested_at else 0.0,
        lost=len(lost),
        duplicated=duplicated,
        per_worker=per_worker,
        wait_p50=round(statistics.median(waits), 2) if waits else float("nan"),
        wait_p95=round(_p95(waits), 2) if waits else float("nan"),
        killed=killed,
        taken_over=_taken_over(run_ids) if killed else 0,
    )


def _taken_over(run_ids: list[str]) -> int:
    """Runs a live worker says it took over from a dead one (`took over RUN` in its log)."""
    said = "".join(log.read_text() for log in _TMP.glob("worker-*.log"))
    return sum(1 for run_id in run_ids if f"took over {run_id}" in said)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _print(phases: list[Phase], killed: Phase) -> None:
    one = phases[0].per_second or float("nan")
    print("Scaling (runs at review per second, same bench run):")
    for p in phases:
        print(
            f"  {p.workers} worker(s): {p.runs} runs in {p.seconds:6.1f} s = {p.per_second:5.2f}/s"
            f"  ({p.per_second / one:4.2f}x one worker)  lost {p.lost}, duplicated {p.duplicated},"
            f"  queue wait p50 {p.wait_p50} s p95 {p.wait_p95} s"
        )
    k = killed
    print(f"\n{k.runs} runs through 3 workers, one killed with -9 midway ({k.killed}):")
    print(
        f"  lost {k.lost}, duplicated {k.duplicated}, taken over from the killed worker {k.taken_over}"
    )
    print(
        f"  {k.seconds:.1f} s in all, {k.per_second:.2f} runs/s, {k.per_second / 3:.2f} per worker"
    )
    print(f"  queue wait p50 {k.wait_p50} s, p95 {k.wait_p95} s")
    for worker, count in sorted(k.per_worker.items()):
        print(f"  {worker}: {count} runs")


if __name__ == "__main__":
    main()
