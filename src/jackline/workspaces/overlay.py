"""A workspace as a kernel overlay over a snapshot: made in constant time, whatever its size.

The snapshot's tree is the read-only lower layer; every write goes to the upper layer (the
workspace's git directory is not in the tree: `snapshot.begin` makes it beside the workspace).
The layers live beside the workspace, in `<dest>.layers/{upper,work}`, and the merged view is
mounted at `dest` itself, so `dest` is the workspace path as for any other provider. Git's
index stays valid through the overlay (inode numbers and times are the lower files'), so
`git status` in a fresh workspace is clean without re-reading a file.

Mounting needs privilege (root, here); `available()` tries once per process. A mount does not
survive a reboot: the workspace is then an empty directory, its layers are kept, and `remount`
(called whenever a run or the pool picks the workspace up again) mounts it back.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from jackline import mounts, paths
from jackline.git import gitdir_path
from jackline.workspaces import Workspace
from jackline.workspaces.snapshot import Snapshot, begin


class OverlayProvider:
    name = "overlay"

    def create_from(self, snapshot: Snapshot, branch: str, dest: Path) -> Workspace:
        self.remove(dest)  # a retried prepare step: start again from nothing
        layers = _layers(dest)
        for d in (layers / "upper", layers / "work", dest):
            d.mkdir(parents=True)
        (layers / "lower").write_text(str(snapshot.tree.resolve()))
        mounts.overlay(snapshot.tree.resolve(), layers / "upper", layers / "work", dest)
        return begin(dest, snapshot, branch, self.name)

    def remove(self, workspace: Path) -> None:
        """Unmount (lazily if the mount is busy) and delete the layers. Safe on a workspace of
        any provider, or on one that is not mounted any more."""
        if os.path.ismount(workspace):
            mounts.unmount(workspace)
        shutil.rmtree(_layers(workspace), ignore_errors=True)
        shutil.rmtree(workspace, ignore_errors=True)
        shutil.rmtree(gitdir_path(workspace), ignore_errors=True)


def remount(dest: Path) -> bool:
    """Mount an overlay workspace again after a reboot took its mount away (its layers, and so
    every write made in it, are kept); True if it had to."""
    layers = _layers(dest)
    lower = layers / "lower"
    if not lower.exists() or not dest.is_dir() or os.path.ismount(dest):
        return False
    mounts.overlay(Path(lower.read_text()), layers / "upper", layers / "work", dest)
    return True


def _layers(dest: Path) -> Path:
    return dest.with_name(dest.name + ".layers")


@functools.cache
def available() -> bool:
    """Whether this process can mount an overlay where workspaces live: one tiny test mount."""
    paths.workspaces().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.workspaces(), prefix=".overlay-test-") as tmp:
        lower, upper, work, at = (Path(tmp) / d for d in ("lower", "upper", "work", "at"))
        for d in (lower, upper, work, at):
            d.mkdir()
        try:
            mounts.overlay(lower, upper, work, at)
        except OSError:
            return False
        mounts.unmount(at)
        return True
