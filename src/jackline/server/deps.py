"""Who is asking, on every request: a bearer token (the API, the CLI's `--server`) or the web
page's session cookie (which holds the same token, HttpOnly and SameSite=Strict). Routes declare
the action they need with `Depends(allowed("decide"))`; the answer is a `Principal` or a 401/403.

Forms on the web page carry a CSRF token derived from the session (`csrf_token`), checked by
`check_csrf` on every POST that came with a cookie; requests with a bearer token need none (a
browser never adds that header by itself).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from jackline import auth, paths
from jackline.errors import ConfigError, JacklineError, NotFound, Refused
from jackline.store import Store

COOKIE = "jackline_session"


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


def principal(request: Request) -> auth.Principal | None:
    token, _ = presented_token(request)
    if not token:
        return None
    s = Store()
    try:
        return auth.verify(s, token)
    finally:
        s.close()


Who = Annotated[auth.Principal | None, Depends(principal)]


def allowed(action: str) -> Callable[..., auth.Principal]:
    """A dependency: the principal, if they may take `action`; else 401 (nobody) or 403."""

    def check(request: Request, who: Who) -> auth.Principal:
        if who is None:
            raise HTTPException(
                401,
                "sign in: this needs a token (`Authorization: Bearer TOKEN`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not who.may(action):
            raise HTTPException(
                403, f"{who.name} is a {who.role}; this needs the {auth.ACTIONS[action]} role"
            )
        request.state.principal = who
        return who

    return check


def server_secret() -> bytes:
    """A random secret kept under JACKLINE_HOME (mode 0600): the key CSRF tokens are made with."""
    path = paths.home() / "server-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def csrf_token(request: Request) -> str:
    """The CSRF token for the request's session (empty without one)."""
    token, how = presented_token(request)
    if not token or how != "cookie":
        return ""
    return hmac.new(server_secret(), token.encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a cookie-authenticated POST whose form does not carry the session's CSRF token."""
    _, how = presented_token(request)
    if how != "cookie":
        return
    if not submitted or not hmac.compare_digest(submitted, csrf_token(request)):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")


def install_error_handlers(app: FastAPI) -> None:
    """Jackline's errors as HTTP answers: not found 404, refused 403 (409 for a state that does
    not allow it), bad config 422; the message is the same one the CLI prints."""

    @app.exception_handler(JacklineError)
    async def _jackline_error(request: Request, exc: JacklineError) -> JSONResponse:
        status = 500
        if isinstance(exc, auth.Unauthenticated):
            status = 401
        elif isinstance(exc, NotFound):
            status = 404
        elif isinstance(exc, Refused):
            status = 403
        elif isinstance(exc, ConfigError):
            status = 422
        body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
        return JSONResponse(body, status_code=status)
