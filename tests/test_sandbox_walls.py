"""The sandbox's walls against a hostile command: real bubblewrap; real Redis and PostgreSQL
listening on the host's unix sockets; real files beside the workspace and in the user's
repository; and the bounds on its tmpfs and on what it may add to its workspace.

The commands run where a real machine keeps things: the workspaces of these tests sit under
/var/tmp (outside the home and the sandbox's private /tmp, as a user's checkout under /srv or
/work would), and the sockets under /run and /var/run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, unmount_under

from jackline import proc, sandbox
from jackline.config import SandboxConfig
from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

PROBE = """\
import os, socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    try:
        s.connect(path)
        s.sendall(b"PING\\r\\n")
        print("REACHED", path, s.recv(64), flush=True)
    except OSError as e:
        print("BLOCKED", path, e, flush=True)
for folder in ("/run", "/var/run", "/srv", "/mnt", "/media", "/home", "/root/.ssh", "/var/lib"):
    print("EXISTS" if os.path.exists(folder) else "ABSENT", folder, flush=True)
"""


@pytest.fixture
def outside() -> Iterator[Path]:
    """A folder outside the home and /tmp: where a user's repositories and Jackline's state
    may live on a real machine, and what the sandbox used to show read-only."""
    root = Path(tempfile.mkdtemp(prefix="jl-walls-", dir="/var/tmp"))
    yield root
    unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)


def inside(
    where: Path, command: str | list[str], timeout: float = 60, **box: object
) -> proc.Completed:
    """Run `command` in a fresh workspace under `where`, in the sandbox `[sandbox]` `box` says."""
    ws = where / f"ws-{uuid.uuid4().hex[:8]}"
    ws.mkdir()
    jail = sandbox.jail_for(SandboxConfig.model_validate(box), ws)
    env = sandbox.scrub(os.environ)
    return proc.run(command, ws, env, where / f"{ws.name}.log", timeout, jail=jail)


def _listen(path: Path) -> socket.socket:
    """A unix socket that answers whoever connects, as a host's service would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"+PONG\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return server


def _wait_for(path: Path, proc_: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        if proc_.poll() is not None or time.monotonic() > deadline:
            pytest.skip(f"{what} did not start")
        time.sleep(0.05)


@pytest.fixture
def redis_socket() -> Iterator[Path]:
    if shutil.which("redis-server") is None or not os.access("/run", os.W_OK):
        pytest.skip("redis-server is not installed, or /run is not writable here")
    path = Path(f"/run/jl-test-redis-{uuid.uuid4().hex[:8]}.sock")
    server = subprocess.Popen(
        ["redis-server", "--unixsocket", str(path), "--port", "0", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for(path, server, "redis-server")
        yield path
    finally:
        server.terminate()
        server.wait()
        path.unlink(missing_ok=True)


@pytest.fixture
def postgres_socket() -> Iterator[Path]:
    """A real PostgreSQL listening only on a unix socket under /run (as root cannot run it, it
    runs as the `postgres` user)."""
    binaries = Path("/usr/local/bin")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user")
    if not (binaries / "postgres").exists() or os.geteuid() != 0:
        pytest.skip("PostgreSQL is not installed, or this is not root")
    data = Path(tempfile.mkdtemp(prefix="jl-walls-pg-"))
    sockets = Path(f"/run/jl-test-pg-{uuid.uuid4().hex[:8]}")
    sockets.mkdir()
    shutil.chown(data, "postgres")
    shutil.chown(sockets, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(binaries / "initdb"), "-D", str(data / "db"), "-A", "trust", "-N"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*as_pg, str(binaries / "postgres"), "-D", str(data / "db"), "-k", str(sockets)]
        + ["-p", "5432", "-c", "listen_addresses="],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    path = sockets / ".s.PGSQL.5432"
    try:
        _wait_for(path, server, "postgres")
        yield path
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(sockets, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


def test_host_services_on_unix_sockets_cannot_be_reached(
    outside: Path, redis_socket: Path, postgres_socket: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    dbus = Path(f"/run/jl-test-dbus-{tag}/system_bus_socket")
    docker = Path(f"/var/run/jl-test-docker-{tag}.sock")
    beside = outside / "beside.sock"
    listeners = [_listen(p) for p in (dbus, docker, beside)]
    try:
        targets = [redis_socket, postgres_socket, dbus, docker, beside]
        # The host reaches each of them: the attack is real.
        for target in targets:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(target))
        done = inside(outside, [sys.executable, "-c", PROBE, *map(str, targets)])
    finally:
        for listener in listeners:
            listener.close()
        shutil.rmtree(dbus.parent, ignore_errors=True)
        docker.unlink(missing_ok=True)
    said = done.output
    assert not [line for line in said.splitlines() if line.startswith("REACHED")], said
    for target in targets:
        assert f"BLOCKED {target}" in said, said
    # Not one hole per socket: the folders that hold them are simply not there.
    for folder in ("/run", "/var/run", "/srv", "/mnt", "/media", "/home", "/root/.ssh"):
        assert f"ABSENT {folder}" in said, said


def test_a_sibling_of_the_workspace_and_the_users_repository_cannot_be_read(
    outside: Path,
) -> None:
    project = Project(outside / "project", outside / "project" / "home")
    project.root.mkdir()
    other = project.root / "other-repo"
    other.mkdir()
    (other / "secret.txt").write_text("SIBLING-MARKER\n")
    attempts = [
        f"cat {project.repo}/.env",  # the user's own checkout, uncommitted
        f"cat {other}/secret.txt",  # another repository beside it
        f"ls {project.repo}",
        "cat /etc/shadow",  # still hidden
    ]
    commands = [
        f"({c}) 2>/dev/null | grep -q . && echo 'ESCAPE{n} SUCCEEDED' || echo 'ESCAPE{n} blocked'"
        for n, c in enumerate(attempts, 1)
    ]
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")}, commands=commands)])
    project.create(agent)
    (project.repo / ".env").write_text("DATABASE_PASSWORD=REPO-ENV-MARKER\n")
    run = project.jl_json("run", "Fix add", user=pwd.getpwuid(os.getuid()).pw_name)
    assert run["status"] == "awaiting_review", run
    tail = next(
        e["tail"]
        for e in project.events(run["id"])
        if e["kind"] == "command" and e["step"] == "agent"
    )
    said = set(tail.splitlines())
    for n in range(1, len(attempts) + 1):
        assert f"ESCAPE{n} blocked" in said, tail
    log = (project.home / "runs" / run["id"] / "round-1" / "agent.log").read_text()
    assert "REPO-ENV-MARKER" not in log and "SIBLING-MARKER" not in log


def test_a_folder_beside_the_workspace_cannot_be_read(outside: Path) -> None:
    (outside / "sibling").mkdir()
    (outside / "sibling" / "notes.txt").write_text("SIBLING-MARKER\n")
    done = inside(outside, f"cat {outside}/sibling/notes.txt; ls {outside}; echo done")
    assert "SIBLING-MARKER" not in done.output
    assert "No such file or directory" in done.output
    assert done.output.rstrip().endswith("done")


def test_commands_find_what_real_tools_need(outside: Path) -> None:
    python = sys.executable
    checks = [
        "id -un",  # /etc/passwd
        "git --version",
        "test -s /etc/resolv.conf && echo resolv",
        "test -e /usr/share/zoneinfo/UTC && echo zoneinfo",
        f"{python} -c 'import ssl; print(ssl.create_default_context().cert_store_stats()[\"x509_ca\"] > 0)'",
        f"{python} -c 'import multiprocessing; multiprocessing.Lock(); print(\"shm\")'",
        "echo x > /var/tmp/scratch && cat /var/tmp/scratch",
        "cat /etc/shadow | wc -c",
    ]
    done = inside(outside, " && ".join(checks))
    lines = done.output.splitlines()
    assert done.exit_code == 0, done.output
    assert "root" in lines and "resolv" in lines and "zoneinfo" in lines, done.output
    assert "True" in lines and "shm" in lines and "x" in lines, done.output
    assert lines[-1].strip() == "0", done.output  # /etc/shadow is empty inside


def test_a_virtualenv_outside_the_home_on_path_works_inside(
    outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = outside / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:{os.environ['PATH']}")
    done = inside(outside, 'python -c "import sys; print(sys.prefix)"')
    assert done.output.splitlines()[-1] == str(venv), done.output


def _tool(folder: Path, name: str) -> None:
    folder.mkdir(parents=True)
    (folder / name).write_text(f"#!/bin/sh\necho {name} ran\n")
    (folder / name).chmod(0o755)


def test_a_folder_put_on_path_is_shown_to_the_very_next_command(
    outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tool folders are found once a minute for a PATH (`bubblewrap.tools`), not once a
    # command: a new PATH is looked at anew.
    assert inside(outside, "true").exit_code == 0
    _tool(outside / "more" / "bin", "hello")
    monkeypatch.setenv("PATH", f"{outside / 'more' / 'bin'}:{os.environ['PATH']}")
    done = inside(outside, "hello")
    assert done.output.splitlines()[-1] == "hello ran", done.output


def test_a_tool_folder_removed_after_it_was_found_does_not_break_the_next_command(
    outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tool(outside / "tools" / "bin", "hello")
    monkeypatch.setenv("PATH", f"{outside / 'tools' / 'bin'}:{os.environ['PATH']}")
    assert inside(outside, "hello").output.splitlines()[-1] == "hello ran"
    shutil.rmtree(outside / "tools")
    done = inside(outside, "hello; echo next")
    assert done.exit_code == 0 and done.output.splitlines()[-1] == "next", done.output


def _marked_state(folder: Path) -> Path:
    """A folder of Jackline's state holding a file a command must not read."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("STATE-MARKER\n")
    return folder


def test_jacklines_state_stays_hidden_under_a_folder_shown_read_only(
    outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _marked_state(outside / "shown" / "state")
    monkeypatch.setenv("JACKLINE_HOME", str(state))
    done = inside(
        outside, f"cat {state}/notes.txt; ls -a {state}; echo done", readable=[str(state.parent)]
    )
    seen = done.output.splitlines()[1:]  # past the command line the log starts with
    assert seen == ["cat: " + f"{state}/notes.txt: No such file or directory", ".", "..", "done"]


def test_the_state_reached_through_a_link_stays_hidden_where_its_real_folder_is_shown(
    outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JACKLINE_HOME names a link; the folder it leads to lies under a folder shown read-only.
    real = _marked_state(outside / "data" / "state")
    link = outside / "linked-state"
    link.symlink_to(real)
    monkeypatch.setenv("JACKLINE_HOME", str(link))
    done = inside(outside, f"cat {real}/notes.txt; echo done", readable=[str(real.parent)])
    assert "STATE-MARKER" not in done.output, done.output
    assert done.output.splitlines()[-1] == "done", done.output


def test_the_state_costs_no_mount_where_nothing_shown_holds_it(
    outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under the sandbox's own /tmp or home the state is out of view already: a hiding folder
    # there would be two mounts more on every command.
    from jackline.sandbox.bubblewrap import Bubblewrap

    state = Path(tempfile.mkdtemp(prefix="jl-state-"))  # under /tmp
    monkeypatch.setenv("JACKLINE_HOME", str(state))
    try:
        argv = Bubblewrap().wrap(["true"], sandbox.Spec(workspace=outside))
        assert str(state) not in argv
        argv = Bubblewrap().wrap(["true"], sandbox.Spec(workspace=outside, readable=(state,)))
        hiding = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--tmpfs"]
        assert str(state) in hiding
    finally:
        shutil.rmtree(state)


@pytest.mark.parametrize("folder", ["/tmp", "$HOME", "/dev/shm", "/var/tmp"])
def test_a_private_tmpfs_holds_at_most_tmp_mb_so_memory_mb_cannot_be_dodged(
    outside: Path, folder: str
) -> None:
    fill = f"dd if=/dev/zero of={folder}/fill bs=1M count=1024 2>&1; df -m {folder} | tail -1"
    done = inside(outside, fill, tmp_mb=256, memory_mb=256)
    assert "No space left on device" in done.output, done.output
    assert "1073741824 bytes" not in done.output, done.output


@pytest.mark.parametrize("folder", ["/", "/dev", "/etc/ssh", "/usr"])
def test_the_rest_of_the_sandbox_is_read_only(outside: Path, folder: str) -> None:
    done = inside(outside, f"echo x > {folder}/planted 2>&1; echo rc=$?")
    assert "Read-only file system" in done.output, done.output


def test_a_command_that_fills_its_workspace_is_ended_with_a_clear_message(
    outside: Path,
) -> None:
    # 1 MiB files (each under the per-file cap), paced so the test stays gentle on the disk
    # even where nothing stops it: at most 300 MiB.
    writer = (
        "import time\n"
        "for i in range(300):\n"
        "    with open(f'fill-{i}', 'wb') as f:\n"
        "        f.write(b'x' * (1 << 20))\n"
        "    time.sleep(0.01)\n"
        "print('wrote it all', flush=True)\n"
    )
    done = inside(outside, [sys.executable, "-c", writer], disk_mb=64)
    assert "the workspace grew past [sandbox] disk_mb = 64" in done.output, done.output
    assert "wrote it all" not in done.output.splitlines()
    assert done.exit_code != 0
    ws = next(p for p in outside.iterdir() if p.is_dir())
    grown = sum(f.stat().st_size for f in ws.iterdir())
    assert grown < 200 << 20


def test_one_file_may_not_grow_past_disk_mb(outside: Path) -> None:
    writer = (
        "try:\n"
        "    with open('big', 'wb') as f:\n"
        "        f.write(b'x' * (100 << 20))\n"
        "except OSError as e:\n"
        "    print('refused:', e.strerror, flush=True)\n"
    )
    done = inside(outside, [sys.executable, "-c", writer], disk_mb=64)
    assert "refused: File too large" in done.output, done.output


def test_a_command_within_its_bounds_is_left_alone(outside: Path) -> None:
    writer = "head -c 8388608 /dev/zero > data && head -c 8388608 /dev/zero > /tmp/t && echo ok"
    done = inside(outside, writer, disk_mb=64, tmp_mb=64)
    assert done.exit_code == 0 and done.output.rstrip().endswith("ok"), done.output


@pytest.mark.parametrize(
    "line",
    ["tmp_mb = 0", "tmp_mb = -5", 'tmp_mb = "lots"', "disk_mb = -1", 'disk_mb = "10G"'],
)
def test_a_bad_bound_is_a_config_error_naming_the_key(project: Project, line: str) -> None:
    project.create(ScriptedAgent([Round()]), extra=f"\n[sandbox]\n{line}\n")
    done = project.jl("validate", ok=False)
    assert done.returncode == 2
    key = line.split(" ")[0]
    assert f"sandbox.{key}" in done.stderr, done.stderr
