"""The audit log is append-only, hash-chained and redacted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.store import Store


def test_a_changed_event_breaks_the_chain_from_there_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "j.db")
    log = AuditLog(store, Redactor({}))
    for i in range(4):
        log.record("run-1", "step", n=i)
    assert all(e.intact for e in log.read("run-1"))
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("UPDATE events SET data = '{\"n\": 99}' WHERE seq = 2")
    db.commit()
    assert [e.intact for e in log.read("run-1")] == [True, False, False, False]


def test_a_deleted_event_breaks_the_chain(tmp_path: Path) -> None:
    store = Store(tmp_path / "j.db")
    log = AuditLog(store, Redactor({}))
    for i in range(3):
        log.record("run-1", "step", n=i)
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("DELETE FROM events WHERE seq = 2")
    db.commit()
    assert [e.intact for e in log.read("run-1")] == [True, False]


def test_secrets_are_redacted_before_they_are_stored(tmp_path: Path) -> None:
    redactor = Redactor.from_environment(env={"DB_PASSWORD": "hunter2-hunter2", "HOME": "/root"})
    log = AuditLog(Store(tmp_path / "j.db"), redactor)
    log.record(
        "run-1", "command", tail="connecting with hunter2-hunter2", argv=["x", "hunter2-hunter2"]
    )
    assert b"hunter2-hunter2" not in (tmp_path / "j.db").read_bytes()
    (event,) = log.read("run-1")
    assert event.data["tail"] == "connecting with [redacted:DB_PASSWORD]"
