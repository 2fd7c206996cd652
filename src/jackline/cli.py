"""The command line: each command parses its input, calls one `api` function, renders the answer.

Errors: a `JacklineError` prints `Error: ...` and exits with its code (1, 2 for config); anything
else is a bug and exits 70 with the traceback in `~/.jackline/logs/cli.log`, not on the screen.
With --json, an error is one JSON object on stdout instead. A command that drives a run exits
with its outcome (`errors.EXIT_CODES`).

Every piece of text a person, an agent or a check wrote goes through `escape` before Rich reads
it as markup (or is printed with markup=False): `[/api]` in a task is text, not a closing tag.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown, TableElement
from rich.markup import escape
from rich.table import Table

from jackline import __version__, api, paths
from jackline.errors import BUG, EXIT_CODES, Interrupted, JacklineError
from jackline.guard.audit import Event
from jackline.models import FINAL, Run

app = typer.Typer(
    help="Jackline: a production harness for coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

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
STATUS_STYLE = {
    "awaiting_review": "yellow",
    "failed": "red",
    "over_budget": "red",
    "blocked": "bold red",
    "merged": "green",
    "rejected": "magenta",
    "running": "cyan",
    "queued": "dim",
    "merging": "cyan",
    "interrupted": "bold yellow",
    "cancelled": "magenta",
}


@app.command()
def init(
    repo: RepoOpt = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing jackline.toml.")
    ] = False,
) -> None:
    """Write jackline.toml for this repository, with the checks it already uses."""
    from jackline import git as g
    from jackline import init as initialise

    root = g.toplevel(repo)
    main_branch = g.current_branch(root) or "main"
    path, found = initialise.write(root, main_branch, force)
    out.print(f"Wrote {escape(str(path))}")
    for name, check in found["checks"].items():
        out.print(escape(f"  check {name}: {check['command']} ({check['parser']})"))
    if not found["checks"]:
        out.print("  no checks found: add them under \\[checks.NAME]")
    out.print(
        "Next: export ANTHROPIC_API_KEY (or set \\[agents.default] to your agent), "
        "then `jackline validate`."
    )


@app.command()
def validate(repo: RepoOpt = Path(".")) -> None:
    """Check jackline.toml, and what a run of it needs: main, the agent's program, each check's
    tool. Every problem is named with its key and what is expected."""
    config, warnings = api.validate(repo)
    for warning in warnings:
        out.print(f"[yellow]warning:[/] jackline.toml: {escape(warning)}")
    out.print(
        f"jackline.toml is valid: {len(config.checks)} check(s) "
        f"({', '.join(config.checks) or 'none'}), {len(config.agents)} agent(s) "
        f"({', '.join(config.agents) or 'none'}), max_rounds={config.blueprint.max_rounds}",
        markup=False,
    )


@app.command()
def run(
    task: Annotated[
        str, typer.Argument(help="What the agent should do, e.g. 'Fix the login bug'.")
    ],
    repo: RepoOpt = Path("."),
    agent: Annotated[
        str | None, typer.Option("--agent", help="Agent name from [agents.NAME].")
    ] = None,
    blueprint: Annotated[
        str | None, typer.Option("--blueprint", help="Blueprint name (standard, local).")
    ] = None,
    follow_up: Annotated[
        str | None,
        typer.Option(
            "--follow-up",
            metavar="RUN",
            help="A run whose release was rolled back: its failure goes into this run's task.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a task: the agent works in its own workspace until the checks pass, then waits for review."""
    result = api.submit(
        task, repo, agent, blueprint, on_event=None if as_json else progress, follow_up=follow_up
    )
    raise typer.Exit(_finish(result, as_json))


@app.command("runs")
def list_runs(
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs with this status.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs: a short id (every command takes it for the whole id), task, status, rounds,
    findings, model spend, age. --json gives whole ids."""
    found = api.runs(status)
    if as_json:
        print(json.dumps([api.as_json(r) for r in found], indent=2))
        return
    if not found:
        out.print('No runs yet. Start one with `jackline run "TASK"` or try `jackline demo`.')
        return
    short = api.short_ids([r.id for r in found])
    table = Table(box=None, header_style="bold")
    for col in ("id", "task", "status", "rounds", "findings", "spend", "age"):
        table.add_column(col, justify="right" if col == "spend" else "left", no_wrap=col == "id")
    for r in found:
        table.add_row(
            short[r.id],
            escape(_short(r.task, 50)),
            _status(r.status),
            str(r.rounds),
            _counts(r),
            f"${r.spend:.2f}" if r.spend or r.tokens else "-",
            _age(r.created_at),
        )
    out.print(table)


@app.command()
def show(run_id: Annotated[str, typer.Argument(metavar="RUN")], as_json: JsonOpt = False) -> None:
    """Show a run: status, rounds, the checks of each round, and the handoff."""
    r = api.get(run_id)
    if as_json:
        print(
            json.dumps(
                {
                    **api.as_json(r),
                    "round_results": api.rounds(r.id),
                    "findings": api.findings(r.id),
                },
                indent=2,
            )
        )
        return
    out.print(f"[bold]{r.id}[/]  {_status(r.status)}  {escape(r.task)}")
    out.print(
        f"branch {r.branch}   rounds {r.rounds}   by {r.submitted_by}   {_age(r.created_at)} ago",
        markup=False,
    )
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    if r.status == "interrupted":
        out.print(
            f"The process that drove it is gone: `jackline resume {r.id}` drives it on, "
            f"`jackline cancel {r.id}` ends it.",
            markup=False,
        )
    rounds = api.rounds(r.id)
    for rnd in rounds:
        checks = ", ".join(
            f"{c['name']} {'pass' if c['passed'] else 'FAIL (' + c['summary'] + ')'}"
            for c in rnd["checks"]
        )
        checks = checks or ("checks not run" if rnd.get("checks_skipped") else "no checks")
        agent = f"; {rnd['problem']}" if rnd.get("problem") else ""
        out.print(f"  round {rnd['round']}: {checks}{agent}", markup=False, highlight=False)
    _show_unexplained(rounds[-1]["checks"] if rounds else [])
    _show_agent_tail(rounds[-1] if rounds else {})
    found = api.findings(r.id)
    if found:
        out.print(f"findings: {r.blocking} block, {r.warnings} warn")
        for f in found:
            where = f"{f.get('file') or ''}{':' + str(f['line']) if f.get('line') else ''}"
            style = {"block": "bold red", "warn": "yellow"}.get(f["level"], "dim")
            said = escape(f"{f['rule']}  {where}  {f['message']}")
            out.print(f"  [{style}]{f['level']:5}[/] {said}")
    text = api.handoff_text(r)
    if text:
        out.rule("handoff")
        _print_markdown(text)
        out.print(f"[dim]{escape(r.handoff or '')}[/]")


def _show_agent_tail(rnd: dict[str, Any]) -> None:
    """What the agent printed last, where the latest round failed because of it."""
    agent = rnd.get("agent") or {}
    if rnd.get("problem") and agent.get("tail"):
        out.print(f"  the agent (exit {agent['exit_code']}) printed last:", highlight=False)
        out.print(_indent(agent["tail"]), markup=False, highlight=False)


def _show_unexplained(checks: list[dict[str, Any]]) -> None:
    """What the latest round's failed checks printed last, where no parser found why."""
    for c in checks:
        if not c["passed"] and not c.get("explained", True) and c.get("output_tail"):
            out.print(f"  {c['name']} printed last:", markup=False, highlight=False)
            out.print(_indent(c["output_tail"]), markup=False, highlight=False)


@app.command()
def logs(
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
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Print each event whole: every field, and each text it kept (a check's, "
            "set-up's or the agent's output, the feedback) as lines of its own. Without it, "
            "an event other than the agent's is one line cut at 160 characters.",
        ),
    ] = False,
) -> None:
    """Print the run's audit log (redacted); a changed event shows as a broken chain."""
    r = api.get(run_id)
    if verify:
        _verify(r.id, full)
        return
    last = 0
    while True:
        for event in api.events(r.id, after=last):
            _print_event(event, full)
            last = event.seq
        status = api.get(r.id).status
        if not follow or status in FINAL:
            return
        if status == "interrupted":  # nothing more will come until someone resumes it
            err.print(f"{r.id} is interrupted: `jackline resume {r.id}` drives it on.")
            return
        time.sleep(0.5)


def _verify(run_id: str, full: bool = False) -> None:
    for event in api.events(run_id):
        _print_event(event, full)
    verdict = api.verify(run_id)
    colour = "green" if not verdict.broken else "bold red"
    out.print(f"[{colour}]{escape(verdict.render())}[/]")
    if verdict.broken:
        raise typer.Exit(1)


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    by: AsOpt = None,
    message: Annotated[str, typer.Option("-m", "--message", help="A note for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a run: the harness merges its branch into main (checks re-run if main moved)."""
    decided = api.approve(
        run_id, message=message, on_event=None if as_json else progress, claimed=by
    )
    code = _finish(decided, as_json)
    # Still in review after an approval: the merge was refused (main moved and the checks fail
    # on it, a conflict), and the run rests in review again with the reason.
    raise typer.Exit(1 if decided.status == "awaiting_review" else code)


@app.command("request-changes")
def request_changes(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    message: Annotated[
        str, typer.Option("-m", "--message", help="What should change: the agent's feedback.")
    ],
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send the run back for another agent round with your words as feedback."""
    decided = api.request_changes(
        run_id, message, on_event=None if as_json else progress, claimed=by
    )
    raise typer.Exit(_finish(decided, as_json))


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    by: AsOpt = None,
    message: Annotated[str, typer.Option("-m", "--message", help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject a run: nothing is merged; the branch stays for reference."""
    decided = api.reject(
        run_id, message=message, on_event=None if as_json else progress, claimed=by
    )
    code = _finish(decided, as_json)
    # The verb did what was asked: `jackline reject X && ...` goes on. Any other rest is its own.
    raise typer.Exit(0 if decided.status == "rejected" else code)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    by: AsOpt = None,
    message: Annotated[str, typer.Option("-m", "--message", help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """End a queued, running, interrupted or waiting run for good: its agent is stopped, its
    workspace kept, who cancelled it recorded. A cancelled run is never resumed."""
    _finish(api.cancel(run_id, message=message, claimed=by), as_json)


@app.command()
def resume(
    run_id: Annotated[
        str | None, typer.Argument(metavar="[RUN]", help="One run; default: every interrupted run.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drive interrupted runs on, in the foreground; finished steps are not repeated."""
    resumed = api.resume(run_id, on_event=None if as_json else progress)
    if as_json:
        print(json.dumps([api.as_json(r) for r in resumed], indent=2))
    elif not resumed:
        out.print("Nothing to resume: no run was interrupted.")
    for r in [] if as_json else resumed:
        _finish(r, False)
    # Several runs: the exit code is the gravest of their outcomes.
    raise typer.Exit(max((_outcome(r) for r in resumed), default=0))


@app.command()
def worker(
    repos: Annotated[
        list[Path] | None,
        typer.Option(
            "--repo", help="A repository whose schedules to keep (repeatable; default: this one)."
        ),
    ] = None,
) -> None:
    """Keep the scheduled work going until stopped: the pool's snapshot refresh
    (`[pool] refresh_every`) and the morning report (`[health] every`)."""
    loops = api.worker(repos or [Path(".")])
    if not loops:
        out.print("Nothing is scheduled: set `[pool] refresh_every` or `[health] every`.")
        return
    for loop in loops:
        line = f"{loop['kind']:<7} {loop['repo']}  {loop['state']}  ({loop['workflow']})"
        out.print(line, markup=False)
    out.print(
        f"Working; Ctrl-C or SIGTERM stops. The log: {paths.logs() / 'schedule.log'}", markup=False
    )
    api.work_until_stopped()


pool_app = typer.Typer(
    help="Snapshots and warm workspaces: runs that start at once.", no_args_is_help=True
)
app.add_typer(pool_app, name="pool")


@pool_app.command("status")
def pool_status(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Show the repository's snapshots and warm workspaces, with their age."""
    status = api.pool_status(repo)
    if as_json:
        print(json.dumps(status, indent=2))
        return
    out.print(f"[bold]{escape(str(status['repo']))}[/]   pool size {status['size']}")
    if not status["snapshots"]:
        out.print("No snapshot yet: `jackline pool refresh` builds one (set-up runs once).")
    for x in status["snapshots"]:
        out.print(f"  snapshot {x['key']}  commit {x['commit'][:10]}  {_duration(x['age'])} old")
    if not status["warm"]:
        out.print("No warm workspace: `jackline pool warm` makes them.")
    for w in status["warm"]:
        running = ", ".join(
            f"{x['name']}:{x['port']}" + ("" if x["alive"] else " (down)") for x in w["services"]
        )
        out.print(
            f"  warm     {w['id']}  {w['method']}  snapshot {w['snapshot']}  "
            f"{_duration(w['age'])} old" + (f"  services {running}" if running else ""),
            markup=False,
        )


@pool_app.command("warm")
def pool_warm(
    repo: RepoOpt = Path("."),
    size: Annotated[
        int | None, typer.Option("--size", help="How many to keep ready (default: [pool] size).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fill the pool with workspaces from main's snapshot (building the snapshot if needed)."""
    made = api.pool_warm(repo, size, say=lambda m: err.print(f"  {escape(m)}"))
    if as_json:
        print(json.dumps(made, indent=2))
    else:
        out.print(f"{len(made)} workspace(s) made." if made else "The pool is full.")


@pool_app.command("refresh")
def pool_refresh(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Build the snapshot for the tip of main (set-up runs once), then refill the pool for it."""
    result = api.pool_refresh(repo, say=lambda m: err.print(f"  {escape(m)}"))
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        out.print(f"Snapshot {result['snapshot']['key']} ready; {len(result['warmed'])} made.")


@pool_app.command("clear")
def pool_clear(repo: RepoOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Remove the warm workspaces and the snapshots no workspace uses."""
    result = api.pool_clear(repo)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        out.print(
            f"Removed {len(result['warm_removed'])} warm workspace(s) and "
            f"{len(result['snapshots_removed'])} snapshot(s)."
        )


flags_app = typer.Typer(
    help="Feature flags in flags.toml: a value per environment, an owner, an expiry.",
    no_args_is_help=True,
)
app.add_typer(flags_app, name="flags")


@flags_app.command("list")
def flags_list(
    repo: RepoOpt = Path("."),
    env: Annotated[
        str | None, typer.Option("--env", help="Only this environment's values.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the flags: the value in force per environment, owner, expiry; expired ones marked."""
    listing = api.flags_list(repo, env)
    if as_json:
        print(json.dumps(listing, indent=2))
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
    change = api.set_flag(repo, name, value, env, claimed=by)
    if as_json:
        print(json.dumps(change, indent=2))
        return
    new = json.dumps(change["new"])
    if not change["changed"]:
        out.print(f"{escape(name)} is already {escape(new)} in {escape(env)}; nothing written.")
        return
    old = "unset" if change["old"] is None else json.dumps(change["old"])
    out.print(f"{escape(name)} in {escape(env)}: {escape(old)} -> {escape(new)}")
    out.print(f"Written to {escape(change['path'])}; commit it to make it part of a release.")


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
        print(json.dumps(removed, indent=2))
        return
    if not removed:
        out.print("Nothing to clean: no finished run keeps a workspace.")
        return
    verb = "Would remove" if dry_run else "Removed"
    for item in removed:
        said = f"{verb} {item['workspace']}  ({item['run']}, {item['status']}, {item['size']})"
        out.print(said, markup=False)


@app.command()
def health(
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown for posting (chat, an issue).")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 1 when anything needs attention or could not be told."),
    ] = False,
) -> None:
    """The morning report from [health]: main's checks, error rates, vulnerable dependencies,
    services, and what waits for a person; what needs attention first.

    Exits 0 even when something needs attention, as a monitoring probe whose output is the
    answer; with --strict it exits 1 then, for a scheduled job that should fail loudly.
    """
    from jackline.health import render

    if as_json and markdown:
        raise typer.BadParameter("--json and --markdown: choose one")
    report = api.health(repo)
    if as_json:
        print(render.to_json(report))
    elif markdown:
        print(render.to_markdown(report), end="")
    else:
        out.print(render.table(report))
    if strict and report.attention:
        raise typer.Exit(1)


@app.command()
def demo(as_json: JsonOpt = False) -> None:
    """The whole path on a bundled example project, with a scripted agent: no model needed."""
    from jackline import demo as d

    d.require_tools()
    problem = d.sandbox_problem()
    repo = d.make_repo(sandboxed=problem is None)
    say = err.print if as_json else out.print
    if problem:
        err.print(
            f"[yellow]Note:[/] {escape(problem)}. The demo's agent is scripted, so the demo "
            "runs without the sandbox; real runs refuse until bubblewrap is installed."
        )
    say(f"[bold]Jackline demo[/] on a copy of the shop example: {escape(str(repo))}")
    say(f"Task: {escape(d.TASK)}\n")
    result = api.submit(d.TASK, repo, agent="scripted", on_event=progress)
    if result.status != "awaiting_review":
        _finish(result, as_json)
        raise typer.Exit(1)
    if not as_json:
        text = api.handoff_text(result)
        if text:
            out.rule("the handoff a reviewer reads")
            _print_markdown(text)
            out.rule()
    say(f"\n{d.REVIEWER} approves {result.id}")
    merged = api.approve(
        result.id, message="Looks right; thanks.", on_event=progress, claimed=d.REVIEWER
    )
    if merged.status != "merged":
        _finish(merged, as_json)
        raise typer.Exit(1)
    try:
        releases, second = _demo_releases(repo, say)
    finally:
        d.stop_shops(repo)
    if as_json:
        print(
            json.dumps(
                {
                    **api.as_json(merged),
                    "releases": [api.release_as_json(r) for r in releases],
                    "second_run": api.as_json(second),
                    "figures": api.release_figures(repo),
                },
                indent=2,
            )
        )
        return
    out.print(
        f"\nSee it again: jackline show {merged.id}   |   jackline releases --repo {repo}",
        markup=False,
    )
    out.print(f"The repository: git -C {repo} log --oneline --graph --all", markup=False)


def _demo_releases(repo: Path, say: Any) -> tuple[list[Any], Run]:
    """Merged is not live: release the fix (staging, go, production), then an agent's change
    that production's data trips, which Jackline rolls back by itself."""
    from jackline import demo as d
    from jackline import demo_release

    say(f"\n[bold]Merged is not live.[/] {d.RELEASER} releases main:")
    first = api.release(repo, on_event=release_progress, claimed=d.RELEASER)
    if first.status == "awaiting_go":
        say(f"  {d.RELEASER} may not say go for their own release; {d.REVIEWER} does")
        first = api.go(first.id, on_event=release_progress, claimed=d.REVIEWER)
    say(f"  {first.id} is [bold]{first.status}[/]")
    order = demo_release.place_order(d.production_url(repo))
    say(f"\nA customer orders in production (order {order.get('id', '?')}).")
    say(f"\n[bold]A second task[/]: {escape(d.CURRENCY_TASK)}")
    second = api.submit(d.CURRENCY_TASK, repo, agent="scripted-currency", on_event=progress)
    if second.status == "awaiting_review":
        say(f"{d.REVIEWER} approves {second.id}")
        second = api.approve(second.id, on_event=progress, claimed=d.REVIEWER)
    say(f"\n{d.RELEASER} releases main again:")
    again = api.release(repo, on_event=release_progress, claimed=d.RELEASER)
    if again.status == "awaiting_go":
        again = api.go(again.id, on_event=release_progress, claimed=d.REVIEWER)
    say(f"  {again.id} is [bold]{again.status}[/]: {escape(again.reason)}")
    if again.status == "rolled_back":
        say(
            f"  Production runs {first.sha[:10]} again; {second.id} has the failure as feedback: "
            f'jackline run --follow-up {second.id} "Fix the order list"'
        )
    say("")
    for f in api.release_figures(repo):
        say(escape(f["summary"]))
    return [first, again], second


# releases ---------------------------------------------------------------------------------

RELEASE_STYLE = {
    "awaiting_go": "yellow",
    "paused": "bold yellow",
    "live": "green",
    "failed": "red",
    "rolled_back": "bold red",
    "aborted": "magenta",
}


@app.command("release")
def release_cmd(
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
    rel = api.release(repo, sha, force=force, on_event=None if as_json else release_progress)
    _release_finish(rel, as_json)


@app.command("releases")
def releases_cmd(
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
    if figures:
        counted = api.release_figures()
        if as_json:
            print(json.dumps(counted, indent=2))
        for f in [] if as_json else counted:
            out.print(f["summary"], markup=False)
        return
    found = api.releases()
    if as_json:
        print(json.dumps([api.release_as_json(r) for r in found], indent=2))
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
            _release_status(r.status, r.env),
            escape(r.started_by),
            escape(r.go_by or "-"),
            escape(author),
            _age(r.created_at),
        )
    out.print(table)
    for f in api.release_figures():
        out.print(f"[dim]{escape(f['summary'])}[/]")


@app.command("release-show")
def release_show(
    release_id: Annotated[str, typer.Argument(metavar="REL")], as_json: JsonOpt = False
) -> None:
    """Show a release: its commit, who started it and said go, each probe with its timing."""
    r = api.release_get(release_id)
    if as_json:
        print(json.dumps(api.release_as_json(r, detail=True), indent=2))
        return
    out.print(f"[bold]{r.id}[/]  {_release_status(r.status, r.env)}  {r.sha[:10]}")
    out.print(
        f"started by {r.started_by}   go by {r.go_by or '-'}   author {r.author_kind}"
        f"{' (' + r.run_id + ')' if r.run_id else ''}   {_age(r.created_at)} ago",
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
    for p in api.release_probes(r.id):
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(p.outcome, "[yellow]????[/]")
        first = p.detail.splitlines()[0] if p.detail else ""
        out.print(
            f"  {escape(p.env):<12} {mark} {escape(p.name):<30} {p.duration:6.2f}s  {escape(first)}"
        )


@app.command("go")
def go_cmd(
    release_id: Annotated[str, typer.Argument(metavar="REL")],
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Say go for a release waiting for it (the person who started it may not, by default)."""
    rel = api.go(release_id, on_event=None if as_json else release_progress, claimed=by)
    _release_finish(rel, as_json)


@app.command("abort")
def abort_cmd(
    release_id: Annotated[str, typer.Argument(metavar="REL")],
    by: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a release at its wait; production is left as it was before the release."""
    rel = api.abort(release_id, on_event=None if as_json else release_progress, claimed=by)
    _release_finish(rel, as_json)


@app.command("rollback")
def rollback_cmd(
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
    rel = api.rollback(repo, to, on_event=None if as_json else release_progress, claimed=by)
    _release_finish(rel, as_json)


def release_progress(release_id: str, event: Event) -> None:
    line = _describe_release(event)
    if line:
        err.print(f"  [dim]{time.strftime('%H:%M:%S', time.localtime(event.ts))}[/] {line}")


def _describe_release(e: Event) -> str | None:
    d = e.data
    if e.kind == "release.started":
        return escape(f"release   {d['sha'][:10]} by {d['by']} ({d['author_kind']})")
    if e.kind == "release.gate":
        if d["ok"]:
            return f"gate      pass (live: {(d['live_sha'] or 'nothing')[:10]})"
        return "gate      [red]BLOCKED[/]\n" + "\n".join(f"    {escape(p)}" for p in d["problems"])
    if e.kind in ("release.deploy", "release.rollback"):
        mark = "[green]ok[/]" if d["exit_code"] == 0 else f"[red]exit {d['exit_code']}[/]"
        return f"{e.kind[8:]:<9} {escape(d['env'])}: `{escape(_short(d['command'], 60))}` {mark}"
    if e.kind == "release.probe" and d["name"] not in ("deploy", "rollback"):
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(
            d["outcome"], "[yellow]inconclusive[/]"
        )
        first = d["detail"].splitlines()[0] if d["detail"] else ""
        return f"probe     {escape(d['env'])}: {escape(d['name'])} {mark} ({d['duration']:.2f}s) {escape(first)}"
    if e.kind == "release.soak":
        return escape(f"soak      {d['env']}: watching for {d['seconds']}s")
    if e.kind == "release.waiting":
        return f"[yellow]waiting[/]   for {escape(d['why'])}"
    if e.kind in ("release.go", "release.abort", "release.go_refused"):
        return escape(f"{e.kind[8:]:<9} by {d['by']}")
    if e.kind == "release.promoted":
        return escape(f"promote   {d['branch']} -> {d['sha'][:10]}")
    if e.kind == "release.live":
        return escape(f"live      {d['env']}: {d['sha'][:10]}")
    if e.kind == "release.rolled_back":
        back = escape(f"{d['env']} back to {(d['to'] or 'nothing')[:10]}: {d['reason']}")
        return f"[bold red]rollback[/]  {back}"
    if e.kind == "release.finished":
        return escape(f"finished  {d['outcome']}")
    return None


def _release_status(status: str, env: str = "") -> str:
    where = f" ({env})" if env and status in ("awaiting_go", "paused") else ""
    return f"[{RELEASE_STYLE.get(status, 'cyan')}]{escape(status + where)}[/]"


def _release_finish(r: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(api.release_as_json(r), indent=2))
        return
    out.print(f"\n{r.id}  {_release_status(r.status, r.env)}  {r.sha[:10]}")
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    if r.status == "awaiting_go":
        out.print(
            f"Waiting for a person's go for {r.env}: jackline go {r.id} --as NAME "
            f"(someone other than {r.started_by}), or jackline abort {r.id}",
            markup=False,
        )
    if r.status == "paused":
        out.print(
            f"Paused: a probe of {r.env} was inconclusive. Look (jackline release-show {r.id}), "
            f"then jackline go {r.id} to go on, or jackline abort {r.id}"
        )


# rendering --------------------------------------------------------------------------------


def progress(run_id: str, event: Event) -> None:
    line = _describe(event)
    if line:
        err.print(f"  [dim]{time.strftime('%H:%M:%S', time.localtime(event.ts))}[/] {line}")


def _describe(e: Event) -> str | None:
    d = e.data
    if e.kind == "workspace":
        box = d.get("sandbox", "none")
        return escape(f"prepare   workspace ready on {d['branch']} ({d['method']}, sandbox {box})")
    if e.kind == "warning":
        return f"[bold yellow]warning[/]   {escape(d['message'])}"
    if e.kind == "hydrate":
        # The feedback is told when it is handed over, not promised when a round fails: after
        # the last round there is none to give.
        fed = f", and round {d['round'] - 1}'s feedback" if d.get("feedback") else ""
        rules = escape(", ".join(d["rules"]) or "-")
        return f"round {d['round']}   brief with {len(d['rules'])} rule(s): {rules}{fed}"
    if e.kind == "command" and d.get("step") == "agent":
        return f"round {d['round']}   agent exited {d['exit_code']} after {d['duration']:.1f}s"
    if e.kind == "command" and str(d.get("step", "")).startswith("check:"):
        mark = "[green]pass[/]" if d["exit_code"] == 0 else "[red]FAIL[/]"
        return f"          check {escape(d['step'][6:])} {mark} ({d['duration']:.1f}s)"
    if e.kind == "setup":  # set-up may take a minute: each command is told as it starts
        return f"prepare   {_setup_label(d)} ..."
    if e.kind == "command" and d.get("step") == "setup":
        return f"prepare   {_setup_label(d)} exited {d['exit_code']} after {d['duration']:.1f}s"
    if e.kind == "scope":
        reverted = escape(", ".join(d["reverted"]))
        return f"round {d['round']}   [yellow]reverted out-of-scope writes:[/] {reverted}"
    if e.kind == "round" and not d["passed"]:
        return f"round {d['round']}   {escape(d.get('problem') or 'checks failed')}"
    if e.kind == "scan":
        counts = f"{d['blocking']} block, {d['warnings']} warn"
        return f"scan      {'[red]' + counts + '[/]' if d['blocking'] else counts}"
    if e.kind == "commit":
        return f"commit    {d['sha'][:10]}"
    if e.kind == "publish":
        return escape(f"publish   {d['branch']} -> {d['repo']}")
    if e.kind == "handoff":
        return escape(f"handoff   {d['outcome']}: {d['path']}")
    if e.kind == "decision":
        return escape(f"review    {d['decision'].replace('_', ' ')} by {d['by']}")
    if e.kind == "merge":
        return escape(f"merge     {d['outcome']} {d.get('sha', '')[:10] or d.get('reason', '')}")
    if e.kind == "onto_main":
        clash = f"; conflicts marked in {', '.join(d['conflicts'])}" if d["conflicts"] else ""
        return escape(f"rebase    {d['main']} moved: the round starts on {d['sha'][:10]}{clash}")
    if e.kind in ("agent.command", "agent.edit", "agent.tool"):
        mark = " [red](failed)[/]" if d.get("error") or d.get("exit_code") not in (None, 0) else ""
        return f"round {d['round']}   {e.kind[6:]:<7} {escape(_short(d['summary'], 90))}{mark}"
    if e.kind == "agent.usage" and d.get("tokens"):
        return f"round {d['round']}   used {d['tokens']:,} tokens (${d['cost_usd']:.4f})"
    if e.kind == "budget":
        return f"[red]budget[/]    {escape(d['over'])}"
    return None


class _FoldingTable(TableElement):
    """A markdown table whose cells wrap a long word (a command, a path) instead of cutting it
    with an ellipsis."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for table in super().__rich_console__(console, options):
            if isinstance(table, Table):
                for column in table.columns:
                    column.overflow = "fold"
            yield table


class _Handoff(Markdown):
    elements = {**Markdown.elements, "table_open": _FoldingTable}


def _print_markdown(text: str) -> None:
    """The handoff, wrapped to the terminal: the console's soft wrap would crop list items and
    code blocks at its width instead (what a reviewer reads must end where the text does)."""
    out.print(_Handoff(text), soft_wrap=False)


def _setup_label(d: dict[str, Any]) -> str:
    number = f" {d['number']}/{d['of']}" if "number" in d else ""
    return f"set-up{number} `{escape(_short(d['command'], 60))}`"


def _print_event(e: Event, full: bool = False) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
    chain = (
        "" if e.intact else "  [bold red]CHAIN BROKEN: this event or one before it was changed[/]"
    )
    if e.kind.startswith("agent.") and "summary" in e.data:
        # What the agent did, as its transcript says: the summary, then the output in full.
        d = e.data
        code = f" (exit {d['exit_code']})" if d.get("exit_code") is not None else ""
        out.print(
            f"{e.seq:>4} {stamp} [bold]{e.kind:<10}[/] round {d.get('round')}: "
            f"{escape(d['summary'])}{code}{chain}"
        )
        if d.get("detail"):
            out.print(escape(_indent(str(d["detail"]))))
        return
    if full:
        out.print(f"{e.seq:>4} {stamp} [bold]{e.kind:<10}[/]{chain}")
        out.print("\n".join(_fields(e.data, " " * 7)), markup=False)
        return
    body = json.dumps(e.data, sort_keys=True)
    out.print(f"{e.seq:>4} {stamp} [bold]{e.kind:<10}[/] {escape(_short(body, 160))}{chain}")


def _fields(value: dict[str, Any] | list[Any], pad: str) -> list[str]:
    """Every field of an event, nested ones indented, a text of several lines as a block."""
    lines = []
    pairs = sorted(value.items()) if isinstance(value, dict) else [("-", v) for v in value]
    for key, v in pairs:
        label = f"{pad}{key}" + (":" if isinstance(value, dict) else "")
        if isinstance(v, str) and "\n" in v.rstrip("\n"):
            lines += [label, *(f"{pad}  | {line}" for line in v.rstrip("\n").split("\n"))]
        elif isinstance(v, dict | list) and v:
            lines += [label, *_fields(v, pad + "  ")]
        else:
            lines.append(f"{label} {json.dumps(v, ensure_ascii=False)}")
    return lines


def _indent(text: str) -> str:
    return "\n".join(f"       | {line}" for line in text.rstrip().splitlines())


def _outcome(r: Run) -> int:
    """The exit code that says how the run rests (`errors.EXIT_CODES`)."""
    return EXIT_CODES.get(r.status, 0)


def _finish(r: Run, as_json: bool) -> int:
    """Tell how the run rests; the exit code that says it."""
    if as_json:
        print(json.dumps(api.as_json(r), indent=2))
        return _outcome(r)
    out.print(f"\n{r.id}  {_status(r.status)}  rounds {r.rounds}  branch {escape(r.branch)}")
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    if r.handoff:
        out.print(f"handoff: {escape(r.handoff)}")
    if r.blocking and r.status == "awaiting_review":
        out.print(
            f"[bold red]{r.blocking} block-level finding(s)[/]: only an owner "
            "(\\[review] owners) may approve"
        )
    if r.status == "blocked":
        out.print(
            f"Nothing was committed. Look at the workspace {escape(r.workspace or '')}, then: "
            f"jackline request-changes {r.id} -m TEXT (the agent is told where the secret is) "
            f"| reject {r.id} (removes the workspace; rotate a real secret)"
        )
    if r.status == "awaiting_review":
        out.print(
            f"Next: jackline show {r.id}, then jackline approve {r.id} "
            f"| request-changes {r.id} -m TEXT | reject {r.id}"
        )
    return _outcome(r)


def _counts(r: Run) -> str:
    parts = []
    if r.blocking:
        parts.append(f"[bold red]{r.blocking} block[/]")
    if r.warnings:
        parts.append(f"[yellow]{r.warnings} warn[/]")
    return ", ".join(parts) or "[dim]-[/]"


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _age(ts: float) -> str:
    return _duration(time.time() - ts)


def _duration(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


# the server -------------------------------------------------------------------------------

LOCAL_ONLY = frozenset(
    {"init", "validate", "demo", "pool", "worker", "resume", "clean", "serve", "token"}
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
    if not server:
        return
    from jackline import client
    from jackline.errors import Refused

    if ctx.invoked_subcommand in LOCAL_ONLY:
        raise Refused(client.local_only(f"jackline {ctx.invoked_subcommand}"))
    # The commands call `api.VERB`; in remote mode that name is the server's client, which has
    # the same verbs and answers with the same records, so a remote answer renders as a local one.
    globals()["api"] = client.RemoteAPI.from_environment(server)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="The address to listen on (loopback unless --public).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port (0: any free one).")] = 8700,
    repos: Annotated[
        list[Path] | None,
        typer.Option("--repo", help="A repository to serve (repeatable; default: this one)."),
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
        repos or [Path(".")],
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
    as_json: JsonOpt = False,
) -> None:
    """Make a token; its secret is printed once and stored only as a digest."""
    token, secret = api.token_create(name, role)
    if as_json:
        print(json.dumps({"id": token.id, "name": token.name, "role": token.role, "token": secret}))
        return
    out.print(f"Token {token.id} for {escape(token.name)} ({token.role}); shown once, keep it:")
    print(secret)


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """List tokens: id, person, role, when made and last used, revoked or not."""
    from dataclasses import asdict

    found = api.tokens()
    if as_json:
        print(json.dumps([asdict(t) for t in found], indent=2))
        return
    if not found:
        out.print("No tokens yet: `jackline serve` makes the first admin token.")
        return
    table = Table(box=None, header_style="bold")
    for col in ("id", "name", "role", "age", "last used", ""):
        table.add_column(col)
    for t in found:
        used = f"{_age(t.last_used)} ago" if t.last_used else "never"
        mark = "[red]revoked[/]" if t.revoked else ""
        table.add_row(t.id, escape(t.name), t.role, _age(t.created_at), used, mark)
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token: it stops working at once."""
    token = api.token_revoke(token_id)
    out.print(f"Revoked {token.id} ({escape(token.name)}, {token.role}).")


def main() -> None:
    as_json = _wants_json(sys.argv[1:])
    code = 0
    try:
        # Not standalone: a usage error comes here too, to be told as JSON where --json asked.
        done = app(prog_name="jackline", standalone_mode=False)
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
            f"Stopped following {r}; it goes on on the server. `jackline show {r}` shows it, "
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
        print(json.dumps({"error": {"kind": kind, "message": message}, "exit_code": code}))
    elif kind != "usage":
        err.print(f"Error: {message}", markup=False)
    return code


def _exit(code: int) -> None:
    engine: Any = sys.modules.get("jackline.engine")
    if engine is None:
        sys.exit(code)
    live = engine.has_live_threads()
    engine.shutdown()
    if live:
        # A workflow thread may be blocked waiting for a review. Its state is in the database,
        # so the process ends here without waiting for it; a review later takes it over.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
