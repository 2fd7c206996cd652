"""Services per workspace: each workspace gets its own instance of what `[services.NAME]` declares
(a PostgreSQL, a Redis), on its own port, so two runs never share a database.

A service runs on the host, under the same sandbox as set-up (the workspace writable, the home and
Jackline's state hidden, the network shared so it can listen), plus a data folder of its own that
lives beside the workspace, not in it: the agent's diff never holds a database file. It starts in
the foreground on a free port of the host's loopback and is ready when its `ready` command
succeeds (or its port accepts a connection).

The agent and the checks have no network of their own. Each of their commands gets, for the time
it runs, a relay per service: a unix socket outside (`Relay`, in the harness) that connects to the
service's host port, bound into the sandbox, where the forwarder (`sandbox/forward.py`) listens on
the service's port on the sandbox's own loopback. Inside, `127.0.0.1:6379` is the workspace's own
Redis, whatever port it got outside, and nothing else on the host is reachable.

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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from jackline import proc, sandbox
from jackline.config import JacklineConfig, ServiceConfig
from jackline.errors import JacklineError
from jackline.sandbox.forward import pipe

STATE = "services.json"


class ServiceFailed(JacklineError):
    """A service did not start or did not become ready."""


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    """The process group of the service (a shell that holds the sandbox)."""
    host_port: int
    port: int
    """The port the agent and checks use: inside the sandbox, or the host's without one."""
    data: str
    log: str
    digest: str
    """What the service was started from (its config), so a changed config restarts it."""
    env: dict[str, str] = field(default_factory=dict)


def folder(ws: Path) -> Path:
    return ws.parent / f"{ws.name}.services"


def running(ws: Path) -> list[Service]:
    """The services recorded for this workspace (alive or not)."""
    state = folder(ws) / STATE
    try:
        return [Service(**s) for s in json.loads(state.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def ensure(ws: Path, config: JacklineConfig) -> list[Service]:
    """The workspace's services, started where missing, dead or changed since they started."""
    if not config.services:
        if running(ws):
            stop(ws)
        return []
    kept = {s.name: s for s in running(ws) if _alive(s.pid)}
    wanted = {name: _digest(svc, config) for name, svc in config.services.items()}
    stale = [s for n, s in kept.items() if wanted.get(n) != s.digest]
    for s in stale:
        _end(s.pid)
        kept.pop(s.name)
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
    """While a sandboxed command runs: a unix socket per service, relayed to its host port;
    yields (port inside, socket) pairs for `sandbox.Spec.services`."""
    if not services:
        yield ()
        return
    where = Path(tempfile.mkdtemp(prefix="jl-svc-"))  # a socket path must be short
    try:
        with ExitStack() as stack:
            pairs = []
            for s in services:
                sock = where / f"{s.port}.sock"
                stack.enter_context(Relay(sock, s.host_port))
                pairs.append((s.port, sock))
            yield tuple(pairs)
    finally:
        shutil.rmtree(where, ignore_errors=True)


class Relay:
    """A unix socket whose every connection is copied to `127.0.0.1:port`."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
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
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                return  # the service is down: the client sees the connection close
            with upstream:
                upstream.settimeout(None)
                back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
                back.start()
                pipe(client, upstream)
                back.join()


# starting and stopping ----------------------------------------------------------------------


def _start(ws: Path, name: str, svc: ServiceConfig, config: JacklineConfig, digest: str) -> Service:
    data = folder(ws) / name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    host_port = _free_port()
    boxed = config.sandbox.mode == "bubblewrap"
    port = (svc.port or host_port) if boxed else host_port
    log = folder(ws) / f"{name}.log"
    argv = _fill(svc.start, host_port, data)
    jail = sandbox.jail_for(config.sandbox, ws, network=True)
    jail = replace(jail, spec=replace(jail.spec, writable=(data,)))
    wrapped = jail.wrap(argv)
    command = ["/bin/sh", "-c", wrapped] if isinstance(wrapped, str) else wrapped
    with log.open("ab") as out:
        out.write(f"$ {argv if isinstance(argv, str) else ' '.join(argv)}\n".encode())
        out.flush()
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
            preexec_fn=jail.preexec,
        )
    service = Service(
        name,
        child.pid,
        host_port,
        port,
        str(data),
        str(log),
        digest,
        {k: v.format(port=port, dir=data) for k, v in svc.env.items()},
    )
    try:
        _wait_ready(service, svc, child, config, ws)
    except ServiceFailed:
        _end(child.pid)
        raise
    return service


def _wait_ready(
    s: Service, svc: ServiceConfig, child: subprocess.Popen[bytes], cfg: JacklineConfig, ws: Path
) -> None:
    deadline = time.monotonic() + svc.ready_timeout
    check = _fill(svc.ready, s.host_port, Path(s.data)) if svc.ready else None
    jail = sandbox.jail_for(cfg.sandbox, ws, network=True)
    env = sandbox.scrub(os.environ, cfg.sandbox.env, setup=True)
    probe_log = Path(s.log).with_suffix(".ready.log")
    while True:
        if child.poll() is not None:
            raise ServiceFailed(
                f"service {s.name!r} exited with {child.returncode} before it was ready; "
                f"its log ({s.log}) ends:\n{_tail(Path(s.log))}"
            )
        if check is None:
            if _accepts(s.host_port):
                return
        else:
            left = max(1.0, deadline - time.monotonic())
            if proc.run(check, ws, env, probe_log, min(left, 30), jail=jail).exit_code == 0:
                return
        if time.monotonic() > deadline:
            raise ServiceFailed(
                f"service {s.name!r} was not ready within {svc.ready_timeout}s "
                f"([services.{s.name}] ready_timeout); its log ({s.log}) ends:\n"
                f"{_tail(Path(s.log))}"
            )
        time.sleep(0.1)


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
    text = json.dumps([svc.model_dump(), config.sandbox.model_dump()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fill(command: str | list[str], port: int, data: Path) -> str | list[str]:
    def one(text: str) -> str:
        return text.replace("{port}", str(port)).replace("{dir}", str(data))

    return one(command) if isinstance(command, str) else [one(a) for a in command]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _env_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def describe(services: list[Service]) -> list[dict[str, Any]]:
    """For `jackline pool status` and the run's workspace event."""
    return [
        {"name": s.name, "port": s.port, "host_port": s.host_port, "alive": _alive(s.pid)}
        for s in services
    ]
