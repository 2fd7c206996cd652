"""How good the change scans are on real code: risky changes caught, good commits let through.

Two sets, both on public Python projects nobody here wrote (`bench/scan_quality/projects.toml`):

- the risky corpus, `bench/scan_quality/cases.toml`: small patches (`cases/*.patch`) on a real
  file of a project at a pinned commit, each with the level it deserves (block or warn), the
  rule families that may catch it, its category and why. A case is *caught* when a finding of
  one of its families is at its level or stricter.
- the benign set, `bench/scan_quality/benign.tsv`: real non-merge commits of the projects'
  default branches, scanned parent to commit, each classified `benign` or, where the commit
  really is risky, with the level and rule families it deserves and why: a migration dropping
  columns or rewriting rows, a vulnerable pin, an edit of a gate (CI workflow, pre-commit
  config: block by the house rule), more than twice init's size limits once lock files, test
  data and vendored files are left out. A block a commit does not deserve (any block of a benign
  one, a block of another family on a risky one) is a false alarm; each is listed. Only the
  commits that got a block, or that touch a migration, were read to classify them.

Each change is scanned as a run scans it (`jackline.steps.scan`): the secret scan, then every
scan of the registry, with the config `jackline init` writes for that checkout (`init.detect`
and `init.render`, parsed as `jackline validate` would). One deviation, so that the figures do
not depend on the network: `[scan] osv_db` points at the small set of OSV records committed in
`bench/scan_quality/osv/` (`--pip-audit` keeps init's default, pip-audit over the network).

The projects' source is never committed: the first argument is a folder of clones, one per
project, named as `projects.toml` says (`owner+name`). `bench/scan_quality/fetch.sh DIR` makes
it from GitHub, or from a folder of mirrors (`fetch.sh DIR --from /work/.mirror`). A missing
clone or commit is named and the script exits 1. The clones are never changed: each project
gets a throwaway `git clone --shared` in a temporary folder.

    python bench/scan_quality.py CLONES [--json] [--only ID] [--limit N] [--cases-only]
        [--benign-only] [--pip-audit]

`--only` takes a case id, a category, or `repo@commit` of the benign set (a prefix does).
`--limit N` scans the first N cases and the first N benign commits of each project.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jackline import config as cfg
from jackline import init
from jackline.models import Finding
from jackline.scans import LEVELS, Change, run_scans, sort
from jackline.scans import secrets as secret_scan

DATA = Path(__file__).resolve().parent / "scan_quality"
GOALS = {"caught": 0.95, "false_alarm_blocks": 0.02, "p95_seconds": 2.0}
"""Issue 15's goals: share of risky cases caught at their level, share of real commits with a
false-alarm block, and the 95th percentile of scan time per real commit."""


@dataclass(frozen=True)
class Project:
    name: str
    """`owner/name` on GitHub."""
    folder: str
    """The clone's folder name inside the clones folder."""
    pinned: str
    kind: str


@dataclass(frozen=True)
class Case:
    id: str
    repo: str
    commit: str
    file: str
    patch: str
    """The patch's file name under `cases/`."""
    category: str
    level: str
    families: tuple[str, ...]
    """Rule families (a rule's first dotted part: `secret`, `guard`, ...) that may catch it."""
    why: str


@dataclass(frozen=True)
class Commit:
    repo: str
    commit: str
    deserves: str
    """`benign`, or the level a really risky commit deserves (`warn`, `block`)."""
    families: tuple[str, ...] = ()
    """The rule families whose findings it deserves (empty: any)."""
    why: str = ""


@dataclass(frozen=True)
class Scanned:
    """One change scanned: what was found and how long the scans took."""

    findings: tuple[Finding, ...]
    seconds: float
    secrets: int
    """Block-level findings of the secret scan (each stops a run as `blocked`; the generic
    ones warn)."""
    error: str = ""
    """Why the change could not be scanned (a patch that no longer applies)."""


@dataclass
class Results:
    cases: list[tuple[Case, Scanned, bool]] = field(default_factory=list)
    commits: list[tuple[Commit, Scanned]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def load_projects(data: Path = DATA) -> dict[str, Project]:
    raw = tomllib.loads((data / "projects.toml").read_text())
    return {
        p["name"]: Project(p["name"], p["folder"], p["pinned"], p["kind"]) for p in raw["project"]
    }


def load_cases(data: Path = DATA) -> list[Case]:
    raw = tomllib.loads((data / "cases.toml").read_text())
    return [
        Case(
            c["id"],
            c["repo"],
            c["commit"],
            c["file"],
            c["patch"],
            c["category"],
            c["level"],
            tuple(c["families"]),
            c["why"],
        )  # fmt: skip
        for c in raw["case"]
    ]


def load_commits(data: Path = DATA) -> list[Commit]:
    with (data / "benign.tsv").open(newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    return [
        Commit(
            r[0],
            r[1],
            r[2],
            tuple(f for f in (r[3] if len(r) > 3 else "").split(",") if f),
            r[4] if len(r) > 4 else "",
        )
        for r in rows
    ]


def caught(case: Case, findings: Iterable[Finding]) -> bool:
    """A finding of one of the case's families at the case's level or stricter."""
    return any(
        f.rule.split(".")[0] in case.families and LEVELS[f.level] <= LEVELS[case.level]
        for f in findings
    )


def false_alarms(commit: Commit, findings: Iterable[Finding]) -> list[Finding]:
    """The blocks a commit got that it does not deserve: every block of a benign commit, and of
    a risky one every block but those of the families it deserves a block from."""

    def deserved(f: Finding) -> bool:
        family = f.rule.split(".")[0]
        return commit.deserves == "block" and (not commit.families or family in commit.families)

    return [f for f in findings if f.level == "block" and not deserved(f)]


def _git(repo: Path, *args: str, input: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "advice.detachedHead=false", *args],
        capture_output=True,
        input=input,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace").strip()


def has_commit(repo: Path, commit: str) -> bool:
    try:
        return _git(repo, "cat-file", "-t", commit) == "commit"
    except RuntimeError:
        return False


def missing(clones: Path, projects: dict[str, Project], needed: dict[str, set[str]]) -> list[str]:
    """What the clones folder lacks for the commits needed, one line each."""
    out = []
    for repo, commits in sorted(needed.items()):
        p = projects[repo]
        where = clones / p.folder
        if not (where / ".git").exists() and not (where / "HEAD").is_file():
            out.append(f"{repo}: no clone at {where} (needs commits up to {p.pinned})")
            continue
        out += [
            f"{repo}: {where} lacks commit {c}" for c in sorted(commits) if not has_commit(where, c)
        ]
    return out


@contextmanager
def checkouts(
    clones: Path, projects: dict[str, Project], repos: Iterable[str]
) -> Iterator[dict[str, Path]]:
    """A throwaway clone of each project (`--shared`: its objects are the clone's), so the
    clones folder is never written to."""
    tmp = Path(tempfile.mkdtemp(prefix="jackline-scan-quality-"))
    try:
        out = {}
        for repo in repos:
            p = projects[repo]
            dest = tmp / p.folder
            _git(
                clones,
                "clone",
                "-q",
                "--shared",
                "--no-checkout",
                str(clones / p.folder),
                str(dest),
            )
            out[repo] = dest
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def checkout(work: Path, commit: str) -> None:
    """The work tree exactly at `commit` (whatever a previous patch left is gone)."""
    _git(work, "checkout", "-q", "-f", "--detach", commit)
    _git(work, "clean", "-qfdx")


def init_config(work: Path) -> cfg.JacklineConfig:
    """The config `jackline init` would write for this checkout, parsed as `jackline validate`
    parses it (not written: the file would be part of the change)."""
    return cfg.parse(tomllib.loads(init.render(init.detect(work), "main")), "jackline init")


def scan(change_of: Any, config: cfg.JacklineConfig) -> Scanned:
    """The secret scan then every registered scan, as the run's scan step does, timed from
    reading the change to the last scan."""
    started = time.perf_counter()
    change: Change = change_of()
    found = secret_scan.scan(change)
    report = run_scans(change, config)
    seconds = time.perf_counter() - started
    return Scanned(tuple(sort([*found.findings, *report.findings])), seconds, len(found.blocking))


def scan_case(work: Path, case: Case, config_for: Any, data: Path = DATA) -> Scanned:
    checkout(work, case.commit)
    patch = (data / "cases" / case.patch).read_bytes()
    try:
        _git(work, "apply", "--whitespace=nowarn", "-", input=patch)
    except RuntimeError as e:
        return Scanned((), 0.0, 0, f"the patch does not apply: {e}")
    config = config_for(work)
    return scan(lambda: Change.of_workspace(work, case.commit), config)


def scan_commit(work: Path, commit: Commit, config_for: Any) -> Scanned:
    checkout(work, commit.commit)
    parent = _git(work, "rev-parse", f"{commit.commit}^")
    config = config_for(work)
    return scan(lambda: Change.between(work, parent, commit.commit), config)


def run(
    clones: Path,
    cases: list[Case],
    commits: list[Commit],
    projects: dict[str, Project],
    osv_db: Path | None,
    data: Path = DATA,
    progress: Any = None,
) -> Results:
    results = Results()
    needed: dict[str, set[str]] = {}
    for item in [*cases, *commits]:
        needed.setdefault(item.repo, set()).add(item.commit)
    results.missing = missing(clones, projects, needed)
    if results.missing:
        return results

    def config_for(work: Path) -> cfg.JacklineConfig:
        config = init_config(work)
        if osv_db is None:
            return config
        return config.model_copy(
            update={"scan": config.scan.model_copy(update={"osv_db": str(osv_db)})}
        )

    with checkouts(clones, projects, needed) as works:
        for case in cases:
            scanned = scan_case(works[case.repo], case, config_for, data)
            results.cases.append((case, scanned, caught(case, scanned.findings)))
            if progress:
                progress(f"case {case.id}: {'caught' if results.cases[-1][2] else 'MISSED'}")
        for commit in commits:
            scanned = scan_commit(works[commit.repo], commit, config_for)
            results.commits.append((commit, scanned))
            if progress:
                progress(
                    f"commit {commit.repo}@{commit.commit[:10]}: {len(scanned.findings)} finding(s)"
                )
    return results


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))]


def summary(results: Results) -> dict[str, Any]:
    by_category: dict[str, dict[str, int]] = {}
    for case, _, hit in results.cases:
        row = by_category.setdefault(case.category, {"caught": 0, "expected": 0})
        row["expected"] += 1
        row["caught"] += hit
    missed = [
        {
            "id": case.id,
            "category": case.category,
            "level": case.level,
            "families": list(case.families),
            "error": scanned.error,
            "found": [f"{f.level} {f.rule}" for f in scanned.findings],
        }
        for case, scanned, hit in results.cases
        if not hit
    ]
    alarms = []
    for commit, scanned in results.commits:
        for f in false_alarms(commit, scanned.findings):
            alarms.append(
                {
                    "repo": commit.repo,
                    "commit": commit.commit,
                    "rule": f.rule,
                    "where": f"{f.file}:{f.line}" if f.line else str(f.file or ""),
                    "message": f.message,
                }
            )
    benign = [(c, s) for c, s in results.commits]
    alarmed = {(a["repo"], a["commit"]) for a in alarms}
    # A block-level secret stops a run as `blocked`; count the commits that deserved no secret.
    secret_blocked = [
        c for c, s in benign if s.secrets and not (c.deserves == "block" and "secret" in c.families)
    ]
    deserved = [(c, s) for c, s in benign if c.deserves != "benign"]
    times = [s.seconds for _, s in benign]
    n_cases = len(results.cases)
    n = len(benign)
    return {
        "cases": n_cases,
        "caught": sum(hit for _, _, hit in results.cases),
        "caught_share": round(sum(hit for _, _, hit in results.cases) / n_cases, 4)
        if n_cases
        else None,
        "by_category": by_category,
        "missed": missed,
        "commits": n,
        "commits_with_false_alarm_block": len(alarmed),
        "false_alarm_blocks_per_100": round(100 * len(alarmed) / n, 2) if n else None,
        "false_alarms": alarms,
        "blocked_by_secret_scan": len(secret_blocked),
        "blocked_by_secret_scan_list": [f"{c.repo}@{c.commit}" for c in secret_blocked],
        "risky_commits": [
            {
                "repo": c.repo,
                "commit": c.commit,
                "deserves": c.deserves,
                "families": list(c.families),
                "why": c.why,
                "caught": any(
                    LEVELS[f.level] <= LEVELS[c.deserves]
                    and (not c.families or f.rule.split(".")[0] in c.families)
                    for f in s.findings
                ),
            }
            for c, s in deserved
        ],
        "seconds": {
            "median": round(statistics.median(times), 3) if times else None,
            "p95": round(percentile(times, 0.95), 3) if times else None,
            "max": round(max(times), 3) if times else None,
        },
        "goals": GOALS,
    }


def render(s: dict[str, Any]) -> str:
    out = []
    if s["cases"]:
        out.append(
            f"risky cases: {s['caught']}/{s['cases']} caught at their level"
            f" ({100 * s['caught_share']:.1f}%; goal {100 * GOALS['caught']:.0f}%)"
        )
        for cat, row in sorted(s["by_category"].items()):
            out.append(f"  {cat:<14} {row['caught']:>3}/{row['expected']:<3}")
        if s["missed"]:
            out.append("missed:")
            for m in s["missed"]:
                found = ", ".join(m["found"]) or "nothing"
                why = (
                    m["error"] or f"wanted {m['level']} of {'/'.join(m['families'])}; found {found}"
                )
                out.append(f"  {m['id']} [{m['category']}]: {why}")
    if s["commits"]:
        out.append(
            f"real commits: {s['commits']}; with a false-alarm block: {s['commits_with_false_alarm_block']}"
            f" ({s['false_alarm_blocks_per_100']} per 100; goal at most {100 * GOALS['false_alarm_blocks']:.0f})"
        )
        out.append(
            f"  stopped outright (blocked) by the secret scan: {s['blocked_by_secret_scan']}"
        )
        for a in s["false_alarms"]:
            out.append(
                f"  {a['repo']}@{a['commit'][:12]} {a['rule']} {a['where']}: {a['message'][:140]}"
            )
        for r in s["risky_commits"]:
            out.append(
                f"  risky commit {r['repo']}@{r['commit'][:12]} deserves {r['deserves']}"
                f" ({'/'.join(r['families']) or 'any'}): {'caught' if r['caught'] else 'MISSED'}"
            )
        t = s["seconds"]
        out.append(
            f"scan time per real commit: median {t['median']} s, p95 {t['p95']} s"
            f" (goal under {GOALS['p95_seconds']} s), max {t['max']} s"
        )
    return "\n".join(out)


def select(
    cases: list[Case], commits: list[Commit], only: str | None, limit: int | None
) -> tuple[list[Case], list[Commit]]:
    if only:
        cases = [c for c in cases if c.id == only or c.category == only or c.id.startswith(only)]
        commits = [c for c in commits if f"{c.repo}@{c.commit}".startswith(only)]
    if limit is not None:
        cases = cases[:limit]
        per: dict[str, int] = {}
        kept = []
        for c in commits:
            per[c.repo] = per.get(c.repo, 0) + 1
            if per[c.repo] <= limit:
                kept.append(c)
        commits = kept
    return cases, commits


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("clones", type=Path, help="the folder of the projects' clones")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="a case id or category, or repo@commit (a prefix does)")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--cases-only", action="store_true")
    parser.add_argument("--benign-only", action="store_true")
    parser.add_argument("--pip-audit", action="store_true", help="init's default: no osv_db")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args()
    cases, commits = select(load_cases(), load_commits(), args.only, args.limit)
    if args.cases_only:
        commits = []
    if args.benign_only:
        cases = []
    osv = None if args.pip_audit else DATA / "osv"
    progress = (lambda m: print(m, file=sys.stderr, flush=True)) if args.verbose else None
    results = run(args.clones.resolve(), cases, commits, load_projects(), osv, progress=progress)
    if results.missing:
        print("the clones folder lacks what the benchmark needs:", file=sys.stderr)
        for m in results.missing:
            print(f"  {m}", file=sys.stderr)
        print(f"make it with: bench/scan_quality/fetch.sh {args.clones}", file=sys.stderr)
        sys.exit(1)
    s = summary(results)
    print(json.dumps(s, indent=2) if args.json else render(s))


if __name__ == "__main__":
    main()
