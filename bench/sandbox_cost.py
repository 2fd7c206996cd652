"""What the sandbox costs per command: the sandbox's own cost, sandboxed minus plain, wall and CPU.

    python bench/sandbox_cost.py [--runs 30] [--json] [--against SRC]

A trivial command (`/bin/true`, and `python -c pass`) runs plain and under bubblewrap: with no
network, with the host's network (set-up), and behind the proxy's forwarder (`allow_network`);
then as the harness runs it (`proc.run` with the default `[sandbox]` limits: the wrapping, the
`pids` cgroup, the resource limits, the disk watcher), plain and sandboxed, in a process that
holds what a worker imports (the engine, the API: some 90 MB, as starting a process costs more
in a larger one). The cases take turns,
one run each per round, so a machine whose load changes shifts them all alike; the figures are
medians. The sandbox's own cost is the median sandboxed minus the median plain, and the time
`Bubblewrap.wrap` takes in the harness is given apart (the `proc.run` figures include it).

CPU is `getrusage(RUSAGE_CHILDREN)` before and after, with every descendant reaped: bubblewrap's
outer process exits once it has the command's exit code, before the sandbox's own init (its pid
1) has finished, which the kernel then hands to the machine's init, with the CPU it spent. So the
bench makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`) and waits for every process the
command left, and the CPU counted is all of it. It adds this process's own CPU (`RUSAGE_SELF`)
in that time: starting the command, and in the `proc.run` cases the harness's whole share.

`--against SRC` also times, in the same rounds, the command lines another Jackline's source
(`SRC`, the `src` folder of a checkout) wraps the same commands in: before and after a change.

The workspace and Jackline's state live in a throwaway folder, never in ~/.jackline. `main`
returns the figures it prints (`--json`: as JSON), for other benches to call.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
PYTHON = [sys.executable, "-c", "pass"]
TRUE = ["/bin/true"]
WRAP_CALLS = 200
# Printed for another source by `--against`: the argv of each sandboxed case, and wrap()'s time.
_AGAINST = """
import json, os, sys, time
from pathlib import Path
from jackline.sandbox import Spec
from jackline.sandbox.bubblewrap import Bubblewrap
ws, sock, calls = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
specs = {"": Spec(workspace=ws), ", network": Spec(workspace=ws, network=True),
         ", proxy": Spec(workspace=ws, proxy_socket=sock)}
out = {f"{name} sandboxed{k}": Bubblewrap().wrap(cmd, s) for k, s in specs.items()
       for name, cmd in (("true", ["/bin/true"]), ("python", [sys.executable, "-c", "pass"]))
       if name == "true" or k == ""}
started = time.perf_counter()
for _ in range(calls):
    Bubblewrap().wrap(["/bin/true"], specs[""])
out["wrap_ms"] = (time.perf_counter() - started) / calls * 1000
print(json.dumps(out))
"""


@dataclass
class Case:
    """One thing to time: `run` runs it once."""

    run: Callable[[], None]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def time_once(self) -> None:
        children, me = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
        started = time.perf_counter()
        self.run()
        self.wall.append(time.perf_counter() - started)
        _reap()
        self.cpu.append(_cpu(resource.RUSAGE_CHILDREN) - children + _cpu(resource.RUSAGE_SELF) - me)

    def medians(self) -> dict[str, float]:
        wall, cpu = statistics.median(self.wall), statistics.median(self.cpu)
        return {"wall_ms": round(wall * 1000, 2), "cpu_ms": round(cpu * 1000, 2)}


def _cpu(who: int) -> float:
    used = resource.getrusage(who)
    return used.ru_utime + used.ru_stime


def _reap() -> None:
    """Wait for every process the command left (see the module's docstring)."""
    while True:
        try:
            os.wait4(-1, 0)
        except ChildProcessError:
            return


def _subreaper(on: bool) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def command(argv: list[str], env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)

    return run


@contextmanager
def _state(tmp: Path) -> Iterator[None]:
    """Jackline's state in `tmp` while the bench runs, as it was after."""
    before = os.environ.get("JACKLINE_HOME")
    os.environ["JACKLINE_HOME"] = str(tmp / "home")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("JACKLINE_HOME", None)
        else:
            os.environ["JACKLINE_HOME"] = before


def wrap_ms(spec: Any) -> float:
    """What one `Bubblewrap.wrap` call takes in the harness, in ms (the median of five batches)."""
    from jackline.sandbox.bubblewrap import Bubblewrap

    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(WRAP_CALLS // 5):
            Bubblewrap().wrap(TRUE, spec)
        batches.append((time.perf_counter() - started) / (WRAP_CALLS // 5))
    return round(statistics.median(batches) * 1000, 3)


def cases(tmp: Path, sock: Path, env: dict[str, str]) -> dict[str, Case]:
    from jackline import proc
    from jackline.config import SandboxConfig
    from jackline.sandbox import Spec, jail_for
    from jackline.sandbox.bubblewrap import Bubblewrap

    workspace = tmp / "home" / "workspaces" / "w"
    workspace.mkdir(parents=True, exist_ok=True)
    specs = {
        "": Spec(workspace=workspace),
        ", network": Spec(workspace=workspace, network=True),
        ", proxy": Spec(workspace=workspace, proxy_socket=sock),
    }
    out = {"true plain": Case(command(TRUE, env))}
    for name, spec in specs.items():
        out[f"true sandboxed{name}"] = Case(command(Bubblewrap().wrap(TRUE, spec), env))
    out["python plain"] = Case(command(PYTHON, env))
    out["python sandboxed"] = Case(command(Bubblewrap().wrap(PYTHON, specs[""]), env))
    jail = jail_for(SandboxConfig(), workspace)
    log = tmp / "log"

    def harness(sandboxed: bool) -> Callable[[], None]:
        def run() -> None:
            done = proc.run(TRUE, workspace, env, log, 30, jail=jail if sandboxed else None)
            if done.exit_code != 0:
                raise RuntimeError(f"{done.argv} exited {done.exit_code}: {done.output}")

        return run

    out["true proc.run plain"] = Case(harness(False))
    out["true proc.run sandboxed"] = Case(harness(True))
    return out


def against(src: Path, tmp: Path, sock: Path, env: dict[str, str]) -> tuple[dict[str, Case], float]:
    """The sandboxed cases as `src` wraps them (named `before: ...`), and its wrap()'s time."""
    workspace = tmp / "home" / "workspaces" / "w"
    child_env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", _AGAINST, str(workspace), str(sock), str(WRAP_CALLS)],
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
    )
    argvs = json.loads(done.stdout)
    ms = float(argvs.pop("wrap_ms"))
    return {f"before: {k}": Case(command(v, env)) for k, v in argvs.items()}, ms


def measure(runs: int, against_src: Path | None = None) -> dict[str, Any]:
    import jackline.api
    import jackline.engine  # noqa: F401  (the size of a worker: see the module's docstring)
    from jackline.sandbox import Spec, scrub
    from jackline.sandbox.proxy import Proxy

    with tempfile.TemporaryDirectory(prefix="jackline-sandbox-bench-") as name, _state(Path(name)):
        tmp = Path(name)
        sock = tmp / "net" / "proxy.sock"
        sock.parent.mkdir()
        env = scrub(os.environ)
        todo = cases(tmp, sock, env)
        before_wrap = None
        if against_src is not None:
            more, before_wrap = against(against_src, tmp, sock, env)
            todo.update(more)
        workspace = tmp / "home" / "workspaces" / "w"
        wrap = {
            "sandboxed": wrap_ms(Spec(workspace=workspace)),
            "sandboxed, proxy": wrap_ms(Spec(workspace=workspace, proxy_socket=sock)),
        }
        if before_wrap is not None:
            wrap["before: sandboxed"] = round(before_wrap, 3)
        load = os.getloadavg()
        _subreaper(True)
        try:
            with Proxy(sock, ["pypi.org"]):
                for case in todo.values():
                    case.time_once()  # a first run of each warms the caches: not counted
                    case.wall.clear()
                    case.cpu.clear()
                for _ in range(runs):
                    for case in todo.values():
                        case.time_once()
        finally:
            _subreaper(False)
    return figures(runs, todo, wrap, (load, os.getloadavg()))


def figures(
    runs: int, todo: dict[str, Case], wrap: dict[str, float], load: tuple[Sequence[float], ...]
) -> dict[str, Any]:
    medians = {k: c.medians() for k, c in todo.items()}

    def minus(a: str, b: str) -> dict[str, float]:
        return {m: round(medians[a][m] - medians[b][m], 2) for m in ("wall_ms", "cpu_ms")}

    own = {
        "bubblewrap, no network": minus("true sandboxed", "true plain"),
        "bubblewrap, host network": minus("true sandboxed, network", "true plain"),
        "bubblewrap, proxy forwarder": minus("true sandboxed, proxy", "true plain"),
        "as the harness runs it (proc.run)": minus(
            "true proc.run sandboxed", "true proc.run plain"
        ),
    }
    for name, case in (("no network", ""), ("host network", ", network"), ("proxy", ", proxy")):
        if f"before: true sandboxed{case}" in medians:
            own[f"before: bubblewrap, {name}"] = minus(
                f"before: true sandboxed{case}", "true plain"
            )
    return {
        "runs": runs,
        "cores": os.cpu_count(),
        "bench_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "load_average_1min": {"start": round(load[0][0], 2), "end": round(load[1][0], 2)},
        "median_ms": {k: v["wall_ms"] for k, v in medians.items()},
        "median_cpu_ms": {k: v["cpu_ms"] for k, v in medians.items()},
        "wrap_ms": wrap,
        "own_cost_ms": own,
        "python_ratio": round(
            medians["python sandboxed"]["wall_ms"] / medians["python plain"]["wall_ms"], 2
        ),
    }


def render(f: dict[str, Any]) -> str:
    load = f["load_average_1min"]
    lines = [
        f"{f['runs']} runs each, taking turns, from a process of {f['bench_rss_mb']} MB;"
        f" {f['cores']} cores, load average"
        f" {load['start']} at the start, {load['end']} at the end. Medians:",
        f"  {'':<40} {'wall ms':>9} {'CPU ms':>9}",
    ]
    for name, wall in f["median_ms"].items():
        lines.append(f"  {name:<40} {wall:9.2f} {f['median_cpu_ms'][name]:9.2f}")
    lines.append("Bubblewrap.wrap() in the harness, a call:")
    lines += [f"  {k:<40} {v:9.3f} ms" for k, v in f["wrap_ms"].items()]
    lines.append("The sandbox's own cost per command (sandboxed minus plain):")
    for name, cost in f["own_cost_ms"].items():
        lines.append(f"  {name:<40} {cost['wall_ms']:+9.2f} {cost['cpu_ms']:+9.2f}")
    lines.append(f"`python -c pass` sandboxed vs plain, wall: {f['python_ratio']}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--against", type=Path, help="another Jackline's src folder, timed too")
    args = parser.parse_args(argv)
    result = measure(args.runs, args.against)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return result


if __name__ == "__main__":
    main()
