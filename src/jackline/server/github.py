"""GitHub's webhook: `POST /github/webhook`, where reviews and `/jackline` comments on a run's pull
request become decisions on the run.

    pull_request_review (submitted)   approved -> approve; changes_requested -> request changes
                                      with the review's text; a plain comment review: nothing
    issue_comment (created, on a PR)  `/jackline approve [text]`, `/jackline changes <text>`,
                                      `/jackline reject [text]` (the command may sit on any line;
                                      the text runs to the end of the comment)
    issue_comment (created, on an     `/jackline run [agent]` starts a run on the issue
      issue)
    issues (labeled)                  `[forge] issue_label` put on an issue starts a run on it
    ping                              answered, nothing done

A run from an issue: its task is the issue's title and body, the words that followed `/jackline
run`, and the issue's comments by people in `[forge] users` (anyone may comment on a public
issue: a stranger's words are not handed to the agent). One run per issue at a time
(`issue_runs`): while one has not ended, a new trigger is answered with its id. The issue gets
one comment that says how the run goes, edited in place (queued, round N, waiting for GitHub's
checks, waiting for review, merged, failed and why: `forge.github.progress`), and the pull
request says `Closes #N`.

Who: the request must carry `X-Hub-Signature-256`, the HMAC-SHA256 of the exact body under the
served repository's `[forge] webhook_secret` (compared in constant time), else 401. The person is
the review's or comment's author, a GitHub login that must be in `[forge] users` with a role that
may decide (reviewer and up); the decision is recorded under their Jackline name (`by=`), and
`api` applies the rest (self-approval, block-level findings need a `[review] owners` name).

What a decision counts for: the head the person saw. GitHub's signature covers the body but no
time, and `X-GitHub-Delivery` is not signed at all, so a captured delivery can be sent again
under a new id, rounds later. A review counts only if its `commit_id` is the run's head; a
comment only if the head the pull request showed when it was made (its `created_at`, against
when each round was published) is still the run's head. `api` refuses the rest and records why
in the run's log. Each delivery id acts once, kept in the store (`deliveries`), so a restart
does not forget them.

What GitHub is answered: 202 when a decision is accepted for a run (it is then taken after the
answer, since a requested change runs a whole agent round and GitHub waits 10 s at most), 200
with `ignored` for an event that asks nothing or for a person who may not decide. An unmapped or
viewer login is not an error of the delivery, which GitHub signed correctly: its author is told
in a comment on the pull request instead, where they acted, as is a decision `api` refuses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from jackline import api, auth
from jackline import config as cfg
from jackline.errors import JacklineError
from jackline.events import Kind
from jackline.forge import github as forge
from jackline.guard.redact import resolve
from jackline.models import Origin
from jackline.store import Store

router = APIRouter(tags=["github"])
log = logging.getLogger(__name__)

USAGE = "`/jackline approve [text]`, `/jackline changes <text>` or `/jackline reject [text]`"
ON_ISSUE = "`/jackline run [agent]` (and the words for the agent on the lines after it)"
VERBS = {"approve": "approve", "changes": "request_changes", "reject": "reject", "run": "run"}


# what GitHub sends (only the fields used; GitHub sends many more) ---------------------------


class _User(BaseModel):
    login: str
    """The GitHub login, looked up in `[forge] users`."""


class _Repository(BaseModel):
    full_name: str
    """`owner/name`: which served repository the event is for."""


class _Head(BaseModel):
    ref: str
    """The pull request's branch: `agent/...` names the run."""


class _Pull(BaseModel):
    number: int
    head: _Head


class _Review(BaseModel):
    id: int
    state: str
    """`approved`, `changes_requested` or `commented`."""
    body: str | None = None
    user: _User
    commit_id: str
    """The pull request's head when the review was submitted: what the reviewer saw."""


class _ReviewEvent(BaseModel):
    action: str
    review: _Review
    pull_request: _Pull
    repository: _Repository


class _Comment(BaseModel):
    body: str
    user: _User
    created_at: dt.datetime
    """When it was made (GitHub's clock): the head then is the one it speaks of."""


class _Issue(BaseModel):
    number: int
    title: str = ""
    body: str | None = None
    pull_request: dict[str, Any] | None = None
    """Present only when the issue is a pull request."""


class _Label(BaseModel):
    name: str


class _IssuesEvent(BaseModel):
    action: str
    issue: _Issue
    label: _Label | None = None
    """The label put on (action `labeled`)."""
    sender: _User
    """Who put it on."""
    repository: _Repository


class _CommentEvent(BaseModel):
    action: str
    comment: _Comment
    issue: _Issue
    repository: _Repository


@dataclass(frozen=True)
class Ask:
    """A decision someone asked for on a pull request."""

    kind: str
    """`approve`, `request_changes` or `reject`: the `api` verb."""
    login: str
    number: int
    message: str
    branch: str | None = None
    """Known from a review; a comment's is looked up (`issue_comment` does not carry it)."""
    head: str | None = None
    """The commit a review was made on (its `commit_id`)."""
    made_at: float | None = None
    """When a comment was made: its head is the one published last before then."""
    review: int | None = None
    """The review's id, whose comments on lines are read (`_from_review`)."""


@dataclass(frozen=True)
class Start:
    """A run someone asked for on an issue."""

    login: str
    number: int
    title: str
    body: str
    agent: str | None = None
    words: str = ""
    """What followed `/jackline run [agent]` on the lines after it."""
    verb: str = "run"
    """Another `/jackline` verb, on an issue: answered with the usage."""


# the route --------------------------------------------------------------------------------


@router.post("/github/webhook", status_code=202)
async def webhook(request: Request, background: BackgroundTasks) -> JSONResponse:
    raw = await request.body()
    headers = request.headers
    repos = tuple(request.app.state.settings.repos)
    return await run_in_threadpool(
        _handle,
        repos,
        headers.get("x-github-event", ""),
        headers.get("x-hub-signature-256", ""),
        headers.get("x-github-delivery", ""),
        raw,
        background,
    )


def _handle(
    repos: tuple[Path, ...],
    event: str,
    signature: str,
    delivery: str,
    raw: bytes,
    background: BackgroundTasks,
) -> JSONResponse:
    payload = _json(raw)
    root, config = _served(repos, payload)
    _verify(config.forge, signature, raw)
    if event == "ping":
        return _answer(200, ok="pong")
    if not delivery:
        raise HTTPException(400, "X-GitHub-Delivery is missing; GitHub sends one with each event")
    if not _take(delivery):
        return _answer(200, ignored=f"delivery {delivery} was taken already")
    try:
        return _act(root, config, event, payload, background)
    except BaseException:
        _forget(delivery)  # it did not act: GitHub's retry of it may
        raise


def _take(delivery: str) -> bool:
    store = Store()
    try:
        return store.take_delivery("github", delivery)
    finally:
        store.close()


def _forget(delivery: str) -> None:
    store = Store()
    try:
        store.forget_delivery("github", delivery)
    finally:
        store.close()


def _act(
    root: Path,
    config: cfg.JacklineConfig,
    event: str,
    payload: dict[str, Any],
    background: BackgroundTasks,
) -> JSONResponse:
    start = _start(event, payload, config.forge)
    if start is not None:
        return _asked_to_start(root, config, start, background)
    ask = _ask(event, payload)
    if ask is None:
        return _answer(200, ignored=f"a {event or 'nameless'} event asks nothing of Jackline")
    who = _who(config.forge, ask.login)
    if ask.kind == "comment" and not who.may("decide"):  # anyone may comment on GitHub
        return _answer(200, ignored=f"@{ask.login}'s comments are not a reviewer's")
    if not who.may("decide"):
        why = (
            f"@{ask.login} is not in [forge] users"
            if who.role == "none"
            else f"@{ask.login} is a {who.role}; deciding needs the reviewer role"
        )
        background.add_task(_tell, config.forge, ask.number, f"Jackline did not act: {why}.")
        return _answer(200, ignored=why)
    branch = ask.branch or forge.head_branch(config.forge, ask.number)
    run_id = _run_for(root, branch)
    if run_id is None:
        return _answer(200, ignored=f"no Jackline run has the branch {branch}")
    head = ask.head if ask.made_at is None else head_at(run_id, ask.made_at)
    background.add_task(_decide, config.forge, ask, run_id, who.name, head)
    return _answer(202, accepted=ask.kind, run=run_id, by=who.name)


def _answer(status: int, **body: str) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the body is not JSON; GitHub sends application/json") from None
    if not isinstance(payload, dict):
        raise HTTPException(400, "the body is not a JSON object")
    return payload


def _served(repos: tuple[Path, ...], payload: dict[str, Any]) -> tuple[Path, cfg.JacklineConfig]:
    """The served repository (and its config) the event is for: `[forge] kind = "github"` with
    this `repository`. The name comes from the unverified body; the secret it picks is then
    what the signature must match."""
    named = str((payload.get("repository") or {}).get("full_name") or "")
    for root in repos:
        try:
            config = cfg.load(root)
        except JacklineError as e:
            log.warning("github webhook: skipping %s: %s", root, e)
            continue
        repository = (config.forge.repository or "").lower()
        if config.forge.kind == "github" and named and repository == named.lower():
            return root, config
    raise HTTPException(404, f"this server does not serve the GitHub repository {named!r}")


def _verify(forge_config: cfg.ForgeConfig, signature: str, raw: bytes) -> None:
    if not forge_config.webhook_secret:
        raise HTTPException(
            403, f"{forge_config.repository} has no [forge] webhook_secret: webhooks are refused"
        )
    secret = resolve(forge_config.webhook_secret, f"{cfg.FILENAME}: forge.webhook_secret")
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise HTTPException(401, "X-Hub-Signature-256 is missing or does not match the body")


# reading the event -------------------------------------------------------------------------


def _ask(event: str, payload: dict[str, Any]) -> Ask | None:
    try:
        if event == "pull_request_review":
            return _from_review(_ReviewEvent.model_validate(payload))
        if event == "issue_comment":
            return _from_comment(_CommentEvent.model_validate(payload))
    except ValidationError as e:
        raise HTTPException(400, f"a {event} event without the fields GitHub sends: {e}") from None
    return None


def _from_review(e: _ReviewEvent) -> Ask | None:
    kinds = {"approved": "approve", "changes_requested": "request_changes", "commented": "comment"}
    kind = kinds.get(e.review.state.lower())
    if e.action != "submitted" or kind is None:
        return None
    return Ask(
        kind,
        e.review.user.login,
        e.pull_request.number,
        e.review.body or "",
        e.pull_request.head.ref,
        head=e.review.commit_id,
        review=e.review.id,
    )


def _from_comment(e: _CommentEvent) -> Ask | None:
    if e.action != "created" or e.issue.pull_request is None:
        return None
    parsed = command(e.comment.body)
    if parsed is None:
        return None
    if parsed[0] == "run":  # a run starts from an issue; a pull request is one already
        parsed = ("usage", "run")
    made_at = e.comment.created_at
    if made_at.tzinfo is None:  # GitHub writes UTC with a Z; a bare time is read as UTC too
        made_at = made_at.replace(tzinfo=dt.UTC)
    return Ask(
        parsed[0], e.comment.user.login, e.issue.number, parsed[1], made_at=made_at.timestamp()
    )


def command(text: str) -> tuple[str, str] | None:
    """(`api` verb, its text) from the first `/jackline` line of a comment; None without one.
    An unknown verb is ("usage", the verb)."""
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        words = line.strip().split(maxsplit=2)
        if not words or words[0].lower() != "/jackline":
            continue
        verb = words[1].lower() if len(words) > 1 else ""
        rest = "\n".join([words[2] if len(words) > 2 else "", *lines[i + 1 :]]).strip()
        return (VERBS[verb], rest) if verb in VERBS else ("usage", verb)
    return None


def _who(forge_config: cfg.ForgeConfig, login: str) -> auth.Principal:
    """The Jackline person a GitHub login stands for; an unmapped login may do nothing."""
    person = forge_config.users.get(login)
    if person is None:
        return auth.Principal(login, "none", via="github")
    return auth.Principal(person.name, person.role, via="github")


def _run_for(root: Path, branch: str) -> str | None:
    """The newest run of the repository with this branch (each run's branch is its own)."""
    wanted = root.resolve()
    store = Store()
    try:
        for run in store.list_runs(limit=100_000):
            if run.branch == branch and Path(run.repo).resolve() == wanted:
                return run.id
    finally:
        store.close()
    return None


def head_at(run_id: str, when: float) -> str:
    """The head the run's pull request showed at `when`: the commit its last publish before
    then pushed ("" before the first). Publishing pushes the head the commit step just made.
    `when` is GitHub's clock and the events are this machine's: they are assumed in step (NTP);
    a comment made within the skew of a push may be read as made on the round before, which
    refuses it (the person is told, and comments again)."""
    committed, shown = "", ""
    for event in api.events(run_id):
        if event.ts > when:
            break
        if event.kind == Kind.COMMIT:
            committed = str(event.data.get("sha") or "")
        elif event.kind == Kind.PUBLISH:
            shown = committed
    return shown


# starting a run from an issue ----------------------------------------------------------------


def _start(event: str, payload: dict[str, Any], forge_config: cfg.ForgeConfig) -> Start | None:
    """The run an `issues` (labeled) or `issue_comment` event on an issue asks for, if any. A
    `/jackline` comment on an issue that is not `run` is answered with the usage."""
    try:
        if event == "issues":
            e = _IssuesEvent.model_validate(payload)
            label = e.label.name if e.label else ""
            wanted = forge_config.issue_label
            if e.action != "labeled" or e.issue.pull_request is not None or not wanted:
                return None
            if label.lower() != wanted.lower():
                return None
            return Start(e.sender.login, e.issue.number, e.issue.title, e.issue.body or "")
        if event == "issue_comment":
            c = _CommentEvent.model_validate(payload)
            if c.action != "created" or c.issue.pull_request is not None:
                return None
            parsed = command(c.comment.body)
            if parsed is None:
                return None
            verb, rest = parsed
            agent, words = run_words(c.comment.body) if verb == "run" else (None, "")
            return Start(
                c.comment.user.login,
                c.issue.number,
                c.issue.title,
                c.issue.body or "",
                agent,
                words,
                verb if verb != "usage" else rest,
            )
    except ValidationError as e:
        raise HTTPException(400, f"a {event} event without the fields GitHub sends: {e}") from None
    return None


def run_words(text: str) -> tuple[str | None, str]:
    """The agent and the words of a `/jackline run [agent] [words]` comment: the agent is the
    word after `run` on its line; the words are the rest of that line and the lines after."""
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) > 1 and words[0].lower() == "/jackline" and words[1].lower() == "run":
            agent = words[2] if len(words) > 2 else None
            return agent, "\n".join([" ".join(words[3:]), *lines[i + 1 :]]).strip()
    return None, ""


def _asked_to_start(
    root: Path, config: cfg.JacklineConfig, start: Start, background: BackgroundTasks
) -> JSONResponse:
    who = _who(config.forge, start.login)
    if start.verb != "run":  # another verb, on an issue
        if who.role == "none":
            return _answer(200, ignored=f"@{start.login} is not in [forge] users")
        text = f"On an issue Jackline knows {ON_ISSUE}; `{start.verb}` is not one."
        background.add_task(_tell, config.forge, start.number, text)
        return _answer(200, ignored="not a command for an issue")
    if not who.may("submit"):
        why = (
            "is not in Jackline's [forge] users"
            if who.role == "none"
            else f"is a {who.role} in Jackline; starting runs needs the reviewer role"
        )
        text = (
            f"Thank you, @{start.login}. Jackline did not start a run: @{start.login} {why}. "
            "A maintainer can add you, or start it for you."
        )
        background.add_task(_tell, config.forge, start.number, text)
        return _answer(200, ignored=f"@{start.login} {why}")
    background.add_task(_start_run, root, config, start, who.name)
    return _answer(202, accepted="run", issue=str(start.number), by=who.name)


def _start_run(root: Path, config: cfg.JacklineConfig, start: Start, name: str) -> None:
    """Take the issue (one run at a time), say so in a comment, record the run, then say it is
    queued; a run that could not start lets the issue go and the comment says why."""
    forge_config = config.forge
    repository = str(forge_config.repository)
    store = Store()
    held = store.claim_issue(repository, start.number)
    if held is not None:
        what = f"run `{held.run_id}`" if held.run_id else "a run being started"
        status = f" ({api.get(held.run_id).status})" if held.run_id else ""
        _tell(forge_config, start.number, f"Jackline is already on this issue: {what}{status}. "
              "A new run can start once it has ended.")  # fmt: skip
        return
    comment_id = 0
    try:
        comment_id = forge.comment(forge_config, start.number, f"{forge.MARK}\n**Jackline** is "
                                   f"starting a run for {name}.\n")  # fmt: skip
        store.set_issue(repository, start.number, comment_id=comment_id)
        task = issue_task(start, forge.issue_comments(forge_config, start.number), forge_config)
        run = api.submit(task, root, start.agent, by=name, wait=False, origin=Origin.PERSON)
    except Exception as e:  # noqa: BLE001 - whatever it was, the issue is let go and told
        store.drop_issue(repository, start.number)
        # Jackline's own refusals say what to change; anything else stays in the server's log
        # (a public issue is no place for a traceback's paths and details).
        why = str(e) if isinstance(e, JacklineError) else "an error on Jackline's side (its log)"
        text = f"{forge.MARK}\n**Jackline** could not start a run: {why}\n"
        log.warning("github: no run for issue #%s: %s", start.number, e)
        try:
            if comment_id:
                forge.edit_comment(forge_config, comment_id, text)
            else:
                forge.comment(forge_config, start.number, text)
        except Exception as told:  # noqa: BLE001 - GitHub is down: the log says it
            log.warning("github: could not comment on #%s: %s", start.number, told)
        return
    store.set_issue(repository, start.number, run_id=run.id)
    now = api.get(run.id)
    said = forge.progress("run.queued", {"run": api.as_json(now)})
    if now.status == "queued" and said:  # else its own news said more already
        try:
            forge.edit_comment(forge_config, comment_id, said)
        except Exception as e:  # noqa: BLE001 - the run goes on; the next news edits it
            log.warning("github: could not edit comment %s: %s", comment_id, e)


COMMENTS_LIMIT = 20_000
"""The most characters of an issue's comments that go into a run's task (oldest first); GitHub
takes 65,536 a comment, and a long thread would crowd out the task itself."""


def issue_task(start: Start, comments: list[tuple[str, str]], forge_config: cfg.ForgeConfig) -> str:
    """The run's task: the issue's title and body, the words of `/jackline run`, and the
    comments of people in `[forge] users` (neither `/jackline` commands nor Jackline's own)."""
    parts = [start.title.strip() or f"GitHub issue #{start.number}", start.body.strip()]
    if start.words:
        parts.append(f"@{start.login} asked, starting this run: {start.words}")
    known = [
        f"@{login}: {text.strip()}"
        for login, text in comments
        if login in forge_config.users
        and text.strip()
        and not text.startswith(forge.MARK)
        and command(text) is None
    ]
    taken, size = [], 0
    for said in known:
        size += len(said)
        if size > COMMENTS_LIMIT:
            break
        taken.append(said)
    if taken:
        parts.append("Comments on the issue:\n\n" + "\n\n".join(taken))
    if len(taken) < len(known):
        parts.append(f"({len(known) - len(taken)} later comments are left out: read the issue.)")
    parts.append(f"(GitHub issue #{start.number} of {forge_config.repository}.)")
    return "\n\n".join(p for p in parts if p)


# acting, after GitHub has its answer --------------------------------------------------------


def _decide(
    forge_config: cfg.ForgeConfig, ask: Ask, run_id: str, name: str, head: str | None
) -> None:
    try:
        # A review's comments on lines are the run's comments on its head: a request for
        # changes hands them to the agent with file:line, as the web page's comments.
        unplaced = _line_comments(forge_config, ask, run_id, name, head) if ask.review else []
        if ask.kind == "comment":
            return
        if ask.kind == "approve":
            api.approve(run_id, by=name, message=ask.message, head=head)
        elif ask.kind == "request_changes":  # the next round's handoff replaces the body
            message = "\n".join([ask.message, *unplaced]).strip()
            api.request_changes(run_id, message, by=name, head=head)
        elif ask.kind == "reject":
            api.reject(run_id, by=name, message=ask.message, head=head)  # closes it, saying so
        else:
            _tell(forge_config, ask.number, f"Jackline does not know `{ask.message}`; {USAGE}.")
    except JacklineError as e:
        _tell(forge_config, ask.number, f"Jackline did not act on @{ask.login}'s {ask.kind}: {e}")


def _line_comments(
    forge_config: cfg.ForgeConfig, ask: Ask, run_id: str, name: str, head: str | None
) -> list[str]:
    """Each comment of the review on a line, kept as `name`'s comment on that line of the run's
    head (`api.comment`); one on a line Jackline's change does not show (the pull request's base
    moved on GitHub) is returned as a line of text, `path:line: words`, for the request."""
    assert ask.review is not None
    try:
        found = forge.review_comments(forge_config, ask.number, ask.review)
    except Exception as e:  # noqa: BLE001 - the decision stands; the words say what is missing
        log.warning("github: could not read review %s's comments: %s", ask.review, e)
        return [f"(The review's comments on lines could not be read from GitHub: {e})"]
    unplaced = []
    for c in found:
        try:
            api.comment(run_id, c.path, c.side, c.line, c.body, by=name, head=head)
        except JacklineError:
            old = " (old)" if c.side == "old" else ""
            unplaced.append(f"- {c.path}:{c.line}{old}: {c.body}")
    return unplaced


def _tell(forge_config: cfg.ForgeConfig, number: int, text: str) -> None:
    """A comment on the pull request; best effort (the decision, if any, stands)."""
    try:
        forge.comment(forge_config, number, text)
    except Exception as e:  # noqa: BLE001 - GitHub being down must not lose the decision
        log.warning("github: could not comment on #%s: %s", number, e)
