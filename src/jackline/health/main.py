"""The state of main: a command's exit code, or else the checks Jackline last recorded on main.

Jackline records check results on main when it merges a run: the checks of the run's last round
(the merge result has the same tree when main had not moved), or the `merge-check` it ran on the
merge result when main had moved. Commits that reached main some other way were not checked by
Jackline, and the report says how many there are.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

from jackline import git as g
from jackline import paths, proc
from jackline.events import Kind
from jackline.guard.audit import AuditLog, Event
from jackline.guard.redact import Redactor
from jackline.health.records import Item, span
from jackline.models import ReleaseStatus, Run, Status
from jackline.store import Store

MAIN_TIMEOUT = 600.0
"""Seconds `[health] main_command` may take; past it, main's state is unknown."""
TAIL = 20
CHECK_EVENTS = (Kind.ROUND, Kind.MERGE_CHECK)


# A command ------------------------------------------------------------------------------------


def from_command(repo: Path, command: str | list[str], timeout: float = MAIN_TIMEOUT) -> Item:
    shown = command if isinstance(command, str) else shlex.join(command)
    log = paths.logs() / "health" / "main-command.log"
    done = proc.run(command, repo, os.environ, log, timeout)
    # The command runs with the harness's environment, so its output may print a secret.
    tail = Redactor.from_environment()(done.tail(TAIL))
    detail = f"$ {shown}\n{tail}\n(full output: {log})"
    if done.timed_out:
        return Item(
            "main", "main", "unknown", f"`{shown}` did not finish within {timeout:g}s", detail
        )
    if done.exit_code == 0:
        return Item("main", "main", "ok", f"`{shown}` passed in {done.duration:.1f}s", detail)
    return Item("main", "main", "attention", f"`{shown}` failed (exit {done.exit_code})", detail)


# What Jackline recorded -------------------------------------------------------------------------


def from_store(repo: Path, main: str, store: Store, now: datetime) -> Item:
    run = last_merged(repo, store)
    if run is None:
        return _unknown(
            "no check results recorded on main: no run has merged yet "
            "(set [health] main_command to check main with a command)"
        )
    events = AuditLog(store, Redactor({})).read(run.id)
    if events and not events[-1].intact:
        return _unknown(f"the audit log of {run.id} is broken, so its check results prove nothing")
    merged = [e for e in events if e.kind == Kind.MERGE and e.data.get("outcome") == "merged"]
    if not merged:
        return _unknown(f"{run.id} is marked merged but its audit log records no merge")
    checks = [e for e in events if e.kind in CHECK_EVENTS and e.seq < merged[-1].seq]
    if not checks:
        return _unknown(f"no checks were recorded before {run.id} merged")
    return _checked(repo, main, run, merged[-1], checks[-1], now)


def last_merged(repo: Path, store: Store) -> Run | None:
    """The run of this repository that merged most recently (merging is its last update)."""
    names = {str(repo), str(repo.resolve())}
    runs = [r for r in store.list_runs(Status.MERGED, limit=10_000) if r.repo in names]
    return max(runs, key=lambda r: r.updated_at, default=None)


def _checked(repo: Path, main: str, run: Run, merge: Event, check: Event, now: datetime) -> Item:
    sha = str(merge.data.get("sha", ""))
    results: list[dict[str, Any]] = list(check.data.get("checks") or [])
    when = f"{run.id}, merged {span(now.timestamp() - merge.ts)} ago by {merge.data.get('by', '?')}"
    detail = "\n".join(_line(c) for c in results)
    moved, unchecked = _since(repo, main, sha)
    if not results:
        return _unknown(f"no checks ran before {run.id} merged", detail)
    if moved is None:
        return _unknown(f"{main} no longer contains {sha[:10]}, where the checks last ran ({when})")
    on = f"on {sha[:10]} ({when}){unchecked}"
    if check.data.get("passed"):
        names = ", ".join(str(c.get("name")) for c in results)
        return Item("main", "main", "ok", f"checks passed {on}: {names}", detail)
    failed = ", ".join(str(c.get("name")) for c in results if not c.get("passed"))
    return Item("main", "main", "attention", f"checks failed {on}: {failed}", detail)


def _line(check: dict[str, Any]) -> str:
    mark = "pass" if check.get("passed") else "FAIL"
    summary = f": {check['summary']}" if check.get("summary") else ""
    return f"{check.get('name')} {mark} (exit {check.get('exit_code')}){summary}"


def _since(repo: Path, main: str, sha: str) -> tuple[int | None, str]:
    """How many commits main is past `sha` (None if it does not contain it), and a note."""
    if not sha or not g.ok(repo, "merge-base", "--is-ancestor", sha, main):
        return None, ""
    count = int(g.git(repo, "rev-list", "--count", f"{sha}..{main}"))
    if count == 0:
        return 0, ""
    return count, f"; {main} is {count} commit(s) past it, not checked by Jackline"


def _unknown(summary: str, detail: str = "") -> Item:
    return Item("main", "main", "unknown", summary, detail)


# What production refused ------------------------------------------------------------------------


def from_production(
    repo: Path, main: str, production: str, store: Store, now: datetime
) -> list[Item]:
    """Main as production judged it: a commit of main that production rolled back, while no
    release that carries it has gone live since, needs attention whatever the checks said (the
    checks ran before the merge; production ran after). Read from the release ledger, which a
    rollback writes at once: nothing here is cached."""
    releases = store.list_releases(str(repo.resolve()), limit=50)
    rolled = next((r for r in releases if r.status == ReleaseStatus.ROLLED_BACK), None)
    live = store.live(str(repo.resolve()), production)
    if rolled is None or not _carries(repo, main, rolled.sha):
        return []
    if live and _carries(repo, live["sha"], rolled.sha):
        return []  # a release that carries it went live since: production took it after all
    ago = span(now.timestamp() - rolled.updated_at)
    serving = f"; production runs {live['sha'][:10]}" if live else "; production runs nothing"
    summary = (
        f"production rolled back {rolled.sha[:10]} {ago} ago ({rolled.id}: "
        f"{rolled.reason or 'no reason recorded'}){serving}: main still holds that change"
    )
    return [Item("main", "production", "attention", summary, rolled.reason)]


def _carries(repo: Path, ref: str, sha: str) -> bool:
    return g.ok(repo, "merge-base", "--is-ancestor", sha, ref)


# GitHub Actions ---------------------------------------------------------------------------------

FAILED = ("failure", "timed_out", "cancelled", "startup_failure", "action_required")


def from_github(forge: Any, main: str) -> Item:
    """The latest GitHub Actions run of each workflow on main (with a `github` forge)."""
    from jackline.forge import github

    owner, name = github.owner_repo(forge)
    gh = github.client(forge)  # held: githubkit's namespaces need their client alive
    answer = gh.rest.actions.list_workflow_runs_for_repo(owner, name, branch=main, per_page=50)
    latest: dict[str, Any] = {}
    for run in answer.parsed_data.workflow_runs:  # newest first
        latest.setdefault(run.name or str(run.workflow_id), run)
    if not latest:
        return Item("main", "GitHub Actions", "unknown", f"no GitHub Actions runs on {main}")
    failing = [n for n, r in latest.items() if r.conclusion in FAILED]
    running = [n for n, r in latest.items() if r.status != "completed"]
    detail = "\n".join(
        f"{n}: {r.conclusion or r.status} at {r.head_sha[:10]} {r.html_url}"
        for n, r in sorted(latest.items())
    )
    passing = len(latest) - len(failing) - len(running)
    summary = f"GitHub Actions on {main}: {passing} of {len(latest)} workflows passing"
    if failing:
        summary += f"; failing: {', '.join(sorted(failing))}"
    if running:
        summary += f"; running: {', '.join(sorted(running))}"
    return Item("main", "GitHub Actions", "attention" if failing else "ok", summary, detail)
