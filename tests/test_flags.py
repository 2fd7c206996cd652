"""Feature flags: flags.toml validated at the door, changed with an audit trail, read by
applications through the real openfeature-sdk, from the file and from a server on loopback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process, git
from openfeature import api as openfeature
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from jackline import config as cfg
from jackline import flags
from jackline.auth import os_user
from jackline.errors import ConfigError, NotFound, Refused

JACKLINE_TOML = """\
[review]
owners = ["carol"]
allow_as = true  # the tests act as alice, bob and carol

[release.environments.staging]
deploy = "scripts/deploy.sh staging {sha}"

[release.environments.production]
deploy = "scripts/deploy.sh production {sha}"
"""

FLAGS_TOML = """\
# Flags of the shop: change them with `jackline flags set`.

[flags.new-checkout]  # the one-page checkout
description = "One-page checkout"
owner = "alice"
expires = 2099-06-30
protected = true

[flags.new-checkout.values]
staging = true     # try it here first
production = false

[flags.page-size]
owner = "bob"
expires = 2020-01-31
values = { default = 20, staging = 50 }

[flags.discount]
owner = "bob"
expires = 2099-01-01
type = "float"
values = { default = 0, production = 0.15 }

[flags.banner]
owner = "bob"
expires = 2099-01-01

[flags.banner.values]
production = "Summer sale"

[flags.limits]
owner = "bob"
expires = 2099-01-01
values.default = { cart = 10, tags = ["a", "b"] }
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JACKLINE_USER", "alice")
    monkeypatch.delenv("JACKLINE_DATABASE_URL", raising=False)
    root = tmp_path / "shop"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "jackline.toml").write_text(JACKLINE_TOML)
    (root / "flags.toml").write_text(FLAGS_TOML)
    return root


@pytest.fixture
def of() -> Iterator[Any]:
    """The real OpenFeature API, reset after each test (its provider registry is global)."""
    yield openfeature
    openfeature.shutdown()


def load(repo: Path) -> flags.Flags:
    return flags.load(repo, cfg.load(repo))


def problems(repo: Path, text: str, toml: str = JACKLINE_TOML) -> str:
    (repo / "flags.toml").write_text(text)
    (repo / "jackline.toml").write_text(toml)
    with pytest.raises(ConfigError) as e:
        flags.validate(repo, cfg.load(repo))
    assert e.value.path == "flags.toml"
    return str(e.value)


def flag(body: str, name: str = "checkout") -> str:
    return f"[flags.{name}]\n{body}\n"


OWNED = 'owner = "alice"\nexpires = 2099-01-01\n'


# loading --------------------------------------------------------------------------------


def test_valid_file_loads_each_flag_with_its_type_owner_expiry_and_values(repo: Path) -> None:
    found = load(repo)
    assert [f.name for f in found] == ["new-checkout", "page-size", "discount", "banner", "limits"]
    checkout = found.flags["new-checkout"]
    assert (checkout.owner, checkout.expires, checkout.protected) == (
        "alice",
        date(2099, 6, 30),
        True,
    )
    assert checkout.type == "bool" and checkout.description == "One-page checkout"
    assert found.flags["page-size"].type == "int"
    assert found.flags["discount"].values == {"default": 0.0, "production": 0.15}
    assert found.flags["limits"].type == "object"


def test_values_for_an_environment_fall_back_to_the_default(repo: Path) -> None:
    found = load(repo)
    assert flags.values_for(found, "production") == {
        "new-checkout": False,
        "page-size": 20,
        "discount": 0.15,
        "banner": "Summer sale",
        "limits": {"cart": 10, "tags": ["a", "b"]},
    }
    staging = flags.values_for(found, "staging")
    assert staging["page-size"] == 50 and staging["discount"] == 0.0
    assert "banner" not in staging  # no staging value and no default


def test_absent_file_means_no_flags(repo: Path) -> None:
    (repo / "flags.toml").unlink()
    assert len(load(repo)) == 0
    flags.validate(repo, cfg.load(repo))


def test_flag_file_name_comes_from_release_flags(repo: Path) -> None:
    (repo / "flags.toml").rename(repo / "features.toml")
    (repo / "jackline.toml").write_text(JACKLINE_TOML + '\n[release]\nflags = "features.toml"\n')
    assert "new-checkout" in load(repo).flags


# broken files: each a clear error naming the key ----------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            flag(OWNED + "values = { staging = true, production = 'yes' }"),
            "flags.toml: flags.checkout.values.production: expected a bool like the other "
            "values (got 'yes')",
            id="values-disagree",
        ),
        pytest.param(
            flag(OWNED + 'type = "int"\nvalues = { staging = 1.5 }'),
            'flags.toml: flags.checkout.values.staging: expected an int (type = "int") (got 1.5)',
            id="declared-type",
        ),
        pytest.param(
            flag(OWNED + "values = { prod = true }"),
            "flags.toml: flags.checkout.values.prod: 'prod' is not an environment in "
            "jackline.toml [release.environments] (expected one of: staging, production, or "
            "default); did you mean 'production'?",
            id="unknown-environment",
        ),
        pytest.param(
            flag("expires = 2099-01-01\nvalues = { default = true }"),
            "flags.toml: flags.checkout.owner: field required (the person who answers",
            id="missing-owner",
        ),
        pytest.param(
            flag('owner = "alice"\nvalues = { default = true }'),
            "flags.toml: flags.checkout.expires: field required (the day the flag should be gone",
            id="missing-expiry",
        ),
        pytest.param(
            flag('owner = "alice"\nexpires = "2099-01-01"\nvalues = { default = true }'),
            "flags.toml: flags.checkout.expires: expected a TOML date such as 2025-09-30, "
            "unquoted (got '2099-01-01')",
            id="quoted-expiry",
        ),
        pytest.param(
            flag(OWNED + "values = {}"),
            "flags.toml: flags.checkout.values: no value; give `default` or a value per "
            "environment",
            id="no-values",
        ),
        pytest.param(
            flag(OWNED + "protect = true\nvalues = { default = true }"),
            "flags.toml: flags.checkout.protect: unknown key (expected one of: description, "
            "owner, expires, protected, type, values); did you mean 'protected'?",
            id="unknown-key",
        ),
        pytest.param(
            "[checkout]\n" + OWNED + "values = { default = true }\n",
            "flags.toml: checkout: unknown key; flags go under `flags`: write [flags.checkout]",
            id="flag-outside-flags",
        ),
        pytest.param(
            flag(OWNED + "values = { default = 2020-01-01 }"),
            "flags.toml: flags.checkout.values.default: expected a bool, string, int, float or "
            "object",
            id="date-value",
        ),
        pytest.param(
            flag(OWNED + "values = { default = true }", name='"new checkout"'),
            "flags.toml: flags.new checkout: not a flag name",
            id="bad-name",
        ),
        pytest.param("[flags.checkout\n", "flags.toml: invalid TOML", id="invalid-toml"),
    ],
)
def test_broken_flag_file_is_an_error_naming_the_key(repo: Path, text: str, expected: str) -> None:
    assert expected in problems(repo, text)


def test_every_problem_in_the_file_is_reported_at_once(repo: Path) -> None:
    text = flag("expires = 2099-01-01\nvalues = { default = true }", "a") + flag(
        OWNED + "values = { staging = 1, production = 'x' }", "b"
    )
    message = problems(repo, text)
    assert "flags.a.owner: field required" in message
    assert "flags.b.values.production: expected an int like the other values (got 'x')" in message


def test_any_environment_name_is_allowed_when_none_are_configured(repo: Path) -> None:
    (repo / "flags.toml").write_text(flag(OWNED + "values = { qa = true }"))
    (repo / "jackline.toml").write_text("")
    assert flags.values_for(load(repo), "qa") == {"checkout": True}


def test_whole_numbers_and_fractions_together_make_a_float_flag(repo: Path) -> None:
    (repo / "flags.toml").write_text(flag(OWNED + "values = { staging = 1, production = 0.5 }"))
    found = load(repo).flags["checkout"]
    assert found.type == "float" and found.values["staging"] == 1.0


# expiry ---------------------------------------------------------------------------------


def test_expired_lists_flags_whose_expiry_day_has_come(repo: Path) -> None:
    found = load(repo)
    assert [f.name for f in flags.expired(found, date(2020, 1, 30))] == []
    assert [f.name for f in flags.expired(found, date(2020, 1, 31))] == ["page-size"]
    late = flags.expired(found, date(2099, 6, 30))
    assert [f.name for f in late] == ["page-size", "banner", "discount", "limits", "new-checkout"]


# setting --------------------------------------------------------------------------------


def set_flag(repo: Path, name: str, value: str, env: str, by: str = "alice") -> flags.FlagChange:
    config = cfg.load(repo)
    return flags.set_flag(repo, config, name, value, env, by, config.review.owners)


def test_set_writes_the_value_and_keeps_comments_and_layout(repo: Path) -> None:
    change = set_flag(repo, "new-checkout", "true", "production")
    assert (change.old, change.new, change.changed) == (False, True, True)
    expected = FLAGS_TOML.replace("production = false\n", "production = true\n", 1)
    assert (repo / "flags.toml").read_text() == expected
    assert flags.values_for(load(repo), "production")["new-checkout"] is True


def test_set_adds_a_missing_environment_and_parses_each_type(repo: Path) -> None:
    set_flag(repo, "page-size", "100", "production")
    set_flag(repo, "discount", "0.25", "staging")
    set_flag(repo, "banner", "Autumn sale", "staging")
    set_flag(repo, "limits", '{"cart": 3, "tags": ["x"]}', "production")
    text = (repo / "flags.toml").read_text()
    assert "values = { default = 20, staging = 50, production = 100}\n" in text
    assert 'production = "Summer sale"\nstaging = "Autumn sale"\n' in text
    assert 'values.production = {cart = 3, tags = ["x"]}\n' in text
    assert "staging = true     # try it here first\n" in text
    staging, production = (flags.values_for(load(repo), e) for e in ("staging", "production"))
    assert production["page-size"] == 100 and staging["discount"] == 0.25
    assert staging["banner"] == "Autumn sale"
    assert production["limits"] == {"cart": 3, "tags": ["x"]}


def test_set_refuses_unknown_flag_environment_and_bad_values_and_writes_nothing(
    repo: Path,
) -> None:
    with pytest.raises(NotFound, match="no flag 'checkout' in flags.toml; flags: new-checkout"):
        set_flag(repo, "checkout", "true", "staging")
    with pytest.raises(Refused, match="'prod' is not an environment"):
        set_flag(repo, "new-checkout", "true", "prod")
    cases = [
        ("new-checkout", "yes", "write true or false"),
        ("page-size", "2.5", "write a whole number"),
        ("discount", "lots", "write a number"),
        ("limits", "[1, null]", "TOML has no null"),
        ("limits", "42", "a JSON object or array"),
    ]
    for name, value, reason in cases:
        with pytest.raises(Refused, match=reason):
            set_flag(repo, name, value, "staging")
    assert (repo / "flags.toml").read_text() == FLAGS_TOML
    assert flags.history(repo) == []


def test_set_refuses_when_the_file_is_broken(repo: Path) -> None:
    (repo / "flags.toml").write_text(FLAGS_TOML + "\n[flags.x]\nowner = 'a'\n")
    with pytest.raises(ConfigError, match="flags.x.expires: field required"):
        set_flag(repo, "new-checkout", "true", "production")


def test_protected_flag_is_refused_for_a_person_who_is_not_its_owner_or_an_owner(
    repo: Path,
) -> None:
    with pytest.raises(Refused) as e:
        set_flag(repo, "new-checkout", "true", "production", by="bob")
    assert str(e.value) == (
        "flag new-checkout is protected: only its owner (alice) or one of [review] owners "
        "(carol) may change it, not bob"
    )
    assert (repo / "flags.toml").read_text() == FLAGS_TOML
    assert flags.history(repo) == []


def test_protected_flag_may_be_set_by_its_owner_or_a_review_owner(repo: Path) -> None:
    set_flag(repo, "new-checkout", "true", "production", by="alice")
    set_flag(repo, "new-checkout", "false", "production", by="carol")
    assert [e.data["by"] for e in flags.history(repo)] == ["alice", "carol"]


def test_unprotected_flag_may_be_set_by_anyone(repo: Path) -> None:
    assert set_flag(repo, "page-size", "30", "default", by="dave").new == 30


def test_set_is_recorded_in_the_audit_log(repo: Path, tmp_path: Path) -> None:
    set_flag(repo, "new-checkout", "true", "production")
    [event] = flags.history(repo)
    assert event.kind == "flag.set" and event.intact
    assert event.data == {
        "name": "new-checkout",
        "env": "production",
        "old": False,
        "new": True,
        "by": "alice",
        "file": str(repo / "flags.toml"),
    }
    db = sqlite3.connect(tmp_path / "home" / "jackline.db")
    [(stream,)] = db.execute("SELECT run_id FROM events WHERE kind = 'flag.set'").fetchall()
    db.close()
    assert stream == flags.stream_id(repo) and stream.startswith("flags:shop-")


def test_setting_the_same_value_writes_and_records_nothing(repo: Path) -> None:
    change = set_flag(repo, "new-checkout", "false", "production")
    assert not change.changed
    assert flags.history(repo) == []


# the OpenFeature provider: from the file ------------------------------------------------


def test_provider_reads_the_environments_values_from_the_file(repo: Path, of: Any) -> None:
    of.set_provider(flags.OpenFeatureProvider("production", path=repo / "flags.toml"))
    client = of.get_client()
    assert client.get_boolean_value("new-checkout", True) is False
    assert client.get_integer_value("page-size", 0) == 20
    assert client.get_float_value("discount", 0.0) == 0.15
    assert client.get_string_value("banner", "") == "Summer sale"
    assert client.get_object_value("limits", {}) == {"cart": 10, "tags": ["a", "b"]}
    details = client.get_boolean_details("new-checkout", True)
    assert (details.reason, details.variant, details.error_code) == (
        Reason.STATIC,
        "production",
        None,
    )
    fallback = client.get_integer_details("page-size", 0)
    assert (fallback.reason, fallback.variant) == (Reason.DEFAULT, "default")


def test_provider_gives_the_callers_default_with_an_error_code_when_it_cannot_answer(
    repo: Path, of: Any
) -> None:
    of.set_provider(flags.OpenFeatureProvider("staging", path=repo / "flags.toml"))
    client = of.get_client()
    missing = client.get_boolean_details("no-such-flag", True)
    assert (missing.value, missing.reason, missing.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.FLAG_NOT_FOUND,
    )
    unset = client.get_string_details("banner", "none")  # no staging value, no default
    assert (unset.value, unset.error_code) == ("none", ErrorCode.FLAG_NOT_FOUND)
    wrong = client.get_string_details("new-checkout", "off")
    assert (wrong.value, wrong.reason, wrong.error_code) == (
        "off",
        Reason.ERROR,
        ErrorCode.TYPE_MISMATCH,
    )
    assert client.get_integer_details("new-checkout", 7).error_code == ErrorCode.TYPE_MISMATCH


def test_provider_sees_a_change_to_the_file(repo: Path, of: Any) -> None:
    of.set_provider(flags.OpenFeatureProvider("production", path=repo / "flags.toml"))
    client = of.get_client()
    assert client.get_boolean_value("new-checkout", True) is False
    set_flag(repo, "new-checkout", "true", "production")
    assert client.get_boolean_value("new-checkout", False) is True


def test_provider_answers_default_with_parse_error_for_a_broken_file(repo: Path, of: Any) -> None:
    (repo / "flags.toml").write_text(flag(OWNED + "values = { staging = true, production = 1 }"))
    of.set_provider(flags.OpenFeatureProvider("production", path=repo / "flags.toml"))
    details = of.get_client().get_boolean_details("checkout", False)
    assert (details.value, details.error_code) == (False, ErrorCode.PARSE_ERROR)
    assert "flags.checkout.values.production" in (details.error_message or "")


def test_provider_answers_default_when_the_file_is_missing(tmp_path: Path, of: Any) -> None:
    of.set_provider(flags.OpenFeatureProvider("production", path=tmp_path / "none.toml"))
    details = of.get_client().get_boolean_details("checkout", True)
    assert (details.value, details.error_code) == (True, ErrorCode.GENERAL)
    assert "no flag file" in (details.error_message or "")


def test_provider_needs_a_path_or_a_url() -> None:
    with pytest.raises(ValueError, match="path="):
        flags.OpenFeatureProvider("production")
    with pytest.raises(ValueError, match="not both"):
        flags.OpenFeatureProvider("production", path="flags.toml", url="http://127.0.0.1:1")


def test_importing_the_provider_stays_light() -> None:
    code = (
        "import sys\n"
        "from jackline.flags import OpenFeatureProvider\n"
        "heavy = [m for m in ('pydantic', 'tomlkit', 'jackline.store', 'jackline.config', "
        "'dbos', 'typer') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=30)


# the OpenFeature provider: from a Jackline server on loopback ----------------------------


class FlagServer:
    """A tiny stand-in for Jackline's server: `GET /flags/ENV` from a flags.toml, counting requests."""

    def __init__(self, repo: Path, token: str | None = None) -> None:
        self.repo, self.token, self.requests = repo, token, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                env = self.path.removeprefix("/flags/")
                if outer.token and self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps(flags.payload(load(outer.repo), env)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server(repo: Path) -> Iterator[FlagServer]:
    s = FlagServer(repo, token="t0ken-for-tests")
    yield s
    s.stop()


def test_provider_reads_values_from_the_server_and_caches_them(server: FlagServer, of: Any) -> None:
    provider = flags.OpenFeatureProvider(
        "production", url=server.url + "/", token="t0ken-for-tests", ttl=60
    )
    of.set_provider(provider)
    client = of.get_client()
    assert client.get_boolean_value("new-checkout", True) is False
    assert client.get_float_value("discount", 0.0) == 0.15
    details = client.get_integer_details("page-size", 0)
    assert (details.value, details.reason) == (20, Reason.DEFAULT)
    assert client.get_boolean_details("nope", True).error_code == ErrorCode.FLAG_NOT_FOUND
    assert server.requests == 1  # one request answered every evaluation within the ttl


def test_provider_without_the_token_gets_the_default_and_an_error(
    server: FlagServer, of: Any
) -> None:
    of.set_provider(flags.OpenFeatureProvider("production", url=server.url))
    details = of.get_client().get_boolean_details("new-checkout", True)
    assert (details.value, details.error_code) == (True, ErrorCode.GENERAL)
    assert "answered 401" in (details.error_message or "")


def test_provider_gives_the_default_when_the_server_is_down(server: FlagServer, of: Any) -> None:
    provider = flags.OpenFeatureProvider(
        "staging", url=server.url, token="t0ken-for-tests", ttl=0, timeout=1
    )
    of.set_provider(provider)
    client = of.get_client()
    assert client.get_boolean_value("new-checkout", False) is True
    server.stop()
    details = client.get_boolean_details("new-checkout", False)
    assert (details.value, details.reason, details.error_code) == (
        False,
        Reason.ERROR,
        ErrorCode.GENERAL,
    )
    assert "unreachable" in (details.error_message or "")


# the command line -----------------------------------------------------------------------


def jl(repo: Path, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "JACKLINE_USER": user, "COLUMNS": "200"}
    return cli_in_process(list(args), repo, env, timeout=60)


def test_cli_lists_flags_with_values_per_environment_and_marks_expired(repo: Path) -> None:
    text = jl(repo, "flags", "list").stdout
    header, *rows = text.splitlines()
    assert header.split() == ["flag", "staging", "production", "owner", "expires"]
    row = next(r for r in rows if r.split()[0] == "page-size")
    assert row.split() == ["page-size", "50", "20", "bob", "2020-01-31", "expired"]
    checkout = next(r for r in rows if r.split()[0] == "new-checkout")
    assert "expired" not in checkout and "protected" in checkout
    listing = json.loads(jl(repo, "flags", "list", "--env", "staging", "--json").stdout)
    assert listing["environments"] == ["staging"]
    by_name = {f["name"]: f for f in listing["flags"]}
    assert by_name["page-size"]["in_force"] == {"staging": 50}
    assert by_name["page-size"]["expired"] is True
    assert by_name["banner"]["in_force"] == {}


def test_cli_set_changes_the_flag_and_refuses_a_protected_one_for_a_non_owner(
    repo: Path,
) -> None:
    refused = jl(repo, "flags", "set", "new-checkout", "true", "--env", "production", user="bob")
    assert refused.returncode == 1
    assert "Error: flag new-checkout is protected" in refused.stderr
    done = jl(repo, "flags", "set", "new-checkout", "true", "--env", "production", "--as", "carol")
    assert done.returncode == 0, done.stderr
    assert "new-checkout in production: false -> true" in done.stdout
    assert flags.values_for(load(repo), "production")["new-checkout"] is True
    history = flags.history(repo)
    assert [e.data["by"] for e in history if e.kind == "flag.set"] == ["carol"]
    (claim,) = [e.data for e in history if e.kind == "claim"]  # --as is the OS user's claim
    assert claim["by"] == "carol" and claim["claimed_by_os_user"] == os_user()


def test_cli_flags_commands_have_help(repo: Path) -> None:
    for command in ("list", "set"):
        result = jl(repo, "flags", command, "--help")
        assert result.returncode == 0 and "--env" in result.stdout
