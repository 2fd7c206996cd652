"""Removed guards: a change that quietly takes away a check against a rare failure.

Every finding is a `warn` (the handoff's "where to look twice"), names the file and line (the new
file's line for added code, the old file's for removed code) and quotes the code in question:

- `guard.test-removed`: a test that is gone: Python `test*` functions and methods compared by AST
  between the old and new file (line matching when a file does not parse), JS/TS
  `it(`/`test(`/`describe(` titles, and the tests of a deleted test file.
- `guard.test-skipped`: a skip, skipif, xfail, `skipTest`, `it.skip`, `xit(` or `.only(` that the
  test it applies to did not carry before.
- `guard.test-commented`: a test function or `it(` block commented out.
- `guard.assert-removed`: assertions removed from a test that is still there (Python: only from a
  function whose assertion count dropped; JS and unparsable files: when the file's count dropped).
- `guard.retry-removed`, `guard.timeout-removed`: a file mentions retries or timeouts fewer times.
- `guard.except-removed`: a Python function (or module body) with fewer `try` statements.
- `guard.keep-region`: a removed or changed line inside a `jackline: keep` region of the old file.
- `guard.coverage-lowered`: a coverage threshold lowered or removed.

Not reported: moved code (`Change.moved`; a test whose name turns up elsewhere in the change; a
skip that stays with its test), reformatting (lines compared stripped, Python counted by AST), a
value change that keeps the guard (`timeout=30` to `timeout=60`: numbers are blanked before
comparing), pure renames, comment lines mentioning retries or timeouts, prose and lock files.

Not caught: a weakened value (`timeout=None`, `retries=0`); a removed test explained away by a new
test of the same name elsewhere in the change; a JS test hidden in a `/* */` block; a Python test
defined under `if` at module level (never seen as a test); lines inserted into a keep region
without removing any; try statements removed from a file that no longer parses; assertions
removed outside test files.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath

from jackline import git as g
from jackline.config import JacklineConfig
from jackline.errors import CommandFailed
from jackline.models import Finding
from jackline.scans import Change, FileChange, Line, gates
from jackline.scans.suppressions import without_strings

QUOTE_LINES = 3
MAX_LINE = 2000
"""Characters a line may have for the weakened-in-place rules to read it: code is shorter, and
a pattern run over a hostile megabyte-long line must not take minutes."""
MODULE = "<module>"
WHY = {
    "test-removed": "A deleted test stops guarding the behaviour it checked; "
    "confirm that behaviour is gone too or is still tested elsewhere.",
    "test-skipped": "A skipped or narrowed test lets CI pass while checking nothing; "
    "confirm why it is skipped and when it comes back.",
    "test-commented": "A commented-out test never runs, and nothing reports it missing.",
    "assert-removed": "The test still passes but checks less; "
    "the removed assertion may have been the only check on a rare case.",
    "retry-removed": "Retries absorb transient failures that tests rarely reproduce; "
    "without them a brief outage becomes an error.",
    "timeout-removed": "Without a timeout a slow or hung dependency can block this path "
    "indefinitely, and tests rarely exercise that.",
    "except-removed": "The handler dealt with a failure that tests may never trigger; "
    "without it that failure now propagates.",
    "coverage-lowered": "A lower coverage threshold lets untested code through "
    "without anyone having decided so.",
    "assert-weakened": "The assertion still runs but no longer checks the value; "
    "a wrong result now passes.",
    "except-swallowed": "A handler that catches everything and does nothing hides the failure "
    "it was written for, and every other one.",
}

_JS = {".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"}
_JS_TEST_FILE = re.compile(r"\.(?:test|spec)\.\w+$")
_DEFINES = re.compile(r"\s*(?:async\s+def|def|class|it|test|describe|context)\b")
_DEF = re.compile(r"\s*(?:async\s+)?def\s+(\w+)")
_PY_TEST_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(?P<name>test\w*)\s*\(")
_JS_TEST = re.compile(
    r"^\s*(?:it|test|describe|context)(?:\.\w+)*\s*\(\s*(?P<q>['\"`])(?P<name>.*?)(?P=q)"
)
_TITLE = re.compile(r"\(\s*(?P<q>['\"`])(?P<name>.*?)(?P=q)")
_COMMENTED = re.compile(
    r"^\s*(?:#|//|/\*)\s*(?:(?:async\s+)?def\s+(?P<py>test\w*)\s*\("
    r"|(?:it|test|describe)\s*\(\s*(?P<q>['\"`])(?P<js>.*?)(?P=q))"
)
_PY_SKIP = re.compile(
    r"\bmark\.(?:skip|skipif|xfail)\b|\bpytest\.(?:skip|xfail)\s*\("
    r"|@(?:unittest\.)?(?:skip|skipIf|skipUnless|expectedFailure)\b|\.skipTest\s*\("
)
_JS_SKIP = re.compile(
    r"\b(?:it|describe|test|context|suite)\.(?:skip|only)\b"
    r"|(?<![.\w])(?:xit|xdescribe|xtest|fit|fdescribe)\s*\("
)
_ASSERT = re.compile(
    r"^\s*assert\b|\bassert\w*\s*\(|\bassert\.\w+\s*\(|\bexpect\s*\(|\b(?:raises|warns)\s*\("
)
_ASSERT_STATEMENT = re.compile(r"^\s*assert\b")
_HANDLER = re.compile(r"^\s*(?:except\b|finally\s*:)")
_COMMENT = re.compile(r"^\s*(?:#|//|/\*|\*(?:\s|$)|<!--|;|--(?:\s|$))")
_KEYWORDS = {
    "retry": re.compile(r"retry|retries|backoff|tenacity|max_attempts", re.IGNORECASE),
    "timeout": re.compile(r"timeout|deadline", re.IGNORECASE),
}
_PROSE = {".md", ".rst", ".txt", ".adoc"}
_KEEP = re.compile(r"(?:#|//|--|<!--|/\*)\s*jackline:\s*keep\b", re.IGNORECASE)
_END_KEEP = re.compile(r"jackline:\s*end\b", re.IGNORECASE)
_FAIL_UNDER = re.compile(r"fail[_-]under[\"']?\s*[=:\s]\s*[\"']?(?P<value>\d+(?:\.\d+)?)", re.I)
_JEST = re.compile(
    r"\b(?P<key>branches|functions|lines|statements)[\"']?\s*:\s*(?P<value>-?\d+(?:\.\d+)?)"
)
_JEST_FILES = re.compile(r"^(?:package\.json|(?:jest|vitest)\.config\.\w+)$")


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    files = [_File(change, fc) for fc in change.files if not fc.binary and (fc.added or fc.removed)]
    findings = _removed_tests(files) + _skipped(files) + _coverage(files)
    findings += _keep_regions(change, files)
    for f in files:
        findings += _commented(f) + _asserts(f) + _keywords(f) + _excepts(f) + _weakened(f)
    findings += gates.scan(change, [f.fc for f in files])
    return findings


@dataclass
class _Unit:
    """A top-level function or a method (or the module body, outside every function): where it
    stands and, counted only when a rule asks, the guards it holds."""

    node: ast.AST
    line: int
    start: int
    end: int

    @cached_property
    def _counts(self) -> tuple[int, int]:
        return _count(self.node, outside_functions=isinstance(self.node, ast.Module))

    @property
    def asserts(self) -> int:
        return self._counts[0]

    @property
    def tries(self) -> int:
        return self._counts[1]


class _File:
    """One changed file. Its texts and Python parse are read at most once, and only if a rule
    needs them."""

    def __init__(self, change: Change, fc: FileChange) -> None:
        self.change = change
        self.fc = fc
        self.path = fc.path
        self.moved = change.moved
        suffix = PurePosixPath(fc.path).suffix
        self.lang = "py" if suffix == ".py" else "js" if suffix in _JS else ""
        self.is_test = _is_test(PurePosixPath(fc.path), self.lang)

    @cached_property
    def old(self) -> str | None:
        return self.change.old_text(self.fc.old_path) if self.fc.old_path else None

    @cached_property
    def new(self) -> str | None:
        return None if self.fc.status == "deleted" else self.change.new_text(self.path)

    @cached_property
    def old_units(self) -> dict[str, _Unit] | None:
        return {} if self.fc.old_path is None else _units(self.old)

    @cached_property
    def new_units(self) -> dict[str, _Unit] | None:
        return {} if self.fc.status == "deleted" else _units(self.new)

    @cached_property
    def old_lines(self) -> list[str]:
        return (self.old or "").splitlines()

    @cached_property
    def new_lines(self) -> list[str]:
        return (self.new or "").splitlines()

    @cached_property
    def added_texts(self) -> frozenset[str]:
        return frozenset(ln.text.strip() for ln in self.fc.added)

    @cached_property
    def removed_texts(self) -> frozenset[str]:
        return frozenset(ln.text.strip() for ln in self.fc.removed)

    @cached_property
    def added_shapes(self) -> frozenset[str]:
        return frozenset(_shape(text) for text in self.added_texts)

    @cached_property
    def commented_tests(self) -> dict[str, Line]:
        """Tests commented out by added lines, by name."""
        out: dict[str, Line] = {}
        if self.is_test:
            for ln in self.fc.added:
                if (m := _COMMENTED.match(ln.text)) and self.new_code(ln):
                    out.setdefault(m["py"] or m["js"], ln)
        return out

    def new_code(self, line: Line) -> bool:
        """Whether an added line is new code: not moved here, not a reformatted removed line."""
        text = line.text.strip()
        return text not in self.moved and text not in self.removed_texts

    def finding(self, rule: str, message: str, line: int, quote: str, why: str = "") -> Finding:
        why = why or WHY[rule]
        return Finding(f"guard.{rule}", "warn", message, self.path, line, why, quote)


def _is_test(path: PurePosixPath, lang: str) -> bool:
    if lang == "py":
        named = path.name.startswith("test_") or path.name.endswith("_test.py")
        return named or bool({"tests", "test"} & set(path.parts[:-1]))
    if lang == "js":
        return bool(_JS_TEST_FILE.search(path.name)) or "__tests__" in path.parts
    return False


def _quote(lines: Iterable[str]) -> str:
    return textwrap.dedent("\n".join(list(lines)[:QUOTE_LINES])).strip("\n")


# --- Python structure -------------------------------------------------------------------------


def _units(text: str | None) -> dict[str, _Unit] | None:
    """Each top-level function and method by qualified name (`Class.test_x`), plus the module
    body as `<module>`; None if the text is missing or does not parse."""
    if text is None:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    units: dict[str, _Unit] = {}
    _collect(tree.body, "", units)
    units[MODULE] = _Unit(tree, 0, 0, 0)
    return units


def _collect(body: list[ast.stmt], prefix: str, out: dict[str, _Unit]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            _collect(node.body, f"{prefix}{node.name}.", out)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            end = node.end_lineno or node.lineno
            out[prefix + node.name] = _Unit(node, node.lineno, start, end)


def _count(root: ast.AST, outside_functions: bool) -> tuple[int, int]:
    """Assertions (statements and `assert*`/`raises`/`expect` calls) and try statements under
    `root`, leaving out function bodies if asked (the module body's own)."""
    asserts = tries = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Assert) or (isinstance(node, ast.Call) and _asserting(node.func)):
            asserts += 1
        elif isinstance(node, ast.Try | ast.TryStar):
            tries += 1
        stack += (
            child
            for child in ast.iter_child_nodes(node)
            if not (outside_functions and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))
        )
    return asserts, tries


def _asserting(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.startswith("assert") or name in ("raises", "warns", "expect")


def _by_unit(units: dict[str, _Unit], lines: Iterable[Line]) -> dict[str, list[Line]]:
    """Old-file lines grouped by the function they stood in (`<module>` outside any)."""
    spans = sorted((u.start, u.end, name) for name, u in units.items() if name != MODULE)
    starts = [start for start, _, _ in spans]
    out: dict[str, list[Line]] = {}
    for ln in lines:
        i = bisect.bisect_right(starts, ln.number) - 1
        name = spans[i][2] if i >= 0 and spans[i][1] >= ln.number else MODULE
        out.setdefault(name, []).append(ln)
    return out


def _is_test_name(name: str) -> bool:
    return name != MODULE and _bare(name).startswith("test")


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


# --- guard.test-removed -------------------------------------------------------------------------


@dataclass
class _Tests:
    """The tests one file lost (name -> line and quote) and gained."""

    gone: dict[str, tuple[int, str]] = field(default_factory=dict)
    gained: set[str] = field(default_factory=set)


def _removed_tests(files: list[_File]) -> list[Finding]:
    tests = [f for f in files if f.is_test]
    diffs = {f.path: _test_diff(f) for f in tests}
    # A gone test whose name turns up anywhere in the change moved (or its class was renamed).
    pool = Counter(_bare(name) for d in diffs.values() for name in d.gained)
    gone_names = {_bare(name) for d in diffs.values() for name in d.gone}
    findings = []
    for f in tests:
        lost = []
        for name, where in diffs[f.path].gone.items():
            if pool[_bare(name)] > 0:
                pool[_bare(name)] -= 1
            elif _bare(name) not in f.commented_tests:
                lost.append((name, where))
        renamed = any(_bare(name) not in gone_names for name in diffs[f.path].gained)
        findings += _test_findings(f, lost, renamed)
    return findings


def _test_diff(f: _File) -> _Tests:
    pattern = _PY_TEST_DEF if f.lang == "py" else _JS_TEST
    if not _may_lose_tests(f):
        return _Tests(gained=set(_names(f.fc.added, pattern)))
    if f.lang == "py" and f.old_units is not None and f.new_units is not None:
        return _ast_tests(f, f.old_units, f.new_units)
    removed, added = _names(f.fc.removed, pattern), _names(f.fc.added, pattern)
    gone = {n: (ln.number, ln.text.strip()) for n, ln in removed.items() if n not in added}
    return _Tests(gone, set(added) - set(removed))


def _may_lose_tests(f: _File) -> bool:
    """Whether the file can have lost a test: a removed `def`, `class` or `it(` line, or (Python)
    an added string quote that may open a string around one. Edits inside tests skip the parse."""
    if any(_DEFINES.match(ln.text) for ln in f.fc.removed):
        return True
    return f.lang == "py" and any('"""' in ln.text or "'''" in ln.text for ln in f.fc.added)


def _ast_tests(f: _File, old: dict[str, _Unit], new: dict[str, _Unit]) -> _Tests:
    gone = {
        name: (u.line, _quote(f.old_lines[u.line - 1 : u.end]))
        for name, u in old.items()
        if _is_test_name(name) and name not in new
    }
    return _Tests(gone, {n for n in new if _is_test_name(n) and n not in old})


def _names(lines: Iterable[Line], pattern: re.Pattern[str]) -> dict[str, Line]:
    out: dict[str, Line] = {}
    for ln in lines:
        if m := pattern.match(ln.text):
            out.setdefault(m["name"], ln)
    return out


def _test_findings(
    f: _File, lost: list[tuple[str, tuple[int, str]]], renamed: bool
) -> list[Finding]:
    if not lost:
        return []
    if f.fc.status == "deleted":
        names = ", ".join(f"`{name}`" for name, _ in lost[:5])
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        quote = "\n".join(where[1].splitlines()[0] for _, where in lost[:QUOTE_LINES])
        message = f"deleted a test file with {len(lost)} test(s): {names}{more}"
        return [f.finding("test-removed", message, lost[0][1][0], quote)]
    verb = "renamed or removed" if renamed else "removed"
    return [
        f.finding("test-removed", f"{verb} test `{name}`", line, quote)
        for name, (line, quote) in lost
    ]


# --- guard.test-commented and guard.test-skipped ------------------------------------------------


def _commented(f: _File) -> list[Finding]:
    return [
        f.finding("test-commented", f"commented out test `{name}`", ln.number, ln.text.strip())
        for name, ln in f.commented_tests.items()
    ]


def _skipped(files: list[_File]) -> list[Finding]:
    """Skips on added lines that the test they apply to did not carry before, anywhere in the
    change: a skip reformatted, reworded, or moved along with its test is not new."""
    added = [(f, kind, ln) for f in files for kind, ln in _skips(f, f.fc.added)]
    if not added:
        return []
    before = Counter(
        (kind, _skipped_test(f, ln, f.old_lines))
        for f in files
        for kind, ln in _skips(f, f.fc.removed)
    )
    findings = []
    for f, kind, ln in added:
        test = _skipped_test(f, ln, f.new_lines)
        if before[kind, test] > 0:
            before[kind, test] -= 1
            continue
        message = f"added `{kind}`" + (f" to `{test}`" if test else "")
        findings.append(f.finding("test-skipped", message, ln.number, ln.text.strip()))
    return findings


def _skips(f: _File, lines: Iterable[Line]) -> list[tuple[str, Line]]:
    """Each skip (`pytest.mark.skip`, `it.only`, ...) and its line; comments and strings ignored."""
    pattern = {"py": _PY_SKIP, "js": _JS_SKIP}.get(f.lang)
    if pattern is None:
        return []
    out = []
    for ln in lines:
        if _COMMENT.match(ln.text):
            continue
        for m in pattern.finditer(without_strings(ln.text)):
            kind = m.group(0).strip("@.( \t")
            out.append((f"pytest.{kind}" if kind.startswith("mark.") else kind, ln))
    return out


def _skipped_test(f: _File, ln: Line, lines: list[str]) -> str | None:
    """The test a skip applies to: the title on a JS line; in Python (`lines` is the old or new
    file, as `ln` is removed or added) the next `def` after a decorator, else the enclosing one."""
    if f.lang == "js":
        m = _TITLE.search(ln.text)
        return m["name"] if m else None
    if ln.text.lstrip().startswith("@"):
        around = lines[ln.number : ln.number + 10]
    else:
        around = lines[max(ln.number - 50, 0) : ln.number - 1][::-1]
    return next((m[1] for text in around if (m := _DEF.match(text))), None)


# --- guard.assert-removed -----------------------------------------------------------------------


def _asserts(f: _File) -> list[Finding]:
    if f.fc.status == "deleted" or not (f.is_test or f.lang == "py"):
        return []
    if not f.is_test:
        return _source_asserts(f)
    lines = [ln for ln in f.fc.removed if _ASSERT.search(ln.text)]
    if not any(_fresh_removal(f, ln, f.added_shapes) for ln in lines):
        return []  # every one moved or was rewritten in place: no need to parse
    if f.lang == "py" and f.old_units is not None and f.new_units is not None:
        return _asserts_by_function(f, lines, f.old_units, f.new_units)
    return _asserts_by_file(f, lines)


def _source_asserts(f: _File) -> list[Finding]:
    """Outside tests, an `assert` statement is a precondition the code checks as it runs: one
    removed from a function that still stands (and holds fewer) is reported like a test's."""
    lines = [ln for ln in f.fc.removed if _ASSERT_STATEMENT.match(ln.text)]
    if not any(_fresh_removal(f, ln, f.added_shapes) for ln in lines):
        return []
    if f.old_units is None or f.new_units is None:
        return []
    findings = _asserts_by_function(f, lines, f.old_units, f.new_units)
    why = (
        "The assertion stopped the code on a state it was not written for; without it that "
        "state goes on silently."
    )
    return [dataclasses.replace(x, why=why) for x in findings]


def _asserts_by_function(
    f: _File, lines: list[Line], old: dict[str, _Unit], new: dict[str, _Unit]
) -> list[Finding]:
    """Per function still there: report when it holds fewer assertions than before, counting a
    moved assertion line as kept, and quote the removed ones that are not moved or rewritten."""
    findings = []
    for name, group in _by_unit(old, lines).items():
        after = new.get(name)
        if name == MODULE or after is None:
            continue  # a deleted test is guard.test-removed's finding
        moved = sum(1 for ln in group if ln.text.strip() in f.moved)
        if old[name].asserts - after.asserts - moved <= 0:
            continue
        kept = {_shape(text.strip()) for text in f.new_lines[after.start - 1 : after.end]}
        group = [ln for ln in group if _fresh_removal(f, ln, kept)]
        if group:
            findings.append(_assert_finding(f, group, name))
    return findings


def _asserts_by_file(f: _File, lines: list[Line]) -> list[Finding]:
    """JS/TS, and Python that does not parse: report when the file holds fewer assertion lines."""
    if len(lines) <= sum(1 for ln in f.fc.added if _ASSERT.search(ln.text)):
        return []
    pattern = _PY_TEST_DEF if f.lang == "py" else _JS_TEST
    in_removed_tests = _in_removed_tests(f.fc.removed, pattern)
    lines = [
        ln
        for ln in lines
        if ln.number not in in_removed_tests and _fresh_removal(f, ln, f.added_shapes)
    ]
    return [_assert_finding(f, lines, None)] if lines else []


def _fresh_removal(f: _File, ln: Line, kept: Set[str]) -> bool:
    """A removed line that neither moved nor survives with other numbers or spacing at its edges."""
    text = ln.text.strip()
    return text not in f.moved and _shape(text) not in kept


def _in_removed_tests(removed: Iterable[Line], pattern: re.Pattern[str]) -> set[int]:
    """Old line numbers in runs of removed lines that start at a test's first line: the body of a
    removed test, which guard.test-removed reports."""
    inside: set[int] = set()
    previous, in_test = -1, False
    for ln in removed:
        in_test = (in_test and ln.number == previous + 1) or bool(pattern.match(ln.text))
        if in_test:
            inside.add(ln.number)
        previous = ln.number
    return inside


def _assert_finding(f: _File, lines: list[Line], unit: str | None) -> Finding:
    message = f"removed `{lines[0].text.strip()}`" + (f" from `{unit}`" if unit else "")
    if len(lines) > 1:
        message += f" and {len(lines) - 1} more assertion line(s)"
    return f.finding("assert-removed", message, lines[0].number, _quote(ln.text for ln in lines))


# --- guard.retry-removed and guard.timeout-removed ------------------------------------------------


def _keywords(f: _File) -> list[Finding]:
    name = PurePosixPath(f.path).name
    if PurePosixPath(name).suffix in _PROSE or name.endswith((".lock", "-lock.json", "-lock.yaml")):
        return []
    findings = []
    for kind, pattern in _KEYWORDS.items():
        # Added minus removed mentions in the diff is the new count minus the old one.
        before, after = _mentions(f.fc.removed, pattern), _mentions(f.fc.added, pattern)
        dropped = {word for word, n in before.items() if n > after[word]}
        lines = [
            ln
            for ln in f.fc.removed
            if dropped & _words(ln, pattern)
            and ln.text.strip() not in f.moved
            and _shape(ln.text.strip()) not in f.added_shapes
        ]
        if lines:
            message = f"removed a {kind}: `{lines[0].text.strip()}`"
            if len(lines) > 1:
                message += f" and {len(lines) - 1} more line(s)"
            findings.append(
                f.finding(
                    f"{kind}-removed", message, lines[0].number, _quote(ln.text for ln in lines)
                )
            )
    return findings


def _words(ln: Line, pattern: re.Pattern[str]) -> set[str]:
    return set() if _COMMENT.match(ln.text) else {w.lower() for w in pattern.findall(ln.text)}


def _mentions(lines: Iterable[Line], pattern: re.Pattern[str]) -> Counter[str]:
    return Counter(
        w.lower() for ln in lines if not _COMMENT.match(ln.text) for w in pattern.findall(ln.text)
    )


def _shape(text: str) -> str:
    """The line with its numbers blanked: `timeout=30` and `timeout=60` keep the same guard."""
    return re.sub(r"\d+(?:\.\d+)?", "0", text)


# --- guard.except-removed -----------------------------------------------------------------------


def _excepts(f: _File) -> list[Finding]:
    if f.lang != "py" or f.fc.status == "deleted":
        return []
    handlers = [ln for ln in f.fc.removed if _HANDLER.match(ln.text)]
    if not handlers or f.old_units is None or f.new_units is None:
        return []
    old, new, findings = f.old_units, f.new_units, []
    for name, group in _by_unit(old, handlers).items():
        after = new.get(name)
        if after is None or after.tries >= old[name].tries:
            continue
        if all(ln.text.strip() in f.moved for ln in group):
            continue  # the whole handler moved, into a helper or another file
        where = "the module body" if name == MODULE else f"`{name}`"
        message = f"removed a try/except from {where}: `{group[0].text.strip()}`"
        findings.append(
            f.finding("except-removed", message, group[0].number, _quote(ln.text for ln in group))
        )
    return findings


# --- guard.keep-region --------------------------------------------------------------------------


def _keep_regions(change: Change, files: list[_File]) -> list[Finding]:
    touched = {f.fc.old_path: f for f in files if f.fc.removed and f.fc.old_path}
    findings = []
    for path, markers in _markers(change, list(touched)).items():
        f = touched[path]
        for start, end, marker in _regions(markers):
            lines = [ln for ln in f.fc.removed if start <= ln.number <= (end or ln.number)]
            if not lines:
                continue
            span = f"old lines {start}-{end}" if end else f"from old line {start} on"
            message = f"changed {len(lines)} line(s) in a `jackline: keep` region ({span})"
            why = (
                f"The code was marked to be kept as it is (`{marker}`); ask why before changing it."
            )
            quote = _quote(ln.text for ln in lines)
            findings.append(f.finding("keep-region", message, lines[0].number, quote, why))
    return findings


def _markers(change: Change, paths: list[str]) -> dict[str, list[tuple[int, str]]]:
    """The `jackline: keep` and `jackline: end` lines of the base versions of `paths`, by path:
    one `git grep` for the whole change, so no file is read for this rule."""
    if not paths:
        return {}
    pattern = "jackline:[[:space:]]*(keep|end)"
    specs = [f":(literal){p}" for p in paths]
    try:
        out = g.git_bytes(
            change.root,
            "grep",
            "-z",
            "-n",
            "--no-column",  # a user's grep.column would shift the fields
            "-I",
            "-i",
            "-E",
            pattern,
            change.base,
            "--",
            *specs,
        )
    except CommandFailed as e:
        if e.code == 1:  # git grep found nothing
            return {}
        raise
    return g.grep_rows(out, change.base)


def _regions(markers: list[tuple[int, str]]) -> list[tuple[int, int | None, str]]:
    """(first, last, marker) of each kept region, both marker lines included. A marker after code
    keeps that one line; a region left open runs to the end of the file (last is None)."""
    regions: list[tuple[int, int | None, str]] = []
    start, marker = 0, ""
    for number, text in markers:
        if start:
            if _END_KEEP.search(text):
                regions.append((start, number, marker))
                start = 0
        elif m := _KEEP.search(text):
            if text[: m.start()].strip():
                regions.append((number, number, text.strip()))
            else:
                start, marker = number, text.strip()
    if start:
        regions.append((start, None, marker))
    return regions


# --- guard.coverage-lowered ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Threshold:
    key: str
    value: str
    path: str
    line: Line


def _coverage(files: list[_File]) -> list[Finding]:
    by_path = {f.path: f for f in files}
    removed = [t for f in files for t in _thresholds(f, f.fc.removed)]
    added = [t for f in files for t in _thresholds(f, f.fc.added)]
    findings = []
    for old, new in _pair(removed, added):
        if new is None:
            message = f"removed the coverage threshold `{old.line.text.strip()}`"
            quote = old.line.text.strip()
            findings.append(
                by_path[old.path].finding("coverage-lowered", message, old.line.number, quote)
            )
        elif float(new.value) < float(old.value):
            message = f"lowered the coverage threshold {old.key} from {old.value} to {new.value}"
            quote = f"- {old.line.text.strip()}\n+ {new.line.text.strip()}"
            findings.append(
                by_path[new.path].finding("coverage-lowered", message, new.line.number, quote)
            )
    return findings


def _thresholds(f: _File, lines: Iterable[Line]) -> list[_Threshold]:
    jest = bool(_JEST_FILES.match(PurePosixPath(f.path).name))
    found = []
    for ln in lines:
        if _COMMENT.match(ln.text):
            continue
        found += [
            _Threshold("fail_under", m["value"], f.path, ln) for m in _FAIL_UNDER.finditer(ln.text)
        ]
        if jest:
            found += [
                _Threshold(f"coverageThreshold {m['key']}", m["value"], f.path, ln)
                for m in _JEST.finditer(ln.text)
            ]
    return found


def _pair(
    removed: list[_Threshold], added: list[_Threshold]
) -> list[tuple[_Threshold, _Threshold | None]]:
    """Each removed threshold with the added one of the same key that replaces it: first within
    the same file, then from any file (a threshold moved between configs)."""
    left = list(added)
    pairs: dict[int, _Threshold] = {}
    for same_file in (True, False):
        for i, old in enumerate(removed):
            if i in pairs:
                continue
            new = next(
                (t for t in left if t.key == old.key and (t.path == old.path or not same_file)),
                None,
            )
            if new is not None:
                pairs[i] = new
                left.remove(new)
    return [(old, pairs.get(i)) for i, old in enumerate(removed)]


# --- weakened in place: assert, timeout, retry, except ------------------------------------------
#
# The guard is still there but checks less: each rule pairs a removed line with the added line
# that replaced it (same subject, same key) and reports the added one, at its new line.

_STRONG_CALLS = re.compile(
    r"^assert(?:Equal|Equals|NotEqual|In|NotIn|Is|IsNot|Greater|GreaterEqual|Less|LessEqual"
    r"|DictEqual|ListEqual|SetEqual|TupleEqual|CountEqual|MultiLineEqual|AlmostEqual|Regex"
    r"|IsInstance|Raises|RaisesRegex)$|^assert_called(?:_once)?_with$|^assert_any_call$"
)
_WEAK_CALLS = re.compile(r"^assert(?:True|IsNotNone|_called|_called_once)$")
_SETTING = re.compile(
    r"(?<![\w.-])(?P<key>[\w.-]*?(?P<kind>timeout|deadline|retries|retry|tries|attempts)[\w-]*)"
    r"[\"']?\s*[=:]\s*(?P<value>float\([\"']inf[\"']\)|[\w.\"'-]+)",
    re.IGNORECASE,
)
_OFF = {
    "timeout": {"none", "0", "0.0", "inf", "math.inf", 'float("inf")', "float('inf')", "-1"},
    "retry": {"0", "none", "false"},
    "tries": {"0", "1", "none", "false"},  # one try is no retry
}
_BROAD = {"", "Exception", "BaseException"}
_RERAISE = re.compile(r"^\s*raise\b")


def _weakened(f: _File) -> list[Finding]:
    findings = _settings_off(f)
    if f.lang == "py" and f.fc.status != "deleted":
        swallowed = _swallowed(f)  # a handler made to swallow also stopped re-raising: once
        findings += _weaker_asserts(f) + (swallowed or _reraise_removed(f))
    return findings


def _reraise_removed(f: _File) -> list[Finding]:
    """A handler that re-raised (`except X: ...; raise`) and no longer does, in a function that
    kept its try statements (a removed try is guard.except-removed's finding)."""
    raises = [ln for ln in f.fc.removed if _RERAISE.match(ln.text)]
    if not raises or f.old_units is None or f.new_units is None:
        return []
    old, new, findings = f.old_units, f.new_units, []
    for name, group in _by_unit(old, raises).items():
        after = new.get(name)
        if after is None or after.tries < old[name].tries or name == MODULE:
            continue
        if _reraises(after.node) >= _reraises(old[name].node):
            continue
        ln = group[0]
        message = f"`{name}` no longer re-raises the error it caught (`raise` removed)"
        quote = _quote(f.old_lines[max(ln.number - 3, 0) : ln.number])
        findings.append(f.finding("except-swallowed", message, ln.number, quote))
    return findings


def _reraises(node: ast.AST) -> int:
    return sum(
        1
        for handler in ast.walk(node)
        if isinstance(handler, ast.ExceptHandler)
        for n in ast.walk(handler)
        if isinstance(n, ast.Raise)
    )


def _subject(text: str, strong: bool) -> str | None:
    """What a one-line assertion checks, if it checks it as strongly (`assert x == y`,
    `assertEqual(x, y)`) or as weakly (`assert x`, `assert x is not None`, `assertTrue(x)`) as asked."""
    if "assert" not in text or len(text) > MAX_LINE:
        return None
    try:
        node = ast.parse(text.strip()).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if isinstance(node, ast.Assert):
        test = node.test
        if isinstance(test, ast.Compare):
            weak = isinstance(test.ops[0], ast.IsNot) and _is_none(test.comparators[0])
            return ast.unparse(test.left) if weak != strong else None
        if isinstance(test, ast.Constant):
            return None if strong else "<anything>"
        return None if strong else ast.unparse(test)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        call = node.value
        name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
        pattern = _STRONG_CALLS if strong else _WEAK_CALLS
        if not pattern.match(name):
            return None
        if name.startswith("assert_") and isinstance(call.func, ast.Attribute):
            return ast.unparse(call.func.value)  # mock.assert_called_with(...) -> mock
        if call.args and (not strong or len(call.args) >= 2 or name.startswith("assertRaises")):
            return ast.unparse(call.args[0])
    return None


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _weaker_asserts(f: _File) -> list[Finding]:
    strong: dict[str, Line] = {}
    for ln in f.fc.removed:
        if (s := _subject(ln.text, strong=True)) is not None and ln.text.strip() not in f.moved:
            strong.setdefault(s, ln)
    if not strong:
        return []
    findings = []
    for ln in f.fc.added:
        s = _subject(ln.text, strong=False)
        if s is None or not f.new_code(ln):
            continue
        old = strong.pop(s, None) if s != "<anything>" else next(iter(strong.values()), None)
        if old is None:
            continue
        message = f"weakened `{old.text.strip()}` to `{ln.text.strip()}`"
        quote = f"- {old.text.strip()}\n+ {ln.text.strip()}"
        findings.append(f.finding("assert-weakened", message, ln.number, quote))
    return findings


def _settings_off(f: _File) -> list[Finding]:
    """A timeout set to none or zero, a retry count set to zero, where a value stood."""
    if PurePosixPath(f.path).suffix in _PROSE:
        return []
    before: dict[tuple[str, str], str] = {}
    for ln in f.fc.removed:
        if not _COMMENT.match(ln.text) and len(ln.text) <= MAX_LINE:
            for m in _SETTING.finditer(ln.text):
                before.setdefault((_kind(m), m["key"].lower()), m["value"])
    findings = []
    for ln in f.fc.added:
        if _COMMENT.match(ln.text) or len(ln.text) > MAX_LINE:
            continue
        for m in _SETTING.finditer(ln.text):
            kind, old = _kind(m), before.get((_kind(m), m["key"].lower()))
            value = m["value"].strip("\"'").lower()
            if old is None or value not in _OFF[kind] or old.strip("\"'").lower() in _OFF[kind]:
                continue
            rule = "timeout" if kind == "timeout" else "retry"
            message = f"switched a {rule} off: `{m['key']}` from {old} to {m['value']}"
            why = WHY[f"{rule}-removed"]
            findings.append(f.finding(f"{rule}-weakened", message, ln.number, ln.text.strip(), why))
    return findings


def _kind(m: re.Match[str]) -> str:
    kind = m["kind"].lower()
    return "timeout" if kind in ("timeout", "deadline") else "retry" if "retr" in kind else "tries"


def _swallowed(f: _File) -> list[Finding]:
    """More handlers that catch everything and do nothing than the file had."""
    if not any(_HANDLER.match(ln.text) or "suppress(" in ln.text for ln in f.fc.added):
        return []
    old, new = _swallowers(f.old), _swallowers(f.new)
    if old is None or new is None or len(new) <= len(old):
        return []
    fresh = [n for n in new if n in {ln.number for ln in f.fc.added}][: len(new) - len(old)]
    return [
        f.finding(
            "except-swallowed",
            f"added a handler that swallows every error: `{f.new_lines[n - 1].strip()}`",
            n,
            _quote(f.new_lines[n - 1 : n + 1]),
        )
        for n in fresh
    ]


def _swallowers(text: str | None) -> list[int] | None:
    """Lines of `except:` / `except Exception:` handlers whose body does nothing, and of
    `suppress(Exception)`; None if the text does not parse."""
    if text is None:
        return []
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler):
            caught = "" if node.type is None else ast.unparse(node.type).rsplit(".", 1)[-1]
            if caught in _BROAD and all(_idle(s) for s in node.body):
                out.append(node.lineno)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("suppress"):
            if any(ast.unparse(a).rsplit(".", 1)[-1] in _BROAD for a in node.args):
                out.append(node.lineno)
    return sorted(out)


def _idle(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass | ast.Continue | ast.Break):
        return True
    if isinstance(stmt, ast.Return):
        return stmt.value is None or _is_none(stmt.value)
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
