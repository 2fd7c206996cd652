"""Reading runs: the records, their events (followed as they come), rounds, findings, handoffs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from jackline import artifacts, executors, handoff
from jackline import git as g
from jackline import repos as repositories
from jackline.errors import CommandFailed, JacklineError, NotFound
from jackline.events import Kind
from jackline.guard.audit import AuditLog, Event, Verdict
from jackline.guard.redact import Redactor
from jackline.models import (
    DRIVEN,
    Comment,
    Finding,
    Run,
    Status,
    from_json,
    to_json,
)
from jackline.review import in_force, open_blocking
from jackline.review import waiting_for as review_waiting_for
from jackline.store import RunChoices, Store


def runs(
    status: str | None = None,
    limit: int = 100,
    *,
    agent: str | None = None,
    by: str | None = None,
    repo: str | None = None,
) -> list[Run]:
    """Runs, newest first, as `shown`; `status` keeps one (`interrupted` included), `agent`,
    `by` (who submitted it) and `repo` (as the run records it) keep theirs."""
    # One look per executor, not per run: a worker drives many runs at once.
    alive = cache(executors.alive)
    kept = {"agent": agent, "by": by, "repo": repo}
    if status == Status.INTERRUPTED:
        listed = Store().list_runs(None, 100_000, **kept)
        found = [shown(r, alive) for r in listed if r.status in DRIVEN]
        return [r for r in found if r.status == status][:limit]
    found = [shown(r, alive) for r in Store().list_runs(status, limit, **kept)]
    return [r for r in found if r.status == status] if status else found


def run_choices() -> RunChoices:
    """The agents, people and repositories the runs can be filtered by."""
    return Store().run_choices()


def waiting_for(found: list[Run]) -> dict[str, str]:
    """Who must act next on each of these runs (`review.waiting_for`): the owners a run's open
    block-level findings need, read from the config it recorded, and, for a merged run,
    whether its merge is live in production yet (read from the repository, once a repo)."""
    from jackline.api.submission import recorded_config  # the config models: only here

    store = Store()
    unreleased: dict[str, frozenset[str] | None] = {}
    waits = {}
    for run in found:
        owners: tuple[str, ...] = ()
        if run.status == Status.AWAITING_REVIEW and open_blocking(run):
            try:
                owners = tuple(recorded_config(store, run.id).review.owners)
            except (JacklineError, LookupError, ValueError):  # no config recorded, or unreadable
                owners = ()
        if run.status == Status.MERGED and run.repo not in unreleased:
            unreleased[run.repo] = not_live(store, run.repo)
        waits[run.id] = review_waiting_for(run, owners, unreleased.get(run.repo))
    return waits


def not_live(store: Store, repo: str) -> frozenset[str] | None:
    """Main's commits production does not serve yet (first parents: the merges and the
    commits made on main), or None where nothing is released from here (no release
    environments, or a repository this machine has no checkout of)."""
    from jackline import config as cfg

    root = Path(repo)
    if repositories.is_url(repo) or not root.is_dir():
        return None
    try:
        # The checkout's config, not main's committed one (`release.tree`, which a release
        # reads): a hint on a list needs no more, and reading that cost 40 ms a page.
        config = cfg.load(root)
    except (JacklineError, OSError):
        return None
    main, environments = config.project.main, config.release.environments
    if not environments:
        return None
    live = store.live(repo, list(environments)[-1])
    span = f"{live['sha']}..refs/heads/{main}" if live else f"refs/heads/{main}"
    out = g.git(root, "rev-list", "--first-parent", "--max-count=10000", span)
    return frozenset(out.split())


def run_tally() -> tuple[Counter[str], int]:
    """Every run counted by status as `shown` gives it (a driven run whose process is gone is
    interrupted), and their rounds in all: one query and one look per live-or-dead executor,
    however many runs (`/metrics`)."""
    by_status: Counter[str] = Counter()
    rounds = 0
    for tally in Store().run_tally():
        status = tally.status
        if status in DRIVEN and tally.executor and not executors.alive(tally.executor):
            status = Status.INTERRUPTED
        by_status[str(status)] += tally.runs
        rounds += tally.rounds
    return by_status, rounds


def get(run_id: str) -> Run:
    return shown(Store().get_run(run_id))


def short_ids(run_ids: list[str]) -> dict[str, str]:
    """The short id of each run, which every verb takes for the whole (`Store.get_run`)."""
    return Store().short_ids(run_ids)


def shown(run: Run, alive: Callable[[str], bool] = executors.alive) -> Run:
    """The run as a person should see it: one that needs a live process to drive it (queued,
    running, merging) whose process is gone is `interrupted` (`resume` or `cancel` it). One
    flock on one lock file (`executors`): reading runs never starts the engine."""
    if run.status in DRIVEN and run.executor and not alive(run.executor):
        return replace(run, status=Status.INTERRUPTED)
    return run


def events(run_id: str, after: int = 0) -> list[Event]:
    store = Store()
    run = store.get_run(run_id)
    return AuditLog(store, Redactor({})).read(run.id, after)


def follow(run_id: str) -> Callable[[], list[Event]]:
    """What reads the run's events written since it last read (every one, the first time):
    for a reader that polls a growing log, each poll reads and checks only what is new."""
    store = Store()
    return AuditLog(store, Redactor({})).cursor(store.get_run(run_id).id).read


def verify(run_id: str) -> Verdict:
    """Check the run's whole audit chain: every event, the links, and the recorded head."""
    store = Store()
    run = store.get_run(run_id)
    return AuditLog(store, Redactor({})).verify(run.id)


def rounds(run_id: str, found: list[Event] | None = None) -> list[dict[str, Any]]:
    """Each round's record (`found`: the run's events, where read already)."""
    found = events(run_id) if found is None else found
    return [e.data for e in found if e.kind == Kind.ROUND]


def findings(run_id: str) -> list[dict[str, Any]]:
    """The latest scan's findings, block first (empty before the scan has run), each with its
    `id` and `accepted`: the acceptance that holds for it on the run's head, or None."""
    found = events(run_id)
    scans = [e for e in found if e.kind == Kind.SCAN]
    if not scans:
        return []
    taken = {a.finding: asdict(a) for a in in_force(found)}
    shown = []
    for data in scans[-1].data["findings"]:
        # The id is derived (`Finding.id`): a scan recorded before ids existed gets it here.
        made = from_json(Finding, data).id
        shown.append({**data, "id": made, "accepted": taken.get(made)})
    return shown


def handoff_text(run: Run, apart: bool = False) -> str | None:
    """The run's handoff in markdown, rendered from its record (`handoff.json`); a run that
    failed before its handoff could be written has a short note in markdown alone. `apart`:
    the reader shows the findings and the agent's notes itself (`handoff.markdown`)."""
    store = Store()
    try:
        # The note is kept only when a run's last handoff could not be made: an earlier
        # round's record, still kept, is not the run's last word.
        note = store.get_artifact(run.id, artifacts.NOTE)
        record = None if note is not None else artifacts.handoff_of(store, run.id, run.handoff)
    finally:
        store.close()
    if note is not None:
        return note.decode(errors="replace")
    if record is not None:
        from jackline.api.attempts import comparison_markdown

        compared = comparison_markdown(run)  # read now: the others move on
        return handoff.markdown(record, apart) + ("\n" + compared if compared else "")
    if run.handoff and Path(run.handoff).exists():  # a run made before handoffs were stored
        return Path(run.handoff).read_text()
    return None


@dataclass(frozen=True)
class RoundChange:
    """What a run's last round changed since the round before it committed."""

    previous: str
    """The head of the round before."""
    head: str
    since_round: int
    """The agent round that committed `previous`."""
    text: str | None
    """`git diff --stat --patch previous head`; None where it cannot be read."""
    main_moved: bool
    """Main moved between the two (the round started on it): its changes are in `text` too."""
    error: str = ""


def round_change(run: Run, found: list[Event] | None = None) -> RoundChange | None:
    """The change between the run's last two committed heads (None before a second): kept by
    the commit step, or for a run committed before it kept them, read from the repository
    with git (never from the workspace). `found`: the run's events, where read already."""
    found = events(run.id) if found is None else found
    heads: list[tuple[str, int, int]] = []  # (sha, round, seq), one per distinct head
    latest = 0
    for e in found:
        if e.kind == Kind.ROUND:
            latest = int(e.data.get("round", latest))
        elif e.kind == Kind.COMMIT and (not heads or heads[-1][0] != e.data.get("sha")):
            heads.append((str(e.data.get("sha", "")), latest, e.seq))
    if len(heads) < 2 or heads[-1][0] != run.head_sha:
        return None
    (previous, since, at), head = heads[-2], heads[-1][0]
    moved = any(e.kind == Kind.ONTO_MAIN and e.seq > at for e in found)
    kept = artifact(run.id, artifacts.round_change(head))
    if kept is not None:
        return RoundChange(previous, head, since, kept.decode(errors="replace"), moved)
    try:
        text = git_change(run, previous, head)
    except (CommandFailed, NotFound, OSError) as e:  # the repository moved or lost the commits
        return RoundChange(previous, head, since, None, moved, f"cannot show it: {e}")
    return RoundChange(previous, head, since, text, moved)


def git_change(run: Run, base: str, head: str) -> str:
    """`git diff --stat --patch base head`, read from the run's repository (never its
    workspace): for what was committed before the commit step kept its changes."""
    args = ("diff", "--no-color", "--no-ext-diff", "--stat", "--patch", base, head)
    return g.git(repositories.local(run.repo), *args, strip=False)


def comments(run_id: str) -> list[Comment]:
    """People's comments on lines of the run's change, every head's, oldest first."""
    return Store().comments(run_id)


def handoff_record(run: Run) -> handoff.Handoff | None:
    """The run's handoff record (the agent's notes, where to look twice, ...), or None before
    one was kept (or for a run whose last handoff could not be made: see `handoff_text`)."""
    store = Store()
    try:
        if store.get_artifact(run.id, artifacts.NOTE) is not None:
            return None
        return artifacts.handoff_of(store, run.id, run.handoff)
    finally:
        store.close()


def change_text(run: Run) -> str | None:
    """The change the run committed (base to head, `--stat --patch`) as the commit step kept
    it, redacted; None before a commit (or for a run committed before changes were kept)."""
    data = artifact(run.id, artifacts.CHANGE)
    return data.decode(errors="replace") if data is not None else None


def artifact(record_id: str, name: str) -> bytes | None:
    """A kept artifact of a run or release (`jackline.artifacts`), or None."""
    store = Store()
    try:
        return store.get_artifact(record_id, name)
    finally:
        store.close()


def artifact_text(record_id: str, name: str) -> str | None:
    """A kept artifact as text (a log: `round-1/test.log`, `deploy-staging.log`), or None
    (for what the harness keeps for itself too: its work's bundles are no text to show)."""
    data = artifact(record_id, name) if artifacts.readable(name) else None
    return data.decode(errors="replace") if data is not None else None


def artifact_names(record_id: str) -> list[str]:
    """The names of what a run or release kept, in order."""
    store = Store()
    try:
        return [n for n in store.artifact_names(record_id) if artifacts.readable(n)]
    finally:
        store.close()


def as_json(run: Run) -> dict[str, Any]:
    """The run as `--json` prints it and `/api/runs` answers: its fields, as `Run` says each
    is sent (`models.to_json`)."""
    return to_json(run)
