"""Jackline as a person feels it (issue 17): each entry point against its baseline, in one run.

1. CLI start: `jackline --version`, `--help`, `runs` and `show RUN`, each a fresh process started
   from the `jackline` script on PATH as a shell starts it; the baseline is the interpreter's
   own start (`python -c pass`, with this machine's site-packages). Goal: under 150 ms. Each
   twice: as typed at a terminal (forked from the fork server, `jackline.launch`) and as a
   script runs it (a process of its own, `JACKLINE_FORK_SERVER=0`); and once, first, the
   command that finds no server, starts it and runs in its own process meanwhile.
2. A run as typed: `jackline run TASK` with a warm pool, from the moment the process is started
   to the agent's first instruction (the agent writes the time), against `git worktree add` +
   `uv venv` + `uv pip install` of the same project's test tools (uv's cache warm), and the
   same with `uv pip install --offline` (uv at its fastest: no look at the package index).
   Beside it, the same run as typed without the fork server's spare engine
   (`JACKLINE_FORK_SERVER_SPARE=0`), in its own process, and submitted in process
   (`api.submit`), so the figures are not mistaken for each other. Goals: as typed under 300 ms,
   ratio to the worktree path below 1.
3. With `--all`: the server under load (`server_load.py`) and the sandbox's own cost per
   command (`sandbox_cost.py`), each run as its own process with its own state.

Each figure is the median of `--runs` measurements, the alternatives interleaved round by
round. Everything lives in a throwaway folder (JACKLINE_HOME included), never in ~/.jackline.

    python bench/entry_points.py [--runs 7] [--json] [--all]

Needs uv for the worktree baseline (`pip install uv`); without it that row is skipped.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TMP = Path(tempfile.mkdtemp(prefix="jackline-entry-bench-"))
os.environ["JACKLINE_HOME"] = str(_TMP / "home")
os.environ.setdefault("JACKLINE_USER", "bench")

from jackline import api, demo  # noqa: E402
from jackline import git as g  # noqa: E402

START_GOAL = 0.150
RUN_GOAL = 0.300
TOOLS = ("pytest", "ruff")
"""What the project's set-up installs, in the warm pool's snapshot and in the baseline's venv."""
STAMP = (
    "import time, pathlib; p = pathlib.Path('.jackline/run/first'); "
    "p.exists() or p.write_text(repr(time.time()))"
)
"""The agent: its first instruction writes the time, once (a second round must not move it)."""


def jackline_script() -> str:
    """The `jackline` a shell runs: the console script beside this interpreter."""
    found = Path(sys.executable).with_name("jackline")
    if not found.exists():
        raise SystemExit(f"no `jackline` script beside {sys.executable}: pip install -e . first")
    return str(found)


def make_repo(pool: int) -> Path:
    """The demo's project, with a set-up that installs the test tools, the stamping agent and
    `[pool] size = pool`."""
    repo = demo.make_repo(_TMP)
    setup = ", ".join(
        json.dumps(c)
        for c in (
            f"{sys.executable} -m venv .venv",
            f".venv/bin/pip install --quiet --disable-pip-version-check {' '.join(TOOLS)}",
        )
    )
    text = (repo / "jackline.toml").read_text().replace("setup = []", f"setup = [{setup}]")
    agent = json.dumps([sys.executable, "-c", STAMP])
    text = text.replace("max_rounds = 2", "max_rounds = 1")  # one round: the agent only looks
    text += f"\n[agents.stamp]\ncommand = {agent}\n\n[pool]\nsize = {pool}\n"
    (repo / "jackline.toml").write_text(text)
    g.git(repo, "commit", "-qam", "bench set-up")
    return repo


TYPED = {**os.environ, "JACKLINE_FORK_SERVER": "1"}
"""A person at a terminal: the command runs forked from the fork server (`jackline.launch` picks
it when a standard stream is a terminal; here the output is captured, so it is asked for)."""
SCRIPTED = {**os.environ, "JACKLINE_FORK_SERVER": "0"}
"""A script, CI or a test: no terminal, the command runs in a process of its own."""
NO_SPARE = {**TYPED, "JACKLINE_FORK_SERVER_SPARE": "0"}
"""As typed, but forked as any command is: the fork server's spare, whose engine launched
before the command came, is not used (the comparison for that spare)."""
OWN = " (own process)"


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL, env=env
    )
    return time.perf_counter() - started


def first_command(repo: Path) -> float:
    """The first command a person types with no fork server up: it starts the server and runs
    in its own process meanwhile. Then the server is waited for, as a person's next command a
    second later would find it."""
    took = timed([jackline_script(), "--version"], repo, TYPED)
    log = _TMP / "home" / "logs" / "forkserver.log"
    deadline = time.monotonic() + 60
    while "listening" not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fork server did not start: see {log}")
        time.sleep(0.05)
    return took


def cli_start(repo: Path, runs: int) -> dict[str, list[float]]:
    """Each command's wall time as a fresh process, as typed at a terminal and as a script runs
    it, interleaved with the interpreter's own start."""
    script = jackline_script()
    run_id = api.runs(limit=1)[0].id
    commands: dict[str, list[str]] = {
        "jackline --version": [script, "--version"],
        "jackline --help": [script, "--help"],
        "jackline runs": [script, "runs"],
        "jackline show RUN": [script, "show", run_id],
    }
    ways: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "python -c pass": ([sys.executable, "-c", "pass"], None)
    }
    for name, argv in commands.items():
        ways[name] = (argv, TYPED)
        ways[name + OWN] = (argv, SCRIPTED)
    found: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, (argv, env) in ways.items():
            found[name].append(timed(argv, repo, env))
    return found


def run_as_typed(repo: Path, env: dict[str, str]) -> float:
    """`jackline run` from its process's start to the agent's first instruction, the pool warm."""
    api.pool_warm(repo)
    started = time.time()
    done = subprocess.run(
        [jackline_script(), "run", "Look around", "--agent", "stamp", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    return _first(json.loads(done.stdout), started)


def run_in_process(repo: Path) -> float:
    """The same run through `api.submit` in this process (the engine already launched)."""
    api.pool_warm(repo)
    started = time.time()
    run = api.submit("Look around", repo, agent="stamp")
    return _first({"workspace": run.workspace, "id": run.id}, started)


def _first(run: dict[str, Any], started: float) -> float:
    stamp = Path(run.get("workspace") or "") / ".jackline" / "run" / "first"
    if not stamp.exists():
        raise RuntimeError(f"run {run.get('id')} ended before its agent ran: {run}")
    return float(stamp.read_text()) - started


UV = "git worktree add + uv venv + uv pip install"
UV_OFFLINE = UV + " --offline"


def worktree_and_uv(repo: Path, uv: str, *options: str) -> float:
    """The alternative: a worktree of main, a venv, the test tools installed (cache warm). As
    a person types it, uv asks the package index whether what its cache holds is the newest
    (a round trip to the registry each time); with `--offline` it takes its cache as it is:
    uv at its fastest, the network taken out."""
    dest = _TMP / f"wt-{time.monotonic_ns()}"
    started = time.perf_counter()
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(dest)], check=True
    )
    subprocess.run([uv, "venv", "-q", str(dest / ".venv")], check=True, capture_output=True)
    subprocess.run(
        [uv, "pip", "install", "-q", *options, "--python", str(dest / ".venv" / "bin" / "python")]
        + list(TOOLS),
        check=True,
        capture_output=True,
    )
    took = time.perf_counter() - started
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(dest)], check=True)
    return took


def interleaved(runs: int, ways: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(runs):
        print(f"round {i + 1}/{runs} ...", file=sys.stderr)
        for name, way in ways.items():
            found[name].append(way())
    return found


def apart(script: str, *args: str) -> dict[str, Any]:
    """Another benchmark of this folder, as its own process with its own state, its JSON."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name(script)), *args, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--all", action="store_true", help="also the server and the sandbox")
    args = parser.parse_args(argv)
    uv = shutil.which("uv")
    try:
        repo = make_repo(pool=1)
        print("building the snapshot (set-up installs the test tools) ...", file=sys.stderr)
        api.pool_warm(repo)
        if uv:  # uv's cache warm, as the pool's snapshot is
            worktree_and_uv(repo, uv)
        run_in_process(repo)  # the engine launched, as in a long-lived process
        first = first_command(repo)
        ways: dict[str, Callable[[], float]] = {
            "jackline run (as typed)": lambda: run_as_typed(repo, TYPED),
            "jackline run (as typed, no spare)": lambda: run_as_typed(repo, NO_SPARE),
            "jackline run" + OWN: lambda: run_as_typed(repo, SCRIPTED),
            "api.submit (in process)": lambda: run_in_process(repo),
        }
        if uv:
            ways[UV] = lambda: worktree_and_uv(repo, uv)
            ways[UV_OFFLINE] = lambda: worktree_and_uv(repo, uv, "--offline")
        started = interleaved(args.runs, ways)
        start = cli_start(repo, args.runs)
        more = (
            {
                "server": apart("server_load.py"),
                "sandbox": apart("sandbox_cost.py", "--runs", "30"),
            }
            if args.all
            else {}
        )
    finally:
        _clean_up()
    figures = _figures(start, started, args.runs, more)
    figures["first_command_ms"] = round(first * 1000, 1)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print(figures)
    return figures


def _figures(
    start: dict[str, list[float]],
    started: dict[str, list[float]],
    runs: int,
    more: dict[str, Any],
) -> dict[str, Any]:
    median = {k: statistics.median(v) for k, v in {**start, **started}.items()}
    floor = median["python -c pass"]
    typed = median["jackline run (as typed)"]
    alternative = median.get(UV)
    offline = median.get(UV_OFFLINE)
    return {
        "runs": runs,
        "median_ms": {k: round(v * 1000, 1) for k, v in median.items()},
        "cli_start": {
            k: {
                "ms": round(v * 1000, 1),
                "over_python": round(v / floor, 2),
                "goal_met": v < START_GOAL,
            }
            for k, v in median.items()
            if k.startswith("jackline ") and not k.startswith("jackline run ")
        },
        "run_as_typed": {
            "ms": round(typed * 1000, 1),
            "goal_met": typed < RUN_GOAL,
            "over_worktree_uv": round(typed / alternative, 2) if alternative else None,
            "over_worktree_uv_offline": round(typed / offline, 2) if offline else None,
            "no_spare_ms": round(median["jackline run (as typed, no spare)"] * 1000, 1),
            "own_process_ms": round(median["jackline run" + OWN] * 1000, 1),
            "in_process_ms": round(median["api.submit (in process)"] * 1000, 1),
        },
        **more,
    }


def _print(figures: dict[str, Any]) -> None:
    ms = figures["median_ms"]
    print(f"median of {figures['runs']}, in ms (the alternatives interleaved):")
    print(f"  {'python -c pass (the floor)':<46} {ms['python -c pass']:8.1f}")
    print(f"  {'first command (starts the fork server)':<46} {figures['first_command_ms']:8.1f}")
    for name, row in figures["cli_start"].items():
        goal = ("met" if row["goal_met"] else "MISSED") if not name.endswith(OWN) else "-"
        print(
            f"  {name:<46} {row['ms']:8.1f}  {row['over_python']:5.2f}x python   goal < 150 ms: {goal}"
        )
    typed = figures["run_as_typed"]
    print(f"  {'jackline run -> agent (as typed, pool warm)':<46} {typed['ms']:8.1f}")
    print(f"  {'the same, the spare engine not used':<46} {typed['no_spare_ms']:8.1f}")
    print(f"  {'jackline run -> agent (own process)':<46} {typed['own_process_ms']:8.1f}")
    print(f"  {'api.submit -> agent (in process, pool warm)':<46} {typed['in_process_ms']:8.1f}")
    alt = ms.get(UV)
    if alt is not None:
        print(f"  {UV:<46} {alt:8.1f}")
        print(f"  {'the same, uv --offline (its cache as it is)':<46} {ms[UV_OFFLINE]:8.1f}")
        print(f"run as typed / worktree+uv: {typed['over_worktree_uv']}x (goal < 1)")
        print(f"run as typed / worktree+uv --offline: {typed['over_worktree_uv_offline']}x")
    else:
        print("uv is not installed: no worktree baseline (pip install uv)")
    print(f"run as typed goal < 300 ms: {'met' if typed['goal_met'] else 'MISSED'}")
    if "server" in figures:
        server = figures["server"]
        for name in ("jackline", "fastapi"):
            row = server[name]
            print(
                f"  GET /api/runs, {name:<8} {row['rps']:7.0f} req/s  p99 {row['p99_ms']:6.1f} ms"
                f"  {row['cpu_ms']:5.2f} ms CPU a request"
            )
        print(f"server / minimal FastAPI app: {server['ratio']:.2f}x (goal >= 0.5)")
    if "sandbox" in figures:
        ms = figures["sandbox"]["median_ms"]
        print(
            f"  sandbox's own cost: /bin/true under bubblewrap - plain "
            f"{ms['true sandboxed'] - ms['true plain']:.1f} ms; as the harness runs a command "
            f"(proc.run) {ms['true proc.run sandboxed'] - ms['true proc.run plain']:.1f} ms; "
            f"with the proxy's forwarder {ms['true sandboxed, proxy'] - ms['true plain']:.1f} ms"
        )


def _clean_up() -> None:
    """Remove the throwaway folder, its mounts first. The fork server is told to leave (its
    socket removed), and the unmounting goes on until a look finds none for a second: the last
    run's process may still be refilling the pool. (Workspaces left mounted by earlier versions
    of this bench made every later mount on the machine slower, bubblewrap's included: 16 ms a
    sandbox with 50 stale mounts, 7.6 ms without.)"""
    shutil.rmtree(_TMP / "home" / "fork", ignore_errors=True)
    quiet = 0
    for _ in range(60):
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(f"{_TMP}/")]
        for point in sorted(points, reverse=True):
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
        quiet = 0 if points else quiet + 1
        if quiet >= 4:
            break
        time.sleep(0.25)
    shutil.rmtree(_TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
