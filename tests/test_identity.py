"""Who acts from this machine: the OS user; a name given with --as or JACKLINE_USER is a claim."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from jackline import auth
from jackline.errors import Refused
from jackline.store import Store


def test_the_local_person_is_the_uids_login_whatever_user_and_logname_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "carol")
    monkeypatch.delenv("JACKLINE_USER", raising=False)
    me = pwd.getpwuid(os.getuid()).pw_name
    assert auth.local(allow_as=False) == auth.Identity(me)


def test_naming_yourself_is_no_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    me = auth.os_user()
    monkeypatch.setenv("JACKLINE_USER", me)
    assert auth.local(allow_as=False) == auth.Identity(me)
    assert auth.local(allow_as=False, claimed=me).record() == {"by": me}


def test_naming_someone_else_is_refused_unless_the_project_allows_claims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JACKLINE_USER", raising=False)
    with pytest.raises(Refused, match=r"--as carol .*\[review\] allow_as = true"):
        auth.local(allow_as=False, claimed="carol")
    monkeypatch.setenv("JACKLINE_USER", "carol")
    with pytest.raises(Refused, match="JACKLINE_USER=carol"):
        auth.local(allow_as=False)
    claim = auth.local(allow_as=True)
    assert claim.record() == {"by": "carol", "claimed_by_os_user": auth.os_user()}
    # --as wins over JACKLINE_USER, and is a claim all the same.
    assert auth.local(allow_as=True, claimed="bob").record()["by"] == "bob"


def test_in_team_mode_the_command_line_acts_as_its_tokens_person_with_its_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path))
    monkeypatch.setenv("JACKLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'engine.db'}")
    monkeypatch.delenv("JACKLINE_USER", raising=False)
    monkeypatch.delenv("JACKLINE_TOKEN", raising=False)
    store = Store()
    bob = auth.create_token(store, "bob", "reviewer")[1]
    vera = auth.create_token(store, "vera", "viewer")[1]
    revoked, gone = auth.create_token(store, "eve", "admin")
    auth.revoke(store, revoked.id)
    # The OS user names nobody the team knows: no token, no action.
    with pytest.raises(auth.Unauthenticated, match="set JACKLINE_TOKEN"):
        auth.local(allow_as=True)
    for presented, why in (
        ("jl_nope_nope", "not one of"),
        (gone, f"{revoked.id} of eve was revoked"),
    ):
        monkeypatch.setenv("JACKLINE_TOKEN", presented)
        with pytest.raises(
            auth.Unauthenticated, match=f"does not work in this team's database: .*{why}"
        ):
            auth.local(allow_as=True)
    monkeypatch.setenv("JACKLINE_TOKEN", vera)
    assert auth.local(allow_as=False, action="read") == auth.Identity("vera")
    with pytest.raises(Refused, match="vera is a viewer; this needs the reviewer role"):
        auth.local(allow_as=False, action="decide")
    monkeypatch.setenv("JACKLINE_TOKEN", bob)
    assert auth.local(allow_as=False) == auth.Identity("bob")  # no claim: the token says so
    # A name on the command line is a claim nothing checks, even where the project allows it.
    with pytest.raises(Refused, match="--as does not apply in team mode"):
        auth.local(allow_as=True, claimed="alice")
    monkeypatch.setenv("JACKLINE_USER", "alice")
    with pytest.raises(Refused, match="JACKLINE_USER does not apply in team mode"):
        auth.local(allow_as=True)
