"""The steps of a release as plain functions over a release id: no DBOS, no surface.

`engine.release_workflow` wraps each as a durable step. Each reads what it needs from the store
(the config as it was when the release started, from its `release.started` event) and is safe to
run again after a crash: a deploy deploys the same commit again, a promotion moves the branch to
the same place.

Every command runs in the harness's checkout of the released commit (`tree`), never in the
user's working tree, and the config is the one the release recorded from that commit.

Every step writes `release.*` events to the release's audit stream (the release id is the stream
id); until other surfaces subscribe, those events are how a release "tells every surface".
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from jackline import config as cfg
from jackline import git as g
from jackline import paths, proc, repos
from jackline.errors import JacklineError, NotFound
from jackline.events import Kind
from jackline.models import Probe, Release, ReleaseDecision, ReleaseStatus, StepOutcome
from jackline.release import gate as release_gate
from jackline.release import probes
from jackline.release import tree as release_tree
from jackline.stepcontext import SecretRef, StepContext
from jackline.store import Store


class ReleaseContext(StepContext[Release]):
    """Everything one step needs about its release, loaded fresh in whichever process runs it."""

    started = Kind.RELEASE_STARTED

    def _load(self, record_id: str) -> Release:
        return self.store.get_release(record_id)

    def _save(self, **changes: Any) -> Release:
        return self.store.update_release(self.current.id, **changes)

    @property
    def release(self) -> Release:
        return self.current

    @property
    def root(self) -> Path:
        """The released repository's working tree on this machine (a URL's: this worker's clone)."""
        return repos.local(self.release.repo)

    @property
    def production(self) -> str:
        return list(self.config.release.environments)[-1]

    @property
    def dir(self) -> Path:
        return paths.home() / "releases" / self.release.id

    @property
    def tree(self) -> Path:
        """Where the release's commands run and its logs are read (`release.tree`)."""
        return release_tree.path(self.root)

    def checkout(self, *also: str | None) -> Path:
        """The release checkout at this release's commit (with the commits `also` names)."""
        more = [s for s in (self.release.previous_sha, *also) if s]
        root = repos.synced(self.release.repo, self.config.project.main)
        return release_tree.checkout(root, self.release.sha, *more)

    def env(self, name: str) -> cfg.EnvironmentConfig:
        return self.config.release.environments[name]

    def _secret_refs(self, only: str | None = None) -> Iterator[SecretRef]:
        """The environments' secrets (with `only`, that environment's)."""
        for env_name, env in self.config.release.environments.items():
            if only is None or env_name == only:
                for name, ref in env.secrets.items():
                    yield (
                        name,
                        ref,
                        f"jackline.toml: release.environments.{env_name}.secrets.{name}",
                    )

    def command_env(self, env_name: str) -> dict[str, str]:
        """The harness's environment cut down to the allowlist, plus the environment's secrets."""
        env = self.scrubbed_env()
        env.update(self._secrets(strict=True, refs=self._secret_refs(env_name)))
        env["JACKLINE_RELEASE"] = self.release.id
        env["JACKLINE_ENV"] = env_name
        return env

    def probe(self, probe: Probe, env: str) -> Probe:
        """Store one probe for this release and environment."""
        stored = replace(
            probe, release_id=self.release.id, env=env, detail=self.redact(probe.detail)
        )
        self.store.add_probe(stored)
        self.record(
            Kind.RELEASE_PROBE,
            env=env,
            name=stored.name,
            outcome=stored.outcome,
            detail=stored.detail,
            duration=stored.duration,
        )
        return stored


def fill(command: str | list[str], sha: str, previous_sha: str | None, env: str) -> str | list[str]:
    """`{sha}`, `{previous_sha}` and `{env}` filled in (other braces are the shell's)."""

    def one(text: str) -> str:
        return (
            text.replace("{sha}", sha)
            .replace("{previous_sha}", previous_sha or "")
            .replace("{env}", env)
        )

    return one(command) if isinstance(command, str) else [one(part) for part in command]


# what the steps return (see `StepOutcome`) ---------------------------------------------------


@dataclass(frozen=True)
class EnvPlan:
    """One environment as the release goes through it."""

    name: str
    requires_go: bool
    soak: int
    """Seconds to watch it after its probes pass (0: no soak)."""


@dataclass(frozen=True)
class GateOutcome(StepOutcome):
    """The plan the workflow follows, if the gate let the release through."""

    ok: bool
    envs: tuple[EnvPlan, ...] = ()
    """In order: production is the last."""


@dataclass(frozen=True)
class TakeOutcome(StepOutcome):
    accepted: bool
    """False for a go refused (`go_refusal`): the release waits on."""
    kind: Literal["go", "abort"]


@dataclass(frozen=True)
class PromoteOutcome(StepOutcome):
    before: str | None
    """What the production branch pointed at before the release (None: it did not exist)."""


@dataclass(frozen=True)
class DeployOutcome(StepOutcome):
    ok: bool
    offset: int
    """Where the environment's log stood before the deploy: the probes read what follows."""


@dataclass(frozen=True)
class ProbeOutcome(StepOutcome):
    outcome: probes.Outcome
    problems: tuple[str, ...] = ()
    """Each probe that did not pass: its name and detail."""


# gate -------------------------------------------------------------------------------------


def gate(release_id: str) -> GateOutcome:
    """Expand/contract against production's live release, and the flags file. Returns the plan
    the workflow follows: the environments in order, with what each waits for."""
    ctx = ReleaseContext(release_id)
    ctx.update(status=ReleaseStatus.GATING)
    live = ctx.store.live(ctx.release.repo, ctx.production)
    live_sha = live["sha"] if live else None
    try:
        tree = ctx.checkout()
    except JacklineError as e:
        finish(release_id, ReleaseStatus.FAILED, f"could not check out {ctx.release.sha[:10]}: {e}")
        return GateOutcome(False)
    problems = release_gate.check(ctx.root, tree, ctx.config, live_sha, ctx.release.sha)
    ctx.record(Kind.RELEASE_GATE, ok=not problems, live_sha=live_sha, problems=problems)
    if problems:
        finish(
            release_id, ReleaseStatus.FAILED, "the release gate blocked it:\n" + "\n".join(problems)
        )
        return GateOutcome(False)
    envs = tuple(
        EnvPlan(name, env.requires_go, cfg.seconds(env.soak) if env.soak else 0)
        for name, env in ctx.config.release.environments.items()
    )
    return GateOutcome(True, envs)


# waiting for a person ---------------------------------------------------------------------


def wait(release_id: str, status: ReleaseStatus, env: str) -> int:
    """Rest the release at a wait: `awaiting_go` before `env`, or `paused` on an inconclusive
    probe of `env`. A person's go or abort comes as a message. Returns how many waits the
    release has had, this one included (`engine.waited_key`)."""
    ctx = ReleaseContext(release_id)
    why = (
        f"go for {env}"
        if status == ReleaseStatus.AWAITING_GO
        else f"an inconclusive probe of {env}"
    )
    # The event before the status: whoever follows the release until it rests has read it.
    ctx.record(Kind.RELEASE_WAITING, status=status, env=env, why=why)
    ctx.update(status=status, env=env)
    _announce(ctx, f"release.{status}", env=env, why=why)
    return len(ctx.store.events(release_id, kind=Kind.RELEASE_WAITING))


def _announce(ctx: ReleaseContext, event: str, **data: Any) -> None:
    """Tell the surfaces (Slack, the pull request); a surface that fails is recorded, not fatal."""
    from jackline import notify

    problems = notify.announce(event, ctx.config, {"release": asdict(ctx.release), **data})
    if problems:
        ctx.record(Kind.RELEASE_ANNOUNCE_FAILED, event=event, problems=problems)


def take(release_id: str, decision: ReleaseDecision) -> TakeOutcome:
    """A person's go or abort, checked again here whatever surface sent it."""
    ctx = ReleaseContext(release_id)
    by, kind = decision.by, decision.kind
    was, env = ctx.release.status, ctx.release.env
    # The status moves before the event is written: whoever sees the event also sees that the
    # release no longer rests at the wait.
    if kind == "abort":
        ctx.update(status=ReleaseStatus.ABORTING)
        ctx.record(Kind.RELEASE_ABORT, by=by, env=env, at=was)
        return TakeOutcome(True, "abort")
    refusal = go_refusal(ctx.release, ctx.config, by)
    if refusal:
        ctx.record(Kind.RELEASE_GO_REFUSED, by=by, reason=refusal)
        return TakeOutcome(False, "go")
    if was == ReleaseStatus.AWAITING_GO:
        ctx.update(
            status=ReleaseStatus.DEPLOYING.at(env),
            **({"go_by": by} if env == ctx.production else {}),
        )
    else:
        ctx.update(status=ReleaseStatus.PROBING.at(env))
    ctx.record(Kind.RELEASE_GO, by=by, env=env, at=was)
    return TakeOutcome(True, "go")


def go_refusal(release: Release, config: cfg.JacklineConfig, by: str) -> str | None:
    """Why `by` may not say go for `release`, or None."""
    if by == release.started_by and not config.release.allow_self_go:
        return (
            f"{by} started {release.id} and cannot say go for it; another person must "
            "(or set [release] allow_self_go = true)"
        )
    return None


# deploy, probe, soak ----------------------------------------------------------------------


def promote(release_id: str) -> PromoteOutcome:
    """Move `production_branch` to the release's commit, just before production's deploy."""
    ctx = ReleaseContext(release_id)
    branch = ctx.config.release.production_branch
    ref = f"refs/heads/{branch}"
    before = g.git(ctx.root, "rev-parse", "--verify", "--quiet", ref, check=False) or None
    done = ctx.store.events(ctx.release.id, kind=Kind.RELEASE_PROMOTED)
    if done:  # a retried step: keep what the branch pointed at before the first attempt
        before = json.loads(done[0].data)["before"]
    live = ctx.store.live(ctx.release.repo, ctx.production)
    ctx.update(previous_sha=live["sha"] if live else None)
    g.git(ctx.root, "update-ref", "-m", f"jackline: release {release_id}", ref, ctx.release.sha)
    if not done:
        ctx.record(Kind.RELEASE_PROMOTED, branch=branch, before=before, sha=ctx.release.sha)
    return PromoteOutcome(before)


def deploy(release_id: str, env: str) -> DeployOutcome:
    """Run the environment's deploy command for the release's commit, from its checkout."""
    ctx = ReleaseContext(release_id)
    ctx.update(status=ReleaseStatus.DEPLOYING.at(env), env=env)
    conf = ctx.env(env)
    offset = probes.log_offset(ctx.tree / conf.logs) if conf.logs else 0
    command = fill(conf.deploy, ctx.release.sha, ctx.release.previous_sha, env)
    ok = _run(ctx, "deploy", env, command)
    return DeployOutcome(ok, offset)


def _run(
    ctx: ReleaseContext, what: str, env: str, command: str | list[str], *also: str | None
) -> bool:
    """Run a deploy or rollback command in the checkout of the release's commit (holding the
    commits `also` names too); its redacted output goes to the log and the ledger."""
    log = ctx.dir / f"{what}-{env}.log"
    timeout = cfg.seconds(ctx.env(env).timeout)
    try:
        run_env = ctx.command_env(env)
        tree = ctx.checkout(*also)
    except JacklineError as e:
        ctx.probe(probes.make(what, "fail", str(e), time.monotonic()), env)
        return False
    done = proc.run(command, tree, run_env, log, timeout)
    if log.exists():
        text = ctx.redact(log.read_text(errors="replace"))
        log.write_text(text)
        ctx.store.put_artifact(ctx.release.id, log.name, text.encode())
    shown = command if isinstance(command, str) else " ".join(command)
    ctx.record(
        Kind(f"release.{what}"),
        env=env,
        command=shown,
        exit_code=done.exit_code,
        duration=round(done.duration, 3),
        timed_out=done.timed_out,
        tail=ctx.redact(done.tail()),
        log=str(log),
    )
    outcome: probes.Outcome = "pass" if done.exit_code == 0 else "fail"
    detail = f"`{shown}` exited {done.exit_code}" + (" (timed out)" if done.timed_out else "")
    if done.exit_code != 0:
        detail += "\n" + ctx.redact(done.tail(10))
    ctx.probe(Probe("", "", what, outcome, detail, round(done.duration, 3), time.time()), env)
    return done.exit_code == 0


def probe(release_id: str, env: str, offset: int) -> ProbeOutcome:
    """Wait until healthy, then the smoke checks, then the log since the deploy."""
    ctx = ReleaseContext(release_id)
    ctx.update(status=ReleaseStatus.PROBING.at(env), env=env)
    return _verdict(ctx, env, _checks(ctx, env, offset, smoke=True))


def start_soak(release_id: str, env: str, seconds: int) -> None:
    ctx = ReleaseContext(release_id)
    ctx.update(status=ReleaseStatus.SOAKING.at(env), env=env)
    ctx.record(Kind.RELEASE_SOAK, env=env, seconds=seconds)


def soak(release_id: str, env: str, offset: int) -> ProbeOutcome:
    """After the soak time: health and the log (everything since the deploy) once more."""
    ctx = ReleaseContext(release_id)
    return _verdict(ctx, env, _checks(ctx, env, offset, smoke=False, label="soak "))


def _checks(
    ctx: ReleaseContext, env: str, offset: int, smoke: bool, label: str = ""
) -> list[Probe]:
    conf = ctx.env(env)
    found: list[Probe] = []
    if conf.url and conf.health:
        health = probes.wait_healthy(conf.url + conf.health, cfg.seconds(conf.ready_timeout))
        found.append(replace(health, name=label + health.name))
    if conf.url and smoke and all(p.outcome == "pass" for p in found):
        found += [probes.smoke(conf.url, line) for line in conf.smoke]
    elif smoke and conf.smoke and not conf.url:
        detail = "smoke checks are configured but the environment has no `url`"
        found.append(probes.make("smoke", "inconclusive", detail, 0.0))
    if conf.logs:
        found.append(probes.scan_log(ctx.tree / conf.logs, offset, name=label + "logs"))
    return [ctx.probe(p, env) for p in found]


def _verdict(ctx: ReleaseContext, env: str, found: list[Probe]) -> ProbeOutcome:
    bad = tuple(f"{p.name}: {p.detail}" for p in found if p.outcome != "pass")
    return ProbeOutcome(probes.verdict(found), bad)


def mark_live(release_id: str, env: str) -> None:
    """The release passed `env`'s checks: it is what `env` serves now."""
    ctx = ReleaseContext(release_id)
    ctx.store.set_live(ctx.release.repo, env, ctx.release.id, ctx.release.sha)
    ctx.record(Kind.RELEASE_LIVE, env=env, sha=ctx.release.sha)


# rollback ---------------------------------------------------------------------------------


def rollback(release_id: str, reason: str, aborted: bool = False) -> str:
    """Put production back as it was before this release. A release rolled back for failing is
    marked not promotable, and the agent run that produced it gets the failure as feedback;
    an aborted one is neither. Returns the final status."""
    ctx = ReleaseContext(release_id)
    ctx.update(status=ReleaseStatus.ROLLING_BACK)
    env, previous = ctx.production, ctx.release.previous_sha
    failing = [p for p in ctx.store.probes(release_id) if p.outcome != "pass" and p.env == env]
    if failing and not aborted:
        reason += ": " + "; ".join(f"{p.name}: {p.detail.splitlines()[0]}" for p in failing)
    final = ReleaseStatus.ABORTED if aborted else ReleaseStatus.ROLLED_BACK
    if previous is None:
        ok, reason = _undo_first(ctx, reason)
        final = final if ok else ReleaseStatus.FAILED
    else:
        ok = put_back(ctx, previous, ctx.release.sha)
        if not ok:
            reason += "; the rollback did not come back healthy: a person must look now"
    changes: dict[str, Any] = {"status": final, "reason": reason}
    if not aborted:
        changes["promotable"] = False
    ctx.update(**changes)
    ctx.record(
        Kind.RELEASE_ROLLED_BACK, env=env, to=previous, ok=ok, reason=reason, aborted=aborted
    )
    if not aborted:
        tell_run(ctx, reason, failing)
    _announce(ctx, f"release.{final}", reason=reason)
    return final


def _undo_first(ctx: ReleaseContext, reason: str) -> tuple[bool, str]:
    """A first release leaves production as it was (serving nothing) if it can be taken down;
    where it cannot, it still serves, and the ledger says so (live, the branch on it) rather
    than calling production as it was. (taken down, the reason told)."""
    ok, why = take_down(ctx)
    if ok:
        _restore_branch(ctx, None)
        return True, reason + (
            "; nothing was live before it, so production was taken down (its `rollback` "
            "command, with no previous commit)"
        )
    ctx.store.set_live(ctx.release.repo, ctx.production, ctx.release.id, ctx.release.sha)
    return False, reason + (
        f"; nothing was live before it and {why}: production still serves it, recorded as "
        "live (fix forward, or stop it by hand)"
    )


def take_down(ctx: ReleaseContext) -> tuple[bool, str]:
    """Undo a first release in production, where nothing came before it to put back: the
    `rollback` command with `{previous_sha}` empty takes the environment down, and its health
    check must stop answering. (False, why not) where it cannot be done."""
    env = ctx.production
    conf = ctx.env(env)
    if conf.rollback is None:
        return False, "production has no `rollback` command to take it down with"
    if not _run(ctx, "rollback", env, fill(conf.rollback, ctx.release.sha, None, env)):
        return False, "its `rollback` command failed"
    if conf.url and conf.health:
        down = probes.wait_down(conf.url + conf.health, cfg.seconds(conf.ready_timeout))
        if ctx.probe(replace(down, name="rollback down"), env).outcome != "pass":
            return False, f"`{conf.health}` still answers after its `rollback` command"
    return True, ""


def put_back(ctx: ReleaseContext, to_sha: str, from_sha: str) -> bool:
    """Deploy `to_sha` to production again (the rollback command, or the deploy command with
    the older commit), check its health, and move the production branch and the ledger back."""
    env = ctx.production
    conf = ctx.env(env)
    if conf.rollback is not None:
        command = fill(conf.rollback, from_sha, to_sha, env)
    else:
        command = fill(conf.deploy, to_sha, from_sha, env)
    ok = _run(ctx, "rollback", env, command, to_sha)
    if ok and conf.url and conf.health:
        health = probes.wait_healthy(conf.url + conf.health, cfg.seconds(conf.ready_timeout))
        ok = ctx.probe(replace(health, name="rollback health"), env).outcome == "pass"
    _restore_branch(ctx, to_sha)
    restored = _release_of(ctx, to_sha)
    ctx.store.set_live(ctx.release.repo, env, restored, to_sha)
    return ok


def _restore_branch(ctx: ReleaseContext, sha: str | None) -> None:
    ref = f"refs/heads/{ctx.config.release.production_branch}"
    if sha is None:
        promoted = ctx.store.events(ctx.release.id, kind=Kind.RELEASE_PROMOTED)
        sha = json.loads(promoted[0].data)["before"] if promoted else None
    if sha is None:
        g.git(ctx.root, "update-ref", "-d", ref, check=False)
    else:
        g.git(ctx.root, "update-ref", "-m", f"jackline: rollback of {ctx.release.id}", ref, sha)


def _release_of(ctx: ReleaseContext, sha: str) -> str:
    """The release that last put `sha` live in production."""
    for row in ctx.store.live_history(ctx.release.repo, ctx.production, limit=1000):
        if row["sha"] == sha:
            return str(row["release_id"])
    return ""


def tell_run(ctx: ReleaseContext, reason: str, failing: list[Probe]) -> None:
    """Close the loop: the agent run behind the release gets the failure as feedback."""
    run_id = ctx.release.run_id
    if not run_id:
        return
    try:
        ctx.store.get_run(run_id)
    except NotFound:
        ctx.record(Kind.RELEASE_FEEDBACK_SKIPPED, run=run_id, why="the run is not in this ledger")
        return
    text = feedback_text(ctx.release, reason, failing)
    ctx.audit.record(
        run_id,
        Kind.RELEASE_ROLLED_BACK,
        release=ctx.release.id,
        sha=ctx.release.sha,
        reason=reason,
        feedback=text,
    )


def feedback_text(release: Release, reason: str, failing: list[Probe]) -> str:
    lines = [
        f"Release {release.id} of {release.sha[:10]}, which includes this run's change, was "
        f"rolled back: {reason}.",
        "",
        "Probes that failed:",
    ]
    lines += [f"- {p.env} {p.name}: {p.detail}" for p in failing] or ["- (none recorded)"]
    lines += ["", "Fix the cause so these probes pass; the same commit will not be released again."]
    return "\n".join(lines)


def feedback_for(run_id: str) -> str | None:
    """The latest rollback feedback for a run, for a follow-up run's brief (None if none)."""
    store = Store()
    rows = store.events(run_id, kind=Kind.RELEASE_ROLLED_BACK)
    return str(json.loads(rows[-1].data)["feedback"]) if rows else None


def manual_put_back(release_id: str, to_sha: str) -> bool:
    """A person rolls production back from this live release to `to_sha` (`put_back`); whether
    it came back healthy. Safe to run again: it deploys the same commit again."""
    ctx = ReleaseContext(release_id)
    ctx.update(status=ReleaseStatus.ROLLING_BACK)
    return put_back(ctx, to_sha, ctx.release.sha)


def manual_rolled_back(release_id: str, to_sha: str, by: str, ok: bool) -> str:
    """After `manual_put_back`: the release is marked not promotable and its run, if an
    agent's, hears of it (once, should this step run again). Returns the final status."""
    ctx = ReleaseContext(release_id)
    reason = f"rolled back by {by} to {to_sha[:10]}"
    if not ok:
        reason += "; the rollback did not come back healthy: a person must look now"
    ctx.update(status=ReleaseStatus.ROLLED_BACK, promotable=False, reason=reason)
    if not ctx.store.events(release_id, kind=Kind.RELEASE_ROLLED_BACK):
        ctx.record(
            Kind.RELEASE_ROLLED_BACK, env=ctx.production, to=to_sha, ok=ok, reason=reason, by=by
        )
        tell_run(ctx, reason, [p for p in ctx.store.probes(release_id) if p.outcome != "pass"])
    return ReleaseStatus.ROLLED_BACK


# finish -----------------------------------------------------------------------------------


def finish(release_id: str, outcome: ReleaseStatus, reason: str = "") -> None:
    ctx = ReleaseContext(release_id)
    if not reason and outcome != ReleaseStatus.LIVE:
        bad = [p for p in ctx.store.probes(release_id) if p.outcome != "pass"]
        reason = "; ".join(f"{p.env} {p.name}: {p.detail.splitlines()[0]}" for p in bad[-3:])
    # The event before the status: whoever follows the release until it ends has read it.
    ctx.record(Kind.RELEASE_FINISHED, outcome=outcome, reason=reason, env=ctx.release.env)
    ctx.update(status=outcome, reason=reason)
    if outcome in (ReleaseStatus.LIVE, ReleaseStatus.FAILED):
        _announce(ctx, f"release.{outcome}", reason=reason)
