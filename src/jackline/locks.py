"""Locks shared by every process of one JACKLINE_HOME: a landing on a repository's main, a
workflow taken over from a dead process. Each is an exclusive `flock` on a file under
`JACKLINE_HOME/locks`, so the kernel lets go when the holder ends, however it ends (`kill -9`
included), and nobody ever has to clear a stale lock by hand.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from jackline import paths


@contextmanager
def held(kind: str, key: str = "") -> Iterator[None]:
    """Wait for the lock `kind` (of `key`, a repository's path say), and hold it in the block.

    The file is named by a hash of the key: a path names no file of its own here. Lock files
    are never removed: removing one while a process waits on it would let a third lock a new
    file beside the waiting one."""
    folder = paths.home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}" if key else kind
    with open(folder / f"{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # closing the file lets go
        yield
