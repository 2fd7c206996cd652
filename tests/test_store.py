"""The store on SQLite and on PostgreSQL, through the same code: its tables for team mode, what
each write guarantees when several processes write at once, and its migrations."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from postgres import Backend

from jackline import database, migrations
from jackline.errors import ConfigError, NotFound
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import Run, WorkerBeat
from jackline.store import Store

FORK = multiprocessing.get_context("fork")


def _run(store: Store, status: str = "awaiting_review", head: str | None = "h1") -> Run:
    now = time.time()
    run = Run("run-1", "t", "/r", "a", "standard", status, "b", "me", now, now, head_sha=head)
    store.insert_run(run)
    return run


def test_workers_beat_and_are_forgotten_and_artifacts_keep_bytes(backend: Backend) -> None:
    store = backend.store()
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


def test_runs_are_found_by_a_piece_of_their_id_and_a_wildcard_is_only_a_character(
    backend: Backend,
) -> None:
    store = backend.store()
    now = time.time()
    for n, run_id in enumerate(["run-0123456AAAAAAA", "run-0123456BBBBBBB"]):
        store.insert_run(Run(run_id, "t", "/r", "a", "standard", "running", "b", "me", now + n, 0))
    assert store.get_run("bbbbbbb").id == "run-0123456BBBBBBB"
    assert store.short_ids(["run-0123456AAAAAAA"]) == {"run-0123456AAAAAAA": "AAAAAA"}
    with pytest.raises(NotFound, match="more than one run"):
        store.get_run("0123456")
    with pytest.raises(NotFound, match="no run"):
        store.get_run("_______")  # LIKE's wildcard matches nothing but itself
    assert [r.id for r in store.list_runs()] == ["run-0123456BBBBBBB", "run-0123456AAAAAAA"]


def test_a_cancelled_run_keeps_its_status_and_counters_add(backend: Backend) -> None:
    store = backend.store()
    _run(store, status="running")
    store.update_run("run-1", status="cancelled")
    assert store.update_run("run-1", status="merged", reason="late").status == "cancelled"
    store.add_to_run("run-1", worked_seconds=1.5, redacted=2)
    run = backend.store().add_to_run("run-1", worked_seconds=0.25)
    assert (run.worked_seconds, run.redacted, run.reason) == (1.75, 2, "late")


def test_an_acceptance_lands_only_on_the_head_it_was_made_on(backend: Backend) -> None:
    store = backend.store()
    _run(store, head="h1")
    assert not store.accept_finding("run-1", "f1", "h0")  # a round that is gone
    assert store.accept_finding("run-1", "f1", "h1")
    assert not store.accept_finding("run-1", "f1", "h1")  # accepted already
    store.update_run("run-1", status="merging")
    assert not store.accept_finding("run-1", "f2", "h1")
    assert store.get_run("run-1").accepted == ("f1",)


def _race(n: int, work: Callable[..., Any], *args: Any) -> list[Any]:
    """`work(barrier, i, *args)` in `n` forked processes that start it at one moment; what
    each returned."""
    barrier = FORK.Barrier(n)
    results = FORK.Queue()

    def child(i: int) -> None:
        results.put((i, work(barrier, i, *args)))

    procs = [FORK.Process(target=child, args=(i,)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"a racing process exited {p.exitcode}"
    got = dict(results.get(timeout=5) for _ in procs)
    return [got[i] for i in range(n)]


def _accept_many(barrier: Any, i: int, backend: Backend) -> list[bool]:
    store = backend.store()
    barrier.wait()
    return [store.accept_finding("run-1", f"p{i}-f{k}", "h1") for k in range(15)]


def test_acceptances_made_at_once_by_several_processes_all_count(backend: Backend) -> None:
    _run(backend.store())
    done = _race(3, _accept_many, backend)
    assert all(all(d) for d in done)
    accepted = backend.store().get_run("run-1").accepted
    assert sorted(accepted) == sorted(f"p{i}-f{k}" for i in range(3) for k in range(15))


def _take_all(barrier: Any, _i: int, backend: Backend) -> list[bool]:
    store = backend.store()
    taken = []
    for k in range(30):
        barrier.wait()  # both copies of delivery k arrive at once
        taken.append(store.take_delivery("github", f"d{k}"))
    return taken


def test_two_copies_of_a_delivery_taken_at_once_are_taken_once(backend: Backend) -> None:
    first, second = _race(2, _take_all, backend)
    assert [a + b for a, b in zip(first, second, strict=True)] == [1] * 30
    store = backend.store()
    assert not store.take_delivery("github", "d0")
    store.forget_delivery("github", "d0")
    assert store.take_delivery("github", "d0")


def _append_many(barrier: Any, i: int, backend: Backend) -> int:
    log = AuditLog(backend.store(), Redactor({}))
    barrier.wait()
    for k in range(25):
        log.record("run-1", "step", writer=i, n=k)
    return i


def test_processes_appending_to_one_stream_at_once_leave_one_unbroken_chain(
    backend: Backend,
) -> None:
    AuditLog(backend.store(), Redactor({})).record("run-1", "submitted")  # makes the key
    _race(4, _append_many, backend)
    log = AuditLog(backend.store(), Redactor({}))
    events = log.read("run-1")
    assert [e.seq for e in events] == list(range(1, 102))
    verdict = log.verify("run-1")
    assert verdict.state == "verified", verdict.detail
    by_writer = sorted((e.data["writer"], e.data["n"]) for e in events[1:])
    assert by_writer == [(i, k) for i in range(4) for k in range(25)]


def _count_exclusively(barrier: Any, _i: int, backend: Backend) -> int:
    store = backend.store()
    barrier.wait()
    for _ in range(5):
        with store.exclusive("take-over"):
            seen = int(store.get_artifact("counter", "n") or b"0")
            time.sleep(0.01)  # another holder would read the same number meanwhile
            store.put_artifact("counter", "n", str(seen + 1).encode())
    return 0


def test_an_exclusive_block_has_one_holder_among_processes_and_reads_its_own_writes(
    backend: Backend,
) -> None:
    _race(3, _count_exclusively, backend)
    assert backend.store().get_artifact("counter", "n") == b"15"


def test_an_exclusive_block_writes_nothing_when_it_fails(backend: Backend) -> None:
    store = backend.store()
    with pytest.raises(RuntimeError), store.exclusive("take-over"):
        store.put_artifact("run-1", "handoff.md", b"half")
        assert store.get_artifact("run-1", "handoff.md") == b"half"
        raise RuntimeError("the block failed")
    assert store.get_artifact("run-1", "handoff.md") is None


def test_a_worker_found_dead_is_not_brought_back_by_its_next_beat(backend: Backend) -> None:
    store = backend.store()
    store.beat(WorkerBeat("w1", "host-a", 10, 1.0, 2.0, 2, "/w/a"))
    assert store.renew_beat("w1", 3.0)
    assert [w.beat_at for w in store.workers()] == [3.0]
    store.forget_worker("w1")
    assert not store.renew_beat("w1", 4.0)
    assert store.workers() == []


def _migrate(barrier: Any, _i: int, backend: Backend) -> list[int]:
    fresh = database.connect(database.store_url(backend.path, backend.url))  # not this process's
    barrier.wait()
    try:
        return migrations.migrate(fresh.engine)
    finally:
        fresh.engine.dispose()


def test_processes_starting_at_once_apply_the_migrations_once(backend: Backend) -> None:
    applied = _race(3, _migrate, backend)
    assert sorted(applied) == [[], [], [1, 2, 3, 4, 5]]
    rows = backend.sql("SELECT version, jackline FROM schema_versions")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]


def test_opening_a_store_again_runs_no_statement(backend: Backend) -> None:
    backend.store()
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        stores = [backend.store() for _ in range(100)]
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert seen == []
    stores[-1].close()
    assert stores[0].list_runs() == []


def test_this_release_runs_on_a_schema_a_newer_release_expanded(backend: Backend) -> None:
    """A rolling upgrade: a newer worker added a column and a table (and recorded a step this
    release does not know); a worker of this release starts against it and works."""
    backend.store()
    backend.sql("ALTER TABLE runs ADD COLUMN weight INTEGER NOT NULL DEFAULT 5")
    backend.sql("ALTER TABLE events ADD COLUMN origin TEXT")
    backend.sql("CREATE TABLE run_notes (run_id TEXT NOT NULL, note TEXT NOT NULL)")
    backend.sql(
        "INSERT INTO schema_versions (version, what, applied_at, jackline)"
        " VALUES (99, 'weights and notes', 0, '9.9')"
    )
    database.dispose_all()  # this process now starts as the older worker would

    store = backend.store()
    run = _run(store)
    assert store.update_run("run-1", status="merging").status == "merging"
    read = store.get_run("run-1")
    assert replace(read, updated_at=0) == replace(run, status="merging", updated_at=0)
    log = AuditLog(store, Redactor({}))
    log.record("run-1", "step", n=1)
    assert log.verify("run-1").state == "verified"
    assert backend.sql("SELECT weight FROM runs") == [(5,)]
    versions = backend.sql("SELECT version FROM schema_versions ORDER BY 1")
    assert [r[0] for r in versions] == [1, 2, 3, 4, 5, 99]


def test_a_database_url_that_is_neither_postgresql_nor_sqlite_is_named_in_the_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        Store(tmp_path / "j.db", url="mysql://root:hunter2@db/jackline")
    message = str(caught.value)
    assert message.startswith("JACKLINE_DATABASE_URL: ") and "postgresql://" in message
    assert "hunter2" not in message and "mysql://root:***@db/jackline" in message


def test_the_spellings_of_a_postgresql_url_reach_one_database(pg_url: str, tmp_path: Path) -> None:
    _run(Store(tmp_path / "j.db", url=pg_url))
    other = pg_url.replace("postgresql://", "postgres://")
    assert Store(url=other).get_run("run-1").head_sha == "h1"
    assert not (tmp_path / "j.db").exists()  # the store went to PostgreSQL, not to the file


def test_a_sqlite_url_leaves_the_store_in_jackline_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JACKLINE_DATABASE_URL", f"sqlite:///{tmp_path}/engine.db")
    _run(Store())
    assert (tmp_path / "home" / "jackline.db").is_file()
    assert not (tmp_path / "engine.db").exists()


def test_runs_are_filtered_by_the_database_before_the_limit(backend: Backend) -> None:
    store = backend.store()
    now = time.time()
    for i, (agent, by, repo) in enumerate([("codex", "bob", "/a"), *[("claude", "al", "/b")] * 3]):
        store.insert_run(
            Run(f"run-{i}", "t", repo, agent, "standard", "merged", "b", by, now + i, now + i)
        )
    # The oldest run is the only one of its agent, person or repository: a filter applied after
    # taking the newest one would find nothing.
    assert [r.id for r in store.list_runs(limit=1, agent="codex")] == ["run-0"]
    assert [r.id for r in store.list_runs("merged", 1, by="bob", repo="/a")] == ["run-0"]
    assert store.list_runs(agent="codex", by="al") == []
    choices = store.run_choices()
    assert (choices.agents, choices.people, choices.repos) == (
        ("claude", "codex"), ("al", "bob"), ("/a", "/b"),
    )  # fmt: skip


def _claim(barrier: Any, i: int, backend: Backend) -> bool:
    store = backend.store()
    barrier.wait()
    return store.claim_issue("acme/calc", 7) is None


def test_an_issue_is_taken_by_one_trigger_at_a_time_until_its_run_ends(backend: Backend) -> None:
    """Four triggers at once: one takes the issue. It is held while its run has not ended (and
    while a start is under way), and free once the run ends or a start died long ago."""
    assert sorted(_race(4, _claim, backend)) == [False, False, False, True]
    store = backend.store()
    held = store.claim_issue("acme/calc", 7)
    assert held is not None and held.run_id == ""  # a start under way
    _run(store, status="awaiting_review")
    store.set_issue("acme/calc", 7, run_id="run-1", comment_id=42)
    assert store.issue_of("run-1") == replace(held, run_id="run-1", comment_id=42)
    held = store.claim_issue("acme/calc", 7)
    assert held is not None and held.run_id == "run-1"
    assert store.claim_issue("acme/calc", 8) is None  # another issue is another matter
    store.update_run("run-1", status="merged")
    assert store.claim_issue("acme/calc", 7) is None  # ended: taken anew, its run not yet known
    assert store.issue_of("run-1") is None
    store.drop_issue("acme/calc", 8)  # a start that failed lets its issue go
    assert store.claim_issue("acme/calc", 8) is None
    assert store.claim_issue("acme/calc", 8, pending_for=0) is None  # a start that died


def test_an_issue_whose_run_is_gone_is_free(backend: Backend) -> None:
    store = backend.store()
    assert store.claim_issue("acme/calc", 9) is None
    store.set_issue("acme/calc", 9, run_id="run-gone")  # no such run in the store
    assert store.claim_issue("acme/calc", 9) is None
