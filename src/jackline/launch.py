"""The `jackline` script: a command typed at a terminal runs in a process forked from this
machine's fork server, which has Jackline imported already; anything else runs here.

Starting Python and importing the command line, the verbs, the store and the workflow engine
costs about a second of CPU. A person at a terminal pays it on every command; the fork server
pays it once. This module is what the script imports, and it imports only the standard
library's small modules: it finds the server, hands it this process's arguments, folder,
environment and its standard input, output and error (the file descriptors themselves, so the
command writes to the person's terminal as if it ran here), forwards the signals this process
gets, and exits as the command did (its code, or the signal that ended it).

When: `JACKLINE_FORK_SERVER=1` always, `=0` never; unset, when standard input, output or error
is a terminal (a person typing: scripts, CI and tests start Jackline as before). The first
command finds no server: it starts one, and runs in its own process meanwhile. Never for the
commands that stay up (`worker`, `serve`, `mcp`), which belong to whatever supervises them, nor
for `guard`, which agents call from their sandbox. Anything that goes wrong before the command
starts (no server, an unreadable home, a protocol error) runs the command here instead.

The server (`jackline.forkserver`) listens on a socket in `$JACKLINE_HOME/fork/`, a folder of
mode 0700 that the sandbox hides with the rest of the home, named by a fingerprint of the code
(the interpreter, the package's folder and its newest source file): a server of older code is
never used, and leaves after its idle time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from typing import BinaryIO

STAYS_UP = frozenset({"worker", "serve", "mcp", "guard"})
"""Commands that never go through the server (see the module's docstring)."""
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""What this process forwards to the command."""
ENGINE_COMMANDS = frozenset({"run", "retry"})
"""Commands that submit a run, launching the workflow engine as they start: the server hands
them to its spare, a child that launched the engine before the command came
(`jackline.forkserver`), over a socket of their own (`NAME.engine`). Decisions (`approve`,
`resume`...) launch the engine with a queue of their own, written down before the launch so
that a workflow they take over starts at once; an idle spare with such a queue would look at
it five times a second, for as long as the server lives: they are forked as any command."""


class Unavailable(Exception):
    """No server could take the command; it runs in this process."""


def main() -> None:
    argv = sys.argv[1:]
    if wanted(argv, os.environ):
        try:
            conn = connect(engine=engine_wanted(argv, os.environ))
        except (Unavailable, OSError):
            conn = None
        if conn is not None:
            try:
                answers = hand_over(conn, argv)
            except (Unavailable, OSError, ValueError):
                # Closed before running it here: a command the server may have started dies
                # with the connection (`forkserver._watch`), so it never runs twice.
                conn.close()
            else:
                follow(conn, answers)  # never returns
    from jackline.cli import main as here

    here()


def wanted(argv: list[str], env: Mapping[str, str]) -> bool:
    if sys.platform != "linux" or not hasattr(os, "pidfd_open"):
        return False
    if STAYS_UP.intersection(argv):
        return False
    chosen = env.get("JACKLINE_FORK_SERVER", "").strip()
    if chosen in ("0", "1"):
        return chosen == "1"
    return any(_isatty(fd) for fd in (0, 1, 2))


def engine_wanted(argv: list[str], env: Mapping[str, str]) -> bool:
    """Whether the command launches this machine's workflow engine: one of `ENGINE_COMMANDS`,
    not sent to a server (`--server`, `JACKLINE_SERVER`). A wrong guess costs nothing but the
    spare: any command runs the same in it. `JACKLINE_FORK_SERVER_SPARE=0`: never."""
    if env.get("JACKLINE_FORK_SERVER_SPARE", "").strip() == "0":
        return False
    if env.get("JACKLINE_SERVER") or any(a.split("=")[0] == "--server" for a in argv):
        return False
    return next((a for a in argv if not a.startswith("-")), None) in ENGINE_COMMANDS


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def home() -> str:
    return os.path.expanduser(os.environ.get("JACKLINE_HOME") or "~/.jackline")


PACKAGE = os.path.dirname(os.path.abspath(__file__))


def fingerprint(package: str = PACKAGE) -> str:
    """What the server's code must match: this interpreter, where Jackline is imported from
    (and PYTHONPATH, which could change that), and its newest source file."""
    import hashlib

    newest = 0
    folders = [package]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        folders.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
    said = f"{sys.executable}\0{package}\0{os.environ.get('PYTHONPATH', '')}\0{newest}"
    return hashlib.sha256(said.encode()).hexdigest()[:20]


def folder() -> int:
    """`$JACKLINE_HOME/fork`, opened: made with mode 0700 if missing; refused unless it is a
    folder (not a link) this user owns that nobody else may enter."""
    base = home()
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, "fork")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise Unavailable(f"{path} is not this user's own (mode 0700)")
    return fd


def connect(engine: bool = False) -> socket.socket:
    """A connection to this code's server: for a command that launches the engine, to its
    engine socket (`NAME.engine`), else to `NAME.sock`. Where none listens, one is started for
    the next command, and this one runs in its own process: no command waits for the server to
    start (about a second of imports)."""
    fd = folder()
    try:
        name = fingerprint()
        # The folder by its descriptor: a socket's path may not be longer than 107 bytes.
        for suffix in (".engine", ".sock") if engine else (".sock",):
            conn = _try(f"/proc/self/fd/{fd}/{name}{suffix}")
            if conn is not None:
                return conn
        import fcntl

        # The server holds its lock file for as long as it lives: free, nobody serves or is
        # starting to.
        lock = os.open(f"/proc/self/fd/{fd}/{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Unavailable("the fork server is starting") from None
        finally:
            os.close(lock)
        _start(fd, name)
        raise Unavailable("the fork server was started for the next command")
    finally:
        os.close(fd)


def _try(address: str) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(address)
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    except BaseException:
        conn.close()
        raise
    return conn


def _start(fd: int, name: str) -> None:
    """Start the server for this code: detached (forked twice, in a session of its own, so it is
    nobody's child and no terminal's), its output in its log."""
    logs = os.path.join(home(), "logs")
    os.makedirs(logs, exist_ok=True)
    argv = [sys.executable, "-m", "jackline.forkserver", os.path.realpath(f"/proc/self/fd/{fd}")]
    log = os.open(os.path.join(logs, "forkserver.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                # Ignored here (a shell's background job ignores SIGINT) must not mean ignored
                # in every command the server will run: the signals a command hears start as
                # default.
                for signum in SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                os.execv(sys.executable, [*argv, name])
        finally:
            os._exit(0)
    os.close(log)
    os.waitpid(middle, 0)


def hand_over(conn: socket.socket, argv: list[str]) -> BinaryIO:
    """Send the command and this process's standard streams; once the server says the command
    started, what it says next (`follow`)."""
    umask = os.umask(0)
    os.umask(umask)
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask}
    send_request(conn, request, {fd: fd for fd in (0, 1, 2) if _is_open(fd)})
    answers = conn.makefile("rb")
    answer = _line(answers)
    if answer is None or "pid" not in answer:
        raise Unavailable(f"the fork server answered {answer!r}")
    return answers


def send_request(conn: socket.socket, request: Mapping[str, object], fds: dict[int, int]) -> None:
    """The request's wire form: its size and which standard streams come (a byte, bit N for
    stream N) with the descriptors themselves, then the request as JSON. `fds` maps a stream's
    number to the descriptor that stands for it here."""
    body = json.dumps(request).encode()
    numbers = sorted(fds)
    header = struct.pack("!I", len(body)) + bytes([sum(1 << fd for fd in numbers)])
    socket.send_fds(conn, [header], [fds[n] for n in numbers])
    conn.sendall(body)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _line(answers: BinaryIO) -> dict[str, int] | None:
    """The server's next message (one JSON object a line), None when it hung up."""
    line = answers.readline()
    if not line.endswith(b"\n"):
        return None
    answer: dict[str, int] = json.loads(line)
    return answer


def follow(conn: socket.socket, answers: BinaryIO) -> None:
    """Forward this process's signals to the command until it ends; end as it did."""

    def forward(signum: int, _frame: object) -> None:
        try:
            conn.sendall(json.dumps({"signal": signum}).encode() + b"\n")
        except OSError:
            pass

    for signum in SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:  # ignored here: so it is for the command
            signal.signal(signum, forward)
    answer = _line(answers)
    if answer is None:
        os.write(2, b"Error: the fork server went away before the command ended\n")
        os._exit(70)
    if "signal" in answer:  # ended by a signal: so is this process, as the shell expects
        ended_by = int(answer["signal"])
        signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
        os._exit(128 + ended_by)
    os._exit(int(answer.get("exit", 70)))


if __name__ == "__main__":
    main()
