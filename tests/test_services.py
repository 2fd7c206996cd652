"""Services per workspace: real processes started for each workspace on their own host port,
reached from inside the sandbox on the port the project expects, stopped with the workspace."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
from conftest import Project

from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

PY = sys.executable
# A real HTTP server per workspace; its data folder says which host port it got.
WEB = f"""
[services.web]
start = "echo svc-{{port}} > {{dir}}/whoami && exec {PY} -m http.server {{port}} --bind 127.0.0.1 --directory {{dir}}"
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


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _gone(port: int, within: float = 10) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        if not _listening(port):
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

    ports = []
    for run in (first, second):
        (svc,) = _services(project, run["id"])
        assert svc["name"] == "web" and svc["port"] == 8080 and svc["alive"]
        seen = (Path(run["workspace"]) / "seen.txt").read_text().split()
        # Inside, port 8080 is this workspace's own server, which got its own host port.
        assert seen == [f"svc-{svc['host_port']}", "8080"]
        ports.append(svc["host_port"])
    assert ports[0] != ports[1]
    assert all(_listening(p) for p in ports)

    # The data folder lives beside the workspace, not in it: the change holds no service files.
    assert "whoami" not in project.jl_json("show", first["id"])["handoff"]

    project.jl("reject", first["id"], "-m", "not this one", user="bob")
    assert _gone(ports[0]), "the rejected run's service still listens"
    assert _listening(ports[1])
    project.jl("approve", second["id"], user="bob")
    assert project.jl_json("show", second["id"])["status"] == "merged"
    assert _gone(ports[1])


def test_a_warm_workspace_comes_with_its_services_running(project: Project) -> None:
    project.create(_agent(FETCH), extra=WEB + "\n[pool]\nsize = 1\n")
    project.jl_json("pool", "warm")
    slot = project.jl_json("pool", "status")["warm"][0]
    record = json.loads((Path(slot["path"] + ".services") / "services.json").read_text())
    host_port = record[0]["host_port"]
    assert _listening(host_port)
    assert slot["services"] == [
        {"name": "web", "port": 8080, "host_port": host_port, "alive": True}
    ]
    assert "services web:8080" in project.jl("pool", "status").stdout

    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert run["workspace"] == slot["path"]
    (svc,) = _services(project, run["id"])
    assert svc["host_port"] == host_port  # the same server, started before the run asked
    assert (Path(run["workspace"]) / "seen.txt").read_text().split()[0] == f"svc-{host_port}"

    project.jl("reject", run["id"], "-m", "no", user="bob")
    assert _gone(host_port)
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
    ports = [_services(project, r["id"])[0]["host_port"] for r in (first, second)]
    assert ports[0] != ports[1]
    for run in (first, second):
        project.jl("reject", run["id"], "-m", "done", user="bob")
    assert all(_gone(p) for p in ports)


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
    project.jl("reject", run["id"], "-m", "no", user="bob")
    project.jl_json("pool", "clear")


def test_a_half_built_snapshot_a_crash_left_is_swept(project: Project) -> None:
    project.create(_agent(), extra='\n[workspace]\nsetup = ["echo built > built.txt"]\n')
    crashed = project.home / "snapshots" / ".build-deadbeef"
    crashed.mkdir(parents=True)
    (crashed / "half.txt").write_text("a builder died here\n")
    project.jl_json("pool", "warm", "--size", "0")
    assert not crashed.exists()
