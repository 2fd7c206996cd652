"""Overlay mounts, made and undone with the system calls themselves (no `mount` process):
a warm workspace over its snapshot (`workspaces.overlay`) and the checks' bytecode over its
seed (`checks.bytecode`). Mounting needs privilege (root, here); a refusal is an `OSError`.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

UNSAFE = frozenset(",:\\")
"""Characters an overlay's folder names cannot hold (its options' separators)."""
_MNT_DETACH = 2


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def overlay(lower: Path, upper: Path, work: Path, at: Path) -> None:
    """Mount at `at` the overlay of the read-only `lower` with `upper` taking every write."""
    folders = (str(lower), str(upper), str(work))
    if any(UNSAFE.intersection(f) for f in folders):
        raise OSError(f"an overlay cannot name these folders: {folders}")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    if _libc().mount(b"overlay", os.fsencode(at), b"overlay", 0, options) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(at))


def unmount(at: Path) -> None:
    """Unmount; if the mount is busy (a process still has a file open there), detach it now,
    freed when that lets go."""
    if _libc().umount2(os.fsencode(at), 0) != 0:
        _libc().umount2(os.fsencode(at), _MNT_DETACH)
