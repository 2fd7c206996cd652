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
from jackline.errors import ConfigError
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


# The team's key (JACKLINE_AUDIT_KEY) -------------------------------------------------------

TEAM_KEY = "ab" * 32  # 64 hex digits: what `openssl rand -hex 32` prints


def _homes_sign_one_chain(pg_url: str, tmp_path: Path, run_id: str) -> list[AuditLog]:
    """Two machines (a home each, one PostgreSQL database) append to one run's chain, in turn."""
    logs = [AuditLog(Store(tmp_path / h / "jackline.db", url=pg_url), Redactor({})) for h in "ab"]
    for i in range(4):
        logs[i % 2].record(run_id, "step", n=i)
    return logs


def test_two_homes_signing_one_chain_break_it_unless_they_share_the_team_key(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JACKLINE_AUDIT_KEY", raising=False)
    for log in _homes_sign_one_chain(pg_url, tmp_path / "own", "run-1"):
        verdict = log.verify("run-1")  # each home's key fails the other's events
        assert verdict.broken and "does not hold under the audit key" in verdict.detail

    monkeypatch.setenv("TEAM_SIGNING", TEAM_KEY)  # any variable's name: the reference says which
    monkeypatch.setenv("JACKLINE_AUDIT_KEY", "env:TEAM_SIGNING")
    for log in _homes_sign_one_chain(pg_url, tmp_path / "team", "run-2"):
        assert log.verify("run-2").state == "verified"
        assert not log.key_path.exists()  # named, the key is never made in a home


def test_a_team_key_copied_from_a_home_keeps_its_chains_verified(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(backend, 2)
    copy = tmp_path / "team.key"
    copy.write_bytes((tmp_path / "audit.key").read_bytes())
    copy.chmod(0o600)
    os.unlink(tmp_path / "audit.key")
    monkeypatch.setenv("JACKLINE_AUDIT_KEY", f"file:{copy}")
    log = AuditLog(backend.store(), Redactor({}))
    log.record("run-1", "step", n=2)
    assert log.verify("run-1").state == "verified"
    assert not (tmp_path / "audit.key").exists()


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        ("file:{tmp}/nowhere.key", "cannot read the audit key {tmp}/nowhere.key"),
        (
            "file:{tmp}/open.key",
            "the audit key {tmp}/open.key may be read by others: `chmod 600 {tmp}/open.key`",
        ),
        ("file:{tmp}/short.key", "'file:{tmp}/short.key' names a key of 12 characters"),
        (
            "env:UNSET_TEAM_KEY",
            "secret reference 'env:UNSET_TEAM_KEY': $UNSET_TEAM_KEY is not set",
        ),
        ("vault:team", "'vault:team' is not a secret reference; expected env:NAME or file:PATH"),
    ],
)
def test_a_team_key_that_cannot_be_read_or_is_too_short_stops_before_any_event_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str, said: str
) -> None:
    (tmp_path / "open.key").write_text(TEAM_KEY)
    (tmp_path / "open.key").chmod(0o644)
    (tmp_path / "short.key").write_text("short-secret")
    (tmp_path / "short.key").chmod(0o600)
    monkeypatch.delenv("UNSET_TEAM_KEY", raising=False)
    monkeypatch.setenv("JACKLINE_AUDIT_KEY", ref.format(tmp=tmp_path))
    store = Store(tmp_path / "home" / "jackline.db")
    with pytest.raises(ConfigError) as raised:
        AuditLog(store, Redactor({})).record("run-1", "step", n=1)
    message = str(raised.value)
    assert f"JACKLINE_AUDIT_KEY: {said.format(tmp=tmp_path)}" in message
    assert "JACKLINE_AUDIT_KEY: JACKLINE_AUDIT_KEY must name the team's audit key" in message
    assert "`openssl rand -hex 32`" in message and "short-secret" not in message
    assert store.events("run-1") == []  # not signed with another key instead
    assert not (tmp_path / "home" / "audit.key").exists()
    with pytest.raises(ConfigError):  # nor verified as if the key were missing
        AuditLog(store, Redactor({})).verify("run-1")


def test_the_team_key_is_redacted_from_what_is_stored(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_SIGNING", TEAM_KEY)  # a name that does not say it is a secret
    monkeypatch.setenv("JACKLINE_AUDIT_KEY", "env:TEAM_SIGNING")
    log = AuditLog(backend.store(), Redactor.from_environment())
    written = log.record("run-1", "command", output=f"echo {TEAM_KEY}")
    assert written["output"] == "echo [redacted:JACKLINE_AUDIT_KEY]"
    assert TEAM_KEY not in json.dumps(backend.sql("SELECT * FROM events"))


def test_a_team_process_without_the_team_key_warns_once_that_every_machine_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jackline import api

    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path))
    monkeypatch.delenv("JACKLINE_AUDIT_KEY", raising=False)
    monkeypatch.delenv("JACKLINE_DATABASE_URL", raising=False)
    said: list[str] = []
    api.check_audit_key(said.append)
    assert said == []  # one machine: its home's key is the key
    monkeypatch.setenv("JACKLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'engine.db'}")
    api.check_audit_key(said.append)
    [warning] = said
    assert "JACKLINE_AUDIT_KEY is not set" in warning and str(tmp_path / "audit.key") in warning
    assert "JACKLINE_AUDIT_KEY=file:/etc/jackline/audit.key" in warning
    assert "`openssl rand -hex 32`" in warning
    monkeypatch.setenv("TEAM_SIGNING", TEAM_KEY)
    monkeypatch.setenv("JACKLINE_AUDIT_KEY", "env:TEAM_SIGNING")
    api.check_audit_key(said.append)
    assert len(said) == 1


def test_verify_while_another_writer_appends_never_calls_the_stream_cut(backend: Backend) -> None:
    """A reader verifying while a writer appends (two threads, two connections): each verdict
    is `verified`. Reading the events before the head once found the head past them, and a
    GitHub approval was refused as if the log had been tampered with."""
    import threading

    log = _log(backend, events=2)
    writer = AuditLog(backend.store(), Redactor({}))
    done = threading.Event()

    def append() -> None:
        for i in range(150):
            writer.record("run-1", "step", n=i)
        done.set()

    thread = threading.Thread(target=append)
    thread.start()
    verdicts = []
    reader = AuditLog(backend.store(), Redactor({}))
    while not done.is_set():
        verdicts.append(reader.verify("run-1"))
    thread.join()
    broken = [v.render() for v in verdicts if v.state != "verified"]
    assert len(verdicts) > 5 and not broken, broken[:3]
    assert log.verify("run-1").state == "verified"
