"""Who acts from this machine: the OS user; a name given with --as or JACKLINE_USER is a claim."""

from __future__ import annotations

import os
import pwd

import pytest

from jackline import auth
from jackline.errors import Refused


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
