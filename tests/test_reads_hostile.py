"""What the harness reads from a workspace after a hostile agent or check ran in it: never a
host file through a link, never more than a bound. Real bubblewrap, real runs, real processes."""

from __future__ import annotations

import json
import os
import resource
import shutil
from pathlib import Path

import pytest
from conftest import Project, git

from jackline import proc
from jackline.agents import Brief, aider, codex, mini_swe_agent
from jackline.config import AgentConfig

bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

HOST_SECRET = "HOST-SECRET-MARKER-41d9c2"
HARNESS_ENV = "HARNESS-ENV-MARKER-77aa03"


def _planted(root: Path, name: str = "host-secret.txt", text: str = "") -> Path:
    """A host file the sandbox cannot see (under the host's /tmp), with an old mtime so that a
    rewrite shows even when the bytes come back the same."""
    path = root / name
    path.write_text(text or f"root:{HOST_SECRET}:19000:0:99999:7:::\n")
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return path


def _unchanged(path: Path, text: str) -> bool:
    st = path.lstat()
    return path.read_text() == text and st.st_mtime_ns == 1_000_000_000_000_000_000


def _everything_stored(project: Project, run: dict[str, object]) -> str:
    """The handoff, every event, every file the harness kept for the run, and the branch's
    history: wherever a leaked byte could end up."""
    parts = [json.dumps(project.events(str(run["id"])))]
    for folder, _, names in os.walk(project.home / "runs" / str(run["id"])):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                parts.append(path.read_text(errors="replace"))
    branch = str(run["branch"])
    if git(project.repo, "branch", "--list", branch):
        parts.append(git(project.repo, "log", "-p", branch))
    return "\n".join(parts)


@bwrap
def test_linked_rules_agents_claude_infrastructure_and_notes_never_reach_the_brief(
    project: Project,
) -> None:
    host = _planted(project.root)
    round_one = (
        "mkdir -p .jackline/rules sub && "
        f"ln -s {host} .jackline/rules/evil.md && "
        f"ln -s {host} AGENTS.md && "
        f"ln -s {host} sub/CLAUDE.md && touch sub/x.py && "
        f"ln -s {host} INFRASTRUCTURE.md && "
        "ln -s /proc/self/environ .jackline/notes.md"
    )
    agent = (
        f'if [ "$JACKLINE_ROUND" = 1 ]; then {round_one}; '
        "else sed -i 's/a - b/a + b/' calc.py; fi"
    )
    project.create(agent)
    project.env["JL_HARNESS_ONLY"] = HARNESS_ENV
    run = project.jl_json("run", "Fix add in calc.py")
    assert run["rounds"] == 2, run
    brief = (project.home / "runs" / run["id"] / "round-2" / "brief.md").read_text()
    assert "# Task" in brief and HOST_SECRET not in brief
    stored = _everything_stored(project, run)
    assert HOST_SECRET not in stored
    assert HARNESS_ENV not in stored
    assert _unchanged(host, f"root:{HOST_SECRET}:19000:0:99999:7:::\n")


@bwrap
def test_notes_linked_to_a_host_file_never_reach_the_handoff(project: Project) -> None:
    host = _planted(project.root)
    project.create(
        f"sed -i 's/a - b/a + b/' calc.py && mkdir -p .jackline && ln -s {host} .jackline/notes.md"
    )
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert HOST_SECRET not in Path(run["handoff"]).read_text()
    assert HOST_SECRET not in _everything_stored(project, run)


@bwrap
def test_a_check_cannot_swap_its_log_or_report_for_a_link_to_a_host_file(
    project: Project,
) -> None:
    hidden = _planted(project.root)
    xml = (
        '<testsuite><testcase classname="t" name="t">'
        f'<failure message="{HOST_SECRET}-REPORT">x</failure></testcase></testsuite>\n'
    )
    report = _planted(project.root, "host-report.xml", xml)
    evil = (
        "d=$(dirname {report}); ls -a $d; "
        f"rm -f $d/evil.log; ln -s {hidden} $d/evil.log; "
        f"ln -s {report} {{report}}; exit 1"
    )
    extra = f'\n[checks.evil]\ncommand = {json.dumps(evil)}\nparser = "junit"\n'
    project.create("sed -i 's/a - b/a + b/' calc.py", extra=extra)
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "failed", run
    stored = _everything_stored(project, run)
    assert HOST_SECRET not in stored
    assert _unchanged(hidden, f"root:{HOST_SECRET}:19000:0:99999:7:::\n")
    assert _unchanged(report, xml)
    # The check's folder holds its report and nothing else: the harness's log is elsewhere.
    listed = next(e["tail"] for e in project.events(run["id"]) if e.get("step") == "check:evil")
    assert not [line for line in listed.splitlines() if line.endswith(".log")], listed


def test_output_past_the_bound_keeps_head_and_tail_and_says_what_was_dropped(
    tmp_path: Path,
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    printer = "echo FIRST-LINE; yes 0123456789abcdef | head -c 314572800; echo; echo LAST-LINE"
    log = tmp_path / "out.log"
    done = proc.run(printer, tmp_path, os.environ, log, timeout=120)
    after = resource.getrusage(resource.RUSAGE_SELF)
    harness = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert done.exit_code == 0
    assert harness < 5, f"the harness spent {harness:.1f}s of CPU on 300 MiB of output"
    size = log.stat().st_size
    assert proc.HEAD + proc.TAIL <= size < proc.HEAD + proc.TAIL + 4096
    text = log.read_text()
    assert "FIRST-LINE" in text[:200] and text.rstrip().endswith("LAST-LINE")
    assert done.dropped == 314572800 + len("FIRST-LINE\n\nLAST-LINE\n") - proc.HEAD - proc.TAIL
    assert f"{done.dropped:,} bytes" in text
    assert "LAST-LINE" in done.output and f"{done.dropped:,} bytes" in done.tail()


def test_a_background_child_holding_the_output_open_does_not_hang_the_harness(
    tmp_path: Path,
) -> None:
    done = proc.run("(sleep 30; echo late) & echo early", tmp_path, os.environ, tmp_path / "l", 60)
    assert done.exit_code == 0 and "early" in done.output and done.duration < 10


def test_a_command_past_its_timeout_is_ended_while_it_prints(tmp_path: Path) -> None:
    done = proc.run("yes", tmp_path, os.environ, tmp_path / "l", timeout=2)
    assert done.timed_out and done.duration < 15
    assert "timed out" in done.output and done.dropped > 0


# The presets' transcript files, planted as links by a stand-in for the program ---------------


def _fake(tmp_path: Path, script: str) -> str:
    program = tmp_path / "fake-agent"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(0o755)
    return str(program)


def _brief(ws: Path) -> Brief:
    return Brief(ws / ".jackline" / "run" / "brief.md", "# Task\n\nFix it\n", 1, None)


def test_aider_chat_history_and_analytics_linked_out_are_not_read(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    host = _planted(
        tmp_path, text=f"{aider._HEADER} 2026-01-01\n\n#### hi\n\n{HOST_SECRET} says hello\n"
    )
    stats = _planted(tmp_path, "host.jsonl", json.dumps({"event": "message_send"}) + "\n")
    script = f"mkdir -p {aider.PRIVATE} && ln -s {host} {aider.HISTORY} && ln -s {stats} {aider.ANALYTICS}"
    agent = aider.Agent(AgentConfig(preset="aider", command=_fake(tmp_path, script)))
    result = agent.run(_brief(ws), ws, os.environ, tmp_path / "agent.log")
    assert HOST_SECRET not in repr(result.transcript)


def test_a_mini_swe_agent_trajectory_linked_out_is_not_read(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    trajectory = {"messages": [{"role": "assistant", "content": f"{HOST_SECRET} in here"}]}
    host = _planted(tmp_path, text=json.dumps(trajectory))
    script = f"mkdir -p {mini_swe_agent.PRIVATE} && ln -s {host} {mini_swe_agent.TRAJECTORY}"
    agent = mini_swe_agent.Agent(
        AgentConfig(preset="mini-swe-agent", command=_fake(tmp_path, script))
    )
    result = agent.run(_brief(ws), ws, os.environ, tmp_path / "agent.log")
    assert HOST_SECRET not in repr(result.transcript)


def test_a_codex_session_file_linked_out_is_not_read(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    session = {"type": "turn_context", "payload": {"model": HOST_SECRET}}
    host = _planted(tmp_path, text=json.dumps(session) + "\n")
    events = [
        {"type": "thread.started", "thread_id": "T1"},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}},
    ]
    sessions = f"{codex.HOME}/sessions/2026/01/01"
    script = f"mkdir -p {sessions} && ln -s {host} {sessions}/rollout-x-T1.jsonl && " + " && ".join(
        f"echo '{json.dumps(e)}'" for e in events
    )
    agent = codex.Agent(AgentConfig(preset="codex", command=_fake(tmp_path, script)))
    result = agent.run(_brief(ws), ws, os.environ, tmp_path / "agent.log")
    assert result.transcript is not None and result.transcript.usage
    assert HOST_SECRET not in repr(result.transcript)


def test_a_stale_transcript_path_through_a_link_is_not_deleted_on_the_host(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    (ws / ".jackline").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "aider").mkdir(parents=True)
    (elsewhere / "aider" / "chat.history.md").write_text("keep me\n")
    (ws / ".jackline" / "run").symlink_to(elsewhere)
    agent = aider.Agent(AgentConfig(preset="aider", command=_fake(tmp_path, "true")))
    agent.run(_brief(ws), ws, os.environ, tmp_path / "agent.log")
    assert (elsewhere / "aider" / "chat.history.md").read_text() == "keep me\n"


def test_a_run_whose_agent_prints_too_much_says_so_in_the_handoff(project: Project) -> None:
    agent = "head -c 3000000 /dev/zero | tr '\\0' x; sed -i 's/a - b/a + b/' calc.py"
    project.create(agent)
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review"
    handoff = (project.home / "runs" / run["id"] / "handoff.md").read_text()
    assert "bytes between the first and the last MiB were dropped" in handoff
    [agent_command] = [
        c for c in project.events_by_kind(run["id"])["command"] if c["step"] == "agent"
    ]
    assert agent_command["dropped_bytes"] > 900_000
    assert (project.home / "runs" / run["id"] / "round-1" / "agent.log").stat().st_size < 2_200_000
