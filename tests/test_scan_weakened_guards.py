"""Guards weakened in place, loosened tool configuration and the files CI runs, read from real
git changes in temporary repositories (shapes from pytest suites, requests/httpx clients,
pyproject/setup.cfg/tox.ini files and GitHub workflows)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from changes import change

import jackline.config
from jackline.models import Finding
from jackline.scans import guards


def run(tmp_path: Path, before: Mapping[str, str], after: Mapping[str, str]) -> list[Finding]:
    return guards.scan(change(tmp_path, before, after), jackline.config.parse({}))


def found(findings: list[Finding]) -> list[tuple[str, str, int | None]]:
    return [(f.rule, f.level, f.line) for f in findings]


API_TESTS = """\
from django.urls import reverse


def test_create_order(client, user):
    client.force_login(user)
    resp = client.post(reverse("orders:create"), {"sku": "A1", "qty": 2})
    assert resp.status_code == 201
    assert resp.json()["qty"] == 2


class OrderTests(TestCase):
    def test_total(self):
        order = make_order(qty=3, price=5)
        self.assertEqual(order.total(), 15)
        self.notify.assert_called_once_with(order.id)
"""


def test_assert_made_weaker_is_reported_at_the_new_line(tmp_path: Path) -> None:
    after = (
        API_TESTS.replace("assert resp.status_code == 201", "assert resp.status_code")
        .replace("self.assertEqual(order.total(), 15)", "self.assertTrue(order.total())")
        .replace("assert_called_once_with(order.id)", "assert_called()")
    )
    findings = run(tmp_path, {"tests/test_orders.py": API_TESTS}, {"tests/test_orders.py": after})
    assert found(findings) == [
        ("guard.assert-weakened", "warn", 7),
        ("guard.assert-weakened", "warn", 14),
        ("guard.assert-weakened", "warn", 15),
    ]
    assert findings[0].message == (
        "weakened `assert resp.status_code == 201` to `assert resp.status_code`"
    )
    assert findings[0].quote == "- assert resp.status_code == 201\n+ assert resp.status_code"


def test_assert_changed_value_or_new_test_is_not_weakened(tmp_path: Path) -> None:
    after = API_TESTS.replace("== 201", "== 200") + (
        "\n\ndef test_list(client):\n    resp = client.get('/orders/')\n    assert resp.json()\n"
    )
    findings = run(tmp_path, {"tests/test_orders.py": API_TESTS}, {"tests/test_orders.py": after})
    assert findings == []


CLIENT = """\
import httpx
import requests
from requests.adapters import HTTPAdapter

DEFAULT_TIMEOUT = 10


def session(retries=3):
    s = requests.Session()
    s.mount("https://", HTTPAdapter(max_retries=retries))
    return s


def fetch(url):
    return requests.get(url, timeout=DEFAULT_TIMEOUT)


def client():
    return httpx.Client(timeout=5.0)


def parse(raw):
    try:
        return decode(raw)
    except ValueError:
        log.warning("bad payload")
        raise
"""


def test_timeout_and_retries_switched_off_are_reported(tmp_path: Path) -> None:
    after = (
        CLIENT.replace("DEFAULT_TIMEOUT = 10", "DEFAULT_TIMEOUT = None")
        .replace("def session(retries=3):", "def session(retries=0):")
        .replace("httpx.Client(timeout=5.0)", "httpx.Client(timeout=None)")
    )
    findings = run(tmp_path, {"app/http.py": CLIENT}, {"app/http.py": after})
    assert found(findings) == [
        ("guard.timeout-weakened", "warn", 5),
        ("guard.retry-weakened", "warn", 8),
        ("guard.timeout-weakened", "warn", 19),
    ]
    assert findings[1].message == "switched a retry off: `retries` from 3 to 0"


def test_timeout_and_retries_raised_are_not_reported(tmp_path: Path) -> None:
    after = CLIENT.replace("DEFAULT_TIMEOUT = 10", "DEFAULT_TIMEOUT = 30").replace(
        "retries=3", "retries=5"
    )
    assert run(tmp_path, {"app/http.py": CLIENT}, {"app/http.py": after}) == []


def test_handler_made_to_swallow_everything_is_reported(tmp_path: Path) -> None:
    after = CLIENT.replace(
        '    except ValueError:\n        log.warning("bad payload")\n        raise\n',
        "    except Exception:\n        pass\n",
    )
    (f,) = run(tmp_path, {"app/http.py": CLIENT}, {"app/http.py": after})
    assert (f.rule, f.level, f.line) == ("guard.except-swallowed", "warn", 25)
    bare = CLIENT.replace(
        '    except ValueError:\n        log.warning("bad payload")\n        raise\n',
        "    except:\n        return None\n",
    )
    (f,) = run(tmp_path / "2", {"app/http.py": CLIENT}, {"app/http.py": bare})
    assert (f.rule, f.line) == ("guard.except-swallowed", 25)


def test_narrow_handler_or_reraising_broad_handler_is_not_swallowing(tmp_path: Path) -> None:
    after = CLIENT.replace("    except ValueError:\n", "    except (ValueError, KeyError):\n")
    after += "\n\ndef cached(key):\n    try:\n        return CACHE[key]\n    except KeyError:\n        pass\n"
    assert run(tmp_path, {"app/http.py": CLIENT}, {"app/http.py": after}) == []


PYPROJECT = """\
[project]
name = "shop"
version = "1.4.0"

[tool.pytest.ini_options]
addopts = "-ra --strict-markers"
testpaths = ["tests"]

[tool.ruff.lint]
select = ["E", "F", "I", "B"]
ignore = ["E501"]

[tool.ruff.lint.per-file-ignores]
"tests/*" = ["S101"]

[tool.mypy]
strict = true

[[tool.mypy.overrides]]
module = ["celery.*"]
ignore_missing_imports = true

[tool.coverage.run]
omit = ["*/migrations/*"]
"""


def test_loosened_pyproject_settings_are_reported_at_their_lines(tmp_path: Path) -> None:
    after = (
        PYPROJECT.replace('"-ra --strict-markers"', "\"-ra --strict-markers -k 'not payments'\"")
        .replace('"tests/*" = ["S101"]', '"tests/*" = ["S101"]\n"shop/payments/*" = ["B", "F841"]')
        .replace('ignore = ["E501"]', 'ignore = ["E501", "B008"]')
        .replace("strict = true", "strict = false")
        .replace('omit = ["*/migrations/*"]', 'omit = ["*/migrations/*", "shop/payments/*"]')
    ) + '\n[[tool.mypy.overrides]]\nmodule = ["shop.payments.*"]\nignore_errors = true\n'
    findings = sorted(
        run(tmp_path, {"pyproject.toml": PYPROJECT}, {"pyproject.toml": after}),
        key=lambda f: f.line or 0,
    )
    assert found(findings) == [
        ("guard.tests-deselected", "warn", 6),
        ("guard.config-loosened", "warn", 11),
        ("guard.config-loosened", "warn", 15),
        ("guard.config-loosened", "warn", 15),
        ("guard.config-loosened", "warn", 18),
        ("guard.config-loosened", "warn", 25),
        ("guard.config-loosened", "warn", 29),
    ]
    assert findings[0].message == "pytest `addopts` now deselects tests: `-k not payments`"
    assert "`tool.ruff.lint.per_file_ignores` gained: `shop/payments/*:B`" in findings[2].message


def test_tightened_or_unrelated_pyproject_edits_are_not_reported(tmp_path: Path) -> None:
    after = (
        PYPROJECT.replace('version = "1.4.0"', 'version = "1.5.0"')
        .replace('"-ra --strict-markers"', '"-ra --strict-markers --durations=10"')
        .replace('select = ["E", "F", "I", "B"]', 'select = ["E", "F", "I", "B", "UP"]')
        .replace('ignore = ["E501"]', "ignore = []")
    )
    assert run(tmp_path, {"pyproject.toml": PYPROJECT}, {"pyproject.toml": after}) == []


SETUP_CFG = """\
[flake8]
max-line-length = 100
extend-ignore = E203

[mypy]
disallow_untyped_defs = True

[tool:pytest]
addopts = --cov=shop
"""


def test_loosened_setup_cfg_and_coveragerc_are_reported(tmp_path: Path) -> None:
    after = (
        SETUP_CFG.replace("extend-ignore = E203", "extend-ignore = E203, W503, E722")
        .replace("disallow_untyped_defs = True", "disallow_untyped_defs = False")
        .replace("--cov=shop", "--cov=shop\n    --deselect tests/test_pay.py::test_refund")
    )
    coveragerc = "[run]\nbranch = True\nomit =\n    */tests/*\n"
    findings = run(
        tmp_path,
        {"setup.cfg": SETUP_CFG, ".coveragerc": coveragerc},
        {"setup.cfg": after, ".coveragerc": coveragerc + "    shop/legacy/*\n"},
    )
    assert sorted(found(findings)) == [
        ("guard.config-loosened", "warn", 3),
        ("guard.config-loosened", "warn", 3),
        ("guard.config-loosened", "warn", 5),
        ("guard.config-loosened", "warn", 6),
        ("guard.tests-deselected", "warn", 10),
    ]


WORKFLOW = """\
name: CI
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: Checks
        run: |
          pip install -e .[test]
          ./scripts/check
          make test
"""

CHECK = """\
#!/bin/sh
set -ex
ruff check src tests
ruff format --check src tests
mypy src
"""

MAKEFILE = """\
.PHONY: test docs

test: lint
\tpytest -q

lint:
\truff check .

docs:
\tmkdocs build
"""


def test_script_ci_runs_losing_a_step_blocks_at_the_removed_line(tmp_path: Path) -> None:
    base = {".github/workflows/ci.yml": WORKFLOW, "scripts/check": CHECK, "Makefile": MAKEFILE}
    findings = run(tmp_path, base, {"scripts/check": CHECK.replace("mypy src\n", "")})
    (f,) = findings
    assert (f.rule, f.level, f.file, f.line) == ("guard.ci-gate", "block", "scripts/check", 5)
    assert "which CI runs (`.github/workflows/ci.yml`: `./scripts/check`)" in f.message
    assert f.quote == "mypy src"


def test_makefile_targets_ci_makes_are_gates_and_others_are_not(tmp_path: Path) -> None:
    base = {".github/workflows/ci.yml": WORKFLOW, "scripts/check": CHECK, "Makefile": MAKEFILE}
    lint = MAKEFILE.replace("\truff check .\n", "\ttrue\n")
    (f,) = run(tmp_path, base, {"Makefile": lint})
    assert (f.rule, f.level, f.line) == ("guard.ci-gate", "block", 7)
    docs = MAKEFILE.replace("\tmkdocs build\n", "\tmkdocs build --strict\n")
    assert run(tmp_path / "2", base, {"Makefile": docs}) == []


def test_script_not_run_by_ci_is_not_a_gate(tmp_path: Path) -> None:
    base = {".github/workflows/ci.yml": WORKFLOW, "scripts/release": CHECK}
    assert run(tmp_path, base, {"scripts/release": CHECK.replace("mypy src\n", "")}) == []


def test_workflow_written_by_the_change_does_not_decide_the_gates(tmp_path: Path) -> None:
    """The gates are read from the base commit: a workflow the agent rewrote to stop calling
    `scripts/check` still leaves it a gate (and the workflow edit is scope.gate's finding)."""
    base = {".github/workflows/ci.yml": WORKFLOW, "scripts/check": CHECK}
    after = {
        ".github/workflows/ci.yml": WORKFLOW.replace("./scripts/check\n", ""),
        "scripts/check": CHECK.replace("mypy src\n", ""),
    }
    assert [f.file for f in run(tmp_path, base, after)] == ["scripts/check"]


EMAILS = """\
class EmailThread(Thread):
    MAX_TRIES = 3

    def run(self) -> None:
        for attempt in range(self.MAX_TRIES):
            try:
                self.message.send()
                return
            except (SMTPServerDisconnected, SMTPDataError):
                if attempt + 1 == self.MAX_TRIES:
                    # This was the last attempt and it failed: re-raise the exception
                    raise

                time.sleep(1)
"""


def test_tries_set_to_one_and_reraise_removed_are_reported(tmp_path: Path) -> None:
    after = EMAILS.replace("MAX_TRIES = 3", "MAX_TRIES = 1").replace(
        "                    raise\n", "                    return\n"
    )
    findings = run(tmp_path, {"hc/lib/emails.py": EMAILS}, {"hc/lib/emails.py": after})
    assert found(findings) == [
        ("guard.retry-weakened", "warn", 2),
        ("guard.except-swallowed", "warn", 12),
    ]
    assert (
        findings[1].message
        == "`EmailThread.run` no longer re-raises the error it caught (`raise` removed)"
    )


def test_more_tries_and_a_reworded_reraise_are_not_reported(tmp_path: Path) -> None:
    after = EMAILS.replace("MAX_TRIES = 3", "MAX_TRIES = 5").replace(
        "                    raise\n", "                    raise EmailError(attempt) from None\n"
    )
    assert run(tmp_path, {"hc/lib/emails.py": EMAILS}, {"hc/lib/emails.py": after}) == []


S3 = """\
def put_object(code, n, data):
    assert settings.S3_BUCKET
    key = "%s/%s" % (code, enc(n))
    client().put_object(settings.S3_BUCKET, key, io.BytesIO(data), length=len(data))
"""


def test_assert_removed_from_source_is_reported_and_moved_one_is_not(tmp_path: Path) -> None:
    after = S3.replace("    assert settings.S3_BUCKET\n", "")
    (f,) = run(tmp_path, {"hc/lib/s3.py": S3}, {"hc/lib/s3.py": after})
    assert (f.rule, f.level, f.line) == ("guard.assert-removed", "warn", 2)
    assert "state" in f.why
    moved = S3.replace("    assert settings.S3_BUCKET\n", "").replace(
        '    key = "%s/%s" % (code, enc(n))\n',
        '    key = "%s/%s" % (code, enc(n))\n    assert settings.S3_BUCKET\n',
    )
    assert run(tmp_path / "2", {"hc/lib/s3.py": S3}, {"hc/lib/s3.py": moved}) == []


def test_file_ci_only_passes_as_an_argument_is_not_a_gate(tmp_path: Path) -> None:
    workflow = WORKFLOW.replace(
        "make test\n", "make test\n          docker compose -f docker/compose.yml up -d\n"
    )
    compose = "services:\n  db:\n    image: postgres:16\n"
    base = {".github/workflows/ci.yml": workflow, "docker/compose.yml": compose}
    after = {"docker/compose.yml": compose.replace("postgres:16", "postgres:17")}
    assert run(tmp_path, base, after) == []
    python_run = WORKFLOW.replace("./scripts/check\n", "python scripts/check.py\n")
    base = {
        ".github/workflows/ci.yml": python_run,
        "scripts/check.py": "run('mypy')\nrun('ruff')\n",
    }
    (f,) = run(tmp_path / "2", base, {"scripts/check.py": "run('ruff')\n"})
    assert (f.rule, f.level, f.line) == ("guard.ci-gate", "block", 1)


TOX = """\
[tox]
envlist = py3{12,11}, typing

[testenv]
deps = -r requirements/tests.txt
commands = pytest -v --tb=short --basetemp={envtmpdir} {posargs}

[testenv:typing]
commands =
    mypy
    pyright tests/typing
"""


def test_tox_step_lost_blocks_and_new_env_or_deps_do_not(tmp_path: Path) -> None:
    workflow = WORKFLOW.replace("make test\n", "uv run --group dev tox run -e typing\n")
    base = {".github/workflows/ci.yml": workflow, "tox.ini": TOX}
    (f,) = run(tmp_path, base, {"tox.ini": TOX.replace("    pyright tests/typing\n", "")})
    assert (f.rule, f.level, f.line) == ("guard.ci-gate", "block", 11)
    grown = TOX.replace("py3{12,11}", "py3{13,12,11}") + (
        "\n[testenv:update-requirements]\ncommands = pip-compile -U requirements/tests.in\n"
    )
    assert run(tmp_path / "2", base, {"tox.ini": grown}) == []
