"""Credentials for repositories reached by https: a worker's own setting, never the project's.

A token never goes in a URL, a command line, a log or the audit log. It is named by a secret
reference (`env:NAME`, `file:PATH`, as `guard.redact.resolve` reads them) in
`JACKLINE_HOME/remotes.toml`, a file of the machine's, not the repository's: `jackline.toml` lives
in the repository the token protects, where an agent's change or anyone with push access could
point it elsewhere.

    [[remote]]
    url_prefix = "https://git.example.com/acme/"
    token = "env:ACME_GIT_TOKEN"

The token reaches git only through the environment of the git process that talks to the
remote (`GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_0=http.<url>.extraHeader`, an `Authorization`
header), scoped to that repository's URL so that a redirect elsewhere does not carry it; and
every value it takes is redacted from every stored byte (`secret_values`). Over ssh, git uses the
worker's own ssh set-up (`GIT_SSH_COMMAND="ssh -i KEY -o IdentitiesOnly=yes -o BatchMode=yes"`).
"""

from __future__ import annotations

import base64
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from jackline import paths
from jackline.errors import ConfigError
from jackline.guard.redact import resolve

FILENAME = "remotes.toml"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
"""Hosts a token may reach over plain http: nothing leaves the machine."""


class RemoteCredential(BaseModel):
    """One `[[remote]]` of `remotes.toml`: the token for the repositories under a URL prefix."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    url_prefix: str
    """The repositories this token is for: every URL that starts with it (the longest prefix
    wins), e.g. `https://github.com/acme/`. https only (http on loopback, for tests)."""
    token: str
    """A secret reference to the token, `env:NAME` or `file:PATH`; never the token itself."""
    username: str = "x-access-token"
    """The user name sent with the token (`auth = "basic"`). GitHub, GitLab and Gitea take a
    token with any non-empty name; a GitHub App's token wants `x-access-token`."""
    auth: Literal["basic", "bearer"] = "basic"
    """`basic` sends `username:token`; `bearer` sends the token as a bearer token."""

    @field_validator("url_prefix")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("expected an https:// URL prefix (ssh uses the worker's ssh keys)")
        if parts.username or parts.password:
            raise ValueError("a URL prefix holds no user name or password; use `username`")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK:
            raise ValueError("a token is never sent over plain http; use https://")
        return value

    @field_validator("token")
    @classmethod
    def _reference(cls, value: str) -> str:
        scheme, _, rest = value.partition(":")
        if scheme not in ("env", "file") or not rest:
            # Never echoed: what stands here may be the token itself.
            raise ValueError("expected a secret reference, 'env:NAME' or 'file:PATH'")
        return value


class RemotesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    remote: list[RemoteCredential] = []


@dataclass(frozen=True)
class Header:
    """What git sends to one repository's URL: an `Authorization` header, and the values it
    holds (the token, and its base64 form in a Basic header) for redaction."""

    url: str
    value: str
    secrets: tuple[str, ...]


def path() -> Path:
    return paths.home() / FILENAME


def load() -> list[RemoteCredential]:
    """The `[[remote]]` entries of this machine's `remotes.toml` (none without the file)."""
    where = path()
    if not where.is_file():
        return []
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(str(where), [f"not a readable TOML file: {e}"]) from None
    try:
        return RemotesFile.model_validate(data).remote
    except ValidationError as e:
        raise ConfigError(str(where), [_describe(err) for err in e.errors()]) from None


def _describe(err: Any) -> str:
    """The place and the problem, never the value given: it may be a token."""
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"{loc}: field required"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key; known: url_prefix, token, username, auth"
    return f"{loc}: {err['msg'].removeprefix('Value error, ')}"


def for_url(url: str) -> RemoteCredential | None:
    """The entry whose prefix is the longest that `url` starts with, if any."""
    matching = [r for r in load() if url.startswith(r.url_prefix)]
    return max(matching, key=lambda r: len(r.url_prefix), default=None)


def header(url: str) -> Header | None:
    """The `Authorization` header for `url`, resolved now; None when no entry is for it."""
    found = for_url(url)
    if found is None:
        return None
    at = f"{path()}: remote with url_prefix {found.url_prefix!r}: token"
    token = resolve(found.token, at)
    if not token:
        raise ConfigError(at, [f"{found.token} is empty"])
    if found.auth == "bearer":
        return Header(url, f"Authorization: Bearer {token}", (token,))
    basic = base64.b64encode(f"{found.username}:{token}".encode()).decode()
    return Header(url, f"Authorization: Basic {basic}", (token, basic))


def git_env(url: str) -> dict[str, str]:
    """The environment that gives a git process the header for `url` and nothing else: one
    configuration entry passed as variables (`GIT_CONFIG_COUNT`), scoped to `url`."""
    found = header(url)
    if found is None:
        return {}
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{found.url}.extraHeader",
        "GIT_CONFIG_VALUE_0": found.value,
    }


def secret_values() -> dict[str, str]:
    """Every value a configured token takes, named for the redactor. A broken file or a token
    that does not resolve adds nothing: such a token is never sent either."""
    try:
        entries = load()
    except ConfigError:
        return {}
    out: dict[str, str] = {}
    for i, entry in enumerate(entries):
        try:
            token = resolve(entry.token, FILENAME)
        except ConfigError:
            continue
        basic = base64.b64encode(f"{entry.username}:{token}".encode()).decode()
        out[f"remote{i}_token"] = token
        out[f"remote{i}_basic"] = basic
    return out
