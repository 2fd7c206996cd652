"""Security weakenings: what the change does to the code's defences, base against head.

Two sources, on the changed Python files (base text from git, head text read as `Change.new_text`
reads it: a link is not followed, a huge file fails the scan, which blocks):

- **Our rules**, by AST, for what bandit does not see:
  - `security.auth-removed` (**block**): an authentication or authorization guard a function or
    class had and has no more: a decorator (`@login_required`, `@permission_required`,
    `@user_passes_test`, `@staff_member_required`, `*_required` of login/auth/permission/role,
    `method_decorator(...)` of one), a mixin base (`LoginRequiredMixin`, `PermissionRequiredMixin`,
    `UserPassesTestMixin`), an `if <user/permission test>: raise/return` check or a
    `check_permissions(...)`-style call, or a permission method (`has_permission`,
    `has_object_permission`, `test_func`, ...) made to `return True`.
  - `security.permission-opened` (**block**): DRF `permission_classes` / `authentication_classes`
    (class attribute, decorator, or `DEFAULT_*` in settings) emptied, removed, narrowed to a
    subset, or given `AllowAny` / `...OrReadOnly`.
  - warn: `security.csrf-exempt`, `security.debug` (`DEBUG = True`), `security.allowed-hosts`
    (`"*"`), `security.cors-all`, `security.tls-verify` (`verify=False`, `CERT_NONE`, ...),
    `security.shell` (`shell=True` with a command that is not a literal), `security.yaml-load`
    (no safe loader), `security.sql-format` (`execute`/`raw`/`text` given an f-string, `%`,
    `+` or `.format` SQL), `security.auth-header-kept` (a redirect no longer strips
    `Authorization`: the `del`/`pop` gone, or `should_strip_auth` made `return False`).
- **bandit** (`security.bandit.<test id>`, warn; info in test files, which do not ship), run in
  this process on the base and head texts, each written to a private temporary folder first: the
  only path bandit is given is that copy's (it looks for `__init__.py` beside the path it is
  given, so it is never a workspace path). `# nosec` is not honoured (a new one is the
  suppressions scan's finding). Low-severity or low-confidence issues, `assert` (B101) and
  hardcoded passwords (B105-B107, the secret scan's work) are left out.

Only what the change introduced is reported: a head issue counts when the base file has fewer
issues of the same rule (bandit's test id) and the same code text, so a moved or re-indented line
is not new; a removed guard counts when the function that held it still stands and the guard did
not move to its class, to a helper the change added, or (a decorator) elsewhere in the change.

Not caught: a guard lost with a renamed function, a check weakened inside its condition
(`if not user.is_authenticated and False:`), permission logic in templates or URL conf other than
a wrapper call, files that do not parse.
"""

from __future__ import annotations

import ast
import io
import logging
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from jackline.config import JacklineConfig
from jackline.models import Finding
from jackline.scans import Change, FileChange

if TYPE_CHECKING:
    from bandit.core.test_set import BanditTestSet

Level = Literal["block", "warn", "info"]
OWNER = " A person who owns this code decides: a block-level finding needs an owner's approval."
WHY = {
    "auth-removed": "The guard kept anonymous or unprivileged users out of this code; without "
    "it they reach it, and no test of the happy path notices." + OWNER,
    "permission-opened": "The permission classes decide who may call this endpoint; fewer of "
    "them, or AllowAny, lets more people in." + OWNER,
    "csrf-exempt": "Without CSRF protection another site can make a logged-in user's browser "
    "send this request.",
    "debug": "DEBUG on in a deployed settings file shows tracebacks, settings and SQL to anyone.",
    "allowed-hosts": 'ALLOWED_HOSTS = ["*"] accepts any Host header (cache poisoning, password '
    "reset links to another host).",
    "cors-all": "Any origin may read responses meant for this site's own pages.",
    "tls-verify": "Without certificate verification anyone on the network path can read and "
    "change the traffic.",
    "shell": "A shell given a command built from data runs whatever that data says.",
    "yaml-load": "yaml.load without a safe loader builds arbitrary Python objects from the input.",
    "sql-format": "SQL built by string formatting is injectable; pass the values as parameters.",
    "auth-header-kept": "A redirect to another host would carry the user's credentials to it.",
    "bandit": "bandit, a static security linter, reports this pattern and the base did not have "
    "it; confirm it is safe here.",
}

_GUARD_WORD = (
    r"(?:auth|login|logged_in|signin|admin|perm|staff|superuser|owner|member|role|user"
    r"|team|verified|token|jwt|otp|scope)"
)
_GUARD_ALT = (
    rf"authori[sz]e\w*|authenticated|\w*{_GUARD_WORD}\w*_(?:required|only)"
    rf"|user_passes_test|(?:requires?|ensure|must_be)_\w*{_GUARD_WORD}\w*"
)
_GUARD_NAME = re.compile(rf"^(?:{_GUARD_ALT})$", re.IGNORECASE)
_MIXIN = re.compile(r"^(LoginRequired|PermissionRequired|UserPassesTest|StaffRequired"
                    r"|SuperuserRequired|AccessMixin$)")  # fmt: skip
_AUTH_TEST = re.compile(
    r"user|perm|auth|owner|staff|superuser|admin|role|login|token|is_anonymous|forbid", re.I
)
_AUTH_ASSERT = re.compile(
    r"is_authenticated|is_anonymous|has_perms?\b|has_permission|is_staff|is_superuser|is_admin"
    r"|current_user|request\.user|permission"
)
_DENY = re.compile(
    r"PermissionDenied|Forbidden|NotAuthenticated|Unauthorized|AuthenticationFailed|403|401"
    r"|redirect_to_login|login|abort|deny|HttpResponseForbidden|handle_no_permission|Http404"
    r"|NotFound|404",
    re.I,
)
_CHECK_CALL = re.compile(
    r"^(?:check_(?:object_)?permissions?|require_\w*(?:auth|login|perm|role)\w*"
    r"|ensure_\w*(?:auth|login|perm|owner|access)\w*|verify_\w*(?:token|signature|auth)\w*"
    r"|authorize\w*|assert_\w*(?:perm|owner|auth|access)\w*|check_access|handle_no_permission)$"
)
_GUARD_LINE = re.compile(
    rf"^@(?:[\w.]+\.)?(?:{_GUARD_ALT})\b|^(?:if|elif)\b.*\b(?:is_authenticated"
    r"|is_anonymous|has_perms?|is_staff|is_superuser|is_admin|current_user)\b",
    re.IGNORECASE,
)
_STRIP_LINE = re.compile(r"^del\b.*authorization|\.pop\(\s*[\"']authorization[\"']", re.I)
_TEXT_RULES = {
    "tls-verify": re.compile(r"\b(?:verify|verify_ssl|ssl_verify)\s*(?::\s*[\w.]+\s*)?=\s*False\b"),
    "shell": re.compile(r"\bshell\s*=\s*True\b"),
    "yaml-load": re.compile(r"\byaml\.(?:load|unsafe_load|full_load)\((?!.*Safe)"),
    "csrf-exempt": re.compile(r"\bcsrf_exempt\b"),
    "debug": re.compile(r"^DEBUG\s*=\s*True\b"),
    "allowed-hosts": re.compile(r"^ALLOWED_HOSTS\s*=.*[\"']\*[\"']"),
}
_PERMISSION_METHOD = {
    "has_permission",
    "has_object_permission",
    "has_perm",
    "has_perms",
    "has_module_perms",
    "test_func",
    "check_permission",
    "check_permissions",
    "is_authorized",
    "authorize",
}
_USER = re.compile(r"(?:request|self\.request|g)\.user\b|current_user|\buser\b")
_LOOKUPS = {"get_object_or_404", "get_list_or_404", "get_or_404", "first_or_404", "get"}
_PERMISSION_LISTS = {"permission_classes", "authentication_classes"}
_OPEN = re.compile(r"^AllowAny$|OrReadOnly$")
_VERIFY = ("verify", "verify_ssl", "ssl_verify", "check_hostname", "validate_certs")
_SQL_CALLS = {"execute", "executemany", "executescript", "raw", "extra", "RawSQL", "text"}
_SAFE_LOADERS = re.compile(r"Safe|BaseLoader")
_BANDIT_SKIPPED = {"B101", "B105", "B106", "B107"}
_RANK = {"UNDEFINED": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
MODULE = "<module>"
MAX_LINE = 2000
"""Characters of a line that the text rules read: code is shorter; a longer line is data."""


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    if not config.scan.weakenings:
        return []
    findings: list[Finding] = []
    words: set[str] | None = None
    for fc in change.files:
        if fc.path.endswith(".py") and fc.status != "deleted" and (fc.added or fc.removed):
            words = _added_words(change) if words is None else words
            findings += _File(change, fc, words).findings()
    return findings


@dataclass(frozen=True)
class Hit:
    """One pattern at one place: the rule, what to match base and head by, where, what to say."""

    rule: str
    key: str
    line: int
    quote: str
    message: str
    end: int = 0
    """The last line the pattern spans (0: just `line`)."""

    def touches(self, lines: set[int]) -> bool:
        return any(n in lines for n in range(self.line, max(self.line, self.end) + 1))


class _File:
    def __init__(self, change: Change, fc: FileChange, elsewhere: set[str]) -> None:
        self.change, self.fc, self.path = change, fc, fc.path
        self.elsewhere = elsewhere
        """Guard names the change adds somewhere (a decorator moved to urls.py stays)."""
        self.added_lines = {ln.number for ln in fc.added}
        path = PurePosixPath(fc.path)
        named = path.name.startswith("test_") or path.name in ("conftest.py", "tests.py")
        self.is_test = named or bool({"tests", "test"} & set(path.parts[:-1]))

    @cached_property
    def new(self) -> str | None:
        return self.change.new_text(self.path)

    @cached_property
    def old(self) -> str:
        old = self.change.old_text(self.fc.old_path) if self.fc.old_path else None
        return old or ""

    @cached_property
    def new_tree(self) -> ast.Module | None:
        return _parse(self.new)

    @cached_property
    def old_tree(self) -> ast.Module | None:
        return _parse(self.old) or ast.Module(body=[], type_ignores=[])

    def findings(self) -> list[Finding]:
        if self.new is None:
            return []
        if self.new_tree is None or self.old_tree is None:
            return self._removed_lines()
        # A test guards nothing at run time: its lost checks are guard.assert-removed's
        own = [] if self.is_test else self._removed_guards() + self._opened()
        own += self._introduced()
        seen = {f.line for f in own}
        found = own + [f for f in self._bandit() if f.line not in seen]
        return sorted(found, key=lambda f: f.line or 0)

    def finding(self, rule: str, level: Level, message: str, line: int, quote: str) -> Finding:
        why = WHY[rule.split(".")[0]]
        return Finding(f"security.{rule}", level, message, self.path, line, why, quote)

    def _removed_lines(self) -> list[Finding]:
        """A head that does not parse (the agent's edit broke it, or a newer syntax): removed
        guard lines, read as text, so a broken file does not hide what it lost."""
        added = {ln.text.strip() for ln in self.fc.added} | self.change.moved
        findings = []
        for ln in [] if self.is_test else self.fc.removed:
            text = ln.text.strip()[:MAX_LINE]
            if text in added:
                continue
            if _GUARD_LINE.match(text):
                message = f"removed `{text}` (the file no longer parses; read as text)"
                findings.append(self.finding("auth-removed", "block", message, ln.number, text))
            elif _STRIP_LINE.search(text):
                message = f"no longer strips the Authorization header: `{text}` removed"
                findings.append(self.finding("auth-header-kept", "warn", message, ln.number, text))
        removed = {ln.text.strip() for ln in self.fc.removed} | self.change.moved
        for ln in self.fc.added:
            text = ln.text.strip()[:MAX_LINE]
            for rule, pattern in _TEXT_RULES.items():
                if text not in removed and pattern.search(text):
                    message = f"added `{text[:120]}` (the file no longer parses; read as text)"
                    findings.append(self.finding(rule, "warn", message, ln.number, text))
        return findings

    # --- block: guards removed ------------------------------------------------------------

    def _removed_guards(self) -> list[Finding]:
        assert self.new_tree is not None and self.old_tree is not None
        old, new = _units(self.old_tree), _units(self.new_tree)
        elsewhere = self.elsewhere
        findings = []
        for name, unit in old.items():
            after = new.get(name)
            if after is None:
                continue  # the function is gone, and its guard with it
            kept = Counter(g.key for g in after.guards) + _gained_around(name, old, new)
            for g in unit.guards:
                if kept[g.key] > 0:
                    kept[g.key] -= 1
                elif g.key != "check" and g.key in elsewhere:
                    continue  # the decorator moved (into urls.py, onto the class...)
                else:
                    message = f"removed {g.what} from `{name}`"
                    quote = _text(self.old, g.line) or g.quote
                    findings.append(self.finding("auth-removed", "block", message, g.line, quote))
            if unit.name in _PERMISSION_METHOD and _allows_all(after.node, True):
                if not _allows_all(unit.node, True):
                    message = f"`{name}` now always returns True"
                    line = _first_return(after.node)
                    quote = _text(self.new, line)
                    findings.append(self.finding("auth-removed", "block", message, line, quote))
        return findings

    def _opened(self) -> list[Finding]:
        assert self.new_tree is not None and self.old_tree is not None
        old, new = _permission_lists(self.old_tree), _permission_lists(self.new_tree)
        findings = []
        for where, before in old.items():
            after = new.get(where)
            problem = _narrowed(before.items, after.items if after else None)
            if problem:
                line = after.line if after else before.line
                quote = _text(self.new if after else self.old, line)
                message = f"`{where}` {problem}"
                findings.append(self.finding("permission-opened", "block", message, line, quote))
        for where, after in new.items():
            if where not in old and any(_OPEN.search(i) for i in after.items):
                message = f"`{where}` lets anyone in: {', '.join(after.items)}"
                quote = _text(self.new, after.line)
                findings.append(
                    self.finding("permission-opened", "block", message, after.line, quote)
                )
        return findings

    # --- warn: patterns the change introduced ----------------------------------------------

    def _introduced(self) -> list[Finding]:
        assert self.new_tree is not None and self.old_tree is not None
        new = list(_patterns(self.new_tree, self.new or ""))
        before = Counter(h.key for h in _patterns(self.old_tree, self.old))
        level: Level = "info" if self.is_test else "warn"
        findings = [
            self.finding(h.rule, level, h.message, h.line, h.quote)
            for h in _beyond(new, before, self.added_lines)
        ]
        return findings + self._auth_header()

    def _auth_header(self) -> list[Finding]:
        """A redirect that keeps `Authorization`: fewer statements stripping it than before."""
        assert self.new_tree is not None and self.old_tree is not None
        gone = Counter(_strips(self.old_tree)) - Counter(_strips(self.new_tree))
        findings = []
        for text, line in _strip_lines(self.old_tree):
            if gone[text] > 0:
                gone[text] -= 1
                message = f"no longer strips the Authorization header: `{text}` removed"
                findings.append(self.finding("auth-header-kept", "warn", message, line, text))
        old, new = _units(self.old_tree), _units(self.new_tree)
        for name, unit in new.items():
            if "strip_auth" in unit.name and _allows_all(unit.node, False):
                if name in old and not _allows_all(old[name].node, False):
                    message = f"`{name}` now always returns False: credentials follow redirects"
                    line = _first_return(unit.node)
                    quote = _text(self.new, line)
                    findings.append(self.finding("auth-header-kept", "warn", message, line, quote))
        return findings

    # --- bandit ---------------------------------------------------------------------------

    def _bandit(self) -> list[Finding]:
        assert self.new is not None and self.new_tree is not None and self.old_tree is not None
        head = bandit_hits(_reduced(self.new, self.new_tree, self.added_lines))
        if not any(h.touches(self.added_lines) for h in head):
            return []  # nothing on the lines the change wrote: no need to read the base
        removed = {ln.number for ln in self.fc.removed}
        before = Counter(h.key for h in bandit_hits(_reduced(self.old, self.old_tree, removed)))
        level: Level = "info" if self.is_test else "warn"
        return [
            self.finding(h.rule, level, h.message, h.line, h.quote)
            for h in _beyond(head, before, self.added_lines)
        ]


def _reduced(text: str, tree: ast.Module, lines: set[int]) -> str:
    """The text with only its imports and the top-level statements holding `lines` left, the
    rest blanked (line numbers kept): bandit's time grows with the file, and what the change
    did not touch is in the base and the head alike, so it cannot be new."""
    rows = text.splitlines()
    keep = [False] * (len(rows) + 1)
    for stmt in tree.body:
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        last = stmt.end_lineno or stmt.lineno
        imports = isinstance(stmt, ast.Import | ast.ImportFrom) or (
            isinstance(stmt, ast.Try | ast.If)
            and any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(stmt))
        )
        if imports or any(n in lines for n in range(first, last + 1)):
            for n in range(first, min(last, len(rows)) + 1):
                keep[n] = True
    return "\n".join(row if keep[n] else "" for n, row in enumerate(rows, 1)) + "\n"


def _parse(text: str | None) -> ast.Module | None:
    if text is None:
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _text(text: str | None, line: int) -> str:
    lines = (text or "").splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _beyond(hits: list[Hit], before: Counter[str], added: set[int]) -> list[Hit]:
    """The hits beyond the base's count of their key, those on added lines first."""
    left = Counter(before)
    out = []
    for h in sorted(hits, key=lambda h: (h.touches(added), h.line)):
        if left[h.key] > 0:
            left[h.key] -= 1
        else:
            out.append(h)
    return sorted(out, key=lambda h: h.line)


def _key(node: ast.AST) -> str:
    """A node's code with layout ignored: a moved or re-indented line keeps its key."""
    return ast.unparse(node)


def _name(node: ast.AST) -> str:
    """The last name of a dotted name or a call's function (`auth.login_required()` gives
    `login_required`)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


# --- units and their guards -----------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    key: str
    """What must survive: the guard's normalised name, or `check` for an if/raise check."""
    what: str
    line: int
    quote: str


@dataclass(frozen=True)
class Unit:
    name: str
    node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    guards: tuple[Guard, ...]


def _units(tree: ast.Module) -> dict[str, Unit]:
    out: dict[str, Unit] = {}
    _collect(tree.body, "", out)
    return out


def _collect(body: list[ast.stmt], prefix: str, out: dict[str, Unit]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + node.name
            out[name] = Unit(node.name, node, tuple(_guards(node)))
            _collect(node.body, f"{name}.", out)


def _guards(node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[Guard]:
    for d in node.decorator_list:
        names = [_name(d)]
        if names[0] == "method_decorator" and isinstance(d, ast.Call):
            names = [_name(a) for a in d.args] + [
                _name(e) for a in d.args if isinstance(a, ast.List | ast.Tuple) for e in a.elts
            ]
        for n in names:
            if _GUARD_NAME.match(n):
                yield Guard(n, f"`@{_key(d)}`", d.lineno, f"@{_key(d)}")
    if isinstance(node, ast.ClassDef):
        for b in node.bases:
            if _MIXIN.match(_name(b)):
                yield Guard(_snake(_name(b)), f"the `{_name(b)}` base", b.lineno, _key(b))
        return
    for stmt in _walk_own(node):
        if isinstance(stmt, ast.If) and _is_check(stmt):
            test = _key(stmt.test)
            yield Guard("check", f"the check `if {test}:`", stmt.lineno, f"if {test}:")
        elif isinstance(stmt, ast.Assert) and _AUTH_ASSERT.search(_key(stmt.test)):
            yield Guard("check", f"the check `{_key(stmt)}`", stmt.lineno, _key(stmt))
        elif isinstance(stmt, ast.Assign | ast.Expr) and _scoped_lookup(stmt.value):
            yield Guard("check", f"the lookup `{_key(stmt)}`", stmt.lineno, _key(stmt))
        elif (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Call)
            and _CHECK_CALL.match(_name(stmt.value))
        ):
            yield Guard("check", f"the check `{_key(stmt)}`", stmt.lineno, _key(stmt))


def _walk_own(fn: ast.AST) -> Iterator[ast.AST]:
    """The statements of a function, nested functions and classes left out (they are units)."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        yield node
        stack += ast.iter_child_nodes(node)


def _is_check(node: ast.If) -> bool:
    """`if <a user/permission test>:` where one branch refuses: raises, returns or aborts."""
    return bool(_AUTH_TEST.search(_key(node.test))) and (
        _refuses(node.body) or _refuses(node.orelse)
    )


def _refuses(body: list[ast.stmt]) -> bool:
    for s in body:
        if isinstance(s, ast.Raise | ast.Return | ast.Expr) and _DENY.search(_key(s)):
            return True
        if isinstance(s, ast.If) and (_refuses(s.body) or _refuses(s.orelse)):
            return True
    return False


def _scoped_lookup(value: ast.expr | None) -> bool:
    """A lookup that fails for someone else's object: `get_object_or_404(..., user=request.user)`,
    `Model.objects.get(owner=request.user)`."""
    if not isinstance(value, ast.Call) or _name(value) not in _LOOKUPS:
        return False
    return any(k.arg and _USER.search(_key(k.value)) for k in value.keywords)


def _snake(mixin: str) -> str:
    """`LoginRequiredMixin` -> `login_required`: a mixin swapped for its decorator is kept."""
    words = re.findall(r"[A-Z][a-z]*", mixin.removesuffix("Mixin"))
    return "_".join(w.lower() for w in words)


def _gained_around(name: str, old: dict[str, Unit], new: dict[str, Unit]) -> Counter[str]:
    """Guards gained by the unit's class and its other methods, and by units the change added
    (a check moved into a helper, a decorator onto the class)."""
    parent = name.rsplit(".", 1)[0] if "." in name else None
    gained: Counter[str] = Counter()
    for other, unit in new.items():
        related = other not in old or (
            parent is not None and (other == parent or other.startswith(parent + "."))
        )
        if related and other != name:
            before = Counter(g.key for g in old[other].guards) if other in old else Counter()
            gained += Counter(g.key for g in unit.guards) - before
    return gained


def _added_words(change: Change) -> set[str]:
    """Guard names the change wrote more often than it removed them, in any file. Words are
    cut out in one linear pass (a pattern that backtracks would take minutes on a hostile
    megabyte-long line)."""
    words: Counter[str] = Counter()
    for fc in change.files:
        for lines, sign in ((fc.added, 1), (fc.removed, -1)):
            for ln in lines:
                for w in re.findall(r"\w+", ln.text[:MAX_LINE]):
                    if len(w) < 60 and (_GUARD_NAME.match(w) or _MIXIN.match(w)):
                        words[w] += sign
    return {_snake(w) if w.endswith("Mixin") else w for w, n in words.items() if n > 0}


def _allows_all(node: ast.AST, value: bool) -> bool:
    """A function that can only answer `value`: every return gives that constant, none raises
    (`has_permission` made `return True`, `should_strip_auth` made `return False`)."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    own = list(_walk_own(node))
    returns = [s for s in own if isinstance(s, ast.Return)]
    return (
        bool(returns)
        and not any(isinstance(s, ast.Raise) for s in own)
        and all(isinstance(r.value, ast.Constant) and r.value.value is value for r in returns)
    )


def _first_return(node: ast.AST) -> int:
    lines = [s.lineno for s in _walk_own(node) if isinstance(s, ast.Return)]
    return min(lines, default=getattr(node, "lineno", 0))


# --- permission lists -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Listed:
    items: tuple[str, ...]
    line: int


def _permission_lists(tree: ast.Module) -> dict[str, _Listed]:
    """DRF's permission and authentication classes by where they are set: `View.permission_
    classes`, `view@permission_classes`, `DEFAULT_PERMISSION_CLASSES`."""
    out: dict[str, _Listed] = {}
    for unit_name, unit in _units(tree).items():
        node = unit.node
        if isinstance(node, ast.ClassDef):
            for s in node.body:
                if isinstance(s, ast.Assign | ast.AnnAssign):
                    targets = s.targets if isinstance(s, ast.Assign) else [s.target]
                    for t in targets:
                        if _name(t) in _PERMISSION_LISTS and s.value is not None:
                            out[f"{unit_name}.{_name(t)}"] = _listed(s.value, s.lineno)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and _name(d) in _PERMISSION_LISTS and d.args:
                    out[f"{unit_name}@{_name(d)}"] = _listed(d.args[0], d.lineno)
    for found in ast.walk(tree):
        if isinstance(found, ast.Dict):
            for k, v in zip(found.keys, found.values, strict=True):
                if isinstance(k, ast.Constant) and k.value in (
                    "DEFAULT_PERMISSION_CLASSES",
                    "DEFAULT_AUTHENTICATION_CLASSES",
                ):
                    out[str(k.value)] = _listed(v, k.lineno)
    return out


def _listed(value: ast.expr, line: int) -> _Listed:
    elts = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
    items = []
    for e in elts:
        text = e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else _key(e)
        items.append(re.split(r"[.]", text)[-1])
    return _Listed(tuple(items), line)


def _narrowed(before: tuple[str, ...], after: tuple[str, ...] | None) -> str:
    """What makes `after` weaker than `before` ("" if nothing does)."""
    if not before or set(before) <= {"AllowAny"}:
        return ""
    if after is None:
        return f"removed (was {', '.join(before)}): the project's default applies"
    if not after:
        return f"emptied (was {', '.join(before)})"
    opened = [i for i in after if _OPEN.search(i) and i not in before]
    if opened:
        return f"now includes {', '.join(opened)} (was {', '.join(before)})"
    dropped = [i for i in before if i not in after]
    if dropped and set(after) <= set(before):
        return f"no longer includes {', '.join(dropped)}"
    return ""


# --- warn patterns --------------------------------------------------------------------------


def _patterns(tree: ast.Module, text: str) -> Iterator[Hit]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield from _call(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            yield from _assign(node)
        elif isinstance(node, ast.arguments):
            yield from _defaults(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for d in node.decorator_list:
                if _name(d) == "csrf_exempt" or "csrf_exempt" in _key(d):
                    yield _hit("csrf-exempt", d, f"added `@{_key(d)}` to `{node.name}`")


def _defaults(node: ast.arguments) -> Iterator[Hit]:
    """A parameter `verify` (or alike) whose default turns verification off."""
    positional = [*node.posonlyargs, *node.args]
    pairs = list(
        zip(positional[len(positional) - len(node.defaults) :], node.defaults, strict=True)
    )
    pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d]
    for arg, default in pairs:
        if arg.arg in _VERIFY and isinstance(default, ast.Constant) and default.value is False:
            yield _hit("tls-verify", arg, f"defaults `{arg.arg}` to False")


def _hit(rule: str, node: ast.AST, message: str) -> Hit:
    line, end = getattr(node, "lineno", 0), getattr(node, "end_lineno", 0) or 0
    return Hit(rule, f"{rule}:{_key(node)}", line, _key(node).splitlines()[0][:200], message, end)


def _call(node: ast.Call) -> Iterator[Hit]:
    name = _name(node)
    kw = {k.arg: k.value for k in node.keywords if k.arg}
    for arg in _VERIFY:
        if isinstance(kw.get(arg), ast.Constant) and kw[arg].value is False:  # type: ignore[attr-defined]
            yield _hit("tls-verify", node, f"turns certificate verification off: `{arg}=False`")
    if name == "_create_unverified_context":
        yield _hit("tls-verify", node, "uses an unverified SSL context")
    shell = kw.get("shell")
    if isinstance(shell, ast.Constant) and shell.value is True and not _literal_command(node):
        yield _hit("shell", node, f"`{name}(..., shell=True)` with a command that is not a literal")
    if name in ("system", "popen") and node.args and not _literal(node.args[0]):
        if isinstance(node.func, ast.Attribute) and _name(node.func.value) == "os":
            yield _hit("shell", node, f"`os.{name}` with a command that is not a literal")
    if name in ("load", "load_all", "unsafe_load", "full_load") and _is_yaml(node.func):
        loader = kw.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
        if (
            name in ("unsafe_load", "full_load")
            or loader is None
            or not _SAFE_LOADERS.search(_key(loader))
        ):
            yield _hit("yaml-load", node, f"`yaml.{name}` without a safe loader")
    if name == "csrf_exempt" and node.args:
        yield _hit("csrf-exempt", node, f"wraps a view in `{_key(node)[:80]}`")
    if name in _SQL_CALLS and node.args and _formatted(node.args[0]):
        yield _hit("sql-format", node, f"`{name}` given SQL built by string formatting")


def _is_yaml(func: ast.expr) -> bool:
    return isinstance(func, ast.Attribute) and _name(func.value) in ("yaml", "ruamel")


def _literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.List | ast.Tuple):
        return all(_literal(e) for e in node.elts)
    return False


def _literal_command(node: ast.Call) -> bool:
    cmd = (
        node.args[0]
        if node.args
        else next((k.value for k in node.keywords if k.arg in ("args", "cmd", "command")), None)
    )
    return cmd is None or _literal(cmd)


def _formatted(node: ast.expr) -> bool:
    """A string built from data: an f-string with a value in it, `%`, `+`, or `.format(...)`."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return _stringy(node.left) and not _literal(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _stringy(node.func.value)
    return False


def _stringy(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.JoinedStr | ast.BinOp)


def _assign(node: ast.Assign | ast.AnnAssign) -> Iterator[Hit]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    value = node.value
    assert value is not None
    for t in targets:
        name = _name(t)
        true = isinstance(value, ast.Constant) and value.value is True
        false = isinstance(value, ast.Constant) and value.value is False
        if name == "DEBUG" and true and isinstance(t, ast.Name):
            yield _hit("debug", node, "sets `DEBUG = True`")
        elif name == "ALLOWED_HOSTS" and "'*'" in _key(value):
            yield _hit("allowed-hosts", node, "lets any host in: `ALLOWED_HOSTS` holds `*`")
        elif name in ("CORS_ALLOW_ALL_ORIGINS", "CORS_ORIGIN_ALLOW_ALL") and true:
            yield _hit("cors-all", node, f"sets `{name} = True`")
        elif name in ("verify", "check_hostname") and false and isinstance(t, ast.Attribute):
            yield _hit("tls-verify", node, f"turns certificate verification off: `{_key(node)}`")
        elif name == "verify_mode" and "CERT_NONE" in _key(value):
            yield _hit("tls-verify", node, "turns certificate verification off: `CERT_NONE`")


def _strips(tree: ast.Module) -> list[str]:
    return [text for text, _ in _strip_lines(tree)]


def _strip_lines(tree: ast.Module) -> Iterable[tuple[str, int]]:
    """Statements that take `Authorization` out of headers: `del h["Authorization"]`,
    `h.pop("Authorization", ...)`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Delete) and "authorization" in _key(node).lower():
            yield _key(node), node.lineno
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and _name(node.value) == "pop"
            and node.value.args
            and isinstance(node.value.args[0], ast.Constant)
            and str(node.value.args[0].value).lower() == "authorization"
        ):
            yield _key(node), node.lineno


# --- bandit ---------------------------------------------------------------------------------


@cache
def _tests() -> BanditTestSet:
    """bandit's plugins, loaded once a process (a tenth of a second). Loading them also loads
    its report formatters, one of which needs a package we do not install: its complaint, and
    stevedore's deprecation warning, say nothing about the scan."""
    quiet = logging.getLogger("stevedore")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from bandit.core import config as b_config
            from bandit.core import meta_ast, metrics, node_visitor, test_set  # noqa: F401

            return test_set.BanditTestSet(b_config.BanditConfig(), {})
    finally:
        quiet.setLevel(level)


def bandit_hits(text: str) -> list[Hit]:
    """bandit's issues in `text`, from a copy in a private temporary folder."""
    if not text.strip():
        return []
    tests = _tests()
    from bandit.core import meta_ast, metrics, node_visitor

    data = text.encode()
    lines = text.splitlines()
    with tempfile.TemporaryDirectory(prefix="jackline-bandit-") as tmp:
        copy = Path(tmp) / "copy.py"
        copy.write_bytes(data)
        visitor = node_visitor.BanditNodeVisitor(
            str(copy), io.BytesIO(data), meta_ast.BanditMetaAst(), tests, False, {},
            metrics.Metrics(),
        )  # fmt: skip
        try:
            visitor.process(data)
        except (SyntaxError, ValueError):
            return []
    return [_issue_hit(issue, lines) for issue in visitor.tester.results if _counts(issue)]


def _counts(issue: object) -> bool:
    test_id = getattr(issue, "test_id", "")
    severity, confidence = getattr(issue, "severity", ""), getattr(issue, "confidence", "")
    return (
        test_id not in _BANDIT_SKIPPED
        and _RANK.get(severity, 0) >= 2
        and _RANK.get(confidence, 0) >= 2
    )


def _issue_hit(issue: object, lines: list[str]) -> Hit:
    test_id, test = getattr(issue, "test_id", ""), getattr(issue, "test", "")
    line = int(getattr(issue, "lineno", 0))
    span = list(getattr(issue, "linerange", None) or [line])
    code = " ".join(ln.strip() for ln in lines[min(span) - 1 : max(span)])
    message = (
        f"bandit {test_id} ({test}, severity {getattr(issue, 'severity', '').lower()}): "
        f"{getattr(issue, 'text', '')}"
    )
    return Hit(f"bandit.{test_id}", f"{test_id}:{code}", line, code[:200], message, max(span))
