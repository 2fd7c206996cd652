"""New suppressions: comments added by the change that silence a linter, type checker, coverage
tool or secret scanner on a line (or a file) instead of satisfying it.

Catches, on added lines only: `# noqa` (blanket or with codes), `# type: ignore`, `# pyright: ignore`,
`# pragma: no cover`, `# pragma: allowlist secret`, `-- squawk-ignore`, `# nosec`, `eslint-disable`
(`-line`, `-next-line`), `pylint: disable`, `@ts-ignore`, `@ts-expect-error`, `@ts-nocheck`,
`//nolint`, `rubocop:disable`, `NOSONAR` and `istanbul ignore`. Rule `suppression.<kind>`, level
`warn`, or `block` when the file matches `scope.protected`.

A suppression counts as new only when the file holds more of its kind than before. That count is
taken from the diff: for a text file, added minus removed lines carrying the kind equals the count
in the new text minus the count in the old, so no file is read. Of the added lines carrying it, those
that repeat a removed suppression of the same file (an edited line keeping its `# noqa: E501`) or
that are moved code are passed over, and at most the increase is reported, in line order.

Not caught: a suppression swapped for another of the same kind (`noqa: E501` for `noqa: F401`
keeps the count), suppressions in tool configuration (`per-file-ignores`, `ignore_errors`,
`.eslintignore`), and suppressions inside multi-line strings. Text inside one-line string literals is
ignored, so code that writes suppressions into strings (tests of this scan) is not reported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pathspec

from jackline.config import JacklineConfig
from jackline.models import Finding
from jackline.scans import Change, FileChange, Line

WHY = "A new suppression silences a check instead of satisfying it; confirm the check is wrong here, not the code."
PROTECTED = " The file is protected, so an owner decides."

_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`")


def without_strings(text: str) -> str:
    """The line with its one-line string literals emptied, so text in strings is not mistaken for code."""
    return _STRING.sub('""', text)


@dataclass(frozen=True)
class Kind:
    name: str
    pattern: re.Pattern[str]
    scoped: bool = False
    """Whether the suppression can name the rules it silences (`# noqa: E501`); without them it is blanket."""


def _kind(name: str, pattern: str, scoped: bool = False, flags: int = re.IGNORECASE) -> Kind:
    return Kind(name, re.compile(pattern, flags), scoped)


_CODES = r"[\w-]+(?:\s*,\s*[\w-]+)*"
KINDS = (
    _kind("noqa", rf"#\s*noqa\b(?:\s*:\s*(?P<codes>{_CODES}))?", scoped=True),
    _kind("type-ignore", r"#\s*type:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?", scoped=True),
    _kind("pyright-ignore", r"#\s*pyright:\s*ignore\b(?:\[(?P<codes>[^\]]*)\])?", scoped=True),
    _kind("pragma-no-cover", r"#\s*pragma:?\s*no\s*cover\b"),
    _kind("allowlist-secret", r"pragma:\s*allowlist\b[\w\s]*?\bsecret\b"),
    _kind(
        "squawk-ignore", rf"squawk-ignore(?:-file)?\b(?:[ \t]+(?P<codes>{_CODES}))?", scoped=True
    ),
    _kind("nosec", r"#\s*nosec\b(?:[ \t]+(?P<codes>[BG]\d+(?:[\s,]+[BG]\d+)*))?", scoped=True),
    _kind(
        "eslint-disable",
        r"eslint-disable(?:-next-line|-line)?\b(?:[ \t]+(?P<codes>[^*\n]*?))?\s*(?:--|\*/|$)",
        scoped=True,
    ),
    _kind("pylint-disable", rf"pylint:\s*disable(?:-next)?\s*=\s*(?P<codes>{_CODES})", scoped=True),
    _kind("ts-ignore", r"@ts-ignore\b"),
    _kind("ts-expect-error", r"@ts-expect-error\b"),
    _kind("ts-nocheck", r"@ts-nocheck\b"),
    _kind("nolint", r"//\s*nolint\b(?::(?P<codes>[\w,-]+))?", scoped=True),
    _kind(
        "rubocop-disable",
        r"rubocop:\s*(?:disable|todo)\b(?:[ \t]+(?P<codes>[\w/, ]+))?",
        scoped=True,
    ),
    _kind("nosonar", r"\bNOSONAR\b", flags=0),
    _kind("istanbul-ignore", r"istanbul\s+ignore\b"),
)
# A cheap first look: most added lines carry no suppression and skip the sixteen patterns.
_ANY = re.compile(
    r"noqa|type:|pyright:|pragma|squawk-ignore|nosec|eslint-disable|pylint:|@ts-|nolint|rubocop:"
    r"|nosonar|istanbul",
    re.IGNORECASE,
)


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    protected = pathspec.GitIgnoreSpec.from_lines(config.scope.protected)
    findings = []
    for fc in change.files:
        if fc.binary or not fc.added:
            continue
        blocked = protected.match_file(fc.path)
        for line, kind, match in _new(fc, change.moved):
            findings.append(_finding(fc.path, line, kind, match, blocked))
    return findings


def _new(fc: FileChange, moved: frozenset[str]) -> Iterator[tuple[Line, Kind, re.Match[str]]]:
    """The added lines carrying a suppression the file did not have before."""
    added = [(ln, without_strings(ln.text)) for ln in fc.added if _ANY.search(ln.text)]
    removed = [without_strings(ln.text) for ln in fc.removed if _ANY.search(ln.text)]
    for kind in KINDS:
        carried = Counter(_token(m) for text in removed for m in kind.pattern.finditer(text))
        found = [(ln, m) for ln, text in added for m in kind.pattern.finditer(text)]
        increase = len(found) - carried.total()
        fresh = []
        for ln, m in found:
            if carried[_token(m)] > 0:
                carried[_token(m)] -= 1  # the same suppression on a line that was edited
            elif ln.text.strip() not in moved:
                fresh.append((ln, m))
        yield from ((ln, kind, m) for ln, m in fresh[: max(increase, 0)])


def _token(match: re.Match[str]) -> str:
    return " ".join(match.group(0).lower().split())


def _finding(path: str, line: Line, kind: Kind, match: re.Match[str], blocked: bool) -> Finding:
    token = match.group(0).strip().removesuffix("*/").removesuffix("--").strip()
    codes = (match.groupdict().get("codes") or "").strip()
    if codes:
        message = f"added `{token}`, silencing {codes}"
    elif kind.scoped:
        message = f"added a blanket `{token}`: it names no rule, so it silences every one"
    else:
        message = f"added `{token}`"
    return Finding(
        f"suppression.{kind.name}",
        "block" if blocked else "warn",
        message,
        file=path,
        line=line.number,
        why=WHY + (PROTECTED if blocked else ""),
        quote=line.text.strip(),
    )
