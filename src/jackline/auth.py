"""Who is asking, and what they may do: tokens and roles for every surface but the local CLI.

A person reaches the server (web page, JSON API) with a token; Slack and GitHub users are mapped
to a name and role in `jackline.toml` (`[surfaces.slack] users`, `[forge] users`). Each becomes a
`Principal`, and every request is checked against the action it asks for, on the server, on every
request: a page that hides a button is a courtesy, not the check.

Roles, each allowing what the one before allows:
    viewer    read runs, releases, flags, the health report
    reviewer  submit runs, approve / request changes / reject, start releases, say go, abort,
              set flags
    owner     set protected flags (a run with block-level findings still needs a person named in
              the project's `[review] owners`: the project decides who owns it, not a token)
    admin     create and revoke tokens

Tokens are random (`jl_<id>_<secret>`), shown once, and stored only as a SHA-256 digest; a
revoked token stops working at once. The first `jackline serve` on an empty database makes an
admin token and prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from jackline.config import ROLES
from jackline.errors import NotFound, Refused
from jackline.store import Store

ACTIONS = {
    "read": "viewer",
    "submit": "reviewer",
    "decide": "reviewer",
    "release": "reviewer",
    "go": "reviewer",
    "flags": "reviewer",
    "protected_flags": "owner",
    "admin": "admin",
}
"""Each action and the least role that may take it."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str = "token"
    """How they came: `token`, `slack`, `github`."""

    def may(self, action: str) -> bool:
        return allows(self.role, action)


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    role: str
    created_at: float
    last_used: float | None
    revoked: bool


def allows(role: str, action: str) -> bool:
    needed = ACTIONS[action]
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def require(who: Principal | None, action: str) -> Principal:
    """`who`, if they may take `action`; else refused, naming the role it needs."""
    if who is None:
        raise Unauthenticated("sign in: this needs a token (`Authorization: Bearer TOKEN`)")
    if not who.may(action):
        raise Refused(f"{who.name} is a {who.role}; this needs the {ACTIONS[action]} role")
    return who


class Unauthenticated(Refused):
    """No principal, or a token that is unknown or revoked."""


def create_token(store: Store, name: str, role: str) -> tuple[Token, str]:
    """A new token for `name` with `role`; the secret is returned once and never stored."""
    if role not in ROLES:
        raise Refused(f"{role!r} is not a role; one of: {', '.join(ROLES)}")
    if not name.strip():
        raise Refused("a token needs the name of the person it is for")
    token_id = secrets.token_hex(4)
    secret = f"jl_{token_id}_{secrets.token_urlsafe(32)}"
    store.insert_token(token_id, name.strip(), role, _digest(secret), time.time())
    return store.get_token(token_id), secret


def verify(store: Store, presented: str) -> Principal | None:
    """The principal a presented token stands for, or None (unknown, malformed, revoked)."""
    parts = presented.strip().split("_")
    if len(parts) < 3 or parts[0] != "jl":
        return None
    row = store.token_row(parts[1])
    if row is None or row["revoked"]:
        return None
    if not hmac.compare_digest(row["digest"], _digest(presented.strip())):
        return None
    store.touch_token(row["id"], time.time())
    return Principal(row["name"], row["role"])


def revoke(store: Store, token_id: str) -> Token:
    if store.token_row(token_id) is None:
        raise NotFound(f"no token {token_id!r} (`jackline token list` shows them)")
    store.revoke_token(token_id)
    return store.get_token(token_id)


def first_admin(store: Store) -> str | None:
    """On a database with no live admin token: make one and return its secret (shown once)."""
    if any(t.role == "admin" and not t.revoked for t in store.list_tokens()):
        return None
    return create_token(store, "admin", "admin")[1]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
