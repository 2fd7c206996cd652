"""The JSON API under `/api/`: the CLI's verbs over HTTP, each behind a bearer token with a role.

Every route parses its input, calls one `api` function and answers JSON; who decides is the
token's person (`principal.name`), never a name in the request body.

Verbs that drive a workflow (approve, request changes, reject, release, go, abort, rollback)
answer once the run or release rests again, as the CLI does: the client sees the outcome (merged,
a refused merge back in review, awaiting go) in one round trip, and a refusal arrives as a 403
rather than being lost in a background task. They run in FastAPI's thread pool (the routes are
plain `def`), so a slow merge holds one worker thread, not the server. A new run is the
exception: `POST /api/runs` answers 201 as soon as the run is queued; follow it with
`GET /api/runs/{id}/events/stream` (server-sent events) or by polling.

Repositories: a request may name `repo` (a path on the server, or for runs a URL); it must be one
the server serves (`jackline serve --repo`). Without it, the server's only repository is meant.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import GenericAlias
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter, create_model

from jackline import api, auth
from jackline import git as g
from jackline import repos as repositories
from jackline.errors import NotFound, Refused
from jackline.guard.audit import Event
from jackline.models import (
    DRIVEN,
    FINAL,
    RESTING,
    Acceptance,
    Comment,
    Origin,
    Release,
    Run,
    Status,
    json_keys,
    to_json,
)
from jackline.server import fresh
from jackline.server.deps import allowed, reading

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

router = APIRouter()
Reader = Annotated[auth.Principal, Depends(allowed("read"))]
Submitter = Annotated[auth.Principal, Depends(allowed("submit"))]
Decider = Annotated[auth.Principal, Depends(allowed("decide"))]
Releaser = Annotated[auth.Principal, Depends(allowed("release"))]
Goer = Annotated[auth.Principal, Depends(allowed("go"))]
Flagger = Annotated[auth.Principal, Depends(allowed("flags"))]
RepoQuery = Annotated[
    str | None, Query(description="A repository the server serves (default: its only one).")
]
STREAM_POLL = 0.5
"""Seconds between looks at the audit log while a stream is open."""
HEARTBEAT = 15.0
"""Seconds of quiet after which a stream sends a comment, so proxies keep the connection."""


# models -----------------------------------------------------------------------------------


def _fields_docs(record: type) -> dict[str, str]:
    """The docstring under each field of a record's class, as its source writes them."""
    body = ast.parse(textwrap.dedent(inspect.getsource(record))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for field, after in zip(body.body, body.body[1:], strict=False):
        text = after.value if isinstance(after, ast.Expr) else None
        if isinstance(field, ast.AnnAssign) and isinstance(text, ast.Constant):
            docs[ast.unparse(field.target)] = inspect.cleandoc(str(text.value))
    return docs


def out_model(record: type[DataclassInstance], **extra: Any) -> type[BaseModel]:
    """The response model of a record, derived from its class: a property per JSON key
    (`models.json_keys`), typed and described as its field is, so /docs says what the record
    says and cannot drift from what `models.to_json` sends."""
    types, docs = get_type_hints(record), _fields_docs(record)
    sent: dict[str, Any] = {
        key: (types[name], Field(description=docs.get(name)))
        for name, key in json_keys(record).items()
    }
    return create_model(f"{record.__name__}Out", __doc__=record.__doc__, **sent, **extra)


RunOut = out_model(Run)
RunsOut = GenericAlias(list, (RunOut,))
"""`list[RunOut]`, spelled so for mypy: RunOut is made at import, not a class statement."""
RUNS: TypeAdapter[list[Any]] = TypeAdapter(RunsOut)
"""What FastAPI checks and encodes a `RunsOut` answer with, for the answers `list_runs` keeps."""
RunDetail = create_model(
    "RunDetail",
    __base__=RunOut,
    __doc__="A run with its rounds' check results, its latest findings and the handoff (markdown).",
    round_results=(list[dict[str, Any]], ...),
    findings=(list[dict[str, Any]], ...),
    handoff_markdown=(str | None, ...),
)


class SubmitIn(BaseModel):
    task: str = Field(description="What the agent should do.")
    repo: str | None = Field(None, description="A repository the server serves (path or URL).")
    agent: str | None = Field(None, description="An agent of [agents.NAME] (default: default).")
    blueprint: str | None = None
    follow_up: str | None = Field(
        None, description="A run whose release was rolled back: its failure joins the task."
    )
    origin: Origin = Field(
        Origin.AUTOMATIC,
        description="`person` when a person typed the task (the command line says so); a "
        "program's run is `automatic` and waits behind people's on a team's queue.",
    )
    priority: int = Field(0, description="Added to the run's priority: lower goes first.")


class AttemptsIn(BaseModel):
    task: str = Field(description="What the agents should do.")
    repo: str | None = Field(None, description="A repository the server serves (path or URL).")
    agents: list[str] = Field(
        default_factory=list, description="Agents of [agents.NAME], taken in turn."
    )
    attempts: int = Field(1, ge=1, description="Runs at least (one per agent named at least).")
    blueprint: str | None = None
    origin: Origin = Field(Origin.AUTOMATIC, description="As for a run.")
    priority: int = Field(0, description="As for a run.")


class DecisionIn(BaseModel):
    message: str = Field("", description="A note; for request-changes, the agent's feedback.")
    head: str | None = Field(
        None,
        description="The commit decided on (the run's `head_sha` as you saw it): refused, and "
        "the refusal recorded, if the run has moved on to another round since.",
    )


class AcceptIn(BaseModel):
    message: str = Field("", description="Why the finding is accepted: required, recorded.")
    head: str | None = Field(
        None,
        description="The commit the finding was seen on (the run's `head_sha`): refused if the "
        "run has moved on to another round since.",
    )


AcceptanceOut = out_model(Acceptance)


class CommentIn(BaseModel):
    file: str = Field(description="The file's path, as the run's change names it.")
    side: Literal["old", "new"] = Field(
        "new", description="`new`: `line` is the file's after the change; `old`: before it."
    )
    line: int = Field(ge=1, description="A line the change shows, on that side.")
    text: str = Field(description="The comment: the next request for changes hands it over.")
    head: str | None = Field(
        None, description="The commit commented on (the run's `head_sha`): refused if it moved."
    )


CommentOut = out_model(Comment)
CommentsOut = GenericAlias(list, (CommentOut,))


class ReleaseIn(BaseModel):
    repo: str | None = None
    sha: str | None = Field(None, description="A commit of main (default: its tip).")
    force: str | None = Field(None, description="Why a commit once rolled back goes again.")


class RollbackIn(BaseModel):
    repo: str | None = None
    to: str | None = Field(None, description="The release to go back to (default: the one before).")


ReleaseOut = out_model(
    Release,
    carries=(
        dict[str, Any] | None,
        Field(
            None,
            description="In the detail view: the commits it takes to production since what "
            "production ran (`commits`, newest first: sha, subject, author, run_id, agent, "
            "warnings), and whether the list was `cut`; null where the repository cannot say.",
        ),
    ),
    probes=(list[dict[str, Any]] | None, Field(None, description="In the detail view.")),
    events=(list[dict[str, Any]] | None, Field(None, description="In the detail view.")),
)
ReleasesOut = GenericAlias(list, (ReleaseOut,))
EventsOut = GenericAlias(list, (out_model(Event),))


class FlagIn(BaseModel):
    env: str = Field(description="An environment, or `default`.")
    value: str | bool | int | float | dict[str, Any] | list[Any] = Field(
        description="The new value: JSON, or text as `jackline flags set` takes it."
    )
    repo: str | None = None


class WhoAmI(BaseModel):
    name: str
    role: str
    via: str


# runs -------------------------------------------------------------------------------------


@router.get("/api/runs", tags=["runs"], response_model=RunsOut)
async def list_runs(
    who: Reader,
    status: Status | None = None,
    agent: str | None = None,
    by: Annotated[str | None, Query(description="Who submitted the run.")] = None,
    repo: Annotated[str | None, Query(description="The repository, as runs record it.")] = None,
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    """Runs, newest first; `status`, `agent`, `by` and `repo` keep those that have them."""
    asked = ("runs", status, agent, by, repo, limit)
    seen = fresh.version()
    body = fresh.ANSWERS.get(asked, seen)
    if body is None:

        def found() -> tuple[bytes, set[str]]:
            runs = api.runs(status, limit, agent=agent, by=by, repo=repo)
            shown = RUNS.validate_python([api.as_json(r) for r in runs])
            driven = {r.executor for r in runs if r.status in DRIVEN and r.executor}
            return RUNS.dump_json(shown, by_alias=True), driven

        made, driven = await reading(found)
        fresh.ANSWERS.keep(asked, seen, made, driven)
        body = made
    return Response(body, media_type="application/json")


@router.post("/api/runs", tags=["runs"], status_code=201, response_model=RunOut)
def submit(body: SubmitIn, request: Request, who: Submitter) -> dict[str, Any]:
    """Queue a run and answer at once (201); the run goes on in the server's workers."""
    repo = served_for_runs(request, body.repo)
    run = api.submit(
        body.task,
        repo,
        body.agent,
        body.blueprint,
        by=who.name,
        wait=False,
        follow_up=body.follow_up,
        origin=body.origin,
        priority=body.priority,
    )
    return api.as_json(run)


class RetryIn(BaseModel):
    agent: str | None = Field(None, description="An agent of [agents.NAME] (default: the run's).")
    message: str = Field("", description="What should go differently: it joins the task.")


@router.post("/api/runs/{run_id}/retry", tags=["runs"], status_code=201, response_model=RunOut)
def retry(run_id: str, body: RetryIn, request: Request, who: Submitter) -> dict[str, Any]:
    """Try a failed, blocked or over-budget run again as a new run (201: the new one), of the
    same task on the same repository, by `agent`; its task says how this one ended and carries
    `message`. 409 for a run in another state."""
    served_for_runs(request, api.get(run_id).repo)
    return api.as_json(api.retry(run_id, body.agent, body.message, by=who.name, wait=False))


@router.post("/api/attempts", tags=["runs"], status_code=201, response_model=RunsOut)
def submit_attempts(body: AttemptsIn, request: Request, who: Submitter) -> list[dict[str, Any]]:
    """Queue parallel attempts at one task, each a run on its own workspace, and answer at
    once (201) with them; approving one closes the others."""
    repo = served_for_runs(request, body.repo)
    runs = api.submit_attempts(
        body.task,
        repo,
        body.agents,
        body.attempts,
        body.blueprint,
        by=who.name,
        wait=False,
        origin=body.origin,
        priority=body.priority,
    )
    return [api.as_json(r) for r in runs]


@router.get("/api/runs/{run_id}", tags=["runs"], response_model=RunDetail)
def show_run(run_id: str, who: Reader) -> dict[str, Any]:
    """A run with its rounds, findings and the handoff as markdown."""
    run = api.get(run_id)
    return {
        **api.as_json(run),
        "round_results": api.rounds(run.id),
        "findings": api.findings(run.id),
        "handoff_markdown": api.handoff_text(run),
    }


class ArtifactsOut(BaseModel):
    """What a run kept besides its record and audit log: its handoff, change and logs."""

    names: list[str]


@router.get("/api/runs/{run_id}/artifacts", tags=["runs"], response_model=ArtifactsOut)
def run_artifacts(run_id: str, who: Reader) -> dict[str, Any]:
    """The names of what the run kept (`round-1/test.log`, `change.diff`, ...)."""
    return {"names": api.artifact_names(api.get(run_id).id)}


@router.get(
    "/api/runs/{run_id}/artifacts/{name:path}",
    tags=["runs"],
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def run_artifact(run_id: str, name: str, who: Reader) -> PlainTextResponse:
    """One thing the run kept, as text (redacted, as everything kept is)."""
    text = api.artifact_text(api.get(run_id).id, name)
    if text is None:
        raise NotFound(f"run {run_id} kept no artifact {name!r} (`/artifacts` lists them)")
    return PlainTextResponse(text)


@router.get("/api/runs/{run_id}/events", tags=["runs"], response_model=EventsOut)
def run_events(run_id: str, who: Reader, after: int = Query(0, ge=0)) -> list[dict[str, Any]]:
    """The run's audit log after event number `after`."""
    return [event_json(e) for e in api.events(run_id, after)]


@router.get(
    "/api/runs/{run_id}/events/stream",
    tags=["runs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    run_id: str,
    request: Request,
    who: Reader,
    after: int = Query(0, ge=0),
    until: Literal["rest", "final"] = "rest",
) -> StreamingResponse:
    """Server-sent events: each audit event (`id` is its number, `event` its kind, `data` the
    event as JSON), live, until the run rests (`until=rest`: review, or an end) or ends
    (`until=final`); then one `end` event with the status. `Last-Event-ID` resumes a stream."""
    await run_in_threadpool(api.get, run_id)  # an unknown run is a 404, not an empty stream
    resume = request.headers.get("last-event-id", "")
    start = int(resume) if resume.isdigit() else after
    stop = RESTING if until == "rest" else FINAL
    return StreamingResponse(
        _sse(request, run_id, start, stop),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    request: Request, run_id: str, seen: int, stop: frozenset[str]
) -> AsyncIterator[str]:
    quiet = 0.0
    while not await request.is_disconnected():
        # The status is read before the events, so events written just before the run came to
        # rest are sent before the end.
        status = (await run_in_threadpool(api.get, run_id)).status
        for event in await run_in_threadpool(api.events, run_id, seen):
            seen = event.seq
            quiet = 0.0
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(event_json(event))}\n\n"
        if status in stop:
            yield f"event: end\ndata: {json.dumps({'run_id': run_id, 'status': status})}\n\n"
            return
        if quiet >= HEARTBEAT:
            quiet = 0.0
            yield ": waiting\n\n"
        await asyncio.sleep(STREAM_POLL)
        quiet += STREAM_POLL


@router.post("/api/runs/{run_id}/approve", tags=["review"], response_model=RunOut)
def approve(run_id: str, body: DecisionIn, who: Decider) -> dict[str, Any]:
    """Approve as the token's person; answers when the run rests (merged, or back in review
    with the merge's refusal as its reason)."""
    return api.as_json(api.approve(run_id, who.name, body.message, head=body.head))


@router.post("/api/runs/{run_id}/request-changes", tags=["review"], response_model=RunOut)
def request_changes(run_id: str, body: DecisionIn, who: Decider) -> dict[str, Any]:
    """Send the run back to the agent with `message` as feedback; answers when it rests."""
    return api.as_json(api.request_changes(run_id, body.message, who.name, head=body.head))


@router.post("/api/runs/{run_id}/reject", tags=["review"], response_model=RunOut)
def reject(run_id: str, body: DecisionIn, who: Decider) -> dict[str, Any]:
    """Reject: nothing is merged."""
    return api.as_json(api.reject(run_id, who.name, body.message, head=body.head))


@router.post(
    "/api/runs/{run_id}/findings/{finding}/accept", tags=["review"], response_model=AcceptanceOut
)
def accept(run_id: str, finding: str, body: AcceptIn, who: Decider) -> dict[str, Any]:
    """Accept one finding (its id, as the run's `findings` give it) as the token's person,
    saying why: a block-level one needs a person named in `[review] owners`; once each is
    accepted, another reviewer may approve. It holds for the run's current head only."""
    return to_json(api.accept(run_id, finding, body.message, who.name, head=body.head))


@router.post(
    "/api/runs/{run_id}/comments", tags=["review"], status_code=201, response_model=CommentOut
)
def comment(run_id: str, body: CommentIn, who: Decider) -> dict[str, Any]:
    """Comment on one line of the run's change as the token's person, on the head you saw:
    kept, in the audit log, and handed to the agent with the next request for changes."""
    made = api.comment(run_id, body.file, body.side, body.line, body.text, who.name, head=body.head)
    return to_json(made)


@router.get("/api/runs/{run_id}/comments", tags=["review"], response_model=CommentsOut)
def comments(run_id: str, who: Reader) -> list[dict[str, Any]]:
    """People's comments on lines of the run's change, every round's, oldest first."""
    return [to_json(c) for c in api.comments(api.get(run_id).id)]


@router.post("/api/runs/{run_id}/cancel", tags=["review"], response_model=RunOut)
def cancel(run_id: str, body: DecisionIn, who: Decider) -> dict[str, Any]:
    """Cancel a queued, running, interrupted or waiting run as the token's person: its agent
    is stopped, its workspace kept; it is never resumed. `message` says why."""
    return api.as_json(api.cancel(run_id, who.name, body.message))


# releases ---------------------------------------------------------------------------------


@router.get("/api/releases", tags=["releases"], response_model=ReleasesOut)
def list_releases(
    request: Request,
    who: Reader,
    repo: RepoQuery = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """The release ledger, newest first (every repository's, unless `repo` is given)."""
    root = served_repo(request, repo) if repo else None
    return [api.release_as_json(r) for r in api.releases(root, limit)]


@router.get("/api/release-figures", tags=["releases"])
def release_figures(request: Request, who: Reader, repo: RepoQuery = None) -> list[dict[str, Any]]:
    """Change failure rate and time to restore, for agent and for person changes."""
    return api.release_figures(served_repo(request, repo) if repo else None)


@router.get("/api/releases/{release_id}", tags=["releases"], response_model=ReleaseOut)
def show_release(release_id: str, who: Reader) -> dict[str, Any]:
    """A release with its probes and its ledger events."""
    return api.release_as_json(api.release_get(release_id), detail=True)


@router.post("/api/releases", tags=["releases"], status_code=201, response_model=ReleaseOut)
def start_release(body: ReleaseIn, request: Request, who: Releaser) -> dict[str, Any]:
    """Start a release; answers when it waits for a person's go or has ended."""
    repo = served_repo(request, body.repo)
    return api.release_as_json(api.release(repo, body.sha, by=who.name, force=body.force))


@router.post("/api/releases/{release_id}/go", tags=["releases"], response_model=ReleaseOut)
def go(release_id: str, who: Goer) -> dict[str, Any]:
    """Say go as the token's person; answers when the release rests again."""
    return api.release_as_json(api.go(release_id, who.name))


@router.post("/api/releases/{release_id}/abort", tags=["releases"], response_model=ReleaseOut)
def abort(release_id: str, who: Goer) -> dict[str, Any]:
    """Stop a release at its wait."""
    return api.release_as_json(api.abort(release_id, who.name))


@router.post("/api/rollback", tags=["releases"], response_model=ReleaseOut)
def rollback(body: RollbackIn, request: Request, who: Releaser) -> dict[str, Any]:
    """Put production back to the release before (or `to`); answers with the release rolled back."""
    repo = served_repo(request, body.repo)
    return api.release_as_json(api.rollback(repo, body.to, who.name))


# flags ------------------------------------------------------------------------------------


@router.get("/api/flags", tags=["flags"])
def list_flags(
    request: Request, who: Reader, env: str | None = None, repo: RepoQuery = None
) -> dict[str, Any]:
    """The flags with the value in force per environment, owner, expiry."""
    return api.flags_list(served_repo(request, repo), env)


@router.post("/api/flags/{name}", tags=["flags"])
def set_flag(name: str, body: FlagIn, request: Request, who: Flagger) -> dict[str, Any]:
    """Set a flag in one environment (written to flags.toml on the server, audited). A protected
    flag needs a token of role owner, and then its owner or one of [review] owners by name."""
    repo = served_repo(request, body.repo)
    if _protected(repo, name):
        auth.require(who, "protected_flags")
    value = body.value if isinstance(body.value, str) else json.dumps(body.value)
    return api.set_flag(repo, name, value, body.env, who.name)


def _protected(repo: Path, name: str) -> bool:
    flags = api.flags_list(repo)["flags"]
    return any(f["name"] == name and f["protected"] for f in flags)


@router.get("/flags/{env}", tags=["flags"])
def flag_values(env: str, request: Request, who: Reader, repo: RepoQuery = None) -> dict[str, Any]:
    """What `jackline.flags.OpenFeatureProvider(env, url=..., token=...)` reads: the values in
    force in `env`, and which of them are the default. Needs a token (viewer is enough)."""
    from jackline import config as cfg
    from jackline import flags

    root = served_repo(request, repo)
    config = cfg.load(root)
    flags.check_env(env, config)
    return flags.payload(flags.load(root, config), env)


# the rest ---------------------------------------------------------------------------------


@router.get("/api/health", tags=["health"])
def health(request: Request, who: Reader, repo: RepoQuery = None) -> dict[str, Any]:
    """The morning report (as `jackline health --json`)."""
    from jackline.health import render

    return render.to_dict(api.health(served_repo(request, repo)))


@router.get("/api/pool", tags=["health"])
def pool(request: Request, who: Reader, repo: RepoQuery = None) -> dict[str, Any]:
    """Snapshots and warm workspaces of the repository."""
    return api.pool_status(served_repo(request, repo))


@router.get("/api/whoami", tags=["auth"], response_model=WhoAmI)
def whoami(who: Reader) -> dict[str, str]:
    """The person and role the token stands for."""
    return {"name": who.name, "role": who.role, "via": who.via}


# helpers ----------------------------------------------------------------------------------


def served_repo(request: Request, repo: str | None) -> Path:
    """The repository a request means: one the server serves, or its only one by default."""
    served: tuple[Path, ...] = request.app.state.settings.repos
    if repo is None:
        if len(served) == 1:
            return served[0]
        if not served:
            raise Refused("this server serves no repository; start it with `--repo PATH`")
        raise Refused(f"name the repository (`repo`): this server serves {_names(served)}")
    try:
        wanted = g.toplevel(Path(repo)).resolve()
    except Exception:
        raise NotFound(
            f"{repo!r} is not a repository this server serves: {_names(served)}"
        ) from None
    for root in served:
        if root.resolve() == wanted:
            return root
    raise Refused(f"{repo!r} is not a repository this server serves: {_names(served)}")


def served_for_runs(request: Request, repo: str | None) -> Path | str:
    """`served_repo`, or a repository by URL the server takes runs for (`--repo URL`): the URL
    itself, which each worker resolves to a clone of its own."""
    settings = request.app.state.settings
    urls: tuple[str, ...] = settings.urls
    if repo is None and not settings.repos and len(urls) == 1:
        return urls[0]
    if repo is None or not repositories.is_url(repo):
        return served_repo(request, repo)
    if repo in urls:
        return repo
    shown = [*map(str, settings.repos), *(repositories.parse(u).shown for u in urls)]
    raise Refused(
        f"{repositories.parse(repo).shown} is not a repository this server serves: "
        f"{', '.join(shown) or 'none'}"
    )


def _names(repos: tuple[Path, ...]) -> str:
    return ", ".join(str(r) for r in repos) or "none"


def event_json(e: Event) -> dict[str, Any]:
    return to_json(e)
