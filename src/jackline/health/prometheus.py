"""A reader for Prometheus's text exposition format (version 0.0.4, which OpenMetrics text also
parses as): enough to read one metric, with its labels, from a `/metrics` page.

`prometheus_client` has a parser, but it is not among Jackline's dependencies, and the format is
small: `name{label="value",...} value [timestamp]`, with `#` lines for HELP and TYPE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}

Labels = dict[str, str]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def has(self, wanted: Labels) -> bool:
        """Whether every wanted label has the wanted value (other labels may be anything)."""
        own = dict(self.labels)
        return all(own.get(k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Page:
    samples: tuple[Sample, ...]
    types: dict[str, str]
    """Metric family -> `counter`, `gauge`, `histogram`, `summary`, `untyped`."""

    def type_of(self, name: str) -> str | None:
        for family in (name, name.removesuffix("_total")):
            if family in self.types:
                return self.types[family]
        return None


def parse(text: str) -> Page:
    """Every sample on the page; a malformed line is an error naming its line number, as
    Prometheus itself rejects the whole scrape."""
    samples: list[Sample] = []
    types: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        if not line:
            continue
        try:
            samples.append(_sample(line))
        except ValueError as e:
            raise ValueError(f"line {number}: {e}: {line[:120]!r}") from None
    return Page(tuple(samples), types)


def selector(text: str) -> tuple[str, Labels]:
    """`http_errors_total{code="500"}` as a name and the labels it requires."""
    try:
        name, labels, rest = _series(text.strip())
        if rest.strip():
            raise ValueError(f"unexpected {rest.strip()!r} after the metric")
    except ValueError as e:
        hint = 'write `name` or `name{label="value",...}` (only `=` matches)'
        raise ValueError(f"{e}; {hint}") from None
    return name, labels


def _sample(line: str) -> Sample:
    name, labels, rest = _series(line)
    fields = rest.split()
    if not fields or len(fields) > 2:
        raise ValueError("expected a value (and an optional timestamp) after the series")
    try:
        value = float(fields[0])
    except ValueError:
        raise ValueError(f"{fields[0]!r} is not a number") from None
    return Sample(name, tuple(sorted(labels.items())), value)


def _series(text: str) -> tuple[str, Labels, str]:
    m = _NAME.match(text)
    if m is None:
        raise ValueError("no metric name")
    at = m.end()
    if text[at : at + 1] != "{":
        return m.group(), {}, text[at:]
    labels, at = _labels(text, at + 1)
    return m.group(), labels, text[at:]


def _labels(text: str, at: int) -> tuple[Labels, int]:
    """The labels from just after `{` to the matching `}`; returns them and the position after."""
    labels: Labels = {}
    while True:
        at = _skip(text, at)
        if text[at : at + 1] == "}":
            return labels, at + 1
        m = _LABEL.match(text, at)
        if m is None:
            raise ValueError(f"expected a label name at column {at + 1}")
        at = _expect(text, _expect(text, m.end(), "=", m.group()), '"', m.group())
        value, at = _quoted(text, at)
        labels[m.group()] = value
        at = _skip(text, at)
        if text[at : at + 1] == ",":
            at += 1
        elif text[at : at + 1] != "}":
            raise ValueError(f"expected , or }} at column {at + 1}")


def _quoted(text: str, at: int) -> tuple[str, int]:
    """A label value from just after its opening quote; returns it and the position after."""
    out: list[str] = []
    while at < len(text):
        ch = text[at]
        if ch == '"':
            return "".join(out), at + 1
        if ch == "\\" and at + 1 < len(text):
            out.append(_ESCAPES.get(text[at + 1], "\\" + text[at + 1]))
            at += 2
            continue
        out.append(ch)
        at += 1
    raise ValueError("a label value is not closed with a quote")


def _expect(text: str, at: int, char: str, label: str) -> int:
    """The position just past `char`, after any spaces; an error if something else stands there."""
    at = _skip(text, at)
    if text[at : at + 1] != char:
        raise ValueError(f'expected ="value" after label {label!r}')
    return at + 1


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t":
        at += 1
    return at
