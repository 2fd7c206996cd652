"""Any command: lines shaped `path:line: message` become failures; otherwise the exit code speaks."""

from __future__ import annotations

import re
from pathlib import Path

from jackline import safeio
from jackline.models import Failure
from jackline.proc import Completed

_LINE = re.compile(r"^(?P<file>[\w./-]+\.\w+):(?P<line>\d+):(?:\d+:?)?\s*(?P<msg>.+)$")


def parse(check: str, done: Completed, report: Path, workspace: Path) -> list[Failure]:
    failures = []
    for line in done.output.splitlines():
        m = _LINE.match(line.strip())
        # A file of the workspace, reached through no link (the check chose what it printed).
        if m and safeio.is_file(workspace, m["file"].removeprefix("./")):
            failures.append(Failure(check, m["msg"].strip(), m["file"], int(m["line"])))
    return failures[:200]
