"""Running the server: `jackline serve` binds, prints where it listens (and, on a database with no
admin token yet, an admin token, once), starts this process's workers, and serves until stopped.

The server is also a worker. Runs submitted through it run in its own threads (DBOS workflows of
this process); it keeps the repositories' schedules (`[pool] refresh_every`, `[health] every`);
and it takes over runs and releases a dead process left half done, in a background thread, so
a long interrupted run does not hold up the port. In team mode it is none of that: it enqueues
runs for the workers (`jackline worker`), which keep the schedules and take over the dead's work.

It binds 127.0.0.1 unless told otherwise: tokens and session cookies travel in plain HTTP, so a
public address needs `--public`, said on purpose, and HTTPS in front (a reverse proxy).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jackline import api, auth
from jackline import config as cfg
from jackline import git as g
from jackline import repos as repositories
from jackline.errors import Refused
from jackline.store import Store

log = logging.getLogger("jackline.serve")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Listening:
    url: str
    repos: tuple[Path, ...]
    urls: tuple[str, ...]
    admin_token: str | None
    """A new admin token's secret: shown once, on a database that had no admin token."""
    schedules: tuple[dict[str, str], ...]


def check_host(host: str, public: bool) -> None:
    """Refuse a non-loopback address unless `public`: tokens would cross the network in clear."""
    if public or _loopback(host):
        return
    raise Refused(
        f"{host} is not a loopback address: tokens and session cookies would travel over the "
        "network in plain HTTP. Put the server behind HTTPS (a reverse proxy) and pass "
        "--public, or keep the default --host 127.0.0.1"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now, so a port in use is an error before anything starts
    (and `--port 0` picks a free port whose number we can print)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise Refused(
            f"cannot listen on {host}:{port}: {e.strerror}; pick another --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def prepare(
    repos: Sequence[Path | str], sock: socket.socket, base_url: str | None = None
) -> Listening:
    """Everything before serving: the repositories checked, the admin token, the workers."""
    urls = tuple(str(r) for r in repos if repositories.is_url(r))
    roots = tuple(g.toplevel(Path(r)).resolve() for r in repos if not repositories.is_url(r))
    for root in (*roots, *(repositories.synced(u) for u in urls)):
        cfg.load(root)  # a broken jackline.toml is an error now, not on the first request
    store = Store()
    try:
        token = auth.first_admin(store)
    finally:
        store.close()
    schedules: tuple[dict[str, str], ...] = ()
    if not api.team_mode():  # in team mode the workers keep them, and take the dead's over
        schedules = tuple(api.worker(list(roots)))  # launches the engine in this process
        threading.Thread(target=_take_over, name="jackline-resume", daemon=True).start()
    url = base_url or url_of(sock)
    return Listening(url, roots, urls, token, schedules)


def _take_over() -> None:
    """Drive on runs and releases a dead process left half done (api.resume's semantics)."""
    try:
        resumed = api.resume()
    except Exception:  # noqa: BLE001 - a failed takeover must not take the server down
        log.exception("taking over interrupted runs failed")
        return
    for run in resumed:
        log.info("took over %s: now %s", run.id, run.status)


def check_origin(origin: str) -> str:
    """`--origin` as a browser sends it: scheme and host (and port), nothing after."""
    from urllib.parse import urlsplit

    from jackline.errors import Refused

    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise Refused(
            f"--origin {origin!r}: give the scheme and host browsers use, such as "
            "https://jackline.example.com (no path)"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def run(
    host: str,
    port: int,
    repos: Sequence[Path | str],
    public: bool = False,
    say: Say = print,
    origins: tuple[str, ...] = (),
) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM)."""
    import uvicorn

    from jackline.server import Settings, create_app

    check_host(host, public)
    api.check_audit_key(say)
    sock = bind(host, port)
    listening = prepare(repos, sock)
    settings = Settings(
        repos=listening.repos, urls=listening.urls, base_url=listening.url, origins=origins
    )
    # No access log: at level warning it is never shown, and each request still paid for it.
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    _announce(listening, say)
    server.run(sockets=[sock])


def _announce(listening: Listening, say: Say) -> None:
    served = [*map(str, listening.repos), *(repositories.parse(u).shown for u in listening.urls)]
    say(f"Jackline is serving {', '.join(served)}")
    say(f"Listening on {listening.url}  (API: {listening.url}/api/, docs: {listening.url}/docs)")
    if listening.admin_token:
        say(f"Admin token (shown once; keep it): {listening.admin_token}")
        say("Make tokens for people with `jackline token create NAME --role reviewer`.")
    for loop in listening.schedules:
        say(f"Scheduled: {loop['kind']} for {loop['repo']} ({loop['state']})")
    say("Working as a worker too. Ctrl-C or SIGTERM stops.")
