"""`GET /api/runs` under load: a real `jackline serve` next to a minimal FastAPI app serving the
same JSON, measured in the same run, interleaved.

Both servers run on loopback as processes of their own: `jackline serve` on a throwaway
JACKLINE_HOME whose store holds `--runs` runs (inserted through the store's API, with a mix of
statuses, a few of them "running" for a process that is gone, so the interrupted check is paid),
and a FastAPI app that answers the very bytes `jackline serve` answered (fetched once from it)
from a list in memory, under uvicorn with the same settings. The load generator is a plain
asyncio HTTP/1.1 client on `--connections` keep-alive connections (it costs far less CPU than
httpx, which matters on a 2-core machine where client and server share the cores): each
connection sends its next request when the answer to the last one has arrived.

Each round measures both servers for `--seconds` after a second of warm-up, in turn; the
figures are the medians over `--rounds` rounds. Memory is the server process's resident set
(VmRSS) after its first answer, and again after every round and a second of idle.

    python bench/server_load.py [--runs 50] [--connections 20] [--seconds 5] [--rounds 3] [--json]

Goal (issue 17): at least 1,000 requests/s at 20 connections, p99 under 50 ms, at least half the
minimal app's throughput, and the idle server's memory after the load within 20% of before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GOALS = {"rps": 1000.0, "p99_ms": 50.0, "ratio": 0.5, "rss_growth": 0.2}
PATH = "/api/runs"
STATUSES = ("merged", "awaiting_review", "rejected", "failed", "cancelled", "running")

MINIMAL_APP = textwrap.dedent(
    """
    import json, socket, sys
    import uvicorn
    from fastapi import FastAPI

    RUNS = json.loads(open(sys.argv[1]).read())
    app = FastAPI()

    @app.get("/api/runs")
    def runs():
        return RUNS

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"Listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    """
)
"""The baseline: FastAPI as its tutorial writes it (a plain `def` route returning the data), under
uvicorn with the settings `jackline serve` gives it."""


@dataclass(frozen=True)
class Load:
    """One measurement of one server."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float
    """The server process's CPU time (user and system, every thread) per request measured:
    what the machine's other work cannot inflate the way it inflates wall time."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass
class Served:
    name: str
    process: subprocess.Popen[str]
    port: int
    headers: str
    rss_before: int = 0
    rss_after: int = 0


# the load generator ----------------------------------------------------------------------


async def _connection(
    port: int, request: bytes, until: float, record_from: float, latencies: list[float]
) -> int:
    """Requests one after another on one keep-alive connection until `until`; the latency of
    each one that started after `record_from` is recorded. The number of errors."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while (start := time.perf_counter()) < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(head)
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            if start >= record_from:
                latencies.append(time.perf_counter() - start)
    finally:
        writer.close()
    return errors


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(line[15:])
    raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")


async def _load(served: Served, connections: int, warmup: float, seconds: float) -> Load:
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n{served.headers}\r\n"
    ).encode()
    record_from = time.perf_counter() + warmup
    until = record_from + seconds
    latencies: list[float] = []
    cpu: list[float] = []

    async def mark_cpu() -> None:
        await asyncio.sleep(max(0.0, record_from - time.perf_counter()))
        cpu.append(cpu_seconds(served.process.pid))

    errors, _ = await asyncio.gather(
        asyncio.gather(
            *(
                _connection(served.port, request, until, record_from, latencies)
                for _ in range(connections)
            )
        ),
        mark_cpu(),
    )
    used = cpu_seconds(served.process.pid) - cpu[0]
    ordered = sorted(latencies)
    return Load(
        requests=len(ordered),
        seconds=seconds,
        p50_ms=1000 * ordered[len(ordered) // 2],
        p99_ms=1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        errors=sum(errors),
        cpu_ms=1000 * used / max(1, len(ordered)),
    )


def measure(served: Served, connections: int, seconds: float) -> Load:
    return asyncio.run(_load(served, connections, warmup=1.0, seconds=seconds))


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user and system, every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# the servers -----------------------------------------------------------------------------


def rss(pid: int) -> int:
    """The process's resident set, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _listening(process: subprocess.Popen[str], what: str) -> tuple[int, list[str]]:
    """The port the process prints that it listens on, and what it printed up to then."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("Listening on "):
            return int(line.split()[2].rsplit(":", 1)[1].rstrip("/")), seen
    process.kill()
    raise RuntimeError(f"{what} did not start:\n{''.join(seen)}")


def _drain(process: subprocess.Popen[str]) -> None:
    """Read what the process prints from now on, so it never blocks on a full pipe."""
    import threading

    def read() -> None:
        assert process.stdout is not None
        for _ in process.stdout:
            pass

    threading.Thread(target=read, daemon=True).start()


def make_store(home: Path, runs: int) -> Path:
    """A repository with `runs` runs in the store of `home`; the repository's path."""
    os.environ["JACKLINE_HOME"] = str(home)
    os.environ.pop("JACKLINE_DATABASE_URL", None)
    from jackline import demo
    from jackline.models import Run, Status
    from jackline.store import Store

    repo = demo.make_repo(home.parent)
    store = Store(home / "jackline.db")
    now = time.time()
    for i in range(runs):
        status = Status(STATUSES[i % len(STATUSES)])
        store.insert_run(
            Run(
                id=f"run-01BENCH{i:018d}",
                task=f"Fix the bulk discount, attempt {i}: keep the rounding as it is",
                repo=str(repo),
                agent="scripted",
                blueprint="standard",
                status=status,
                branch=f"agent/fix-the-bulk-discount-{i}",
                submitted_by="alice",
                created_at=now - 60 * (runs - i),
                updated_at=now - 30 * (runs - i),
                rounds=1 + i % 3,
                base_sha="a" * 40,
                head_sha="b" * 40,
                workspace=str(home / "workspaces" / f"w{i}"),
                warnings=i % 4,
                spend=0.0123 * i,
                tokens=1000 * i,
                # a process that is gone: the server shows the run as interrupted
                executor="bench-host-1-gone" if status == Status.RUNNING else None,
            )
        )
    return repo


def start_jackline(home: Path, repo: Path) -> tuple[Served, str]:
    env = {**os.environ, "JACKLINE_HOME": str(home)}
    env.pop("JACKLINE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "jackline", "serve", "--port", "0", "--repo", str(repo)],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port, seen = _listening(process, "jackline serve")
    assert process.stdout is not None
    while not any(line.startswith("Admin token") for line in seen):
        seen.append(process.stdout.readline())
    token = seen[-1].split()[-1]
    _drain(process)
    return Served("jackline", process, port, f"Authorization: Bearer {token}\r\n"), token


def start_minimal(folder: Path, body: bytes) -> Served:
    data = folder / "runs.json"
    data.write_bytes(body)
    script = folder / "minimal_app.py"
    script.write_text(MINIMAL_APP)
    process = subprocess.Popen(
        [sys.executable, str(script), str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    port, _ = _listening(process, "the minimal FastAPI app")
    _drain(process)
    return Served("fastapi", process, port, "")


def fetch(served: Served) -> bytes:
    import httpx

    headers = dict(
        line.split(": ", 1) for line in served.headers.strip().splitlines() if ": " in line
    )
    answer = httpx.get(
        f"http://127.0.0.1:{served.port}{PATH}", headers=headers, timeout=60, trust_env=False
    )
    answer.raise_for_status()
    return answer.content


# the benchmark ---------------------------------------------------------------------------


def bench(runs: int, connections: int, seconds: float, rounds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="jackline-server-load-"))
    servers: list[Served] = []
    try:
        repo = make_store(tmp / "home", runs)
        jackline, _ = start_jackline(tmp / "home", repo)
        servers.append(jackline)
        body = fetch(jackline)
        if len(json.loads(body)) != runs:
            raise RuntimeError(f"/api/runs answered {len(json.loads(body))} runs, not {runs}")
        minimal = start_minimal(tmp, body)
        servers.append(minimal)
        if json.loads(fetch(minimal)) != json.loads(body):
            raise RuntimeError("the minimal app does not answer the same JSON")
        time.sleep(1.0)
        for served in servers:
            served.rss_before = rss(served.process.pid)
        loads: dict[str, list[Load]] = {s.name: [] for s in servers}
        for i in range(rounds):
            # interleaved, and the order alternates: neither server always goes first
            for served in servers if i % 2 == 0 else servers[::-1]:
                loads[served.name].append(measure(served, connections, seconds))
                time.sleep(1.0)
        for served in servers:
            served.rss_after = rss(served.process.pid)
        return _figures(servers, loads, runs, connections, seconds, len(body))
    finally:
        for served in servers:
            served.process.terminate()
        for served in servers:
            try:
                served.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                served.process.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _figures(
    servers: list[Served],
    loads: dict[str, list[Load]],
    runs: int,
    connections: int,
    seconds: float,
    size: int,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "runs": runs,
        "connections": connections,
        "seconds": seconds,
        "bytes": size,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    for served in servers:
        measured = loads[served.name]
        figures[served.name] = {
            "rps": statistics.median(m.rps for m in measured),
            "p50_ms": statistics.median(m.p50_ms for m in measured),
            "p99_ms": statistics.median(m.p99_ms for m in measured),
            "cpu_ms": statistics.median(m.cpu_ms for m in measured),
            "errors": sum(m.errors for m in measured),
            "rss_before_mb": served.rss_before / 2**20,
            "rss_after_mb": served.rss_after / 2**20,
            "rounds": [{**asdict(m), "rps": m.rps} for m in measured],
        }
    ours, theirs = figures["jackline"], figures["fastapi"]
    figures["ratio"] = ours["rps"] / theirs["rps"]
    growth = ours["rss_after_mb"] / ours["rss_before_mb"] - 1
    figures["rss_growth"] = growth
    figures["goals_met"] = {
        "rps": ours["rps"] >= GOALS["rps"],
        "p99_ms": ours["p99_ms"] < GOALS["p99_ms"],
        "ratio": figures["ratio"] >= GOALS["ratio"],
        "rss_growth": growth <= GOALS["rss_growth"],
        "errors": ours["errors"] == 0,
    }
    return figures


def _print(figures: dict[str, Any]) -> None:
    print(
        f"GET {PATH}: {figures['runs']} runs ({figures['bytes']} bytes), "
        f"{figures['connections']} connections, {figures['seconds']:g} s a round, "
        f"medians of {len(figures['jackline']['rounds'])} rounds "
        f"({figures['cpus']} CPUs, load average {figures['load_average']:.2f} at the end)"
    )
    print(
        f"{'':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} "
        f"{'RSS before':>11} {'after':>8}"
    )
    for name in ("jackline", "fastapi"):
        f = figures[name]
        print(
            f"{name:10} {f['rps']:8.0f} {f['p50_ms']:8.1f} {f['p99_ms']:8.1f} {f['cpu_ms']:10.2f} "
            f"{f['rss_before_mb']:9.1f}MB {f['rss_after_mb']:6.1f}MB"
            + (f"  ({f['errors']} errors)" if f["errors"] else "")
        )
        print(f"{'':10} rounds: " + ", ".join(f"{r['rps']:.0f}" for r in f["rounds"]))
    print(
        f"ratio jackline/fastapi: {figures['ratio']:.2f}; "
        f"jackline RSS growth {100 * figures['rss_growth']:+.1f}%"
    )
    missed = [k for k, met in figures["goals_met"].items() if not met]
    print("goals: " + ("all met" if not missed else "missed: " + ", ".join(missed)))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs in the store")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    figures = bench(args.runs, args.connections, args.seconds, args.rounds)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print(figures)
    return figures


if __name__ == "__main__":
    main()
