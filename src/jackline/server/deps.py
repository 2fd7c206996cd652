"""Who is asking, on every request: a bearer token (the API, the CLI's `--server`) or the web
page's session cookie (which holds the same token, HttpOnly and SameSite=Strict). Routes declare
the action they need with `Depends(allowed("decide"))`; the answer is a `Principal` or a 401/403.

A cookie is an ambient credential: the browser sends it with whatever a page asks, and every
`127.0.0.1:PORT` is the same site (cookies ignore ports, so SameSite=Strict lets a page of a
staging deployment on another loopback port send it). So a request that changes state (POST,
PUT, PATCH, DELETE) and comes with the cookie is taken only when it proves it comes from this
server's own page:

- it carries the CSRF token derived from the session (`csrf_token`): in the form (`csrf`, the
  web page's forms, checked by `check_csrf`) or in the `X-CSRF-Token` header (the JSON API; the
  page gives its scripts the token in `<meta name="csrf-token">`), which another page cannot
  read; and
- its `Origin` (or, where a browser sends none, its `Referer`) is this server's own origin
  (`check_origin`): a request that says nothing of where it comes from is refused.

A bearer token needs neither: a browser never adds that header by itself, and another page
cannot set it without a CORS preflight this server does not answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jackline import auth
from jackline.errors import ConfigError, Invalid, JacklineError, NotFound, Refused, WrongState
from jackline.server import fresh
from jackline.store import Store

COOKIE = "jackline_session"
CSRF_HEADER = "x-csrf-token"
"""Where a script of the web page puts the session's CSRF token on a JSON API request."""
SIGN_IN = "sign in: this needs a token (`Authorization: Bearer TOKEN`)"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing: the rest need proof of origin when they come with the cookie."""
T = TypeVar("T")


def store() -> Store:
    return Store()


def presented_token(request: Request) -> tuple[str | None, str]:
    """The token the request carries, and how: `bearer`, `cookie`, or `none`."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), "bearer"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, "none"


READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="reads")
"""The threads that read the store for requests: the token check of every request, and the
reads most requests are (`reading`). A few, apart from the pool that runs the routes that wait
(a decision waits for its workflow): twenty requests at once each on a thread of its own fought
over the interpreter's lock row by row, and a request cost 14.6 ms of CPU where it costs 8.5."""


async def reading(fn: Callable[[], T]) -> T:
    """`fn()` on one of the `READS` threads."""
    return await asyncio.get_running_loop().run_in_executor(READS, fn)


def _verify(token: str) -> tuple[auth.Principal, float | None] | str:
    """The principal the token stands for and when the token expires, or why it stands for
    nobody."""
    try:
        who, found = auth.check(Store(), token)
    except auth.Unauthenticated as e:
        return str(e)
    return who, found.expires_at


async def principal(request: Request) -> auth.Principal | None:
    """Who the request's token stands for; None for nobody, with why kept for the 401
    (`request.state.refusal`: an expired token is told that it expired). A token checked
    since the store last changed is not read again (`fresh`)."""
    token, _ = presented_token(request)
    if not token:
        return None
    seen = fresh.version()
    known = fresh.PRINCIPALS.get(token, seen)
    if known is not None:
        return known
    found = await reading(lambda: _verify(token))
    if isinstance(found, str):
        request.state.refusal = found
        return None
    fresh.PRINCIPALS.keep(token, seen, *found)
    return found[0]


Who = Annotated[auth.Principal | None, Depends(principal)]


def allowed(
    action: str, csrf_in: Literal["header", "form"] = "header"
) -> Callable[..., Coroutine[Any, Any, auth.Principal]]:
    """A dependency: the principal, if they may take `action`; else 401 (nobody) or 403.

    A state-changing request that came with the session cookie must come from this server's
    origin and carry the session's CSRF token: in the `X-CSRF-Token` header (`csrf_in="header"`,
    the JSON API), or in the form (`csrf_in="form"`: the route calls `check_csrf` with it)."""

    async def check(request: Request, who: Who) -> auth.Principal:
        if who is None:
            why = getattr(request.state, "refusal", "")
            raise HTTPException(
                401,
                f"sign in: {why}" if why else SIGN_IN,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if request.method not in SAFE_METHODS and presented_token(request)[1] == "cookie":
            check_origin(request)
            if csrf_in == "header":
                check_csrf(request, request.headers.get(CSRF_HEADER), "in the X-CSRF-Token header")
        if not who.may(action):
            raise HTTPException(
                403, f"{who.name} is a {who.role}; this needs the {auth.ACTIONS[action]} role"
            )
        request.state.principal = who
        return who

    return check


CSRF_LABEL = b"jackline csrf v1"


def csrf_token(request: Request) -> str:
    """The CSRF token for the request's session (empty without one): an HMAC keyed by the
    session's own token, so only whoever holds the session can make it, the page showing it
    reveals nothing of the token, and every server of a team (stateless, behind one proxy)
    derives the same one with no secret of its own: a page from one server posts to another.
    (A secret per server added nothing: whoever holds the token may act with it as a bearer.)"""
    token, how = presented_token(request)
    if not token or how != "cookie":
        return ""
    return hmac.new(token.encode(), CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(request: Request, submitted: str | None, where: str = "in the form") -> None:
    """Refuse a cookie-authenticated request from another origin, or one that does not carry
    the session's CSRF token (`where` it should be, for the message)."""
    _, how = presented_token(request)
    if how != "cookie":
        return
    check_origin(request)
    if not submitted or not hmac.compare_digest(submitted, csrf_token(request)):
        raise HTTPException(
            403, f"the session's CSRF token is missing or wrong {where}; reload the page"
        )


def check_origin(request: Request) -> None:
    """Refuse a request whose `Origin` (or, without one, `Referer`) is not this server's own
    origin. Browsers send `Origin` with every POST; a request that names neither is refused,
    since it cannot show that it comes from this server's page."""
    claimed = request.headers.get("origin") or origin_of(request.headers.get("referer", ""))
    if claimed and claimed.lower() in own_origins(request):
        return
    said = f"from {claimed}" if claimed else "without an Origin or Referer"
    raise HTTPException(
        403,
        f"refused: this request came {said}, not from this server's own origin "
        f"({', '.join(sorted(own_origins(request)))}); use the page itself, or a bearer token",
    )


def own_origins(request: Request) -> set[str]:
    """This server's origin as the browser addressed it (the request's scheme and `Host`), and
    any the settings name (`Settings.origins`: the public address of a reverse proxy)."""
    origins = {o.lower() for o in request.app.state.settings.origins}
    host = request.headers.get("host", "")
    if host:
        origins.add(f"{request.url.scheme}://{host}".lower())
    return origins


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL; empty for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


STATUSES: tuple[tuple[type[JacklineError], int], ...] = (
    (auth.Unauthenticated, 401),
    (NotFound, 404),
    (WrongState, 409),
    (Invalid, 422),
    (ConfigError, 422),
    (Refused, 403),
)
"""Each error's HTTP status, the first that fits: 403 is for who may not, 409 for what may not
happen in the state the run or release is in, 422 for what was asked wrongly."""
KINDS = {401: "unauthenticated", 403: "refused", 404: "not_found", 409: "wrong_state"}
"""The `kind` of an error that is no error of ours (FastAPI's, Starlette's), by its status."""
JSON_PATHS = ("/api/", "/flags/", "/metrics", "/slack/", "/github/", "/docs", "/openapi.json")
"""Where the server answers machines: an error there is JSON; anywhere else, a web page."""
HtmlError = Callable[[Request, int, str], Awaitable[Response]]


def status_of(error: JacklineError, otherwise: int = 500) -> int:
    return next((code for kind, code in STATUSES if isinstance(error, kind)), otherwise)


def error_json(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one shape of every error the JSON API answers, the same `jackline --json` prints:
    `{"error": {"kind": ..., "message": ...}}`; the status says the rest."""
    body = {"error": {"kind": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, html: HtmlError) -> None:
    """Every error as an HTTP answer: for the JSON API, the status `STATUSES` gives and the
    message the CLI prints, in `error_json`'s shape; for the web page, a page (`html`) that
    says it. An error with a redirect (a page's "sign in first") stays a redirect."""

    async def answer(
        request: Request, status: int, kind: str, message: str, **headers: str
    ) -> Response:
        if request.url.path.startswith(JSON_PATHS):
            return error_json(status, kind, message, headers or None)
        return await html(request, status, message)

    @app.exception_handler(JacklineError)
    async def _jackline_error(request: Request, exc: JacklineError) -> Response:
        return await answer(request, status_of(exc), exc.kind, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        kind = KINDS.get(exc.status_code, "invalid" if exc.status_code < 500 else "error")
        return await answer(request, exc.status_code, kind, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return await answer(request, 422, "invalid", readable(exc.errors()))


def readable(problems: Sequence[Any]) -> str:
    """FastAPI's validation errors as one line a person reads: `body.task: Field required`."""
    lines = []
    for problem in problems:
        where = ".".join(str(part) for part in problem.get("loc", ()))
        lines.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(lines) or "the request is not valid"
