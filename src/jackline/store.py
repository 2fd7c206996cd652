"""The run records and the audit log: in `jackline.db` (SQLite) by default, or in PostgreSQL
beside the workflow engine's tables (`JACKLINE_DATABASE_URL`), through the same code.

`jackline runs` and `jackline show` read from here without importing the workflow engine. Every
write is a short transaction. How the database is found and reached is `database`'s; its schema
and how it changes, `migrations`'.

The tables of records (runs, releases, probes, tokens, workers) have a column per field of the
record, under its name (`tests/test_records.py` holds them to it); rows are read and written from
the fields (`_row`, `_record`), so a field added to a record needs only its column, added by a
step in `migrations`. Every statement names its columns, so a column a newer Jackline added is
never read here (`migrations`: expand/contract).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import Enum, StrEnum
from functools import cache
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin, get_type_hints

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from jackline import database, paths
from jackline.errors import NotFound
from jackline.events import Kind
from jackline.models import DRIVEN, FINAL, Comment, Probe, Release, Run, Token, WorkerBeat

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


@dataclass(frozen=True)
class StoredEvent:
    """One event of an audit stream as it is stored: its data still the JSON text that its hash
    covers (`guard.audit` checks and reads it)."""

    run_id: str
    seq: int
    ts: float
    kind: str
    data: str
    prev: str
    hash: str


@dataclass(frozen=True)
class AuditHead:
    """The recorded head of a keyed stream: its last event and the mac that seals it."""

    run_id: str
    seq: int
    hash: str
    since: int
    """The stream's first keyed event."""
    mac: str


@dataclass(frozen=True)
class QueuePlace:
    """What a worker taking runs from the team's queue reads of a run (`queueing`)."""

    id: str
    repo: str
    status: str
    priority: int


@dataclass(frozen=True)
class RunTally:
    """How many runs have one status (and, for a status that needs a live driver, one
    executor), and their rounds in all (`Store.run_tally`)."""

    status: str
    executor: str | None
    runs: int
    rounds: int


@dataclass(frozen=True)
class RunChoices:
    """What the runs here can be filtered by (`Store.run_choices`)."""

    agents: tuple[str, ...]
    people: tuple[str, ...]
    """Who submitted them."""
    repos: tuple[str, ...]


@dataclass(frozen=True)
class IssueRun:
    """The run a GitHub issue started (`issue_runs`): one at a time per issue."""

    repository: str
    """`owner/name`."""
    number: int
    run_id: str
    """"" while the run is being started (`Store.claim_issue`)."""
    comment_id: int
    """The issue's progress comment, edited in place (0 before it is made)."""
    at: float


@dataclass(frozen=True)
class StoredToken:
    """A server token as the store keeps it: the record, and the digest of its secret that
    `auth.verify` compares (it never leaves the store otherwise)."""

    token: Token
    digest: str


class News:
    """What this process has written, as a count that moves on each write: a thread that follows
    runs driven in this process (`engine.drive`) waits on it instead of reading the database ten
    times a second. Writes by other processes do not move it: who follows those still reads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def now(self) -> int:
        return self._count

    def tell(self) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Once the count is past `seen`, or `timeout` seconds have gone by: the count."""
        with self._changed:
            self._changed.wait_for(lambda: self._count != seen, timeout)
            return self._count


NEWS = News()

META = sa.MetaData()


def _sql_type(hint: Any) -> sa.types.TypeEngine[Any]:
    options = get_args(hint) if isinstance(hint, UnionType) else (hint,)
    base = next(o for o in options if o is not type(None))
    base = get_origin(base) or base
    if base in (int, bool):  # a bool is kept as 0 or 1, as SQLite always kept it
        return sa.BigInteger()
    if base is float:
        return sa.Float()
    return sa.LargeBinary() if base is bytes else sa.Text()  # a tuple is kept as JSON text


def _table(
    name: str, record: type[DataclassInstance], *keys: str, extra: tuple[sa.Column[Any], ...] = ()
) -> sa.Table:
    """The table of `record`: a column per field, under its name, and the `extra` columns that
    stay in the table."""
    hints = get_type_hints(record)
    columns = [
        sa.Column(f.name, _sql_type(hints[f.name]), primary_key=f.name in keys)
        for f in fields(record)
    ]
    return sa.Table(name, META, *columns, *extra)


def _rowid() -> sa.Column[Any]:
    """The order rows were inserted in: SQLite's implicit `rowid`; on PostgreSQL, which has
    none, a column of that name (`migrations`)."""
    return sa.Column("rowid", sa.BigInteger)


RUNS = _table("runs", Run, "id")
RELEASES = _table("releases", Release, "id")
PROBES = _table("probes", Probe, extra=(_rowid(),))
WORKERS = _table("workers", WorkerBeat, "id")
TOKENS = _table("tokens", Token, "id", extra=(sa.Column("digest", sa.Text),))
EVENTS = _table("events", StoredEvent, "run_id", "seq")
AUDIT_HEADS = _table("audit_heads", AuditHead, "run_id")
COMMENTS = _table("comments", Comment, "id")
LIVE = sa.Table(
    "live", META,
    *[sa.Column(n, sa.Text) for n in ("repo", "env", "release_id", "sha")],
    sa.Column("since", sa.Float), _rowid(),
)  # fmt: skip
ARTIFACTS = sa.Table(
    "artifacts", META,
    sa.Column("run_id", sa.Text, primary_key=True), sa.Column("name", sa.Text, primary_key=True),
    sa.Column("data", sa.LargeBinary), sa.Column("at", sa.Float),
)  # fmt: skip
DELIVERIES = sa.Table(
    "deliveries", META,
    sa.Column("source", sa.Text, primary_key=True), sa.Column("id", sa.Text, primary_key=True),
    sa.Column("at", sa.Float),
)  # fmt: skip

ISSUE_RUNS = sa.Table(
    "issue_runs", META,
    sa.Column("repository", sa.Text, primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Text), sa.Column("comment_id", sa.BigInteger), sa.Column("at", sa.Float),
)  # fmt: skip

EXCLUSIVE_LOCK = 0x4A45
"""The first key of the advisory lock `Store.exclusive` holds on PostgreSQL (the second: the
name, hashed)."""
STREAM_LOCK = 0x4A4A
"""The first key of the advisory lock a writer of an audit stream holds on PostgreSQL (the
second: the stream's id, hashed): two writers of one stream take turns, so no two events get
one seq and the head always names the last (`Store.append_event`)."""


class Store:
    def __init__(self, path: Path | None = None, *, url: str | None = None) -> None:
        """The store in PostgreSQL when `url` names it (or, with neither argument,
        `JACKLINE_DATABASE_URL` does), else in the SQLite file `path` (by default `jackline.db`
        in Jackline's home). `path`'s folder also holds the audit key (`guard.audit`).

        Cheap: the process's engine for that database is made, and its migrations checked, by
        the first `Store` only (`database.database`)."""
        if path is None and url is None:
            url = database.configured_url()
        self.path = path or paths.database()
        self._db = database.database(database.store_url(self.path, url))
        self._held = threading.local()  # the connection of an `exclusive` block, per thread

    @property
    def postgres(self) -> bool:
        return self._db.postgres

    def close(self) -> None:
        """Nothing to give back: each call borrows a connection from the process's pool and
        returns it before it returns (a `Store` holds none between calls)."""

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (on SQLite, holding the write lock from its start). Inside
        `exclusive` it is part of that one, committed with it."""
        held: Connection | None = getattr(self._held, "conn", None)
        if held is not None:
            yield held
            return
        with self._db.write() as conn:
            yield conn
        NEWS.tell()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        held: Connection | None = getattr(self._held, "conn", None)
        if held is not None:  # inside `exclusive`: what the block wrote is read back
            yield held
            return
        with self._db.read() as conn:
            yield conn

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Run the block as the only holder of `name` among every process sharing this
        database, on any machine (team mode's take-over of a dead worker's runs). On SQLite it
        is the database's one write lock, held for the block (`BEGIN IMMEDIATE`), whatever the
        name; on PostgreSQL, an advisory lock on the name in a transaction held for the block.
        What the block reads and writes through this store (in this thread) is one transaction
        with the check it makes; nothing in it may write to this database through another
        connection (on SQLite that waits for this one)."""
        with self.transaction() as conn:
            if self._db.postgres:
                _advisory_lock(conn, EXCLUSIVE_LOCK, name)
            before = getattr(self._held, "conn", None)
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = before

    def _upsert(self, table: sa.Table, row: Mapping[str, Any], *keys: str) -> None:
        """Insert `row`, or replace the other columns of the row with the same `keys`."""
        with self.transaction() as db:
            db.execute(_upsert(self._db.postgres, table, keys), row)

    # runs ---------------------------------------------------------------------------------

    def insert_run(self, run: Run) -> None:
        self._insert(RUNS, run)

    def _insert(self, table: sa.Table, record: DataclassInstance) -> None:
        with self.transaction() as db:
            db.execute(sa.insert(table), _row(record))

    def update_run(self, run_id: str, **changes: Any) -> Run:
        values: dict[str, Any] = {k: _column(Run, k, v) for k, v in changes.items()}
        values["updated_at"] = time.time()
        if "status" in values:
            # A cancelled run never moves again: a step of its workflow still finishing in
            # another process (the cancel stops the next one) cannot give it another status.
            status = RUNS.c.status
            values["status"] = sa.case((status == "cancelled", status), else_=values["status"])
        with self.transaction() as db:
            done = db.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(values))
            if done.rowcount == 0:
                raise NotFound(f"no run {run_id!r}")
        return self.get_run(run_id)

    def move_run(self, run_id: str, from_: Collection[str], to: str) -> bool:
        """Move the run to status `to` only from one of `from_`, in one statement: of two
        people acting at once, one moves it (True) and the other finds it moved (False)."""
        moved = sa.update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status.in_(list(from_)))
        with self.transaction() as db:
            done = db.execute(moved.values(status=to, updated_at=time.time()))
        return done.rowcount == 1

    def add_to_run(self, run_id: str, **amounts: float) -> Run:
        """Add to a run's counters (`worked_seconds`, `redacted`) in one statement: what two
        writers add, both count."""
        added = {k: RUNS.c[k] + v for k, v in amounts.items()}
        with self.transaction() as db:
            db.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(added))
        return self.get_run(run_id)

    def accept_finding(self, run_id: str, finding: str, head: str | None) -> bool:
        """Add `finding` to the run's accepted ids, only while the run awaits review at `head`:
        an acceptance never lands on a round it was not made on, and two made at once both
        count (the run's row is locked from the read to the write: on PostgreSQL by
        `FOR UPDATE`, on SQLite by the transaction's write lock). False when the run had moved
        or the finding was accepted already."""
        with self.transaction() as db:
            found = db.execute(
                sa.select(RUNS.c.status, RUNS.c.head_sha, RUNS.c.accepted)
                .where(RUNS.c.id == run_id)
                .with_for_update()
            ).first()
            if found is None or found.status != "awaiting_review":
                return False
            accepted = json.loads(found.accepted)
            if (found.head_sha or "") != (head or "") or finding in accepted:
                return False
            db.execute(
                sa.update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(accepted=json.dumps([*accepted, finding]), updated_at=time.time())
            )
            return True

    def set_executor(self, run_id: str, executor: str) -> None:
        """Write down the process that drives the run now (nothing for an unknown run)."""
        with self.transaction() as db:
            db.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(executor=executor))

    def get_run(self, run_id: str) -> Run:
        """The run `run_id` names: its id, or a piece of it that no other run's id holds (at
        least `SHORT` characters, such as the short id `jackline runs` shows). Every surface
        finds runs here, so each takes what the others show."""
        with self._reading() as db:
            row = db.execute(_select(RUNS, Run).where(RUNS.c.id == run_id)).first()
            if row is None:
                named = self._named(db, run_id)
                row = db.execute(_select(RUNS, Run).where(RUNS.c.id == named)).one()
        return _record(Run, row)

    def _named(self, db: Connection, piece: str) -> str:
        wanted = piece.strip().lower().removeprefix("run-")
        if len(wanted) < SHORT:
            raise NotFound(
                f"no run {piece!r}: a short run id has at least {SHORT} characters "
                "(`jackline runs` lists them)"
            )
        found = db.execute(
            sa.select(RUNS.c.id)
            .where(sa.func.lower(RUNS.c.id).contains(wanted, autoescape=True))
            .order_by(RUNS.c.created_at.desc())
            .limit(11)
        )
        ids = [str(i) for i in found.scalars()]
        if not ids:
            raise NotFound(f"no run {piece!r} (`jackline runs` lists them)")
        if len(ids) > 1:
            named = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
            raise NotFound(f"{piece!r} is part of more than one run's id ({named}): give more")
        return ids[0]

    def short_ids(self, run_ids: Collection[str]) -> dict[str, str]:
        """Each run's short id, unique among every run here (see `shortest_unique`)."""
        with self._reading() as db:
            every = list(db.execute(sa.select(RUNS.c.id)).scalars())
        return shortest_unique(run_ids, every)

    def run_in(self, workspace: str) -> Run | None:
        """The run whose workspace is at `workspace`, if any (the newest)."""
        with self._reading() as db:
            found = db.execute(
                sa.select(RUNS.c.id)
                .where(RUNS.c.workspace == workspace)
                .order_by(RUNS.c.created_at.desc())
                .limit(1)
            ).scalar()
        return self.get_run(found) if found else None

    def list_runs(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        agent: str | None = None,
        by: str | None = None,
        repo: str | None = None,
    ) -> list[Run]:
        """Runs newest first, at most `limit`, kept to those with each of the status, agent,
        submitter (`by`) and repository given: filtered by the database, so a filter on a
        long history reads only the runs it shows."""
        wanted = {"status": status, "agent": agent, "submitted_by": by, "repo": repo}
        values = {column: str(v) for column, v in wanted.items() if v}
        with self._reading() as db:
            rows = db.execute(_newest_runs(tuple(values)), {"limit": limit, **values})
            return [_record(Run, r) for r in rows]

    def runs_with_commits(self, shas: Sequence[str]) -> list[Run]:
        """The runs whose head or merge is one of `shas` (what a release carries)."""
        if not shas:
            return []
        wanted = list(shas)
        query = _select(RUNS, Run).where(
            sa.or_(RUNS.c.merge_sha.in_(wanted), RUNS.c.head_sha.in_(wanted))
        )
        with self._reading() as db:
            return [_record(Run, r) for r in db.execute(query)]

    def run_choices(self) -> RunChoices:
        """The agents, submitters and repositories runs here have had, each sorted: what a
        list of runs may be filtered by. One pass over the runs."""
        query = sa.select(RUNS.c.agent, RUNS.c.submitted_by, RUNS.c.repo).distinct()
        with self._reading() as db:
            rows = db.execute(query).all()
        agents, people, repos = (sorted({str(r[i]) for r in rows}) for i in range(3))
        return RunChoices(tuple(agents), tuple(people), tuple(repos))

    def run_tally(self) -> list[RunTally]:
        """Every run, counted by status with its rounds summed, in one query however many runs
        there are (`/metrics`). A status that needs a live driver (`DRIVEN`) is counted apart
        per executor: whether that process lives decides whether its runs show as interrupted."""
        driver = sa.case((RUNS.c.status.in_([str(s) for s in DRIVEN]), RUNS.c.executor))
        runs = sa.select(RUNS.c.status, driver.label("driver"), RUNS.c.rounds).subquery()
        query = sa.select(
            runs.c.status, runs.c.driver, sa.func.count(), sa.func.sum(runs.c.rounds)
        ).group_by(runs.c.status, runs.c.driver)
        with self._reading() as db:
            return [RunTally(str(s), d, int(n), int(r or 0)) for s, d, n, r in db.execute(query)]

    def attempts(self, group: str) -> list[Run]:
        """The runs of one group of parallel attempts, in the order they were submitted."""
        query = _select(RUNS, Run).where(RUNS.c.attempts == group)
        with self._reading() as db:
            rows = db.execute(query.order_by(RUNS.c.created_at, RUNS.c.id))
            return [_record(Run, r) for r in rows]

    def queue_places(self, run_ids: Collection[str]) -> list[QueuePlace]:
        """The repository, status and own priority of each of these runs that exists: a few
        columns, by their ids (a worker asks on every look at the queue)."""
        if not run_ids:
            return []
        query = sa.select(RUNS.c.id, RUNS.c.repo, RUNS.c.status, RUNS.c.priority).where(
            RUNS.c.id.in_(list(run_ids))
        )
        with self._reading() as db:
            return [QueuePlace(str(i), str(r), str(s), int(p)) for i, r, s, p in db.execute(query)]

    def spend_since(self, repo: str, since: float) -> float:
        """US dollars the repository's runs created since `since` (a timestamp) have spent."""
        total = sa.func.coalesce(sa.func.sum(RUNS.c.spend), 0)
        with self._reading() as db:
            spent = db.execute(
                sa.select(total).where(RUNS.c.repo == repo, RUNS.c.created_at >= since)
            ).scalar()
        return float(spent or 0)

    # tokens -------------------------------------------------------------------------------

    def insert_token(
        self,
        token_id: str,
        name: str,
        role: str,
        digest: str,
        at: float,
        expires_at: float | None = None,
    ) -> None:
        row = {"id": token_id, "name": name, "role": role, "digest": digest, "created_at": at}
        row["expires_at"] = expires_at
        with self.transaction() as db:
            db.execute(sa.insert(TOKENS), row)

    def token_row(self, token_id: str) -> StoredToken | None:
        with self._reading() as db:
            row = db.execute(_token_by_id(), {"id": token_id}).first()
        return StoredToken(_record(Token, row), row.digest) if row else None

    def get_token(self, token_id: str) -> Token:
        stored = self.token_row(token_id)
        if stored is None:
            raise NotFound(f"no token {token_id!r}")
        return stored.token

    def list_tokens(self) -> list[Token]:
        with self._reading() as db:
            rows = db.execute(_select(TOKENS, Token).order_by(TOKENS.c.created_at))
            return [_record(Token, r) for r in rows]

    def touch_token(self, token_id: str, at: float) -> None:
        with self.transaction() as db:
            db.execute(sa.update(TOKENS).where(TOKENS.c.id == token_id).values(last_used=at))

    def revoke_token(self, token_id: str) -> None:
        with self.transaction() as db:
            db.execute(sa.update(TOKENS).where(TOKENS.c.id == token_id).values(revoked=1))

    # events -------------------------------------------------------------------------------

    def append_event(
        self,
        run_id: str,
        kind: str,
        data: str,
        chain: Callable[[str, int, float, str, str], str],
        seal: Callable[[int, str, int], str],
    ) -> int:
        """Append one event; `chain(prev_hash, seq, ts, kind, data)` gives its hash, and
        `seal(seq, hash, since)` the mac of the stream's head, recorded in the same transaction
        (`since`: the first keyed event), so the tail cannot go without the head saying so.
        Writers of one stream take turns (SQLite's write lock; on PostgreSQL an advisory lock
        on the stream), so each event follows the one before it."""
        with self.transaction() as db:
            if self._db.postgres:
                _advisory_lock(db, STREAM_LOCK, run_id)
            last = db.execute(
                sa.select(EVENTS.c.seq, EVENTS.c.hash)
                .where(EVENTS.c.run_id == run_id)
                .order_by(EVENTS.c.seq.desc())
                .limit(1)
            ).first()
            seq = last.seq + 1 if last else 1
            prev = last.hash if last else ""
            ts = time.time()
            digest = chain(prev, seq, ts, kind, data)
            event = StoredEvent(run_id, seq, ts, str(kind), data, prev, digest)
            db.execute(sa.insert(EVENTS), _row(event))
            since = db.execute(
                sa.select(AUDIT_HEADS.c.since).where(AUDIT_HEADS.c.run_id == run_id)
            ).scalar()
            since = seq if since is None else since
            head = AuditHead(run_id, seq, digest, since, seal(seq, digest, since))
            db.execute(_upsert(self._db.postgres, AUDIT_HEADS, ("run_id",)), _row(head))
        return seq

    def event_data(self, kind: Kind) -> list[str]:
        """The data of every event of `kind` in every stream, in one query (`/metrics` reads
        the checks of every round)."""
        query = sa.select(EVENTS.c.data).where(EVENTS.c.kind == str(kind))
        with self._reading() as db:
            return [str(d) for d in db.execute(query).scalars()]

    def audit_head(self, run_id: str) -> AuditHead | None:
        """The stream's recorded head, if it has a keyed one."""
        query = _select(AUDIT_HEADS, AuditHead).where(AUDIT_HEADS.c.run_id == run_id)
        with self._reading() as db:
            row = db.execute(query).first()
        return _record(AuditHead, row) if row else None

    def events(self, run_id: str, after: int = 0, kind: Kind | None = None) -> list[StoredEvent]:
        query = _select(EVENTS, StoredEvent).where(EVENTS.c.run_id == run_id, EVENTS.c.seq > after)
        if kind:
            query = query.where(EVENTS.c.kind == str(kind))
        with self._reading() as db:
            rows = db.execute(query.order_by(EVENTS.c.seq))
            return [_record(StoredEvent, r) for r in rows]

    # releases -----------------------------------------------------------------------------

    def insert_release(self, release: Release) -> None:
        self._insert(RELEASES, release)

    def update_release(self, release_id: str, **changes: Any) -> Release:
        values = {k: _column(Release, k, v) for k, v in changes.items()}
        values["updated_at"] = time.time()
        with self.transaction() as db:
            done = db.execute(sa.update(RELEASES).where(RELEASES.c.id == release_id).values(values))
            if done.rowcount == 0:
                raise NotFound(f"no release {release_id!r}")
        return self.get_release(release_id)

    def get_release(self, release_id: str) -> Release:
        query = _select(RELEASES, Release)
        with self._reading() as db:
            row = db.execute(query.where(RELEASES.c.id == release_id)).first()
            if row is None:
                like = RELEASES.c.id.contains(release_id, autoescape=True)
                newest = query.where(like).order_by(RELEASES.c.created_at.desc()).limit(2)
                matches = db.execute(newest).all()
                if len(matches) != 1:
                    hint = "several releases match" if matches else "`jackline releases` lists them"
                    raise NotFound(f"no release {release_id!r} ({hint})")
                row = matches[0]
        return _record(Release, row)

    def list_releases(self, repo: str | None = None, limit: int = 100) -> list[Release]:
        query = _select(RELEASES, Release)
        if repo:
            query = query.where(RELEASES.c.repo == repo)
        with self._reading() as db:
            newest = query.order_by(RELEASES.c.created_at.desc()).limit(limit)
            return [_record(Release, r) for r in db.execute(newest)]

    def unpromotable(self, repo: str, sha: str) -> Release | None:
        """The latest release of `sha` that was marked not promotable, if any."""
        query = (
            _select(RELEASES, Release)
            .where(RELEASES.c.repo == repo, RELEASES.c.sha == sha, RELEASES.c.promotable == 0)
            .order_by(RELEASES.c.created_at.desc())
            .limit(1)
        )
        with self._reading() as db:
            row = db.execute(query).first()
        return _record(Release, row) if row else None

    def add_probe(self, probe: Probe) -> None:
        self._insert(PROBES, probe)

    def probes(self, release_id: str) -> list[Probe]:
        query = _select(PROBES, Probe).where(PROBES.c.release_id == release_id)
        with self._reading() as db:
            rows = db.execute(query.order_by(PROBES.c.at, PROBES.c.rowid))
            return [_record(Probe, r) for r in rows]

    def set_live(self, repo: str, env: str, release_id: str, sha: str) -> None:
        """Record that `release_id` serves `env` from now on (a row per change: the history)."""
        row = {"repo": repo, "env": env, "release_id": release_id, "sha": sha, "since": time.time()}
        with self.transaction() as db:
            db.execute(sa.insert(LIVE), row)

    def live(self, repo: str, env: str) -> dict[str, Any] | None:
        """What serves `env` now: release_id, sha and since; None before the first release."""
        history = self.live_history(repo, env, limit=1)
        return history[0] if history else None

    def live_history(self, repo: str, env: str, limit: int = 100) -> list[dict[str, Any]]:
        """What served `env`, newest first."""
        query = (
            sa.select(LIVE.c.release_id, LIVE.c.sha, LIVE.c.since)
            .where(LIVE.c.repo == repo, LIVE.c.env == env)
            .order_by(LIVE.c.since.desc(), LIVE.c.rowid.desc())
            .limit(limit)
        )
        with self._reading() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    # workers (team mode) ------------------------------------------------------------------

    def beat(self, worker: WorkerBeat) -> None:
        """Record that `worker` lives, as of `worker.beat_at` (its first beat adds its row)."""
        self._upsert(WORKERS, _row(worker), "id")

    def renew_beat(self, worker_id: str, at: float) -> bool:
        """Renew a worker's beat; False where its row is gone: another found it dead (and took
        its runs over) or it left. One statement, so a beat never brings a forgotten row back."""
        with self.transaction() as db:
            renewed = db.execute(
                sa.update(WORKERS).where(WORKERS.c.id == worker_id).values(beat_at=at)
            )
            return renewed.rowcount == 1

    def workers(self) -> list[WorkerBeat]:
        """Every worker that has beaten and not been forgotten, the most recent beat first."""
        query = _select(WORKERS, WorkerBeat).order_by(WORKERS.c.beat_at.desc())
        with self._reading() as db:
            return [_record(WorkerBeat, r) for r in db.execute(query)]

    def forget_worker(self, worker_id: str) -> None:
        """Remove a worker's row: it left (or was found dead and its runs were taken over)."""
        with self.transaction() as db:
            db.execute(sa.delete(WORKERS).where(WORKERS.c.id == worker_id))

    # comments -----------------------------------------------------------------------------

    def add_comment(self, comment: Comment) -> None:
        self._insert(COMMENTS, comment)

    def comments(self, run_id: str) -> list[Comment]:
        """The run's comments on lines, oldest first."""
        query = _select(COMMENTS, Comment).where(COMMENTS.c.run_id == run_id)
        with self._reading() as db:
            rows = db.execute(query.order_by(COMMENTS.c.at, COMMENTS.c.id))
            return [_record(Comment, r) for r in rows]

    # artifacts ------------------------------------------------------------------------------
    # What a run leaves besides its record and events (its handoff, logs, transcripts, the work
    # of its last finished step), kept where every worker and server reads it.

    def put_artifact(self, run_id: str, name: str, data: bytes) -> None:
        """Keep `data` as the run's artifact `name`, in place of any earlier one."""
        row = {"run_id": run_id, "name": name, "data": data, "at": time.time()}
        self._upsert(ARTIFACTS, row, "run_id", "name")

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        where = (ARTIFACTS.c.run_id == run_id, ARTIFACTS.c.name == name)
        with self._reading() as db:
            data = db.execute(sa.select(ARTIFACTS.c.data).where(*where)).scalar()
        return bytes(data) if data is not None else None

    def artifact_names(self, run_id: str) -> list[str]:
        query = sa.select(ARTIFACTS.c.name).where(ARTIFACTS.c.run_id == run_id)
        with self._reading() as db:
            return [str(n) for n in db.execute(query.order_by(ARTIFACTS.c.name)).scalars()]

    # deliveries ---------------------------------------------------------------------------

    def take_delivery(self, source: str, delivery_id: str) -> bool:
        """Mark a webhook delivery taken; False if it was taken before (by this process or an
        earlier one: the table outlives a restart). One insert that yields to a row already
        there, so of two copies sent at once only one is taken."""
        row = {"source": source, "id": delivery_id, "at": time.time()}
        insert = (postgresql.insert if self._db.postgres else sqlite.insert)(DELIVERIES)
        with self.transaction() as db:
            taken = insert.values(row).on_conflict_do_nothing()
            done = db.execute(taken.execution_options(preserve_rowcount=True))
        return done.rowcount == 1

    def forget_delivery(self, source: str, delivery_id: str) -> None:
        """Un-take a delivery that failed before it acted, so the sender's retry is taken."""
        where = (DELIVERIES.c.source == source, DELIVERIES.c.id == delivery_id)
        with self.transaction() as db:
            db.execute(sa.delete(DELIVERIES).where(*where))

    # issues -------------------------------------------------------------------------------

    def claim_issue(
        self, repository: str, number: int, pending_for: float = 600
    ) -> IssueRun | None:
        """Take a GitHub issue for a new run: None when taken (the row is now pending, its run
        ""), else the row that holds it: a run that has not ended, or a start under way (pending
        for less than `pending_for` seconds: one that died before it recorded its run lets go
        then). One transaction, so of two triggers at once one takes it."""
        where = _issue(repository, number)
        now = time.time()
        row = {"repository": repository, "number": number, "run_id": "", "comment_id": 0, "at": now}
        insert = (postgresql.insert if self._db.postgres else sqlite.insert)(ISSUE_RUNS)
        with self.transaction() as db:
            done = db.execute(
                insert.values(row)
                .on_conflict_do_nothing()
                .execution_options(preserve_rowcount=True)
            )
            if done.rowcount == 1:
                return None
            held = IssueRun(**db.execute(sa.select(ISSUE_RUNS).where(*where).with_for_update())
                            .mappings().one())  # fmt: skip
            if held.run_id:
                status = db.execute(sa.select(RUNS.c.status).where(RUNS.c.id == held.run_id))
                if status.scalar() not in (*FINAL, None):  # a run gone holds nothing
                    return held
            elif now - held.at < pending_for:
                return held
            db.execute(sa.update(ISSUE_RUNS).where(*where).values(run_id="", comment_id=0, at=now))
        return None

    def set_issue(self, repository: str, number: int, **values: str | int) -> None:
        """Record the issue's run (`run_id`) or progress comment (`comment_id`)."""
        where = _issue(repository, number)
        with self.transaction() as db:
            db.execute(sa.update(ISSUE_RUNS).where(*where).values(**values))

    def drop_issue(self, repository: str, number: int) -> None:
        """Let go of an issue whose run could not be started."""
        where = _issue(repository, number)
        with self.transaction() as db:
            db.execute(sa.delete(ISSUE_RUNS).where(*where, ISSUE_RUNS.c.run_id == ""))

    def issue_of(self, run_id: str) -> IssueRun | None:
        """The GitHub issue that started the run, if one did."""
        query = sa.select(ISSUE_RUNS).where(ISSUE_RUNS.c.run_id == run_id)
        with self._reading() as db:
            found = db.execute(query).mappings().first()
        return IssueRun(**found) if found else None


def _issue(repository: str, number: int) -> tuple[sa.ColumnElement[bool], ...]:
    """The `issue_runs` row of one issue."""
    return (ISSUE_RUNS.c.repository == repository, ISSUE_RUNS.c.number == number)


@cache
def _upsert(postgres: bool, table: sa.Table, keys: tuple[str, ...]) -> sa.Insert:
    """An insert of a whole row of `table` that, where a row with the same `keys` is there,
    replaces its other columns instead (made once: the values come with each execution)."""
    insert = (postgresql.insert if postgres else sqlite.insert)(table)
    others = {c.name: insert.excluded[c.name] for c in table.c if c.name not in keys}
    return insert.on_conflict_do_update(index_elements=list(keys), set_=others)


def _advisory_lock(db: Connection, kind: int, name: str) -> None:
    """Hold PostgreSQL's advisory lock (`kind`, `name` hashed) until the transaction ends: the
    two-key form, whose keys never meet DBOS's or anyone's one-key locks; two names that share
    a hash only take turns."""
    db.execute(
        sa.text("SELECT pg_advisory_xact_lock(CAST(:kind AS integer), CAST(:key AS integer))"),
        {"kind": kind, "key": zlib.crc32(name.encode()) & 0x7FFFFFFF},
    )


SHORT = 6
"""The fewest characters of a run id that `Store.get_run` takes for the whole."""


def shortest_unique(run_ids: Collection[str], among: Collection[str]) -> dict[str, str]:
    """For each id, its shortest ending (`SHORT` characters at least, without `run-`) that no
    other id of `among` holds anywhere, so that `Store.get_run` finds it and only it. A ULID's
    ending is its random part: six characters nearly always do."""
    bodies = {i: i.removeprefix("run-") for i in {*run_ids, *among}}
    short: dict[str, str] = {}
    size = SHORT
    while len(short) < len(set(run_ids)):
        held = Counter(
            p for b in bodies.values() for p in {b[k : k + size] for k in range(len(b) - size + 1)}
        )
        for run_id in set(run_ids) - set(short):
            body = bodies[run_id]
            if len(body) <= size:
                short[run_id] = run_id
            elif held[body[-size:]] == 1:
                short[run_id] = body[-size:]
        size += 1
    return short


@cache
def _types(cls: type[DataclassInstance]) -> dict[str, Any]:
    return get_type_hints(cls)


@cache  # a Select is immutable (`where` makes a new one); building it was most of a read
def _select(table: sa.Table, cls: type[DataclassInstance]) -> sa.Select[Any]:
    """The columns of `cls`'s fields, by name: never `*`, so a column a newer Jackline added
    is not read."""
    return sa.select(*(table.c[f.name] for f in fields(cls)))


# The statements every request of the server makes, built once with their values bound at each
# execution: building a statement and its cache key was most of what a small read cost.


@cache
def _newest_runs(columns: tuple[str, ...]) -> sa.Select[Any]:
    """Runs newest first, at most `:limit`; only those whose each of `columns` equals the value
    bound under its name."""
    query = _select(RUNS, Run)
    for column in columns:
        query = query.where(RUNS.c[column] == sa.bindparam(column))
    return query.order_by(RUNS.c.created_at.desc()).limit(sa.bindparam("limit"))


@cache
def _token_by_id() -> sa.Select[Any]:
    """The token `:id` and its digest."""
    query = _select(TOKENS, Token).add_columns(TOKENS.c.digest)
    return query.where(TOKENS.c.id == sa.bindparam("id"))


def _row(record: DataclassInstance) -> dict[str, Any]:
    """The record as its table's row: a column per field, under the field's name."""
    return {f.name: _column(type(record), f.name, getattr(record, f.name)) for f in fields(record)}


def _column(cls: type[DataclassInstance], name: str, value: Any) -> Any:
    """A field's value as the table keeps it: a tuple as JSON text (neither database has
    lists), a bool as 0 or 1 (PostgreSQL takes no bool for an integer), a status as its
    string."""
    if get_origin(_types(cls)[name]) is tuple:
        return json.dumps(list(value))
    if isinstance(value, bool):
        return int(value)
    return value.value if isinstance(value, Enum) else value


def _record(cls: type[R], row: Sequence[Any]) -> R:
    """The record a row of `_select(table, cls)` holds (its columns in the order of the fields;
    one after them, such as a token's digest, is not the record's), each field read back by its
    type: JSON text to a tuple, 0 or 1 to a bool, a string to its status."""
    return cls(
        *[v if read is None else read(v) for read, v in zip(_readers(cls), row, strict=False)]
    )


@cache
def _readers(cls: type[DataclassInstance]) -> tuple[Callable[[Any], Any] | None, ...]:
    types = _types(cls)
    return tuple(_reader(types[f.name]) for f in fields(cls))


def _reader(kind: Any) -> Callable[[Any], Any] | None:
    if kind is bool:
        return bool
    if isinstance(kind, type) and issubclass(kind, StrEnum):  # a status: its value is stored,
        return kind  # so a database written before the enum reads the same
    return _tuple if get_origin(kind) is tuple else None


def _tuple(text: str) -> tuple[Any, ...]:
    if text == "[]":  # most are: decoding them was a third of what listing runs cost
        return ()
    return tuple(json.loads(text))
