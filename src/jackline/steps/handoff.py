"""handoff: the written account of a run a person reads (see `jackline.handoff` for its rendering)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from jackline import artifacts, context, handoff, repos, safeio
from jackline import git as g
from jackline.checks import junit, report_file
from jackline.events import Kind, ci_line
from jackline.guard.audit import Event
from jackline.models import FINAL, AgentRound, Status
from jackline.review import in_force
from jackline.steps.context import RunContext
from jackline.steps.moving import here, working
from jackline.workspaces import services

NOTES = ".jackline/notes.md"

NOTES_LIMIT = 64 << 10
"""Bytes of the agent's notes read at most (a cut is said in the text)."""


def write_handoff(run_id: str, outcome: Status, rebuild: bool = True) -> str:
    """The handoff, from the run's record, its audit log and its workspace. In the workflow
    the workspace is made again here if it is not (`moving.working`): the handoff describes
    the work. A cancel or a failure (`rebuild=False`) writes it from wherever it happens, with
    the workspace only if it is this run's on this machine."""
    ctx = working(run_id) if rebuild else RunContext(run_id)
    if not rebuild and ctx.run.workspace:
        here(ctx)
    if (outcome in FINAL or outcome == Status.BLOCKED) and ctx.checked:
        # The workspace stays for a person to look at; its database need not keep running
        # (a blocked run sent back starts them again with its next round: `hydrate`).
        stopped = services.stop(ctx.ws)
        if stopped:
            ctx.record(Kind.CLEANUP, services=stopped)
    events = ctx.audit.read(run_id)
    rounds = [handoff.round_from_json(e.data) for e in events if e.kind == Kind.ROUND]
    last = rounds[-1] if rounds else None
    measured = last.agent.measured() if last and last.agent else None
    if outcome == Status.FAILED and last and last.problem and measured:
        ctx.update(reason=agent_reason(measured))
    h = handoff.redacted(_handoff(ctx, outcome, events, rounds), ctx.redact.deep)
    path = artifacts.keep_handoff(h, ctx.dir, ctx.store, run_id)
    # The surfaces are told before the status moves: a CLI waiting for the run to rest
    # exits once it does, and would end an announcement still under way with it.
    ctx.run = replace(ctx.run, status=outcome, handoff=str(path))
    # Each surface renders the record its own way: the pull request's body is the markdown,
    # Slack reads the record (its JSON).
    ctx.announce(f"run.{outcome}", handoff=handoff.markdown(h), record=handoff.as_json(h))
    # The event before the status: whoever sees the run rest finds its handoff in the log.
    ctx.record(Kind.HANDOFF, outcome=outcome, path=str(path))
    if outcome == Status.MERGED:
        # Merged is said by `finish`, once the workspace is gone: whoever waits for the run to
        # rest (an `approve`) then finds nothing of it still being removed.
        ctx.update(handoff=str(path))
    else:
        ctx.update(status=outcome, handoff=str(path))
    return str(path)


def _handoff(
    ctx: RunContext, outcome: str, events: list[Event], rounds: list[handoff.Round]
) -> handoff.Handoff:
    """The record of the run, from its audit log, its workspace and its record (not redacted)."""
    reverted = list(ctx.run.reverted)
    files = _files_changed(ctx)
    # The agent's notes: a file of the workspace's own (a link to /etc/shadow is no notes).
    notes = (safeio.read_text(ctx.ws, NOTES, NOTES_LIMIT) or "") if ctx.checked else ""
    failing = _still_failing(rounds[-1]) if rounds else []
    scans = [e.data for e in events if e.kind == Kind.SCAN]
    findings = [handoff.finding_from_json(f) for f in (scans[-1]["findings"] if scans else [])]
    named = context.paths_named(ctx.run.task, ctx.ws) if ctx.checked else []
    return handoff.Handoff(
        run=ctx.run.id,
        task=ctx.run.task,
        outcome=outcome,
        branch=ctx.run.branch,
        base=ctx.run.base_sha,
        head=ctx.run.head_sha,
        merge=ctx.run.merge_sha,
        workspace=ctx.run.workspace,
        summary=_summary(ctx, outcome, rounds, files),
        files=tuple(files),
        rounds=tuple(rounds),
        commands=tuple(handoff.command_from_json(e.data) for e in events if e.kind == Kind.COMMAND),
        notes=notes,
        findings=tuple(findings),
        owners=tuple(ctx.config.review.owners),
        people=_people(events),
        look_twice=tuple(handoff.look_twice(files, named, reverted, failing, notes, findings)),
        timeline=_timeline(events),
        spend=handoff.Spend(round(ctx.run.spend, 4), ctx.run.tokens),
        undo=tuple(_undo(ctx, outcome)),
        fixed_tests=_fixed_tests(ctx, rounds),
        diff=_see_diff(ctx, outcome),
        accepted=tuple(in_force(events)),
        ci=tuple(
            ci_line(e.data) for e in events if e.kind == Kind.CI and e.data["state"] != "waiting"
        ),
    )


def _still_failing(last: handoff.Round) -> list[str]:
    """Each check still failing in the last round, with its first failures."""
    if last.passed:
        return []
    return [
        f"`{c.name}`: "
        + "; ".join((f"{f.test or f.file or ''} {f.message}").strip() for f in c.failures[:3])
        for c in last.checks
        if not c.passed
    ]


def _fixed_tests(ctx: RunContext, rounds: list[handoff.Round]) -> tuple[handoff.FixedTest, ...]:
    """Tests that failed in an earlier round and that the last round's report shows passing:
    read from the report, never inferred from an exit code (a deleted test does not pass)."""
    failed: dict[tuple[str, str], set[int]] = {}
    for r in rounds[:-1]:
        for c in r.checks:
            for f in c.failures:
                if f.test:
                    failed.setdefault((c.name, f.test), set()).add(r.round)
    if not failed:
        return ()
    last = rounds[-1].round
    passed = {
        name: junit.passed_tests(report_file(ctx.dir / f"round-{last}", name))
        for name in {name for name, _ in failed}
        if name in ctx.config.checks and ctx.config.checks[name].parser == "junit"
    }
    return tuple(
        handoff.FixedTest(name, test, tuple(sorted(where)))
        for (name, test), where in sorted(failed.items())
        if test in passed.get(name, set())
    )


def _see_diff(ctx: RunContext, outcome: str) -> str:
    """A command that shows the run's change, where it is: on the branch published in the user's
    repository, in the merge, or in the workspace (through the harness's git directory: the
    workspace's own `.git` is the agent's)."""
    repo, main, run = ctx.run.repo, ctx.config.project.main, ctx.run
    url = repos.parse(repo).shown if repos.is_url(repo) else None
    if outcome == Status.MERGED and run.merge_sha:
        if url:  # any clone of the repository, the person's own included
            return f"git fetch {url} {main} && git diff {run.merge_sha}^1 {run.merge_sha}"
        return f"git -C {repo} diff {run.merge_sha}^1 {run.merge_sha}"
    if run.pull_request:
        return f"the pull request's changes: {run.pull_request}"
    if run.published and run.head_sha:
        if url:
            return f"git fetch {url} {run.branch} && git diff {run.base_sha}...FETCH_HEAD"
        return f"git -C {repo} diff {main}...{run.branch}"
    if not run.workspace:
        return ""
    ws = Path(run.workspace)  # a command for a person to type: the path, wherever it is
    where = f"--git-dir={g.gitdir_path(ws)} --work-tree={ws}"
    if run.head_sha:
        return f"git {where} diff {run.base_sha} {run.head_sha}"
    # Not committed: `diff` shows what changed in the files git knows, `status` the new ones.
    return f"git {where} status --short; git {where} diff {run.base_sha}"


def agent_reason(agent: AgentRound) -> str:
    """Why a run whose last round the agent failed ended: what happened, and the last line it
    printed where it failed (`Not logged in`), which is most often the cause."""
    said = agent.last_line() if agent.exit_code != 0 or agent.timed_out else ""
    return f"{agent.problem()}: {said[:200]}" if said else str(agent.problem())


def _people(events: list[Event]) -> tuple[handoff.Person, ...]:
    """Who submitted and who decided, each with the OS user who claimed the name, if claimed."""
    return tuple(
        handoff.Person(
            action="submit" if e.kind == Kind.SUBMITTED else str(e.data["decision"]),
            by=str(e.data["by"]),
            claimed_by_os_user=str(e.data.get("claimed_by_os_user") or ""),
        )
        for e in events
        if e.kind in (Kind.SUBMITTED, Kind.DECISION)
    )


def _timeline(events: list[Event], per_round: int = 12) -> tuple[handoff.TimelineEntry, ...]:
    """What the agent did, from its transcript: a few lines per round for the handoff."""
    out = [
        handoff.timeline_from_json({**e.data, "kind": e.kind[6:]})
        for e in events
        if e.kind in (Kind.AGENT_COMMAND, Kind.AGENT_TOOL, Kind.AGENT_EDIT, Kind.AGENT_MESSAGE)
    ]
    kept: list[handoff.TimelineEntry] = []
    for r in sorted({x.round for x in out}, key=lambda x: x or 0):
        steps = [x for x in out if x.round == r]
        kept += steps[:per_round]
        if len(steps) > per_round:
            kept.append(handoff.TimelineEntry(r, "more", f"{len(steps) - per_round} more"))
    return tuple(kept)


def _files_changed(ctx: RunContext) -> list[handoff.ChangedFile]:
    if not ctx.checked or not ctx.run.base_sha:
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
            handoff.ChangedFile(
                path,
                added=int(added) if added.isdigit() else 0,
                removed=int(removed) if removed.isdigit() else 0,
            )
        )
    return files


def _summary(
    ctx: RunContext,
    outcome: str,
    rounds: list[handoff.Round],
    files: list[handoff.ChangedFile],
) -> str:
    n = len(rounds)
    added = sum(f.added for f in files)
    removed = sum(f.removed for f in files)
    change = f"{len(files)} file{'s' if len(files) != 1 else ''} changed (+{added} / -{removed})."
    names = ", ".join(f"`{c}`" for c in ctx.config.checks) or "none configured"
    # A reason may quote the agent (its last line) or a person: text, not markdown.
    reason = handoff.text(ctx.run.reason)
    if outcome == Status.BLOCKED:
        return (
            f"The run is blocked: {reason}. {change} Nothing was committed or pushed; "
            f"the work waits in the workspace `{ctx.run.workspace}` for a person's decision: "
            f"`jackline request-changes {ctx.run.id} -m TEXT` gives the agent another round, "
            "told the file and line of each secret (the next scan must find none), or "
            f"`jackline reject {ctx.run.id}` closes the run and removes the workspace. It cannot "
            "be approved. If the secret is real, rotate it either way: it was on disk."
        )
    if outcome == Status.CANCELLED:
        kept = f"the workspace `{ctx.run.workspace}`" if ctx.run.workspace else "no workspace"
        return (
            f"The run was cancelled ({reason}). {change} Nothing was merged; {kept} "
            "stays for a person (`jackline clean` removes it)."
        )
    if outcome == Status.OVER_BUDGET:
        return (
            f"The run stopped {reason} after {n} round{'s' if n != 1 else ''}. {change} "
            f"The work is in the workspace `{ctx.run.workspace}` (not committed) for a person."
        )
    if outcome == Status.FAILED:
        if ctx.run.reason:
            return f"The run failed: {reason}. {change}"
        return (
            f"The checks still fail after {n} round{'s' if n != 1 else ''}; a person takes over. "
            f"{change} The work is in the workspace `{ctx.run.workspace}` (not committed)."
        )
    verb = "was merged into" if outcome == Status.MERGED else "is ready for review against"
    owners = ", ".join(ctx.config.review.owners) or "nobody yet: set [review] owners"
    marked = (
        f" {ctx.run.blocking} block-level finding{'s' if ctx.run.blocking != 1 else ''}: "
        f"only an owner may approve ({owners}), unless an owner accepts each on this head."
        if ctx.run.blocking and outcome == Status.AWAITING_REVIEW
        else ""
    )
    return (
        f"After {n} round{'s' if n != 1 else ''} every check passes ({names}). {change} "
        f"The branch `{ctx.run.branch}` {verb} `{ctx.config.project.main}`.{marked}"
    )


def _undo(ctx: RunContext, outcome: str) -> list[str]:
    if outcome == Status.MERGED and ctx.run.merge_sha:
        return [_revert(ctx, ctx.run.merge_sha), _delete_branch(ctx)]
    if outcome == Status.BLOCKED:  # it waits for a decision: `clean` keeps its workspace
        return [
            "Nothing is merged or pushed. Close the run and remove its workspace: "
            f"`jackline reject {ctx.run.id}`",
            "If the secret is real, rotate it: it was on disk in the workspace.",
        ]
    if outcome in (Status.FAILED, Status.CANCELLED):
        return [f"Nothing is merged or pushed. Remove the workspace: `jackline clean {ctx.run.id}`"]
    steps = [f"Nothing is merged. Reject: `jackline reject {ctx.run.id}`"]
    if ctx.run.head_sha:
        steps.append(_delete_branch(ctx))
    if ctx.run.workspace:
        steps.append(f"Remove the workspace: `rm -rf {ctx.run.workspace}`")
    return steps


def _revert(ctx: RunContext, sha: str) -> str:
    """How to revert the merge: in the repository, or for a URL in any clone of it, pushed."""
    repo, main = ctx.run.repo, ctx.config.project.main
    if repos.is_url(repo):
        url = repos.parse(repo).shown
        command = f"git revert -m 1 {sha} && git push {url} HEAD:{main}"
        return f"Revert the merge, in a clone of {url} on {main}: `{command}`"
    return f"Revert the merge: `git -C {repo} revert -m 1 {sha}`"


def _delete_branch(ctx: RunContext) -> str:
    repo, branch = ctx.run.repo, ctx.run.branch
    if repos.is_url(repo):
        return f"Delete the branch: `git push {repos.parse(repo).shown} --delete {branch}`"
    return f"Delete the branch: `git -C {repo} branch -D {branch}`"
