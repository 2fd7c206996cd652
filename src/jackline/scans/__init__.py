"""Scans: what the change does that CI does not ask about.

A scan is a module with `scan(change, config) -> list[Finding]`. `Change` is the diff between the
run's base commit and the workspace as it stands (untracked files included), read once and shared
by every scan. `scan_change` runs them all; a scan that raises, or whose tool cannot run, becomes
a block-level finding (`scan.error`), never a silent pass.

Which files changed is git's NUL-separated list (`-z`), never the names in the patch: a patch
quotes a name that holds a newline, a tab, a quote or a non-ASCII letter, and a quoted name
matches no glob (a new `.github/workflows/ciX.yml` was no gate edit, a migration no migration). The
patch's names are unquoted and checked against that list; a file the patch parser did not name
right is read again on its own. Files are read from the workspace without following a link and
within a size bound (`jackline.safeio`); a file too large to read whole makes the scans that
read it fail, which blocks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from unidiff.errors import UnidiffParseError
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
        listed = _listed(repo, base, target)
        diff = _decode(g.git_bytes(repo, "diff", *DIFF, base, target))
        named = {e.path: e for e in listed}
        files = [f for f in _parse(diff) if f.path in named]
        seen = {f.path for f in files}
        for e in listed:
            if e.path not in seen:
                files += _one(repo, base, target, e)
        return cls(repo, base, tuple(files), diff)

    def old_text(self, path: str) -> str | None:
        """The file's text at the base commit (None if it did not exist or is not text)."""
        if not self._old:
            self._old.update(self._read_base([f.old_path for f in self.files if f.old_path]))
        if path not in self._old:
            self._old.update(self._read_base([path]))
        return self._old[path]

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


_STATUS: dict[str, Status] = {"A": "added", "D": "deleted", "R": "renamed", "C": "added"}


def _listed(repo: Path, base: str, target: str) -> list[_Listed]:
    fields = iter(g.z_paths(g.git_bytes(repo, "diff", "-z", "--name-status", "-M", base, target)))
    out = []
    for letter in fields:
        status = _STATUS.get(letter[0], "modified")
        first = next(fields)
        if letter[0] in "RC":  # a rename or copy: source, then destination
            out.append(_Listed(status, next(fields), first if status == "renamed" else None))
        else:
            out.append(_Listed(status, first, None if status == "added" else first))
    return out


def _one(repo: Path, base: str, target: str, e: _Listed) -> list[FileChange]:
    """One listed file's diff on its own, named as the list names it, for a file the patch
    parser did not find under its name (or that it could not parse)."""
    specs = [f":(literal){p}" for p in dict.fromkeys([e.old_path or e.path, e.path])]
    diff = _decode(g.git_bytes(repo, "diff", *DIFF, base, target, "--", *specs))
    try:
        parsed = _parse(diff, strict=True)
    except UnidiffParseError:
        parsed = []
    if not parsed:  # still unreadable: the file counts, with no lines to show
        return [FileChange(e.path, e.status, e.old_path)]
    return [
        FileChange(
            e.old_path or e.path if f.status == "deleted" else e.path,
            f.status,
            None if f.status == "added" else e.old_path or e.path,
            f.added,
            f.removed,
            f.binary,
            f.patch,
        )  # fmt: skip
        for f in parsed
    ]


def _decode(diff: bytes) -> str:
    # File contents need not be UTF-8; names that are not are quoted by git or fail the check
    # against the listed paths, and are read again under their listed name.
    return diff.decode("utf-8", errors="replace") + "\n"


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote(name: str) -> str:
    """A path as a patch header prints it: git writes a name holding a control character, a
    quote, a backslash (or with `core.quotePath`, a byte above 0x7f) in C quotes with escapes."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    out = bytearray()
    i, end = 1, len(name) - 1
    while i < end:
        c = name[i]
        if c != "\\" or i + 1 >= end:
            out += c.encode("utf-8", errors="surrogateescape")
            i += 1
        elif name[i + 1] in "01234567":
            out.append(int(name[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        else:
            out.append(_ESCAPES.get(name[i + 1], ord(name[i + 1])))
            i += 2
    return os.fsdecode(bytes(out))


def _name(header: str, prefix: str) -> str:
    name = unquote(header)
    return name[len(prefix) :] if name.startswith(prefix) else name


def _parse(diff: str, strict: bool = False) -> list[FileChange]:
    try:
        patches = list(PatchSet.from_string(diff))
    except UnidiffParseError:
        if strict:
            raise
        return []  # every listed file is then read on its own
    return [_file(pf) for pf in patches]


def _file(pf: PatchedFile) -> FileChange:
    status: Status
    source, target = _name(pf.source_file, "a/"), _name(pf.target_file, "b/")
    if pf.is_added_file:
        status = "added"
    elif pf.is_removed_file:
        status = "deleted"
    elif source != target:
        status = "renamed"
    else:
        status = "modified"
    added, removed = [], []
    for hunk in pf:
        for line in hunk:
            text = line.value.rstrip("\n").rstrip("\r")
            if line.is_added:
                added.append(Line(line.target_line_no or 0, text))
            elif line.is_removed:
                removed.append(Line(line.source_line_no or 0, text))
    return FileChange(
        path=source if status == "deleted" else target,
        status=status,
        old_path=None if status == "added" else source,
        added=tuple(added),
        removed=tuple(removed),
        binary=pf.is_binary_file,
        patch="".join(str(h) for h in pf),
    )


Scan = Callable[[Change, JacklineConfig], list[Finding]]


def registry() -> dict[str, Scan]:
    """Every scan, by name, in the order they run."""
    from jackline.scans import dependencies, guards, migrations, scope, suppressions

    return {
        "scope": scope.scan,
        "migrations": migrations.scan,
        "guards": guards.scan,
        "suppressions": suppressions.scan,
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
