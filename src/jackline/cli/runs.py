"""Runs: start one, list them, show one, its log."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from jackline import api
from jackline.cli import render
from jackline.cli.options import JsonOpt, RepoOrUrlOpt, verbs_of
from jackline.cli.render import err, out
from jackline.errors import NotFound, Refused
from jackline.models import FINAL, Origin, Run, Status
from jackline.verbs import Verbs

app = typer.Typer()


@app.command()
def run(
    ctx: typer.Context,
    task: Annotated[
        str, typer.Argument(help="What the agent should do, e.g. 'Fix the login bug'.")
    ],
    repo: RepoOrUrlOpt = ".",
    agent: Annotated[
        list[str] | None,
        typer.Option(
            "--agent",
            help="Agent name from [agents.NAME]; repeat it to give the task to several agents "
            "at once (parallel attempts).",
        ),
    ] = None,
    attempts: Annotated[
        int,
        typer.Option(
            "--attempts",
            min=1,
            help="Run the task this many times at once, each on its own workspace (at least "
            "once per --agent); the handoff compares them and approving one closes the others.",
        ),
    ] = 1,
    blueprint: Annotated[
        str | None,
        typer.Option(
            "--blueprint",
            help="Blueprint name: standard, local, autofix, or .jackline/blueprints/NAME.toml.",
        ),
    ] = None,
    follow_up: Annotated[
        str | None,
        typer.Option(
            "--follow-up",
            metavar="RUN",
            help="A run whose release was rolled back: its failure goes into this run's task.",
        ),
    ] = None,
    priority: Annotated[
        int,
        typer.Option(
            "--priority",
            help="Its place on a team's queue: lower goes first (added to the repository's "
            "[queue] priority; default 0).",
        ),
    ] = 0,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Print the run's id and return at once: a worker (team mode) or the server "
            "(--server) runs it. `jackline logs RUN -f` follows it.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a task: the agent works in its own workspace until the checks pass, then waits for
    review. In team mode (JACKLINE_DATABASE_URL set) the run is enqueued for the workers and
    followed here until it rests."""
    verbs = verbs_of(ctx)
    _detachable(verbs, detach)
    agents = agent or []
    if attempts > 1 or len(agents) > 1:
        if follow_up is not None:
            raise typer.BadParameter(
                "--follow-up takes one run, not --attempts", param_hint="--follow-up"
            )
        tried = verbs.submit_attempts(
            task,
            repo,
            agents,
            attempts,
            blueprint,
            wait=not detach,
            on_event=None if as_json else render.progress,
            origin=Origin.PERSON,
            priority=priority,
        )
        raise typer.Exit(render.finish_attempts(tried, as_json))
    result = verbs.submit(
        task,
        repo,
        agents[0] if agents else None,
        blueprint,
        wait=not detach,
        on_event=None if as_json else render.progress,
        follow_up=follow_up,
        origin=Origin.PERSON,  # typed here by a person
        priority=priority,
    )
    _finish(result, detach, as_json)


@app.command()
def retry(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    agent: Annotated[
        str | None,
        typer.Option("--agent", help="Agent name from [agents.NAME] (default: the run's)."),
    ] = None,
    message: Annotated[
        str,
        typer.Option(
            "-m",
            "--message",
            help="What should go differently this time; the new run's task carries it, with "
            "how RUN ended.",
        ),
    ] = "",
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Print the new run's id and return at once (team mode or --server).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Try a failed, blocked or over-budget run again: a new run of its task on its repository
    and blueprint, by the same agent or another, followed here as `run` follows one. RUN's log
    records who retried it and as which run."""
    verbs = verbs_of(ctx)
    _detachable(verbs, detach)
    result = verbs.retry(
        run_id,
        agent,
        message,
        wait=not detach,
        on_event=None if as_json else render.progress,
    )
    _finish(result, detach, as_json)


def _finish(result: Run, detach: bool, as_json: bool) -> None:
    """Followed: exit with how the run rests. Detached: its id (or record), at once."""
    if not detach:
        raise typer.Exit(render.finish(result, as_json))
    if as_json:
        render.emit(render.run_json(result))
    else:
        out.print(result.id, markup=False)


def _detachable(verbs: Verbs, detach: bool) -> None:
    """--detach only where someone else drives the run: a worker (team mode) or a server."""
    if detach and verbs is api and not api.team_mode():
        raise Refused(
            "--detach leaves the run to a worker, and on one machine the process that "
            "submits a run drives it: set JACKLINE_DATABASE_URL (team mode) and start "
            "`jackline worker`, or submit to a server with --server"
        )


@app.command("runs")
def list_runs(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs with this status.")
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Only runs this person submitted.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs: a short id (every command takes it for the whole id), task, status, rounds,
    findings, model spend, age. --json gives whole ids."""
    verbs = verbs_of(ctx)
    found = verbs.runs(status, agent=agent, by=by)
    if as_json:
        render.emit([render.run_json(r) for r in found])
        return
    if not found:
        out.print('No runs yet. Start one with `jackline run "TASK"` or try `jackline demo`.')
        return
    render.runs_table(found, verbs.short_ids([r.id for r in found]))


@app.command()
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    as_json: JsonOpt = False,
) -> None:
    """Show a run: status, rounds, the checks of each round, and the handoff."""
    verbs = verbs_of(ctx)
    r = verbs.get(run_id)
    if as_json:
        render.emit(
            {
                **render.run_json(r),
                "round_results": verbs.rounds(r.id),
                "findings": verbs.findings(r.id),
                "handoff_markdown": verbs.handoff_text(r),  # as the API's run detail
            },
        )
        return
    render.run_detail(r, verbs.rounds(r.id), verbs.findings(r.id), verbs.handoff_text(r))


def _kept(verbs: Verbs, run_id: str, name: str | None) -> None:
    """What the run kept: the names, or the one named (exit 1 when it kept no such thing)."""
    names = verbs.artifact_names(run_id)
    if name is None:
        for kept in names:
            out.print(kept, markup=False, highlight=False)
        return
    text = verbs.artifact_text(run_id, name)
    if text is None:
        shown = ", ".join(names) or "nothing yet"
        raise NotFound(f"{run_id} kept no {name!r}; it kept: {shown}")
    typer.echo(text, nl=not text.endswith("\n"))  # as kept: no wrapping, no markup


@app.command()
def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until the run ends.")
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check the whole chain (keyed macs, links, the recorded head) and exit 1 "
            "unless it is verified.",
        ),
    ] = False,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            metavar="NAME",
            help="Print one log or record the run kept (`round-1/test.log`, `change.diff`; "
            "`--files` lists them) instead of its audit log.",
        ),
    ] = None,
    files: Annotated[
        bool, typer.Option("--files", help="List what the run kept: its handoff, change and logs.")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Print each event whole: every field, and each text it kept (a check's, "
            "set-up's or the agent's output, the feedback) as lines of its own. Without it, "
            "each event is the one line the web page shows (an agent's step with its output).",
        ),
    ] = False,
) -> None:
    """Print the run's audit log (redacted); a changed event shows as a broken chain."""
    verbs = verbs_of(ctx)
    r = verbs.get(run_id)
    if verify:
        _verify(verbs, r.id, full)
        return
    if files or file is not None:
        _kept(verbs, r.id, file)
        return
    new_events = verbs.follow(r.id)
    while True:
        for event in new_events():
            render.event(event, full)
        status = verbs.get(r.id).status
        if not follow or status in FINAL:
            return
        if status == Status.INTERRUPTED:  # nothing more will come until someone resumes it
            err.print(f"{r.id} is interrupted: `jackline resume {r.id}` drives it on.")
            return
        time.sleep(0.5)


def _verify(verbs: Verbs, run_id: str, full: bool = False) -> None:
    for event in verbs.events(run_id):
        render.event(event, full)
    verdict = verbs.verify(run_id)
    colour = "green" if not verdict.broken else "bold red"
    out.print(f"[{colour}]{escape(verdict.render())}[/]")
    if verdict.broken:
        raise typer.Exit(1)
