"""API tokens for the server's surfaces."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jackline.models import (
    Token,
)
from jackline.store import Store

if TYPE_CHECKING:
    pass


def token_create(name: str, role: str) -> tuple[Token, str]:
    """A token for `name` with `role` for the server; its secret is returned once, never stored."""
    from jackline import auth

    return auth.create_token(Store(), name, role)


def tokens() -> list[Token]:
    """Every token, revoked ones included (never their secrets)."""
    return Store().list_tokens()


def token_revoke(token_id: str) -> Token:
    """Revoke a token: it stops working on the next request."""
    from jackline import auth

    return auth.revoke(Store(), token_id)
