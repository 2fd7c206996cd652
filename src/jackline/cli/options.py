"""The options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jackline.verbs import Verbs

RepoOpt = Annotated[Path, typer.Option("--repo", help="The repository (default: the current one).")]
RepoOrUrlOpt = Annotated[
    str,
    typer.Option(
        "--repo",
        help="The repository: a path (default: the current one) or a URL every worker can "
        "reach (file:///srv/git/app.git, ssh://git@host/app.git, git@host:app.git, "
        "https://host/app.git).",
    ),
]
"""Kept as text: a path type would fold a URL's `//` into one slash."""
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Act as NAME, recorded as your claim (only where jackline.toml sets [review] "
        "allow_as = true; default: your OS user).",
    ),
]


def verbs_of(ctx: typer.Context) -> Verbs:
    """The verbs a command that also works with --server calls: the local API, or the server's
    client (`jackline.cli.choose` puts one in the context). A command that calls `jackline.api`
    itself works on this machine only and is in `LOCAL_ONLY`."""
    chosen: Verbs = ctx.obj
    return chosen
