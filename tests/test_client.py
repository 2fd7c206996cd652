"""The CLI's remote mode (`--server URL` / JACKLINE_SERVER, JACKLINE_TOKEN) against a real
`jackline serve` on loopback: the same commands, the same output, decisions under the token's
name; commands that need this machine refused clearly."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Project, cli_in_process, git, unmount_under
from test_server_api import FIX, FLAGS, RELEASE, Server, start_server, stop_server

from jackline.client import RemoteAPI
from jackline.errors import JacklineError, NotFound, Refused
from jackline.testing import ScriptedAgent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("remote")
    project = Project(root, root / "home").create(
        ScriptedAgent([FIX, FIX]), extra=RELEASE, files={"flags.toml": FLAGS}
    )
    started = start_server(project)
    yield started
    stop_server(started)
    unmount_under(root)


def remote(
    server: Server, who: str | None, *args: str, ok: bool = True, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`jackline ARGS` with JACKLINE_SERVER and who's token, from a folder that is no repo: a
    remote command needs nothing local."""
    env = {**server.project.env, "JACKLINE_SERVER": url or server.url, "COLUMNS": "200"}
    env.pop("JACKLINE_TOKEN", None)
    if who:
        env["JACKLINE_TOKEN"] = server.tokens[who]
    proc = cli_in_process(list(args), server.project.root, env, timeout=120)
    if ok and proc.returncode != 0:
        raise AssertionError(
            f"jackline {args} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def remote_json(server: Server, who: str, *args: str) -> Any:
    return json.loads(remote(server, who, *args, "--json").stdout)


def test_cli_with_server_runs_lists_shows_and_approves(server: Server) -> None:
    made = remote(server, "alice", "run", "Fix add in calc.py")
    assert "awaiting_review" in made.stdout
    assert "round 1" in made.stderr and "handoff" in made.stderr  # progress from the stream
    run_id = next(w for w in made.stdout.split() if w.startswith("run-"))

    listed = remote_json(server, "vera", "runs")
    assert [r["id"] for r in listed if r["status"] == "awaiting_review"] == [run_id]
    shown = remote(server, "vera", "show", run_id).stdout
    assert "awaiting_review" in shown and "round 1: test pass" in shown
    assert "Assumed add means +." in shown  # the handoff, rendered
    kept = remote(server, "vera", "logs", run_id, "--files").stdout.split()
    assert "round-1/test.log" in kept and "change.diff" in kept
    change = remote(server, "vera", "logs", run_id, "--file", "change.diff").stdout
    assert "+    return a + b" in change
    missing = remote(server, "vera", "logs", run_id, "--file", "round-7/agent.log", ok=False)
    assert missing.returncode == 1 and "round-1/test.log" in missing.stderr
    approved = remote(server, "bob", "approve", run_id, "-m", "looks right")
    assert "merged" in approved.stdout and "review: approve by bob" in approved.stderr
    assert "a + b" in git(server.project.repo, "show", "main:calc.py")


def test_cli_with_server_releases_and_says_go_as_another_person(server: Server) -> None:
    started = remote_json(server, "alice", "release")
    assert started["status"] == "awaiting_go" and started["started_by"] == "alice"
    with pytest.raises(Refused, match="cannot say go"):
        RemoteAPI(server.url, server.tokens["alice"]).go(started["id"])
    live = remote(server, "bob", "go", started["id"])
    assert "live" in live.stdout and "go by bob for production" in live.stderr
    ledger = RemoteAPI(server.url, server.tokens["vera"]).releases()
    assert ledger[0].id == started["id"] and ledger[0].go_by == "bob"
    # The figures: the release carries an agent's change if a run merged before it here.
    listed = remote(server, "vera", "releases").stdout
    assert "changes: 1 to production, 0 rolled back (change failure rate 0%)" in listed
    figures = remote_json(server, "vera", "releases", "--figures")
    assert sorted(f["to_production"] for f in figures) == [0, 1]
    assert all(f["rolled_back"] == 0 for f in figures)


def test_cli_with_server_runs_parallel_attempts_and_follows_both(server: Server) -> None:
    tried = remote_json(server, "alice", "run", "Fix add in calc.py", "--attempts", "2")
    assert [r["status"] for r in tried] == ["awaiting_review", "awaiting_review"]
    assert tried[0]["attempts"] == tried[1]["attempts"] != ""
    for run in tried:  # out of the way of the module's other runs
        remote(server, "bob", "reject", run["id"], "-m", "only trying attempts")


def test_cli_with_server_lists_and_sets_flags(server: Server) -> None:
    listing = remote_json(server, "vera", "flags", "list")
    assert {f["name"] for f in listing["flags"]} == {"new-checkout", "kill-switch"}
    changed = remote(server, "bob", "flags", "set", "new-checkout", "false", "--env", "staging")
    assert "new-checkout in staging: true -> false" in changed.stdout
    with pytest.raises(Refused, match="owner"):
        RemoteAPI(server.url, server.tokens["bob"]).set_flag(None, "kill-switch", "true", "staging")


def test_commands_that_need_this_machine_are_refused_with_server(server: Server) -> None:
    for args in (["pool", "status"], ["init"]):
        proc = remote(server, "bob", *args, ok=False)
        assert proc.returncode == 1, args
        assert f"`jackline {args[0]}` works on this machine" in proc.stderr
        assert "unset JACKLINE_SERVER" in proc.stderr


def test_remote_mode_without_a_token_says_how_to_get_one(server: Server) -> None:
    proc = remote(server, None, "runs", ok=False)
    assert proc.returncode == 1 and "set JACKLINE_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_server_is_a_clear_error(server: Server) -> None:
    proc = remote(server, "vera", "runs", ok=False, url="http://127.0.0.1:9")
    assert proc.returncode == 1
    assert "cannot reach the Jackline server at http://127.0.0.1:9" in proc.stderr


def test_remote_api_answers_with_records_and_jackline_errors(server: Server) -> None:
    client = RemoteAPI(server.url, server.tokens["vera"])
    assert client.whoami() == "vera"
    assert all(r.repo == str(server.project.repo.resolve()) for r in client.runs())
    with pytest.raises(NotFound):
        client.get("run-nope")
    with pytest.raises(Refused, match="reviewer"):
        client.submit("Fix add", wait=False)
    with pytest.raises(Refused, match="--as does not apply"):
        client.approve("run-any", by="olga")
    with pytest.raises(NotFound):
        RemoteAPI(server.url, server.tokens["bob"]).retry("run-nope", wait=False)
    with pytest.raises(Refused, match="`verify` works on this machine"):
        client.verify("run-any")  # the chain's keys are the server's
    with pytest.raises(JacklineError, match="cannot reach"):
        RemoteAPI("http://127.0.0.1:9", "jl_x_y").runs()
