"""Running a command: the one place that starts processes for agents, checks and set-up.

The command's output comes through a pipe the harness reads, never straight into a file: the
log keeps the first `HEAD` bytes as they come and the last `TAIL` bytes, with a line saying how
many bytes between were dropped, so neither the disk nor the harness's time grows with what a
command prints (an agent printing 300 MiB leaves a 2 MiB log). The head is written as it comes
and the tail every few seconds, so a killed run keeps most of it. The end of what was kept is
returned for the audit log and the handoff. Each command runs in its own process group so a
timeout ends everything it started.
"""

from __future__ import annotations

import fcntl
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from jackline.sandbox import Jail, apply_rlimits, cgroup, disk, rlimits

HEAD = 1 << 20
"""Bytes of a command's output the log keeps from its start."""
TAIL = 1 << 20
"""Bytes of a command's output the log keeps from its end."""
LOG_LIMIT = HEAD + TAIL + (4 << 20)
"""Bytes to read back at most from a log `run` wrote: what it keeps, and the command line on
its first line (which can be long: an agent's brief given as an argument)."""
OUTPUT = 64_000
"""Characters of the end of the kept output returned in `Completed.output`."""
FLUSH = 2.0
"""Seconds between writes of the kept tail to the log while the command runs."""
IDLE = 0.2
"""Seconds without output after which a command that has exited is taken as done: a child it
left in the background may hold the pipe open for ever."""
GRACE = 2.0
"""Seconds at most spent reading what an exited (or killed) command's children still print."""
_PIPE = 1 << 20  # a larger pipe: fewer wake-ups for a command that prints a lot
GATE = (
    'read -r _ && if [ -n "$1" ]; then printf 0 > "$1" || exit 125; fi && shift && '
    'exec "$@" </dev/null'
)
"""A sandboxed command with limits starts behind this: a shell that waits for a line on its
standard input, by which time the harness has set its limits and, on cgroup v2, put it in its
`pids` cgroup from outside; on cgroup v1 it moves itself into that cgroup (`$1`, the group's
`tasks`: see `cgroup.own_move`, 7-15 ms less a command), then becomes the command (standard
input closed, as for every command). If it cannot move itself, the command does not run (exit
125). Setting the limits in the child itself (`preexec_fn`) made Python fork the whole harness
instead of `vfork`: some 25 ms of CPU a command in a harness of 200 MB. Should the harness fail
first, the shell reads end of file and exits without running anything."""


@dataclass(frozen=True)
class Completed:
    argv: list[str] | str
    exit_code: int
    duration: float
    output: str
    timed_out: bool
    dropped: int = 0
    """Bytes of output dropped between the head and the tail the log keeps (0: none)."""

    def tail(self, lines: int = 30) -> str:
        """The last lines of the output as plain text (`plain`), after a line saying what was
        dropped (if anything was and the lines do not already say it)."""
        text = "\n".join(plain(self.output).rstrip().splitlines()[-lines:])
        said = dropped_line(self.dropped).strip()
        return text if not self.dropped or said in text else f"{said}\n{text}"


# Terminal escape sequences: CSI (colours, cursor moves), OSC (titles, links), and the short ones.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain(text: str) -> str:
    """A command's output as text to show anywhere (a handoff, feedback, a terminal): colour
    and other escape sequences removed, a line a progress bar redrew (`\\r`) as it was last
    drawn, tabs as spaces, no other control character. A tool prints in colour when it thinks
    it has a terminal; a reader of the handoff would see `[31m` noise, a terminal obey it."""
    lines = _ESCAPE.sub("", text).split("\n")
    shown = (line.rstrip("\r").rsplit("\r", 1)[-1].expandtabs() for line in lines)
    return "\n".join(_CONTROL.sub("", line) for line in shown)


def dropped_line(dropped: int) -> str:
    """The line the log holds where output was dropped."""
    return f"\n[jackline: {dropped:,} bytes of output dropped here]\n" if dropped else ""


def run(
    argv: list[str] | str,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    pidfile: Path | None = None,
    jail: Jail | None = None,
) -> Completed:
    """Run `argv` (a list, or a string for the shell) with stdout and stderr kept in a fresh `log`
    (its head and tail: see `HEAD`, `TAIL`).

    `pidfile` records the process group, so a harness that crashed can end it on the retry.
    `jail` runs the command inside a sandbox; the log shows the command as given.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    group = cgroup.limit(jail.spec.max_processes) if jail and jail.sandbox.name != "none" else None
    try:
        with _fresh(log) as out:
            return _run(argv, cwd, env, out, timeout, pidfile, jail, group, start)
    finally:
        if group is not None:
            cgroup.remove(group)


def _fresh(log: Path) -> BinaryIO:
    """The log, made anew: whatever stood at its path (a link, say) is replaced, not followed."""
    log.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(log, flags, 0o644), "wb")


def _run(
    argv: list[str] | str,
    cwd: Path,
    env: Mapping[str, str],
    out: BinaryIO,
    timeout: float,
    pidfile: Path | None,
    jail: Jail | None,
    group: Path | None,
    start: float,
) -> Completed:
    kept = Kept(out, f"$ {argv if isinstance(argv, str) else ' '.join(argv)}\n".encode())
    command = jail.wrap(argv) if jail else argv
    bounds = rlimits(jail.spec) if jail else []
    gated = bool(bounds) or group is not None
    moves = None
    if gated:
        inner = ["/bin/sh", "-c", command] if isinstance(command, str) else command
        moves = cgroup.own_move(group) if group is not None else None
        command = ["/bin/sh", "-c", GATE, "jackline-gate", str(moves or ""), *inner]
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            shell=isinstance(command, str),
            stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if gated:  # the gate that moves itself into its group is not moved from outside
            _open_gate(proc, bounds, None if moves else group)
    except OSError as e:
        kept.add(f"could not start: {e}\n".encode())
        kept.close()
        return Completed(argv, 127, time.monotonic() - start, f"could not start: {e}", False)
    _groups.add(proc.pid)
    if pidfile is not None:
        pidfile.write_text(str(proc.pid))
    watch = disk.watch(jail.spec, proc) if jail else None  # ends it past `[sandbox] disk_mb`
    assert proc.stdout is not None
    with proc.stdout as pipe:
        _widen(pipe.fileno())
        timed_out = _pump(proc, pipe.fileno(), kept, start + timeout)
        if timed_out:
            _kill_group(proc)
            _pump(proc, pipe.fileno(), kept, time.monotonic())
            kept.add(f"\n[jackline] timed out after {timeout:.0f}s\n".encode())
    if watch is not None and watch.stop():
        kept.add(disk.message(watch.disk_mb).encode())
    code = proc.wait()
    _groups.discard(proc.pid)
    kept.close()
    if _halted.is_set():
        threading.Event().wait()  # killed by `halt`: no outcome of this command is reported
    return Completed(
        argv, code, time.monotonic() - start, kept.text(OUTPUT), timed_out, kept.dropped
    )


def _pump(proc: subprocess.Popen[bytes], fd: int, kept: Kept, deadline: float) -> bool:
    """Read the command's output into `kept` until the pipe closes, or the command has exited
    and its output stops (see `IDLE`, `GRACE`); True if `deadline` came first."""
    exited: float | None = None
    quiet_since = time.monotonic()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exited is None and proc.poll() is not None:
                exited = now
            if exited is None and now >= deadline:
                return True
            if exited is not None and (now - quiet_since >= IDLE or now - exited >= GRACE):
                return False
            if sel.select(timeout=IDLE if exited is not None else min(IDLE, deadline - now)):
                chunk = os.read(fd, _PIPE)
                if not chunk:
                    return False
                kept.add(chunk)
                quiet_since = time.monotonic()


def _widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size for this user: the default pipe does


class Kept:
    """A command's output as its log keeps it: `header`, the first `HEAD` bytes (written as
    they come), then, past those, a line saying how many bytes were dropped and the last `TAIL`
    bytes (written every `FLUSH` seconds and at the end, over the previous ones)."""

    def __init__(self, out: BinaryIO, header: bytes) -> None:
        self.out = out
        self.header = header
        self.head = bytearray()
        self.rest = bytearray()
        self.dropped = 0
        self.flushed = time.monotonic()
        out.write(header)
        out.flush()

    def add(self, data: bytes) -> None:
        room = HEAD - len(self.head)
        if room > 0:
            self.head += data[:room]
            self.out.write(data[:room])
            self.out.flush()
            data = data[room:]
        if data:
            self.rest += data
            if len(self.rest) >= 2 * TAIL:
                self._trim()
            if time.monotonic() - self.flushed >= FLUSH:
                self._write_tail()

    def close(self) -> None:
        if self.rest:
            self._write_tail()

    def text(self, chars: int) -> str:
        """The end of what was kept (header, head, the dropped line, tail), as text."""
        kept = self.header + self.head + dropped_line(self.dropped).encode() + self.rest
        return kept[-4 * chars :].decode(errors="replace")[-chars:]

    def _trim(self) -> None:
        cut = len(self.rest) - TAIL
        if cut > 0:
            del self.rest[:cut]
            self.dropped += cut

    def _write_tail(self) -> None:
        self._trim()
        self.out.seek(len(self.header) + len(self.head))
        self.out.write(dropped_line(self.dropped).encode())
        self.out.write(self.rest)
        self.out.truncate()
        self.out.flush()
        self.flushed = time.monotonic()


def _open_gate(
    proc: subprocess.Popen[bytes], bounds: list[tuple[int, int]], group: Path | None
) -> None:
    """Limit the command waiting behind `GATE`, then let it start; if that fails, it ends
    without having run (and the error goes on)."""
    assert proc.stdin is not None
    try:
        apply_rlimits(proc.pid, bounds)
        if group is not None:
            cgroup.add(group, proc.pid)
        proc.stdin.write(b"\n")
        proc.stdin.flush()
    except BaseException:  # not only OSError: a gate left shut would wait on its input for ever
        proc.stdin.close()
        proc.wait()
        raise
    proc.stdin.close()


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
    """End the process group a crashed harness left behind (see `run(pidfile=...)`), or the
    one a person cancelled. A leader of that number who started after the file was written is
    another program's (the number was reused): it is left alone. While any process of the
    group lives, the kernel gives its number to no new process."""
    try:
        pgid = int(pidfile.read_text())
        written = pidfile.stat().st_mtime
    except (OSError, ValueError):
        return
    if pgid <= 1 or _started(pgid) > written + 1:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _started(pid: int) -> float:
    """When the process started (seconds since the epoch); 0 for one that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return 0.0
    return boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")


def halt() -> None:
    """End every command this process started and has not seen end, for a process going down
    (Ctrl-C): their threads never return, so no step records a death the harness caused as
    the command's outcome, and a resumed run starts that round again."""
    _halted.set()
    for pgid in list(_groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


_groups: set[int] = set()
"""The process groups of the commands this process runs now."""
_halted = threading.Event()
