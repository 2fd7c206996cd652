"""A scripted model provider on loopback: real coding agents (Claude Code, Codex, Aider,
mini-swe-agent) talk to it through their base-URL settings as if it were the provider's API, and
it answers with scripted turns. No model, no network, no money; the programs themselves are real.

    server = ModelServer([
        Turn(tools=[Tool("Bash", {"command": "pytest -q"})]),   # the agent runs the tests
        Turn(tools=[Tool("Edit", {...})]),                       # then edits
        Turn(text="Fixed the threshold."),                       # then says it is done
    ])
    with server:                     # listens on 127.0.0.1:<free port>
        env = {"ANTHROPIC_BASE_URL": server.url}
        ...
    server.requests                  # every request body, for assertions (the rules it was sent)

Each API is a `Dialect` (`anthropic.py`: the Messages API; `openai_chat.py`: Chat Completions;
`openai_responses.py`: the Responses API), plugged in by the paths it serves. A dialect decides
which scripted turn a request is for from the conversation the request carries (how many turns
of the model it already holds), so a retried request gets the same answer, and a side request a
program makes on its own (a title for the session, say) gets a short plain answer and does not
use up a turn.

`Turn.tools` are given in the program's own tool vocabulary (Claude Code's `Bash`, `Edit`;
Codex's `shell`, `apply_patch`); programs without tool calling (Aider, mini-swe-agent) get
`Turn.text`, holding their edit blocks or commands as text.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


@dataclass(frozen=True)
class Tool:
    name: str
    input: dict[str, Any]
    id: str = ""
    """Filled in by the dialect when empty."""


@dataclass(frozen=True)
class Turn:
    text: str = ""
    tools: list[Tool] = field(default_factory=list)
    input_tokens: int = 1200
    output_tokens: int = 150
    model: str = ""
    """The model the answer names; default: the one the request asked for."""


@dataclass
class Response:
    status: int = 200
    body: Any = None
    """A JSON-able body, or None when `events` stream instead."""
    events: Iterable[tuple[str | None, Any]] = ()
    """Server-sent events: (event name or None, JSON-able data); the string "[DONE]" is sent as is."""
    headers: dict[str, str] = field(default_factory=dict)


class Dialect(Protocol):
    paths: tuple[str, ...]

    def respond(self, server: ModelServer, path: str, body: dict[str, Any]) -> Response: ...


class ModelServer:
    def __init__(self, turns: list[Turn], dialects: list[Dialect] | None = None) -> None:
        self.turns = turns
        self.requests: list[dict[str, Any]] = []
        """Every request: {"path", "headers", "body"}."""
        self.lock = threading.Lock()
        if dialects is None:
            dialects = default_dialects()
        self.routes = {p: d for d in dialects for p in d.paths}
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first (`with server:`)"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def turn(self, index: int) -> Turn | None:
        """The scripted turn at `index`, or None when the script is used up."""
        return self.turns[index] if 0 <= index < len(self.turns) else None

    def __enter__(self) -> ModelServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


ROUND = re.compile(r"This is round (\d+)\b")
"""How a brief names its round (`context.render_brief`): each round is a fresh conversation."""


def round_start(turns: list[Turn], round_no: int) -> int:
    """The index of round `round_no`'s first turn: after the `round_no - 1` turns that end one
    (a turn without tool calls ends its round)."""
    ended = 0
    for i, turn in enumerate(turns):
        if ended == round_no - 1:
            return i
        if not turn.tools:
            ended += 1
    return len(turns) if round_no > 1 else 0


def default_dialects() -> list[Dialect]:
    """Every dialect this package has."""
    # Here, not at the top: each dialect's module imports this one's records.
    from jackline.testing import anthropic, openai_chat, openai_responses

    return [anthropic.Messages(), openai_responses.Responses(), openai_chat.ChatCompletions()]


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(Response(400, {"error": {"message": "the body is not JSON"}}))
                return
            path = self.path.split("?", 1)[0]
            with server.lock:
                server.requests.append({"path": path, "headers": dict(self.headers), "body": body})
            dialect = _route(server, path)
            if dialect is None:
                message = f"the scripted model server does not serve {path}"
                self._send(Response(404, {"error": {"type": "not_found", "message": message}}))
                return
            self._send(dialect.respond(server, path, body))

        def do_GET(self) -> None:  # noqa: N802 - model lists and health checks
            path = self.path.split("?", 1)[0]
            if path.rstrip("/").endswith("/models"):
                self._send(Response(200, {"object": "list", "data": [], "has_more": False}))
                return
            self._send(Response(404, {"error": {"message": f"nothing at {path}"}}))

        def do_HEAD(self) -> None:  # noqa: N802 - connectivity checks
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, r: Response) -> None:
            if r.body is not None or not r.events:
                data = json.dumps(r.body if r.body is not None else {}).encode()
                self.send_response(r.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in r.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(r.status)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.end_headers()
            for chunk in _sse(r.events):
                self.wfile.write(chunk)
                self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _route(server: ModelServer, path: str) -> Dialect | None:
    for suffix, dialect in server.routes.items():
        if path == suffix or path.endswith(suffix):
            return dialect
    return None


def _sse(events: Iterable[tuple[str | None, Any]]) -> Iterator[bytes]:
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {text}\n\n".encode()
