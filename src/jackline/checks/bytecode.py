"""One bytecode cache for all the checks of a run.

Checks write compiled bytecode to one folder of the run's (`PYTHONPYCACHEPREFIX`), in the run's
own folder on the host: bound writable into each check's sandbox and into no agent's, so an
agent cannot leave bytecode there for the checks to run in place of the code they judge (a
`.pyc` of pytest's that passes every test, say). It lasts the whole run: a second round's pytest
does not compile pytest, the standard library and the project again (about 2 s a check on a
loaded machine).

Python trusts a cached `.pyc` whose source has the same size and the same second of mtime,
which an agent's quick edit often has (`a - b` to `a + b`). So before each check, the bytecode
of every workspace file that differs between the tree the check judges and a tree the cache has
seen is removed; what lies outside the workspace is read-only in the sandbox and cannot change
during a run. Files git ignores are not compared (a virtualenv set-up made stays cached).

The harness only removes files from the cache, through `safeio` (a link a check's code planted
there is removed or passed over, never followed), and never reads or runs what is there: what
the cache holds was written by the run's sandboxed checks, and only they read it. (Code a check
runs may write there as it may write the workspace: the agent's code, which that round's diff
shows; it has no power in a later check that it did not have in its own.)

A run's checks start from the seed (`seed`): bytecode the harness compiled itself, on the
host, of the standard library and installed packages of its own Python, never of a workspace.
Without it every run's first check compiled pytest and the standard library again (about 500
modules, 1.5 to 2 s). The seed learns which modules checks import from the names a check's
bytecode has in the run's cache (names only: the harness compiles the source itself, from its
own Python's folders, and reads nothing the check wrote). A check may rewrite what its cache
holds, and no other run may see that, so the seed is never linked into a run's cache:

- where this process may mount (root), a check sees the cache through a kernel overlay
  (`viewed`), mounted for the check and unmounted after it: the seed is its read-only lower
  layer and the run's cache its upper layer, which takes every write. The seed is shared, not
  copied (copying it was 10 MB written and 85 to 280 ms of CPU a run). A seed a concurrent run
  adds to while mounted is at worst not seen (the check compiles that module itself): what the
  harness writes there is whole (`py_compile` renames into place) and Python checks each
  `.pyc` against its source.
- elsewhere the run's cache starts as a copy of the seed (`start`).
"""

from __future__ import annotations

import contextlib
import os
import py_compile
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath

from jackline import git, mounts, paths, safeio
from jackline.errors import CommandFailed

CACHE = "pycache"
"""The cache, in the run's own folder."""
VIEW = "pycache.view"
"""Where a check sees the cache over the seed (`viewed`), in the run's own folder."""
WORK = "pycache.work"
"""The overlay's work folder, in the run's own folder."""
SEEN = "bytecode.trees"
"""In the run's own folder (the harness's, never the workspace): the trees whose files the
cache may hold bytecode of, one a line."""


TAG = sys.implementation.cache_tag
LEARN_LIMIT = 20_000
"""Names (files and folders) of a run's cache looked at after a check, at most (a check could
write millions, or nest folders as deep as the file system lets it)."""


def seed() -> Path:
    """The seed: `$JACKLINE_BYTECODE_SEED`, else `bytecode/` in Jackline's home; one folder
    per Python (its cache tag), laid out as `PYTHONPYCACHEPREFIX` lays bytecode out."""
    base = os.environ.get("JACKLINE_BYTECODE_SEED") or paths.home() / "bytecode"
    return Path(base) / TAG


def start(cache: Path) -> None:
    """Before a run's first check: its cache, a copy of the seed (an empty folder if there is
    no seed yet). A cache that exists is the run's own and stays as it is. The copy is made
    beside it and renamed into place whole: a harness killed halfway through copying left a
    cache with a truncated `.pyc`, which every later check of the run then failed to load
    ("marshal data too short"); now it leaves a partial copy that the next start removes."""
    if cache.exists():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    for partial in cache.parent.glob(f"{cache.name}.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)
    if not seed().is_dir():
        cache.mkdir()
        return
    partial = cache.with_name(f"{cache.name}.partial-{os.getpid()}")
    shutil.copytree(seed(), partial, symlinks=True)
    os.rename(partial, cache)


@contextlib.contextmanager
def viewed(cache: Path) -> Iterator[Path]:
    """The folder a check's `PYTHONPYCACHEPREFIX` names while the check runs: the seed with the
    run's `cache` over it (see the module's docstring), or, where no overlay can be mounted,
    the cache itself, a copy of the seed (`start`)."""
    view, work = cache.with_name(VIEW), cache.with_name(WORK)
    if _overlay["ok"]:
        if os.path.ismount(view):  # a harness killed during a check left it
            mounts.unmount(view)
        lower = seed()
        for folder in (lower, cache, work, view):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            mounts.overlay(lower, cache, work, view)
        except OSError:
            _overlay["ok"] = False  # not here: copies from now on
        else:
            try:
                yield view
            finally:
                mounts.unmount(view)
            return
    start(cache)
    yield cache


_overlay = {"ok": True}
"""Whether this process may mount the seed's overlay (it stops trying after a refusal)."""


def learn(cache: Path, inside: Path) -> int:
    """After a check: compile into the seed the modules of this Python's own libraries whose
    bytecode the run's cache holds and the seed lacks (or holds for an older source). Returns
    how many were compiled. Reads the cache's names only, without following a link; what lies
    under `inside` (the workspace as the check saw it) is never looked at."""
    compiled = 0
    for source in _named_sources(cache, inside):
        target = seed() / str(source.parent).lstrip("/") / f"{source.stem}.{TAG}.pyc"
        if _fresh(target, source):
            continue
        try:
            py_compile.compile(str(source), cfile=str(target), doraise=True)
        except (OSError, py_compile.PyCompileError, ValueError):
            continue  # a source that does not compile: the checks compile it each run
        compiled += 1
    return compiled


def _named_sources(cache: Path, inside: Path) -> list[Path]:
    """The sources of this Python's libraries that the cache's names point at."""
    skip = cache / str(inside).lstrip("/")
    seeded = seed()
    out: list[Path] = []
    seen = 0
    for folder, dirs, files in os.walk(cache):  # os.walk descends into no link
        if Path(folder) == skip:
            dirs.clear()
            continue
        seen += len(dirs)
        if seen > LEARN_LIMIT:
            return out
        relative = Path(folder).relative_to(cache)
        for name in files:
            seen += 1
            if seen > LEARN_LIMIT:
                return out
            stem, dot, rest = name.partition(".")
            if rest == f"{TAG}.pyc" and dot:
                if _as_copied(Path(folder, name), seeded / relative / name):
                    continue  # the seed's own, copied in at the start: nothing to learn
                source = Path("/", relative, f"{stem}.py")
                if _trusted(source):
                    out.append(source)
    return out


def _as_copied(held: Path, seeded: Path) -> bool:
    """The cache's file is the seed's as `start` copied it (same size and modification time,
    which copying keeps): most of a cache, and two stats instead of resolving its source."""
    try:
        a, b = os.lstat(held), os.stat(seeded)
    except OSError:
        return False
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def _trusted(source: Path) -> bool:
    """A regular file of this Python's standard library or installed packages."""
    try:
        real = source.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return real.is_file() and any(real.is_relative_to(root) for root in _roots())


@cache
def _roots() -> tuple[Path, ...]:
    found = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple({Path(found[k]).resolve() for k in keys if k in found})


def _fresh(target: Path, source: Path) -> bool:
    """The seed holds bytecode of `source` as it is now (the mtime and size in its header)."""
    try:
        with target.open("rb") as f:
            header = f.read(16)
        st = source.stat()
    except OSError:
        return False
    stamp = (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
    size = (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    return len(header) == 16 and header[8:12] == stamp and header[12:16] == size


def forget_changed(ws: Path, run_dir: Path, inside: Path, tree: str) -> None:
    """Before a check of `tree`: remove from the run's cache the bytecode of the workspace's
    files that differ from a tree seen before (all of the workspace's when none was, or the
    difference cannot be read), where the checks see the workspace at `inside`. `tree` is then
    the one seen."""
    mirror = PurePosixPath(CACHE, str(inside).lstrip("/"))
    seen = run_dir / SEEN
    trees = set(seen.read_text().split()) if seen.exists() else set()
    changed: set[str] = set()
    try:
        for old in trees - {tree}:
            changed |= _differ(ws, old, tree)
    except CommandFailed:
        trees = set()
    if not trees:
        safeio.remove(run_dir, mirror)
    for path in sorted(changed):
        forget(run_dir, mirror, PurePosixPath(path))
    seen.parent.mkdir(parents=True, exist_ok=True)
    seen.write_text(tree + "\n")


def saw(seen: Path, tree: str) -> None:
    """A check left the workspace as `tree` (before the harness put the work back): the cache
    may hold its bytecode, which the next check's `forget_changed` compares against."""
    with seen.open("a") as f:
        f.write(tree + "\n")


def forget(run_dir: Path, mirror: PurePosixPath, path: PurePosixPath) -> None:
    """Remove the bytecode of the workspace file `path` from the cache's copy of the workspace
    at `mirror`: `calc.cpython-311.pyc`, `calc.cpython-312.opt-1.pyc`, pytest's rewritten
    `test_calc.cpython-311-pytest-9.0.3.pyc`, whichever Python the checks ran."""
    if path.suffix not in (".py", ".pyw"):
        return
    folder = mirror / path.parent
    for name in safeio.files(run_dir, folder):
        if name.startswith(f"{path.stem}.") and name.endswith(".pyc"):
            safeio.remove(run_dir, folder / name)


def _differ(ws: Path, old: str, new: str) -> set[str]:
    out = git.git_bytes(ws, "diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new)
    return set(git.z_paths(out))
