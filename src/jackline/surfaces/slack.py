"""Slack: a slack-bolt app on `jackline serve` (`/slack/events`), and the messages it posts.

People type `/jackline run <task>`, `/jackline status`, `/jackline release [sha]`, and click the
buttons on the messages `announce` posts: Approve / Request changes / Reject when a run reaches
review, Go / Abort when a release waits for go; rollbacks and the other ends of a release are
told in plain messages. Like every surface it parses, calls one `api` verb, and renders.

Who is asking. Every request is verified by the app's signing secret (slack-bolt's request
verification: a wrong signature, or a timestamp more than five minutes old, is refused with 401
before any listener runs). The Slack user id is then looked up in `[surfaces.slack] users` of the
server's repository, read afresh on every request so that removing a person takes effect at
once; an unknown user or too low a role gets an ephemeral refusal, and the verb is called with
that person's Jackline name (`by=`), so the api's own rules (no self-approval, owners for
block-level findings, another person's go) hold here exactly as in the CLI.

Slack wants an answer within three seconds, and a merge or a release takes longer: the app
acknowledges first, then works (slack-bolt runs listeners in its own threads) and answers through
the command's response_url or by updating the message whose button was clicked.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from jackline import api, auth, handoff
from jackline import config as cfg
from jackline.config import JacklineConfig, SlackConfig
from jackline.errors import JacklineError, NotFound, Refused
from jackline.guard.redact import resolve
from jackline.models import (
    RELEASE_WAITS,
    Acceptance,
    Origin,
    Release,
    ReleaseStatus,
    Run,
    Status,
    from_json,
)

if TYPE_CHECKING:  # bolt is needed by the server alone, not by every process that announces
    from slack_bolt import Ack, App, Respond

log = logging.getLogger("jackline.slack")

APPROVE, CHANGES, REJECT = "jackline_approve", "jackline_changes", "jackline_reject"
GO, ABORT = "jackline_go", "jackline_abort"
CHANGES_VIEW = "jackline_changes_view"
FEEDBACK = "feedback"
"""The block id of the modal's text box (request changes)."""

HELP = (
    "`/jackline run TASK`  start a run on the task (`run --attempts 3 TASK`: three at once)\n"
    "`/jackline status`  runs waiting for review, recent runs, releases\n"
    "`/jackline cancel RUN [why]`  end a run for good (its agent stopped, its workspace kept)\n"
    "`/jackline release [SHA]`  release main (or a commit of main) through the environments"
)
TEXT_LIMIT = 2900  # a section's text may hold 3000 characters
OOPS = "Something went wrong in Jackline; the server's log has the details."


@dataclass(frozen=True)
class Wiring:
    """What the app is built from: the resolved secrets and where the Web API is."""

    signing_secret: str
    bot_token: str
    api_url: str


# the app ----------------------------------------------------------------------------------


def slack_repo(repos: Sequence[Path]) -> Path:
    """The first of the server's repositories with `[surfaces.slack]`: the one Slack works on."""
    for repo in repos:
        if cfg.load(repo).surfaces.slack is not None:
            return repo
    names = ", ".join(str(r / cfg.FILENAME) for r in repos) or "no repository is served"
    raise NotFound(
        f"Slack is not set up: add [surfaces.slack] with signing_secret and bot_token "
        f"(secret references) to {names}"
    )


def wiring(repo: Path) -> Wiring:
    slack = _slack(repo)
    where = f"{repo / cfg.FILENAME}: surfaces.slack"
    return Wiring(
        resolve(slack.signing_secret, f"{where}.signing_secret"),
        resolve(slack.bot_token, f"{where}.bot_token"),
        slack.api_url,
    )


def build_app(repo: Path, wired: Wiring, base_url: str) -> App:
    """The bolt app for `repo`. Signature verification stays on; the token is checked by
    bolt's `auth.test` on the first request rather than when the server starts."""
    from slack_bolt import App

    global _server_url
    _server_url = base_url.rstrip("/")
    app = App(
        signing_secret=wired.signing_secret,
        client=WebClient(token=wired.bot_token, base_url=wired.api_url),
        token_verification_enabled=False,
        request_verification_enabled=True,
        logger=log,
    )
    Surface(repo, base_url.rstrip("/")).register(app)
    return app


def manifest(base_url: str, name: str = "Jackline") -> dict[str, Any]:
    """A Slack app manifest (api.slack.com/apps, "From a manifest") for a server at `base_url`:
    the `/jackline` command and the buttons both post to `/slack/events`."""
    events = f"{base_url.rstrip('/')}/slack/events"
    return {
        "display_information": {"name": name, "description": "Runs, reviews and releases"},
        "features": {
            "bot_user": {"display_name": name.lower(), "always_online": True},
            "slash_commands": [
                {
                    "command": "/jackline",
                    "url": events,
                    "description": "run <task> | status | release [sha] | cancel <run>",
                    "usage_hint": "run Fix the login redirect",
                }
            ],
        },
        "oauth_config": {"scopes": {"bot": ["chat:write", "commands"]}},
        "settings": {"interactivity": {"is_enabled": True, "request_url": events}},
    }


def person(repo: Path, user_id: str, action: str) -> auth.Principal:
    """The Jackline person behind a Slack user, if they may take `action`; else refused."""
    known = _slack(repo).users.get(user_id)
    if known is None:
        raise Refused(
            f"your Slack user {user_id} is not in [surfaces.slack] users of "
            f"{repo / cfg.FILENAME}; an admin adds "
            f'`users.{user_id} = {{ name = "NAME", role = "reviewer" }}`'
        )
    return auth.require(auth.Principal(known.name, known.role, via="slack"), action)


def _slack(repo: Path) -> SlackConfig:
    slack = cfg.load(repo).surfaces.slack
    if slack is None:
        raise NotFound(f"Slack is not set up in {repo / cfg.FILENAME}: add [surfaces.slack]")
    return slack


Answer = Callable[..., None]


@dataclass(frozen=True)
class Surface:
    repo: Path
    base_url: str

    def register(self, app: App) -> None:
        app.command("/jackline")(self.command)
        app.action(APPROVE)(self.approve)
        app.action(REJECT)(self.reject)
        app.action(CHANGES)(self.changes)
        app.view(CHANGES_VIEW)(self.changes_given)
        app.action(GO)(self.go)
        app.action(ABORT)(self.abort)

    # slash commands -----------------------------------------------------------------------

    def command(self, ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        verb, _, rest = str(command.get("text", "")).strip().partition(" ")
        acked: list[bool] = []

        def answer(
            text: str, blocks: list[dict[str, Any]] | None = None, public: bool = False
        ) -> None:
            kind = "in_channel" if public else "ephemeral"
            if not acked:  # the first answer is the acknowledgement Slack waits for
                acked.append(True)
                ack(text=text, blocks=blocks, response_type=kind)
            else:
                respond(text=text, blocks=blocks, response_type=kind, replace_original=False)

        handler = {
            "run": self._run,
            "status": self._status,
            "release": self._release,
            "cancel": self._cancel,
        }.get(verb.lower())
        if handler is None:
            answer(HELP)
            return
        try:
            handler(str(command["user_id"]), rest.strip(), answer)
        except JacklineError as e:
            answer(f":no_entry: {_escape(str(e))}")  # it may quote what was typed
        except Exception:
            log.exception("/jackline %s failed", verb)
            answer(OOPS)

    def _run(self, user_id: str, task: str, answer: Answer) -> None:
        who = person(self.repo, user_id, "submit")
        if not task:
            answer("Say what to do: `/jackline run Fix the login redirect`")
            return
        count, task = _attempts(task)
        if count > 1:
            answer(f"Starting {count} attempts: {_escape(task)}")
            tried = api.submit_attempts(
                task, self.repo, [], count, by=who.name, wait=False, origin=Origin.PERSON
            )
            links = ", ".join(self.link("runs", r.id) for r in tried)
            started = f"{_escape(who.name)} started {count} attempts ({links})"
            answer(f"{started}: {_escape(tried[0].task)}", public=True)
            return
        answer(f"Starting a run: {_escape(task)}")
        run = api.submit(task, self.repo, by=who.name, wait=False, origin=Origin.PERSON)
        started = f"{_escape(who.name)} started {self.link('runs', run.id)}"
        answer(f"{started}: {_escape(run.task)}", public=True)

    def _status(self, user_id: str, rest: str, answer: Answer) -> None:
        person(self.repo, user_id, "read")
        text = _status_text(self.repo, self.link)
        answer(_plain_text(text), _sections(text))

    def _cancel(self, user_id: str, rest: str, answer: Answer) -> None:
        who = person(self.repo, user_id, "decide")  # a decision on a run, in their name
        run_id, _, why = rest.partition(" ")
        if not run_id:
            answer("Say which run: `/jackline cancel RUN [why]`")
            return
        answer(f"Cancelling {_escape(run_id)}…")  # Slack waits three seconds at most
        run = api.cancel(run_id, by=who.name, message=why.strip())
        answer(
            f"{_escape(who.name)} cancelled {self.link('runs', run.id)}: {_escape(run.task)}",
            public=True,
        )

    def _release(self, user_id: str, sha: str, answer: Answer) -> None:
        who = person(self.repo, user_id, "release")
        answer(f"Starting a release of {sha or 'main'}…")
        rel = api.release(self.repo, sha or None, by=who.name)
        answer(f"{_escape(who.name)} started {_release_line(rel, self.link)}", public=True)

    # buttons ------------------------------------------------------------------------------

    def approve(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        self._decide(body, client, "decide", "Approved", _approve)

    def reject(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        self._decide(body, client, "decide", "Rejected", _reject)

    def go(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        self._decide(body, client, "go", "Go", _go)

    def abort(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        self._decide(body, client, "go", "Aborted", _abort)

    def changes(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Request changes: the reviewer's words go to the agent, so ask for them in a modal."""
        ack()
        user, channel, ts, value = _clicked(body)
        run_id, head = _bound(value)
        try:
            person(self.repo, user, "decide")
        except JacklineError as e:
            client.chat_postEphemeral(channel=channel, user=user, text=f":no_entry: {e}")
            return
        meta = json.dumps({"run": run_id, "head": head, "channel": channel, "ts": ts})
        client.views_open(trigger_id=body["trigger_id"], view=_changes_view(run_id, meta))

    def changes_given(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        view = body["view"]
        text = _typed(view, FEEDBACK)
        user = str(body["user"]["id"])
        try:  # before the modal closes, so that a refusal shows in it
            who = person(self.repo, user, "decide")
        except JacklineError as e:
            ack(response_action="errors", errors={FEEDBACK: str(e)[:150]})
            return
        if not text.strip():
            ack(response_action="errors", errors={FEEDBACK: "Say what should change."})
            return
        ack()
        meta = json.loads(view.get("private_metadata") or "{}")
        run_id, channel, ts = (str(meta.get(k, "")) for k in ("run", "channel", "ts"))
        try:
            run = api.request_changes(run_id, text, by=who.name, head=meta.get("head") or None)
        except JacklineError as e:
            if channel:
                client.chat_postEphemeral(channel=channel, user=user, text=f":no_entry: {e}")
            return
        except Exception:
            log.exception("request changes on %s failed", run_id)
            if channel:
                client.chat_postEphemeral(channel=channel, user=user, text=OOPS)
            return
        if channel and ts:
            note = f"Changes requested by {who.name}: {_escape(text)}\n{_run_outcome(run)}"
            client.chat_postMessage(channel=channel, thread_ts=ts, text=note)

    def _decide(
        self,
        body: dict[str, Any],
        client: WebClient,
        action: str,
        verb: str,
        call: Callable[[str, str], tuple[str, bool]],
    ) -> None:
        """Who clicked, then the verb in their name; the message then says who did what (its
        buttons gone once the decision took), or the clicker alone hears why not."""
        user, channel, ts, value = _clicked(body)
        try:
            who = person(self.repo, user, action)
            outcome, took = call(value, who.name)
        except JacklineError as e:
            client.chat_postEphemeral(channel=channel, user=user, text=f":no_entry: {e}")
            return
        except Exception:
            log.exception("%s on %s failed", verb, value)
            client.chat_postEphemeral(channel=channel, user=user, text=OOPS)
            return
        note = f"{verb} by {who.name} (via Slack): {outcome}"
        blocks = settled(body.get("message", {}).get("blocks", []), note, keep_buttons=not took)
        client.chat_update(channel=channel, ts=ts, text=note, blocks=blocks)

    def link(self, kind: str, ident: str) -> str:
        return _link(self.base_url, kind, ident)


# Each verb's outcome, and whether it took: a merge refused on the merged result leaves the run
# at review, and an inconclusive probe pauses a release again, so their buttons stay.


def _attempts(typed: str) -> tuple[int, str]:
    """`--attempts N TASK` (or `-n N TASK`): N parallel attempts at TASK; else 1 and the text."""
    words = typed.split(maxsplit=2)
    if len(words) == 3 and words[0] in ("--attempts", "-n") and words[1].isdigit():
        return int(words[1]), words[2]
    return 1, typed


def _approve(value: str, by: str) -> tuple[str, bool]:
    run_id, head = _bound(value)
    run = api.approve(run_id, by=by, head=head)
    return _run_outcome(run), run.status != Status.AWAITING_REVIEW


def _reject(value: str, by: str) -> tuple[str, bool]:
    run_id, head = _bound(value)
    run = api.reject(run_id, by=by, head=head)
    return _run_outcome(run), run.status != Status.AWAITING_REVIEW


def _go(release_id: str, by: str) -> tuple[str, bool]:
    rel = api.go(release_id, by=by)
    return _release_outcome(rel), rel.status not in RELEASE_WAITS


def _abort(release_id: str, by: str) -> tuple[str, bool]:
    rel = api.abort(release_id, by=by)
    return _release_outcome(rel), rel.status not in RELEASE_WAITS


def _bound(value: str) -> tuple[str, str | None]:
    """A decision button's value: the run, and the head commit its message showed (None on a
    message from before buttons named one)."""
    run_id, _, head = value.partition("@")
    return run_id, head or None


def _clicked(body: dict[str, Any]) -> tuple[str, str, str, str]:
    """The user, channel, message ts and button value of a block_actions payload."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id", "")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts", "")
    return str(body["user"]["id"]), str(channel), str(ts), str(body["actions"][0]["value"])


def _typed(view: dict[str, Any], block_id: str) -> str:
    values = (view.get("state") or {}).get("values", {}).get(block_id, {})
    for element in values.values():
        return str(element.get("value") or "")
    return ""


def _run_outcome(run: Run) -> str:
    if run.status == Status.MERGED:
        return f"{run.id} merged as `{(run.merge_sha or '')[:10]}`"
    reason = f" ({_escape(run.reason)})" if run.reason else ""
    return f"{run.id} is {run.status.replace('_', ' ')}{reason}"


def _release_outcome(rel: Release) -> str:
    where = f" at {rel.env}" if rel.env else ""
    reason = f" ({_escape(rel.reason)})" if rel.reason else ""
    return f"{rel.id} is {rel.status.replace('_', ' ')}{where}{reason}"


def _release_line(rel: Release, link: Callable[[str, str], str]) -> str:
    return f"{link('releases', rel.id)} of `{rel.sha[:10]}`: {_release_outcome(rel)}"


def _status_text(repo: Path, link: Callable[[str, str], str]) -> str:
    runs = [r for r in api.runs(limit=200) if Path(r.repo).resolve() == repo.resolve()]
    waiting = [r for r in runs if r.status == Status.AWAITING_REVIEW]
    recent = [r for r in runs if r.status != Status.AWAITING_REVIEW][:5]
    releases = api.releases(repo, limit=3)
    lines = ["*Waiting for review*"]
    lines += [_run_line(r, link) for r in waiting] or ["nothing"]
    lines += ["", "*Recent runs*"]
    lines += [_run_line(r, link) for r in recent] or ["none yet"]
    lines += ["", "*Releases*"]
    lines += [f"• {_release_line(r, link)}" for r in releases] or ["none yet"]
    return "\n".join(lines)


def _run_line(run: Run, link: Callable[[str, str], str]) -> str:
    task = _escape(run.task.splitlines()[0][:80])
    by = _escape(run.submitted_by)
    return f"• {link('runs', run.id)} {run.status.replace('_', ' ')}: {task} ({by})"


# messages ---------------------------------------------------------------------------------

_server_url: str | None = None
"""The server's address for links, once this process serves the app (else $JACKLINE_SERVER)."""


def announce(event: str, config: JacklineConfig, data: dict[str, Any]) -> None:
    """Post the message for `event` to `[surfaces.slack] channel`; nothing when Slack or the
    channel is not configured, or the event is not one Slack is told."""
    slack = config.surfaces.slack
    build = MESSAGES.get(event)
    if slack is None or not slack.channel or build is None:
        return
    text, blocks = build(config, data, _server_url or os.environ.get("JACKLINE_SERVER"))
    where = f"{cfg.FILENAME}: surfaces.slack.bot_token"
    client = WebClient(token=resolve(slack.bot_token, where), base_url=slack.api_url)
    client.chat_postMessage(channel=slack.channel, text=text, blocks=blocks)


def review_message(
    config: JacklineConfig, data: dict[str, Any], base: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """A run at review: the handoff's summary, the facts, and the three decisions. The words
    are the handoff's record (`data["record"]`, redacted), never its markdown read back."""
    run = data["run"]
    h = handoff.Handoff.from_json(data["record"]) if data.get("record") else None
    link = _link(base, "runs", run["id"])
    task = (h.task if h else str(run["task"])).splitlines()[0]
    findings = f"{run.get('blocking', 0)} block, {run.get('warnings', 0)} warn"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"Ready for review: {task}", 150)},
        {"type": "section", "text": _mrkdwn(_from_markdown(h.summary) if h else _escape(task))},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Run*\n{link}"),
                _mrkdwn(f"*Branch*\n`{run['branch']}`"),
                _mrkdwn(f"*Submitted by*\n{_escape(run['submitted_by'])}"),
                _mrkdwn(f"*Rounds*\n{run.get('rounds', 0)} · findings: {findings}"),
            ],
        },
    ]
    files, twice = (_files(h.files), _look_twice(h.look_twice)) if h else ("", "")
    if files:
        blocks.append({"type": "section", "text": _mrkdwn(f"*Files*  {files}")})
    if twice:
        blocks.append({"type": "section", "text": _mrkdwn(f"*Where to look twice*\n{twice}")})
    # The buttons name the head this message shows: a click on an old message cannot decide
    # a later round (the API refuses it, saying so).
    seen = f"{run['id']}@{run['head_sha']}" if run.get("head_sha") else str(run["id"])
    if run.get("blocking"):
        owners = ", ".join(config.review.owners) or "nobody: set [review] owners"
        note = f":warning: block-level findings: approval needs an owner ({owners})"
        blocks.append({"type": "context", "elements": [_mrkdwn(note)]})
    for a in h.accepted if h else ():
        blocks.append({"type": "context", "elements": [_mrkdwn(_accepted_line(a))]})
    blocks.append(
        {
            "type": "actions",
            "block_id": "decide",
            "elements": [
                _button("Approve", APPROVE, seen, "primary"),
                _button("Request changes", CHANGES, seen),
                _button("Reject", REJECT, seen, "danger", confirm="Reject this run?"),
            ],
        }
    )
    return f"{run['id']} is ready for review: {_escape(task)}", blocks


def accepted_message(
    config: JacklineConfig, data: dict[str, Any], base: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """A person accepted a finding of a run in review: who, which, why, and what is left."""
    run, a = data["run"], from_json(Acceptance, data["acceptance"])
    left = (
        "every block-level finding is accepted on this head: another reviewer may approve"
        if a.left == 0
        else f"{a.left} block-level finding(s) still need an owner"
    )
    text = f"{_link(base, 'runs', run['id'])}: {_accepted_line(a)}. {left}."
    return _plain_text(text), _sections(text)


def _accepted_line(a: Acceptance) -> str:
    where = f" `{_escape(a.file)}{':' + str(a.line) if a.line else ''}`" if a.file else ""
    return (
        f":ballot_box_with_check: {a.level} finding `{a.finding}` ({_escape(a.rule)}{where}) "
        f"accepted by {_escape(a.by)} on `{a.head[:10] or 'no commit'}`: {_escape(a.reason)}"
    )


def merged_message(
    config: JacklineConfig, data: dict[str, Any], base: str | None
) -> tuple[str, list[dict[str, Any]]]:
    run = data["run"]
    text = (
        f":white_check_mark: {_link(base, 'runs', run['id'])} merged into "
        f"{config.project.main} as `{str(run.get('merge_sha') or '')[:10]}`: "
        f"{_escape(str(run['task']).splitlines()[0])}"
    )
    return _plain_text(text), _sections(text)


def go_message(
    config: JacklineConfig, data: dict[str, Any], base: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """A release waiting for a person (go, or an inconclusive probe): Go and Abort."""
    rel, env = data["release"], str(data.get("env") or data["release"].get("env") or "")
    head = (
        f"{_link(base, 'releases', rel['id'])} of `{str(rel['sha'])[:10]}` waits for go to *{env}*"
    )
    why = data.get("why") if rel.get("status") == ReleaseStatus.PAUSED else None
    text = f"{head} (started by {_escape(rel['started_by'])})"
    if why:
        text += f"\nPaused on {_escape(str(why))}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _mrkdwn(text)},
        {
            "type": "actions",
            "block_id": "go",
            "elements": [
                _button(f"Go to {env}", GO, rel["id"], "primary", confirm=f"Deploy to {env}?"),
                _button("Abort", ABORT, rel["id"], "danger", confirm="Abort this release?"),
            ],
        },
    ]
    return _plain_text(text), blocks


def release_end_message(
    config: JacklineConfig, data: dict[str, Any], base: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """A release rolled back, aborted, live or failed: one plain message."""
    rel = data["release"]
    status = str(rel.get("status") or "")
    icon = {"live": ":rocket:", "rolled_back": ":rotating_light:"}.get(status, ":octagonal_sign:")
    said = {
        "live": "is live",
        "rolled_back": "was rolled back",
        "aborted": "was aborted",
        "failed": "failed",
    }.get(status, f"is {status.replace('_', ' ')}")
    text = f"{icon} {_link(base, 'releases', rel['id'])} of `{str(rel['sha'])[:10]}` {said}"
    reason = data.get("reason") or rel.get("reason")
    if reason:
        text += f": {_escape(str(reason))}"
    if status == ReleaseStatus.ROLLED_BACK and rel.get("previous_sha"):
        text += f"\nProduction is back on `{str(rel['previous_sha'])[:10]}`."
    return _plain_text(text), _sections(text)


Message = Callable[[JacklineConfig, dict[str, Any], str | None], tuple[str, list[dict[str, Any]]]]
MESSAGES: dict[str, Message] = {
    "run.awaiting_review": review_message,
    "run.merged": merged_message,
    "run.accepted": accepted_message,
    "release.awaiting_go": go_message,
    "release.paused": go_message,
    "release.rolled_back": release_end_message,
    "release.aborted": release_end_message,
    "release.live": release_end_message,
    "release.failed": release_end_message,
}


def _from_markdown(line: str) -> str:
    """A line of the handoff the harness wrote in markdown (its summary, a place to look twice)
    in Slack's markup. Markdown's characters in the words it quotes are escaped there
    (`handoff.text`); Slack has no such escapes, so they are shown plain, and only Slack's own
    three are escaped. Bold is Slack's; code spans are alike in both."""
    plain = re.sub(r"\\([\\`*_\[\]<>|~&])", r"\1", line.strip())
    return re.sub(r"\*\*(.+?)\*\*", r"*\1*", _escape(plain))


def _look_twice(places: Sequence[str]) -> str:
    return "\n".join(f"• {_from_markdown(x)}" for x in places or [handoff.NOTHING_STOOD_OUT])


def _files(files: Sequence[handoff.ChangedFile]) -> str:
    """`path (+a/-r)` for each file changed, the first ten."""
    shown = [f"{_code(f.path)} (+{f.added}/-{f.removed})" for f in files[:10]]
    more = f" and {len(files) - 10} more" if len(files) > 10 else ""
    return ", ".join(shown) + more


def _code(name: str) -> str:
    """A name of the agent's choosing as a code span: one line, Slack's characters escaped,
    and no backtick to end the span early (Slack has no way to escape one)."""
    shown = handoff.one_line(name).replace("`", "'")
    return f"`{_escape(shown)}`"


def settled(
    blocks: list[dict[str, Any]], note: str, keep_buttons: bool = False
) -> list[dict[str, Any]]:
    """A message's blocks with what was decided, in place of its buttons (unless kept)."""
    kept = [b for b in blocks if keep_buttons or b.get("type") != "actions"]
    kept = [b for b in kept if b.get("block_id") != "outcome"]  # one note: the latest
    return [*kept, {"type": "context", "block_id": "outcome", "elements": [_mrkdwn(note)]}]


def _changes_view(run_id: str, meta: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": CHANGES_VIEW,
        "private_metadata": meta,
        "title": _plain("Request changes", 24),
        "submit": _plain("Send to the agent", 24),
        "close": _plain("Cancel", 24),
        "blocks": [
            {"type": "section", "text": _mrkdwn(f"What should change in {run_id}?")},
            {
                "type": "input",
                "block_id": FEEDBACK,
                "label": _plain("Feedback for the agent", 2000),
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
            },
        ],
    }


def _button(
    label: str, action_id: str, value: str, style: str | None = None, confirm: str | None = None
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(label, 75),
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = {
            "title": _plain("Are you sure?", 100),
            "text": _plain(confirm, 300),
            "confirm": _plain("Yes", 30),
            "deny": _plain("Cancel", 30),
        }
    return button


def _link(base: str | None, kind: str, ident: str) -> str:
    return f"<{base.rstrip('/')}/{kind}/{ident}|{ident}>" if base else f"`{ident}`"


def _sections(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": _mrkdwn(text)}]


def _mrkdwn(text: str) -> dict[str, Any]:
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    return {"type": "mrkdwn", "text": text}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text if len(text) <= limit else text[: limit - 1] + "…"}


def _plain_text(mrkdwn: str) -> str:
    """The notification text beside the blocks: links as their labels."""
    return re.sub(r"<[^|>]+\|([^>]+)>", r"\1", mrkdwn)


def _escape(text: str) -> str:
    """Slack's three control characters, so text from a task or handoff cannot make links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
