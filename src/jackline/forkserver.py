"""The fork server: a process with Jackline imported that runs each command a person types in
a child forked from it (`jackline.launch` is the other side, and says when it is used).

    python -m jackline.forkserver FOLDER NAME

It listens on `FOLDER/NAME.sock` (FOLDER is `$JACKLINE_HOME/fork`, mode 0700). For each
connection from a process of this user (checked with the socket's peer credentials) it forks a
monitor, and the monitor forks the command: a child that takes the connecting process's
standard streams, folder, environment, umask and arguments and runs `jackline.cli.main` as a
process of its own would. The monitor tells the connecting process the command's end (its exit
code or its signal), passes on the signals it forwards, and kills the command if the connecting
process goes away without a word (it was killed with SIGKILL: so is its command).

A command that submits a run (`run`, `retry`) connects to `FOLDER/NAME.engine` instead, and is
handed to the server's spare, whose child launched the workflow engine before the command came
(`Spares`): the same command in the same kind of child, without waiting for the engine.

The server itself never runs a command, opens no database and starts no thread: what a child
inherits is imports only, as the tests' forked commands have always inherited them (the spare's
child launches its engine after it is forked). It leaves after `JACKLINE_FORK_SERVER_IDLE`
seconds without a command (default 600), when its socket is removed or replaced, or when its
home is removed; its spare leaves with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any, NoReturn

from jackline.launch import SIGNALS, send_request

IDLE = 600.0
REQUEST_WAIT = 10.0
"""Seconds a monitor waits for the connecting process's request."""
BIGGEST_REQUEST = 8 << 20


def warm() -> None:
    """Import what the commands use, once, for every child to inherit: the command line (its
    click command built), the verbs and the store, the workflow engine and the release and flag
    steps it registers, the scans and their rule sets, the forge. Importing the engine launches
    nothing: each child launches its own."""
    import dbos._sys_db_sqlite  # noqa: F401 (the engine's SQLite, loaded at its launch)

    from jackline import api, cli, engine  # noqa: F401
    from jackline.cli import render
    from jackline.forge import local  # noqa: F401
    from jackline.scans import registry, secrets, weakenings  # noqa: F401
    from jackline.steps import scan  # noqa: F401

    for verb in dir(api):  # each verb's module (`jackline.api` imports them at first use)
        getattr(api, verb)
    render._handoff_markdown()
    cli.command()
    registry()
    weakenings._tests()


def serve(folder: str, name: str) -> None:
    where = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    # Held for life (it goes with the process), from before the imports: a command that finds
    # no socket and this lock taken knows a server is starting; the one process that takes it
    # is the one server.
    lock = os.open(f"/proc/self/fd/{where}/{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _say(f"fork server {name}: another is starting; this one leaves")
        return
    warm()
    from jackline import engine

    assert not engine.has_live_threads(), "the fork server must not run threads"
    idle = float(os.environ.get("JACKLINE_FORK_SERVER_IDLE") or IDLE)
    address = f"/proc/self/fd/{where}/{name}.sock"
    listener, mine = _listen(address)
    engines, _ = _listen(f"/proc/self/fd/{where}/{name}.engine")
    _say(f"fork server {name} (pid {os.getpid()}) listening in {folder}")
    monitors: set[int] = set()
    spares = Spares(closing=(listener, engines, where, lock))
    last = time.monotonic()
    while True:
        done = _reaped(monitors | spares.pids())
        monitors -= done
        spares.reaped(done)
        spares.keep()
        ready, _, _ = select.select([listener, engines], [], [], spares.poll())
        for chosen in ready:
            try:
                conn, _ = chosen.accept()
            except OSError:
                continue
            last = time.monotonic()
            if _peer_uid(conn) != os.geteuid():
                conn.close()
                continue
            if chosen is engines and (taken := spares.take(conn)) is not None:
                monitors.add(taken)
                continue
            pid = os.fork()
            if pid == 0:
                spares.close()
                for fd in (listener, engines, where, lock):
                    _close(fd)
                _monitor(conn)
            monitors.add(pid)
            conn.close()
        if not ready and (gone := _why_leave(address, mine, where, monitors, last, idle)):
            _say(f"fork server {name} leaves: {gone}")
            break
    spares.close()  # the spare leaves with the server: its engine goes, and its lock file
    for sock in (listener, engines):
        sock.close()
    with contextlib.suppress(OSError):
        if os.stat(address).st_ino == mine:
            os.unlink(address)
            os.unlink(f"/proc/self/fd/{where}/{name}.engine")


def _listen(address: str) -> tuple[socket.socket, int]:
    """A listening socket at `address` (only this user may connect: mode 0600), and its
    inode, by which the server knows its own."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)  # a server of this code that died left it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(address)
    finally:
        os.umask(old)
    listener.listen(64)
    return listener, os.stat(address).st_ino


def _close(what: socket.socket | int) -> None:
    with contextlib.suppress(OSError):
        what.close() if isinstance(what, socket.socket) else os.close(what)


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _reaped(pids: set[int]) -> set[int]:
    done = set()
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                done.add(pid)
    return done


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _why_leave(
    address: str, mine: int, where: int, monitors: set[int], last: float, idle: float
) -> str | None:
    if os.fstat(where).st_nlink == 0:
        return "its home was removed"
    try:
        if os.stat(address).st_ino != mine:
            return "its socket was replaced"
    except FileNotFoundError:
        return "its socket was removed"
    if not monitors and time.monotonic() - last > idle:
        return f"idle for {idle:.0f}s"
    return None


# the monitor: one a command ------------------------------------------------------------------


def _monitor(conn: socket.socket, spare: tuple[int, socket.socket] | None = None) -> NoReturn:
    """Read the command, fork it (or, from a spare, hand it to the child that launched the
    engine already), tell the connecting process its pid, watch it to its end."""
    code = 0
    try:
        request, fds = _request(conn)
        child = _handed(spare, request, fds) if spare else None
        if child is None:
            child = os.fork()
            if child == 0:
                conn.close()
                command(request, fds)
        for fd in fds.values():
            os.close(fd)
        try:
            _send(conn, {"pid": child})
            _watch(conn, child)
        except BaseException:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)  # nobody left to tell how it ends
            raise
    except BaseException as e:  # the connecting process runs the command itself, or is told
        with contextlib.suppress(Exception):
            _say(f"monitor: {type(e).__name__}: {e}")
        code = 1
    finally:
        if spare:  # an engine the command did not take leaves on its own (`_spare_engine`)
            _reap(spare[0])
        os._exit(code)


def _request(
    conn: socket.socket, wait: float | None = REQUEST_WAIT
) -> tuple[dict[str, Any], dict[int, int]]:
    """The command and the connecting process's standard streams, by their numbers there
    (the wire form is `launch.send_request`'s)."""
    conn.settimeout(wait)
    header, received, _, _ = socket.recv_fds(conn, 5, 3)
    while len(header) < 5:
        more = conn.recv(5 - len(header))
        if not more:
            raise ConnectionError("the request ended early")
        header += more
    size, mask = struct.unpack("!IB", header)
    if size > BIGGEST_REQUEST:
        raise ValueError(f"a request of {size} bytes")
    numbers = [fd for fd in (0, 1, 2) if mask & (1 << fd)]
    if len(numbers) != len(received):
        raise ValueError(f"streams {numbers} announced, {len(received)} received")
    body = b""
    while len(body) < size:
        more = conn.recv(min(65536, size - len(body)))
        if not more:
            raise ConnectionError("the request ended early")
        body += more
    conn.settimeout(None)
    return json.loads(body), dict(zip(numbers, received, strict=True))


def _send(conn: socket.socket, message: dict[str, int]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _watch(conn: socket.socket, child: int) -> None:
    """Until the command ends: pass on the signals the connecting process forwards; kill the
    command if that process goes away. Then tell it how the command ended."""
    ended = os.pidfd_open(child)
    pending = b""
    while True:
        ready, _, _ = select.select([conn.fileno(), ended], [], [])
        if ended in ready:
            break
        data = conn.recv(4096)
        if not data:  # the person's process is gone without a word: killed
            os.kill(child, signal.SIGKILL)
            break
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
                signum = int(json.loads(line)["signal"])
                if signum in SIGNALS:
                    os.kill(child, signum)
    _, status = os.waitpid(child, 0)
    with contextlib.suppress(OSError):
        if os.WIFSIGNALED(status):
            _send(conn, {"signal": os.WTERMSIG(status)})
        else:
            _send(conn, {"exit": os.waitstatus_to_exitcode(status)})


# the spare: a command child that launched the engine before its command came ----------------

SPARE_RETRY = 30.0
"""Seconds before a spare is made again after one ended unused (its engine did not launch)."""
SPARE_ENV = ("JACKLINE_HOME", "JACKLINE_DATABASE_URL")
"""What the engine's launch reads from the environment, with `HOME` where `JACKLINE_HOME` is
unset and every variable named with `SPARE_ENV_PREFIXES`: a command whose environment differs
in any of them is not run in the spare's process (`_fits`)."""
SPARE_ENV_PREFIXES = ("DBOS", "PG")
"""DBOS's own variables and PostgreSQL's (libpq's `PG*`)."""


class Spares:
    """The server's spare, at most one: a monitor-to-be whose command child has launched the
    workflow engine as a run's submitter does (35-66 ms of a `jackline run` as typed, which the
    command no longer waits for). A command on the engine socket (`launch.ENGINE_COMMANDS`:
    `run`, `retry`) is handed to it and
    runs in that child, with everything else as in a child forked for it: its own process, the
    person's streams, folder, environment and umask, signals, exit. The spare's engine was
    launched with the server's environment: a command with another home or database
    (`_fits`) runs in a child forked as usual, and the spare's engine leaves.

    The spare's child is forked from the server before it launches the engine, so the server
    itself still runs no thread. A spare is made when the server starts (once this home has an
    engine database: a home where nothing ever ran gets none), and again once the command of
    the last one has ended: never while a command is on its way to its agent, where a second
    launch would take a core from it. One that ends unused (an engine that could not launch)
    is made again after `SPARE_RETRY` seconds. Idle, its engine's threads look at the database
    a few times a second: about 0.7% of a core, measured."""

    def __init__(self, closing: tuple[socket.socket | int, ...]) -> None:
        self.closing = closing
        """The server's sockets and files, which a spare must not hold."""
        self.ready: tuple[int, socket.socket] | None = None
        self.busy: int | None = None
        self.gone: set[int] = set()
        self.after = 0.0

    def pids(self) -> set[int]:
        """The spare processes the server reaps (a spare in use is one of its monitors)."""
        return self.gone | ({self.ready[0]} if self.ready else set())

    def reaped(self, done: set[int]) -> None:
        self.gone -= done
        if self.ready and self.ready[0] in done:
            self.ready[1].close()
            self.ready = None
            self.after = time.monotonic() + SPARE_RETRY
        if self.busy in done:
            self.busy = None

    def keep(self) -> None:
        """Make a spare if one is due."""
        if self.ready or self.busy or time.monotonic() < self.after or not _engine_known():
            return
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            ours.close()
            for what in self.closing:
                _close(what)
            _spare(theirs)
        theirs.close()
        self.ready = (pid, ours)

    def poll(self) -> float:
        """How long the server may wait for a connection: a spare is due soon after a
        command in one ends."""
        return 0.2 if self.busy else 1.0

    def take(self, conn: socket.socket) -> int | None:
        """Hand `conn` to the spare; its pid, or None where there is no spare to take it."""
        if self.ready is None:
            return None
        pid, chan = self.ready
        self.ready = None
        try:
            socket.send_fds(chan, [b"c"], [conn.fileno()])
        except OSError:
            self.gone.add(pid)
            return None
        finally:
            chan.close()
        conn.close()
        self.busy = pid
        return pid

    def close(self) -> None:
        """Let the spare go (it leaves when its channel closes), in the server as it leaves,
        and in each monitor the server forks."""
        if self.ready:
            self.ready[1].close()
            self.ready = None


def _engine_known() -> bool:
    """Whether a spare is wanted and has an engine to launch: not where the server's
    environment says `JACKLINE_FORK_SERVER_SPARE=0`, nor in a home without an engine
    database."""
    from jackline import paths

    if os.environ.get("JACKLINE_FORK_SERVER_SPARE", "").strip() == "0":
        return False
    return paths.team_mode() or paths.engine_database().exists()


def _spare(chan: socket.socket) -> NoReturn:
    """A spare (forked from the server): it forks the child that launches the engine, then
    waits for the server to hand it a connection, and monitors it as any monitor does. Ends
    when the server goes (its channel closes), or when that child ends unused."""
    code = 1
    engine_pid = 0
    try:
        _name(b"jackline-spare")
        mine, its = socket.socketpair()
        engine_pid = os.fork()
        if engine_pid == 0:
            chan.close()
            mine.close()
            _spare_engine(its)
        its.close()
        ready, _, _ = select.select([chan, mine], [], [])
        if chan in ready:
            _, fds, _, _ = socket.recv_fds(chan, 1, 1)
            chan.close()
            if fds:
                _name(SERVER_NAME)
                _monitor(socket.socket(fileno=fds[0]), spare=(engine_pid, mine))
            code = 0  # the server left
        mine.close()
    except BaseException as e:
        with contextlib.suppress(Exception):
            _say(f"spare: {type(e).__name__}: {e}")
    finally:
        if engine_pid:
            _reap(engine_pid)
        os._exit(code)


def _spare_engine(chan: socket.socket) -> NoReturn:
    """The spare's command child: launch the engine as a command does, then wait for the
    request; without one (the server left, or the command was not for this engine), leave."""
    try:
        _name(b"jackline-spare-e")
        from jackline import engine

        engine.launch(queue=False)  # as a run's submitter launches it (`engine.start`)
    except BaseException as e:
        with contextlib.suppress(Exception):
            _say(f"spare: the engine did not launch: {type(e).__name__}: {e}")
        os._exit(1)
    _say(f"spare engine ready in process {os.getpid()}")
    try:
        request, fds = _request(chan, wait=None)
    except (OSError, ValueError):
        with contextlib.suppress(BaseException):
            engine.leave()
        os._exit(0)
    chan.close()
    _name(SERVER_NAME)
    command(request, fds)


def _handed(
    spare: tuple[int, socket.socket], request: dict[str, Any], fds: dict[int, int]
) -> int | None:
    """Pass the request to the spare's engine child if its engine is the command's; its pid,
    or None (the command is then forked as usual, and that engine leaves)."""
    pid, chan = spare
    try:
        if _fits(request.get("env")):
            send_request(chan, request, fds)
            return pid
    except OSError:  # the engine child is gone
        pass
    finally:
        chan.close()
    return None


def _fits(env: object) -> bool:
    """Whether a command with this environment launches the engine the spare launched with
    the server's: the same home (absolute: the server's folder is not the command's), database
    and DBOS settings."""
    if not isinstance(env, dict):
        return False
    home = env.get("JACKLINE_HOME") or ""
    if home and not os.path.isabs(os.path.expanduser(home)):
        return False
    keys = {*SPARE_ENV, *(k for k in (*env, *os.environ) if k.startswith(SPARE_ENV_PREFIXES))}
    if not home:
        keys.add("HOME")
    return all(env.get(k) == os.environ.get(k) for k in keys)


def _reap(pid: int, within: float = 10.0) -> None:
    """Wait for a child that is ending; kill it if it has not within `within` seconds."""
    deadline = time.monotonic() + within
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.01)


def _read_name() -> bytes:
    try:
        with open("/proc/self/comm", "rb") as f:
            return f.read().strip()
    except OSError:
        return b"python"


SERVER_NAME = _read_name()
"""The process name (`ps -o comm`) of the server and of each command it forks; an idle spare's
are `jackline-spare` and `jackline-spare-e` (the kernel keeps 15 bytes)."""


def _name(name: bytes) -> None:
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(
            15, ctypes.c_char_p(name[:15]), 0, 0, 0
        )  # PR_SET_NAME


# the command ---------------------------------------------------------------------------------


def command(request: dict[str, Any], fds: dict[int, int]) -> NoReturn:
    """Become the person's `jackline` process, run the command, end with its code. `request`
    holds `argv`, `cwd`, `env` and `umask`; `fds` the descriptors to take as standard input,
    output and error, by their number (a missing one is /dev/null). The tests' forked commands
    are made here too (`conftest.cli_in_process`)."""
    code = 70
    try:
        os.setpgid(0, 0)  # a job of its own, as a shell starts it
        for signum in SIGNALS:  # as a new interpreter has them: Ctrl-C raises, the rest end it
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for number in (0, 1, 2):
            if number in fds:
                os.dup2(fds[number], number)
            else:
                os.dup2(os.open(os.devnull, os.O_RDWR), number)
        for fd in set(fds.values()):  # one descriptor may stand for two streams
            if fd > 2:
                os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()
        os.umask(int(request["umask"]))
        os.chdir(request["cwd"])
        sys.argv = ["jackline", *request["argv"]]
        _streams()
        from jackline.cli import main, render

        render.attach()
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _streams() -> None:
    """Python's standard streams on the new descriptors, as an interpreter starting on them
    would make them (line-buffered on a terminal)."""
    encoding = sys.getfilesystemencoding()
    made: list[Any] = []
    for fd, mode, errors in ((0, "r", "strict"), (1, "w", "strict"), (2, "w", "backslashreplace")):
        line = fd == 2 or (fd == 1 and os.isatty(fd))
        made.append(
            open(  # noqa: SIM115
                fd,
                mode,
                buffering=1 if line else -1,
                encoding=encoding,
                errors=errors,
                closefd=False,
            )  # fmt: skip
        )
    sys.stdin, sys.stdout, sys.stderr = made
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made  # type: ignore[misc]


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
