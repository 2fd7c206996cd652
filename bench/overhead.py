"""The harness's own time for a run of the bundled example, next to doing the same by hand.

For each run: the wall time of `jackline.api.submit` on a fresh copy of the example shop (the
scripted agent, two rounds, the checks each round), minus the time the agent, the checks and any
set-up commands took (from the run's audit events). What is left is the harness: the workflow
engine, the workspace, the briefs, the audit log, the handoff. Goal (the issue): under 1.5 s.

For comparison, the bare alternative: the same agent command and the same checks run directly
with subprocess in a plain `git clone`, round 1 and round 2, as a person would script it by hand.

    python bench/overhead.py [--runs 5] [--warmup 1] [--json]

The first run pays one-off costs (imports, the first DBOS launch); it is reported as "cold" and,
with --warmup 1 (the default), left out of the median. State lives in a temporary JACKLINE_HOME,
never in ~/.jackline, and is removed at the end.
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
from typing import Any

GOAL = 1.5  # seconds of harness time per run

# Before jackline is imported: every read and write of the benchmark goes to a throwaway home.
_TMP = Path(tempfile.mkdtemp(prefix="jackline-bench-"))
os.environ["JACKLINE_HOME"] = str(_TMP / "home")

from jackline import api, demo  # noqa: E402
from jackline.agents import Brief  # noqa: E402
from jackline.agents.command import CommandAgent  # noqa: E402
from jackline.checks import fill_report  # noqa: E402
from jackline.config import load as load_config  # noqa: E402


def harness_run(repos: Path) -> dict[str, Any]:
    """One run through the harness; the repo is made before the clock starts."""
    repo = demo.make_repo(repos)
    start = time.perf_counter()
    run = api.submit(demo.TASK, repo, agent="scripted")
    total = time.perf_counter() - start
    if run.status != "awaiting_review":
        raise RuntimeError(f"{run.id} ended {run.status}, not awaiting_review: {run.reason}")
    spent = {"agent": 0.0, "checks": 0.0, "setup": 0.0}
    for event in api.events(run.id):
        if event.kind != "command":
            continue
        step = str(event.data.get("step", ""))
        duration = float(event.data.get("duration", 0.0))
        if step == "agent":
            spent["agent"] += duration
        elif step.startswith("check:"):
            spent["checks"] += duration
        elif step == "setup":
            spent["setup"] += duration
    return {
        "run_id": run.id,
        "rounds": run.rounds,
        "total": total,
        **spent,
        "harness": total - sum(spent.values()),
    }


def bare_run(repos: Path, rounds: int = 2) -> dict[str, Any]:
    """The same commands without the harness: clone, then agent + checks for each round."""
    repo = demo.make_repo(repos)
    config = load_config(repo)
    scratch = Path(tempfile.mkdtemp(prefix="bare-", dir=repos))
    clone = scratch / "clone"
    brief = scratch / "brief.md"
    brief.write_text("")
    # The same substitution of {prompt} and {brief} the harness makes, with an empty brief.
    agent_command = CommandAgent(config.agents["scripted"]).argv(Brief(brief, "", 1, None))
    # The environment the harness gives its commands: no Jackline state variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JACKLINE_")}

    def call(
        command: str | list[str], extra: dict[str, str] | None = None, cwd: Path = clone
    ) -> tuple[float, int]:
        t = time.perf_counter()
        done = subprocess.run(
            command,
            shell=isinstance(command, str),
            cwd=cwd,
            env={**env, **(extra or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return time.perf_counter() - t, done.returncode

    spent = {"clone": 0.0, "agent": 0.0, "checks": 0.0}
    codes: list[str] = []
    start = time.perf_counter()
    spent["clone"], code = call(["git", "clone", "--quiet", str(repo), str(clone)], cwd=scratch)
    if code != 0:
        raise RuntimeError(f"git clone of {repo} exited {code}")
    for round_no in range(1, rounds + 1):
        seconds, code = call(
            agent_command, {"JACKLINE_ROUND": str(round_no), "JACKLINE_BRIEF": str(brief)}
        )
        spent["agent"] += seconds
        codes.append(f"r{round_no} agent={code}")
        for name, check in config.checks.items():
            report = scratch / f"round-{round_no}-{name}.report"
            seconds, code = call(fill_report(check.command, report))
            spent["checks"] += seconds
            codes.append(f"r{round_no} {name}={code}")
    total = time.perf_counter() - start
    # The same work as the harness's run: the last round's agent and checks must all pass.
    last = [c for c in codes if c.startswith(f"r{rounds} ")]
    if any(not c.endswith("=0") for c in last):
        raise RuntimeError(f"the bare run did not end green: {', '.join(codes)}")
    return {"total": total, **spent, "exit_codes": codes}


def median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")

    demo.require_tools()
    repos = _TMP / "repos"
    repos.mkdir()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    warm: list[dict[str, Any]] = []
    for i in range(args.warmup):
        progress(f"warm-up {i + 1}/{args.warmup} ...")
        warm.append(harness_run(repos))
    measured: list[dict[str, Any]] = []
    for i in range(args.runs):
        progress(f"harness run {i + 1}/{args.runs} ...")
        measured.append(harness_run(repos))
    bare: list[dict[str, Any]] = []
    for i in range(args.runs):
        progress(f"bare run {i + 1}/{args.runs} ...")
        bare.append(bare_run(repos))

    cold = (warm or measured)[0]
    harness = [r["harness"] for r in measured]
    med = statistics.median(harness)
    bare_total = median(bare, "total")
    total = median(measured, "total")
    figures = {
        "goal_seconds": GOAL,
        "goal_met": med < GOAL,
        "runs": args.runs,
        "warmup": args.warmup,
        "cold": cold,
        "measured": measured,
        "harness_median": med,
        "harness_min": min(harness),
        "harness_max": max(harness),
        "total_median": total,
        "bare": bare,
        "bare_total_median": bare_total,
        "ratio_total_to_bare": total / bare_total,
    }

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0

    def row(label: str, r: dict[str, Any]) -> str:
        return (
            f"{label:<8} {r['total']:>8.3f} {r['agent']:>8.3f} "
            f"{r['checks'] + r['setup']:>8.3f} {r['harness']:>8.3f}"
        )

    print(f"jackline harness overhead: bundled example, scripted agent, {args.runs} run(s)")
    print("seconds  (harness = total - agent - checks - setup)")
    print()
    print(f"{'run':<8} {'total':>8} {'agent':>8} {'checks':>8} {'harness':>8}")
    note = "  (first run, not in the median)" if warm else "  (first run, in the median)"
    print(row("cold", cold) + note)
    for i, r in enumerate(measured, 1):
        print(row(str(i), r))
    print()
    print(f"harness median {med:.3f} s   min {min(harness):.3f} s   max {max(harness):.3f} s")
    print(f"goal < {GOAL} s: {'met' if med < GOAL else 'not met'}")
    print()
    print("bare alternative (git clone, then agent + checks by subprocess, 2 rounds):")
    print(f"{'run':<8} {'total':>8} {'clone':>8} {'agent':>8} {'checks':>8}")
    for i, r in enumerate(bare, 1):
        print(
            f"{i:<8} {r['total']:>8.3f} {r['clone']:>8.3f} {r['agent']:>8.3f} {r['checks']:>8.3f}"
        )
    print()
    print(
        f"median total with harness {total:.3f} s / bare {bare_total:.3f} s"
        f" = {total / bare_total:.2f}x"
    )
    return 0


def _exit(code: int) -> None:
    """End the process as `jackline.cli._exit` does: a workflow thread waits for a review."""
    engine: Any = sys.modules.get("jackline.engine")
    if engine is not None:
        engine.shutdown()
    shutil.rmtree(_TMP, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    code = 1
    try:
        code = main()
    except SystemExit as e:  # argparse's --help and usage errors
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        _exit(code)
