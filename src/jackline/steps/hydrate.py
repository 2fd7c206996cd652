"""hydrate: the brief, feedback and context the agent is handed at the start of a round."""

from __future__ import annotations

import json

from jackline import config as cfg
from jackline import context
from jackline.events import Kind
from jackline.steps.context import RunContext


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
        Kind.HYDRATE,
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
