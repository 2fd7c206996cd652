"""The audit log: append-only, hash-chained, redacted before it is written.

Each event's hash covers the previous event's hash and its own content, so changing or deleting
an event breaks the chain from there on, and `jackline logs` shows where.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from jackline.guard.redact import Redactor
from jackline.store import Store


def _digest(prev: str, seq: int, ts: float, kind: str, data: str) -> str:
    body = json.dumps([prev, seq, repr(ts), kind, data], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Event:
    run_id: str
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]
    intact: bool


class AuditLog:
    def __init__(self, store: Store, redactor: Redactor) -> None:
        self.store = store
        self.redact = redactor

    def record(self, run_id: str, kind: str, /, **data: Any) -> None:
        payload = json.dumps(self.redact.deep(data), sort_keys=True, default=str)
        self.store.append_event(run_id, kind, payload, _digest)

    def read(self, run_id: str, after: int = 0) -> list[Event]:
        """Events in order, each marked whether the chain still holds up to it."""
        rows = self.store.events(run_id)
        out: list[Event] = []
        prev, intact = "", True
        for row in rows:
            expected = _digest(prev, row["seq"], row["ts"], row["kind"], row["data"])
            intact = intact and row["prev"] == prev and row["hash"] == expected
            prev = row["hash"]
            if row["seq"] > after:
                out.append(
                    Event(
                        run_id, row["seq"], row["ts"], row["kind"], json.loads(row["data"]), intact
                    )
                )
        return out
