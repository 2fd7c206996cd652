"""Error rates: matching lines in a log file over a window, or one metric from a `/metrics` page.

A log is read as records. A line that starts with an ISO-8601 timestamp (`2024-05-01 12:00:00,123`,
`[2024-05-01T12:00:00Z]`; without an offset it is local time, as Python's logging writes it) opens
a record, and the undated lines after it (a traceback, a wrapped message) belong to it. A record
counts once if any of its lines matches, so an error logged with its traceback is one error.
Undated lines before any dated one (or in a log with no timestamps) cannot be placed in time:
a traceback block among them still counts once, and they count only if the file changed within
the window; the detail says which way that went.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from jackline.config import HealthErrors, seconds
from jackline.guard.redact import Redactor
from jackline.health import prometheus
from jackline.health.records import Item, State, span
from jackline.release import tree as release_tree

MAX_BYTES = 32 * 1024 * 1024
"""Only the end of a larger log is read: the window is about its newest lines."""
METRICS_TIMEOUT = 10.0
SHOWN = 5

_STAMP = re.compile(
    r"\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)"
)
_TRACEBACK = "Traceback (most recent call last)"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


def items(repo: Path, spec: HealthErrors, index: int, now: datetime) -> list[Item]:
    """The figures one `[[health.errors]]` entry asks for: its log, its metric, or both."""
    found = []
    if spec.log:
        found.append(log_item(repo, spec, now))
    if spec.metrics_url:
        found.append(metric_item(spec, index))
    if not found:
        where = f"health.errors[{index}] ({spec.name})"
        found.append(_item(spec, "unknown", f"{where}: set `log` or `metrics_url` to watch"))
    return found


def _item(spec: HealthErrors, state: State, summary: str, detail: str = "") -> Item:
    return Item("errors", spec.name, state, summary, detail)


# A log file -------------------------------------------------------------------------------------


@dataclass
class Record:
    at: datetime | None
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Tally:
    dated: tuple[Record, ...]
    """Matching records dated within the window."""
    earlier: int
    """Matching records dated before it."""
    undated: tuple[Record, ...]
    """Matching records with no date."""


def log_item(repo: Path, spec: HealthErrors, now: datetime) -> Item:
    assert spec.log is not None
    path = Path(spec.log).expanduser()
    if not path.is_absolute():
        # Released deploys run in the harness's checkout of the release, and log there.
        released = release_tree.path(repo) / path
        path = released if released.exists() else repo / path
    try:
        text, modified, cut = _tail(path)
    except FileNotFoundError:
        return _item(spec, "unknown", f"the log {path} does not exist")
    except OSError as e:
        return _item(spec, "unknown", f"cannot read the log {path}: {e.strerror or e}")
    since = now - timedelta(seconds=seconds(spec.window))
    tally = count(text.splitlines(), re.compile(spec.pattern), since)
    fresh = modified >= since
    counted = list(tally.dated) + (list(tally.undated) if fresh else [])
    total = len(counted)
    state: State = "attention" if total > spec.threshold else "ok"
    summary = (
        f"{total} error(s) in the last {spec.window} in {spec.log} (threshold {spec.threshold:g})"
    )
    notes = _notes(tally, fresh, now - modified, spec.window, cut)
    return _item(spec, state, summary, "\n".join(notes + _shown(counted)))


def _tail(path: Path) -> tuple[str, datetime, bool]:
    """The log's text (its last MAX_BYTES), when it last changed, and whether it was cut."""
    with path.open("rb") as f:
        modified = datetime.fromtimestamp(path.stat().st_mtime).astimezone()
        size = f.seek(0, 2)
        f.seek(max(0, size - MAX_BYTES))
        data = f.read()
    cut = size > MAX_BYTES
    if cut:
        data = data.split(b"\n", 1)[-1]  # the first line is a fragment
    return data.decode("utf-8", "replace"), modified, cut


def count(lines: list[str], pattern: re.Pattern[str], since: datetime) -> Tally:
    dated: list[Record] = []
    undated: list[Record] = []
    earlier = 0
    for record in records(lines):
        if not any(pattern.search(line) for line in record.lines):
            continue
        if record.at is None:
            undated.append(record)
        elif record.at >= since:
            dated.append(record)
        else:
            earlier += 1
    return Tally(tuple(dated), earlier, tuple(undated))


def records(lines: list[str]) -> Iterator[Record]:
    """The log's records: a dated line and the undated lines after it, or an undated traceback
    block, or one undated line."""
    current: Record | None = None
    block = ""  # in an undated traceback: "frames" until its exception line, then "after"
    for line in lines:
        at = stamp(line)
        if current is not None and at is None:
            if current.at is not None:
                current.lines.append(line)  # continues a dated record
                continue
            block = _in_block(block, line)
            if block:
                current.lines.append(line)
                continue
        if current is not None:
            yield current
        current = Record(at, [line])
        block = "frames" if at is None and line.startswith(_TRACEBACK) else ""
    if current is not None:
        yield current


def _in_block(block: str, line: str) -> str:
    """Whether an undated line continues the traceback block: the state after it, or ""."""
    if block == "frames":
        # Frames are indented; the first line that is not is the exception, which ends them.
        indented = not line or line[0].isspace() or line.startswith(_TRACEBACK)
        return "frames" if indented else "after"
    if block == "after":
        if not line.strip():
            return "after"
        if line.startswith(_CHAINED) or line.startswith(_TRACEBACK):
            return "frames"  # a chained exception: the same error, told twice
    return ""


def stamp(line: str) -> datetime | None:
    """The ISO-8601 time a line starts with, timezone-aware (local time if it names none)."""
    m = _STAMP.match(line)
    if m is None:
        return None
    text = m.group(1).replace(",", ".")
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        return None  # looks like a date, is not one (month 13): an undated line


def _notes(tally: Tally, fresh: bool, age: timedelta, window: str, cut: bool) -> list[str]:
    notes = []
    if tally.earlier:
        notes.append(f"{tally.earlier} matching record(s) before the window, not counted")
    if tally.undated:
        changed = f"the file last changed {span(age.total_seconds())} ago"
        verdict = "counted" if fresh else "not counted"
        where = "within" if fresh else "before"
        notes.append(
            f"{len(tally.undated)} matching undated line(s) or traceback(s) {verdict}: "
            f"{changed}, {where} the {window} window"
        )
    if cut:
        notes.append(f"only the last {MAX_BYTES // (1024 * 1024)} MiB of the file were read")
    return notes


def _shown(counted: list[Record]) -> list[str]:
    """The newest counted records' first lines, redacted (logs may print secrets)."""
    if not counted:
        return []
    redact = Redactor.from_environment()
    newest = counted[-SHOWN:]
    return ["latest:"] + [f"  {redact(r.lines[0])[:200]}" for r in newest]


# A /metrics page -------------------------------------------------------------------------------


def metric_item(spec: HealthErrors, index: int) -> Item:
    assert spec.metrics_url is not None
    url = spec.metrics_url
    if not spec.metric:
        key = f"health.errors[{index}].metric"
        return _item(spec, "unknown", f"{key} is not set: name the metric to read at {url}")
    try:
        name, wanted = prometheus.selector(spec.metric)
    except ValueError as e:
        return _item(spec, "unknown", f"health.errors[{index}].metric = {spec.metric!r}: {e}")
    try:
        page = prometheus.parse(fetch(url))
    except (OSError, ValueError) as e:
        return _item(spec, "unknown", f"could not read {url}: {_reason(e)}")
    return _reading(spec, page, name, wanted)


def fetch(url: str) -> str:
    request = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    with urllib.request.urlopen(request, timeout=METRICS_TIMEOUT) as response:
        body: bytes = response.read(MAX_BYTES)
    return body.decode("utf-8", "replace")


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"it answered {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    if isinstance(e, TimeoutError):
        return f"no answer within {METRICS_TIMEOUT:g}s"
    return str(e)


def _reading(spec: HealthErrors, page: prometheus.Page, name: str, wanted: dict[str, str]) -> Item:
    """The sum of the samples that match (a metric named without labels adds up every series)."""
    found = [s for s in page.samples if s.name == name and s.has(wanted)]
    url = spec.metrics_url
    if not found:
        names = sorted({s.name for s in page.samples})
        listed = ", ".join(names[:15]) + (" ..." if len(names) > 15 else "")
        return _item(spec, "unknown", f"no sample of {spec.metric} at {url}", f"there: {listed}")
    value = sum(s.value for s in found)
    if math.isnan(value):
        return _item(spec, "unknown", f"{spec.metric} at {url} is NaN (no data)")
    state: State = "attention" if value > spec.threshold else "ok"
    summary = f"{spec.metric} = {value:g} at {url} (threshold {spec.threshold:g})"
    series = [f"{s.name}{dict(s.labels) or ''} {s.value:g}" for s in found[:10]]
    if page.type_of(name) == "counter":
        series.append("a counter counts since the process started, not over the window")
    return _item(spec, state, summary, "\n".join(series))
