"""Scans: what the change does that CI does not ask about.

A scan is a module with `scan(change, config) -> list[Finding]`. `Change` is the diff between the
run's base commit and the workspace as it stands (untracked files included), read once and shared
by every scan. `scan_change` runs them all; a scan that raises, or whose tool cannot run, becomes
a block-level finding (`scan.error`), never a silent pass.

Which files changed, and under what names, is git's NUL-separated list (`-z`), never the names in
the patch: a patch quotes a name that holds a newline, a tab, a quote or a non-ASCII letter, and a
name with ` b/` in it makes its `diff --git` line ambiguous. A quoted name matches no glob (a new
`.github/workflows/ciX.yml` was no gate edit, a migration no migration). So the patch is cut into
its files at each `diff --git` line (a line of content always starts with `+`, `-` or a space),
the pieces are given the listed names in git's order (one list, one order), and the patch parser
sees only names the harness wrote. git diffs from an empty folder (`git.objects_only`), so no
`.gitattributes` the agent wrote can mark its files binary and hide their lines. Files are read
from the workspace without following a link and within a size bound (`jackline.safeio`); a file
too large to read whole makes the scans that read it fail, which blocks.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from unidiff.patch import PatchedFile, PatchSet

from jackline import git as g
from jackline import safeio
from jackline.config import JacklineConfig
from jackline.models import Finding

LEVELS = {"block": 0, "warn": 1, "info": 2}
READ_LIMIT = 16 * 1024 * 1024
"""Bytes of one workspace file a scan reads at most; a larger file fails the scan reading it."""
DIFF = (
    *("-U0", "-M", "--no-color", "--no-ext-diff", "--no-textconv"),
    *("--src-prefix=a/", "--dst-prefix=b/"),
)
Status = Literal["added", "modified", "deleted", "renamed"]


@dataclass(frozen=True)
class Line:
    number: int
    """Line number: in the new file for an added line, in the old file for a removed one."""
    text: str
    """The line without its newline."""


@dataclass(frozen=True)
class FileChange:
    path: str
    """The file's path after the change (before it, for a deleted file)."""
    status: Status
    old_path: str | None = None
    """The path before the change (None for an added file)."""
    added: tuple[Line, ...] = ()
    removed: tuple[Line, ...] = ()
    binary: bool = False
    patch: str = field(default="", repr=False)
    """This file's hunks of the unified diff, without its header (whose names are git's quoting
    of the paths: `path` is the name)."""


@dataclass
class Change:
    """The change under review: base commit to the workspace's files."""

    root: Path
    base: str
    files: tuple[FileChange, ...]
    diff: str = field(repr=False, default="")
    _old: dict[str, str | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of_workspace(cls, workspace: Path, base: str) -> Change:
        tree = g.worktree_tree(workspace)
        return cls.between(workspace, base, tree)

    @classmethod
    def between(cls, repo: Path, base: str, target: str) -> Change:
        """The change from `base` to `target` (a commit or tree); file texts are read from
        `repo`'s working tree, which must hold `target`."""
        with g.objects_only(repo) as git_objects:
            listed = _listed(git_objects, base, target)
            diff = _decode(git_objects("diff", *DIFF, base, target))
            files = _files(listed, _pieces(diff))
            if files is None:  # git's patch and git's list disagree: read each file on its own
                files = [f for e in listed for f in _one(git_objects, base, target, e)]
        return cls(repo, base, tuple(files), diff)

    def old_text(self, path: str) -> str | None:
        """The file's text at the base commit (None if it did not exist or is not text)."""
        return self.old_texts([path])[path]

    def old_texts(self, paths: list[str]) -> dict[str, str | None]:
        """`old_text` of many files, the ones not read yet read together (one `ls-tree`, one
        `cat-file`), for a scan that asks about files the change did not touch."""
        # The first question reads every changed file's old text too, all in one go.
        first = [f.old_path for f in self.files if f.old_path] if not self._old else []
        missing = [p for p in dict.fromkeys(first + paths) if p not in self._old]
        if missing:
            self._old.update(self._read_base(missing))
        return {p: self._old[p] for p in paths}

    def _read_base(self, paths: list[str]) -> dict[str, str | None]:
        """Read many files of the base commit: their blobs named by `ls-tree -z` (paths taken
        literally), their contents by one `cat-file --batch` (which then sees no path at all)."""
        blobs = self._blobs(paths)
        texts = _blob_texts(self.root, sorted(set(blobs.values())))
        return {p: texts.get(blobs[p]) if p in blobs else None for p in paths}

    def _blobs(self, paths: list[str]) -> dict[str, str]:
        out = {}
        for at in range(0, len(paths), 500):
            listing = g.git_bytes(
                self.root, "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree",
                self.base, "--", *paths[at : at + 500],
            )  # fmt: skip
            for record in listing.split(b"\0"):
                meta, _, name = record.partition(b"\t")
                if meta.split()[1:2] == [b"blob"]:
                    out[os.fsdecode(name)] = meta.split()[2].decode()
        return out

    def new_text(self, path: str) -> str | None:
        """The file's text in the workspace now (None if it is gone, is not text, or a symbolic
        link stands on the way to it: the agent may point one anywhere, and the harness does
        not follow)."""
        data = self.new_bytes(path)
        try:
            return None if data is None else data.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def new_bytes(self, path: str) -> bytes | None:
        """The file's bytes in the workspace now, read as `new_text` reads them. Larger than
        `READ_LIMIT`: an error, so the scan reading it fails, which blocks."""
        data = safeio.read_bytes(self.root, path, READ_LIMIT + 1)
        if data is not None and len(data) > READ_LIMIT:
            raise ValueError(f"{path!r} is larger than {READ_LIMIT} bytes, too large to scan")
        return data

    @cached_property
    def added_lines(self) -> int:
        return sum(len(f.added) for f in self.files)

    @cached_property
    def removed_lines(self) -> int:
        return sum(len(f.removed) for f in self.files)

    @cached_property
    def moved(self) -> frozenset[str]:
        """Stripped texts that were removed in one place and added in another: code that moved,
        which the removed-guard and suppression scans do not report."""
        added = {ln.text.strip() for f in self.files for ln in f.added}
        removed = {ln.text.strip() for f in self.files for ln in f.removed}
        return frozenset((added & removed) - {""})


def _blob_texts(repo: Path, shas: list[str]) -> dict[str, str | None]:
    """Each blob's text (None where it is not UTF-8)."""
    if not shas:
        return {}
    done = g.git_bytes(repo, "cat-file", "--batch", input="".join(f"{b}\n" for b in shas).encode())
    out: dict[str, str | None] = {}
    at = 0
    for sha in shas:
        end = done.index(b"\n", at)
        size = int(done[at:end].split()[2])
        body = done[end + 1 : end + 1 + size]
        at = end + 1 + size + 1
        try:
            out[sha] = body.decode("utf-8")
        except UnicodeDecodeError:
            out[sha] = None
    return out


@dataclass(frozen=True)
class _Listed:
    """One file of git's `--name-status -z` list: the paths as they are."""

    status: Status
    path: str
    old_path: str | None
    pieces: int
    """Patches git prints for it: two for a file that became a link or the other way round
    (a deletion, then a creation), else one."""


_STATUS: dict[str, Status] = {"A": "added", "D": "deleted", "R": "renamed", "C": "added"}


def _listed(git_objects: Callable[..., bytes], base: str, target: str) -> list[_Listed]:
    fields = iter(g.z_paths(git_objects("diff", "-z", "--name-status", "-M", base, target)))
    out = []
    for letter in fields:
        status = _STATUS.get(letter[0], "modified")
        pieces = 2 if letter[0] == "T" else 1
        first = next(fields)
        if letter[0] in "RC":  # a rename or copy: source, then destination
            old = first if status == "renamed" else None
            out.append(_Listed(status, next(fields), old, pieces))
        else:
            out.append(_Listed(status, first, None if status == "added" else first, pieces))
    return out


def _one(git_objects: Callable[..., bytes], base: str, target: str, e: _Listed) -> list[FileChange]:
    """One listed file's diff on its own (both names of a rename, so git still pairs them)."""
    specs = [f":(literal){p}" for p in dict.fromkeys([e.old_path or e.path, e.path])]
    diff = _decode(git_objects("diff", *DIFF, base, target, "--", *specs))
    files = _files([e], _pieces(diff))
    if files is None:
        raise ValueError(f"git's diff of {e.path!r} is not one file's patch")
    return files


def _decode(diff: bytes) -> str:
    # File contents need not be UTF-8; no name is read from the patch.
    return diff.decode("utf-8", errors="replace")


def _pieces(diff: str) -> list[str]:
    """The patch cut into its files, at each line that starts one."""
    starts = [0] if diff.startswith("diff --git ") else []
    at = diff.find("\ndiff --git ")
    while at >= 0:
        starts.append(at + 1)
        at = diff.find("\ndiff --git ", at + 1)
    ends = [*starts[1:], len(diff)] if starts else []
    return [diff[a:b] for a, b in zip(starts, ends, strict=True)]


def _files(listed: list[_Listed], pieces: list[str]) -> list[FileChange] | None:
    """The pieces named by the list, in order; None when they do not pair up."""
    if sum(e.pieces for e in listed) != len(pieces):
        return None
    out: list[FileChange] = []
    at = 0
    for e in listed:
        for piece in pieces[at : at + e.pieces]:
            patches = PatchSet.from_string(_anonymous(piece))
            if len(patches) != 1:
                return None
            out.append(_file(patches[0], e))
        at += e.pieces
    return out


def _anonymous(piece: str) -> str:
    """The piece with every name in its header replaced by `f`: the names are the list's, and
    the parser then has nothing to misread (`a/x b/y b/x b/y` is two names or four)."""
    head, sep, body = piece.partition("\n@@ ")
    lines = []
    for line in head.split("\n"):
        if line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            continue
        if line.startswith("diff --git "):
            line = "diff --git a/f b/f"
        elif line.startswith(("--- ", "+++ ")) and line[4:] != "/dev/null":
            line = line[:4] + ("a/f" if line[0] == "-" else "b/f")
        elif line.startswith("Binary files "):
            line = "Binary files a/f and b/f differ"
        lines.append(line)
    return "\n".join(lines) + sep + body


def _file(pf: PatchedFile, e: _Listed) -> FileChange:
    status: Status = "added" if pf.is_added_file else "deleted" if pf.is_removed_file else e.status
    added, removed = [], []
    for hunk in pf:
        for line in hunk:
            text = line.value.rstrip("\n").rstrip("\r")
            if line.is_added:
                added.append(Line(line.target_line_no or 0, text))
            elif line.is_removed:
                removed.append(Line(line.source_line_no or 0, text))
    return FileChange(
        path=e.old_path or e.path if status == "deleted" else e.path,
        status=status,
        old_path=None if status == "added" else e.old_path or e.path,
        added=tuple(added),
        removed=tuple(removed),
        binary=pf.is_binary_file,
        patch="".join(str(h) for h in pf),
    )


Scan = Callable[[Change, JacklineConfig], list[Finding]]


def registry() -> dict[str, Scan]:
    """Every scan, by name, in the order they run."""
    from jackline.scans import (
        dependencies,
        guards,
        migrations,
        scope,
        suppressions,
        weakenings,
    )

    return {
        "scope": scope.scan,
        "migrations": migrations.scan,
        "guards": guards.scan,
        "suppressions": suppressions.scan,
        "weakenings": weakenings.scan,
        "dependencies": dependencies.scan,
    }


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    timings: dict[str, float]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "block")


def run_scans(
    change: Change,
    config: JacklineConfig,
    scans: dict[str, Scan] | None = None,
) -> Report:
    """Run every scan over the change. A scan that fails is a block-level finding."""
    findings: list[Finding] = []
    timings: dict[str, float] = {}
    for name, fn in (scans or registry()).items():
        started = time.monotonic()
        try:
            findings += fn(change, config)
        except Exception as e:  # noqa: BLE001 - a broken scan must block, not pass
            findings.append(
                Finding(
                    "scan.error",
                    "block",
                    f"the {name} scan failed to run: {type(e).__name__}: {e}",
                    why="A scan that cannot run cannot vouch for the change; "
                    "a person must look at what it would have checked.",
                )
            )
        timings[name] = round(time.monotonic() - started, 4)
    return Report(tuple(sort(findings)), timings)


def sort(findings: list[Finding]) -> list[Finding]:
    """Block first, then warn, then info; within a level by file and line."""
    return sorted(findings, key=lambda f: (LEVELS[f.level], f.file or "", f.line or 0, f.rule))


def find_tool(name: str) -> str | None:
    """A scan tool's executable: on PATH, else beside the Python running Jackline. The tools
    install with Jackline (`squawk-cli`, `pip-audit`), so a venv's `jackline` run without
    activating the venv finds them where pip put them."""
    found = shutil.which(name)
    if found is not None:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def tool_failed(tool: str, detail: str, file: str | None = None, install: str = "") -> Finding:
    """The finding for a scan tool that could not run (missing, crashed, refused its flags)."""
    hint = f" Install it with `{install}`." if install else ""
    return Finding(
        f"scan.tool-failed.{tool}",
        "block",
        f"{tool} could not run: {detail}".rstrip(),
        file=file,
        why=f"The {tool} check did not happen, so nothing vouches for what it checks.{hint}",
    )
