"""ruff's `--output-format=json`: a list of diagnostics with code, message, file and location."""

from __future__ import annotations

import json
import os
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
        filename = _relative(str(item.get("filename", "")), workspace)
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


def _relative(filename: str, workspace: Path) -> str:
    """An absolute path in the workspace as a relative one, worked out from the names alone:
    resolving it would follow the links the check's code may have left."""
    normal = Path(os.path.normpath(filename))
    for root in (workspace, workspace.resolve()):
        if normal.is_relative_to(root):
            return str(normal.relative_to(root))
    return filename
