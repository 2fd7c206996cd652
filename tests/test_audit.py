"""The audit log is append-only, hash-chained, keyed, anchored by a recorded head, and redacted."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from jackline import paths
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import Run
from jackline.store import Store


def _log(tmp_path: Path, events: int = 4) -> AuditLog:
    log = AuditLog(Store(tmp_path / "j.db"), Redactor({}))
    for i in range(events):
        log.record("run-1", "step", n=i)
    return log


def _sql(tmp_path: Path, *statements: str) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def test_a_changed_event_breaks_the_chain_from_there_on(tmp_path: Path) -> None:
    log = _log(tmp_path)
    assert all(e.intact for e in log.read("run-1"))
    _sql(tmp_path, "UPDATE events SET data = '{\"n\": 99}' WHERE seq = 2")
    assert [e.intact for e in log.read("run-1")] == [True, False, False, False]
    verdict = log.verify("run-1")
    assert verdict.broken and "event 2 (step)" in verdict.detail


def test_a_deleted_event_breaks_the_chain(tmp_path: Path) -> None:
    log = _log(tmp_path, 3)
    _sql(tmp_path, "DELETE FROM events WHERE seq = 2")
    assert [e.intact for e in log.read("run-1")] == [True, False]
    assert log.verify("run-1").broken


def test_an_untouched_chain_is_verified(tmp_path: Path) -> None:
    verdict = _log(tmp_path).verify("run-1")
    assert verdict.state == "verified" and not verdict.broken
    assert verdict.events == 4


def test_deleting_the_last_events_is_detected_by_the_recorded_head(tmp_path: Path) -> None:
    # The decision and the merge were the last two events: what is left is still a chain.
    log = _log(tmp_path)
    _sql(tmp_path, "DELETE FROM events WHERE run_id = 'run-1' AND seq > 2")
    verdict = log.verify("run-1")
    assert verdict.broken
    assert "events 3-4 are missing" in verdict.detail


def test_a_chain_rehashed_without_the_key_is_detected(tmp_path: Path) -> None:
    # Someone with the database but not the key edits an event and recomputes every hash the
    # way the unkeyed chain made them, then points the recorded head at the new last hash.
    log = _log(tmp_path)
    db = sqlite3.connect(tmp_path / "j.db")
    rows = db.execute("SELECT seq, ts, kind, data FROM events ORDER BY seq").fetchall()
    prev = ""
    for seq, ts, kind, data in rows:
        if seq == 3:
            data = json.dumps({"n": 99})
        body = json.dumps([prev, seq, repr(ts), kind, data], separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        db.execute(
            "UPDATE events SET data = ?, prev = ?, hash = ? WHERE seq = ?",
            (data, prev, digest, seq),
        )
        prev = digest
    db.execute("UPDATE audit_heads SET hash = ?", (prev,))
    db.commit()
    db.close()
    verdict = log.verify("run-1")
    assert verdict.broken and "event 1" in verdict.detail
    assert not any(e.intact for e in log.read("run-1"))


def test_deleting_the_recorded_head_of_a_keyed_chain_is_detected(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _sql(tmp_path, "DELETE FROM audit_heads")
    assert log.verify("run-1").broken


def test_rolling_the_head_back_with_the_tail_is_detected(tmp_path: Path) -> None:
    # The head's own mac is not any event's hash: pointing it at an earlier event needs the key.
    log = _log(tmp_path)
    db = sqlite3.connect(tmp_path / "j.db")
    (second,) = db.execute("SELECT hash FROM events WHERE seq = 2").fetchone()
    db.execute("DELETE FROM events WHERE seq > 2")
    db.execute("UPDATE audit_heads SET seq = 2, hash = ?", (second,))
    db.commit()
    db.close()
    verdict = log.verify("run-1")
    assert verdict.broken and "head" in verdict.detail


def test_the_key_is_a_file_beside_the_database_readable_only_by_its_owner(
    tmp_path: Path,
) -> None:
    _log(tmp_path, 1)
    key = tmp_path / "audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().strip() not in (tmp_path / "j.db").read_bytes()


def test_a_missing_key_is_said_rather_than_passed(tmp_path: Path) -> None:
    _log(tmp_path, 2)
    os.unlink(tmp_path / "audit.key")
    verdict = AuditLog(Store(tmp_path / "j.db"), Redactor({})).verify("run-1")
    assert verdict.broken and "audit.key" in verdict.detail


def test_a_chain_written_before_keys_is_readable_and_said_unkeyed(tmp_path: Path) -> None:
    Store(tmp_path / "j.db")
    prev = ""
    db = sqlite3.connect(tmp_path / "j.db")
    for seq in (1, 2):
        data = json.dumps({"n": seq})
        body = json.dumps([prev, seq, repr(1.5), "step", data], separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        db.execute(
            "INSERT INTO events VALUES ('run-old', ?, 1.5, 'step', ?, ?, ?)",
            (seq, data, prev, digest),
        )
        prev = digest
    db.commit()
    db.close()
    log = AuditLog(Store(tmp_path / "j.db"), Redactor({}))
    assert [e.intact for e in log.read("run-old")] == [True, True]
    verdict = log.verify("run-old")
    assert verdict.state == "unkeyed" and "before" in verdict.detail
    # An event appended now is keyed and covers the old ones through its `prev`.
    log.record("run-old", "cleanup")
    assert log.verify("run-old").state == "verified"


def test_secrets_are_redacted_before_they_are_stored(tmp_path: Path) -> None:
    redactor = Redactor.from_environment(env={"DB_PASSWORD": "hunter2-hunter2", "HOME": "/root"})
    log = AuditLog(Store(tmp_path / "j.db"), redactor)
    log.record(
        "run-1", "command", tail="connecting with hunter2-hunter2", argv=["x", "hunter2-hunter2"]
    )
    assert b"hunter2-hunter2" not in (tmp_path / "j.db").read_bytes()
    (event,) = log.read("run-1")
    assert event.data["tail"] == "connecting with [redacted:DB_PASSWORD]"


def test_following_a_long_log_reads_only_what_is_new_and_verify_still_finds_an_old_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path))
    from jackline import api

    store = Store(paths.database())
    now = time.time()
    store.insert_run(Run("run-1", "t", "/r", "a", "standard", "running", "b", "me", now, now))
    store._db.execute("PRAGMA synchronous = OFF")  # writing the long log: no fsync each time
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
