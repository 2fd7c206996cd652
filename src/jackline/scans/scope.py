"""Scope: where the change reaches, and how far.

- `[scope] protected`: changes are allowed, but each file is a block-level finding.
- The gates (jackline.toml, rules, blueprints, CI files, pre-commit config): always block-level;
  a change that edits the checks that judge it needs an owner, whatever `protected` says.
- `[scope] max_changed_lines` / `max_changed_files`: warn above, block at twice the limit. What
  nobody reviews line by line does not count: lock files, translation catalogues, generated and
  vendored files, minified assets, test data and snapshots (`UNCOUNTED`), and what the BASE
  commit's `.gitattributes` marks `linguist-generated`, `linguist-vendored` or `-diff` (and
  `-linguist-...=false` counts a file again). Never the workspace's `.gitattributes`: the agent
  writes that one, and would exempt its own files.
- `[[scope.together]]`: co-change rules; a change that touches `when` but not `also` is flagged.

Forbidden paths are not here: the agent step reverts those after each round, and reports them.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import pathspec

from jackline.config import JacklineConfig
from jackline.guard.policy import GATES
from jackline.models import Finding
from jackline.scans import Change, FileChange

WHY_GATE = (
    "This file decides what the harness and CI check. A change that edits its own gate can "
    "switch the gate off; an owner must agree."
)
WHY_SIZE = (
    "A large change is hard to review well; reviewers skim, and a wrong line hides among many. "
    "Ask for it split into steps that each pass on their own."
)


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    paths = [f.path for f in change.files] + [
        f.old_path for f in change.files if f.old_path and f.status == "renamed"
    ]
    findings = _gates(paths) + _protected(paths, config.scope.protected)
    findings += _size(change, config)
    findings += _together(paths, config)
    return findings


def _gates(paths: list[str]) -> list[Finding]:
    spec = pathspec.GitIgnoreSpec.from_lines(GATES)
    return [
        Finding(
            "scope.gate",
            "block",
            f"the change edits gate configuration `{p}`",
            file=p,
            why=WHY_GATE,
        )
        for p in paths
        if spec.match_file(p)
    ]


def _protected(paths: list[str], globs: list[str]) -> list[Finding]:
    if not globs:
        return []
    gates = pathspec.GitIgnoreSpec.from_lines(GATES)
    spec = pathspec.GitIgnoreSpec.from_lines(globs)
    return [
        Finding(
            "scope.protected",
            "block",
            f"the change touches protected path `{p}`",
            file=p,
            why="[scope] protected in jackline.toml: changes here are allowed only with an "
            "owner's approval.",
        )
        for p in paths
        if spec.match_file(p) and not gates.match_file(p)
    ]


_DATA = ("json", "jsonl", "csv", "tsv", "txt", "xml", "html", "dat", "bin", "golden", "eml")
UNCOUNTED: dict[str, list[str]] = {
    "lock file": [
        *("poetry.lock", "uv.lock", "pdm.lock", "Pipfile.lock", "conda-lock.yml", "pixi.lock"),
        *("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock"),
        *("Cargo.lock", "Gemfile.lock", "composer.lock", "go.sum", "flake.lock", "mix.lock"),
        *("pubspec.lock", "Podfile.lock", "packages.lock.json", "gradle.lockfile"),
        "requirements*.lock",
    ],
    "translation catalogue": ["*.po", "*.pot", "*.mo"],
    "minified asset": ["*.min.js", "*.min.mjs", "*.min.css", "*.js.map", "*.css.map"],
    "generated": ["*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*.pb.go", "*.generated.*"],
    "vendored": ["vendor/", "vendored/", "_vendor/", "third_party/", "node_modules/"],
    "test data": [
        *("**/tests/**/fixtures/", "**/test/**/fixtures/", "testdata/", "test_data/"),
        "cassettes/",
        *("__snapshots__/", "*.snap", "*.ambr"),
        # Data, not code, in a test folder: recorded answers, test vectors, golden files.
        *(f"**/{d}/**/*.{ext}" for d in ("tests", "test") for ext in _DATA),
    ],
}
"""Files that do not count toward the size limits, by why: nobody reviews them line by line."""
_UNCOUNTED = {why: pathspec.GitIgnoreSpec.from_lines(globs) for why, globs in UNCOUNTED.items()}
_ATTRIBUTES = {
    "linguist-generated": "generated",
    "linguist-vendored": "vendored",
    "diff": "not diffed",
}
"""The `.gitattributes` attributes that take a file out of the count, and the reason shown."""


@dataclass(frozen=True)
class _Attribute:
    folder: str
    """The folder of the `.gitattributes` file: its patterns are relative to it."""
    pattern: pathspec.GitIgnoreSpec
    name: str
    uncounted: bool
    """True where the line takes the file out of the count, False where it puts it back."""


def _size(change: Change, config: JacklineConfig) -> list[Finding]:
    limits = (config.scope.max_changed_lines, config.scope.max_changed_files)
    if limits == (None, None):
        return []
    left_out = _uncounted(change)
    counted = [f for f in change.files if f.path not in left_out]
    lines = sum(len(f.added) + len(f.removed) for f in counted)
    out = []
    for what, count, limit in (("lines", lines, limits[0]), ("files", len(counted), limits[1])):
        if limit is None or count <= limit:
            continue
        level: Literal["block", "warn"] = "block" if count > 2 * limit else "warn"
        out.append(
            Finding(
                f"scope.max-changed-{what}",
                level,
                f"{count} {what} changed; the limit is {limit}"
                + (" (more than twice over)" if level == "block" else "")
                + _what_counted(change, counted, left_out),
                why=WHY_SIZE,
            )
        )
    return out


def _what_counted(change: Change, counted: list[FileChange], left_out: dict[str, str]) -> str:
    said = f". Counted: {len(counted)} files, {_lines(counted)} lines"
    if not left_out:
        return said + "; nothing left out"
    skipped = [f for f in change.files if f.path in left_out]
    reasons = Counter(left_out.values())
    shown = [f"{f.path} ({left_out[f.path]})" for f in skipped[:5]]
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    kinds = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return (
        f"{said}. Left out: {len(skipped)} files, {_lines(skipped)} lines ({kinds}): "
        + ", ".join(shown)
        + more
    )


def _lines(files: list[FileChange]) -> int:
    return sum(len(f.added) + len(f.removed) for f in files)


def _uncounted(change: Change) -> dict[str, str]:
    """The changed files that do not count toward the size limits, with why."""
    attributes = _base_attributes(change)
    out = {}
    for f in change.files:
        why = _attributed(f.path, attributes)
        if why is None:
            why = next((w for w, spec in _UNCOUNTED.items() if spec.match_file(f.path)), "")
            why = why or _by_content(change, f)
        if why:
            out[f.path] = why
    return out


_ASSET = (".js", ".mjs", ".cjs", ".css", ".scss", ".less")
_BANNER = re.compile(r"@license|\blicen[cs]ed under\b|\bcopyright\b", re.I)
_VERSION = re.compile(r"\bv?\d+\.\d+\.\d+\b")


def _by_content(change: Change, f: FileChange) -> str:
    """A web asset nobody here wrote, as its text shows: minified (lines 110 characters long on
    average, Linguist's measure), or added whole with a library's banner, a licence or copyright
    and a version (`tom-select.css (v2.6.1) ... Licensed under the Apache License`); a project's
    own copyright header carries no version. Read as the scans read the workspace."""
    if not f.path.endswith(_ASSET):
        return ""
    text = change.old_text(f.path) if f.status == "deleted" else change.new_text(f.path)
    lines = (text or "").splitlines()
    if not lines:
        return ""
    if sum(map(len, lines)) / len(lines) > 110:
        return "minified asset"
    head = "\n".join(lines[:12])
    banner = head.lstrip().startswith(("/*", "//")) and _BANNER.search(head) is not None
    library = f.status == "added" and banner and _VERSION.search(head) is not None
    return "vendored" if library else ""


def _attributed(path: str, attributes: list[_Attribute]) -> str | None:
    """What the base commit's `.gitattributes` say of the file: a reason to leave it out, ""
    where they say to count it (`-linguist-vendored`), None where they say nothing. The last
    line that matches wins, and a deeper file's lines come after its parents'."""
    said: str | None = None
    for a in attributes:
        inside = path[len(a.folder) + 1 :] if a.folder else path
        if (not a.folder or path.startswith(a.folder + "/")) and a.pattern.match_file(inside):
            said = _ATTRIBUTES[a.name] if a.uncounted else ""
    return said


def _base_attributes(change: Change) -> list[_Attribute]:
    """The lines of every `.gitattributes` at the base commit on the way to a changed file,
    shallowest first."""
    folders = {""}
    for f in change.files:
        parent = posixpath.dirname(f.path)
        while parent:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    ordered = sorted(folders, key=lambda d: (d.count("/") + bool(d), d))
    texts = change.old_texts([posixpath.join(d, ".gitattributes") for d in ordered])
    out: list[_Attribute] = []
    for folder in ordered:
        out += _parse_attributes(folder, texts[posixpath.join(folder, ".gitattributes")] or "")
    return out


def _parse_attributes(folder: str, text: str) -> list[_Attribute]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("!"):
            continue  # git refuses negative patterns in .gitattributes
        pattern = pathspec.GitIgnoreSpec.from_lines([fields[0]])
        for field in fields[1:]:
            name, value = _attribute(field)
            if name in _ATTRIBUTES and value is not None:
                out.append(_Attribute(folder, pattern, name, value))
        if "binary" in fields[1:]:  # the macro for -diff -merge -text
            out.append(_Attribute(folder, pattern, "diff", True))
    return out


def _attribute(field: str) -> tuple[str, bool | None]:
    """`linguist-generated`, `linguist-generated=true`: leave out; `-linguist-generated`,
    `=false`: count; `-diff`: leave out, `diff`: count. None: unspecified (`!name`)."""
    if field.startswith("!"):
        return field[1:], None
    if field.startswith("-"):
        name = field[1:]
        return name, name == "diff"
    name, _, value = field.partition("=")
    if name == "diff":
        return name, False
    return name, value.lower() not in ("false", "0", "no")


def _together(paths: list[str], config: JacklineConfig) -> list[Finding]:
    out = []
    for rule in config.scope.together:
        when = pathspec.GitIgnoreSpec.from_lines([rule.when])
        hit = [p for p in paths if when.match_file(p)]
        if not hit:
            continue
        for glob in rule.also:
            also = pathspec.GitIgnoreSpec.from_lines([glob])
            if not any(also.match_file(p) for p in paths):
                out.append(
                    Finding(
                        "scope.together",
                        rule.level,
                        f"`{hit[0]}` changed but nothing matching `{glob}` did",
                        file=hit[0],
                        why=rule.why
                        or f"[[scope.together]]: changes under `{rule.when}` come with a change "
                        f"to `{glob}`.",
                    )
                )
    return out
