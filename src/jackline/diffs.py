"""A change as a reviewer reads it: the kept `git diff --stat --patch` text cut into files,
hunks and numbered lines, with moved code and generated files marked.

The text is what the commit step kept (redacted, maybe cut at `artifacts.CHANGE_LIMIT`), never
the workspace: the web page and the comment verb read the same record. unidiff parses it; a
change cut mid-file loses that file, and says so (`Diff.cut`). Names are those the patch gives
(git quotes an unusual one): this is for showing, the scans take git's NUL-separated list.

Moved code: a run of at least `MOVED_LINES` removed lines that reappears, identical once each
line's surrounding whitespace is stripped, as a run of added lines elsewhere (another file,
another hunk, or re-indented in place). A reviewer reads a move as a move, not as new code.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, replace
from typing import Literal

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchedFile, PatchSet

MOVED_LINES = 3
"""The fewest lines of a block marked as moved: fewer match by chance (a closing brace, a blank)."""
MOVED_CHARS = 12
"""The fewest characters (stripped) a moved block holds, for the same reason."""
LOCK_FILES = frozenset({
    "uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "package-lock.json",
    "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "Cargo.lock",
    "Gemfile.lock", "composer.lock", "go.sum", "flake.lock", "mix.lock", "pubspec.lock",
    "Podfile.lock", "packages.lock.json",
})  # fmt: skip
"""Files a tool writes from another (their diff is read there): folded by default."""
GENERATED = ("*.min.js", "*.min.css", "*.js.map", "*.css.map", "*_pb2.py", "*_pb2_grpc.py",
             "*_pb2.pyi", "*.pb.go", "*.lock")  # fmt: skip
"""Names of generated files, as globs on the file's name: folded by default."""
MARKERS = ("@generated", "DO NOT EDIT")
"""What a generated file says of itself near its top (Go's, Facebook's convention)."""
CUT = "\n(cut at "
"""How the commit step ends a change it cut (`steps.commit._keep_change`)."""

Kind = Literal["add", "del", "ctx", "note"]
Status = Literal["added", "deleted", "modified", "renamed"]
Side = Literal["old", "new"]


@dataclass(frozen=True)
class Line:
    kind: Kind
    """add, del, ctx (unchanged context), or note (git's `\\ No newline at end of file`)."""
    text: str
    """The line without its sign and newline."""
    old: int | None
    """Its number in the file before the change (None for an added line)."""
    new: int | None
    """Its number after the change (None for a removed line)."""
    moved: str = ""
    """Where a moved line went or came from (`to calc.py:12`, `from util.py:3`), else ""."""


@dataclass(frozen=True)
class Hunk:
    header: str
    """`@@ -1,6 +1,7 @@ def add(a, b):` as git wrote it."""
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class FileDiff:
    path: str
    """The file's path after the change (before it, for a deleted file)."""
    old_path: str | None
    """The path before a rename, else None."""
    status: Status
    binary: bool
    added: int
    removed: int
    hunks: tuple[Hunk, ...]
    folded: str = ""
    """Why the file is folded by default ("lock file", "generated"), else ""."""

    def has_line(self, side: Side, number: int) -> bool:
        """Whether the diff shows line `number` of the file's `side`."""
        at = "old" if side == "old" else "new"
        return any(getattr(x, at) == number for h in self.hunks for x in h.lines)


@dataclass(frozen=True)
class Diff:
    files: tuple[FileDiff, ...]
    cut: bool = False
    """The kept text was cut: files past the cut are not here."""

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)

    def file(self, path: str) -> FileDiff | None:
        return next((f for f in self.files if f.path == path), None)


class Unreadable(ValueError):
    """The text is no unified diff unidiff can read (the page then shows it as text)."""


def parse(text: str) -> Diff:
    """The change `text` holds (git's `--stat` lines before the patch are skipped)."""
    body, cut = _uncut(text)
    try:
        patch = PatchSet(body)
    except UnidiffParseError as e:
        raise Unreadable(str(e)) from None
    return Diff(_moved(tuple(_file(f) for f in patch)), cut)


def _uncut(text: str) -> tuple[str, bool]:
    """The text up to the last whole file, where the commit step cut it."""
    at = text.rfind(CUT)
    if at < 0 or not text[at:].strip().endswith("characters)"):
        return text, False
    whole = text.rfind("\ndiff --git ", 0, at)
    return (text[: whole + 1] if whole >= 0 else ""), True


def _file(f: PatchedFile) -> FileDiff:
    path = _name(f.target_file if not f.is_removed_file else f.source_file)
    status: Status = "modified"
    if f.is_added_file:
        status = "added"
    elif f.is_removed_file:
        status = "deleted"
    elif f.is_rename:
        status = "renamed"
    hunks = tuple(_hunk(h) for h in f)
    return FileDiff(
        path,
        _name(f.source_file) if f.is_rename else None,
        status,
        bool(f.is_binary_file),
        f.added,
        f.removed,
        hunks,
        _folded(path, hunks),
    )


def _name(patch_name: str) -> str:
    return patch_name[2:] if patch_name[:2] in ("a/", "b/") else patch_name


def _hunk(h: object) -> Hunk:
    lines = []
    for x in h:  # type: ignore[attr-defined]
        kind: Kind = {"+": "add", "-": "del", " ": "ctx"}.get(x.line_type, "note")  # type: ignore[assignment]
        lines.append(Line(kind, x.value.rstrip("\r\n"), x.source_line_no, x.target_line_no))
    start = f"@@ -{h.source_start},{h.source_length} +{h.target_start},{h.target_length} @@"  # type: ignore[attr-defined]
    header = f"{start} {h.section_header}".rstrip()  # type: ignore[attr-defined]
    return Hunk(header, tuple(lines))


def _folded(path: str, hunks: tuple[Hunk, ...]) -> str:
    name = posixpath.basename(path)
    if name in LOCK_FILES:
        return "lock file"
    if any(fnmatch.fnmatchcase(name, g) for g in GENERATED):
        return "generated"
    top = [x.text for h in hunks[:1] for x in h.lines[:5] if x.kind != "del"]
    return "generated" if any(m in t for t in top for m in MARKERS) else ""


# moved code ---------------------------------------------------------------------------------

Place = tuple[int, int, int]
"""A line's place: file index, hunk index, line index."""


def _moved(files: tuple[FileDiff, ...]) -> tuple[FileDiff, ...]:
    """The files with each line of a moved block marked, on both sides."""
    removed = {w: p for p, w in _windows(files, "del")}
    marks: dict[Place, str] = {}
    for added, window in _windows(files, "add"):
        source = removed.get(window)
        if source is None:
            continue
        for k in range(MOVED_LINES):
            there, here = _shift(source, k), _shift(added, k)
            marks.setdefault(here, f"from {_where(files, there, 'old')}")
            marks.setdefault(there, f"to {_where(files, here, 'new')}")
    return tuple(_marked(files, i, marks) for i in range(len(files))) if marks else files


def _windows(files: tuple[FileDiff, ...], kind: Kind) -> list[tuple[Place, tuple[str, ...]]]:
    """Every run of `MOVED_LINES` consecutive lines of `kind` within a hunk, stripped, that
    holds enough to match on: its first line's place and its text."""
    found = []
    for i, f in enumerate(files):
        for j, h in enumerate(f.hunks):
            for k in range(len(h.lines) - MOVED_LINES + 1):
                run = h.lines[k : k + MOVED_LINES]
                if all(x.kind == kind for x in run):
                    window = tuple(x.text.strip() for x in run)
                    if sum(map(len, window)) >= MOVED_CHARS:
                        found.append(((i, j, k), window))
    return found


def _shift(place: Place, by: int) -> Place:
    return (place[0], place[1], place[2] + by)


def _where(files: tuple[FileDiff, ...], place: Place, side: Side) -> str:
    f = files[place[0]]
    line = f.hunks[place[1]].lines[place[2]]
    return f"{f.path}:{line.old if side == 'old' else line.new}"


def _marked(files: tuple[FileDiff, ...], i: int, marks: dict[Place, str]) -> FileDiff:
    f = files[i]
    hunks = tuple(
        replace(
            h,
            lines=tuple(replace(x, moved=marks.get((i, j, k), "")) for k, x in enumerate(h.lines)),
        )
        for j, h in enumerate(f.hunks)
    )
    return replace(f, hunks=hunks)
