"""The one error tree. Every error a person can act on is a `JacklineError`.

    JacklineError                 exit 1, printed as "Error: ..." with no traceback
    ├── ConfigError               jackline.toml is unreadable or invalid (one line per problem)
    ├── NotFound                  a run, agent, blueprint or repository that does not exist
    ├── Refused                   a verb that policy does not allow now (self-approval, dirty main)
    └── CommandFailed             a harness-side command failed (git, set-up); carries the four parts

Anything else that escapes is a bug: the CLI exits 3 and writes the traceback to the log, not the
screen. Outcomes such as a failing check are data (`CheckResult.passed`), not exceptions.
"""

from __future__ import annotations


class JacklineError(Exception):
    exit_code = 1


class ConfigError(JacklineError):
    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


class NotFound(JacklineError):
    pass


class Refused(JacklineError):
    pass


class CommandFailed(JacklineError):
    """A command the harness itself needed failed. Renders the command, exit code, stdout, stderr."""

    def __init__(self, argv: list[str] | str, code: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(render_failure(argv, code, stdout, stderr))


def render_failure(
    argv: list[str] | str, code: int, stdout: str, stderr: str, tail: int = 40
) -> str:
    """The one rendering of a failed command: used on the terminal, in the handoff and the log."""
    cmd = argv if isinstance(argv, str) else " ".join(argv)
    parts = [f"command failed (exit {code}): {cmd}"]
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        lines = text.rstrip().splitlines()[-tail:]
        if lines:
            parts.append(f"--- {name} ---\n" + "\n".join(lines))
    return "\n".join(parts)
