"""`POST /slack/events`: Slack's requests, handed to the bolt app (`jackline.surfaces.slack`).

The app is built from the server's repository's `[surfaces.slack]` and kept until that section's
secrets or Web API address change, so a rotated signing secret takes effect on the next request
without a restart. Bolt does the checking (signature, timestamp) and the dispatching; it runs in
a worker thread, since its middleware and the acknowledgement are synchronous.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi import APIRouter, Request, Response
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool

from jackline.surfaces import slack

router = APIRouter(tags=["slack"])
_lock = threading.Lock()


@router.post("/slack/events", include_in_schema=False)
async def slack_events(request: Request) -> Response:
    body = await request.body()
    bolt = await run_in_threadpool(_app, request)
    answer = await run_in_threadpool(bolt.dispatch, to_bolt_request(request, body))
    return to_starlette_response(answer)


def _app(request: Request) -> App:
    """The bolt app for the server's Slack repository, rebuilt when its wiring changed."""
    settings = request.app.state.settings
    repos = settings.repos or (Path.cwd(),)
    repo = slack.slack_repo(repos)
    wired = slack.wiring(repo)
    with _lock:
        kept = getattr(request.app.state, "slack_app", None)
        if kept is None or kept[0] != (repo, wired):
            kept = ((repo, wired), slack.build_app(repo, wired, settings.base_url))
            request.app.state.slack_app = kept
        app: App = kept[1]
        return app
