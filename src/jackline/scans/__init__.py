"""Scans: what the change does that CI does not ask about.

A scan is a module with `scan(change, config) -> list[Finding]`. `Change` is the diff between the
run's base commit and the workspace as it stands (untracked files included), read once and shared
by every scan. `scan_change` runs them all; a scan that raises, or whose tool cannot run, becomes
a block-level finding (`scan.error`), never a silent pass.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from unidiff.patch import PatchSet

from jackline import git as g
from jackline.config import JacklineConfig
from jackline.models import Finding

LEVELS = {"block": 0, "warn": 1, "info": 2}


@dataclass(frozen=True)
class Line:
    number: int
    """Line number: in the new file for an added line, in the old file for a removed one."""
    text: str
    """The line without its newline."""


@dataclass(frozen=True)
class FileChange:
    path: str
    """The file's path after the change (before it, for a deleted file)."""
    status: Literal["added", "modified", "deleted", "renamed"]
    old_path: str | None = None
    """The path before the change (None for an added file)."""
    added: tuple[Line, ...] = ()
    removed: tuple[Line, ...] = ()
    binary: bool = False
    patch: str = field(default="", repr=False)
    """This file's part of the unified diff."""


@dataclass
class Change:
    """The change under review: base commit to the workspace's files."""

    root: Path
    base: str
    files: tuple[FileChange, ...]
    diff: str = field(repr=False, default="")
    _old: dict[str, str | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of_workspace(cls, workspace: Path, base: str) -> Change:
        tree = g.worktree_tree(workspace)
        return cls.between(workspace, base, tree)

    @classmethod
    def between(cls, repo: Path, base: str, target: str) -> Change:
        """The change from `base` to `target` (a commit or tree); file texts are read from
        `repo`'s working tree, which must hold `target`."""
        diff = g.git(repo, "diff", "-U0", "-M", "--no-color", "--no-ext-diff", base, target)
        return cls(repo, base, tuple(_parse(diff + "\n")), diff + "\n")

    def old_text(self, path: str) -> str | None:
        """The file's text at the base commit (None if it did not exist or is not text)."""
        if not self._old:
            self._old.update(self._read_base([f.old_path for f in self.files if f.old_path]))
        if path not in self._old:
            self._old.update(self._read_base([path]))
        return self._old[path]

    def _read_base(self, paths: list[str]) -> dict[str, str | None]:
        """Read many files of the base commit with one `git cat-file --batch`."""
        out: dict[str, str | None] = {p: None for p in paths}
        if not paths:
            return out
        request = "".join(f"{self.base}:{p}\n" for p in paths).encode()
        done = subprocess.run(
            ["git", "-C", str(self.root), *g.SAFE, "cat-file", "--batch"],
            input=request,
            capture_output=True,
            check=True,
        ).stdout
        at = 0
        for p in paths:
            end = done.index(b"\n", at)
            header = done[at:end].split()
            at = end + 1
            if len(header) != 3 or header[1] != b"blob":  # "<spec> missing", or not a file
                continue
            size = int(header[2])
            body = done[at : at + size]
            at += size + 1
            try:
                out[p] = body.decode("utf-8")
            except UnicodeDecodeError:
                out[p] = None
        return out

    def new_text(self, path: str) -> str | None:
        """The file's text in the workspace now (None if it is gone, is not text, or is a
        symbolic link: the agent may point one anywhere, and the harness does not follow)."""
        if (self.root / path).is_symlink():
            return None
        try:
            return (self.root / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    @cached_property
    def added_lines(self) -> int:
        return sum(len(f.added) for f in self.files)

    @cached_property
    def removed_lines(self) -> int:
        return sum(len(f.removed) for f in self.files)

    @cached_property
    def moved(self) -> frozenset[str]:
        """Stripped texts that were removed in one place and added in another: code that moved,
        which the removed-guard and suppression scans do not report."""
        added = {ln.text.strip() for f in self.files for ln in f.added}
        removed = {ln.text.strip() for f in self.files for ln in f.removed}
        return frozenset((added & removed) - {""})


def _parse(diff: str) -> list[FileChange]:
    out = []
    for pf in PatchSet.from_string(diff):
        status: Literal["added", "modified", "deleted", "renamed"]
        if pf.is_added_file:
            status = "added"
        elif pf.is_removed_file:
            status = "deleted"
        elif pf.is_rename:
            status = "renamed"
        else:
            status = "modified"
        source = pf.source_file[2:] if pf.source_file.startswith("a/") else pf.source_file
        target = pf.target_file[2:] if pf.target_file.startswith("b/") else pf.target_file
        path = source if status == "deleted" else target
        added, removed = [], []
        for hunk in pf:
            for line in hunk:
                text = line.value.rstrip("\n").rstrip("\r")
                if line.is_added:
                    added.append(Line(line.target_line_no or 0, text))
                elif line.is_removed:
                    removed.append(Line(line.source_line_no or 0, text))
        out.append(
            FileChange(
                path=path,
                status=status,
                old_path=None if status == "added" else source,
                added=tuple(added),
                removed=tuple(removed),
                binary=pf.is_binary_file,
                patch=str(pf),
            )
        )
    return out


Scan = Callable[[Change, JacklineConfig], list[Finding]]


def registry() -> dict[str, Scan]:
    """Every scan, by name, in the order they run."""
    from jackline.scans import dependencies, guards, migrations, scope, suppressions

    return {
        "scope": scope.scan,
        "migrations": migrations.scan,
        "guards": guards.scan,
        "suppressions": suppressions.scan,
        "dependencies": dependencies.scan,
    }


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    timings: dict[str, float]

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "block")


def run_scans(
    change: Change,
    config: JacklineConfig,
    scans: dict[str, Scan] | None = None,
) -> Report:
    """Run every scan over the change. A scan that fails is a block-level finding."""
    findings: list[Finding] = []
    timings: dict[str, float] = {}
    for name, fn in (scans or registry()).items():
        started = time.monotonic()
        try:
            findings += fn(change, config)
        except Exception as e:  # noqa: BLE001 - a broken scan must block, not pass
            findings.append(
                Finding(
                    "scan.error",
                    "block",
                    f"the {name} scan failed to run: {type(e).__name__}: {e}",
                    why="A scan that cannot run cannot vouch for the change; "
                    "a person must look at what it would have checked.",
                )
            )
        timings[name] = round(time.monotonic() - started, 4)
    return Report(tuple(sort(findings)), timings)


def sort(findings: list[Finding]) -> list[Finding]:
    """Block first, then warn, then info; within a level by file and line."""
    return sorted(findings, key=lambda f: (LEVELS[f.level], f.file or "", f.line or 0, f.rule))


def tool_failed(tool: str, detail: str, file: str | None = None, install: str = "") -> Finding:
    """The finding for a scan tool that could not run (missing, crashed, refused its flags)."""
    hint = f" Install it with `{install}`." if install else ""
    return Finding(
        f"scan.tool-failed.{tool}",
        "block",
        f"{tool} could not run: {detail}".rstrip(),
        file=file,
        why=f"The {tool} check did not happen, so nothing vouches for what it checks.{hint}",
    )
