"""The CLI's one renderer: what turns records into text for a person (Rich tables, progress
lines, events, the handoff) or into JSON for a script (`--json` everywhere goes through `emit`).

Every piece of text a person, an agent or a check wrote goes through `escape` before Rich reads
it as markup (or is printed with markup=False): `[/api]` in a task is text, not a closing tag.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Table

from jackline import api, events
from jackline.errors import EXIT_CODES
from jackline.models import Acceptance, Probe, Release, ReleaseStatus, Run, Status

if TYPE_CHECKING:
    from jackline.guard.audit import Event
    from jackline.release.carried import Carrying

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def attach() -> None:
    """Make both consoles again for this process's streams and environment: a console decides
    at its making whether it writes to a terminal, in what colours and how wide, and a command
    forked from the fork server runs on the person's terminal, not the server's."""
    out.__init__(highlight=False, soft_wrap=True)  # type: ignore[misc]
    err.__init__(stderr=True, highlight=False, soft_wrap=True)  # type: ignore[misc]


def emit(value: Any, indent: int | None = 2) -> None:
    """--json: the answer as one JSON value on stdout, whatever the terminal."""
    print(json.dumps(value, indent=indent))


def run_json(r: Run) -> dict[str, Any]:
    """A run as --json and the server's API give it."""
    return api.as_json(r)


def release_json(r: Release) -> dict[str, Any]:
    return api.release_as_json(r)


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

RELEASE_STYLE = {
    "awaiting_go": "yellow",
    "paused": "bold yellow",
    "live": "green",
    "failed": "red",
    "rolled_back": "bold red",
    "aborted": "magenta",
}


# runs and releases ------------------------------------------------------------------------


def runs_table(found: list[Run], short_ids: dict[str, str]) -> None:
    """`jackline runs`: a row a run, its id as short as it stays unique."""
    table = Table(box=None, header_style="bold")
    for col in ("id", "task", "status", "rounds", "findings", "spend", "age"):
        table.add_column(col, justify="right" if col == "spend" else "left", no_wrap=col == "id")
    for r in found:
        table.add_row(
            short_ids[r.id],
            escape(short(r.task, 50)),
            status(r.status),
            str(r.rounds),
            counts(r),
            f"${r.spend:.2f}" if r.spend or r.tokens else "-",
            age(r.created_at),
        )
    out.print(table)


def run_detail(
    r: Run, rounds: list[dict[str, Any]], findings: list[dict[str, Any]], handoff: str | None
) -> None:
    """`jackline show`: the run, each round's checks, its findings, the handoff."""
    out.print(f"[bold]{r.id}[/]  {status(r.status)}  {escape(r.task)}")
    out.print(
        f"branch {r.branch}   rounds {r.rounds}   by {r.submitted_by}   {age(r.created_at)} ago",
        markup=False,
    )
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    if r.status == Status.INTERRUPTED:
        out.print(
            f"The process that drove it is gone: `jackline resume {r.id}` drives it on, "
            f"`jackline cancel {r.id}` ends it.",
            markup=False,
        )
    for rnd in rounds:
        checks = ", ".join(
            f"{c['name']} {'pass' if c['passed'] else 'FAIL (' + c['summary'] + ')'}"
            for c in rnd["checks"]
        )
        checks = checks or ("checks not run" if rnd.get("checks_skipped") else "no checks")
        agent = f"; {rnd['problem']}" if rnd.get("problem") else ""
        out.print(f"  round {rnd['round']}: {checks}{agent}", markup=False, highlight=False)
    unexplained(rounds[-1]["checks"] if rounds else [])
    agent_tail(rounds[-1] if rounds else {})
    if findings:
        out.print(f"findings: {r.blocking} block, {r.warnings} warn")
        for f in findings:
            where = f"{f.get('file') or ''}{':' + str(f['line']) if f.get('line') else ''}"
            style = {"block": "bold red", "warn": "yellow"}.get(f["level"], "dim")
            said = escape(f"{f['rule']}  {where}  {f['message']}")
            out.print(f"  [{style}]{f['level']:5}[/] {f.get('id', '')}  {said}")
            if f.get("accepted"):
                a = f["accepted"]
                took = f"accepted by {a['by']} on {a['head'][:10] or 'no commit'}: {a['reason']}"
                out.print(f"        [green]{escape(took)}[/]")
    if handoff:
        out.rule("handoff")
        markdown(handoff)
        out.print(f"[dim]{escape(r.handoff or '')}[/]")


def accepted(a: Acceptance) -> None:
    """`jackline accept`: what was accepted, on which head, and what approving needs now."""
    where = f" {a.file}{':' + str(a.line) if a.line else ''}" if a.file else ""
    out.print(
        escape(f"Accepted {a.level} finding {a.finding} ({a.rule}{where}) of {a.run} ")
        + escape(f"on {a.head[:10] or 'no commit'} as {a.by}: {a.reason}"),
        highlight=False,
    )
    if a.left:
        out.print(f"{a.left} block-level finding(s) still need an owner.")
    else:
        out.print(
            f"No block-level finding is left unaccepted: another reviewer may approve "
            f"(jackline approve {a.run}). A new round would need its findings accepted again."
        )


def releases_table(found: list[Release]) -> None:
    """`jackline releases`: a row a release, who started it and who said go."""
    table = Table(box=None, header_style="bold")
    for col in ("id", "sha", "status", "by", "go", "author", "age"):
        table.add_column(col)
    for r in found:
        author = r.author_kind + (f" ({r.run_id})" if r.run_id else "")
        table.add_row(
            r.id,
            r.sha[:10],
            release_status(r.status, r.env),
            escape(r.started_by),
            escape(r.go_by or "-"),
            escape(author),
            age(r.created_at),
        )
    out.print(table)


def release_detail(r: Release, probes: list[Probe]) -> None:
    """`jackline release-show`: the release, and each probe with its timing."""
    out.print(f"[bold]{r.id}[/]  {release_status(r.status, r.env)}  {r.sha[:10]}")
    out.print(
        f"started by {r.started_by}   go by {r.go_by or '-'}   author {r.author_kind}"
        f"{' (' + r.run_id + ')' if r.run_id else ''}   {age(r.created_at)} ago",
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
    for p in probes:
        mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(p.outcome, "[yellow]????[/]")
        first = p.detail.splitlines()[0] if p.detail else ""
        out.print(
            f"  {escape(p.env):<12} {mark} {escape(p.name):<30} {p.duration:6.2f}s  {escape(first)}"
        )


def carried(carrying: Carrying) -> None:
    """What a release carries: a line a change, who wrote it, and its warnings in red."""
    cut = f" (the newest {len(carrying.commits)})" if carrying.cut else ""
    out.print(
        f"carries {len(carrying.commits)} change(s){cut}:"
        if carrying.commits
        else "carries nothing new"
    )
    for c in carrying.commits:
        by = f"agent {c.agent} {c.run_id}" if c.run_id else c.author
        out.print(f"  {c.sha[:10]}  {escape(short(c.subject, 70))}  [dim]{escape(by)}[/]")
        for warning in c.warnings:
            out.print(f"    [bold red]warning[/]: {escape(warning)}")


def agent_tail(rnd: dict[str, Any]) -> None:
    """What the agent printed last, where the latest round failed because of it."""
    agent = rnd.get("agent") or {}
    if rnd.get("problem") and agent.get("tail"):
        out.print(f"  the agent (exit {agent['exit_code']}) printed last:", highlight=False)
        out.print(indent(agent["tail"]), markup=False, highlight=False)


def unexplained(checks: list[dict[str, Any]]) -> None:
    """What the latest round's failed checks printed last, where no parser found why."""
    for c in checks:
        if not c["passed"] and not c.get("explained", True) and c.get("output_tail"):
            out.print(f"  {c['name']} printed last:", markup=False, highlight=False)
            out.print(indent(c["output_tail"]), markup=False, highlight=False)


def release_status(status: str, env: str = "") -> str:
    where = (
        f" ({env})" if env and status in (ReleaseStatus.AWAITING_GO, ReleaseStatus.PAUSED) else ""
    )
    return f"[{RELEASE_STYLE.get(status, 'cyan')}]{escape(status + where)}[/]"


def release_finish(r: Any, as_json: bool) -> None:
    if as_json:
        emit(release_json(r))
        return
    out.print(f"\n{r.id}  {release_status(r.status, r.env)}  {r.sha[:10]}")
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    if r.status == ReleaseStatus.AWAITING_GO:
        out.print(
            f"Waiting for a person's go for {r.env}: jackline go {r.id} --as NAME "
            f"(someone other than {r.started_by}), or jackline abort {r.id}",
            markup=False,
        )
    if r.status == ReleaseStatus.PAUSED:
        out.print(
            f"Paused: a probe of {r.env} was inconclusive. Look (jackline release-show {r.id}), "
            f"then jackline go {r.id} to go on, or jackline abort {r.id}"
        )


def progress(stream: str, event: Event) -> None:
    """A run's or a release's event as it happens, where `events` says it is worth a line."""
    if events.told(event.kind, event.data):
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
        style = TONE[events.tone(event.kind, event.data)]
        err.print(f"  [dim]{stamp}[/] [{style}]{escape(describe(event))}[/]")


release_progress = progress  # a release's events are told as a run's are


def describe(e: Event) -> str:
    """The event's one line: the one the web page shows (`events.describe`)."""
    return events.describe(e.kind, e.data)


TONE = {"": "default", "warn": "yellow", "bad": "red"}


def markdown(text: str) -> None:
    """The handoff, wrapped to the terminal: the console's soft wrap would crop list items and
    code blocks at its width instead (what a reviewer reads must end where the text does)."""
    out.print(_handoff_markdown()(text), soft_wrap=False)


@functools.cache
def _handoff_markdown() -> type[Any]:
    """rich's Markdown whose tables' cells wrap a long word (a command, a path) instead of
    cutting it with an ellipsis. Made at the first handoff shown: rich's markdown parser is a
    tenth of every command's start otherwise."""
    from rich.markdown import Markdown, TableElement

    class FoldingTable(TableElement):
        def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
            for table in super().__rich_console__(console, options):
                if isinstance(table, Table):
                    for column in table.columns:
                        column.overflow = "fold"
                yield table

    class Handoff(Markdown):
        elements = {**Markdown.elements, "table_open": FoldingTable}

    return Handoff


def event(e: Event, full: bool = False) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
    chain = (
        "" if e.intact else "  [bold red]CHAIN BROKEN: this event or one before it was changed[/]"
    )
    out.print(f"{e.seq:>4} {stamp} [bold]{e.kind:<10}[/] {escape(describe(e))}{chain}")
    if full:
        out.print("\n".join(_fields(e.data, " " * 7)), markup=False)
    elif e.kind.startswith("agent.") and e.data.get("detail"):
        # What the agent did, as its transcript says: the line, then the output in full.
        out.print(escape(indent(str(e.data["detail"]))))


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


def indent(text: str) -> str:
    return "\n".join(f"       | {line}" for line in text.rstrip().splitlines())


def outcome(r: Run) -> int:
    """The exit code that says how the run rests (`errors.EXIT_CODES`)."""
    return EXIT_CODES.get(r.status, 0)


def finish(r: Run, as_json: bool) -> int:
    """Tell how the run rests; the exit code that says it."""
    if as_json:
        emit(run_json(r))
        return outcome(r)
    out.print(f"\n{r.id}  {status(r.status)}  rounds {r.rounds}  branch {escape(r.branch)}")
    if r.reason:
        out.print(f"reason: {escape(r.reason)}")
    if r.handoff:
        out.print(f"handoff: {escape(r.handoff)}")
    if r.blocking and r.status == Status.AWAITING_REVIEW:
        out.print(
            f"[bold red]{r.blocking} block-level finding(s)[/]: only an owner "
            "(\\[review] owners) may approve"
        )
    if r.status == Status.BLOCKED:
        out.print(
            f"Nothing was committed. Look at the workspace {escape(r.workspace or '')}, then: "
            f"jackline request-changes {r.id} -m TEXT (the agent is told where the secret is) "
            f"| reject {r.id} (removes the workspace; rotate a real secret)"
        )
    if r.status == Status.AWAITING_REVIEW:
        out.print(
            f"Next: jackline show {r.id}, then jackline approve {r.id} "
            f"| request-changes {r.id} -m TEXT | reject {r.id}"
        )
    return outcome(r)


def finish_attempts(tried: list[Run], as_json: bool) -> int:
    """Tell how each attempt rests, side by side; 0 when one of them waits for review (the
    reviewer picks it), else the exit code of the first."""
    if as_json:
        emit([run_json(r) for r in tried])
    else:
        table = Table(title=f"{len(tried)} attempts", title_justify="left", box=None)
        for column in ("run", "agent", "status", "rounds", "reason"):
            table.add_column(column)
        for r in tried:
            table.add_row(r.id, r.agent, status(r.status), str(r.rounds), escape(r.reason))
        out.print(table)
        ready = [r for r in tried if r.status == Status.AWAITING_REVIEW]
        if ready:
            out.print(
                f"Next: jackline show {ready[0].id} (its handoff compares the attempts), then "
                "jackline approve RUN for the one to keep: the others are closed."
            )
    waiting = [r for r in tried if r.status == Status.AWAITING_REVIEW]
    return outcome(waiting[0] if waiting else tried[0])


def counts(r: Run) -> str:
    parts = []
    if r.blocking:
        parts.append(f"[bold red]{r.blocking} block[/]")
    if r.warnings:
        parts.append(f"[yellow]{r.warnings} warn[/]")
    return ", ".join(parts) or "[dim]-[/]"


def status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def age(ts: float) -> str:
    return duration(time.time() - ts)


def duration(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
