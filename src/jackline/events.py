"""Every kind of audit event the harness records, what it means, and the one line it is told in.

A run's, a release's and a flag file's audit streams hold events of the kinds below and no
others: `AuditLog.record` takes a `Kind` and refuses a string that names none, so a kind
misspelt where it is recorded or looked for is a type error, and one made up at run time (an
agent's step, a release's command) fails loudly instead of writing an event nothing reads.

The line (`describe`) is plain text made of the event's recorded data, which is redacted before
it is written; the CLI (`jackline logs`, a run's progress) and the web's run and release pages
all say it. A line that cannot be made (an event written by an older harness, without a field
the line names) falls back to the data itself, shortened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

Data = dict[str, Any]
Tone = Literal["", "warn", "bad"]
"""How a line is shown where colour helps: `warn` (yellow), `bad` (red), or plain."""


class Kind(StrEnum):
    # a run
    SUBMITTED = "submitted"
    CLAIM = "claim"
    WORKSPACE = "workspace"
    WORKSPACE_REBUILT = "workspace.rebuilt"
    WORK_NOT_KEPT = "work.not_kept"
    SETUP = "setup"
    SERVICES = "services"
    STEP = "step"
    WARNING = "warning"
    HYDRATE = "hydrate"
    AGENT_RULES = "agent.rules"
    COMMAND = "command"
    NETWORK = "network"
    REDACTED = "redacted"
    SCOPE = "scope"
    AGENT_COMMAND = "agent.command"
    AGENT_EDIT = "agent.edit"
    AGENT_TOOL = "agent.tool"
    AGENT_MESSAGE = "agent.message"
    AGENT_USAGE = "agent.usage"
    ROUND = "round"
    MERGE_CHECK = "merge-check"
    BUDGET = "budget"
    SCAN = "scan"
    COMMIT = "commit"
    PUBLISH = "publish"
    CI = "ci"
    HANDOFF = "handoff"
    ANNOUNCE_FAILED = "announce_failed"
    DECISION = "decision"
    DECISION_REFUSED = "decision_refused"
    ACCEPTED = "accepted"
    COMMENT = "comment"
    ONTO_MAIN = "onto_main"
    MERGE = "merge"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    CLEANUP = "cleanup"
    ERROR = "error"
    # a release (RELEASE_ROLLED_BACK is also told to the run whose change was rolled back)
    RELEASE_STARTED = "release.started"
    RELEASE_GATE = "release.gate"
    RELEASE_WAITING = "release.waiting"
    RELEASE_ANNOUNCE_FAILED = "release.announce_failed"
    RELEASE_GO = "release.go"
    RELEASE_GO_REFUSED = "release.go_refused"
    RELEASE_ABORT = "release.abort"
    RELEASE_DEPLOY = "release.deploy"
    RELEASE_ROLLBACK = "release.rollback"
    RELEASE_PROBE = "release.probe"
    RELEASE_SOAK = "release.soak"
    RELEASE_PROMOTED = "release.promoted"
    RELEASE_LIVE = "release.live"
    RELEASE_ROLLED_BACK = "release.rolled_back"
    RELEASE_FEEDBACK_SKIPPED = "release.feedback_skipped"
    RELEASE_FINISHED = "release.finished"
    # a flag file
    FLAG_SET = "flag.set"
    # the server's access (one stream, `ACCESS`): tokens made and revoked, sign-ins
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    SIGNED_IN = "signin"
    SIGNIN_REFUSED = "signin.refused"


ACCESS = "access"
"""The audit stream of the server's access: every token made or revoked, every sign-in to the
web page and every one refused (`jackline token log`)."""


def _until(d: Data) -> str:
    return f", expires {d['expires']}" if d.get("expires") else ""


@dataclass(frozen=True)
class Spec:
    meaning: str
    """What an event of this kind says happened, in one sentence."""
    line: Callable[[Data], str]
    """The event in one line of plain text, from its (redacted) data."""
    told: Callable[[Data], bool] = lambda d: True
    """Whether a run's or a release's progress on the terminal tells it as it happens (the
    log and the web page show every event)."""
    tone: Callable[[Data], Tone] = lambda d: ""


def known(kind: str) -> Kind:
    """The registered kind `kind` names; any other is a bug where it was made up."""
    try:
        return Kind(kind)
    except ValueError:
        raise ValueError(f"no event kind {kind!r} is registered in jackline.events") from None


def describe(kind: str, data: Data) -> str:
    """One line a person reads; the event's data, shortened, where no line can be made."""
    spec = _SPECS.get(kind)
    line = _safely(lambda: spec.line(data), "") if spec else ""
    return _one_line(line) if line else short(json.dumps(data, sort_keys=True), 200)


def told(kind: str, data: Data) -> bool:
    """Whether a run's or a release's progress tells the event as it happens."""
    spec = _SPECS.get(kind)
    return _safely(lambda: spec.told(data), False) if spec else False


def tone(kind: str, data: Data) -> Tone:
    spec = _SPECS.get(kind)
    return _safely(lambda: spec.tone(data), "") if spec else ""


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


T = TypeVar("T")


def _safely(make: Callable[[], T], otherwise: T) -> T:
    # An event an older harness wrote may lack a field the line names today.
    try:
        return make()
    except (KeyError, TypeError, ValueError, AttributeError):
        return otherwise


def _one_line(text: str) -> str:
    return " / ".join(x.strip() for x in text.splitlines() if x.strip())


# the lines ------------------------------------------------------------------------------------


def _who(d: Data) -> str:
    claim = (
        f" (claimed by OS user {d['claimed_by_os_user']})" if d.get("claimed_by_os_user") else ""
    )
    return f"{d['by']}{claim}"


def _round(d: Data) -> str:
    return f"round {d['round']}: " if d.get("round") is not None else ""


def _setup(d: Data) -> str:
    number = f" {d['number']}/{d['of']}" if "number" in d else ""
    return f"set-up{number} `{short(d['command'], 60)}`"


def _command(d: Data) -> str:
    step, took = str(d["step"]), f"after {d['duration']:.1f}s"
    if step == "agent":
        return f"{_round(d)}agent exited {d['exit_code']} {took}"
    if step.startswith("check:"):
        mark = "pass" if d["exit_code"] == 0 else "FAIL"
        return f"{_round(d)}check {step[6:]} {mark} ({d['duration']:.1f}s)"
    if step == "setup":
        return f"prepare: {_setup(d)} exited {d['exit_code']} {took}"
    if step.startswith("step:"):  # a blueprint's deterministic step: what it changed is kept
        kept = len(d.get("changed") or []) + len(d.get("created") or [])
        mark = "pass" if d.get("passed") else "FAIL"
        return f"step {step[5:]} {mark}, {kept} file(s) changed ({d['duration']:.1f}s)"
    return f"{step}: `{short(d['command'], 60)}` exited {d['exit_code']} {took}"


def _command_tone(d: Data) -> Tone:
    if str(d["step"]).startswith("step:"):  # its rule, not its exit, says whether it failed
        return "" if d.get("passed") else "bad"
    return "bad" if d["exit_code"] != 0 else ""


def _workspace(d: Data) -> str:
    if "revived" in d:  # a lost workspace made again from the run's commits
        return f"prepare: workspace revived at {d['revived']}"
    box = d.get("sandbox", "none")
    return f"prepare: workspace ready on {d['branch']} ({d['method']}, sandbox {box})"


def _hydrate(d: Data) -> str:
    # The feedback is told when it is handed over, not promised when a round fails: after the
    # last round there is none to give.
    fed = f", and round {d['round'] - 1}'s feedback" if d.get("feedback") else ""
    rules = ", ".join(d["rules"]) or "-"
    return f"round {d['round']}: brief with {len(d['rules'])} rule(s): {rules}{fed}"


def _agent_step(d: Data, kind: str) -> str:
    code = f" (exit {d['exit_code']})" if d.get("exit_code") is not None else ""
    failed = " (failed)" if d.get("error") else ""
    return f"{_round(d)}{kind} {short(d['summary'], 90)}{code}{failed}"


def _agent_tone(d: Data) -> Tone:
    return "bad" if d.get("error") or d.get("exit_code") not in (None, 0) else ""


def _network(d: Data) -> str:
    said = "allowed" if d.get("allowed") else "refused"
    error = f", but: {d['error']}" if d.get("error") else ""
    return f"network: {d['method']} {d['host']}:{d['port']} {said} ({d['reason']}){error}"


def _checked(name: str) -> Callable[[Data], str]:
    def line(d: Data) -> str:
        if d["passed"]:
            return f"{name} {d['round']}: checks passed"
        return f"{name} {d['round']}: {d.get('problem') or 'checks failed'}"

    return line


def _failed(d: Data) -> Tone:
    return "" if d["passed"] else "bad"


def ci_line(d: Data) -> str:
    """GitHub's checks, as the log and the handoff say them."""
    head = str(d.get("head") or "")[:10]
    checks = ", ".join(d.get("checks") or ())
    state = d["state"]
    if state == "waiting":
        needed = f" (required: {', '.join(d['required'])})" if d.get("required") else ""
        return f"GitHub CI: waiting for the checks on {head}{needed}"
    if state == "failed":
        then = "handed to the agent" if d.get("again") else "no round left"
        return f"GitHub CI failed on {head}: {', '.join(d.get('failed') or ())} ({then}); {checks}"
    if state == "none":
        return f"GitHub CI: no check ran on {head} within {d.get('waited')}s"
    if state == "timeout":
        return f"GitHub CI: not finished on {head} after {d.get('waited')}s; {checks}"
    return f"GitHub CI passed on {head}: {checks}"


def _ci_tone(d: Data) -> Tone:
    if d["state"] in ("failed", "timeout"):
        return "bad"
    return "warn" if d["state"] == "none" else ""


def _publish(d: Data) -> str:
    where = d.get("pull_request") or d.get("repo") or d.get("forge", "")
    return f"publish: {d['branch']} -> {where}"


def _decision(d: Data) -> str:
    said = f": {short(d['message'], 120)}" if d.get("message") else ""
    return f"review: {d['decision'].replace('_', ' ')} by {_who(d)}{said}"


def _accepted(d: Data) -> str:
    where = f" {d['file']}" + (f":{d['line']}" if d.get("line") else "") if d.get("file") else ""
    left = f"; {d['left']} block-level finding(s) still need an owner" if d.get("left") else ""
    return (
        f"review: {d['level']} finding {d['finding']} ({d['rule']}{where}) accepted by {_who(d)} "
        f"on {(d['head'] or 'no commit')[:10]}: {short(d['reason'], 120)}{left}"
    )


def _onto_main(d: Data) -> str:
    clash = f"; conflicts marked in {', '.join(d['conflicts'])}" if d["conflicts"] else ""
    return f"rebase: {d['main']} moved: the round starts on {d['sha'][:10]}{clash}"


def _cancelled(d: Data) -> str:
    said = f": {short(d['message'], 120)}" if d.get("message") else ""
    return f"cancelled by {_who(d)} (it was {d['was']}){said}"


def _cleanup(d: Data) -> str:
    if "services" in d:
        return f"services stopped: {', '.join(map(str, d['services'])) or '-'}"
    return f"workspace removed: {d['removed']}"


def _gate(d: Data) -> str:
    if d["ok"]:
        return f"gate: passed (live: {(d['live_sha'] or 'nothing')[:10]})"
    return f"gate: BLOCKED: {'; '.join(map(str, d['problems']))}"


def _release_command(d: Data, what: str) -> str:
    took = f"({d['duration']:.1f}s)" + (" (timed out)" if d.get("timed_out") else "")
    return f"{what} {d['env']}: `{short(d['command'], 60)}` exited {d['exit_code']} {took}"


def _probe(d: Data) -> str:
    first = d["detail"].splitlines()[0] if d["detail"] else ""
    return (
        f"probe {d['env']}: {d['name']} {d['outcome']} ({d['duration']:.2f}s) {short(first, 120)}"
    )


def _probe_tone(d: Data) -> Tone:
    return {"pass": "", "fail": "bad"}.get(d["outcome"], "warn")  # type: ignore[return-value]


def _rolled_back(d: Data) -> str:
    if "release" in d:  # told to the run whose change it was
        return f"release {d['release']} of {d['sha'][:10]} rolled back: {d['reason']}"
    return f"rollback: {d['env']} back to {(d['to'] or 'nothing')[:10]}: {d['reason']}"


def _finished(d: Data) -> str:
    return f"finished {d['outcome']}" + (f": {d['reason']}" if d.get("reason") else "")


def _announce_failed(d: Data) -> str:
    return f"telling {d['event']} failed: {'; '.join(map(str, d['problems']))}"


def _always(tone: Tone) -> Callable[[Data], Tone]:
    return lambda d: tone


_NEVER: Callable[[Data], bool] = lambda d: False  # noqa: E731

SPECS: dict[Kind, Spec] = {
    Kind.SUBMITTED: Spec(
        "A person gave the task; the config the run follows is recorded with it.",
        lambda d: f"submitted by {_who(d)}: {short(d['task'], 120)}",
        told=_NEVER,
    ),
    Kind.CLAIM: Spec(
        "A name was claimed on the command line (`--as`, `[review] allow_as`), before the "
        "action it names.",
        lambda d: f"{d['action']} as {_who(d)}",
        told=_NEVER,
    ),
    Kind.WORKSPACE: Spec("The run's workspace was made (or made again).", _workspace),
    Kind.WORKSPACE_REBUILT: Spec(
        "The run's workspace was not this run's on this machine (another worker made it, it "
        "is gone or was replaced): it was made again here from the work the run kept after its "
        "last finished step.",
        lambda d: (
            f"workspace rebuilt on {d['host']} from the work of {d['step']} "
            f"({d['seconds']:.1f}s): {d['why']}"
        ),
        tone=_always("warn"),
    ),
    Kind.WORK_NOT_KEPT: Spec(
        "The work of a step could not be kept in the store (too large, or it holds a secret): "
        "until a later step's is, the run cannot move to another machine.",
        lambda d: f"work of {d['step']} not kept: {d['why']}",
        tone=_always("warn"),
        told=_NEVER,
    ),
    Kind.SETUP: Spec(
        "A set-up command starts (set-up may take a minute: each is told as it starts).",
        lambda d: f"prepare: {_setup(d)} ...",
    ),
    Kind.SERVICES: Spec(
        "The project's services failed to start.",
        lambda d: f"prepare: services failed: {d['error']}",
        tone=_always("bad"),
        told=_NEVER,
    ),
    Kind.STEP: Spec(
        "A step of the blueprint starts.",
        lambda d: (
            f"step {d['step']}"
            + (f" (round {d['round']})" if "round" in d else "")
            + (" again, after an interruption" if d.get("retry") else "")
            + (f": {d['reason']}" if d.get("reason") else "")
        ),
        told=_NEVER,
    ),
    Kind.WARNING: Spec(
        "Something a person should know that does not stop the run.",
        lambda d: f"warning: {d['message']}",
        tone=_always("warn"),
    ),
    Kind.HYDRATE: Spec("The agent's brief for a round was written.", _hydrate),
    Kind.AGENT_RULES: Spec(
        "The rules in scope were written where the agent's program looks for them.",
        lambda d: f"{_round(d)}rule files for the agent: {', '.join(d['files'])}",
        told=_NEVER,
    ),
    Kind.COMMAND: Spec(
        "A command ran in the sandbox (the agent, a check, a set-up command, a blueprint's "
        "`step:NAME`, with the files it changed and created), with its exit code, time and the "
        "tail of its output.",
        _command,
        told=lambda d: (
            d["step"] in ("agent", "setup") or str(d["step"]).startswith(("check:", "step:"))
        ),
        tone=_command_tone,
    ),
    Kind.NETWORK: Spec(
        "A request through the sandbox's network proxy, allowed or refused.",
        _network,
        told=_NEVER,
        tone=lambda d: "" if d.get("allowed") and not d.get("error") else "warn",
    ),
    Kind.REDACTED: Spec(
        "Secrets were cut from what the agent printed.",
        lambda d: f"{_round(d)}{d['count']} secret(s) redacted from the {d['where']}",
        told=_NEVER,
    ),
    Kind.SCOPE: Spec(
        "Writes outside the run's scope were reverted after a round.",
        lambda d: f"{_round(d)}reverted out-of-scope writes: {', '.join(d['reverted'])}",
        tone=_always("warn"),
    ),
    Kind.AGENT_COMMAND: Spec(
        "The agent ran a shell command (from its transcript).",
        lambda d: _agent_step(d, "command"),
        tone=_agent_tone,
    ),
    Kind.AGENT_EDIT: Spec(
        "The agent wrote or changed a file (from its transcript).",
        lambda d: _agent_step(d, "edit"),
        tone=_agent_tone,
    ),
    Kind.AGENT_TOOL: Spec(
        "The agent called another tool (from its transcript).",
        lambda d: _agent_step(d, "tool"),
        tone=_agent_tone,
    ),
    Kind.AGENT_MESSAGE: Spec(
        "The agent said something (from its transcript; the last is its final message).",
        lambda d: _agent_step(d, "message"),
        told=_NEVER,
    ),
    Kind.AGENT_USAGE: Spec(
        "The tokens a round used, by model, and what they cost.",
        lambda d: f"{_round(d)}used {d['tokens']:,} tokens (${d['cost_usd']:.4f})",
        told=lambda d: bool(d.get("tokens")),
    ),
    Kind.ROUND: Spec(
        "A round's checks ran on the agent's work: whether it passed, and why not.",
        _checked("round"),
        told=lambda d: not d["passed"],
        tone=_failed,
    ),
    Kind.MERGE_CHECK: Spec(
        "The checks ran again on the merge with main, before it lands.",
        _checked("merge check after round"),
        tone=_failed,
        told=_NEVER,
    ),
    Kind.BUDGET: Spec(
        "The run went over its `[budget]`.",
        lambda d: f"budget: {d['over']}",
        tone=_always("bad"),
    ),
    Kind.SCAN: Spec(
        "The change was scanned (secrets, guards, dependencies, migrations).",
        lambda d: f"scan: {d['blocking']} block, {d['warnings']} warn",
        tone=lambda d: "bad" if d["blocking"] else "",
    ),
    Kind.COMMIT: Spec(
        "The work was committed on the run's branch.", lambda d: f"commit {d['sha'][:10]}"
    ),
    Kind.PUBLISH: Spec("The run's branch was published (pushed, a pull request).", _publish),
    Kind.CI: Spec(
        "GitHub's checks on the published head: waited for, and how they ended.",
        ci_line,
        tone=_ci_tone,
    ),
    Kind.HANDOFF: Spec(
        "The handoff was written: the run rests for a person, or ended.",
        lambda d: f"handoff: {d['outcome']}: {d['path']}",
    ),
    Kind.ANNOUNCE_FAILED: Spec(
        "A surface (Slack, the pull request) could not be told.",
        _announce_failed,
        tone=_always("warn"),
        told=_NEVER,
    ),
    Kind.DECISION: Spec("A person decided: approve, request changes, or reject.", _decision),
    Kind.DECISION_REFUSED: Spec(
        "A person's decision was refused (not theirs to make, or the run moved on).",
        lambda d: f"review: {d['decision'].replace('_', ' ')} by {d['by']} refused: {d['reason']}",
        tone=_always("warn"),
        told=_NEVER,
    ),
    Kind.ACCEPTED: Spec(
        "A person accepted a finding of the run, with a reason, for the head it was made on (a "
        "block-level one by an owner: then another reviewer may approve).",
        _accepted,
    ),
    Kind.COMMENT: Spec(
        "A person commented on a line of the change, on the head they saw (it goes to the agent "
        "with the next request for changes on that head).",
        lambda d: (
            f"review: comment by {d['by']} on {d['file']}:{d['line']} ({d['side']}) at "
            f"{d['head'][:10]}: {short(d['text'], 120)}"
        ),
    ),
    Kind.ONTO_MAIN: Spec("Main moved: the next round starts on it.", _onto_main),
    Kind.MERGE: Spec(
        "The approved work was merged into main, or the merge was refused.",
        lambda d: f"merge: {d['outcome']} {d.get('sha', '')[:10] or d.get('reason', '')}",
        tone=lambda d: "" if d["outcome"] == "merged" else "bad",
    ),
    Kind.CANCELLED: Spec(
        "A person cancelled the run.", _cancelled, tone=_always("warn"), told=_NEVER
    ),
    Kind.RETRIED: Spec(
        "A person tried the run again as a new run (the same task, perhaps another agent), "
        "with their words on what should go differently.",
        lambda d: (
            f"retried by {d['by']} as {d['run']} with {d['agent']}"
            + (f": {short(d['message'], 120)}" if d.get("message") else "")
        ),
        told=_NEVER,
    ),
    Kind.CLEANUP: Spec(
        "The run's workspace was removed, or its services stopped.", _cleanup, told=_NEVER
    ),
    Kind.ERROR: Spec(
        "The run's workflow failed with an internal error.",
        lambda d: f"error: {d['reason']}",
        tone=_always("bad"),
        told=_NEVER,
    ),
    Kind.RELEASE_STARTED: Spec(
        "A person started a release of a main commit.",
        lambda d: f"release {d['sha'][:10]} by {_who(d)} ({d['author_kind']})",
        told=_NEVER,  # recorded before anything follows the release: its head says it
    ),
    Kind.RELEASE_GATE: Spec(
        "The release gate checked the commit (CI, the ledger, what is live).",
        _gate,
        tone=lambda d: "" if d["ok"] else "bad",
    ),
    Kind.RELEASE_WAITING: Spec(
        "The release waits for a person: a go, or a look at an inconclusive probe.",
        lambda d: f"waiting: {d['env']}: {d['status'].replace('_', ' ')}: {d['why']}",
        tone=_always("warn"),
    ),
    Kind.RELEASE_ANNOUNCE_FAILED: Spec(
        "A surface (Slack) could not be told of the release.",
        _announce_failed,
        tone=_always("warn"),
        told=_NEVER,
    ),
    Kind.RELEASE_GO: Spec(
        "A person said go for an environment.",
        lambda d: f"go by {d['by']} for {d['env']}",
    ),
    Kind.RELEASE_GO_REFUSED: Spec(
        "A go was refused (the person who started the release, or not a releaser).",
        lambda d: f"go refused for {d['by']}: {d['reason']}",
        tone=_always("warn"),
    ),
    Kind.RELEASE_ABORT: Spec(
        "A person stopped the release at its wait.",
        lambda d: f"abort by {d['by']} at {d['env']}",
        tone=_always("warn"),
    ),
    Kind.RELEASE_DEPLOY: Spec(
        "The deploy command ran for an environment.",
        lambda d: _release_command(d, "deploy"),
        tone=_command_tone,
    ),
    Kind.RELEASE_ROLLBACK: Spec(
        "The rollback command ran for an environment.",
        lambda d: _release_command(d, "rollback"),
        tone=_command_tone,
    ),
    Kind.RELEASE_PROBE: Spec(
        "A probe checked an environment after its deploy: pass, fail or inconclusive.",
        _probe,
        # The deploy's and rollback's own outcomes are told by their command's event.
        told=lambda d: d["name"] not in ("deploy", "rollback"),
        tone=_probe_tone,
    ),
    Kind.RELEASE_SOAK: Spec(
        "The release watches an environment for a while before going on.",
        lambda d: f"soak {d['env']}: watching for {d['seconds']}s",
    ),
    Kind.RELEASE_PROMOTED: Spec(
        "Production's branch was moved to the release's commit.",
        lambda d: f"promote {d['branch']} -> {d['sha'][:10]}",
    ),
    Kind.RELEASE_LIVE: Spec(
        "An environment serves the release's commit.",
        lambda d: f"live {d['env']}: {d['sha'][:10]}",
    ),
    Kind.RELEASE_ROLLED_BACK: Spec(
        "An environment went back to what it ran before (told to the agent's run as well).",
        _rolled_back,
        tone=_always("bad"),
    ),
    Kind.RELEASE_FEEDBACK_SKIPPED: Spec(
        "A rollback could not be told to the run behind the change.",
        lambda d: f"feedback to {d['run']} skipped: {d['why']}",
        told=_NEVER,
    ),
    Kind.RELEASE_FINISHED: Spec("The release ended.", _finished),
    Kind.FLAG_SET: Spec(
        "A person changed a feature flag in the flag file.",
        lambda d: f"flag {d['name']} in {d['env']}: {d['old']} -> {d['new']} by {d['by']}",
        told=_NEVER,
    ),
    Kind.TOKEN_CREATED: Spec(
        "An admin made a token for the server.",
        lambda d: f"token {d['id']} made for {d['name']} ({d['role']}){_until(d)} by {d['by']}",
        told=_NEVER,
    ),
    Kind.TOKEN_REVOKED: Spec(
        "An admin revoked a token: it works no more.",
        lambda d: f"token {d['id']} of {d['name']} revoked by {d['by']}",
        told=_NEVER,
    ),
    Kind.SIGNED_IN: Spec(
        "A person signed in to the web page with a token.",
        lambda d: f"{d['name']} ({d['role']}) signed in with token {d['id']} from {d['from']}",
        told=_NEVER,
    ),
    Kind.SIGNIN_REFUSED: Spec(
        "A sign-in to the web page was refused.",
        lambda d: f"sign-in refused from {d['from']}: {d['why']}",
        told=_NEVER,
        tone=_always("warn"),
    ),
}

_SPECS: dict[str, Spec] = {kind.value: spec for kind, spec in SPECS.items()}
