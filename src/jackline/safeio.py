"""Reading what a sandboxed command could have written, without trusting it.

After an agent or a check has run, its workspace is hostile: any file may be a symbolic link to
`/etc/shadow`, a FIFO that blocks the reader forever, or 10 GiB of output. Everything the harness
reads from such a folder goes through here: each component of the path is opened relative to the
one before with `O_NOFOLLOW` (a link anywhere below `root` is refused, not followed), only a
regular file is read, and never more than `limit` bytes. `root` itself is the harness's choice
and is trusted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

LIMIT = 1_000_000
"""Bytes read at most unless the caller says otherwise."""

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _parts(rel: str | PurePosixPath | Path) -> tuple[str, ...] | None:
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or any(p in ("..", ".") for p in parts):
        return None
    return parts


def _open_dir(root: Path, parts: tuple[str, ...]) -> int | None:
    """A descriptor of root/parts..., every step a real directory, or None."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    for part in parts:
        try:
            nxt = os.open(part, _DIR, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nxt
    return fd


def read_bytes(root: Path, rel: str | PurePosixPath | Path, limit: int = LIMIT) -> bytes | None:
    """The first `limit` bytes of the regular file `root/rel`; None when it is missing, is not a
    regular file, or a link stands anywhere on the way to it."""
    parts = _parts(rel)
    if parts is None:
        return None
    fd = _open_dir(root, parts[:-1])
    if fd is None:
        return None
    try:
        try:
            # lstat first: opening a device or a FIFO can itself have effects.
            if not stat.S_ISREG(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode):
                return None
            ffd = os.open(parts[-1], _FILE, dir_fd=fd)
        except OSError:
            return None
    finally:
        os.close(fd)
    with os.fdopen(ffd, "rb") as f:
        if not stat.S_ISREG(os.fstat(ffd).st_mode):  # swapped between the stat and the open
            return None
        return f.read(limit)


def size(root: Path, rel: str | PurePosixPath | Path) -> int | None:
    """The size of the regular file `root/rel` (read as `read_bytes` would), or None."""
    parts = _parts(rel)
    if parts is None:
        return None
    fd = _open_dir(root, parts[:-1])
    if fd is None:
        return None
    try:
        st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(fd)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def read_text(root: Path, rel: str | PurePosixPath | Path, limit: int = LIMIT) -> str | None:
    """`read_bytes` as text (undecodable bytes replaced). A file longer than `limit` is cut, and
    the cut is said in the text itself, so no reader mistakes a part for the whole."""
    data = read_bytes(root, rel, limit + 1)
    if data is None:
        return None
    if len(data) <= limit:
        return data.decode("utf-8", errors="replace")
    whole = size(root, rel)
    shown = data[:limit].decode("utf-8", errors="replace")
    return shown + f"\n[jackline: cut at {limit} bytes of {whole if whole else 'more'}]\n"


def is_dir(root: Path, rel: str | PurePosixPath | Path) -> bool:
    """Whether `root/rel` is a folder reached through no link."""
    parts = _parts(rel)
    if parts is None:
        return False
    fd = _open_dir(root, parts)
    if fd is None:
        return False
    os.close(fd)
    return True


def is_file(root: Path, rel: str | PurePosixPath | Path) -> bool:
    """Whether `root/rel` is a regular file reached through no link."""
    return size(root, rel) is not None


def files(root: Path, rel: str | PurePosixPath | Path = ".", limit: int = 10_000) -> list[str]:
    """The names of the regular files directly in the folder `root/rel` (no link followed on the
    way, links inside not listed), sorted; at most `limit` of them."""
    parts = () if str(rel) in ("", ".") else _parts(rel)
    if parts is None:
        return []
    fd = _open_dir(root, parts)
    if fd is None:
        return []
    try:
        out = []
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    out.append(entry.name)
                    if len(out) >= limit:
                        break
        return sorted(out)
    finally:
        os.close(fd)


def write_text(root: Path, rel: str | PurePosixPath | Path, text: str, mode: int = 0o644) -> None:
    """Write `root/rel` (making its folders) without following a link anywhere below `root`:
    a link, FIFO or folder standing where a folder or the file should be is removed first, so
    the write lands in the workspace and nowhere else. For the harness's writes into a folder a
    sandboxed command could have written (a preset's rules file, say)."""
    parts = _relative(root, rel)
    fd = _make_dirs(root, parts[:-1])
    try:
        _remove(fd, parts[-1])
        out = os.open(parts[-1], _NEW, mode, dir_fd=fd)
        with os.fdopen(out, "w", encoding="utf-8") as f:
            f.write(text)
    finally:
        os.close(fd)


def mount_point(root: Path, rel: str | PurePosixPath | Path, folder: bool) -> None:
    """Make `root/rel` a real folder (or an empty regular file) for the sandbox to bind over,
    whatever stood there: a link there would move the mount elsewhere in the sandbox's view."""
    parts = _relative(root, rel)
    if folder:
        os.close(_make_dirs(root, parts))
        return
    fd = _make_dirs(root, parts[:-1])
    try:
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                return
            _remove(fd, parts[-1])
        except FileNotFoundError:
            pass
        os.close(os.open(parts[-1], _NEW, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _relative(root: Path, rel: str | PurePosixPath | Path) -> tuple[str, ...]:
    parts = _parts(rel)
    if parts is None:
        raise ValueError(f"{rel!r} is not a relative path inside {root}")
    return parts


def _make_dirs(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of root/parts..., each part made a real folder on the way: whatever else
    stands there (a link, a file) is removed first."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR, dir_fd=fd)
            except OSError:
                _remove(fd, part)
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove(root: Path, rel: str | PurePosixPath | Path) -> bool:
    """Remove whatever stands at `root/rel` (a folder with all it holds), reached through no
    link; True if something was removed."""
    parts = _parts(rel)
    if parts is None:
        return False
    fd = _open_dir(root, parts[:-1])
    if fd is None:
        return False
    try:
        try:
            os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        _remove(fd, parts[-1])
        return True
    finally:
        os.close(fd)


def _remove(dir_fd: int, name: str) -> None:
    """Remove whatever stands at `name` in the folder `dir_fd` (a folder with its contents, never
    following a link out of it)."""
    import shutil

    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
