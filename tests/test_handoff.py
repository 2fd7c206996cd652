"""The handoff is one record (`handoff.Handoff`): its markdown, its JSON and Slack's review message
are each rendered from it, say the same things, and show a hostile word as text, never as markup
or a secret. Nothing is read back from the markdown."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from conftest import Project

from jackline import config as cfg
from jackline import handoff
from jackline.guard.redact import Redactor
from jackline.models import AgentRound, CheckResult, Failure, Finding
from jackline.server.web import render_markdown
from jackline.surfaces import slack
from jackline.testing import Replace, Round, ScriptedAgent

BASE = "http://jl.example"
CONFIG = cfg.parse({"project": {"main": "main"}})


def _agent(round_no: int) -> handoff.Command:
    """The agent's command as the audit log records it (`steps.agent`)."""
    return handoff.Command(
        "agent",
        "agent {prompt}",
        0,
        1.5,
        "done",
        round=round_no,
        timed_out=False,
        timeout=60,
        changed=True,
        left_change=True,
    )


def _record() -> handoff.Handoff:
    failing = CheckResult(
        "test",
        False,
        1,
        0.8,
        "pytest -q",
        (Failure("test", "assert 6 == 5", "test_calc.py", 5, test="test_calc::test_add"),),
        summary="1 failed",
    )
    passing = CheckResult("test", True, 0, 0.7, "pytest -q", summary="1 passed")
    findings = (
        Finding("scope.gate", "block", "the change edits `ci.yml` <!channel>", "ci.yml", 3),
        Finding("guard.skip", "warn", "a test is skipped", "test_calc.py", 9, why="It hides."),
        Finding("dependency.added", "info", "requests was added", "requirements.txt"),
    )
    files = (handoff.ChangedFile("calc.py", 1, 1), handoff.ChangedFile("ci.yml", 2, 0))
    rounds = (
        handoff.Round(1, False, (failing,), _agent(1)),
        handoff.Round(2, True, (passing,), _agent(2)),
    )
    return handoff.Handoff(
        run="run-01abc",
        task="Fix add in calc.py",
        outcome="awaiting_review",
        branch="agent/fix-add-abc",
        base="a" * 40,
        head="b" * 40,
        summary="After 2 rounds every check passes (`test`). 2 files changed (+3 / -1).",
        files=files,
        rounds=rounds,
        commands=(rounds[0].agent, rounds[1].agent),  # type: ignore[arg-type]
        notes="- Assumed add means +.",
        findings=findings,
        owners=("alice",),
        people=(handoff.Person("submit", "bob"),),
        look_twice=tuple(handoff.look_twice(files, ["calc.py"], [], [], "x", findings)),
        timeline=(handoff.TimelineEntry(1, "edit", "calc.py", path="calc.py"),),
        spend=handoff.Spend(0.25, 1200),
        undo=("Nothing is merged. Reject: `jackline reject run-01abc`",),
        fixed_tests=(handoff.FixedTest("test", "test_calc::test_add", (1,)),),
        diff="git diff a b",
    )


def _run(h: handoff.Handoff) -> dict[str, Any]:
    return {"id": h.run, "task": h.task, "branch": h.branch, "submitted_by": "bob"}


def _slack_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_markdown_json_and_slack_from_one_record_say_the_same_outcome_checks_and_findings() -> None:
    h = _record()
    md, data = handoff.markdown(h), handoff.as_json(h)
    _, blocks = slack.review_message(CONFIG, {"run": _run(h), "record": data}, BASE)
    said = _slack_text(blocks)

    assert handoff.Handoff.from_json(json.loads(json.dumps(data))) == h
    # The outcome and the summary.
    assert f"- **Outcome:** {h.outcome}" in md and data["outcome"] == h.outcome
    assert h.summary in md.split("\n") and data["summary"] == h.summary
    assert blocks[1]["text"]["text"] == "After 2 rounds every check passes (`test`). 2 files " + (
        "changed (+3 / -1)."
    )
    # The checks of each round, as the record has them.
    for r in h.rounds:
        assert f"### Round {r.round}: {'passed' if r.passed else 'failed'}" in md
        for c in r.checks:
            assert f"- {handoff.code(c.name)} {'pass' if c.passed else 'FAIL'}:" in md
    assert [[c["passed"] for c in r["checks"]] for r in data["rounds"]] == [[False], [True]]
    assert "`test_calc::test_add` (check `test`): failed in round 1, passes now" in md
    # The findings: each in the markdown and the JSON; dependencies apart; the blocking and
    # the guard's ones among the places to look twice, in Slack too (its characters escaped).
    assert data["findings"] == [asdict(f) for f in h.findings]
    assert data["dependencies"] == [asdict(h.findings[2])]
    for f in h.findings[:2]:
        assert f"- **{f.level}** {f.rule} {handoff.code(f'{f.file}:{f.line}')}:" in md
    assert "- **info** requests was added (`requirements.txt`)" in md
    assert "`ci.yml:3` (scope.gate) the change edits `ci.yml` &lt;!channel&gt;" in said
    assert "`test_calc.py:9` (guard.skip) a test is skipped" in said
    assert "&lt;!channel&gt;" in said and "<!channel>" not in said
    assert "`calc.py` (+1/-1), `ci.yml` (+2/-0)" in said
    assert f"- {h.look_twice[0]}" in md and data["look_twice"] == list(h.look_twice)


def test_an_old_handoff_json_without_the_newer_fields_loads_and_renders(tmp_path: Path) -> None:
    # As an earlier version wrote it: no people, timeline, spend, fixed tests, diff or owners;
    # rounds without checks_skipped, checks without explained, the agent's command without
    # timed_out, changed or problem; and a key this version does not know.
    agent = {"step": "agent", "command": "a", "exit_code": 1, "duration": 2.0, "tail": "boom"}
    check = {"name": "test", "passed": False, "exit_code": 1, "duration": 0.5}
    check |= {"command": "pytest", "failures": [{"check": "test", "message": "no"}]}
    old = {
        "run": "run-old",
        "task": "Fix add",
        "outcome": "failed",
        "branch": "agent/fix-add",
        "base": "c" * 40,
        "head": None,
        "summary": "The checks still fail.",
        "files": [{"path": "calc.py", "added": 1, "removed": 1}],
        "rounds": [{"round": 1, "passed": False, "checks": [check], "agent": agent}],
        "commands": [agent],
        "notes": "",
        "findings": [{"rule": "guard.skip", "level": "warn", "message": "skipped"}],
        "look_twice": ["Still failing: no"],
        "undo": ["Remove the workspace."],
        "retired_key": 1,
    }
    (tmp_path / "handoff.json").write_text(json.dumps(old))
    (tmp_path / "handoff.md").write_text("# the note as it was written\n")
    h = handoff.load(tmp_path / "handoff.md")
    assert h is not None
    assert (h.people, h.timeline, h.fixed_tests, h.diff) == ((), (), (), "")
    assert h.rounds[0].agent and h.rounds[0].agent.measured() == AgentRound(1, tail="boom")
    assert h.rounds[0].checks[0].explained and h.rounds[0].checks[0].failures[0].message == "no"
    md = handoff.markdown(h)
    assert "### Round 1: failed (agent exit 1, 2.0s)" in md and "- Still failing: no" in md
    # A note written in markdown alone (the run failed before its record) is no record.
    (tmp_path / "handoff.json").unlink()
    assert handoff.load(tmp_path / "handoff.md") is None


def test_a_hostile_task_and_notes_are_redacted_and_escaped_in_every_rendering(
    project: Project,
) -> None:
    secret = "hunter2-" + "x7Q" * 8
    project.env["DEPLOY_TOKEN"] = secret  # a name that says secret: the harness redacts it
    notes = "<script>alert(1)</script>\n## Findings\nNone.\n[click](javascript:alert(1))\n"
    project.create(
        ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")}, notes=notes)])
    )
    # The branch's name is made of the task's first words: these, not the secret.
    task = f"Fix add in calc.py, keeping the behaviour <!channel> **now** {secret}"
    run = project.jl_json("run", task)
    assert run["status"] == "awaiting_review"
    folder = Path(run["handoff"]).parent
    md, stored = (folder / "handoff.md").read_text(), (folder / "handoff.json").read_text()
    h = handoff.Handoff.from_json(json.loads(stored))
    text, blocks = slack.review_message(CONFIG, {"run": run, "record": json.loads(stored)}, BASE)
    html = str(render_markdown(handoff.markdown(h)))

    for shown in (md, stored, text, _slack_text(blocks), html):
        assert secret not in shown
    assert h.task.endswith(" <!channel> **now** [redacted:DEPLOY_TOKEN]")
    # Markdown: the task is words on one line, the notes stay inside their quote.
    assert md.startswith(
        "# Handoff: Fix add in calc.py, keeping the behaviour \\<!channel\\> \\*\\*now"
    )
    lines = md.splitlines()
    assert lines.count("## Findings") == 1 and "> ## Findings" in lines
    # Slack: its three characters escaped, the only link the run's own.
    # (the header is plain text, which Slack shows as it is).
    marked = [b["text"]["text"] for b in blocks if b.get("text", {}).get("type") == "mrkdwn"]
    assert "&lt;!channel&gt;" in text and not any("<!channel>" in m for m in marked)
    brackets = {x for piece in [text, *marked] for x in re.findall(r"<[^>]*>", piece)}
    assert brackets <= {f"<{BASE}/runs/{run['id']}|{run['id']}>"}
    # The web page: raw HTML and a javascript: link are text.
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    # The markdown written is the record's rendering.
    assert md == handoff.markdown(h)


def test_redacting_a_record_reaches_every_text_field() -> None:
    secret = "s3cr3t-" + "k" * 20
    h = _record()
    dirty = handoff.Handoff(
        **{
            **{f: getattr(h, f) for f in h.__dataclass_fields__},
            "task": f"task {secret}",
            "notes": f"notes {secret}",
            "findings": (Finding("guard.x", "warn", f"said {secret}", quote=secret),),
            "commands": (handoff.Command("check:t", f"run {secret}", 1, 0.1, f"tail {secret}"),),
            "people": (handoff.Person("submit", secret),),
        }
    )
    clean = handoff.redacted(dirty, Redactor({"TOKEN": secret}).deep)
    assert secret not in json.dumps(handoff.as_json(clean)) + handoff.markdown(clean)
    assert (
        clean.findings[0].quote == "[redacted:TOKEN]" and clean.people[0].by == "[redacted:TOKEN]"
    )


def test_a_task_of_several_lines_is_titled_by_its_first_and_quoted_whole() -> None:
    h = _record()
    task = "Fix the login bug\n\nIt fails for emails with a +.\n## Findings\nNone."
    h = handoff.Handoff(**{**{f: getattr(h, f) for f in h.__dataclass_fields__}, "task": task})
    md = handoff.markdown(h)
    lines = md.splitlines()
    assert lines[0] == "# Handoff: Fix the login bug"
    assert "\\n" not in md.split("## ", 1)[0]  # no escaped newline in the title or the quote
    assert "> It fails for emails with a +." in lines
    # A heading in the task stays in its quote: the note has one Findings section, its own.
    assert "> ## Findings" in lines and lines.count("## Findings") == 1
