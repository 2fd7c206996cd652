"""What a release carries: the changes that reach production with it, read from the repository
(never a workspace), who wrote each, and what was said of them before.

The changes are main's first-parent commits between what production ran when the release
started (`Release.previous_sha`) and the release's commit: one a run's merge (an agent wrote
it: its run and agent) or a commit a person made on main (its author). Each is marked where a
commit it brought was rolled back before (it was in a release that production rolled back) or
is the work of a run a person rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jackline import git as g
from jackline.models import Release, Run, Status
from jackline.store import Store

LIMIT = 200
"""Commits read at most: a release that carries more shows the newest and says it was cut."""


@dataclass(frozen=True)
class Carried:
    """One change a release carries to production."""

    sha: str
    subject: str
    """The commit's first line, as written (agent-written text: escaped wherever shown)."""
    author: str
    """The commit's author as git records it."""
    run_id: str | None
    """The run whose merge this is: an agent wrote the change."""
    agent: str | None
    warnings: tuple[str, ...]
    """Rolled back before (by which release, why), or brings a rejected run's work."""


@dataclass(frozen=True)
class Carrying:
    commits: tuple[Carried, ...]
    """Newest first."""
    cut: bool
    """More than `LIMIT` commits: the oldest are not shown."""


@dataclass(frozen=True)
class Commit:
    parents: tuple[str, ...]
    author: str
    subject: str


def carried(root: Path, rel: Release, store: Store) -> Carrying:
    span = f"{rel.previous_sha}..{rel.sha}" if rel.previous_sha else rel.sha
    commits = _log(root, span)
    main = _first_parents(rel.sha, commits)
    runs = store.runs_with_commits(list(commits))
    merged = {r.merge_sha: r for r in runs if r.merge_sha}
    rolled = _rolled_back(root, rel, store)
    found = []
    for sha in main:
        run = merged.get(sha)
        brought = {sha, *_brought(sha, commits, set(main))}
        warnings = _warnings(brought, runs, rolled)
        author, subject = commits[sha].author, commits[sha].subject
        agent = run.agent if run else None
        found.append(Carried(sha, subject, author, run.id if run else None, agent, warnings))
    return Carrying(tuple(found), len(commits) >= LIMIT)


def _log(root: Path, span: str) -> dict[str, Commit]:
    """The span's commits, newest first (dicts keep the order git gives)."""
    out = g.git(root, "log", f"--max-count={LIMIT}", "--format=%H%x00%P%x00%an%x00%s", span)
    commits = {}
    for line in out.splitlines():
        sha, parents, author, subject = line.split("\x00", 3)
        commits[sha] = Commit(tuple(parents.split()), author, subject)
    return commits


def _first_parents(tip: str, commits: dict[str, Commit]) -> list[str]:
    chain = []
    while tip in commits:
        chain.append(tip)
        parents = commits[tip].parents
        tip = parents[0] if parents else ""
    return chain


def _brought(sha: str, commits: dict[str, Commit], main: set[str]) -> set[str]:
    """The commits a merge brought to main: those behind its other parents, within the span."""
    seen: set[str] = set()
    todo = list(commits[sha].parents[1:])
    while todo:
        c = todo.pop()
        if c in commits and c not in seen and c not in main:
            seen.add(c)
            todo.extend(commits[c].parents)
    return seen


def _rolled_back(root: Path, rel: Release, store: Store) -> dict[str, Release]:
    """Each commit an earlier release carried that production rolled back, and that release."""
    rolled: dict[str, Release] = {}
    for other in store.list_releases(rel.repo, limit=1000):
        if other.promotable or other.id == rel.id or other.created_at > rel.created_at:
            continue
        span = f"{other.previous_sha}..{other.sha}" if other.previous_sha else other.sha
        for sha in g.git(root, "rev-list", f"--max-count={LIMIT}", span).split():
            rolled.setdefault(sha, other)
    return rolled


def _warnings(brought: set[str], runs: list[Run], rolled: dict[str, Release]) -> tuple[str, ...]:
    said = []
    for release in {rolled[c].id: rolled[c] for c in brought if c in rolled}.values():
        said.append(f"rolled back before: {release.id} ({release.reason or 'no reason given'})")
    for run in runs:
        if run.status == Status.REJECTED and {run.head_sha, run.merge_sha} & brought:
            said.append(f"the work of {run.id}, which a person rejected")
    return tuple(said)
