"""The fork server (`jackline.launch`, `jackline.forkserver`): a command typed at a terminal
runs forked from a process that has Jackline imported, and is told, heard and ended as if it
ran in the person's own process. Real processes, a real terminal (a pty), a real sandboxed
agent that tries to reach the server."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Project
from test_interrupt_cancel import MARKER, SLOW_ONCE, ctrl_c_heard, gone, wait_for_agent
from typer.main import get_command

from jackline import launch
from jackline.cli import app
from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.real_cli

FIX = Round(edits={"calc.py": Replace("a - b", "a + b")})

LAUNCH = [sys.executable, "-m", "jackline.launch"]
"""What the `jackline` script runs (`jackline.launch:main`)."""


def typed(
    project: Project, *args: str, server: str = "1", **more: str
) -> subprocess.CompletedProcess[str]:
    """`jackline ARGS` as the script runs it, through the fork server unless `server` is "0";
    `more`: variables added to the project's environment."""
    env = {**project.env, "JACKLINE_FORK_SERVER": server, **more}
    return subprocess.run(
        [*LAUNCH, *args], cwd=project.repo, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def aged(said: str) -> str:
    """What a command said, its runs' ages (`1s`, `2m`) left out: they move between two calls,
    and the width of their column with them."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\b\d+[smhd]\b", "AGE", said))


def servers(project: Project) -> list[int]:
    """The pids of the fork servers the project's home has (from their log), still running."""
    log = project.home / "logs" / "forkserver.log"
    said = log.read_text() if log.exists() else ""
    pids = [
        int(line.split("(pid ")[1].split(")")[0]) for line in said.splitlines() if "(pid " in line
    ]
    return [pid for pid in dict.fromkeys(pids) if running(pid)]


def serving(project: Project) -> int:
    """The pid of the project's fork server, once it listens (the first command started it and
    ran in its own process meanwhile)."""
    deadline = time.monotonic() + 60
    while not (found := servers(project)) or not list((project.home / "fork").glob("*.sock")):
        assert time.monotonic() < deadline, "no fork server started"
        time.sleep(0.05)
    [pid] = found
    return pid


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def at_work(server: int) -> list[int]:
    """The server's descendants but its idle spare (`forkserver.Spares`), which lives on."""
    return [pid for pid in descendants(server) if not spare(pid)]


def spare(pid: int) -> bool:
    """Whether `pid` is an idle spare of a fork server (its process name says so)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("jackline-spare")
    except FileNotFoundError:
        return False


@pytest.fixture
def stop_servers(project: Project):  # type: ignore[no-untyped-def]
    yield
    for pid in servers(project):  # and what they still run, when a test failed half-way
        for child in [pid, *descendants(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_commands_through_the_fork_server_answer_as_in_their_own_process(
    project: Project, stop_servers: None
) -> None:
    project.create(ScriptedAgent([FIX]))
    run = json.loads(typed(project, "run", "Fix add", "--json").stdout)  # starts the server
    assert run["status"] == "awaiting_review", run
    server = serving(project)
    for args in (
        ["--version"], ["runs"], ["runs", "--json"], ["show", run["id"]], ["logs", run["id"]],
        ["bogus"], ["runs", "--json", "--bogus"], ["show", "run-nope"],
    ):  # fmt: skip
        there, here = typed(project, *args), typed(project, *args, server="0")
        assert (there.returncode, aged(there.stdout), there.stderr) == (
            here.returncode, aged(here.stdout), here.stderr,
        ), args  # fmt: skip
    assert servers(project) == [server], "each command went to the one server"
    # Through the server, the person's process imports the launcher alone, never Jackline's
    # command line: the command ran in the server's child (the answers above are not this
    # process falling back to running it itself).
    env = {**project.env, "JACKLINE_FORK_SERVER": "1"}
    for server_on, imported in (("1", False), ("0", True)):
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "jackline.launch", "runs"],
            cwd=project.repo, env={**env, "JACKLINE_FORK_SERVER": server_on},
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        assert traced.returncode == 0, traced.stderr
        found = re.search(r"\|\s*jackline\.cli$", traced.stderr, re.MULTILINE)
        assert (found is not None) is imported, traced.stderr[-2000:]
    folder = project.home / "fork"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [sock] = folder.glob("*.sock")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600


def test_ctrl_c_reaches_a_run_through_the_fork_server_and_kill_9_ends_it(
    project: Project, stop_servers: None
) -> None:
    project.create(ScriptedAgent([SLOW_ONCE]))
    env = {**project.env, "JACKLINE_FORK_SERVER": "1"}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*LAUNCH, "run", "Fix add"], cwd=project.repo, env=env, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=ctrl_c_heard,
        )  # fmt: skip

    assert typed(project, "--version").returncode == 0
    server = serving(project)
    person = start()
    run_id = wait_for_agent(project, person)
    working = at_work(server)
    assert working and not descendants(person.pid), "the run is the server's child, not here"
    person.send_signal(signal.SIGINT)
    _, stderr = person.communicate(timeout=60)
    assert person.returncode == 130, stderr
    assert f"jackline resume {run_id}" in stderr
    assert all(gone(pid) for pid in working), "the interrupted command ended"
    listed = {r["id"]: r["status"] for r in json.loads(typed(project, "runs", "--json").stdout)}
    assert listed[run_id] == "interrupted"

    # Killed without a word (kill -9): its command is killed as well, not left running.
    for path in project.home.glob(f"workspaces/*/{MARKER}"):
        path.unlink()
    typed(project, "cancel", run_id)
    person = start()
    wait_for_agent(project, person)
    working = at_work(server)
    person.kill()
    person.wait()
    assert all(gone(pid) for pid in working), "the command outlived its person"
    assert servers(project) == [server]


def spare_ready(project: Project, but: int = 0) -> int:
    """The pid of the server's spare command child once it says its engine launched (the
    server's log), other than `but`."""
    log = project.home / "logs" / "forkserver.log"
    deadline = time.monotonic() + 60
    while True:
        said = log.read_text() if log.exists() else ""
        found = [int(m) for m in re.findall(r"spare engine ready in process (\d+)", said)]
        if found and found[-1] != but and running(found[-1]):
            return found[-1]
        assert time.monotonic() < deadline, f"no spare's engine launched:\n{said}"
        time.sleep(0.05)


def driven_by(project: Project, run_id: str) -> str:
    executor = project.store().get_run(run_id).executor
    assert executor is not None
    return executor


def test_a_run_typed_runs_in_the_spare_whose_engine_launched_before_it(
    project: Project, stop_servers: None
) -> None:
    project.create(ScriptedAgent([FIX]))
    first = json.loads(typed(project, "run", "Fix add", "--json").stdout)  # starts the server
    assert first["status"] == "awaiting_review", first
    server = serving(project)
    ready = spare_ready(project)  # this home has an engine database now: a spare is made
    assert spare(ready)
    assert typed(project, "runs").returncode == 0
    assert running(ready) and spare(ready), "a command that launches no engine left it be"

    run = json.loads(typed(project, "run", "Fix add", "--json").stdout)
    assert run["status"] == "awaiting_review", run
    assert f"-{ready}-" in driven_by(project, run["id"]), "the run ran in the spare's process"
    assert gone(ready), "and that process ended with the command"

    # The next spare is made once that command has ended. A command whose engine would not
    # be the spare's (here: another PostgreSQL setting, which the engine's launch reads)
    # runs in a child forked for it, and the spare's engine leaves, its lock file with it.
    ready = spare_ready(project, but=ready)
    done = typed(project, "run", "Fix add", "--json", PGAPPNAME="another")
    other = json.loads(done.stdout)
    assert other["status"] == "awaiting_review", done.stdout
    assert f"-{ready}-" not in driven_by(project, other["id"])
    assert gone(ready)
    assert not list((project.home / "executors").glob(f"*-{ready}-*.lock"))

    # The server leaving ends its spare, which lets its engine go.
    ready = spare_ready(project, but=ready)
    os.kill(server, signal.SIGTERM)
    assert gone(server) and gone(ready), "the spare outlived its server"
    assert not list((project.home / "executors").glob(f"*-{ready}-*.lock"))


def test_a_terminal_gets_the_fork_server_a_script_does_not(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    env = {k: v for k, v in project.env.items() if k != "JACKLINE_FORK_SERVER"}
    env["JACKLINE_FORK_SERVER_IDLE"] = "2"
    scripted = subprocess.run(
        [*LAUNCH, "runs"], cwd=project.repo, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert scripted.returncode == 0, scripted.stderr
    assert not (project.home / "fork").exists(), "no terminal, no server"

    pid, fd = pty.fork()
    if pid == 0:  # the child: on a terminal, as a person types it
        os.chdir(project.repo)
        os.execve(sys.executable, [*LAUNCH, "--version"], env)
    said = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        said += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and b"jackline " in said, said
    server = serving(project)
    # Idle for its two seconds, it leaves on its own and says why.
    assert gone(server, within=20), "the idle server stayed"
    assert "leaves: idle for 2s" in (project.home / "logs" / "forkserver.log").read_text()


def test_only_this_user_may_use_the_fork_server(project: Project, stop_servers: None) -> None:
    project.create(ScriptedAgent([FIX]))
    assert typed(project, "--version").returncode == 0
    serving(project)
    [sock] = (project.home / "fork").glob("*.sock")
    pid = os.fork()
    if pid == 0:  # another user on the machine
        code = 1  # reached it
        try:
            os.chdir(project.home)  # a short path: a socket's may not be longer than 107 bytes
            os.setgid(65534)
            os.setuid(65534)
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(f"fork/{sock.name}")
        except PermissionError:
            code = 0
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (
        "another user reached the server (1) or erred (2)"
    )

    # A fork folder others may enter is not used: the command runs in its own process.
    for server in servers(project):
        os.kill(server, signal.SIGTERM)
        assert gone(server)
    os.chmod(project.home / "fork", 0o777)
    done = typed(project, "--version")
    assert done.returncode == 0 and done.stdout.startswith("jackline "), done.stderr
    time.sleep(1)
    assert servers(project) == [], "a server was started in a folder others may enter"


def test_a_hostile_agent_cannot_reach_the_fork_server(project: Project, stop_servers: None) -> None:
    project.create(ScriptedAgent([FIX]))
    assert typed(project, "--version").returncode == 0
    serving(project)
    [sock] = (project.home / "fork").glob("*.sock")
    # Both of its sockets (the engine commands' too), from their folder, by their short
    # names: a path over 107 bytes would fail on its length alone, whatever the sandbox shows.
    probe = (
        "import os, socket\n"
        f"for name in ({sock.name!r}, {sock.with_suffix('.engine').name!r}):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        f"        os.chdir({str(sock.parent)!r})\n"
        "        s.connect(name)\n"
        "        print('PROBE ' + 'REACHED')\n"  # the log echoes the command: not these words
        "    except OSError as e:\n"
        "        print('PROBE ' + 'BLOCKED', type(e).__name__)\n"
    )
    hostile = Round(
        edits={"calc.py": Replace("a - b", "a + b")},
        commands=[f"{sys.executable} -c {shlex.quote(probe)}"],
    )
    ScriptedAgent([hostile]).save(project.root / "agent.json")  # the project's agent, now hostile
    run = json.loads(typed(project, "run", "Fix add", "--json").stdout)
    log = (project.home / "runs" / run["id"] / "round-1" / "agent.log").read_text()
    assert log.count("PROBE BLOCKED FileNotFoundError") == 2 and "PROBE REACHED" not in log, log
    assert sock.with_suffix(".engine").is_socket(), "the probe looked for what is there"


def test_the_server_is_never_for_commands_that_stay_up_and_its_code_is_its_name(
    tmp_path: Path,
) -> None:
    on = {"JACKLINE_FORK_SERVER": "1"}
    assert launch.wanted(["runs"], on)
    for command in ("worker", "serve", "mcp", "guard"):
        assert not launch.wanted([command, "--x"], on), command
    assert not launch.wanted(["runs"], {"JACKLINE_FORK_SERVER": "0"})
    # The commands that launch the engine go to the spare's socket; sent to a server, none do.
    assert launch.ENGINE_COMMANDS <= set(get_command(app).commands)  # type: ignore[attr-defined]
    assert launch.engine_wanted(["run", "Fix add"], {})
    assert launch.engine_wanted(["retry", "run-1", "--json"], {})
    assert not launch.engine_wanted(["runs"], {}) and not launch.engine_wanted(["--version"], {})
    assert not launch.engine_wanted(["approve", "run-1"], {}), "a decision has its own queue"
    assert not launch.engine_wanted(["--server", "http://x", "run", "t"], {})
    assert not launch.engine_wanted(["--server=http://x", "run", "t"], {})
    assert not launch.engine_wanted(["run", "t"], {"JACKLINE_SERVER": "http://x"})
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "a.py").write_text("x = 1\n")
    before = launch.fingerprint(str(package))
    assert launch.fingerprint(str(package)) == before
    os.utime(package / "sub" / "a.py", ns=(time.time_ns() + 10**9,) * 2)
    assert launch.fingerprint(str(package)) != before, "new code, another server"


def test_the_first_commands_run_in_their_own_process_and_start_one_server(
    project: Project, stop_servers: None
) -> None:
    project.create(ScriptedAgent([FIX]))
    env = {**project.env, "JACKLINE_FORK_SERVER": "1"}
    at_once = [
        subprocess.Popen(
            [*LAUNCH, "--version"],
            cwd=project.repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(4)
    ]
    assert all(p.communicate(timeout=60)[0].startswith("jackline ") for p in at_once)
    serving(project)  # one, whoever started it
    said = (project.home / "logs" / "forkserver.log").read_text()
    assert said.count("listening") == 1, said
