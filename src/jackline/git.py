"""Git itself, called as a program. Every harness-side git call goes through `git()`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from jackline.errors import CommandFailed, NotFound

# The harness's own commits must not depend on the user's global config or hooks.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Jackline",
    "GIT_AUTHOR_EMAIL": "jackline@localhost",
    "GIT_COMMITTER_NAME": "Jackline",
    "GIT_COMMITTER_EMAIL": "jackline@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}


# Options on every harness-side git call: no hook, no file-system monitor, no submodule's own git
# run (a nested repository's config could name a program), paths never quoted.
SAFE = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "diff.ignoreSubmodules=all",
    "-c",
    "submodule.recurse=false",
    "-c",
    "core.quotePath=false",
)

# Variables that would point git at another repository than the one named.
_REPOSITORY_VARIABLES = frozenset(
    (
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    )
)

# Marks a git directory as the harness's own (see `gitdir`).
MARKER = "jackline-gitdir"

# For a tree Jackline made: no configuration but the harness's own git directory's.
_ISOLATED = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


def gitdir_path(tree: Path) -> Path:
    """Where the harness keeps the git directory of a tree it makes (a workspace, a snapshot's
    tree): beside it, never inside. Inside is the agent's: what it wrote there is never read."""
    return tree.with_name(tree.name + ".git")


def gitdir(tree: Path) -> Path | None:
    """The harness's own git directory of `tree`, or None for any other repository (the user's)."""
    tree = Path(os.path.abspath(tree))
    if not tree.name:
        return None
    d = gitdir_path(tree)
    return d if (d / MARKER).is_file() else None


def adopt(tree: Path) -> Path:
    """Mark `gitdir_path(tree)` as the harness's own, and clear the tree's `.git` (a clone's
    pointer to it): what stands there from now on is the commands' (see `lay_agent_gitdir`)."""
    from jackline import safeio

    d = gitdir_path(tree)
    (d / MARKER).write_text("the harness's git directory of the tree beside it\n")
    safeio.remove(tree, ".git")
    return d


def _call(repo: Path, env: dict[str, str] | None) -> tuple[list[str], dict[str, str]]:
    """The argv prefix and environment of a git call on `repo`: for a tree Jackline made, its
    own git directory and work tree named outright, so git never looks for either in the tree."""
    inherited = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    full = {**inherited, **_IDENTITY, **(env or {})}
    d = gitdir(repo)
    if d is None:
        return ["git", "-C", str(repo), *SAFE], full
    full.update(_ISOLATED, GIT_DIR=str(d), GIT_WORK_TREE=str(repo))
    return ["git", "-C", str(repo), *SAFE], full


def git(
    repo: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    strip: bool = True,
) -> str:
    prefix, full = _call(repo, env)
    argv = [*prefix, *args]
    # Paths and file contents need not be UTF-8: kept, never a decoding error.
    proc = subprocess.run(
        argv, capture_output=True, encoding="utf-8", errors="surrogateescape", env=full
    )
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout.strip() if strip else proc.stdout


def ok(repo: Path, *args: str) -> bool:
    prefix, full = _call(repo, None)
    return subprocess.run([*prefix, *args], capture_output=True, env=full).returncode == 0


def git_bytes(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    """`git()` for output that is not text: file contents, and paths, which are bytes (a name
    need not be UTF-8) and are read NUL-separated (`-z`) with `z_paths`."""
    prefix, full = _call(repo, None)
    argv = [*prefix, *args]
    proc = subprocess.run(argv, input=input, capture_output=True, env=full)
    if proc.returncode != 0:
        raise CommandFailed(
            argv, proc.returncode, os.fsdecode(proc.stdout), proc.stderr.decode(errors="replace")
        )
    return proc.stdout


@contextmanager
def objects_only(repo: Path) -> Iterator[Callable[..., bytes]]:
    """`git_bytes` on the repository's objects alone: git runs from an empty folder named as the
    work tree, and reads no file of the working tree. A diff of two trees still reads the work
    tree's `.gitattributes`, so an agent's `* -diff` there would turn every file of its change
    into "Binary files differ", with no line left for a scan to read."""
    _, env = _call(repo, None)
    where = gitdir(repo) or Path(git(repo, "rev-parse", "--absolute-git-dir"))
    with tempfile.TemporaryDirectory(prefix="jackline-git-") as empty:
        env.update(GIT_DIR=str(where), GIT_WORK_TREE=empty)

        def run(*args: str) -> bytes:
            argv = ["git", "-C", empty, *SAFE, *args]
            proc = subprocess.run(argv, capture_output=True, env=env)
            if proc.returncode != 0:
                stderr = proc.stderr.decode(errors="replace")
                raise CommandFailed(argv, proc.returncode, os.fsdecode(proc.stdout), stderr)
            return proc.stdout

        yield run


def z_paths(out: bytes) -> list[str]:
    """The fields of `-z` output, each a path as the file system names it (`os.fsdecode`, so an
    undecodable name still round-trips). A newline, a tab, a quote or a non-ASCII letter in a
    name is only safe this way: without `-z` git quotes such a name, and the quoted form names
    no file, matches no glob and escapes every check that compares paths."""
    return [os.fsdecode(f) for f in out.split(b"\0") if f]


def toplevel(path: Path) -> Path:
    try:
        return Path(git(path, "rev-parse", "--show-toplevel"))
    except (CommandFailed, FileNotFoundError):
        raise NotFound(f"{path} is not inside a git repository") from None


def rev(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")


def current_branch(repo: Path) -> str | None:
    out = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return out or None


def dirty_tracked(repo: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not): what a merge could overwrite."""
    fields = iter(z_paths(git_bytes(repo, "status", "--porcelain", "-z", "--untracked-files=no")))
    out = []
    for entry in fields:
        out.append(entry[3:])
        if {"R", "C"} & set(entry[:2]):
            next(fields, None)  # a rename's or copy's source follows as a field of its own
    return out


def changed_paths(repo: Path, base: str) -> list[str]:
    """Every path that differs from `base` in the working tree, untracked files included."""
    tracked = z_paths(git_bytes(repo, "diff", "-z", "--name-only", "--no-renames", base))
    untracked = z_paths(git_bytes(repo, "ls-files", "-z", "--others", "--exclude-standard"))
    return sorted(set(tracked) | set(untracked))


def worktree_tree(repo: Path) -> str:
    """The working tree (minus ignored files) as a tree object, without touching index or HEAD."""
    where = gitdir(repo) or repo / ".git"
    # An index of its own per call: a process cancelling a run and the one driving it may take
    # a tree of the same workspace at once. Seeded from the real index (the harness's, never
    # the agent's), whose file stats let git re-read only the files that changed. The copy keeps
    # the index's own mtime: git re-reads a file written in the same second as the index was
    # ("racily clean"), and a copy dated now would hide an edit of the same size that second.
    index = where / f"jackline-tree-{uuid.uuid4().hex}.index"
    try:
        if (where / "index").is_file():
            shutil.copy2(where / "index", index)
        env = {"GIT_INDEX_FILE": str(index)}
        git(repo, "add", "-A", ".", env=env)
        return git(repo, "write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)


def restore_tree(repo: Path, tree: str) -> None:
    """Make the working tree (minus ignored files) exactly `tree` again; HEAD stays where it is."""
    git(repo, "read-tree", "--reset", "-u", tree)
    git(repo, "clean", "-fdq")
    git(repo, "reset", "-q")


def embedded_repositories(tree: Path) -> list[str]:
    """Folders under `tree` that hold a git repository of their own (git lists them, untracked,
    with a trailing slash and does not look inside): an agent's or a check's, never the harness's.
    Ignored folders are left out: git never reads them."""
    out = git(tree, "ls-files", "-z", "--others", "--exclude-standard", strip=False)
    return sorted(p.rstrip("/") for p in out.split("\0") if p.endswith("/"))


# Where a sandboxed command sees the harness's object store (read-only), outside its workspace.
OBJECTS_INSIDE = Path("/tmp/.jackline-git-objects")


def lay_agent_gitdir(tree: Path, objects_seen_at: Path) -> bool:
    """Give the commands about to run in `tree` a git directory of their own at `tree/.git`,
    made afresh from the harness's: its refs, index and HEAD copied, its objects borrowed
    read-only through `alternates` (at `objects_seen_at`, where the command sees them). An agent
    may commit, stash and reset there as it likes; the harness never reads it and lays a new one
    before the next command. False if `tree` has no git directory of the harness's."""
    from jackline import safeio

    src = gitdir(tree)
    if src is None:
        return False
    safeio.remove(tree, ".git")
    dest = tree / ".git"
    dest.mkdir()
    for name in ("HEAD", "config", "packed-refs", "index", "description"):
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    for name in ("refs", "info"):
        if (src / name).is_dir():
            shutil.copytree(src / name, dest / name, symlinks=True)
    with (dest / "config").open("a") as config:  # a commit needs a name; the home is empty
        config.write("[user]\n\tname = Agent\n\temail = agent@jackline.invalid\n")
    (dest / "objects" / "info").mkdir(parents=True)
    (dest / "objects" / "info" / "alternates").write_text(f"{objects_seen_at}\n")
    return True


def grep_rows(out: bytes, base: str) -> dict[str, list[tuple[int, str]]]:
    """`git grep -z -n` rows, `<base>:<path>NUL<line>NUL<text>LF`, read field by field: a path
    may hold a newline, which only the NUL after it ends."""
    found: dict[str, list[tuple[int, str]]] = {}
    at = 0
    while at < len(out):
        name_end = out.index(b"\0", at)
        number_end = out.index(b"\0", name_end + 1)
        text_end = out.find(b"\n", number_end + 1)
        text_end = len(out) if text_end < 0 else text_end
        path = os.fsdecode(out[at:name_end]).removeprefix(f"{base}:")
        text = out[number_end + 1 : text_end].decode("utf-8", errors="replace")
        found.setdefault(path, []).append((int(out[name_end + 1 : number_end]), text))
        at = text_end + 1
    return found
