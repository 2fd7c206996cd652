"""The handoff: the note a person reads before deciding. One record (`Handoff`), built once by
the `handoff` step and redacted as it is written; every reading of it is rendered from that
record: markdown for people (`markdown`, `handoff.md`), JSON for machines (`as_json`,
`handoff.json`, read back with `Handoff.from_json`), Slack's review message, the web page and
the pull request's body (the markdown).

The structure is the harness's; the words in it are often not (the task, file names, the
agent's commands and notes, what checks printed). Each such piece goes into the markdown
through one of four functions, so none can write a heading, a link, a table row or an unclosed
fence: `text` for a run of words, `code` for a name or a command, `fenced` for output, `quoted`
for the agent's notes (its markdown kept, inside a quote the document's sections cannot be
written from). `summary` and `look_twice` are markdown already, written with those functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jackline.models import (
    Acceptance,
    AgentRound,
    Attempt,
    CheckResult,
    Failure,
    Finding,
    Status,
    from_json,
)

TEST_HINTS = ("test_", "_test.", "tests/", "spec/", ".spec.", ".test.")
NOTHING_STOOD_OUT = "Nothing stood out; read the diff."


# the record -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangedFile:
    """A file the change touched, with its lines added and removed (0 and 0 for a binary)."""

    path: str
    added: int = 0
    removed: int = 0


@dataclass(frozen=True)
class Command:
    """One command the run ran (a set-up command, the agent, a check), as the audit log has it."""

    step: str
    """`setup`, `agent` or `check:NAME`."""
    command: str
    exit_code: int
    duration: float
    tail: str = ""
    """The last lines it printed, redacted."""
    dropped_bytes: int = 0
    """Bytes of its output the log did not keep (between its first and last MiB)."""
    round: int | None = None
    """The agent's round (the agent's command only)."""
    number: int | None = None
    of: int | None = None
    """The set-up command's place among the set-up commands (set-up's only)."""
    timed_out: bool | None = None
    timeout: int | None = None
    changed: bool | tuple[str, ...] | None = None
    left_change: bool | None = None
    """How the agent's round went (the agent's command only): see `measured`. A blueprint's
    command step has `changed` as the paths it changed instead."""
    after_round: int | None = None
    passed: bool | None = None
    created: tuple[str, ...] | None = None
    """A blueprint's command step: the round it followed, whether it passed, what it created
    (None for any other command)."""

    def measured(self) -> AgentRound | None:
        """The agent's round as the harness measured it; None for a command not the agent's."""
        if self.step != "agent":
            return None
        return AgentRound(
            self.exit_code,
            bool(self.timed_out),
            self.timeout or 0,
            changed=self.changed is not False,
            left_change=self.left_change is not False,
            tail=self.tail,
        )


@dataclass(frozen=True)
class Round:
    """One round: the agent's command and the checks judged on what it left."""

    round: int
    passed: bool
    checks: tuple[CheckResult, ...] = ()
    agent: Command | None = None
    problem: str | None = None
    """What went wrong with the agent (`AgentRound.problem`), or None."""
    checks_skipped: bool = False
    """The agent left nothing to check, so the checks did not run."""


@dataclass(frozen=True)
class Person:
    """Who submitted the run, or decided on it; a name the command line claimed says so."""

    action: str
    """`submit`, `approve`, `request_changes` or `reject`."""
    by: str
    claimed_by_os_user: str = ""


@dataclass(frozen=True)
class TimelineEntry:
    """One thing the agent did (from its transcript), or `more` for the steps of a round cut."""

    round: int | None
    kind: str
    """`command`, `tool`, `edit`, `message` or `more`."""
    summary: str = ""
    detail: str = ""
    path: str | None = None
    exit_code: int | None = None
    error: bool = False


@dataclass(frozen=True)
class FixedTest:
    """A test that failed in an earlier round and that the last round's report shows passing."""

    check: str
    test: str
    failed_in: tuple[int, ...]


@dataclass(frozen=True)
class Spend:
    """The run's model use, from the transcripts and `[budget] prices`."""

    usd: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class Handoff:
    """The account of a run a person reads before deciding: what it was asked, what it changed,
    the checks of each round, the commands, the findings, who asked and decided, how to undo."""

    run: str
    task: str
    outcome: str
    """The status the run rests in (`awaiting_review`, `failed`, `blocked`, ...)."""
    branch: str = ""
    base: str | None = None
    head: str | None = None
    merge: str | None = None
    workspace: str | None = None
    summary: str = ""
    """A paragraph in the harness's words, as markdown."""
    files: tuple[ChangedFile, ...] = ()
    rounds: tuple[Round, ...] = ()
    commands: tuple[Command, ...] = ()
    notes: str = ""
    """The agent's own notes (its markdown), as it left them."""
    findings: tuple[Finding, ...] = ()
    """The latest scan's findings."""
    owners: tuple[str, ...] = ()
    people: tuple[Person, ...] = ()
    look_twice: tuple[str, ...] = ()
    """Where a reviewer's attention pays most, each as a line of markdown (`look_twice`)."""
    timeline: tuple[TimelineEntry, ...] = ()
    spend: Spend = Spend()
    undo: tuple[str, ...] = ()
    """How to undo the run, each as a line of markdown."""
    fixed_tests: tuple[FixedTest, ...] = ()
    diff: str = ""
    """A command that shows the change, where it is."""
    accepted: tuple[Acceptance, ...] = ()
    """The findings a person accepted on this head, with why (`jackline accept`): each holds
    for the head it was made on, and a new round's needs its own."""
    ci: tuple[str, ...] = ()
    """How GitHub's checks ended on each head the run published (`[forge] wait_for_ci`)."""

    @property
    def doubts(self) -> tuple[str, ...]:
        """Where to look twice, less the lines that repeat a finding: for a reader that shows
        the findings apart (the run's web page)."""
        repeated = {finding_line(f) for f in self.findings}
        return tuple(x for x in self.look_twice if x not in repeated)

    @property
    def dependencies(self) -> tuple[Finding, ...]:
        """The findings about dependencies, which the note shows apart from the others."""
        return tuple(f for f in self.findings if f.rule.startswith("dependency."))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Handoff:
        """The record back from its JSON (`handoff.json`, an audit event's payloads), including
        one an older version wrote: a field it did not have takes its default, a key this
        version does not know is left out."""
        spend = data.get("spend") or {}
        return cls(
            run=str(data["run"]),
            task=str(data["task"]),
            outcome=str(data["outcome"]),
            branch=str(data.get("branch") or ""),
            base=data.get("base"),
            head=data.get("head"),
            merge=data.get("merge"),
            workspace=data.get("workspace"),
            summary=str(data.get("summary") or ""),
            files=tuple(from_json(ChangedFile, f) for f in data.get("files") or ()),
            rounds=tuple(round_from_json(r) for r in data.get("rounds") or ()),
            commands=tuple(command_from_json(c) for c in data.get("commands") or ()),
            notes=str(data.get("notes") or ""),
            findings=tuple(finding_from_json(f) for f in data.get("findings") or ()),
            owners=tuple(map(str, data.get("owners") or ())),
            people=tuple(from_json(Person, p) for p in data.get("people") or ()),
            look_twice=tuple(map(str, data.get("look_twice") or ())),
            timeline=tuple(timeline_from_json(t) for t in data.get("timeline") or ()),
            spend=Spend(float(spend.get("usd") or 0), int(spend.get("tokens") or 0)),
            undo=tuple(map(str, data.get("undo") or ())),
            ci=tuple(map(str, data.get("ci") or ())),
            fixed_tests=tuple(
                FixedTest(str(t["check"]), str(t["test"]), tuple(t.get("failed_in") or ()))
                for t in data.get("fixed_tests") or ()
            ),
            diff=str(data.get("diff") or ""),
            accepted=tuple(
                from_json(Acceptance, {"run": data["run"], **a}) for a in data.get("accepted") or ()
            ),
        )


def finding_from_json(data: dict[str, Any]) -> Finding:
    return from_json(Finding, data)


def check_from_json(data: dict[str, Any]) -> CheckResult:
    failures = tuple(from_json(Failure, f) for f in data.get("failures") or ())
    return from_json(CheckResult, {**data, "failures": failures})


def command_from_json(data: dict[str, Any]) -> Command:
    """A command as the audit log recorded it (`RunContext.command`); the agent's carries how
    its round went, a blueprint's command step the paths it changed and created."""
    changed, created = data.get("changed"), data.get("created")
    return from_json(
        Command,
        {
            **data,
            "changed": tuple(changed) if isinstance(changed, list) else changed,
            "created": tuple(created) if isinstance(created, list) else None,
        },
    )


def round_from_json(data: dict[str, Any]) -> Round:
    """A round as the `check` step recorded it."""
    agent = data.get("agent")
    return Round(
        round=int(data["round"]),
        passed=bool(data["passed"]),
        checks=tuple(check_from_json(c) for c in data.get("checks") or ()),
        agent=command_from_json(agent) if agent else None,
        problem=data.get("problem"),
        checks_skipped=bool(data.get("checks_skipped")),
    )


def timeline_from_json(data: dict[str, Any]) -> TimelineEntry:
    return from_json(TimelineEntry, {"round": None, **data})


# JSON -------------------------------------------------------------------------------------


def as_json(h: Handoff) -> dict[str, Any]:
    """The record as `handoff.json` holds it: the keys and shapes it has always had."""
    return {
        "run": h.run,
        "task": h.task,
        "outcome": h.outcome,
        "branch": h.branch,
        "base": h.base,
        "head": h.head,
        "merge": h.merge,
        "workspace": h.workspace,
        "summary": h.summary,
        "files": [asdict(f) for f in h.files],
        "rounds": [_round_json(r) for r in h.rounds],
        "commands": [_command_json(c) for c in h.commands],
        "notes": h.notes,
        "findings": [asdict(f) for f in h.findings],
        "dependencies": [asdict(f) for f in h.dependencies],
        "owners": list(h.owners),
        "people": [asdict(p) for p in h.people],
        "look_twice": list(h.look_twice),
        "timeline": [_timeline_json(t) for t in h.timeline],
        "spend": asdict(h.spend),
        "undo": list(h.undo),
        "fixed_tests": [{**asdict(t), "failed_in": list(t.failed_in)} for t in h.fixed_tests],
        "diff": h.diff,
        "accepted": [asdict(a) for a in h.accepted],
        "ci": list(h.ci),
    }


def _command_json(c: Command) -> dict[str, Any]:
    """The command as the audit log recorded it: a key only where the command has it."""
    out: dict[str, Any] = {
        "step": c.step,
        "command": c.command,
        "exit_code": c.exit_code,
        "duration": c.duration,
        "tail": c.tail,
    }
    if c.round is not None:
        out["round"] = c.round
    if c.number is not None:
        out |= {"number": c.number, "of": c.of}
    m = c.measured()
    if m is not None:
        out |= {
            "timed_out": m.timed_out,
            "timeout": m.timeout,
            "changed": m.changed,
            "left_change": m.left_change,
            "problem": m.problem(),
        }
    if c.created is not None:  # a blueprint's command step
        changed = list(c.changed) if isinstance(c.changed, tuple) else c.changed
        out |= {"after_round": c.after_round, "passed": c.passed, "changed": changed}
        out |= {"created": list(c.created), "timed_out": c.timed_out}
    if c.dropped_bytes:
        out["dropped_bytes"] = c.dropped_bytes
    return out


def _round_json(r: Round) -> dict[str, Any]:
    return {
        "round": r.round,
        "passed": r.passed,
        "checks": [asdict(c) for c in r.checks],
        "agent": _command_json(r.agent) if r.agent else None,
        "problem": r.problem,
        "checks_skipped": r.checks_skipped,
    }


def _timeline_json(t: TimelineEntry) -> dict[str, Any]:
    """As the transcript's event had it: what is empty is left out (a 0 exit code is kept)."""
    shown = {k: v for k, v in asdict(t).items() if v is not None and v != "" and v is not False}
    return {"round": t.round, "kind": t.kind, **shown}


# stored -----------------------------------------------------------------------------------


def redacted(h: Handoff, deep: Callable[[Any], Any]) -> Handoff:
    """The record with every string in it redacted (`deep`: a `Redactor.deep`, over its JSON):
    what is written, rendered and announced."""
    return Handoff.from_json(deep(as_json(h)))


def write(h: Handoff, directory: Path) -> Path:
    """`handoff.json` and `handoff.md` side by side, both from `h` (redacted already)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handoff.json").write_text(json.dumps(as_json(h), indent=2) + "\n")
    md = directory / "handoff.md"
    md.write_text(markdown(h))
    return md


def load(markdown_path: str | Path | None) -> Handoff | None:
    """The record beside a run's `handoff.md`, or None where there is none (a run that failed
    before its handoff could be written leaves a short note in markdown alone)."""
    if not markdown_path:
        return None
    stored = Path(markdown_path).with_name("handoff.json")
    if not stored.is_file():
        return None
    try:
        return Handoff.from_json(json.loads(stored.read_text()))
    except (ValueError, KeyError, TypeError):  # a record this version cannot read: the
        return None  # markdown beside it is shown instead


# markdown ---------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """One line of the agent's choosing (a file name, a message naming one) as the note shows
    it: control characters escaped, so a newline in a file name cannot start a line of the
    note (a heading, a "Findings: none") of the agent's writing."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# What makes markdown of a line: emphasis, code, links and images, raw HTML and entities, table
# cells, strike-through, and the backslash itself. Escaped, each shows as itself.
_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")


def text(words: str, limit: int = 0) -> str:
    """Words of someone else's writing, shown as they are on one line of the note (`one_line`,
    cut to `limit` characters where one is given) with markdown's inline characters escaped."""
    words = one_line(words)
    if limit and len(words) > limit:
        words = words[: limit - 3] + "..."
    return _INLINE.sub(r"\\\1", words)


def quoted(markdown: str) -> list[str]:
    """The agent's own markdown (its notes), kept as markdown but inside a block quote: a
    heading or a list in it stays in the quote, not among the note's sections. Lines are
    `one_line`d first, so a carriage return cannot start an unquoted line."""
    return [f"> {one_line(line)}".rstrip() for line in markdown.strip().splitlines()]


def code(text: str) -> str:
    """`text` as an inline code span that shows it as it is (`one_line`), fenced with more
    backticks than any run of them inside, and `|` escaped so it stays in its table cell."""
    text = one_line(text).replace("|", "\\|")
    ticks = "`" * (1 + _longest_run(text))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def fenced(text: str, indent: str = "  ") -> list[str]:
    """A quoted piece of the change as a fenced block under a list item: whatever its lines
    say, they stay inside the block."""
    ticks = "`" * max(3, 1 + _longest_run(text))
    body = [indent + one_line(line) for line in text.splitlines()]
    return [indent + ticks, *body, indent + ticks]


def look_twice(
    files: Sequence[ChangedFile],
    named: Sequence[str],
    reverted: Sequence[str],
    failing: Sequence[str],
    notes: str,
    findings: Sequence[Finding] = (),
) -> list[str]:
    """Where a reviewer's attention pays most: derived from the change, never from the agent."""
    out = []
    out += [f"Still failing: {text(what)}" for what in failing]
    out += [finding_line(f) for f in findings if f.level == "block" or f.rule.startswith("guard.")]
    for path in reverted:
        out.append(f"The agent wrote {code(path)}, which is out of scope; the write was reverted.")
    for c in files:
        if any(h in c.path for h in TEST_HINTS) and c.removed > 0:
            out.append(
                f"{code(c.path)}: test lines were removed or changed; check they still test the behaviour."
            )
        if c.added + c.removed > 200:
            out.append(f"{code(c.path)}: a large change ({c.added}+ / {c.removed}-).")
        if named and not any(c.path == n or c.path.startswith(n.rstrip("/") + "/") for n in named):
            out.append(f"{code(c.path)} was changed though the task did not name it.")
    if notes:
        out.append("The agent left notes on its assumptions (the agent's notes): check they hold.")
    return out


def finding_line(f: Finding) -> str:
    """A finding as a line of where to look twice (a reader that lists the findings apart
    leaves these lines out: `Handoff.doubts`)."""
    where = code(f"{f.file}:{f.line}" if f.line else f.file or "the change")
    quote = f": {code(f.quote)}" if f.quote else ""
    return f"{where} ({f.rule}) {text(f.message)}{quote}"


def attempts_markdown(this: str, attempts: Sequence[Attempt]) -> str:
    """Parallel attempts at one task side by side, as a section of each one's handoff: the
    reviewer approves the one to keep, and the others are closed."""
    lines = [
        "## Attempts",
        "",
        "| run | agent | status | rounds | checks | files | lines | findings | spend | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in attempts:
        run = f"**`{a.run}`** (this)" if a.run == this else f"`{a.run}`"
        found = f"{a.blocking} block, {a.warnings} warn" if a.blocking or a.warnings else "-"
        lines.append(
            f"| {run} | {text(a.agent)} | {a.status} | {a.rounds} | {a.checks} | {a.files} "
            f"| +{a.added} -{a.removed} | {found} | ${a.spend:.2f} | {a.seconds:.0f} s |"
        )
    lines += ["", "Approving one attempt closes the others (they are cancelled, said why).", ""]
    return "\n".join(lines)


def markdown(h: Handoff, apart: bool = False) -> str:
    """The note as `handoff.md` holds it (and the pull request's body, and the web page).
    `apart`: the reader shows the findings, the agent's notes and where to look twice apart
    (the run's web page, in its summary and its findings table), so the note leaves them out
    and nothing is read twice."""
    # A task of several lines: its first as the title, the whole of it quoted below (escaped
    # into one line it read as "Fix it\n\nDetails ...").
    first, *more = h.task.strip().splitlines() or [""]
    lines = [f"# Handoff: {text(first)}", ""]
    if any(line.strip() for line in more):
        lines += ["The task in full:", "", *quoted(h.task), ""]
    lines += [
        f"- **Run:** `{h.run}`",
        f"- **Outcome:** {h.outcome}",
        f"- **Branch:** `{h.branch}` (base `{(h.base or '')[:10]}`, head `{(h.head or '')[:10]}`)",
        f"- **Rounds:** {len(h.rounds)}",
        *([f"- **Diff:** {code(h.diff)}"] if h.diff else []),
        *_people(h.people),
        *([] if apart else _blocking_banner(h)),
        "",
        "## Summary",
        "",
        h.summary,
        "",
        "## Files changed",
        "",
    ]
    if h.files:
        lines += ["| file | + | - |", "|---|---:|---:|"]
        lines += [f"| {code(f.path)} | {f.added} | {f.removed} |" for f in h.files]
    else:
        lines.append("No files changed.")
    lines += _fixed_tests(h.fixed_tests)
    lines += ["", "## Checks by round", ""]
    for r in h.rounds:
        lines += _round(r)
    if h.ci:
        lines += ["## GitHub's checks", "", *[f"- {text(x)}" for x in h.ci], ""]
    if h.timeline:
        lines += ["## What the agent did", ""]
        lines += [_timeline_line(t) for t in h.timeline]
        if h.spend.tokens:
            lines.append(f"- model use: {h.spend.tokens:,} tokens, ${h.spend.usd:.2f}")
        lines.append("")
    lines += ["## Commands run", "", *_commands(h.commands), ""]
    if not apart:
        lines += _judged(h)
    lines += ["## How to undo", ""]
    lines += [f"- {x}" for x in h.undo]
    lines.append("")
    return "\n".join(lines)


def _judged(h: Handoff) -> list[str]:
    """What the agent says and what the scans found: the notes, the findings, the dependencies
    and where to look twice."""
    notes = quoted(h.notes) or ["The agent left no notes."]
    lines = ["## The agent's notes", "", *notes, ""]
    lines += ["## Findings", "", *_findings(h.findings, h.accepted)]
    lines += ["", "## Dependencies", ""]
    if h.dependencies:
        for f in h.dependencies:
            lines.append(f"- **{f.level}** {text(f.message)} ({code(str(f.file or ''))})")
    else:
        lines.append("No dependency changed.")
    lines += ["", "## Where to look twice", ""]
    lines += [f"- {x}" for x in h.look_twice] or [f"- {NOTHING_STOOD_OUT}"]
    return [*lines, ""]


def _round(r: Round) -> list[str]:
    """A round's heading, what went wrong with the agent, and each check with its failures."""
    agent = r.agent
    exit_code = agent.exit_code if agent else "?"
    lines = [
        f"### Round {r.round}: {'passed' if r.passed else 'failed'}"
        f" (agent exit {exit_code}, {agent.duration if agent else 0:.1f}s)",
        "",
        *agent_failure(r),
    ]
    for c in r.checks:
        mark = "pass" if c.passed else "FAIL"
        lines.append(
            f"- {code(c.name)} {mark}: {text(c.summary)} ({c.duration:.1f}s) {code(c.command)}"
        )
        for f in c.failures[:10]:
            where = f" {code(f'{f.file}:{f.line}')}" if f.file and f.line else ""
            test = f" {code(f.test)}" if f.test else ""
            lines.append(f"  - {where}{test} {text(f.message)}".rstrip())
        lines += unexplained_tail(c)
    lines.append("")
    return lines


def _timeline_line(t: TimelineEntry) -> str:
    if t.kind == "more":
        return f"- round {t.round}: ... {t.summary} (`jackline logs`)"
    mark = " (failed)" if t.error or t.exit_code not in (None, 0) else ""
    said = text(" ".join(t.summary.split()), limit=110)
    return f"- round {t.round}, {t.kind}: {said}{mark}"


def _commands(commands: Sequence[Command]) -> list[str]:
    if not commands:
        return ["None."]
    lines = ["| step | command | exit | seconds |", "|---|---|---:|---:|"]
    for c in commands:
        cmd = c.command.replace("\n", " ")
        cmd = cmd if len(cmd) <= 120 else cmd[:117] + "..."
        lines.append(f"| {text(c.step)} | {code(cmd)} | {c.exit_code} | {c.duration:.1f} |")
    for c in commands:
        if c.dropped_bytes:
            lines.append(
                f"\n`{c.step}` printed more than its log keeps: {c.dropped_bytes:,} bytes "
                "between the first and the last MiB were dropped."
            )
    made = [
        (c.step, kind, paths)
        for c in commands
        for kind, paths in (("changed", c.changed), ("created", c.created))
        if isinstance(paths, tuple) and paths  # an agent's `changed` is a yes or no
    ]
    if made:  # a blueprint's deterministic steps: their changes are kept with the work
        lines += ["", "Changed by the blueprint's steps, and kept with the work:", ""]
        lines += [
            f"- {code(step)} {kind} {text(', '.join(paths), 300)}" for step, kind, paths in made
        ]
    return lines


def _findings(findings: Sequence[Finding], accepted: Sequence[Acceptance] = ()) -> list[str]:
    """The findings, blocking ones first, each with its id (what `jackline accept` takes), the
    code in question, why it matters and who accepted it, why (dependencies have a section of
    their own)."""
    shown = [f for f in findings if not f.rule.startswith("dependency.")]
    if not shown:
        return ["None."]
    order = {"block": 0, "warn": 1, "info": 2}
    taken = {a.finding: a for a in accepted}
    lines = []
    for f in sorted(shown, key=lambda f: order.get(f.level, 3)):
        line = f":{f.line}" if f.line else ""
        where = f" {code(f.file + line)}" if f.file else ""
        lines.append(f"- **{f.level}** {f.rule}{where}: {text(f.message)} (id `{f.id}`)")
        if f.quote:
            lines += fenced(f.quote)
        if f.why:
            lines.append(f"  - Why it matters: {f.why}")
        if f.id in taken:
            lines.append(f"  - {_accepted(taken[f.id])}")
    if accepted:
        lines.append(
            "\nAn acceptance holds for the head it was made on: a new round that still has the "
            "finding needs it accepted again."
        )
    return lines


def _accepted(a: Acceptance) -> str:
    claim = a.claimed_by_os_user
    said = f" (claimed by OS user {code(claim)}, not verified)" if claim else ""
    head = code(a.head[:10]) if a.head else "no commit"
    return f"**Accepted** by {text(a.by)}{said} on head {head}: {text(a.reason, 500)}"


def _fixed_tests(fixed: Sequence[FixedTest]) -> list[str]:
    """The tests the run fixed: failing in an earlier round, seen passing in the last."""
    if not fixed:
        return []
    lines = ["", "## Tests that now pass", ""]
    for t in fixed:
        rounds = ", ".join(map(str, t.failed_in))
        lines.append(
            f"- {code(t.test)} (check {code(t.check)}): failed in round {rounds}, passes now"
        )
    return lines


def agent_failure(r: Round) -> list[str]:
    """What went wrong with the agent in a round (`AgentRound.problem`), with the last lines it
    printed where it exited non-zero or ran out of time."""
    if not r.problem:
        return []
    lines = [f"- **The agent:** {one_line(r.problem)}"]
    agent = r.agent
    if agent and agent.tail and (agent.exit_code != 0 or agent.timed_out):
        lines += ["  - the last lines it printed:", "", *fenced(agent.tail, "    "), ""]
    if r.checks_skipped:
        lines.append("- The checks did not run: the agent left nothing to check.")
    return lines


def unexplained_tail(check: CheckResult) -> list[str]:
    """The last lines a failed check printed, as a fenced block under its list item, when
    nothing its parser found says why it failed (see `CheckResult.explained`)."""
    if check.passed or check.explained or not check.output_tail:
        return []
    return ["  - the last lines it printed:", "", *fenced(check.output_tail, "    "), ""]


PEOPLE = {
    "submit": "Submitted by",
    "approve": "Approved by",
    "request_changes": "Changes requested by",
    "reject": "Rejected by",
}


def _people(people: Sequence[Person]) -> list[str]:
    """Who asked and who decided; a name the command line claimed (`[review] allow_as`) says so."""
    lines = []
    for p in people:
        claim = p.claimed_by_os_user
        said = f" (claimed by OS user {code(claim)}, not verified)" if claim else ""
        lines.append(f"- **{PEOPLE.get(p.action, p.action)}:** {text(p.by)}{said}")
    return lines


def _blocking_banner(h: Handoff) -> list[str]:
    block = [f for f in h.findings if f.level == "block"]
    if not block or h.outcome not in (Status.AWAITING_REVIEW, Status.BLOCKED):
        return []
    if h.outcome == Status.BLOCKED:
        return ["- **Blocked:** a secret was found in the change; nothing was committed or pushed."]
    taken = {a.finding for a in h.accepted}
    left = [f for f in block if f.id not in taken]
    if not left:
        return [
            f"- **Accepted by an owner:** the {len(block)} block-level finding(s), on this head; "
            "another reviewer may approve"
        ]
    owners = text(", ".join(h.owners)) or "none named in \\[review] owners"
    accepted = f" ({len(block) - len(left)} accepted)" if len(left) < len(block) else ""
    return [
        f"- **Needs an owner:** {len(left)} block-level finding(s){accepted}; owners: {owners}"
        " (approves, or accepts each: `jackline accept RUN ID -m REASON`)"
    ]
