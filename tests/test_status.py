"""Statuses are enums (`models.Status`, `models.ReleaseStatus`) stored as the strings they always
were: a database written before the enums reads the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jackline.models import (
    DECIDING,
    FINAL,
    RELEASE_FINAL,
    RESTING,
    RUN_STATUSES,
    ReleaseStatus,
    Run,
    Status,
)
from jackline.store import Store

BEFORE = (
    "queued",
    "running",
    "awaiting_review",
    "merging",
    "rejecting",
    "merged",
    "rejected",
    "failed",
    "blocked",
    "over_budget",
    "cancelled",
    "interrupted",
)


def test_statuses_are_the_strings_stored_before_the_enum() -> None:
    assert RUN_STATUSES == BEFORE  # a StrEnum equals its value
    assert FINAL < RESTING and DECIDING < RESTING and "merged" in FINAL
    assert RELEASE_FINAL == {"live", "failed", "rolled_back", "aborted"}
    assert ReleaseStatus.DEPLOYING.at("staging") == "deploying:staging"


def test_a_run_stored_by_an_older_harness_reads_as_a_status(tmp_path: Path) -> None:
    path = tmp_path / "jackline.db"
    store = Store(path)
    run = Run("run-1", "Fix add", "/r", "default", "standard", Status.BLOCKED, "agent/x", "a", 1, 1)
    store.insert_run(run)
    db = sqlite3.connect(path)
    assert db.execute("SELECT status, typeof(status) FROM runs").fetchall() == [("blocked", "text")]
    db.execute("UPDATE runs SET status = 'awaiting_review'")  # the string an older harness wrote
    db.commit()
    read = store.get_run("run-1")
    assert read.status is Status.AWAITING_REVIEW and read.status in DECIDING
