"""The command line: each command parses its input, calls one verb, renders the answer.

The verbs come through Typer's context: `choose` puts this machine's `jackline.api` there, or
with --server the server's client (`jackline.client.RemoteAPI`); both implement
`jackline.verbs.Verbs`. A command that works only on this machine's files or engine calls
`jackline.api` itself and is in `LOCAL_ONLY`. One module per group of commands (`project`,
`runs`, `review`, `release`, `flags`, `admin`); what they print goes through `render`.

Errors: a `JacklineError` prints `Error: ...` and exits with its code (1, 2 for config); anything
else is a bug and exits 70 with the traceback in `~/.jackline/logs/cli.log`, not on the screen.
With --json, an error is one JSON object on stdout instead. A command that drives a run exits
with its outcome (`errors.EXIT_CODES`).
"""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from typing import Annotated, Any

import typer
import typer.core
import typer.main

from jackline import __version__, api, paths
from jackline.cli import admin, flags, project, release, render, review, runs
from jackline.cli.render import err
from jackline.errors import BUG, Interrupted, JacklineError, Refused
from jackline.surfaces import register_notifiers
from jackline.verbs import Verbs

app = typer.Typer(
    help="Jackline: a production harness for coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
for _commands in (project, runs, review, release, flags, admin):
    app.add_typer(_commands.app)

LOCAL_ONLY = frozenset(
    {
        "init",
        "validate",
        "demo",
        "pool",
        "worker",
        "workers",
        "resume",
        "clean",
        "serve",
        "token",
        "osv",
        "github",
    }
)
"""Commands that work on this machine's files, engine or token table: refused with --server."""


def _version(asked: bool) -> None:
    if asked:
        print(f"jackline {__version__}")
        raise typer.Exit()


@app.callback()
def remote(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="JACKLINE_SERVER",
            metavar="URL",
            help="Talk to a `jackline serve` at URL (token: $JACKLINE_TOKEN) instead of the "
            "local database.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """Jackline: a production harness for coding agents."""
    ctx.obj = choose(server, ctx.invoked_subcommand)


def choose(server: str | None, command: str | None) -> Verbs:
    """The verbs the command calls: this machine's API, or with --server the server's client,
    which answers with the same records, so a remote answer renders as a local one. mypy checks
    both against `Verbs` here (the return type)."""
    if not server:
        return api
    from jackline import client

    if command in LOCAL_ONLY:
        raise Refused(client.local_only(f"jackline {command}"))
    return client.RemoteAPI.from_environment(server)


@functools.cache
def command() -> typer.core.TyperGroup:
    """The command line as click runs it, built from `app` once a process: building it reads the
    signature and type hints of every command (about 0.1 s of CPU), so a process that runs
    several commands, or forks to run one (the tests do), builds it once."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


def main() -> None:
    register_notifiers()  # this process may drive runs: Slack and GitHub hear of them
    as_json = _wants_json(sys.argv[1:])
    code = 0
    try:
        # Not standalone: a usage error comes here too, to be told as JSON where --json asked.
        done = command().main(prog_name="jackline", standalone_mode=False)
        code = done if isinstance(done, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except typer.TyperException as e:  # click's usage errors: exit 2
        code = int(getattr(e, "exit_code", 2))
        if not as_json:
            e.show()  # type: ignore[attr-defined]
        _error("usage", e.format_message(), code, as_json)
    except typer.Abort:
        code = _error("aborted", "aborted", 1, as_json)
    except Interrupted as e:
        from jackline import proc

        proc.halt()  # the commands this process started end with it, their deaths unrecorded
        said = _interrupted(e)
        err.print(said, markup=False)
        code = _error(e.kind, said, e.exit_code, as_json) if as_json else e.exit_code
    except JacklineError as e:
        code = _error(e.kind, str(e), e.exit_code, as_json)
    except KeyboardInterrupt:
        err.print("Interrupted. `jackline resume` drives interrupted runs on.")
        code = 130
    except Exception:
        log = paths.logs() / "cli.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"--- {time.ctime()} {sys.argv}\n{traceback.format_exc()}\n")
        said = f"an unexpected failure (a bug in Jackline); the traceback is in {log}"
        code = _error("bug", said, BUG, as_json)
    _exit(code)


def _interrupted(e: Interrupted) -> str:
    """What Ctrl-C did to the runs this process drove, and the two ways on for each."""
    if not e.run_ids:
        return "Interrupted. `jackline resume` drives interrupted runs on."
    if e.detached:
        return "\n".join(
            f"Stopped following {r}; it goes on {e.where}. `jackline show {r}` shows it, "
            f"`jackline cancel {r}` ends it."
            for r in e.run_ids
        )
    lines = []
    for r in e.run_ids:
        lines += [
            f"Interrupted: {r} stopped where it was; its workspace is kept.",
            f"  jackline resume {r}   drives it on (finished steps are not repeated)",
            f"  jackline cancel {r}   ends it",
        ]
    return "\n".join(lines)


def _wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON: `--json` before any `--` (after it, it is text)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _error(kind: str, message: str, code: int, as_json: bool) -> int:
    """Tell an error: JSON on stdout where --json asked (a script reads one object whatever
    happened), else `Error: ...` on stderr (a usage error has shown itself already)."""
    if as_json:
        render.emit({"error": {"kind": kind, "message": message}, "exit_code": code}, indent=None)
    elif kind != "usage":
        err.print(f"Error: {message}", markup=False)
    return code


def _exit(code: int) -> None:
    pool: Any = sys.modules.get("jackline.workspaces.pool")
    if pool is not None:  # a run took a warm workspace here: its refill ends before the process
        pool.finish_refills(say=lambda line: err.print(line, markup=False))
    engine: Any = sys.modules.get("jackline.engine")
    if engine is None or not (engine.launched() or engine.has_live_threads()):
        sys.exit(code)
    # The engine's state is in the database: the process ends here without waiting for its
    # threads (a workflow thread may be blocked waiting for a review; a review later takes it
    # over), so shutting the engine down never delays a command's exit. A worker has shut its
    # engine down already, but the threads of its workflows may still be blocked: it ends so
    # too, not waiting for them as the interpreter's own exit would.
    engine.leave()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
