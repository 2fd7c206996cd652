"""Submitting a run: who asks, the config it is judged by, its record and its workflow."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ulid import ULID

from jackline import auth, blueprints, executors, repos
from jackline import config as cfg
from jackline import git as g
from jackline.errors import ConfigError, Interrupted, NotFound, Refused, WrongState
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor, resolve
from jackline.models import Origin, Run, Status
from jackline.store import Store
from jackline.verbs import OnEvent

if TYPE_CHECKING:
    pass


def who(
    config: cfg.JacklineConfig,
    by: str | None,
    claimed: str | None = None,
    action: str = "decide",
) -> auth.Identity:
    """`by` is a name a surface authenticated (a token, a signed Slack or GitHub request).
    Without one it is the person at this machine: the OS user, or the name `--as` (`claimed`) or
    JACKLINE_USER gives, only where the project's `[review] allow_as` lets the command line
    claim to be someone else (recorded as a claim). In team mode it is the person the
    command line's JACKLINE_TOKEN stands for, if their role allows `action`."""
    if by is not None:
        return auth.Identity(by)
    return auth.local(config.review.allow_as, claimed, action)


def record_claim(stream: str, action: str, person: auth.Identity) -> None:
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
    repo: Path | str,
    agent: str | None = None,
    blueprint: str | None = None,
    by: str | None = None,
    wait: bool = True,
    on_event: OnEvent | None = None,
    follow_up: str | None = None,
    origin: Origin = Origin.AUTOMATIC,
    priority: int = 0,
    attempts: str = "",
) -> Run:
    """Record a run and start its workflow; with `wait`, drive it until it rests. In team
    mode the workflow is enqueued for a worker, and `wait` follows it. A `follow_up` run's
    release failure (rolled back in production) is added to the task. `attempts` names the
    group of parallel attempts the run is one of (`submit_attempts`). `repo` is a path, or a
    URL (`repos`) that any worker resolves to a clone of its own.

    `origin` says whether a person typed it: only a surface where one does says so (the
    command line, the web page, Slack); anything else is automatic and waits behind people's
    runs on a team's queue by `[queue] automatic`. `priority` is added (lower goes first)."""
    if not task.strip():
        raise Refused("the task is empty; say what the agent should do")
    if follow_up is not None:
        task = _follow_up_task(task, follow_up)
    recorded, root, config = _repository(repo)
    submitter = who(config, by, action="submit")
    agent_name = agent or "default"
    # Read once, here, and recorded with the run: the blueprint a run walks is never changed
    # under it (by a person, or by an agent editing the repository's blueprint files).
    bp = blueprints.load(root, blueprint or config.blueprint.name)
    for name in (agent_name, *bp.agents()):
        _usable_agent(root, config, name)
    from jackline import budgets

    daily = config.budget.daily_spend
    if daily is not None:
        spent = Store().spend_since(recorded, budgets.day_start())
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
        repo=recorded,
        agent=agent_name,
        blueprint=bp.name,
        status=Status.QUEUED,
        branch=f"agent/{_slug(task)}-{ulid[-6:]}",
        submitted_by=submitter.name,
        created_at=now,
        updated_at=now,
        # The process that will start its workflow: if it dies before it does, `resume`
        # sees by this executor's lock that nobody will, and starts it (`_stranded`). In team
        # mode a worker writes itself down when it takes the run; until then nobody drives it,
        # and a worker's sweep enqueues a run recorded but never enqueued.
        executor=None if executors.team() else executors.claim(),
        attempts=attempts,
        priority=priority + (config.queue.automatic if origin == Origin.AUTOMATIC else 0),
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
        origin=str(origin),
        priority=run.priority,
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
        raise following_stopped([run_id]) from None
    return store.get_run(run_id)


RETRIED = frozenset({Status.FAILED, Status.BLOCKED, Status.OVER_BUDGET})
"""The runs a person may try again as a new run: those whose agent could not bring them to
review (a blocked one is retried, or sent back with `request_changes`)."""


def retry(
    run_id: str,
    agent: str | None = None,
    message: str = "",
    by: str | None = None,
    wait: bool = True,
    on_event: OnEvent | None = None,
) -> Run:
    """Try a failed, blocked or over-budget run again: a new run of its task on its repository
    and blueprint, by `agent` (default: the same), whose task says how the earlier one ended and
    carries the person's `message` (what should go differently). The earlier run's log records
    who retried it, as which run, and the words; the earlier run itself stays as it ended."""
    store = Store()
    earlier = store.get_run(run_id)
    if earlier.status not in RETRIED:
        raise WrongState(
            f"{earlier.id} is {earlier.status}: only a failed, blocked or over-budget run is "
            "retried (one awaiting review takes request-changes)"
        )
    redact = Redactor.from_environment()
    said = redact(message.strip())
    run = submit(
        _retry_task(earlier, said),
        earlier.repo,
        agent or earlier.agent,
        earlier.blueprint,
        by=by,
        wait=False,
        origin=Origin.PERSON,
    )
    AuditLog(store, redact).record(
        earlier.id, Kind.RETRIED, run=run.id, agent=run.agent, by=run.submitted_by, message=said
    )
    if not wait:
        return run
    from jackline import engine

    try:
        engine.drive([run.id], on_event)
    except KeyboardInterrupt:  # the run goes on from where it is once resumed
        raise following_stopped([run.id]) from None
    return store.get_run(run.id)


def _retry_task(earlier: Run, message: str) -> str:
    why = f": {earlier.reason.strip()}" if earlier.reason.strip() else ""
    task = (
        f"{earlier.task.strip()}\n\nThis tries again {earlier.id}, which the agent "
        f"{earlier.agent} left {earlier.status}{why}"
    )
    return f"{task}\n\nWhat should go differently this time: {message}" if message else task


def following_stopped(run_ids: list[str]) -> Interrupted:
    """Ctrl-C while following runs: in team mode the workers go on with them."""
    if executors.team():
        return Interrupted(run_ids, detached=True, where="on the workers")
    return Interrupted(run_ids)


def _repository(repo: Path | str) -> tuple[str, Path, cfg.JacklineConfig]:
    """What the run records as its repository, its working tree here, and the config read from
    it. A path: the repository's top folder, read as it is (today's working tree). A URL: this
    machine's clone at the remote's main, the branch `[project] main` names in the
    `jackline.toml` found on the remote's default branch."""
    if not repos.is_url(repo):
        root = g.toplevel(Path(repo))
        return str(root), root, cfg.load(root)
    url = str(repo)
    root = repos.synced(url)
    config = cfg.load(root)
    if g.current_branch(root) != config.project.main:
        root = repos.synced(url, config.project.main)
        config = cfg.load(root)
    return url, root, config


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


def recorded_config(store: Store, run_id: str) -> cfg.JacklineConfig:
    """The config the run recorded when it was submitted: the one its rules come from."""
    submitted = store.events(run_id, kind=Kind.SUBMITTED)
    return cfg.from_record(json.loads(submitted[0].data)["config"])
