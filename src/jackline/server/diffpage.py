"""The run page's diff viewer: a parsed change (`jackline.diffs`) made into what the template
shows: each file's lines with their numbers, their code coloured by the file's language, and the
scan's findings and people's comments under the lines they name, within a bound on the lines.

Every piece of text here is agent-written (the code, the file names) or a person's (comments):
pygments only splits the code into tokens, and each token is escaped here before it is wrapped
in a `<span>` of its class; Jinja escapes the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from markupsafe import Markup, escape
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound

from jackline import diffs
from jackline.models import Comment

MAX_LINES = 5_000
"""Lines of a change the page shows; a file past the bound is listed, with the command to see it."""
Place = tuple[int, int]
"""A line's place in its file: hunk index, line index."""


@dataclass
class Row:
    line: diffs.Line
    code: Markup
    findings: list[dict[str, Any]] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


@dataclass
class FileView:
    id: str
    """The file's anchor on the page."""
    diff: diffs.FileDiff
    hunks: list[tuple[str, list[Row]]] | None
    """Each hunk's header and rows; None for a file past the bound."""
    loose: list[dict[str, Any]] = field(default_factory=list)
    """Findings in the file at no line the diff shows."""
    loose_comments: list[Comment] = field(default_factory=list)
    more: int = 0
    """Lines of the file past the bound, not shown (its first lines are)."""


@dataclass
class DiffView:
    files: list[FileView]
    tree: list[tuple[str, list[FileView]]]
    """The files by folder, for the list at the top."""
    cut: bool
    hidden: int
    """Files past `MAX_LINES`, not shown."""
    added: int
    removed: int


def view(
    change: diffs.Diff,
    prefix: str,
    findings: Sequence[dict[str, Any]] = (),
    comments: Sequence[Comment] = (),
    limit: int = MAX_LINES,
) -> DiffView:
    """The change as the page shows it: files folded by default (lock files, generated) take
    the lines left after the others, so a large lock file never hides the code."""
    order = sorted(range(len(change.files)), key=lambda i: bool(change.files[i].folded))
    left, built = limit, {}
    for i in order:
        f = change.files[i]
        room = min(sum(len(h.lines) for h in f.hunks), left)
        left -= room
        built[i] = _file(f"{prefix}{i + 1}", f, room, findings, comments)
    files = [built[i] for i in range(len(change.files))]
    hidden = sum(v.hunks is None or v.more > 0 for v in files)
    return DiffView(files, _tree(files), change.cut, hidden, change.added, change.removed)


def _tree(files: list[FileView]) -> list[tuple[str, list[FileView]]]:
    folders: dict[str, list[FileView]] = {}
    for v in sorted(files, key=lambda v: v.diff.path):
        folder, _, _ = v.diff.path.rpartition("/")
        folders.setdefault(folder, []).append(v)
    return list(folders.items())


def _file(
    anchor: str,
    f: diffs.FileDiff,
    room: int,
    findings: Iterable[dict[str, Any]],
    comments: Iterable[Comment],
) -> FileView:
    """The file with its first `room` lines shown (None at all, when it has lines and no
    room is left)."""
    mine = [x for x in findings if x.get("file") == f.path]
    said = [c for c in comments if c.file == f.path]
    size = sum(len(h.lines) for h in f.hunks)
    if size and not room:
        return FileView(anchor, f, None, mine, said, more=size)
    cut = _first_lines(f, room)
    code = _coloured(cut)
    rows = [[Row(x, code[(j, k)]) for k, x in enumerate(h.lines)] for j, h in enumerate(cut.hunks)]
    loose = [x for x in mine if not _attach(rows, x)]
    loose_comments = [c for c in said if not _attach_comment(rows, c)]
    hunks = [(h.header, r) for h, r in zip(cut.hunks, rows, strict=True)]
    return FileView(anchor, f, hunks, loose, loose_comments, more=size - room)


def _first_lines(f: diffs.FileDiff, room: int) -> diffs.FileDiff:
    hunks = []
    for h in f.hunks:
        if room <= 0:
            break
        hunks.append(replace(h, lines=h.lines[:room]))
        room -= len(h.lines)
    return replace(f, hunks=tuple(hunks))


def _attach(rows: list[list[Row]], finding: dict[str, Any]) -> bool:
    """Put a finding under its line: an added line of that number, else a removed one (a
    removed guard is found at its old number), else the unchanged line."""
    number = finding.get("line")
    if not number:
        return False
    every = [r for hunk in rows for r in hunk]
    hit = (
        next((r for r in every if r.line.kind == "add" and r.line.new == number), None)
        or next((r for r in every if r.line.kind == "del" and r.line.old == number), None)
        or next((r for r in every if r.line.new == number), None)
    )
    if hit is not None:
        hit.findings.append(finding)
    return hit is not None


def _attach_comment(rows: list[list[Row]], comment: Comment) -> bool:
    for hunk in rows:
        for r in hunk:
            if (r.line.old if comment.side == "old" else r.line.new) == comment.line:
                r.comments.append(comment)
                return True
    return False


# colour -------------------------------------------------------------------------------------


def _coloured(f: diffs.FileDiff) -> dict[Place, Markup]:
    """Each line's code as escaped HTML, coloured by the file's language. The lines of each
    side are tokenized together (a docstring spans lines), the old side's removed lines and
    the new side's added ones."""
    lexer = _lexer(f.path)
    out: dict[Place, Markup] = {}
    for kinds in (("del", "ctx"), ("add", "ctx")):
        places = [
            (j, k) for j, h in enumerate(f.hunks) for k, x in enumerate(h.lines) if x.kind in kinds
        ]
        texts = [f.hunks[j].lines[k].text for j, k in places]
        for place, html in zip(places, _tokens(lexer, texts), strict=True):
            out.setdefault(place, html)
    for j, h in enumerate(f.hunks):
        for k, x in enumerate(h.lines):
            out.setdefault((j, k), Markup(escape(x.text)))  # git's notes
    return out


def _tokens(lexer: Lexer, texts: list[str]) -> list[Markup]:
    """One escaped, coloured line per text; plain where the lexer changed the text (a lexer
    may expand a tab or drop a character it cannot read)."""
    lines: list[tuple[str, list[str]]] = []
    raw: list[str] = []
    html: list[str] = []
    for kind, value in lexer.get_tokens("\n".join(texts) + "\n"):
        css = _css(kind)
        for n, piece in enumerate(value.split("\n")):
            if n:
                lines.append(("".join(raw), html))
                raw, html = [], []
            if piece:
                raw.append(piece)
                text = str(escape(piece))
                html.append(f'<span class="{css}">{text}</span>' if css else text)
    if [r for r, _ in lines[: len(texts)]] != texts:
        return [Markup(escape(t)) for t in texts]
    return [Markup("".join(h)) for _, h in lines[: len(texts)]]  # noqa: S704 - escaped pieces


def _css(kind: _TokenType) -> str:
    while kind not in STANDARD_TYPES:
        kind = kind.parent
    return str(STANDARD_TYPES[kind])


def warm() -> None:
    """Find a lexer once, now: the first lookup reads every installed package's entry points
    for pygments' lexer plugins (half a second on an idle machine, seconds on a loaded one),
    which the first page with a diff waited for. A server calls it as it starts."""
    _lexer_for("x.py")


@cache
def _lexer_for(name: str) -> Lexer:
    # stripnl off: a lexer strips leading blank lines by default, which would shift the lines.
    try:
        return get_lexer_for_filename(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _lexer(path: str) -> Lexer:
    name = path.rpartition("/")[2]
    suffix = name.rpartition(".")[2] if "." in name else name
    return _lexer_for(f"x.{suffix}" if "." in name else name)
