"""The steps of a run as plain functions over a run id: no DBOS, no surface.

`engine.py` wraps each one as a durable step and strings them together as the blueprint says.
Each step reads what it needs from the store and the workspace and returns plain data, so a
step replayed after a crash sees the same world it left.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from jackline import budgets, context, handoff, paths, proc, safeio, sandbox
from jackline import config as cfg
from jackline import git as g
from jackline.agents import Brief, build
from jackline.agents.preset import Preset
from jackline.checks import changed_the_work, junit, listed, report_file, run_check
from jackline.errors import CommandFailed, ConfigError, Conflict, Refused
from jackline.forge import local as forge
from jackline.guard.audit import AuditLog, Event
from jackline.guard.gitwrap import install_wrapper
from jackline.guard.policy import GATES, Policy
from jackline.guard.redact import Redactor, resolve
from jackline.guard.scope import revert_forbidden
from jackline.models import (
    FINAL,
    AgentRound,
    CheckResult,
    Decision,
    Finding,
    Run,
    Transcript,
)
from jackline.review import owner_refusal
from jackline.sandbox import Jail
from jackline.sandbox import proxy as net
from jackline.scans import Change, run_scans, sort
from jackline.scans import secrets as secret_scan
from jackline.store import Store
from jackline.workspaces import AGENT_DIR, Workspace, pool, provider, revive, services
from jackline.workspaces import remove as remove_workspace
from jackline.workspaces import snapshot as snap
from jackline.workspaces.clone import add_excludes, exclude_setup_outputs
from jackline.workspaces.snapshot import SetupFailed


class RunContext:
    """Everything one step needs about its run, loaded fresh in whichever process runs it."""

    def __init__(self, run_id: str, store: Store | None = None) -> None:
        self.store = store or Store()
        self.run: Run = self.store.get_run(run_id)
        submitted = self.store.events(self.run.id, kind="submitted")
        self.config = cfg.from_record(json.loads(submitted[0]["data"])["config"])
        self.agent_config = self.config.agents[self.run.agent]
        self.redact = self._redactor()
        self.audit = AuditLog(self.store, self.redact)
        if self.run.workspace and revive(Path(self.run.workspace)):
            self.record("workspace", revived=self.run.workspace)

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
        assert self.run.workspace, "prepare has not run"
        return Path(self.run.workspace)

    @property
    def dir(self) -> Path:
        return paths.run_dir(self.run.id)

    def update(self, **changes: Any) -> None:
        self.run = self.store.update_run(self.run.id, **changes)

    def record(self, kind: str, /, **data: Any) -> None:
        self.audit.record(self.run.id, kind, **data)

    def _secrets(self, strict: bool) -> dict[str, str]:
        out = {}
        for name, ref in self.agent_config.secrets.items():
            try:
                out[name] = resolve(ref, f"jackline.toml: agents.{self.run.agent}.secrets.{name}")
            except ConfigError:
                if strict:
                    raise
        return out

    def env(self, with_secrets: bool = False) -> dict[str, str]:
        """The harness's environment cut down to an allowlist (`[sandbox] env` adds names);
        the agent gets back only the secrets its config declares."""
        env = sandbox.scrub(os.environ, self.config.sandbox.env)
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
                self.record("network", step=step, **event)

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
        if self.config.sandbox.mode != "bubblewrap" and self.run.workspace:
            if text is None:
                safeio.remove(self.ws, AGENT_DIR / name)
            else:
                safeio.write_text(self.ws, AGENT_DIR / name, text)

    def command(
        self,
        step: str,
        command: str | list[str],
        exit_code: int,
        duration: float,
        tail: str,
        **extra: Any,
    ) -> None:
        """Record one command (set-up, agent or check) in the audit log, in one shape."""
        self.record(
            "command",
            step=step,
            command=command if isinstance(command, str) else " ".join(command),
            exit_code=exit_code,
            duration=round(duration, 3),
            tail=tail,
            **extra,
        )


# What the harness hands the agent in its inbox (see `RunContext.inbox`).
INBOX_FILES = ("brief.md", "feedback.md", "policy.json", "context.json", "bin")


def _redact_file(ctx: RunContext, path: Path) -> None:
    """Redact a log the harness kept, read and written without following a link: a log that a
    command could have swapped for one must not become a way to read or rewrite a host file."""
    text = safeio.read_text(path.parent, path.name, proc.LOG_LIMIT)
    if text is not None:
        safeio.write_text(path.parent, path.name, ctx.redact(text))


# prepare ----------------------------------------------------------------------------------


def prepare(run_id: str) -> dict[str, Any]:
    ctx = RunContext(run_id)
    ctx.update(status="running")
    ctx.record("step", step="prepare")
    mode = ctx.config.sandbox.mode
    if mode == "none":
        ctx.record("warning", message=sandbox.NONE_WARNING)
    try:
        ws, extra = _workspace(ctx)
        started = services.ensure(ws.path, ctx.config)
    except SetupFailed as e:
        reason = f"set-up failed: `{e.argv}` exited {e.code}"
        ctx.update(reason=reason)
        return {"ok": False, "reason": reason}
    except services.ServiceFailed as e:
        reason = str(e).splitlines()[0]
        ctx.record("services", error=ctx.redact(str(e)))
        ctx.update(reason=reason)
        return {"ok": False, "reason": reason}
    if started:
        extra["services"] = services.describe(started)
    ctx.record(
        "workspace",
        path=str(ws.path),
        base=ws.base_sha,
        method=ws.method,
        branch=ws.branch,
        sandbox=mode,
        **extra,
    )
    _arm_guard(ctx, ws.path)
    return {"ok": True, "workspace": str(ws.path), "base": ws.base_sha}


def _workspace(ctx: RunContext) -> tuple[Workspace, dict[str, Any]]:
    """The run's workspace. With set-up under the sandbox: from the warm pool, or made from main's
    snapshot (built first if there is none: the cold start), caught up with main. Otherwise a
    fresh clone, with set-up run in it."""
    repo, main = Path(ctx.run.repo), ctx.config.project.main
    dest = paths.workspaces() / ctx.run.id
    wants_snapshot = ctx.config.workspace.setup or ctx.config.pool.size
    if not wants_snapshot or ctx.config.sandbox.mode != "bubblewrap":
        ws = provider("clone").create(repo, main, ctx.run.branch, dest)
        ctx.update(workspace=str(ws.path), base_sha=ws.base_sha)
        snap.raise_failed(_setup_runner(ctx)(ws.path))
        exclude_setup_outputs(ws.path)
        return ws, {}
    run_setup = _setup_runner(ctx)
    started = time.monotonic()
    taken = pool.take(repo, ctx.run.branch) if ctx.config.pool.size else None
    snapshot_key = None
    if taken is None:
        current = pool.fresh_snapshot(repo, ctx.config, run_setup)
        taken = snap.provider_for(ctx.config.workspace.shared).create_from(
            current, ctx.run.branch, dest
        )
        snapshot_key = current.key
    ws = taken
    ctx.update(workspace=str(ws.path))
    caught = snap.catch_up(ws, repo, main, ctx.config, run_setup)
    ws = replace(ws, base_sha=g.rev(ws.path, "HEAD"))
    ctx.update(base_sha=ws.base_sha)
    if ctx.config.pool.size:
        pool.refill_in_background(repo)
    return ws, {
        "snapshot": snapshot_key or _snapshot_of(ws.path),
        "caught_up": caught,
        "ready_in": round(time.monotonic() - started, 3),
    }


def _setup_runner(ctx: RunContext) -> snap.RunSetup:
    """Set-up for this run (see `snapshot.default_setup`), each command recorded as it starts
    (`setup`, which progress shows: set-up may take a minute) and as it ends, redacted."""

    def watch(number: int, of: int, command: str, done: dict[str, Any] | None) -> None:
        if done is None:
            ctx.record("setup", number=number, of=of, command=command)
            return
        _redact_file(ctx, ctx.dir / f"setup-{number}.log")
        tail = ctx.redact(done["tail"])
        ctx.command(
            "setup", command, done["exit_code"], done["duration"], tail, number=number, of=of
        )

    return snap.default_setup(ctx.config, ctx.dir, watch)


def _snapshot_of(ws: Path) -> str | None:
    record = g.gitdir_path(ws) / snap.PROVENANCE
    return json.loads(record.read_text()).get("key") if record.exists() else None


def _arm_guard(ctx: RunContext, ws: Path) -> None:
    """The in-loop guard: the policy the hook and the git wrapper read and the wrapper itself
    on the agent's PATH, both in the inbox. The walls are elsewhere: the workspace's git
    directory is the harness's, out of the agent's reach (see `git.gitdir_path`); the agent gets
    a git directory of its own (`git.lay_agent_gitdir`)."""
    policy = Policy(
        main=ctx.config.project.main,
        forbidden=list(ctx.config.scope.forbidden),
        gates=list(GATES),
        workspace=str(ctx.inside if ctx.inside != ws else ws.resolve()),
    )
    ctx.hand_over("policy.json", policy.dumps())
    install_wrapper(ctx.inbox / "bin")
    if ctx.config.sandbox.mode != "bubblewrap":
        install_wrapper(ws / AGENT_DIR / "bin")
    agent = build(ctx.agent_config)
    if isinstance(agent, Preset) and agent.private:
        add_excludes(ws, agent.private)  # the preset's rules and settings: never committed


# hydrate, agent, check --------------------------------------------------------------------


def hydrate(run_id: str, round_no: int, feedback: str | None) -> str:
    ctx = RunContext(run_id)
    # A round's commands get the services' variables: started again here where a blocked run
    # stopped them while it waited for a person.
    ctx.services()
    in_play = {*context.paths_named(ctx.run.task, ctx.ws), *ctx.run.paths}
    rules = context.select_rules(ctx.ws, in_play)
    text = context.render_brief(ctx.run.task, ctx.ws, ctx.config, rules, round_no)
    ctx.hand_over("brief.md", text)
    _write_mcp_context(ctx, round_no)
    # Redacted here too: the feedback becomes part of the agent's `{prompt}`, which its log and
    # the audit log keep (a reviewer may paste a secret into their words).
    ctx.hand_over("feedback.md", ctx.redact(feedback) if feedback else None)
    keep = ctx.dir / f"round-{round_no}"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "brief.md").write_text(ctx.redact(text))
    if feedback:
        (keep / "feedback.md").write_text(ctx.redact(feedback))
    ctx.record(
        "hydrate",
        round=round_no,
        rules=[r.source for r in rules],
        paths=sorted(in_play),
        feedback=bool(feedback),
    )
    return str(ctx.inbox / "brief.md")


def _write_mcp_context(ctx: RunContext, round_no: int) -> None:
    """What `jackline mcp` answers from inside the sandbox, where the store is hidden: the run,
    its task and config, and what each environment serves as this round starts."""
    live = {env: ctx.store.live(ctx.run.repo, env) for env in ctx.config.release.environments}
    context_file = {
        "run": ctx.run.id,
        "repo": ctx.run.repo,
        "task": ctx.run.task,
        "round": round_no,
        "config": cfg.recorded(ctx.config),
        "live": live,
    }
    ctx.hand_over("context.json", json.dumps(context_file, indent=2))


def agent(run_id: str, round_no: int) -> dict[str, Any]:
    ctx = RunContext(run_id)
    keep = ctx.dir / f"round-{round_no}"
    checkpoint = keep / "start.tree"
    if checkpoint.exists():
        # This round was interrupted: stop what the last attempt started, and start the round
        # again from exactly the files it started from.
        proc.kill_recorded(keep / "agent.pid")
        g.restore_tree(ctx.ws, checkpoint.read_text().strip())
        ctx.record("step", step="agent", round=round_no, retry=True)
    else:
        checkpoint.write_text(g.worktree_tree(ctx.ws) + "\n")
        ctx.record("step", step="agent", round=round_no)
    feedback = ctx.inbox / "feedback.md"
    brief = Brief(
        ctx.given("brief.md"),
        (ctx.inbox / "brief.md").read_text(),
        round_no,
        ctx.given("feedback.md") if feedback.exists() else None,
        feedback.read_text() if feedback.exists() else None,
    )
    log = keep / "agent.log"
    log.unlink(missing_ok=True)
    given = _with_time_left(ctx)
    runner = build(given)
    if isinstance(runner, Preset):
        _write_native_rules(ctx, runner, brief, round_no)
    env = ctx.env(with_secrets=True)
    env["PATH"] = f"{ctx.given('bin')}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["JACKLINE_POLICY"] = str(ctx.given("policy.json"))
    with ctx.sandboxed("agent") as jail:
        result = runner.run(brief, ctx.ws, env, log, jail=jail)
    _flatten_repositories(ctx, f"agent (round {round_no})")
    # Before anything of this round is stored: learn the secrets the agent wrote into files or
    # printed, so the log, the audit log and every later step redact them.
    found = secret_scan.scan(
        Change.of_workspace(ctx.ws, ctx.run.base_sha or "HEAD"), ctx.known_secrets()
    )
    printed = secret_scan.scan_text_file(log) - found.values
    ctx.remember_secrets(found.values | printed)
    _redact_file(ctx, log)
    if printed:
        ctx.record("redacted", round=round_no, count=len(printed), where="agent output")
    if result.transcript is not None:
        _record_transcript(ctx, round_no, result.transcript)
    reverted = revert_forbidden(ctx.ws, ctx.run.base_sha or "HEAD", ctx.config.scope.forbidden)
    if reverted:
        ctx.record("scope", round=round_no, reverted=reverted)
    touched = g.changed_paths(ctx.ws, ctx.run.base_sha or "HEAD")
    ctx.update(paths=sorted({*ctx.run.paths, *touched}))
    measured = AgentRound(
        result.exit_code,
        result.timed_out,
        given.timeout,
        changed=g.worktree_tree(ctx.ws) != checkpoint.read_text().strip(),
        left_change=bool(touched),
        tail=ctx.redact(result.output_tail),
    )
    ctx.command(
        "agent",
        _shown(runner, brief),
        result.exit_code,
        result.duration,
        measured.tail,
        round=round_no,
        timed_out=result.timed_out,
        timeout=given.timeout,
        changed=measured.changed,
        left_change=measured.left_change,
        problem=measured.problem(),
        **({"dropped_bytes": result.dropped} if result.dropped else {}),
    )
    return {
        "exit_code": result.exit_code,
        "duration": result.duration,
        "reverted": reverted,
        "touched": touched,
        "problem": measured.problem(),
        "ran": measured.ran(),
    }


def _flatten_repositories(ctx: RunContext, by: str) -> None:
    """A git repository the agent (or a check) made inside the workspace loses its `.git`: its
    files stay and are committed as files. Left there, the harness's own `git add` would read its
    metadata, record a gitlink to a commit nobody has, or fail on it."""
    removed = _remove_nested_gitdirs(ctx.ws)
    if removed:
        where = ", ".join(removed)
        ctx.record(
            "warning",
            message=f"the {by} left a git repository of its own at {where}: its .git was "
            "removed (the files are kept, as files)",
            removed_repositories=removed,
        )


def _remove_nested_gitdirs(ws: Path) -> list[str]:
    """The `.git` of each repository nested in the workspace, removed (never through a link);
    the folders where one was."""
    return [rel for rel in g.embedded_repositories(ws) if safeio.remove(ws, f"{rel}/.git")]


def _shown(runner: Any, brief: Brief) -> str | list[str]:
    """The agent's command as the audit log shows it: the prompt (the brief and the feedback,
    each kept apart in the round's folder) stands as `{prompt}`."""
    argv: str | list[str] = runner.argv(brief)
    prompt = brief.prompt
    if not prompt:
        return argv
    if isinstance(argv, str):
        return argv.replace(shlex.quote(prompt), "{prompt}").replace(prompt, "{prompt}")
    return [a.replace(prompt, "{prompt}") for a in argv]


def _write_native_rules(ctx: RunContext, runner: Preset, brief: Brief, round_no: int) -> None:
    """The rules in scope, where this agent's program looks for them by itself (never
    committed: the preset's files are excluded since prepare)."""
    in_play = {*context.paths_named(ctx.run.task, ctx.ws), *ctx.run.paths}
    files = runner.rules_files(context.select_rules(ctx.ws, in_play), brief)
    for rel, text in files.items():
        safeio.write_text(ctx.ws, rel, text)  # never through a link the agent left there
    if files:
        ctx.record("agent.rules", round=round_no, files=sorted(files))


def _record_transcript(ctx: RunContext, round_no: int, t: Transcript) -> None:
    """Each step of the agent's transcript as an audit event, then what the round cost."""
    for step in t.steps:
        # Leave out what is empty, but keep a 0 exit code (0 == False in Python).
        data = {
            k: v
            for k, v in asdict(step).items()
            if k != "kind" and v is not None and v != "" and v is not False
        }
        data["detail"] = _clip(step.detail, 4000) if step.detail else None
        ctx.record(
            f"agent.{step.kind}", round=round_no, **{k: v for k, v in data.items() if v is not None}
        )
    cost, unpriced = budgets.cost(t, ctx.config.budget)
    tokens = sum(budgets.tokens(u) for u in t.usage)
    ctx.record(
        "agent.usage",
        round=round_no,
        models=[asdict(u) for u in t.usage],
        tokens=tokens,
        cost_usd=round(cost, 6),
        unpriced=unpriced,
        final=_clip(t.final, 4000),
    )
    ctx.update(spend=ctx.run.spend + cost, tokens=ctx.run.tokens + tokens)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"\n[... {len(text) - n} more characters]"


def _with_time_left(ctx: RunContext) -> cfg.AgentConfig:
    """The agent's config, its round's timeout cut to what `[budget] wall_time` leaves."""
    left = budgets.time_left(ctx.config.budget, _worked(ctx))
    if left is None or left >= ctx.agent_config.timeout:
        return ctx.agent_config
    return ctx.agent_config.model_copy(update={"timeout": max(1, int(left))})


def _worked(ctx: RunContext) -> float:
    """Seconds the run's commands (set-up, agent, checks) have taken so far."""
    events = ctx.audit.read(ctx.run.id)
    return sum(float(e.data.get("duration") or 0) for e in events if e.kind == "command")


def budget(run_id: str) -> dict[str, Any]:
    """Before a round: is any of `[budget]` used up? If so the run stops, with the reason."""
    ctx = RunContext(run_id)
    since = budgets.day_start()
    spent_today = ctx.store.spend_since(ctx.run.repo, since)
    reason = budgets.over(
        ctx.config.budget, ctx.run.rounds, ctx.run.spend, _worked(ctx), spent_today
    )
    if reason:
        ctx.update(reason=reason)
        ctx.record("budget", over=reason)
    return {"over": reason}


def check(run_id: str, round_no: int, label: str = "round") -> dict[str, Any]:
    ctx = RunContext(run_id)
    out_dir = ctx.dir / f"{label}-{round_no}"
    agent_events = [
        e.data
        for e in ctx.audit.read(run_id)
        if e.kind == "command" and e.data.get("round") == round_no
    ]
    agent = agent_events[-1] if agent_events and label == "round" else None
    # An agent that did not run (it failed without touching a file) left nothing to check: its
    # round fails without making a person wait for the checks of the untouched base.
    checks = ctx.config.checks if agent is None or _measured(agent).ran() else {}
    judged = _judged_tree(ctx, out_dir, label) if checks else ""
    results: list[CheckResult] = []
    for name, check_config in checks.items():
        # Bytecode goes to this round's own folder (in the workspace's inbox: compiled code may
        # hold the workspace's secrets): Python trusts a cached .pyc whose source has the same
        # size and the same second of mtime, which an agent's quick edit often has.
        cache = ctx.private / "pycache" / f"{label}-{round_no}"
        env = {**ctx.env(), "PYTHONPYCACHEPREFIX": str(ctx.seen(cache))}
        with ctx.sandboxed(f"check:{name}", fresh_git=False) as jail:
            result = run_check(name, check_config, ctx.ws, env, out_dir, jail=jail)
        _redact_file(ctx, out_dir / f"{name}.log")
        ctx.command(
            f"check:{name}",
            result.command,
            result.exit_code,
            result.duration,
            result.output_tail,
            **({"dropped_bytes": result.dropped} if result.dropped else {}),
        )
        results.append(_keep_the_agents_work(ctx, result, judged, round_no, label))
    # A round is judged on the agent as well: passing checks on work it did not do (it
    # crashed, or changed nothing) are no reason to offer the work for review.
    problem = agent.get("problem") if agent else None
    passed = all(r.passed for r in results) and not problem
    ctx.record(
        label,
        round=round_no,
        passed=passed,
        checks=[asdict(r) for r in results],
        agent=agent,
        problem=problem,
        checks_skipped=bool(ctx.config.checks) and not checks,
    )
    if label == "round":
        ctx.update(rounds=round_no)
    measured = _measured(agent) if agent and problem else None
    feedback = None if passed else context.render_feedback(results, agent=measured)
    return {"passed": passed, "feedback": ctx.redact(feedback) if feedback else None}


def _measured(event: dict[str, Any]) -> AgentRound:
    """The agent's round back from its recorded command (see `agent`)."""
    return AgentRound(
        event["exit_code"],
        bool(event.get("timed_out")),
        int(event.get("timeout") or 0),
        changed=bool(event.get("changed", True)),
        left_change=bool(event.get("left_change", True)),
        tail=str(event.get("tail") or ""),
    )


def _judged_tree(ctx: RunContext, out_dir: Path, label: str) -> str:
    """The tree the checks judge: what the agent left (a merge's checks: the merge). A round's
    is kept in its folder, which no check can write: checks run again after a crash (one may
    have died halfway through rewriting a file) start from it again, not from what they left."""
    if label != "round":  # a merge is made afresh each time it is tried
        return g.worktree_tree(ctx.ws)
    checkpoint = out_dir / "checks.tree"
    if checkpoint.exists():
        tree = checkpoint.read_text().strip()
        g.restore_tree(ctx.ws, tree)
        return tree
    tree = g.worktree_tree(ctx.ws)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(tree + "\n")
    return tree


def _keep_the_agents_work(
    ctx: RunContext, result: CheckResult, judged: str, round_no: int, label: str
) -> CheckResult:
    """Put back what a check changed in the work tree (files ignored by git aside): what is
    committed is exactly the work the checks judged, never a linter's fix or a formatter's
    rewrite passed off as the agent's. A check that modified or deleted the agent's files fails
    (`checks.changed_the_work`); files it only created are removed, with a warning."""
    # A repository a check made loses its `.git` before the harness's `git add` reads it (see
    # `_flatten_repositories`); its files, created by the check, go with the rest.
    nested = _remove_nested_gitdirs(ctx.ws)
    now = g.worktree_tree(ctx.ws)
    if now == judged and not nested:
        return result
    changed, created = _tree_changes(ctx.ws, judged, now)
    g.restore_tree(ctx.ws, judged)
    when, said = f"{label} {round_no}", []
    if changed:
        said.append(
            f"the check `{result.name}` ({when}) changed the agent's files {listed(changed)}: "
            "they were put back as the agent left them, and the check fails"
        )
    if created or nested:
        made = listed(created) + "".join(f" (a git repository of its own at {n})" for n in nested)
        said.append(
            f"the check `{result.name}` ({when}) created {made}: removed, never committed "
            "(list what a check writes in .gitignore to keep it)"
        )
    ctx.record(
        "warning",
        message="; ".join(said),
        check=result.name,
        round=round_no,
        label=label,
        changed=changed[:100],
        created=created[:100],
    )
    return changed_the_work(result, changed) if changed else result


def _tree_changes(ws: Path, before: str, after: str) -> tuple[list[str], list[str]]:
    """The paths of `before` that `after` modified or deleted, and the paths `after` added."""
    out = g.git_bytes(ws, "diff-tree", "-r", "-z", "--no-renames", "--name-status", before, after)
    fields = iter(g.z_paths(out))
    changed: list[str] = []
    created: list[str] = []
    for status in fields:
        (created if status == "A" else changed).append(next(fields, ""))
    return sorted(changed), sorted(created)


# scan -------------------------------------------------------------------------------------


def scan(run_id: str) -> dict[str, Any]:
    """Scan the change before anything is committed. A found secret blocks the run here."""
    ctx = RunContext(run_id)
    ctx.record("step", step="scan")
    change = Change.of_workspace(ctx.ws, ctx.run.base_sha or "HEAD")
    known = ctx.known_secrets()
    found = secret_scan.scan(change, known)
    committed = secret_scan.scan_commits(ctx.ws, ctx.run.base_sha or "HEAD", known)
    found = secret_scan.Found(
        found.findings
        + tuple(f for f in committed.findings if (f.file, f.line) not in _where(found.findings)),
        found.values | committed.values,
    )
    ctx.remember_secrets(found.values)
    events = ctx.audit.read(run_id)
    printed = sum(e.data["count"] for e in events if e.kind == "redacted")
    report = run_scans(change, ctx.config)
    reverted = sorted({p for e in events if e.kind == "scope" for p in e.data["reverted"]})
    findings = [
        *found.findings,
        *report.findings,
        *(
            Finding(
                "scope.forbidden",
                "warn",
                "the agent wrote here; the write was reverted",
                file=p,
                why="[scope] forbidden in jackline.toml: the agent may not write here.",
            )
            for p in reverted
        ),
        *_check_changes(events),
    ]
    if printed:
        findings.append(
            Finding(
                "secret.printed",
                "warn",
                f"the agent's output held {printed} secret-like value(s); they were redacted "
                "from the logs and the audit log",
                why="A secret the agent could print is a secret it could send elsewhere. If the "
                "value is real, rotate it.",
            )
        )
    findings = sort(findings)
    blocking = sum(f.level == "block" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    ctx.update(blocking=blocking, warnings=warnings)
    ctx.record(
        "scan",
        findings=[asdict(f) for f in findings],
        secrets=len(found.findings),
        blocking=blocking,
        warnings=warnings,
        timings=report.timings,
    )
    if found.findings:
        where = ", ".join(f"{f.file}:{f.line}" for f in found.findings[:3])
        ctx.update(reason=f"a secret in the change ({where}); nothing was committed")
    return {
        "blocked": bool(found.findings),
        "blocking": blocking,
        "warnings": warnings,
        "secrets": [f"{f.file}:{f.line}" if f.line else str(f.file) for f in found.findings],
    }


def _check_changes(events: list[Event]) -> list[Finding]:
    """What the checks of the run's rounds changed or created in the work tree (all put back
    before anything was committed, see `_keep_the_agents_work`): one finding per check and kind."""
    seen: dict[tuple[str, str], tuple[set[str], set[int]]] = {}
    for e in events:
        if e.kind != "warning" or "check" not in e.data or e.data.get("label") != "round":
            continue
        for kind in ("changed", "created"):
            if e.data.get(kind):
                paths, rounds = seen.setdefault((e.data["check"], kind), (set(), set()))
                paths.update(e.data[kind])
                rounds.add(e.data["round"])
    done = {
        "changed": "the harness put the agent's version back and the check failed that round",
        "created": "removed, never committed",
    }
    return [
        Finding(
            "check.changed_files",
            "warn",
            f"the check `{check}` {kind} {listed(sorted(paths))} in round "
            f"{', '.join(map(str, sorted(rounds)))}: {done[kind]}",
            why="A check that writes (a linter's fix, a formatter) would have its rewrite "
            "committed as the agent's work, judged by nobody. Make it report without writing "
            "(`ruff check` without `--fix`, `ruff format --check`), or list what it creates in "
            ".gitignore.",
        )
        for (check, kind), (paths, rounds) in seen.items()
    ]


def _where(findings: tuple[Finding, ...]) -> set[tuple[str | None, int | None]]:
    return {(f.file, f.line) for f in findings}


# commit, publish --------------------------------------------------------------------------


def commit(run_id: str) -> str:
    """Commit what the agent left (its own commits stay). Safe to replay: with nothing left to
    commit, the head is returned as it is."""
    ctx = RunContext(run_id)
    g.git(ctx.ws, "add", "-A")
    if g.ok(ctx.ws, "diff", "--cached", "--quiet"):
        head = g.rev(ctx.ws, "HEAD")
    else:
        subject = ctx.run.task.strip().splitlines()[0][:72]
        g.git(ctx.ws, "commit", "--quiet", "-m", subject, "-m", f"Jackline-Run: {run_id}")
        head = g.rev(ctx.ws, "HEAD")
    ctx.update(head_sha=head)
    ctx.record("commit", sha=head)
    return head


def publish(run_id: str) -> None:
    ctx = RunContext(run_id)
    if ctx.config.forge.kind == "github":
        # The branch and its pull request live on GitHub; merging stays local for now (an
        # approval lands in the user's repository and the pull request is told).
        from jackline.forge import github

        pr = github.publish(ctx.ws, ctx.config, ctx.run.branch, run_id, ctx.run.task)
        ctx.record("publish", forge="github", branch=ctx.run.branch, pull_request=pr.url)
        return
    forge.publish(ctx.ws, Path(ctx.run.repo), ctx.run.branch)
    ctx.record("publish", forge="local", branch=ctx.run.branch, repo=ctx.run.repo)


# handoff ----------------------------------------------------------------------------------


NOTES = ".jackline/notes.md"
NOTES_LIMIT = 64 << 10
"""Bytes of the agent's notes read at most (a cut is said in the text)."""


def write_handoff(run_id: str, outcome: str) -> str:
    ctx = RunContext(run_id)
    if (outcome in FINAL or outcome == "blocked") and ctx.run.workspace:
        # The workspace stays for a person to look at; its database need not keep running
        # (a blocked run sent back starts them again with its next round: `hydrate`).
        stopped = services.stop(ctx.ws)
        if stopped:
            ctx.record("cleanup", services=stopped)
    events = ctx.audit.read(run_id)
    rounds = [e.data for e in events if e.kind == "round"]
    if outcome == "failed" and rounds and rounds[-1].get("problem"):
        ctx.update(reason=_agent_reason(_measured(rounds[-1]["agent"])))
    reverted = sorted({p for e in events if e.kind == "scope" for p in e.data["reverted"]})
    commands = [e.data for e in events if e.kind == "command"]
    files = _files_changed(ctx)
    # The agent's notes: a file of the workspace's own (a link to /etc/shadow is no notes).
    notes = (safeio.read_text(ctx.ws, NOTES, NOTES_LIMIT) or "") if ctx.run.workspace else ""
    failing = [
        f"`{c['name']}`: "
        + "; ".join(
            (f"{f.get('test') or f.get('file') or ''} {f['message']}").strip()
            for f in c["failures"][:3]
        )
        for c in (rounds[-1]["checks"] if rounds and not rounds[-1]["passed"] else [])
        if not c["passed"]
    ]
    scans = [e.data for e in events if e.kind == "scan"]
    findings = scans[-1]["findings"] if scans else []
    named = context.paths_named(ctx.run.task, ctx.ws) if ctx.run.workspace else []
    h = {
        "run": run_id,
        "task": ctx.run.task,
        "outcome": outcome,
        "branch": ctx.run.branch,
        "base": ctx.run.base_sha,
        "head": ctx.run.head_sha,
        "merge": ctx.run.merge_sha,
        "workspace": ctx.run.workspace,
        "summary": _summary(ctx, outcome, rounds, files, failing),
        "files": files,
        "rounds": rounds,
        "commands": commands,
        "notes": notes,
        "findings": findings,
        "dependencies": [f for f in findings if f["rule"].startswith("dependency.")],
        "owners": ctx.config.review.owners,
        "people": _people(events),
        "look_twice": handoff.look_twice(files, named, reverted, failing, notes, findings),
        "timeline": _timeline(events),
        "spend": {"usd": round(ctx.run.spend, 4), "tokens": ctx.run.tokens},
        "undo": _undo(ctx, outcome),
        "fixed_tests": _fixed_tests(ctx, rounds),
        "diff": _see_diff(ctx, outcome, events),
    }
    path = handoff.write(h, ctx.dir, ctx.redact)
    if outcome in ("awaiting_review", "merged"):
        # The surfaces are told before the status moves: a CLI waiting for the run to rest
        # exits once it does, and would end an announcement still under way with it.
        ctx.run = replace(ctx.run, status=outcome, handoff=str(path))
        _announce(ctx, f"run.{outcome}", path)
    if outcome == "merged":
        # Merged is said by `finish`, once the workspace is gone: whoever waits for the run to
        # rest (an `approve`) then finds nothing of it still being removed.
        ctx.update(handoff=str(path))
    else:
        ctx.update(status=outcome, handoff=str(path))
    ctx.record("handoff", outcome=outcome, path=str(path))
    return str(path)


def _fixed_tests(ctx: RunContext, rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tests that failed in an earlier round and that the last round's report shows passing:
    read from the report, never inferred from an exit code (a deleted test does not pass)."""
    failed: dict[tuple[str, str], set[int]] = {}
    for r in rounds[:-1]:
        for c in r["checks"]:
            for f in c["failures"]:
                if f.get("test"):
                    failed.setdefault((c["name"], f["test"]), set()).add(r["round"])
    if not failed:
        return []
    last = rounds[-1]["round"]
    passed = {
        name: junit.passed_tests(report_file(ctx.dir / f"round-{last}", name))
        for name in {name for name, _ in failed}
        if name in ctx.config.checks and ctx.config.checks[name].parser == "junit"
    }
    return [
        {"check": name, "test": test, "failed_in": sorted(where)}
        for (name, test), where in sorted(failed.items())
        if test in passed.get(name, set())
    ]


def _see_diff(ctx: RunContext, outcome: str, events: list[Event]) -> str:
    """A command that shows the run's change, where it is: on the branch published in the user's
    repository, in the merge, or in the workspace (through the harness's git directory: the
    workspace's own `.git` is the agent's)."""
    repo, main, run = ctx.run.repo, ctx.config.project.main, ctx.run
    published = [e.data for e in events if e.kind == "publish"]
    if outcome == "merged" and run.merge_sha:
        return f"git -C {repo} diff {run.merge_sha}^1 {run.merge_sha}"
    if published and published[-1].get("pull_request"):
        return f"the pull request's changes: {published[-1]['pull_request']}"
    if published and run.head_sha:
        return f"git -C {repo} diff {main}...{run.branch}"
    if not run.workspace:
        return ""
    where = f"--git-dir={g.gitdir_path(ctx.ws)} --work-tree={ctx.ws}"
    if run.head_sha:
        return f"git {where} diff {run.base_sha} {run.head_sha}"
    # Not committed: `diff` shows what changed in the files git knows, `status` the new ones.
    return f"git {where} status --short; git {where} diff {run.base_sha}"


def _agent_reason(agent: AgentRound) -> str:
    """Why a run whose last round the agent failed ended: what happened, and the last line it
    printed where it failed (`Not logged in`), which is most often the cause."""
    said = agent.last_line() if agent.exit_code != 0 or agent.timed_out else ""
    return f"{agent.problem()}: {said[:200]}" if said else str(agent.problem())


def _people(events: list[Event]) -> list[dict[str, str]]:
    """Who submitted and who decided, each with the OS user who claimed the name, if claimed."""
    return [
        {
            "action": "submit" if e.kind == "submitted" else str(e.data["decision"]),
            "by": str(e.data["by"]),
            "claimed_by_os_user": str(e.data.get("claimed_by_os_user") or ""),
        }
        for e in events
        if e.kind in ("submitted", "decision")
    ]


def _announce(ctx: RunContext, event: str, handoff_path: Path) -> None:
    """Tell the surfaces (Slack, the pull request); a surface that fails is recorded, not fatal."""
    from jackline import notify

    data = {
        "run": asdict(ctx.run),
        "handoff": handoff_path.read_text() if handoff_path.exists() else "",
    }
    problems = notify.announce(event, ctx.config, data)
    if problems:
        ctx.record("announce_failed", event=event, problems=problems)


def _timeline(events: list[Any], per_round: int = 12) -> list[dict[str, Any]]:
    """What the agent did, from its transcript: a few lines per round for the handoff."""
    out: list[dict[str, Any]] = []
    for e in events:
        if e.kind in ("agent.command", "agent.tool", "agent.edit", "agent.message"):
            out.append({"round": e.data.get("round"), "kind": e.kind[6:], **e.data})
    kept: list[dict[str, Any]] = []
    for r in sorted({x["round"] for x in out}, key=lambda x: x or 0):
        steps = [x for x in out if x["round"] == r]
        kept += steps[:per_round]
        if len(steps) > per_round:
            kept.append({"round": r, "kind": "more", "summary": f"{len(steps) - per_round} more"})
    return kept


def _files_changed(ctx: RunContext) -> list[dict[str, Any]]:
    if not ctx.run.workspace or not ctx.ws.exists() or not ctx.run.base_sha:
        return []
    tree = g.worktree_tree(ctx.ws)
    # NUL-separated: a name git would quote is shown as the file's name, not git's quoting of it.
    fields = iter(
        g.z_paths(g.git_bytes(ctx.ws, "diff", "-z", "--numstat", "-M", ctx.run.base_sha, tree))
    )
    files = []
    for field in fields:
        added, removed, path = field.split("\t", 2)
        if not path:  # a rename: its old and new names follow as fields of their own
            next(fields, None)
            path = next(fields, "")
        files.append(
            {
                "path": path,
                "added": int(added) if added.isdigit() else 0,
                "removed": int(removed) if removed.isdigit() else 0,
            }
        )
    return files


def _summary(
    ctx: RunContext,
    outcome: str,
    rounds: list[dict[str, Any]],
    files: list[dict[str, Any]],
    failing: list[str],
) -> str:
    n = len(rounds)
    added = sum(f["added"] for f in files)
    removed = sum(f["removed"] for f in files)
    change = f"{len(files)} file{'s' if len(files) != 1 else ''} changed (+{added} / -{removed})."
    names = ", ".join(f"`{c}`" for c in ctx.config.checks) or "none configured"
    # A reason may quote the agent (its last line) or a person: text, not markdown.
    reason = handoff.text(ctx.run.reason)
    if outcome == "blocked":
        return (
            f"The run is blocked: {reason}. {change} Nothing was committed or pushed; "
            f"the work waits in the workspace `{ctx.run.workspace}` for a person's decision: "
            f"`jackline request-changes {ctx.run.id} -m TEXT` gives the agent another round, "
            "told the file and line of each secret (the next scan must find none), or "
            f"`jackline reject {ctx.run.id}` closes the run and removes the workspace. It cannot "
            "be approved. If the secret is real, rotate it either way: it was on disk."
        )
    if outcome == "cancelled":
        kept = f"the workspace `{ctx.run.workspace}`" if ctx.run.workspace else "no workspace"
        return (
            f"The run was cancelled ({reason}). {change} Nothing was merged; {kept} "
            "stays for a person (`jackline clean` removes it)."
        )
    if outcome == "over_budget":
        return (
            f"The run stopped {reason} after {n} round{'s' if n != 1 else ''}. {change} "
            f"The work is in the workspace `{ctx.run.workspace}` (not committed) for a person."
        )
    if outcome == "failed":
        if ctx.run.reason:
            return f"The run failed: {reason}. {change}"
        return (
            f"The checks still fail after {n} round{'s' if n != 1 else ''}; a person takes over. "
            f"{change} The work is in the workspace `{ctx.run.workspace}` (not committed)."
        )
    verb = "was merged into" if outcome == "merged" else "is ready for review against"
    owners = ", ".join(ctx.config.review.owners) or "nobody yet: set [review] owners"
    marked = (
        f" {ctx.run.blocking} block-level finding{'s' if ctx.run.blocking != 1 else ''}: "
        f"only an owner may approve ({owners})."
        if ctx.run.blocking and outcome == "awaiting_review"
        else ""
    )
    return (
        f"After {n} round{'s' if n != 1 else ''} every check passes ({names}). {change} "
        f"The branch `{ctx.run.branch}` {verb} `{ctx.config.project.main}`.{marked}"
    )


def _undo(ctx: RunContext, outcome: str) -> list[str]:
    repo = ctx.run.repo
    if outcome == "merged" and ctx.run.merge_sha:
        return [
            f"Revert the merge: `git -C {repo} revert -m 1 {ctx.run.merge_sha}`",
            f"Delete the branch: `git -C {repo} branch -D {ctx.run.branch}`",
        ]
    if outcome == "blocked":  # it waits for a decision: `clean` keeps its workspace
        return [
            "Nothing is merged or pushed. Close the run and remove its workspace: "
            f"`jackline reject {ctx.run.id}`",
            "If the secret is real, rotate it: it was on disk in the workspace.",
        ]
    if outcome in ("failed", "cancelled"):
        return [f"Nothing is merged or pushed. Remove the workspace: `jackline clean {ctx.run.id}`"]
    steps = [f"Nothing is merged. Reject: `jackline reject {ctx.run.id}`"]
    if ctx.run.head_sha:
        steps.append(f"Delete the branch: `git -C {repo} branch -D {ctx.run.branch}`")
    if ctx.run.workspace:
        steps.append(f"Remove the workspace: `rm -rf {ctx.run.workspace}`")
    return steps


# review -----------------------------------------------------------------------------------


def record_decision(run_id: str, decision: dict[str, Any]) -> None:
    ctx = RunContext(run_id)
    # The status moves before the event is written: whoever sees the decision in the log also
    # sees that the run is no longer resting in review.
    following = {"approve": "merging", "request_changes": "running", "reject": "rejecting"}
    ctx.update(status=following[decision["kind"]])
    # A name the command line claimed (`[review] allow_as`) is recorded with who claimed it.
    claim = {k: decision[k] for k in ("claimed_by_os_user",) if decision.get(k)}
    ctx.record(
        "decision",
        decision=decision["kind"],
        by=decision["by"],
        **claim,
        message=decision.get("message", ""),
    )


def merge(run_id: str, decision: dict[str, Any]) -> dict[str, Any]:
    """Merge onto the newest main: the checks run again on the merge result when main moved."""
    ctx = RunContext(run_id)
    refusal = owner_refusal(ctx.run, ctx.config, decision["by"])
    if refusal:  # the surfaces check this first; here it holds whatever sent the message
        ctx.update(status="awaiting_review", reason=refusal)
        ctx.record("merge", outcome="refused", reason=refusal)
        return {"outcome": "refused", "reason": refusal}
    ctx.update(status="merging")
    main = ctx.config.project.main
    subject = f"Merge {ctx.run.branch}: {ctx.run.task.splitlines()[0][:60]}"
    approver = decision["by"]
    if decision.get("claimed_by_os_user"):
        approver += f" (claimed by OS user {decision['claimed_by_os_user']})"
    message = f"{subject}\n\nJackline-Run: {run_id}\nApproved-by: {approver}"
    try:
        # One landing at a time per repository: this one merges onto the main it finds here,
        # and main cannot move under it between the merge, its checks and the landing.
        with forge.landing(Path(ctx.run.repo)):
            sha, moved = forge.prepare_merge(
                ctx.ws, main, ctx.run.branch, ctx.run.base_sha or "", message
            )
            if moved:
                why = f"{main} moved since the run started"
                ctx.record("step", step="merge-checks", reason=why)
                result = check(run_id, ctx.run.rounds, label="merge-check")
                if not result["passed"]:
                    raise Refused(f"the checks fail on the merge with the current {main}")
            forge.land(ctx.ws, Path(ctx.run.repo), main, sha, run_id)
    except (Refused, CommandFailed) as e:
        # The workspace goes back to the branch, whatever refused: a round asked for next
        # starts from the run's own work, never from a merge that did not land.
        g.git(ctx.ws, "checkout", "--quiet", "--force", ctx.run.branch, check=False)
        reason = str(e).splitlines()[0]
        if isinstance(e, Conflict):
            reason += (
                f": `jackline request-changes {run_id} -m TEXT` gives the agent a round on the "
                f"newest {main} with the conflicts marked in those files (or reject the run)"
            )
        ctx.update(status="awaiting_review", reason=reason)
        ctx.record("merge", outcome="refused", reason=str(e))
        return {"outcome": "refused", "reason": reason}
    ctx.update(merge_sha=sha, reason="")
    ctx.record("merge", outcome="merged", sha=sha, by=decision["by"])
    return {"outcome": "merged", "sha": sha}


def finish(run_id: str, outcome: str) -> None:
    """A merged or rejected run needs its workspace no more; a failed one is kept for a person."""
    ctx = RunContext(run_id)
    if outcome in ("merged", "rejected") and ctx.run.workspace:
        remove_workspace(Path(ctx.run.workspace))
        ctx.record("cleanup", removed=ctx.run.workspace)
    ctx.update(status=outcome)


def reject(run_id: str, decision: dict[str, Any]) -> None:
    ctx = RunContext(run_id)
    reason = decision.get("message", "")
    scans = [e.data for e in ctx.audit.read(run_id) if e.kind == "scan"]
    if scans and scans[-1].get("secrets"):  # rejected while blocked: the workspace goes now
        rotate = "the change held a secret: if it is real, rotate it (it was on disk)"
        reason = f"{reason}; {rotate}" if reason else rotate
    ctx.update(reason=reason)
    finish(run_id, "rejected")


# ends that are not the blueprint's ----------------------------------------------------------


def cancel(run_id: str, reason: str) -> str:
    """End a run a person cancelled, once its workflow is cancelled (no step of it starts
    again): the status says so before the agents die, so that a step still finishing in the
    process that drove it cannot make their deaths into another outcome; every round's agent
    process group is killed; the handoff says it (its services stop, its workspace stays)."""
    Store().update_run(run_id, status="cancelled", reason=reason)
    for pidfile in sorted(paths.run_dir(run_id).glob("round-*/agent.pid")):
        proc.kill_recorded(pidfile)
    return write_handoff(run_id, "cancelled")


def fail(run_id: str, reason: str) -> None:
    """A bug stopped the run's workflow: the run fails with the error as its reason (a run
    that has ended, a cancelled one say, keeps its end), with a handoff where one can be
    written: the bug may be in the handoff itself."""
    store = Store()
    if store.get_run(run_id).status in FINAL:
        return
    try:
        ctx = RunContext(run_id, store)
        reason = ctx.redact(reason)
        ctx.record("error", reason=reason)
    except Exception:  # the bug may be in loading the run: the status still says it
        reason = Redactor.from_environment()(reason)
    # The reason first, the status last and with the handoff: whoever sees `failed` finds the
    # handoff that says why (`write_handoff` moves both at once).
    store.update_run(run_id, reason=reason)
    try:
        write_handoff(run_id, "failed")
    except Exception as e:  # the bug may be in the handoff itself: a short one says it
        path = paths.run_dir(run_id) / "handoff.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# {run_id}: failed\n\nThe run failed: {reason}\n\nThe full handoff could not "
            f"be written ({type(e).__name__}); `jackline logs {run_id}` has what the run did.\n"
        )
        store.update_run(run_id, status="failed", handoff=str(path))


def review_feedback(decision: dict[str, Any]) -> str:
    return context.render_feedback(
        [], Decision(decision["kind"], decision["by"], decision.get("message", ""))
    )


def changes_requested(run_id: str, decision: dict[str, Any]) -> str:
    """The feedback of a round a reviewer asked for. Where main moved since the run's base, the
    round starts on the newest main (`forge.onto_newest_main`): a branch that no longer merges
    has a way forward, and no agent works on an old main unknowingly. The feedback says main
    moved and names each file left with conflict markers."""
    ctx = RunContext(run_id)
    text = review_feedback(decision)
    main = ctx.config.project.main
    moved = forge.onto_newest_main(ctx.ws, main, ctx.run.branch)
    if moved is None:
        return text
    tip, conflicts = moved
    ctx.update(base_sha=tip)
    ctx.record("onto_main", main=main, sha=tip, conflicts=conflicts)
    return text + "\n" + context.render_main_moved(main, tip, conflicts)


def secret_feedback(where: list[str], decision: dict[str, Any]) -> str:
    """Feedback for the round after a blocked one: the reviewer's words, and the file and line
    of each secret the scan found. Never the value: the agent need not see it again to remove
    it, and a feedback file is one more place it would be."""
    listed = "\n".join(f"- {w}" for w in where) or "- (the scan's findings name no place)"
    return (
        f"{review_feedback(decision).rstrip()}\n\n"
        "## The change was blocked: it holds a secret\n\n"
        "Remove each of these from the change. Nothing is committed while one is there, and "
        "the next scan must find none. Do not move the value elsewhere in the workspace: code "
        "that needs it reads it from an environment variable.\n\n"
        f"{listed}\n"
    )
