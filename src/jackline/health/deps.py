"""Vulnerable dependencies on main: the dependency scan run over whole files, not a change.

The files are read from the main branch (not the working tree, which may hold another branch)
and shown to `scans.dependencies` as if every one were newly added, so every dependency they
name is looked up: in `[scan] osv_db` offline, or through pip-audit. A lookup that cannot happen
is `unknown`, with the scan's reason.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from packaging.version import InvalidVersion, Version

from jackline import git as g
from jackline.config import JacklineConfig
from jackline.errors import CommandFailed
from jackline.health.records import Item
from jackline.models import Finding
from jackline.scans import Change, FileChange, dependencies

READ = "requirements*.txt, requirements/*.txt, pyproject.toml, package.json and their lock files"
_VULNERABLE = re.compile(
    r"^(?P<name>\S+) (?P<version>\S+)(?: \(the lower bound[^)]*\))? is affected"
)
_IDENT = re.compile(r" is affected by (\S+)")
_FIXED = re.compile(r"; fixed in (\S+)$")


def items(repo: Path, config: JacklineConfig) -> list[Item]:
    main = config.project.main
    try:
        sha = g.rev(repo, main)
    except CommandFailed:
        return [_unknown("dependencies", f"branch {main!r} has no commit in {repo}")]
    files, problems = _files(repo, sha, config.health.dependencies)
    if not files:
        return problems or [
            _ok("no dependency files found on main; [health] dependencies names them")
        ]
    with tempfile.TemporaryDirectory(prefix="jackline-health-") as tmp:
        change = _change(repo, sha, files, Path(tmp))
        found = dependencies.scan(change, _absolute_osv(config, repo))
    return problems + _report(found, files, _source(config, repo))


def _files(repo: Path, sha: str, named: list[str] | None) -> tuple[list[str], list[Item]]:
    """The dependency files to read at `sha`: those named in [health], or every one main holds."""
    tracked = g.git(repo, "ls-tree", "-r", "-z", "--name-only", sha).split("\0")
    if named is None:
        # The scan's own test of which files it reads: asking it keeps the two in step.
        return sorted(p for p in tracked if p and dependencies.parser_for(p)), []
    files, problems = [], []
    for i, name in enumerate(named):
        path = _relative(repo, name)
        where = f"health.dependencies[{i}] = {name!r}"
        if path is None or path not in tracked:
            problems.append(_unknown(name, f"{where}: no such file on main"))
        elif dependencies.parser_for(path) is None:
            problems.append(_unknown(name, f"{where}: not a file the scan reads ({READ})"))
        else:
            files.append(path)
    return files, problems


def _relative(repo: Path, name: str) -> str | None:
    path = Path(name).expanduser()
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None


def _change(repo: Path, sha: str, files: list[str], root: Path) -> Change:
    for path in files:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        # As bytes: the scan itself decodes, and reports a file that is not UTF-8 as unreadable.
        argv = ["git", "-C", str(repo), *g.SAFE, "cat-file", "blob", f"{sha}:{path}"]
        target.write_bytes(subprocess.run(argv, capture_output=True, check=True).stdout)
    return Change(root, sha, tuple(FileChange(p, "added") for p in files))


def _absolute_osv(config: JacklineConfig, repo: Path) -> JacklineConfig:
    """The scan resolves `osv_db` against the files' root, which here is a temporary folder."""
    if not config.scan.osv_db:
        return config
    db = str((repo / Path(config.scan.osv_db).expanduser()).resolve())
    return config.model_copy(update={"scan": config.scan.model_copy(update={"osv_db": db})})


def _source(config: JacklineConfig, repo: Path) -> str:
    if config.scan.osv_db:
        return f"the OSV copy at {_absolute_osv(config, repo).scan.osv_db}"
    return "pip-audit"


def _report(found: list[Finding], files: list[str], source: str) -> list[Item]:
    vulnerable: dict[str, list[Finding]] = defaultdict(list)
    out: list[Item] = []
    for f in found:
        if f.rule == "dependency.vulnerable":
            m = _VULNERABLE.match(f.message)
            vulnerable[f"{m['name']} {m['version']}" if m else f.file or "?"].append(f)
        elif f.level != "info":  # a tool that could not run, a file or version it could not read
            out.append(_unknown(f.file or "dependencies", f.message, f.why))
    out += [_vulnerable(name, group) for name, group in sorted(vulnerable.items())]
    if out:
        return out
    names = {f.message.split(" ")[1] for f in found if f.rule == "dependency.added"}
    return [
        _ok(f"{len(names)} dependencies in {', '.join(files)}: none known-vulnerable ({source})")
    ]


def _vulnerable(name: str, group: list[Finding]) -> Item:
    idents = [m.group(1) for f in group if (m := _IDENT.search(f.message))]
    fixes = [m.group(1) for f in group if (m := _FIXED.search(f.message))]
    upgrade = f"; fixed in {_highest(fixes)}" if fixes and len(fixes) == len(group) else ""
    where = ", ".join(sorted({f"{f.file}:{f.line}" if f.line else str(f.file) for f in group}))
    detail = "\n".join(f.message for f in group)
    return Item(
        "dependencies", name, "attention", f"{', '.join(idents)}{upgrade} ({where})", detail
    )


def _highest(versions: list[str]) -> str:
    """The version that clears every advisory: the highest fix (as written if it does not parse)."""
    try:
        return max(versions, key=Version)
    except InvalidVersion:
        return " / ".join(dict.fromkeys(versions))


def _ok(summary: str) -> Item:
    return Item("dependencies", "dependencies", "ok", summary)


def _unknown(name: str, summary: str, detail: str = "") -> Item:
    return Item("dependencies", name, "unknown", summary, detail)
