"""The workflow engine: the only module that imports DBOS.

A run is one DBOS workflow whose id is the run id, so starting the same run twice resumes it
instead of starting a second one. Each step is a DBOS step wrapping a plain function of
`steps`; a step that finished is never run again, even after `kill -9`.

Processes. Every process that launches the engine gets its own executor id and holds a lock file
for it while it lives. A workflow left PENDING by a dead executor is recovered only when a person
asks (`jackline resume`, or a review decision for that run), never as a side effect of an
unrelated command. A run waiting for review is a workflow blocked in `DBOS.recv`: it costs no
process while nobody drives it; the decision is a message, and the process that sends it takes
the workflow over and drives it on: that workflow only, onto a queue of its own that no other
process reads (`take_over`). A decision returns once the workflow has done its work for it: the
workflow says so before it waits again (`rests_key`), or it has ended (`drive`).

Team mode (`executors.team()`: `JACKLINE_DATABASE_URL` names the database every machine shares).
Submitting is enqueueing: a run, a release or a rollback is enqueued on the shared queue `runs`
(its id the workflow's, so enqueueing twice is one workflow), and only workers take work from it
(`claim`); every other process sends and follows (`drive`), never driving a workflow itself. A
worker's liveness is its heartbeat (`executors.Heart`); each live worker sweeps (`sweep`) for
workflows whose executor is dead and puts them back on `runs`, where a live worker claims each
and resumes it from its last finished step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID
from dbos._error import DBOSException
from ulid import ULID

from jackline import (
    __version__,
    blueprints,
    database,
    executors,
    locks,
    paths,
    queueing,
    schedule,
    steps,
)
from jackline import config as cfg
from jackline.events import Kind
from jackline.models import RESTING, Decision, ReleaseDecision, ReleaseStatus, Status
from jackline.release import steps as release_steps
from jackline.store import NEWS, Store

if TYPE_CHECKING:
    from jackline.guard.audit import AuditLog

APP = "jackline"
"""The application's name in the engine's tables: its queues are listed by it."""
REVIEW_TOPIC = "review"
_state: dict[str, Any] = {}


# steps ------------------------------------------------------------------------------------
# A step's outcome is recorded as a plain dict (`StepOutcome.recorded`), never a class: DBOS hands
# a recorded output back when a workflow resumes, perhaps to a later version of Jackline, and the
# workflow reads it as a record where it takes it (`from_recorded`).


@DBOS.step()
def blueprint_step(run_id: str, name: str) -> str:
    return steps.recorded_blueprint(run_id, name)


@DBOS.step()
def prepare_step(run_id: str) -> dict[str, object]:
    return steps.prepare(run_id).recorded()


@DBOS.step()
def hydrate_step(
    run_id: str,
    round_no: int,
    feedback: str | None,
    prompt: str | None = None,
    rounds: int | None = None,
) -> str:
    return steps.hydrate(run_id, round_no, feedback, prompt, rounds)


@DBOS.step()
def agent_step(run_id: str, round_no: int, agent: str | None = None) -> dict[str, object]:
    return steps.agent(run_id, round_no, agent).recorded()


@DBOS.step()
def command_step(run_id: str, spec: dict[str, object], after_round: int) -> dict[str, object]:
    return steps.command(run_id, spec, after_round).recorded()


@DBOS.step()
def budget_step(run_id: str) -> dict[str, object]:
    return steps.budget(run_id).recorded()


@DBOS.step()
def check_step(run_id: str, round_no: int) -> dict[str, object]:
    return steps.check(run_id, round_no).recorded()


@DBOS.step()
def scan_step(run_id: str) -> dict[str, object]:
    return steps.scan(run_id).recorded()


@DBOS.step()
def commit_step(run_id: str) -> str:
    return steps.commit(run_id)


@DBOS.step()
def publish_step(run_id: str) -> bool | None:
    return steps.publish(run_id)


@DBOS.step()
def ci_wait_step(run_id: str) -> dict[str, object]:
    return steps.ci_wait(run_id).recorded()


@DBOS.step()
def ci_look_step(run_id: str, wait: dict[str, object], rounds_left: bool) -> dict[str, object]:
    return steps.ci_look(run_id, steps.CiWait.from_recorded(wait), rounds_left).recorded()


@DBOS.step()
def handoff_step(run_id: str, outcome: Status) -> str:
    return steps.write_handoff(run_id, outcome)


@DBOS.step()
def decision_step(run_id: str, decision: Decision) -> None:
    steps.record_decision(run_id, decision)


@DBOS.step()
def merge_step(run_id: str, decision: Decision) -> dict[str, object]:
    return steps.merge(run_id, decision).recorded()


@DBOS.step()
def finish_step(run_id: str, outcome: Status) -> None:
    steps.finish(run_id, outcome)


@DBOS.step()
def reject_step(run_id: str, decision: Decision) -> None:
    steps.reject(run_id, decision)


@DBOS.step()
def changes_step(run_id: str, decision: Decision) -> str:
    return steps.changes_requested(run_id, decision)


@DBOS.step()
def fail_step(run_id: str, reason: str) -> None:
    steps.fail(run_id, reason)


# the workflow -----------------------------------------------------------------------------


@DBOS.workflow()
def run_workflow(run_id: str, blueprint: str, max_rounds: int) -> str:
    """The blueprint, run; an exception that is no outcome (a bug) fails the run here, with
    its type and message, in whichever process drives it (a server has no CLI to notice)."""
    if executors.team():  # a worker claimed it, or took it over: this one drives it now
        if _status(run_id) == Status.CANCELLED:
            return Status.CANCELLED  # cancelled as it was claimed: nothing of it starts again
        _drive_here([run_id])
    try:
        return _run_blueprint(run_id, blueprint, max_rounds)
    except DBOSException:
        raise  # the engine's own (a cancelled workflow's is not even an Exception)
    except Exception as e:
        if not _state.get("stopping"):  # a process going down is no bug: the run resumes
            fail_step(run_id, error_text(e))
        raise


def _status(run_id: str) -> str:
    store = Store()
    try:
        return store.get_run(run_id).status
    finally:
        store.close()


def error_text(error: object) -> str:
    """An exception as a person reads it: its type and message. DBOS hands back a text where
    it cannot rebuild the exception (its pickle): that text is never shown."""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"[:500]
    return "an error whose record cannot be read back"


def _run_blueprint(run_id: str, blueprint: str, max_rounds: int) -> str:
    """Walk the blueprint the run recorded when it was submitted (read through a step, so a
    replay walks the same one), one step after another, from its workspace to its end."""
    bp = blueprints.from_record(blueprint_step(run_id, blueprint))
    if not steps.PrepareOutcome.from_recorded(prepare_step(run_id)).ok:
        handoff_step(run_id, Status.FAILED)
        return Status.FAILED
    walk = Walk()
    while walk.outcome is None:
        walk = _take(run_id, bp, walk, max_rounds)
    return walk.outcome


@dataclass(frozen=True)
class Walk:
    """Where a walk of a blueprint is, between two of its steps."""

    at: int = 0
    """The index of the step to take next."""
    done: int = 0
    """Agent rounds so far, of every agentic step: each round has a number of its own."""
    used: int = 0
    """Rounds of the last agentic step since a person last sent the work to it (or since it
    began): GitHub's CI sends it back (`_ci`) only within its round limit."""
    feedback: str | None = None
    """For the first round of the next agentic step (a person's, or the scan's)."""
    ok: bool = True
    """Whether the work so far passed. Once it has not, the walk takes no agentic or command
    step: it goes on to the scan (which still reports what the work holds), then fails."""
    outcome: Status | None = None
    """How the run ended, once it has."""


def _take(run_id: str, bp: blueprints.Blueprint, walk: Walk, max_rounds: int) -> Walk:
    step = bp.steps[walk.at]
    then = replace(walk, at=walk.at + 1)
    if isinstance(step, blueprints.AgentStep):
        return _agentic(run_id, step, then, max_rounds) if walk.ok else then
    if isinstance(step, blueprints.CommandStep):
        return replace(then, ok=walk.ok and _command(run_id, step, walk.done))
    if step.kind == "scan":
        return _scan(run_id, bp, then)
    if step.kind == "review":
        return _review(run_id, bp, then)
    if step.kind == "commit":
        commit_step(run_id)
    elif step.kind == "publish" and publish_step(run_id):
        return _ci(run_id, bp, then, max_rounds)
    elif step.kind == "handoff":
        handoff_step(run_id, Status.AWAITING_REVIEW)
    return then


def _agentic(run_id: str, step: blueprints.AgentStep, walk: Walk, max_rounds: int) -> Walk:
    left = (step.rounds or max_rounds) - walk.used
    done, passed = _rounds(run_id, step, walk.done, left, walk.feedback)
    if passed is None:  # a `[budget]` is used up: the work so far waits for a person
        handoff_step(run_id, Status.OVER_BUDGET)
        finish_step(run_id, Status.OVER_BUDGET)
        return replace(walk, done=done, outcome=Status.OVER_BUDGET)
    used = walk.used + done - walk.done
    return replace(walk, done=done, used=used, feedback=None, ok=passed)


def _ci(run_id: str, bp: blueprints.Blueprint, walk: Walk, max_rounds: int) -> Walk:
    """Wait for GitHub's checks on what was just published; a failure goes back to the last
    agentic step as its feedback while its rounds allow, else the run fails with it."""
    agentic = bp.steps[bp.again()]
    assert isinstance(agentic, blueprints.AgentStep)
    rounds_left = walk.used < (agentic.rounds or max_rounds)
    wait = ci_wait_step(run_id)
    poll = steps.CiWait.from_recorded(wait).poll
    while True:
        look = steps.CiOutcome.from_recorded(ci_look_step(run_id, wait, rounds_left))
        if look.state != "pending":
            break
        DBOS.sleep(poll)
    if look.state in ("passed", "none"):
        return walk
    if look.state == "failed" and rounds_left:
        return replace(walk, at=bp.again(), feedback=look.feedback, ok=True)
    handoff_step(run_id, Status.FAILED)
    return replace(walk, outcome=Status.FAILED)


def _command(run_id: str, step: blueprints.Command, after_round: int) -> bool:
    spec = step.model_dump(by_alias=True, exclude={"kind"})
    return steps.CommandOutcome.from_recorded(command_step(run_id, spec, after_round)).passed


def _scan(run_id: str, bp: blueprints.Blueprint, walk: Walk) -> Walk:
    scanned = steps.ScanOutcome.from_recorded(scan_step(run_id))
    if scanned.blocked:  # a secret: never committed, never pushed; a person decides
        handoff_step(run_id, Status.BLOCKED)
        decision = _wait_for_decision(("request_changes", "reject"))
        decision_step(run_id, decision)
        if decision.kind == "reject":
            reject_step(run_id, decision)
            return replace(walk, outcome=Status.REJECTED)
        feedback = steps.secret_feedback(scanned.secrets, decision)
        return replace(walk, at=bp.again(), feedback=feedback, ok=True, used=0)
    if not walk.ok:
        handoff_step(run_id, Status.FAILED)
        return replace(walk, outcome=Status.FAILED)
    return walk


def _review(run_id: str, bp: blueprints.Blueprint, walk: Walk) -> Walk:
    """A person decides: approval merges (a refused merge waits for the next decision), a
    request for changes goes back to the last agentic step, a rejection ends the run."""
    while True:
        decision = _wait_for_decision()
        decision_step(run_id, decision)
        if decision.kind == "reject":
            reject_step(run_id, decision)
            return replace(walk, outcome=Status.REJECTED)
        if decision.kind == "request_changes":
            feedback = changes_step(run_id, decision)  # on the newest main, if it moved
            return replace(walk, at=bp.again(), feedback=feedback, ok=True, used=0)
        if steps.MergeOutcome.from_recorded(merge_step(run_id, decision)).outcome == "merged":
            handoff_step(run_id, Status.MERGED)
            finish_step(run_id, Status.MERGED)
            return replace(walk, outcome=Status.MERGED)


def _rounds(
    run_id: str,
    step: blueprints.AgentStep,
    done: int,
    max_rounds: int,
    feedback: str | None,
) -> tuple[int, bool | None]:
    """At most `max_rounds` agent rounds, each judged by the checks and by what the agent did
    (exited 0, changed something); failures feed the next. Passed, failed, or None when the
    run's budget ran out before a round. An agent that failed without touching a file (not
    logged in, not found) is not run again: another round would fail the same way. The step's
    `before_checks` commands run after each round the agent worked in; one that fails fails
    the step, with its reason."""
    round_no = done
    for round_no in range(done + 1, done + max_rounds + 1):
        if steps.BudgetOutcome.from_recorded(budget_step(run_id)).over:
            return round_no - 1, None
        hydrate_step(run_id, round_no, feedback, step.prompt, step.rounds)
        ran = steps.AgentOutcome.from_recorded(agent_step(run_id, round_no, step.agent)).ran
        if ran and not all(_command(run_id, c, round_no) for c in step.before_checks):
            return round_no, False
        result = steps.CheckOutcome.from_recorded(check_step(run_id, round_no))
        if result.passed:
            return round_no, True
        feedback = result.feedback
        if not ran:
            break
    return round_no, False


def _wait_for_decision(
    kinds: tuple[str, ...] = ("approve", "request_changes", "reject"),
) -> Decision:
    """The next decision of one of `kinds` (a blocked run takes no approval: `api` refuses
    one with its reason, and one sent past it is dropped here).

    Before it waits, the workflow says that the work of the decision it took last is done
    (`rests_key`): the process that sent that decision returns on this (`drive`), never on a
    status that a step sets midway, and never exits under a step still running."""
    workflow = str(DBOS.workflow_id)
    DBOS.set_event(rests_key(_taken.get(workflow, "")), True)
    NEWS.tell()
    while True:  # each wait is durable; a day's timeout only bounds one recorded wait
        decision = DBOS.recv(REVIEW_TOPIC, timeout_seconds=86_400)
        if not isinstance(decision, dict):
            continue
        if decision.get("kind") in kinds:
            _taken[workflow] = str(decision.get("id", ""))
            return Decision.from_message(decision)
        if decision.get("id"):  # dropped: its sender returns, the run waits on
            DBOS.set_event(rests_key(str(decision["id"])), True)
            NEWS.tell()


_taken: dict[str, str] = {}
"""Per workflow, the id of the decision it took last. Deterministic on a replay: each answer of
`recv` comes back recorded, in order, before the wait that follows it."""


def rests_key(decision_id: str) -> str:
    """The workflow event set once the work of a decision is done and the run rests again
    (waits for a person); "" is the submission."""
    return f"rests-after:{decision_id or 'submission'}"


# schedules ---------------------------------------------------------------------------------


@DBOS.step()
def tick_step(kind: str, repo: str) -> int:
    return schedule.tick(kind, repo)


@DBOS.workflow()
def every_workflow(kind: str, repo: str) -> str:
    """Scheduled work for one repository: a tick, then a durable sleep as long as the config
    says, for as long as it says so. A worker that was down resumes the sleep where it was."""
    while (wait := tick_step(kind, repo)) > 0:
        DBOS.sleep(wait)
    return "no longer scheduled"


def keep_schedules(repos: Iterable[Path]) -> list[dict[str, str]]:
    """Start (or take over from a dead worker) each repository's scheduled loops."""
    launch()
    out = []
    for repo in repos:
        config = cfg.load(repo)
        for kind in schedule.KINDS:
            if not schedule.period(kind, config):
                continue
            wf_id = schedule.workflow_id(kind, repo)
            status = DBOS.get_workflow_status(wf_id)
            if status is None or status.status not in ("PENDING", "ENQUEUED"):
                # A loop that ended (its period was removed, or it failed) starts afresh.
                wf_id = f"{wf_id}-{ULID()}" if status is not None else wf_id
                with SetWorkflowID(wf_id):
                    DBOS.start_workflow(every_workflow, kind, str(repo.resolve()))
                state = "started"
            else:
                state = "resumed" if take_over([wf_id]) else "running elsewhere"
            out.append({"kind": kind, "repo": str(repo), "workflow": wf_id, "state": state})
    _state["started"] = True
    return out


# processes --------------------------------------------------------------------------------


def launch(queue: bool = True) -> None:
    """Launch the engine in this process (once). With `queue`, this process's own queue is
    written down first, as a process needs that may take a workflow over at once (a decision,
    a worker). A submitter that starts its run's workflow itself (`start`) has it written down
    only if it ever resumes a workflow onto it (`_own_queue`): about 25 ms off the way to the
    agent."""
    if _state.get("launched"):
        return
    executor = executors.claim()  # a submitter claims it before its run record is written
    url = os.environ.get("JACKLINE_DATABASE_URL") or f"sqlite:///{paths.engine_database()}"
    database.use_wal(url)  # DBOS leaves SQLite's journal as it is
    config: DBOSConfig = {
        "name": APP,
        "system_database_url": url,
        "application_version": __version__,
        "executor_id": executor,
        "log_level": "CRITICAL",  # a workflow error becomes the run's reason, not a screenful
        # On SQLite a workflow waiting for a decision learns of it by polling, and shutting
        # down waits for that poller's sleep: DBOS's default of 1 s was up to a second's delay
        # on every decision and on the exit of every command that launched the engine. The
        # poll is one indexed query per waiting workflow (none when nothing waits).
        "notification_listener_polling_interval_sec": 0.1,
    }
    DBOS(config=config)
    # This process reads its own queue and no other's: a run taken over here (`take_over`) is
    # driven here, and no other process's run is ever adopted by this one. A worker (team
    # mode) claims work from the shared queue onto its own (`claim`).
    DBOS.listen_queues([_queue(executor)])
    if queue:
        _register_early(url, _queue(executor))
    DBOS.launch()
    _state.update(launched=True, executor=executor)
    if queue:
        _own_queue()


def _own_queue() -> str:
    """This process's own queue, written down for the engine first if it is not yet."""
    name = _queue(_state["executor"])
    if not _state.get("queue"):
        DBOS.register_queue(name, polling_interval_sec=QUEUE_POLL)
        _state["queue"] = True
    return name


QUEUE_PREFIX = "jackline-"
QUEUE_POLL = 0.2
"""Seconds between two looks of this process at its queue."""
RUNS_QUEUE = "runs"
"""Team mode's shared queue: runs, releases and rollbacks, enqueued by whoever submits them and
claimed by workers (`claim`)."""


# team mode: workers -------------------------------------------------------------------------
# Workers claim from `runs` themselves rather than let the engine dequeue it: the engine's
# per-worker bound counts every workflow a worker holds, and a run waiting for review holds its
# worker's thread for days (a worker of 4 would stop taking runs after 4 handoffs); and DBOS
# keeps a queue's bound in the database, one for every worker, where machines differ; nor does
# it know a repository's limit, or fair share between repositories. A claim moves the next
# workflows of `runs` (`queueing` orders them) onto the worker's own queue, which only it reads,
# under the database's exclusion: one claim, one worker, and every limit counted by one at once.


def work() -> str:
    """Launch the engine in this process as a worker (team mode). Its heartbeat beats already:
    a workflow it claims is never driven by an executor that looks dead. Returns its executor."""
    launch()
    # The queue is written down for whoever lists queues; no engine reads it (`claim`).
    DBOS.register_queue(RUNS_QUEUE, on_conflict="never_update")
    _state["started"] = True  # workflows run in its threads: it never waits for them at exit
    return str(_state["executor"])


def working() -> list[str]:
    """The workflows this worker works on now: those it claimed or took over that neither
    ended nor wait for a person (a run awaiting review, a release awaiting its go) and are
    no scheduled loop (a sleep, for ever)."""
    launch()
    held = DBOS.list_workflows(
        status=["PENDING", "ENQUEUED"],
        queue_name=_queue(_state["executor"]),
        load_input=False,
        load_output=False,
    )
    store = Store()
    try:
        return [
            wf.workflow_id
            for wf in held
            if not wf.workflow_id.startswith(schedule.PREFIX)
            and not _waits_for_person(store, wf.workflow_id)
        ]
    finally:
        store.close()


def _waits_for_person(store: Store, workflow_id: str) -> bool:
    from jackline.models import DECIDING, RELEASE_WAITS

    if workflow_id.startswith("run-"):
        return store.get_run(workflow_id).status in DECIDING
    if workflow_id.startswith("rel-"):
        return store.get_release(workflow_id).status in RELEASE_WAITS
    return False


def claim(room: int) -> list[str]:
    """Claim up to `room` workflows from `runs` for this worker, in the order of `queueing`
    (each repository's `[queue]` limit, priority, fair share, age): each is moved onto this
    worker's own queue, where its engine starts it at once. Only workflows of this version of
    Jackline (a workflow replays on the code that made it). What is at work is counted under
    the exclusion, from the workflows themselves: a run another worker claimed a moment ago
    counts before any step of it has marked it running."""
    if room < 1:
        return []
    launch()
    if not _waiting():  # the common case: no exclusion taken, nobody held up
        return []
    claimed: list[str] = []
    with _exclusive() as held:
        assert held is not None  # team mode: the shared database's exclusion
        live = DBOS.list_workflows(
            status=["PENDING", "ENQUEUED"],
            workflow_id_prefix=["run-", "rel-", ROLLBACK_PREFIX],  # what workers claim
            load_input=False,
            load_output=False,
        )
        line = queueing.line(held, [_listed(wf) for wf in live])
        while len(claimed) < room and (taken := line.next()) is not None:
            wf = DBOS.get_workflow_status(taken.id)  # as it is now, inside
            if wf is None or wf.status != "ENQUEUED" or wf.queue_name != RUNS_QUEUE:
                continue  # cancelled since it was listed
            DBOS.resume_workflow(wf.workflow_id, queue_name=_own_queue())
            line.took(taken)
            claimed.append(wf.workflow_id)
    return claimed


def _waiting() -> bool:
    """Whether anything on `runs` waits that this version of Jackline can take."""
    waiting = DBOS.list_workflows(
        status="ENQUEUED", queue_name=RUNS_QUEUE, load_input=False, load_output=False
    )
    return any(wf.app_version in (None, __version__) for wf in waiting)


def _listed(wf: Any) -> queueing.Listed:
    waiting = wf.status == "ENQUEUED" and wf.queue_name == RUNS_QUEUE
    takeable = wf.app_version in (None, __version__)
    return queueing.Listed(wf.workflow_id, waiting, takeable, float(wf.created_at or 0))


def _register_early(url: str, name: str) -> None:
    """Write this process's queue down before the engine launches. DBOS looks for the queues
    it should read when it launches and then once a second: a queue registered after launch
    was read a second late, and every decision on a run whose driver had gone (a `jackline
    approve` after `jackline run` returned) waited that second. A database that has no
    tables yet (this machine's first launch) is registered after the launch only."""
    try:
        client = DBOSClient(system_database_url=url)
    except Exception:
        return
    try:
        client.register_queue(name, polling_interval_sec=QUEUE_POLL, application_name=APP)
    except Exception:
        return  # the launch's own registration writes it down
    finally:
        client.destroy()


def _queue(executor: str) -> str:
    return QUEUE_PREFIX + executor


def shutdown() -> None:
    """Stop the engine and wait for its threads (a worker that leaves, a test)."""
    _stop(join=True)


def launched() -> bool:
    return bool(_state.get("launched"))


def leave() -> None:
    """What a command's process does before it ends, instead of `shutdown`: its queue goes and
    its lock file, and the engine's threads end with the process rather than being joined
    one by one (a tenth of a second or more at every command's exit). Nothing is lost: every
    step's result is in the database before the step returns, and a workflow left waiting for a
    person is taken over by the next decision, as after a crash."""
    _stop(join=False)


def _stop(join: bool) -> None:
    if _state.pop("launched", False):
        _state["stopping"] = True  # what fails in a workflow thread from here on is no bug
        # A workflow still enqueued here is taken over by whoever next waits on it (its queue
        # names a dead executor); the queue itself need not outlive us.
        if _state.pop("queue", False):
            DBOS.delete_queue(_queue(_state["executor"]))
        if join:
            DBOS.destroy()
        # Our lock file goes with us: a workflow we leave waiting for review belongs to an
        # executor that is plainly gone, and the folder does not fill with dead locks.
        executors.release()


def has_live_threads() -> bool:
    """A workflow thread left waiting for review would hold the process open at exit."""
    return bool(_state.get("started"))


def start(run_id: str, blueprint: str, max_rounds: int) -> None:
    """Start the run's workflow in this process; in team mode, enqueue it for a worker."""
    launch(queue=False)
    if executors.team():
        _enqueue(run_id, run_workflow, run_id, blueprint, max_rounds)
        return
    _drive_here([run_id])
    with SetWorkflowID(run_id):
        DBOS.start_workflow(run_workflow, run_id, blueprint, max_rounds)
    _state["started"] = True


def _enqueue(workflow_id: str, workflow: Callable[..., str], *args: Any) -> None:
    """Put a workflow on the shared queue under its own id: enqueueing it again (a submitter
    and a sweep both, say) finds the one there and leaves it as it is."""
    with SetWorkflowID(workflow_id):
        DBOS.enqueue_workflow(RUNS_QUEUE, workflow, *args)


def start_stranded(run_id: str, blueprint: str, max_rounds: int) -> bool:
    """Start the workflow of a run whose submitter died between writing its record and
    starting it (the caller knows that submitter is gone); False if it has a workflow."""
    launch()
    if DBOS.get_workflow_status(run_id) is not None:
        return False
    start(run_id, blueprint, max_rounds)
    return True


def cancel(run_id: str) -> None:
    """Cancel the run's workflow: no step of it starts again, in this process or any other,
    and recovery never picks it up. A run whose workflow never started has nothing to cancel."""
    launch()
    if DBOS.get_workflow_status(run_id) is not None:
        DBOS.cancel_workflow(run_id)


def cancelled(workflow_id: str) -> bool:
    """Whether the workflow was cancelled (`cancel`), by any process."""
    launch()
    wf = DBOS.get_workflow_status(workflow_id)
    return wf is not None and wf.status == "CANCELLED"


def under_way(run_id: str) -> bool:
    """Whether the run's workflow has not ended (it may be waiting for a decision)."""
    launch()
    wf = DBOS.get_workflow_status(run_id)
    return wf is not None and wf.status in ("PENDING", "ENQUEUED")


def _drive_here(run_ids: Iterable[str]) -> None:
    """Write down that this process drives these runs now, so that reading runs tells a run
    whose driver died (`interrupted`) from a running one by one lock file (`executors`)."""
    store = Store()
    for run_id in run_ids:
        if run_id.startswith("run-"):
            store.set_executor(run_id, _state["executor"])
    store.close()


def decide(run_id: str, decision: Decision) -> str:
    """Send a person's decision to the run's workflow, and drive the workflow on from here if
    the process that drove it is gone (in team mode a worker drives it, here or not). Returns
    the decision's id, the one `drive` waits on."""
    launch()
    sent = replace(decision, id=str(ULID()))
    DBOS.send(run_id, sent.as_message(), topic=REVIEW_TOPIC)
    if not executors.team():
        take_over([run_id])
    return sent.id


def take_over(run_ids: Iterable[str]) -> list[str]:
    """Drive the given workflows from here where the process that drove them is gone: these
    and no others. Each is resumed onto this process's own queue, which no other process reads.
    (DBOS's own recovery moves every pending workflow of a dead executor, onto a queue that
    every process reads: a decision would adopt other runs, and could exit under them.)"""
    run_ids = list(run_ids)
    if not run_ids:  # an empty id list would mean "every workflow" to list_workflows
        return []
    launch()
    mine = _state["executor"]
    taken = []
    # Two processes deciding on one run: the first resumes it, the second then finds it
    # enqueued on a live process's queue, and leaves it there.
    with _exclusive() as store:
        for wf in DBOS.list_workflows(workflow_ids=run_ids, load_input=False, load_output=False):
            driver = _driver(wf)
            if driver is None:
                continue
            if driver != mine and not _alive(driver, store):
                DBOS.resume_workflow(wf.workflow_id, queue_name=_own_queue())
                driver = mine
            if driver == mine:
                taken.append(wf.workflow_id)
    _drive_here(taken)
    if taken:
        _state["started"] = True
    return taken


def _driver(wf: Any) -> str | None:
    """The executor that drives a workflow that has not ended, or will (an enqueued one: the
    owner of its queue); None for one that ended, or waits in a queue every process reads."""
    if wf.status == "PENDING":
        return str(wf.executor_id) if wf.executor_id else None
    if wf.status == "ENQUEUED" and str(wf.queue_name or "").startswith(QUEUE_PREFIX):
        return str(wf.queue_name).removeprefix(QUEUE_PREFIX)
    return None


@contextmanager
def _exclusive() -> Iterator[Store | None]:
    """Who takes a workflow over does it alone: on this machine, a lock file; in team mode,
    the shared database's exclusion (`Store.exclusive`), whose store the block reads through."""
    if not executors.team():
        with locks.held("take-over"):
            yield None
        return
    store = Store()
    try:
        with store.exclusive("take-over"):
            yield store
    finally:
        store.close()


def sweep(schedules: bool = True) -> list[str]:
    """Team mode: put the workflows of dead executors back to work, each exactly once. Dead
    workers' rows go, then each workflow whose executor is dead (PENDING, or ENQUEUED on a dead
    process's own queue) is resumed onto `runs`, where a live worker continues it from its last
    finished step: a run waiting for review too (it replays to its wait). A schedule's loop is
    resumed onto this worker's own queue instead (`schedules`; it sleeps for ever, it would hold
    a place on `runs`). Looked for first; then, if any, under the database's exclusion, each
    workflow read again inside it: two workers sweeping at once never resume one twice.
    Returns the ids resumed."""
    launch()
    mine = _state["executor"]
    under = DBOS.list_workflows(status=["PENDING", "ENQUEUED"], load_input=False, load_output=False)
    store = Store()
    try:
        dead = [w.id for w in store.workers() if w.id != mine and not executors.lives(w)]
        kinds = ("run-", "rel-", ROLLBACK_PREFIX) + ((schedule.PREFIX,) if schedules else ())
        suspects = [
            wf.workflow_id
            for wf in under
            if wf.workflow_id.startswith(kinds)
            and (driver := _driver(wf)) is not None
            and not _alive(driver, store)
        ]
    finally:
        store.close()
    if not dead and not suspects:  # the common case: no exclusion taken, nobody held up
        return []
    moved = []
    with _exclusive() as held:
        assert held is not None
        for worker in held.workers():
            if worker.id in dead and not executors.lives(worker):
                held.forget_worker(worker.id)  # with the check: a late beat finds it gone
        for workflow_id in suspects:
            wf = DBOS.get_workflow_status(workflow_id)  # as it is now, inside
            driver = _driver(wf) if wf is not None else None
            if driver is None or _alive(driver, held):
                continue
            scheduled = workflow_id.startswith(schedule.PREFIX)
            DBOS.resume_workflow(workflow_id, queue_name=_own_queue() if scheduled else RUNS_QUEUE)
            moved.append(workflow_id)
    return moved


def interrupted() -> list[str]:
    """Workflows that have not ended and whose driving process no longer lives."""
    launch()
    live = DBOS.list_workflows(status=["PENDING", "ENQUEUED"], load_input=False, load_output=False)
    return [wf.workflow_id for wf in live if (d := _driver(wf)) is not None and not _alive(d)]


def _alive(executor: str, store: Store | None = None) -> bool:
    """Whether `executor` lives (in team mode read through `store`, where one is held)."""
    if executor == _state.get("executor"):
        return True
    if executors.team():
        return executors.beating(executor, store)
    return executors.alive(executor, reap=True)


def drive(
    run_ids: list[str],
    on_event: Callable[[str, Any], None] | None = None,
    after_decision: str | None = None,
    poll: float = 0.1,
) -> dict[str, str]:
    """Wait in the foreground until every run's workflow rests: it has ended, or it waits for
    a person again with the work of the last decision it took done (with `after_decision`, of
    that decision: a refused merge waits again). Measured on the workflow itself, not on the
    run's status, which a step sets before it ends: a process that returned on the status
    would exit under the step. A run whose driving process dies meanwhile is driven on from
    here. A workflow that errors, a bug and not an outcome, fails its run with the reason.

    In team mode the runs are only followed: workers drive them, and take over one whose
    worker died. While no worker lives, each run's log says so once (`_NobodyWorks`).
    """
    from jackline.guard.audit import AuditLog
    from jackline.guard.redact import Redactor

    store = Store()
    audit = AuditLog(store, Redactor({}))
    cursors = {r: audit.cursor(r) for r in run_ids}
    for cursor in cursors.values():
        cursor.read()  # what was written before is not this call's to show
    after = {r: _last_taken(r) if after_decision is None else after_decision for r in run_ids}
    statuses: dict[str, str] = {}
    waiting = set(run_ids)
    told = _NobodyWorks(audit)
    here: set[str] = set()  # runs whose workflow this process drives, as last looked at in full
    full_at = 0.0

    def shown(run_id: str) -> str:
        """Show the run's new events; its status now."""
        for event in cursors[run_id].read():
            if on_event:
                on_event(run_id, event)
        statuses[run_id] = store.get_run(run_id).status
        return statuses[run_id]

    while waiting:
        orphans = []
        seen = NEWS.now()  # before reading: a write after it ends the wait below at once
        team = executors.team()
        elsewhere = team
        full = time.monotonic() >= full_at
        for run_id in sorted(waiting):
            if not full and run_id in here and shown(run_id) not in RESTING:
                # Woken by a write of this process's own steps: the events and the status
                # show it; the workflow rests only with its run in a resting status, and is
                # looked at in full then, or every HERE_POLL seconds.
                continue
            wf = DBOS.get_workflow_status(run_id)
            ours = wf is not None and not team and wf.executor_id == _state.get("executor")
            (here.add if ours else here.discard)(run_id)
            elsewhere = elsewhere or not ours
            rests = _rests(wf, run_id, after[run_id])  # before reading: no event is missed
            status = shown(run_id)
            if wf is not None and wf.status in ("ERROR", "CANCELLED") and status not in RESTING:
                # The workflow fails its own run (`run_workflow`), and `cancel` says who
                # cancelled: this is for a workflow whose process could not say it.
                cancelled = wf.status == "CANCELLED"
                reason = (
                    "its workflow was cancelled"
                    if cancelled
                    else f"the run's workflow stopped with an internal error: {error_text(wf.error)}"
                )
                run = store.update_run(
                    run_id, status=Status.CANCELLED if cancelled else Status.FAILED, reason=reason
                )
                statuses[run_id] = run.status
                waiting.discard(run_id)
            elif rests:
                waiting.discard(run_id)
            elif status in RESTING:  # its steps are done; the engine records its end next
                elsewhere = True
            elif executors.team():
                continue  # a live worker takes over a run whose worker died (`sweep`)
            elif wf is not None and (driver := _driver(wf)) is not None and not _alive(driver):
                orphans.append(run_id)
        if full:
            full_at = time.monotonic() + HERE_POLL
        told.check(waiting)
        take_over(orphans)  # whoever drove one of these died: it goes on here
        if waiting and (elsewhere or orphans):
            time.sleep(poll)
        elif waiting:  # every one is driven by this process: each of its writes says so
            NEWS.wait(seen, HERE_POLL)
    store.close()
    return statuses


HERE_POLL = 1.0
"""Seconds between two looks at runs this process drives, when none of its writes came first."""

NOBODY_WORKS = "queued: no worker is running; start one with `jackline worker`"


class _NobodyWorks:
    """Team mode: while no worker lives, a followed run or release would wait in silence. Its
    log says so, once a follow (where every surface shows it: the web page, `jackline logs`),
    looked at every few seconds."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._next = 0.0
        self._told: set[str] = set()

    def check(self, streams: Iterable[str]) -> None:
        if not executors.team() or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + executors.beat_every()
        untold = [s for s in streams if s not in self._told]
        if not untold or any(executors.lives(w) for w in self._audit.store.workers()):
            return
        for stream in untold:
            self._audit.record(stream, Kind.WARNING, message=NOBODY_WORKS)
            self._told.add(stream)


def _rests(wf: Any, run_id: str, after: str) -> bool:
    """Whether the run's workflow has ended, or waits for a person having done the work of
    decision `after` ("" the submission)."""
    if wf is None:
        return False
    if wf.status not in ("PENDING", "ENQUEUED"):
        return True
    return DBOS.get_event(run_id, rests_key(after), timeout_seconds=0) is not None


def _rests_at_wait(release_id: str, store: Store) -> bool:
    """Whether the release's latest wait is done being recorded and announced (`waited_key`):
    its status is set within that step, before the announcement."""
    count = len(store.events(release_id, kind=Kind.RELEASE_WAITING))
    return DBOS.get_event(release_id, waited_key(count), timeout_seconds=0) is not None


def _ended(wf: Any) -> bool:
    """Whether a workflow has ended, or will not go on while anyone waits: it has no workflow,
    or whoever drives it is gone."""
    if wf is None or wf.status not in ("PENDING", "ENQUEUED"):
        return True
    driver = _driver(wf)
    return driver is not None and not _alive(driver)


def _last_taken(run_id: str) -> str:
    """The id of the last decision the run's workflow took from its inbox ("" before any),
    whose work a resumed workflow may still be doing."""
    for step in reversed(DBOS.list_workflow_steps(run_id)):
        if step["function_name"] == "DBOS.recv" and isinstance(step["output"], dict):
            return str(step["output"].get("id", ""))
    return ""


# releases ---------------------------------------------------------------------------------
# A release is a workflow of its own whose id is the release id. It waits for a person the way
# a run waits for review: blocked in `DBOS.recv` on GO_TOPIC, where "go" and "abort" arrive
# from any process, which then takes the workflow over and drives it on.

GO_TOPIC = "go"


@DBOS.step()
def release_gate_step(release_id: str) -> dict[str, object]:
    return release_steps.gate(release_id).recorded()


@DBOS.step()
def release_wait_step(release_id: str, status: ReleaseStatus, env: str) -> int:
    return release_steps.wait(release_id, status, env)


def waited_key(count: int) -> str:
    """The workflow event set once a release's `count`th wait (its RELEASE_WAITING events,
    counted) is recorded and announced: it rests in `recv` from then on."""
    return f"waited:{count}"


def _rest_at_wait(release_id: str, status: ReleaseStatus, env: str) -> None:
    count = release_wait_step(release_id, status, env)
    if count:  # None from a step recorded before waits were counted
        DBOS.set_event(waited_key(count), True)


@DBOS.step()
def release_take_step(release_id: str, decision: ReleaseDecision) -> dict[str, object]:
    return release_steps.take(release_id, decision).recorded()


@DBOS.step()
def release_promote_step(release_id: str) -> dict[str, object]:
    return release_steps.promote(release_id).recorded()


@DBOS.step()
def release_deploy_step(release_id: str, env: str) -> dict[str, object]:
    return release_steps.deploy(release_id, env).recorded()


@DBOS.step()
def release_probe_step(release_id: str, env: str, offset: int) -> dict[str, object]:
    return release_steps.probe(release_id, env, offset).recorded()


@DBOS.step()
def release_start_soak_step(release_id: str, env: str, seconds: int) -> None:
    release_steps.start_soak(release_id, env, seconds)


@DBOS.step()
def release_soak_step(release_id: str, env: str, offset: int) -> dict[str, object]:
    return release_steps.soak(release_id, env, offset).recorded()


@DBOS.step()
def release_live_step(release_id: str, env: str) -> None:
    release_steps.mark_live(release_id, env)


@DBOS.step()
def release_rollback_step(release_id: str, reason: str, aborted: bool) -> str:
    return release_steps.rollback(release_id, reason, aborted)


@DBOS.step()
def release_finish_step(release_id: str, outcome: ReleaseStatus, reason: str) -> None:
    release_steps.finish(release_id, outcome, reason)


@DBOS.step()
def release_put_back_step(release_id: str, to_sha: str) -> bool:
    return release_steps.manual_put_back(release_id, to_sha)


@DBOS.step()
def release_rolled_back_step(release_id: str, to_sha: str, by: str, ok: bool) -> str:
    return release_steps.manual_rolled_back(release_id, to_sha, by, ok)


@DBOS.workflow()
def rollback_workflow(release_id: str, to_sha: str, by: str) -> str:
    """A person's rollback of a live release: put production back, then say so."""
    ok = release_put_back_step(release_id, to_sha)
    return release_rolled_back_step(release_id, to_sha, by, ok)


@DBOS.workflow()
def release_workflow(release_id: str) -> str:
    plan = release_steps.GateOutcome.from_recorded(release_gate_step(release_id))
    if not plan.ok:
        return ReleaseStatus.FAILED
    envs = plan.envs
    for i, env in enumerate(envs):
        outcome = _release_env(release_id, env, production=i == len(envs) - 1)
        if outcome != "pass":
            return outcome
    release_finish_step(release_id, ReleaseStatus.LIVE, "")
    return ReleaseStatus.LIVE


def _release_env(release_id: str, env: release_steps.EnvPlan, production: bool) -> str:
    """One environment: go (if it needs one), deploy, probe, soak. "pass", or how it ended."""
    name = env.name
    if _abort_waiting(release_id) or (
        env.requires_go and _wait_for_go(release_id, ReleaseStatus.AWAITING_GO, name) == "abort"
    ):
        release_finish_step(
            release_id, ReleaseStatus.ABORTED, f"aborted before deploying to {name}"
        )
        return ReleaseStatus.ABORTED
    if production:
        release_promote_step(release_id)
    deployed = release_steps.DeployOutcome.from_recorded(release_deploy_step(release_id, name))
    verdict = _watch(release_id, env, deployed.offset) if deployed.ok else "fail"
    if verdict == "pass" and _abort_waiting(release_id):
        verdict = "abort"  # it came during the deploy or the probes: undone like one in a soak
    if verdict == "pass":
        release_live_step(release_id, name)
        return "pass"
    aborted = verdict == "abort"
    if production:  # production is left as it was before this release
        why = f"aborted during {name}" if aborted else f"{name} checks failed"
        return release_rollback_step(release_id, why, aborted)
    release_finish_step(
        release_id,
        ReleaseStatus.ABORTED if aborted else ReleaseStatus.FAILED,
        f"aborted during {name}" if aborted else "",
    )
    return ReleaseStatus.ABORTED if aborted else ReleaseStatus.FAILED


def _watch(release_id: str, env: release_steps.EnvPlan, offset: int) -> str:
    """Probe, then soak: "pass", "fail", or "abort". Inconclusive pauses for a person."""
    name = env.name
    probed = release_steps.ProbeOutcome.from_recorded(release_probe_step(release_id, name, offset))
    if probed.outcome == "pass" and env.soak:
        release_start_soak_step(release_id, name, env.soak)
        decision = ReleaseDecision.from_message(DBOS.recv(GO_TOPIC, timeout_seconds=env.soak))
        if decision is not None and decision.kind == "abort":
            release_take_step(release_id, decision)
            return "abort"
        soaked = release_soak_step(release_id, name, offset)
        probed = release_steps.ProbeOutcome.from_recorded(soaked)
    if probed.outcome == "inconclusive":
        return "pass" if _wait_for_go(release_id, ReleaseStatus.PAUSED, name) == "go" else "abort"
    return probed.outcome


def _abort_waiting(release_id: str) -> bool:
    """Whether an abort came while no wait listened (during a deploy, a probe, between steps),
    taken here so it stops the release before its next deploy. A go nobody waited for (a second
    one for a wait already passed) is stale: dropped, never kept for the next wait."""
    while (message := DBOS.recv(GO_TOPIC, timeout_seconds=0)) is not None:
        decision = ReleaseDecision.from_message(message)
        if decision is not None and decision.kind == "abort":
            release_take_step(release_id, decision)
            return True
    return False


def _wait_for_go(release_id: str, status: ReleaseStatus, env: str) -> str:
    _rest_at_wait(release_id, status, env)
    while True:  # each wait is durable; a day's timeout only bounds one recorded wait
        decision = ReleaseDecision.from_message(DBOS.recv(GO_TOPIC, timeout_seconds=86_400))
        if decision is None:
            continue
        taken = release_steps.TakeOutcome.from_recorded(release_take_step(release_id, decision))
        if taken.accepted:
            return decision.kind
        _rest_at_wait(release_id, status, env)  # a refused go: still waiting


def start_release(release_id: str) -> None:
    """Start the release's workflow here; in team mode, enqueue it for a worker."""
    launch()
    if executors.team():
        _enqueue(release_id, release_workflow, release_id)
        return
    with SetWorkflowID(release_id):
        DBOS.start_workflow(release_workflow, release_id)
    _state["started"] = True


def start_stranded_release(release_id: str) -> bool:
    """Enqueue the workflow of a release recorded by a process that died before it enqueued
    it (team mode); False if it has one."""
    launch()
    if DBOS.get_workflow_status(release_id) is not None:
        return False
    start_release(release_id)
    return True


def send_release(release_id: str, decision: ReleaseDecision) -> None:
    """Send a person's go or abort to the release's workflow, then drive it on from here
    (in team mode a worker drives it)."""
    launch()
    DBOS.send(release_id, decision.as_message(), topic=GO_TOPIC)
    if not executors.team():
        take_over([release_id])


ROLLBACK_PREFIX = "rollback-"


def start_rollback(release_id: str, to_sha: str, by: str) -> str:
    """Start a person's rollback of `release_id` to `to_sha` as a workflow of its own (one per
    rollback asked for), so a rollback whose process dies is driven on by `resume`, its
    finished steps not repeated. Returns the workflow's id."""
    launch()
    workflow_id = f"{ROLLBACK_PREFIX}{ULID()}-{release_id}"
    if executors.team():
        _enqueue(workflow_id, rollback_workflow, release_id, to_sha, by)
        return workflow_id
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(rollback_workflow, release_id, to_sha, by)
    _state["started"] = True
    return workflow_id


def rolled_back_release(workflow_id: str) -> str | None:
    """The release a rollback workflow rolls back (None for any other workflow)."""
    if not workflow_id.startswith(ROLLBACK_PREFIX):
        return None
    return workflow_id.removeprefix(ROLLBACK_PREFIX).split("-", 1)[1]


def drive_rollback(
    workflow_id: str,
    on_event: Callable[[str, Any], None] | None = None,
    after: int = 0,
    poll: float = 0.1,
) -> str:
    """Wait in the foreground until a rollback's workflow ends, showing its release's events
    after `after`; the release's status then. One that errors, a bug, fails the release with
    the reason rather than leaving it rolling back for ever."""
    from jackline.guard.audit import AuditLog
    from jackline.guard.redact import Redactor
    from jackline.models import RELEASE_FINAL

    release_id = rolled_back_release(workflow_id)
    assert release_id is not None, workflow_id
    store = Store()
    audit = AuditLog(store, Redactor({}))
    cursor = audit.cursor(release_id)
    told = _NobodyWorks(audit)
    while True:
        wf = DBOS.get_workflow_status(workflow_id)  # before reading: no event is missed
        for event in cursor.read():
            if on_event and event.seq > after:
                on_event(release_id, event)
        if wf is None or wf.status not in ("PENDING", "ENQUEUED"):
            break
        told.check([release_id])
        time.sleep(poll)
    status = store.get_release(release_id).status
    if wf is not None and wf.status in ("ERROR", "CANCELLED") and status not in RELEASE_FINAL:
        reason = f"the rollback's workflow stopped with an internal error: {error_text(wf.error)}"
        status = store.update_release(release_id, status="failed", reason=reason).status
    store.close()
    return status


def drive_release(
    release_id: str,
    on_event: Callable[[str, Any], None] | None = None,
    after_message: bool = False,
    poll: float = 0.1,
) -> str:
    """Wait in the foreground until the release rests (waiting for a person, or ended).

    With `after_message`, it counts only once the workflow has taken the message just sent.
    An ended release counts once its workflow has ended too: the step that sets the final
    status goes on to tell the run behind it and the surfaces, and a command that returned on
    the status would exit under that step (`engine.leave`), which a later process would then
    run again, deploys and all. Unless the process driving it is gone: then the status is all
    there is to wait for, and `jackline resume` finishes the rest.
    """
    from jackline.guard.audit import AuditLog
    from jackline.guard.redact import Redactor
    from jackline.models import RELEASE_FINAL, RELEASE_WAITS

    store = Store()
    audit = AuditLog(store, Redactor({}))
    cursor = audit.cursor(release_id)
    cursor.read()  # what was written before is not this call's to show
    ready = not after_message
    taken = (Kind.RELEASE_GO, Kind.RELEASE_ABORT, Kind.RELEASE_GO_REFUSED)
    told = _NobodyWorks(audit)
    while True:
        for event in cursor.read():
            ready = ready or event.kind in taken
            if on_event:
                on_event(release_id, event)
        status = store.get_release(release_id).status
        wf = DBOS.get_workflow_status(release_id)
        if wf is not None and wf.status in ("ERROR", "CANCELLED") and status not in RELEASE_FINAL:
            reason = (
                f"the release's workflow stopped with an internal error: {error_text(wf.error)}"
            )
            store.update_release(release_id, status=ReleaseStatus.FAILED, reason=reason)
            status = ReleaseStatus.FAILED
        rests = status in RELEASE_WAITS and (_rests_at_wait(release_id, store) or _ended(wf))
        if (status in RELEASE_FINAL and _ended(wf)) or (ready and rests):
            for event in cursor.read():  # recorded between the last read and the status
                if on_event:
                    on_event(release_id, event)
            store.close()
            return status
        told.check([release_id])
        time.sleep(poll)
