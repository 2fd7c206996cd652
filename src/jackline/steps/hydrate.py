"""hydrate: the brief, feedback and context the agent is handed at the start of a round."""

from __future__ import annotations

import json
import re

from jackline import config as cfg
from jackline import context
from jackline.events import Kind
from jackline.steps.context import RunContext
from jackline.steps.moving import working


def hydrate(
    run_id: str,
    round_no: int,
    feedback: str | None,
    prompt: str | None = None,
    rounds: int | None = None,
) -> str:
    """The round's brief and feedback in the inbox. A blueprint's agentic step may give its own
    `prompt` template and round limit (`rounds`): the brief is then the template filled in."""
    ctx = working(run_id)
    # A round's commands get the services' variables: started again here where a blocked run
    # stopped them while it waited for a person.
    ctx.services()
    in_play = {*context.paths_named(ctx.run.task, ctx.ws), *ctx.run.paths}
    rules = context.select_rules(ctx.ws, in_play)
    text = context.render_brief(ctx.run.task, ctx.ws, ctx.config, rules, round_no, rounds)
    # Redacted here too: the feedback becomes part of the agent's `{prompt}`, which its log and
    # the audit log keep (a reviewer may paste a secret into their words).
    feedback = ctx.redact(feedback) if feedback else None
    handed = feedback
    if prompt is not None:
        text = _filled(prompt, ctx.run.task, text, feedback, round_no, rounds)
        handed = None if "{feedback}" in prompt else feedback  # in the brief: not said twice
    ctx.hand_over("brief.md", text)
    _write_mcp_context(ctx, round_no)
    ctx.hand_over("feedback.md", handed)
    keep = ctx.dir / f"round-{round_no}"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "brief.md").write_text(ctx.redact(text))
    if feedback:
        (keep / "feedback.md").write_text(feedback)
    ctx.record(
        Kind.HYDRATE,
        round=round_no,
        rules=[r.source for r in rules],
        paths=sorted(in_play),
        feedback=bool(feedback),
    )
    ctx.announce("run.round", round=round_no)  # an issue's progress comment says it
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


def _filled(
    template: str, task: str, brief: str, feedback: str | None, round_no: int, rounds: int | None
) -> str:
    """A prompt template with its placeholders filled (`blueprints.PLACEHOLDERS`), each by
    plain replacement: any other brace in it (a JSON example, say) stays as written."""
    values = {
        "task": task,
        "brief": brief,
        "feedback": feedback or "",
        "round": str(round_no),
        "rounds": str(rounds or ""),
    }
    return re.sub(r"\{([a-z]+)\}", lambda m: values.get(m[1], m[0]), template)
