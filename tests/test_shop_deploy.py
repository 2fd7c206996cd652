"""The example shop's real deploy: scripts/deploy.sh serving commits on loopback, per environment,
and the demo's bad change that staging lets through and production's probes catch."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jackline import config, demo, demo_release
from jackline.release import tree

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop"
ENVS = ("staging", "production")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str) -> tuple[int, str]:
    """(status, body); HTTP errors are answers here, not exceptions."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Shop:
    """The shop in its own git repository, deployed to free loopback ports."""

    repo: Path
    ports: dict[str, int] = field(default_factory=lambda: {env: free_port() for env in ENVS})
    pids: set[int] = field(default_factory=set)

    def url(self, env: str) -> str:
        return f"http://127.0.0.1:{self.ports[env]}"

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def start_deploy(self, env: str, sha: str, cwd: Path | None = None) -> subprocess.Popen[str]:
        # By hand, from the project's root; Jackline runs it from its checkout of the released
        # commit (`release.tree`), which is a root of the project too.
        return subprocess.Popen(
            ["sh", "scripts/deploy.sh", env, sha, str(self.ports[env])],
            cwd=cwd or self.repo,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "SHOP_PYTHON": sys.executable},
        )

    def finish(self, proc: subprocess.Popen[str], env: str) -> str:
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, f"deploy.sh exited {proc.returncode}\n{out}\n{err}"
        self.pids.add(self.pid(env))
        return out

    def deploy(self, env: str, sha: str) -> str:
        return self.finish(self.start_deploy(env, sha), env)

    def pid(self, env: str) -> int:
        return int((self.repo / "var" / f"{env}.pid").read_text())

    def wait_healthy(self, env: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if http("GET", self.url(env) + "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        log = (self.repo / "var" / f"{env}.log").read_text()
        raise AssertionError(f"{env} did not answer /healthz within {timeout}s\n{log}")

    def smoke_failures(self, env: str) -> list[str]:
        """The environment's smoke checks from jackline.toml that do not answer as written."""
        checks = config.load(self.repo).release.environments[env].smoke
        failures = []
        for line in checks:
            method, path, status, text = config.smoke_probe(line)
            got, body = http(method, self.url(env) + path)
            if got != status or (text is not None and text not in body):
                failures.append(f"{line}: got {got} {body[:200]!r}")
        return failures

    def log(self, env: str) -> str:
        return (self.repo / "var" / f"{env}.log").read_text()

    def stop_all(self) -> None:
        for env in ENVS:
            subprocess.run(["sh", "scripts/stop.sh", env], cwd=self.repo, capture_output=True)
        for pid in self.pids:  # whatever stop.sh could not end
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    repo = tmp_path / "shop"
    shutil.copytree(
        EXAMPLE,
        repo,
        ignore=shutil.ignore_patterns("__pycache__", "*.db", "var", ".pytest_cache", ".ruff_cache"),
    )
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "config", "user.email", "alice@example.com")
    git(repo, "config", "user.name", "Alice")
    s = Shop(repo)
    s.commit("The shop")
    try:
        yield s
    finally:
        s.stop_all()


def fix_pricing(shop: Shop) -> str:
    """The demo's run: the bulk-discount fix, as merged before the first release."""
    pricing = shop.repo / "shop" / "pricing.py"
    pricing.write_text(pricing.read_text().replace(demo.BUGGY, demo.FIXED))
    return shop.commit("Inclusive bulk-discount threshold")


def test_deploy_serves_each_environment_on_its_port_and_passes_its_smoke_checks(
    shop: Shop,
) -> None:
    sha = git(shop.repo, "rev-parse", "HEAD")
    started = time.monotonic()
    procs = {env: shop.start_deploy(env, sha) for env in ENVS}  # at the same time
    outs = {env: shop.finish(proc, env) for env, proc in procs.items()}
    assert time.monotonic() - started < 5  # it does not wait for health: Jackline does

    for env in ENVS:
        [line] = outs[env].splitlines()
        assert env in line and sha[:12] in line and str(shop.ports[env]) in line
        shop.wait_healthy(env)
        assert shop.smoke_failures(env) == []
        assert (shop.repo / "var" / "releases" / env / sha / "shop" / "app.py").is_file()
        assert (shop.repo / "var" / f"{env}.db").is_file()
    assert shop.pid("staging") != shop.pid("production")
    assert git(shop.repo, "status", "--porcelain") == ""  # var/ is ignored


def test_redeploy_replaces_the_process_and_keeps_the_database(shop: Shop) -> None:
    first = git(shop.repo, "rev-parse", "HEAD")
    shop.deploy("production", first)
    shop.wait_healthy("production")
    old_pid = shop.pid("production")
    order = demo_release.place_order(shop.url("production"))

    second = fix_pricing(shop)
    shop.deploy("production", second)
    shop.wait_healthy("production")

    assert shop.pid("production") != old_pid
    assert not running(old_pid)
    status, body = http("GET", shop.url("production") + "/api/orders")
    assert status == 200
    assert [o["id"] for o in json.loads(body)] == [order["id"]]
    # The same commit again: its exported tree is reused and the service comes back.
    shop.deploy("production", second)
    shop.wait_healthy("production")
    assert shop.smoke_failures("production") == []


def test_bad_change_passes_tests_and_staging_but_fails_production_which_holds_an_order(
    shop: Shop,
) -> None:
    good = fix_pricing(shop)
    for env in ENVS:
        shop.deploy(env, good)
    for env in ENVS:
        shop.wait_healthy(env)
    demo_release.place_order(shop.url("production"))  # a customer, after the first release

    bad = demo_release.commit(shop.repo)
    # Its own temporary folder: in the shared one (/tmp/pytest-of-USER), the shop's pytest
    # removed, as it exited, the folders of earlier runs of Jackline's suite beyond its three
    # newest (gigabytes of workspaces), 15-100 s of this test. Nor does it load the plugins
    # installed for Jackline's suite, which the shop's tests do not use.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={shop.repo.parent / 'shop-pytest'}"],
        cwd=shop.repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout
    for env in ENVS:
        shop.deploy(env, bad)
    for env in ENVS:
        shop.wait_healthy(env)

    assert shop.smoke_failures("staging") == []
    assert "ERROR" not in shop.log("staging")
    assert [f.split(":")[0] for f in shop.smoke_failures("production")] == ["GET /api/orders 200"]
    log = shop.log("production")
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* ERROR GET /api/orders", log, re.M)
    assert "Traceback (most recent call last)" in log and "KeyError: None" in log

    # Rolling back to the good commit serves production again, on the migrated database.
    shop.deploy("production", good)
    shop.wait_healthy("production")
    assert shop.smoke_failures("production") == []


def test_deploy_of_an_unknown_commit_fails_naming_it_and_leaves_the_service_running(
    shop: Shop,
) -> None:
    sha = git(shop.repo, "rev-parse", "HEAD")
    shop.deploy("staging", sha)
    shop.wait_healthy("staging")

    proc = shop.start_deploy("staging", "0123abcd")
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 2
    assert "'0123abcd' is not a commit" in err
    assert shop.smoke_failures("staging") == []


def test_stop_ends_the_environment_and_is_quiet_when_nothing_runs(shop: Shop) -> None:
    demo_release.stop(shop.repo, "staging")  # nothing deployed yet
    shop.deploy("staging", git(shop.repo, "rev-parse", "HEAD"))
    shop.wait_healthy("staging")
    pid = shop.pid("staging")

    demo_release.stop(shop.repo, "staging")

    assert not (shop.repo / "var" / "staging.pid").exists()
    with pytest.raises(OSError):
        http("GET", shop.url("staging") + "/healthz")
    assert "shop stopped" in shop.log("staging")
    assert not running(pid)


def test_stop_ends_the_environment_a_release_deployed_from_its_checkout(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(shop.repo.parent / "home"))
    sha = git(shop.repo, "rev-parse", "HEAD")
    released = tree.checkout(shop.repo, sha)
    proc = shop.start_deploy("production", sha, cwd=released)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    pid = int((released / "var" / "production.pid").read_text())
    shop.pids.add(pid)
    deadline = time.monotonic() + 15
    while not _answers(shop.url("production") + "/healthz"):
        assert time.monotonic() < deadline, (released / "var" / "production.log").read_text()
        time.sleep(0.05)
    assert not (shop.repo / "var").exists()  # the user's checkout holds none of its state

    demo_release.stop(shop.repo, "production")

    assert not (released / "var" / "production.pid").exists()
    assert "shop stopped" in (released / "var" / "production.log").read_text()
    assert not running(pid)


def _answers(url: str) -> bool:
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False
