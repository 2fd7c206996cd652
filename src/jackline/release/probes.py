"""Probes: what a deploy is judged by. Each returns a `Probe` with its outcome and timing.

Three outcomes, after Argo Rollouts' analysis: `pass`, `fail` (the environment answered, and the
answer is wrong), and `inconclusive` (no answer to judge: a smoke request refused or timed out, a
log file that is not there). Inconclusive never counts as a pass: the release pauses for a
person. A health endpoint that never answers 200 within the ready timeout is a fail: the deploy
did not come up.

The probes know nothing of releases; `steps` fills in the release id and environment.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

from jackline.config import smoke_probe
from jackline.models import Probe

Outcome = Literal["pass", "fail", "inconclusive"]
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback \(most recent call last\):")
MAX_BODY = 1_000_000  # a smoke check reads at most this much of an answer


def make(name: str, outcome: Outcome, detail: str, started: float) -> Probe:
    """A probe of `name` begun at `started` (a `time.monotonic()`), timed until now."""
    return Probe("", "", name, outcome, detail, round(time.monotonic() - started, 3), time.time())


def _request(method: str, url: str, timeout: float) -> tuple[int, str]:
    """(status, body) of one request; raises OSError when nothing answers."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured URL
            return resp.status, resp.read(MAX_BODY).decode(errors="replace")
    except urllib.error.HTTPError as e:  # an answer, just not a 2xx one
        body = e.read(MAX_BODY).decode(errors="replace") if e.fp else ""
        return e.code, body


def wait_healthy(url: str, timeout: float, interval: float = 0.2) -> Probe:
    """Poll `url` until it answers 200, for at most `timeout` seconds."""
    started = time.monotonic()
    last = "no answer"
    while True:
        try:
            status, _ = _request("GET", url, timeout=min(5.0, max(timeout, 0.5)))
            if status == 200:
                return make("health", "pass", f"GET {url} answered 200", started)
            last = f"answered {status}"
        except (OSError, ValueError) as e:
            last = f"no answer ({_reason(e)})"
        if time.monotonic() - started >= timeout:
            detail = f"GET {url} did not answer 200 within {timeout:g}s; last: {last}"
            return make("health", "fail", detail, started)
        time.sleep(interval)


def wait_down(url: str, timeout: float, interval: float = 0.2) -> Probe:
    """Poll `url` until it stops answering 200 (nothing listens, or another answer): an
    environment taken down. Still 200 after `timeout` seconds is a fail."""
    started = time.monotonic()
    while True:
        try:
            status, _ = _request("GET", url, timeout=min(5.0, max(timeout, 0.5)))
        except (OSError, ValueError) as e:
            return make("down", "pass", f"GET {url}: {_reason(e)}", started)
        if status != 200:
            return make("down", "pass", f"GET {url} answered {status}", started)
        if time.monotonic() - started >= timeout:
            return make("down", "fail", f"GET {url} still answers 200 after {timeout:g}s", started)
        time.sleep(interval)


def smoke(base_url: str, line: str, timeout: float = 10) -> Probe:
    """One smoke check, `GET /path 200 contains 'text'`, against the environment's URL."""
    method, path, want, text = smoke_probe(line)
    started = time.monotonic()
    url = base_url.rstrip("/") + path
    try:
        status, body = _request(method, url, timeout)
    except (OSError, ValueError) as e:
        return make(f"smoke {line}", "inconclusive", f"{method} {url}: {_reason(e)}", started)
    if status != want:
        detail = f"{method} {url} answered {status}, expected {want}: {_snippet(body)}"
        return make(f"smoke {line}", "fail", detail, started)
    if text is not None and text not in body:
        detail = f"{method} {url} answered {status} without {text!r}: {_snippet(body)}"
        return make(f"smoke {line}", "fail", detail, started)
    return make(f"smoke {line}", "pass", f"{method} {url} answered {status}", started)


def log_offset(path: Path) -> int:
    """Where the log ends now: the scan after the deploy reads only what comes after."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def scan_log(path: Path, since_offset: int, name: str = "logs") -> Probe:
    """ERROR / CRITICAL lines and tracebacks written to `path` since `since_offset`."""
    started = time.monotonic()
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            # A log smaller than where we left it was rotated: all of it is new.
            f.seek(since_offset if since_offset <= size else 0)
            text = f.read().decode(errors="replace")
    except OSError as e:
        return make(name, "inconclusive", f"cannot read {path}: {_reason(e)}", started)
    bad = [line for line in text.splitlines() if ERROR_LINE.search(line)]
    if bad:
        shown = "\n".join(line[:200] for line in bad[:5])
        detail = f"{len(bad)} error line(s) in {path} since the deploy:\n{shown}"
        return make(name, "fail", detail, started)
    lines = text.count("\n")
    return make(name, "pass", f"no errors in {lines} new line(s) of {path}", started)


def verdict(probes: list[Probe]) -> Outcome:
    """Any fail fails; else any inconclusive is inconclusive; else pass."""
    outcomes = {p.outcome for p in probes}
    if "fail" in outcomes:
        return "fail"
    return "inconclusive" if "inconclusive" in outcomes else "pass"


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return str(e.reason)
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


def _snippet(body: str) -> str:
    text = " ".join(body.split())
    return text[:200] + ("…" if len(text) > 200 else "")
