"""A recording Slack on loopback: the Web API the app posts to, and what Slack itself sends.

`SlackServer` answers the Web API methods the Jackline app uses (`chat.postMessage`,
`chat.update`, `chat.postEphemeral`, `views.open`, `views.update`, `views.push`, `auth.test`)
with the shapes Slack documents, and records every call; it also takes the POSTs an app makes to
a `response_url`. Point the app's client at `server.api_url` (`[surfaces.slack] api_url`).

    with SlackServer(token="xoxb-test") as slack:
        ...                                     # the app posts; then:
        call = slack.wait_for("chat.postMessage")
        call.body["blocks"]

The request builders (`slash_command`, `block_actions`, `view_submission`) make the bodies Slack
sends to an app, and `signed` signs one exactly as Slack does (`v0:{timestamp}:{body}`, HMAC-SHA256
with the signing secret), so a test can talk to the real endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

BOT_USER = "U0JACKLINE"
BOT_ID = "B0JACKLINE"
TEAM_ID = "T0JACKLINE"


@dataclass(frozen=True)
class Call:
    """One request the server received: a Web API method, or `respond` for a response_url."""

    method: str
    body: dict[str, Any]
    token: str | None = None
    path: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    """What the server answered (a posted message's `ts` is in it)."""


@dataclass
class SlackServer:
    token: str | None = None
    """When set, Web API calls without this bearer token get `invalid_auth`, as from Slack."""
    delay: float = 0.0
    """Seconds each request waits before it is read and recorded: a slow Slack, for a test
    that a caller waits for its announcement (a call cut short is never recorded)."""
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Posted messages by (channel, ts), as `chat.update` left them."""
    _lock: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _ts: itertools.count[int] = field(
        default_factory=lambda: itertools.count(100), init=False, repr=False
    )
    _httpd: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first (`with server:`)"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        """The Web API's base URL, for `[surfaces.slack] api_url`."""
        return f"{self.url}/api/"

    def response_url(self, name: str = "r") -> str:
        """A response_url to put in a request: what the app POSTs there is recorded as
        `respond`."""
        return f"{self.url}/respond/{name}"

    def __enter__(self) -> SlackServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(
        self,
        method: str,
        where: Callable[[Call], bool] = lambda _: True,
        timeout: float = 60,
        since: int = 0,
    ) -> Call:
        """The first call to `method` that `where` accepts, waiting for it up to `timeout`;
        `since` skips the calls before that index (`mark()` taken before acting)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for call in self.calls[since:]:
                    if call.method == method and where(call):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(c.method for c in self.calls) or "nothing"
                    raise TimeoutError(f"no {method} call in {timeout}s; the server saw: {seen}")
                self._lock.wait(left)

    def mark(self) -> int:
        """How many calls came so far: pass it as `wait_for(since=...)` to see only newer ones."""
        with self._lock:
            return len(self.calls)

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            self._lock.notify_all()

    def answer(self, call: Call) -> dict[str, Any]:
        """The Web API's answer to `call`, in Slack's documented shapes."""
        if self.token is not None and call.method != "respond":
            if not call.token:
                return {"ok": False, "error": "not_authed"}
            if not hmac.compare_digest(call.token, self.token):
                return {"ok": False, "error": "invalid_auth"}
        method = METHODS.get(call.method)
        if method is None:
            return {"ok": False, "error": "unknown_method"}
        with self._lock:
            return method(self, call.body)

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"


def _post_message(server: SlackServer, body: dict[str, Any]) -> dict[str, Any]:
    channel = body.get("channel")
    if not channel:
        return {"ok": False, "error": "channel_not_found"}
    if not body.get("text") and not body.get("blocks"):
        return {"ok": False, "error": "no_text"}
    ts = server.next_ts()
    message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, **_content(body)}
    server.messages[(channel, ts)] = message
    return {"ok": True, "channel": channel, "ts": ts, "message": message}


def _update(server: SlackServer, body: dict[str, Any]) -> dict[str, Any]:
    key = (str(body.get("channel")), str(body.get("ts")))
    if key not in server.messages:
        return {"ok": False, "error": "message_not_found"}
    server.messages[key] = {**server.messages[key], **_content(body)}
    return {"ok": True, "channel": key[0], "ts": key[1], "text": body.get("text", ""),
            "message": server.messages[key]}  # fmt: skip


def _ephemeral(server: SlackServer, body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("channel") or not body.get("user"):
        return {"ok": False, "error": "invalid_arguments"}
    return {"ok": True, "message_ts": server.next_ts()}


def _view(server: SlackServer, body: dict[str, Any]) -> dict[str, Any]:
    view = body.get("view")
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return {"ok": False, "error": "invalid_arguments"}
    return {"ok": True, "view": {"id": f"V{server.next_ts().replace('.', '')}", **view}}


def _auth_test(server: SlackServer, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "ok": True,
        "url": "https://jackline-test.slack.com/",
        "team": "Jackline test",
        "user": "jackline",
        "team_id": TEAM_ID,
        "user_id": BOT_USER,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


def _content(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("text", "blocks", "thread_ts") if k in body}


METHODS: dict[str, Callable[[SlackServer, dict[str, Any]], dict[str, Any]]] = {
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _ephemeral,
    "views.open": _view,
    "views.update": _view,
    "views.push": _view,
    "auth.test": _auth_test,
    "respond": lambda server, body: {"ok": True},
}


def _handler(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            time.sleep(server.delay)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            path = self.path.split("?", 1)[0]
            method = "respond" if path.startswith("/respond/") else path.rsplit("/", 1)[-1]
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else None
            call = Call(method, _body(raw, self.headers.get("Content-Type", "")), token, path)
            call = replace(call, answer=server.answer(call))
            server.record(call)
            if method == "respond":  # Slack answers a response_url with a plain "ok"
                self._send(b"ok", "text/plain")
                return
            self._send(json.dumps(call.answer).encode(), "application/json")

        def _send(self, data: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _body(raw: str, content_type: str) -> dict[str, Any]:
    """A JSON body, or a form whose JSON-valued fields (blocks, view) are decoded."""
    if "json" in content_type:
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            return {"_unparsed": raw}
        return data if isinstance(data, dict) else {"_unparsed": raw}
    form: dict[str, Any] = {k: v[-1] for k, v in parse_qs(raw).items()}
    for key in ("blocks", "attachments", "view"):
        if isinstance(form.get(key), str):
            try:
                form[key] = json.loads(form[key])
            except ValueError:
                pass
    return form


# what Slack sends to an app ---------------------------------------------------------------


def signed(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: its timestamp and its v0 signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def slash_command(
    text: str,
    user_id: str,
    response_url: str,
    command: str = "/jackline",
    channel_id: str = "C0JACKLINE",
) -> str:
    """The form body of a slash command."""
    return urlencode(
        {
            "token": "unused-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "jackline-test",
            "channel_id": channel_id,
            "channel_name": "jackline",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0JACKLINE",
            "response_url": response_url,
            "trigger_id": f"trigger-{time.monotonic_ns()}",
        }
    )


def block_actions(
    action_id: str,
    value: str,
    user_id: str,
    message: dict[str, Any],
    channel_id: str,
    response_url: str,
) -> str:
    """The form body of a button click on `message` (as `chat.postMessage` answered it)."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "jackline-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0JACKLINE",
        "token": "unused-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "channel": {"id": channel_id, "name": "jackline"},
        "message": message,
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "decide",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission(view: dict[str, Any], user_id: str, values: dict[str, str]) -> str:
    """The form body of a modal's submission: `view` as `views.open` was given it, and the
    text typed into each plain-text input, by its block id."""
    state = {
        block_id: {_input_action(view, block_id): {"type": "plain_text_input", "value": text}}
        for block_id, text in values.items()
    }
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "jackline-test"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0JACKLINE",
        "token": "unused-verification-token",
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "view": {
            "id": "V0JACKLINE",
            "team_id": TEAM_ID,
            "type": view["type"],
            "callback_id": view.get("callback_id", ""),
            "private_metadata": view.get("private_metadata", ""),
            "blocks": view.get("blocks", []),
            "state": {"values": state},
            "hash": "1",
        },
    }
    return urlencode({"payload": json.dumps(payload)})


def _input_action(view: dict[str, Any], block_id: str) -> str:
    for block in view.get("blocks", []):
        if block.get("block_id") == block_id and "element" in block:
            return str(block["element"].get("action_id", "value"))
    raise KeyError(f"the view has no input block {block_id!r}")
