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

The server itself never runs a command, opens no database and starts no thread: what a child
inherits is imports only, as the tests' forked commands have always inherited them. It leaves
after `JACKLINE_FORK_SERVER_IDLE` seconds without a command (default 600), when its socket is
removed or replaced, or when its home is removed.
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

from jackline.launch import SIGNALS

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
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)  # a server of this code that died left it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(address)
    finally:
        os.umask(old)
    mine = os.stat(address).st_ino
    listener.listen(64)
    _say(f"fork server {name} (pid {os.getpid()}) listening in {folder}")
    monitors: set[int] = set()
    last = time.monotonic()
    while True:
        monitors -= _reaped(monitors)
        ready, _, _ = select.select([listener], [], [], 1.0)
        if ready:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            last = time.monotonic()
            if _peer_uid(conn) != os.geteuid():
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                listener.close()
                os.close(where)
                os.close(lock)  # a monitor's copy would keep the server's lock past its end
                _monitor(conn)
            monitors.add(pid)
            conn.close()
            continue
        if gone := _why_leave(address, mine, where, monitors, last, idle):
            _say(f"fork server {name} leaves: {gone}")
            break
    listener.close()
    with contextlib.suppress(OSError):
        if os.stat(address).st_ino == mine:
            os.unlink(address)


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


def _monitor(conn: socket.socket) -> NoReturn:
    code = 0
    try:
        request, fds = _request(conn)
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
        os._exit(code)


def _request(conn: socket.socket) -> tuple[dict[str, Any], dict[int, int]]:
    """The command and the connecting process's standard streams, by their numbers there."""
    conn.settimeout(REQUEST_WAIT)
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
