"""A bound on what a command adds to its workspace: `[sandbox] disk_mb`.

Walking a workspace is costly (a `node_modules` holds a hundred thousand files) and a file
system's free space is shared with everything else on the machine, so the watcher uses each for
what it is good at. Four times a second it asks the file systems the command may write for their
free space (one call each): until they have lost `disk_mb` between them since the command
started, the command cannot have added that much, and nothing more is done. Once they have, it
walks the folders the command may write and adds up the files changed since it started (their
change time, which a command cannot set back); past `disk_mb`, it ends the command's process
group and says why. If not (another process wrote the rest), it waits for the free space to drop
by what is still allowed before walking again. Free space is a net figure: what other processes
free at the same time (a finished run's workspace removed) hides as much of what the command
writes. So it also walks on a clock, every `POLL` while a walk is cheap and never more than a
tenth of the time (a large workspace is walked less often).

The walk only looks (`lstat`, never opening a file or following a link), so a hostile workspace
cannot turn it into anything else. One file is also capped at `disk_mb` by `RLIMIT_FSIZE`
(`sandbox.limits`), which holds between two looks.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

from jackline.sandbox import Spec

POLL = 0.25
"""Seconds between two looks at the free space."""
WALK_SHARE = 10
"""A walk on the clock comes at most once per this many times the last walk's duration."""
MB = 1024 * 1024


def message(disk_mb: int) -> str:
    """What the command's log says when the watcher ended it."""
    return (
        f"\n[jackline] the workspace grew past [sandbox] disk_mb = {disk_mb} (MiB); "
        "the command was ended\n"
    )


class Watch:
    """Watches one running command (see the module's docstring); `stop` when it has exited."""

    def __init__(self, spec: Spec, proc: subprocess.Popen[bytes]) -> None:
        self.limit = spec.disk_mb * MB
        self.disk_mb = spec.disk_mb
        self.folders = writable(spec)
        self.proc = proc
        # Change times come from the kernel's coarse clock: a little slack keeps a file written
        # in the command's first instant from passing as older.
        self.since = time.time() - 1.0
        self.free = _free(self.folders)
        self.allowed = self.limit  # what the free space may drop by before the next walk
        self.next_walk = time.monotonic() + POLL  # the next walk on the clock
        self.ended = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="jackline-disk", daemon=True)
        self._thread.start()

    def stop(self) -> bool:
        """Stop watching; True if the watcher ended the command."""
        self._done.set()
        self._thread.join()
        return self.ended

    def _watch(self) -> None:
        while not self._done.wait(POLL):
            free = _free(self.folders)
            if self.free - free < self.allowed and time.monotonic() < self.next_walk:
                continue
            started = time.monotonic()
            added = changed_since(self.folders, self.since)
            spent = time.monotonic() - started
            self.next_walk = time.monotonic() + max(POLL, WALK_SHARE * spent)
            # Past the bound, not at it: one file `RLIMIT_FSIZE` stopped at exactly `disk_mb`
            # was refused already (the command is told "File too large" and may go on), and
            # ending the command as well raced that refusal under load.
            if added > self.limit:
                self._end()
                return
            self.free, self.allowed = free, self.limit - added

    def _end(self) -> None:
        if self.proc.poll() is not None:
            return  # it exited on its own: its process group may be another's by now
        self.ended = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def watch(spec: Spec, proc: subprocess.Popen[bytes]) -> Watch | None:
    """A watcher for `proc`, if `spec` bounds its disk use."""
    return Watch(spec, proc) if spec.disk_mb > 0 else None


def writable(spec: Spec) -> tuple[Path, ...]:
    """The host folders a command in `spec` may write (its in-memory folders aside)."""
    from jackline.sandbox.bubblewrap import socket_folders

    return (spec.workspace, *spec.writable, *socket_folders(spec))


def _free(folders: tuple[Path, ...]) -> int:
    """Bytes free, summed over the distinct file systems that hold `folders`."""
    seen: dict[int, int] = {}
    for folder in folders:
        try:
            dev = os.stat(folder).st_dev
            if dev not in seen:
                got = os.statvfs(folder)
                seen[dev] = got.f_bfree * got.f_frsize
        except OSError:
            continue
    return sum(seen.values())


def changed_since(folders: tuple[Path, ...], since: float) -> int:
    """Bytes on disk of the files under `folders` changed since `since`, each counted once
    (hard links), without following a link or opening a file."""
    total = 0
    counted: set[tuple[int, int]] = set()
    todo = [str(f) for f in folders]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue  # removed or made unreadable under us: what is gone adds nothing
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                todo.append(entry.path)
            if st.st_ctime < since or (st.st_dev, st.st_ino) in counted:
                continue
            counted.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total
