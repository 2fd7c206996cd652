"""The web page: runs, a run (live log, handoff, diff, findings, the decision), releases (probes,
go), flags and the health report, server-rendered with Jinja2 and working without JavaScript.

Every page needs a signed-in person (a token, kept in the HttpOnly SameSite=Strict session
cookie); every form carries the session's CSRF token, every POST must come from this server's
own origin (`deps.check_csrf`: another loopback port is the same site, so the cookie alone proves
nothing), and every POST checks the role on the server (`deps.allowed`): a disabled button is a
courtesy, not the check. The page's scripts find the CSRF token in `<meta name="csrf-token">`
for the JSON API's `X-CSRF-Token` header. Each route parses its
input, calls one `api` verb with `by=` the person signed in, and renders the answer; a decision
redirects back to the page it came from (POST-redirect-GET).

Agent-written text (the task, the handoff, the diff, the log) is never trusted as HTML: Jinja2
escapes everything, markdown-it renders the handoff with raw HTML off, pygments escapes the diff,
and the live log's script writes text nodes only.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from jackline import api, auth, diffs
from jackline.errors import CommandFailed, JacklineError, NotFound, Refused
from jackline.events import Kind
from jackline.events import describe as describe_event
from jackline.guard.audit import Event
from jackline.models import (
    FINAL,
    RELEASE_FINAL,
    RELEASE_WAITS,
    RESTING,
    RUN_STATUSES,
    Comment,
    Origin,
    Run,
)
from jackline.review import open_blocking
from jackline.server import deps, diffpage, summary
from jackline.store import Store

if TYPE_CHECKING:
    from jackline import config as cfg

router = APIRouter(include_in_schema=False)

HERE = Path(__file__).parent
STATIC = {
    "web.css": "text/css",
    "live.js": "text/javascript",
    "diff.js": "text/javascript",
    "decide.js": "text/javascript",
}
"""The only files served from `static/`, by name: nothing else there is reachable."""
MAX_DIFF = 400_000
"""Characters of diff rendered; a bigger change is cut, with the git command to see it all."""
POLL = 0.4
"""Seconds between looks at the audit log while a live page watches a run."""
HEADERS = {
    # Scripts and styles come only from this server (no inline script), and no other site may
    # frame the page: a framed approve button is a click someone else chose.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


# who is asking ----------------------------------------------------------------------------


def reader(request: Request, who: deps.Who) -> auth.Principal:
    """The person signed in, who may read; without a session, to the sign-in page and back."""
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "sign in", headers={"Location": f"/signin?next={quote(target)}"})
    if not who.may("read"):
        raise HTTPException(403, f"{who.name} is a {who.role}; reading needs the viewer role")
    return who


Reader = Annotated[auth.Principal, Depends(reader)]
# The forms carry the CSRF token in a field (`csrf`), which each route checks with the origin.
Decider = Annotated[auth.Principal, Depends(deps.allowed("decide", "form"))]
Goer = Annotated[auth.Principal, Depends(deps.allowed("go", "form"))]
Releaser = Annotated[auth.Principal, Depends(deps.allowed("release", "form"))]
Submitter = Annotated[auth.Principal, Depends(deps.allowed("submit", "form"))]
Csrf = Annotated[str, Form()]


# rendering --------------------------------------------------------------------------------


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(age=age, when=when, short=short)
    env.globals.update(may=auth.allows)
    return env


def page(
    request: Request, name: str, who: auth.Principal | None, code: int = 200, **context: Any
) -> Response:
    html = (
        environment()
        .get_template(name)
        .render(
            request=request,
            who=who,
            csrf=deps.csrf_token(request),
            path=request.url.path,
            **context,
        )
    )
    return Response(html, status_code=code, media_type="text/html", headers=HEADERS)


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def age(ts: float) -> str:
    s = int(max(time.time() - ts, 0))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def short(text: str, n: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@cache
def markdown() -> MarkdownIt:
    # The handoff holds agent-written text: raw HTML in it is shown as text, never rendered,
    # and markdown-it refuses javascript: and data: links on its own.
    md = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")
    md.core.ruler.push("focusable_tables", focusable_tables)
    return md


def focusable_tables(state: StateCore) -> None:
    # A table wider than a phone scrolls in its own box (web.css): a keyboard reaches it too.
    for token in state.tokens:
        if token.type == "table_open":
            token.attrSet("tabindex", "0")


def render_markdown(text: str) -> Markup:
    return Markup(markdown().render(text))  # noqa: S704 - html is off: the output is escaped


def render_diff(text: str) -> Markup:
    formatter = HtmlFormatter(cssclass="diff", nowrap=False)
    return Markup(highlight(text, DiffLexer(), formatter))  # noqa: S704 - pygments escapes


TITLES = {
    401: "Sign in",
    403: "Not allowed",
    404: "Not found",
    409: "Not now",
    422: "Not understood",
}


async def error_page(request: Request, status: int, message: str) -> Response:
    """An error on a web path, as a page that says it (with the navigation of whoever is
    signed in), never a JSON body: `deps.install_error_handlers` calls this."""
    who = await deps.principal(request)
    title = TITLES.get(status, "Something went wrong")
    back_to = "/releases" if request.url.path.startswith("/releases") else "/runs"
    return page(request, "missing.html", who, status, message=message, back=back_to, title=title)


# sign in ----------------------------------------------------------------------------------


@router.get("/")
def home() -> RedirectResponse:
    return back("/runs")


@router.get("/signin")
def signin_page(request: Request, next: str = "/runs") -> Response:
    return page(request, "signin.html", None, next=safe_next(next), error="")


@router.post("/signin")
def signin(request: Request, token: Annotated[str, Form()], next: str = Form("/runs")) -> Response:
    # Only from this server's own sign-in page: another page signing a browser in with a token
    # of its choosing would have the person act, unknowing, as someone else.
    deps.check_origin(request)
    try:
        api.sign_in(token, request.client.host if request.client else "unknown")
    except auth.Unauthenticated as e:
        error = f"Not signed in: {e}. Ask an admin for a token (`jackline token create`)."
        return page(request, "signin.html", None, 401, next=safe_next(next), error=error)
    response = back(safe_next(next))
    settings = request.app.state.settings
    response.set_cookie(
        deps.COOKIE,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
    return response


@router.post("/signout")
def signout(request: Request, who: Reader, csrf: Csrf = "") -> Response:
    deps.check_csrf(request, csrf)
    response = back("/signin")
    response.delete_cookie(deps.COOKIE, path="/")
    return response


def safe_next(target: str) -> str:
    """Only a path on this server: `//evil.example` or `https://...` would send a person away."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/runs"


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name])


# runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """What the runs page keeps, from its query (each "" for any)."""

    status: str = ""
    agent: str = ""
    by: str = ""
    """Who submitted the run."""
    repo: str = ""

    def runs(self) -> list[Run]:
        chosen = {"agent": self.agent, "by": self.by, "repo": self.repo}
        return api.runs(self.status or None, limit=200, **{k: v or None for k, v in chosen.items()})


@router.get("/runs")
def runs_page(
    request: Request, who: Reader, status: str = "", agent: str = "", by: str = "", repo: str = ""
) -> Response:
    if status and status not in RUN_STATUSES:
        raise HTTPException(422, f"status={status!r} is not a run status; one of {RUN_STATUSES}")
    return render_runs(request, who, RunFilter(status, agent, by, repo))


def render_runs(
    request: Request, who: auth.Principal, kept: RunFilter, error: str = "", code: int = 200
) -> Response:
    found = kept.runs()
    return page(
        request,
        "runs.html",
        who,
        code,
        runs=found,
        waiting=api.waiting_for(found),
        kept=kept,
        choices=api.run_choices(),
        statuses=RUN_STATUSES,
        repos=run_repos(request),
        live=any(r.status not in RESTING for r in found),
        error=error,
    )


@router.post("/runs")
def submit(
    request: Request,
    who: Submitter,
    task: Annotated[str, Form()],
    repo: Annotated[int, Form()] = 0,
    attempts: Annotated[int, Form(ge=1)] = 1,
    agent: Annotated[str, Form()] = "",
    csrf: Csrf = "",
) -> Response:
    """`agent` names one of the repository's agents (a run page's "retry with another agent");
    empty, its default."""
    deps.check_csrf(request, csrf)
    roots = run_repos(request)
    if not 0 <= repo < len(roots):
        raise HTTPException(422, f"repo={repo} is not one of this server's {len(roots)} repos")
    try:
        if attempts > 1:
            run = api.submit_attempts(
                task, roots[repo], [], attempts, by=who.name, wait=False, origin=Origin.PERSON
            )[0]
        else:
            run = api.submit(
                task,
                roots[repo],
                agent or None,
                by=who.name,
                wait=False,
                origin=Origin.PERSON,
            )
    except JacklineError as e:
        return runs_refused(request, who, e)
    return back(f"/runs/{run.id}")


@router.post("/runs/{run_id}/retry")
def retry_run(
    request: Request,
    run_id: str,
    who: Submitter,
    agent: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
    csrf: Csrf = "",
) -> Response:
    """A failed, blocked or over-budget run tried again as a new run (`api.retry`), by the
    chosen agent, with the person's words on what should go differently; to the new run."""
    deps.check_csrf(request, csrf)
    try:
        run = api.get(run_id)
    except NotFound as e:
        return page(request, "missing.html", who, 404, message=str(e), back="/runs")
    offered = retry(request, run, who, run_config(run))
    if offered is None or offered["refused"]:
        why = offered["refused"] if offered else f"{run.id} is {run.status}: it is not retried"
        return render_run(request, run, who, why, 409 if offered is None else 403)
    try:
        again = api.retry(run.id, agent or None, message, by=who.name, wait=False)
    except JacklineError as e:
        return render_run(request, run, who, str(e), deps.status_of(e, otherwise=422))
    return back(f"/runs/{again.id}")


def runs_refused(request: Request, who: auth.Principal, error: JacklineError) -> Response:
    return render_runs(request, who, RunFilter(), str(error), deps.status_of(error, otherwise=422))


def repos(request: Request) -> tuple[Path, ...]:
    return tuple(request.app.state.settings.repos)


def run_repos(request: Request) -> tuple[Path | str, ...]:
    """What the page submits runs for: the repositories served by path, then those by URL
    (`--repo URL`), which a server of a team with no checkout of its own serves; a worker
    takes each such run to a clone of its own."""
    settings = request.app.state.settings
    return (*settings.repos, *settings.urls)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, who: Reader) -> Response:
    try:
        run = api.get(run_id)
    except NotFound as e:
        return page(request, "missing.html", who, 404, message=str(e), back="/runs")
    return render_run(request, run, who)


def render_run(
    request: Request, run: Run, who: auth.Principal, error: str = "", status: int = 200
) -> Response:
    found = api.findings(run.id)
    # The summary shows the findings, the agent's notes and where to look twice: the handoff
    # below it leaves them out, so each is read once.
    handoff = api.handoff_text(run, apart=True)
    record = api.handoff_record(run)
    events = api.events(run.id)
    rounds = api.rounds(run.id, events)
    change = api.change_text(run)  # read once: the summary's stat and the viewer both use it
    config = run_config(run)
    return page(
        request,
        "run.html",
        who,
        status,
        run=run,
        error=error,
        rounds=rounds,
        marks=summary.rounds(rounds),
        change=summary.change(change),
        levels=summary.levels(found),
        notes=render_markdown(record.notes) if record and record.notes.strip() else None,
        look_twice=[render_markdown(x) for x in record.doubts] if record else [],
        ci=list(record.ci) if record else [],
        owners=config.review.owners if config else [],
        findings=found,
        handoff=render_markdown(handoff) if handoff else None,
        diff=run_diff(run, change, found, events, who),
        events=[event_json(e) for e in events],
        last=max((e.seq for e in events), default=0),
        final=run.status in FINAL,
        resting=run.status in RESTING,
        can_decide=who.may("decide"),
        refused=api.refusals(run.id, who),
        unaccepted=api.acceptance_refusals(run.id, who),
        retry=retry(request, run, who, config),
        open_blocking=open_blocking(run),
    )


def run_config(run: Run) -> cfg.JacklineConfig | None:
    """The config the run recorded (its owners, its agents), or None for a run without one."""
    store = Store()
    try:
        return api.recorded_config(store, run.id)
    except (IndexError, KeyError, ValueError):  # recorded before configs were
        return None
    finally:
        store.close()


def retry(
    request: Request, run: Run, who: auth.Principal, config: cfg.JacklineConfig | None
) -> dict[str, Any] | None:
    """What the retry form needs (the agents, the one to preselect: another than the run's),
    and why it may not be used, if so (this server must serve the run's repository)."""
    if run.status not in api.RETRIED:
        return None
    names = [
        {str(r), str(r.resolve()) if isinstance(r, Path) else str(r)} for r in run_repos(request)
    ]
    repo = next((i for i, known in enumerate(names) if run.repo in known), None)
    agents = sorted(config.agents) if config else [run.agent]
    others = [a for a in agents if a != run.agent]
    why = ""
    if not who.may("submit"):
        why = f"{who.name} is a {who.role}: starting a run needs the {auth.ACTIONS['submit']} role"
    elif repo is None:
        why = f"this server does not serve {run.repo}: start it where that repository is served"
    return {
        "agents": agents,
        "chosen": (others or agents)[0],
        "refused": why,
    }


def run_diff(
    run: Run,
    text: str | None,
    found: list[dict[str, Any]],
    events: list[Event],
    who: auth.Principal,
) -> dict[str, Any] | None:
    """The change the run made, base to the agent's commit (`text`: the change the commit step
    kept, `api.change_text`), as the diff viewer shows it, with what its last round changed
    since the round before and the comments on its lines (None before it has a commit)."""
    if not run.base_sha or not run.head_sha:
        return None
    command = f"git diff {run.base_sha[:10]} {run.head_sha[:10]}"
    shown: dict[str, Any] = {"command": command, "repo": run.repo, "view": None, "html": None}
    shown.update(earlier=[], here=0, can_comment=False, since=None, since_view=None)
    if text is None:  # a run committed before changes were kept
        try:
            text = api.git_change(run, run.base_sha, run.head_sha)
        except (CommandFailed, NotFound, OSError) as e:  # the repository moved or lost them
            return {**shown, "error": f"cannot show the diff: {e}"}
    said = api.comments(run.id)
    here = [c for c in said if c.head == run.head_sha]
    shown |= {
        "earlier": [c for c in said if c.head != run.head_sha],
        "here": len(here),
        "can_comment": run.status == "awaiting_review" and who.may("decide"),
        "since": api.round_change(run, events),
        "since_view": None,
        **_viewed(text, "f", found, here, command, run.repo),
    }
    since = shown["since"]
    if since is not None and since.text is not None:
        since_command = f"git diff {since.previous[:10]} {since.head[:10]}"
        shown["since_view"] = _viewed(since.text, "r", (), (), since_command, run.repo)
    return shown


def _viewed(
    text: str,
    prefix: str,
    found: Sequence[dict[str, Any]],
    said: Sequence[Comment],
    command: str,
    repo: str,
) -> dict[str, Any]:
    """A change parsed for the viewer; text unidiff cannot read is shown as it is, coloured."""
    try:
        change = diffs.parse(text)
    except diffs.Unreadable as e:
        cut = len(text) > MAX_DIFF
        error = f"shown as text ({e})" + (f"; cut at {MAX_DIFF} characters" if cut else "")
        return {"view": None, "html": render_diff(text[:MAX_DIFF]), "error": error}
    view = diffpage.view(change, prefix, found, said)
    notes = []
    if view.hidden:
        notes.append(
            f"{view.hidden} file(s) not shown whole: the page shows {diffpage.MAX_LINES:,} "
            f"lines; `{command} -- PATH` in {repo} shows one"
        )
    if view.cut:
        notes.append(f"the kept change was cut: `{command}` in {repo} shows it all")
    return {"view": view, "html": None, "error": "; ".join(notes)}


DECISIONS: dict[str, Callable[[str, str, str, str | None], Run]] = {
    "approve": lambda run_id, by, text, head: api.approve(run_id, by=by, message=text, head=head),
    "request-changes": lambda run_id, by, text, head: api.request_changes(
        run_id, text, by=by, head=head
    ),
    "reject": lambda run_id, by, text, head: api.reject(run_id, by=by, message=text, head=head),
    # Not bound to a head: a cancel ends the run whatever round it is in.
    "cancel": lambda run_id, by, text, head: api.cancel(run_id, by=by, message=text),
}


@router.post("/runs/{run_id}/findings/{finding}/accept")
def accept(
    request: Request,
    run_id: str,
    finding: str,
    who: Decider,
    message: Annotated[str, Form()] = "",
    csrf: Csrf = "",
    head: Annotated[str | None, Form()] = None,
) -> Response:
    """Accept one finding, saying why, on the head the page showed (`api.accept`)."""
    deps.check_csrf(request, csrf)
    try:
        api.accept(run_id, finding, message, by=who.name, head=head)
    except (Refused, NotFound) as e:
        return render_run(request, api.get(run_id), who, str(e), deps.status_of(e, otherwise=403))
    return back(f"/runs/{run_id}")


@router.post("/runs/{run_id}/comments")
def comment(
    request: Request,
    run_id: str,
    who: Decider,
    file: Annotated[str, Form()],
    side: Annotated[Literal["old", "new"], Form()],
    line: Annotated[int, Form(ge=1)],
    text: Annotated[str, Form()],
    csrf: Csrf = "",
    head: Annotated[str | None, Form()] = None,
) -> Response:
    """Comment on a line of the change, on the head the page showed (`api.comment`)."""
    deps.check_csrf(request, csrf)
    try:
        made = api.comment(run_id, file, side, line, text, by=who.name, head=head)
    except (Refused, NotFound) as e:
        return render_run(request, api.get(run_id), who, str(e), deps.status_of(e, otherwise=403))
    return back(f"/runs/{run_id}#c-{made.id}")


@router.post("/runs/{run_id}/{decision}")
def decide(
    request: Request,
    run_id: str,
    decision: str,
    who: Decider,
    message: Annotated[str, Form()] = "",
    csrf: Csrf = "",
    head: Annotated[str | None, Form()] = None,
) -> Response:
    """`head` is the commit the page showed: a page left open while the run moved on to
    another round does not decide that round."""
    deps.check_csrf(request, csrf)
    if decision not in DECISIONS:
        raise HTTPException(404, f"no decision {decision!r}; one of {', '.join(DECISIONS)}")
    if decision == "reject" and not message.strip():
        # A person on the page says why a run is closed: the agent's author, the submitter
        # and the next reviewer read it in the log.
        said = "say why the run is rejected: the reason is recorded with the decision"
        return render_run(request, api.get(run_id), who, said, 422)
    try:
        # Blocks until the run rests again (merged, rejected, back in review): this is a sync
        # route, so FastAPI runs it in its threadpool and the server keeps serving.
        DECISIONS[decision](run_id, who.name, message, head)
    except Refused as e:
        return render_run(request, api.get(run_id), who, str(e), deps.status_of(e, otherwise=403))
    return back(f"/runs/{run_id}")


# the live log -----------------------------------------------------------------------------


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: str, who: Reader, after: int = 0) -> Response:
    """Server-sent events: `audit` for each new event of the run's log (its `id` is the seq,
    so a reconnecting browser resumes where it was), `status` when the status changes, `end`
    once the run is final."""
    run = await run_in_threadpool(api.get, run_id)
    resume = request.headers.get("last-event-id", "")
    start = int(resume) if resume.isdigit() else after
    return StreamingResponse(
        watch(request, run.id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def watch(request: Request, run_id: str, after: int) -> AsyncIterator[str]:
    last, status = after, ""
    while not await request.is_disconnected():
        # The status first, then the events: what a step records before it moves the status
        # (the handoff, say) is sent before the status that follows it.
        run = await run_in_threadpool(api.get, run_id)
        for event in await run_in_threadpool(api.events, run_id, last):
            last = event.seq
            yield sse("audit", json.dumps(event_json(event)), event.seq)
        if run.status != status:
            status = run.status
            yield sse("status", json.dumps({"status": status, "reason": run.reason}))
        if status in FINAL:
            yield sse("end", json.dumps({"status": status}))
            return
        await asyncio.sleep(POLL)


def sse(kind: str, data: str, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


def event_json(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "time": time.strftime("%H:%M:%S", time.localtime(e.ts)),
        "kind": e.kind,
        "line": describe_event(e.kind, e.data),  # the line `jackline logs` prints
        "intact": e.intact,
    }


# releases ---------------------------------------------------------------------------------


@router.get("/releases")
def releases_page(request: Request, who: Reader) -> Response:
    found = api.releases(limit=200)
    return page(request, "releases.html", who, releases=found, repos=repos(request), error="")


@router.post("/releases")
def start_release(
    request: Request, who: Releaser, repo: Annotated[int, Form()] = 0, csrf: Csrf = ""
) -> Response:
    deps.check_csrf(request, csrf)
    roots = repos(request)
    if not 0 <= repo < len(roots):
        raise HTTPException(422, f"repo={repo} is not one of this server's {len(roots)} repos")
    try:
        # Drives the release until it waits for a go or ends (staging's deploy and probes).
        rel = api.release(roots[repo], by=who.name)
    except JacklineError as e:
        found = api.releases(limit=200)
        code = deps.status_of(e, otherwise=422)
        return page(request, "releases.html", who, code, releases=found, repos=roots, error=str(e))
    return back(f"/releases/{rel.id}")


@router.get("/releases/{release_id}")
def release_page(request: Request, release_id: str, who: Reader) -> Response:
    try:
        return render_release(request, release_id, who)
    except NotFound as e:
        return page(request, "missing.html", who, 404, message=str(e), back="/releases")


def render_release(
    request: Request, release_id: str, who: auth.Principal, error: str = "", status: int = 200
) -> Response:
    rel = api.release_get(release_id)
    events = [e for e in api.release_events(rel.id) if e.kind != Kind.RELEASE_STARTED]
    try:
        carries, unread = api.release_carries(rel.id), ""
    except (CommandFailed, OSError) as e:  # the repository moved or lost the commits
        carries, unread = None, f"cannot read what it carries from {rel.repo}: {e}"
    final = rel.status in RELEASE_FINAL
    return page(
        request,
        "release.html",
        who,
        status,
        rel=rel,
        probes=api.release_probes(rel.id),
        carries=carries,
        unread=unread,
        events=[event_json(e) for e in events],
        waits=rel.status in RELEASE_WAITS,
        refused_go=api.go_refusal(rel.id, who) if rel.status in RELEASE_WAITS else None,
        # Without a script the page follows the release by reloading: often while it moves,
        # now and then while it waits for a person (someone else may say go).
        refresh=None if final else (10 if rel.status in RELEASE_WAITS else 2),
        error=error,
    )


RELEASE_ACTIONS: dict[str, Callable[[str, str], Any]] = {
    "go": lambda release_id, by: api.go(release_id, by=by),
    "abort": lambda release_id, by: api.abort(release_id, by=by),
}


@router.post("/releases/{release_id}/{action}")
def release_action(
    request: Request, release_id: str, action: str, who: Goer, csrf: Csrf = ""
) -> Response:
    deps.check_csrf(request, csrf)
    if action not in RELEASE_ACTIONS:
        raise HTTPException(404, f"no release action {action!r}; one of go, abort")
    try:
        RELEASE_ACTIONS[action](release_id, who.name)
    except Refused as e:
        return render_release(request, release_id, who, str(e), deps.status_of(e))
    return back(f"/releases/{release_id}")


# flags and health -------------------------------------------------------------------------


@router.get("/flags")
def flags_page(request: Request, who: Reader, env: str = "") -> Response:
    listed = []
    for root in repos(request):
        try:
            listed.append({"repo": root, "flags": api.flags_list(root, env or None), "error": ""})
        except JacklineError as e:
            listed.append({"repo": root, "flags": None, "error": str(e)})
    return page(request, "flags.html", who, listed=listed, env=env)


@router.get("/health")
def health_page(request: Request, who: Reader) -> Response:
    reports = []
    for root in repos(request):
        try:
            reports.append({"repo": root, "report": api.health(root), "error": ""})
        except JacklineError as e:
            reports.append({"repo": root, "report": None, "error": str(e)})
    return page(request, "health.html", who, reports=reports)
