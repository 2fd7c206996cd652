"""What a request to the server costs, on SQLite and on PostgreSQL: the token is checked on
every request but its `last_used` written once a minute, requests give their connections back
and open none once the pool holds enough, and `/metrics` costs a few queries however many runs
there are and starts no process. In process: the app under httpx's ASGI transport, the store on
a real database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import CONFIG, Project

from jackline import auth, database, executors
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.health import prometheus
from jackline.models import Run
from jackline.server import Settings, create_app, fresh
from jackline.server.metrics import exposition
from jackline.store import Store


@pytest.fixture
def store(
    database_url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """The store every `Store()` of this process opens (the server's): SQLite in a home of the
    test's own, or the test's PostgreSQL database."""
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    if database_url:
        monkeypatch.setenv("JACKLINE_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("JACKLINE_DATABASE_URL", raising=False)
    yield Store()
    executors.release()


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements any engine of this process runs in the block."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)


STARTED: list[tuple[Any, ...]] = []
_WATCHING: list[bool] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _WATCHING and event in ("subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork"):
        STARTED.append((event, *args))


sys.addaudithook(_audit)  # a hook stays for the process's life: it records only when asked


@contextmanager
def processes() -> Iterator[list[tuple[Any, ...]]]:
    """The processes this process starts in the block."""
    STARTED.clear()
    _WATCHING.append(True)
    try:
        yield STARTED
    finally:
        _WATCHING.clear()


def _run(store: Store, i: int, status: str, executor: str | None = None, rounds: int = 1) -> Run:
    now = time.time()
    run = Run(
        f"run-{i:04d}", "t", "/r", "a", "standard", status, f"agent/b{i}", "me",  # type: ignore[arg-type]
        now + i, now + i, rounds=rounds, executor=executor,
    )  # fmt: skip
    store.insert_run(run)
    return run


def test_a_token_is_checked_every_time_but_its_last_use_written_once_a_minute(
    store: Store,
) -> None:
    token, secret = auth.create_token(store, "vera", "viewer")
    assert auth.verify(store, secret) == auth.Principal("vera", "viewer")
    first = store.get_token(token.id).last_used
    assert first is not None and abs(first - time.time()) < 5
    with statements() as seen:
        for _ in range(20):
            assert auth.verify(store, secret) == auth.Principal("vera", "viewer")
    assert not [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert store.get_token(token.id).last_used == first
    # a minute on, the next request writes it again
    store.touch_token(token.id, time.time() - auth.TOUCH_EVERY - 1)
    auth.verify(store, secret)
    again = store.get_token(token.id).last_used
    assert again is not None and abs(again - time.time()) < 5
    # and a revoked token stops at once, however recently it was used
    auth.revoke(store, token.id)
    assert auth.verify(store, secret) is None


async def _get_many(
    app: Any, secret: str, path: str, requests: int, at_once: int, answers: bool = False
) -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        gate = asyncio.Semaphore(at_once)

        async def get() -> int:
            async with gate:
                answer = await c.get(path)
                return answer.json() if answers else answer.status_code

        return await asyncio.gather(*(get() for _ in range(requests)))


def test_requests_give_their_connections_back_and_keep_them_for_the_next(
    store: Store,
) -> None:
    for i in range(5):
        _run(store, i, "merged")
    _, secret = auth.create_token(store, "vera", "viewer")
    app = create_app(Settings())
    engine = database.database(database.store_url(store.path, database.configured_url())).engine
    opened: list[object] = []
    closed: list[object] = []

    def connected(*_: Any) -> None:
        opened.append(True)

    def gone(*_: Any) -> None:
        closed.append(True)

    sa.event.listen(engine, "connect", connected)
    sa.event.listen(engine, "close", gone)
    try:
        for _ in range(2):
            assert set(asyncio.run(_get_many(app, secret, "/api/runs", 100, 20))) == {200}
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        sa.event.remove(engine, "connect", connected)
        sa.event.remove(engine, "close", gone)
    # 20 requests at once: the pool keeps as many, and none is opened and closed per request
    assert closed == [] and 0 < len(opened) <= database.POOL["pool_size"]


def test_an_unchanged_store_answers_tokens_and_runs_from_memory_and_any_change_is_seen_next(
    store: Store, database_url: str | None
) -> None:
    """On SQLite a request to an unchanged store reads nothing (`server.fresh`); a new run, a
    driver that died (which changes nothing in the store) and a revoked token are seen by the
    very next request. On PostgreSQL every request reads."""
    holder = subprocess.Popen(  # another process driving run 1: it holds its executor's lock
        [sys.executable, "-c", HOLD, str(store.path.parent / "executors" / "elsewhere.lock")],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        _run(store, 0, "merged")
        _run(store, 1, "running", executor="elsewhere")
        token, secret = auth.create_token(store, "vera", "viewer")
        app = create_app(Settings())

        def runs() -> tuple[dict[str, str], list[str]]:
            with statements() as seen:
                got = asyncio.run(_get_many(app, secret, "/api/runs", 1, 1, answers=True))[0]
            return {r["id"]: r["status"] for r in got}, seen

        first, _ = runs()
        runs()  # the token's first use wrote its `last_used`: a change, which it sees
        # in team mode a driver lives while its heartbeat in the store is fresh: it has none
        driving = "running" if database_url is None else "interrupted"
        assert first == {"run-0001": driving, "run-0000": "merged"}
        again, read = runs()
        assert again == first
        if database_url is None:
            assert read == []
        else:
            assert any("FROM jackline.tokens" in s for s in read), read
            assert any("FROM jackline.runs" in s for s in read), read
        _run(store, 2, "failed")
        assert runs()[0] == {"run-0002": "failed", **first}
        holder.kill()
        holder.wait()
        assert runs()[0]["run-0001"] == "interrupted"
        auth.revoke(store, token.id)
        assert asyncio.run(_get_many(app, secret, "/api/runs", 1, 1)) == [401]
    finally:
        holder.kill()
        holder.wait()


HOLD = """
import fcntl, os, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
f = open(sys.argv[1], "w")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def test_a_token_kept_in_memory_is_refused_once_it_expires_and_checked_again_each_minute() -> None:
    kept = fresh.Principals()
    seen = ("jackline.db", (1, 2), 7)
    vera = auth.Principal("vera", "viewer")
    kept.keep("jl_a_b", seen, vera, expires_at=time.time() + 60)
    assert kept.get("jl_a_b", seen) == vera
    assert kept.get("jl_a_b", (*seen[:2], 8)) is None  # the store changed
    assert kept.get("jl_a_b", None) is None  # a store with no version: never kept
    kept.keep("jl_a_c", seen, vera, expires_at=time.time() - 1)
    assert kept.get("jl_a_c", seen) is None  # expired since it was checked
    kept.keep("jl_a_d", seen, vera, expires_at=None)
    kept._known[fresh._key("jl_a_d")] = replace(
        kept._known[fresh._key("jl_a_d")], checked=time.time() - auth.TOUCH_EVERY
    )
    assert kept.get("jl_a_d", seen) is None  # checked a minute ago: its last use is due


def _round(log: AuditLog, run_id: str, durations: dict[str, float]) -> None:
    checks = [{"name": n, "duration": d, "passed": True} for n, d in durations.items()]
    log.record(run_id, Kind.ROUND, round=1, passed=True, checks=checks)


def _samples(page: str, name: str, label: str) -> dict[str, float]:
    parsed = prometheus.parse(page)
    return {dict(s.labels)[label]: s.value for s in parsed.samples if s.name == name}


def test_metrics_count_in_the_database_and_start_no_process(store: Store, tmp_path: Path) -> None:
    project = Project(tmp_path / "p", tmp_path / "home")
    project.init({"jackline.toml": CONFIG.format(python=sys.executable) + "\n[pool]\nsize = 2\n"})
    repo = project.repo.resolve()
    alive = executors.claim()
    _run(store, 0, "merged", rounds=2)
    _run(store, 1, "awaiting_review", rounds=1)
    _run(store, 2, "running", executor="gone-host-1-01DEAD", rounds=1)  # shows interrupted
    _run(store, 3, "running", executor=alive, rounds=0)
    log = AuditLog(store, Redactor({}))
    _round(log, "run-0000", {"test": 0.7, "lint": 0.2})
    _round(log, "run-0000", {"test": 3.0})
    _round(log, "run-0001", {"test": 40.0})

    with statements() as few, processes() as started:
        page = exposition([repo])
    assert started == []
    runs = _samples(page, "jackline_runs", "status")
    assert runs["merged"] == 1 and runs["awaiting_review"] == 1
    assert runs["interrupted"] == 1 and runs["running"] == 1 and runs["queued"] == 0
    assert "jackline_rounds_total 4\n" in page
    test = 'jackline_check_duration_seconds_bucket{check="test",le='
    assert f'{test}"0.5"}} 0' in page and f'{test}"1.0"}} 1' in page
    assert f'{test}"5.0"}} 2' in page and f'{test}"60.0"}} 3' in page
    assert 'jackline_check_duration_seconds_count{check="lint"} 1' in page
    assert 'jackline_check_duration_seconds_sum{check="test"} 43.700000' in page
    assert _samples(page, "jackline_pool_size", "repo") == {str(repo): 2}
    assert _samples(page, "jackline_pool_warm", "repo") == {str(repo): 0}

    for i in range(4, 60):  # many more runs: no more statements
        _run(store, i, "merged", rounds=1)
    with statements() as same, processes() as started:
        page = exposition([repo])
    assert started == []
    assert len(same) == len(few) <= 4
    assert _samples(page, "jackline_runs", "status")["merged"] == 57
    assert "jackline_rounds_total 60\n" in page
