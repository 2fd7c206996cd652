"""The store's tables for team mode: workers' heartbeats and runs' artifacts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from jackline.models import WorkerBeat
from jackline.store import Store


def test_workers_beat_and_are_forgotten_and_artifacts_keep_bytes(tmp_path: Path) -> None:
    store = Store(tmp_path / "jackline.db")
    first = WorkerBeat("w1", "host-a", 10, 1.0, 2.0, 2, "/w/a")
    store.beat(first)
    store.beat(WorkerBeat("w2", "host-b", 11, 1.0, 5.0, 4, "/w/b"))
    store.beat(replace(first, beat_at=9.0))
    assert [(w.id, w.beat_at) for w in store.workers()] == [("w1", 9.0), ("w2", 5.0)]
    store.forget_worker("w1")
    assert [w.id for w in store.workers()] == ["w2"]

    store.put_artifact("run-1", "work.patch", b"\x00binary\xff")
    store.put_artifact("run-1", "handoff.md", b"old")
    store.put_artifact("run-1", "handoff.md", b"new")
    assert store.get_artifact("run-1", "work.patch") == b"\x00binary\xff"
    assert store.get_artifact("run-1", "handoff.md") == b"new"
    assert store.get_artifact("run-2", "handoff.md") is None
    assert store.artifact_names("run-1") == ["handoff.md", "work.patch"]
