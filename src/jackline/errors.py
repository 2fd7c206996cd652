"""The one error tree. Every error a person can act on is a `JacklineError`.

    JacklineError                 exit 1, printed as "Error: ..." with no traceback
    ├── ConfigError               exit 2: jackline.toml is unreadable or invalid (a line a problem)
    ├── NotFound                  a run, agent, blueprint or repository that does not exist
    ├── Refused                   a verb that policy does not allow now (self-approval, dirty main)
    │   ├── WrongState            a verb the run or release is not in the state for (HTTP 409)
    │   │   └── Conflict          a branch and a main that moved changed the same lines
    │   └── Invalid               input that says too little or the wrong thing (HTTP 422)
    ├── CommandFailed             a harness-side command failed (git, set-up); carries the four parts
    ├── WorkspaceLost             a run's workspace is on no machine here and cannot be made again
    └── Interrupted               exit 130: Ctrl-C while runs were driven; names them, and the way on

Anything else that escapes is a bug: the CLI exits 70 (EX_SOFTWARE, sysexits.h) and writes the
traceback to the log, not the screen. 70 rather than a small number because the small ones are
outcomes (`EXIT_CODES`: 3 blocked, 4 over budget), and a script must never read a crash of
Jackline as a run's verdict. Outcomes such as a failing check are data (`CheckResult.passed`),
not exceptions. Each error has a `kind`, the name `--json` gives it.
"""

from __future__ import annotations

from jackline.models import Status


class JacklineError(Exception):
    exit_code = 1
    kind = "error"


class ConfigError(JacklineError):
    exit_code = 2  # as a usage error: the invocation, not the run, is wrong
    kind = "config_error"

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))

    @classmethod
    def told(cls, message: str) -> ConfigError:
        """The error a message of one says (`path: problem` a line), as a server sends it."""
        path = message.partition(": ")[0]
        problems = [line.removeprefix(f"{path}: ") for line in message.splitlines()]
        return cls(path, problems)


class NotFound(JacklineError):
    kind = "not_found"


class Refused(JacklineError):
    kind = "refused"


class WrongState(Refused):
    """A verb its run or release is not in the state for: a decision on a run that is not
    awaiting review, or made on a head it has moved on from; a go for a release that waits for
    none. Asking again later may work; asking as someone else would not change it."""

    kind = "wrong_state"


class Invalid(Refused):
    """Input that cannot be taken as given: a request for changes without words, an
    acceptance without a reason, a commit that is not on main."""

    kind = "invalid"


class Conflict(WrongState):
    """A merge refused because `main` moved and changed the lines the branch changed."""

    kind = "conflict"

    def __init__(self, main: str, branch: str, files: list[str]) -> None:
        self.main = main
        self.branch = branch
        self.files = files
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        super().__init__(f"{main} moved and {branch} conflicts with it in {shown}")


class CommandFailed(JacklineError):
    """A command the harness itself needed failed. Renders the command, exit code, stdout, stderr."""

    kind = "command_failed"

    def __init__(self, argv: list[str] | str, code: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(render_failure(argv, code, stdout, stderr))


class WorkspaceLost(JacklineError):
    """A step needs the run's workspace, which is not this run's on this machine, and the work
    it would be made again from was not kept (too large, or it held a secret) or cannot be
    applied. The run fails with this as its reason: nothing is made up in its place."""

    kind = "workspace_lost"


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


BUG = 70
"""The exit code of an unexpected failure: EX_SOFTWARE, "an internal software error"."""

EXIT_CODES: dict[str, int] = {
    Status.AWAITING_REVIEW: 0,
    Status.MERGED: 0,
    Status.FAILED: 1,
    Status.REJECTED: 1,
    Status.CANCELLED: 1,
    Status.BLOCKED: 3,
    Status.OVER_BUDGET: 4,
    Status.INTERRUPTED: 130,
}
"""The exit code of a command that drives a run (run, resume, approve, request-changes, reject):
how the run rests. A status not named here (a run still queued or running elsewhere) is 0."""


class Interrupted(JacklineError):
    """Ctrl-C while this process drove runs (`run_ids`): the CLI names them and what to do next
    (resume or cancel). `detached`: the runs go on elsewhere (`where`: a server, or team mode's
    workers), only following stopped. An error of ours, not a KeyboardInterrupt: the CLI's
    framework turns those into a bare exit."""

    exit_code = 130
    kind = Status.INTERRUPTED

    def __init__(
        self, run_ids: list[str], detached: bool = False, where: str = "on the server"
    ) -> None:
        self.run_ids = run_ids
        self.detached = detached
        self.where = where
        super().__init__(", ".join(run_ids))
