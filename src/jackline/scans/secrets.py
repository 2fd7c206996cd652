"""Secrets in the change: detect-secrets over the added lines, plus exact matches of every value
the run's secret references resolve to.

detect-secrets runs with all its plugins, offline, without verifying anything against a
provider. Its inline allowlist (`pragma: allowlist secret`) is not honoured on added lines: a
pragma is a person's decision about one value, and an agent that adds one beside a fresh key is
silencing the scan, not answering it (the suppression scan reports the pragma as well).

A found secret is a block-level finding, and more: the run stops before commit (status
`blocked`). The values are returned so the harness can redact them from everything it stores;
the findings carry only a masked form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detect_secrets.core import scan as ds_scan
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.settings import default_settings

from jackline import git as g
from jackline.models import Finding
from jackline.scans import Change

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
    findings: list[Finding] = []
    values: set[str] = set()
    lines = {(f.path, ln.number): ln.text for f in change.files for ln in f.added}
    seen: set[tuple[str, int, str]] = set()
    files = [f for f in change.files if f.added and not f.binary and f.status != "deleted"]
    hits: list[tuple[str, Any]] = []
    with _settings():
        whole = [
            f
            for f in files
            if whole_files and _whole_file(f.path) and not (change.root / f.path).is_symlink()
        ]
        patch = "".join(f.patch for f in files if f not in whole)
        if patch:
            hits += [(h.filename, h) for h in ds_scan.scan_diff(patch)]
        for f in whole:
            hits += [(f.path, h) for h in ds_scan.scan_file(str(change.root / f.path))]
    for path, hit in hits:
        text = lines.get((path, hit.line_number))
        if text is None:  # a whole-file hit on a line this change did not add
            continue
        value = _whole(hit.type, hit.secret_value or "", text)
        key = (path, hit.line_number, value)
        if not value or key in seen:
            continue
        seen.add(key)
        values.add(value)
        findings.append(_finding(_slug(hit.type), hit.type, path, hit.line_number, text, value))
    for value in {v for v in known if len(v) >= MIN_LENGTH}:
        for (path, number), text in lines.items():
            if value in text and (path, number, value) not in seen:
                seen.add((path, number, value))
                values.add(value)
                findings.append(
                    _finding(
                        "reference", "a value of the run's own secrets", path, number, text, value
                    )
                )
    return Found(tuple(findings), frozenset(values))


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
    """Secret values detect-secrets finds in a log file (an agent's output, say): for redaction."""
    if not path.is_file():
        return frozenset()
    lines = path.read_text(errors="replace").splitlines()
    with default_settings():
        hits = list(ds_scan.scan_file(str(path)))
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
    pattern's whole match on the line."""
    plugin = _PLUGINS.get(kind)
    for regex in getattr(plugin, "denylist", ()):
        for m in regex.finditer(line):
            if value in m.group(0) and len(m.group(0)) > len(value):
                return str(m.group(0))
    return value


_PLUGINS: dict[str, Any] = dict(get_mapping_from_secret_type_to_class())


def mask(value: str) -> str:
    """Enough to recognise the secret by, too little to use it."""
    keep = 4 if len(value) >= 16 else 2 if len(value) >= 10 else 0
    return f"{value[:keep]}…[{len(value)} chars]"


def _finding(kind: str, label: str, path: str, line: int, text: str, value: str) -> Finding:
    quoted = text.replace(value, mask(value)).strip()
    if len(quoted) > 160:
        quoted = quoted[:157] + "..."
    return Finding(
        f"secret.{kind}",
        "block",
        f"{label} added: {mask(value)}",
        file=path,
        line=line,
        why=WHY,
        quote=quoted,
    )


def _slug(kind: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
