"""ruff's `--output-format=json`: a list of diagnostics with code, message, file and location."""

from __future__ import annotations

import json
from pathlib import Path

from jackline.checks import plain
from jackline.models import Failure
from jackline.proc import Completed


def parse(check: str, done: Completed, report: Path, workspace: Path) -> list[Failure]:
    start = done.output.find("[")
    try:
        items = json.loads(done.output[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list):
        return plain.parse(check, done, report, workspace)
    failures = []
    for item in items:
        filename = str(item.get("filename", ""))
        try:
            filename = str(Path(filename).resolve().relative_to(workspace.resolve()))
        except ValueError:
            pass
        location = item.get("location") or {}
        failures.append(
            Failure(
                check=check,
                message=str(item.get("message", "")),
                file=filename or None,
                line=location.get("row"),
                rule=item.get("code"),
            )
        )
    return failures
