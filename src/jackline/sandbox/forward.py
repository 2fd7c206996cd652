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

It runs before every sandboxed command that may use the network, and the command starts only
once it listens, so it starts fast: standard library only, and only the modules built into the
interpreter or already loaded when it starts (`_socket`, `_signal`, `_thread`, `posix`: `socket`,
`signal` and `threading` import `enum`, `functools` and `collections`, three times what the
forwarder's own work costs). `wrap` runs it as `python -I -S -c LAUNCH`, which imports this file
from its folder, so the compiled copy the harness left in `__pycache__` is used rather than the
file compiled anew each time (`-S` skips site-packages, where an editable install's path to
`jackline` lives, so `-m` would not find it; `-I` keeps the sandbox's `PYTHON*` variables from
changing it, and the working directory, the workspace, off `sys.path`).
"""

import _socket
import _thread
import posix
import sys
import time

# `signal`'s own functions, without its enums: `_signal` is loaded when the interpreter starts.
# mypy knows it only as `signal` (it takes any name `TYPE_CHECKING` as true; nothing imports
# `typing` here).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
else:
    import _signal

PORT = 3128
"""The usual port: the sandbox's network namespace is its own, so no other run or host
service can hold it."""
DEFAULT_NO_PROXY = "localhost,127.0.0.1,::1"
FORWARDED = {
    _signal.SIGTERM,
    _signal.SIGINT,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
    _signal.SIGWINCH,
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


LAUNCH = (
    "import sys; sys.path.append(sys.argv[1]); import forward; sys.exit(forward.main(sys.argv[2:]))"
)
"""What `python -I -S -c` runs: this file imported from its folder, appended to `sys.path` after
the standard library's, so no name here can shadow one of its modules."""
Socket = _socket.socket
"""A socket as the forwarder holds it (`socket.socket` is one too)."""


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
    `serve` (descriptor, port) pairs); the sandbox must see `sys.executable` and this folder."""
    import os  # the harness's, loaded already: the forwarder itself does without

    folder = os.path.dirname(os.path.abspath(__file__))
    options = [f"--no-proxy={no_proxy}"] if no_proxy != DEFAULT_NO_PROXY else []
    options += [f"--port={p}:{sock}" for p, sock in sorted((ports or {}).items())]
    options += [f"--serve={fd}:{p}" for fd, p in sorted((serve or {}).items())]
    head = [sys.executable, "-I", "-S", "-c", LAUNCH, folder]
    return [*head, str(port), socket_in_sandbox, *options, "--", *argv]


def proxy_env(env: dict[str, str], port: int, no_proxy: str) -> dict[str, str]:
    """`env` with every proxy variable pointing at the forwarder."""
    url = f"http://127.0.0.1:{port}"
    out = dict(env)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        out[name] = out[name.upper()] = url
    out["no_proxy"] = out["NO_PROXY"] = no_proxy
    return out


def environ() -> dict[str, str]:
    """The environment as `os.environ` reads it, without importing `os`."""
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    return {
        k.decode(encoding, errors): v.decode(encoding, errors) for k, v in posix.environ.items()
    }


def main(args: list[str]) -> int:
    try:
        port, path, no_proxy, plain, served, command = _arguments(args)
    except ValueError as e:
        print(f"jackline forward: {e}\n{USAGE}", file=sys.stderr)
        return 2
    routes = {**plain, **({port: path} if port else {})}
    listeners: list[tuple[Socket, Callable[[Socket], None]]] = []
    for p, target in routes.items():
        try:
            listeners.append((_listen(p), _connecting(target)))
        except OSError as e:
            print(f"jackline forward: cannot listen on 127.0.0.1:{p}: {e}", file=sys.stderr)
            return 125
    for fd, p in served.items():
        try:
            listeners.append((_inherited(fd), _reaching(p)))
        except OSError as e:
            print(f"jackline forward: no listening socket on descriptor {fd}: {e}", file=sys.stderr)
            return 125
    # Blocked before any thread starts, so they all inherit it and only `sigwaitinfo` sees them.
    _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARDED | {_signal.SIGCHLD})
    for listener, serve in listeners:
        _thread.start_new_thread(_accept, (listener, serve))
    env = proxy_env(environ(), port, no_proxy) if port else environ()
    try:
        pid = posix.posix_spawnp(
            command[0],
            command,
            env,
            setsigmask=(),
            # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec.
            setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
        )
    except OSError as e:
        print(f"jackline forward: cannot run {command[0]}: {e}", file=sys.stderr)
        return 127 if isinstance(e, FileNotFoundError) else 126
    return _wait(pid)


def _listen(port: int) -> Socket:
    listener = Socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def _inherited(fd: int) -> Socket:
    """The unix socket the harness made for the service; not passed on to the command, which
    has no use for it."""
    listener = Socket(fileno=fd)
    if listener.family != _socket.AF_UNIX or listener.type != _socket.SOCK_STREAM:
        raise OSError(f"descriptor {fd} is not a unix stream socket")
    posix.set_inheritable(fd, False)
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
        signo = _signal.sigwaitinfo(FORWARDED | {_signal.SIGCHLD}).si_signo
        if signo != _signal.SIGCHLD:
            try:
                posix.kill(pid, signo)
            except ProcessLookupError:
                pass
            continue
        done, status = posix.waitpid(pid, posix.WNOHANG)
        if done:
            code = posix.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def _accept(listener: Socket, serve: "Callable[[Socket], None]") -> None:
    while True:
        try:
            # `socket.socket.accept` is this, made a socket (typeshed leaves it out).
            client = Socket(fileno=listener._accept()[0])  # type: ignore[attr-defined]
        except OSError:  # out of file descriptors, say: the command may close some
            time.sleep(0.05)
            continue
        _thread.start_new_thread(serve, (client,))


def _connecting(path: str) -> "Callable[[Socket], None]":
    return lambda client: _connect(client, path)


def _reaching(port: int) -> "Callable[[Socket], None]":
    return lambda client: _reach(client, port)


def _connect(client: Socket, path: str) -> None:
    """A connection on the sandbox's loopback, to the harness's unix socket for it."""
    try:
        client.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        upstream = Socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            upstream.close()
            try:
                client.sendall(UNREACHABLE)
            except OSError:
                pass
            return
        try:
            join(client, upstream)
        finally:
            upstream.close()
    finally:
        client.close()


def _reach(client: Socket, port: int) -> None:
    """A connection from the harness's relay, to the service on this sandbox's loopback."""
    try:
        upstream = Socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            upstream.settimeout(10)
            upstream.connect(("127.0.0.1", port))
        except OSError:
            upstream.close()
            return  # nothing listens (yet): the relay sees the connection close, no `SERVED`
        try:
            upstream.settimeout(None)
            upstream.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            client.sendall(SERVED)
            join(client, upstream)
        except OSError:
            return
        finally:
            upstream.close()
    finally:
        client.close()


def join(a: Socket, b: Socket) -> None:
    """Copy both ways until both directions are done."""
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(_pipe_then_release, (b, a, done))
    pipe(a, b)
    done.acquire()


def _pipe_then_release(source: Socket, sink: Socket, done: _thread.LockType) -> None:
    try:
        pipe(source, sink)
    finally:
        done.release()


def pipe(source: Socket, sink: Socket) -> None:
    """Copy until end of file, then pass the half-close on; on an error, end both directions."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(_socket.SHUT_WR)
    except OSError:
        for s in (source, sink):
            try:
                s.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
