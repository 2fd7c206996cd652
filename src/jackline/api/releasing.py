"""Releases: started by a person, driven by the engine, go, abort and rollback."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ulid import ULID

from jackline import auth
from jackline import config as cfg
from jackline import git as g
from jackline.errors import CommandFailed, ConfigError, Invalid, NotFound, Refused, WrongState
from jackline.events import Kind
from jackline.guard.audit import AuditLog, Event
from jackline.guard.redact import Redactor, resolve
from jackline.models import (
    RELEASE_FINAL,
    RELEASE_WAITS,
    Probe,
    Release,
    ReleaseDecision,
    ReleaseStatus,
    to_json,
)
from jackline.store import Store
from jackline.verbs import OnEvent

if TYPE_CHECKING:
    from jackline.release.carried import Carrying


from jackline.api.submission import record_claim, who


def release(
    repo: Path,
    sha: str | None = None,
    by: str | None = None,
    force: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
) -> Release:
    """Start a release of `sha` (default: the tip of main) and drive it until it waits for a
    person's go or ends. A commit whose release was rolled back needs `force`, a reason.

    Main, the config and the deploy scripts are the released commit's, never the working
    tree's: the user may have an agent's branch checked out (`release.tree`)."""
    from jackline.release import tree

    root = g.toplevel(repo)
    sha = _main_commit(root, tree.main_branch(root), sha)
    config = tree.config_at(root, sha)
    starter = who(config, by, claimed, action="release")
    production = _production(root, config)
    store = Store()
    busy = [r for r in store.list_releases(str(root)) if r.status not in RELEASE_FINAL]
    if busy:
        raise WrongState(
            f"{busy[0].id} is {busy[0].status}; one release at a time: "
            f"`jackline go {busy[0].id}` or `jackline abort {busy[0].id}` first"
        )
    bad = store.unpromotable(str(root), sha)
    if bad and not (force or "").strip():
        raise WrongState(
            f"{sha[:10]} is not promotable: {bad.id} was rolled back ({bad.reason}); "
            "release it anyway with --force REASON"
        )
    for env_name, env in config.release.environments.items():
        for name, ref in env.secrets.items():
            resolve(ref, f"{root / cfg.FILENAME}: release.environments.{env_name}.secrets.{name}")
    live = store.live(str(root), production)
    previous = live["sha"] if live else None
    kind, run_id = _author(root, previous, sha)
    now = time.time()
    rel = Release(
        id=f"rel-{str(ULID()).lower()}",
        repo=str(root),
        sha=sha,
        status=ReleaseStatus.QUEUED,
        started_by=starter.name,
        created_at=now,
        updated_at=now,
        previous_sha=previous,
        author_kind=kind,
        run_id=run_id,
        forced_reason=(force or "").strip() if bad else "",
    )
    store.insert_release(rel)
    AuditLog(store, Redactor.from_environment()).record(
        rel.id,
        Kind.RELEASE_STARTED,
        sha=sha,
        **starter.record(),
        previous_sha=previous,
        author_kind=kind,
        run=run_id,
        forced=rel.forced_reason,
        config=cfg.recorded(config),
    )
    from jackline import engine

    engine.start_release(rel.id)
    engine.drive_release(rel.id, on_event)
    return store.get_release(rel.id)


def _committed_config(root: Path) -> cfg.JacklineConfig:
    """Main's `jackline.toml` as committed: release verbs never read the working tree's."""
    from jackline.release import tree

    return tree.config_at(root, f"refs/heads/{tree.main_branch(root)}")


def _production(root: Path, config: cfg.JacklineConfig) -> str:
    if not config.release.environments:
        raise ConfigError(
            str(root / cfg.FILENAME),
            [
                "release.environments: none configured; add [release.environments.production] "
                "with a `deploy` command (the last environment written is production) and "
                "commit it: a release reads jackline.toml as committed, never the working tree's"
            ],
        )
    return list(config.release.environments)[-1]


def _main_commit(root: Path, main: str, sha: str | None) -> str:
    wanted = sha or f"refs/heads/{main}"
    try:
        full = g.rev(root, wanted)
    except Exception:
        raise NotFound(f"{wanted!r} is not a commit in {root}") from None
    if not g.ok(root, "merge-base", "--is-ancestor", full, f"refs/heads/{main}"):
        raise Invalid(f"{full[:10]} is not on {main}; a release takes a commit of {main}")
    return full


def _author(
    root: Path, live_sha: str | None, sha: str
) -> tuple[Literal["agent", "person"], str | None]:
    """`agent` (with the newest run id) when a commit since the live release carries a
    `Jackline-Run:` trailer; else `person`."""
    span = f"{live_sha}..{sha}" if live_sha else sha
    out = g.git(root, "log", "--format=%(trailers:key=Jackline-Run,valueonly,separator=%x2C)", span)
    ids = [x.strip() for line in out.splitlines() for x in line.split(",") if x.strip()]
    return ("agent", ids[0]) if ids else ("person", None)


def releases(repo: Path | None = None, limit: int = 100) -> list[Release]:
    """The ledger, newest first (every repository's, unless `repo` is given)."""
    return Store().list_releases(str(g.toplevel(repo)) if repo else None, limit)


def release_get(release_id: str) -> Release:
    return Store().get_release(release_id)


def release_probes(release_id: str) -> list[Probe]:
    store = Store()
    return store.probes(store.get_release(release_id).id)


def release_events(release_id: str, after: int = 0) -> list[Event]:
    store = Store()
    rel = store.get_release(release_id)
    return AuditLog(store, Redactor({})).read(rel.id, after)


def live(repo: Path) -> dict[str, dict[str, Any] | None]:
    """What each environment serves now: release id, sha, since (None before the first)."""
    root = g.toplevel(repo)
    config = _committed_config(root)
    store = Store()
    return {env: store.live(str(root), env) for env in config.release.environments}


def release_figures(repo: Path | None = None) -> list[dict[str, Any]]:
    """Change failure rate and time to restore, for agent and for person changes."""
    from jackline.release import stats

    where = str(g.toplevel(repo)) if repo is not None else None
    return [
        {
            "kind": f.kind,
            "to_production": f.to_production,
            "rolled_back": f.rolled_back,
            "change_failure_rate": f.failure_rate,
            "median_restore_seconds": f.median_restore,
            "summary": stats.describe(f),
        }
        for f in stats.figures(Store(), where)
    ]


def release_carries(release_id: str) -> Carrying:
    """The changes the release carries to production, who wrote each, and what was said of
    them before (`release.carried`), read from its repository."""
    from jackline.release import carried

    store = Store()
    rel = store.get_release(release_id)
    return carried.carried(Path(rel.repo), rel, store)


def release_as_json(rel: Release, detail: bool = False) -> dict[str, Any]:
    data = to_json(rel)
    if detail:
        try:
            data["carries"] = asdict(release_carries(rel.id))
        except (CommandFailed, OSError):  # the repository moved or lost the commits
            data["carries"] = None
        data["probes"] = [asdict(p) for p in release_probes(rel.id)]
        data["events"] = [
            {"seq": e.seq, "ts": e.ts, "kind": e.kind, "data": e.data}
            for e in release_events(rel.id)
            if e.kind != Kind.RELEASE_STARTED
        ]
    return data


def go(
    release_id: str,
    by: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
) -> Release:
    """A person's go for a release waiting for it (or paused on an inconclusive probe)."""
    from jackline.release import steps

    store = Store()
    rel = store.get_release(release_id)
    refusal = _go_state_refusal(rel)
    if refusal:
        raise WrongState(refusal)
    config = steps.ReleaseContext(rel.id, store).config
    person = who(config, by, claimed, action="go")
    refusal = steps.go_refusal(rel, config, person.name)
    if refusal:
        raise Refused(refusal)
    record_claim(rel.id, "go", person)
    return _send_release(rel, ReleaseDecision("go", person.name), on_event)


def _go_state_refusal(rel: Release) -> str | None:
    if rel.status not in RELEASE_WAITS:
        return (
            f"{rel.id} is {rel.status}; go is for a release awaiting go or paused on an "
            "inconclusive probe"
        )
    return None


def go_refusal(release_id: str, person: auth.Principal) -> str | None:
    """Why `person` may not say go for the release now, or None: the role every surface
    checks, then the rules `go` enforces (its status; the starter, where `[release]
    allow_self_go` is off), so a page's disabled button gives the verb's own reason."""
    from jackline.release import steps

    if not person.may("go"):
        return (
            f"You are signed in as {person.name}, a {person.role}: go needs the "
            f"{auth.ACTIONS['go']} role"
        )
    store = Store()
    rel = store.get_release(release_id)
    refusal = _go_state_refusal(rel)
    if refusal:
        return refusal
    return steps.go_refusal(rel, steps.ReleaseContext(rel.id, store).config, person.name)


def abort(
    release_id: str,
    by: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
) -> Release:
    """Stop a release at its wait, or where it is: one sent during a deploy or its probes stops
    it before the next deploy. Production is left as it was: a release stopped after
    production's deploy is rolled back (a first one taken down by production's `rollback`
    command; where it cannot be, it stays live, and the ledger says so)."""
    from jackline.release import steps

    store = Store()
    rel = store.get_release(release_id)
    if rel.status in RELEASE_FINAL:
        raise WrongState(f"{rel.id} is {rel.status}; there is nothing to abort")
    person = who(steps.ReleaseContext(rel.id, store).config, by, claimed, action="go")
    record_claim(rel.id, "abort", person)
    return _send_release(rel, ReleaseDecision("abort", person.name), on_event)


def _send_release(rel: Release, decision: ReleaseDecision, on_event: OnEvent | None) -> Release:
    from jackline import engine

    engine.send_release(rel.id, decision)
    engine.drive_release(rel.id, on_event, after_message=True)
    return Store().get_release(rel.id)


def rollback(
    repo: Path,
    to: str | None = None,
    by: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
) -> Release:
    """Put production back to the release live before the current one (or to release `to`).
    The release rolled back is marked not promotable. Returns it."""
    from jackline import engine

    root = g.toplevel(repo)
    config = _committed_config(root)
    person = who(config, by, claimed, action="release")
    production = _production(root, config)
    store = Store()
    now_live = store.live(str(root), production)
    if now_live is None:
        raise WrongState(f"nothing is live in {production} yet; there is nothing to roll back")
    moving = [
        r
        for r in store.list_releases(str(root))
        if r.status not in RELEASE_FINAL and r.status not in RELEASE_WAITS
    ]
    if moving:
        raise WrongState(f"{moving[0].id} is {moving[0].status}; roll back once it rests")
    current = store.get_release(now_live["release_id"])
    target = _rollback_target(store, str(root), production, now_live["sha"], to)
    seen = max((e.seq for e in release_events(current.id)), default=0)
    record_claim(current.id, "rollback", person)
    workflow_id = engine.start_rollback(current.id, target.sha, person.name)
    engine.drive_rollback(workflow_id, on_event, after=seen)
    return store.get_release(current.id)


def _rollback_target(
    store: Store, repo: str, production: str, live_sha: str, to: str | None
) -> Release:
    history = store.live_history(repo, production, limit=1000)
    if to:
        target = store.get_release(to)
        if target.repo != repo or target.sha == live_sha:
            raise Invalid(f"{target.id} is not an earlier release of {repo}'s {production}")
        if not any(row["sha"] == target.sha for row in history):
            raise Invalid(f"{target.id} was never live in {production}; roll back to one that was")
        if not target.promotable:
            raise Invalid(f"{target.id} was rolled back itself; pick another (`jackline releases`)")
        return target
    for row in history:
        candidate = store.get_release(row["release_id"])
        if row["sha"] != live_sha and candidate.promotable:
            return candidate
    raise WrongState(f"no earlier release was live in {production}; there is nothing to go back to")
