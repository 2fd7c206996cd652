"""Slack, end to end: correctly and wrongly signed requests to the real app on a real server on
loopback, real runs underneath, and the Web API answered by the recording Slack server."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Project, git, unmount_under

from jackline import config as cfg
from jackline.surfaces import slack as surface
from jackline.testing import Round, ScriptedAgent
from jackline.testing.slack import (
    Call,
    SlackServer,
    block_actions,
    signed,
    slash_command,
    view_submission,
)

SIGNING_SECRET = "3f1c9a7be2d84c5f9a0b6e1d2c3b4a59"
BOT_TOKEN = "xoxb-1111-2222-jacklinetestbottoken"
CHANNEL = "C0REVIEWS"
BOB, CAROL, VIV, STRANGER = "U0BOB", "U0CAROL", "U0VIV", "U0STRANGER"
FIXED_CALC = "def add(a, b):\n    return a + b\n"
SLACK = """
[surfaces.slack]
signing_secret = "file:{secret}"
bot_token = "env:JACKLINE_TEST_SLACK_BOT_TOKEN"
channel = "{channel}"
api_url = "{api_url}"
users.{bob} = {{ name = "bob", role = "reviewer" }}
users.{carol} = {{ name = "carol", role = "reviewer" }}
users.{viv} = {{ name = "viv", role = "viewer" }}

[release.environments.production]
deploy = "true"
requires_go = true
"""
# Each run stamps a new file, so runs one after another on the same main all have a change.
AGENT = ScriptedAgent(
    [
        Round(commands=["date +%s%N > stamp.txt"], notes="- Stamped the time.\n"),
        Round(commands=["date +%s%N > stamp-again.txt"], notes="- Stamped it again.\n"),
    ]
)
LAUNCH = """
import socket, sys
import uvicorn
from pathlib import Path
from jackline.server import Settings, create_app
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
url = f"http://127.0.0.1:{sock.getsockname()[1]}"
app = create_app(Settings(repos=(Path(sys.argv[1]),), base_url=url))
print(url, flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"""


@dataclass
class World:
    project: Project
    slack: SlackServer
    url: str

    def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=30)

    def signed(self, body: str) -> httpx.Response:
        return self.post(body, signed(SIGNING_SECRET, body))

    def slash(self, text: str, user: str) -> tuple[httpx.Response, str]:
        """Send `/jackline TEXT`; the answer, and the response_url it carried."""
        url = self.slack.response_url(uuid.uuid4().hex)
        return self.signed(slash_command(text, user, url, channel_id=CHANNEL)), url

    def click(self, action_id: str, value: str, user: str, message: dict[str, Any]) -> None:
        body = block_actions(action_id, value, user, message, CHANNEL, self.slack.response_url())
        assert self.signed(body).status_code == 200

    def status(self, run_id: str) -> str:
        return str(self.query("SELECT status FROM runs WHERE id = ?", run_id)[0][0])

    def query(self, sql: str, *args: str) -> list[tuple[Any, ...]]:
        if not (self.project.home / "jackline.db").exists():
            return []
        db = sqlite3.connect(self.project.home / "jackline.db")
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def wait_status(self, run_id: str, wanted: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.status(run_id) != wanted:
            assert time.monotonic() < deadline, f"{run_id} is {self.status(run_id)}, not {wanted}"
            time.sleep(0.1)

    def run_at_review(self, user: str = BOB) -> tuple[str, dict[str, Any]]:
        """A run started with `/jackline run` by `user`, at review: its id and its message."""
        answer, url = self.slash("run Stamp the time", user)
        assert answer.status_code == 200, answer.text
        started = self.slack.wait_for("respond", lambda c: url.endswith(c.path) and _public(c))
        run_id = re.findall(r"run-[0-9a-z]+", started.body["text"])[0]
        posted = self.slack.wait_for("chat.postMessage", lambda c: run_id in c.body["text"])
        self.wait_status(run_id, "awaiting_review")  # the surfaces are told just before
        return run_id, posted.answer["message"]


def _public(call: Call) -> bool:
    return call.body.get("response_type") == "in_channel"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("slack")
    (root / "signing-secret").write_text(SIGNING_SECRET + "\n")
    with SlackServer(token=BOT_TOKEN) as slack:
        extra = SLACK.format(
            secret=root / "signing-secret",
            channel=CHANNEL,
            api_url=slack.api_url,
            bob=BOB,
            carol=CAROL,
            viv=VIV,
        )
        project = Project(root, root / "home").create(
            AGENT, extra=extra, files={"calc.py": FIXED_CALC}
        )
        _quick_check(project)
        env = {**project.env, "JACKLINE_TEST_SLACK_BOT_TOKEN": BOT_TOKEN, "JACKLINE_USER": "srv"}
        log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(project.repo)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), (root / "server.log").read_text()
            _ready(url)
            yield World(project, slack, url)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
            unmount_under(root)


def _quick_check(project: Project) -> None:
    """A check that takes a tenth of pytest's time: these tests are about Slack, not checks."""
    path = project.repo / cfg.FILENAME
    text = path.read_text()
    start = text.index("[checks.test]")
    end = text.index("\n[", start + 1)
    check = f'[checks.test]\ncommand = ["{sys.executable}", "-c", "import calc; assert calc.add(2, 3) == 5"]\n'
    path.write_text(text[:start] + check + text[end:])
    git(project.repo, "commit", "-qam", "a quick check")


def _ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"the server at {url} did not answer in 30s"
        time.sleep(0.1)


def _button_ids(message: dict[str, Any]) -> dict[str, str]:
    return {
        e["action_id"]: e["value"]
        for b in message.get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    }


def test_wrong_stale_and_missing_signatures_are_refused_and_change_nothing(world: World) -> None:
    runs_before = world.query("SELECT id FROM runs")
    calls_before = len(world.slack.calls)
    body = slash_command("run Delete everything", BOB, world.slack.response_url("bad"))
    stale = int(time.time()) - 6 * 60  # Slack's window is five minutes
    for headers in (
        signed("not-the-signing-secret", body),
        signed(SIGNING_SECRET, body, timestamp=stale),
        signed(SIGNING_SECRET, body + "&text=tampered"),
        {"Content-Type": "application/x-www-form-urlencoded"},
    ):
        answer = world.post(body, headers)
        assert answer.status_code == 401, (headers, answer.text)
    time.sleep(0.5)  # anything a listener would have done has had time to show
    assert world.query("SELECT id FROM runs") == runs_before
    assert len(world.slack.calls) == calls_before


def test_slash_run_starts_a_run_whose_review_message_has_the_three_buttons(world: World) -> None:
    run_id, message = world.run_at_review(BOB)
    assert world.status(run_id) == "awaiting_review"
    assert world.query("SELECT submitted_by FROM runs WHERE id = ?", run_id) == [("bob",)]
    posted = world.slack.wait_for("chat.postMessage", lambda c: run_id in c.body["text"])
    assert posted.body["channel"] == CHANNEL and posted.token == BOT_TOKEN
    head = world.query("SELECT head_sha FROM runs WHERE id = ?", run_id)[0][0]
    assert head and _button_ids(message) == {  # each names the head the message shows
        surface.APPROVE: f"{run_id}@{head}",
        surface.CHANGES: f"{run_id}@{head}",
        surface.REJECT: f"{run_id}@{head}",
    }
    shown = json.dumps(message["blocks"])
    assert f"{world.url}/runs/{run_id}|{run_id}" in shown  # a link to the run's page
    assert "Stamp the time" in shown and "bob" in shown
    # /jackline status lists it as waiting, to anyone mapped, viewers included.
    answer, _ = world.slash("status", VIV)
    assert answer.status_code == 200
    waiting = answer.json()["text"].split("*Recent runs*")[0]
    assert run_id in waiting


def test_slash_run_with_attempts_starts_a_group_each_run_reaching_review(world: World) -> None:
    answer, url = world.slash("run --attempts 2 Stamp the time", BOB)
    assert answer.status_code == 200, answer.text
    started = world.slack.wait_for("respond", lambda c: url.endswith(c.path) and _public(c))
    assert "bob started 2 attempts" in started.body["text"]
    run_ids = re.findall(r"run-[0-9a-z]+", started.body["text"])[::2]  # each linked, then named
    assert len(set(run_ids)) == 2, started.body["text"]
    for run_id in run_ids:
        world.wait_status(run_id, "awaiting_review")
    groups = {world.query("SELECT attempts, task FROM runs WHERE id = ?", r)[0] for r in run_ids}
    assert len(groups) == 1 and next(iter(groups))[1] == "Stamp the time"
    for run_id in run_ids:  # out of the way of the module's other runs
        posted = world.slack.wait_for(
            "chat.postMessage", lambda c, run_id=run_id: run_id in c.body["text"]
        )
        message = posted.answer["message"]
        world.click(surface.REJECT, _button_ids(message)[surface.REJECT], CAROL, message)
        world.wait_status(run_id, "rejected")


def test_slash_run_by_a_viewer_or_a_stranger_is_refused_without_a_run(world: World) -> None:
    runs_before = world.query("SELECT id FROM runs")
    answer, _ = world.slash("run Stamp the time", VIV)
    assert answer.status_code == 200
    assert answer.json()["response_type"] == "ephemeral"
    assert "viv is a viewer; this needs the reviewer role" in answer.json()["text"]
    answer, _ = world.slash("run Stamp the time", STRANGER)
    assert f"your Slack user {STRANGER} is not in [surfaces.slack] users" in answer.json()["text"]
    assert world.query("SELECT id FROM runs") == runs_before
    answer, _ = world.slash("", VIV)  # no verb: what the command can do
    assert "/jackline run TASK" in answer.json()["text"]


def test_slack_events_answer_404_naming_the_file_when_slack_is_not_set_up(
    project: Project,
) -> None:
    from fastapi.testclient import TestClient

    from jackline.server import Settings, create_app

    project.create("true")
    body = slash_command("status", BOB, "http://127.0.0.1:9/unused")
    with TestClient(create_app(Settings(repos=(project.repo,)))) as client:
        answer = client.post("/slack/events", content=body, headers=signed(SIGNING_SECRET, body))
    assert answer.status_code == 404
    assert "Slack is not set up" in answer.json()["error"]["message"]
    assert str(project.repo / cfg.FILENAME) in answer.json()["error"]["message"]


def test_refusals_reach_only_the_clicker_and_leave_the_run_waiting(world: World) -> None:
    run_id, message = world.run_at_review(BOB)
    for user, said in (
        (STRANGER, f"your Slack user {STRANGER} is not in [surfaces.slack] users"),
        (VIV, "viv is a viewer; this needs the reviewer role"),
        (BOB, "bob submitted"),  # the api's own rule: no approving one's own run
    ):
        mark = world.slack.mark()
        world.click(surface.APPROVE, run_id, user, message)
        refusal = world.slack.wait_for("chat.postEphemeral", since=mark)
        assert refusal.body["user"] == user
        assert said in refusal.body["text"] and refusal.body["channel"] == CHANNEL
    assert world.status(run_id) == "awaiting_review"
    assert not [e for e in world.project.events(run_id) if e["kind"] == "decision"]
    assert _button_ids(world.slack.messages[(CHANNEL, message["ts"])])  # buttons still there


def test_approve_by_a_mapped_reviewer_merges_the_run_and_settles_the_message(
    world: World,
) -> None:
    run_id, message = world.run_at_review(BOB)
    world.click(surface.APPROVE, run_id, CAROL, message)
    world.wait_status(run_id, "merged")
    decisions = [e for e in world.project.events(run_id) if e["kind"] == "decision"]
    assert [(d["by"], d["decision"]) for d in decisions] == [("carol", "approve")]
    update = world.slack.wait_for("chat.update", lambda c: c.body["ts"] == message["ts"])
    assert "Approved by carol" in update.body["text"] and "merged" in update.body["text"]
    settled = world.slack.messages[(CHANNEL, message["ts"])]
    assert not _button_ids(settled)  # no buttons left to click on a decided run
    merged = world.slack.wait_for("chat.postMessage", lambda c: "merged into main" in c.body["text"]
                                  and run_id in c.body["text"])  # fmt: skip
    assert merged.body["channel"] == CHANNEL


def test_request_changes_opens_a_modal_whose_words_start_another_round(world: World) -> None:
    run_id, message = world.run_at_review(BOB)
    world.click(surface.CHANGES, run_id, CAROL, message)
    opened = world.slack.wait_for("views.open", lambda c: run_id in json.dumps(c.body["view"]))
    view = opened.body["view"]
    empty = view_submission(view, CAROL, {surface.FEEDBACK: "  "})
    answer = world.signed(empty)
    assert answer.json()["response_action"] == "errors"  # the modal stays open, saying why
    by_viewer = view_submission(view, VIV, {surface.FEEDBACK: "Do it my way."})
    assert "viewer" in world.signed(by_viewer).json()["errors"][surface.FEEDBACK]
    body = view_submission(view, CAROL, {surface.FEEDBACK: "Stamp it once more, please."})
    assert world.signed(body).status_code == 200
    in_thread = world.slack.wait_for("chat.postMessage", lambda c: "thread_ts" in c.body)
    assert in_thread.body["thread_ts"] == message["ts"]
    assert "Changes requested by carol" in in_thread.body["text"]
    decisions = [e for e in world.project.events(run_id) if e["kind"] == "decision"]
    assert [(d["by"], d["decision"], d["message"]) for d in decisions] == [
        ("carol", "request_changes", "Stamp it once more, please.")
    ]
    world.wait_status(run_id, "awaiting_review")
    assert world.query("SELECT rounds FROM runs WHERE id = ?", run_id) == [(2,)]

    # The first message's Approve names round 1's head: it cannot approve round 2.
    mark = world.slack.mark()
    world.click(surface.APPROVE, _button_ids(message)[surface.APPROVE], CAROL, message)
    refusal = world.slack.wait_for("chat.postEphemeral", since=mark)
    assert refusal.body["user"] == CAROL and "decide on what it shows now" in refusal.body["text"]
    assert world.status(run_id) == "awaiting_review"
    refused = [e for e in world.project.events(run_id) if e["kind"] == "decision_refused"]
    assert [(r["by"], r["decision"]) for r in refused] == [("carol", "approve")]


def test_slash_release_waits_for_go_and_another_persons_go_button_makes_it_live(
    world: World,
) -> None:
    answer, url = world.slash("release", BOB)
    assert answer.status_code == 200 and "Starting a release" in answer.json()["text"]
    started = world.slack.wait_for("respond", lambda c: url.endswith(c.path) and _public(c))
    release_id = re.findall(r"rel-[0-9a-z]+", started.body["text"])[0]
    assert "awaiting go" in started.body["text"]
    posted = world.slack.wait_for("chat.postMessage", lambda c: release_id in c.body["text"])
    message = posted.answer["message"]
    assert _button_ids(message) == {surface.GO: release_id, surface.ABORT: release_id}
    mark = world.slack.mark()
    world.click(surface.GO, release_id, BOB, message)  # who started it may not say go
    refusal = world.slack.wait_for("chat.postEphemeral", since=mark)
    assert refusal.body["user"] == BOB and "cannot say go" in refusal.body["text"]
    world.click(surface.GO, release_id, CAROL, message)
    update = world.slack.wait_for("chat.update", lambda c: c.body["ts"] == message["ts"])
    assert "Go by carol" in update.body["text"] and "live" in update.body["text"]
    live = world.query("SELECT status, go_by FROM releases WHERE id = ?", release_id)
    assert live == [("live", "carol")]
    told = world.slack.wait_for("chat.postMessage", lambda c: "is live" in c.body["text"])
    assert release_id in told.body["text"]


def _config(slack: SlackServer, channel: str | None = CHANNEL) -> cfg.JacklineConfig:
    section: dict[str, Any] = {
        "signing_secret": "env:JACKLINE_TEST_SLACK_SIGNING",
        "bot_token": "env:JACKLINE_TEST_SLACK_BOT_TOKEN",
        "api_url": slack.api_url,
    }
    if channel:
        section["channel"] = channel
    return cfg.parse({"surfaces": {"slack": section}})


RELEASE = {
    "id": "rel-01test",
    "sha": "0123456789abcdef",
    "status": "awaiting_go",
    "started_by": "bob",
    "env": "production",
    "previous_sha": "fedcba9876543210",
    "reason": "",
}


def test_a_release_waiting_for_go_gets_go_and_abort_and_a_rollback_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JACKLINE_TEST_SLACK_BOT_TOKEN", BOT_TOKEN)
    with SlackServer(token=BOT_TOKEN) as slack:
        config = _config(slack)
        surface.announce("release.awaiting_go", config, {"release": RELEASE, "env": "production"})
        waiting = slack.wait_for("chat.postMessage")
        assert _button_ids(waiting.answer["message"]) == {
            surface.GO: "rel-01test",
            surface.ABORT: "rel-01test",
        }
        assert "waits for go to *production*" in json.dumps(waiting.body["blocks"])
        rolled = {**RELEASE, "status": "rolled_back"}
        surface.announce(
            "release.rolled_back", config, {"release": rolled, "reason": "smoke GET /: 500"}
        )
        told = slack.wait_for("chat.postMessage", lambda c: "rolled back" in c.body["text"])
        assert "smoke GET /: 500" in told.body["text"]
        assert "back on `fedcba9876`" in told.body["text"]
        assert not _button_ids(told.answer["message"])


def test_announce_posts_nothing_without_a_channel_or_for_other_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JACKLINE_TEST_SLACK_BOT_TOKEN", BOT_TOKEN)
    with SlackServer(token=BOT_TOKEN) as slack:
        surface.announce("release.awaiting_go", _config(slack, channel=None), {"release": RELEASE})
        surface.announce("run.started", _config(slack), {"run": {}})
        surface.announce("release.live", cfg.parse({}), {"release": RELEASE})
        assert slack.calls == []


def test_a_wrong_bot_token_makes_announce_fail_for_notify_to_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jackline import notify
    from jackline.surfaces import register_notifiers

    register_notifiers()  # as the CLI and the server do when they start
    monkeypatch.setenv("JACKLINE_TEST_SLACK_BOT_TOKEN", "xoxb-wrong")
    with SlackServer(token=BOT_TOKEN) as slack:
        problems = notify.announce("release.live", _config(slack), {"release": RELEASE})
    assert len(problems) == 1 and "invalid_auth" in problems[0]


def test_slash_cancel_by_a_reviewer_ends_the_run_and_records_who(world: World) -> None:
    run_id, _ = world.run_at_review(BOB)
    answer, _ = world.slash(f"cancel {run_id}", VIV)
    assert "viv is a viewer; this needs the reviewer role" in answer.json()["text"]
    assert world.status(run_id) == "awaiting_review"
    answer, url = world.slash(f"cancel {run_id} not needed after all", CAROL)
    assert answer.status_code == 200, answer.text
    said = world.slack.wait_for("respond", lambda c: url.endswith(c.path) and _public(c))
    assert "carol cancelled" in said.body["text"] and run_id in said.body["text"]
    assert world.status(run_id) == "cancelled"
    cancelled = [e for e in world.project.events(run_id) if e["kind"] == "cancelled"]
    assert [(e["by"], e["message"]) for e in cancelled] == [("carol", "not needed after all")]
