"""The report for people and machines: JSON, Markdown for posting, and a Rich table for the CLI.
Each puts what needs attention (or could not be told) first."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from rich.table import Table
from rich.text import Text

from jackline.health.records import Item, Report

STYLE = {"attention": "bold red", "unknown": "yellow", "ok": "green"}
DETAIL_LINES = 3


def to_dict(report: Report) -> dict[str, Any]:
    return {
        "at": report.at.isoformat(timespec="seconds"),
        "ok": report.ok,
        "attention": len(report.attention),
        "items": [asdict(i) for i in report.items],
    }


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2)


def headline(report: Report) -> str:
    when = report.at.strftime("%Y-%m-%d %H:%M %Z").strip()
    n = len(report.attention)
    verdict = f"{n} item(s) need attention" if n else "all clear"
    return f"Jackline health, {when}: {verdict}"


def to_markdown(report: Report) -> str:
    """A short line per item, attention first: fit for a chat message or an issue comment."""
    lines = [f"### {headline(report)}", ""]
    if report.attention:
        lines += ["**Needs attention**", ""]
        lines += [_md_line(i) for i in report.attention]
        lines.append("")
    fine = [i for i in report.items if not i.needs_attention]
    if fine:
        lines += ["**OK**", ""] + [_md_line(i) for i in fine]
    return "\n".join(lines).rstrip() + "\n"


def _md_line(item: Item) -> str:
    state = "" if item.state == "ok" else f" ({item.state})"
    name = item.section if item.name == item.section else f"{item.section} · {item.name}"
    return f"- **{name}**{state}: {item.summary}"


def table(report: Report) -> Table:
    """Attention and unknown first, coloured by state; their evidence in dim under the summary."""
    t = Table(title=headline(report), title_justify="left", box=None, header_style="bold")
    for column in ("state", "section", "name", "summary"):
        t.add_column(column, overflow="fold")
    for item in report.items:
        t.add_row(
            Text(item.state, style=STYLE[item.state]),
            item.section,
            Text(item.name),
            _summary(item),
        )
    return t


def _summary(item: Item) -> Text:
    text = Text(item.summary)
    if item.needs_attention and item.detail.strip():
        lines = item.detail.strip().splitlines()
        shown = lines[:DETAIL_LINES] + (["…"] if len(lines) > DETAIL_LINES else [])
        text.append("\n" + "\n".join(shown), style="dim")
    return text
