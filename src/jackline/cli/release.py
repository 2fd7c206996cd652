"""Releases: start one, the ledger, show one, go, abort, roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from jackline.cli import render
from jackline.cli.options import AsOpt, JsonOpt, RepoOpt, verbs_of
from jackline.cli.render import out

app = typer.Typer()


@app.command("release")
def release_cmd(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    sha: Annotated[
        str | None, typer.Option("--sha", help="The commit of main to release (default: its tip).")
    ] = None,
    force: Annotated[
        str | None,
        typer.Option(
            "--force", metavar="REASON", help="Release a commit that was rolled back; say why."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Release a commit of main: gate, then each environment in turn; waits for a person's go."""
    verbs = verbs_of(ctx)
    rel = verbs.release(
        repo, sha, force=force, on_event=None if as_json else render.release_progress
    )
    render.release_finish(rel, as_json)


@app.command("releases")
def releases_cmd(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    figures: Annotated[
        bool,
        typer.Option(
            "--figures",
            help="Change failure rate and time to restore, agent and person changes apart.",
        ),
    ] = False,
) -> None:
    """The release ledger: who started each release, who said go, and how it ended."""
    verbs = verbs_of(ctx)
    if figures:
        counted = verbs.release_figures()
        if as_json:
            render.emit(counted)
        for f in [] if as_json else counted:
            out.print(f["summary"], markup=False)
        return
    found = verbs.releases()
    if as_json:
        render.emit([render.release_json(r) for r in found])
        return
    if not found:
        out.print("No releases yet. Start one with `jackline release`.")
        return
    render.releases_table(found)
    for f in verbs.release_figures():
        out.print(f"[dim]{escape(f['summary'])}[/]")


@app.command("release-show")
def release_show(
    ctx: typer.Context,
    release_id: Annotated[str, typer.Argument(metavar="REL")],
    as_json: JsonOpt = False,
) -> None:
    """Show a release: its commit, who started it and said go, each probe with its timing."""
    verbs = verbs_of(ctx)
    r = verbs.release_get(release_id)
    if as_json:
        render.emit(verbs.release_as_json(r, detail=True))
        return
    render.release_detail(r, verbs.release_probes(r.id))
    render.carried(verbs.release_carries(r.id))


@app.command("go")
def go_cmd(
    ctx: typer.Context,
    release_id: Annotated[str, typer.Argument(metavar="REL")],
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Say go for a release waiting for it (the person who started it may not, by default)."""
    verbs = verbs_of(ctx)
    rel = verbs.go(release_id, on_event=None if as_json else render.release_progress, claimed=by)
    render.release_finish(rel, as_json)


@app.command("abort")
def abort_cmd(
    ctx: typer.Context,
    release_id: Annotated[str, typer.Argument(metavar="REL")],
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a release at its wait; production is left as it was before the release."""
    verbs = verbs_of(ctx)
    rel = verbs.abort(release_id, on_event=None if as_json else render.release_progress, claimed=by)
    render.release_finish(rel, as_json)


@app.command("rollback")
def rollback_cmd(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="REL", help="The release to go back to (default: the one before)."
        ),
    ] = None,
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Roll production back to the previous release; the current one is marked not promotable."""
    verbs = verbs_of(ctx)
    rel = verbs.rollback(
        repo, to, on_event=None if as_json else render.release_progress, claimed=by
    )
    render.release_finish(rel, as_json)
