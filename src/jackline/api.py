"""The verbs. Every surface (CLI now; web, Slack, MCP later) parses its input, calls one function
here, and renders the answer. Policy lives here and below, never in a surface.

The engine (and with it DBOS) is imported only by the verbs that drive a workflow, so reading
runs stays fast and works without the engine.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ulid import ULID

from jackline import auth, blueprints, executors, handoff
from jackline import config as cfg
from jackline import git as g
from jackline.errors import ConfigError, Interrupted, NotFound, Refused
from jackline.events import Kind
from jackline.forge import local as forge
from jackline.guard.audit import AuditLog, Event, Verdict
from jackline.guard.redact import Redactor, resolve
from jackline.models import (
    DECIDING,
    DRIVEN,
    FINAL,
    RELEASE_FINAL,
    RELEASE_WAITS,
    Decision,
    Probe,
    Release,
    ReleaseStatus,
    Run,
    Status,
    Token,
    to_json,
)
from jackline.review import owner_refusal
from jackline.store import Store
from jackline.verbs import OnEvent
from jackline.workspaces import remove as remove_workspace

if TYPE_CHECKING:
    from jackline.health import Item, Report


def who(config: cfg.JacklineConfig, by: str | None, claimed: str | None = None) -> auth.Identity:
    """`by` is a name a surface authenticated (a token, a signed Slack or GitHub request).
    Without one it is the person at this machine: the OS user, or the name `--as` (`claimed`) or
    JACKLINE_USER gives, only where the project's `[review] allow_as` lets the command line
    claim to be someone else (recorded as a claim)."""
    return auth.Identity(by) if by is not None else auth.local(config.review.allow_as, claimed)


def _claim(stream: str, action: str, person: auth.Identity) -> None:
    """A claimed identity is written down, with who claimed it, before the action it names."""
    if person.claimed_by:
        AuditLog(Store(), Redactor({})).record(stream, Kind.CLAIM, action=action, **person.record())


def validate(repo: Path) -> tuple[cfg.JacklineConfig, list[str]]:
    """The config, checked as a run will need it (`preflight`): refused with every problem
    when one would fail a run; else the warnings (what only set-up can still make true)."""
    from jackline import preflight

    root = g.toplevel(repo)
    config = cfg.load(root)
    problems = preflight.check(root, config)
    if any(p.error for p in problems):
        shown = [p.render() if p.error else f"(warning) {p.render()}" for p in problems]
        raise ConfigError(str(root / cfg.FILENAME), shown)
    return config, [p.render() for p in problems]


def submit(
    task: str,
    repo: Path,
    agent: str | None = None,
    blueprint: str | None = None,
    by: str | None = None,
    wait: bool = True,
    on_event: OnEvent | None = None,
    follow_up: str | None = None,
) -> Run:
    """Record a run and start its workflow; with `wait`, drive it until it rests. A
    `follow_up` run's release failure (rolled back in production) is added to the task."""
    if not task.strip():
        raise Refused("the task is empty; say what the agent should do")
    if follow_up is not None:
        task = _follow_up_task(task, follow_up)
    root = g.toplevel(repo)
    config = cfg.load(root)
    submitter = who(config, by)
    agent_name = agent or "default"
    # Read once, here, and recorded with the run: the blueprint a run walks is never changed
    # under it (by a person, or by an agent editing the repository's blueprint files).
    bp = blueprints.load(root, blueprint or config.blueprint.name)
    for name in (agent_name, *bp.agents()):
        _usable_agent(root, config, name)
    from jackline import budgets

    daily = config.budget.daily_spend
    if daily is not None:
        spent = Store().spend_since(str(root), budgets.day_start())
        if spent >= daily:
            raise Refused(budgets.daily_refusal(daily, spent))
    if config.sandbox.mode == "bubblewrap":
        from jackline.sandbox import bubblewrap

        bubblewrap.check()  # refuses, saying how to install it, where it cannot start
    try:
        g.rev(root, config.project.main)
    except Exception:
        raise ConfigError(
            str(root / cfg.FILENAME),
            [f"project.main: branch {config.project.main!r} has no commit in {root}"],
        ) from None
    ulid = str(ULID()).lower()
    run_id = f"run-{ulid}"
    now = time.time()
    run = Run(
        id=run_id,
        task=task.strip(),
        repo=str(root),
        agent=agent_name,
        blueprint=bp.name,
        status=Status.QUEUED,
        branch=f"agent/{_slug(task)}-{ulid[-6:]}",
        submitted_by=submitter.name,
        created_at=now,
        updated_at=now,
        # The process that will start its workflow: if it dies before it does, `resume`
        # sees by this executor's lock that nobody will, and starts it (`_stranded`).
        executor=executors.claim(),
    )
    store = Store()
    # The submission (with the config the run follows) is written before the record, so any
    # run that exists can be started from what it recorded.
    AuditLog(store, Redactor.from_environment()).record(
        run_id,
        Kind.SUBMITTED,
        task=run.task,
        agent=agent_name,
        blueprint=bp.name,
        **submitter.record(),
        config=cfg.recorded(config),
        blueprint_spec=blueprints.recorded(bp),
    )
    store.insert_run(run)
    from jackline import engine

    try:
        engine.start(run_id, bp.name, config.blueprint.max_rounds)
        if wait:
            engine.drive([run_id], on_event)
    except KeyboardInterrupt:  # the run goes on from where it is once resumed
        raise Interrupted([run_id]) from None
    return store.get_run(run_id)


def _usable_agent(root: Path, config: cfg.JacklineConfig, name: str) -> None:
    """Refuse an agent the run would use (its own, or one a blueprint's step names) that is
    not configured, whose secrets do not resolve, or whose program is missing."""
    from jackline import agents

    if name not in config.agents:
        if not config.agents:
            raise ConfigError(
                str(root / cfg.FILENAME),
                ["agents: no agent configured; add [agents.default] with a command"],
            )
        known = ", ".join(sorted(config.agents))
        raise NotFound(f"no agent {name!r} in {root / cfg.FILENAME}; configured: {known}")
    for key, ref in config.agents[name].secrets.items():
        resolve(ref, f"{root / cfg.FILENAME}: agents.{name}.secrets.{key}")
    agents.check_available(config.agents[name])  # a missing program: refused, with how


def _follow_up_task(task: str, run_id: str) -> str:
    from jackline.release.steps import feedback_for

    earlier = Store().get_run(run_id)
    feedback = feedback_for(earlier.id)
    if feedback is None:
        raise Refused(f"{earlier.id} has no rolled-back release to follow up")
    return (
        f"{task.strip()}\n\nThis follows up {earlier.id} ({earlier.task.splitlines()[0]}), "
        f"whose change reached production and was rolled back:\n\n{feedback}"
    )


def _slug(task: str) -> str:
    words = re.findall(r"[a-z0-9]+", task.lower())
    slug = ""
    for w in words:
        if len(slug) + len(w) + 1 > 40:
            break
        slug = f"{slug}-{w}" if slug else w
    return slug or "task"


# reading ----------------------------------------------------------------------------------


def runs(status: str | None = None, limit: int = 100) -> list[Run]:
    """Runs, newest first, as `shown`; `status` keeps one (`interrupted` included)."""
    if status == Status.INTERRUPTED:
        found = [shown(r) for r in Store().list_runs(None, 100_000) if r.status in DRIVEN]
        return [r for r in found if r.status == status][:limit]
    found = [shown(r) for r in Store().list_runs(status, limit)]
    return [r for r in found if r.status == status] if status else found


def get(run_id: str) -> Run:
    return shown(Store().get_run(run_id))


def short_ids(run_ids: list[str]) -> dict[str, str]:
    """The short id of each run, which every verb takes for the whole (`Store.get_run`)."""
    return Store().short_ids(run_ids)


def shown(run: Run) -> Run:
    """The run as a person should see it: one that needs a live process to drive it (queued,
    running, merging) whose process is gone is `interrupted` (`resume` or `cancel` it). One
    flock on one lock file (`executors`): reading runs never starts the engine."""
    if run.status in DRIVEN and run.executor and not executors.alive(run.executor):
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


def rounds(run_id: str) -> list[dict[str, Any]]:
    return [e.data for e in events(run_id) if e.kind == Kind.ROUND]


def findings(run_id: str) -> list[dict[str, Any]]:
    """The latest scan's findings, block first (empty before the scan has run)."""
    scans = [e.data for e in events(run_id) if e.kind == Kind.SCAN]
    return list(scans[-1]["findings"]) if scans else []


def handoff_text(run: Run) -> str | None:
    """The run's handoff in markdown, rendered from its record (`handoff.json`); a run that
    failed before its handoff could be written has a short note in markdown alone."""
    record = handoff.load(run.handoff)
    if record is not None:
        return handoff.markdown(record)
    if run.handoff and Path(run.handoff).exists():
        return Path(run.handoff).read_text()
    return None


def as_json(run: Run) -> dict[str, Any]:
    """The run as `--json` prints it and `/api/runs` answers: its fields, as `Run` says each
    is sent (`models.to_json`)."""
    return to_json(run)


# review -----------------------------------------------------------------------------------


def approve(
    run_id: str,
    by: str | None = None,
    message: str = "",
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    """`head`, where a surface knows it, is the commit the person saw (`_on_head`)."""
    run, config = _reviewable(run_id, "approve")
    person = who(config, by, claimed)
    by = person.name
    _on_head(run, head, "approve", by)
    if by == run.submitted_by and not config.review.allow_self_approval:
        raise Refused(
            f"{by} submitted {run.id} and cannot approve it; another person must "
            "(or set [review] allow_self_approval = true)"
        )
    refusal = owner_refusal(run, config, by)
    if refusal:
        blocking = [f for f in findings(run.id) if f["level"] == "block"]
        listed = "; ".join(
            f"{f['rule']} {f.get('file') or ''}{':' + str(f['line']) if f.get('line') else ''}".strip()
            for f in blocking[:5]
        )
        raise Refused(f"{refusal} (findings: {listed})" if listed else refusal)
    with forge.landing(Path(run.repo)):  # a landing under way is no uncommitted change
        refusal = forge.landing_refusal(Path(run.repo), config.project.main)
    if refusal:
        raise Refused(f"cannot merge {run.id}: {refusal}")
    return _decide(run, _decision("approve", person, message), on_event)


def request_changes(
    run_id: str,
    message: str,
    by: str | None = None,
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    if not message.strip():
        raise Refused("say what should change: -m TEXT is the agent's feedback")
    run, config = _reviewable(run_id, "request_changes")
    person = who(config, by, claimed)
    _on_head(run, head, "request_changes", person.name)
    return _decide(run, _decision("request_changes", person, message), on_event)


def reject(
    run_id: str,
    by: str | None = None,
    message: str = "",
    on_event: OnEvent | None = None,
    claimed: str | None = None,
    head: str | None = None,
) -> Run:
    run, config = _reviewable(run_id, "reject")
    person = who(config, by, claimed)
    _on_head(run, head, "reject", person.name)
    return _decide(run, _decision("reject", person, message), on_event)


def _reviewable(run_id: str, kind: str) -> tuple[Run, cfg.JacklineConfig]:
    store = Store()
    run = store.get_run(run_id)
    if run.status == Status.BLOCKED and kind == "approve":
        raise Refused(
            f"{run.id} is blocked: its change holds a secret, and a blocked run is never "
            f"approved. Send it back (`jackline request-changes {run.id} -m TEXT`: the agent is "
            f"told where the secret is) or close it (`jackline reject {run.id}`)"
        )
    if run.status not in DECIDING:
        raise Refused(f"{run.id} is {run.status}; only a run awaiting review takes a decision")
    if run.status == Status.BLOCKED and not _waits(run.id):
        raise Refused(
            f"{run.id} was blocked by an older Jackline, whose blocked runs ended there and take "
            f"no decision; `jackline clean {run.id}` removes its workspace"
        )
    # The rules of this decision (owners, self-approval, allow_as) are the config the run
    # recorded: one the chain no longer vouches for is not believed.
    verdict = AuditLog(store, Redactor({})).verify(run.id)
    if verdict.state == "broken":
        raise Refused(f"{run.id}: no decision on a run whose audit log is {verdict.render()}")
    return run, _recorded_config(store, run.id)


def _on_head(run: Run, head: str | None, kind: str, by: str) -> None:
    """A decision counts for the head the person saw: a round published since (a GitHub
    approval replayed under a new delivery id, a page left open while the run moved on) is not
    what they decided on. The refusal is recorded in the run's log with its reason. `head` is
    None where the surface shows the run as it is now (the CLI); "" for a decision made before
    any round was published."""
    if head is None or head == (run.head_sha or ""):
        return
    reason = (
        f"{by}'s {kind.replace('_', ' ')} was made on {head[:10] or 'no published round'}; "
        f"{run.id} is now at {(run.head_sha or 'no commit')[:10]}: decide on what it shows now"
    )
    AuditLog(Store(), Redactor({})).record(
        run.id, Kind.DECISION_REFUSED, decision=kind, by=by, head=head, reason=reason
    )
    raise Refused(reason)


def _decision(
    kind: Literal["approve", "request_changes", "reject"], person: auth.Identity, message: str
) -> Decision:
    return Decision(kind, person.name, message, claimed_by_os_user=person.claimed_by)


def _decide(run: Run, decision: Decision, on_event: OnEvent | None) -> Run:
    from jackline import engine

    taken = engine.decide(run.id, decision)
    try:
        engine.drive([run.id], on_event, after_decision=taken)
    except KeyboardInterrupt:
        raise Interrupted([run.id]) from None
    return get(run.id)


# cancel -----------------------------------------------------------------------------------

CANCELLABLE = frozenset({Status.QUEUED, Status.RUNNING}) | DECIDING
"""A run that has not ended and is not landing: half a merge is no state to leave main in."""


def cancel(
    run_id: str, by: str | None = None, message: str = "", claimed: str | None = None
) -> Run:
    """End a run that is queued, running (or interrupted) or waiting for a decision, for good:
    who cancels it is recorded first (`by`: see `who`); its workflow is cancelled, so no step
    of it starts again in any process and nothing resumes it; its agent's process group is
    killed; its workspace is kept, its services stopped, and the handoff says cancelled."""
    from jackline import engine, steps

    store = Store()
    run = store.get_run(run_id)
    if run.status in FINAL:
        raise Refused(f"{run.id} is {run.status}; there is nothing to cancel")
    if run.status not in CANCELLABLE:
        raise Refused(
            f"{run.id} is {run.status}: a landing is not stopped half way; it rests by itself "
            f"(or `jackline resume {run.id}` if it was interrupted)"
        )
    person = who(_recorded_config(store, run.id), by, claimed)
    AuditLog(store, Redactor.from_environment()).record(
        run.id, Kind.CANCELLED, **person.record(), message=message, was=shown(run).status
    )
    engine.cancel(run.id)
    reason = f"cancelled by {person.name}" + (f": {message.strip()}" if message.strip() else "")
    steps.cancel(run.id, reason)
    return get(run.id)


# clean ------------------------------------------------------------------------------------


def clean(run_ids: list[str] | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """Remove the workspaces that finished runs keep for inspection (failed, over budget).

    A run that is still live (running, awaiting review, blocked) keeps its workspace; naming one
    is refused.
    """
    store = Store()
    if run_ids:
        runs = [store.get_run(r) for r in run_ids]
        live = [r for r in runs if not _finished(r)]
        if live:
            names = ", ".join(f"{r.id} ({r.status})" for r in live)
            raise Refused(f"{names} still needs its workspace; reject it first")
    else:
        runs = [r for r in store.list_runs(limit=100_000) if _finished(r)]
    removed = []
    for run in runs:
        if not run.workspace or not Path(run.workspace).exists():
            continue
        size = _size(Path(run.workspace))
        removed.append(
            {"run": run.id, "status": run.status, "workspace": run.workspace, "size": size}
        )
        if not dry_run:
            remove_workspace(Path(run.workspace))
            AuditLog(store, Redactor({})).record(run.id, Kind.CLEANUP, removed=run.workspace)
    return removed


def _finished(run: Run) -> bool:
    """Ended, or blocked by an older Jackline whose workflow ended there (`_waits`)."""
    if run.status == Status.BLOCKED and run.workspace and Path(run.workspace).exists():
        return not _waits(run.id)
    return run.status in FINAL


def _waits(run_id: str) -> bool:
    """Whether the run's workflow is still under way, which a blocked run's waits for a
    decision; one of an older Jackline ended when it was blocked."""
    from jackline import engine

    return engine.under_way(run_id)


def _size(path: Path) -> str:
    total = sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    for unit in ("B", "KiB", "MiB"):
        if total < 1024:
            return f"{total:.0f} {unit}"
        total //= 1024
    return f"{total:.0f} GiB"


# the worker --------------------------------------------------------------------------------


def worker(repos: list[Path]) -> list[dict[str, str]]:
    """Start (or take over) the scheduled loops of these repositories in this process."""
    from jackline import engine

    roots = [g.toplevel(r) for r in repos]
    for root in roots:
        cfg.load(root)  # a broken config is an error now, not a failed tick later
    return engine.keep_schedules(roots)


def work_until_stopped() -> None:
    """Block while the workflows run in this process's threads; SIGTERM stops it like Ctrl-C."""
    import signal

    def stop(signo: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return


# the warm pool -----------------------------------------------------------------------------


def pool_warm(
    repo: Path, size: int | None = None, say: Callable[[str], None] = lambda _: None
) -> list[dict[str, Any]]:
    """Fill the pool (`[pool] size`, or `size`) from main's current snapshot."""
    from jackline.workspaces import pool

    root, config, run_setup = pool.setup_for(repo)
    return [asdict(s) for s in pool.warm(root, config, run_setup, size=size, say=say)]


def pool_refresh(repo: Path, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Build (or find) the snapshot for main's tip, then refill the pool for it."""
    from jackline.workspaces import pool

    built, warmed = pool.refresh(*pool.setup_for(repo), say=say)
    return {"snapshot": _snapshot_json(built), "warmed": [asdict(s) for s in warmed]}


def pool_status(repo: Path) -> dict[str, Any]:
    from jackline.workspaces import pool, services, snapshot

    root = g.toplevel(repo)
    config = cfg.load(root)
    origin = str(root.resolve())
    return {
        "repo": origin,
        "size": config.pool.size,
        "snapshots": [_snapshot_json(x) for x in snapshot.list_all() if str(x.origin) == origin],
        "warm": [
            {
                **asdict(x),
                "age": round(time.time() - x.created, 1),
                "services": services.describe(services.running(Path(x.path))),
            }
            for x in pool.slots(root)
        ],
    }


def pool_clear(repo: Path) -> dict[str, Any]:
    """Remove the warm workspaces and every snapshot of this repository no workspace uses."""
    from jackline.workspaces import pool, snapshot

    root = g.toplevel(repo)
    gone = pool.drain(root)
    origin = str(root.resolve())
    removed = []
    for x in snapshot.list_all():
        if str(x.origin) == origin and not snapshot.in_use(x):
            snapshot.remove(x)
            removed.append(x.key)
    return {"warm_removed": [s.id for s in gone], "snapshots_removed": removed}


def _snapshot_json(x: Any) -> dict[str, Any]:
    return {
        "key": x.key,
        "commit": x.commit,
        "path": str(x.path),
        "created": x.created,
        "age": round(time.time() - x.created, 1),
    }


# resume -----------------------------------------------------------------------------------


def resume(run_id: str | None = None, on_event: OnEvent | None = None) -> list[Run]:
    """Drive on the runs whose process died. A run waiting for review waits for a person."""
    from jackline import engine

    store = Store()
    if run_id:
        run = store.get_run(run_id)
        if run.status in FINAL:
            raise Refused(f"{run.id} is {run.status}; there is nothing to resume")
        if run.status == Status.AWAITING_REVIEW:
            raise Refused(f"{run.id} waits for a review: approve, request-changes or reject it")
        if run.status == Status.BLOCKED:
            raise Refused(f"{run.id} is blocked by a secret: request-changes or reject it")
        ids = engine.take_over([run.id]) or _start_stranded([run])
        if not ids:
            raise Refused(f"{run.id} is being driven by a live process")
    else:
        # The engine's interrupted workflows are runs, releases and the worker's schedules;
        # the schedules are the worker's to take over.
        interrupted = engine.interrupted()
        candidates = [
            r
            for r in interrupted
            if r.startswith("run-") and store.get_run(r).status not in DECIDING
        ]
        ids = engine.take_over(candidates) + _start_stranded(
            store.list_runs(Status.QUEUED, 100_000)
        )
        for rel in (r for r in interrupted if r.startswith("rel-")):
            if store.get_release(rel).status not in RELEASE_WAITS and engine.take_over([rel]):
                engine.drive_release(rel, on_event)
        for rollback in (r for r in interrupted if engine.rolled_back_release(r)):
            if engine.take_over([rollback]):
                engine.drive_rollback(rollback, on_event)
    try:
        engine.drive(ids, on_event)
    except KeyboardInterrupt:
        raise Interrupted(ids) from None
    return [store.get_run(i) for i in ids]


def _start_stranded(runs: list[Run]) -> list[str]:
    """Start the workflows of queued runs whose submitter died before it started them: it
    claimed its executor before writing the record, and that executor's lock is gone (a live
    submitter is about to start it). The record and the workflow are writes to two databases;
    this makes them one act, with no guess at how long a submitter may take."""
    from jackline import engine

    store = Store()
    started = []
    for run in runs:
        if run.status != Status.QUEUED or not run.executor or executors.alive(run.executor):
            continue
        rounds = _recorded_config(store, run.id).blueprint.max_rounds
        if engine.start_stranded(run.id, run.blueprint, rounds):
            started.append(run.id)
    return started


def _recorded_config(store: Store, run_id: str) -> cfg.JacklineConfig:
    """The config the run recorded when it was submitted: the one its rules come from."""
    submitted = store.events(run_id, kind=Kind.SUBMITTED)
    return cfg.from_record(json.loads(submitted[0]["data"])["config"])


# flags ------------------------------------------------------------------------------------


def flags_list(repo: Path, env: str | None = None) -> dict[str, Any]:
    """The project's flags: each with its values, the value in force per environment (its own or
    the default), owner, expiry and whether it has expired. With `env`, only that environment."""
    import datetime

    from jackline import flags

    root = g.toplevel(repo)
    config = cfg.load(root)
    found = flags.load(root, config)
    if env is not None:
        flags.check_env(env, config)
    envs = [env] if env else list(config.release.environments) or found.environments()
    today = datetime.date.today()
    return {
        "file": str(flags.path_of(root, config)),
        "environments": envs,
        "flags": [_flag_json(f, envs, today) for f in found],
    }


def _flag_json(flag: Any, envs: list[str], today: Any) -> dict[str, Any]:
    in_force = {e: found[0] for e in envs if (found := flag.value_for(e)) is not None}
    return {
        "name": flag.name,
        "description": flag.description,
        "owner": flag.owner,
        "expires": flag.expires.isoformat(),
        "expired": flag.expired(today),
        "protected": flag.protected,
        "type": flag.type,
        "values": dict(flag.values),
        "in_force": in_force,
    }


def set_flag(
    repo: Path, name: str, value: str, env: str, by: str | None = None, claimed: str | None = None
) -> dict[str, Any]:
    """Set a flag's value in one environment of the working tree's flags.toml (audited)."""
    from jackline import flags

    root = g.toplevel(repo)
    config = cfg.load(root)
    person = who(config, by, claimed)
    change = flags.set_flag(root, config, name, value, env, person.name, config.review.owners)
    _claim(flags.stream_id(root), f"flags set {name} {env}", person)
    return {**asdict(change), "path": str(change.path)}


# health -----------------------------------------------------------------------------------


def health(repo: Path, extra: list[Item] | None = None) -> Report:
    """The morning report for the repository: what `[health]` in its jackline.toml names, the
    runs and releases waiting for a person, and expired flags (`extra`, if given, replaces the
    last two: a surface that has them already)."""
    from jackline import health as h

    root = g.toplevel(repo)
    if extra is None:
        return h.report(root)
    return h.gather(root, cfg.load(root), Store(), extra=list(extra))


# releases ---------------------------------------------------------------------------------


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
    starter = who(config, by, claimed)
    production = _production(root, config)
    store = Store()
    busy = [r for r in store.list_releases(str(root)) if r.status not in RELEASE_FINAL]
    if busy:
        raise Refused(
            f"{busy[0].id} is {busy[0].status}; one release at a time: "
            f"`jackline go {busy[0].id}` or `jackline abort {busy[0].id}` first"
        )
    bad = store.unpromotable(str(root), sha)
    if bad and not (force or "").strip():
        raise Refused(
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
        raise Refused(f"{full[:10]} is not on {main}; a release takes a commit of {main}")
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


def release_as_json(rel: Release, detail: bool = False) -> dict[str, Any]:
    data = to_json(rel)
    if detail:
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
    if rel.status not in RELEASE_WAITS:
        raise Refused(
            f"{rel.id} is {rel.status}; go is for a release awaiting go or paused on an "
            "inconclusive probe"
        )
    config = steps.ReleaseContext(rel.id, store).config
    person = who(config, by, claimed)
    refusal = steps.go_refusal(rel, config, person.name)
    if refusal:
        raise Refused(refusal)
    _claim(rel.id, "go", person)
    return _send_release(rel, {"kind": "go", "by": person.name}, on_event)


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
        raise Refused(f"{rel.id} is {rel.status}; there is nothing to abort")
    person = who(steps.ReleaseContext(rel.id, store).config, by, claimed)
    _claim(rel.id, "abort", person)
    return _send_release(rel, {"kind": "abort", "by": person.name}, on_event)


def _send_release(rel: Release, message: dict[str, str], on_event: OnEvent | None) -> Release:
    from jackline import engine

    engine.send_release(rel.id, message)
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
    person = who(config, by, claimed)
    production = _production(root, config)
    store = Store()
    now_live = store.live(str(root), production)
    if now_live is None:
        raise Refused(f"nothing is live in {production} yet; there is nothing to roll back")
    moving = [
        r
        for r in store.list_releases(str(root))
        if r.status not in RELEASE_FINAL and r.status not in RELEASE_WAITS
    ]
    if moving:
        raise Refused(f"{moving[0].id} is {moving[0].status}; roll back once it rests")
    current = store.get_release(now_live["release_id"])
    target = _rollback_target(store, str(root), production, now_live["sha"], to)
    seen = max((e.seq for e in release_events(current.id)), default=0)
    _claim(current.id, "rollback", person)
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
            raise Refused(f"{target.id} is not an earlier release of {repo}'s {production}")
        if not any(row["sha"] == target.sha for row in history):
            raise Refused(f"{target.id} was never live in {production}; roll back to one that was")
        if not target.promotable:
            raise Refused(f"{target.id} was rolled back itself; pick another (`jackline releases`)")
        return target
    for row in history:
        candidate = store.get_release(row["release_id"])
        if row["sha"] != live_sha and candidate.promotable:
            return candidate
    raise Refused(f"no earlier release was live in {production}; there is nothing to go back to")


# tokens -----------------------------------------------------------------------------------


def token_create(name: str, role: str) -> tuple[Token, str]:
    """A token for `name` with `role` for the server; its secret is returned once, never stored."""
    from jackline import auth

    return auth.create_token(Store(), name, role)


def tokens() -> list[Token]:
    """Every token, revoked ones included (never their secrets)."""
    return Store().list_tokens()


def token_revoke(token_id: str) -> Token:
    """Revoke a token: it stops working on the next request."""
    from jackline import auth

    return auth.revoke(Store(), token_id)
