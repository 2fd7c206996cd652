"""Checks: the project's own commands, their output read into `Failure`s.

Parsers are small modules picked by name (`parser = "junit"` in jackline.toml). A check passes
when its command exits 0; the parser only explains a failure, it never turns one into a pass.

A check is the workspace's code, as hostile as the agent: it writes its report into a fresh
folder of its own (the one folder outside the workspace it may write) that holds nothing else,
and the harness's log of it lies beside that folder, where the check cannot reach. The report
is read without following a link and within a size bound (`junit.LIMIT`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from jackline import proc
from jackline.checks import junit, mypy, plain, ruff_json
from jackline.config import CheckConfig
from jackline.errors import NotFound
from jackline.models import CheckResult, Failure, last_line
from jackline.sandbox import Jail

Parser = Callable[[str, proc.Completed, Path, Path], list[Failure]]
PARSERS: dict[str, Parser] = {
    "junit": junit.parse,
    "ruff-json": ruff_json.parse,
    "mypy": mypy.parse,
    "plain": plain.parse,
}


def parser(name: str) -> Parser:
    if name not in PARSERS:
        raise NotFound(f"unknown check parser {name!r}; known: {', '.join(PARSERS)}")
    return PARSERS[name]


def run_check(
    name: str,
    check: CheckConfig,
    workspace: Path,
    env: Mapping[str, str],
    out_dir: Path,
    jail: Jail | None = None,
) -> CheckResult:
    folder = report_folder(out_dir, name)
    report = report_file(out_dir, name)
    command = fill_report(check.command, report)
    if jail is not None:  # the report is written from inside the sandbox
        jail = Jail(jail.sandbox, replace(jail.spec, writable=(*jail.spec.writable, folder)))
    done = proc.run(command, workspace, env, out_dir / f"{name}.log", check.timeout, jail=jail)
    failures: list[Failure] = []
    tail = done.tail()
    explained = True
    if done.exit_code != 0:
        failures = parser(check.parser)(name, done, report, workspace)
        explained = bool(failures)
        if done.timed_out:
            failures.insert(0, Failure(name, f"timed out after {check.timeout}s"))
        if not failures:
            failures = [Failure(name, _exited(done.exit_code, tail))]
        if jail is not None and jail.spec.mount_at is not None:
            failures = [_relative(f, jail.spec.mount_at) for f in failures]
    # Shown as configured: `{report}` reads better than a path under ~/.jackline.
    shown = check.command if isinstance(check.command, str) else " ".join(check.command)
    return CheckResult(
        name=name,
        passed=done.exit_code == 0,
        exit_code=done.exit_code,
        duration=done.duration,
        command=shown,
        failures=tuple(failures),
        output_tail=tail,
        summary=_summary(done.exit_code, failures),
        dropped=done.dropped,
        explained=explained,
    )


def changed_the_work(result: CheckResult, changed: list[str]) -> CheckResult:
    """A check that modified or deleted files of the agent's fails, whatever it exited: what it
    judged is not what it left, and its rewrite (a linter's fix, a formatter) is not the agent's
    work. The harness has put the agent's files back; the agent makes the change itself."""
    said = Failure(
        result.name,
        f"`{result.name}` changed files: {listed(changed)}; a check must not change the work: "
        "make that change yourself (run the command) and leave the tree as the check finds it",
    )
    failures = (said, *result.failures)
    return replace(
        result,
        passed=False,
        failures=failures,
        summary=f"changed {len(changed)} file{'s' if len(changed) != 1 else ''}"
        + ("" if result.passed else f"; {result.summary}"),
    )


def listed(paths: list[str], n: int = 10) -> str:
    """The first `n` paths, and how many more."""
    return ", ".join(paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _exited(code: int, tail: str) -> str:
    """The failure of a check nothing parsed: its exit code and its last line, which for a
    crash is usually the cause (`ModuleNotFoundError: No module named 'ruff'`); the whole tail
    is shown beside it."""
    last = last_line(tail)
    if not last:
        return f"exited {code} and printed nothing"
    return f"exited {code}: {last[:200]}"


def report_file(out_dir: Path, name: str) -> Path:
    """Where the check `name` of the round whose folder is `out_dir` writes its `{report}`."""
    return out_dir / "reports" / name / f"{name}.report"


def report_folder(out_dir: Path, name: str) -> Path:
    """The check's own folder for its report, made empty: what an earlier run of the check
    left there (a link, say) is gone."""
    folder = out_dir / "reports" / name
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _relative(failure: Failure, inside: Path) -> Failure:
    """A path the check printed from inside the sandbox, as a path in the workspace."""
    prefix = f"{inside}/"
    if failure.file and failure.file.startswith(prefix):
        return replace(failure, file=failure.file[len(prefix) :])
    return failure


def fill_report(command: str | list[str], report: Path) -> str | list[str]:
    if isinstance(command, str):
        return command.replace("{report}", str(report))
    return [part.replace("{report}", str(report)) for part in command]


def _summary(code: int, failures: list[Failure]) -> str:
    if code == 0:
        return "passed"
    return f"{len(failures)} failure{'s' if len(failures) != 1 else ''}"
