"""The audit log: append-only, keyed and hash-chained, anchored by a recorded head, redacted
before it is written.

Each event's mac is an HMAC-SHA256, under the audit key, of the stream's id, the previous event's mac and the event
itself. So whoever can write the database but not read the key can neither change an event nor
re-hash the chain after changing one. The head (the last sequence number and mac, sealed with
the key) is written in the same transaction as each event, apart from the events, so deleting
the tail (the decision and the merge) shows too: `verify` names where the chain breaks.

The key is the one `JACKLINE_AUDIT_KEY` names (a secret reference, `env:NAME` or `file:PATH`),
which a team gives every machine, since each machine appends to the chains of the runs it works
on; unset, it is a file beside the database (`audit.key` in `JACKLINE_HOME`, mode 0600) made on
first use. Either way it is text of at least 64 characters (Jackline makes 64 hex digits), and it
is used as it is: a copy of one home's `audit.key` named by the variable keeps that home's chains
verified.

Chains written before keys existed (plain SHA-256, no head) stay readable; `verify` says they are
unkeyed rather than verified. An event appended to one now is keyed, and its mac covers the old
ones through the previous hash it names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jackline import paths
from jackline.errors import ConfigError, JacklineError
from jackline.events import Kind, known
from jackline.guard.redact import Redactor, resolve
from jackline.store import AuditHead, Store, StoredEvent

KEY_FILE = "audit.key"
KEY_ENV = "JACKLINE_AUDIT_KEY"
MIN_KEY = 64
"""The shortest key taken, in characters: the 64 hex digits of 32 random bytes."""
MAKE_KEY = "openssl rand -hex 32"
RIGHT_KEY = (
    f"{KEY_ENV} must name the team's audit key, the same on every machine, as env:NAME or "
    f"file:PATH (a file only its owner may read): text of at least {MIN_KEY} characters, such "
    f"as `{MAKE_KEY}` prints, or a copy of one machine's JACKLINE_HOME/{KEY_FILE}"
)
KEYED = "k1:"
"""The prefix of a keyed mac; a hash without it is the plain SHA-256 of the first chains."""


@dataclass(frozen=True)
class Event:
    """One event of an audit log (a run's or a release's), redacted."""

    run_id: str
    seq: int
    ts: float
    kind: str
    data: dict[str, Any]
    intact: bool
    """False once the hash chain is broken at this event or one before it."""


@dataclass(frozen=True)
class Verdict:
    """What checking a whole stream found."""

    state: Literal["verified", "broken", "unkeyed"]
    """`verified`: every event and the recorded head hold under the key. `broken`: something was
    changed, deleted or re-hashed (or the key is missing). `unkeyed`: written before audit keys,
    so anyone could have recomputed its hashes."""
    events: int
    """How many events the stream has."""
    detail: str
    """Where it breaks, or what was verified."""

    @property
    def broken(self) -> bool:
        return self.state != "verified"

    def render(self) -> str:
        word = {"verified": "VERIFIED", "broken": "CHAIN BROKEN", "unkeyed": "NOT VERIFIED"}
        return f"{word[self.state]}: {self.detail}"


class AuditLog:
    def __init__(self, store: Store, redactor: Redactor) -> None:
        self.store = store
        self.redact = redactor
        self.key_path = store.path.parent / KEY_FILE
        self._key: bytes | None = None

    def record(self, run_id: str, kind: Kind, /, **data: Any) -> dict[str, Any]:
        """Append an event; returns its data as written (redacted)."""
        kind = known(kind)  # a kind made up at run time (`Kind(...)` of a string) may be none
        payload = json.dumps(self.redact.deep(data), sort_keys=True, default=str)
        key = self._signing_key()

        def chain(prev: str, seq: int, ts: float, kind: str, data: str) -> str:
            return _mac(key, run_id, prev, seq, ts, kind, data)

        def seal(seq: int, digest: str, since: int) -> str:
            return _seal(key, run_id, seq, digest, since)

        self.store.append_event(run_id, kind, payload, chain, seal)
        written: dict[str, Any] = json.loads(payload)
        return written

    def read(self, run_id: str, after: int = 0) -> list[Event]:
        """Events in order, each marked whether the chain still holds up to it."""
        return [e for e in self.cursor(run_id).read() if e.seq > after]

    def cursor(self, run_id: str) -> Cursor:
        """A reader of the stream that reads each event once (see `Cursor`)."""
        return Cursor(self, run_id)

    def verify(self, run_id: str) -> Verdict:
        """Check the whole stream: every event, the links, and the recorded head. The head is
        read before the events: an event another writer appends between the two reads then
        follows the head read (and is checked by its link), where reading the events first
        would find the head past them and call the stream cut."""
        head = self.store.audit_head(run_id)
        rows = self.store.events(run_id)
        if head is None and rows:  # the stream's first event was written between the reads
            head = self.store.audit_head(run_id)
            rows = self.store.events(run_id)
        key = self._verifying_key()
        if key is None and (head is not None or any(r.hash.startswith(KEYED) for r in rows)):
            return Verdict(
                "broken", len(rows), f"the audit key {self.key_path} is missing: cannot verify"
            )
        for _row, problem in _walk(rows, key, head, run_id):
            if problem:
                return Verdict("broken", len(rows), problem)
        return _check_head(rows, head, key, run_id, self.key_path)

    def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = configured_key() or _load_key(self.key_path, create=True)
        return self._key

    def _verifying_key(self) -> bytes | None:
        # Reading never makes a key: a new one would call every existing chain broken.
        if self._key is None:
            self._key = configured_key()
        if self._key is None and self.key_path.exists():
            self._key = _load_key(self.key_path, create=False)
        return self._key


def configured_key() -> bytes | None:
    """The key `JACKLINE_AUDIT_KEY` names, or None when it is unset (then each home keeps its
    own). A reference that cannot be read, or names too short a key, is an error, never a
    fallback to the home's key: an event signed with another key would break the chain."""
    ref = os.environ.get(KEY_ENV, "").strip()
    if not ref:
        return None
    scheme, _, rest = ref.partition(":")
    try:
        if scheme == "file":  # the checks a key file gets; the operator's path may be a link
            text = _read_key(Path(rest).expanduser(), follow=True)
        else:
            text = resolve(ref, KEY_ENV).strip()
    except JacklineError as e:
        said = e.problems[0] if isinstance(e, ConfigError) else str(e)
        raise ConfigError(KEY_ENV, [said, RIGHT_KEY]) from None
    if len(text) < MIN_KEY:
        # The length only: never a byte of the key itself.
        raise ConfigError(
            KEY_ENV, [f"{ref!r} names a key of {len(text)} characters: too short", RIGHT_KEY]
        )
    return text.encode()


def team_warning(team: bool) -> str | None:
    """Checked once when a worker or a server starts: the configured key is read now (an error
    ends the process before it writes an event with another key); in team mode without one, the
    warning that every machine must sign with the same key."""
    if configured_key() is not None or not team:
        return None
    return (
        f"Warning: {KEY_ENV} is not set, so this machine signs audit logs with its own key "
        f"({paths.home() / KEY_FILE}); a run's log written on two machines with different keys "
        f"reads CHAIN BROKEN. Give every worker and server the same key: {KEY_ENV}="
        f"file:/etc/jackline/{KEY_FILE} (mode 0600, holding what `{MAKE_KEY}` prints, or a copy "
        f"of one machine's {KEY_FILE})."
    )


class Cursor:
    """A reader's place in one stream, for whoever follows it as it grows (`engine.drive`,
    `logs --follow`): each `read` takes only the events written since the last, and checks each
    against the mac the one before it ended on, so a poll costs what is new, not the whole chain.
    Events read before are not checked again: a change to one of them afterwards is for `verify`
    to find, which walks the whole chain."""

    def __init__(self, log: AuditLog, run_id: str) -> None:
        self.log, self.run_id = log, run_id
        self.seq = 0
        """The last event read."""
        self._prev = ""
        self._intact = True
        self._keyed_from: int | None = None
        self._started = False

    def read(self) -> list[Event]:
        """The events written since the last read, in order, each marked whether the chain
        still holds up to it."""
        if not self._started:  # the head's `since` is fixed once the stream is keyed
            head = self.log.store.audit_head(self.run_id)
            self._keyed_from = head.since if head is not None else None
            self._started = True
        key = self.log._verifying_key()
        out: list[Event] = []
        for row in self.log.store.events(self.run_id, after=self.seq):
            problem = _problem(row, self.seq + 1, self._prev, key, self._keyed_from, self.run_id)
            self._intact = self._intact and problem is None
            if self._keyed_from is None and row.hash.startswith(KEYED):
                self._keyed_from = row.seq
            self.seq, self._prev = row.seq, row.hash
            data = json.loads(row.data)
            out.append(Event(self.run_id, row.seq, row.ts, row.kind, data, self._intact))
        return out


def _walk(
    rows: list[StoredEvent], key: bytes | None, head: AuditHead | None, stream: str
) -> Iterator[tuple[StoredEvent, str | None]]:
    """Each row with what is wrong with it (None: it holds, given the rows before it)."""
    prev = ""
    keyed_from = head.since if head is not None else None
    for expected_seq, row in enumerate(rows, 1):
        yield row, _problem(row, expected_seq, prev, key, keyed_from, stream)
        if keyed_from is None and row.hash.startswith(KEYED):
            keyed_from = row.seq
        prev = row.hash


def _problem(
    row: StoredEvent,
    expected_seq: int,
    prev: str,
    key: bytes | None,
    keyed_from: int | None,
    stream: str,
) -> str | None:
    where = f"event {row.seq} ({row.kind})"
    if row.seq != expected_seq:
        return f"event {expected_seq} is missing (the next one is {row.seq})"
    if row.prev != prev:
        return f"{where} does not follow event {row.seq - 1}: one of them was changed"
    digest: str = row.hash
    if not digest.startswith(KEYED):
        if keyed_from is not None and row.seq >= keyed_from:
            return (
                f"{where} has a plain hash though the chain is keyed from event {keyed_from}: "
                "it was re-hashed without the key"
            )
        plain = _plain(prev, row.seq, row.ts, row.kind, row.data)
        return None if digest == plain else f"{where} was changed"
    if key is None:
        return f"{where} is keyed and the audit key is missing, so it cannot be verified"
    mac = _mac(key, stream, prev, row.seq, row.ts, row.kind, row.data)
    if not hmac.compare_digest(digest, mac):
        return f"{where} was changed (its mac does not hold under the audit key)"
    return None


def _check_head(
    rows: list[StoredEvent], head: AuditHead | None, key: bytes | None, stream: str, key_path: Path
) -> Verdict:
    """The stream's events all hold: do they end where the recorded head says?"""
    n = len(rows)
    if head is None:
        if not rows:
            return Verdict("broken", 0, "no events are recorded (and no head): deleted")
        if any(r.hash.startswith(KEYED) for r in rows):
            return Verdict("broken", n, "the recorded head of this keyed chain was deleted")
        return Verdict(
            "unkeyed",
            n,
            f"events 1-{n} were written before audit keys; their hashes hold, but anyone "
            "could have recomputed them",
        )
    if key is None:
        return Verdict("broken", n, f"the audit key {key_path} is missing: cannot verify")
    sealed = _seal(key, stream, head.seq, head.hash, head.since)
    if not hmac.compare_digest(head.mac, sealed):
        return Verdict("broken", n, "the recorded head was changed (its seal does not hold)")
    # Events past the head were appended after it was read (`verify`); their links hold.
    upto = [r for r in rows if r.seq <= head.seq]
    last = upto[-1].seq if upto else 0
    if head.seq > last:
        gone = f"{last + 1}-{head.seq}" if head.seq > last + 1 else str(head.seq)
        return Verdict("broken", n, f"events {gone} are missing: the head records event {head.seq}")
    if head.hash != upto[-1].hash:
        return Verdict("broken", n, f"event {last} is not the head recorded (event {head.seq})")
    return Verdict("verified", n, f"{n} events, keyed from event {head.since}, end at the head")


def _mac(key: bytes, stream: str, prev: str, seq: int, ts: float, kind: str, data: str) -> str:
    body = json.dumps([stream, prev, seq, repr(ts), kind, data], separators=(",", ":"))
    return KEYED + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _seal(key: bytes, stream: str, seq: int, digest: str, since: int) -> str:
    # A different message from any event's, so an event's mac never passes for a head's seal.
    body = json.dumps(["head", stream, seq, digest, since], separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _plain(prev: str, seq: int, ts: float, kind: str, data: str) -> str:
    """The unkeyed hash the first chains were made with."""
    body = json.dumps([prev, seq, repr(ts), kind, data], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _load_key(path: Path, create: bool) -> bytes:
    """The audit key: made on first use (0600, never through a link), refused if others may
    read it, since whoever reads it can re-hash a chain."""
    if create and not path.exists():
        _make_key(path)
    text = _read_key(path, follow=False)
    if len(text) < MIN_KEY:
        raise JacklineError(f"the audit key {path} is too short ({len(text)} characters)")
    return text.encode()


def _read_key(path: Path, follow: bool) -> str:
    """A key file's text, refused if it is not a regular file or others may read it."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise JacklineError(f"cannot read the audit key {path}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise JacklineError(f"the audit key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise JacklineError(f"the audit key {path} may be read by others: `chmod 600 {path}`")
        return os.read(fd, 4096).decode(errors="replace").strip()
    finally:
        os.close(fd)


def _make_key(path: Path) -> None:
    """Write the key whole under another name, then link it into place: two processes that
    start at once agree on one key, and neither reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
