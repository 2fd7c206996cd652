"""API tokens for the server's surfaces, and who signed in with them.

What a token was made or revoked for, and every sign-in to the web page (and every one
refused), is recorded in one audit stream of the server's own (`events.ACCESS`), hash-chained
as a run's is: `jackline token log` reads it.
"""

from __future__ import annotations

from jackline import auth
from jackline.events import ACCESS, Kind
from jackline.guard.audit import AuditLog, Event
from jackline.guard.redact import Redactor
from jackline.models import Token
from jackline.store import Store


def token_create(
    name: str, role: str, lasts: float | None = None, by: str | None = None
) -> tuple[Token, str]:
    """A token for `name` with `role` for the server, working for `lasts` seconds (None: until
    revoked); its secret is returned once, never stored, never recorded."""
    store = Store()
    token, secret = auth.create_token(store, name, role, lasts)
    expires = auth.stamp(token.expires_at) if token.expires_at is not None else None
    _record(store, Kind.TOKEN_CREATED, id=token.id, name=token.name, role=token.role,
            expires=expires, by=by or auth.os_user())  # fmt: skip
    return token, secret


def tokens() -> list[Token]:
    """Every token, revoked and expired ones included (never their secrets)."""
    return Store().list_tokens()


def token_revoke(token_id: str, by: str | None = None) -> Token:
    """Revoke a token: it stops working on the next request."""
    store = Store()
    token = auth.revoke(store, token_id)
    _record(store, Kind.TOKEN_REVOKED, id=token.id, name=token.name, by=by or auth.os_user())
    return token


def sign_in(presented: str, where: str) -> auth.Principal:
    """The person a token presented at the web page's sign-in stands for (`where`: the
    address it came from), recorded; a refusal is recorded too, with why, and raised
    (`auth.Unauthenticated`). The secret is never recorded, nor a refused token's id."""
    store = Store()
    try:
        who, token = auth.check(store, presented)
    except auth.Unauthenticated as e:
        _record(store, Kind.SIGNIN_REFUSED, why=str(e), **{"from": where})
        raise
    _record(store, Kind.SIGNED_IN, id=token.id, name=who.name, role=who.role,
            **{"from": where})  # fmt: skip
    return who


def access_log(after: int = 0) -> list[Event]:
    """The server's access events, oldest first, each marked whether the chain holds."""
    return AuditLog(Store(), Redactor({})).read(ACCESS, after)


def _record(store: Store, kind: Kind, **data: object) -> None:
    AuditLog(store, Redactor({})).record(ACCESS, kind, **data)
