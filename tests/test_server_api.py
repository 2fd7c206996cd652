"""The JSON API against a real `jackline serve` on loopback: a real project, a scripted agent,
real DBOS on SQLite in the server's process, tokens with roles, server-sent events, /metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Project, git

from jackline import auth
from jackline.client import RemoteAPI
from jackline.errors import Invalid, NotFound, WrongState
from jackline.health import prometheus
from jackline.store import Store
from jackline.testing import Round, ScriptedAgent

FIX = Round(
    edits={"calc.py": "def add(a, b):\n    return a + b\n"},
    # The served repository is shared by the module's runs and main moves as they merge: each
    # run also leaves a file of its own, so none is an empty change once the fix is on main.
    commands=["echo fixed > fixed-$(date +%s%N).txt"],
    notes="- Assumed add means +.\n",
)
FLAGS = """\
[flags.new-checkout]
owner = "olga"
expires = 2099-01-01
[flags.new-checkout.values]
default = false
staging = true

[flags.kill-switch]
owner = "olga"
expires = 2099-01-01
protected = true
[flags.kill-switch.values]
default = false
"""
RELEASE = """
[review]
owners = ["olga"]

[release.environments.staging]
deploy = "true"

[release.environments.production]
deploy = "true"
requires_go = true
"""
PEOPLE = {"alice": "reviewer", "bob": "reviewer", "vera": "viewer", "olga": "owner"}


@dataclass
class Server:
    url: str
    project: Project
    admin: str
    tokens: dict[str, str]
    process: subprocess.Popen[str]

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False)

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.client(who) as c:
            return c.request(method, path, **kwargs)


def start_server(project: Project, *args: str) -> Server:
    """`jackline serve --port 0` in a subprocess; its URL and first admin token from stdout."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jackline",
            "serve",
            "--port",
            "0",
            "--repo",
            str(project.repo),
            *args,
        ],
        cwd=project.repo,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url, admin, seen = "", "", []
    deadline = time.monotonic() + 60
    while not (url and admin) and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("Listening on "):
            url = line.split()[2]
        if line.startswith("Admin token"):
            admin = line.split()[-1]
    if not (url and admin):
        process.kill()
        raise AssertionError("the server did not start:\n" + "".join(seen) + process.stdout.read())
    store = Store(project.home / "jackline.db")
    tokens = {name: auth.create_token(store, name, role)[1] for name, role in PEOPLE.items()}
    store.close()
    server = Server(url, project, admin, tokens, process)
    _wait_until_up(server)
    return server


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _wait_until_up(server: Server) -> None:
    for _ in range(200):
        try:
            if server.call(None, "GET", "/openapi.json").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"nothing answers at {server.url}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from conftest import unmount_under

    root = tmp_path_factory.mktemp("served")
    project = Project(root, root / "home").create(
        ScriptedAgent([FIX, FIX, FIX]), extra=RELEASE, files={"flags.toml": FLAGS}
    )
    started = start_server(project)
    yield started
    stop_server(started)
    unmount_under(root)


def submit(server: Server, who: str = "alice", task: str = "Fix add in calc.py") -> dict[str, Any]:
    response = server.call(who, "POST", "/api/runs", json={"task": task})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def stream(server: Server, who: str, run_id: str, after: int = 0) -> list[tuple[str, Any]]:
    """Every (event, data) of the run's SSE stream, read to its end."""
    found: list[tuple[str, Any]] = []
    path = f"/api/runs/{run_id}/events/stream"
    with server.client(who) as c, c.stream("GET", path, params={"after": after}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                found.append((kind, json.loads(line[5:])))
    return found


def in_review(server: Server, who: str = "alice") -> str:
    run = submit(server, who)
    events = stream(server, "vera", run["id"])
    assert events[-1] == ("end", {"run_id": run["id"], "status": "awaiting_review"})
    return str(run["id"])


@pytest.fixture(scope="module")
def waiting_run(server: Server) -> str:
    """A run of alice's, waiting for review (shared: a run takes seconds)."""
    return in_review(server)


# tests ------------------------------------------------------------------------------------


def test_api_refuses_requests_without_a_valid_token(server: Server) -> None:
    assert server.call(None, "GET", "/api/runs").status_code == 401
    server.tokens["nobody"] = "jl_deadbeef_not-a-real-secret"
    assert server.call("nobody", "GET", "/api/runs").status_code == 401
    assert server.call("vera", "GET", "/api/runs").status_code == 200
    assert server.call(None, "GET", "/metrics").status_code == 401
    assert server.call(None, "GET", "/flags/staging").status_code == 401
    who = server.call("olga", "GET", "/api/whoami").json()
    assert who == {"name": "olga", "role": "owner", "via": "token"}


def test_viewer_may_read_but_not_submit(server: Server) -> None:
    response = server.call("vera", "POST", "/api/runs", json={"task": "Fix add"})
    assert response.status_code == 403
    assert "reviewer" in response.json()["error"]["message"]


def test_openapi_describes_the_verbs(server: Server) -> None:
    spec = server.call(None, "GET", "/openapi.json").json()
    for path in (
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/events",
        "/api/runs/{run_id}/events/stream",
        "/api/runs/{run_id}/approve",
        "/api/runs/{run_id}/request-changes",
        "/api/runs/{run_id}/reject",
        "/api/releases",
        "/api/releases/{release_id}/go",
        "/api/rollback",
        "/api/flags/{name}",
        "/api/health",
        "/api/whoami",
        "/flags/{env}",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert "SubmitIn" in spec["components"]["schemas"]
    assert spec["paths"]["/api/runs"]["post"]["tags"] == ["runs"]


def test_run_submitted_through_the_api_streams_to_review_and_merges_on_another_persons_approval(
    server: Server,
) -> None:
    run = submit(server, "alice")
    assert run["status"] == "queued" and run["submitted_by"] == "alice"
    events = stream(server, "vera", run["id"])
    kinds = [k for k, _ in events]
    assert kinds[0] == "submitted" and "handoff" in kinds and kinds[-1] == "end"
    seqs = [d["seq"] for k, d in events if k != "end"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # A stream resumed after event N sends only what came after it.
    later = stream(server, "vera", run["id"], after=seqs[-2])
    assert [d["seq"] for k, d in later if k != "end"] == [seqs[-1]]

    detail = server.call("vera", "GET", f"/api/runs/{run['id']}").json()
    assert detail["status"] == "awaiting_review"
    assert [r["passed"] for r in detail["round_results"]] == [True]
    assert "Assumed add means +." in detail["handoff_markdown"]

    refused = server.call("vera", "POST", f"/api/runs/{run['id']}/approve", json={})
    assert refused.status_code == 403  # a viewer
    own = server.call("alice", "POST", f"/api/runs/{run['id']}/approve", json={})
    assert own.status_code == 403 and "cannot approve" in own.json()["error"]["message"]

    approved = server.call("bob", "POST", f"/api/runs/{run['id']}/approve", json={"message": "ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "merged"
    assert "a + b" in git(server.project.repo, "show", "main:calc.py")
    decisions = [e for e in server.project.events(run["id"]) if e["kind"] == "decision"]
    assert decisions[-1]["by"] == "bob"
    listed = server.call("vera", "GET", "/api/runs", params={"status": "merged"}).json()
    assert run["id"] in [r["id"] for r in listed]

    # What a reviewer reads comes from the database, not from the files of the machine the run
    # ran on: with the run's folder gone, the server still shows its handoff, change and logs.
    shutil.rmtree(server.project.home / "runs" / run["id"])
    detail = server.call("vera", "GET", f"/api/runs/{run['id']}").json()
    assert detail["status"] == "merged" and "Assumed add means +." in detail["handoff_markdown"]
    remote = RemoteAPI(server.url, server.tokens["vera"])
    kept = remote.artifact_names(run["id"])
    assert {"handoff.json", "change.diff", "round-1/agent.log", "round-1/test.log"} <= set(kept)
    change = remote.artifact_text(run["id"], "change.diff") or ""
    assert change.startswith(" calc.py") and "+    return a + b" in change
    assert "passed" in (remote.artifact_text(run["id"], "round-1/test.log") or "")
    assert remote.artifact_text(run["id"], "round-9/test.log") is None
    page = server.call("vera", "GET", f"/runs/{run['id']}").text
    assert '<tr class="d-add"><td class="ln" data-side="old" data-line=""></td>' in page
    assert '<span class="k">return</span>' in page


def test_metrics_page_parses_with_runs_rounds_and_check_durations(
    server: Server, waiting_run: str
) -> None:
    response = server.call("vera", "GET", "/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    page = prometheus.parse(response.text)
    runs = {dict(s.labels)["status"]: s.value for s in page.samples if s.name == "jackline_runs"}
    assert runs["awaiting_review"] >= 1 and runs["queued"] == 0
    assert page.type_of("jackline_runs") == "gauge"
    rounds = [s.value for s in page.samples if s.name == "jackline_rounds_total"]
    assert rounds and rounds[0] >= 1
    assert page.type_of("jackline_check_duration_seconds") == "histogram"
    counts = [
        s
        for s in page.samples
        if s.name == "jackline_check_duration_seconds_count" and s.has({"check": "test"})
    ]
    assert counts and counts[0].value >= 1
    inf = [
        s
        for s in page.samples
        if s.name == "jackline_check_duration_seconds_bucket" and s.has({"le": "+Inf"})
    ]
    assert inf[0].value == counts[0].value
    warm = [s for s in page.samples if s.name == "jackline_pool_warm"]
    assert warm and dict(warm[0].labels)["repo"] == str(server.project.repo.resolve())


def test_request_changes_needs_words_and_reject_closes_the_run(
    server: Server, waiting_run: str
) -> None:
    run_id = waiting_run
    empty = server.call("bob", "POST", f"/api/runs/{run_id}/request-changes", json={})
    assert empty.status_code == 422 and "say what should change" in empty.json()["error"]["message"]
    rejected = server.call("bob", "POST", f"/api/runs/{run_id}/reject", json={"message": "no"})
    assert rejected.json()["status"] == "rejected"
    again = server.call("bob", "POST", f"/api/runs/{run_id}/approve", json={})
    assert again.status_code == 409 and "rejected" in again.json()["error"]["message"]
    assert server.call("vera", "GET", "/api/runs/run-nope").status_code == 404


def test_every_api_error_has_one_shape_and_the_status_that_fits(server: Server) -> None:
    answers = {
        (401, "unauthenticated"): server.call(None, "GET", "/api/runs"),
        (403, "refused"): server.call("vera", "POST", "/api/runs", json={"task": "Fix add"}),
        (404, "not_found"): server.call("vera", "GET", "/api/runs/run-nope"),
        (404, "not_found", "rel"): server.call("vera", "GET", "/api/releases/rel-nope"),
        (422, "invalid"): server.call("bob", "POST", "/api/runs", json={"agent": "x"}),
        (422, "invalid", "limit"): server.call("vera", "GET", "/api/runs", params={"limit": 0}),
        (422, "invalid", "status"): server.call("vera", "GET", "/api/runs?status=bogus"),
    }
    for (status, kind, *_), answer in answers.items():
        assert answer.status_code == status, (status, answer.text)
        error = answer.json()["error"]
        assert set(answer.json()) == {"error"} and set(error) == {"kind", "message"}, error
        assert error["kind"] == kind and error["message"], error
    assert answers[422, "invalid"].json()["error"]["message"] == "body.task: Field required"
    assert "rel-nope" in answers[404, "not_found", "rel"].json()["error"]["message"]


def test_the_remote_client_raises_what_the_verb_raised_on_the_server(
    server: Server, waiting_run: str
) -> None:
    server.call("bob", "POST", f"/api/runs/{waiting_run}/reject", json={"message": "no"})
    client = RemoteAPI(server.url, server.tokens["bob"])
    with pytest.raises(WrongState, match="is rejected; only a run awaiting review"):
        client.approve(waiting_run)
    with pytest.raises(Invalid, match="is accepted: -m REASON"):
        client.accept(waiting_run, "f-nope", " ")
    with pytest.raises(NotFound, match="^no run 'run-nope'") as missing:
        client.get("run-nope")
    with pytest.raises(NotFound) as here:
        Store(server.project.home / "jackline.db").get_run("run-nope")
    assert str(missing.value) == str(here.value)  # the CLI says the same with --server


def test_an_expired_token_is_refused_saying_so_and_tokens_are_audited(server: Server) -> None:
    project = server.project
    made = json.loads(
        project.jl(
            "token", "create", "rita", "--role", "viewer", "--expires", "30d", "--json"
        ).stdout
    )
    assert 29 * 86400 < made["expires_at"] - time.time() <= 30 * 86400
    assert "until" in project.jl("token", "list").stdout
    _, secret = auth.create_token(Store(project.home / "jackline.db"), "eve", "reviewer", lasts=0.2)
    server.tokens["eve"] = secret
    time.sleep(0.3)
    answer = server.call("eve", "GET", "/api/whoami")
    assert answer.status_code == 401 and "expired on" in answer.json()["error"]["message"]
    assert "30d" in project.jl("token", "create", "x", "--expires", "soon", ok=False).stderr
    project.jl("token", "revoke", made["id"])
    log = json.loads(project.jl("token", "log", "--json").stdout)
    made_and_revoked = [
        (e["kind"], e["data"]["name"]) for e in log if e["data"].get("id") == made["id"]
    ]
    assert made_and_revoked == [("token.created", "rita"), ("token.revoked", "rita")]
    assert all(e["intact"] for e in log)
    assert made["token"] not in json.dumps(log)  # the secret is never recorded


def test_flag_values_for_an_environment_need_a_token_and_answer_the_provider(
    server: Server,
) -> None:
    from openfeature import api as openfeature

    from jackline.flags import OpenFeatureProvider

    body = server.call("vera", "GET", "/flags/staging").json()
    assert body == {
        "environment": "staging",
        "flags": {"new-checkout": True, "kill-switch": False},
        "defaults": ["kill-switch"],
    }
    assert server.call("vera", "GET", "/flags/moon").status_code == 403
    provider = OpenFeatureProvider("staging", url=server.url, token=server.tokens["vera"])
    openfeature.set_provider(provider, domain="server-test")
    assert openfeature.get_client("server-test").get_boolean_value("new-checkout", False) is True


def test_protected_flag_needs_an_owner_token_and_a_listed_owner(server: Server) -> None:
    viewer = server.call(
        "vera", "POST", "/api/flags/new-checkout", json={"env": "staging", "value": False}
    )
    assert viewer.status_code == 403
    set_ = server.call(
        "bob", "POST", "/api/flags/new-checkout", json={"env": "production", "value": True}
    )
    assert set_.status_code == 200 and set_.json()["new"] is True and set_.json()["by"] == "bob"
    protected = server.call(
        "bob", "POST", "/api/flags/kill-switch", json={"env": "production", "value": True}
    )
    assert protected.status_code == 403 and "owner" in protected.json()["error"]["message"]
    by_owner = server.call(
        "olga", "POST", "/api/flags/kill-switch", json={"env": "production", "value": "true"}
    )
    assert by_owner.status_code == 200 and by_owner.json()["by"] == "olga"
    listing = server.call("vera", "GET", "/api/flags", params={"env": "production"}).json()
    in_force = {f["name"]: f["in_force"]["production"] for f in listing["flags"]}
    assert in_force == {"new-checkout": True, "kill-switch": True}


def test_requests_for_a_repository_the_server_does_not_serve_are_refused(
    server: Server, tmp_path: Path
) -> None:
    git(tmp_path, "init", "-q", str(tmp_path / "other"))
    response = server.call(
        "bob", "POST", "/api/runs", json={"task": "Fix it", "repo": str(tmp_path / "other")}
    )
    assert response.status_code == 403
    assert "not a repository this server serves" in response.json()["error"]["message"]


def test_serve_refuses_a_public_address_without_public(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    proc = project.jl("serve", "--host", "0.0.0.0", "--port", "0", ok=False)
    assert proc.returncode == 1
    assert "not a loopback address" in proc.stderr and "--public" in proc.stderr


def test_tokens_are_made_listed_and_revoked_from_the_cli(server: Server) -> None:
    project = server.project
    made = json.loads(project.jl("token", "create", "rita", "--role", "reviewer", "--json").stdout)
    assert made["role"] == "reviewer" and made["token"].startswith(f"jl_{made['id']}_")
    server.tokens["rita"] = made["token"]
    assert server.call("rita", "GET", "/api/whoami").json()["name"] == "rita"
    listed = json.loads(project.jl("token", "list", "--json").stdout)
    assert {"rita", "admin", "bob"} <= {t["name"] for t in listed}
    assert all("digest" not in t and "token" not in t for t in listed)
    project.jl("token", "revoke", made["id"])
    assert server.call("rita", "GET", "/api/whoami").status_code == 401
    bad = project.jl("token", "create", "x", "--role", "emperor", ok=False)
    assert bad.returncode == 1 and "not a role" in bad.stderr


def test_server_started_again_on_the_same_database_prints_no_new_admin_token(
    server: Server,
) -> None:
    env = {**server.project.env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jackline", "serve", "--port", "0"],
        cwd=server.project.repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Working"):
            break
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    assert any(line.startswith("Listening on http://127.0.0.1:") for line in lines)
    assert not any("Admin token" in line for line in lines)


ELSEWHERE = "http://127.0.0.1:9"
"""Another loopback port: the same site as the server (cookies ignore ports), not its origin."""


def test_a_session_cookie_changes_state_only_with_its_csrf_header_from_the_servers_origin(
    server: Server,
) -> None:
    path = "/api/flags/new-checkout"

    def production() -> bool:
        listing = server.call("vera", "GET", "/api/flags", params={"env": "production"}).json()
        return bool(
            {f["name"]: f["in_force"] for f in listing["flags"]}["new-checkout"]["production"]
        )

    before = production()
    body = {"env": "production", "value": not before}
    with httpx.Client(base_url=server.url, timeout=60, trust_env=False) as c:
        signin = {"token": server.tokens["bob"], "next": "/runs"}
        assert c.post("/signin", data=signin, headers={"Origin": server.url}).status_code == 303
        # What a page on another loopback port can make a signed-in browser send: the cookie
        # goes along (same site), with no CSRF token and its own origin. Refused.
        assert c.post(path, json=body, headers={"Origin": ELSEWHERE}).status_code == 403
        assert c.post(path, content=b"", headers={"Origin": ELSEWHERE}).status_code == 403
        assert c.post(path, json=body, headers={"Origin": server.url}).status_code == 403
        token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', c.get("/runs").text)
        assert token, "the page gives its scripts the session's CSRF token"
        csrf = {"X-CSRF-Token": token.group(1)}
        for where in ({"Origin": ELSEWHERE}, {"Origin": "null"}, {"Referer": ELSEWHERE + "/"}, {}):
            refused = c.post(path, json=body, headers={**csrf, **where})
            assert refused.status_code == 403 and "origin" in refused.json()["error"]["message"], (
                where
            )
        wrong = c.post(path, json=body, headers={"X-CSRF-Token": "0" * 64, "Origin": server.url})
        assert wrong.status_code == 403 and "CSRF" in wrong.json()["error"]["message"]
        assert production() == before  # nothing was recorded
        # The page's own script: the token in the header, from the server's origin (or, with
        # no Origin, a Referer on it). Reads need neither.
        ok = c.post(path, json=body, headers={**csrf, "Origin": server.url})
        assert ok.status_code == 200 and ok.json()["by"] == "bob" and ok.json()["changed"]
        back = {"env": "production", "value": before}
        ok = c.post(path, json=back, headers={**csrf, "Referer": server.url + "/flags"})
        assert ok.status_code == 200 and production() == before
        assert c.get("/api/whoami").json()["name"] == "bob"
    # A bearer token is no ambient credential: it needs neither (the CLI sends no Origin).
    assert server.call("bob", "POST", path, json=back).status_code == 200


def test_serve_origin_is_a_scheme_and_host_or_a_clear_error() -> None:
    from jackline.errors import Refused
    from jackline.server.serve import check_origin

    assert check_origin("https://Jackline.Example.com/") == "https://jackline.example.com"
    assert check_origin("http://10.0.0.5:8700") == "http://10.0.0.5:8700"
    for bad in ("ftp://x", "jackline.example.com", "https://x/path"):
        with pytest.raises(Refused, match="--origin"):
            check_origin(bad)


def test_parallel_attempts_are_queued_together_and_each_handoff_compares_them(
    server: Server,
) -> None:
    refused = server.call("vera", "POST", "/api/attempts", json={"task": "Fix add", "attempts": 2})
    assert refused.status_code == 403  # a viewer submits nothing
    too_many = server.call("alice", "POST", "/api/attempts", json={"task": "x", "attempts": 0})
    assert too_many.status_code == 422
    response = server.call(
        "alice", "POST", "/api/attempts", json={"task": "Fix add in calc.py", "attempts": 2}
    )
    assert response.status_code == 201, response.text
    first, second = response.json()
    assert first["attempts"] == second["attempts"] != "" and first["id"] != second["id"]
    for run in (first, second):
        assert stream(server, "vera", run["id"])[-1][1]["status"] == "awaiting_review"
    shown = server.call("vera", "GET", f"/api/runs/{second['id']}").json()["handoff_markdown"]
    assert "## Attempts" in shown and f"**`{second['id']}`** (this)" in shown
    assert f"| `{first['id']}` | default | awaiting_review |" in shown
