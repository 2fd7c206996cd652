"""Inside the sandbox: a proxy address on its loopback, forwarded to the harness's proxy socket.

    python -I -S forward.py PORT SOCKET [--no-proxy=HOSTS] [--port=P:SOCK ...] [--serve=FD:P ...]
                            -- CMD ARGS...

listens on `127.0.0.1:PORT` (the sandbox's own loopback: bubblewrap brings `lo` up in a new
network namespace), copies each connection to the unix socket `SOCKET` (bound into the sandbox,
served by `proxy.Proxy`), and runs `CMD` with `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and their
lower-case forms pointing there. PORT 0 means no proxy. Each `--port=P:SOCK` also listens on
`127.0.0.1:P` and copies to `SOCK`, with no proxy variables: that is how the workspace's own
services (`[services.NAME]`, relayed outside by `services.Relay`) appear on the sandbox's
loopback.

`--serve=FD:P` is the other end, inside a service's own sandbox (whose network is its loopback and
nothing else): it accepts on the listening unix socket FD it inherited from the harness and copies
each connection to `127.0.0.1:P` there, first answering `SERVED` (one byte) once it reached the
service, or closing if nothing listens. The byte tells the harness's relay and its readiness probe
"the service answered" apart from "the forwarder answered"; the client past the relay never sees
it. The socket is not passed on to the command.

It exits with the command's exit code (128 + N if signal N ended it), forwards SIGTERM,
SIGINT, SIGHUP, SIGQUIT, SIGUSR1/2 and SIGWINCH to it, and stops when it ends.

It checks nothing: the proxy outside decides. It is an allowlist for clients that honour the proxy
variables; a program that ignores them has no network, the safe failure.

It runs before every sandboxed command, so it starts fast: standard library only, run as a file
(`-S` skips site-packages, where an editable install's path to `jackline` lives, so `-m` would not
find it) with `-I` so the sandbox's `PYTHON*` variables cannot change it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial

PORT = 3128
"""The usual port: the sandbox's network namespace is its own, so no other run or host
service can hold it."""
DEFAULT_NO_PROXY = "localhost,127.0.0.1,::1"
FORWARDED = {
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
}
USAGE = (
    "usage: forward.py PORT SOCKET [--no-proxy=HOSTS] [--port=P:SOCK ...] [--serve=FD:P ...] "
    "-- CMD [ARGS...]"
)
SERVED = b"+"
"""What `--serve` answers first on a connection once it reached the service."""
_DOWN = b"jackline: the network proxy is not running"
UNREACHABLE = b"HTTP/1.1 502 Bad Gateway (%s)\r\nContent-Type: text/plain\r\n" % _DOWN
UNREACHABLE += b"Content-Length: %d\r\nConnection: close\r\n\r\n%s\n" % (len(_DOWN) + 1, _DOWN)


def wrap(
    argv: list[str],
    port: int,
    socket_in_sandbox: str,
    *,
    no_proxy: str = DEFAULT_NO_PROXY,
    ports: dict[int, str] | None = None,
    serve: dict[int, int] | None = None,
) -> list[str]:
    """`argv` run behind the forwarder (`port` 0: no proxy, only the plain `ports` and the
    `serve` (descriptor, port) pairs); the sandbox must see `sys.executable` and this file."""
    me = os.path.abspath(__file__)
    options = [f"--no-proxy={no_proxy}"] if no_proxy != DEFAULT_NO_PROXY else []
    options += [f"--port={p}:{sock}" for p, sock in sorted((ports or {}).items())]
    options += [f"--serve={fd}:{p}" for fd, p in sorted((serve or {}).items())]
    return [sys.executable, "-I", "-S", me, str(port), socket_in_sandbox, *options, "--", *argv]


def proxy_env(env: dict[str, str], port: int, no_proxy: str) -> dict[str, str]:
    """`env` with every proxy variable pointing at the forwarder."""
    url = f"http://127.0.0.1:{port}"
    out = dict(env)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        out[name] = out[name.upper()] = url
    out["no_proxy"] = out["NO_PROXY"] = no_proxy
    return out


def main(args: list[str]) -> int:
    try:
        port, path, no_proxy, plain, served, command = _arguments(args)
    except ValueError as e:
        print(f"jackline forward: {e}\n{USAGE}", file=sys.stderr)
        return 2
    routes = {**plain, **({port: path} if port else {})}
    listeners: list[tuple[socket.socket, Callable[[socket.socket], None]]] = []
    for p in routes:
        try:
            listeners.append((_listen(p), partial(_connect, path=routes[p])))
        except OSError as e:
            print(f"jackline forward: cannot listen on 127.0.0.1:{p}: {e}", file=sys.stderr)
            return 125
    for fd, p in served.items():
        try:
            listeners.append((_inherited(fd), partial(_reach, port=p)))
        except OSError as e:
            print(f"jackline forward: no listening socket on descriptor {fd}: {e}", file=sys.stderr)
            return 125
    # Blocked before any thread starts, so they all inherit it and only `sigwaitinfo` sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED | {signal.SIGCHLD})
    for listener, serve in listeners:
        threading.Thread(target=_accept, args=(listener, serve), daemon=True).start()
    env = proxy_env(dict(os.environ), port, no_proxy) if port else dict(os.environ)
    try:
        pid = os.posix_spawnp(
            command[0],
            command,
            env,
            setsigmask=(),
            # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec.
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    except OSError as e:
        print(f"jackline forward: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127 if isinstance(e, FileNotFoundError) else 126
    return _wait(pid)


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def _inherited(fd: int) -> socket.socket:
    """The unix socket the harness made for the service; not passed on to the command, which
    has no use for it."""
    listener = socket.socket(fileno=fd)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
        raise OSError(f"descriptor {fd} is not a unix stream socket")
    os.set_inheritable(fd, False)
    return listener


def _arguments(
    args: list[str],
) -> tuple[int, str, str, dict[int, str], dict[int, int], list[str]]:
    if "--" not in args:
        raise ValueError("missing '--' before the command")
    split = args.index("--")
    head, command = args[:split], args[split + 1 :]
    no_proxy = DEFAULT_NO_PROXY
    plain: dict[int, str] = {}
    served: dict[int, int] = {}
    for option in [h for h in head[2:] if h.startswith("--")]:
        head.remove(option)
        name, _, value = option.partition("=")
        first, _, second = value.partition(":")
        if name == "--no-proxy":
            no_proxy = value
        elif name == "--port" and _port(first) and second:
            plain[int(first)] = second
        elif name == "--serve" and first.isdigit() and _port(second):
            served[int(first)] = int(second)
        else:
            raise ValueError(f"unknown option {option!r}")
    if len(head) != 2 or not (head[0] == "0" or _port(head[0])) or not command:
        raise ValueError("expected PORT SOCKET -- CMD, with PORT from 1 to 65535 (0: no proxy)")
    return int(head[0]), head[1], no_proxy, plain, served, command


def _port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def _wait(pid: int) -> int:
    """Forward signals to the command until it ends; its exit code, or 128 + the signal."""
    while True:
        signo = signal.sigwaitinfo(FORWARDED | {signal.SIGCHLD}).si_signo
        if signo != signal.SIGCHLD:
            try:
                os.kill(pid, signo)
            except ProcessLookupError:
                pass
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def _accept(listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # out of file descriptors, say: the command may close some
            time.sleep(0.05)
            continue
        threading.Thread(target=serve, args=(client,), daemon=True).start()


def _connect(client: socket.socket, path: str) -> None:
    """A connection on the sandbox's loopback, to the harness's unix socket for it."""
    with client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with upstream:
            try:
                upstream.connect(path)
            except OSError:
                try:
                    client.sendall(UNREACHABLE)
                except OSError:
                    pass
                return
            join(client, upstream)


def _reach(client: socket.socket, port: int) -> None:
    """A connection from the harness's relay, to the service on this sandbox's loopback."""
    with client:
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            return  # nothing listens (yet): the relay sees the connection close, no `SERVED`
        with upstream:
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                client.sendall(SERVED)
            except OSError:
                return
            join(client, upstream)


def join(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both directions are done."""
    back = threading.Thread(target=pipe, args=(b, a), daemon=True)
    back.start()
    pipe(a, b)
    back.join()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until end of file, then pass the half-close on; on an error, end both directions."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
