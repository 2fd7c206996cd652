"""Blueprints as data: a repository's own `.jackline/blueprints/NAME.toml`, walked step by step.

Deterministic steps change the work and own what they changed; agentic steps bring their own
prompt, agent and round limit; a bad file is refused with its place; an agent cannot change the
blueprint of the run it works in; a run resumed after `kill -9` walks the blueprint it recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WRONG, Project, git

from jackline.testing import Replace, Round, ScriptedAgent

FIXED = Round(edits={"calc.py": Replace("a - b", "a + b")})

TAIL = """
[[steps]]
kind = "scan"

[[steps]]
kind = "commit"

[[steps]]
kind = "handoff"

[[steps]]
kind = "review"
"""

FIX_THEN_STAMP = (
    """\
description = "a fixer after each round, a generator after the agent"

[[steps]]
kind = "agent"
rounds = 1

[[steps.before_checks]]
name = "fixer"
command = "sed -i 's/a [*] b/a + b/' calc.py"

[[steps]]
kind = "command"
name = "stamp"
command = "echo generated > GENERATED.txt"
"""
    + TAIL
)


def _with_blueprint(project: Project, agent: ScriptedAgent, name: str, text: str) -> Project:
    return project.create(agent, files={f".jackline/blueprints/{name}.toml": text})


def _branch_file(run: dict[str, object], path: str) -> str:
    """A file as the run committed it (its branch is published only by a `publish` step)."""
    return git(Path(str(run["workspace"])), "show", f"{run['branch']}:{path}")


def test_command_steps_change_the_work_and_own_what_they_changed(project: Project) -> None:
    # The agent gets add wrong (a * b) in its only round; the fixer after it makes it right
    # before the checks judge the round, and the generator after the agent adds a file.
    _with_blueprint(project, ScriptedAgent([WRONG]), "fix-then-stamp", FIX_THEN_STAMP)
    run = project.jl_json("run", "Fix add", "--blueprint", "fix-then-stamp")
    assert run["status"] == "awaiting_review", run.get("reason")
    assert run["blueprint"] == "fix-then-stamp" and run["rounds"] == 1
    assert "a + b" in _branch_file(run, "calc.py")  # committed: the fixer's change
    assert _branch_file(run, "GENERATED.txt") == "generated"
    commands = {e["step"]: e for e in project.events_by_kind(run["id"])["command"]}
    assert commands["step:fixer"]["changed"] == ["calc.py"]
    assert commands["step:fixer"]["after_round"] == 1 and commands["step:fixer"]["passed"]
    assert commands["step:stamp"]["created"] == ["GENERATED.txt"]
    assert commands["step:stamp"]["changed"] == []
    rounds = project.events_by_kind(run["id"])["round"]
    assert [r["passed"] for r in rounds] == [True]  # the checks judged the fixed tree
    handoff = Path(run["handoff"]).read_text()
    assert "`step:fixer` changed calc.py" in handoff
    assert "`step:stamp` created GENERATED.txt" in handoff
    merged = project.jl_json("approve", run["id"], "--as", "bob")
    assert merged["status"] == "merged"
    assert (project.repo / "GENERATED.txt").read_text() == "generated\n"


@pytest.mark.parametrize("rule", ["exit-0", "always"])
def test_a_command_step_that_fails_fails_the_run_unless_its_rule_says_always(
    project: Project, rule: str
) -> None:
    blueprint = f"""\
[[steps]]
kind = "agent"

[[steps]]
kind = "command"
name = "codegen"
command = "echo 'codegen: schema.json not found' >&2; exit 3"
pass = "{rule}"
{TAIL}"""
    _with_blueprint(project, ScriptedAgent([FIXED]), "gen", blueprint)
    run = project.jl_json("run", "Fix add", "--blueprint", "gen")
    events = project.events_by_kind(run["id"])
    step = next(e for e in events["command"] if e["step"] == "step:codegen")
    assert step["exit_code"] == 3 and step["passed"] == (rule == "always")
    if rule == "always":
        assert run["status"] == "awaiting_review"
        return
    assert run["status"] == "failed"
    assert run["reason"] == "the step `codegen` failed (exit 3): codegen: schema.json not found"
    assert "commit" not in events and "scan" in events  # scanned, never committed
    said = "The run failed: the step \\`codegen\\` failed (exit 3): codegen: schema.json not found"
    assert said in Path(run["handoff"]).read_text()  # a reason is text: its backticks escaped


def test_an_agentic_step_has_its_own_agent_prompt_and_rounds(project: Project) -> None:
    # `[blueprint] max_rounds` is 2; the step allows 3, and the agent needs them.
    still_wrong = Round(edits={"calc.py": Replace("a * b", "a * b * 1")})
    right = Round(edits={"calc.py": Replace("a * b * 1", "a + b")})
    blueprint = (
        """\
[[steps]]
kind = "agent"
name = "implement"
agent = "careful"
rounds = 3
prompt = '''
You fix one thing at a time. The task: {task}
This is try {round} of {rounds}; the JSON {"keep": "braces"} stays as written.
{feedback}'''
"""
        + TAIL
    )
    agent = ScriptedAgent([WRONG, still_wrong, right])
    careful = (
        f"\n[agents.careful]\ncommand = {ScriptedAgent.command(project.root / 'agent.json')!r}\n"
    )
    project.create(
        agent,
        agent_extra=careful.replace("'", '"'),
        files={".jackline/blueprints/careful.toml": blueprint},
    )
    run = project.jl_json("run", "Fix add", "--blueprint", "careful")
    assert run["status"] == "awaiting_review" and run["rounds"] == 3
    agents = [e for e in project.events_by_kind(run["id"])["command"] if e["step"] == "agent"]
    assert [e.get("agent") for e in agents] == ["careful"] * 3
    rounds = project.home / "runs" / run["id"]
    first = (rounds / "round-1" / "brief.md").read_text()
    assert first.startswith("You fix one thing at a time. The task: Fix add\n")
    assert 'This is try 1 of 3; the JSON {"keep": "braces"} stays as written.' in first
    second = (rounds / "round-2" / "brief.md").read_text()
    assert "try 2 of 3" in second and "Check `test` failed" in second  # {feedback}, in place
    assert "# Rules in scope" not in first and "# Boundaries" not in first  # no {brief} asked


def test_an_invalid_blueprint_is_refused_naming_its_file_key_and_value(project: Project) -> None:
    bad = '[[steps]]\nkind = "agent"\nrounds = 0\n' + TAIL
    unknown = '[[steps]]\nkind = "agent"\n\n[[steps]]\nkind = "deploy"\n' + TAIL
    project.create(
        ScriptedAgent([FIXED]),
        files={".jackline/blueprints/bad.toml": bad, ".jackline/blueprints/odd.toml": unknown},
    )
    where = project.repo / ".jackline" / "blueprints"
    refused = project.jl("run", "Fix add", "--blueprint", "bad", ok=False)
    assert refused.returncode == 2
    assert f"{where / 'bad.toml'}: steps.0.rounds:" in refused.stderr
    assert "greater than or equal to 1 (got 0)" in refused.stderr
    odd = project.jl("run", "Fix add", "--blueprint", "odd", ok=False)
    assert odd.returncode == 2
    assert f"{where / 'odd.toml'}: steps.1.kind: unknown step 'deploy'" in odd.stderr
    missing = project.jl("run", "Fix add", "--blueprint", "nope", ok=False)
    assert "unknown blueprint 'nope'" in missing.stderr
    assert "autofix, bad, local, odd, standard" in missing.stderr
    assert not (project.home / "jackline.db").exists() or project.jl_json("runs") == []
    # `jackline validate` checks the blueprint the config names.
    config = project.repo / "jackline.toml"
    config.write_text(config.read_text().replace("max_rounds = 2", 'max_rounds = 2\nname = "bad"'))
    checked = project.jl("validate", ok=False)
    assert checked.returncode == 2
    assert f"blueprint.name: {where / 'bad.toml'}: steps.0.rounds:" in checked.stderr


def test_an_agent_that_edits_a_blueprint_changes_nothing_and_is_flagged(project: Project) -> None:
    blueprint = (
        '[[steps]]\nkind = "agent"\n\n[[steps]]\nkind = "command"\nname = "stamp"\n'
        'command = "echo recorded > STAMP"\n' + TAIL
    )
    hostile = blueprint.replace("echo recorded > STAMP", "echo hijacked > STAMP; touch PWNED")
    rewrite = Round(
        edits={
            "calc.py": Replace("a - b", "a + b"),
            ".jackline/blueprints/guarded.toml": hostile,
            ".jackline/blueprints/standard.toml": hostile,
        }
    )
    _with_blueprint(project, ScriptedAgent([rewrite]), "guarded", blueprint)
    run = project.jl_json("run", "Fix add", "--blueprint", "guarded")
    assert run["status"] == "awaiting_review"
    assert _branch_file(run, "STAMP") == "recorded"  # the recorded step ran
    listed = git(Path(run["workspace"]), "ls-tree", "-r", "--name-only", run["branch"]).split()
    assert "PWNED" not in listed
    scan = project.events_by_kind(run["id"])["scan"][-1]
    gates = {(f["rule"], f["level"], f["file"]) for f in scan["findings"]}
    assert ("scope.gate", "block", ".jackline/blueprints/guarded.toml") in gates
    assert ("scope.gate", "block", ".jackline/blueprints/standard.toml") in gates
    # A request for changes walks on from the recorded blueprint too, not the edited file.
    agent = ScriptedAgent([rewrite, Round(edits={"calc.py": Replace("a + b", "b + a")})])
    agent.save(project.root / "agent.json")
    again = project.jl_json("request-changes", run["id"], "--as", "bob", "-m", "b + a please")
    assert again["status"] == "awaiting_review"
    stamps = [e for e in project.events_by_kind(run["id"])["command"] if e["step"] == "step:stamp"]
    assert [s["command"] for s in stamps] == ["echo recorded > STAMP"] * 2


def test_a_run_resumed_after_kill_walks_the_blueprint_it_recorded(project: Project) -> None:
    marker = ".jackline/run/first-attempt"
    slow = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=[f"if [ ! -e {marker} ]; then touch {marker}; sleep 120; fi"],
    )
    blueprint = (
        '[[steps]]\nkind = "agent"\n\n[[steps]]\nkind = "command"\nname = "stamp"\n'
        'command = "echo first > STAMP"\n' + TAIL
    )
    _with_blueprint(project, ScriptedAgent([slow]), "stamped", blueprint)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jackline", "run", "Fix add", "--blueprint", "stamped", "--json"],
        cwd=project.repo,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not list(project.home.glob(f"workspaces/*/{marker}")):
        assert time.time() < deadline and proc.poll() is None, "the agent never started"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Meanwhile a person changes the blueprint (and breaks another): the run goes on as it began.
    edited = project.repo / ".jackline" / "blueprints" / "stamped.toml"
    edited.write_text(blueprint.replace("echo first", "echo second"))
    (project.repo / ".jackline" / "blueprints" / "standard.toml").write_text("steps = 1\n")
    run_id = sqlite3.connect(project.home / "jackline.db").execute("SELECT id FROM runs").fetchone()
    resumed = project.jl_json("resume")
    assert [r["status"] for r in resumed] == ["awaiting_review"]
    assert _branch_file(resumed[0], "STAMP") == "first"
    events = project.events(run_id[0])
    assert sum(1 for e in events if e["kind"] == "step" and e.get("retry")) == 1
    stamps = [e for e in events if e["kind"] == "command" and e["step"] == "step:stamp"]
    assert [s["command"] for s in stamps] == ["echo first > STAMP"]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not on PATH")
def test_the_autofix_blueprint_fixes_lint_and_formats_before_the_checks(project: Project) -> None:
    # Unused import, cramped code: lint and format checks that would fail the agent's round
    # pass once the built-in autofix steps have run.
    sloppy = Round(edits={"calc.py": "import os\ndef add(a,b):\n    return a+b\n"})
    checks = (
        '\n[checks.lint]\ncommand = "ruff check --no-cache ."\n'
        '\n[checks.format]\ncommand = "ruff format --check --no-cache ."\n'
    )
    project.create(ScriptedAgent([sloppy]), extra=checks)
    run = project.jl_json("run", "Fix add", "--blueprint", "autofix")
    assert run["status"] == "awaiting_review", run.get("reason")
    assert _branch_file(run, "calc.py") == "def add(a, b):\n    return a + b"
    commands = {e["step"]: e for e in project.events_by_kind(run["id"])["command"]}
    assert commands["step:autofix"]["changed"] == ["calc.py"]
    assert commands["step:format"]["changed"] == ["calc.py"]


def test_the_built_in_blueprints_are_files_of_the_same_format() -> None:
    from jackline import blueprints

    for name in blueprints.BUILT_IN:
        bp = blueprints.built_in(name)
        assert blueprints.from_record(blueprints.recorded(bp)) == bp
    assert blueprints.built_in("standard").outline() == (
        "agent -> scan -> commit -> publish -> handoff -> review"
    )
    assert blueprints.built_in("local").outline() == "agent -> scan -> commit -> handoff -> review"
    autofix = blueprints.built_in("autofix").steps[0]
    assert isinstance(autofix, blueprints.AgentStep)
    assert [(c.name, c.pass_) for c in autofix.before_checks] == [
        ("autofix", "always"),
        ("format", "always"),
    ]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[[steps]]\nkind = "scan"\n', "steps: no agentic step"),
        ('[[steps]]\nkind = "agent"\n', "steps: the harness's steps scan, commit, handoff, review"),
        (
            '[[steps]]\nkind = "agent"\n' + TAIL + '\n[[steps]]\nkind = "command"\nname = "x"\n'
            'command = "true"\n',
            "steps: the harness's steps go in this order",
        ),
        (
            '[[steps]]\nkind = "agent"\n[[steps]]\nkind = "scan"\n[[steps]]\nkind = "command"\n'
            'name = "late"\ncommand = "true"\n[[steps]]\nkind = "commit"\n[[steps]]\n'
            'kind = "handoff"\n[[steps]]\nkind = "review"\n',
            "steps: steps.2: agent and command steps come before scan",
        ),
        (
            '[[steps]]\nkind = "agent"\nname = "x"\n[[steps.before_checks]]\nname = "x"\n'
            'command = "true"\n' + TAIL,
            "steps: each step needs a name of its own; x is used twice",
        ),
        (
            '[[steps]]\nkind = "agent"\nprompt = "{task} {secret}"\n' + TAIL,
            "steps.0.prompt: unknown placeholder {secret}",
        ),
        (
            '[[steps]]\nkind = "command"\nname = "../x"\ncommand = "true"\n',
            "steps.0.name: a name of letters, digits",
        ),
        ('name = "x"\n[[steps]]\nkind = "agent"\n' + TAIL, "name: unknown key"),
        ('[[steps]]\nkind = "agent"\nround = 3\n' + TAIL, "steps.0.round: unknown key"),
        ("[[steps]\n", "invalid TOML"),
    ],
)
def test_a_blueprint_file_is_checked_before_any_run(text: str, said: str) -> None:
    from jackline import blueprints
    from jackline.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        blueprints.parse(text, "x", "/r/.jackline/blueprints/x.toml")
    assert refused.value.path == "/r/.jackline/blueprints/x.toml"
    assert any(p.startswith(said) for p in refused.value.problems), refused.value.problems


def test_a_blueprint_name_is_never_a_path(tmp_path: Path) -> None:
    from jackline import blueprints
    from jackline.errors import NotFound

    (tmp_path / "evil.toml").write_text("")
    with pytest.raises(NotFound, match="is not a blueprint name"):
        blueprints.load(tmp_path / "repo", "../../evil")


def test_the_scan_sees_what_a_command_step_wrote(project: Project) -> None:
    # A generator that writes a key into the tree (and prints it): the run is blocked, as for
    # the agent's own, and the value is in no stored byte. The blueprint holds no such value:
    # the step makes it.
    key = "ghp_" + "Zq7x" * 9
    blueprint = (
        '[[steps]]\nkind = "agent"\n\n[[steps]]\nkind = "command"\nname = "config-gen"\n'
        "command = '''python3 -c \"print('TOKEN = ' + repr('ghp_' + 'Zq7x' * 9))\" "
        "> settings_gen.py; cat settings_gen.py'''\n" + TAIL
    )
    _with_blueprint(project, ScriptedAgent([FIXED]), "gen", blueprint)
    done = project.jl("run", "Fix add", "--blueprint", "gen", "--json", ok=False)
    assert done.returncode == 3, done.stderr  # blocked: nothing committed
    events = project.events_by_kind(json.loads(done.stdout)["id"])
    assert "commit" not in events
    assert any(f["file"] == "settings_gen.py" for f in events["scan"][-1]["findings"])
    assert key.encode() not in (project.home / "jackline.db").read_bytes()
    assert not [p for p in (project.home / "runs").rglob("*.log") if key in p.read_text()]
