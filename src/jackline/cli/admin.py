"""Running Jackline itself: the worker, the pool, the guard hook, MCP, cleaning, the server and its tokens."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from jackline import api, paths
from jackline.cli import render
from jackline.cli.options import JsonOpt, RepoOrUrlOpt
from jackline.cli.render import err, out
from jackline.models import to_json

app = typer.Typer()


@app.command()
def worker(
    repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--repo",
            help="A repository whose schedules to keep (repeatable; default: this one; in "
            "team mode none when not started in one).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help="Team mode: how many runs and releases it works on at once (one waiting "
            "for a person does not count). Default: min(cores, memory in GiB // 2), at least 1.",
        ),
    ] = None,
    workspaces: Annotated[
        Path | None,
        typer.Option(
            "--workspaces",
            envvar="JACKLINE_WORKSPACES",
            metavar="DIR",
            help="Team mode: the folder its runs' workspaces are made in "
            "(default: JACKLINE_HOME/workspaces).",
        ),
    ] = None,
) -> None:
    """Keep the scheduled work going until stopped: the pool's snapshot refresh
    (`[pool] refresh_every`) and the morning report (`[health] every`). In team mode
    (JACKLINE_DATABASE_URL set) it also runs the runs and releases of the shared queue, beats
    a heartbeat into the database, and takes over the work of workers that died."""
    working = api.start_worker(repos, concurrency, workspaces, say=_say)
    if working.me is None and not working.schedules:
        out.print("Nothing is scheduled: set `[pool] refresh_every` or `[health] every`.")
        return
    if working.me is not None:
        _say_worker(working)
    for loop in working.schedules:
        line = f"{loop['kind']:<7} {loop['repo']}  {loop['state']}  ({loop['workflow']})"
        out.print(line, markup=False)
    log = f" The log: {paths.logs() / 'schedule.log'}" if working.schedules else ""
    out.print(f"Working; Ctrl-C or SIGTERM stops.{log}", markup=False)
    api.work_until_stopped(working, say=_say)


def _say(message: str) -> None:
    out.print(f"{time.strftime('%H:%M:%S')} {message}", markup=False)


def _say_worker(working: api.Working) -> None:
    from jackline import executors

    me = working.me
    assert me is not None
    for line in (
        f"Worker {me.id} (host {me.host}, pid {me.pid})",
        f"  works on up to {me.concurrency} run(s) or release(s) at once from the queue `runs` "
        "(one waiting for a person does not count)",
        f"  workspaces in {me.workspaces}",
        f"  beats every {executors.beat_every():g}s; a worker silent for "
        f"{executors.dead_after():g}s is dead, and its runs are taken over",
    ):
        out.print(line, markup=False)


@app.command("workers")
def workers_cmd(as_json: JsonOpt = False) -> None:
    """List the workers (team mode): id, host, pid, concurrency, last beat, alive or dead,
    and the runs each drives."""
    found = api.workers()
    if as_json:
        render.emit(
            [
                {
                    **asdict(w.beat),
                    "alive": w.alive,
                    "beat_age": round(w.age, 1),
                    "runs": list(w.runs),
                }
                for w in found
            ]
        )
        return
    if not found:
        out.print("No worker is running: start one with `jackline worker` (team mode).")
        return
    table = Table(box=None, header_style="bold")
    for col in ("worker", "host", "pid", "concurrency", "last beat", "", "runs"):
        table.add_column(col)
    for w in found:
        state = "[green]alive[/]" if w.alive else "[red]dead[/]"
        table.add_row(
            escape(w.beat.id), escape(w.beat.host), str(w.beat.pid), str(w.beat.concurrency),
            f"{w.age:.0f}s ago", state, escape(", ".join(w.runs)) or "-",
        )  # fmt: skip
    out.print(table)


pool_app = typer.Typer(
    help="Snapshots and warm workspaces: runs that start at once.", no_args_is_help=True
)
app.add_typer(pool_app, name="pool")


@pool_app.command("status")
def pool_status(repo: RepoOrUrlOpt = ".", as_json: JsonOpt = False) -> None:
    """Show the repository's snapshots and warm workspaces, with their age."""
    status = api.pool_status(repo)
    if as_json:
        render.emit(status)
        return
    out.print(f"[bold]{escape(str(status['repo']))}[/]   pool size {status['size']}")
    if not status["snapshots"]:
        out.print("No snapshot yet: `jackline pool refresh` builds one (set-up runs once).")
    for x in status["snapshots"]:
        out.print(
            f"  snapshot {x['key']}  commit {x['commit'][:10]}  {render.duration(x['age'])} old"
        )
    if not status["warm"]:
        out.print("No warm workspace: `jackline pool warm` makes them.")
    for w in status["warm"]:
        running = ", ".join(
            f"{x['name']}:{x['port']}" + ("" if x["alive"] else " (down)") for x in w["services"]
        )
        out.print(
            f"  warm     {w['id']}  {w['method']}  snapshot {w['snapshot']}  "
            f"{render.duration(w['age'])} old" + (f"  services {running}" if running else ""),
            markup=False,
        )


@pool_app.command("warm")
def pool_warm(
    repo: RepoOrUrlOpt = ".",
    size: Annotated[
        int | None, typer.Option("--size", help="How many to keep ready (default: [pool] size).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fill the pool with workspaces from main's snapshot (building the snapshot if needed)."""
    made = api.pool_warm(repo, size, say=lambda m: err.print(f"  {escape(m)}"))
    if as_json:
        render.emit(made)
    else:
        out.print(f"{len(made)} workspace(s) made." if made else "The pool is full.")


@pool_app.command("refresh")
def pool_refresh(repo: RepoOrUrlOpt = ".", as_json: JsonOpt = False) -> None:
    """Build the snapshot for the tip of main (set-up runs once), then refill the pool for it."""
    result = api.pool_refresh(repo, say=lambda m: err.print(f"  {escape(m)}"))
    if as_json:
        render.emit(result)
    else:
        out.print(f"Snapshot {result['snapshot']['key']} ready; {len(result['warmed'])} made.")


@pool_app.command("clear")
def pool_clear(repo: RepoOrUrlOpt = ".", as_json: JsonOpt = False) -> None:
    """Remove the warm workspaces and the snapshots no workspace uses."""
    result = api.pool_clear(repo)
    if as_json:
        render.emit(result)
    else:
        out.print(
            f"Removed {len(result['warm_removed'])} warm workspace(s) and "
            f"{len(result['snapshots_removed'])} snapshot(s)."
        )


guard_app = typer.Typer(help="The in-loop guard agents call before they act.", no_args_is_help=True)
app.add_typer(guard_app, name="guard")


@guard_app.command("hook")
def guard_hook() -> None:
    """Claude Code's PreToolUse hook: reads the tool call as JSON on stdin; denies what the run's
    policy forbids (writes to gates or forbidden paths, git push, commits on main), with a reason.

    Exit 0 with no output allows; exit 0 with a deny decision refuses; exit 2 (bad input, no
    policy) blocks the call: the guard fails closed.
    """
    from jackline.guard import hook

    raise typer.Exit(hook.main(sys.stdin, sys.stdout))


@app.command("mcp")
def mcp_cmd(
    workspace: Annotated[
        Path, typer.Option("--workspace", help="The run's workspace (default: here).")
    ] = Path("."),
    run: Annotated[
        str | None,
        typer.Option("--run", metavar="RUN", help="The run (default: the one the inbox names)."),
    ] = None,
) -> None:
    """Serve Jackline's MCP tools over stdio for an agent in a workspace: task, rules_for,
    infrastructure, checks, run_check, live_release."""
    from jackline.surfaces import mcp

    mcp.serve(workspace, run)


@app.command()
def clean(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[RUN]...",
            help="Runs whose workspaces to remove (default: every finished run's).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Say what would be removed; remove nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove the workspaces kept for finished runs (failed, blocked). Live runs keep theirs."""
    removed = api.clean(run_ids or None, dry_run=dry_run)
    if as_json:
        render.emit(removed)
        return
    if not removed:
        out.print("Nothing to clean: no finished run keeps a workspace.")
        return
    verb = "Would remove" if dry_run else "Removed"
    for item in removed:
        said = f"{verb} {item['workspace']}  ({item['run']}, {item['status']}, {item['size']})"
        out.print(said, markup=False)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="The address to listen on (loopback unless --public).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port (0: any free one).")] = 8700,
    repos: Annotated[
        list[str] | None,
        typer.Option(
            "--repo",
            help="A repository to serve (repeatable; default: this one): a path, or a URL "
            "whose runs any worker takes (file://, ssh://, user@host:path, https://).",
        ),
    ] = None,
    public: Annotated[
        bool,
        typer.Option(
            "--public", help="Allow a non-loopback --host (put HTTPS in front: tokens travel)."
        ),
    ] = False,
    origins: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="The public address browsers use, behind a reverse proxy "
            "(https://jackline.example.com; repeatable): the page's posts must come from it.",
        ),
    ] = None,
) -> None:
    """Serve the JSON API, the web page, Slack and GitHub endpoints and /metrics; work runs too."""
    from jackline.server import serve as server

    server.run(
        host,
        port,
        repos or ["."],
        public,
        say=lambda m: out.print(m, markup=False),
        origins=tuple(server.check_origin(o) for o in origins or ()),
    )


token_app = typer.Typer(
    help="Tokens for the server (the API, the web page, --server), each with a role.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The person it is for: decisions carry this name.")],
    role: Annotated[
        str, typer.Option("--role", help="viewer, reviewer, owner or admin.")
    ] = "viewer",
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="It stops working after this long: 30d, 12h, 2w, 45m."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a token; its secret is printed once and stored only as a digest."""
    token, secret = api.token_create(name, role, duration(expires) if expires else None)
    if as_json:
        secret_json = {"id": token.id, "name": token.name, "role": token.role, "token": secret}
        render.emit({**secret_json, "expires_at": token.expires_at}, indent=None)
        return
    until = f", until {stamp(token.expires_at)}" if token.expires_at else ""
    out.print(
        f"Token {token.id} for {escape(token.name)} ({token.role}{until}); shown once, keep it:"
    )
    print(secret)


def stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """Seconds of `30d`, `12h`, `2w` or `45m`; a usage error names the forms otherwise."""
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in UNITS or not number.isdigit() or int(number) == 0:
        raise typer.BadParameter(
            f"{text!r} is not a length of time: a whole number and m, h, d or w (30d, 12h)",
            param_hint="--expires",
        )
    return int(number) * UNITS[unit]


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """List tokens: id, person, role, when made and last used, revoked or not."""
    from dataclasses import asdict

    found = api.tokens()
    if as_json:
        render.emit([asdict(t) for t in found])
        return
    if not found:
        out.print("No tokens yet: `jackline serve` makes the first admin token.")
        return
    table = Table(box=None, header_style="bold")
    for col in ("id", "name", "role", "age", "last used", ""):
        table.add_column(col)
    for t in found:
        used = f"{render.age(t.last_used)} ago" if t.last_used else "never"
        mark = "[red]revoked[/]" if t.revoked else ""
        if not t.revoked and t.expires_at is not None:
            gone = t.expires_at <= time.time()
            mark = (
                f"[red]expired[/] {stamp(t.expires_at)}" if gone else f"until {stamp(t.expires_at)}"
            )
        table.add_row(t.id, escape(t.name), t.role, render.age(t.created_at), used, mark)
    out.print(table)


@token_app.command("log")
def token_log(as_json: JsonOpt = False) -> None:
    """The server's access log: tokens made and revoked, sign-ins to the web page and those
    refused, oldest first (hash-chained, as a run's log)."""
    found = api.access_log()
    if as_json:
        render.emit([to_json(e) for e in found])
        return
    if not found:
        out.print("Nothing yet: no token was made or revoked, nobody signed in.")
        return
    for e in found:
        render.event(e)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token: it stops working at once."""
    token = api.token_revoke(token_id)
    out.print(f"Revoked {token.id} ({escape(token.name)}, {token.role}).")
