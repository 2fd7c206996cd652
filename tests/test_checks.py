"""Parsers read real tool output into failures with file, line, rule and message."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from jackline.checks import run_check
from jackline.config import CheckConfig


def run(tmp_path: Path, command: str, parser: str):  # type: ignore[no-untyped-def]
    return run_check(
        "c", CheckConfig(command=command, parser=parser), tmp_path, os.environ, tmp_path / "out"
    )


def test_junit_failures_name_the_test_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 1 + 1 == 3\n"
    )
    result = run(
        tmp_path,
        f"{sys.executable} -m pytest -q -p no:cacheprovider --junitxml={{report}}",
        "junit",
    )
    assert not result.passed and result.exit_code == 1
    (failure,) = result.failures
    assert failure.test == "test_x::test_bad"
    assert (failure.file, failure.line) == ("test_x.py", 6)
    assert "assert" in failure.message


def test_ruff_json_gives_code_and_location(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import os\n")
    result = run(
        tmp_path, f"{sys.executable} -m ruff check --no-cache --output-format=json .", "ruff-json"
    )
    assert not result.passed
    (failure,) = result.failures
    assert (failure.file, failure.line, failure.rule) == ("m.py", 1, "F401")


def test_plain_output_and_exit_code_decide(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x\n")
    result = run(tmp_path, "echo 'a.py:1: something is off'; exit 2", "plain")
    assert not result.passed and result.failures[0].where() == "a.py:1"
    silent = run(tmp_path, "exit 4", "plain")
    assert not silent.passed and "exited 4" in silent.failures[0].message
    assert run(tmp_path, "true", "plain").passed


def test_a_check_that_crashes_before_its_report_still_fails(tmp_path: Path) -> None:
    result = run(tmp_path, "echo boom >&2; exit 3", "junit")
    assert not result.passed and result.failures
    assert "boom" in result.output_tail


def test_a_check_past_its_timeout_fails(tmp_path: Path) -> None:
    result = run_check(
        "slow", CheckConfig(command="sleep 30", timeout=1), tmp_path, os.environ, tmp_path / "o"
    )
    assert not result.passed and "timed out" in result.failures[0].message


def test_a_report_that_is_a_link_to_a_host_file_is_not_read(tmp_path: Path) -> None:
    host = tmp_path / "host.xml"
    host.write_text(
        '<testsuite><testcase name="t"><failure message="HOST-MARKER">x</failure>'
        "</testcase></testsuite>\n"
    )
    result = run(tmp_path, f"ln -s {host} {{report}}; exit 1", "junit")
    assert not result.passed and "HOST-MARKER" not in repr(result.failures)
    assert host.read_text().startswith("<testsuite>")


def test_each_check_gets_a_fresh_folder_that_holds_only_its_report(tmp_path: Path) -> None:
    command = "ls -A $(dirname {report}); touch $(dirname {report})/left-behind"
    for _ in range(2):
        result = run(tmp_path, command, "plain")
        assert result.passed
        assert result.output_tail.splitlines()[1:] == []  # nothing there: no log, no leftovers
    assert (tmp_path / "out" / "c.log").is_file()


def test_a_failure_in_a_file_reached_through_a_link_is_not_taken_as_the_workspaces(
    tmp_path: Path,
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "a.py").write_text("x\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "linked").symlink_to(tmp_path / "elsewhere")
    result = run(ws, "echo 'linked/a.py:1: off'; exit 1", "plain")
    assert result.failures[0].file is None
