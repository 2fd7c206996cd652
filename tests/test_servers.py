"""Any server, any run (issue 16): two `jackline serve` processes against one PostgreSQL
database, each with a JACKLINE_HOME of its own as on a machine of its own, and a worker on a
third home that submits nothing itself. Nothing is shared but the database, the repository's
remote (a `file://` bare repository) and the team's audit key (`JACKLINE_AUDIT_KEY`)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Project, git
from test_repos_by_url import _remote
from test_team import BEAT, DEAD_AFTER, Worker, _processes, until

from jackline.testing import Round, ScriptedAgent

pytestmark = pytest.mark.real_cli

NAP = "89"


def _fix(gate: Path) -> Round:
    """The fix, with a new suppression (a warn-level finding for a reviewer to accept); once
    the gate is open, the agent then sleeps, to be cancelled at work."""
    return Round(
        edits={"calc.py": "def add(a, b):\n    return a + b  # noqa: E501\n"},  # on any main
        commands=[f"if [ -e {gate}/open ]; then sleep {NAP}; fi"],
        message="add adds",
    )


class Served:
    """`jackline serve --port 0 --repo URL` started in (and with) a home of its own."""

    def __init__(self, env: dict[str, str], home: Path, url: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log = home.parent / f"{home.name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jackline", "serve", "--port", "0", "--repo", url],
            cwd=home,
            env={**env, "JACKLINE_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.url = ""
        deadline = time.monotonic() + 90
        while not self.url:
            assert time.monotonic() < deadline and self.proc.poll() is None, self.said
            for line in self.said.splitlines():
                if line.startswith("Listening on "):
                    self.url = line.split()[2]
            time.sleep(0.05)

    @property
    def said(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def call(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=120, trust_env=False) as c:
            return c.request(method, path, **kwargs)

    def page(self, token: str, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        """A request as the web page's makes it: the token in the session cookie."""
        cookies = {"jackline_session": token}
        with httpx.Client(base_url=self.url, cookies=cookies, timeout=120, trust_env=False) as c:
            return c.request(method, path, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running(*started: Worker | Served) -> Iterator[None]:
    with ExitStack() as stack:
        for process in started:
            stack.callback(process.stop)
        yield


def _team_key(tmp_path: Path) -> Path:
    """The team's audit key, as the README says to make one: 64 hex digits, mode 0600."""
    key = tmp_path / "team.key"
    key.write_text(secrets.token_hex(32) + "\n")
    key.chmod(0o600)
    return key


def _verify_from(home: Path, env: dict[str, str], run_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jackline", "logs", run_id, "--verify"],
        cwd=home,
        env={**env, "JACKLINE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_two_servers_on_one_database_serve_the_same_runs_and_take_decisions_for_any(
    project: Project, tmp_path: Path, pg_url: str
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    readable = json.dumps([str(project.root / "agent.json"), str(gate)])
    project.create(ScriptedAgent([_fix(gate)]), extra=f"\n[sandbox]\nreadable = {readable}\n")
    bare, url = _remote(project)
    project.env.update(
        JACKLINE_DATABASE_URL=pg_url,
        JACKLINE_AUDIT_KEY=f"file:{_team_key(tmp_path)}",
        JACKLINE_BEAT_SECONDS=str(BEAT),
        JACKLINE_DEAD_AFTER_SECONDS=str(DEAD_AFTER),
    )
    project.env.pop("JACKLINE_USER", None)
    alice, bob = project.token("alice"), project.token("bob")
    project.env["JACKLINE_TOKEN"] = alice
    homes = {"worker": project.home, "a": tmp_path / "home-a", "b": tmp_path / "home-b"}
    worker = Worker(project, tmp_path / "worker.log")
    with running(worker):
        a = Served(project.env, homes["a"], url)
        with running(a):
            b = Served(project.env, homes["b"], url)
            with running(b):
                made = a.call(alice, "POST", "/api/runs", json={"task": "Fix add", "repo": url})
                assert made.status_code == 201, made.text
                run_id = made.json()["id"]

                def in_review() -> dict[str, Any] | None:
                    run: dict[str, Any] = b.call(alice, "GET", f"/api/runs/{run_id}").json()
                    assert run["status"] in ("queued", "running", "awaiting_review"), run
                    return run if run["status"] == "awaiting_review" else None

                run = until(in_review, within=180, step=0.5)
                # Server b, which took nothing, lists the run and serves what it kept.
                listed = b.call(alice, "GET", "/api/runs").json()
                assert run_id in [r["id"] for r in listed]
                assert "Fix add" in (run["handoff_markdown"] or ""), run
                names = b.call(alice, "GET", f"/api/runs/{run_id}/artifacts").json()["names"]
                assert "change.diff" in names, names
                assert any(n.endswith(".log") for n in names), names
                for name in names:
                    kept = b.call(alice, "GET", f"/api/runs/{run_id}/artifacts/{name}")
                    assert kept.status_code == 200, (name, kept.text)
                diff = b.call(alice, "GET", f"/api/runs/{run_id}/artifacts/change.diff").text
                assert "+    return a + b  # noqa: E501" in diff, diff
                events = b.call(alice, "GET", f"/api/runs/{run_id}/events").json()
                assert events and all(e["intact"] for e in events), events
                # Bob accepts the finding on server b, which has none of the worker's folders
                # (here they are on one disk: the run's folder goes, as if b were elsewhere).
                [finding] = run["findings"]
                folder = Path(run["handoff"]).parent
                shutil.rmtree(folder)
                accepted = b.call(
                    bob,
                    "POST",
                    f"/api/runs/{run_id}/findings/{finding['id']}/accept",
                    json={"message": "the line is long on purpose"},
                )
                assert accepted.status_code == 200, accepted.text
                assert not folder.exists()  # b wrote nothing where the worker's folder was
                shown = a.call(alice, "GET", f"/api/runs/{run_id}").json()["handoff_markdown"]
                assert "the line is long on purpose" in shown, shown
                # Bob reads the run on a page of server a and approves from it; behind a proxy
                # the post may reach server b: b takes a's page's CSRF token, and the decision
                # reaches the workflow the worker drives.
                page = a.page(bob, f"/runs/{run_id}")
                assert page.status_code == 200, page.text
                [csrf] = re.findall(r'<meta name="csrf-token" content="([^"]+)">', page.text)
                merged = b.page(
                    bob,
                    f"/api/runs/{run_id}/approve",
                    "POST",
                    json={},
                    headers={"X-CSRF-Token": csrf, "Origin": b.url},
                )
                assert merged.status_code == 200, merged.text
                assert merged.json()["status"] == "merged", merged.json()
                # The page of a server with no checkout submits runs for the URL it serves;
                # this one's agent sleeps until it is cancelled through server a, and the
                # worker, which alone can, stops it.
                (gate / "open").touch()
                runs_page = b.page(alice, "/runs")
                assert url in runs_page.text, runs_page.text
                [form_csrf] = set(re.findall(r'name="csrf" value="([0-9a-f]+)"', runs_page.text))
                sent = b.page(
                    alice,
                    "/runs",
                    "POST",
                    data={"task": "Fix add again", "repo": "0", "csrf": form_csrf},
                    headers={"Origin": b.url},
                    follow_redirects=False,
                )
                assert sent.is_redirect, sent.text
                again = sent.headers["location"].rsplit("/", 1)[1]

                def napping() -> list[int]:
                    run = a.call(alice, "GET", f"/api/runs/{again}").json()
                    assert run["status"] in ("queued", "running"), (run["reason"], run["handoff"])
                    return _processes(["sleep", NAP])

                until(napping, within=120)
                cancelled = a.call(
                    alice, "POST", f"/api/runs/{again}/cancel", json={"message": "a test"}
                ).json()
                assert (cancelled["repo"], cancelled["status"]) == (url, "cancelled"), cancelled
                until(lambda: not _processes(["sleep", NAP]), within=BEAT * 2 + 10)
            said = a.said + b.said
    assert worker.said.count(f"took {run_id} from the queue") == 1, worker.said
    assert git(bare, "rev-parse", "main") == merged.json()["merge_sha"]
    kinds = [e.kind for e in project.store().events(run_id)]
    assert kinds.count("merge") == 1 and kinds.count("decision") == 1, kinds
    # Every machine verifies the one chain that all three wrote to, with the team's key.
    for name, home in homes.items():
        verified = _verify_from(home, project.env, run_id)
        assert verified.returncode == 0, (name, verified.stdout, verified.stderr)
        assert "VERIFIED" in verified.stdout, (name, verified.stdout)
        assert not (home / "audit.key").exists(), name  # the key is never made when named
    assert "JACKLINE_AUDIT_KEY is not set" not in said + worker.said


@pytest.mark.parametrize("command", [["worker"], ["serve", "--port", "0"]])
def test_a_worker_or_server_with_an_unreadable_team_key_exits_before_it_starts(
    tmp_path: Path, command: list[str]
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JACKLINE_")},
        "JACKLINE_HOME": str(tmp_path / "home"),
        "JACKLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'engine.db'}",
        "JACKLINE_AUDIT_KEY": f"file:{tmp_path / 'missing.key'}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "jackline", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"JACKLINE_AUDIT_KEY: cannot read the audit key {tmp_path}/missing.key" in said
    assert "`openssl rand -hex 32`" in said
    assert "Listening on" not in proc.stdout and "Worker " not in proc.stdout
    assert not (tmp_path / "home" / "audit.key").exists()
