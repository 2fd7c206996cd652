"""The MCP server: what an agent may ask Jackline while it works, over stdio.

`jackline mcp --workspace PATH [--run ID]` answers for one workspace. The Claude Code preset
starts it inside the sandbox, where Jackline's home (and with it the store) is hidden: so every
answer comes from the workspace itself and from what the harness left in its private inbox
(`.jackline/run/`): `brief.md`, `feedback.md`, and `context.json` (the run id, the project's
path, the task, the round, the config the run was submitted with, and what each environment
served when the brief was written). Outside a sandbox, where the store is reachable, the live
release is read from it instead.

The tools: `task()`, `rules_for(path)`, `infrastructure()`, `checks()`, `run_check(name)` (one
check, run as the agent's own process: the agent is already in the sandbox) and
`live_release()`. A mistake the agent can fix (an unknown check, a path outside the workspace)
comes back as a tool error naming the value and what would be right. Nothing but the protocol
goes to stdout: a check's output goes to its log in the inbox.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from jackline import config as cfg
from jackline import context, database, paths, safeio, sandbox
from jackline.checks import run_check as run_one_check
from jackline.errors import ConfigError, JacklineError, NotFound, Refused
from jackline.sandbox import Jail
from jackline.workspaces import AGENT_DIR

CONTEXT = "context.json"
"""The file in the inbox the harness writes at hydrate for this server (see the docstring)."""
CHECKS_DIR = "mcp-checks"
"""Where, in the inbox, `run_check` leaves each check's log and report."""
PYCACHE = "pycache/mcp"
"""The checks' bytecode, in the inbox (never committed; beside the harness's own per round)."""
INFRASTRUCTURE = "INFRASTRUCTURE.md"
HIDDEN = (
    "Jackline's store is not visible from inside the sandbox, so the release live now cannot be "
    "read from here."
)
INSTRUCTIONS = (
    "Jackline runs this project's checks after you finish; all must pass. Ask `task` for what "
    "to do and the reviewer's or the checks' feedback, `rules_for` a path before you change it, "
    "`checks` for the checks, and `run_check` to run one and get its failures as data."
)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Served:
    """The workspace the server answers for, and what the harness left in its inbox."""

    root: Path
    run_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    given: Path | None = None
    """The harness's inbox for this workspace: in the run's folder when this server runs on
    the host (found through the store), else where the sandbox shows it (`AGENT_DIR`)."""

    @property
    def inbox(self) -> Path:
        return self.given or self.root / AGENT_DIR

    def config(self) -> cfg.JacklineConfig:
        """The config the run was submitted with (what the harness will check against), else
        the workspace's own jackline.toml."""
        recorded = self.context.get("config")
        if recorded:
            return cfg.from_record(recorded)
        return cfg.load(self.root)

    def relative(self, path: str) -> str:
        """A path the agent gave, relative to the workspace: absolute paths are taken as seen
        from this process or from inside the sandbox; nothing outside the workspace."""
        given = PurePosixPath(path.strip() or ".")
        for base in (PurePosixPath(self.root), PurePosixPath(sandbox.INSIDE)):
            if given.is_absolute() and (given == base or base in given.parents):
                given = given.relative_to(base)
                break
        if given.is_absolute() or ".." in given.parts:
            raise Refused(
                f"path {path!r} is outside the workspace {self.root}; give a path relative to "
                "it, such as `src/app.py`"
            )
        return str(given)


def open_workspace(workspace: Path, run_id: str | None = None) -> Served:
    """The workspace to serve, with the harness's context file if it left one."""
    root = Path(os.path.abspath(workspace))
    if not root.is_dir():
        raise NotFound(f"--workspace {workspace}: no such folder; give a run's workspace")
    inbox = _harness_inbox(root) or root / AGENT_DIR
    found = _read_context(inbox / CONTEXT)
    recorded = found.get("run")
    if run_id and recorded and run_id != recorded:
        raise Refused(
            f"--run {run_id}: the workspace {root} belongs to {recorded} "
            f"(per {AGENT_DIR / CONTEXT}); give that run, or leave --run out"
        )
    return Served(root, run_id or (str(recorded) if recorded else None), found, inbox)


def _harness_inbox(root: Path) -> Path | None:
    """On the host, the run's own inbox: what the workspace holds at `AGENT_DIR` is the agent's
    to write there, and is not believed. Inside the sandbox the store is hidden: None."""
    if not database.present():
        return None
    from jackline.store import Store

    store = Store()
    try:
        run = store.run_in(str(root))
    finally:
        store.close()
    return paths.run_dir(run.id) / "inbox" if run is not None else None


def _read_context(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise ConfigError(
            str(path), [f"not readable JSON ({e}); the harness writes it at hydrate"]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["expected a JSON object"])
    return data


# the tools, as plain functions ---------------------------------------------------------------


def task(served: Served) -> dict[str, Any]:
    """The run's task, its round, and the latest feedback (from the checks or a reviewer)."""
    brief = served.inbox / "brief.md"
    text = served.context.get("task") or _task_from_brief(brief)
    if not text:
        raise NotFound(
            f"no task here: neither {served.inbox / CONTEXT} nor {brief} is there; "
            "--workspace must be a run's workspace"
        )
    feedback = served.inbox / "feedback.md"
    return {
        "run": served.run_id,
        "round": served.context.get("round"),
        "task": text,
        "feedback": feedback.read_text(encoding="utf-8") if feedback.is_file() else None,
        "brief": str(brief) if brief.is_file() else None,
    }


def _task_from_brief(brief: Path) -> str:
    """The `# Task` section of the brief (a workspace hydrated before context.json existed)."""
    if not brief.is_file():
        return ""
    text = brief.read_text(encoding="utf-8")
    head, _, rest = text.partition("# Task\n")
    if not rest:
        return ""
    body, _, _ = rest.partition("\n# ")
    return body.strip()


def rules_for(served: Served, path: str) -> dict[str, Any]:
    """The rules in scope for a path: rule files whose globs match, and AGENTS.md / CLAUDE.md
    along its directory chain."""
    rel = served.relative(path)
    rules = context.select_rules(served.root, [rel])
    return {
        "path": rel,
        "rules": [
            {"source": r.source, "applies_to": list(r.paths) or ["everywhere"], "text": r.text}
            for r in rules
        ],
    }


def infrastructure(served: Served) -> str:
    found = safeio.read_text(served.root, INFRASTRUCTURE, 256_000)
    return found if found is not None else f"This project has no {INFRASTRUCTURE}."


def checks(served: Served) -> dict[str, Any]:
    """The checks the harness runs after each round, and how to run each."""
    config = served.config()
    return {
        "checks": [
            {
                "name": name,
                "command": _shown(check.command),
                "parser": check.parser,
                "timeout": check.timeout,
                "run_yourself": _shown(check.command).replace("{report}", "report.xml"),
            }
            for name, check in config.checks.items()
        ],
        "how": (
            "Call run_check with a name to run that check here and get its failures (file, "
            "line, test, message). The harness runs all of them after you finish."
        ),
    }


def _shown(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)


def run_check(served: Served, name: str) -> dict[str, Any]:
    """Run one check in the workspace: as this process inside the agent's sandbox, else in
    the sandbox `[sandbox]` describes."""
    config = served.config()
    if name not in config.checks:
        known = ", ".join(config.checks) or "none configured"
        raise NotFound(f"no check {name!r} in jackline.toml [checks]; known: {known}")
    out_dir = served.inbox / CHECKS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    jail = _jail(served, config)
    seen = sandbox.INSIDE if jail is not None and jail.spec.mount_at else served.root
    env = dict(os.environ) if jail is None else sandbox.scrub(os.environ, config.sandbox.env)
    env["PYTHONPYCACHEPREFIX"] = str(_fresh_bytecode(served, seen))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the libraries' bytecode is kept, in the inbox
    result = run_one_check(name, config.checks[name], served.root, env, out_dir, jail=jail)
    data = asdict(result)
    data["log"] = str(out_dir / f"{name}.log")
    return data


def _jail(served: Served, config: cfg.JacklineConfig) -> Jail | None:
    """None inside the agent's sandbox (the workspace is at `sandbox.INSIDE`): the check runs
    as the agent would run it. Anywhere else (a person's own agent pointed at a run's
    workspace, say) the check is the agent's to have changed, so it runs sandboxed."""
    if config.sandbox.mode != "bubblewrap" or served.root == sandbox.INSIDE:
        return None
    return sandbox.jail_for(config.sandbox, served.root)


def _fresh_bytecode(served: Served, seen: Path) -> Path:
    """The checks' bytecode folder (as the check sees it, the workspace being at `seen`),
    emptied of the workspace's own modules: Python trusts a cached .pyc whose source kept its
    size and its second of mtime, which an agent's quick edit between two checks often does.
    The libraries' bytecode stays, so the next check starts quickly."""
    cache = served.inbox / PYCACHE
    shutil.rmtree(cache / seen.relative_to(seen.anchor), ignore_errors=True)
    return seen / AGENT_DIR / PYCACHE


def live_release(served: Served) -> dict[str, Any]:
    """What each environment serves now, from the store when this process can see it; else
    what the harness recorded when it wrote the brief."""
    if database.present():
        from jackline import api

        repo = served.context.get("repo") or (
            api.get(served.run_id).repo if served.run_id else str(served.root)
        )
        return {"visible": True, "environments": api.live(Path(repo))}
    answer: dict[str, Any] = {"visible": False, "why": HIDDEN}
    if "live" in served.context:
        answer["when_the_brief_was_written"] = served.context["live"]
    return answer


# the server ----------------------------------------------------------------------------------


def _answers(fn: Callable[P, R]) -> Callable[P, R]:
    """Jackline's own errors reach the agent as tool errors with their message (the SDK hides
    the text of any other exception)."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except JacklineError as e:
            raise ToolError(str(e)) from e

    return call


def server(served: Served) -> MCPServer[Any]:
    """The MCP server with Jackline's tools, answering for `served`."""
    mcp: MCPServer[Any] = MCPServer("jackline", instructions=INSTRUCTIONS, log_level="WARNING")

    @mcp.tool(name="task")
    @_answers
    def task_() -> dict[str, Any]:
        """Your task in this run, the round, and the latest feedback from the checks or a
        reviewer (null in the first round)."""
        return task(served)

    @mcp.tool(name="rules_for")
    @_answers
    def rules_for_(path: str) -> dict[str, Any]:
        """The project's rules in scope for a file or folder (relative to the workspace):
        read them before you change it."""
        return rules_for(served, path)

    @mcp.tool(name="infrastructure")
    @_answers
    def infrastructure_() -> str:
        """The project's INFRASTRUCTURE.md: services, environments, how things are deployed."""
        return infrastructure(served)

    @mcp.tool(name="checks")
    @_answers
    def checks_() -> dict[str, Any]:
        """The checks the harness runs after you finish (all must pass), and their commands."""
        return checks(served)

    @mcp.tool(name="run_check")
    @_answers
    def run_check_(name: str) -> dict[str, Any]:
        """Run one check (a name from `checks`) in the workspace now; returns whether it
        passed and each failure with file, line, test and message."""
        return run_check(served, name)

    @mcp.tool(name="live_release")
    @_answers
    def live_release_() -> dict[str, Any]:
        """The release each environment (staging, production) serves now, where visible: a
        change must keep working with what is live (expand before contract)."""
        return live_release(served)

    return mcp


def serve(workspace: Path, run_id: str | None = None) -> None:
    """Serve the tools over stdio until the client closes the connection."""
    server(open_workspace(workspace, run_id)).run()
