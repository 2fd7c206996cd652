"""The audit log is append-only, hash-chained, keyed, anchored by a recorded head, and redacted."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from postgres import Backend

from jackline import paths
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import Run
from jackline.store import Store


def _log(backend: Backend, events: int = 4) -> AuditLog:
    log = AuditLog(backend.store(), Redactor({}))
    for i in range(events):
        log.record("run-1", "step", n=i)
    return log


def test_a_changed_event_breaks_the_chain_from_there_on(backend: Backend) -> None:
    log = _log(backend)
    assert all(e.intact for e in log.read("run-1"))
    backend.sql("UPDATE events SET data = '{\"n\": 99}' WHERE seq = 2")
    assert [e.intact for e in log.read("run-1")] == [True, False, False, False]
    verdict = log.verify("run-1")
    assert verdict.broken and "event 2 (step)" in verdict.detail


def test_a_deleted_event_breaks_the_chain(backend: Backend) -> None:
    log = _log(backend, 3)
    backend.sql("DELETE FROM events WHERE seq = 2")
    assert [e.intact for e in log.read("run-1")] == [True, False]
    assert log.verify("run-1").broken


def test_an_untouched_chain_is_verified(backend: Backend) -> None:
    verdict = _log(backend).verify("run-1")
    assert verdict.state == "verified" and not verdict.broken
    assert verdict.events == 4


def test_deleting_the_last_events_is_detected_by_the_recorded_head(backend: Backend) -> None:
    # The decision and the merge were the last two events: what is left is still a chain.
    log = _log(backend)
    backend.sql("DELETE FROM events WHERE run_id = 'run-1' AND seq > 2")
    verdict = log.verify("run-1")
    assert verdict.broken
    assert "events 3-4 are missing" in verdict.detail


def test_a_chain_rehashed_without_the_key_is_detected(backend: Backend) -> None:
    # Someone with the database but not the key edits an event and recomputes every hash the
    # way the unkeyed chain made them, then points the recorded head at the new last hash.
    log = _log(backend)
    rows = backend.sql("SELECT seq, ts, kind, data FROM events ORDER BY seq")
    prev = ""
    for seq, ts, kind, data in rows:
        if seq == 3:
            data = json.dumps({"n": 99})
        body = json.dumps([prev, seq, repr(ts), kind, data], separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        backend.sql(
            "UPDATE events SET data = :data, prev = :prev, hash = :hash WHERE seq = :seq",
            data=data, prev=prev, hash=digest, seq=seq,
        )  # fmt: skip
        prev = digest
    backend.sql("UPDATE audit_heads SET hash = :hash", hash=prev)
    verdict = log.verify("run-1")
    assert verdict.broken and "event 1" in verdict.detail
    assert not any(e.intact for e in log.read("run-1"))


def test_deleting_the_recorded_head_of_a_keyed_chain_is_detected(backend: Backend) -> None:
    log = _log(backend)
    backend.sql("DELETE FROM audit_heads")
    assert log.verify("run-1").broken


def test_rolling_the_head_back_with_the_tail_is_detected(backend: Backend) -> None:
    # The head's own mac is not any event's hash: pointing it at an earlier event needs the key.
    log = _log(backend)
    [(second,)] = backend.sql("SELECT hash FROM events WHERE seq = 2")
    backend.sql("DELETE FROM events WHERE seq > 2")
    backend.sql("UPDATE audit_heads SET seq = 2, hash = :hash", hash=second)
    verdict = log.verify("run-1")
    assert verdict.broken and "head" in verdict.detail


def test_the_key_is_a_file_beside_the_database_readable_only_by_its_owner(
    backend: Backend, tmp_path: Path
) -> None:
    _log(backend, 1)
    key = tmp_path / "audit.key"  # on PostgreSQL too: in Jackline's home, not in the database
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip() not in json.dumps(backend.sql("SELECT * FROM events"))


def test_a_missing_key_is_said_rather_than_passed(backend: Backend, tmp_path: Path) -> None:
    _log(backend, 2)
    os.unlink(tmp_path / "audit.key")
    verdict = AuditLog(backend.store(), Redactor({})).verify("run-1")
    assert verdict.broken and "audit.key" in verdict.detail


def test_a_chain_written_before_keys_is_readable_and_said_unkeyed(backend: Backend) -> None:
    prev = ""
    for seq in (1, 2):
        data = json.dumps({"n": seq})
        body = json.dumps([prev, seq, repr(1.5), "step", data], separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        backend.sql(
            "INSERT INTO events VALUES ('run-old', :seq, 1.5, 'step', :data, :prev, :hash)",
            seq=seq, data=data, prev=prev, hash=digest,
        )  # fmt: skip
        prev = digest
    log = AuditLog(backend.store(), Redactor({}))
    assert [e.intact for e in log.read("run-old")] == [True, True]
    verdict = log.verify("run-old")
    assert verdict.state == "unkeyed" and "before" in verdict.detail
    # An event appended now is keyed and covers the old ones through its `prev`.
    log.record("run-old", "cleanup")
    assert log.verify("run-old").state == "verified"


def test_secrets_are_redacted_before_they_are_stored(backend: Backend) -> None:
    redactor = Redactor.from_environment(env={"DB_PASSWORD": "hunter2-hunter2", "HOME": "/root"})
    log = AuditLog(backend.store(), redactor)
    log.record(
        "run-1", "command", tail="connecting with hunter2-hunter2", argv=["x", "hunter2-hunter2"]
    )
    stored = json.dumps(backend.sql("SELECT * FROM events"))
    assert "hunter2-hunter2" not in stored and "redacted:DB_PASSWORD" in stored
    (event,) = log.read("run-1")
    assert event.data["tail"] == "connecting with [redacted:DB_PASSWORD]"


def _unsynced(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute("PRAGMA synchronous = OFF")


def test_following_a_long_log_reads_only_what_is_new_and_verify_still_finds_an_old_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path))
    from jackline import api

    # Writing the long log: no fsync each time (as the test's SQLite connections are opened).
    sa.event.listen(sa.engine.Engine, "connect", _unsynced)
    try:
        store = Store(paths.database())
    finally:
        sa.event.remove(sa.engine.Engine, "connect", _unsynced)
    now = time.time()
    store.insert_run(Run("run-1", "t", "/r", "a", "standard", "running", "b", "me", now, now))
    log = AuditLog(store, Redactor({}))
    for i in range(5000):
        log.record("run-1", "step", n=i)
    new_events = api.follow("run-1")
    assert len(new_events()) == 5000 and all(e.intact for e in log.read("run-1")[-1:])
    started = time.perf_counter()
    log.read("run-1")
    whole = time.perf_counter() - started

    # An old event changed: a poll does not read it again (the new event still follows the
    # one the last poll ended on), but the whole chain's verification names it.
    db = sqlite3.connect(paths.database())
    db.execute("UPDATE events SET data = '{\"n\": 99}' WHERE run_id = 'run-1' AND seq = 10")
    db.commit()
    db.close()
    log.record("run-1", "step", n=5000)
    assert [(e.seq, e.intact) for e in new_events()] == [(5001, True)]
    verdict = api.verify("run-1")
    assert verdict.broken and "event 10 (step)" in verdict.detail
    assert not log.read("run-1")[-1].intact

    polls = []
    for _ in range(5):
        started = time.perf_counter()
        assert new_events() == []
        polls.append(time.perf_counter() - started)
    assert min(polls) < whole / 20, (polls, whole)
