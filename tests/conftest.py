"""Shared fixtures: real git repositories in temporary folders, and the CLI as a real process."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any, NoReturn

import pytest
from postgres import (  # noqa: F401 (fixtures)
    Backend,
    backend,
    before_drop,
    database_url,
    name_folder,
    pg_url,
    postgres,
    stop_cluster,
)

from jackline.store import Store
from jackline.testing import Replace, Round, ScriptedAgent


def _shared_fixtures() -> Path:
    """The public labelled fixtures (../shared/fixtures): `$JACKLINE_FIXTURES`, else beside the
    clone, else the workplace's copy."""
    for candidate in (
        os.environ.get("JACKLINE_FIXTURES", ""),
        str(Path(__file__).resolve().parents[2] / "shared" / "fixtures"),
        "/work/shared/fixtures",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return Path("/nonexistent/shared/fixtures")


SHARED_FIXTURES = _shared_fixtures()

# Every test has a Jackline home of its own; the checks' bytecode seed (`checks.bytecode.seed`)
# is shared, as on a machine: it holds only what the harness compiled from its own Python's
# libraries, so no test sees another's work through it, and no run compiles pytest again.
os.environ.setdefault(
    "JACKLINE_BYTECODE_SEED", str(Path(tempfile.gettempdir()) / "jackline-tests-bytecode")
)

# pytest keeps each test module as it rewrote its asserts (`tests/__pycache__`) only where
# bytecode may be written: under PYTHONDONTWRITEBYTECODE=1 (set on the CI machine) each of the
# six workers rewrote and compiled every test module again, about 1.4 s of CPU a worker. This
# process writes its bytecode; its environment, which the commands it starts inherit, is
# unchanged.
sys.dont_write_bytecode = False

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
CONFIG = """\
[project]
main = "main"

[checks.test]
command = "env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {python} -m pytest -q -p no:cacheprovider --junitxml={{report}}"
parser = "junit"

[scope]
forbidden = ["secret_area/**"]

[blueprint]
max_rounds = 2
"""

# The checks' pytest loads none of the plugins installed for Jackline's own tests (hypothesis,
# anyio, xdist, ...): the calc project needs none, and loading them was 0.6 s of every check.
PLAYS_SEVERAL_PEOPLE = "\n[review]\nallow_as = true  # the tests act as alice, bob, carol\n"
"""The tests name people with JACKLINE_USER and --as, which only a project that allows such
claims believes (and records as claims of the OS user running the tests)."""

WRONG = Round(edits={"calc.py": Replace("a - b", "a * b")}, message="tried multiplication")
RIGHT = Round(edits={"calc.py": Replace("a * b", "a + b")}, notes="- Assumed add means +.\n")


def git(repo: Path, *args: str) -> str:
    """git in `repo`; in a workspace or snapshot tree, with the harness's git directory beside
    it (the tree's own `.git` is the agent's, see `jackline.git.gitdir_path`)."""
    env = None
    harness = harness_gitdir(repo)
    if harness is not None:
        env = {**os.environ, "GIT_DIR": str(harness), "GIT_WORK_TREE": str(repo)}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def harness_gitdir(tree: Path) -> Path | None:
    from jackline.git import gitdir

    return gitdir(tree)


class Project:
    """A git repository with the calc bug, a jackline.toml, and helpers to drive the CLI."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        self.home = home
        self.env = {**os.environ, "JACKLINE_HOME": str(home), "JACKLINE_USER": "alice"}
        self.env["JACKLINE_FORK_SERVER"] = "0"  # test_forkserver.py starts it where it tests it
        self.env.pop("JACKLINE_DATABASE_URL", None)
        self.tokens: dict[str, str] = {}
        self.needs_worker = False
        """Team mode (`use_database`): the first command starts a worker."""
        self.workers: list[Forked | subprocess.Popen[bytes]] = []

    def create(
        self,
        agent: ScriptedAgent | list[str] | str,
        extra: str = "",
        agent_extra: str = "",
        files: dict[str, str] | None = None,
    ) -> Project:
        if isinstance(agent, ScriptedAgent):
            command: Any = ScriptedAgent.command(agent.save(self.root / "agent.json"))
        else:
            command = agent
        config = CONFIG.format(python=sys.executable) + extra
        if "[sandbox]" not in extra:  # the scripted agent reads its script from beside the repo
            config += f"\n[sandbox]\nreadable = [{json.dumps(str(self.root / 'agent.json'))}]\n"
        if "[review]" not in extra:
            config += PLAYS_SEVERAL_PEOPLE
        config += f"\n[agents.default]\ncommand = {json.dumps(command)}\n{agent_extra}"
        return self.init({**(files or {}), "jackline.toml": config})

    def init(self, files: dict[str, str]) -> Project:
        """The repository: the calc bug and its test, then `files`, committed on main."""
        self.repo.mkdir(parents=True)
        git(self.root, "init", "-q", "-b", "main", str(self.repo))
        git(self.repo, "config", "user.email", "alice@example.com")
        git(self.repo, "config", "user.name", "Alice")
        base = {"calc.py": CALC, "test_calc.py": TEST_CALC, ".gitignore": "__pycache__/\n"}
        for rel, text in {**base, **files}.items():
            (self.repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / rel).write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "calc with a bug")
        return self

    def create_preset(
        self,
        preset: str,
        model: str,
        server_url: str,
        agent: str,
        key: tuple[str, str],
        prices: tuple[float, float] = (3.0, 15.0),
        files: dict[str, str] | None = None,
    ) -> Project:
        """The repository with a real agent's preset, its model API a scripted server on
        loopback reached through the sandbox's proxy; `agent` holds the preset's own lines
        (`env`, `secrets`, `args`), `key` its API key's variable and a dummy value."""
        port = server_url.rsplit(":", 1)[1]
        config = CONFIG.format(python=sys.executable) + (
            f'\n[sandbox]\nallow_network = ["127.0.0.1:{port}"]\n'
            f'\n[budget.prices."{model}"]\ninput = {prices[0]}\noutput = {prices[1]}\n'
            f'\n[agents.default]\npreset = "{preset}"\nmodel = "{model}"\ntimeout = 120\n{agent}'
            + PLAYS_SEVERAL_PEOPLE
        )
        self.env[key[0]] = key[1]
        return self.init({**(files or {}), "jackline.toml": config})

    in_process = True
    """Whether `jl` forks this process to run the command line (see `cli_in_process`); a test
    marked `real_cli` starts `python -m jackline` as a person's shell does."""

    def env_as(self, user: str) -> dict[str, str]:
        """The environment of `user`'s commands: named with JACKLINE_USER (the project allows
        such claims), or in team mode, where only a token says who acts, with a reviewer's
        token of theirs (made in the team's database on first use)."""
        if "JACKLINE_DATABASE_URL" not in self.env:
            return {**self.env, "JACKLINE_USER": user}
        env = {k: v for k, v in self.env.items() if k != "JACKLINE_USER"}
        return {**env, "JACKLINE_TOKEN": self.token(user)}

    def token(self, user: str, role: str = "reviewer") -> str:
        if user not in self.tokens:
            from jackline import auth

            self.tokens[user] = auth.create_token(self.store(), user, role)[1]
        return self.tokens[user]

    def jl(
        self, *args: str, ok: bool = True, user: str = "alice"
    ) -> subprocess.CompletedProcess[str]:
        env = self.env_as(user)
        if self.needs_worker and not self.workers:
            self.start_worker()
        if self.in_process:
            proc = cli_in_process(list(args), self.repo, env)
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "jackline", *args],
                cwd=self.repo,
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"jackline {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def jl_json(self, *args: str, user: str = "alice") -> Any:
        """The command's JSON answer. A command that drives a run exits with its outcome (1
        failed or rejected, 3 blocked, 4 over budget), still answering with the run; an error
        (`{"error": ...}`) fails the test."""
        proc = self.jl(*args, "--json", user=user, ok=False)
        try:
            answer = json.loads(proc.stdout)
        except json.JSONDecodeError:
            answer = None
        if answer is None or (isinstance(answer, dict) and "error" in answer):
            raise AssertionError(
                f"jackline {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return answer

    def events_by_kind(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The run's events grouped by kind, each as its data."""
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for event in self.events(run_id):
            kind = event.pop("kind")
            by_kind.setdefault(kind, []).append(event)
        return by_kind

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return [{"kind": e.kind, **json.loads(e.data)} for e in self.store().events(run_id)]

    def use_database(self, url: str | None) -> Project:
        """Keep the project's runs in the PostgreSQL database at `url` (the store's tables and
        the workflow engine's), or, given None, in SQLite in its home as by default. With a
        database URL it is team mode: a worker (started with the first command) runs what is
        submitted, and each person acts with a token of theirs (`env_as`)."""
        if url:
            self.env["JACKLINE_DATABASE_URL"] = url
            self.needs_worker = True
            before_drop(url, self.stop_workers)
        return self

    def start_worker(self) -> None:
        """`jackline worker` for the project's team database, until the test ends."""
        log = self.root / f"worker-{len(self.workers)}.log"
        self.workers.append(spawn(["worker"], self.repo, self.env, log))
        deadline = time.monotonic() + 60
        while "Worker " not in log.read_text():
            assert self.workers[-1].poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the worker did not start: {log.read_text()}"
            time.sleep(0.05)

    def stop_workers(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def store(self) -> Store:
        """The store the project's commands write to: `jackline.db` in its home, or the
        PostgreSQL database its `JACKLINE_DATABASE_URL` names."""
        return Store(self.home / "jackline.db", url=self.env.get("JACKLINE_DATABASE_URL"))


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Project]:
    made = Project(tmp_path, tmp_path / "home")
    made.in_process = request.node.get_closest_marker("real_cli") is None
    yield made
    made.stop_workers()
    unmount_under(tmp_path)


def cli_in_process(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> CompletedProcess[str]:
    """`jackline ARGS` as a process of its own, forked from this one: `jackline.cli.main` runs in
    the child with the command's environment, folder and arguments and an empty standard
    input, and what it prints and the code it exits with come back as `subprocess.run`'s would.
    The child is a real process (it ends as `jackline` ends, leaving a workflow that waits for
    review to be taken over by the next decision, as a person's commands do); it only skips
    Python's start and the imports this process has done once (about a second of CPU a call:
    Typer, pydantic, the workflow engine). Tests of the command line as a process, and those
    that kill or interrupt `jackline`, start `python -m jackline` themselves (`real_cli`). The
    child is made as the fork server makes a person's command (`jackline.forkserver.command`)."""
    if not _can_fork():
        return subprocess.run(
            [sys.executable, "-m", "jackline", *args], cwd=cwd, capture_output=True,
            text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(out_r)
        os.close(err_r)
        _run_cli_child(args, cwd, env, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    out, err = _read_both(pid, out_r, err_r, timeout, args)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return CompletedProcess(["jackline", *args], code, out, err)


@functools.cache
def _warm() -> None:
    """Load once in this process what every run's `jackline` loads, as the fork server has:
    each forked child inherits it instead of loading it again (about a second of CPU a
    command)."""
    from jackline import forkserver

    forkserver.warm()


def _can_fork() -> bool:
    """Whether a command may be forked from this process, warmed first: not where an engine runs
    here, which would be a copy without its threads in the child (it is started as a program)."""
    from jackline import engine

    _warm()
    return not (engine.has_live_threads() or sys.modules.get("dbos._dbos") and _dbos_launched())


def _dbos_launched() -> bool:
    from dbos import _dbos

    instance = getattr(_dbos, "_dbos_global_instance", None)
    return instance is not None and bool(getattr(instance, "_launched", False))


class Forked:
    """A `jackline` command forked from this process (`spawn`), handled as the tests handle a
    `subprocess.Popen`: poll, wait, send_signal, kill."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["jackline", str(self.pid)], timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def spawn(
    args: list[str], cwd: Path, env: dict[str, str], log: Path
) -> Forked | subprocess.Popen[bytes]:
    """`jackline ARGS` started in the background, what it prints going to `log`: forked from
    this process as `cli_in_process` forks (a worker's start without a second of imports), or,
    where this process runs an engine, started as a program."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if not _can_fork():
            return subprocess.Popen(
                [sys.executable, "-m", "jackline", *args], cwd=cwd, env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        pid = os.fork()
        if pid == 0:
            _run_cli_child(args, cwd, env, out, out)
        return Forked(pid)
    finally:
        os.close(out)


def _run_cli_child(
    args: list[str], cwd: Path, env: dict[str, str], out_w: int, err_w: int
) -> NoReturn:
    from jackline import forkserver

    umask = os.umask(0o022)
    os.umask(umask)
    request = {"argv": args, "cwd": str(cwd), "env": env, "umask": umask}
    forkserver.command(request, {0: os.open(os.devnull, os.O_RDONLY), 1: out_w, 2: err_w})


def _read_both(
    pid: int, out_r: int, err_r: int, timeout: float, args: list[str]
) -> tuple[str, str]:
    """The child's standard output and error, read together until both end (a child that
    fills one pipe while the other is read would never end)."""
    import selectors
    import signal
    import time

    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(["jackline", *args], timeout)
            for key, _ in sel.select(timeout=left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    return tuple(b"".join(chunks[fd]).decode(errors="replace") for fd in (out_r, err_r))  # type: ignore[return-value]


def unmount_under(root: Path) -> None:
    """Overlay workspaces of runs left waiting for review stay mounted: unmount them."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted(points, reverse=True):
        if point.startswith(f"{root}/"):
            subprocess.run(["umount", "--lazy", point], capture_output=True)


@pytest.fixture
def two_rounds() -> ScriptedAgent:
    return ScriptedAgent([WRONG, RIGHT])


# The modules that hold the longest single tests (the demo, a shop deployed to two
# environments, real agents, eight concurrent decisions) and then the most agent rounds, as
# measured with `--durations`: handed out first under pytest-xdist (`-n`), so the suite does
# not end waiting on one worker still in a minute-long test.
SLOW_FIRST = (
    "test_team",  # workers as processes, killed and taken over
    "test_servers",  # two servers and a worker on one database
    "test_shop_deploy",
    "test_cli",  # the demo
    "test_pool",
    "test_decisions",
    "test_preset_mini_swe_agent",
    "test_preset_aider",
    "test_blocked_and_init",
    "test_github",
    "test_services",
    "test_mcp",
    "test_release",
    "test_run",
    "test_interrupt_cancel",
    "test_cli_truth",
    "test_guardrails",
    "test_moving",
    "test_repos_by_url",
)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the session's first process
        name_folder()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        stop_cluster()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
