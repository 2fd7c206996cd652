"""A run's work kept in the store, and where its workspace is, so another machine can make it again.

A workspace is a folder on the machine of the worker that made it. When that worker dies, another
takes its runs over (the engine resumes each from its last finished step) and needs the work as it
was at the end of that step. So after each step that changes the work, the run keeps it in the
store (`Store.put_artifact`): a git bundle, from the run's base commit, of one commit whose parent
is the branch's head and whose tree is the work tree as the harness already reads it
(`git.worktree_tree`: git's own view of regular files and links, a link kept as a link and never
followed, nothing under any `.git`, ignored files left out, git run with the harness's own git
directory and no hook or file-system monitor, see `git.SAFE`). Nothing of the workspace is
read here that the harness does not already read after every round.

The work is kept as it is, not redacted: it is what the commit step commits and publish pushes.
What is never committed is never kept either: the caller decides (`steps.moving.keep` does not
keep a change that holds a block-level secret), and work larger than `[workspace] kept_mb` is not
kept. Then the entry says why (`Kept.why`), and the run cannot move machines until a later step's
work is kept.

Two slots hold the work: the latest and the one before it. A step that dies after keeping its work
but before the engine recorded it runs again, and must start from the work before its own
(`Index.source`). The index is written after the slot, so a step that died between the two left
the index naming the work it had before, and a slot whose bytes do not match the index's digest is
never applied.

Where the workspace is (`Place`) is kept in the store as well: the machine, the path, and a token
also written into the harness's git directory beside the workspace (out of every sandbox's reach;
made anew each time the workspace is made). A folder at that path is the run's workspace only if
all of them agree and it is not empty. A folder's device and inode would say little more: a folder
removed and made again often gets the same inode back.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from jackline import executors, safeio
from jackline import git as g
from jackline.store import Store

PLACE = "work/place.json"
INDEX = "work/index.json"
SLOTS = ("work/a.bundle", "work/b.bundle")
TOKEN = "jackline-run"
"""The file in the harness's git directory that names the run the workspace was made for."""


# where the workspace is ------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a run's workspace is, as the process that made it recorded."""

    host: str
    path: str
    token: str
    """Also in the harness's git directory beside the workspace (`TOKEN`)."""
    by: str
    """The process that made it (its executor id, or host and pid)."""
    at: float


def claim(store: Store, run_id: str, ws: Path) -> Place:
    """Record `ws` as the run's workspace on this machine, with a new token: a copy of it made
    before (on this machine or another) is no longer the run's."""
    gitdir = g.gitdir(ws)
    assert gitdir is not None, f"{ws} has no git directory of the harness's"
    token = secrets.token_hex(16)
    (gitdir / TOKEN).write_text(json.dumps({"run": run_id, "token": token}) + "\n")
    place = Place(socket.gethostname(), str(ws), token, _me(), time.time())
    store.put_artifact(run_id, PLACE, json.dumps(asdict(place)).encode())
    return place


def place_of(store: Store, run_id: str) -> Place | None:
    data = store.get_artifact(run_id, PLACE)
    if data is None:
        return None
    return Place(**json.loads(data))


def not_here(place: Place | None, ws: Path, run_id: str) -> str | None:
    """Why `ws` is not the run's workspace on this machine, or None when it is. A run that
    recorded no place (made before places were kept) has its workspace wherever its path is."""
    if not ws.is_dir() or ws.is_symlink():
        return f"{ws} is not on this machine"
    if place is None:
        return None
    if place.host != socket.gethostname():
        return f"it was made on {place.host}"
    if place.path != str(ws):
        return f"the run's workspace was recorded at {place.path}, not {ws}"
    gitdir = g.gitdir(ws)
    token = safeio.read_text(gitdir, TOKEN, 4096) if gitdir else None
    if token is None or _token(token, run_id) != place.token:
        return f"{ws} holds another workspace than the one made for the run"
    with os.scandir(ws) as entries:
        if next(entries, None) is None:
            return f"{ws} is empty"
    return None


def _token(text: str, run_id: str) -> str | None:
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("run") != run_id:
        return None
    return str(raw.get("token"))


def _me() -> str:
    return executors.mine() or f"{socket.gethostname()}-{os.getpid()}"


# the work --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kept:
    """The work at the end of one step, as the index records it."""

    step: str
    """The step it is the work of: `prepare`, `agent:2`, `step:1-autofix`, `commit:2`."""
    head: str
    """The branch's head (the harness's commits) then."""
    tree: str
    """The work tree then (`git.worktree_tree`)."""
    base: str
    """The run's base commit then: the bundle needs it (and what precedes it) to apply."""
    branch: str
    slot: str | None
    """The artifact holding the bundle. None: the work was not kept (`why` says why), or
    there was nothing to keep (`why` empty): the work is the base itself, as prepare leaves it."""
    size: int = 0
    digest: str = ""
    """sha256 of the bundle's bytes."""
    why: str = ""
    """Why the work was not kept."""
    secrets: tuple[str, ...] = ()
    """Where a block-level secret was in the work (`file:line`), never its value."""
    host: str = ""
    at: float = 0.0

    @property
    def movable(self) -> bool:
        """Whether a workspace can be made again from this work."""
        return self.slot is not None or not self.why


@dataclass(frozen=True)
class Index:
    latest: Kept | None = None
    previous: Kept | None = None

    def source(self, step: str | None) -> Kept | None:
        """The work a step starts from: the latest, unless the latest is that step's own (it
        kept its work, then died before the engine recorded it: it runs again from before)."""
        if self.latest is not None and step is not None and self.latest.step == step:
            return self.previous
        return self.latest


def index_of(store: Store, run_id: str) -> Index:
    data = store.get_artifact(run_id, INDEX)
    if data is None:
        return Index()
    raw = json.loads(data)
    return Index(*(_kept(raw.get(k)) for k in ("latest", "previous")))


def _kept(raw: dict[str, object] | None) -> Kept | None:
    if raw is None:
        return None
    return Kept(**{**raw, "secrets": tuple(raw.get("secrets") or ())})  # type: ignore[arg-type]


def head_and_tree(ws: Path, branch: str) -> tuple[str, str]:
    """The branch's head and the work tree, as a step leaves them."""
    return g.rev(ws, f"refs/heads/{branch}"), g.worktree_tree(ws)


def record(store: Store, run_id: str, kept: Kept, data: bytes | None) -> Index:
    """Keep `data` (the bundle; None: the work was not kept, `kept.why` says why) as the work of
    `kept.step`, in the slot the work before it does not hold; then the index."""
    index = index_of(store, run_id)
    own = index.latest is not None and index.latest.step == kept.step
    before = index.previous if own else index.latest
    if data is not None:
        taken = before.slot if before is not None else None
        slot = next(s for s in SLOTS if s != taken)
        store.put_artifact(run_id, slot, data)
        kept = replace(kept, slot=slot, size=len(data), digest=_digest(data))
    kept = replace(kept, host=socket.gethostname(), at=time.time())
    new = Index(kept, before)
    body = {"latest": _raw(new.latest), "previous": _raw(new.previous)}
    store.put_artifact(run_id, INDEX, json.dumps(body).encode())
    return new


def _raw(kept: Kept | None) -> dict[str, object] | None:
    return asdict(kept) if kept is not None else None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle(ws: Path, head: str, tree: str, base: str, limit: int) -> bytes | str:
    """The work (`tree` on top of `head`) as a git bundle that needs `base`; or why not (its
    objects take more than `limit` bytes). Made in the harness's git directory only: the
    commit exists there, never on the branch."""
    work = g.git(ws, "commit-tree", tree, "-p", head, "-m", "jackline: the work of a step")
    ref = f"refs/jackline/work-{uuid.uuid4().hex}"  # the agent's copy of the refs never has it
    g.git(ws, "update-ref", ref, work)
    try:
        # Measured before the bundle is made: a huge file is not packed only to be refused.
        used = int(g.git(ws, "rev-list", "--objects", "--disk-usage", ref, f"^{base}"))
        if used > limit:
            return _too_large(used, limit)
        data = g.git_bytes(ws, "bundle", "create", "--quiet", "-", ref, f"^{base}")
    finally:
        g.git(ws, "update-ref", "-d", ref, check=False)
    return _too_large(len(data), limit) if len(data) > limit else data


def _too_large(size: int, limit: int) -> str:
    mib = 1024 * 1024
    return (
        f"the work takes {size / mib:.1f} MiB, more than the {limit / mib:.0f} MiB "
        "`[workspace] kept_mb` allows"
    )


def apply(ws: Path, data: bytes | None, kept: Kept) -> None:
    """Make a fresh workspace of the run hold the kept work: the bundle's objects (none for the
    base itself) added to the harness's git directory, the branch at the work's head, and the
    work tree the work's tree (index and HEAD at the head, as a step leaves them). The bundle
    is the store's, written by a harness; its digest is checked by the caller."""
    if data is not None:
        with tempfile.NamedTemporaryFile(suffix=".bundle") as f:
            f.write(data)
            f.flush()
            work = g.git(ws, "bundle", "unbundle", f.name).split()[0]
        same = g.rev(ws, f"{work}^") == kept.head
        if not same or g.git(ws, "rev-parse", f"{work}^{{tree}}") != kept.tree:
            raise ValueError(f"the kept work of {kept.step} is not what its index says")
    g.git(ws, "update-ref", f"refs/heads/{kept.branch}", kept.head)
    g.git(ws, "symbolic-ref", "HEAD", f"refs/heads/{kept.branch}")
    g.restore_tree(ws, kept.tree)


def digest_matches(data: bytes | None, kept: Kept) -> bool:
    return data is not None and _digest(data) == kept.digest
