"""The web page in a real browser: the system Chromium driven by Playwright against a real server
on loopback (see test_web.py). Sign in, start a run and watch it reach review live, approve it as
another person and see it merged; a viewer finds the buttons disabled and a direct POST refused.
Every page fits a phone's width and axe-core finds no serious or critical violation on it.
Screenshots of the main pages come from docs/screenshots.py."""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import git
from test_web import AGENT, Site, csrf, running_site

from jackline.store import Store

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Installed by .ci/axe-core.sh (npm, pinned), into the repository's gitignored .cache.
AXE = ROOT / ".cache" / "node" / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("browser"), AGENT) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def signed_in(browser: Any, site: Site, who: str, **options: Any) -> Any:
    """A fresh browser context (its own cookies; Playwright's `options`) signed in as `who`
    through the sign-in form."""
    page = browser.new_context(base_url=site.url, **options).new_page()
    page.goto("/runs")
    assert "/signin" in page.url
    page.fill("#token", site.tokens[who])
    page.click("button[type=submit]")
    page.wait_for_url("**/runs")
    return page


def test_a_viewer_finds_approve_disabled_and_a_direct_post_refused(
    browser: Any, site: Site
) -> None:
    from playwright.sync_api import expect

    run_id = site.submit("Fix add, for a viewer to look at")
    site.wait(run_id, "awaiting_review")
    vera = signed_in(browser, site, "vera")
    vera.goto(f"/runs/{run_id}")
    expect(vera.locator("#approve")).to_be_disabled()
    expect(vera.locator("#decide")).to_contain_text("deciding needs the reviewer role")
    token = vera.locator("input[name=csrf]").first.get_attribute("value")
    # The same request the button would send, with the session cookie, a valid form token and
    # the page's origin.
    answer = vera.request.post(
        f"/runs/{run_id}/approve", form={"csrf": token}, headers={"Origin": site.url}
    )
    assert answer.status == 403
    assert "vera is a viewer" in answer.text()
    assert Store().get_run(run_id).status == "awaiting_review"


ATTACK = """<!doctype html>
<title>staging</title>
<script>
// A page of another deployment on the same machine (another loopback port: the same site as
// Jackline, so the browser sends its SameSite=Strict cookie along). It cannot read Jackline's
// pages, so it knows no CSRF token; it tries what a page can send without one.
async function attack() {
  const jackline = "JACKLINE";
  const sent = [];
  for (const path of ["/api/releases/RELEASE/go", "/api/runs/RUN/approve"]) {
    // No content type (a Blob without one): a "simple" request, sent without a preflight.
    const body = new Blob([JSON.stringify({message: "lgtm"})]);
    for (const mode of ["no-cors", "cors"]) {
      try {
        await fetch(jackline + path, {method: "POST", mode, credentials: "include", body});
      } catch (e) {}
      sent.push(mode + " " + path);
    }
  }
  return sent;
}
</script>
<form id="go" method="post" action="JACKLINE/api/releases/RELEASE/go"></form>
<form id="approve" method="post" action="JACKLINE/runs/RUN/approve">
  <input name="csrf" value="0000000000000000000000000000000000000000000000000000000000000000">
</form>
"""


@contextmanager
def another_site(html: str) -> Iterator[str]:
    """A page served from another loopback port (a staging deployment, say): its URL."""
    page = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_loopback_port_cannot_decide_for_a_signed_in_reviewer(
    browser: Any, site: Site
) -> None:
    from playwright.sync_api import expect

    run_id = site.submit("Fix add, while a staging page is open")
    site.wait(run_id, "awaiting_review")
    with site.client("alice") as c:
        started = c.post("/releases", data={"csrf": csrf(c, "/releases")})
        assert started.status_code == 303, started.text
        release_id = started.headers["location"].rsplit("/", 1)[-1]
    assert Store().get_release(release_id).status == "awaiting_go"
    bob = signed_in(browser, site, "bob")
    html = ATTACK.replace("JACKLINE", site.url).replace("RELEASE", release_id)
    answers: list[tuple[str, int]] = []
    bob.on("response", lambda r: answers.append((r.url, r.status)))
    with another_site(html.replace("RUN", run_id)) as staging:
        bob.goto(staging)
        assert len(bob.evaluate("attack()")) == 4
        for form in ("go", "approve"):
            bob.goto(staging)
            with bob.expect_navigation() as sent:
                bob.evaluate(f"setTimeout(() => document.getElementById('{form}').submit())")
            assert sent.value.status == 403, sent.value.text()
    # Every request to Jackline was refused (the refusal is a page now: its stylesheet and
    # script load).
    sent_to = [(u, s) for u, s in answers if u.startswith(site.url + "/")]
    to_jackline = [s for u, s in sent_to if not u.startswith(site.url + "/static/")]
    assert to_jackline and set(to_jackline) == {403}, sent_to
    # Nothing was recorded: no go, no decision.
    assert Store().get_release(release_id).status == "awaiting_go"
    assert Store().get_run(run_id).status == "awaiting_review"
    kinds = [e["kind"] for e in site.project.events(run_id)]
    assert "decision" not in kinds
    # The page's own buttons and scripts still work: the JSON API with the token the page
    # gives its scripts, from the page's own origin (a page that does not reload itself when
    # the run moves, as the run's page does); the go button.
    bob.goto("/flags")
    answer = bob.evaluate(
        """async (run) => {
          const token = document.querySelector('meta[name="csrf-token"]').content;
          const r = await fetch(`/api/runs/${run}/reject`, {
            method: "POST",
            headers: {"content-type": "application/json", "x-csrf-token": token},
            body: JSON.stringify({message: "not this one"}),
          });
          return [r.status, (await r.json()).status];
        }""",
        run_id,
    )
    assert answer == [200, "rejected"]
    bob.goto(f"/releases/{release_id}")
    bob.click("#go")
    bob.click("#confirm-yes")
    expect(bob.locator(".bar [data-status]")).to_have_text("live", timeout=60_000)
    assert Store().get_release(release_id).go_by == "bob"


def test_a_reviewer_comments_on_two_lines_and_the_next_round_shows_its_changes_and_them(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    """At 1400 px a click on a line's number opens the comment form there; at 390 px too, and
    no file of the diff is wider than the phone (its code scrolls inside its box). Before the
    test that merges: its run starts from the main with the bug."""
    from playwright.sync_api import expect

    run_id = site.submit("Fix add, for comments in a browser")
    site.wait(run_id, "awaiting_review")
    bob = signed_in(browser, site, "bob")
    said = [(1400, "new", "use a guard here"), (390, "old", "why was this a minus?")]
    for width, side, text in said:
        bob.set_viewport_size({"width": width, "height": 900})
        bob.goto(f"/runs/{run_id}")
        bob.locator(f'#diff td.ln[data-side="{side}"][data-line="2"]').click()
        bob.locator("#diff tr.dask textarea").fill(text)
        with bob.expect_navigation():
            bob.locator("#diff tr.dask button[type=submit]").click()
        expect(bob.locator("#diff .dcomment", has_text=text)).to_be_visible()
    fits = bob.evaluate(
        "[...document.querySelectorAll('.dfile, .dtree')].every(e => e.scrollWidth <= e.clientWidth"
        " && e.getBoundingClientRect().right <= 390)"
    )
    assert fits
    bob.screenshot(path=str(tmp_path / "comments-390.png"), full_page=True)
    bob.fill("#message", "see my two comments")
    with bob.expect_navigation(timeout=60_000):
        bob.click("#request-changes")
    expect(bob.locator(".bar [data-status]")).to_have_text("awaiting review", timeout=60_000)
    run = Store().get_run(run_id)
    seen = (Path(run.workspace or "") / ".jackline" / "run" / "review-seen.md").read_text()
    assert "see my two comments" in seen and "- calc.py:2: use a guard here (bob)" in seen
    assert "- calc.py:2 (old): why was this a minus? (bob)" in seen
    for width in (1400, 390):
        bob.set_viewport_size({"width": width, "height": 900})
        bob.goto(f"/runs/{run_id}")
        expect(bob.locator("#since > summary")).to_contain_text("Changes since round 1")
        expect(bob.locator("#since tr.d-add")).to_contain_text('"""a + b"""')
        expect(bob.locator(".dearlier")).to_contain_text("2 comment(s) on earlier rounds")
        expect(bob.locator(".dearlier")).to_contain_text("why was this a minus?")
        bob.screenshot(path=str(tmp_path / f"round-2-{width}.png"), full_page=True)
    # The README's pictures of a review: the top of the page a reviewer decides from, on a
    # laptop and on a phone (JACKLINE_SCREENSHOTS=docs writes them there).
    out = Path(os.environ.get("JACKLINE_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    for name, size in (("web-review.png", (1400, 1000)), ("web-review-phone.png", (390, 844))):
        bob.set_viewport_size({"width": size[0], "height": size[1]})
        bob.goto(f"/runs/{run_id}")
        bob.screenshot(path=str(out.resolve() / name))


def test_a_failed_run_is_retried_from_its_page_with_another_agent_and_words(
    browser: Any, site: Site
) -> None:
    """Before the test that merges: on a main that is fixed, the idle agent's run would pass.
    Then the failed run is rejected from its page."""
    from playwright.sync_api import expect

    failed = site.submit("Fix add, by an agent that cannot", agent="idle")
    site.wait(failed, "failed", timeout=120)
    bob = signed_in(browser, site, "bob")
    for width in (390, 1400):
        bob.set_viewport_size({"width": width, "height": 900})
        bob.goto(f"/runs/{failed}")
        assert not bob.locator("#approve").count()  # an ended run takes no review
        expect(bob.locator("#retry-run")).to_be_enabled()
        fits(bob)
    bob.select_option("#retry-agent", "idle")
    bob.fill("#retry-message", "read calc.py before you change it")
    with bob.expect_navigation():
        bob.click("#retry-run")
    again = bob.url.rsplit("/", 1)[-1]
    assert again.startswith("run-") and again != failed
    expect(bob.locator("main")).to_contain_text("read calc.py before you change it")
    run = Store().get_run(again)
    assert (run.agent, run.submitted_by) == ("idle", "bob")
    assert f"This tries again {failed}" in run.task
    # The failed run itself is closed for good from its page, with a reason, once confirmed:
    # in a page of its own (the new run's page is live, and reloads itself as that run moves).
    page = bob.context.new_page()
    page.goto(f"/runs/{failed}")
    page.fill("#reject-message", "the idle agent will not do; retried with words")
    page.click("#reject")
    expect(page.locator("#confirm")).to_be_visible()
    with page.expect_navigation():
        page.click("#confirm-yes")
    closed = Store().get_run(failed)
    assert closed.status == "rejected", closed
    assert closed.reason.startswith("the idle agent will not do; retried with words (it had failed")
    expect(page.locator("main")).to_contain_text("rejected")
    site.wait(again, "failed", timeout=120)
    bob.context.close()


def test_a_run_reaches_review_live_and_another_reviewer_approves_it(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    alice = signed_in(browser, site, "alice")
    alice.click("details.new summary")
    alice.fill("#task", "Fix add so that add(2, 3) == 5")
    alice.click("text=Start run")
    alice.wait_for_url("**/runs/run-*")
    run_id = alice.url.rsplit("/", 1)[-1]
    # The page opened while the run was still working: it follows the run by itself.
    assert alice.locator("#log").get_attribute("data-live")
    expect(alice.locator(".bar [data-status]")).to_have_text("awaiting review", timeout=60_000)
    expect(alice.locator("#notes")).to_contain_text("Assumed add means +.")  # in the summary
    expect(alice.locator("#handoff")).to_contain_text("After 1 round every check passes")
    expect(alice.locator("#diff tr.d-add").last).to_contain_text("return a + b")
    expect(alice.locator("#log li")).not_to_have_count(0)

    bob = signed_in(browser, site, "bob")
    bob.goto(f"/runs/{run_id}")
    bob.click("#approve")
    bob.click("#confirm-yes")
    expect(bob.locator(".bar [data-status]")).to_have_text("merged", timeout=60_000)
    expect(bob.locator("#log")).to_contain_text("review: approve by bob")
    assert Store().get_run(run_id).status == "merged"
    # Alice's page follows the run too and reloads itself on the merge: let it, before she
    # navigates on (a navigation racing that reload is aborted).
    expect(alice.locator(".bar [data-status]")).to_have_text("merged", timeout=60_000)

    release_id = release_and_go(alice, bob)
    out = Path(os.environ.get("JACKLINE_SCREENSHOTS") or tmp_path / "shots")
    written = screenshots().capture(bob, site.url, out.resolve(), run_id, release_id)
    assert all(p.stat().st_size > 10_000 for p in written)


def release_and_go(starter: Any, other: Any) -> str:
    """Alice starts a release (it waits for go before production); Bob says go."""
    from playwright.sync_api import expect

    starter.goto("/releases")
    starter.click("text=Release main")
    starter.wait_for_url("**/releases/rel-*")
    release_id = starter.url.rsplit("/", 1)[-1]
    expect(starter.locator(".bar [data-status]")).to_have_text("awaiting go")
    other.goto(f"/releases/{release_id}")
    other.click("#go")
    sha = str(Store().get_release(release_id).sha)
    expect(other.locator("#confirm")).to_contain_text(f"Go: take commit {sha[:10]} on")
    other.click("#confirm-yes")
    expect(other.locator(".bar [data-status]")).to_have_text("live", timeout=60_000)
    return release_id


def screenshots() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", DOCS / "screenshots.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# phones and accessibility -------------------------------------------------------------------
# Before the last test: its merge of the gated agent's change leaves that agent nothing to do.

PAGES = ("signin", "runs", "run", "releases", "release", "flags", "health")
PHONE = 390


@pytest.fixture(scope="module")
def paths(site: Site) -> dict[str, str]:
    """Each page to look at, with something on it: a run awaiting review with a block-level
    finding (the `gated` agent) and a long task, and a release that went live (its probes)."""
    task = (
        "Fix add so that add(2, 3) == 5\n\nThe acceptance test is test_calc.py::test_add; the "
        "report is at https://example.com/tickets/a-very-long-path/that-does-not-break/4711"
    )
    run_id = site.submit(task, agent="gated")
    site.wait(run_id, "awaiting_review")
    with site.client("alice") as c:
        started = c.post("/releases", data={"csrf": csrf(c, "/releases")})
        assert started.status_code == 303, started.text
        release = started.headers["location"]
    with site.client("bob") as c:
        assert c.post(f"{release}/go", data={"csrf": csrf(c, release)}).status_code == 303
    assert Store().get_release(release.rsplit("/", 1)[-1]).status == "live"
    return {
        **{name: f"/{name}" for name in PAGES},
        "run": f"/runs/{run_id}",
        "release": release,
        "flags": "/flags?env=staging",
    }


@pytest.fixture(scope="module", params=(1400, PHONE), ids=("laptop", "phone"))
def reviewer(request: pytest.FixtureRequest, browser: Any, site: Site) -> Iterator[Any]:
    """Bob, signed in on a screen `request.param` px wide. The page's policy allows no inline
    script; Playwright injects axe-core as one, so this context bypasses the policy."""
    width = request.param
    page = signed_in(
        browser, site, "bob", viewport={"width": width, "height": 860}, bypass_csp=True
    )
    yield page
    page.context.close()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_the_screen_and_axe_finds_nothing_serious(
    reviewer: Any, paths: dict[str, str], name: str
) -> None:
    width = reviewer.viewport_size["width"]
    reviewer.goto(paths[name])
    # What is folded (the audit log, a diff's files, a new run's form) is looked at unfolded.
    reviewer.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    wide = reviewer.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, (
        f"{paths[name]} is {wide} px wide on a {width} px screen; sticking out: "
        + ", ".join(reviewer.evaluate(STICKING_OUT))
    )
    serious = axe_violations(reviewer)
    assert not serious, f"axe-core on {paths[name]} at {width} px:\n" + "\n".join(serious)


# The outermost elements whose right edge is past the screen's: what to make narrower.
STICKING_OUT = """() => {
  const out = [...document.querySelectorAll("body *")].filter(
    (e) => e.getBoundingClientRect().right > window.innerWidth + 0.5);
  const outer = out.filter((e) => !out.includes(e.parentElement));
  return outer.slice(0, 8).map((e) => `${e.tagName.toLowerCase()}.${e.className}`
    + ` (${Math.round(e.getBoundingClientRect().right)} px)`);
}"""


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page: a line each, with the first
    places it is found and why at the first of them."""
    if not AXE.exists():
        reason = f"axe-core is not installed at {AXE}: bash .ci/axe-core.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run()).violations")
    return [
        f"{v['impact']} {v['id']} ({v['help']}) at {len(v['nodes'])} place(s): "
        + "; ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:5])
        + f"\n    {v['nodes'][0]['failureSummary']}\n    {v['nodes'][0]['html'][:160]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def fits(page: Any) -> None:
    width = page.viewport_size["width"]
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide on a {width} px screen"


def test_the_runs_list_filters_by_status_and_agent_and_says_who_acts_next(
    reviewer: Any, paths: dict[str, str]
) -> None:
    from playwright.sync_api import expect

    gated = paths["run"].rsplit("/", 1)[-1]
    reviewer.goto("/runs")
    reviewer.select_option("#status", "awaiting_review")
    reviewer.select_option("#agent", "gated")
    with reviewer.expect_navigation():
        reviewer.click(".filter button[type=submit]")
    assert "status=awaiting_review" in reviewer.url and "agent=gated" in reviewer.url
    expect(reviewer.locator("#status")).to_have_value("awaiting_review")  # kept as chosen
    shown = reviewer.locator("#runs tbody tr")
    assert set(shown.locator("[data-status]").all_inner_texts()) == {"awaiting review"}
    assert set(shown.locator("td:nth-child(4)").all_inner_texts()) == {"gated"}
    row = shown.filter(has=reviewer.locator(f'a[href="/runs/{gated}"]'))
    # Its block-level finding waits for the owner; the cells say so, spend included.
    expect(row.locator("td.waiting")).to_have_text("an owner: olga")
    expect(row).to_contain_text("1 block")
    expect(row).to_contain_text("$0.00")
    fits(reviewer)


def test_a_release_page_says_what_it_carries_and_who_wrote_it(
    reviewer: Any, site: Site, paths: dict[str, str]
) -> None:
    """After the release `paths` made live: a person's commit on main, then a release, which
    carries it under her name; then go, so the next release starts from it."""
    from playwright.sync_api import expect

    subject = f"Carol's note, at {reviewer.viewport_size['width']} px"
    repo = site.project.repo
    git(repo, "-c", "user.name=Carol", "-c", "user.email=c@example.com", "commit", "-q",
        "--allow-empty", "-m", subject)  # fmt: skip
    sha = git(repo, "rev-parse", "HEAD").strip()
    with site.client("alice") as c:
        started = c.post("/releases", data={"csrf": csrf(c, "/releases")})
        assert started.status_code == 303, started.text
        release = started.headers["location"]
    reviewer.goto(release)
    row = reviewer.locator("#carries tbody tr", has_text=subject)
    expect(row.locator("td").first).to_have_text(sha[:10])
    expect(row.locator("td").nth(2)).to_have_text("Carol")  # a person, not an agent's run
    expect(reviewer.locator("#carries tbody tr").first).to_contain_text(subject)  # newest first
    fits(reviewer)
    with site.client("bob") as c:
        assert c.post(f"{release}/go", data={"csrf": csrf(c, release)}).status_code == 303
    assert Store().get_release(release.rsplit("/", 1)[-1]).status == "live"


def test_the_decision_is_on_the_first_screen_and_approve_merges_only_once_the_head_is_confirmed(
    browser: Any, site: Site
) -> None:
    """A run with a block-level finding (the `gated` agent edits a CI file), decided by olga,
    the owner, on a 1400 px laptop screen. Last in the module: its merge fixes main, where
    the default agent's edit would no longer apply."""
    from playwright.sync_api import expect

    run_id = site.submit("Fix add, and touch CI", agent="gated")
    site.wait(run_id, "awaiting_review")
    head = str(Store().get_run(run_id).head_sha)[:10]
    olga = signed_in(browser, site, "olga")
    olga.set_viewport_size({"width": 1400, "height": 900})
    olga.goto(f"/runs/{run_id}")
    expect(olga.locator("#findings")).to_contain_text("scope.gate")
    box = olga.locator("#decide").bounding_box()
    assert box is not None and box["y"] < 900, box
    assert olga.locator("#approve").bounding_box()["y"] < 900  # type: ignore[index]
    olga.click("#approve")
    expect(olga.locator("#confirm")).to_be_visible()
    expect(olga.locator("#confirm-text")).to_have_text(
        f"Approve head {head} and merge it into main?"
    )
    olga.click("#confirm-no")
    expect(olga.locator("#confirm")).to_be_hidden()
    assert Store().get_run(run_id).status == "awaiting_review"
    olga.click("#approve")
    olga.click("#confirm-yes")
    expect(olga.locator(".bar [data-status]")).to_have_text("merged", timeout=60_000)
    assert Store().get_run(run_id).status == "merged"
