"""The network allowlist: an HTTP proxy on a unix socket that reaches only the hosts the config names.

A sandbox with its own network namespace has no route out, and cannot reach the host's loopback
either; a unix socket file bound into it can be reached. `forward.py`, inside the sandbox, turns
that socket into `http://127.0.0.1:PORT` and points the proxy variables at it.

The proxy speaks `CONNECT host:port` (HTTPS and anything else over TCP: bytes are tunnelled, not
inspected) and plain-HTTP absolute-form requests (`GET http://host/path`, forwarded with
`Connection: close`). What is checked is the host the client names, never what it resolves to:
`evil.example` is refused even if it resolves to an allowed address, and an IP literal is refused
unless that address is listed. A denied request gets `403` with one line saying what was refused
and what is allowed; an unreachable host gets `502`. Every request is reported to `on_event`.

What it is not: a firewall. It is an allowlist for well-behaved clients that honour the proxy
variables (pip, uv, npm, cargo, go, git, curl, requests, urllib). A program that ignores them has
no network at all, which is the safe failure. Nor does it check what an allowed name resolves to:
listing a host trusts its DNS, and `127.0.0.1` or `localhost` means the host's loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""Seconds to reach an allowed host before answering 502."""
HEAD_TIMEOUT = 30.0
"""Seconds a client has to send its request line and headers."""
MAX_HEAD = 64 * 1024
HINT = "[sandbox] allow_network in jackline.toml"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Headers that describe the client's hop to the proxy, not the request.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te"}


@dataclass(frozen=True)
class Rule:
    """One `allow_network` entry: a host (`*.` for any subdomain), an address, maybe a port."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return not _is_ip(host) and host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and self.port is not None else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_rule(entry: str) -> Rule:
    """An `allow_network` entry as a rule; `ValueError` says what is wrong with it."""
    text = entry.strip().lower()
    if "/" in text or "@" in text:
        raise ValueError(f"{entry!r} is not a host: write the name alone, as in 'pypi.org'")
    host, port = _split_port(text, required=False)
    wildcard = host.startswith("*.")
    name = normal_host(host[2:] if wildcard else host)
    if name is None or (wildcard and _is_ip(name)):
        raise ValueError(
            f"{entry!r} is not a host name, '*.domain' or IP address (optionally with ':port')"
        )
    return Rule(f"*.{name}" if wildcard else name, port)


def parse_allow(entries: list[str]) -> list[Rule]:
    """All entries as rules; the `ValueError` names the first bad one (for config validation)."""
    return [parse_rule(e) for e in entries]


def allowed(host: str, port: int, allow: list[str]) -> bool:
    """Whether `allow` lets a client reach `host:port`; case and a trailing dot do not matter."""
    name = normal_host(host)
    return name is not None and any(r.matches(name, port) for r in parse_allow(allow))


def normal_host(host: str) -> str | None:
    """The host lower-cased, without brackets or trailing dot, addresses in canonical form;
    `None` if it is neither a host name nor an address (`127.1` and `0x7f.1` are neither)."""
    host = host.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.fullmatch(host) or host.rsplit(".", 1)[-1].isdigit():
        return None
    return host


def no_proxy(allow: list[str]) -> str:
    """`NO_PROXY` for the sandbox: its own loopback names, except those `allow` sends to the
    host's loopback through the proxy."""
    rules = parse_allow(allow)
    return ",".join(n for n in LOOPBACK_NAMES if not any(r.host == n for r in rules))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_port(text: str, required: bool) -> tuple[str, int | None]:
    """`host:port`, `[v6]:port`, or (when the port is optional) `host`, `v6`, `[v6]`."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: unclosed '['")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None
    if port_text is None:
        if required:
            raise ValueError(f"{text!r}: a port is required")
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class _Request:
    method: str
    host: str
    port: int
    forward: bytes | None
    """The head to send upstream (plain HTTP); `None` for a CONNECT tunnel."""


class Proxy:
    """The proxy, serving on `socket_path` from a thread of its own while started.

    `on_event` gets one dict per request: `kind` ("network"), `method`, `host`, `port`,
    `allowed`, `reason`, and `error` when an allowed host could not be reached. It is called on
    the proxy's thread, so it should be quick (append to a list, put on a queue).
    """

    def __init__(
        self,
        socket_path: Path,
        allow: list[str],
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.allow = list(allow)
        self.rules = parse_allow(self.allow)
        self.on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # asyncio holds tasks weakly, and a stream's protocol drops its handler once the client
        # hangs up: without this, a request still waiting on its host could be collected mid-way.
        self._handlers: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Listen, and return once the socket accepts connections (or raise `OSError`)."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failed), name="jackline-proxy", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failed:
            self._thread.join()
            self._thread = None
            raise failed[0]

    def stop(self) -> None:
        """Close the socket and every open connection; return once the thread has ended."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> Proxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failed: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            server = loop.run_until_complete(
                asyncio.start_unix_server(
                    self._accepted, path=str(self.socket_path), limit=MAX_HEAD
                )
            )
            # A sandbox may run under another user id; the directory bound into it is the guard.
            os.chmod(self.socket_path, 0o666)
        except OSError as e:
            message = f"cannot listen on {self.socket_path}: {e.strerror or e}"
            failed.append(OSError(e.errno, message) if e.errno else OSError(message))
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(_cancel_all())
            loop.close()

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except _Refusal as r:
            await _reply(writer, r.status, r.reason, r.message)
        except (OSError, EOFError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client went away, sent too much, or too slowly: nobody to tell
        except Exception:
            log.exception("network proxy: unexpected error")
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        request = _parse(head)
        where = f"[{request.host}]" if ":" in request.host else request.host
        where += f":{request.port}"
        event: dict[str, Any] = {"kind": "network", "method": request.method}
        event |= {"host": request.host, "port": request.port}
        rule = next((r for r in self.rules if r.matches(request.host, request.port)), None)
        if rule is None:
            allowed_list = ", ".join(map(str, self.rules)) or "none"
            message = f"jackline: network access to {where} is not allowed; allowed: {allowed_list} ({HINT})"
            self._report(event | {"allowed": False, "reason": "not in allow_network"})
            raise _Refusal(403, "Forbidden", message)
        event |= {"allowed": True, "reason": f"matches {rule}"}
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(request.host, request.port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as e:
            why = _why(e)
            self._report(event | {"error": why})
            raise _Refusal(502, "Bad Gateway", f"jackline: cannot reach {where}: {why}") from None
        self._report(event)
        up_reader, up_writer = upstream
        try:
            if request.forward is None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(request.forward)
            await _relay(reader, writer, up_reader, up_writer, tunnel=request.forward is None)
        finally:
            up_writer.close()

    def _report(self, event: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("network proxy: on_event failed")


async def _cancel_all() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)  # the transports the handlers closed go on the next turn


def _why(e: OSError) -> str:
    """asyncio's connect errors read "Connect call failed ('1.2.3.4', 443)": keep the errno's words."""
    if isinstance(e, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:.0f}s"
    if e.errno and e.errno > 0:
        return os.strerror(e.errno)
    return e.strerror or str(e)  # a failed name lookup: "Name or service not known"


def _parse(head: bytes) -> _Request:
    """The request line and headers: where to connect, and for plain HTTP what to send there."""
    lines = head.decode("latin-1").split("\r\n")[:-2]
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _Refusal(400, "Bad Request", "jackline: not an HTTP proxy request")
    method, target, version = parts
    try:
        if method.upper() == "CONNECT":
            host, port = _split_port(target, required=True)
            return _Request("CONNECT", _checked_host(host), port or 0, None)
        url = urlsplit(target)
        if url.scheme.lower() != "http" or not url.hostname:
            raise ValueError("send an absolute http:// URL, or CONNECT for https")
        host, port = _checked_host(url.hostname), url.port or 80
    except ValueError as e:
        raise _Refusal(400, "Bad Request", f"jackline: bad proxy request {target!r}: {e}") from None
    path = url.path or "/"
    path += f"?{url.query}" if url.query else ""
    headers = [h for h in lines[1:] if h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
    if not any(h.lower().startswith("host:") for h in headers):
        headers.insert(0, f"Host: {url.netloc.rpartition('@')[2]}")
    out = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
    return _Request(method, host, port, "\r\n".join(out).encode("latin-1"))


def _checked_host(host: str) -> str:
    name = normal_host(host)
    if name is None:
        raise ValueError(f"{host!r} is not a host name or IP address")
    return name


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str, message: str) -> None:
    """Answer and close. The message goes in the reason phrase too: clients that report a failed
    CONNECT (pip, git, urllib) show the status line, not the body."""
    body = f"{message}\n".encode()
    head = (
        f"HTTP/1.1 {status} {reason} ({_CONTROL.sub('?', message)})\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        writer.write(head.encode("latin-1", errors="replace") + body)
        await writer.drain()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    tunnel: bool,
) -> None:
    """Copy both ways. A tunnel lasts until both sides are done or one fails; a forwarded request
    until the host has answered and closed."""
    upward = asyncio.ensure_future(_pipe(reader, up_writer))
    downward = asyncio.ensure_future(_pipe(up_reader, writer))
    try:
        if tunnel:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_EXCEPTION)
        else:
            await asyncio.wait({downward})
    finally:
        for task in (upward, downward):
            task.cancel()
        await asyncio.gather(upward, downward, return_exceptions=True)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof():
        sink.write_eof()
