"""The run records and the audit log, in `jackline.db` (SQLite, stdlib only).

`jackline runs` and `jackline show` read from here without importing the workflow engine. Every
write is a short transaction; WAL mode lets readers go on while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import fields
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_origin, get_type_hints

from jackline import paths
from jackline.errors import NotFound
from jackline.events import Kind
from jackline.models import Probe, Release, Run, Token, WorkerBeat

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    repo TEXT NOT NULL,
    agent TEXT NOT NULL,
    blueprint TEXT NOT NULL,
    status TEXT NOT NULL,
    branch TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    rounds INTEGER NOT NULL DEFAULT 0,
    base_sha TEXT, head_sha TEXT, merge_sha TEXT, workspace TEXT, handoff TEXT,
    reason TEXT NOT NULL DEFAULT '',
    paths TEXT NOT NULL DEFAULT '[]',
    blocking INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    spend REAL NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    executor TEXT,
    worked_seconds REAL NOT NULL DEFAULT 0,
    redacted INTEGER NOT NULL DEFAULT 0,
    reverted TEXT NOT NULL DEFAULT '[]',
    published TEXT NOT NULL DEFAULT '',
    pull_request TEXT NOT NULL DEFAULT '',
    secrets_found TEXT NOT NULL DEFAULT '[]',
    last_agent TEXT NOT NULL DEFAULT '',
    block_ids TEXT NOT NULL DEFAULT '[]',
    accepted TEXT NOT NULL DEFAULT '[]',
    attempts TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used REAL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS audit_heads (
    run_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    since INTEGER NOT NULL,
    mac TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    sha TEXT NOT NULL,
    status TEXT NOT NULL,
    started_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    previous_sha TEXT,
    go_by TEXT,
    author_kind TEXT NOT NULL DEFAULT 'person',
    run_id TEXT,
    reason TEXT NOT NULL DEFAULT '',
    promotable INTEGER NOT NULL DEFAULT 1,
    forced_reason TEXT NOT NULL DEFAULT '',
    env TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS releases_by_sha ON releases (repo, sha);
CREATE TABLE IF NOT EXISTS probes (
    release_id TEXT NOT NULL,
    env TEXT NOT NULL,
    name TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    duration REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS probes_by_release ON probes (release_id);
CREATE TABLE IF NOT EXISTS live (
    repo TEXT NOT NULL,
    env TEXT NOT NULL,
    release_id TEXT NOT NULL,
    sha TEXT NOT NULL,
    since REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS live_by_env ON live (repo, env, since);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    beat_at REAL NOT NULL,
    concurrency INTEGER NOT NULL,
    workspaces TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS deliveries (
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (source, id)
);
"""

# The tables of records (runs, releases, probes, tokens) have a column per field of the record,
# under its name (`tests/test_records.py` holds them to it); rows are read and written from the
# fields (`_row`, `_record`), so a field added to a record needs only its column here, and in
# ADDED_COLUMNS for databases made before it.

# Columns added after the first release, with their definitions, for `_add_missing_columns`.
ADDED_COLUMNS = {
    "blocking": "INTEGER NOT NULL DEFAULT 0",
    "warnings": "INTEGER NOT NULL DEFAULT 0",
    "spend": "REAL NOT NULL DEFAULT 0",
    "tokens": "INTEGER NOT NULL DEFAULT 0",
    "executor": "TEXT",
    "worked_seconds": "REAL NOT NULL DEFAULT 0",
    "redacted": "INTEGER NOT NULL DEFAULT 0",
    "reverted": "TEXT NOT NULL DEFAULT '[]'",
    "published": "TEXT NOT NULL DEFAULT ''",
    "pull_request": "TEXT NOT NULL DEFAULT ''",
    "secrets_found": "TEXT NOT NULL DEFAULT '[]'",
    "last_agent": "TEXT NOT NULL DEFAULT ''",
    # A run scanned before findings had ids keeps none: its block-level findings count as
    # not accepted (`review.open_blocking`), and none of them was.
    "block_ids": "TEXT NOT NULL DEFAULT '[]'",
    "accepted": "TEXT NOT NULL DEFAULT '[]'",
    "attempts": "TEXT NOT NULL DEFAULT ''",
}

# What a run's added column holds for a run recorded before it existed, read once from its audit
# log when the column is added (the events that, from then on, update the column as they are
# written). A run in flight across the upgrade goes on where it was.
BACKFILL = {
    "worked_seconds": "SELECT COALESCE(SUM(json_extract(data, '$.duration')), 0) FROM events"
    " WHERE run_id = runs.id AND kind = 'command'",
    "redacted": "SELECT COALESCE(SUM(json_extract(data, '$.count')), 0) FROM events"
    " WHERE run_id = runs.id AND kind = 'redacted'",
    "reverted": "SELECT json_group_array(value) FROM (SELECT DISTINCT p.value FROM events,"
    " json_each(json_extract(data, '$.reverted')) AS p WHERE run_id = runs.id"
    " AND kind = 'scope' ORDER BY p.value)",
    "published": "SELECT COALESCE((SELECT json_extract(data, '$.forge') FROM events"
    " WHERE run_id = runs.id AND kind = 'publish' ORDER BY seq DESC LIMIT 1), '')",
    "pull_request": "SELECT COALESCE((SELECT json_extract(data, '$.pull_request') FROM events"
    " WHERE run_id = runs.id AND kind = 'publish' ORDER BY seq DESC LIMIT 1), '')",
    "secrets_found": "SELECT COALESCE((SELECT json_group_array(json_extract(f.value, '$.file')"
    " || COALESCE(':' || json_extract(f.value, '$.line'), '')) FROM json_each((SELECT json_extract(data,"
    " '$.findings') FROM events WHERE run_id = runs.id AND kind = 'scan' ORDER BY seq DESC"
    " LIMIT 1)) AS f WHERE json_extract(f.value, '$.rule') LIKE 'secret.%'"
    " AND json_extract(f.value, '$.level') = 'block'), '[]')",
    "last_agent": "SELECT COALESCE((SELECT data FROM events WHERE run_id = runs.id"
    " AND kind = 'command' AND json_extract(data, '$.step') = 'agent'"
    " ORDER BY seq DESC LIMIT 1), '')",
}


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.database()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A database made by an older Jackline gains the run columns added since."""
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(runs)")}
        for name, ddl in ADDED_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {name} {ddl}")
                if name in BACKFILL:
                    self._db.execute(f"UPDATE runs SET {name} = ({BACKFILL[name]})")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front, so two writers never deadlock.
        Inside `exclusive` it is part of that one, committed with it."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Run the block as the only holder of `name` among every process sharing this
        database, on any machine (team mode's take-over of a dead worker's runs). On SQLite it
        is the database's one write lock, held for the block (`BEGIN IMMEDIATE`), whatever the
        name; on PostgreSQL, `SELECT pg_advisory_xact_lock(hashtext(name))` in a transaction
        held for the block. What the block reads and writes through this store is one
        transaction with the check it makes; nothing in it may write to this database through
        another connection (on SQLite that waits for this one)."""
        del name  # SQLite: one lock for the whole database
        with self.transaction():
            yield

    # runs ---------------------------------------------------------------------------------

    def insert_run(self, run: Run) -> None:
        self._insert("runs", run)

    def _insert(self, table: str, record: DataclassInstance) -> None:
        row = _row(record)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as db:
            db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))

    def update_run(self, run_id: str, **changes: Any) -> Run:
        changes = {k: _column(Run, k, v) for k, v in changes.items()}
        changes["updated_at"] = time.time()
        # A cancelled run never moves again: a step of its workflow still finishing in another
        # process (the cancel stops the next one) cannot give it another status.
        sets = ", ".join(
            "status = CASE status WHEN 'cancelled' THEN status ELSE ? END"
            if k == "status"
            else f"{k} = ?"
            for k in changes
        )
        with self.transaction() as db:
            cur = db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*changes.values(), run_id])
            if cur.rowcount == 0:
                raise NotFound(f"no run {run_id!r}")
        return self.get_run(run_id)

    def add_to_run(self, run_id: str, **amounts: float) -> Run:
        """Add to a run's counters (`worked_seconds`, `redacted`) in one statement: what two
        writers add, both count."""
        sets = ", ".join(f"{k} = {k} + ?" for k in amounts)
        with self.transaction() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*amounts.values(), run_id])
        return self.get_run(run_id)

    def accept_finding(self, run_id: str, finding: str, head: str | None) -> bool:
        """Add `finding` to the run's accepted ids in one statement, only while the run awaits
        review at `head`: an acceptance never lands on a round it was not made on, and two
        made at once both count. False when the run had moved."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE runs SET accepted = json_insert(accepted, '$[#]', ?), updated_at = ?"
                " WHERE id = ? AND status = 'awaiting_review' AND COALESCE(head_sha, '') = ?"
                " AND NOT EXISTS (SELECT 1 FROM json_each(accepted) WHERE value = ?)",
                (finding, time.time(), run_id, head or "", finding),
            )
            return cur.rowcount == 1

    def set_executor(self, run_id: str, executor: str) -> None:
        """Write down the process that drives the run now (nothing for an unknown run)."""
        with self.transaction() as db:
            db.execute("UPDATE runs SET executor = ? WHERE id = ?", (executor, run_id))

    def get_run(self, run_id: str) -> Run:
        """The run `run_id` names: its id, or a piece of it that no other run's id holds (at
        least `SHORT` characters, such as the short id `jackline runs` shows). Every surface
        finds runs here, so each takes what the others show."""
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            found = self._db.execute("SELECT * FROM runs WHERE id = ?", (self._named(run_id),))
            row = found.fetchone()
        return _record(Run, row)

    def _named(self, piece: str) -> str:
        wanted = piece.strip().lower().removeprefix("run-")
        if len(wanted) < SHORT:
            raise NotFound(
                f"no run {piece!r}: a short run id has at least {SHORT} characters "
                "(`jackline runs` lists them)"
            )
        rows = self._db.execute(
            "SELECT id FROM runs WHERE instr(lower(id), ?) > 0 ORDER BY created_at DESC LIMIT 11",
            (wanted,),
        ).fetchall()
        if not rows:
            raise NotFound(f"no run {piece!r} (`jackline runs` lists them)")
        if len(rows) > 1:
            named = ", ".join(r["id"] for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
            raise NotFound(f"{piece!r} is part of more than one run's id ({named}): give more")
        return str(rows[0]["id"])

    def short_ids(self, run_ids: Collection[str]) -> dict[str, str]:
        """Each run's short id, unique among every run here (see `shortest_unique`)."""
        every = [r["id"] for r in self._db.execute("SELECT id FROM runs")]
        return shortest_unique(run_ids, every)

    def run_in(self, workspace: str) -> Run | None:
        """The run whose workspace is at `workspace`, if any (the newest)."""
        row = self._db.execute(
            "SELECT id FROM runs WHERE workspace = ? ORDER BY created_at DESC LIMIT 1",
            (workspace,),
        ).fetchone()
        return self.get_run(row["id"]) if row else None

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[Run]:
        query = "SELECT * FROM runs"
        args: list[Any] = []
        if status:
            query += " WHERE status = ?"
            args.append(status)
        query += " ORDER BY created_at DESC LIMIT ?"
        rows = self._db.execute(query, [*args, limit]).fetchall()
        return [_record(Run, r) for r in rows]

    def attempts(self, group: str) -> list[Run]:
        """The runs of one group of parallel attempts, in the order they were submitted."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE attempts = ? ORDER BY created_at, id", (group,)
        ).fetchall()
        return [_record(Run, r) for r in rows]

    def spend_since(self, repo: str, since: float) -> float:
        """US dollars the repository's runs created since `since` (a timestamp) have spent."""
        row = self._db.execute(
            "SELECT COALESCE(SUM(spend), 0) AS total FROM runs WHERE repo = ? AND created_at >= ?",
            (repo, since),
        ).fetchone()
        return float(row["total"])

    # tokens -------------------------------------------------------------------------------

    def insert_token(self, token_id: str, name: str, role: str, digest: str, at: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO tokens (id, name, role, digest, created_at) VALUES (?, ?, ?, ?, ?)",
                (token_id, name, role, digest, at),
            )

    def token_row(self, token_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM tokens WHERE id = ?", (token_id,)
        ).fetchone()
        return row

    def get_token(self, token_id: str) -> Token:
        row = self.token_row(token_id)
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return _record(Token, row)

    def list_tokens(self) -> list[Token]:
        rows = self._db.execute("SELECT id FROM tokens ORDER BY created_at").fetchall()
        return [self.get_token(r["id"]) for r in rows]

    def touch_token(self, token_id: str, at: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tokens SET last_used = ? WHERE id = ?", (at, token_id))

    def revoke_token(self, token_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,))

    # events -------------------------------------------------------------------------------

    def append_event(self, run_id: str, kind: str, data: str, chain: Any, seal: Any) -> int:
        """Append one event; `chain(prev_hash, seq, ts, kind, data)` gives its hash, and
        `seal(seq, hash, since)` the mac of the stream's head, recorded in the same transaction
        (`since`: the first keyed event), so the tail cannot go without the head saying so."""
        with self.transaction() as db:
            last = db.execute(
                "SELECT seq, hash FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            seq = last["seq"] + 1 if last else 1
            prev = last["hash"] if last else ""
            ts = time.time()
            digest = chain(prev, seq, ts, kind, data)
            db.execute(
                "INSERT INTO events (run_id, seq, ts, kind, data, prev, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, ts, kind, data, prev, digest),
            )
            head = db.execute("SELECT since FROM audit_heads WHERE run_id = ?", (run_id,))
            row = head.fetchone()
            since = row["since"] if row else seq
            db.execute(
                "INSERT OR REPLACE INTO audit_heads (run_id, seq, hash, since, mac)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, seq, digest, since, seal(seq, digest, since)),
            )
        return seq

    def audit_head(self, run_id: str) -> sqlite3.Row | None:
        """The stream's recorded head (seq, hash, since, mac), if it has a keyed one."""
        row: sqlite3.Row | None = self._db.execute(
            "SELECT * FROM audit_heads WHERE run_id = ?", (run_id,)
        ).fetchone()
        return row

    def events(self, run_id: str, after: int = 0, kind: Kind | None = None) -> list[sqlite3.Row]:
        query = "SELECT * FROM events WHERE run_id = ? AND seq > ?"
        args: list[Any] = [run_id, after]
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        return self._db.execute(query + " ORDER BY seq", args).fetchall()

    # releases -----------------------------------------------------------------------------

    def insert_release(self, release: Release) -> None:
        self._insert("releases", release)

    def update_release(self, release_id: str, **changes: Any) -> Release:
        changes = {k: _column(Release, k, v) for k, v in changes.items()}
        changes["updated_at"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self.transaction() as db:
            cur = db.execute(
                f"UPDATE releases SET {sets} WHERE id = ?", [*changes.values(), release_id]
            )
            if cur.rowcount == 0:
                raise NotFound(f"no release {release_id!r}")
        return self.get_release(release_id)

    def get_release(self, release_id: str) -> Release:
        row = self._db.execute("SELECT * FROM releases WHERE id = ?", (release_id,)).fetchone()
        if row is None:
            matches = self._db.execute(
                "SELECT * FROM releases WHERE id LIKE ? ORDER BY created_at DESC LIMIT 2",
                (f"%{release_id}%",),
            ).fetchall()
            if len(matches) != 1:
                hint = "several releases match" if matches else "`jackline releases` lists them"
                raise NotFound(f"no release {release_id!r} ({hint})")
            row = matches[0]
        return _record(Release, row)

    def list_releases(self, repo: str | None = None, limit: int = 100) -> list[Release]:
        query, args = "SELECT * FROM releases", []
        if repo:
            query += " WHERE repo = ?"
            args.append(repo)
        rows = self._db.execute(query + " ORDER BY created_at DESC LIMIT ?", [*args, limit])
        return [_record(Release, r) for r in rows.fetchall()]

    def unpromotable(self, repo: str, sha: str) -> Release | None:
        """The latest release of `sha` that was marked not promotable, if any."""
        row = self._db.execute(
            "SELECT * FROM releases WHERE repo = ? AND sha = ? AND promotable = 0"
            " ORDER BY created_at DESC LIMIT 1",
            (repo, sha),
        ).fetchone()
        return _record(Release, row) if row else None

    def add_probe(self, probe: Probe) -> None:
        self._insert("probes", probe)

    def probes(self, release_id: str) -> list[Probe]:
        rows = self._db.execute(
            "SELECT * FROM probes WHERE release_id = ? ORDER BY at, rowid", (release_id,)
        ).fetchall()
        return [_record(Probe, r) for r in rows]

    def set_live(self, repo: str, env: str, release_id: str, sha: str) -> None:
        """Record that `release_id` serves `env` from now on (a row per change: the history)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO live (repo, env, release_id, sha, since) VALUES (?, ?, ?, ?, ?)",
                (repo, env, release_id, sha, time.time()),
            )

    def live(self, repo: str, env: str) -> dict[str, Any] | None:
        """What serves `env` now: release_id, sha and since; None before the first release."""
        history = self.live_history(repo, env, limit=1)
        return history[0] if history else None

    def live_history(self, repo: str, env: str, limit: int = 100) -> list[dict[str, Any]]:
        """What served `env`, newest first."""
        rows = self._db.execute(
            "SELECT release_id, sha, since FROM live WHERE repo = ? AND env = ?"
            " ORDER BY since DESC, rowid DESC LIMIT ?",
            (repo, env, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    # workers (team mode) ------------------------------------------------------------------

    def beat(self, worker: WorkerBeat) -> None:
        """Record that `worker` lives, as of `worker.beat_at` (its first beat adds its row)."""
        row = _row(worker)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as db:
            db.execute(f"INSERT OR REPLACE INTO workers ({cols}) VALUES ({marks})", [*row.values()])

    def renew_beat(self, worker_id: str, at: float) -> bool:
        """Renew a worker's beat; False where its row is gone: another found it dead (and took
        its runs over) or it left. One statement, so a beat never brings a forgotten row back."""
        with self.transaction() as db:
            renewed = db.execute("UPDATE workers SET beat_at = ? WHERE id = ?", (at, worker_id))
            return renewed.rowcount == 1

    def workers(self) -> list[WorkerBeat]:
        """Every worker that has beaten and not been forgotten, the most recent beat first."""
        rows = self._db.execute("SELECT * FROM workers ORDER BY beat_at DESC").fetchall()
        return [_record(WorkerBeat, r) for r in rows]

    def forget_worker(self, worker_id: str) -> None:
        """Remove a worker's row: it left (or was found dead and its runs were taken over)."""
        with self.transaction() as db:
            db.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    # artifacts ------------------------------------------------------------------------------
    # What a run leaves besides its record and events (its handoff, logs, transcripts, the work
    # of its last finished step), kept where every worker and server reads it.

    def put_artifact(self, run_id: str, name: str, data: bytes) -> None:
        """Keep `data` as the run's artifact `name`, in place of any earlier one."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts (run_id, name, data, at) VALUES (?, ?, ?, ?)",
                (run_id, name, data, time.time()),
            )

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        row = self._db.execute(
            "SELECT data FROM artifacts WHERE run_id = ? AND name = ?", (run_id, name)
        ).fetchone()
        return bytes(row["data"]) if row else None

    def artifact_names(self, run_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT name FROM artifacts WHERE run_id = ? ORDER BY name", (run_id,)
        ).fetchall()
        return [r["name"] for r in rows]

    # deliveries ---------------------------------------------------------------------------

    def take_delivery(self, source: str, delivery_id: str) -> bool:
        """Mark a webhook delivery taken; False if it was taken before (by this process or an
        earlier one: the table outlives a restart). One insert, so two copies sent at once
        cannot both be taken."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO deliveries (source, id, at) VALUES (?, ?, ?)",
                (source, delivery_id, time.time()),
            )
        return cur.rowcount == 1

    def forget_delivery(self, source: str, delivery_id: str) -> None:
        """Un-take a delivery that failed before it acted, so the sender's retry is taken."""
        with self.transaction() as db:
            db.execute("DELETE FROM deliveries WHERE source = ? AND id = ?", (source, delivery_id))


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


def _row(record: DataclassInstance) -> dict[str, Any]:
    """The record as its table's row: a column per field, under the field's name."""
    return {f.name: _column(type(record), f.name, getattr(record, f.name)) for f in fields(record)}


def _column(cls: type[DataclassInstance], name: str, value: Any) -> Any:
    """A field's value as SQLite keeps it: a tuple as JSON text (SQLite has no lists)."""
    return json.dumps(list(value)) if get_origin(_types(cls)[name]) is tuple else value


def _record(cls: type[R], row: sqlite3.Row) -> R:
    """The record a row holds, each field read back by its type (JSON text to a tuple, 0 or 1
    to a bool). A column the record has no field for (a token's digest) stays in the table."""
    types = _types(cls)
    return cls(**{f.name: _value(types[f.name], row[f.name]) for f in fields(cls)})


def _value(kind: Any, value: Any) -> Any:
    if kind is bool:
        return bool(value)
    if isinstance(kind, type) and issubclass(kind, StrEnum):  # a status: its value is stored,
        return kind(value)  # so a database written before the enum reads the same
    return tuple(json.loads(value)) if get_origin(kind) is tuple else value
