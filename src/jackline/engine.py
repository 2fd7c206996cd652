"""The workflow engine: the only module that imports DBOS.

A run is one DBOS workflow whose id is the run id, so starting the same run twice resumes it
instead of starting a second one. Each step is a DBOS step wrapping a plain function of
`runner`; a step that finished is never run again, even after `kill -9`.

Processes. Every process that launches the engine gets its own executor id and holds a lock file
for it while it lives. A workflow left PENDING by a dead executor is recovered only when a person
asks (`jackline resume`, or a review decision for that run), never as a side effect of an
unrelated command. A run waiting for review is a workflow blocked in `DBOS.recv`: it costs no
process while nobody drives it; the decision is a message, and the process that sends it takes
the workflow over and drives it on.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID
from ulid import ULID

from jackline import __version__, blueprints, paths, runner, schedule
from jackline import config as cfg
from jackline.models import RESTING
from jackline.release import steps as release_steps
from jackline.store import Store

REVIEW_TOPIC = "review"
_state: dict[str, Any] = {}


# steps ------------------------------------------------------------------------------------


@DBOS.step()
def prepare_step(run_id: str) -> dict[str, Any]:
    return runner.prepare(run_id)


@DBOS.step()
def hydrate_step(run_id: str, round_no: int, feedback: str | None) -> str:
    return runner.hydrate(run_id, round_no, feedback)


@DBOS.step()
def agent_step(run_id: str, round_no: int) -> dict[str, Any]:
    return runner.agent(run_id, round_no)


@DBOS.step()
def budget_step(run_id: str) -> dict[str, Any]:
    return runner.budget(run_id)


@DBOS.step()
def check_step(run_id: str, round_no: int) -> dict[str, Any]:
    return runner.check(run_id, round_no)


@DBOS.step()
def scan_step(run_id: str) -> dict[str, Any]:
    return runner.scan(run_id)


@DBOS.step()
def commit_step(run_id: str) -> str:
    return runner.commit(run_id)


@DBOS.step()
def publish_step(run_id: str) -> None:
    runner.publish(run_id)


@DBOS.step()
def handoff_step(run_id: str, outcome: str) -> str:
    return runner.write_handoff(run_id, outcome)


@DBOS.step()
def decision_step(run_id: str, decision: dict[str, Any]) -> None:
    runner.record_decision(run_id, decision)


@DBOS.step()
def merge_step(run_id: str, decision: dict[str, Any]) -> dict[str, Any]:
    return runner.merge(run_id, decision)


@DBOS.step()
def finish_step(run_id: str, outcome: str) -> None:
    runner.finish(run_id, outcome)


@DBOS.step()
def reject_step(run_id: str, decision: dict[str, Any]) -> None:
    runner.reject(run_id, decision)


# the workflow -----------------------------------------------------------------------------


@DBOS.workflow()
def run_workflow(run_id: str, blueprint: str, max_rounds: int) -> str:
    bp = blueprints.get(blueprint)
    if not prepare_step(run_id)["ok"]:
        handoff_step(run_id, "failed")
        return "failed"
    done, feedback = 0, None
    while True:
        done, passed = _rounds(run_id, done, max_rounds, feedback)
        if passed is None:  # a `[budget]` is used up: the work so far waits for a person
            handoff_step(run_id, "over_budget")
            finish_step(run_id, "over_budget")
            return "over_budget"
        scanned = scan_step(run_id)
        if scanned["blocked"]:  # a secret: never committed, never pushed; a person decides
            handoff_step(run_id, "blocked")
            decision = _wait_for_decision(("request_changes", "reject"))
            decision_step(run_id, decision)
            if decision["kind"] == "reject":
                reject_step(run_id, decision)
                return "rejected"
            feedback = runner.secret_feedback(scanned.get("secrets", []), decision)
            continue
        if not passed:
            handoff_step(run_id, "failed")
            return "failed"
        commit_step(run_id)
        if bp.has("publish"):
            publish_step(run_id)
        handoff_step(run_id, "awaiting_review")
        while True:
            decision = _wait_for_decision()
            decision_step(run_id, decision)
            if decision["kind"] == "reject":
                reject_step(run_id, decision)
                return "rejected"
            if decision["kind"] == "request_changes":
                feedback = runner.review_feedback(decision)
                break
            if merge_step(run_id, decision)["outcome"] == "merged":
                handoff_step(run_id, "merged")
                finish_step(run_id, "merged")
                return "merged"


def _rounds(
    run_id: str, done: int, max_rounds: int, feedback: str | None
) -> tuple[int, bool | None]:
    """At most `max_rounds` agent rounds, each judged by the checks; failures feed the next.
    Passed, failed, or None when the run's budget ran out before a round."""
    round_no = done
    for round_no in range(done + 1, done + max_rounds + 1):
        if budget_step(run_id)["over"]:
            return round_no - 1, None
        hydrate_step(run_id, round_no, feedback)
        agent_step(run_id, round_no)
        result = check_step(run_id, round_no)
        if result["passed"]:
            return round_no, True
        feedback = result["feedback"]
    return round_no, False


def _wait_for_decision(
    kinds: tuple[str, ...] = ("approve", "request_changes", "reject"),
) -> dict[str, Any]:
    """The next decision of one of `kinds` (a blocked run takes no approval: `api` refuses
    one with its reason, and one sent past it is dropped here)."""
    while True:  # each wait is durable; a day's timeout only bounds one recorded wait
        decision = DBOS.recv(REVIEW_TOPIC, timeout_seconds=86_400)
        if isinstance(decision, dict) and decision.get("kind") in kinds:
            return decision


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


def launch() -> None:
    if _state.get("launched"):
        return
    home = paths.home()
    (home / "executors").mkdir(parents=True, exist_ok=True)
    executor = f"{socket.gethostname()}-{os.getpid()}-{ULID()}"
    lock = open(home / "executors" / f"{executor}.lock", "w")  # noqa: SIM115 - held for life
    fcntl.flock(lock, fcntl.LOCK_EX)
    url = os.environ.get("JACKLINE_DATABASE_URL") or f"sqlite:///{paths.engine_database()}"
    config: DBOSConfig = {
        "name": "jackline",
        "system_database_url": url,
        "application_version": __version__,
        "executor_id": executor,
        "log_level": "CRITICAL",  # a workflow error becomes the run's reason, not a screenful
    }
    DBOS(config=config)
    DBOS.launch()
    _state.update(launched=True, executor=executor, lock=lock)


def shutdown() -> None:
    if _state.pop("launched", False):
        DBOS.destroy()
        # Our lock file goes with us: a workflow we leave waiting for review belongs to an
        # executor that is plainly gone, and the folder does not fill with dead locks.
        lock = _state.pop("lock")
        Path(lock.name).unlink(missing_ok=True)
        lock.close()


def has_live_threads() -> bool:
    """A workflow thread left waiting for review would hold the process open at exit."""
    return bool(_state.get("started"))


def start(run_id: str, blueprint: str, max_rounds: int) -> None:
    launch()
    with SetWorkflowID(run_id):
        DBOS.start_workflow(run_workflow, run_id, blueprint, max_rounds)
    _state["started"] = True


def decide(run_id: str, decision: dict[str, Any]) -> None:
    """Send a person's decision to the run's workflow, then drive the workflow on from here."""
    launch()
    DBOS.send(run_id, decision, topic=REVIEW_TOPIC)
    take_over([run_id])


def under_way(run_id: str) -> bool:
    """Whether the run's workflow has not ended (it may be waiting for a decision)."""
    launch()
    wf = DBOS.get_workflow_status(run_id)
    return wf is not None and wf.status in ("PENDING", "ENQUEUED")


def take_over(run_ids: Iterable[str]) -> list[str]:
    """Recover the given runs' workflows when the process that drove them is gone."""
    run_ids = list(run_ids)
    if not run_ids:  # an empty id list would mean "every workflow" to list_workflows
        return []
    launch()
    taken = []
    dead: set[str] = set()
    for wf in DBOS.list_workflows(workflow_ids=run_ids, load_input=False, load_output=False):
        if wf.status == "PENDING" and wf.executor_id and not _alive(wf.executor_id):
            dead.add(wf.executor_id)
            taken.append(wf.workflow_id)
        elif wf.status in ("PENDING", "ENQUEUED") and wf.executor_id == _state["executor"]:
            taken.append(wf.workflow_id)
    if dead:
        DBOS._recover_pending_workflows(sorted(dead))  # public class, internal name: see notes
    if taken:
        _state["started"] = True
    return taken


def interrupted() -> list[str]:
    """Runs whose workflow is PENDING under an executor that no longer lives."""
    launch()
    pending = DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
    return [wf.workflow_id for wf in pending if wf.executor_id and not _alive(wf.executor_id)]


def _alive(executor: str) -> bool:
    if executor == _state.get("executor"):
        return True
    lock = paths.home() / "executors" / f"{executor}.lock"
    if not lock.exists():
        return False
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    lock.unlink(missing_ok=True)
    return False


def drive(
    run_ids: list[str],
    on_event: Callable[[str, Any], None] | None = None,
    after_decision: bool = False,
    poll: float = 0.1,
) -> dict[str, str]:
    """Wait in the foreground until every run rests (review, failed, merged, rejected).

    With `after_decision`, a run counts only once its workflow has taken the decision just sent
    (a refused merge rests in review again). A workflow that errors, a bug and not an outcome,
    fails its run with the reason.
    """
    from jackline.guard.audit import AuditLog
    from jackline.guard.redact import Redactor

    store = Store()
    audit = AuditLog(store, Redactor({}))
    seen = {r: max((e.seq for e in audit.read(r)), default=0) for r in run_ids}
    ready = {r: not after_decision for r in run_ids}
    statuses: dict[str, str] = {}
    waiting = set(run_ids)
    while waiting:
        for run_id in sorted(waiting):
            for event in audit.read(run_id, after=seen[run_id]):
                seen[run_id] = event.seq
                ready[run_id] = ready[run_id] or event.kind == "decision"
                if on_event:
                    on_event(run_id, event)
            statuses[run_id] = status = store.get_run(run_id).status
            wf = DBOS.get_workflow_status(run_id)
            if wf is not None and wf.status in ("ERROR", "CANCELLED") and status not in RESTING:
                reason = f"the run's workflow stopped with an internal error: {wf.error!r}"[:500]
                store.update_run(run_id, status="failed", reason=reason)
                statuses[run_id] = "failed"
                waiting.discard(run_id)
            elif ready[run_id] and status in RESTING:
                waiting.discard(run_id)
        if waiting:
            time.sleep(poll)
    store.close()
    return statuses


# releases ---------------------------------------------------------------------------------
# A release is a workflow of its own whose id is the release id. It waits for a person the way
# a run waits for review: blocked in `DBOS.recv` on GO_TOPIC, where "go" and "abort" arrive
# from any process, which then takes the workflow over and drives it on.

GO_TOPIC = "go"


@DBOS.step()
def release_gate_step(release_id: str) -> dict[str, Any]:
    return release_steps.gate(release_id)


@DBOS.step()
def release_wait_step(release_id: str, status: str, env: str) -> None:
    release_steps.wait(release_id, status, env)


@DBOS.step()
def release_take_step(release_id: str, message: dict[str, Any]) -> dict[str, Any]:
    return release_steps.take(release_id, message)


@DBOS.step()
def release_promote_step(release_id: str) -> dict[str, Any]:
    return release_steps.promote(release_id)


@DBOS.step()
def release_deploy_step(release_id: str, env: str) -> dict[str, Any]:
    return release_steps.deploy(release_id, env)


@DBOS.step()
def release_probe_step(release_id: str, env: str, offset: int) -> dict[str, Any]:
    return release_steps.probe(release_id, env, offset)


@DBOS.step()
def release_start_soak_step(release_id: str, env: str, seconds: int) -> None:
    release_steps.start_soak(release_id, env, seconds)


@DBOS.step()
def release_soak_step(release_id: str, env: str, offset: int) -> dict[str, Any]:
    return release_steps.soak(release_id, env, offset)


@DBOS.step()
def release_live_step(release_id: str, env: str) -> None:
    release_steps.mark_live(release_id, env)


@DBOS.step()
def release_rollback_step(release_id: str, reason: str, aborted: bool) -> str:
    return release_steps.rollback(release_id, reason, aborted)


@DBOS.step()
def release_finish_step(release_id: str, outcome: str, reason: str) -> None:
    release_steps.finish(release_id, outcome, reason)


@DBOS.workflow()
def release_workflow(release_id: str) -> str:
    plan = release_gate_step(release_id)
    if not plan["ok"]:
        return "failed"
    envs = plan["envs"]
    for i, env in enumerate(envs):
        outcome = _release_env(release_id, env, production=i == len(envs) - 1)
        if outcome != "pass":
            return outcome
    release_finish_step(release_id, "live", "")
    return "live"


def _release_env(release_id: str, env: dict[str, Any], production: bool) -> str:
    """One environment: go (if it needs one), deploy, probe, soak. "pass", or how it ended."""
    name = env["name"]
    if _abort_waiting(release_id) or (
        env["requires_go"] and _wait_for_go(release_id, "awaiting_go", name) == "abort"
    ):
        release_finish_step(release_id, "aborted", f"aborted before deploying to {name}")
        return "aborted"
    if production:
        release_promote_step(release_id)
    deployed = release_deploy_step(release_id, name)
    verdict = _watch(release_id, env, deployed["offset"]) if deployed["ok"] else "fail"
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
        release_id, "aborted" if aborted else "failed", f"aborted during {name}" if aborted else ""
    )
    return "aborted" if aborted else "failed"


def _watch(release_id: str, env: dict[str, Any], offset: int) -> str:
    """Probe, then soak: "pass", "fail", or "abort". Inconclusive pauses for a person."""
    name = env["name"]
    outcome = release_probe_step(release_id, name, offset)["outcome"]
    if outcome == "pass" and env["soak"]:
        release_start_soak_step(release_id, name, env["soak"])
        message = DBOS.recv(GO_TOPIC, timeout_seconds=env["soak"])
        if isinstance(message, dict) and message.get("kind") == "abort":
            release_take_step(release_id, message)
            return "abort"
        outcome = release_soak_step(release_id, name, offset)["outcome"]
    if outcome == "inconclusive":
        return "pass" if _wait_for_go(release_id, "paused", name) == "go" else "abort"
    return str(outcome)


def _abort_waiting(release_id: str) -> bool:
    """Whether an abort came while no wait listened (during a deploy, a probe, between steps),
    taken here so it stops the release before its next deploy. A go nobody waited for (a second
    one for a wait already passed) is stale: dropped, never kept for the next wait."""
    while (message := DBOS.recv(GO_TOPIC, timeout_seconds=0)) is not None:
        if isinstance(message, dict) and message.get("kind") == "abort":
            release_take_step(release_id, message)
            return True
    return False


def _wait_for_go(release_id: str, status: str, env: str) -> str:
    release_wait_step(release_id, status, env)
    while True:  # each wait is durable; a day's timeout only bounds one recorded wait
        message = DBOS.recv(GO_TOPIC, timeout_seconds=86_400)
        if not (isinstance(message, dict) and message.get("kind") in ("go", "abort")):
            continue
        if release_take_step(release_id, message)["accepted"]:
            return str(message["kind"])
        release_wait_step(release_id, status, env)  # a refused go: still waiting


def start_release(release_id: str) -> None:
    launch()
    with SetWorkflowID(release_id):
        DBOS.start_workflow(release_workflow, release_id)
    _state["started"] = True


def send_release(release_id: str, message: dict[str, Any]) -> None:
    """Send a person's go or abort to the release's workflow, then drive it on from here."""
    launch()
    DBOS.send(release_id, message, topic=GO_TOPIC)
    take_over([release_id])


def drive_release(
    release_id: str,
    on_event: Callable[[str, Any], None] | None = None,
    after_message: bool = False,
    poll: float = 0.1,
) -> str:
    """Wait in the foreground until the release rests (waiting for a person, or ended).

    With `after_message`, it counts only once the workflow has taken the message just sent.
    """
    from jackline.guard.audit import AuditLog
    from jackline.guard.redact import Redactor
    from jackline.models import RELEASE_FINAL, RELEASE_RESTING

    store = Store()
    audit = AuditLog(store, Redactor({}))
    seen = max((e.seq for e in audit.read(release_id)), default=0)
    ready = not after_message
    taken = ("release.go", "release.abort", "release.go_refused")
    while True:
        for event in audit.read(release_id, after=seen):
            seen = event.seq
            ready = ready or event.kind in taken
            if on_event:
                on_event(release_id, event)
        status = store.get_release(release_id).status
        wf = DBOS.get_workflow_status(release_id)
        if wf is not None and wf.status in ("ERROR", "CANCELLED") and status not in RELEASE_FINAL:
            reason = f"the release's workflow stopped with an internal error: {wf.error!r}"[:500]
            store.update_release(release_id, status="failed", reason=reason)
            status = "failed"
        if status in RELEASE_FINAL or (ready and status in RELEASE_RESTING):
            store.close()
            return status
        time.sleep(poll)
