"""mypy's default output: `path:line: error: message  [code]`."""

from __future__ import annotations

import re
from pathlib import Path

from jackline.models import Failure
from jackline.proc import Completed

_LINE = re.compile(
    r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?:\d+:)? error: (?P<msg>.*?)(?:\s+\[(?P<code>[\w-]+)\])?$"
)


def parse(check: str, done: Completed, report: Path, workspace: Path) -> list[Failure]:
    failures = []
    for line in done.output.splitlines():
        m = _LINE.match(line.strip())
        if m:
            failures.append(Failure(check, m["msg"], m["file"], int(m["line"]), rule=m["code"]))
    return failures
