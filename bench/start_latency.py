"""From submit to the agent's first instruction: cold, from a snapshot, and from the warm pool.

The bundled shop, with a set-up that installs its real dependencies (a virtualenv with pytest
and ruff from the package index). The agent's first act is to write the time; the latency is
that time minus the moment `api.submit` was called.

(a) cold: no snapshot, no pool: the snapshot is built (set-up runs), then the workspace;
(b) snapshot: the snapshot exists, no warm workspace: an overlay (or copy) of it;
(c) warm: `[pool] size = 1`, filled before each run: the run takes it.

    python bench/start_latency.py [--runs 5] [--json] [--service]

With `--service`, each workspace also gets its own Redis (`[services.redis]`): a snapshot start
waits for it to answer, a warm workspace has it running already.

Also printed: what the sandbox itself costs (a trivial command under bubblewrap vs plain).
Everything lives in a throwaway JACKLINE_HOME, never in ~/.jackline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="jackline-start-bench-"))
os.environ["JACKLINE_HOME"] = str(_TMP / "home")

from jackline import api, demo  # noqa: E402
from jackline import git as g  # noqa: E402

SETUP = (
    "python -m venv .venv",
    ".venv/bin/pip install --quiet --disable-pip-version-check pytest ruff",
)
# Written once: the checks fail (the agent changes nothing), and round 2 must not move the stamp.
STAMP = (
    "import time, pathlib; p = pathlib.Path('.jackline/run/first'); "
    "p.exists() or p.write_text(repr(time.time()))"
)


REDIS = """
[services.redis]
start = "redis-server --port {port} --bind 127.0.0.1 --dir {dir} --save '' --appendonly no"
ready = "redis-cli -p {port} ping"
port = 6379
"""


def make_repo(pool: int, service: bool = False) -> Path:
    repo = demo.make_repo(_TMP)
    setup = ", ".join(json.dumps(c) for c in SETUP)
    agent = json.dumps([sys.executable, "-c", STAMP])
    with (repo / "jackline.toml").open("a") as f:
        f.write(f"\n[agents.stamp]\ncommand = {agent}\n")
    text = (repo / "jackline.toml").read_text().replace("setup = []", f"setup = [{setup}]")
    text += f"\n[pool]\nsize = {pool}\n" + (REDIS if service else "")
    (repo / "jackline.toml").write_text(text)
    g.git(repo, "commit", "-qam", "bench set-up")
    return repo


def latency(repo: Path) -> float:
    started = time.time()
    run = api.submit("Look around", repo, agent="stamp")
    first = Path(run.workspace or "") / ".jackline" / "run" / "first"
    if not first.exists():
        raise RuntimeError(f"{run.id} ended {run.status} before the agent ran: {run.reason}")
    return float(first.read_text()) - started


def sandbox_cost(runs: int) -> dict[str, float]:
    """The sandbox's own cost, from `sandbox_cost.py` (run apart: it has its own state folder)."""
    script = Path(__file__).with_name("sandbox_cost.py")
    done = subprocess.run(
        [sys.executable, str(script), "--runs", str(runs), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    median: dict[str, float] = json.loads(done.stdout)["median_ms"]
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--service", action="store_true", help="each workspace gets a Redis")
    args = parser.parse_args()
    if args.service and shutil.which("redis-server") is None:
        parser.error("--service needs redis-server (apt-get install redis-server)")
    results: dict[str, list[float]] = {"cold": [], "snapshot": [], "warm": []}
    try:
        for i in range(args.runs):
            print(f"round {i + 1}/{args.runs} ...", file=sys.stderr)
            repo = make_repo(pool=0, service=args.service)
            results["cold"].append(latency(repo))
            results["snapshot"].append(latency(repo))
            warm_repo = make_repo(pool=1, service=args.service)
            api.pool_warm(warm_repo)  # the snapshot and one warm workspace, before the clock
            results["warm"].append(latency(warm_repo))
            api.pool_clear(repo)
            api.pool_clear(warm_repo)
        cost = sandbox_cost(30)
    finally:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
        for point in sorted((p for p in points if p.startswith(f"{_TMP}/")), reverse=True):
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
        shutil.rmtree(_TMP, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in results.items()}
    figures = {
        "runs": args.runs,
        "service": "redis" if args.service else None,
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "cold_over_warm": round(median["cold"] / median["warm"], 1),
        "snapshot_over_warm": round(median["snapshot"] / median["warm"], 1),
        "sandbox_ms": cost,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    with_service = " (each workspace with its own Redis)" if args.service else ""
    print(f"submit -> the agent's first instruction, median of {args.runs}{with_service}:")
    for name, value in median.items():
        print(f"  {name:<9} {value * 1000:9.1f} ms")
    print(
        f"cold/warm {figures['cold_over_warm']}x (goal >= 20x); snapshot/warm "
        f"{figures['snapshot_over_warm']}x; warm goal < 300 ms: "
        f"{'met' if median['warm'] < 0.3 else 'MISSED'}; snapshot goal < 1 s: "
        f"{'met' if median['snapshot'] < 1.0 else 'MISSED'}"
    )
    print(
        f"sandbox: /bin/true plain {cost['true plain']:.2f} ms, under bubblewrap "
        f"{cost['true bubblewrap']:.2f} ms"
    )


if __name__ == "__main__":
    main()
