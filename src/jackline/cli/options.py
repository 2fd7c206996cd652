"""The options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RepoOpt = Annotated[Path, typer.Option("--repo", help="The repository (default: the current one).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Act as NAME, recorded as your claim (only where jackline.toml sets [review] "
        "allow_as = true; default: your OS user).",
    ),
]
