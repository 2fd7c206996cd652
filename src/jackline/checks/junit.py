"""JUnit XML, as pytest (`--junitxml`), jest-junit and most test runners write it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from jackline import safeio
from jackline.checks import plain
from jackline.models import Failure
from jackline.proc import Completed

LIMIT = 16 << 20
"""Bytes of a report read at most: a longer one is taken as missing (the output is read)."""
_LOCATION = re.compile(r"^([^\s:][^:\n]*\.\w+):(\d+):", re.M)


def parse(check: str, done: Completed, report: Path, workspace: Path) -> list[Failure]:
    root = _read(report)
    if root is None:
        # No report (the runner crashed before writing one, or left a link): read what it
        # printed instead.
        return plain.parse(check, done, report, workspace)
    failures = []
    for case in root.iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            failures.append(_failure(check, case, problem))
    return failures


def passed_tests(report: Path) -> set[str]:
    """The tests the report shows run and passed (named as failures name them): neither failed,
    errored nor skipped. A test that is not in the report did not pass, whatever the exit code
    says (the agent may have deleted it)."""
    root = _read(report)
    if root is None:
        return set()
    return {
        _name(case)
        for case in root.iter("testcase")
        if not any(case.find(tag) is not None for tag in ("failure", "error", "skipped"))
    }


def _name(case: ET.Element) -> str:
    classname = case.get("classname", "")
    name = case.get("name", "")
    return f"{classname}::{name}" if classname else name


def _read(report: Path) -> ET.Element | None:
    """The report's root element: a regular file reached through no link, within `LIMIT`
    (expat refuses entity expansion bombs by itself)."""
    data = safeio.read_bytes(report.parent, report.name, LIMIT + 1)
    if data is None or len(data) > LIMIT:
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        return None


def _failure(check: str, case: ET.Element, problem: ET.Element) -> Failure:
    classname = case.get("classname", "")
    test = _name(case)
    text = problem.text or ""
    lines = text.strip().splitlines()
    message = problem.get("message") or (lines[-1] if lines else problem.tag)
    file, line = case.get("file"), case.get("line")
    found = _LOCATION.findall(text)
    if found:  # the last location in the traceback is where the assertion failed
        file, line = found[-1]
    elif not file and classname:
        file = classname.replace(".", "/") + ".py"
    return Failure(
        check=check,
        message=message.strip()[:500],
        file=file,
        line=int(line) if line else None,
        test=test,
        rule=problem.tag,
    )
