"""The release path against a real service on loopback: a deploy script in the project starts a
small HTTP app from `git archive SHA`, on its own port per environment, killing the one before.
Releases run through the real CLI, real DBOS on SQLite, real git."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, git
from postgres import dump

from jackline import config as cfg
from jackline.api import submission as api_submit
from jackline.errors import Refused
from jackline.release import gate, probes
from jackline.testing.slack import SlackServer

APP = r"""
import http.server, os, sys, time

env, port, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
here = os.path.dirname(os.path.abspath(__file__))


def read(name):
    try:
        with open(os.path.join(here, name)) as f:
            return f.read().strip()
    except OSError:
        return ""


ITEMS, BROKEN = read("items.txt"), read("broken.txt").split()


def log(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.send(200, "ok")
        if self.path == "/":
            return self.send(200, "<h1>Shop</h1>")
        if self.path == "/api/items":
            if env in BROKEN:
                log("ERROR items query failed")
                return self.send(500, "boom")
            return self.send(200, ITEMS)
        self.send(404, "no")

    def send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        log("INFO " + fmt % args)


for _ in range(100):  # the old process may still hold the port for a moment
    try:
        server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        break
    except OSError:
        time.sleep(0.05)
log(f"INFO serving {env} on {port}")
server.serve_forever()
"""

DEPLOY = """#!/bin/sh
set -e
env=$1; sha=$2; port=$3
mkdir -p var
if [ -f "hold-$env.txt" ]; then  # wait (at most a minute) until the file it names exists
  i=0; while [ ! -e "$(cat "hold-$env.txt")" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
fi
if [ -f "var/$env.pid" ]; then
  old=$(cat "var/$env.pid")
  kill "$old" 2>/dev/null || true
  i=0
  while [ $i -lt 100 ]; do
    state=$(cut -d' ' -f3 "/proc/$old/stat" 2>/dev/null || true)
    if [ -z "$state" ] || [ "$state" = Z ]; then break; fi
    sleep 0.05; i=$((i+1))
  done
  rm -f "var/$env.pid"
fi
if [ -z "$sha" ]; then echo "took $env down"; exit 0; fi
dir=var/deploy/$env-$sha
rm -rf "$dir"; mkdir -p "$dir"
git archive "$sha" | tar -x -C "$dir"
echo "deploying $env $sha with token $DEPLOY_TOKEN"
setsid {python} "$dir/app.py" "$env" "$port" "$PWD/var/$env.log" >>"var/$env.out" 2>&1 </dev/null &
echo $! > "var/$env.pid"
"""
# With an empty sha (`rollback` of a first release: nothing came before) it takes ENV down.

ENV = """
[release.environments.{name}]
deploy = "sh deploy.sh {name} {{sha}} {port}"
url = "http://127.0.0.1:{port}"
health = "/healthz"
ready_timeout = "10s"
smoke = ["GET /api/items 200", "GET / 200 contains 'Shop'"]
logs = "{logs}"
requires_go = {go}
secrets = {{ DEPLOY_TOKEN = "env:DEPLOY_TOKEN" }}
"""

TOKEN = "tok-7f3a9c1d2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Shop:
    """A project with a deployable app, staging and production on their own loopback ports."""

    def __init__(self, project: Project) -> None:
        self.p = project
        self.repo = project.repo
        self.ports = {"staging": free_port(), "production": free_port()}

    def create(
        self,
        go: bool = True,
        staging: bool = True,
        staging_extra: str = "",
        staging_logs: str = "",
        production_extra: str = "",
        config_extra: str = "",
    ) -> Shop:
        self.repo.mkdir(parents=True)
        git(self.p.root, "init", "-q", "-b", "main", str(self.repo))
        git(self.repo, "config", "user.email", "alice@example.com")
        git(self.repo, "config", "user.name", "Alice")
        envs = [("staging", "false")] if staging else []
        envs.append(("production", "true" if go else "false"))
        config = '[project]\nmain = "main"\n\n[review]\nallow_as = true  # the tests play several people\n'
        config += '\n[release]\nproduction_branch = "production"\n'
        for name, needs_go in envs:
            logs = (name == "staging" and staging_logs) or f"var/{name}.log"
            config += ENV.format(name=name, port=self.ports[name], go=needs_go, logs=logs)
            config += staging_extra if name == "staging" else production_extra
        config += config_extra
        self.write(
            {
                "app.py": APP,
                "deploy.sh": DEPLOY.replace("{python}", sys.executable),
                "items.txt": "apples",
                ".gitignore": "var/\n",
                "jackline.toml": config,
            }
        )
        self.p.env["DEPLOY_TOKEN"] = TOKEN
        return self.commit("first shop")

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            (self.repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / rel).write_text(text)

    def commit(self, message: str, files: dict[str, str] | None = None) -> Shop:
        self.write(files or {})
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return self

    @property
    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD")

    def get(self, env: str, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.ports[env]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def release(self, *args: str, user: str = "alice") -> dict[str, Any]:
        return json.loads(self.p.jl("release", *args, "--json", user=user).stdout)

    def show(self, release_id: str) -> dict[str, Any]:
        return json.loads(self.p.jl("release-show", release_id, "--json").stdout)

    @property
    def var(self) -> Path:
        """Where the deploy script keeps its pid files and logs: beside it, in the checkout of
        the released commit that Jackline deploys from (one per repository, in its home)."""
        trees = sorted((self.p.home / "releases" / "trees").glob("*"))
        return trees[0] / "var" if trees else self.p.home / "no-release-tree-yet"

    def status(self, release_id: str) -> str:
        db = sqlite3.connect(self.p.home / "jackline.db")
        [(status,)] = db.execute("SELECT status FROM releases WHERE id = ?", (release_id,))
        db.close()
        return str(status)

    def live(self, env: str) -> str | None:
        """The release the ledger says `env` serves now."""
        db = sqlite3.connect(self.p.home / "jackline.db")
        rows = db.execute(
            "SELECT release_id FROM live WHERE env = ? ORDER BY since DESC, rowid DESC", (env,)
        ).fetchall()
        db.close()
        return str(rows[0][0]) if rows else None

    def release_in_background(self) -> tuple[subprocess.Popen[str], str]:
        """`jackline release` left running; its release id once the ledger has it."""
        started = subprocess.Popen(
            [sys.executable, "-m", "jackline", "release", "--json"],
            cwd=self.repo,
            env={**self.p.env, "JACKLINE_USER": "alice"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (self.p.home / "jackline.db").exists():
                db = sqlite3.connect(self.p.home / "jackline.db")
                try:
                    rows = db.execute("SELECT id FROM releases").fetchall()
                except sqlite3.OperationalError:
                    rows = []
                db.close()
                if rows:
                    return started, str(rows[0][0])
            time.sleep(0.1)
        started.kill()
        raise AssertionError("the release never reached the ledger")

    def wait_message(self, release_id: str, timeout: float = 60) -> None:
        """Until a go or an abort for the release is in the engine's mailbox."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            db = sqlite3.connect(self.p.home / "engine.db")
            try:
                rows = db.execute(
                    "SELECT 1 FROM notifications WHERE destination_uuid = ?", (release_id,)
                ).fetchall()
            finally:
                db.close()
            if rows:
                return
            time.sleep(0.05)
        raise AssertionError(f"no message reached {release_id}")

    def wait_status(self, release_id: str, status: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.status(release_id) != status:
            assert time.monotonic() < deadline, f"{release_id} never {status}"
            time.sleep(0.05)

    def stop(self) -> None:
        for pidfile in [*(self.repo / "var").glob("*.pid"), *self.var.glob("*.pid")]:
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


@pytest.fixture
def shop(project: Project) -> Iterator[Shop]:
    made = Shop(project)
    yield made
    made.stop()


def test_good_release_goes_live_after_another_persons_go_and_abort_keeps_production(
    shop: Shop, database_url: str | None
) -> None:
    shop.p.use_database(database_url)
    shop.create()
    first = shop.head
    rel = shop.release()
    assert rel["status"] == "awaiting_go" and rel["env"] == "production"
    assert shop.get("staging", "/api/items") == (200, "apples")
    # The person who started it may not say go.
    refused = shop.p.jl("go", rel["id"], ok=False)
    assert refused.returncode == 1 and "cannot say go" in refused.stderr
    done = json.loads(shop.p.jl("go", rel["id"], "--json", user="bob").stdout)
    assert done["status"] == "live" and done["go_by"] == "bob"
    assert shop.get("production", "/api/items") == (200, "apples")
    assert git(shop.repo, "rev-parse", "production") == first
    shown = shop.show(rel["id"])
    assert shown["started_by"] == "alice" and shown["author_kind"] == "person"
    names = [(p["env"], p["name"], p["outcome"]) for p in shown["probes"]]
    for env in ("staging", "production"):
        assert (env, "deploy", "pass") in names and (env, "health", "pass") in names
        assert (env, "smoke GET /api/items 200", "pass") in names and (env, "logs", "pass") in names
    assert all(p["duration"] >= 0 and p["at"] > 0 for p in shown["probes"])
    # The deploy's secret reached the command and was redacted from everything stored.
    log = next(e for e in shown["events"] if e["kind"] == "release.deploy")["data"]["tail"]
    assert "[redacted:DEPLOY_TOKEN]" in log and TOKEN not in json.dumps(shown)
    for stored in shop.p.home.rglob("*"):
        assert not stored.is_file() or TOKEN.encode() not in stored.read_bytes(), stored
    if database_url:  # the ledger, the audit log and the engine's records are all in it
        everything = dump(database_url)
        assert rel["id"] in everything and TOKEN not in everything

    # A second release waits for go; abort leaves production as it was.
    shop.commit("pears", {"items.txt": "pears"})
    second = shop.release()
    assert second["status"] == "awaiting_go"
    assert shop.get("staging", "/api/items") == (200, "pears")
    aborted = json.loads(shop.p.jl("abort", second["id"], "--json").stdout)
    assert aborted["status"] == "aborted"
    assert shop.get("production", "/api/items") == (200, "apples")
    assert git(shop.repo, "rev-parse", "production") == first
    ledger = json.loads(shop.p.jl("releases", "--json").stdout)
    assert [r["status"] for r in ledger] == ["aborted", "live"]


def test_release_runs_mains_committed_config_and_script_not_a_checked_out_agent_branchs(
    shop: Shop,
) -> None:
    shop.create()
    main_sha = shop.head
    marker = shop.p.root / "marker"
    prod = shop.ports["production"]
    # An unreviewed agent branch, checked out in the user's repository to look at: its deploy
    # script and its jackline.toml (which names it main and drops production's go) deploy
    # production at staging time; the working tree holds one more uncommitted step.
    git(shop.repo, "checkout", "-q", "-b", "agent/evil")
    evil = (shop.repo / "jackline.toml").read_text()
    evil = evil.replace('main = "main"', 'main = "agent/evil"').replace(
        "requires_go = true", "requires_go = false"
    )
    evil_deploy = (
        f"#!/bin/sh\necho 'production deployed' >> {marker}\n"
        f'exec sh real-deploy.sh production "$2" {prod}\n'
    )
    shop.commit(
        "agent: deploy production from staging",
        {
            "jackline.toml": evil,
            "deploy.sh": evil_deploy,
            "real-deploy.sh": DEPLOY.replace("{python}", sys.executable),
        },
    )
    with (shop.repo / "deploy.sh").open("a") as f:
        f.write(f"echo 'production deployed (uncommitted)' >> {marker}\n")

    rel = shop.release()

    assert not marker.exists()
    assert rel["sha"] == main_sha
    assert rel["status"] == "awaiting_go" and rel["env"] == "production"
    assert shop.get("staging", "/api/items") == (200, "apples")
    with pytest.raises(OSError):  # nothing serves production before a go
        shop.get("production", "/healthz")
    # The user's checkout is as they left it.
    assert git(shop.repo, "rev-parse", "--abbrev-ref", "HEAD") == "agent/evil"
    assert "uncommitted" in (shop.repo / "deploy.sh").read_text()
    done = json.loads(shop.p.jl("go", rel["id"], "--json", user="bob").stdout)
    assert done["status"] == "live" and not marker.exists()
    assert shop.get("production", "/api/items") == (200, "apples")
    # The agent's commit is not main's, whatever its own jackline.toml says main is.
    agent_sha = git(shop.repo, "rev-parse", "agent/evil")
    refused = shop.p.jl("release", "--sha", agent_sha, ok=False)
    assert refused.returncode == 1 and "is not on main" in refused.stderr
    assert not marker.exists()


def test_release_gate_reads_the_released_commits_flags_file_not_the_working_trees(
    shop: Shop,
) -> None:
    shop.create(staging=False, go=False)
    (shop.repo / "flags.toml").write_text("this is [not toml\n")  # uncommitted
    assert shop.release()["status"] == "live"
    shop.commit("a broken flags file", {"flags.toml": "this is [not toml\n"})
    blocked = shop.release()
    assert blocked["status"] == "failed" and "flags" in blocked["reason"]


def _rollback_to_nothing(shop: Shop) -> str:
    """Production's rollback: `deploy.sh` with the previous sha, which is empty for a first
    release (nothing came before): the script then takes production down."""
    port = shop.ports["production"]
    return f"rollback = \"sh deploy.sh production '{{previous_sha}}' {port}\"\n"


def test_aborting_the_first_release_during_its_production_soak_takes_production_down(
    shop: Shop,
) -> None:
    shop.create(go=False, production_extra='soak = "60s"\n' + _rollback_to_nothing(shop))
    started, rel_id = shop.release_in_background()
    shop.wait_status(rel_id, "soaking:production")
    assert shop.get("production", "/api/items") == (200, "apples")

    aborted = json.loads(shop.p.jl("abort", rel_id, "--json", user="bob").stdout)
    started.communicate(timeout=120)

    assert aborted["status"] == "aborted", aborted["reason"]
    assert "taken down" in aborted["reason"]
    with pytest.raises(OSError):  # production serves nothing, as before the release
        shop.get("production", "/healthz")
    assert shop.live("production") is None  # and the ledger says so
    assert git(shop.repo, "branch", "--list", "production") == ""
    names = [(p["name"], p["outcome"]) for p in shop.show(rel_id)["probes"]]
    assert ("rollback", "pass") in names and ("rollback down", "pass") in names


def test_aborting_a_first_release_that_cannot_be_taken_down_says_production_still_serves_it(
    shop: Shop,
) -> None:
    shop.create(go=False, production_extra='soak = "60s"\n')  # no rollback command
    started, rel_id = shop.release_in_background()
    shop.wait_status(rel_id, "soaking:production")

    aborted = json.loads(shop.p.jl("abort", rel_id, "--json", user="bob").stdout)
    started.communicate(timeout=120)

    assert aborted["status"] == "failed"
    assert "production still serves it" in aborted["reason"]
    assert shop.get("production", "/api/items") == (200, "apples")
    assert shop.live("production") == rel_id  # the ledger says what production serves
    assert git(shop.repo, "rev-parse", "production") == aborted["sha"]


def test_abort_while_staging_deploys_stops_the_release_before_production(shop: Shop) -> None:
    shop.create(go=False)  # production needs no go: nothing else would stop it
    held = shop.p.root / "let-staging-finish"
    shop.commit("staging's deploy waits for the test", {"hold-staging.txt": str(held)})
    started, rel_id = shop.release_in_background()
    shop.wait_status(rel_id, "deploying:staging")

    abort = subprocess.Popen(
        [sys.executable, "-m", "jackline", "abort", rel_id, "--json"],
        cwd=shop.repo,
        env={**shop.p.env, "JACKLINE_USER": "bob"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    shop.wait_message(rel_id)  # the abort is on its way while staging still deploys
    held.touch()
    out, err = abort.communicate(timeout=120)
    started.communicate(timeout=120)

    assert abort.returncode == 0, err
    aborted = json.loads(out)
    assert aborted["status"] == "aborted" and aborted["reason"] == "aborted during staging"
    with pytest.raises(OSError):
        shop.get("production", "/healthz")
    assert shop.live("production") is None
    assert git(shop.repo, "branch", "--list", "production") == ""


def test_staging_smoke_failure_never_reaches_production(shop: Shop) -> None:
    shop.create(go=False)
    shop.commit("break staging", {"broken.txt": "staging"})
    rel = shop.release()
    assert rel["status"] == "failed"
    assert "smoke GET /api/items 200" in rel["reason"] and "500" in rel["reason"]
    assert not (shop.var / "production.pid").exists()
    assert git(shop.repo, "branch", "--list", "production") == ""
    shown = shop.show(rel["id"])
    envs = {p["env"] for p in shown["probes"]}
    assert envs == {"staging"}
    assert any(p["name"] == "logs" and p["outcome"] == "fail" for p in shown["probes"])


SLACK = """
[surfaces.slack]
signing_secret = "env:SHOP_SLACK"
bot_token = "env:SHOP_SLACK"
channel = "C0SHOP"
api_url = "{}"
"""


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A Slack that answers each call after a second."""
    with SlackServer(delay=1.0) as server:
        yield server


def test_a_release_command_returns_once_the_wait_for_go_is_announced(
    shop: Shop, slack: SlackServer
) -> None:
    # The wait's step sets `awaiting_go`, then tells Slack (answering after a second): the
    # command returns after that, so no later process runs the step, and announces it, again.
    shop.p.env["SHOP_SLACK"] = "xoxb-shop"
    shop.create(staging=False, config_extra=SLACK.format(slack.api_url))
    rel = shop.release()
    assert rel["status"] == "awaiting_go"
    told = [c.body["text"] for c in slack.calls_to("chat.postMessage")]
    assert any(rel["id"] in text for text in told), told
    kinds = [e["kind"] for e in shop.show(rel["id"])["events"]]
    assert kinds.count("release.waiting") == 1, kinds


def test_production_probe_failure_rolls_back_by_itself_and_marks_the_release(
    shop: Shop, slack: SlackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slack answers each call after a second: the rollback's announcement is the last thing
    # its step does, after the release is already `rolled_back` in the ledger.
    shop.p.env["SHOP_SLACK"] = "xoxb-shop"
    shop.create(go=False, staging_extra='soak = "1s"\n', config_extra=SLACK.format(slack.api_url))
    good = shop.release()
    assert good["status"] == "live"
    soaked = [p["name"] for p in shop.show(good["id"])["probes"] if p["name"].startswith("soak")]
    assert soaked == ["soak health", "soak logs"]
    run_id = _agent_run(shop, monkeypatch)
    shop.commit(
        f"agent change that breaks production\n\nJackline-Run: {run_id}",
        {"broken.txt": "production", "items.txt": "plums"},
    )
    bad_sha = shop.head
    rel = shop.release()
    assert rel["status"] == "rolled_back" and rel["promotable"] is False
    assert rel["author_kind"] == "agent" and rel["run_id"] == run_id
    assert shop.get("production", "/api/items") == (200, "apples")  # the old release is back
    assert git(shop.repo, "rev-parse", "production") == good["sha"]
    shown = shop.show(rel["id"])
    assert any(p["name"] == "rollback health" and p["outcome"] == "pass" for p in shown["probes"])
    # The run that produced it gets the failure as feedback.
    from jackline.release.steps import feedback_for

    feedback = feedback_for(run_id)
    assert feedback and "smoke GET /api/items 200" in feedback and rel["id"] in feedback
    # `jackline release` returned once that step was done, not on the status alone: it would
    # have exited under it, and the next process would run the rollback's step again.
    told = [c.body["text"] for c in slack.calls_to("chat.postMessage")]
    assert any(rel["id"] in text and "rolled back" in text for text in told), told
    # A follow-up run (`jackline run --follow-up RUN`) carries that failure in its task.

    task = api_submit._follow_up_task("Fix the items list", run_id)
    assert task.startswith("Fix the items list") and feedback in task
    with pytest.raises(Refused, match="has no rolled-back release"):
        api_submit._follow_up_task("Fix", _agent_run(shop, monkeypatch, "run-01other"))
    # The same commit is refused until someone forces it with a reason.
    again = shop.p.jl("release", "--sha", bad_sha, ok=False)
    assert again.returncode == 1 and "not promotable" in again.stderr and "--force" in again.stderr
    # The health report says so at once: main holds a change production refused.
    items = json.loads(shop.p.jl("health", "--json").stdout)["items"]
    (said,) = [i for i in items if i["section"] == "main" and i["name"] == "production"]
    assert said["state"] == "attention" and f"rolled back {bad_sha[:10]}" in said["summary"]


def _agent_run(shop: Shop, monkeypatch: pytest.MonkeyPatch, run_id: str = "run-01test") -> str:
    from jackline.models import Run
    from jackline.store import Store

    monkeypatch.setenv("JACKLINE_HOME", str(shop.p.home))
    now = time.time()
    run = Run(run_id, "t", str(shop.repo), "a", "standard", "merged", "b", "carol", now, now)
    store = Store()
    store.insert_run(run)
    store.close()
    return run.id


def test_a_release_lists_what_it_carries_who_wrote_it_and_what_was_refused_before(
    shop: Shop,
) -> None:
    from jackline.models import Release, Run
    from jackline.store import Store

    shop.create(go=False)
    first = shop.head
    merged = _merge(shop, "agent/fix", "fix items", {"items.txt": "pears"})
    rejected = _merge(shop, "agent/nope", "a rejected change", {"nope.txt": "x"})
    shop.commit("hotfix by a person", {"b.txt": "x"})
    rolled_tip = shop.head
    shop.commit("later <b>work</b>", {"c.txt": "y"})
    store, now = Store(shop.p.home / "jackline.db"), time.time()
    repo = str(shop.repo.resolve())
    for run_id, status, sha in (("run-01merged", "merged", merged), ("run-01nope", "rejected", "")):
        head = git(shop.repo, "rev-parse", f"{rejected}^2") if status == "rejected" else None
        run = Run(run_id, "t", repo, "codex", "standard", status, "b", "carol", now, now)
        store.insert_run(replace(run, merge_sha=sha or None, head_sha=head))
    old = Release("rel-01old", repo, rolled_tip, "rolled_back", "alice", now - 9, now - 9)
    store.insert_release(replace(old, previous_sha=first, promotable=False, reason="smoke failed"))
    new = Release("rel-01new", repo, shop.head, "awaiting_go", "alice", now, now, first)
    store.insert_release(new)

    carried = shop.show("rel-01new")["carries"]
    rows = [(c["subject"], c["run_id"], c["author"], c["warnings"]) for c in carried["commits"]]
    before = "rolled back before: rel-01old (smoke failed)"
    assert rows == [
        ("later <b>work</b>", None, "Alice", []),
        ("hotfix by a person", None, "Alice", [before]),
        (
            "Merge agent/nope",
            None,
            "Alice",
            [before, "the work of run-01nope, which a person rejected"],
        ),
        ("Merge agent/fix", "run-01merged", "Alice", [before]),
    ]
    told = shop.p.jl("release-show", "rel-01new").stdout
    assert "agent codex run-01merged" in told and f"warning: {before}" in told
    own = shop.show("rel-01old")["carries"]["commits"]  # its own rollback warns nothing there
    assert len(own) == 3 and all(before not in c["warnings"] for c in own)


def _merge(shop: Shop, branch: str, message: str, files: dict[str, str]) -> str:
    """A branch with one commit, merged into main as a merge commit (as Jackline merges)."""
    git(shop.repo, "checkout", "-q", "-b", branch)
    shop.commit(message, files)
    git(shop.repo, "checkout", "-q", "main")
    git(shop.repo, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
    return shop.head


MODELS = "ITEMS_SQL = 'SELECT id, name, legacy FROM items'\n"
DROP = "ALTER TABLE items DROP COLUMN legacy;\n"


def test_drop_column_blocked_while_the_live_release_reads_it_then_allowed(shop: Shop) -> None:
    shop.create(staging=False, go=False)
    shop.commit("items read legacy", {"shop_db.py": MODELS})
    assert shop.release()["status"] == "live"
    shop.commit("stop reading legacy", {"shop_db.py": "ITEMS_SQL = 'SELECT id, name FROM items'\n"})
    shop.commit("drop legacy", {"migrations/002_drop_legacy.sql": DROP})
    blocked = shop.release()
    assert blocked["status"] == "failed"
    assert "drops column `legacy`" in blocked["reason"]
    assert "shop_db.py:1" in blocked["reason"] and "later migration" in blocked["reason"]
    assert not any(p["env"] for p in shop.show(blocked["id"])["probes"])  # never deployed
    # Release the code that stops reading it first; then the drop goes through.
    stop_reading = git(shop.repo, "rev-parse", "HEAD~1")
    assert shop.release("--sha", stop_reading)["status"] == "live"
    dropped = shop.release()
    assert dropped["status"] == "live"
    # A person rolls production back: the release before is live again, this one is marked.
    back = json.loads(shop.p.jl("rollback", "--json", user="bob").stdout)
    assert back["id"] == dropped["id"] and back["status"] == "rolled_back"
    assert back["promotable"] is False and "rolled back by bob" in back["reason"]
    assert git(shop.repo, "rev-parse", "production") == stop_reading
    assert shop.get("production", "/healthz") == (200, "ok")


def test_a_rollback_killed_midway_resumes_and_completes_once(shop: Shop) -> None:
    shop.create(staging=False, go=False)
    first = shop.head
    before = shop.release()
    held = shop.p.root / "let-the-rollback-finish"
    held.touch()  # the release's own deploy goes through; its rollback will wait
    shop.commit("pears", {"items.txt": "pears", "hold-production.txt": str(held)})
    current = shop.release()
    assert (before["status"], current["status"]) == ("live", "live")
    held.unlink()
    rollback = subprocess.Popen(
        [sys.executable, "-m", "jackline", "rollback", "--json"],
        cwd=shop.repo,
        env={**shop.p.env, "JACKLINE_USER": "bob"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deploying = _deploys(shop.ports["production"])
    rollback.kill()  # kill -9 in the middle of putting production back
    rollback.communicate(timeout=30)
    for pid in deploying:  # the machine went down with it: so did its deploy
        with contextlib.suppress(ProcessLookupError):  # a shell that ended with its child
            os.kill(pid, signal.SIGKILL)
    assert shop.status(current["id"]) == "rolling_back"

    held.touch()
    shop.p.jl("resume")

    shown = shop.show(current["id"])
    assert shown["status"] == "rolled_back" and shown["promotable"] is False
    assert "rolled back by bob" in shown["reason"]
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds.count("release.rollback") == 1 and kinds.count("release.rolled_back") == 1
    assert shop.live("production") == before["id"]
    assert git(shop.repo, "rev-parse", "production") == first
    assert shop.get("production", "/api/items") == (200, "apples")


def _deploys(port: int, timeout: float = 60) -> list[int]:
    """The processes of a deploy to `port` under way (once there is one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"deploy.sh production" in argv and f" {port}".encode() in argv:
                found.append(int(proc.name))
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no deploy to {port} started")


# The gate and the probes on their own: no engine, no CLI.


def test_gate_names_every_place_the_live_tree_reads_a_renamed_table(project: Project) -> None:
    shop = Shop(project)
    shop.create(staging=False)
    shop.commit(
        "orders",
        {
            "models.py": "class Order:\n    __tablename__ = 'orders'\n",
            "queries.py": "SQL = 'select * from orders'\n",
            "docs/notes.md": "orders are kept\n",
        },
    )
    live = shop.head
    shop.commit("rename", {"migrations/003.sql": "ALTER TABLE orders RENAME TO purchases;\n"})
    config = cfg.load(shop.repo)
    problems = gate.check(shop.repo, shop.repo, config, live, shop.head)
    assert len(problems) == 1 and "renames table `orders`" in problems[0]
    assert "models.py:2" in problems[0] and "queries.py:1" in problems[0]
    assert "notes.md" not in problems[0] and "migrations/003.sql" in problems[0]
    assert gate.check(shop.repo, shop.repo, config, None, shop.head) == []  # a first release


def test_smoke_against_nothing_listening_is_inconclusive_not_pass() -> None:
    probe = probes.smoke(f"http://127.0.0.1:{free_port()}", "GET / 200")
    assert probe.outcome == "inconclusive" and probe.duration >= 0


def test_log_scan_counts_errors_written_since_the_deploy_and_a_missing_log_is_inconclusive(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    log.write_text("ERROR before the deploy\n")
    offset = probes.log_offset(log)
    with log.open("a") as f:
        f.write("INFO fine\nTraceback (most recent call last):\n  boom\nCRITICAL down\n")
    probe = probes.scan_log(log, offset)
    assert probe.outcome == "fail" and "2 error line(s)" in probe.detail
    assert "before the deploy" not in probe.detail
    assert probes.scan_log(log, probes.log_offset(log)).outcome == "pass"
    assert probes.scan_log(tmp_path / "missing.log", 0).outcome == "inconclusive"


def test_health_that_never_answers_200_fails_within_its_timeout() -> None:
    started = time.monotonic()
    probe = probes.wait_healthy(f"http://127.0.0.1:{free_port()}/healthz", timeout=0.5)
    assert probe.outcome == "fail" and time.monotonic() - started < 3


def test_inconclusive_probe_pauses_for_a_person_instead_of_passing(shop: Shop) -> None:
    shop.create(go=False, staging_logs="var/nowhere.log")
    rel = shop.release()
    assert rel["status"] == "paused" and rel["env"] == "staging"
    assert not (shop.var / "production.pid").exists()
    done = json.loads(shop.p.jl("go", rel["id"], "--json", user="bob").stdout)
    assert done["status"] == "live"
    assert shop.get("production", "/api/items") == (200, "apples")
