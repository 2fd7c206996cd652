"""What a user notices at the command line: progress during set-up, a handoff printed whole,
`logs --full`, short run ids every command accepts, no promise of a round that will not come,
file names told whole, and a README whose examples are safe as written."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WRONG, Project, git, unmount_under

from jackline.store import shortest_unique
from jackline.testing import Replace, Round, ScriptedAgent

FIX = Round(edits={"calc.py": Replace("a - b", "a + b")})
LONG_NOTE = "- " + "the agent assumed this and that " * 6 + "NOTE-END"
# A check that passes and prints a line longer than `logs` shows of an event by default.
LOUD = """print("x" * 400); print("LOUD" + "-END")"""
LOUD_CHECK = "\n[checks.loud]\ncommand = " + json.dumps(f"{sys.executable} -c '{LOUD}'") + "\n"


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str]]:
    """One run awaiting review, read (never decided) by the tests that take it."""
    root = tmp_path_factory.mktemp("waiting")
    project = Project(root, root / "home")
    agent = ScriptedAgent([Round(edits=FIX.edits, notes=LONG_NOTE)])
    project.create(agent, extra=LOUD_CHECK)
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    yield project, run["id"]
    unmount_under(root)


def test_run_shows_each_setup_command_as_it_starts_and_when_it_ends(project: Project) -> None:
    project.create(
        ScriptedAgent([FIX]), extra='\n[workspace]\nsetup = ["sleep 1; echo hi", "true"]\n'
    )
    done = project.jl("run", "Fix add")
    shown = done.stderr
    started = shown.index("set-up 1/2 `sleep 1; echo hi` ...")
    ended = re.search(r"set-up 1/2 `sleep 1; echo hi` exited 0 after \d+\.\ds", shown)
    assert ended and ended.start() > started, shown
    assert "set-up 2/2 `true` ..." in shown[ended.end() :], shown
    # Told as it starts, not once every command is over: the start is recorded a second before
    # the end of a command that sleeps a second.
    run_id = project.jl_json("runs")[0]["id"]
    (start,) = [e for e in project.events(run_id) if e["kind"] == "setup" and e["number"] == 1]
    end = next(
        e for e in project.events(run_id) if e["kind"] == "command" and e.get("step") == "setup"
    )
    assert end["duration"] >= 1.0 and start["command"] == end["command"]


def test_show_wraps_long_handoff_lines_instead_of_cutting_them(
    waiting: tuple[Project, str],
) -> None:
    project, run_id = waiting
    project.env["COLUMNS"] = "60"
    try:
        shown = project.jl("show", run_id).stdout
    finally:
        del project.env["COLUMNS"]
    assert "NOTE-END" in shown, shown  # the end of a long bullet of the agent's notes
    assert "…" not in shown, shown  # no table cell (the commands run) cut short
    flat = re.sub(r"[\s│]", "", shown)
    assert 'print("x"*400);print("LOUD"+"-END")\'' in flat, shown


def test_logs_full_prints_each_event_whole(waiting: tuple[Project, str]) -> None:
    project, run_id = waiting
    clipped = project.jl("logs", run_id).stdout
    full = project.jl("logs", run_id, "--full").stdout
    assert "LOUD-END" not in clipped
    assert "x" * 400 + "\n" in full and "LOUD-END" in full
    assert "--full" in project.jl("logs", "--help").stdout


def test_runs_lists_short_ids_that_every_command_accepts(waiting: tuple[Project, str]) -> None:
    project, run_id = waiting
    listed = project.jl("runs").stdout
    assert run_id not in listed
    short = run_id[-6:]
    assert re.search(rf"^ ?{short}\s", listed, re.M), listed
    assert run_id in project.jl("show", short).stdout
    assert project.jl("logs", short).stdout == project.jl("logs", run_id).stdout
    assert project.jl_json("show", short.upper())["id"] == run_id
    for verb in ("resume", "clean"):  # refused for a run awaiting review, which they name
        assert run_id in project.jl(verb, short, ok=False).stderr
    too_short = project.jl("show", short[-5:], ok=False)
    assert too_short.returncode == 1 and "at least 6" in too_short.stderr


def test_an_ambiguous_short_id_is_refused_naming_the_runs(waiting: tuple[Project, str]) -> None:
    project, run_id = waiting
    twin = "run-" + "u" * 20 + run_id[-6:]  # ends as the run does (u: in no ULID)
    db = sqlite3.connect(project.home / "jackline.db")
    db.row_factory = sqlite3.Row
    row = dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
    row["id"] = twin
    db.execute(
        f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", [*row.values()]
    )
    db.commit()
    db.close()
    refused = project.jl("show", run_id[-6:], ok=False)
    assert refused.returncode == 1
    assert run_id in refused.stderr and twin in refused.stderr, refused.stderr
    listed = project.jl("runs").stdout
    assert re.search(rf"^ ?{run_id[-7:]}\s", listed, re.M), listed  # one longer, unique again
    assert run_id in project.jl("show", run_id[-7:]).stdout


def test_a_short_id_is_the_shortest_ending_no_other_id_holds_anywhere() -> None:
    a = "run-" + "0" * 20 + "abcdef"
    b = "run-" + "1" * 19 + "yabcdef"
    c = "run-abcdefgh" + "2" * 18  # holds a's and b's last six in its middle
    assert shortest_unique([a, b, c], [a, b, c]) == {a: "0abcdef", b: "yabcdef", c: "222222"}
    assert shortest_unique([a], [a]) == {a: "abcdef"}


def test_a_last_failed_round_does_not_promise_feedback(project: Project) -> None:
    worse = Round(edits={"calc.py": Replace("a * b", "a ** b")})
    project.create(ScriptedAgent([WRONG, worse]))  # max_rounds = 2: both rounds fail
    shown = project.jl("run", "Fix add", ok=False).stderr
    assert re.search(r"round 2: brief .*and round 1's feedback", shown), shown
    last = shown[shown.rindex("check test") :]
    assert "round 2" in shown and "feeding" not in last and "fed back" not in last, shown
    assert "feeding the failures back" not in shown


def test_approve_on_dirty_main_names_the_changed_files_whole(project: Project) -> None:
    project.create(ScriptedAgent([FIX]), files={"README.md": "# calc\n", "docs/a b.md": "x\n"})
    run_id = project.jl_json("run", "Fix add")["id"]
    (project.repo / "README.md").write_text("# calc, edited\n")
    (project.repo / "docs" / "a b.md").write_text("y\n")
    git(project.repo, "add", "docs/a b.md")
    refused = project.jl("approve", run_id[-6:], "--as", "bob", ok=False)
    assert refused.returncode != 0
    assert "(README.md, docs/a b.md)" in refused.stderr or "(docs/a b.md, README.md)" in (
        refused.stderr
    ), refused.stderr
    git(project.repo, "reset", "-q", "--hard")
    assert project.jl_json("approve", run_id[-6:], "--as", "bob")["status"] == "merged"


def test_the_readme_redis_example_listens_on_loopback_only() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    (services,) = [tomllib.loads(b) for b in blocks if "[services.redis]" in b]
    assert "--bind 127.0.0.1" in services["services"]["redis"]["start"]
