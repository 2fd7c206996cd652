"""Snapshots and the workspaces made from them: real git, real bubblewrap, a real virtualenv, and
real overlay mounts where this machine allows them. Run with `-s` to see the timings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from jackline import paths, proc
from jackline.config import JacklineConfig, parse
from jackline.errors import Refused
from jackline.sandbox import INSIDE, Jail, Spec, get
from jackline.workspaces import Workspace
from jackline.workspaces import snapshot as snapshots
from jackline.workspaces.copy import CopyProvider
from jackline.workspaces.overlay import OverlayProvider, available
from jackline.workspaces.providers import SnapshotProvider
from jackline.workspaces.snapshot import (
    SetupFailed,
    Snapshot,
    build,
    catch_up,
    current,
    default_setup,
    setup_inputs,
)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

SETUP = [
    f"{sys.executable} -m venv --without-pip .venv",
    # What `pip install -e .` leaves behind: a .pth naming the source folder by its absolute path.
    'echo "$(pwd)/src" > "$(echo .venv/lib/python3*/site-packages)/mypkg.pth"',
    # What installing the lock file leaves behind: here, a copy of it.
    "cp requirements.txt .venv/installed.txt",
]
FILES = {
    "pyproject.toml": '[project]\nname = "mypkg"\nversion = "0.1"\n',
    "requirements.txt": "attrs==23.1.0\n",
    "src/mypkg/__init__.py": 'VALUE = "original"\n',
    "README.md": "# mypkg\n",
    ".gitignore": "__pycache__/\n",
}
IMPORT = "import mypkg; print(mypkg.__file__, mypkg.VALUE)"


class CountedSetup:
    """`default_setup`, counting the directories it ran in."""

    def __init__(self, config: JacklineConfig, logs: Path) -> None:
        self.inner = default_setup(config, logs)
        self.calls: list[Path] = []

    def __call__(self, tree: Path) -> list[dict[str, Any]]:
        self.calls.append(tree)
        return self.inner(tree)


@dataclass
class World:
    root: Path
    repo: Path
    config: JacklineConfig
    setup: CountedSetup
    snapshot: Snapshot


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def branch_from_main(repo: Path, name: str, files: dict[str, str]) -> str:
    git(repo, "checkout", "-q", "-b", name, "main")
    tip = commit(repo, files, f"change on {name}")
    git(repo, "checkout", "-q", "main")
    return tip


def make_repo(repo: Path) -> Path:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "alice@example.com")
    git(repo, "config", "user.name", "Alice")
    commit(repo, FILES, "mypkg")
    return repo


def timed(label: str, started: float) -> float:
    took = time.monotonic() - started
    print(f"\n[timing] {label}: {took:.3f}s", end="")
    return took


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One repository, one snapshot of main, shared by the tests that only read them."""
    root = tmp_path_factory.mktemp("snapshots")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JACKLINE_HOME", str(root / "home"))
        repo = make_repo(root / "repo")
        branch_from_main(repo, "moved-src", {"src/mypkg/__init__.py": 'VALUE = "moved"\n'})
        branch_from_main(repo, "moved-lock", {"requirements.txt": "six==1.16.0\n"})
        config = parse({"workspace": {"setup": SETUP}})
        setup = CountedSetup(config, root / "logs")
        started = time.monotonic()
        snap = build(repo, "main", config, setup)
        timed("snapshot build (venv, 3 set-up commands)", started)
        yield World(root, repo, config, setup, snap)


def provider(method: str) -> SnapshotProvider:
    """The provider that makes workspaces by `method`; skips where overlays cannot be mounted."""
    if method == "overlay":
        if not available():
            pytest.skip("this process cannot mount an overlay")
        return OverlayProvider()
    return CopyProvider([".venv/lib"] if method == "copy+hardlinks" else [])


def sandboxed(ws: Path, code: str) -> str:
    """Run Python from the workspace's venv in the sandbox, the workspace at INSIDE."""
    jail = Jail(get("bubblewrap"), Spec(workspace=ws, mount_at=INSIDE))
    log = ws.parent / f"{ws.name}.log"
    done = proc.run([".venv/bin/python", "-c", code], ws, dict(os.environ), log, 60, jail=jail)
    assert done.exit_code == 0, done.output
    return done.output.strip().splitlines()[-1]


def status(ws: Path) -> str:
    return git(ws, "status", "--porcelain")


def test_snapshot_is_built_once_and_reused(world: World) -> None:
    snap, calls = world.snapshot, len(world.setup.calls)
    started = time.monotonic()
    again = build(world.repo, "main", world.config, world.setup)
    timed("snapshot reuse", started)
    assert again == snap
    assert len(world.setup.calls) == calls, "reused: set-up did not run again"
    assert (snap.tree / ".venv" / "installed.txt").read_text() == "attrs==23.1.0\n"
    assert (
        git(snap.tree, "rev-parse", "HEAD") == snap.commit == git(world.repo, "rev-parse", "main")
    )
    assert status(snap.tree) == "", "set-up outputs are excluded from git"
    meta = (snap.path / "meta.json").read_text()
    assert '"size"' in meta and meta.count('"duration"') == len(SETUP)


def test_a_setup_input_change_gives_a_new_snapshot_and_a_source_change_does_not(
    world: World,
) -> None:
    repo, config, snap = world.repo, world.config, world.snapshot
    pyproject = branch_from_main(repo, "moved-pyproject", {"pyproject.toml": "[project]\n"})
    at = {name: git(repo, "rev-parse", name) for name in ("moved-src", "moved-lock")}
    assert setup_inputs(repo, at["moved-src"], SETUP, None) == snap.inputs_hash
    assert setup_inputs(repo, at["moved-lock"], SETUP, None) != snap.inputs_hash
    assert setup_inputs(repo, pyproject, SETUP, None) != snap.inputs_hash
    assert setup_inputs(repo, snap.commit, SETUP[:1], None) != snap.inputs_hash
    assert setup_inputs(repo, at["moved-lock"], SETUP, ["*.toml"]) == setup_inputs(
        repo, snap.commit, SETUP, ["*.toml"]
    ), "declared inputs replace the lock files"

    calls = len(world.setup.calls)
    assert current(repo, "moved-src", config, world.setup) == snap
    assert len(world.setup.calls) == calls

    started = time.monotonic()
    new = current(repo, "moved-lock", config, world.setup)
    timed("snapshot build after a lock-file change", started)
    assert new.key != snap.key and new.commit == at["moved-lock"]
    assert (new.tree / ".venv" / "installed.txt").read_text() == "six==1.16.0\n"
    assert len(world.setup.calls) == calls + 1
    assert current(repo, "moved-lock", config, world.setup) == new
    assert len(world.setup.calls) == calls + 1


@pytest.mark.parametrize("method", ["overlay", "copy", "copy+hardlinks"])
def test_workspaces_from_a_snapshot_are_independent_and_leave_it_unchanged(
    world: World, method: str
) -> None:
    snap, maker = world.snapshot, provider(method)
    one, two = (paths.workspaces() / f"{method}-{n}" for n in ("one", "two"))
    started = time.monotonic()
    ws1 = maker.create_from(snap, "agent/one", one)
    timed(f"workspace create ({method})", started)
    try:
        maker.create_from(snap, "agent/two", two)
        assert ws1 == Workspace(one, "agent/one", snap.commit, method)
        assert (one / "README.md").read_text() == "# mypkg\n"
        assert status(one) == "" and git(one, "branch", "--show-current") == "agent/one"

        (one / "src" / "mypkg" / "__init__.py").write_text('VALUE = "one"\n')
        (one / "new.txt").write_text("made in one\n")
        assert sandboxed(one, IMPORT) == "/tmp/workspace/src/mypkg/__init__.py one"
        assert sandboxed(two, IMPORT) == "/tmp/workspace/src/mypkg/__init__.py original"
        assert not (two / "new.txt").exists()

        assert (snap.tree / "src" / "mypkg" / "__init__.py").read_text() == 'VALUE = "original"\n'
        assert not (snap.tree / "new.txt").exists()
        assert status(snap.tree) == "" and git(snap.tree, "branch", "--list", "agent/*") == ""

        pth = next((one / ".venv" / "lib").glob("python3*/site-packages/mypkg.pth"))
        original = snap.tree / pth.relative_to(one)
        assert pth.read_text() == "/tmp/workspace/src\n"
        assert os.path.samefile(pth, original) == (method == "copy+hardlinks")
        assert snapshots.in_use(snap) == (method == "overlay")

        maker.remove(one)
        assert not one.exists() and not os.path.ismount(one)
        assert not one.with_name(one.name + ".layers").exists()
        assert sandboxed(two, IMPORT).endswith(" original"), "the other workspace is untouched"
    finally:
        maker.remove(one)
        maker.remove(two)
    assert not snapshots.in_use(snap)
    assert (snap.tree / ".venv" / "installed.txt").exists()


@pytest.mark.parametrize("method", ["overlay", "copy"])
@pytest.mark.parametrize("moved", ["moved-src", "moved-lock"])
def test_catch_up_moves_to_main_and_reruns_setup_only_when_its_inputs_changed(
    world: World, method: str, moved: str
) -> None:
    snap, maker = world.snapshot, provider(method)
    dest = paths.workspaces() / f"catch-up-{method}-{moved}"
    ws = maker.create_from(snap, "agent/catch-up", dest)
    calls = len(world.setup.calls)
    try:
        started = time.monotonic()
        done = catch_up(ws, world.repo, moved, world.config, world.setup)
        timed(f"catch_up to {moved} ({method})", started)
        tip = git(world.repo, "rev-parse", moved)
        rerun = moved == "moved-lock"
        assert done == {"moved_from": snap.commit, "moved_to": tip, "setup_rerun": rerun}
        assert len(world.setup.calls) == calls + rerun
        assert git(dest, "rev-parse", "agent/catch-up") == tip
        assert git(dest, "branch", "--show-current") == "agent/catch-up"
        assert status(dest) == ""
        value = "moved" if moved == "moved-src" else "original"
        assert sandboxed(dest, IMPORT) == f"/tmp/workspace/src/mypkg/__init__.py {value}"
        installed = "six==1.16.0\n" if rerun else "attrs==23.1.0\n"
        assert (dest / ".venv" / "installed.txt").read_text() == installed
        assert (snap.tree / ".venv" / "installed.txt").read_text() == "attrs==23.1.0\n"

        again = catch_up(ws, world.repo, moved, world.config, world.setup)
        assert not again["setup_rerun"], "the workspace remembers the inputs its set-up matches"
    finally:
        maker.remove(dest)


def test_a_failing_setup_command_leaves_no_snapshot_and_names_the_command(world: World) -> None:
    config = parse({"workspace": {"setup": ["true", "echo half-done; exit 3"]}})
    with pytest.raises(SetupFailed) as failed:
        build(world.repo, "main", config, default_setup(config, world.root / "failed-logs"))
    assert failed.value.code == 3
    assert "exit 3" in str(failed.value) and "echo half-done; exit 3" in str(failed.value)
    assert "half-done" in str(failed.value)
    assert all(s.setup != tuple(config.workspace.setup) for s in snapshots.list_all())
    assert not [p for p in snapshots.root().iterdir() if p.name.startswith(".build-")]


def test_concurrent_builders_of_one_snapshot_run_setup_once(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    config = parse({"workspace": {"setup": ["sleep 0.3"]}})
    setup = CountedSetup(config, tmp_path / "logs")
    built: list[Snapshot] = []

    def builder() -> None:
        built.append(build(world.repo, "main", config, setup))

    threads = [threading.Thread(target=builder) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 3 and built[0] == built[1] == built[2]
    assert len(setup.calls) == 1
    assert snapshots.list_all() == [built[0]]


def test_latest_is_the_nearest_of_mains_lineage_and_prune_keeps_what_is_in_use(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    repo, config = world.repo, parse({"workspace": {"setup": ["true"]}})
    setup = CountedSetup(config, tmp_path / "logs")
    on_main = build(repo, "main", config, setup)
    on_src = build(repo, "moved-src", config, setup)
    assert snapshots.latest(repo, "main", config) == on_main
    assert snapshots.latest(repo, "moved-src", config) == on_src
    assert snapshots.latest(repo, "moved-lock", config) == on_main
    other = parse({"workspace": {"setup": ["false"]}})
    assert snapshots.latest(repo, "main", other) is None, "other set-up commands"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert snapshots.latest(clone, "main", config) is None, "another repository"

    assert snapshots.prune(keep=1) == [on_main]
    assert snapshots.list_all() == [on_src] and not on_main.path.exists()
    if not available():
        return
    dest = paths.workspaces() / "in-use"
    OverlayProvider().create_from(on_src, "agent/x", dest)
    try:
        assert snapshots.prune(keep=0) == []
        with pytest.raises(Refused):
            snapshots.remove(on_src)
    finally:
        OverlayProvider().remove(dest)
    assert snapshots.prune(keep=0) == [on_src] and snapshots.list_all() == []
