"""Removed guards and new suppressions, read from real git changes in temporary repositories."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from changes import change

import jackline.config
from jackline.models import Finding
from jackline.scans import guards, suppressions

CART_TESTS = """\
import pytest

from cart import Cart


def test_total():
    cart = Cart()
    cart.add("apple", 3)
    assert cart.total == 3
    assert cart.count == 1


class TestCheckout:
    def test_pays(self):
        assert Cart().pay() is True

    def test_refund(self):
        assert Cart().refund() == 0
"""


def run(
    tmp_path: Path,
    before: Mapping[str, str | None],
    after: Mapping[str, str | None],
    **config: Any,
) -> list[Finding]:
    ch = change(tmp_path, before, after)
    cfg = jackline.config.parse(config)
    return guards.scan(ch, cfg) + suppressions.scan(ch, cfg)


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


# --- guard.test-removed -------------------------------------------------------------------------


def test_removed_test_method_is_reported_at_its_old_def_line(tmp_path: Path) -> None:
    after = CART_TESTS.replace(
        "\n    def test_refund(self):\n        assert Cart().refund() == 0\n", ""
    )
    (found,) = run(tmp_path, {"tests/test_cart.py": CART_TESTS}, {"tests/test_cart.py": after})
    assert (found.rule, found.level, found.file, found.line) == (
        "guard.test-removed",
        "warn",
        "tests/test_cart.py",
        17,
    )
    assert found.message == "removed test `TestCheckout.test_refund`"
    assert found.quote == "def test_refund(self):\n    assert Cart().refund() == 0"
    assert found.why


def test_renamed_test_is_reported_as_renamed_or_removed(tmp_path: Path) -> None:
    after = CART_TESTS.replace("def test_total", "def test_sum")
    (found,) = run(tmp_path, {"test_cart.py": CART_TESTS}, {"test_cart.py": after})
    assert found.rule == "guard.test-removed"
    assert found.message == "renamed or removed test `test_total`"
    assert found.line == 6


def test_deleted_test_file_reports_its_tests_in_one_finding(tmp_path: Path) -> None:
    (found,) = run(tmp_path, {"tests/test_cart.py": CART_TESTS}, {"tests/test_cart.py": None})
    assert found.rule == "guard.test-removed"
    assert found.message.startswith("deleted a test file with 3 test(s): `test_total`")
    assert (found.line, found.quote.splitlines()[0]) == (6, "def test_total():")


def test_test_moved_to_another_file_or_class_is_not_reported(tmp_path: Path) -> None:
    before = CART_TESTS.replace(
        "    def test_pays(self):\n",
        "    @pytest.mark.xfail\n    def test_pays(self):  # noqa: D102\n",
    )
    moved_out = before.split("\n\nclass TestCheckout")[0] + "\n"
    # Into another file, under another class name, with its marker and suppression.
    other = "import pytest\n\n\nclass TestPayment:\n" + before.split("class TestCheckout:\n")[1]
    findings = run(
        tmp_path,
        {"tests/test_cart.py": before},
        {"tests/test_cart.py": moved_out, "tests/test_payment.py": other},
    )
    assert findings == []


def test_test_file_renamed_without_changes_reports_nothing(tmp_path: Path) -> None:
    text = CART_TESTS + "\n\ndef test_slow():  # jackline: keep\n    x = 1  # noqa: F841\n"
    findings = run(
        tmp_path,
        {"tests/test_cart.py": text},
        {"tests/test_cart.py": None, "tests/test_basket.py": text},
    )
    assert findings == []


def test_js_test_removed_and_renamed(tmp_path: Path) -> None:
    before = "describe('cart', () => {\n  it('adds', () => {\n    expect(add(1)).toBe(1);\n  });\n"
    before += "  it('empties', () => {\n    expect(empty()).toBe(0);\n  });\n});\n"
    after = before.replace("  it('empties', () => {\n    expect(empty()).toBe(0);\n  });\n", "")
    (found,) = run(tmp_path, {"src/cart.test.ts": before}, {"src/cart.test.ts": after})
    assert (found.rule, found.line, found.message) == (
        "guard.test-removed",
        5,
        "removed test `empties`",
    )
    assert found.quote == "it('empties', () => {"


def test_unparsable_python_test_falls_back_to_def_lines(tmp_path: Path) -> None:
    after = "def test_total(:\n    pass\n"
    before = "def test_total():\n    pass\n\n\ndef test_other():\n    pass\n"
    (found,) = run(tmp_path, {"test_x.py": before}, {"test_x.py": after})
    assert (found.rule, found.line, found.message) == (
        "guard.test-removed",
        5,
        "removed test `test_other`",
    )


def test_test_hidden_in_a_string_is_reported(tmp_path: Path) -> None:
    after = CART_TESTS.replace("def test_total", '"""\ndef test_total').replace(
        "\n\nclass TestCheckout", '"""\n\nclass TestCheckout'
    )
    (found,) = run(tmp_path, {"test_cart.py": CART_TESTS}, {"test_cart.py": after})
    assert (found.rule, found.message) == ("guard.test-removed", "removed test `test_total`")


# --- guard.test-skipped and guard.test-commented ------------------------------------------------


def test_new_skips_are_reported_with_the_test_they_skip(tmp_path: Path) -> None:
    py = CART_TESTS.replace(
        "    def test_pays", '    @pytest.mark.skip(reason="flaky")\n    def test_pays'
    )
    py = py.replace(
        "    assert cart.count == 1\n", "    pytest.skip('later')\n    assert cart.count == 1\n"
    )
    js = "it('adds', () => {\n  expect(1).toBe(1);\n});\n"
    found = run(
        tmp_path,
        {"test_cart.py": CART_TESTS, "cart.spec.js": js},
        {"test_cart.py": py, "cart.spec.js": js.replace("it(", "it.only(")},
    )
    assert [(f.rule, f.file, f.line, f.message) for f in found] == [
        ("guard.test-skipped", "cart.spec.js", 1, "added `it.only` to `adds`"),
        ("guard.test-skipped", "test_cart.py", 10, "added `pytest.skip` to `test_total`"),
        ("guard.test-skipped", "test_cart.py", 15, "added `pytest.mark.skip` to `test_pays`"),
    ]
    assert found[2].quote == '@pytest.mark.skip(reason="flaky")'


def test_skip_that_was_already_there_is_not_new(tmp_path: Path) -> None:
    before = CART_TESTS.replace(
        "    def test_pays", "    @pytest.mark.skip(reason='flaky')\n    def test_pays"
    )
    after = before.replace("reason='flaky'", 'reason="flaky"').replace(
        "    def test_pays(self)", "    def test_pays(self, tmp_path)"
    )
    written = before + "\n\ndef test_writer():\n    source = '@pytest.mark.skip\\n'\n"
    assert run(tmp_path, {"test_cart.py": before}, {"test_cart.py": after}) == []
    assert run(tmp_path / "b", {"test_cart.py": before}, {"test_cart.py": written}) == []


def test_skip_moved_to_another_test_is_new(tmp_path: Path) -> None:
    before = CART_TESTS.replace("    def test_pays", "    @pytest.mark.skip\n    def test_pays")
    after = CART_TESTS.replace("    def test_refund", "    @pytest.mark.skip\n    def test_refund")
    (found,) = run(tmp_path, {"test_cart.py": before}, {"test_cart.py": after})
    assert (found.rule, found.line) == ("guard.test-skipped", 17)
    assert found.message == "added `pytest.mark.skip` to `test_refund`"


def test_commented_out_test_is_reported_once(tmp_path: Path) -> None:
    after = (
        CART_TESTS.replace(
            "def test_total():\n    cart = Cart()\n",
            "# def test_total():\n#     cart = Cart()\n",
        )
        .replace("    cart.add", "#     cart.add")
        .replace("    assert cart.", "#     assert cart.")
    )
    (found,) = run(tmp_path, {"test_cart.py": CART_TESTS}, {"test_cart.py": after})
    assert (found.rule, found.line, found.quote) == (
        "guard.test-commented",
        6,
        "# def test_total():",
    )
    assert found.message == "commented out test `test_total`"


# --- guard.assert-removed -----------------------------------------------------------------------


def test_removed_assert_is_reported_with_its_test(tmp_path: Path) -> None:
    after = CART_TESTS.replace("    assert cart.count == 1\n", "")
    (found,) = run(tmp_path, {"tests/test_cart.py": CART_TESTS}, {"tests/test_cart.py": after})
    assert (found.rule, found.line) == ("guard.assert-removed", 10)
    assert found.message == "removed `assert cart.count == 1` from `test_total`"
    assert found.quote == "assert cart.count == 1"


def test_changed_reformatted_or_moved_asserts_are_not_reported(tmp_path: Path) -> None:
    after = CART_TESTS.replace("assert cart.total == 3", "assert cart.total == 4").replace(
        "        assert Cart().pay() is True", "        assert  Cart().pay()  is  True"
    )
    # The count check moves out of test_total into test_refund.
    after = after.replace("    assert cart.count == 1\n", "").replace(
        "        assert Cart().refund() == 0\n",
        "        assert Cart().refund() == 0\n        assert cart.count == 1\n",
    )
    assert run(tmp_path, {"tests/test_cart.py": CART_TESTS}, {"tests/test_cart.py": after}) == []


def test_js_expect_removed_when_file_count_drops(tmp_path: Path) -> None:
    before = "it('adds', () => {\n  expect(add(1)).toBe(1);\n  expect(add(2)).toBe(2);\n});\n"
    after = "it('adds', () => {\n  expect(add(1)).toEqual(1);\n});\n"
    (found,) = run(tmp_path, {"add.test.js": before}, {"add.test.js": after})
    assert (found.rule, found.line) == ("guard.assert-removed", 2)
    assert "expect(add(2)).toBe(2);" in found.quote


# --- guard.retry-removed, guard.timeout-removed, guard.except-removed ---------------------------

CLIENT = """\
import requests
from tenacity import retry, stop_after_attempt


@retry(stop=stop_after_attempt(3))
def fetch(url):
    return requests.get(url, timeout=30)


def load(path):
    try:
        return open(path).read()
    except FileNotFoundError:
        return ""
"""


def test_removed_retry_timeout_and_except_are_reported(tmp_path: Path) -> None:
    after = CLIENT.replace("@retry(stop=stop_after_attempt(3))\n", "").replace(", timeout=30", "")
    after = after.replace(
        '    try:\n        return open(path).read()\n    except FileNotFoundError:\n        return ""\n',
        "    return open(path).read()\n",
    )
    found = run(tmp_path, {"src/client.py": CLIENT}, {"src/client.py": after})
    assert [(f.rule, f.line) for f in found] == [
        ("guard.retry-removed", 5),
        ("guard.timeout-removed", 7),
        ("guard.except-removed", 13),
    ]
    assert found[0].message == "removed a retry: `@retry(stop=stop_after_attempt(3))`"
    assert found[1].quote == "return requests.get(url, timeout=30)"
    assert found[2].message == "removed a try/except from `load`: `except FileNotFoundError:`"


def test_changed_timeout_and_handler_moved_to_a_helper_are_not_reported(tmp_path: Path) -> None:
    after = CLIENT.replace("timeout=30", "timeout=60").replace(
        "def load(path):\n    try:",
        "def load(path):\n    return _read(path)\n\n\ndef _read(path):\n    try:",
    )
    assert run(tmp_path, {"src/client.py": CLIENT}, {"src/client.py": after}) == []


# --- guard.keep-region --------------------------------------------------------------------------

SETTINGS = """\
DEBUG = False
# jackline: keep -- the bank's API rejects anything else
TLS = "1.2"
CIPHERS = "strict"
# jackline: end keep
LIMIT = 10  # jackline: keep
PAGE = 20
"""


def test_change_inside_keep_region_is_reported_at_old_line(tmp_path: Path) -> None:
    after = (
        SETTINGS.replace('"strict"', '"any"')
        .replace("LIMIT = 10", "LIMIT = 50")
        .replace("20", "50")
    )
    found = run(tmp_path, {"settings.py": SETTINGS}, {"settings.py": after})
    assert [(f.rule, f.line, f.quote) for f in found] == [
        ("guard.keep-region", 4, 'CIPHERS = "strict"'),
        ("guard.keep-region", 6, "LIMIT = 10  # jackline: keep"),
    ]
    assert "the bank's API" in found[0].why


# --- guard.coverage-lowered ---------------------------------------------------------------------


def test_lowered_or_removed_coverage_thresholds_are_reported(tmp_path: Path) -> None:
    pyproject = "[tool.coverage.report]\nfail_under = 90\n"
    tox = "[testenv]\ncommands = pytest --cov --cov-fail-under=85\n"
    package = json.dumps({"jest": {"coverageThreshold": {"global": {"lines": 80}}}}, indent=2)
    found = run(
        tmp_path,
        {
            "pyproject.toml": pyproject,
            "tox.ini": tox,
            "package.json": package,
            ".coveragerc": "[report]\nfail_under = 70\n",
        },
        {
            "pyproject.toml": pyproject.replace("90", "80"),
            "tox.ini": tox.replace(" --cov-fail-under=85", ""),
            "package.json": package.replace("80", "60"),
            ".coveragerc": "[report]\nfail_under = 75\n",
        },
    )
    assert [(f.rule, f.file, f.line, f.message) for f in found] == [
        (
            "guard.coverage-lowered",
            "package.json",
            5,
            "lowered the coverage threshold coverageThreshold lines from 80 to 60",
        ),
        (
            "guard.coverage-lowered",
            "pyproject.toml",
            2,
            "lowered the coverage threshold fail_under from 90 to 80",
        ),
        (
            "guard.coverage-lowered",
            "tox.ini",
            2,
            "removed the coverage threshold `commands = pytest --cov --cov-fail-under=85`",
        ),
    ]
    assert found[1].quote == "- fail_under = 90\n+ fail_under = 80"


# --- suppressions -------------------------------------------------------------------------------


def test_new_noqa_names_its_codes_or_says_blanket(tmp_path: Path) -> None:
    before = "import os\nimport sys\n"
    after = "import os  # noqa: F401, E501\nimport sys  # noqa\n"
    found = run(tmp_path, {"app.py": before}, {"app.py": after})
    assert [(f.rule, f.level, f.line) for f in found] == [
        ("suppression.noqa", "warn", 1),
        ("suppression.noqa", "warn", 2),
    ]
    assert found[0].message == "added `# noqa: F401, E501`, silencing F401, E501"
    assert found[1].message.startswith("added a blanket `# noqa`")
    assert found[1].quote == "import sys  # noqa"


def test_existing_noqa_is_not_reported_when_lines_around_it_change(tmp_path: Path) -> None:
    before = "import os  # noqa: F401\nx = 1\ny = long_name(1)  # noqa: E501\n"
    after = "import os  # noqa: F401\nx = 2\ny = long_name(2)  # noqa: E501\n"
    assert run(tmp_path, {"app.py": before}, {"app.py": after}) == []


def test_only_the_increase_is_reported_and_edited_lines_keep_theirs(tmp_path: Path) -> None:
    before = "a = 1  # type: ignore[assignment]\n"
    after = "a = 2  # type: ignore[assignment]\nb: int = 'x'  # type: ignore[assignment]\n"
    (found,) = run(tmp_path, {"app.py": before}, {"app.py": after})
    assert (found.rule, found.line) == ("suppression.type-ignore", 2)
    assert found.message == "added `# type: ignore[assignment]`, silencing assignment"


def test_suppression_in_protected_file_blocks(tmp_path: Path) -> None:
    found = run(
        tmp_path,
        {"billing/charge.py": "x = 1\n", "app.py": "y = 1\n"},
        {
            "billing/charge.py": "x = eval('1')  # nosec B307\n",
            "app.py": "y = eval('1')  # nosec\n",
        },
        scope={"protected": ["billing/"]},
    )
    assert [(f.file, f.level) for f in found] == [
        ("app.py", "warn"),
        ("billing/charge.py", "block"),
    ]
    assert (
        "protected" in found[1].why and found[1].message == "added `# nosec B307`, silencing B307"
    )


def test_every_suppression_kind_is_recognised(tmp_path: Path) -> None:
    lines = {
        "a.ts": (
            "// eslint-disable-next-line no-console -- debugging\n// @ts-ignore\n"
            "// @ts-expect-error\n/* istanbul ignore next */\n"
        ),
        "b.go": "x := 1 //nolint:errcheck\n",
        "c.rb": "x = 1 # rubocop:disable Metrics/AbcSize\n",
        "d.java": "int x = 1; // NOSONAR\n",
        "e.py": (
            "def f():  # pragma: no cover\n    pass  # pylint: disable=unused-argument\n"
            "KEY = 'x'  # pragma: allowlist secret\nz = f()  # pyright: ignore[reportCallIssue]\n"
        ),
        "f.sql": "-- squawk-ignore ban-drop-column\nALTER TABLE t DROP COLUMN c;\n",
    }
    found = run(tmp_path, {"keep.txt": "x\n"}, lines)
    assert sorted(rules(found)) == sorted(
        f"suppression.{k}"
        for k in [
            "eslint-disable",
            "ts-ignore",
            "ts-expect-error",
            "istanbul-ignore",
            "nolint",
            "rubocop-disable",
            "nosonar",
            "pragma-no-cover",
            "pylint-disable",
            "allowlist-secret",
            "pyright-ignore",
            "squawk-ignore",
        ]
    )
    by_rule = {f.rule: f.message for f in found}
    assert (
        by_rule["suppression.eslint-disable"]
        == "added `eslint-disable-next-line no-console`, silencing no-console"
    )
    assert by_rule["suppression.squawk-ignore"].endswith("silencing ban-drop-column")


def test_moved_suppression_is_not_new(tmp_path: Path) -> None:
    line = "from os import path  # noqa: F401\n"
    found = run(tmp_path, {"a.py": line, "b.py": "x = 1\n"}, {"a.py": "", "b.py": "x = 1\n" + line})
    assert found == []


@pytest.mark.parametrize("text", ["x = '# noqa'\n", "# eslint-enable\n"])
def test_suppression_words_in_strings_or_enables_are_not_reported(
    tmp_path: Path, text: str
) -> None:
    assert run(tmp_path, {"a.py": "y = 1\n"}, {"a.py": "y = 1\n" + text}) == []
