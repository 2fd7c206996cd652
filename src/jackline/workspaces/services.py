"""Services per workspace: each workspace gets its own instance of what `[services.NAME]` declares
(a PostgreSQL, a Redis), so two runs never share a database.

A service is as untrusted as the agent: it runs code from the workspace and does what the agent's
commands ask of it (a Redis `MIGRATE` or `REPLICAOF` dials any host:port it is given). So under
bubblewrap it runs in a sandbox of its own with a network of its own: a loopback and nothing else.
There it listens on the project's port (`{port}`: `[services.NAME] port`), with a data folder of
its own that lives beside the workspace, not in it (the agent's diff never holds a database file),
and no other file it can write.

The only way in is a unix socket the harness makes beside the workspace (`<name>.sock`, under
Jackline's state) and hands to the service's sandbox as an open descriptor: the forwarder there
(`sandbox/forward.py --serve`) accepts on it and connects to the service on that loopback. The
agent and the checks have no network of their own either; each of their commands gets, for the
time it runs, a relay per service: a unix socket outside (`Relay`, in the harness) bound into their
sandbox, where their forwarder (`forward.py --port`) listens on the service's port. So inside,
`127.0.0.1:6379` is the workspace's own Redis; and the Redis, like the agent, reaches nothing but
its own loopback. A `ready` probe and the harness's own check that a service answers take the same
path. With `[sandbox] mode = "none"` a service runs on the host's loopback on a free port instead.

What runs is recorded in `<workspace>.services/services.json` (under Jackline's state, hidden from
the sandbox, so the agent cannot point a relay elsewhere). `ensure` starts what is missing or
changed, so a run resumed after a reboot gets its services back; `stop` ends them with the
workspace. A warm workspace in the pool keeps its services running until a run takes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from jackline import proc, sandbox
from jackline.config import JacklineConfig, ServiceConfig
from jackline.errors import JacklineError
from jackline.sandbox import forward

STATE = "services.json"
LAYOUT = "own-network"
"""How services are started, part of each one's digest: a service started another way (on the
host's network, before services had their own) is restarted rather than kept."""


class ServiceFailed(JacklineError):
    """A service did not start or did not become ready."""


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    """The process group of the service (a shell that holds the sandbox)."""
    port: int
    """The port the service listens on and the agent and checks use: on the loopback of each
    one's own sandbox, or on the host's without one."""
    data: str
    log: str
    digest: str
    """What the service was started from (its config), so a changed config restarts it."""
    env: dict[str, str] = field(default_factory=dict)
    socket: str = ""
    """The unix socket the harness reaches the service through (see the module's docstring);
    empty when it runs unsandboxed, on the host's loopback."""


def folder(ws: Path) -> Path:
    return ws.parent / f"{ws.name}.services"


def running(ws: Path) -> list[Service]:
    """The services recorded for this workspace (alive or not)."""
    state = folder(ws) / STATE
    known = {f.name for f in fields(Service)}
    try:
        # Fields a record of an older Jackline has and this one lacks are dropped, so its
        # services can still be ended.
        return [
            Service(**{k: v for k, v in s.items() if k in known})
            for s in json.loads(state.read_text())
        ]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def ensure(ws: Path, config: JacklineConfig) -> list[Service]:
    """The workspace's services, started where missing, dead or changed since they started."""
    if not config.services:
        if running(ws):
            stop(ws)
        return []
    wanted = {name: _digest(svc, config) for name, svc in config.services.items()}
    kept = {}
    for s in running(ws):
        if not _alive(s.pid):
            continue
        if wanted.get(s.name) == s.digest:
            kept[s.name] = s
        else:
            _end(s.pid)
    out = []
    for name, svc in config.services.items():
        if name in kept:
            out.append(kept[name])
            continue
        out.append(_start(ws, name, svc, config, wanted[name]))
        _save(ws, [*out, *(kept[n] for n in kept if n not in {s.name for s in out})])
    _save(ws, out)
    return out


def stop(ws: Path) -> list[str]:
    """End the workspace's services and remove their data; return the names stopped."""
    gone = running(ws)
    for s in gone:
        _end(s.pid)
    shutil.rmtree(folder(ws), ignore_errors=True)
    return [s.name for s in gone]


def environment(services: list[Service]) -> dict[str, str]:
    """What the agent and checks get: `JACKLINE_SERVICE_<NAME>_PORT` and each `env` entry."""
    out: dict[str, str] = {}
    for s in services:
        out[f"JACKLINE_SERVICE_{_env_name(s.name)}_PORT"] = str(s.port)
        out.update(s.env)
    return out


@contextmanager
def relays(services: list[Service]) -> Iterator[tuple[tuple[int, Path], ...]]:
    """While a sandboxed command runs: a unix socket per sandboxed service, relayed to the
    service's own socket; yields (port inside, socket) pairs for `sandbox.Spec.services`."""
    boxed = [s for s in services if s.socket]
    if not boxed:
        yield ()
        return
    where = Path(tempfile.mkdtemp(prefix="jl-svc-"))  # a socket path must be short
    try:
        with ExitStack() as stack:
            pairs = []
            for s in boxed:
                sock = where / f"{s.port}.sock"
                stack.enter_context(Relay(sock, Path(s.socket)))
                pairs.append((s.port, sock))
            yield tuple(pairs)
    finally:
        shutil.rmtree(where, ignore_errors=True)


class Relay:
    """A unix socket whose every connection is copied to a service, through its socket."""

    def __init__(self, path: Path, service: Path) -> None:
        self.path, self.service = path, service
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> Relay:
        self._server.bind(str(self.path))
        self._server.listen(64)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        with client:
            try:
                upstream = _dial(self.service, timeout=10)
            except OSError:
                return  # the service is down: the client sees the connection close
            with upstream:
                upstream.settimeout(None)
                forward.join(client, upstream)


def _dial(path: Path, timeout: float) -> socket.socket:
    """A connection to the service behind its socket, once its forwarder says it reached it."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        with _address(path) as address:
            conn.connect(address)
        if conn.recv(len(forward.SERVED)) != forward.SERVED:
            raise ConnectionRefusedError(f"nothing answers behind {path}")
    except OSError:
        conn.close()
        raise
    return conn


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """`path` as a unix socket address: through a descriptor of its folder, since an address
    holds at most 107 bytes and Jackline's state may sit deeper than that."""
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


# starting and stopping ----------------------------------------------------------------------


def _start(ws: Path, name: str, svc: ServiceConfig, config: JacklineConfig, digest: str) -> Service:
    data = folder(ws) / name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    folder(ws).chmod(0o700)  # the service's socket: for this user only
    log = folder(ws) / f"{name}.log"
    boxed = config.sandbox.mode == "bubblewrap"
    # In its own network any port is free; on the host's, only one nothing else holds.
    port = (svc.port or _free_port()) if boxed else _free_port()
    argv = _fill(svc.start, port, data)
    sock = folder(ws) / f"{name}.sock"
    with log.open("ab") as out, ExitStack() as stack:
        out.write(f"$ {argv if isinstance(argv, str) else ' '.join(argv)}\n".encode())
        out.flush()
        listener = stack.enter_context(_listen(sock)) if boxed else None
        command = _command(argv, ws, data, config, listener, port)
        # A shell holds the sandbox: bubblewrap ends everything inside when its parent ends, so
        # the service outlives the harness process that started it (a warm workspace's service
        # must) and still ends, whole, when `stop` ends the shell's process group.
        child = subprocess.Popen(
            ["/bin/sh", "-c", '"$@" & wait $!', "jackline-service", *command],
            cwd=ws,
            env=sandbox.scrub(os.environ, config.sandbox.env, setup=True),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(listener.fileno(),) if listener else (),
            preexec_fn=sandbox.limits(_jail(config, ws, data).spec),
        )
    service = Service(
        name=name,
        pid=child.pid,
        port=port,
        data=str(data),
        log=str(log),
        digest=digest,
        env={k: v.format(port=port, dir=data) for k, v in svc.env.items()},
        socket=str(sock) if boxed else "",
    )
    try:
        _wait_ready(service, svc, child, config, ws)
    except ServiceFailed:
        _end(child.pid)
        raise
    return service


def _jail(config: JacklineConfig, ws: Path, data: Path) -> sandbox.Jail:
    """The service's sandbox: the one `[sandbox]` describes for the agent's commands (no network
    but a loopback of its own, bubblewrap's new network namespace), with its data folder
    writable."""
    jail = sandbox.jail_for(config.sandbox, ws)
    return replace(jail, spec=replace(jail.spec, writable=(data,)))


def _command(
    argv: str | list[str],
    ws: Path,
    data: Path,
    config: JacklineConfig,
    listener: socket.socket | None,
    port: int,
) -> list[str]:
    """The service's command in its sandbox, behind the forwarder that lets the harness in."""
    if listener is not None:
        inner = ["/bin/sh", "-c", argv] if isinstance(argv, str) else argv
        argv = forward.wrap(inner, 0, "", serve={listener.fileno(): port})
    wrapped = _jail(config, ws, data).wrap(argv)
    return ["/bin/sh", "-c", wrapped] if isinstance(wrapped, str) else wrapped


@contextmanager
def _listen(path: Path) -> Iterator[socket.socket]:
    """The service's socket, listening until the service's forwarder holds it."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with server:
        with _address(path) as address:
            server.bind(address)
        server.listen(64)
        server.set_inheritable(True)
        yield server


def _wait_ready(
    s: Service, svc: ServiceConfig, child: subprocess.Popen[bytes], cfg: JacklineConfig, ws: Path
) -> None:
    deadline = time.monotonic() + svc.ready_timeout
    with _probe(s, svc, cfg, ws) as ready:
        while True:
            if child.poll() is not None:
                raise ServiceFailed(
                    f"service {s.name!r} exited with {child.returncode} before it was ready; "
                    f"its log ({s.log}) ends:\n{_tail(Path(s.log))}"
                )
            if ready(min(max(1.0, deadline - time.monotonic()), 30)):
                return
            if time.monotonic() > deadline:
                raise ServiceFailed(
                    f"service {s.name!r} was not ready within {svc.ready_timeout}s "
                    f"([services.{s.name}] ready_timeout); its log ({s.log}) ends:\n"
                    f"{_tail(Path(s.log))}"
                )
            time.sleep(0.1 if svc.ready else 0.02)  # a `ready` command starts a sandbox


@contextmanager
def _probe(
    s: Service, svc: ServiceConfig, cfg: JacklineConfig, ws: Path
) -> Iterator[Callable[[float], bool]]:
    """Whether the service is ready, given how long a probe may take: its `ready` command, run
    the way the agent's commands run (its own sandbox, the service relayed onto its loopback),
    or else whether the service accepts a connection."""
    if not svc.ready:
        yield lambda _: answers(s)
        return
    check = _fill(svc.ready, s.port, Path(s.data))
    env = sandbox.scrub(os.environ, cfg.sandbox.env, setup=True)
    log = Path(s.log).with_suffix(".ready.log")
    with relays([s]) as relayed:
        jail = sandbox.jail_for(cfg.sandbox, ws)
        jail = replace(jail, spec=replace(jail.spec, services=relayed))
        yield lambda timeout: proc.run(check, ws, env, log, timeout, jail=jail).exit_code == 0


def answers(s: Service) -> bool:
    """Whether the service accepts a connection, reached the way the agent's commands reach it."""
    try:
        if s.socket:
            _dial(Path(s.socket), timeout=2).close()
        else:
            socket.create_connection(("127.0.0.1", s.port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _end(pid: int, grace: float = 5.0) -> None:
    """TERM the process group, then KILL what is left after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pid):
        _reap(pid)
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the shell if this process started it, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alive(pid: int) -> bool:
    _reap(pid)
    return _group_alive(pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _save(ws: Path, services: list[Service]) -> None:
    state = folder(ws) / STATE
    state.parent.mkdir(parents=True, exist_ok=True)
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(s) for s in services]))
    tmp.replace(state)


def _digest(svc: ServiceConfig, config: JacklineConfig) -> str:
    text = json.dumps([svc.model_dump(), config.sandbox.model_dump(), LAYOUT], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fill(command: str | list[str], port: int, data: Path) -> str | list[str]:
    def one(text: str) -> str:
        return text.replace("{port}", str(port)).replace("{dir}", str(data))

    return one(command) if isinstance(command, str) else [one(a) for a in command]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _env_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def describe(services: list[Service]) -> list[dict[str, Any]]:
    """For `jackline pool status` and the run's workspace event."""
    return [{"name": s.name, "port": s.port, "alive": _alive(s.pid)} for s in services]
