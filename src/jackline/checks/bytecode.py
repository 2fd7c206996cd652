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
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from jackline import git, safeio
from jackline.errors import CommandFailed

CACHE = "pycache"
"""The cache, in the run's own folder."""
SEEN = "bytecode.trees"
"""In the run's own folder (the harness's, never the workspace): the trees whose files the
cache may hold bytecode of, one a line."""


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
