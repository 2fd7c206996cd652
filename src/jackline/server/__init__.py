"""`jackline serve`: one ASGI app (FastAPI under uvicorn) for every surface but the CLI.

    /api/...           the JSON API (token auth), the same verbs as the CLI; /docs, /openapi.json
    /                  the web page (sign in with a token; a session cookie; CSRF and Origin
                       checked on every request that changes something)
    /flags/{env}       flag values for an environment, for `jackline.flags.OpenFeatureProvider`
    /metrics           Prometheus text: runs by status, rounds, check durations, pool size
    /slack/events      the Slack app (signed requests only)
    /github/webhook    GitHub's webhook (HMAC-verified)

Each surface is a router in its own module (`create_app` includes them in order); each parses its
input, calls one `api` function, and renders the answer. Who is asking is settled once, in
`deps.principal`, and every route says which action it needs (`deps.allowed("decide")`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from jackline import __version__


@dataclass(frozen=True)
class Settings:
    repos: tuple[Path, ...] = ()
    """The repositories this server serves (their runs, releases, flags, health)."""
    urls: tuple[str, ...] = ()
    """Repositories by URL this server takes runs for (`--repo URL`); each worker resolves one
    to a clone of its own. Releases, flags and health are served for `repos` only."""
    base_url: str = "http://127.0.0.1:8700"
    """The server's address as people reach it (links in Slack and pull requests)."""
    secure_cookies: bool = False
    """Mark the session cookie `Secure` (serve behind HTTPS)."""
    origins: tuple[str, ...] = ()
    """Origins the web page is served from besides the one each request names in `Host` (a
    reverse proxy's public `https://host`, if it rewrites `Host`): a state-changing request with
    the session cookie must come from one of them (`deps.check_origin`)."""
    extra: dict[str, object] = field(default_factory=dict)


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Jackline",
        version=__version__,
        description="A production harness for coding agents: runs, reviews, releases, flags.",
    )
    app.state.settings = settings or Settings()
    # Here, not at the top: importing the package for `Settings` loads no router.
    from jackline.server import api_routes, deps, diffpage, github, metrics, slack, web
    from jackline.surfaces import register_notifiers

    threading.Thread(target=diffpage.warm, name="warm", daemon=True).start()

    register_notifiers()  # the runs this server drives tell Slack and GitHub
    deps.install_error_handlers(app, web.error_page)
    for module in (api_routes, metrics, web, slack, github):
        app.include_router(module.router)
    return app
