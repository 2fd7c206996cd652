"""Dependencies: what the change adds, bumps or drops, and whether a new version is known-vulnerable.

Reads the dependency files the change touches, before and after: `pyproject.toml` (PEP 621,
dependency groups, Poetry), `requirements*.txt` / `requirements/*.txt` (also `.in`, `.lock`),
`package.json`, and the lock files `poetry.lock`, `uv.lock`, `pdm.lock`, `Pipfile.lock` and
`package-lock.json` (v2/v3). Every added, changed or removed dependency is an info finding.

Each new version is then checked for published advisories: its pin, else the version a lock file
in the same change resolves it to, else the lower bound of its range (and the message says so).
With `[scan] osv_db` the check is offline, against a copy of OSV's advisories (`osvdb`: OSV's
export or the PyPA advisory database); otherwise Python dependencies go to pip-audit, which needs
the network. A database that was asked and could not answer (pip-audit unreachable or missing, the
copy unreadable) is a `dependency.unverified` warning naming what went unchecked, or with
`[scan] require_vuln_db` a block-level `scan.tool-failed.*` finding; a dependency nothing was
asked about (npm without a copy, pip-audit off) is a `dependency.unchecked` warning.

It does not resolve dependency trees (only what the files name is checked), read `-r` includes,
Yarn or pnpm lock files, or npm lock files older than v2.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import tomllib
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from jackline.config import JacklineConfig
from jackline.errors import render_failure
from jackline.models import Finding
from jackline.scans import Change, FileChange, Line, find_tool, osvdb, tool_failed

Key = tuple[str, str]
"""(ecosystem, name): `PyPI` names are normalised per PEP 503, `npm` names kept as written."""


@dataclass(frozen=True)
class Spec:
    """One entry for a dependency in one file."""

    text: str
    """As written, normalised: `[socks]==2.32.3`, `^4.17.0`, `2.32.3` (a lock entry)."""
    version: str | None = None
    """The exact version it pins, or with `floor` the lower bound of its range."""
    floor: bool = False


Parsed = dict[Key, frozenset[Spec]]


@dataclass(frozen=True)
class Dep:
    """A dependency the change added, changed or removed, in one file."""

    ecosystem: Literal["PyPI", "npm"]
    name: str
    change: Literal["added", "changed", "removed"]
    file: str
    line: int | None
    """Where the name appears: in the new file, or in the old one for a removed dependency."""
    old: str | None
    """What the file said before (`2.31.0`, `>=2.31`), None if the dependency is new."""
    new: str | None
    """What it says now, None if the dependency was removed."""
    versions: tuple[str, ...] = ()
    """The exact versions it now resolves to: its pin, or a lock file's entries in this change."""
    floor: str | None = None
    """The lower bound of its range, when no exact version is known."""

    def describe(self) -> str:
        if self.change == "added":
            return f"added {self.name} {self.new}"
        if self.change == "removed":
            return f"removed {self.name} {self.old}"
        return f"{self.name} {self.old} -> {self.new}"


@dataclass(frozen=True)
class Target:
    """One version of one dependency to look up."""

    dep: Dep
    version: str
    floor: bool


WHY = {
    "added": "A new dependency is someone else's code running with the project's rights; "
    "the reviewer should know it arrived.",
    "changed": "A new version brings code nobody here has read; its changelog is part of the change.",
    "removed": "Code that still imports a removed dependency fails when it runs, not at review.",
}
VULNERABLE_WHY = (
    "A known-vulnerable version ships a published exploit path: the advisory tells an attacker "
    "what to try. Move to a fixed version, or record why the flaw cannot be reached."
)
OFFLINE_HINT = (
    "; set `[scan] osv_db` to an offline copy of OSV's advisories, "
    "or `[scan] pip_audit = false` to skip this check"
)


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    deps, findings = _read(change)
    findings += [
        Finding(f"dependency.{d.change}", "info", d.describe(), d.file, d.line, WHY[d.change])
        for d in deps
    ]
    targets, unknown = _targets(deps)
    findings += _unchecked(unknown, "no pinned version or lower bound to check")
    return findings + _check(targets, config)


def changed_dependencies(change: Change) -> list[Dep]:
    """The dependencies the change added, changed or removed, file by file."""
    return _read(change)[0]


# What changed ------------------------------------------------------------------------------


def _read(change: Change) -> tuple[list[Dep], list[Finding]]:
    deps: list[Dep] = []
    problems: list[Finding] = []
    pins: dict[Key, set[str]] = defaultdict(set)
    for f in change.files:
        parser = parser_for(f.path)
        if parser is None or f.binary:
            continue
        old_text = None if f.status == "added" else change.old_text(f.old_path or f.path)
        new_text = None if f.status == "deleted" else change.new_text(f.path)
        if new_text is None and f.status != "deleted":
            problems.append(_unreadable(f.path, "not UTF-8 text"))
            continue
        try:
            new = _parse(parser, new_text)
        except ValueError as e:
            problems.append(_unreadable(f.path, str(e)))
            continue
        try:
            old = _parse(parser, old_text)
        except ValueError as e:
            # Compare with nothing: every dependency counts as new, so every one gets checked.
            problems.append(_unreadable(f.path, f"at the base commit: {e}"))
            old = {}
        deps += _diff(f, old, new, old_text or "", new_text or "")
        for key, specs in new.items():
            pins[key].update(s.version for s in specs if s.version and not s.floor)
    return [_resolved(d, pins) for d in deps], problems


def _resolved(dep: Dep, pins: dict[Key, set[str]]) -> Dep:
    """A range in a manifest resolves to what a lock file in the same change pins."""
    found = pins.get((dep.ecosystem, dep.name))
    if dep.versions or dep.change == "removed" or not found:
        return dep
    return replace(dep, versions=tuple(sorted(found)))


def _unreadable(path: str, error: str) -> Finding:
    return Finding(
        "dependency.unreadable",
        "warn",
        f"could not read the dependencies in {path}: {error}",
        path,
        why="Its dependency changes were not listed or checked for known vulnerabilities.",
    )


def _parse(parser: Callable[[str], Iterator[tuple[Key, Spec]]], text: str | None) -> Parsed:
    found: dict[Key, set[Spec]] = defaultdict(set)
    if text is None:
        return {}
    try:
        for key, spec in parser(text):
            found[key].add(spec)
    except (TypeError, AttributeError, KeyError) as e:
        # The files are untrusted input: a table where a list belongs is a parse error, not a bug.
        raise ValueError(f"unexpected structure ({e})") from None
    return {k: frozenset(v) for k, v in found.items()}


def _diff(f: FileChange, old: Parsed, new: Parsed, old_text: str, new_text: str) -> list[Dep]:
    deps = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        ecosystem: Literal["PyPI", "npm"] = "npm" if key[0] == "npm" else "PyPI"
        exact = tuple(sorted(s.version for s in after or () if s.version and not s.floor))
        floors = [s.version for s in after or () if s.version and s.floor]
        deps.append(
            Dep(
                ecosystem,
                key[1],
                "added" if before is None else "removed" if after is None else "changed",
                f.path,
                _line(key, f.added, new_text) if after else _line(key, f.removed, old_text),
                _show(before),
                _show(after),
                exact,
                None if exact or not floors else min(floors, key=_version_key(ecosystem)),
            )
        )
    return deps


def _show(specs: frozenset[Spec] | None) -> str | None:
    """`2.32.3` for a plain pin, else the spec as written."""
    return None if specs is None else ", ".join(sorted(_shown(s) for s in specs))


def _shown(spec: Spec) -> str:
    if spec.version and not spec.floor and spec.text in (spec.version, f"=={spec.version}"):
        return spec.version
    return spec.text or "(any version)"


def _line(key: Key, changed: tuple[Line, ...], text: str) -> int | None:
    """In a lock file the line of the package's own entry (`name = "requests"`,
    `"node_modules/ms": {`, `"requests": {`), where a bump changes the lines below it and other
    packages name it as their dependency above; else the changed line that names the dependency,
    else the first line of the file that does."""
    ecosystem, name = key
    parts = re.split(r"[-_.]+", name) if ecosystem == "PyPI" else [name]
    spelled = r"[-_.]+".join(map(re.escape, parts))
    entry = re.compile(
        rf"""^\s*(?:name\s*=\s*["']{spelled}["']\s*$|"(?:[^"]*node_modules/)?{spelled}"\s*:\s*\{{)""",
        re.I,
    )
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if entry.match(line) and (ecosystem == "npm" or not _is_project_name(lines, number)):
            return number
    pattern = re.compile(r"(?<![\w.-])" + spelled + r"(?![\w.-])", re.I)
    for ln in changed:
        if pattern.search(ln.text):
            return ln.number
    for number, line in enumerate(lines, 1):
        if pattern.search(line):
            return number
    return None


def _is_project_name(lines: list[str], number: int) -> bool:
    """Whether `name = ...` on that line is pyproject's `[project]` or `[tool.poetry]` name."""
    tables = [ln.strip() for ln in lines[: number - 1] if ln.strip().startswith("[")]
    return bool(tables) and tables[-1] in ("[project]", "[tool.poetry]")


# Parsers: each yields (key, spec) for every dependency a file names --------------------------


def parser_for(path: str) -> Callable[[str], Iterator[tuple[Key, Spec]]] | None:
    p = PurePosixPath(path)
    if p.name in PARSERS:
        return PARSERS[p.name]
    in_folder = p.parent.name == "requirements" and p.suffix in (".txt", ".in")
    named = any(fnmatch(p.name, f"requirements*{ext}") for ext in (".txt", ".in", ".lock"))
    return _requirements if in_folder or named else None


_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTIONS = re.compile(r"\s+--\S.*$")  # per-requirement options such as --hash
_NOT_A_NAME = re.compile(r"^(\.|/|~|[\w+]+://)")  # a path or URL to install from


def _requirements(text: str) -> Iterator[tuple[Key, Spec]]:
    for number, line in _logical_lines(text):
        line = _OPTIONS.sub("", _COMMENT.sub("", line)).strip()
        if not line or line.startswith("-") or _NOT_A_NAME.match(line):
            continue
        try:
            yield _pep508(line)
        except ValueError as e:
            raise ValueError(f"line {number}: {e}") from None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with backslash continuations joined, each with the number it starts on."""
    pending, start = "", 1
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _pep508(line: str) -> tuple[Key, Spec]:
    req = Requirement(line)
    version, floor = _pep440(req.specifier)
    return ("PyPI", canonicalize_name(req.name)), Spec(
        str(req)[len(req.name) :].strip(), version, floor
    )


def _pep440(specifier: SpecifierSet) -> tuple[str | None, bool]:
    """The exact version a specifier pins, else its lower bound (with True), else nothing."""
    ops = {s.operator: s.version for s in specifier}
    for op in ("===", "=="):
        if op in ops and not ops[op].endswith(".*"):
            return ops[op], False
    for op in (">=", "~="):
        if op in ops:
            return ops[op], True
    if "==" in ops:
        return ops["=="].removesuffix(".*"), True
    return None, False


def _pyproject(text: str) -> Iterator[tuple[Key, Spec]]:
    data = tomllib.loads(text)
    project = _table(data, "project")
    lines = _strings(project.get("dependencies", []), "project.dependencies")
    for group, items in _table(project, "optional-dependencies").items():
        lines += _strings(items, f"project.optional-dependencies.{group}")
    for group, items in _table(data, "dependency-groups").items():
        lines += _strings(items, f"dependency-groups.{group}")
    for line in lines:
        yield _pep508(line)
    poetry = _table(_table(data, "tool"), "poetry")
    tables = [_table(poetry, "dependencies"), _table(poetry, "dev-dependencies")]
    tables += [_table(g, "dependencies") for g in _table(poetry, "group").values()]
    for table in tables:
        for name, value in table.items():
            if name.lower() != "python":
                yield _poetry(name, value)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"`{key}` is not a table")
    return value


def _strings(value: Any, where: str) -> list[str]:
    """The requirement strings of a list; tables in it (`{include-group = ...}`) name no package."""
    if not isinstance(value, list) or not all(isinstance(v, str | dict) for v in value):
        raise ValueError(f"`{where}` is not a list of strings")
    return [v for v in value if isinstance(v, str)]


def _poetry(name: str, value: Any) -> tuple[Key, Spec]:
    """A Poetry entry: `"^2.31"`, `"2.31.0"` (exact), or a table with `version`, `git`, `path`..."""
    constraint = value.get("version") if isinstance(value, dict) else value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    version, floor = _poetry_version(constraint) if isinstance(constraint, str) else (None, False)
    return ("PyPI", canonicalize_name(name)), Spec(text, version, floor)


def _poetry_version(constraint: str) -> tuple[str | None, bool]:
    c = constraint.strip()
    if re.fullmatch(r"\d[\w.+!-]*", c):
        return c, False
    if re.fullmatch(r"[\^~]\s*\d[\w.+!-]*", c):
        return c[1:].strip(), True
    return _pep440_text(c)


def _pep440_text(specifier: str) -> tuple[str | None, bool]:
    try:
        return _pep440(SpecifierSet(specifier))
    except ValueError:
        return None, False


def _toml_lock(text: str) -> Iterator[tuple[Key, Spec]]:
    """`poetry.lock`, `uv.lock`, `pdm.lock`: `[[package]]` tables with `name` and `version`."""
    for package in tomllib.loads(text).get("package", []):
        source = package.get("source")
        if isinstance(source, dict) and ("editable" in source or "virtual" in source):
            continue  # the project itself
        version = package.get("version")
        if isinstance(version, str):
            yield ("PyPI", canonicalize_name(package["name"])), Spec(version, version)


def _pipfile_lock(text: str) -> Iterator[tuple[Key, Spec]]:
    data = json.loads(text)
    for section in ("default", "develop"):
        for name, entry in _table(data, section).items():
            pin = entry.get("version")
            version, floor = _pep440_text(pin) if isinstance(pin, str) else (None, False)
            text = pin if isinstance(pin, str) else json.dumps(entry, sort_keys=True)
            yield ("PyPI", canonicalize_name(name)), Spec(text, version, floor)


_SEMVER = r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)"
_NPM_EXACT = re.compile(rf"=?\s*{_SEMVER}")
_NPM_FLOOR = re.compile(r"(?:\^|~|>=)\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?")


def _package_json(text: str) -> Iterator[tuple[Key, Spec]]:
    data = json.loads(text)
    for section in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        for name, spec in _table(data, section).items():
            if isinstance(spec, str):
                yield ("npm", name), _npm_spec(spec.strip())


def _npm_spec(spec: str) -> Spec:
    if m := _NPM_EXACT.fullmatch(spec):
        return Spec(spec, m.group(1))
    if m := _NPM_FLOOR.fullmatch(spec):
        major, minor, patch, pre = m.groups()
        return Spec(spec, f"{major}.{minor or 0}.{patch or 0}{pre or ''}", True)
    return Spec(spec)


def _npm_lock(text: str) -> Iterator[tuple[Key, Spec]]:
    data = json.loads(text)
    if "packages" not in data:
        raise ValueError("lockfileVersion 1 (no `packages`) is not read; npm 7 and later write v2")
    for path, entry in _table(data, "packages").items():
        if "node_modules/" not in path or entry.get("link"):
            continue  # the root project, a workspace package, or a link to one
        version = entry.get("version")
        if isinstance(version, str):
            name = entry.get("name") or path.rsplit("node_modules/", 1)[1]
            yield ("npm", name), Spec(version, version)


PARSERS: dict[str, Callable[[str], Iterator[tuple[Key, Spec]]]] = {
    "pyproject.toml": _pyproject,
    "package.json": _package_json,
    "poetry.lock": _toml_lock,
    "uv.lock": _toml_lock,
    "pdm.lock": _toml_lock,
    "Pipfile.lock": _pipfile_lock,
    "package-lock.json": _npm_lock,
    "npm-shrinkwrap.json": _npm_lock,
}


# Which versions to check -------------------------------------------------------------------


def _targets(deps: list[Dep]) -> tuple[list[Target], list[Dep]]:
    """Each new version once (a manifest and its lock name the same one), and the deps with none."""
    targets: dict[tuple[str, str, str], Target] = {}
    unknown = []
    for d in deps:
        if d.change == "removed":
            continue
        found = [Target(d, v, False) for v in d.versions] or (
            [Target(d, d.floor, True)] if d.floor else []
        )
        if not found:
            unknown.append(d)
        for t in found:
            targets.setdefault((d.ecosystem, d.name, t.version), t)
    return list(targets.values()), unknown


def _unchecked(deps: Iterable[Dep], reason: str) -> list[Finding]:
    """One warning per file, naming the dependencies that no database looked at."""
    by_file: dict[str, list[Dep]] = defaultdict(list)
    for d in dict.fromkeys(deps):
        by_file[d.file].append(d)
    out = []
    for path, group in by_file.items():
        names = [f"{d.name} {d.new}" for d in group]
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        out.append(
            Finding(
                "dependency.unchecked",
                "warn",
                f"not checked for known vulnerabilities ({reason}): {', '.join(names[:10])}{more}",
                path,
                group[0].line,
                why="Nothing vouches that these versions are free of published advisories.",
            )
        )
    return out


def _check(targets: list[Target], config: JacklineConfig) -> list[Finding]:
    if not targets:
        return []
    if config.scan.osv_db:
        return _osv(targets, config)
    python = [t for t in targets if t.dep.ecosystem == "PyPI"]
    out = _unchecked(
        [t.dep for t in targets if t.dep.ecosystem != "PyPI"], "no `[scan] osv_db` is set"
    )
    if not config.scan.pip_audit:
        return out + _unchecked(
            [t.dep for t in python], "`[scan] pip_audit` is off and no `osv_db` is set"
        )
    return out + (_pip_audit(python, config) if python else [])


def _unverified(
    targets: list[Target], tool: str, detail: str, config: JacklineConfig, install: str = ""
) -> list[Finding]:
    """The database was meant to answer and did not (unreachable, missing, unreadable): a
    block with `[scan] require_vuln_db`, else one warning per file naming what went unchecked.
    Blocking by default would stop every dependency bump made where the network is down."""
    first = targets[0].dep if targets else None
    if config.scan.require_vuln_db:
        failed = tool_failed(tool, detail, file=first.file if first else None, install=install)
        return [replace(failed, line=first.line if first else None)]
    by_file: dict[str, list[Dep]] = defaultdict(list)
    for d in dict.fromkeys(t.dep for t in targets):
        by_file[d.file].append(d)
    hint = f" Install it with `{install}`." if install else ""
    return [
        Finding(
            "dependency.unverified",
            "warn",
            f"could not verify {_names(group)} against a vulnerability database ({tool}: {detail})",
            path,
            group[0].line,
            why="Nothing vouches that these versions are free of published advisories. "
            "`jackline osv update` keeps an offline copy for `[scan] osv_db`; "
            f"`[scan] require_vuln_db = true` makes this a block.{hint}",
        )
        for path, group in by_file.items()
    ]


def _names(deps: list[Dep]) -> str:
    names = [f"{d.name} {d.new}" for d in deps]
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return ", ".join(names[:10]) + more


def _vulnerable(
    t: Target, ident: str, aliases: list[str], summary: str, fixed: str | None
) -> Finding:
    also = f" ({', '.join(aliases)})" if aliases else ""
    bound = (
        f" (the lower bound of `{t.dep.new}`; the version installed may be later)"
        if t.floor
        else ""
    )
    fix = f"; fixed in {fixed}" if fixed else "; no fixed version is published"
    return Finding(
        "dependency.vulnerable",
        "block",
        f"{t.dep.name} {t.version}{bound} is affected by {ident}{also}: {summary}{fix}",
        t.dep.file,
        t.dep.line,
        VULNERABLE_WHY,
    )


# Offline: a copy of OSV's advisories -------------------------------------------------------


def _osv(targets: list[Target], config: JacklineConfig) -> list[Finding]:
    db = Path(config.scan.osv_db or "").expanduser()
    if not db.is_absolute():
        detail = (
            f"`[scan] osv_db` = {db} is not an absolute path (it would be read from the workspace)"
        )
        return _unverified(targets, "osv-db", detail, config)
    if not db.is_dir():
        return _unverified(targets, "osv-db", f"`[scan] osv_db` = {db} is not a directory", config)
    out: list[Finding] = []
    for ecosystem in sorted({t.dep.ecosystem for t in targets}):
        group = [t for t in targets if t.dep.ecosystem == ecosystem]
        try:
            advisories = osvdb.advisories(db, ecosystem, {t.dep.name for t in group})
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            out += _unverified(group, "osv-db", f"could not read {db}: {e}", config)
            continue
        if advisories is None:
            out += _unchecked(
                [t.dep for t in group], f"the OSV copy at {db} has no {ecosystem} advisories"
            )
            continue
        for t in group:
            out += _osv_findings(t, advisories.get(t.dep.name, []))
    return out


def _osv_findings(t: Target, advisories: list[dict[str, Any]]) -> list[Finding]:
    key = _version_key(t.dep.ecosystem)
    try:
        version = key(t.version)
    except ValueError:
        return _unchecked(
            [t.dep], f"{t.version} is not a version the advisories can be compared with"
        )
    out: list[Finding] = []
    seen: set[str] = set()
    for adv in sorted(advisories, key=lambda a: str(a.get("id"))):
        ids = {adv["id"], *adv.get("aliases", [])}
        hit, fixed = _affects(adv, t.dep.ecosystem, t.dep.name, version)
        if hit and not ids & seen:  # PYSEC and GHSA copies of one flaw alias each other
            seen |= ids
            out.append(_vulnerable(t, adv["id"], adv.get("aliases", []), _summary(adv), fixed))
    return out


def _summary(adv: dict[str, Any]) -> str:
    return _first_line(adv.get("summary") or adv.get("details") or "")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines() or ["no summary"]
    return lines[0] if len(lines[0]) <= 200 else lines[0][:199] + "…"


def _affects(
    adv: dict[str, Any], ecosystem: str, name: str, version: Any
) -> tuple[bool, str | None]:
    """Whether an advisory covers this version, and the first fixed version after it."""
    if adv.get("withdrawn"):
        return False, None
    key = _version_key(ecosystem)
    hit, fixes = False, []
    for affected in adv.get("affected", []):
        package = affected.get("package", {})
        if (
            package.get("ecosystem") != ecosystem
            or osvdb.normal(ecosystem, package.get("name", "")) != name
        ):
            continue
        ranges = [r for r in affected.get("ranges", []) if r.get("type") in ("ECOSYSTEM", "SEMVER")]
        listed = any(_safe(key, v) == version for v in affected.get("versions", []))
        hit = hit or listed or any(_in_range(version, r.get("events", []), key) for r in ranges)
        fixes += [f for r in ranges for e in r.get("events", []) if (f := e.get("fixed"))]
    after = sorted((k, f) for f in fixes if (k := _safe(key, f)) is not None and k > version)
    return hit, after[0][1] if hit and after else None


_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}


def _in_range(version: Any, events: list[dict[str, str]], key: Callable[[str], Any]) -> bool:
    """OSV's evaluation: walk the events in version order; `introduced` turns the range on,
    `fixed` (at or below the version) and `last_affected` (below it) turn it off; `limit` caps it."""
    steps: list[tuple[Any, str]] = []
    for event in events:
        for kind, at in event.items():
            if kind == "introduced" and at == "0":
                steps.append((None, kind))  # from the very start: sorts before every version
            elif kind in _ORDER and (bound := _safe(key, at)) is not None:
                steps.append((bound, kind))  # an event whose version is not valid is dropped
    steps.sort(key=lambda s: (s[0] is not None, s[0] if s[0] is not None else 0, _ORDER[s[1]]))
    limits = [b for b, kind in steps if kind == "limit"]
    if limits and not any(version < b for b in limits):
        return False
    affected = False
    for bound, kind in steps:
        if kind == "introduced" and (bound is None or version >= bound):
            affected = True
        elif kind == "fixed" and version >= bound:
            affected = False
        elif kind == "last_affected" and version > bound:
            affected = False
    return affected


def _safe(key: Callable[[str], Any], text: str) -> Any:
    try:
        return key(text)
    except ValueError:
        return None


def _version_key(ecosystem: str) -> Callable[[str], Any]:
    return Version if ecosystem == "PyPI" else _semver


_SEMVER_FULL = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def _semver(text: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
    """A sort key for a SemVer 2 version: a prerelease sorts before its release, its identifiers
    compare numerically when numeric, and numeric ones sort before alphanumeric ones."""
    m = _SEMVER_FULL.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a semantic version: {text!r}")
    major, minor, patch, pre = m.groups()
    ids = (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    )
    return int(major), int(minor), int(patch), 0 if pre else 1, ids


# Online: pip-audit --------------------------------------------------------------------------


def pip_audit_argv(exe: str, requirements: Path, timeout: int) -> list[str]:
    """pip-audit on exact pins only: no resolver, no pip, and a socket timeout well under the
    scan's, so an unreachable service fails in seconds instead of hanging."""
    return [
        exe,
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        str(min(timeout, 10)),
    ]


def _pip_audit(targets: list[Target], config: JacklineConfig) -> list[Finding]:
    exe = find_tool("pip-audit")
    if exe is None:
        detail = "it is not on PATH or beside Python" + OFFLINE_HINT
        return _unverified(targets, "pip-audit", detail, config, "pip install pip-audit")
    checkable = [t for t in targets if _safe(Version, t.version) is not None]
    out = _unchecked([t.dep for t in targets if t not in checkable], "not a PEP 440 version")
    if not checkable:
        return out
    timeout = config.scan.timeout
    with tempfile.TemporaryDirectory(prefix="jackline-pip-audit-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{t.dep.name}=={t.version}\n" for t in checkable))
        argv = pip_audit_argv(exe, requirements, timeout)
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            detail = f"no answer within {timeout}s" + OFFLINE_HINT
            return out + _unverified(checkable, "pip-audit", detail, config)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        detail = render_failure(argv, proc.returncode, proc.stdout, proc.stderr, tail=15)
        detail += "\n" + OFFLINE_HINT.lstrip("; ")
        return out + _unverified(checkable, "pip-audit", detail, config)
    found, skipped = _pip_audit_findings(checkable, report.get("dependencies", []))
    if skipped:
        detail = (
            f"it skipped {len(skipped)} of {len(checkable)} packages ({'; '.join(skipped[:5])})"
        )
        found += _unverified(checkable, "pip-audit", detail + OFFLINE_HINT, config)
    return out + found


def _pip_audit_findings(
    targets: list[Target], results: list[dict[str, Any]]
) -> tuple[list[Finding], list[str]]:
    """The advisories pip-audit reported, and why it skipped the packages it did not audit."""
    by_pin = {(t.dep.name, Version(t.version)): t for t in targets}
    out, skipped = [], []
    for result in results:
        if "skip_reason" in result:
            # On a network that reaches PyPI's index but not its JSON API, every package is
            # skipped as "not found" and pip-audit still exits 0: that is no audit at all.
            skipped.append(result["skip_reason"])
            continue
        t = by_pin.get((canonicalize_name(result["name"]), Version(result["version"])))
        if t is None:
            continue  # pip-audit reports only the pins it was given
        for vuln in result.get("vulns", []):
            fixed = (vuln.get("fix_versions") or [None])[0]
            summary = _first_line(vuln.get("description") or "")
            out.append(_vulnerable(t, vuln["id"], vuln.get("aliases", []), summary, fixed))
    return out, skipped
