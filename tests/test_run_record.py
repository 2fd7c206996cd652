"""What steps need of a run's history is kept on its record, where each event is written; a
database from before those columns gains them, filled once from the audit log."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from postgres import Backend

from jackline import database
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.migrations import BACKFILL
from jackline.models import Run
from jackline.store import Store


def _run(store: Store) -> None:
    now = time.time()
    store.insert_run(Run("run-1", "t", "/r", "a", "standard", "running", "b", "me", now, now))


def test_an_older_database_gains_the_derived_columns_from_its_audit_log(tmp_path: Path) -> None:
    store = Store(tmp_path / "j.db")
    _run(store)
    log = AuditLog(store, Redactor({}))
    log.record("run-1", "command", step="setup", duration=1.5, exit_code=0)
    log.record("run-1", "redacted", round=1, count=2, where="agent output")
    log.record("run-1", "scope", round=1, reverted=["b.txt", "a.txt"])
    log.record("run-1", "command", step="agent", round=1, duration=2.25, exit_code=3)
    log.record("run-1", "scope", round=2, reverted=["a.txt"])
    log.record("run-1", "redacted", round=2, count=1, where="agent output")
    secret = {"rule": "secret.aws", "level": "block", "file": "k.py", "line": 4}
    printed = {"rule": "secret.printed", "level": "warn", "file": None, "line": None}
    log.record("run-1", "scan", findings=[secret, printed], secrets=1)
    log.record("run-1", "publish", forge="github", branch="b", pull_request="https://pr/1")
    store.close()
    # As an earlier Jackline left it: without the columns, and without the record of steps.
    db = sqlite3.connect(tmp_path / "j.db")
    for name in BACKFILL:
        db.execute(f"ALTER TABLE runs DROP COLUMN {name}")
    db.execute("DROP TABLE schema_versions")
    db.commit()
    db.close()
    database.dispose_all()  # opened afresh, as by the upgraded Jackline's first process

    run = Store(tmp_path / "j.db").get_run("run-1")

    assert run.worked_seconds == 3.75
    assert run.redacted == 3
    assert run.reverted == ("a.txt", "b.txt")
    assert run.secrets_found == ("k.py:4",)
    assert (run.published, run.pull_request) == ("github", "https://pr/1")
    assert json.loads(run.last_agent)["exit_code"] == 3


def test_counters_add_up_in_one_statement(backend: Backend) -> None:
    store = backend.store()
    _run(store)
    other = backend.store()
    store.add_to_run("run-1", worked_seconds=1.25, redacted=1)
    other.add_to_run("run-1", worked_seconds=2.0)
    run = store.get_run("run-1")
    assert (run.worked_seconds, run.redacted) == (3.25, 1)
