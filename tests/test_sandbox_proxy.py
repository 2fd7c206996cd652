"""The network allowlist: a real proxy on a unix socket, real servers on loopback, real bubblewrap."""

from __future__ import annotations

import gc
import http.server
import logging
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jackline.sandbox import forward, harness_paths
from jackline.sandbox.proxy import Proxy, allowed, no_proxy, parse_rule

PORT = forward.PORT
needs_bwrap = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed"
)


class _Page(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:
        _Page.seen.append((self.path, dict(self.headers)))
        body = b"hello from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def _serve(server: socketserver.TCPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.socket.getsockname()[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def web() -> Iterator[int]:
    _Page.seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    server.daemon_threads = True
    yield from _serve(server)


@pytest.fixture
def echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    yield from _serve(server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    return _free_port()


Events = list[dict[str, Any]]


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[[list[str]], tuple[Proxy, Events]]]:
    started: list[Proxy] = []

    def start(allow: list[str]) -> tuple[Proxy, Events]:
        events: Events = []
        (tmp_path / "net").mkdir(exist_ok=True)
        proxy = Proxy(tmp_path / "net" / "proxy.sock", allow, on_event=events.append)
        proxy.start()
        started.append(proxy)
        return proxy, events

    yield start
    for proxy in started:
        proxy.stop()


def _sandboxed(
    proxy: Proxy | None, code: str, timeout: float = 10
) -> subprocess.CompletedProcess[str]:
    """`code` run by Python in bubblewrap with no network, behind the forwarder if there is a proxy."""
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    box = ["bwrap", "--die-with-parent", "--unshare-all", "--ro-bind", "/", "/"]
    box += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in harness_paths():  # this checkout may itself live under /tmp
        box += ["--ro-bind", str(path), str(path)]
    if proxy is not None:
        sockets = str(proxy.socket_path.parent)
        box += ["--bind", sockets, sockets]
        argv = forward.wrap(argv, PORT, str(proxy.socket_path), no_proxy=no_proxy(proxy.allow))
    return subprocess.run(
        [*box, "--", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def _proxy_request(proxy: Proxy, request: bytes) -> tuple[socket.socket, bytes]:
    """Send `request` straight to the proxy's socket; the connection and the reply's head."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    conn.connect(str(proxy.socket_path))
    conn.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(1)
        if not chunk:
            break
        head += chunk
    return conn, head


def _read_all(conn: socket.socket) -> bytes:
    out = b""
    while chunk := conn.recv(65536):
        out += chunk
    return out


# The allow-list -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "allow", "expected"),
    [
        ("pypi.org", 443, ["pypi.org"], True),
        ("PyPI.org.", 443, ["pypi.org"], True),
        ("pypi.org", 443, ["PYPI.ORG"], True),
        ("evil.com", 443, ["pypi.org"], False),
        ("pypi.org.evil.com", 443, ["pypi.org"], False),
        ("api.github.com", 443, ["*.github.com"], True),
        ("a.b.github.com", 443, ["*.github.com"], True),
        ("github.com", 443, ["*.github.com"], False),
        ("github.com", 443, ["*.github.com", "github.com"], True),
        ("evilgithub.com", 443, ["*.github.com"], False),
        ("pypi.org", 443, ["pypi.org:443"], True),
        ("pypi.org", 80, ["pypi.org:443"], False),
        ("api.github.com", 22, ["*.github.com:443"], False),
        ("127.0.0.1", 8080, ["127.0.0.1"], True),
        ("127.0.0.1", 8080, ["127.0.0.1:8080"], True),
        ("127.0.0.1", 8081, ["127.0.0.1:8080"], False),
        ("127.0.0.2", 80, ["127.0.0.1"], False),
        ("127.1", 80, ["127.0.0.1"], False),
        ("2130706433", 80, ["127.0.0.1"], False),
        ("localhost", 80, ["127.0.0.1"], False),
        ("10.0.0.5", 443, ["*.github.com"], False),
        ("::1", 80, ["::1"], True),
        ("[0:0:0:0:0:0:0:1]", 80, ["[::1]:80"], True),
        ("::1", 81, ["[::1]:80"], False),
        ("pypi.org", 443, [], False),
    ],
)
def test_allow_list_matches_names_wildcards_addresses_and_ports(
    host: str, port: int, allow: list[str], expected: bool
) -> None:
    assert allowed(host, port, allow) is expected


@pytest.mark.parametrize(
    "entry", ["https://pypi.org", "user@pypi.org", "*.10.0.0.1", "foo.*.com", "pypi.org:99999", ""]
)
def test_allow_list_entry_that_is_not_a_host_is_rejected_with_the_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="is not a|port"):
        parse_rule(entry)


def test_no_proxy_keeps_the_sandbox_loopback_unless_the_host_loopback_is_allowed() -> None:
    assert no_proxy(["pypi.org"]) == "localhost,127.0.0.1,::1"
    assert no_proxy(["pypi.org", "127.0.0.1:8000"]) == "localhost,::1"


# The proxy, spoken to directly -----------------------------------------------------------------


def test_connect_tunnels_bytes_both_ways_to_an_allowed_host(start_proxy: Any, echo: int) -> None:
    proxy, events = start_proxy(["127.0.0.1"])
    conn, head = _proxy_request(proxy, f"CONNECT 127.0.0.1:{echo} HTTP/1.1\r\n\r\n".encode())
    with conn:
        assert head.startswith(b"HTTP/1.1 200")
        conn.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.shutdown(socket.SHUT_WR)  # the half-close reaches the server, which then closes
        assert _read_all(conn) == b""
    assert events == [
        {
            "kind": "network",
            "method": "CONNECT",
            "host": "127.0.0.1",
            "port": echo,
            "allowed": True,
            "reason": "matches 127.0.0.1",
        }
    ]


def test_connect_to_a_host_not_listed_is_refused_with_what_is_allowed(start_proxy: Any) -> None:
    proxy, events = start_proxy(["pypi.org", "*.github.com"])
    conn, head = _proxy_request(proxy, b"CONNECT Evil.Example:443 HTTP/1.1\r\n\r\n")
    with conn:
        body = _read_all(conn).decode()
    message = (
        "jackline: network access to evil.example:443 is not allowed; allowed: pypi.org, "
        "*.github.com ([sandbox] allow_network in jackline.toml)"
    )
    assert head.startswith(b"HTTP/1.1 403 Forbidden")
    assert body == message + "\n"
    assert events == [
        {
            "kind": "network",
            "method": "CONNECT",
            "host": "evil.example",
            "port": 443,
            "allowed": False,
            "reason": "not in allow_network",
        }
    ]


def test_name_resolving_to_an_allowed_address_is_refused(start_proxy: Any, echo: int) -> None:
    proxy, events = start_proxy(["127.0.0.1"])
    conn, head = _proxy_request(proxy, f"CONNECT localhost:{echo} HTTP/1.1\r\n\r\n".encode())
    conn.close()
    assert head.startswith(b"HTTP/1.1 403")
    assert events[0]["allowed"] is False


def test_unusual_spelling_of_an_address_is_a_bad_request(start_proxy: Any, echo: int) -> None:
    proxy, events = start_proxy(["127.0.0.1"])
    conn, head = _proxy_request(proxy, f"CONNECT 127.1:{echo} HTTP/1.1\r\n\r\n".encode())
    conn.close()
    assert head.startswith(b"HTTP/1.1 400")
    assert events == []


def test_unreachable_allowed_host_answers_502_fast(start_proxy: Any, closed_port: int) -> None:
    proxy, events = start_proxy(["127.0.0.1"])
    started = time.monotonic()
    conn, head = _proxy_request(proxy, f"CONNECT 127.0.0.1:{closed_port} HTTP/1.1\r\n\r\n".encode())
    conn.close()
    assert time.monotonic() - started < 1
    assert head.startswith(
        f"HTTP/1.1 502 Bad Gateway (jackline: cannot reach 127.0.0.1:{closed_port}".encode()
    )
    assert events[0]["allowed"] is True and events[0]["error"] == "Connection refused"


def test_plain_http_is_forwarded_without_proxy_headers(start_proxy: Any, web: int) -> None:
    proxy, _ = start_proxy(["127.0.0.1"])
    request = (
        f"GET http://127.0.0.1:{web}/page?q=1 HTTP/1.1\r\nHost: 127.0.0.1:{web}\r\n"
        "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nX-Kept: yes\r\n\r\n"
    )
    conn, head = _proxy_request(proxy, request.encode())
    with conn:
        body = _read_all(conn)
    assert head.startswith(b"HTTP/1.0 200") and body == b"hello from the host\n"
    path, headers = _Page.seen[0]
    assert path == "/page?q=1"
    assert headers["X-Kept"] == "yes" and headers["Connection"] == "close"
    assert "Proxy-Connection" not in headers and "Proxy-Authorization" not in headers


def test_request_outlives_a_client_that_hung_up(
    start_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio holds tasks weakly: a handler left waiting on its host must not be collected."""
    answered = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as slow:

        def answer_late() -> None:
            conn, _ = slow.accept()
            with conn:
                conn.recv(65536)
                time.sleep(0.2)
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nlate")
            answered.set()

        thread = threading.Thread(target=answer_late, daemon=True)
        thread.start()
        proxy, _ = start_proxy(["127.0.0.1"])
        port = slow.getsockname()[1]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(proxy.socket_path))
            client.sendall(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n".encode())
        time.sleep(0.1)
        gc.collect()
        assert answered.wait(2)
        thread.join()
    deadline = time.monotonic() + 2
    while proxy._handlers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not proxy._handlers
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_stop_ends_open_tunnels_and_removes_the_socket(start_proxy: Any, echo: int) -> None:
    proxy, _ = start_proxy(["127.0.0.1"])
    conn, head = _proxy_request(proxy, f"CONNECT 127.0.0.1:{echo} HTTP/1.1\r\n\r\n".encode())
    with conn:
        assert head.startswith(b"HTTP/1.1 200")
        proxy.stop()
        assert _read_all(conn) == b""
    assert not proxy.socket_path.exists()


def test_socket_path_that_cannot_be_used_is_reported(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="^cannot listen on .*: AF_UNIX path too long$"):
        Proxy(tmp_path / ("x" * 120), []).start()


# Through bubblewrap ----------------------------------------------------------------------------

FETCH = """
    import time, urllib.error, urllib.request
    started = time.monotonic()
    try:
        print(urllib.request.urlopen("{url}", timeout=5).read().decode(), end="")
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode(), end="")
    print(f"took {{time.monotonic() - started:.3f}}")
"""


@needs_bwrap
def test_allowed_host_is_reachable_from_inside_the_sandbox(start_proxy: Any, web: int) -> None:
    proxy, events = start_proxy(["127.0.0.1"])
    done = _sandboxed(proxy, FETCH.format(url=f"http://127.0.0.1:{web}/"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hello from the host\n")
    assert [(e["host"], e["port"], e["allowed"]) for e in events] == [("127.0.0.1", web, True)]


@needs_bwrap
def test_host_not_listed_is_refused_fast_with_the_reason(start_proxy: Any) -> None:
    proxy, events = start_proxy(["pypi.org"])
    done = _sandboxed(proxy, FETCH.format(url="http://evil.example/"))
    first, took = done.stdout.splitlines()
    assert first == (
        "403 jackline: network access to evil.example:80 is not allowed; allowed: pypi.org "
        "([sandbox] allow_network in jackline.toml)"
    )
    assert float(took.split()[1]) < 0.5
    assert [(e["host"], e["allowed"]) for e in events] == [("evil.example", False)]


@needs_bwrap
def test_refused_https_shows_the_reason_in_the_client_error(start_proxy: Any) -> None:
    proxy, _ = start_proxy(["pypi.org"])
    code = """
        import urllib.request
        try:
            urllib.request.urlopen("https://evil.example/", timeout=5)
        except OSError as e:
            print(e)
    """
    done = _sandboxed(proxy, code)
    assert (
        "Tunnel connection failed: 403 Forbidden (jackline: network access to evil.example:443"
        in (done.stdout)
    )


@needs_bwrap
def test_tunnel_works_from_inside_the_sandbox(start_proxy: Any, echo: int) -> None:
    proxy, _ = start_proxy(["127.0.0.1"])
    code = f"""
        import socket
        conn = socket.create_connection(("127.0.0.1", {PORT}), timeout=5)
        conn.sendall(b"CONNECT 127.0.0.1:{echo} HTTP/1.1\\r\\n\\r\\n")
        head = b""
        while not head.endswith(b"\\r\\n\\r\\n"):
            head += conn.recv(1)
        conn.sendall(b"through the tunnel")
        conn.shutdown(socket.SHUT_WR)
        print(head.split(b"\\r\\n")[0].decode(), conn.makefile("rb").read().decode())
    """
    done = _sandboxed(proxy, code)
    assert done.stdout == "HTTP/1.1 200 Connection established through the tunnel\n", done.stderr


@needs_bwrap
def test_sandbox_without_the_proxy_cannot_reach_the_host(web: int) -> None:
    code = f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {web}), timeout=2)
            print("connected")
        except OSError as e:
            print(type(e).__name__)
    """
    assert _sandboxed(None, code).stdout == "ConnectionRefusedError\n"


@needs_bwrap
def test_program_ignoring_the_proxy_variables_has_no_network(start_proxy: Any, web: int) -> None:
    proxy, events = start_proxy(["127.0.0.1"])
    code = f"""
        import urllib.request
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
        try:
            direct.open("http://127.0.0.1:{web}/", timeout=2)
            print("connected")
        except OSError as e:
            print(type(e.reason).__name__)
    """
    assert _sandboxed(proxy, code).stdout == "ConnectionRefusedError\n"
    assert events == []


# The forwarder ---------------------------------------------------------------------------------


def _forwarded(command: list[str], port: int = 0) -> subprocess.Popen[str]:
    """`command` behind the forwarder on the host (the sandbox only adds the namespaces)."""
    argv = forward.wrap(command, port or _free_port(), "/nonexistent/proxy.sock")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("script", "code"), [("exit 3", 3), ("exit 0", 0), ("kill -9 $$", 137)])
def test_forwarder_exits_with_the_command_exit_code(script: str, code: int) -> None:
    with _forwarded(["sh", "-c", script]) as proc:
        assert proc.wait(timeout=5) == code


def test_forwarder_passes_sigterm_to_the_command() -> None:
    script = """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
        print("ready", flush=True)
        time.sleep(10)
    """
    with _forwarded([sys.executable, "-c", textwrap.dedent(script)]) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 7


def test_forwarder_sets_the_proxy_variables_for_the_command() -> None:
    script = "import os; print(os.environ['HTTPS_PROXY'], os.environ['no_proxy'])"
    port = _free_port()
    with _forwarded([sys.executable, "-c", script], port) as proc:
        out, _ = proc.communicate(timeout=5)
    assert out == f"http://127.0.0.1:{port} localhost,127.0.0.1,::1\n"


def test_forwarder_reports_a_missing_command() -> None:
    argv = forward.wrap(["no-such-command-here"], _free_port(), "/nonexistent/proxy.sock")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    assert done.returncode == 127
    assert "cannot run no-such-command-here" in done.stderr


def test_forwarder_starts_without_the_heavy_standard_modules() -> None:
    # It runs before every command that may use the network: `socket`, `signal` and `threading`
    # (through `enum`, `functools`, `collections`) tripled its start under load.
    argv = forward.wrap(["true"], _free_port(), "/nonexistent/proxy.sock")
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "forward" in imported
    assert not imported & {"socket", "signal", "threading", "enum", "functools", "collections"}


def test_forwarder_loads_nothing_from_the_workspace_it_starts_in(tmp_path: Path) -> None:
    # The command's working directory is the hostile workspace: a `forward.py` there, or a
    # module named like one the forwarder imports, must not be what runs.
    for name in ("forward", "_socket", "posix", "sys", "time"):
        (tmp_path / f"{name}.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    argv = forward.wrap(["sh", "-c", "exit 4"], _free_port(), "/nonexistent/proxy.sock")
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=10)
    assert done.returncode == 4, done.stderr
    assert not (tmp_path / "ran").exists()
