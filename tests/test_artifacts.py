"""What a run keeps in the store besides its record and audit log (`jackline.artifacts`)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Project

from jackline import api, steps
from jackline.models import Run, Status
from jackline.store import Store
from jackline.testing import Replace, Round, ScriptedAgent


def test_a_run_whose_handoff_cannot_be_made_keeps_a_note_that_is_shown_in_its_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    now = time.time()
    store = Store()
    # A run with no submission recorded: neither its context nor its handoff can be loaded.
    store.insert_run(Run("run-1", "t", "/r", "a", "standard", Status.RUNNING, "b", "me", now, now))
    store.put_artifact("run-1", "handoff.json", b"{}")  # an earlier round's, say
    store.put_artifact("run-1", "work/a.bundle", b"PACK\x00")  # the harness's own
    steps.fail("run-1", "KeyError: 'boom'")
    run = store.get_run("run-1")
    assert run.status == Status.FAILED and run.handoff
    Path(run.handoff).unlink()  # read from the store, not from this machine's files
    shown = api.handoff_text(run) or ""
    assert shown.startswith("# run-1: failed") and "KeyError: 'boom'" in shown
    assert api.artifact_names("run-1") == ["handoff.json", "handoff.md"]  # no bundle
    assert api.artifact_text("run-1", "work/a.bundle") is None


def test_the_kept_change_shows_every_line_whatever_the_agents_gitattributes_say(
    project: Project,
) -> None:
    # A hostile agent marks every file binary in the workspace: a diff that read the work
    # tree's `.gitattributes` would show the reviewer "Binary files differ" and no line.
    hiding = Round(
        edits={"calc.py": Replace("a - b", "a + b"), ".gitattributes": "* -diff\n"},
    )
    project.create(ScriptedAgent([hiding]))
    run = project.jl_json("run", "Fix add")
    change = project.jl("logs", run["id"], "--file", "change.diff").stdout
    assert "+    return a + b" in change and "Binary files" not in change
