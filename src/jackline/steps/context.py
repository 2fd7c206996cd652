"""The context every step of a run loads: its record, config, redaction, audit log and sandbox."""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from jackline import config as cfg
from jackline import git as g
from jackline import paths, proc, safeio, sandbox
from jackline.events import Kind
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.models import (
    AgentRound,
    Run,
)
from jackline.sandbox import Jail
from jackline.sandbox import proxy as net
from jackline.stepcontext import SecretRef, StepContext
from jackline.store import Store
from jackline.workspaces import AGENT_DIR, services


class RunContext(StepContext[Run]):
    """Everything one step needs about its run, loaded fresh in whichever process runs it."""

    started = Kind.SUBMITTED

    def __init__(self, run_id: str, store: Store | None = None, agent: str | None = None) -> None:
        self._agent = agent  # a blueprint's step may name its own
        self.checked = False
        """Whether the workspace is known to be this run's on this machine: prepare made it, or
        `moving.working` found (or made) it. Until then `ws` is refused."""
        super().__init__(run_id, store)

    def _load(self, record_id: str) -> Run:
        return self.store.get_run(record_id)

    def _save(self, **changes: Any) -> Run:
        return self.store.update_run(self.current.id, **changes)

    @property
    def run(self) -> Run:
        return self.current

    @run.setter
    def run(self, run: Run) -> None:
        self.current = run

    def announce(self, event: str, **data: Any) -> None:
        """Tell the surfaces (Slack, the pull request, the issue that started the run) with the
        run as it is now; one that fails is recorded in the run's log, never fatal."""
        from jackline import notify

        problems = notify.announce(event, self.config, {"run": asdict(self.run), **data})
        if problems:
            self.record(Kind.ANNOUNCE_FAILED, event=event, problems=problems)

    @property
    def agent_name(self) -> str:
        return self._agent or self.run.agent

    @property
    def agent_config(self) -> cfg.AgentConfig:
        return self.config.agents[self.agent_name]

    def _secret_refs(self) -> Iterator[SecretRef]:
        for name, ref in self.agent_config.secrets.items():
            yield name, ref, f"jackline.toml: agents.{self.agent_name}.secrets.{name}"

    def _redactor(self) -> Redactor:
        found = {f"found-secret-{i}": v for i, v in enumerate(sorted(self.found_secrets()), 1)}
        return Redactor.from_environment({**self._secrets(strict=False), **found})

    @property
    def _found_file(self) -> Path:
        # In the run's folder, which no sandboxed command can write: the agent does not choose
        # what the handoff hides. The one place under JACKLINE_HOME that holds a found secret
        # (the workspace holds it anyway, and is kept for a person to clean); 0600.
        return self.dir / "found-secrets.json"

    def found_secrets(self) -> set[str]:
        """Secret values the scans found in this run's work, for redaction."""
        f = self._found_file
        return set(json.loads(f.read_text())) if f.exists() else set()

    def remember_secrets(self, values: set[str] | frozenset[str]) -> None:
        """Redact these values from everything this run stores from now on."""
        f = self._found_file
        new = set(values) - self.found_secrets()
        if not new:
            return
        f.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(sorted(self.found_secrets() | new)))
        os.replace(f.with_suffix(".tmp"), f)
        self.redact = self._redactor()
        self.audit = AuditLog(self.store, self.redact)

    def known_secrets(self) -> list[str]:
        """The values the run's secret references resolve to."""
        return list(self._secrets(strict=False).values())

    @property
    def ws(self) -> Path:
        """The run's workspace, once it is known to be this run's here: a step that works in it
        takes its context from `moving.working`, which makes it again where it is not."""
        assert self.run.workspace, "prepare has not run"
        assert self.checked, "the workspace was not checked: take the context from moving.working"
        return Path(self.run.workspace)

    @property
    def dir(self) -> Path:
        return paths.run_dir(self.run.id)

    def env(self, with_secrets: bool = False) -> dict[str, str]:
        """The harness's environment cut down to an allowlist (`[sandbox] env` adds names);
        the agent gets back only the secrets its config declares."""
        env = self.scrubbed_env()
        env.update(services.environment(services.running(self.ws) if self.run.workspace else []))
        if with_secrets:
            env.update(self._secrets(strict=True))
        return env

    def jail(
        self, network: bool = False, proxy: Path | None = None, fresh_git: bool = True
    ) -> Jail:
        """The sandbox for a command of this run (see `sandbox.jail_for`), with the harness's
        inbox shown read-only where the agent contract says it is."""
        jail = sandbox.jail_for(self.config.sandbox, self.ws, network, proxy, fresh_git)
        if self.config.sandbox.mode != "bubblewrap":
            return jail
        binds = []
        for name in INBOX_FILES:
            if (self.inbox / name).exists():
                rel = AGENT_DIR / name
                safeio.mount_point(self.ws, rel, folder=(self.inbox / name).is_dir())
                binds.append((self.inbox / name, self.inside / rel))
        return replace(jail, spec=replace(jail.spec, ro_binds=(*jail.spec.ro_binds, *binds)))

    def services(self) -> list[services.Service]:
        """The workspace's services, started again if they died (a reboot, say)."""
        return services.ensure(self.ws, self.config) if self.run.workspace else []

    @contextmanager
    def sandboxed(self, step: str, fresh_git: bool = True) -> Iterator[Jail]:
        """The sandbox for a step's commands, with what they may reach while they run: the
        workspace's services on the sandbox's loopback, and the allowlisting proxy if
        `[sandbox] allow_network` names hosts (every connection it allows or refuses goes to
        the audit log)."""
        with self._proxy(step) as proxy:
            if self.config.sandbox.mode != "bubblewrap":
                yield self.jail(proxy=proxy, fresh_git=fresh_git)
                return
            with services.relays(self.services()) as relayed:
                jail = self.jail(proxy=proxy, fresh_git=fresh_git)
                yield replace(jail, spec=replace(jail.spec, services=relayed))

    @contextmanager
    def _proxy(self, step: str) -> Iterator[Path | None]:
        box = self.config.sandbox
        if not box.allow_network or box.mode != "bubblewrap":
            yield None
            return
        events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        where = Path(tempfile.mkdtemp(prefix="jl-net-"))  # a socket path must be short
        try:
            with net.Proxy(where / "proxy.sock", box.allow_network, on_event=events.put):
                yield where / "proxy.sock"
        finally:
            shutil.rmtree(where, ignore_errors=True)
            while not events.empty():
                event = events.get()
                event.pop("kind", None)
                self.record(Kind.NETWORK, step=step, **event)

    @property
    def inside(self) -> Path:
        """Where the workspace appears to the commands run in it: a fixed path in the sandbox."""
        return sandbox.INSIDE if self.config.sandbox.mode == "bubblewrap" else self.ws

    def seen(self, path: Path) -> Path:
        """A path in the workspace as the commands run in it see it."""
        return self.inside / path.relative_to(self.ws)

    @property
    def inbox(self) -> Path:
        """Where the harness leaves the brief, feedback, policy and context for the agent: a
        folder of the run's, outside the workspace, shown read-only inside the sandbox at
        `AGENT_DIR` (see `jail`). Nothing the agent did can make a write here land elsewhere."""
        return self.dir / "inbox"

    @property
    def private(self) -> Path:
        """The agent's own area in the workspace (`AGENT_DIR`: never committed), where programs
        keep their state. Hostile: the harness writes here only through `safeio`."""
        return self.ws / AGENT_DIR

    def given(self, name: str) -> Path:
        """A file of the inbox as the agent's commands see it: at `AGENT_DIR` in the workspace
        (bound read-only there in the sandbox; a copy, unsandboxed)."""
        return self.inside / AGENT_DIR / name

    def hand_over(self, name: str, text: str | None) -> None:
        """Write (or, with None, remove) a file of the inbox; unsandboxed, the agent reads it
        in the workspace, where it is copied without following any link."""
        target = self.inbox / name
        if text is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if name in INBOX_TEXTS:
            self._keep_in_inbox(name, text)
        if self.config.sandbox.mode != "bubblewrap" and self.run.workspace:
            if text is None:
                safeio.remove(self.ws, AGENT_DIR / name)
            else:
                safeio.write_text(self.ws, AGENT_DIR / name, text)

    def _kept_inbox(self) -> dict[str, str]:
        data = self.store.get_artifact(self.run.id, INBOX_KEPT)
        return dict(json.loads(data)) if data else {}

    def _keep_in_inbox(self, name: str, text: str | None) -> None:
        """Keep what the inbox holds in the store as well (redacted, as every stored byte is):
        a worker on another machine that takes the run over has no run folder of this one's."""
        texts = self._kept_inbox()
        if text is None:
            texts.pop(name, None)
        else:
            texts[name] = self.redact(text)
        self.store.put_artifact(self.run.id, INBOX_KEPT, json.dumps(texts).encode())

    def restore_inbox(self) -> list[str]:
        """Write back the inbox's texts this machine lacks, from the store; the names written."""
        texts = self._kept_inbox()
        missing = [n for n in INBOX_TEXTS if n in texts and not (self.inbox / n).exists()]
        for name in missing:
            (self.inbox / name).parent.mkdir(parents=True, exist_ok=True)
            (self.inbox / name).write_text(texts[name])
        return missing

    def command(
        self,
        step: str,
        command: str | list[str],
        exit_code: int,
        duration: float,
        tail: str,
        **extra: Any,
    ) -> None:
        """Record one command (set-up, agent or check) in the audit log, in one shape, and
        what the run keeps of it: the time it took, and the agent's latest round."""
        kept = self.record(
            Kind.COMMAND,
            step=step,
            command=command if isinstance(command, str) else " ".join(command),
            exit_code=exit_code,
            duration=round(duration, 3),
            tail=tail,
            **extra,
        )
        self.run = self.store.add_to_run(self.run.id, worked_seconds=kept["duration"])
        if step == "agent":
            self.update(last_agent=json.dumps(kept, sort_keys=True))

    def redacted(self, round_no: int, count: int, where: str) -> None:
        """Record values redacted from what the agent printed, and count them on the run."""
        self.record(Kind.REDACTED, round=round_no, count=count, where=where)
        self.run = self.store.add_to_run(self.run.id, redacted=count)

    def reverted(self, round_no: int, paths: list[str]) -> None:
        """Record the agent's writes outside `[scope]` reverted, and keep their paths on the run."""
        self.record(Kind.SCOPE, round=round_no, reverted=paths)
        self.update(reverted=sorted({*self.run.reverted, *paths}))


INBOX_FILES = ("brief.md", "feedback.md", "policy.json", "context.json", "bin")
INBOX_TEXTS = ("brief.md", "feedback.md", "policy.json", "context.json")
"""The inbox's files the harness writes as text (`bin` is the git wrapper, installed anew)."""
INBOX_KEPT = "work/inbox.json"


def redact_file(ctx: RunContext, path: Path) -> None:
    """Redact a log the harness kept (in the run's folder), read and written without following
    a link: a log that a command could have swapped for one must not become a way to read or
    rewrite a host file. The redacted log is kept in the store too, under its path in the
    run's folder (`round-1/test.log`)."""
    text = safeio.read_text(path.parent, path.name, proc.LOG_LIMIT)
    if text is not None:
        text = ctx.redact(text)
        safeio.write_text(path.parent, path.name, text)
        # Kept in the store as well, where a server on another machine reads it.
        ctx.store.put_artifact(ctx.run.id, path.relative_to(ctx.dir).as_posix(), text.encode())


def worked(ctx: RunContext) -> float:
    """Seconds the run's commands (set-up, agent, checks) have taken so far."""
    return ctx.run.worked_seconds


def remove_nested_gitdirs(ws: Path) -> list[str]:
    """The `.git` of each repository nested in the workspace, removed (never through a link);
    the folders where one was."""
    return [rel for rel in g.embedded_repositories(ws) if safeio.remove(ws, f"{rel}/.git")]


@dataclass(frozen=True)
class AgentCommand:
    """The agent's command of one round, as its `command` event recorded it."""

    measured: AgentRound
    problem: str | None
    """What was wrong with the round, as recorded then (`AgentRound.problem`)."""
    event: dict[str, object]
    """The event's data: a round's event repeats it (`agent`), the handoff and `show` read it."""


def last_agent(ctx: RunContext, round_no: int) -> AgentCommand | None:
    """The agent's command of round `round_no` as recorded (the latest, if it ran again)."""
    event = json.loads(ctx.run.last_agent or "null") or {}
    if event.get("round") != round_no:
        return None
    return AgentCommand(agent_round(event), event.get("problem"), event)


def agent_round(event: dict[str, Any]) -> AgentRound:
    """The agent's round back from its recorded command (see `agent`)."""
    return AgentRound(
        event["exit_code"],
        bool(event.get("timed_out")),
        int(event.get("timeout") or 0),
        changed=bool(event.get("changed", True)),
        left_change=bool(event.get("left_change", True)),
        tail=str(event.get("tail") or ""),
    )
