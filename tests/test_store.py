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
    assert store.renew_beat("w2", 12.0) and not store.renew_beat("w1", 12.0)
    assert [(w.id, w.beat_at) for w in store.workers()] == [("w2", 12.0)]  # w1 stays gone

    store.put_artifact("run-1", "work.patch", b"\x00binary\xff")
    store.put_artifact("run-1", "handoff.md", b"old")
    store.put_artifact("run-1", "handoff.md", b"new")
    assert store.get_artifact("run-1", "work.patch") == b"\x00binary\xff"
    assert store.get_artifact("run-1", "handoff.md") == b"new"
    assert store.get_artifact("run-2", "handoff.md") is None
    assert store.artifact_names("run-1") == ["handoff.md", "work.patch"]


def test_exclusive_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    import threading
    import time

    Store(tmp_path / "jackline.db").close()
    said: list[str] = []

    def hold(name: str) -> None:
        store = Store(tmp_path / "jackline.db")  # a connection of its own, as a process has
        with store.exclusive("take-over"):
            said.append(f"{name} in")
            time.sleep(0.3)
            said.append(f"{name} out")
        store.close()

    threads = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert said in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_writes_inside_exclusive_are_one_transaction_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "jackline.db")
    store.beat(WorkerBeat("w1", "host-a", 10, 1.0, 2.0, 2, "/w/a"))
    try:
        with store.exclusive("take-over"):
            store.forget_worker("w1")
            raise RuntimeError("the holder failed half way")
    except RuntimeError:
        pass
    assert [w.id for w in store.workers()] == ["w1"]  # rolled back with the block
    with store.exclusive("take-over"):
        store.forget_worker("w1")
    assert store.workers() == []
