"""The web page in a real browser: the system Chromium driven by Playwright against a real server
on loopback (see test_web.py). Sign in, start a run and watch it reach review live, approve it as
another person and see it merged; a viewer finds the buttons disabled and a direct POST refused.
Screenshots of the main pages come from docs/screenshots.py."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_web import FIX, Site, running_site

from jackline.store import Store
from jackline.testing import ScriptedAgent

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[1] / "docs"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("browser"), ScriptedAgent([FIX])) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def signed_in(browser: Any, site: Site, who: str) -> Any:
    """A fresh browser context (its own cookies) signed in as `who` through the sign-in form."""
    page = browser.new_context(base_url=site.url).new_page()
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
    # The same request the button would send, with the session cookie and a valid form token.
    answer = vera.request.post(f"/runs/{run_id}/approve", form={"csrf": token})
    assert answer.status == 403
    assert "vera is a viewer" in answer.text()
    assert Store().get_run(run_id).status == "awaiting_review"


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
    expect(alice.locator("#handoff")).to_contain_text("Assumed add means +.")
    expect(alice.locator("#diff .gi").last).to_contain_text("return a + b")
    expect(alice.locator("#log li")).not_to_have_count(0)

    bob = signed_in(browser, site, "bob")
    bob.goto(f"/runs/{run_id}")
    bob.click("#approve")
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
    expect(other.locator(".bar [data-status]")).to_have_text("live", timeout=60_000)
    return release_id


def screenshots() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", DOCS / "screenshots.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
