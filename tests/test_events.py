"""The registry of event kinds (`jackline.events`): every kind a real run and a real release
record is in it, the CLI and the web page tell each event in its one line, and a kind that is not
registered is refused where it would be recorded."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from test_web import Site, running_site

from jackline import events
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.store import Store
from jackline.testing import ScriptedAgent

# `jackline logs`: "  12 2026-12-04 01:02:03 kind       line"
LOGGED = re.compile(r"^\s*(\d+) \S+ \S+ (\S+) +(.*)$")
# the run and release pages: <li><span class="seq">12</span><time>..</time>...line</span>
SHOWN = re.compile(
    r'<span class="seq">(\d+)</span><time>[^<]*</time><span class="kind">([^<]*)</span>'
    r'<span class="line">([^<]*)</span>'
)
# A run that fails a round, passes the next and is merged, then a release of it: the kinds
# either must record (so the test cannot pass on a stream that recorded little).
RUN_KINDS = {"submitted", "workspace", "step", "hydrate", "command", "round", "scan"}
RUN_KINDS |= {"commit", "publish", "handoff", "decision", "merge", "cleanup"}
RELEASE_KINDS = {"release.started", "release.gate", "release.deploy", "release.probe"}
RELEASE_KINDS |= {"release.waiting", "release.go", "release.live", "release.finished"}


def test_every_kind_is_registered_with_a_meaning_and_a_line() -> None:
    assert set(events.SPECS) == set(Kind)
    for kind, spec in events.SPECS.items():
        assert spec.meaning.endswith("."), kind


def test_a_kind_not_registered_is_refused_where_it_is_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path / "jackline.db")
    audit = AuditLog(store, Redactor({}))
    with pytest.raises(ValueError, match="no event kind 'agent.dance' is registered"):
        audit.record("run-x", "agent.dance", round=1)  # type: ignore[arg-type]
    assert store.events("run-x") == []
    audit.record("run-x", Kind("agent.edit"), round=1, summary="calc.py")  # a kind made of text
    assert [r.kind for r in store.events("run-x")] == ["agent.edit"]


def test_an_event_without_a_field_its_line_names_is_told_by_its_data() -> None:
    # as an event written by an older harness may be
    assert events.describe("commit", {"sha": "0123456789abcdef"}) == "commit 0123456789"
    assert events.describe("commit", {}) == "{}"
    assert events.describe("gone.kind", {"a": 1}) == '{"a": 1}'
    assert not events.told("gone.kind", {}) and not events.told("round", {})


def test_a_run_and_a_release_are_told_alike_by_the_cli_and_the_web(
    tmp_path: Path, two_rounds: ScriptedAgent
) -> None:
    with running_site(tmp_path, two_rounds) as site:
        project = site.project
        run = project.jl_json("run", "Fix add")
        assert run["status"] == "awaiting_review", (run["reason"], run["rounds"])
        assert project.jl_json("approve", run["id"], "--as", "bob")["status"] == "merged"
        run_events = _recorded(run["id"])
        assert RUN_KINDS <= {kind for kind, _ in run_events.values()}
        logged = _logged(project.jl("logs", run["id"]).stdout)
        assert logged == _lines(run_events)
        assert _shown(site, f"/runs/{run['id']}") == _lines(run_events)

        started = project.jl("release", ok=False)  # it waits for a go for production
        (release,) = Store().list_releases()
        assert release.status == "awaiting_go", started.stderr
        went = project.jl("go", release.id, "--as", "bob")
        release_events = _recorded(release.id)
        assert RELEASE_KINDS <= {kind for kind, _ in release_events.values()}
        # The release page leaves out the start (its head says who started it and what).
        shown = _lines(release_events)
        del shown[1]
        assert _shown(site, f"/releases/{release.id}") == shown
        told = {seq: line for seq, line in shown.items() if events.told(*release_events[seq])}
        assert len(told) >= 8
        progress = _progress(started.stderr + went.stderr)
        assert progress and set(progress) <= set(told.values())
        # Every event the release recorded while a command followed it is told, up to what
        # rests it (its wait, its end), which is recorded before the status that ends following.
        assert [release_events[s][0] for s, line in told.items() if line not in progress] == []


def _recorded(stream: str) -> dict[int, tuple[str, dict[str, object]]]:
    found = AuditLog(Store(), Redactor({})).read(stream)
    for e in found:
        assert e.kind in set(Kind), f"{e.kind} is recorded but not registered"
    return {e.seq: (e.kind, e.data) for e in found}


def _lines(recorded: dict[int, tuple[str, dict[str, object]]]) -> dict[int, str]:
    return {seq: events.describe(kind, data) for seq, (kind, data) in recorded.items()}


def _progress(stderr: str) -> list[str]:
    """The lines a command printed as it followed a run or a release: "  12:03:04 line"."""
    return [m.group(1) for m in re.finditer(r"^  \d\d:\d\d:\d\d (.*)$", stderr, re.M)]


def _logged(stdout: str) -> dict[int, str]:
    found = {}
    for line in stdout.splitlines():
        m = LOGGED.match(line)
        if m:
            found[int(m.group(1))] = m.group(3)
    return found


def _shown(site: Site, path: str) -> dict[int, str]:
    with site.client("vera") as c:
        page = c.get(path).text
    return {int(seq): html.unescape(line) for seq, _kind, line in SHOWN.findall(page)}
