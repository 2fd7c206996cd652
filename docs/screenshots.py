"""Screenshots of the web page for the README, taken by tests/test_browser.py with a signed-in
Playwright page against a real server: `JACKLINE_SCREENSHOTS=docs pytest tests/test_browser.py`
writes them here (without the variable they go to the test's temporary folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 1280, 860


def capture(page: Any, base_url: str, out: Path, run_id: str, release_id: str) -> list[Path]:
    """Save web-runs.png, web-run.png (handoff, diff), web-releases.png, web-release.png,
    web-flags.png and web-health.png into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    shots = [
        ("web-runs.png", "/runs", False),
        ("web-run.png", f"/runs/{run_id}", True),
        ("web-releases.png", "/releases", False),
        ("web-release.png", f"/releases/{release_id}", False),
        ("web-flags.png", "/flags", False),
        ("web-health.png", "/health", False),
    ]
    written = []
    for name, path, full in shots:
        page.goto(base_url + path)
        page.wait_for_load_state("load")
        target = out / name
        page.screenshot(path=str(target), full_page=full)
        written.append(target)
    return written
