"""The sandbox against an agent that tries to get out: real bubblewrap, a real run, real files,
a real server on the host's loopback."""

from __future__ import annotations

import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Project, git

from jackline.testing import Replace, Round, ScriptedAgent

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


@pytest.fixture
def server() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"reached")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], hits
    httpd.shutdown()


def _attempt(n: int, command: str) -> str:
    return f"({command}) >/dev/null 2>&1 && echo 'ESCAPE{n} SUCCEEDED' || echo 'ESCAPE{n} blocked'"


def test_escape_attempts_fail_and_the_run_goes_on(
    project: Project, server: tuple[int, list[str]]
) -> None:
    port, hits = server
    home = project.root / "userhome"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE-KEY-MARKER\n")
    outside = project.root / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("original\n")
    python = sys.executable
    reach = f"{python} -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/x', timeout=3)\""
    attempts = [
        f"echo pwned > {outside}/target.txt",  # an absolute path outside
        "echo pwned > ../../../outside/target.txt",  # climbing out with ..
        f"ln -s {outside} escape && echo pwned > escape/target.txt",  # a planted symlink
        f"cat {home}/.ssh/id_rsa",  # the user's keys
        f"cat {project.home}/jackline.db",  # the harness's database
        'test -n "$AWS_SECRET_ACCESS_KEY" && echo "$AWS_SECRET_ACCESS_KEY"',  # its environment
        reach,  # the network
        f"git -C {project.repo} update-ref refs/heads/main HEAD",  # the user's refs
        f"echo x > {project.repo}/.git/refs/heads/evil",
    ]
    agent = ScriptedAgent(
        [
            Round(
                edits={"calc.py": Replace("a - b", "a + b")},
                commands=[_attempt(n, c) for n, c in enumerate(attempts, 1)],
            )
        ]
    )
    project.create(agent)
    project.env["HOME"] = str(home)
    project.env["AWS_SECRET_ACCESS_KEY"] = "harness-only-credential-value"
    main_before = git(project.repo, "rev-parse", "main")

    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run

    tail = next(
        e["tail"]
        for e in project.events(run["id"])
        if e["kind"] == "command" and e["step"] == "agent"
    )
    said = set(tail.splitlines())
    for n in range(1, len(attempts) + 1):
        assert f"ESCAPE{n} blocked" in said, tail
        assert f"ESCAPE{n} SUCCEEDED" not in said, tail
    assert (outside / "target.txt").read_text() == "original\n"
    assert not (project.home / "outside").exists()
    assert hits == []
    assert git(project.repo, "rev-parse", "main") == main_before
    assert not (project.repo / ".git" / "refs" / "heads" / "evil").exists()
    events = project.events(run["id"])
    workspace = next(e for e in events if e["kind"] == "workspace")
    assert workspace["sandbox"] == "bubblewrap"


def test_checks_run_in_the_sandbox_too(project: Project, server: tuple[int, list[str]]) -> None:
    port, hits = server
    probe = (
        "import urllib.request, pathlib, os\n"
        "def test_add():\n"
        "    from calc import add\n"
        "    assert add(2, 3) == 5\n"
        "def test_sandbox():\n"
        f"    assert not pathlib.Path({str(project.home / 'jackline.db')!r}).exists()\n"
        "    assert 'JACKLINE_HOME' not in os.environ\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://127.0.0.1:{port}/from-check', timeout=3)\n"
        "    except OSError:\n"
        "        return\n"
        "    raise AssertionError('the check reached the network')\n"
    )
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})])
    project.create(agent, files={"test_calc.py": probe})
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert hits == []


def test_mode_none_warns_on_every_run(project: Project) -> None:
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})])
    project.create(agent, extra='\n[sandbox]\nmode = "none"\n')
    done = project.jl("run", "Fix add")
    assert 'sandbox mode is "none"' in done.stderr
    run_id = json.loads(project.jl("runs", "--json").stdout)[0]["id"]
    assert any(e["kind"] == "warning" for e in project.events(run_id))


def test_a_missing_bubblewrap_refuses_the_run_and_says_how_to_install_it(
    project: Project, tmp_path: Path
) -> None:
    agent = ScriptedAgent([Round(edits={"calc.py": Replace("a - b", "a + b")})])
    project.create(agent)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    project.env["PATH"] = str(bin_dir)
    done = project.jl("run", "Fix add", ok=False)
    assert done.returncode == 1
    assert "apt-get install bubblewrap" in done.stderr
    assert 'mode = "none"' in done.stderr
    assert json.loads(project.jl("runs", "--json").stdout) == []


def test_allowed_hosts_go_through_the_proxy_and_others_fail_fast(
    project: Project, server: tuple[int, list[str]]
) -> None:
    port, hits = server
    fetch = (
        f'{sys.executable} -c "import sys, urllib.request; '
        'print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"'
    )
    agent = ScriptedAgent(
        [
            Round(
                edits={"calc.py": Replace("a - b", "a + b")},
                commands=[
                    f"{fetch} http://127.0.0.1:{port}/allowed",
                    f"{fetch} http://denied.example/ 2>&1 | tail -1",
                ],
            )
        ]
    )
    readable = json.dumps(str(project.root / "agent.json"))
    project.create(
        agent, extra=f'\n[sandbox]\nallow_network = ["127.0.0.1"]\nreadable = [{readable}]\n'
    )
    run = project.jl_json("run", "Fix add")
    assert run["status"] == "awaiting_review", run
    assert hits == ["/allowed"]
    log = (project.home / "runs" / run["id"] / "round-1" / "agent.log").read_text()
    assert "reached" in log
    assert "network access to denied.example:80 is not allowed" in log
    network = [e for e in project.events(run["id"]) if e["kind"] == "network"]
    assert {(e["host"], e["allowed"]) for e in network} >= {
        ("127.0.0.1", True),
        ("denied.example", False),
    }


def test_a_host_that_is_not_a_host_is_a_config_error(project: Project) -> None:
    agent = ScriptedAgent([Round()])
    project.create(agent, extra='\n[sandbox]\nallow_network = ["https://pypi.org"]\n')
    done = project.jl("validate", ok=False)
    assert done.returncode == 2
    assert "sandbox.allow_network" in done.stderr and "https://pypi.org" in done.stderr


def _forks(tmp_path: Path, max_processes: int) -> int:
    from jackline import proc, sandbox
    from jackline.config import SandboxConfig

    ws = tmp_path / f"ws-{max_processes}"
    ws.mkdir()
    jail = sandbox.jail_for(SandboxConfig(max_processes=max_processes), ws)
    forker = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(60):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(n, flush=True)\n"
        "os._exit(0)\n"
    )
    done = proc.run([sys.executable, "-c", forker], ws, {}, tmp_path / "log", 30, jail=jail)
    return int(done.output.strip().splitlines()[-1])


def test_the_process_limit_holds_for_root_too(tmp_path: Path) -> None:
    from jackline.sandbox import cgroup

    if cgroup.parent() is None:
        pytest.skip("no pids cgroup can be made here; the rlimit is the only bound")
    before = set(cgroup.parent().iterdir())  # type: ignore[union-attr]
    # The kernel exempts root from RLIMIT_NPROC; the command's own pids cgroup is not.
    assert _forks(tmp_path, 0) == 60
    assert _forks(tmp_path, 16) < 16
    # Removed: no group made meanwhile stays empty. Other commands on the machine (a parallel
    # suite's) make and remove groups of their own meanwhile, each holding its processes.
    made = set(cgroup.parent().iterdir()) - before  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while (
        left := [g for g in made if g.exists() and not _procs(g)]
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left


def _procs(group: Path) -> str:
    try:
        return (group / "cgroup.procs").read_text().strip()
    except FileNotFoundError:
        return ""


def test_a_commands_cgroup_is_removed_with_what_it_left_running(tmp_path: Path) -> None:
    from jackline.sandbox import cgroup

    group = cgroup.limit(64)
    if group is None:
        pytest.skip("no pids cgroup can be made here; the rlimit is the only bound")
    left = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: cgroup.join(group))
    try:
        assert _procs(group) == str(left.pid)
        cgroup.remove(group)
        assert left.wait(timeout=5) == -signal.SIGKILL
        assert not group.exists()
    finally:
        left.kill()
        left.wait()


def test_a_sandboxed_command_starts_with_its_limits_and_nothing_on_its_input(
    tmp_path: Path,
) -> None:
    # The limits are set from outside while the command waits behind `proc.GATE` (no
    # `preexec_fn`, which made Python fork the whole harness): they must hold all the same.
    from jackline import proc, sandbox
    from jackline.config import SandboxConfig

    box = SandboxConfig(memory_mb=3000, open_files=500, max_processes=300, disk_mb=7)
    ws = tmp_path / "ws"
    ws.mkdir()
    script = "ulimit -v; ulimit -n; ulimit -f; readlink /proc/self/fd/0; cat; echo read"
    jail = sandbox.jail_for(box, ws)
    done = proc.run(
        script, ws, sandbox.scrub({"PATH": "/usr/bin:/bin"}), tmp_path / "log", 30, jail=jail
    )
    # `ulimit -f` counts blocks of 512 bytes in dash, of 1024 in bash.
    blocks = str(7 * 1024 * 1024 // (512 if Path("/bin/sh").resolve().name == "dash" else 1024))
    lines = done.output.splitlines()[1:]
    assert lines == [str(3000 * 1024), "500", blocks, "/dev/null", "read"], done.output


def test_the_gate_runs_nothing_unless_the_harness_opens_it(tmp_path: Path) -> None:
    from jackline import proc

    marker = tmp_path / "ran"
    argv = ["/bin/sh", "-c", proc.GATE, "jackline-gate", "", "touch", str(marker)]
    shut = subprocess.run(argv, input=b"", timeout=10, check=False)  # the harness failed first
    assert shut.returncode != 0 and not marker.exists()
    opened = subprocess.run(argv, input=b"\n", timeout=10, check=False)
    assert opened.returncode == 0 and marker.exists()
    # A gate told to move itself into a group it cannot join runs nothing either.
    marker.unlink()
    nowhere = str(tmp_path / "no-such-group" / "tasks")
    argv = ["/bin/sh", "-c", proc.GATE, "jackline-gate", nowhere, "touch", str(marker)]
    refused = subprocess.run(argv, input=b"\n", timeout=10, check=False, capture_output=True)
    assert refused.returncode == 125 and not marker.exists(), refused


def test_on_cgroup_v1_the_gate_moves_itself_into_the_commands_group(tmp_path: Path) -> None:
    from jackline import proc
    from jackline.sandbox import cgroup

    group = cgroup.limit(8)
    moves = cgroup.own_move(group) if group is not None else None
    if group is None or moves is None:
        pytest.skip("no cgroup v1 pids group can be made here (v2 moves the gate from outside)")
    try:
        argv = ["/bin/sh", "-c", proc.GATE, "jackline-gate", str(moves), "cat", "/proc/self/cgroup"]
        done = subprocess.run(argv, input=b"\n", timeout=10, capture_output=True, check=True)
        assert f"pids:/{group.name}" in done.stdout.decode(), done.stdout
    finally:
        cgroup.remove(group)
