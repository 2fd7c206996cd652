"""The records that flow between the parts: small, frozen, serialisable with `asdict`.

A record that leaves the process (`Run`, `Release`) is written out once, here: the store's rows,
the JSON of `--json` and `/api/`, the server's response models and the client's reading are all
derived from its fields (`to_json`, `from_json`, `Sent`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeVar, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from pydantic import TypeAdapter

R = TypeVar("R", bound="DataclassInstance")


# A run moves queued -> running -> awaiting_review -> merging | rejecting -> merged | rejected,
# or ends failed (the checks still fail); request-changes sends it from awaiting_review back to
# running. A secret in the change rests it in blocked (nothing committed), which takes
# request-changes (another round, told where the secret is) or reject, never approve.
# A run that uses up its `[budget]` ends over_budget, its work kept for a person.
# A person may cancel a run that has not ended (`jackline cancel`): it ends cancelled, its
# workspace kept, and never moves again. `interrupted` is never stored: it is how a queued,
# running, merging or rejecting run shows once the process that drove it is gone (`DRIVEN`).
class Status(StrEnum):
    """Every status a run can have, in the order a run meets them (for filters and metrics). The
    store keeps the value, so a database written before the enum reads the same."""

    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    MERGING = "merging"
    REJECTING = "rejecting"
    MERGED = "merged"
    REJECTED = "rejected"
    FAILED = "failed"
    BLOCKED = "blocked"
    OVER_BUDGET = "over_budget"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


RESTING: frozenset[Status] = frozenset(
    {
        Status.AWAITING_REVIEW,
        Status.FAILED,
        Status.BLOCKED,
        Status.OVER_BUDGET,
        Status.MERGED,
        Status.REJECTED,
        Status.CANCELLED,
    }
)
FINAL: frozenset[Status] = frozenset(
    {Status.FAILED, Status.OVER_BUDGET, Status.MERGED, Status.REJECTED, Status.CANCELLED}
)
DRIVEN: frozenset[Status] = frozenset(
    {Status.QUEUED, Status.RUNNING, Status.MERGING, Status.REJECTING}
)
"""The statuses in which a live process must be driving the run's workflow."""
DECIDING: frozenset[Status] = frozenset({Status.AWAITING_REVIEW, Status.BLOCKED})
"""The statuses in which a run's workflow waits for a person's decision."""
RUN_STATUSES: tuple[Status, ...] = tuple(Status)
"""Every status a run can have, in the order a run meets them (for filters and metrics)."""


@dataclass(frozen=True)
class Failure:
    """One thing a check found wrong, precise enough to act on."""

    check: str
    message: str
    file: str | None = None
    line: int | None = None
    rule: str | None = None
    test: str | None = None

    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    exit_code: int
    duration: float
    command: str
    failures: tuple[Failure, ...] = ()
    output_tail: str = ""
    summary: str = ""
    dropped: int = 0
    """Bytes of its output not kept (between the head and the tail the log keeps)."""
    explained: bool = True
    """False when it failed and its parser named no failure (no parser, a crash before any
    report, a timeout): then `output_tail` says why, and the handoff, `show` and the feedback
    show it."""


@dataclass(frozen=True)
class Step:
    """One thing an agent did, read from its transcript."""

    kind: Literal["command", "tool", "edit", "message"]
    """`command` (a shell command), `tool` (another tool call), `edit` (a file written or
    changed), `message` (what it said; the last one is its final message)."""
    summary: str
    """One line: the command, the tool and its argument, the path, the message's start."""
    detail: str = ""
    """The result or output (truncated), or the whole message."""
    path: str | None = None
    exit_code: int | None = None
    error: bool = False
    """The tool reported a failure."""


@dataclass(frozen=True)
class Usage:
    """Tokens one model used in one round, as the transcript reports them."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Transcript:
    steps: tuple[Step, ...] = ()
    usage: tuple[Usage, ...] = ()
    final: str = ""
    """The agent's final message."""
    cost_usd: float | None = None
    """What the program itself says the round cost, where it says so."""


@dataclass(frozen=True)
class AgentResult:
    exit_code: int
    duration: float
    output_tail: str
    timed_out: bool = False
    transcript: Transcript | None = None
    """What the agent did, step by step, when its program writes a structured transcript."""
    dropped: int = 0
    """Bytes of its output not kept (between the head and the tail the log keeps)."""


def last_line(output: str) -> str:
    """The last line of a command's output that says anything: for a crash, usually the cause
    (`Not logged in`, `ModuleNotFoundError: No module named 'ruff'`)."""
    return next((x.strip() for x in reversed(output.splitlines()) if x.strip()), "")


@dataclass(frozen=True)
class AgentRound:
    """An agent's round as the harness measured it. A round is good only when the agent exited
    0 in time, changed the work tree, and left a change against the run's base: an exit code or
    an empty tree says what happened, whatever the agent printed."""

    exit_code: int
    timed_out: bool = False
    timeout: int = 0
    """Seconds it was given."""
    changed: bool = True
    """The round changed the work tree (after out-of-scope writes were reverted)."""
    left_change: bool = True
    """The work tree differs from the run's base after the round."""
    tail: str = ""
    """The last lines it printed: plain text, redacted."""

    def problem(self) -> str | None:
        """What was wrong with the round, in a few words, or None."""
        nothing = "" if self.changed else " and changed nothing"
        if self.timed_out:
            return f"the agent timed out after {self.timeout}s{nothing}"
        if self.exit_code != 0:
            return f"the agent exited {self.exit_code}{nothing}"
        if not self.changed:
            return "the agent exited 0 but changed nothing"
        if not self.left_change:
            return "the agent's work leaves no change against the run's base"
        return None

    def ran(self) -> bool:
        """Whether the agent did anything another round could build on: it changed something,
        or it finished normally. A program that failed without touching a file (not logged
        in, not found, a bad flag, hung) would only fail the same way again."""
        return self.changed or (self.exit_code == 0 and not self.timed_out)

    def last_line(self) -> str:
        return last_line(self.tail)


@dataclass(frozen=True)
class Finding:
    """What a scan or the guard found in the change: which rule, how serious, where, and why a
    reviewer should care. `quote` holds the code in question (removed code, or a masked secret)."""

    rule: str
    level: Literal["block", "warn", "info"]
    message: str
    file: str | None = None
    line: int | None = None
    why: str = ""
    quote: str = ""
    id: str = field(init=False, default="", compare=False)
    """What a person names it by (`jackline accept RUN ID`): derived from its rule, place and
    words, never given, so a finding read back from an older scan event has one too, and the
    same finding found again in a later round has the same id."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", finding_id(self.rule, self.file, self.line, self.message))


def finding_id(rule: str, file: str | None, line: int | None, message: str) -> str:
    """A finding's id: ten hex digits of a hash of its rule, file, line and message. Only
    hex: it goes in a URL's path and on a command line whatever the file is called."""
    said = json.dumps([rule, file, line, message], ensure_ascii=False)
    return hashlib.sha256(said.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Acceptance:
    """An owner's (for a warn, any reviewer's) acceptance of one finding of a run, with why.
    It holds for the head it was made on: the scan of a new round clears it, and a finding
    still there needs accepting again."""

    run: str
    finding: str
    """The finding's id (`Finding.id`)."""
    rule: str
    level: str
    file: str | None
    line: int | None
    by: str
    reason: str
    head: str
    """The commit it was made on ("" where the run had none)."""
    claimed_by_os_user: str = ""
    """The OS user who named `by` (`--as`) when that was a claim."""
    left: int = 0
    """Block-level findings of the run not accepted on its head once this one was (0: any
    reviewer other than the submitter may approve)."""


@dataclass(frozen=True)
class Comment:
    """A person's comment on one line of a run's change, on the head they saw. Those made on
    the run's head go to the agent with the next request for changes (`file:line: text (who)`);
    those on an earlier head stay shown, marked with their round."""

    id: str
    run_id: str
    file: str
    """The file's path after the change (before it, for a deleted file)."""
    side: Literal["old", "new"]
    """Which numbering `line` is in: the file before the change (old) or after it (new)."""
    line: int
    text: str
    """What the person said (redacted, as every stored byte is)."""
    author: str
    head: str
    """The commit the comment was made on."""
    round: int
    """The run's round when it was made (its `rounds`)."""
    at: float

    @property
    def where(self) -> str:
        """`calc.py:3`, or `calc.py:3 (old)` for a line as it was before the change."""
        return f"{self.file}:{self.line}" + (" (old)" if self.side == "old" else "")


@dataclass(frozen=True)
class Decision:
    """A person's decision on a run waiting for one, as its workflow takes it. It travels to the
    workflow as a plain dict (`as_message`, `from_message`): DBOS records each message it
    delivers (pickled), and a workflow replayed from a record holds the dict it recorded, never
    a class that may have moved since."""

    kind: Literal["approve", "request_changes", "reject"]
    by: str
    """The name it is recorded under (and checked against owners)."""
    message: str = ""
    """A note; for request-changes, the agent's feedback."""
    claimed_by_os_user: str | None = None
    """The OS user who named `by` (`--as`, JACKLINE_USER) when that was a claim (`auth`)."""
    id: str = ""
    """Given as it is sent (`engine.decide`): its sender waits until the run rests after it."""

    def as_message(self) -> dict[str, Any]:
        """The dict sent to the workflow: the keys a decision has always had (no claim when
        nothing was claimed)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Decision:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class ReleaseDecision:
    """A person's go or abort for a release, as its workflow takes it: a plain dict on the way,
    as a run's `Decision` is (DBOS records each message it delivers)."""

    kind: Literal["go", "abort"]
    by: str = ""
    """The name it is recorded under (and checked against `allow_self_go`)."""

    def as_message(self) -> dict[str, str]:
        return {"kind": self.kind, "by": self.by}

    @classmethod
    def from_message(cls, data: object) -> ReleaseDecision | None:
        """The go or abort a message holds; None for any other message (the workflow drops it)."""
        if isinstance(data, dict) and data.get("kind") in ("go", "abort"):
            return cls(data["kind"], str(data.get("by", "")))
        return None


class StepOutcome:
    """What a durable step returns: each subclass is a frozen dataclass. DBOS records a step's
    output (pickled) and hands it back when a workflow resumes, to whichever version of
    Jackline resumes it, so a record never crosses that line: a step's wrapper records
    `recorded()`, a plain dict of the fields by name (lists, no classes), and the workflow
    reads it with `from_recorded`, which takes what an earlier version recorded as well (the
    same keys; a key it did not record takes the field's default)."""

    omit_none: ClassVar[bool] = False
    """Leave a field at None out of the record: a step whose outcomes have had different keys
    (a failure its reason, a success its result) records each with the keys it always had."""

    def recorded(self) -> dict[str, object]:
        data: dict[str, object] = _adapter(type(self)).dump_python(self, mode="json")
        return {k: v for k, v in data.items() if v is not None} if self.omit_none else data

    @classmethod
    def from_recorded(cls, data: Mapping[str, object]) -> Self:
        return _adapter(cls).validate_python(data)


S = TypeVar("S", bound=StepOutcome)
_ADAPTERS: dict[type, object] = {}


def _adapter(cls: type[S]) -> TypeAdapter[S]:
    """The record's reader and writer, made once a process (a few milliseconds each)."""
    from pydantic import TypeAdapter

    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return cast("TypeAdapter[S]", _ADAPTERS[cls])


@dataclass(frozen=True)
class Sent:
    """How a record's field is sent as JSON where it is not sent as it is, under its own name:
    the field's metadata says so (`field(metadata=Sent(...).meta())`), so the record is the one
    place that names it."""

    key: str | None
    """Its key in the JSON; None keeps the field on the harness's side (not sent)."""
    digits: int | None = None
    """A float sent rounded to this many digits (and read back as a float)."""

    def meta(self) -> dict[str, Sent]:
        return {"sent": self}


HARNESS = Sent(None).meta()
"""A field kept on the harness's side: not sent as JSON."""


def _sent(f: Any) -> Sent:
    found: Sent = f.metadata.get("sent", Sent(f.name))
    return found


def json_keys(cls: type[DataclassInstance]) -> dict[str, str]:
    """The record's fields that are sent as JSON, each with its key there, in field order."""
    keys = {f.name: _sent(f).key for f in fields(cls)}
    return {name: key for name, key in keys.items() if key is not None}


def to_json(record: DataclassInstance) -> dict[str, Any]:
    """The record as JSON: `jackline ... --json`, the server's answers (`/api/`), notifications."""
    data: dict[str, Any] = {}
    for name, key, digits in _sending(type(record)):
        value = getattr(record, name)
        data[key] = round(value, digits) if digits is not None else value
    return data


@cache  # `/api/runs` sends every run's fields: reading their metadata each time was its cost
def _sending(cls: type[DataclassInstance]) -> tuple[tuple[str, str, int | None], ...]:
    """Each field that is sent: its name, its key in the JSON, and the digits it is rounded to."""
    sent = ((f.name, _sent(f)) for f in fields(cls))
    return tuple((name, s.key, s.digits) for name, s in sent if s.key is not None)


def from_json(cls: type[R], data: dict[str, Any]) -> R:
    """The record `to_json` sent (the client reads the server's answers so). A key it does not
    know (a detail view's extras) is left; a field not sent takes its default."""
    known: dict[str, Any] = {}
    for f in fields(cls):
        if not f.init:  # derived as the record is made (`Finding.id`)
            continue
        sent = _sent(f)
        if sent.key is not None and sent.key in data:
            value = data[sent.key]
            known[f.name] = float(value) if sent.digits is not None else value
    return cls(**known)


@dataclass(frozen=True)
class Run:
    """A task given to an agent, from its submission to its end, as the store keeps it."""

    id: str
    task: str
    repo: str
    agent: str
    blueprint: str
    status: Status
    """queued, running, awaiting_review, merging, merged, ... (`RUN_STATUSES`)."""
    branch: str
    submitted_by: str
    created_at: float
    updated_at: float
    rounds: int = 0
    base_sha: str | None = None
    head_sha: str | None = None
    merge_sha: str | None = None
    workspace: str | None = None
    handoff: str | None = None
    """The handoff's path (on the server, for a remote run)."""
    reason: str = ""
    paths: tuple[str, ...] = field(default_factory=tuple, metadata=Sent(None).meta())
    """The paths the run's rounds have changed so far: they pick the rules in play for the next
    round (kept on the harness's side, not sent)."""
    blocking: int = 0
    """Block-level findings of the latest scan: approval needs a [review] owner."""
    warnings: int = 0
    """Warn-level findings of the latest scan."""
    spend: float = field(default=0.0, metadata=Sent("spend_usd", digits=4).meta())
    """US dollars of model use so far, from the transcripts and `[budget] prices`."""
    tokens: int = 0
    """Tokens used so far (input, output and cache), from the transcripts."""
    executor: str | None = field(default=None, metadata=Sent(None).meta())
    """The process driving the run's workflow (`executors`), written down when it starts to:
    a name on the harness's machine, not sent."""
    # What steps need of the run's history, kept where its event is recorded (the audit log
    # stays the history; nothing replays it by kind to know where the run stands). Kept on
    # the harness's side, not sent.
    worked_seconds: float = field(default=0.0, metadata=HARNESS)
    """Seconds its commands (set-up, agent, checks) have taken so far (`command` events)."""
    redacted: int = field(default=0, metadata=HARNESS)
    """Secret-like values redacted from the agent's output so far (`redacted` events)."""
    reverted: tuple[str, ...] = field(default_factory=tuple, metadata=HARNESS)
    """Paths the agent wrote outside `[scope]`, its writes reverted (`scope` events)."""
    published: str = field(default="", metadata=HARNESS)
    """Where its branch was published: the forge's kind ("local", "github"); "" before."""
    pull_request: str = field(default="", metadata=HARNESS)
    """The pull request's address, where publishing opened one."""
    secrets_found: tuple[str, ...] = field(default_factory=tuple, metadata=HARNESS)
    """Where the latest scan found secrets in the change (file:line, never the values)."""
    last_agent: str = field(default="", metadata=HARNESS)
    """The agent's latest round as its `command` event recorded it (JSON, redacted)."""
    block_ids: tuple[str, ...] = field(default_factory=tuple, metadata=HARNESS)
    """The ids of the latest scan's block-level findings (`scan` events)."""
    accepted: tuple[str, ...] = field(default_factory=tuple, metadata=HARNESS)
    """The ids of findings accepted on the run's head (`accepted` events); the scan of a new
    round empties it."""
    attempts: str = ""
    """The group of parallel attempts at one task this run is one of (`attempts-<ulid>`, the
    same for each; `jackline run --attempts N`), "" for a run on its own."""
    priority: int = 0
    """Its own place on a team's queue, fixed when it was submitted: lower goes first. The
    `--priority` asked for, plus `[queue] automatic` where no person asked for it
    (`Origin`); a worker adds the repository's `[queue] priority` when it takes runs."""


class Origin(StrEnum):
    """Who asked for a run, as its queue sees it: a person's run goes before an automatic one
    (`[queue] automatic`)."""

    PERSON = "person"
    """Typed by a person: the command line, the web page, Slack."""
    AUTOMATIC = "automatic"
    """Anything else: a program through the REST API, a script calling `jackline.api`."""


# A release moves queued -> gating -> for each environment: [awaiting_go] -> deploying:ENV ->
# probing:ENV -> soaking:ENV, and ends live, failed (stopped before production, or production
# failed with nothing to go back to), rolled_back (production checks failed, or a person rolled
# it back later) or aborted (a person stopped it at a wait). An inconclusive probe rests it in
# paused until a person says go (on) or abort; rolling_back is the way to rolled_back.
class ReleaseStatus(StrEnum):
    """A release's statuses. Those of a step at an environment are stored with it
    (`deploying:staging`, `ReleaseStatus.DEPLOYING.at("staging")`)."""

    QUEUED = "queued"
    GATING = "gating"
    AWAITING_GO = "awaiting_go"
    DEPLOYING = "deploying"
    PROBING = "probing"
    SOAKING = "soaking"
    PAUSED = "paused"
    ABORTING = "aborting"
    ROLLING_BACK = "rolling_back"
    LIVE = "live"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    def at(self, env: str) -> str:
        return f"{self.value}:{env}"


RELEASE_RESTING: frozenset[ReleaseStatus] = frozenset(
    {
        ReleaseStatus.AWAITING_GO,
        ReleaseStatus.PAUSED,
        ReleaseStatus.LIVE,
        ReleaseStatus.FAILED,
        ReleaseStatus.ROLLED_BACK,
        ReleaseStatus.ABORTED,
    }
)
RELEASE_FINAL: frozenset[ReleaseStatus] = frozenset(
    {ReleaseStatus.LIVE, ReleaseStatus.FAILED, ReleaseStatus.ROLLED_BACK, ReleaseStatus.ABORTED}
)
RELEASE_WAITS: frozenset[ReleaseStatus] = frozenset(
    {ReleaseStatus.AWAITING_GO, ReleaseStatus.PAUSED}
)


@dataclass(frozen=True)
class Release:
    """One promotion of a main commit through the environments, as the ledger keeps it."""

    id: str
    repo: str
    sha: str
    status: str
    started_by: str
    created_at: float
    updated_at: float
    previous_sha: str | None = None
    """What production ran before this release (None for the first release)."""
    go_by: str | None = None
    """Who said go for production."""
    author_kind: Literal["agent", "person"] = "person"
    """`agent` when a commit since the live release carries a `Jackline-Run:` trailer."""
    run_id: str | None = None
    """The run that produced the change, for agent releases: it gets rollbacks as feedback."""
    reason: str = ""
    promotable: bool = True
    """False once rolled back: a later release of this commit needs a forced reason."""
    forced_reason: str = ""
    env: str = ""
    """The environment the release is at (or waits before, when awaiting go)."""


@dataclass(frozen=True)
class Probe:
    """One post-deploy check of one environment, with its timing."""

    release_id: str
    env: str
    name: str
    outcome: Literal["pass", "fail", "inconclusive"]
    detail: str
    duration: float
    at: float


@dataclass(frozen=True)
class Token:
    """A token for the server (`jackline.auth`): whose, which role; its secret is never kept."""

    id: str
    name: str
    role: str
    created_at: float
    last_used: float | None
    revoked: bool
    expires_at: float | None = None
    """When it stops working (a timestamp); None: it works until revoked."""


@dataclass(frozen=True)
class Attempt:
    """One of a group of parallel attempts at a task, as the reviewer compares them."""

    run: str
    agent: str
    status: str
    rounds: int
    checks: str
    """How the last round's checks went: "pass", "fail", or "-" before any round ended."""
    files: int
    added: int
    removed: int
    """Lines of its committed change (0 before it has one)."""
    blocking: int
    warnings: int
    spend: float
    """US dollars of model use."""
    seconds: float
    """Seconds its commands (set-up, agent, checks) took."""


@dataclass(frozen=True)
class WorkerBeat:
    """A worker process as it last said it lived (team mode): one row per worker, its
    `beat_at` renewed every few seconds. A worker whose beat is old is dead, wherever it ran:
    a live one takes its runs over."""

    id: str
    """Its executor id: the one DBOS records on the workflows it runs."""
    host: str
    pid: int
    started_at: float
    beat_at: float
    concurrency: int
    """How many runs it takes from the queue at once."""
    workspaces: str
    """The folder its workspaces are made in, on its own machine."""
