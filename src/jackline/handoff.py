"""The handoff: the note a person reads before deciding. Markdown for people, JSON for machines,
built from the same dict and written side by side. Redacted before it is written.

The structure is the harness's; the words in it are often not (the task, file names, the
agent's commands and notes, what checks printed). Each such piece goes in through one of four
functions, so none can write a heading, a link, a table row or an unclosed fence: `text` for a
run of words, `code` for a name or a command, `fenced` for output, `quoted` for the agent's
notes (its markdown kept, inside a quote the document's sections cannot be written from).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jackline.models import Status

TEST_HINTS = ("test_", "_test.", "tests/", "spec/", ".spec.", ".test.")


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
    files: list[dict[str, Any]],
    named: list[str],
    reverted: list[str],
    failing: list[str],
    notes: str,
    findings: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Where a reviewer's attention pays most: derived from the change, never from the agent."""
    out = []
    out += [f"Still failing: {text(what)}" for what in failing]
    for f in findings or []:
        if f["level"] == "block" or f["rule"].startswith("guard."):
            where = code(
                f"{f['file']}:{f['line']}" if f.get("line") else f.get("file") or "the change"
            )
            quote = f": {code(f['quote'])}" if f.get("quote") else ""
            out.append(f"{where} ({f['rule']}) {text(f['message'])}{quote}")
    for path in reverted:
        out.append(f"The agent wrote {code(path)}, which is out of scope; the write was reverted.")
    for f in files:
        path = f["path"]
        if any(h in path for h in TEST_HINTS) and f["removed"] > 0:
            out.append(
                f"{code(path)}: test lines were removed or changed; check they still test the behaviour."
            )
        if f["added"] + f["removed"] > 200:
            out.append(f"{code(path)}: a large change ({f['added']}+ / {f['removed']}-).")
        if named and not any(path == n or path.startswith(n.rstrip("/") + "/") for n in named):
            out.append(f"{code(path)} was changed though the task did not name it.")
    if notes:
        out.append("The agent left notes on its assumptions (below): check they hold.")
    return out


def render(h: dict[str, Any]) -> str:
    lines = [f"# Handoff: {text(h['task'])}", ""]
    lines += [
        f"- **Run:** `{h['run']}`",
        f"- **Outcome:** {h['outcome']}",
        f"- **Branch:** `{h['branch']}` (base `{(h['base'] or '')[:10]}`, head `{(h['head'] or '')[:10]}`)",
        f"- **Rounds:** {len(h['rounds'])}",
        *([f"- **Diff:** {code(h['diff'])}"] if h.get("diff") else []),
        *_people(h),
        *_blocking_banner(h),
        "",
        "## Summary",
        "",
        h["summary"],
        "",
        "## Files changed",
        "",
    ]
    if h["files"]:
        lines += ["| file | + | - |", "|---|---:|---:|"]
        lines += [f"| {code(f['path'])} | {f['added']} | {f['removed']} |" for f in h["files"]]
    else:
        lines.append("No files changed.")
    lines += _fixed_tests(h.get("fixed_tests") or [])
    lines += ["", "## Checks by round", ""]
    for r in h["rounds"]:
        agent = r.get("agent") or {}
        lines.append(
            f"### Round {r['round']}: {'passed' if r['passed'] else 'failed'}"
            f" (agent exit {agent.get('exit_code', '?')}, {agent.get('duration', 0):.1f}s)"
        )
        lines.append("")
        lines += agent_failure(r)
        for c in r["checks"]:
            mark = "pass" if c["passed"] else "FAIL"
            lines.append(
                f"- {code(c['name'])} {mark}: {text(c['summary'])} ({c['duration']:.1f}s) "
                f"{code(c['command'])}"
            )
            for f in c["failures"][:10]:
                at = f"{f.get('file')}:{f.get('line')}"
                where = f" {code(at)}" if f.get("file") and f.get("line") else ""
                test = f" {code(f['test'])}" if f.get("test") else ""
                lines.append(f"  - {where}{test} {text(f['message'])}".rstrip())
            lines += unexplained_tail(c)
        if r.get("reverted"):
            lines.append(f"- reverted out-of-scope writes: {', '.join(map(code, r['reverted']))}")
        lines.append("")
    if h.get("timeline"):
        lines += ["## What the agent did", ""]
        for step in h["timeline"]:
            if step["kind"] == "more":
                lines.append(f"- round {step['round']}: ... {step['summary']} (`jackline logs`)")
                continue
            mark = (
                " (failed)" if step.get("error") or step.get("exit_code") not in (None, 0) else ""
            )
            said = text(" ".join(str(step.get("summary", "")).split()), limit=110)
            lines.append(f"- round {step['round']}, {step['kind']}: {said}{mark}")
        spend = h.get("spend") or {}
        if spend.get("tokens"):
            lines.append(f"- model use: {spend['tokens']:,} tokens, ${spend['usd']:.2f}")
        lines.append("")
    lines += ["## Commands run", ""]
    if h["commands"]:
        lines += ["| step | command | exit | seconds |", "|---|---|---:|---:|"]
        for c in h["commands"]:
            cmd = c["command"].replace("\n", " ")
            cmd = cmd if len(cmd) <= 120 else cmd[:117] + "..."
            lines.append(
                f"| {text(c['step'])} | {code(cmd)} | {c['exit_code']} | {c['duration']:.1f} |"
            )
        cut = [c for c in h["commands"] if c.get("dropped_bytes")]
        for c in cut:
            lines.append(
                f"\n`{c['step']}` printed more than its log keeps: {c['dropped_bytes']:,} bytes "
                "between the first and the last MiB were dropped."
            )
        made = [
            (c["step"], k, c[k])
            for c in h["commands"]
            for k in ("changed", "created")
            if isinstance(c.get(k), list) and c[k]  # an agent's `changed` is a yes or no
        ]
        if made:  # a blueprint's deterministic steps: their changes are kept with the work
            lines += ["", "Changed by the blueprint's steps, and kept with the work:", ""]
            lines += [
                f"- {code(step)} {kind} {text(', '.join(paths), 300)}" for step, kind, paths in made
            ]
    else:
        lines.append("None.")
    notes = quoted(h["notes"]) or ["The agent left no notes."]
    lines += ["", "## The agent's notes", "", *notes, ""]
    lines += ["## Findings", ""]
    shown = [f for f in h["findings"] if not f["rule"].startswith("dependency.")]
    if shown:
        order = {"block": 0, "warn": 1, "info": 2}
        for f in sorted(shown, key=lambda f: order.get(f["level"], 3)):
            line = f":{f['line']}" if f.get("line") else ""
            where = f" {code(f['file'] + line)}" if f.get("file") else ""
            lines.append(f"- **{f['level']}** {f['rule']}{where}: {text(f['message'])}")
            if f.get("quote"):
                lines += fenced(f["quote"])
            if f.get("why"):
                lines.append(f"  - Why it matters: {f['why']}")
    else:
        lines.append("None.")
    lines += ["", "## Dependencies", ""]
    if h.get("dependencies"):
        for f in h["dependencies"]:
            lines.append(
                f"- **{f['level']}** {text(f['message'])} ({code(str(f.get('file') or ''))})"
            )
    else:
        lines.append("No dependency changed.")
    lines += ["", "## Where to look twice", ""]
    lines += [f"- {x}" for x in h["look_twice"]] or ["- Nothing stood out; read the diff."]
    lines += ["", "## How to undo", ""]
    lines += [f"- {x}" for x in h["undo"]]
    lines.append("")
    return "\n".join(lines)


def _fixed_tests(fixed: list[dict[str, Any]]) -> list[str]:
    """The tests the run fixed: failing in an earlier round, seen passing in the last."""
    if not fixed:
        return []
    lines = ["", "## Tests that now pass", ""]
    for t in fixed:
        rounds = ", ".join(map(str, t["failed_in"]))
        lines.append(
            f"- {code(t['test'])} (check {code(t['check'])}): failed in round {rounds}, passes now"
        )
    return lines


def agent_failure(r: dict[str, Any]) -> list[str]:
    """What went wrong with the agent in a round (`AgentRound.problem`), with the last lines it
    printed where it exited non-zero or ran out of time."""
    if not r.get("problem"):
        return []
    agent = r.get("agent") or {}
    lines = [f"- **The agent:** {one_line(r['problem'])}"]
    if agent.get("tail") and (agent.get("exit_code") != 0 or agent.get("timed_out")):
        lines += ["  - the last lines it printed:", "", *fenced(agent["tail"], "    "), ""]
    if r.get("checks_skipped"):
        lines.append("- The checks did not run: the agent left nothing to check.")
    return lines


def unexplained_tail(check: dict[str, Any]) -> list[str]:
    """The last lines a failed check printed, as a fenced block under its list item, when
    nothing its parser found says why it failed (see `CheckResult.explained`)."""
    if check["passed"] or check.get("explained", True) or not check.get("output_tail"):
        return []
    return ["  - the last lines it printed:", "", *fenced(check["output_tail"], "    "), ""]


PEOPLE = {
    "submit": "Submitted by",
    "approve": "Approved by",
    "request_changes": "Changes requested by",
    "reject": "Rejected by",
}


def _people(h: dict[str, Any]) -> list[str]:
    """Who asked and who decided; a name the command line claimed (`[review] allow_as`) says so."""
    lines = []
    for p in h.get("people", []):
        claim = p.get("claimed_by_os_user")
        said = f" (claimed by OS user {code(claim)}, not verified)" if claim else ""
        lines.append(f"- **{PEOPLE.get(p['action'], p['action'])}:** {text(p['by'])}{said}")
    return lines


def _blocking_banner(h: dict[str, Any]) -> list[str]:
    block = [f for f in h.get("findings", []) if f["level"] == "block"]
    if not block or h["outcome"] not in (Status.AWAITING_REVIEW, Status.BLOCKED):
        return []
    if h["outcome"] == Status.BLOCKED:
        return ["- **Blocked:** a secret was found in the change; nothing was committed or pushed."]
    owners = text(", ".join(h.get("owners") or [])) or "none named in \\[review] owners"
    return [f"- **Needs an owner:** {len(block)} block-level finding(s); owners: {owners}"]


def write(h: dict[str, Any], directory: Path, redact: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    clean = redact.deep(h)
    (directory / "handoff.json").write_text(json.dumps(clean, indent=2) + "\n")
    md = directory / "handoff.md"
    md.write_text(redact(render(clean)))
    return md
