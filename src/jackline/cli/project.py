"""The project on this machine: init, validate, the health report, the demo, the offline
vulnerability database (`osv update`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from jackline import api
from jackline.cli import render
from jackline.cli.options import JsonOpt, RepoOpt, verbs_of
from jackline.cli.render import err, out
from jackline.models import Origin, ReleaseStatus, Run, Status

app = typer.Typer()


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
def health(
    ctx: typer.Context,
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
    verbs = verbs_of(ctx)
    from jackline.health import render as health

    if as_json and markdown:
        raise typer.BadParameter("--json and --markdown: choose one")
    report = verbs.health(repo)
    if as_json:
        render.emit(health.to_dict(report))
    elif markdown:
        print(health.to_markdown(report), end="")
    else:
        out.print(health.table(report))
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
    say(f"Blueprint: {escape(d.blueprint_line(repo))}")
    say(f"Task: {escape(d.TASK)}\n")
    result = api.submit(
        d.TASK, repo, agent="scripted", on_event=render.progress, origin=Origin.PERSON
    )
    if result.status != Status.AWAITING_REVIEW:
        render.finish(result, as_json)
        raise typer.Exit(1)
    if not as_json:
        text = api.handoff_text(result)
        if text:
            out.rule("the handoff a reviewer reads")
            render.markdown(text)
            out.rule()
    say(f"\n{d.REVIEWER} approves {result.id}")
    merged = api.approve(
        result.id, message="Looks right; thanks.", on_event=render.progress, claimed=d.REVIEWER
    )
    if merged.status != Status.MERGED:
        render.finish(merged, as_json)
        raise typer.Exit(1)
    try:
        releases, second = _demo_releases(repo, say)
    finally:
        d.stop_shops(repo)
    if as_json:
        render.emit(
            {
                **render.run_json(merged),
                "releases": [render.release_json(r) for r in releases],
                "second_run": render.run_json(second),
                "figures": api.release_figures(repo),
            },
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
    first = api.release(repo, on_event=render.release_progress, claimed=d.RELEASER)
    if first.status == ReleaseStatus.AWAITING_GO:
        say(f"  {d.RELEASER} may not say go for their own release; {d.REVIEWER} does")
        first = api.go(first.id, on_event=render.release_progress, claimed=d.REVIEWER)
    say(f"  {first.id} is [bold]{first.status}[/]")
    order = demo_release.place_order(d.production_url(repo))
    say(f"\nA customer orders in production (order {order.get('id', '?')}).")
    say(f"\n[bold]A second task[/]: {escape(d.CURRENCY_TASK)}")
    second = api.submit(
        d.CURRENCY_TASK,
        repo,
        agent="scripted-currency",
        on_event=render.progress,
        origin=Origin.PERSON,
    )
    if second.status == Status.AWAITING_REVIEW:
        say(f"{d.REVIEWER} approves {second.id}")
        second = api.approve(second.id, on_event=render.progress, claimed=d.REVIEWER)
    say(f"\n{d.RELEASER} releases main again:")
    again = api.release(repo, on_event=render.release_progress, claimed=d.RELEASER)
    if again.status == ReleaseStatus.AWAITING_GO:
        again = api.go(again.id, on_event=render.release_progress, claimed=d.REVIEWER)
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


osv_app = typer.Typer(
    help="The offline copy of OSV's advisories that the dependency scan reads ([scan] osv_db).",
    no_args_is_help=True,
)
app.add_typer(osv_app, name="osv")


@osv_app.command("update")
def osv_update(
    repo: RepoOpt = Path("."),
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            metavar="DIR",
            help="Where to keep the copy (default: this repository's [scan] osv_db).",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="JACKLINE_OSV_URL",
            help="Download from here instead of OSV's PyPI all.zip (a mirror).",
        ),
    ] = None,
) -> None:
    """Download or refresh OSV's PyPI advisories (needs the network). The new copy replaces the
    old one only once it is whole; a failed download leaves the old one in place."""
    shown = [-1]

    def progress(got: int, total: int | None) -> None:
        mib = got >> 20
        if mib != shown[0]:  # a line per MiB, not per chunk
            shown[0] = mib
            of = f" of {total / 2**20:.1f}" if total else ""
            err.print(f"\r  {got / 2**20:.1f}{of} MiB", end="", markup=False)

    err.print("Downloading OSV's PyPI advisories ...", markup=False)
    done = api.osv_update(repo, dest, url, progress)
    err.print("", markup=False)
    out.print(
        f"{done.records} advisories ({done.size / 2**20:.1f} MiB) in {done.path}. The scan reads "
        f'them where jackline.toml says `[scan] osv_db = "{done.path.parent.parent}"`.',
        markup=False,
    )


github_app = typer.Typer(
    help='The github forge ([forge] kind = "github"): what GitHub must be told.',
    no_args_is_help=True,
)
app.add_typer(github_app, name="github")


@github_app.command("setup")
def github_setup(
    repo: RepoOpt = Path("."),
    url: Annotated[
        str,
        typer.Option(
            "--url",
            envvar="JACKLINE_SERVER",
            metavar="URL",
            help="Where GitHub reaches `jackline serve` (its public address).",
        ),
    ] = "https://JACKLINE-SERVER",
    as_json: JsonOpt = False,
) -> None:
    """Print the webhook to add on GitHub (its URL, events and secret), the permissions a GitHub
    App or fine-grained token needs, and check with the API, read-only, what it can see now.
    Exits 1 when something is wrong; an unknown (what the token may not read) is no failure."""
    done = api.github_setup(repo, url)
    if as_json:
        render.emit(
            {
                "webhook": done.webhook,
                "content_type": "application/json",
                "events": list(done.events),
                "permissions": list(done.permissions),
                "checks": [{"what": x.what, "ok": x.ok, "detail": x.detail} for x in done.looked],
                "ready": done.ready,
            }
        )
    else:
        say = out.print
        say("On GitHub, Settings → Webhooks → Add webhook:", markup=False)
        say(f"  Payload URL   {done.webhook}", markup=False)
        say("  Content type  application/json", markup=False)
        say("  Secret        the value of [forge] webhook_secret", markup=False)
        say(f"  Events        {', '.join(done.events)}", markup=False)
        say("The token ([forge] token: a GitHub App's or a fine-grained one) needs:", markup=False)
        for need in done.permissions:
            say(f"  {need}", markup=False)
        say("What the API says now:", markup=False)
        marks = {True: "ok  ", False: "FAIL", None: "?   "}
        for x in done.looked:
            say(f"  {marks[x.ok]} {x.what}: {x.detail}", markup=False)
    if not done.ready:
        raise typer.Exit(1)
