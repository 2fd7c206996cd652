"""Scope: where the change reaches, and how far.

- `[scope] protected`: changes are allowed, but each file is a block-level finding.
- The gates (jackline.toml, rules, blueprints, CI files, pre-commit config): always block-level;
  a change that edits the checks that judge it needs an owner, whatever `protected` says.
- `[scope] max_changed_lines` / `max_changed_files`: warn above, block at twice the limit.
- `[[scope.together]]`: co-change rules; a change that touches `when` but not `also` is flagged.

Forbidden paths are not here: the agent step reverts those after each round, and reports them.
"""

from __future__ import annotations

from typing import Literal

import pathspec

from jackline.config import JacklineConfig
from jackline.guard.policy import GATES
from jackline.models import Finding
from jackline.scans import Change

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


def _size(change: Change, config: JacklineConfig) -> list[Finding]:
    out = []
    lines = change.added_lines + change.removed_lines
    files = len(change.files)
    for what, count, limit in (
        ("lines", lines, config.scope.max_changed_lines),
        ("files", files, config.scope.max_changed_files),
    ):
        if limit is None or count <= limit:
            continue
        level: Literal["block", "warn"] = "block" if count > 2 * limit else "warn"
        out.append(
            Finding(
                f"scope.max-changed-{what}",
                level,
                f"{count} {what} changed; the limit is {limit}"
                + (" (more than twice over)" if level == "block" else ""),
                why=WHY_SIZE,
            )
        )
    return out


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
