"""Running a command: the one place that starts processes for agents, checks and set-up.

Output goes to a log file as it comes (so `jackline logs --follow` and a killed run keep it) and
the tail is returned for the audit log and the handoff. Each command runs in its own process
group so a timeout ends everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jackline.sandbox import Jail, cgroup


@dataclass(frozen=True)
class Completed:
    argv: list[str] | str
    exit_code: int
    duration: float
    output: str
    timed_out: bool

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


def run(
    argv: list[str] | str,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    pidfile: Path | None = None,
    jail: Jail | None = None,
) -> Completed:
    """Run `argv` (a list, or a string for the shell) with stdout and stderr written to a fresh `log`.

    `pidfile` records the process group, so a harness that crashed can end it on the retry.
    `jail` runs the command inside a sandbox; the log shows the command as given.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    group = cgroup.limit(jail.spec.max_processes) if jail and jail.sandbox.name != "none" else None
    try:
        return _run(argv, cwd, env, log, timeout, pidfile, jail, group, start)
    finally:
        if group is not None:
            cgroup.remove(group)


def _run(
    argv: list[str] | str,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    pidfile: Path | None,
    jail: Jail | None,
    group: Path | None,
    start: float,
) -> Completed:
    with open(log, "wb") as out:
        out.write(f"$ {argv if isinstance(argv, str) else ' '.join(argv)}\n".encode())
        out.flush()
        command = jail.wrap(argv) if jail else argv
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env),
                shell=isinstance(command, str),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_preexec(jail, group),
            )
        except OSError as e:
            out.write(f"could not start: {e}\n".encode())
            return Completed(argv, 127, time.monotonic() - start, f"could not start: {e}", False)
        if pidfile is not None:
            pidfile.write_text(str(proc.pid))
        timed_out = False
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            code = proc.wait()
            out.write(f"\n[jackline] timed out after {timeout:.0f}s\n".encode())
    size = log.stat().st_size
    with open(log, "rb") as f:
        f.seek(max(0, size - 64_000))
        text = f.read().decode(errors="replace")
    return Completed(argv, code, time.monotonic() - start, text, timed_out)


def _preexec(jail: Jail | None, group: Path | None) -> Callable[[], None] | None:
    """In the child before it execs: join the command's `pids` cgroup (a process limit that
    holds for root too), then apply the jail's resource limits."""
    limits = jail.preexec if jail else None
    if group is None:
        return limits

    def apply() -> None:
        cgroup.join(group)
        if limits is not None:
            limits()

    return apply


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_recorded(pidfile: Path) -> None:
    """End the process group a crashed harness left behind (see `run(pidfile=...)`)."""
    try:
        pgid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
