"""The web page against a real server: uvicorn in its own process on a free loopback port, a real
project (git, the scripted agent, DBOS on SQLite), real HTTP with httpx. One server serves the
whole module; each test that decides makes its own run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CALC, Project, git, unmount_under

from jackline import api, auth, review
from jackline.models import Release, Run, Status
from jackline.server import deps
from jackline.store import Store
from jackline.testing import Replace, Round, ScriptedAgent

HOSTILE = "<script>alert('handoff')</script>"
FIX = Round(
    edits={"calc.py": Replace("a - b", "a + b")},
    message="fixed add",
    notes=f"- Assumed add means +. {HOSTILE}\n",
)
ASKED = Round(
    edits={"calc.py": Replace("def add(a, b):\n", 'def add(a, b):\n    """a + b"""\n')},
    commands=['cp "$JACKLINE_FEEDBACK" .jackline/run/review-seen.md'],
)
"""A round asked for by a reviewer: it keeps the feedback it was handed where a test reads it."""
AGENT = ScriptedAgent([FIX, ASKED])
# calc.py written whole, not replaced: a run of it reaches review on a main already fixed
# (test_browser merges one).
GATED = Round(
    edits={
        "calc.py": CALC.replace("a - b", "a + b"),
        ".github/workflows/ci.yml": "on: push\njobs: {}\n",
    },
    notes="- Touched CI on purpose.\n",
)
IDLE = Round(edits={"NOTES.md": "looked around\n"}, message="did not fix it")
# Two more agents besides the module's own: `gated` edits a CI file (a block-level finding that
# only the owner olga may decide), `idle` fixes nothing (the run fails its checks).
AGENTS = """
[agents.gated]
command = {gated}

[agents.idle]
command = {idle}

[review]
owners = ["olga"]
allow_as = true

[sandbox]
readable = {readable}
"""
# Both environments "deploy" with `true` and are probed at the Jackline server itself: real
# probes over HTTP, with nothing else to start.
RELEASE = """
[release.environments.staging]
deploy = "true"
url = "{url}"
health = "/signin"
smoke = ["GET /signin 200 contains 'Sign in'"]

[release.environments.production]
deploy = "true"
url = "{url}"
health = "/signin"
smoke = ["GET /signin 200 contains 'Sign in'"]
requires_go = true
"""
FLAGS = """\
[flags.new-checkout]
description = "One-page checkout"
owner = "alice"
expires = 2099-06-30

[flags.new-checkout.values]
staging = true
production = false

[flags.page-size]
owner = "bob"
expires = 2020-01-31
values = { default = 20, staging = 50 }
"""
SERVE = """
import sys
from pathlib import Path

import uvicorn

from jackline.server import Settings, create_app

app = create_app(Settings(repos=(Path(sys.argv[1]),)))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    """A running server over a project, and a token per person."""

    project: Project
    url: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]

    @contextmanager
    def client(self, who: str | None = None) -> Iterator[httpx.Client]:
        """A client signed in through the page itself (the session cookie), or no one's. It
        says it comes from the server's own origin, as a browser on its page does."""
        origin = {"Origin": self.url}
        with httpx.Client(
            base_url=self.url, timeout=60, follow_redirects=False, headers=origin
        ) as client:
            if who is not None:
                r = client.post("/signin", data={"token": self.tokens[who], "next": "/runs"})
                assert r.status_code == 303, r.text
            yield client

    def submit(self, task: str = "Fix add", agent: str = "") -> str:
        """Start a run from the page as alice (by `agent`, or the default); its id."""
        with self.client("alice") as c:
            data = {"task": task, "repo": "0", "agent": agent, "csrf": csrf(c, "/runs")}
            r = c.post("/runs", data=data)
            assert r.status_code == 303, r.text
            return str(r.headers["location"]).rsplit("/", 1)[-1]

    def wait(self, run_id: str, *statuses: str, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        status = ""
        while time.monotonic() < end:
            status = Store().get_run(run_id).status
            if status in statuses:
                return status
            time.sleep(0.2)
        raise AssertionError(f"{run_id} is {status}, not {statuses}, after {timeout}s")


def csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def start_site(root: Path, agent: ScriptedAgent) -> Site:
    """A project, tokens for alice, bob and olga (reviewers; olga is the owner) and vera (a
    viewer), and its server."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    project = Project(root, root / "home")
    scripts = {
        name: ScriptedAgent([edits]).save(root / f"{name}.json")
        for name, edits in (("gated", GATED), ("idle", IDLE))
    }
    agents = AGENTS.format(
        readable=json.dumps([str(root / "agent.json"), *map(str, scripts.values())]),
        **{name: json.dumps(ScriptedAgent.command(path)) for name, path in scripts.items()},
    )
    extra = RELEASE.format(url=url) + agents
    project.create(agent, extra=extra, files={"flags.toml": FLAGS})
    os.environ["JACKLINE_HOME"] = str(project.home)
    store = Store()
    tokens = {
        name: auth.create_token(store, name, role)[1]
        for name, role in (
            ("alice", "reviewer"),
            ("bob", "reviewer"),
            ("olga", "reviewer"),
            ("vera", "viewer"),
        )
    }
    store.close()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(project.repo), str(port)], env=project.env
    )
    end = time.monotonic() + 60  # a loaded machine (a parallel suite) starts it slowly
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/signin", timeout=2).status_code == 200:
                return Site(project, url, tokens, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not answer on {url} within 60s")


def stop_site(site: Site) -> None:
    site.process.send_signal(signal.SIGTERM)
    try:
        site.process.wait(2)
    except subprocess.TimeoutExpired:
        site.process.kill()  # a stream left open or a workflow thread waiting for review
        site.process.wait(5)
    unmount_under(site.project.root)


@contextmanager
def running_site(root: Path, agent: ScriptedAgent) -> Iterator[Site]:
    """A started site, stopped after, with the JACKLINE_HOME it set put back."""
    before = os.environ.get("JACKLINE_HOME")
    s = start_site(root, agent)
    try:
        yield s
    finally:
        stop_site(s)
        if before is None:
            os.environ.pop("JACKLINE_HOME", None)
        else:
            os.environ["JACKLINE_HOME"] = before


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("web"), AGENT) as s:
        yield s


@pytest.fixture(scope="module")
def reviewed(site: Site) -> str:
    """A run that reached review (nobody decides it: tests only read it)."""
    run_id = site.submit("Fix add so that add(2, 3) == 5")
    site.wait(run_id, "awaiting_review")
    return run_id


# signing in -------------------------------------------------------------------------------


def test_pages_send_a_person_without_a_session_to_sign_in(site: Site) -> None:
    with site.client() as c:
        for path in ("/runs", "/releases", "/flags", "/health", "/runs/run-x?a=1"):
            r = c.get(path)
            assert r.status_code == 303
            assert r.headers["location"].startswith("/signin?next=")
        assert c.get("/runs/run-x/live").status_code == 303


def test_signin_sets_an_httponly_strict_cookie_and_signout_clears_it(site: Site) -> None:
    with site.client() as c:
        r = c.post("/signin", data={"token": site.tokens["alice"], "next": "/flags"})
        assert r.status_code == 303 and r.headers["location"] == "/flags"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{deps.COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        page = c.get("/runs")
        assert page.status_code == 200 and "alice" in page.text and "reviewer" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        r = c.post("/signout", data={"csrf": csrf(c, "/runs")})
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert c.get("/runs").status_code == 303


def test_signin_with_an_unknown_token_is_refused_and_sets_no_cookie(site: Site) -> None:
    with site.client() as c:
        r = c.post("/signin", data={"token": "jl_nope_nope"})
        assert r.status_code == 401
        assert "is not one of this server" in r.text
        assert "set-cookie" not in r.headers


def test_signins_and_refused_ones_are_in_the_servers_access_log(site: Site) -> None:
    _, expired = auth.create_token(Store(), "eve", "reviewer", lasts=0.1)
    time.sleep(0.2)
    with site.client() as c:
        r = c.post("/signin", data={"token": expired})
        assert r.status_code == 401 and "expired on" in r.text and "set-cookie" not in r.headers
    with site.client("bob"):
        pass
    log = [(e.kind, e.data) for e in api.access_log()]
    assert any(k == "signin.refused" and "eve expired on" in d["why"] for k, d in log)
    signed = [d for k, d in log if k == "signin"]
    assert signed[-1]["name"] == "bob" and signed[-1]["from"] == "127.0.0.1"
    assert expired not in repr(log) and site.tokens["bob"] not in repr(log)


def test_signin_sends_a_person_back_only_to_a_page_of_this_server(site: Site) -> None:
    with site.client() as c:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            r = c.post("/signin", data={"token": site.tokens["vera"], "next": target})
            assert r.headers["location"] == "/runs"


# runs -------------------------------------------------------------------------------------


def test_run_page_shows_the_handoff_escaped_and_the_diff_coloured(
    site: Site, reviewed: str
) -> None:
    with site.client("bob") as c:
        page = c.get(f"/runs/{reviewed}").text
    assert "awaiting review" in page
    assert "Assumed add means +." in page
    # Agent-written HTML in the handoff is text on the page, never markup.
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(" in page
    # The viewer: old and new line numbers, the code coloured by its language (Python).
    assert '<a class="mono" href="#f1">calc.py</a> <span class="plus">+1</span>' in page
    removed = re.search(r'<tr class="d-del">.*?</tr>', page, re.S)
    assert removed and 'data-side="old" data-line="2">2<' in removed.group(0)
    assert '<span class="k">return</span>' in removed.group(0)
    assert '<span class="o">-</span>' in removed.group(0)
    assert 'id="approve"' in page and "disabled" not in page.split('id="approve"')[1][:20]


@pytest.fixture(scope="module")
def gated(site: Site) -> str:
    """A run by alice whose change edits a CI file: a block-level finding only olga, the owner,
    may decide (nobody decides it: tests only read it)."""
    run_id = site.submit("Fix add, and touch CI", agent="gated")
    site.wait(run_id, "awaiting_review")
    return run_id


def positions(page: str, *marks: str) -> list[int]:
    found = [page.find(m) for m in marks]
    assert -1 not in found, dict(zip(marks, found, strict=True))
    return found


def test_run_page_puts_the_summary_first_then_the_decision_the_evidence_and_the_log_folded(
    site: Site, gated: str
) -> None:
    with site.client("bob") as c:
        page = c.get(f"/runs/{gated}").text
    order = positions(
        page, 'id="summary"', 'id="decide"', 'id="findings"', 'id="handoff"', 'id="diff"',
        '<details class="audit"', 'id="log"',
    )  # fmt: skip
    assert order == sorted(order)
    summary = page[order[0] : order[1]]
    assert "Fix add, and touch CI" in summary
    assert "2 files" in summary and "+3" in summary and "−1" in summary  # from the --stat
    assert "calc.py" in summary and ".github/workflows/ci.yml" in summary
    assert '<span class="check pass">test pass</span>' in summary
    assert "block</span> 1" in summary and "an owner must decide (olga)" in summary
    assert "Touched CI on purpose." in summary and "$0.00" in summary
    # The findings are shown once: in their table, not again in the handoff.
    (finding,) = [f for f in Store().get_run(gated).block_ids]
    assert page.count(f'<td class="mono">{finding}</td>') == 1
    # Once in their table, not again in where to look twice; the diff viewer shows it at its line.
    evidence, viewer = page.split('<section class="diffview">')
    assert evidence.count("the change edits gate configuration") == 1
    assert "the change edits gate configuration" in viewer
    assert "## Findings" not in page
    assert "<h2>Findings</h2>" not in page[order[3] :]


def test_the_summary_shows_the_agents_notes_as_text_and_each_round_red_or_green(
    site: Site, reviewed: str
) -> None:
    with site.client("vera") as c:
        page = c.get(f"/runs/{reviewed}").text
    summary = page[page.index('id="summary"') : page.index('id="decide"')]
    assert "Assumed add means +." in summary
    assert HOSTILE not in page and "&lt;script&gt;alert(" in summary
    assert "round 1" in summary and "1 file, " in summary


def reason(page: str, kind: str) -> str:
    found = re.search(f'<p class="why" id="why-{kind}">(.*?)</p>', page, re.S)
    return found.group(1) if found else ""


def test_each_button_a_person_may_not_use_is_disabled_with_the_reason_the_api_gives(
    site: Site, gated: str
) -> None:
    import html

    pages = {}
    for who in ("alice", "bob", "olga", "vera"):
        with site.client(who) as c:
            pages[who] = c.get(f"/runs/{gated}").text
    assert "alice submitted" in reason(pages["alice"], "approve")
    assert "bob is not an owner" in reason(pages["bob"], "approve")
    assert "one of the owners (olga)" in reason(pages["bob"], "approve")
    assert 'id="approve" disabled' in pages["bob"]
    assert reason(pages["olga"], "approve") == "" and 'id="approve" disabled' not in pages["olga"]
    assert reason(pages["bob"], "reject") == "" and "I reject head" in pages["bob"]
    assert "deciding needs the reviewer role" in reason(pages["vera"], "reject")
    # Accepting the block-level finding is the owner's: others see why instead of the form.
    assert "bob is not an owner: accepting it needs one of the owners (olga)" in pages["bob"]
    assert "/accept" not in pages["bob"] and "/accept" in pages["olga"]
    head = Store().get_run(gated).head_sha or ""
    assert f'I approve head <span class="mono">{head[:10]}</span>' in pages["olga"]
    # The verb behind the button refuses with the very words the page showed.
    with site.client("bob") as c:
        data = {"csrf": csrf(c, f"/runs/{gated}"), "head": head}
        refused = c.post(f"/runs/{gated}/approve", data=data)
    assert refused.status_code == 403
    assert html.unescape(reason(pages["bob"], "approve")) in html.unescape(refused.text)
    assert Store().get_run(gated).status == "awaiting_review"


def test_a_reject_without_a_reason_is_refused_and_nothing_changes(
    site: Site, reviewed: str
) -> None:
    before = len(site.project.events(reviewed))
    with site.client("bob") as c:
        token = csrf(c, f"/runs/{reviewed}")
        head = Store().get_run(reviewed).head_sha
        r = c.post(f"/runs/{reviewed}/reject", data={"csrf": token, "head": head, "message": " "})
    assert r.status_code == 422 and 'role="alert"' in r.text
    assert "say why the run is rejected" in r.text
    assert Store().get_run(reviewed).status == "awaiting_review"
    assert len(site.project.events(reviewed)) == before


def test_a_failed_run_offers_a_retry_with_another_agent_that_starts_the_same_task(
    site: Site,
) -> None:
    failed = site.submit("Fix add, by an agent that cannot", agent="idle")
    site.wait(failed, "failed", timeout=120)
    with site.client("bob") as c:
        page = c.get(f"/runs/{failed}").text
        # An ended run takes no review: it offers what can be done, a retry or a rejection.
        assert "it has ended and takes no review" in page
        assert 'id="approve"' not in page and 'id="reject"' in page
        assert 'id="request-changes"' not in page and 'id="retry-run"' in page
        form = page[page.index('id="retry"') :]
        form = form[: form.index("</form>")]
        assert f'action="/runs/{failed}/retry" class="decision" id="retry"' in page
        assert 'name="message"' in form
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
        assert re.search(r'<option value="default" selected>', form)
        words = "subtract nothing: add"
        r = c.post(f"/runs/{failed}/retry", data={**fields, "agent": "default", "message": words})
        assert r.status_code == 303, r.text
    again = Store().get_run(str(r.headers["location"]).rsplit("/", 1)[-1])
    was = Store().get_run(failed)
    assert again.id != was.id and again.repo == was.repo and was.status == "failed"
    assert again.task.startswith(was.task + "\n\nThis tries again " + was.id), again.task
    assert again.task.endswith(f"What should go differently this time: {words}"), again.task
    assert (was.agent, again.agent, again.submitted_by) == ("idle", "default", "bob")
    [told] = [json.loads(e.data) for e in Store().events(failed) if e.kind == "retried"]
    assert (told["run"], told["by"], told["message"]) == (again.id, "bob", words)
    with site.client("bob") as c:
        shown = c.get(f"/runs/{failed}").text
        assert f"retried by bob as {again.id} with default" in shown
        # Only an ended or blocked run is retried; a viewer retries nothing.
        token = csrf(c, f"/runs/{again.id}")
        early = c.post(f"/runs/{again.id}/retry", data={"csrf": token})
        assert early.status_code == 409, early.text
    with site.client("vera") as c:
        token = csrf(c, f"/runs/{failed}")
        assert c.post(f"/runs/{failed}/retry", data={"csrf": token}).status_code == 403

    # The API: the same verb, the same refusals, one error shape.
    def api(who: str, run_id: str, body: dict[str, str]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {site.tokens[who]}"}
        with httpx.Client(base_url=site.url, headers=headers, trust_env=False) as c:
            return c.post(f"/api/runs/{run_id}/retry", json=body)

    assert api("vera", failed, {}).status_code == 403
    wrong = api("bob", again.id, {})
    assert wrong.status_code == 409 and wrong.json()["error"]["kind"] == "wrong_state", wrong.text
    third = api("bob", failed, {"agent": "idle", "message": "once more"})
    assert third.status_code == 201, third.text
    assert third.json()["agent"] == "idle" and "once more" in third.json()["task"]
    # Rejected from its page, it is closed for good; a second rejection finds it moved on.
    with site.client("bob") as c:
        token = csrf(c, f"/runs/{failed}")
        head = {"csrf": token, "head": "", "confirm": ""}
        r = c.post(f"/runs/{failed}/reject", data={**head, "message": "not worth it"})
        assert r.status_code == 303, r.text
        assert Store().get_run(failed).status == "rejected"
        assert Store().get_run(failed).reason.startswith("not worth it (it had failed: ")
        again_r = c.post(f"/runs/{failed}/reject", data={**head, "message": "again"})
        assert again_r.status_code == 409, again_r.text
    site.wait(again.id, "awaiting_review")
    site.wait(third.json()["id"], "failed", timeout=120)
    with site.client("bob") as c:  # out of the way of the module's other runs
        token = csrf(c, f"/runs/{again.id}")
        c.post(f"/runs/{again.id}/cancel", data={"csrf": token, "message": "done"})


def test_runs_list_filters_by_status(site: Site, reviewed: str) -> None:
    with site.client("vera") as c:
        assert reviewed in c.get("/runs", params={"status": "awaiting_review"}).text
        assert reviewed not in c.get("/runs", params={"status": "merged"}).text
        assert c.get("/runs", params={"status": "bogus"}).status_code == 422


def test_runs_list_filters_by_agent_person_and_repository_and_says_who_acts_next(
    site: Site, reviewed: str
) -> None:
    run = Store().get_run(reviewed)
    with site.client("vera") as c:
        page = c.get("/runs").text
        row = page.split(f'href="/runs/{reviewed}"')[1].split("</tr>")[0]
        assert "$0.00" in row and '<td class="waiting">a reviewer</td>' in row
        assert f'<option value="{run.agent}">' in page and '<option value="alice">' in page
        mine = {"agent": run.agent, "by": "alice", "repo": run.repo, "status": run.status}
        assert reviewed in c.get("/runs", params=mine).text
        # Nobody the module's tests submit as (bob retries a run in another test).
        for other in ({"by": "vera"}, {"agent": "nobody"}, {"repo": "/elsewhere"}):
            shown = c.get("/runs", params=other).text
            assert reviewed not in shown and "match the filter" in shown, other


def test_who_a_run_waits_for_follows_its_findings_and_whether_its_merge_is_live() -> None:
    now = time.time()
    run = Run("run-1", "t", "/r", "a", "standard", Status.AWAITING_REVIEW, "b", "al", now, now)
    blocked = replace(run, blocking=1, block_ids=("f1",))
    assert review.waiting_for(run, (), None) == "a reviewer"
    assert review.waiting_for(blocked, ("olga", "oscar"), None) == "an owner: olga, oscar"
    assert review.waiting_for(replace(blocked, accepted=("f1",)), ("olga",), None) == "a reviewer"
    merged = replace(run, status=Status.MERGED, merge_sha="m1")
    assert review.waiting_for(merged, (), frozenset({"m1"})) == "a releaser: release it"
    assert review.waiting_for(merged, (), frozenset({"m0"})) == ""  # production has it
    assert review.waiting_for(replace(run, status=Status.FAILED), (), None) == ""


def test_an_unknown_page_is_an_html_page_and_an_unknown_api_path_is_json(site: Site) -> None:
    with site.client("vera") as c:
        missing = c.get("/nowhere/at/all")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(
            "text/html"
        )
        assert "<h1>Not found</h1>" in missing.text and "Sign out" in missing.text
        api_missing = c.get("/api/nowhere")
        assert api_missing.status_code == 404
        assert api_missing.json() == {"error": {"kind": "not_found", "message": "Not Found"}}
    assert httpx.get(f"{site.url}/nowhere").headers["content-type"].startswith("text/html")


def test_viewer_sees_the_buttons_disabled_and_a_forged_post_is_refused(
    site: Site, reviewed: str
) -> None:
    with site.client("vera") as c:
        page = c.get(f"/runs/{reviewed}").text
        assert "deciding needs the reviewer role" in page
        assert 'id="approve" disabled' in page
        token = csrf(c, f"/runs/{reviewed}")
        for decision in ("approve", "reject", "request-changes"):
            r = c.post(f"/runs/{reviewed}/{decision}", data={"csrf": token, "message": "x"})
            assert r.status_code == 403
            assert "vera is a viewer" in r.text
    assert Store().get_run(reviewed).status == "awaiting_review"


def test_a_decision_without_the_sessions_csrf_token_is_refused(site: Site, reviewed: str) -> None:
    with site.client("bob") as c:
        assert c.post(f"/runs/{reviewed}/reject").status_code == 403
        r = c.post(f"/runs/{reviewed}/reject", data={"csrf": "0" * 64})
        assert r.status_code == 403 and "CSRF" in r.text
    assert Store().get_run(reviewed).status == "awaiting_review"


ELSEWHERE = "http://127.0.0.1:9"
"""Another loopback port: the same site as the server (cookies ignore ports), not its origin."""


def test_a_form_post_from_another_origin_is_refused_even_with_the_sessions_csrf_token(
    site: Site, reviewed: str
) -> None:
    with site.client("bob") as c:
        token = csrf(c, f"/runs/{reviewed}")
        path = f"/runs/{reviewed}/reject"
        for headers in ({"Origin": ELSEWHERE}, {"Origin": "null"}):
            r = c.post(path, data={"csrf": token}, headers=headers)
            assert r.status_code == 403 and "origin" in r.text, r.text
        del c.headers["origin"]
        r = c.post(path, data={"csrf": token}, headers={"Referer": f"{ELSEWHERE}/page"})
        assert r.status_code == 403
        assert c.post(path, data={"csrf": token}).status_code == 403  # says nowhere: refused
        # Without Origin, the Referer of a page of this server is enough.
        r = c.post("/signout", data={"csrf": token}, headers={"Referer": site.url + "/runs"})
        assert r.status_code == 303
        assert c.get("/runs").status_code == 303
    assert Store().get_run(reviewed).status == "awaiting_review"
    with site.client() as c:
        # Nobody signs a person in from another page either (they would act as the page chose).
        r = c.post("/signin", data={"token": site.tokens["bob"]}, headers={"Origin": ELSEWHERE})
        assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_decision_from_a_page_that_showed_another_head_is_refused_and_recorded(
    site: Site, reviewed: str
) -> None:
    with site.client("bob") as c:
        token = csrf(c, f"/runs/{reviewed}")
        assert (
            f'name="head" value="{Store().get_run(reviewed).head_sha}"'
            in c.get(f"/runs/{reviewed}").text
        )
        data = {"csrf": token, "head": "0" * 40, "message": "stale"}
        r = c.post(f"/runs/{reviewed}/reject", data=data)
        assert r.status_code == 409 and "made on 0000000000" in r.text
    assert Store().get_run(reviewed).status == "awaiting_review"
    refused = [e for e in site.project.events(reviewed) if e["kind"] == "decision_refused"]
    assert refused and refused[-1]["by"] == "bob" and refused[-1]["head"] == "0" * 40


def test_request_changes_without_words_is_refused_on_the_page(site: Site, reviewed: str) -> None:
    with site.client("bob") as c:
        token = csrf(c, f"/runs/{reviewed}")
        r = c.post(f"/runs/{reviewed}/request-changes", data={"csrf": token, "message": " "})
        assert r.status_code == 422
        assert "say what should change" in r.text
        assert 'role="alert"' in r.text


def test_reject_from_the_page_records_who_and_redirects_back(site: Site) -> None:
    run_id = site.submit("Fix add, to be rejected")
    site.wait(run_id, "awaiting_review")
    with site.client("bob") as c:
        token = csrf(c, f"/runs/{run_id}")
        r = c.post(f"/runs/{run_id}/reject", data={"csrf": token, "message": "not now"})
        assert r.status_code == 303 and r.headers["location"] == f"/runs/{run_id}"
        page = c.get(f"/runs/{run_id}").text
    assert Store().get_run(run_id).status == "rejected"
    assert "review: reject by bob: not now" in page


def test_a_run_started_from_the_page_with_attempts_is_compared_on_each_page(site: Site) -> None:
    with site.client("alice") as c:
        data = {"task": "Fix add, twice", "repo": "0", "attempts": "2", "csrf": csrf(c, "/runs")}
        r = c.post("/runs", data=data)
        assert r.status_code == 303, r.text
    first = Store().get_run(str(r.headers["location"]).rsplit("/", 1)[-1])
    both = Store().attempts(first.attempts)
    assert len(both) == 2 and both[0].id == first.id
    for run in both:
        site.wait(run.id, "awaiting_review")
    with site.client("bob") as c:
        page = c.get(f"/runs/{both[1].id}").text
        assert "Attempts" in page and both[0].id in page and "(this)" in page
        for run in both:  # out of the way of the module's other runs
            token = csrf(c, f"/runs/{run.id}")
            c.post(f"/runs/{run.id}/reject", data={"csrf": token, "message": "tried"})


def test_live_stream_follows_a_working_run_and_ends_when_it_is_final(site: Site) -> None:
    run_id = site.submit("Fix add, to be watched")
    with site.client("bob") as c:
        seen: list[str] = []
        with c.stream("GET", f"/runs/{run_id}/live") as r:
            for line in r.iter_lines():
                seen.append(line)
                if line.startswith("data: ") and '"status": "awaiting_review"' in line:
                    break
        statuses = [x for x in seen if x.startswith('data: {"status"')]
        assert len(statuses) >= 2  # it watched the run move (queued or running, then review)
        assert any('"kind": "handoff"' in x for x in seen)
        c.post(
            f"/runs/{run_id}/reject", data={"csrf": csrf(c, f"/runs/{run_id}"), "message": "seen"}
        )
        with c.stream("GET", f"/runs/{run_id}/live") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            body = "".join(r.iter_text())
        events = parse_sse(body)
        kinds = [e["event"] for e in events]
        assert kinds[0] == "audit" and kinds[-2:] == ["status", "end"]
        assert events[0]["id"] == "1" and '"kind": "submitted"' in events[0]["data"]
        with c.stream("GET", f"/runs/{run_id}/live", headers={"Last-Event-ID": "3"}) as r:
            resumed = parse_sse("".join(r.iter_text()))
        assert resumed[0]["id"] == "4"


def parse_sse(body: str) -> list[dict[str, Any]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append(fields)
    return events


# releases, flags, health ------------------------------------------------------------------


def test_release_waits_for_go_and_another_reviewer_says_go(site: Site) -> None:
    with site.client("alice") as c:
        r = c.post("/releases", data={"csrf": csrf(c, "/releases")})
        assert r.status_code == 303, r.text
        rel_page = r.headers["location"]
        page = c.get(rel_page).text
        assert "awaiting go" in page and 'http-equiv="refresh"' in page
        # The starter finds go disabled, with the reason the verb gives below.
        assert 'id="go" disabled' in page and "alice started" in page
        carried = page.split('id="carries"')[1].split("</table>")[0]  # what it takes to production
        assert "<td>Alice</td>" in carried, carried
        r = c.post(f"{rel_page}/go", data={"csrf": csrf(c, rel_page)})
        assert r.status_code == 403 and "alice" in r.text  # the starter may not say go
    with site.client("vera") as c:
        assert 'id="go" disabled' in c.get(rel_page).text
        assert c.post(f"{rel_page}/go", data={"csrf": csrf(c, rel_page)}).status_code == 403
    with site.client("bob") as c:
        sha = Store().get_release(rel_page.rsplit("/", 1)[-1]).sha
        assert f'Go for commit <span class="mono">{sha[:10]}</span>' in c.get(rel_page).text
        r = c.post(f"{rel_page}/go", data={"csrf": csrf(c, rel_page)})
        assert r.status_code == 303
        page = c.get(rel_page).text
        assert '<span class="status s-live" data-status>live</span>' in page
        assert page.count('<span class="status s-pass">pass</span>') >= 4  # health, smoke x2
        assert 'http-equiv="refresh"' not in page
        assert rel_page.rsplit("/", 1)[-1] in c.get("/releases").text


def test_release_page_lists_what_it_carries_escaped_and_warns_of_a_rolled_back_commit(
    site: Site,
) -> None:
    repo = site.project.repo
    # A commit off main (no ref moves: the module's other tests release main's tip).
    tree = git(repo, "rev-parse", "main^{tree}")
    sha = git(repo, "commit-tree", tree, "-p", "main", "-m", f"risky {HOSTILE}")
    store, now, where = Store(), time.time(), str(repo.resolve())
    rolled = Release("rel-01rolled", where, sha, "rolled_back", "bob", now - 5, now - 5)
    store.insert_release(replace(rolled, promotable=False, reason="smoke failed"))
    again = Release(
        "rel-01again", where, sha, "aborted", "bob", now, now, git(repo, "rev-parse", "main")
    )
    store.insert_release(again)
    with site.client("vera") as c:
        page = c.get("/releases/rel-01again").text
    carried = page.split('id="carries"')[1].split("</table>")[0]
    assert HOSTILE not in page and "risky &lt;script&gt;" in carried
    assert (
        "rolled back before: rel-01rolled (smoke failed)" in carried and "<td>Alice</td>" in carried
    )
    assert "1 change here was rolled back or rejected before" in page


def test_flags_page_lists_values_per_environment(site: Site) -> None:
    with site.client("vera") as c:
        page = c.get("/flags").text
        assert "new-checkout" in page and "page-size" in page and "expired" in page
        staging = c.get("/flags", params={"env": "staging"}).text
        assert "<th>staging</th>" in staging and "<th>production</th>" not in staging
        assert "is not an environment" in c.get("/flags", params={"env": "prod"}).text


def test_health_page_shows_the_report(site: Site) -> None:
    with site.client("vera") as c:
        r = c.get("/health")
    assert r.status_code == 200
    assert 'id="health"' in r.text and "gathered" in r.text


def test_an_unknown_run_or_release_is_a_page_that_says_so(site: Site) -> None:
    with site.client("vera") as c:
        r = c.get("/runs/run-nope")
        assert r.status_code == 404 and "run-nope" in r.text and "Back to the list" in r.text
        assert c.get("/releases/rel-nope").status_code == 404


def test_the_summary_reads_files_and_lines_from_the_changes_stat_and_nothing_else() -> None:
    from jackline.server import summary

    stat = (
        " b.bin     | Bin 2 -> 3 bytes\n d s/y.txt |   3 +++\n x.txt     |   2 --\n"
        " 3 files changed, 3 insertions(+), 2 deletions(-)\n\ndiff --git a/b.bin b/b.bin\n"
    )
    change = summary.change(stat)
    assert change is not None and (change.changed, change.added, change.removed) == (3, 3, 2)
    assert [(f.path, f.count, f.bar) for f in change.files] == [
        ("b.bin", "Bin 2 -> 3 bytes", ""),
        ("d s/y.txt", "3", "+++"),
        ("x.txt", "2", "--"),
    ]
    deleted = summary.change(" x.txt | 2 --\n 1 file changed, 2 deletions(-)\n")
    assert deleted is not None and (deleted.added, deleted.removed) == (0, 2)
    # A change kept without a stat at its head is not guessed at.
    assert summary.change("diff --git a/x b/x\n 1 file changed, 1 insertion(+)\n") is None
    assert summary.change(None) is None


def test_handoff_markdown_shows_raw_html_and_script_links_as_text() -> None:
    from jackline.server.web import render_markdown

    html = str(render_markdown("<img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))"))
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript' not in html


def test_cancel_from_the_page_needs_the_csrf_token_and_records_who(site: Site) -> None:
    run_id = site.submit("Fix add, to be cancelled")
    site.wait(run_id, "awaiting_review")
    with site.client("bob") as c:
        assert 'id="cancel-run"' in c.get(f"/runs/{run_id}").text
        forged = c.post(f"/runs/{run_id}/cancel", data={"csrf": "0" * 64})
        assert forged.status_code == 403
        token = csrf(c, f"/runs/{run_id}")
        r = c.post(f"/runs/{run_id}/cancel", data={"csrf": token, "message": "duplicate"})
        assert r.status_code == 303 and r.headers["location"] == f"/runs/{run_id}"
        page = c.get(f"/runs/{run_id}").text
    assert Store().get_run(run_id).status == "cancelled"
    assert 'id="cancel-run"' not in page and "cancelled by bob: duplicate" in page


# comments on lines ------------------------------------------------------------------------


def comment_form(c: httpx.Client, run_id: str, **fields: str) -> httpx.Response:
    head = Store().get_run(run_id).head_sha or ""
    data = {"csrf": csrf(c, f"/runs/{run_id}"), "head": head, "file": "calc.py", **fields}
    return c.post(f"/runs/{run_id}/comments", data=data)


def test_comments_on_lines_reach_the_next_round_with_file_and_line_and_stay_shown(
    site: Site,
) -> None:
    run_id = site.submit("Fix add, to be commented on")
    site.wait(run_id, "awaiting_review")
    first = Store().get_run(run_id).head_sha
    with site.client("bob") as c:
        r = comment_form(
            c, run_id, side="new", line="2", text="use a guard here <script>x</script>"
        )
        assert r.status_code == 303 and "#c-" in r.headers["location"], r.text
    # The JSON API, with a bearer token: the same verb, the same checks.
    answer = httpx.post(
        f"{site.url}/api/runs/{run_id}/comments",
        json={
            "file": "calc.py",
            "side": "old",
            "line": 2,
            "text": "why was this -?",
            "head": first,
        },
        headers={"Authorization": f"Bearer {site.tokens['alice']}"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["author"] == "alice" and answer.json()["side"] == "old"
    with site.client("bob") as c:
        page = c.get(f"/runs/{run_id}").text
        # Under their lines, escaped; in the audit log.
        assert "use a guard here &lt;script&gt;x&lt;/script&gt;" in page
        assert "2 comment(s) on this head" in page
        assert "review: comment by alice on calc.py:2 (old)" in page
        # A line the change does not show takes no comment.
        r = comment_form(c, run_id, side="new", line="40", text="nowhere")
        assert r.status_code == 422 and "is not a line" in r.text
        token = csrf(c, f"/runs/{run_id}")
        # With comments on the head, the request needs no words of its own.
        r = c.post(
            f"/runs/{run_id}/request-changes", data={"csrf": token, "head": first, "message": ""}
        )
        assert r.status_code == 303, r.text
        page = c.get(f"/runs/{run_id}").text
    run = Store().get_run(run_id)
    assert run.status == "awaiting_review" and run.head_sha != first
    seen = (Path(run.workspace or "") / ".jackline" / "run" / "review-seen.md").read_text()
    assert "See the comments on lines below." in seen
    assert "- calc.py:2: use a guard here <script>x</script> (bob)" in seen
    assert "- calc.py:2 (old): why was this -? (alice)" in seen
    # The next reviewer: what round 2 changed since round 1 (kept by the commit step, so no
    # repository is read for it), and the comments made on round 1.
    kept = Store().get_artifact(run_id, f"changes/{run.head_sha}.diff") or b""
    assert b'+    """a + b"""' in kept and b"-    return a - b" not in kept
    assert "Changes since round 1" in page
    since = page.split('id="since"')[1].split('id="diff"')[0]
    assert "&#34;&#34;&#34;a + b&#34;&#34;&#34;" in since and '<tr class="d-del' not in since
    assert "2 comment(s) on earlier rounds" in page and f"{first[:10]}" in page
    kinds = [e["kind"] for e in site.project.events(run_id)]
    assert kinds.count("comment") == 2


def test_a_comment_is_refused_to_a_viewer_and_without_the_sessions_csrf_token(
    site: Site, reviewed: str
) -> None:
    with site.client("vera") as c:
        r = comment_form(c, reviewed, side="new", line="2", text="looks fine")
        assert r.status_code == 403 and "vera is a viewer" in r.text
    r = httpx.post(
        f"{site.url}/api/runs/{reviewed}/comments",
        json={"file": "calc.py", "side": "new", "line": 2, "text": "x"},
        headers={"Authorization": f"Bearer {site.tokens['vera']}"},
    )
    assert r.status_code == 403
    with site.client("bob") as c:
        data = {"file": "calc.py", "side": "new", "line": "2", "text": "x"}
        assert c.post(f"/runs/{reviewed}/comments", data=data).status_code == 403
        forged = c.post(f"/runs/{reviewed}/comments", data={**data, "csrf": "0" * 64})
        assert forged.status_code == 403 and "CSRF" in forged.text
        # The API with the session's cookie needs the token in its header too.
        r = c.post(f"/api/runs/{reviewed}/comments", json={**data, "line": 2})
        assert r.status_code == 403 and "CSRF" in r.text
    assert Store().comments(reviewed) == []
    assert "comment" not in [e["kind"] for e in site.project.events(reviewed)]
