"""A process limit that holds for root too: the cgroup `pids` controller.

`RLIMIT_NPROC` is what a sandboxed command gets everywhere, but the kernel exempts uid 0 from it,
and a harness run as root (a container, a CI runner) would leave the agent free to fork without
end. Where this process may make cgroups under a `pids` controller (cgroup v1's
`/sys/fs/cgroup/pids`, or cgroup v2 with `pids` delegated to the cgroup this process is in), each
sandboxed command gets a cgroup of its own with `pids.max` set, joined before the command starts
(so bubblewrap and everything under it count), and removed when the command is done. Elsewhere
`limit` makes nothing and the rlimit stays the only bound.
"""

from __future__ import annotations

import functools
import os
import signal
import time
import uuid
from pathlib import Path

V1 = Path("/sys/fs/cgroup/pids")
REMOVE_WAIT = 1.0
"""Seconds `remove` waits at most for what it killed to leave the group."""
V2 = Path("/sys/fs/cgroup")


@functools.cache
def parent() -> Path | None:
    """Where this process may make a `pids` cgroup, or None."""
    for candidate in (_v1(), _v2()):
        if candidate is None:
            continue
        probe = candidate / f"jackline-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            if (probe / "pids.max").exists():
                return candidate
        finally:
            probe.rmdir()
    return None


def _v1() -> Path | None:
    return V1 if (V1 / "cgroup.procs").exists() else None


def _v2() -> Path | None:
    try:
        line = next(
            x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::")
        )
    except (OSError, StopIteration):
        return None
    own = V2 / line[3:].lstrip("/")
    controls = own / "cgroup.subtree_control"
    try:
        return own if "pids" in controls.read_text().split() else None
    except OSError:
        return None


def limit(max_processes: int) -> Path | None:
    """A fresh cgroup allowing `max_processes` processes, or None where none can be made."""
    base = parent() if max_processes > 0 else None
    if base is None:
        return None
    _sweep(base)
    group = base / f"jackline-{uuid.uuid4().hex[:12]}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(max_processes))
    except OSError:
        return None
    return group


def join(group: Path) -> None:
    """Move the calling process into `group` (called in the child, before it execs)."""
    add(group, os.getpid())


def add(group: Path, pid: int) -> None:
    """Move the process `pid` into `group` (before it runs the command: see `proc.GATE`)."""
    with open(group / "cgroup.procs", "w") as f:
        f.write(str(pid))


def own_move(group: Path) -> Path | None:
    """The file through which a single-threaded process moves itself into `group` by writing
    `0` to it, where that is cheaper than `add`: cgroup v1's `tasks`. Moving another process,
    or a whole thread group, takes the kernel's global `cgroup_threadgroup_rwsem` for writing,
    which waits for an RCU grace period unless another move came a few milliseconds before:
    7-15 ms of wall time (no CPU) for nearly every command, measured on this machine's kernel
    (6.18). A thread moving itself skips that lock (`cgroup_procs_write_start`). cgroup v2 has
    no such move across domains (a process is moved from outside, `add`): None."""
    return group / "tasks" if group.is_relative_to(V1) else None


def remove(group: Path) -> None:
    """Kill what is left in `group` (a daemon the command started), then remove it.

    Usually what is left is only the sandbox's own init, still exiting: bubblewrap's outer
    process returns the command's exit code before it has gone. So the first looks come soon
    after one another (1, 2, 4 ms ...), not a fixed 20 ms apart, which under load a quarter
    of the commands waited for. At most `REMOVE_WAIT` seconds in all."""
    deadline = time.monotonic() + REMOVE_WAIT
    pause = 0.001
    while True:
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(pause)
        pause = min(2 * pause, 0.02)
    try:
        group.rmdir()
    except OSError:
        pass


def _sweep(base: Path, older_than: float = 60.0) -> None:
    """Remove the empty cgroups of commands whose harness was killed before it could (a cgroup
    only goes when empty; a young one may be another command's, about to be joined)."""
    now = time.time()
    for group in base.glob("jackline-*"):
        try:
            if now - group.stat().st_mtime > older_than:
                group.rmdir()
        except OSError:
            continue
