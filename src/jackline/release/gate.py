"""The release gate: expand/contract against the release that is live, and the flags file.

The migration scan of a run can only say "this drops a column"; it cannot know whether anything
still reads it. Here Jackline knows what is live: the migrations the candidate adds since the
live release are read with the scan's own parsers (`scans.migrations`), and for each drop or
rename of a column or table the LIVE release's tree (not the candidate's: the old code is what
runs while the migration does) is searched for the name outside migration files. A name still
read there blocks the release, with the places and the expand/contract steps to take instead.

Finding the reads is a word search (`git grep -w -i`) over the live tree, not a parse: it finds
ORM fields, SQL strings and queries, and may also find an unrelated word of the same spelling.
Documentation (`*.md`, `*.rst`) does not count.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pathspec

from jackline import git as g
from jackline.config import JacklineConfig
from jackline.errors import JacklineError
from jackline.flags import model as flags
from jackline.models import Finding
from jackline.scans import Change
from jackline.scans import migrations as mig

# The scan's rules for operations that remove a name the old code may still use.
REMOVING = {
    "migration.drop-column": "drops column",
    "migration.drop-table": "drops table",
    "migration.rename-column": "renames column",
    "migration.rename-table": "renames table",
    "squawk.ban-drop-column": "drops column",
    "squawk.ban-drop-table": "drops table",
    "squawk.renaming-column": "renames column",
    "squawk.renaming-table": "renames table",
}
_SQL_NAMES = [
    re.compile(r"\bdrop\s+column\s+(?:if\s+exists\s+)?([\w\".]+)", re.I),
    re.compile(r"\bdrop\s+table\s+(?:if\s+exists\s+)?([\w\".]+)", re.I),
    re.compile(r"\brename\s+column\s+([\w\".]+)\s+to\b", re.I),
    re.compile(r"\balter\s+table\s+(?:if\s+exists\s+)?([\w\".]+)\s+rename\s+to\b", re.I),
    re.compile(r"\brename\s+(?!column\b|to\b|constraint\b)([\w\".]+)\s+to\b", re.I),
]
DOCS = ["*.md", "*.rst"]
MAX_PLACES = 10


@dataclass(frozen=True)
class Blocked:
    """One migration operation the live release would break."""

    migration: str
    line: int | None
    operation: str
    names: tuple[str, ...]
    places: tuple[str, ...]
    """`file:line` in the live tree where a name is still read."""
    advice: str

    def render(self) -> str:
        where = f"{self.migration}:{self.line}" if self.line else self.migration
        names = ", ".join(f"`{n}`" for n in self.names)
        return (
            f"{where} {self.operation} {names}, which the live release still reads at "
            f"{', '.join(self.places)}. Instead: {self.advice}"
        )


def check(
    repo: Path, tree: Path, config: JacklineConfig, live_sha: str | None, sha: str
) -> list[str]:
    """Problems that block releasing `sha` of `repo` while `live_sha` runs (empty: the gate
    passes). `tree` is a checkout of `sha`: the flags file is the commit's, not the working
    tree's."""
    problems = flag_problems(tree, config)
    if live_sha is None or live_sha == sha:
        return problems  # nothing live yet (the first release), or a redeploy: nothing to break
    findings = migration_findings(repo, config, live_sha, sha)
    for f in findings:
        if f.rule.startswith("scan."):  # the scan could not run: nothing vouches for it
            problems.append(f"{f.file or 'migrations'}: {f.message}")
    problems += [b.render() for b in blocked(repo, config, live_sha, findings)]
    return problems


def migration_findings(
    repo: Path, config: JacklineConfig, live_sha: str, sha: str
) -> list[Finding]:
    """The migration scan over live..candidate, read from a checkout of the candidate."""
    with tempfile.TemporaryDirectory(prefix="jl-gate-") as tmp:
        tree = Path(tmp) / "candidate"
        # A shared clone borrows the repository's objects: cheap, and the user's checkout,
        # index and branches stay untouched.
        g.git(repo, "clone", "--quiet", "--shared", "--no-checkout", str(repo), str(tree))
        g.git(tree, "checkout", "--quiet", "--detach", sha)
        return mig.scan(Change.between(tree, live_sha, sha), config)


def blocked(
    repo: Path, config: JacklineConfig, live_sha: str, findings: list[Finding]
) -> list[Blocked]:
    out = []
    skip = pathspec.GitIgnoreSpec.from_lines([*config.scan.migrations, *DOCS])
    for f in findings:
        if f.rule not in REMOVING:
            continue
        names = tuple(dict.fromkeys(names_in(f)))
        places = [p for name in names for p in readers(repo, live_sha, name, skip)]
        if places:
            advice = f.why or mig.EXPAND_CONTRACT.get(f.rule, "")
            shown = tuple(dict.fromkeys(places))[:MAX_PLACES]
            out.append(Blocked(f.file or "?", f.line, REMOVING[f.rule], names, shown, advice))
    return out


def names_in(f: Finding) -> list[str]:
    """The column or table a removing finding is about (the old name for a rename)."""
    quoted = re.findall(r"`([^`]+)`", f.message)
    if quoted and not re.search(r"\s", quoted[0]):
        return [quoted[0]]  # Django/Alembic: the first name the scan quotes
    sql = quoted[0] if quoted else f.quote  # raw SQL in a Python migration, or a .sql file
    found = []
    for pattern in _SQL_NAMES:
        found += [_bare(m) for m in pattern.findall(sql)]
    return found


def _bare(name: str) -> str:
    return name.split(".")[-1].strip('"')


def readers(repo: Path, sha: str, name: str, skip: pathspec.GitIgnoreSpec) -> list[str]:
    """`file:line` places in `sha`'s tree, outside `skip`, where the word `name` appears."""
    argv = ["git", "-C", str(repo), *g.SAFE, "grep", "-z", "-n", "-I", "-w", "-i", "-F"]
    proc = subprocess.run([*argv, "-e", name, sha], capture_output=True)
    return [
        f"{path}:{number}"
        for path, rows in g.grep_rows(proc.stdout, sha).items()
        if not skip.match_file(path)
        for number, _ in rows
    ]


def flag_problems(repo: Path, config: JacklineConfig) -> list[str]:
    """A broken flags file blocks the release: each of its problems, named."""
    try:
        flags.validate(repo, config)
    except JacklineError as e:
        return [f"flags: {line}" for line in str(e).splitlines()]
    return []
