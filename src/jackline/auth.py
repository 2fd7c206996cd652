"""Who is asking, and what they may do: tokens and roles for every surface, and who acts from
this machine's command line.

On this machine the person is the OS user running `jackline` (the login of the process's uid):
the one identity the machine itself checked. `--as NAME` and `JACKLINE_USER` name someone else,
which nothing checks, so they work only where the project's `[review] allow_as = true` (a demo, a
test that plays several people), and what is done that way is recorded as a claim:
`by: "alice", claimed_by_os_user: "root"`. Elsewhere they are refused: the submitter of a run
must not approve it by naming its owner. Several people on one machine use a server and its
tokens (`--server`, `JACKLINE_TOKEN`).

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
revoked token stops working at once, and one made with an expiry (`--expires 30d`) when it
expires. The first `jackline serve` on an empty database makes an
admin token and prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pwd
import secrets
import time
from dataclasses import dataclass

from jackline import paths
from jackline.config import ROLES
from jackline.errors import Invalid, NotFound, Refused
from jackline.models import Token
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
TOUCH_EVERY = 60.0
"""Seconds a token's `last_used` may lag behind its use: a token is checked on every request,
but its `last_used` is written only when the one stored is older than this. A write on every
GET took SQLite's one write lock per request and was most of what a read cost."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str = "token"
    """How they came: `token`, `slack`, `github`."""

    def may(self, action: str) -> bool:
        return allows(self.role, action)


@dataclass(frozen=True)
class Identity:
    """Who takes an action: a name a surface authenticated, or this machine's OS user."""

    name: str
    """The name the action is recorded under (and checked against owners, the submitter)."""
    claimed_by: str | None = None
    """The OS user who named `name` with `--as` or `JACKLINE_USER`, when that is someone else:
    a claim nothing checked, allowed only where `[review] allow_as = true`."""

    def record(self) -> dict[str, str]:
        """What an audit event or a decision carries of who acted."""
        claim = {"claimed_by_os_user": self.claimed_by} if self.claimed_by else {}
        return {"by": self.name, **claim}


def os_user() -> str:
    """The login of this process's uid. Not `getpass.getuser()`: that believes `$LOGNAME` and
    `$USER`, which anyone sets as easily as `JACKLINE_USER`."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (some containers)
        return f"uid-{uid}"


def local(allow_as: bool, claimed: str | None = None, action: str = "decide") -> Identity:
    """Who acts from this machine: the OS user, or the name `--as` (`claimed`) or
    `JACKLINE_USER` gives, where the project allows such claims; refused otherwise. In team
    mode, the person `JACKLINE_TOKEN` stands for (`team_member`)."""
    if paths.team_mode():
        return team_member(claimed, action)
    me = os_user()
    env = os.environ.get("JACKLINE_USER", "").strip()
    name = (claimed or "").strip() or env or me
    if name == me:
        return Identity(me)
    if not allow_as:
        how = f"--as {name}" if (claimed or "").strip() else f"JACKLINE_USER={name}"
        raise Refused(
            f"{how} names someone other than you ({me}, the OS user running jackline), and "
            "nothing checks that claim: the command line acts as its OS user unless the "
            "project's jackline.toml sets [review] allow_as = true (for a demo or tests that "
            "play several people); people sharing a machine decide through a server's tokens "
            "(--server, JACKLINE_TOKEN)"
        )
    return Identity(name, claimed_by=me)


def team_member(claimed: str | None, action: str) -> Identity:
    """In team mode the OS user of one of many machines names nobody the team knows, and a
    name given on the command line is a claim nothing checks: the command line acts as the
    person its `JACKLINE_TOKEN` stands for, checked against the team's database like a
    server's, with that token's role."""
    if (claimed or "").strip() or os.environ.get("JACKLINE_USER", "").strip():
        how = "--as" if (claimed or "").strip() else "JACKLINE_USER"
        raise Refused(
            f"{how} does not apply in team mode (JACKLINE_DATABASE_URL is set): you act as the "
            "person your JACKLINE_TOKEN stands for"
        )
    presented = os.environ.get("JACKLINE_TOKEN", "").strip()
    if not presented:
        raise Unauthenticated(
            "in team mode (JACKLINE_DATABASE_URL is set) the command line acts with a token: "
            "set JACKLINE_TOKEN to yours (`jackline token create NAME --role reviewer` makes one)"
        )
    try:
        person = check(Store(), presented)[0]
    except Unauthenticated as e:
        raise Unauthenticated(
            f"JACKLINE_TOKEN does not work in this team's database: {e}"
        ) from None
    return Identity(require(person, action).name)


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
    """No principal, or a token that is unknown, revoked or expired."""

    kind = "unauthenticated"


def create_token(
    store: Store, name: str, role: str, lasts: float | None = None
) -> tuple[Token, str]:
    """A new token for `name` with `role`, working for `lasts` seconds (None: until revoked);
    the secret is returned once and never stored."""
    if role not in ROLES:
        raise Invalid(f"{role!r} is not a role; one of: {', '.join(ROLES)}")
    if not name.strip():
        raise Invalid("a token needs the name of the person it is for")
    if lasts is not None and lasts <= 0:
        raise Invalid("a token's --expires is a time to come, such as 30d or 12h")
    token_id = secrets.token_hex(4)
    secret = f"jl_{token_id}_{secrets.token_urlsafe(32)}"
    now = time.time()
    expires = now + lasts if lasts is not None else None
    store.insert_token(token_id, name.strip(), role, _digest(secret), now, expires)
    return store.get_token(token_id), secret


def check(store: Store, presented: str) -> tuple[Principal, Token]:
    """The principal a presented token stands for, and the token; else `Unauthenticated`, with
    why. Whose a token is, and that it was revoked or has expired, is said only to whoever
    holds its secret: anyone else hears that it is unknown."""
    unknown = Unauthenticated("that token is not one of this server's")
    parts = presented.strip().split("_")
    if len(parts) < 3 or parts[0] != "jl":
        raise unknown
    stored = store.token_row(parts[1])
    if stored is None or not hmac.compare_digest(stored.digest, _digest(presented.strip())):
        raise unknown
    token = stored.token
    now = time.time()
    if token.revoked:
        raise Unauthenticated(f"token {token.id} of {token.name} was revoked")
    if token.expires_at is not None and now >= token.expires_at:
        raise Unauthenticated(
            f"token {token.id} of {token.name} expired on {stamp(token.expires_at)}; an admin "
            f"makes a new one (`jackline token create {token.name} --role {token.role}`)"
        )
    if token.last_used is None or not 0 <= now - token.last_used < TOUCH_EVERY:
        store.touch_token(token.id, now)
    return Principal(token.name, token.role), token


def verify(store: Store, presented: str) -> Principal | None:
    """The principal a presented token stands for, or None (unknown, malformed, revoked,
    expired: `check` says which)."""
    try:
        return check(store, presented)[0]
    except Unauthenticated:
        return None


def stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def revoke(store: Store, token_id: str) -> Token:
    if store.token_row(token_id) is None:
        raise NotFound(f"no token {token_id!r} (`jackline token list` shows them)")
    store.revoke_token(token_id)
    return store.get_token(token_id)


def first_admin(store: Store) -> str | None:
    """On a database with no live admin token: make one and return its secret (shown once)."""
    now = time.time()
    live = [t for t in store.list_tokens() if not t.revoked and (t.expires_at or now + 1) > now]
    if any(t.role == "admin" for t in live):
        return None
    return create_token(store, "admin", "admin")[1]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
