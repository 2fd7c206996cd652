"""Decisions on a run: approve, request changes, reject, cancel, accept a finding; resume an
interrupted one."""

from __future__ import annotations

from typing import Annotated

import typer

from jackline import api
from jackline.cli import render
from jackline.cli.options import AsOpt, JsonOpt, verbs_of
from jackline.cli.render import out
from jackline.models import Status, to_json

app = typer.Typer()


@app.command()
def approve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    by: AsOpt = None,
    message: Annotated[str, typer.Option("-m", "--message", help="A note for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a run: the harness merges its branch into main (checks re-run if main moved)."""
    verbs = verbs_of(ctx)
    decided = verbs.approve(
        run_id, message=message, on_event=None if as_json else render.progress, claimed=by
    )
    code = render.finish(decided, as_json)
    # Still in review after an approval: the merge was refused (main moved and the checks fail
    # on it, a conflict), and the run rests in review again with the reason.
    raise typer.Exit(1 if decided.status == Status.AWAITING_REVIEW else code)


@app.command("request-changes")
def request_changes(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    message: Annotated[
        str, typer.Option("-m", "--message", help="What should change: the agent's feedback.")
    ],
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the run back for another agent round with your words as feedback."""
    verbs = verbs_of(ctx)
    decided = verbs.request_changes(
        run_id, message, on_event=None if as_json else render.progress, claimed=by
    )
    raise typer.Exit(render.finish(decided, as_json))


@app.command()
def reject(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    by: AsOpt = None,
    message: Annotated[str, typer.Option("-m", "--message", help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject a run awaiting review or blocked, or close a failed or over-budget one for good:
    nothing is merged; the branch stays for reference."""
    verbs = verbs_of(ctx)
    decided = verbs.reject(
        run_id, message=message, on_event=None if as_json else render.progress, claimed=by
    )
    code = render.finish(decided, as_json)
    # The verb did what was asked: `jackline reject X && ...` goes on. Any other rest is its own.
    raise typer.Exit(0 if decided.status == Status.REJECTED else code)


@app.command()
def accept(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    finding: Annotated[
        str, typer.Argument(metavar="FINDING", help="Its id, as `jackline show RUN` lists it.")
    ],
    message: Annotated[
        str,
        typer.Option(
            "-m", "--message", help="Why it is accepted (required): recorded, and in the handoff."
        ),
    ] = "",
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accept one finding of a run in review, saying why. A block-level finding is an owner's
    to accept ([review] owners); once each is, another reviewer may approve. It holds for the
    head it was made on: a new round that still has the finding needs it accepted again."""
    made = verbs_of(ctx).accept(run_id, finding, message, claimed=by)
    if as_json:
        render.emit(to_json(made))
    else:
        render.accepted(made)


@app.command()
def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    by: AsOpt = None,
    message: Annotated[str, typer.Option("-m", "--message", help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """End a queued, running, interrupted or waiting run for good: its agent is stopped, its
    workspace kept, who cancelled it recorded. A cancelled run is never resumed."""
    verbs = verbs_of(ctx)
    render.finish(verbs.cancel(run_id, message=message, claimed=by), as_json)


@app.command()
def resume(
    run_id: Annotated[
        str | None, typer.Argument(metavar="[RUN]", help="One run; default: every interrupted run.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drive interrupted runs on, in the foreground; finished steps are not repeated."""
    resumed = api.resume(run_id, on_event=None if as_json else render.progress)
    if as_json:
        render.emit([render.run_json(r) for r in resumed])
    elif not resumed:
        out.print("Nothing to resume: no run was interrupted.")
    for r in [] if as_json else resumed:
        render.finish(r, False)
    # Several runs: the exit code is the gravest of their outcomes.
    raise typer.Exit(max((render.outcome(r) for r in resumed), default=0))
