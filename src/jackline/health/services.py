"""Services: one GET per `[[health.services]]`; up means the expected status within the timeout.

Redirects are not followed: the report says what the URL itself answers, so a health URL that
starts redirecting (to a login page, say) shows up instead of passing on the page it lands on.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from jackline.config import HealthService
from jackline.guard.redact import Redactor
from jackline.health.records import Item

BODY = 500
"""Characters of an unexpected answer's body shown in the detail."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def probe(service: HealthService) -> Item:
    opener = urllib.request.build_opener(_NoRedirect)
    started = time.monotonic()
    try:
        with opener.open(urllib.request.Request(service.url), timeout=service.timeout) as r:
            status, body = r.status, r.read(BODY)
    except urllib.error.HTTPError as e:  # any status but 2xx: an answer, judged below
        status, body = e.code, e.read(BODY)
    except (OSError, http.client.HTTPException) as e:
        return _down(service, f"{_failure(e, service.timeout)} ({service.url})")
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    if status == service.status:
        return Item("services", service.name, "ok", f"{status} in {took} from {service.url}")
    shown = Redactor.from_environment()(body.decode("utf-8", "replace")).strip()
    summary = f"answered {status}, expected {service.status} ({service.url}, {took})"
    return _down(service, summary, shown)


def _down(service: HealthService, summary: str, detail: str = "") -> Item:
    return Item("services", service.name, "attention", summary, detail)


def _failure(e: BaseException, timeout: float) -> str:
    """What happened, in the words an operator uses: refused, timed out, name not found."""
    reason: Any = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused: nothing listens there"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, socket.gaierror):
        return f"the host name does not resolve ({reason.strerror})"
    return f"request failed: {reason}"
