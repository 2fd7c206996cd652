"""Feature flags: list them, set one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from jackline.cli import render
from jackline.cli.options import JsonOpt, RepoOpt, verbs_of
from jackline.cli.render import out

app = typer.Typer()


flags_app = typer.Typer(
    help="Feature flags in flags.toml: a value per environment, an owner, an expiry.",
    no_args_is_help=True,
)
app.add_typer(flags_app, name="flags")


@flags_app.command("list")
def flags_list(
    ctx: typer.Context,
    repo: RepoOpt = Path("."),
    env: Annotated[
        str | None, typer.Option("--env", help="Only this environment's values.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the flags: the value in force per environment, owner, expiry; expired ones marked."""
    verbs = verbs_of(ctx)
    listing = verbs.flags_list(repo, env)
    if as_json:
        render.emit(listing)
        return
    if not listing["flags"]:
        out.print(f"No flags: {escape(listing['file'])} is absent or holds none.")
        return
    table = Table(box=None, header_style="bold")
    for col in ("flag", *listing["environments"], "owner", "expires", ""):
        table.add_column(escape(col))
    for f in listing["flags"]:
        cells = [_flag_cell(f, e) for e in listing["environments"]]
        marks = ["[bold red]expired[/]"] if f["expired"] else []
        marks += ["[yellow]protected[/]"] if f["protected"] else []
        table.add_row(
            escape(f["name"]),
            *cells,
            escape(f["owner"]),
            escape(str(f["expires"])),
            " ".join(marks),
        )
    out.print(table)


def _flag_cell(flag: dict[str, Any], env: str) -> str:
    """The value in force; dim when it is the flag's default, `-` when there is none."""
    if env not in flag["in_force"]:
        return "[dim]-[/]"
    value = flag["in_force"][env]
    text = escape(value if isinstance(value, str) else json.dumps(value))
    return text if env in flag["values"] else f"[dim]{text}[/]"


@flags_app.command("set")
def flags_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The flag, as named in flags.toml.")],
    value: Annotated[
        str,
        typer.Argument(
            help="true/false, a number, text, or JSON for an object (after -- if it starts with -)."
        ),
    ],
    env: Annotated[str, typer.Option("--env", help="The environment, or `default`.")],
    by: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Act as NAME, recorded as your claim (only where [review] allow_as = true).",
        ),
    ] = None,
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Set a flag in one environment: written to flags.toml (commit it) and audited. A protected
    flag may be changed only by its owner or one of [review] owners."""
    verbs = verbs_of(ctx)
    change = verbs.set_flag(repo, name, value, env, claimed=by)
    if as_json:
        render.emit(change)
        return
    new = json.dumps(change["new"])
    if not change["changed"]:
        out.print(f"{escape(name)} is already {escape(new)} in {escape(env)}; nothing written.")
        return
    old = "unset" if change["old"] is None else json.dumps(change["old"])
    out.print(f"{escape(name)} in {escape(env)}: {escape(old)} -> {escape(new)}")
    out.print(f"Written to {escape(change['path'])}; commit it to make it part of a release.")
