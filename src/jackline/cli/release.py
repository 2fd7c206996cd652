"""Releases: start one, the ledger, show one, go, abort, roll back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

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
    table = Table(box=None, header_style="bold")
    for col in ("id", "sha", "status", "by", "go", "author", "age"):
        table.add_column(col)
    for r in found:
        author = r.author_kind + (f" ({r.run_id})" if r.run_id else "")
        table.add_row(
            r.id,
            r.sha[:10],
            render.release_status(r.status, r.env),
            escape(r.started_by),
            escape(r.go_by or "-"),
            escape(author),
            render.age(r.created_at),
        )
    out.print(table)
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
    out.print(f"[bold]{r.id}[/]  {render.release_status(r.status, r.env)}  {r.sha[:10]}")
    out.print(
        f"started by {r.started_by}   go by {r.go_by or '-'}   author {r.author_kind}"
        f"{' (' + r.run_id + ')' if r.run_id else ''}   {render.age(r.created_at)} ago",
        markup=False,
    )
    if r.previous_sha:
        out.print(f"replaces {r.previous_sha[:10]} in production")
    if not r.promotable:
        out.print("[bold red]not promotable[/]: releasing this commit again needs --force REASON")
    if r.forced_reason:
        out.print(f"forced: {escape(r.forced_reason)}")
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    for p in verbs.release_probes(r.id):
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(p.outcome, "[yellow]????[/]")
        first = p.detail.splitlines()[0] if p.detail else ""
        out.print(
            f"  {escape(p.env):<12} {mark} {escape(p.name):<30} {p.duration:6.2f}s  {escape(first)}"
        )


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
