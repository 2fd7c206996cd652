"""Secrets in the change: detect-secrets over the added lines, plus exact matches of every value
the run's secret references resolve to.

detect-secrets runs with all its plugins, offline, without verifying anything against a
provider. Its inline allowlist (`pragma: allowlist secret`) is not honoured on added lines: a
pragma is a person's decision about one value, and an agent that adds one beside a fresh key is
silencing the scan, not answering it (the suppression scan reports the pragma as well).

A found secret is a block-level finding, and more: the run stops before commit (status
`blocked`). The values are returned so the harness can redact them from everything it stores;
the findings carry only a masked form: the provider's public prefix, if the value starts with a
known one, and the length (`mask`), never any other part of the value.

detect-secrets is given each file's added lines under a name the harness makes (`3/settings.py`),
never git's quoting of the path, so a file whose name holds a newline or a non-ASCII letter is
scanned like any other and its hits land on the right file.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detect_secrets.core import scan as ds_scan
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.heuristic import is_lock_file, is_non_text_file, is_swagger_file
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.settings import default_settings

from jackline import git as g
from jackline import proc, safeio
from jackline.models import Finding
from jackline.scans import READ_LIMIT, Change, FileChange

WHY = (
    "A secret in a commit is a leaked secret: it reaches every clone, fork and backup and "
    "cannot be taken back. Remove it from the workspace, rotate it if it is real, and pass it "
    "to the code as configuration instead."
)
MIN_LENGTH = 6


@dataclass(frozen=True)
class Found:
    findings: tuple[Finding, ...]
    values: frozenset[str]
    """The raw values, for the redactor only: never store them anywhere but the workspace."""


# Files detect-secrets reads as what they are (YAML, INI, .env), where unquoted values count:
# these are scanned whole, keeping the hits on added lines; other files by their added lines.
WHOLE = (".yaml", ".yml", ".env", ".ini", ".cfg", ".conf", ".properties", ".toml")


@contextmanager
def _settings() -> Iterator[None]:
    with default_settings() as settings:
        settings.disable_filters(
            # Paths in the diff are relative to the workspace, not to our working directory.
            "detect_secrets.filters.common.is_invalid_file",
            "detect_secrets.filters.allowlist.is_line_allowlisted",
        )
        yield


def _whole_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(WHOLE) or name.startswith(".env")


def scan(change: Change, known: Iterable[str] = (), whole_files: bool = True) -> Found:
    """Secrets on the lines this change adds. With `whole_files=False` every file is read from
    the diff alone (for a change whose files are not in the working tree, such as a commit)."""
    lines = {(f.path, ln.number): ln.text for f in change.files for ln in f.added}
    hits: dict[tuple[str, int, str], str] = {}  # (path, line, value) -> what kind of secret
    for path, hit in _detected(change, whole_files):
        text = lines.get((path, hit.line_number))
        if text is None:  # a whole-file hit on a line this change did not add
            continue
        value = _whole(hit.type, hit.secret_value or "", text)
        if value:
            hits.setdefault((path, hit.line_number, value), hit.type)
    for value in {v for v in known if len(v) >= MIN_LENGTH}:
        for (path, number), text in lines.items():
            if value in text:
                hits.setdefault((path, number, value), REFERENCE)
    values = frozenset(v for _, _, v in hits)
    findings = [
        _finding(kind, path, number, lines[(path, number)], value, values)
        for (path, number, value), kind in hits.items()
    ]
    return Found(tuple(findings), values)


REFERENCE = "a value of the run's own secrets"


def _detected(change: Change, whole_files: bool) -> list[tuple[str, Any]]:
    """detect-secrets' hits on the change, each with the path of the file it is in."""
    files = [f for f in change.files if f.added and not f.binary and f.status != "deleted"]
    whole = [f for f in files if whole_files and _whole_file(f.path)]
    hits: list[tuple[str, Any]] = []
    with _settings():
        names = {f"{i}/{_safe_name(f.path)}": f for i, f in enumerate(files) if f not in whole}
        patch = "".join(f"--- a/{n}\n+++ b/{n}\n{f.patch}" for n, f in names.items())
        if patch:
            hits += [(names[h.filename].path, h) for h in ds_scan.scan_diff(patch)]
        if whole:
            hits += _scan_whole(change, whole)
    # A file detect-secrets would skip by its name alone was shown under a plain one: its
    # provider-pattern hits count (an AWS key in `poetry.lock` is a key), not its entropy ones.
    return [(p, h) for p, h in hits if not _skipped_by_name(p) or h.type in _PATTERNS]


def _skipped_by_name(path: str) -> bool:
    """Names detect-secrets skips whole (lock files, images and other binary extensions,
    swagger files): the agent picks its files' names."""
    return any(skip(path) for skip in (is_lock_file, is_non_text_file, is_swagger_file))


def _safe_name(path: str) -> str:
    """A name for detect-secrets to see: the file's own name where it is plain (the plugins pick
    their patterns by extension, the filters skip lock files by name), else `file` and its
    extension; `file` for a name detect-secrets would skip."""
    name = path.rsplit("/", 1)[-1]
    if _skipped_by_name(path):
        return "file"
    if re.fullmatch(r"[A-Za-z0-9._-]+", name) and name not in (".", ".."):
        return name
    ext = re.search(r"\.[A-Za-z0-9]+$", name)
    return "file" + (ext.group(0) if ext else "")


def _scan_whole(change: Change, whole: list[FileChange]) -> list[tuple[str, Any]]:
    """Files detect-secrets reads whole, read from the workspace without following a link
    (a link is read from the diff alone) and scanned from a copy the harness owns."""
    hits: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jackline-secrets-") as tmp:
        for i, f in enumerate(whole):
            data = safeio.read_bytes(change.root, f.path, READ_LIMIT + 1)
            if data is None or len(data) > READ_LIMIT:
                name = f"{i}/{_safe_name(f.path)}"
                patch = f"--- a/{name}\n+++ b/{name}\n{f.patch}"
                hits += [(f.path, h) for h in ds_scan.scan_diff(patch)]
                continue
            copy = Path(tmp) / str(i) / _safe_name(f.path)
            copy.parent.mkdir()
            copy.write_bytes(data)
            hits += [(f.path, h) for h in ds_scan.scan_file(str(copy))]
    return hits


def scan_commits(repo: Path, base: str, known: Iterable[str] = ()) -> Found:
    """Secrets in the commits the agent made itself (`base..HEAD`), one by one: a secret added
    in one commit and deleted in the next is absent from the final diff, yet would be pushed."""
    shas = g.git(repo, "rev-list", "--reverse", "--no-merges", f"{base}..HEAD").split()
    findings: list[Finding] = []
    values: set[str] = set()
    for sha in shas:
        found = scan(Change.between(repo, f"{sha}^", sha), known, whole_files=False)
        values |= found.values
        findings += [
            replace(f, message=f"{f.message} (in the agent's commit {sha[:10]})")
            for f in found.findings
        ]
    return Found(tuple(findings), frozenset(values))


def scan_text_file(path: Path) -> frozenset[str]:
    """Secret values detect-secrets finds in a log file (an agent's output, say): for redaction.
    Only what the log keeps is read (`proc` bounds it), never through a link, and detect-secrets
    scans a private copy of that, not the path, each distinct line once: it spends about a
    millisecond a line, and output repeats itself (progress bars, a loop's messages)."""
    text = safeio.read_text(path.parent, path.name, proc.LOG_LIMIT)
    if not text:
        return frozenset()
    lines = list(dict.fromkeys(text.splitlines()))
    with tempfile.NamedTemporaryFile("w", suffix=".log", encoding="utf-8") as copy:
        copy.write("\n".join(lines) + "\n")
        copy.flush()
        with default_settings():
            hits = list(ds_scan.scan_file(copy.name))
    return frozenset(
        _whole(
            h.type, h.secret_value, lines[h.line_number - 1] if h.line_number <= len(lines) else ""
        )
        for h in hits
        if h.secret_value
    )


def _whole(kind: str, value: str, line: str) -> str:
    """The whole secret. detect-secrets' pattern plugins report `findall`'s first group, which for
    some patterns is only a prefix (the GitHub token plugin reports `ghp`); widen it to the
    pattern's whole match on the line, then to the whole token it stands in: a pattern may also
    stop short of the key's end (Stripe's takes `sk_live_` and 24 characters of a longer key),
    and a tail left outside the value would be neither masked nor redacted."""
    plugin = _PLUGINS.get(kind)
    for regex in getattr(plugin, "denylist", ()):
        for m in regex.finditer(line):
            if value in m.group(0) and len(m.group(0)) > len(value):
                return _token(str(m.group(0)), line)
    return _token(value, line)


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_+/-]")


def _token(value: str, line: str) -> str:
    at = line.find(value)
    if not value or at < 0:
        return value
    start, end = at, at + len(value)
    while start > 0 and _TOKEN_CHAR.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_CHAR.match(line[end]):
        end += 1
    while end < len(line) and line[end] == "=":  # base64's padding
        end += 1
    return line[start:end]


_PLUGINS: dict[str, Any] = dict(get_mapping_from_secret_type_to_class())
_PATTERNS = frozenset(k for k, plugin in _PLUGINS.items() if issubclass(plugin, RegexBasedDetector))
"""Kinds found by a provider's own pattern (an AWS key, a GitHub token), not by entropy."""


# Public prefixes that say which provider issued a key (documented by each provider, and the
# same in every key it issues), longest first so `sk-ant-` wins over `sk-`.
PREFIXES = tuple(
    sorted(
        (
            *("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),
            *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-"),
            *("sk-ant-", "sk-proj-", "sk-", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-"),
            *("sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_"),
            *("AIza", "npm_", "pypi-", "SG.", "shpat_", "shpss_", "dop_v1_", "hf_"),
        ),
        key=len,
        reverse=True,
    )
)


def mask(value: str) -> str:
    """Which provider's and how long: the value's public prefix, if it has a known one, and its
    length. No other character of it: any part shown is a part given away (a tail narrows the
    search for the rest, and recognises the value across places)."""
    prefix = next((p for p in PREFIXES if value.startswith(p) and len(value) > len(p) + 8), "")
    return f"{prefix}…[{len(value)} chars]"


def _finding(
    kind: str, path: str, line: int, text: str, value: str, values: frozenset[str]
) -> Finding:
    quoted = text
    for v in sorted(values, key=len, reverse=True):  # every secret on the line, not this one only
        quoted = quoted.replace(v, mask(v))
    quoted = quoted.strip()
    if len(quoted) > 160:
        quoted = quoted[:157] + "..."
    rule = "reference" if kind == REFERENCE else _slug(kind)
    return Finding(
        f"secret.{rule}",
        "block",
        f"{kind} added: {mask(value)}",
        file=path,
        line=line,
        why=WHY,
        quote=quoted,
    )


def _slug(kind: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
