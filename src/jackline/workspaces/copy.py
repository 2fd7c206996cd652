"""A workspace as a copy of a snapshot: where no overlay can be mounted (no privilege).

`cp -a --reflink=auto` shares the blocks where the file system can (btrfs, XFS, APFS-like
clones); elsewhere (ext4) it is a real copy, in time proportional to the snapshot's size.

Paths listed in `shared` (`[workspace] shared`, say `[".venv/lib"]`) are hard-linked file by file
instead, which costs nothing whatever their size, but a hard-linked file is the snapshot's own:
it must never be written in place. pip and npm replace files rather than write into them, but a
command such as `echo >> .venv/lib/x.pth` would change the snapshot and every workspace made from
it, which is why nothing is shared unless declared. The workspace's git directory is not in the
tree: `snapshot.begin` makes it beside the workspace.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from jackline.git import git, gitdir_path
from jackline.workspaces import Workspace
from jackline.workspaces.snapshot import Snapshot, begin, copy_tree


class CopyProvider:
    name = "copy"

    def __init__(self, shared: Sequence[str] = ()) -> None:
        self.shared = tuple(shared)

    def create_from(self, snapshot: Snapshot, branch: str, dest: Path) -> Workspace:
        self.remove(dest)  # a retried prepare step: start again from nothing
        dest.parent.mkdir(parents=True, exist_ok=True)
        linked = {snapshot.tree / p for p in self.shared}
        copy_tree(snapshot.tree, dest, linked)
        ws = begin(dest, snapshot, branch, "copy+hardlinks" if self.shared else self.name)
        # Every copied file has a new inode and change time: without this, git would take each
        # for modified and read them all again at the agent's first `git status`.
        git(dest, "update-index", "-q", "--refresh", check=False)
        return ws

    def remove(self, workspace: Path) -> None:
        shutil.rmtree(workspace, ignore_errors=True)
        shutil.rmtree(gitdir_path(workspace), ignore_errors=True)
