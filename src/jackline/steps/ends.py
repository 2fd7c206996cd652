"""Ends that are not the blueprint's: a run a person cancelled, and a run a bug stopped."""

from __future__ import annotations

from jackline import artifacts, paths, proc
from jackline.events import Kind
from jackline.guard.redact import Redactor
from jackline.models import FINAL, Status
from jackline.steps.context import RunContext
from jackline.steps.handoff import write_handoff
from jackline.store import Store


def cancel(run_id: str, reason: str) -> str:
    """End a run a person cancelled, once its workflow is cancelled (no step of it starts
    again): the status says so before the agents die, so that a step still finishing in the
    process that drove it cannot make their deaths into another outcome; every round's agent
    process group is killed; the handoff says it (its services stop, its workspace stays)."""
    Store().update_run(run_id, status=Status.CANCELLED, reason=reason)
    kill_agents(run_id)
    return write_handoff(run_id, Status.CANCELLED, rebuild=False)


def kill_agents(run_id: str) -> None:
    """Kill every round's agent process group of the run that this machine started: in team
    mode a run is cancelled wherever a person asks, and the worker that drives it kills its
    agents when it sees that (`api.machine._Cancels`)."""
    for pidfile in sorted(paths.run_dir(run_id).glob("round-*/agent.pid")):
        proc.kill_recorded(pidfile)


def fail(run_id: str, reason: str) -> None:
    """A bug stopped the run's workflow: the run fails with the error as its reason (a run
    that has ended, a cancelled one say, keeps its end), with a handoff where one can be
    written: the bug may be in the handoff itself."""
    store = Store()
    if store.get_run(run_id).status in FINAL:
        return
    try:
        ctx = RunContext(run_id, store)
        reason = ctx.redact(reason)
        ctx.record(Kind.ERROR, reason=reason)
    except Exception:  # the bug may be in loading the run: the status still says it
        reason = Redactor.from_environment()(reason)
    # The reason first, the status last and with the handoff: whoever sees `failed` finds the
    # handoff that says why (`write_handoff` moves both at once).
    store.update_run(run_id, reason=reason)
    try:
        write_handoff(run_id, Status.FAILED, rebuild=False)
    except Exception as e:  # the bug may be in the handoff itself: a short one says it
        path = paths.run_dir(run_id) / "handoff.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        # An earlier round's record would be shown in place of this note (`api.handoff_text`).
        path.with_name("handoff.json").unlink(missing_ok=True)
        note = (
            f"# {run_id}: failed\n\nThe run failed: {reason}\n\nThe full handoff could not "
            f"be written ({type(e).__name__}); `jackline logs {run_id}` has what the run did.\n"
        )
        path.write_text(note)
        store.put_artifact(run_id, artifacts.NOTE, note.encode())
        store.update_run(run_id, status=Status.FAILED, handoff=str(path))
