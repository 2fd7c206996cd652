"""Snapshots: the repository at one commit after `[workspace] setup` ran, built once and reused.

A run that waits for `pip install` is a run nobody starts. A snapshot is a local clone of the
user's repository, detached at one commit, in which set-up has run (a virtualenv, node_modules);
a workspace is made from it in constant time by a provider picked by `providers.provider_for`: `overlay`
(the snapshot as the read-only lower layer of a kernel overlay) or `copy` where no overlay can be
mounted. `catch_up` then moves the workspace to main's tip, re-running set-up only if its inputs
changed.

Set-up always runs in the sandbox with the tree bound at `INSIDE` (`/tmp/workspace`) and with the
network: the absolute paths it writes (a venv's shebangs, an editable install's `.pth`) point
where every workspace made from the snapshot appears inside the sandbox too.

Under `JACKLINE_HOME/snapshots/`:

    <key>/tree/         the work tree with set-up's outputs; never changed once built
    <key>/tree.git/     its git directory (the harness's, see `git.gitdir_path`)
    <key>/meta.json     written before the directory gets its name: no meta, no snapshot
    .build-<key>/       a build in progress, renamed to <key>/ when complete
    .locks/<key>        held while <key> is built or removed

The key names the commit and the hash of the set-up inputs: the commands and the files they
install from (`[workspace] setup_inputs` globs, or the lock files found at that commit).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from jackline import paths, proc
from jackline.config import JacklineConfig
from jackline.errors import CommandFailed, Refused
from jackline.git import adopt, git, gitdir_path, ok, rev
from jackline.sandbox import jail_for, scrub
from jackline.workspaces import Workspace
from jackline.workspaces.clone import clone, exclude_setup_outputs

# What set-up installs from, when `[workspace] setup_inputs` does not say: at any depth.
LOCK_FILES = (
    "uv.lock",
    "poetry.lock",
    "requirements*.txt",
    "pyproject.toml",
    "Pipfile.lock",
    "package-lock.json",
    "pnpm-lock.yaml",
    "yarn.lock",
    "Cargo.lock",
    "go.sum",
    "Gemfile.lock",
)

# In a workspace's git directory: which snapshot it was made from, and the set-up inputs its
# set-up outputs match (so `catch_up` knows whether to run set-up again).
PROVENANCE = "jackline-snapshot.json"

# Runs `[workspace] setup` in a directory; one record per command, stopping at the first failure.
RunSetup = Callable[[Path], list[dict[str, Any]]]

# Told as set-up goes: (number, of, command, None) as a command starts, then (number, of, command,
# its record) as it ends. Set-up can take a minute: whoever watches a run sees each command.
SetupWatch = Callable[[int, int, str, dict[str, Any] | None], None]


class SetupFailed(CommandFailed):
    """A set-up command exited non-zero: no snapshot is kept."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    tree: Path
    commit: str
    key: str
    inputs_hash: str
    created: float
    origin: str
    """The repository it was cloned from (resolved)."""
    setup: tuple[str, ...]


def root() -> Path:
    return paths.home() / "snapshots"


# the key ----------------------------------------------------------------------------------


def setup_inputs(repo_or_dir: Path, commit: str, setup: list[str], inputs: list[str] | None) -> str:
    """The hash of what set-up depends on: its commands, and the files at `commit` that match
    `inputs` (gitignore-style globs; default: the lock files). Files enter by their blob id,
    which is the hash of their content, so nothing is read but the tree listing."""
    spec = pathspec.GitIgnoreSpec.from_lines(inputs or LOCK_FILES)
    listing = git(repo_or_dir, "ls-tree", "-r", "-z", commit, strip=False)
    h = hashlib.sha256(json.dumps(setup).encode())
    for entry in sorted(e for e in listing.split("\0") if e):
        meta, name = entry.split("\t", 1)
        _mode, kind, blob = meta.split()
        if kind == "blob" and spec.match_file(name):
            h.update(f"\0{name}\0{blob}".encode())
    return h.hexdigest()


def key(commit: str, inputs_hash: str) -> str:
    return f"{commit[:12]}-{inputs_hash[:12]}"


def declared_inputs(config: JacklineConfig) -> list[str] | None:
    return config.workspace.setup_inputs


# building -----------------------------------------------------------------------------------


def build(repo: Path, commit: str, config: JacklineConfig, run_setup: RunSetup) -> Snapshot:
    """The snapshot of `commit` for this set-up: the one already built, or a new one."""
    commit = rev(repo, commit)
    setup = config.workspace.setup
    inputs_hash = setup_inputs(repo, commit, setup, declared_inputs(config))
    k = key(commit, inputs_hash)
    found = load(root() / k)
    if found is not None:
        return found
    with _locked(k):
        # Another builder may have finished it while this one waited for the lock.
        return load(root() / k) or _build(repo, commit, setup, run_setup, k, inputs_hash)


def current(repo: Path, main: str, config: JacklineConfig, run_setup: RunSetup) -> Snapshot:
    """The snapshot a run from main's tip starts from: the latest one of main's lineage if its
    set-up inputs are still the tip's (the workspace catches up with a fetch), else a new one."""
    tip = rev(repo, main)
    found = latest(repo, main, config)
    wanted = setup_inputs(repo, tip, config.workspace.setup, declared_inputs(config))
    if found is not None and found.inputs_hash == wanted:
        return found
    return build(repo, tip, config, run_setup)


def _build(
    repo: Path, commit: str, setup: list[str], run_setup: RunSetup, k: str, inputs_hash: str
) -> Snapshot:
    temp = root() / f".build-{k}"
    shutil.rmtree(temp, ignore_errors=True)  # left by a builder that crashed
    try:
        tree = temp / "tree"
        _clone(repo, commit, tree)
        records = run_setup(tree)
        raise_failed(records)
        exclude_setup_outputs(tree)
        meta = {
            "commit": commit,
            "key": k,
            "inputs_hash": inputs_hash,
            "setup": setup,
            "origin": str(repo.resolve()),
            "created": time.time(),
            "size": _size(tree),
            "durations": [{"command": r["command"], "duration": r["duration"]} for r in records],
        }
        (temp / "meta.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(root() / k, ignore_errors=True)  # a removal that crashed half-way
        temp.rename(root() / k)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    snapshot = load(root() / k)
    assert snapshot is not None
    return snapshot


def _clone(repo: Path, commit: str, tree: Path) -> None:
    clone(repo, tree)
    git(tree, "checkout", "--quiet", "--detach", commit)


def raise_failed(records: list[dict[str, Any]]) -> None:
    for r in records:
        if r["exit_code"] != 0:
            raise SetupFailed(r["command"], r["exit_code"], r["tail"], "")


def _size(tree: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(tree):
        total += sum(os.lstat(os.path.join(top, f)).st_size for f in files)
    return total


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Between processes (and threads): an exclusive `flock` on a file that is never removed."""
    locks = root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / name, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def default_setup(config: JacklineConfig, logs: Path, watch: SetupWatch | None = None) -> RunSetup:
    """`[workspace] setup` in the sandbox `[sandbox]` describes (the directory at `INSIDE` under
    bubblewrap), with the network; each command's output in `logs/setup-<n>.log`, each command's
    start and end told to `watch`."""
    box = config.sandbox
    env = scrub(os.environ, box.env, setup=True)
    commands = config.workspace.setup

    def run_setup(tree: Path) -> list[dict[str, Any]]:
        jail = jail_for(box, tree, network=True)
        records: list[dict[str, Any]] = []
        for i, command in enumerate(commands, 1):
            if watch:
                watch(i, len(commands), command, None)
            log = logs / f"setup-{i}.log"
            done = proc.run(command, tree, env, log, config.workspace.setup_timeout, jail=jail)
            records.append(
                {
                    "command": command,
                    "exit_code": done.exit_code,
                    "duration": round(done.duration, 3),
                    "tail": done.tail(15),
                }
            )
            if watch:
                watch(i, len(commands), command, records[-1])
            if done.exit_code != 0:
                break
        return records

    return run_setup


# finding and removing -----------------------------------------------------------------------


def load(path: Path) -> Snapshot | None:
    """The snapshot in `path`, or None if it is not a complete one."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return Snapshot(
        path=path,
        tree=path / "tree",
        commit=meta["commit"],
        key=meta["key"],
        inputs_hash=meta["inputs_hash"],
        created=meta["created"],
        origin=meta["origin"],
        setup=tuple(meta["setup"]),
    )


def list_all() -> list[Snapshot]:
    """Every complete snapshot, newest first."""
    if not root().is_dir():
        return []
    found = [load(p) for p in root().iterdir() if not p.name.startswith(".")]
    return sorted((s for s in found if s is not None), key=lambda s: -s.created)


def latest(repo: Path, main: str, config: JacklineConfig) -> Snapshot | None:
    """The snapshot nearest to main's tip among those of this repository and set-up commands
    whose commit is in main's history."""
    tip = rev(repo, main)
    origin = str(repo.resolve())
    setup = tuple(config.workspace.setup)
    mine = [
        s
        for s in list_all()
        if s.origin == origin
        and s.setup == setup
        and ok(repo, "merge-base", "--is-ancestor", s.commit, tip)
    ]
    # list_all is newest first and min() keeps the first of equals: the newest breaks ties.
    return min(mine, key=lambda s: _distance(repo, s.commit, tip), default=None)


def _distance(repo: Path, ancestor: str, tip: str) -> int:
    return int(git(repo, "rev-list", "--count", f"{ancestor}..{tip}"))


def in_use(snapshot: Snapshot) -> bool:
    """Whether an overlay workspace has the snapshot as its lower layer: the kernel forbids
    changing a lower layer under a mounted overlay."""
    tree = str(snapshot.tree.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fstype, _source, options = line.split(" - ", 1)[1].split(" ", 2)
        if fstype != "overlay":
            continue
        for option in _unescape(options).split(","):
            if option.startswith("lowerdir=") and tree in option[len("lowerdir=") :].split(":"):
                return True
    return False


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def remove(snapshot: Snapshot) -> None:
    with _locked(snapshot.key):
        if in_use(snapshot):
            raise Refused(f"snapshot {snapshot.key} is in use by a workspace; remove that first")
        (snapshot.path / "meta.json").unlink(missing_ok=True)  # no longer complete, first
        shutil.rmtree(snapshot.path, ignore_errors=True)


def sweep_builds() -> list[str]:
    """Remove the half-built snapshots that builders which crashed left behind (a build still
    going holds its key's lock, and is left alone); return their keys."""
    swept = []
    for temp in root().glob(".build-*") if root().exists() else []:
        k = temp.name.removeprefix(".build-")
        locks = root() / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / k, "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(temp, ignore_errors=True)
            swept.append(k)
    return swept


def prune(keep: int) -> list[Snapshot]:
    """Remove all but the `keep` newest snapshots, except those in use; return the removed."""
    removed = []
    for snapshot in list_all()[keep:]:
        if not in_use(snapshot):
            remove(snapshot)
            removed.append(snapshot)
    return removed


# workspaces made from a snapshot ----------------------------------------------------------------


def begin(dest: Path, snapshot: Snapshot, branch: str, method: str) -> Workspace:
    """The last step of every provider, once `dest` holds the snapshot's tree: a git directory
    of its own beside it, the run's branch at the snapshot's commit, and where it came from."""
    copy_gitdir(gitdir_path(snapshot.tree), gitdir_path(dest))
    adopt(dest)
    git(dest, "checkout", "--quiet", "-b", branch)
    _write_provenance(dest, snapshot.key, snapshot.commit, snapshot.inputs_hash)
    return Workspace(dest, branch, snapshot.commit, method)


def catch_up(
    ws: Workspace,
    repo: Path,
    main: str,
    config: JacklineConfig,
    run_setup: RunSetup,
    to: str | None = None,
) -> dict[str, Any]:
    """Move the workspace's branch to main's tip (or to the commit `to`, one of main's), keeping
    set-up's outputs (they are ignored files), and run set-up again only if its inputs differ
    from those its outputs came from."""
    made = json.loads((gitdir_path(ws.path) / PROVENANCE).read_text())
    git(ws.path, "fetch", "--quiet", str(repo), f"+refs/heads/{main}:refs/remotes/origin/{main}")
    tip = rev(ws.path, to or f"origin/{main}")
    done = {"moved_from": ws.base_sha, "moved_to": tip, "setup_rerun": False}
    if tip == ws.base_sha:
        return done
    git(ws.path, "checkout", "--quiet", "-B", ws.branch, tip)
    inputs_hash = setup_inputs(ws.path, tip, config.workspace.setup, declared_inputs(config))
    if inputs_hash != made["inputs_hash"]:
        raise_failed(run_setup(ws.path))
        exclude_setup_outputs(ws.path)
        done["setup_rerun"] = True
    _write_provenance(ws.path, made["snapshot"], tip, inputs_hash)
    return done


def _write_provenance(dest: Path, snapshot_key: str, commit: str, inputs_hash: str) -> None:
    record = {"snapshot": snapshot_key, "commit": commit, "inputs_hash": inputs_hash}
    (gitdir_path(dest) / PROVENANCE).write_text(json.dumps(record, indent=2))


def copy_gitdir(src: Path, dest: Path) -> None:
    """A workspace's own git directory, from its snapshot's: everything copied but the objects,
    which are hard-linked. Both are the harness's and out of every sandbox's reach, and git never
    writes an object file in place; nothing is shared with the user's repository."""
    shutil.rmtree(dest, ignore_errors=True)
    copy_tree(src, dest, {src / "objects"})


def copy_tree(src: Path, dest: Path, linked: set[Path]) -> None:
    """`src` to `dest`, with the paths in `linked` hard-linked file by file: one `cp` for the
    plain entries of each folder, and a walk down only the folders that hold a linked path."""
    dest.mkdir()
    plain, shared, mixed = [], [], []
    for child in sorted(src.iterdir()):
        if child in linked:
            shared.append(child)
        elif not child.is_symlink() and any(child in p.parents for p in linked):
            mixed.append(child)
        else:
            plain.append(child)
    if plain:
        _cp(["-a", "--reflink=auto"], plain, dest)
    if shared:
        _cp(["-al"], shared, dest)
    for child in mixed:
        copy_tree(child, dest / child.name, linked)
    shutil.copystat(src, dest, follow_symlinks=False)


def _cp(flags: list[str], sources: list[Path], into: Path) -> None:
    argv = ["cp", *flags, *map(str, sources), str(into)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stdout, done.stderr)
