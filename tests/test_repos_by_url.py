"""Repositories by URL: a bare repository in a temporary folder, reached by a `file://` URL,
stands for the remote; a second JACKLINE_HOME stands for a second worker. Real git, real runs."""

from __future__ import annotations

import base64
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Project, git

from jackline.testing import Replace, Round, ScriptedAgent

FIX = Round(edits={"calc.py": Replace("a - b", "a + b")}, message="add adds")


def _remote(project: Project) -> tuple[Path, str]:
    """The project's repository as a bare one beside it (the remote), and its URL."""
    bare = project.root / "remote.git"
    git(project.root, "clone", "-q", "--bare", str(project.repo), str(bare))
    return bare, f"file://{bare}"


def _refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture
def remote(project: Project) -> tuple[Path, str]:
    project.create(ScriptedAgent([FIX]))
    return _remote(project)


def test_run_by_url_publishes_and_lands_on_the_remote_only(
    project: Project, remote: tuple[Path, str]
) -> None:
    bare, url = remote
    mine = _refs(project.repo)
    before = git(bare, "rev-parse", "main")
    run = project.jl_json("run", "Fix add in calc.py", "--repo", url)
    assert run["status"] == "awaiting_review", (run.get("reason"), project.events(run["id"]))
    assert run["repo"] == url  # what any worker resolves to a clone of its own
    # The branch is on the remote, with the agent's work...
    assert "a + b" in git(bare, "show", f"{run['branch']}:calc.py")
    assert git(bare, "rev-parse", "main") == before
    # ...from this worker's clone under its home, not from the person's checkout.
    clones = list((project.home / "repos").iterdir())
    assert len(clones) == 1 and clones[0].name.startswith("remote-")
    assert git(clones[0], "rev-parse", "HEAD") == before

    done = project.jl_json("approve", run["id"], user="bob")
    assert done["status"] == "merged", done
    merged = git(bare, "rev-parse", "main")
    assert merged == done["merge_sha"]
    assert git(bare, "rev-parse", f"{merged}^1") == before  # a fast-forward of the remote's main
    assert "a + b" in git(bare, "show", "main:calc.py")
    assert git(clones[0], "rev-parse", "main") == merged  # the clone followed
    handoff = Path(done["handoff"]).read_text()  # its commands work in any clone of the URL
    assert f"git fetch {url} main && git diff {merged}^1 {merged}" in handoff
    assert f"git push {url} --delete {run['branch']}" in handoff
    assert _refs(project.repo) == mine  # the person's own repository: not a ref moved
    assert git(project.repo, "status", "--porcelain") == ""


def _person_commits(project: Project, bare: Path, name: str, text: str) -> str:
    """A person (or another worker) lands a commit on the remote's main: a file of its own."""
    mine = project.root / f"person-{name}"
    if not mine.exists():
        git(project.root, "clone", "-q", str(bare), str(mine))
    git(mine, "pull", "-q", "--ff-only")
    (mine / f"{name}.txt").write_text(text)
    git(mine, "add", f"{name}.txt")
    git(mine, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", name)
    git(mine, "push", "-q", "origin", "HEAD:main")
    return git(mine, "rev-parse", "HEAD")


# A check that, once armed, lands a commit on the remote's main while the merge's checks run:
# another worker landing in between the clone's update and this landing's push.
RACE = """#!/bin/sh
if [ -f {armed} ]; then
  rm {armed}
  git -C {other} pull -q --ff-only && echo elsewhere > {other}/elsewhere.txt &&
  git -C {other} add elsewhere.txt &&
  git -C {other} -c user.name=W -c user.email=w@example.com commit -qm elsewhere &&
  git -C {other} push -q origin HEAD:main
fi
exit 0
"""


def test_main_moved_on_the_remote_merges_onto_the_new_tip_and_a_race_is_refused_not_forced(
    project: Project,
) -> None:
    armed, other = project.root / "armed", project.root / "other"
    race = project.root / "race.sh"
    race.write_text(RACE.format(armed=armed, other=other))
    race.chmod(0o755)
    extra = f'\n[checks.race]\ncommand = "{race}"\nparser = "plain"\n\n[sandbox]\nmode = "none"\n'
    project.create(ScriptedAgent([FIX]), extra=extra)
    bare, url = _remote(project)
    git(project.root, "clone", "-q", str(bare), str(other))
    run = project.jl_json("run", "Fix add", "--repo", url)
    assert run["status"] == "awaiting_review", run

    person = _person_commits(project, bare, "person", "moved main\n")
    armed.write_text("")
    refused = project.jl_json("approve", run["id"], user="bob")
    assert refused["status"] == "awaiting_review", refused
    assert "main moved while merging; approve again" in refused["reason"]
    assert not armed.exists()  # the race did run, during the merge's checks
    raced = git(bare, "rev-parse", "main")
    assert git(bare, "log", "-1", "--format=%s", raced) == "elsewhere"

    done = project.jl_json("approve", run["id"], user="bob")
    assert done["status"] == "merged", done
    tip = git(bare, "rev-parse", "main")
    assert tip == done["merge_sha"] and git(bare, "rev-parse", f"{tip}^1") == raced
    # Nobody's commit was lost: main only ever moved forward.
    for kept in (person, raced):
        assert (
            subprocess.run(
                ["git", "-C", str(bare), "merge-base", "--is-ancestor", kept, tip]
            ).returncode
            == 0
        )
    merged = project.events_by_kind(run["id"])["merge"]
    assert [m["outcome"] for m in merged] == ["refused", "merged"]


def _hostile_remote(project: Project, marker: Path) -> tuple[Path, str]:
    """A remote whose content tries to run something on whoever clones it: a filter and a diff
    driver named in `.gitattributes`, a submodule over `ext::`, a hook committed as a file, and a
    link to a file of the worker's. (A `.gitmodules` with `update = !command` makes git itself
    refuse the workspace's every diff: the run fails, and nothing runs either.)"""
    files = {
        ".gitattributes": "* filter=pwn diff=pwn\n",
        ".gitmodules": (f'[submodule "sub"]\n\tpath = sub\n\turl = ext::sh -c touch% {marker}\n'),
        ".githooks/post-checkout": f"#!/bin/sh\ntouch {marker}\n",
    }
    project.create(ScriptedAgent([FIX]), files=files)
    (project.repo / "passwd").symlink_to("/etc/passwd")
    git(project.repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},sub")
    git(project.repo, "add", "passwd")
    git(project.repo, "commit", "-qm", "hostile")
    return _remote(project)


def test_a_hostile_remote_runs_nothing_on_the_worker(project: Project) -> None:
    marker = project.root / "ran"
    bare, url = _hostile_remote(project, marker)
    # The worker's own git configuration names the filter, the diff driver, a file-system
    # monitor and hooks that all would leave the marker: the clone reads none of it.
    hooks = project.root / "worker-hooks"
    hooks.mkdir()
    for hook in ("post-checkout", "post-merge", "pre-push", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / hook).chmod(0o755)
    worker_config = project.root / "worker.gitconfig"
    worker_config.write_text(
        f'[filter "pwn"]\n\tsmudge = touch {marker}; cat\n\tclean = touch {marker}; cat\n'
        f'[diff "pwn"]\n\ttextconv = touch {marker}; cat\n'
        f"[core]\n\tfsmonitor = touch {marker}\n\thooksPath = {hooks}\n"
    )
    project.env["GIT_CONFIG_GLOBAL"] = str(worker_config)
    run = project.jl_json("run", "Fix add", "--repo", url)
    assert run["status"] == "awaiting_review", (run["reason"], project.events(run["id"]))
    done = project.jl_json("approve", run["id"], user="bob")
    assert done["status"] == "merged", done
    assert not marker.exists()
    clone = next((project.home / "repos").iterdir())
    assert not (clone / "passwd").is_symlink()  # the link is the text it is in git
    assert (clone / "passwd").read_text() == "/etc/passwd"
    assert not (clone / "sub" / ".git").exists()
    assert "a + b" in git(bare, "show", "main:calc.py")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://example.com/app.git", "ftp://example.com/app.git: unknown scheme 'ftp'"),
        ("ext::sh -c touch% /tmp/x", "unknown scheme 'ext'"),
        ("https://alice:hunter2-token@example.com/app.git", "credentials never go in a URL"),
        ("https://ghp_abcdef123456@example.com/app.git", "https://example.com/app.git"),
        ("file://host/srv/app.git", "a file URL is file:///absolute/path"),
        ("git@-oProxyCommand=x:app.git", "is not a repository URL"),
    ],
)
def test_a_bad_url_is_refused_naming_it_without_credentials(
    project: Project, url: str, said: str
) -> None:
    project.create(ScriptedAgent([FIX]))
    proc = project.jl("run", "Fix add", "--repo", url, ok=False)
    assert proc.returncode == 1, proc
    shown = " ".join((proc.stdout + proc.stderr).split())
    assert said in shown
    assert "hunter2" not in shown and "ghp_abcdef123456" not in shown
    assert not (project.home / "repos").exists() or not any((project.home / "repos").iterdir())


def test_a_remote_that_cannot_be_cloned_or_lacks_main_is_named_with_what_would_be_right(
    project: Project,
) -> None:
    project.create(ScriptedAgent([FIX]))
    missing = f"file://{project.root}/nowhere.git"
    proc = project.jl("run", "Fix add", "--repo", missing, ok=False)
    assert proc.returncode == 1
    assert f"cannot clone {missing}" in proc.stderr and "check the URL" in proc.stderr

    bare, url = _remote(project)
    git(bare, "branch", "-m", "main", "trunk")  # jackline.toml still says main
    git(bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
    proc = project.jl("run", "Fix add", "--repo", url, ok=False)
    assert proc.returncode == 1
    said = " ".join(proc.stderr.split())
    assert f"{url} has no branch 'main' (its branches: trunk)" in said
    assert "[project] main" in said


class _GitOverHTTP(http.server.BaseHTTPRequestHandler):
    """git's smart HTTP (`git http-backend`, as a CGI) for the repositories under `root`, behind
    a Basic authorization that only `expected` passes; every Authorization header seen kept."""

    root: Path
    expected: str
    seen: list[str | None]

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        given = self.headers.get("Authorization")
        self.seen.append(given)
        if given != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self._body()
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().strip(), 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)


@pytest.fixture
def served(project: Project) -> Iterator[tuple[Path, str, str, list[str | None]]]:
    """The project's remote served over HTTP on loopback: (bare, URL, token, headers seen)."""
    project.create(ScriptedAgent([FIX]))
    bare, _ = _remote(project)
    token = "jl-test-token-" + os.urandom(8).hex()
    seen: list[str | None] = []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    handler = type(
        "Handler",
        (_GitOverHTTP,),
        {"root": bare.parent, "expected": f"Basic {basic}", "seen": seen},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield bare, f"http://127.0.0.1:{server.server_port}/{bare.name}", token, seen
    finally:
        server.shutdown()
        server.server_close()


def _stored_files(home: Path) -> Iterator[Path]:
    for top, _dirs, files in os.walk(home):
        for name in files:
            if not os.path.islink(os.path.join(top, name)):
                yield Path(top, name)


def test_an_https_token_reaches_git_only_through_its_environment_and_is_never_stored(
    project: Project, served: tuple[Path, str, str, list[str | None]]
) -> None:
    bare, url, token, seen = served
    # No token configured: the remote refuses, and the error names the URL and the way.
    proc = project.jl("run", "Fix add", "--repo", url, ok=False)
    assert proc.returncode == 1 and f"cannot clone {url}" in proc.stderr
    assert "remotes.toml" in proc.stderr and seen and set(seen) == {None}

    secret = project.root / "git-token"
    secret.write_text(token + "\n")
    (project.home / "remotes.toml").write_text(
        f'[[remote]]\nurl_prefix = "http://127.0.0.1:{url.split(":")[2].split("/")[0]}/"\n'
        f'token = "file:{secret}"\n'
    )
    trace = project.root / "git-trace.log"
    project.env["GIT_TRACE"] = str(trace)  # every git command line the harness runs
    run = project.jl_json("run", "Fix add", "--repo", url)
    assert run["status"] == "awaiting_review", run
    assert "a + b" in git(bare, "show", f"{run['branch']}:calc.py")
    done = project.jl_json("approve", run["id"], user="bob")
    assert done["status"] == "merged", done
    assert git(bare, "rev-parse", "main") == done["merge_sha"]
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert seen.count(f"Basic {basic}") >= 3  # the clone, the publish, the landing at least

    # On no command line git ran, and in no byte Jackline stored: the audit log, the run's
    # logs and handoff, the engine's database, this worker's clone and its configuration.
    lines = trace.read_text()
    assert "remote-http" in lines and "git push" in lines
    stored = list(_stored_files(project.home))
    assert any(p.name == "config" and "repos" in p.parts for p in stored)
    for text in (lines, *(p.read_bytes().decode("latin-1") for p in stored)):
        assert token not in text and basic not in text

    # And where a value of it does reach a stored text, it is redacted by name.
    from jackline.guard.redact import Redactor

    os.environ["JACKLINE_HOME"] = str(project.home)
    try:
        assert token not in Redactor.from_environment()(f"said {token}")
    finally:
        del os.environ["JACKLINE_HOME"]


def test_a_literal_token_in_remotes_toml_is_refused_without_echoing_it(project: Project) -> None:
    project.create(ScriptedAgent([FIX]))
    _, url = _remote(project)
    project.home.mkdir(parents=True, exist_ok=True)
    (project.home / "remotes.toml").write_text(
        '[[remote]]\nurl_prefix = "file:///"\ntoken = "ghp_literal0123456789"\n'
    )
    proc = project.jl("run", "Fix add", "--repo", url, ok=False)
    assert proc.returncode == 2, proc
    said = " ".join(proc.stderr.split())
    assert "remotes.toml: remote.0.url_prefix: expected an https:// URL prefix" in said
    assert "remote.0.token: expected a secret reference, 'env:NAME' or 'file:PATH'" in said
    assert "ghp_literal0123456789" not in proc.stdout + proc.stderr


# Set-up that makes a virtualenv, so that a snapshot (and a warm pool) is worth keeping.
SETUP = f"""
[workspace]
setup = ["{sys.executable} -m venv --without-pip --system-site-packages .venv"]

[pool]
size = 1
"""


def _second_worker(project: Project) -> Project:
    """Another worker: the same person's folder to start from, a JACKLINE_HOME of its own."""
    other = Project(project.root, project.root / "home-b")
    other.in_process = project.in_process
    return other


def _wait_warm(worker: Project, url: str, besides: str = "") -> dict[str, Any]:
    deadline = time.time() + 90  # the pool refills in the background
    while True:
        status = worker.jl_json("pool", "status", "--repo", url)
        if status["warm"] and status["warm"][0]["id"] != besides:
            return status
        assert time.time() < deadline, f"the pool of {worker.home} did not fill: {status}"
        time.sleep(0.5)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_each_worker_keeps_its_own_clone_snapshots_and_pool_for_one_url(
    project: Project,
) -> None:
    project.create(ScriptedAgent([FIX]), extra=SETUP)
    bare, url = _remote(project)
    worker_b = _second_worker(project)
    first = project.jl_json("run", "Fix add", "--repo", url)
    assert first["status"] == "awaiting_review", first
    warm_a = _wait_warm(project, url)
    second = project.jl_json("run", "Fix add again", "--repo", url)
    assert second["status"] == "awaiting_review", second
    made = next(e for e in project.events(second["id"]) if e["kind"] == "workspace")
    assert made["method"].endswith("+pool") and second["workspace"] == warm_a["warm"][0]["path"]
    warm_a = _wait_warm(project, url, besides=warm_a["warm"][0]["id"])  # refilled, from a's own

    on_b = worker_b.jl_json("run", "Fix add on b", "--repo", url)
    assert on_b["status"] == "awaiting_review", on_b
    warm_b = _wait_warm(worker_b, url)
    for worker, status in ((project, warm_a), (worker_b, warm_b)):
        clones = list((worker.home / "repos").iterdir())
        assert len(clones) == 1 and status["repo"] == str(clones[0])  # keyed on its own clone
        # pool status lists the snapshots made from that clone: this worker's, under its home
        assert status["snapshots"]
        for path in [s["path"] for s in status["snapshots"]] + [status["warm"][0]["path"]]:
            assert Path(path).is_relative_to(worker.home)
    # Worker b built its own snapshot (set-up ran there), and ran nothing of a's.
    setups = [e for e in worker_b.events(on_b["id"]) if e["kind"] == "command"]
    assert any(e["step"] == "setup" for e in setups)
    assert Path(on_b["workspace"]).is_relative_to(worker_b.home)
    branches = git(bare, "branch", "--list", "agent/*", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted(r["branch"] for r in (first, second, on_b))


def test_a_server_serving_a_url_takes_runs_for_it_through_the_api(project: Project) -> None:
    from test_server_api import start_server, stop_server

    project.create(ScriptedAgent([FIX]))
    bare, url = _remote(project)
    server = start_server(project, "--repo", url)
    try:
        other = f"file://{project.root}/other.git"
        refused = server.call("alice", "POST", "/api/runs", json={"task": "Fix", "repo": other})
        assert refused.status_code == 403 and "not a repository this server serves" in refused.text
        made = server.call("alice", "POST", "/api/runs", json={"task": "Fix add", "repo": url})
        assert made.status_code == 201, made.text
        assert made.json()["repo"] == url
        deadline = time.time() + 120
        while (run := server.call("alice", "GET", f"/api/runs/{made.json()['id']}").json())[
            "status"
        ] not in ("awaiting_review", "failed"):
            assert time.time() < deadline, run
            time.sleep(0.5)
        assert run["status"] == "awaiting_review", run
        assert "a + b" in git(bare, "show", f"{run['branch']}:calc.py")
    finally:
        stop_server(server)
