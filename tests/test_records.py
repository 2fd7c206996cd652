"""A record that leaves the process is written out once, in `models`: its table's columns, its
JSON (`--json`, `/api/`), the server's response model (OpenAPI) and the client's reading all
agree with its fields, and a value goes through each and comes back the same."""

from __future__ import annotations

import sqlite3
import types
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import sqlalchemy as sa
from fastapi import FastAPI
from postgres import Backend

from jackline import api, migrations
from jackline.auth import Token
from jackline.client import event_from_json, release_from_json, run_from_json
from jackline.guard.audit import Event
from jackline.models import (
    Comment,
    Decision,
    Probe,
    Release,
    Run,
    WorkerBeat,
    json_keys,
    to_json,
)
from jackline.server import api_routes
from jackline.store import Store

RUN = Run(
    "run-01J0000000000000000000ABCD",
    "Fix add",
    "/srv/repo",
    "scripted",
    "standard",
    "awaiting_review",
    "jackline/fix-add",
    "alice",
    1_700_000_000.25,
    1_700_000_100.5,
    rounds=2,
    base_sha="a" * 40,
    head_sha="b" * 40,
    workspace="/tmp/ws",
    handoff="/tmp/handoff.md",
    reason="checks pass",
    paths=("calc.py", "tests/test_calc.py"),
    blocking=1,
    warnings=3,
    spend=0.123456789,
    tokens=4200,
    executor="host:123:abc",
    worked_seconds=12.5,
    redacted=1,
    reverted=(".env",),
    published="local",
    secrets_found=("config.py:3",),
    last_agent='{"round": 2}',
    block_ids=("0123456789",),
    accepted=("0123456789",),
    priority=-3,
)
HARNESS_SIDE = {
    "paths", "executor", "worked_seconds", "redacted", "reverted", "published", "pull_request",
    "secrets_found", "last_agent", "block_ids", "accepted",
}  # fmt: skip
"""The run's fields kept on the harness's side: never sent."""
RELEASE = Release(
    "rel-01J0000000000000000000WXYZ",
    "/srv/repo",
    "c" * 40,
    "rolled_back",
    "olga",
    1_700_000_000.0,
    1_700_000_050.0,
    previous_sha="d" * 40,
    go_by="olga",
    author_kind="agent",
    run_id=RUN.id,
    reason="probe failed",
    promotable=False,
    env="production",
)
RUN_JSON_KEYS = {
    "id", "task", "status", "branch", "rounds", "handoff", "repo", "agent", "blueprint",
    "submitted_by", "base_sha", "head_sha", "merge_sha", "workspace", "reason", "blocking",
    "warnings", "spend_usd", "tokens", "created_at", "updated_at",
    "attempts",  # added with parallel attempts (issue 16)
    "priority",  # added with the queue's settings (issue 16)
}  # fmt: skip
"""What `--json` and `/api/runs` send for a run: the contract the derivation keeps (a key may
be added, never removed or renamed)."""
SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER", tuple: "TEXT"}


def columns(store: Store, table: str) -> dict[str, tuple[str, bool]]:
    """Each column of `table`, as the database describes it: its type (named as SQLite names
    it: PostgreSQL's BIGINT is an INTEGER, its DOUBLE PRECISION a REAL) and whether it may hold
    NULL (a primary key is taken as never NULL: no insert leaves it out, though SQLite would
    let it be)."""
    schema = migrations.SCHEMA if store.postgres else None
    with store.transaction() as db:
        found = sa.inspect(db)
        keys = set(found.get_pk_constraint(table, schema=schema)["constrained_columns"])
        described = found.get_columns(table, schema=schema)
    return {
        c["name"]: (_sql(c["type"]), c["nullable"] and c["name"] not in keys) for c in described
    }


def _sql(kind: sa.types.TypeEngine[Any]) -> str:
    for sql, base in (("INTEGER", sa.Integer), ("REAL", sa.Float), ("BLOB", sa.LargeBinary)):
        if isinstance(kind, base):
            return sql
    return "TEXT" if isinstance(kind, sa.String) else str(kind)


def expected_columns(record: type[Any]) -> dict[str, tuple[str, bool]]:
    """The column each field of `record` needs: an SQL type for its Python type, NULL only
    where the field may be None."""
    wanted = {}
    for name, kind in get_type_hints(record).items():
        options = get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
        base = next(o for o in options if o is not type(None))
        base = get_origin(base) or base
        sql = SQL_TYPES.get(base, "TEXT")  # a Literal of strings is kept as text
        wanted[name] = (sql, type(None) in options)
    return wanted


def openapi_properties(schema: str) -> set[str]:
    app = FastAPI()
    app.include_router(api_routes.router)
    return set(app.openapi()["components"]["schemas"][schema]["properties"])


def test_each_record_table_has_a_column_per_field_of_its_type_and_nullability(
    backend: Backend,
) -> None:
    store = backend.store()
    assert columns(store, "runs") == expected_columns(Run)
    assert columns(store, "releases") == expected_columns(Release)
    # PostgreSQL has no implicit rowid: the probes' insertion order is a column of that name.
    rowid = {"rowid": ("INTEGER", False)} if store.postgres else {}
    assert columns(store, "probes") == {**expected_columns(Probe), **rowid}
    assert columns(store, "workers") == expected_columns(WorkerBeat)
    assert columns(store, "comments") == expected_columns(Comment)
    # A token's digest is the one column its record leaves in the table: it never leaves it.
    assert columns(store, "tokens") == {**expected_columns(Token), "digest": ("TEXT", False)}


def test_a_database_made_before_the_added_columns_gains_them_and_agrees_again(
    tmp_path: Path,
) -> None:
    db = sqlite3.connect(tmp_path / "jackline.db")
    first = [f.name for f in fields(Run)][: [f.name for f in fields(Run)].index("blocking")]
    db.execute(f"CREATE TABLE runs ({', '.join(first)}, PRIMARY KEY (id))")
    db.commit()
    db.close()
    store = Store(tmp_path / "jackline.db")
    assert list(columns(store, "runs")) == [f.name for f in fields(Run)]
    store.insert_run(RUN)
    assert store.get_run(RUN.id) == RUN
    # It was recognised as a database of an earlier Jackline: it has every table now, and the
    # first step is recorded as applied.
    assert columns(store, "workers") == expected_columns(WorkerBeat)
    with sqlite3.connect(tmp_path / "jackline.db") as db:
        assert db.execute("SELECT version FROM schema_versions").fetchall() == [
            (1,),
            (2,),
            (3,),
            (4,),
            (5,),
        ]


def test_a_run_and_a_release_come_back_from_the_store_as_they_went_in(backend: Backend) -> None:
    store = backend.store()
    store.insert_run(RUN)
    store.insert_release(RELEASE)
    assert store.get_run(RUN.id) == RUN
    assert store.get_release(RELEASE.id) == RELEASE
    assert store.get_release(RELEASE.id).promotable is False
    moved = store.update_run(RUN.id, paths=["x.py"], status="merging")
    assert moved.paths == ("x.py",)
    assert moved.status == "merging"


def test_the_five_spellings_of_a_run_agree() -> None:
    """The dataclass, the table (above), `api.as_json`, the server's RunOut in OpenAPI, and
    the client's `run_from_json`."""
    sent = api.as_json(RUN)
    assert set(sent) == RUN_JSON_KEYS == set(json_keys(Run).values())
    assert openapi_properties("RunOut") == RUN_JSON_KEYS
    assert openapi_properties("RunDetail") == RUN_JSON_KEYS | {
        "round_results",
        "findings",
        "handoff_markdown",
    }
    assert sent["spend_usd"] == 0.1235
    # The client reads back every field that is sent; those kept on the harness's side take
    # their defaults, and the spend arrives rounded.
    read = run_from_json({**sent, "round_results": [], "handoff_markdown": None})
    kept = {f.name: f.default for f in fields(Run) if f.name in HARNESS_SIDE}
    defaults = {k: () if v is MISSING else v for k, v in kept.items()}
    assert read == replace(RUN, **defaults, spend=0.1235)
    assert set(json_keys(Run)) == {f.name for f in fields(Run)} - HARNESS_SIDE


def test_the_spellings_of_a_release_agree() -> None:
    sent = api.release_as_json(RELEASE)
    assert set(sent) == {f.name for f in fields(Release)}
    assert openapi_properties("ReleaseOut") == set(sent) | {"carries", "probes", "events"}
    assert release_from_json({**sent, "probes": [], "events": []}) == RELEASE
    assert to_json(RELEASE) == sent


def test_the_server_answers_with_the_json_the_cli_prints() -> None:
    """RunOut validates `as_json` without dropping, adding or changing a value."""
    sent = api.as_json(RUN)
    assert api_routes.RunOut.model_validate(sent).model_dump() == sent
    released = api.release_as_json(RELEASE)
    answered = api_routes.ReleaseOut.model_validate(released).model_dump()
    assert answered == {**released, "carries": None, "probes": None, "events": None}


def test_a_decision_goes_to_the_workflow_as_the_dict_it_always_was() -> None:
    """DBOS records each message it delivers: a workflow replayed from a record made before
    `Decision` was a record reads the same dict back, and a new one sends the same keys."""
    recorded = {
        "kind": "approve",
        "by": "bob",
        "claimed_by_os_user": "root",
        "message": "ship it",
        "id": "01J00000000000000000000000",
    }
    decision = Decision.from_message(recorded)
    assert decision == Decision("approve", "bob", "ship it", "root", recorded["id"])
    assert decision.as_message() == recorded
    unclaimed = {"kind": "reject", "by": "bob", "message": "", "id": "x"}
    assert Decision.from_message(unclaimed).as_message() == unclaimed


def test_an_event_reads_back_as_the_server_sends_it() -> None:
    event = Event("run-x", 3, 1_700_000_000.5, "round", {"round": 1, "passed": True}, False)
    sent = api_routes.event_json(event)
    assert set(sent) == {f.name for f in fields(Event)} == openapi_properties("EventOut")
    assert event_from_json(sent) == event
