"""The dependency scan lists what a change adds, bumps or drops, and blocks known-vulnerable
versions: against a small OSV copy built here in OSV's own format, or through pip-audit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import changes
import pytest

from jackline import config as jconfig
from jackline.models import Finding
from jackline.scans import Change, osvdb
from jackline.scans.dependencies import changed_dependencies, pip_audit_argv, scan


def change(tmp_path: Path, before: dict[str, str], after: dict[str, str | None]) -> Change:
    """A repository committed with `before` (and a README, so the base is never empty), then
    `after` written over it (None deletes)."""
    return changes.change(tmp_path, {"README.md": "x\n", **before}, after)


@pytest.fixture(autouse=True)
def jackline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The saved OSV index goes to Jackline's home: a fresh one per test."""
    home = tmp_path / "home"
    monkeypatch.setenv("JACKLINE_HOME", str(home))
    return home


def pypi(ident: str, name: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    """An advisory shaped like the PYSEC/GHSA records OSV publishes for PyPI."""
    return {
        "schema_version": "1.6.0",
        "id": ident,
        "modified": "2024-05-20T12:00:00Z",
        "published": "2023-05-26T18:15:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name, "purl": f"pkg:pypi/{name}"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}] if events else [],
                "versions": extra.pop("versions", []),
            }
        ],
        "references": [{"type": "ADVISORY", "url": f"https://osv.dev/vulnerability/{ident}"}],
        **extra,
    }


def npm(ident: str, name: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": name},
                "ranges": [{"type": "SEMVER", "events": events}],
                "database_specific": {"cwes": [{"cweId": "CWE-94", "name": "Code Injection"}]},
            }
        ],
        **extra,
    }


ADVISORIES: dict[str, list[dict[str, Any]]] = {
    "PyPI": [
        pypi(
            "PYSEC-2018-28",
            "requests",
            [{"introduced": "0"}, {"fixed": "2.20.0"}],
            aliases=["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
            details="The Requests package before 2.20.0 for Python sends an HTTP Authorization "
            "header to an http URI upon receiving a same-hostname https-to-http redirect.",
            versions=["2.19.0", "2.19.1"],
        ),
        pypi(
            "GHSA-x84v-xcm2-53pg",
            "requests",
            [{"introduced": "0"}, {"fixed": "2.20.0"}],
            aliases=["CVE-2018-18074"],
            summary="Insufficiently Protected Credentials in Requests",
        ),
        pypi(
            "GHSA-j8r2-6x86-q33q",
            "requests",
            [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}],
            aliases=["CVE-2023-32681"],
            summary="Unintended leak of Proxy-Authorization header in requests",
        ),
        pypi(
            "GHSA-jh3w-4vvf-mjgr",
            "Django",
            [
                {"introduced": "3.2"},
                {"fixed": "3.2.20"},
                {"introduced": "4.0"},
                {"fixed": "4.1.10"},
                {"introduced": "4.2"},
                {"fixed": "4.2.3"},
            ],
            aliases=["CVE-2023-36053"],
            summary="Django potential regular expression denial of service vulnerability",
        ),
        pypi(
            "PYSEC-2026-742",
            "py2play",
            [{"introduced": "0"}, {"last_affected": "0.1.8"}],
            details="py2play through 0.1.8 allows remote code execution via pickle.\nMore text.",
        ),
        pypi("MAL-2022-0001", "ctx", [], versions=["0.1.2", "0.2.2", "0.2.6"], summary="Malicious"),
        pypi(
            "PYSEC-2099-1",
            "withdrawn-pkg",
            [{"introduced": "0"}],
            withdrawn="2024-01-01T00:00:00Z",
        ),
    ],
    "npm": [
        npm(
            "GHSA-35jh-r3h4-6jhm",
            "lodash",
            [{"introduced": "0"}, {"fixed": "4.17.21"}],
            aliases=["CVE-2021-23337"],
            summary="Command Injection in lodash",
        ),
        npm(
            "GHSA-test-pre1-0001",
            "pre-pkg",
            [{"introduced": "0"}, {"fixed": "2.0.0-beta.3"}],
            summary="Prototype pollution",
        ),
    ],
}


def osv_db(root: Path, zipped: bool = False, ecosystems: tuple[str, ...] = ("PyPI", "npm")) -> Path:
    """A copy of OSV's advisories as OSV publishes them: `<ecosystem>/<id>.json` or `all.zip`."""
    for ecosystem in ecosystems:
        folder = root / ecosystem
        folder.mkdir(parents=True)
        if zipped:
            with zipfile.ZipFile(folder / "all.zip", "w", zipfile.ZIP_DEFLATED) as z:
                for adv in ADVISORIES[ecosystem]:
                    z.writestr(f"{adv['id']}.json", json.dumps(adv, indent=2))
        else:
            for adv in ADVISORIES[ecosystem]:
                (folder / f"{adv['id']}.json").write_text(json.dumps(adv, indent=2))
    return root


def findings(
    tmp_path: Path,
    before: dict[str, str],
    after: dict[str, str | None],
    scan_config: dict[str, Any] | None = None,
) -> list[Finding]:
    if scan_config is None:
        scan_config = {"osv_db": str(osv_db(tmp_path / "osv"))}
    return scan(change(tmp_path, before, after), jconfig.parse({"scan": scan_config}))


def rules(found: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.rule, f.level) for f in found)


def blocks(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.level == "block"]


# What changed -------------------------------------------------------------------------------


def test_a_vulnerable_pin_added_to_requirements_blocks_with_the_advisory(tmp_path: Path) -> None:
    found = findings(tmp_path, {}, {"requirements.txt": "flask==3.0.0\nrequests==2.19.1\n"})
    blocked = blocks(found)
    # PYSEC-2018-28 and GHSA-x84v-xcm2-53pg are one flaw (they alias each other): reported once.
    assert len(blocked) == 2
    old_flaw = next(f for f in blocked if "CVE-2018-18074" in f.message)
    assert old_flaw.rule == "dependency.vulnerable"
    assert (old_flaw.file, old_flaw.line) == ("requirements.txt", 2)
    assert "requests 2.19.1" in old_flaw.message and "fixed in 2.20.0" in old_flaw.message
    proxy = next(f for f in blocked if "GHSA-j8r2-6x86-q33q" in f.message)
    assert "CVE-2023-32681" in proxy.message and "Proxy-Authorization" in proxy.message
    assert "fixed in 2.31.0" in proxy.message and "exploit" in proxy.why
    added = [f.message for f in found if f.rule == "dependency.added"]
    assert added == ["added flask 3.0.0", "added requests 2.19.1"]


def test_a_safe_version_is_only_listed(tmp_path: Path) -> None:
    found = findings(tmp_path, {}, {"requirements.txt": "requests==2.32.3\n"})
    assert [(f.rule, f.level, f.message, f.line) for f in found] == [
        ("dependency.added", "info", "added requests 2.32.3", 1)
    ]


def test_a_bump_names_both_versions_and_the_line(tmp_path: Path) -> None:
    before = {"requirements.txt": "flask==3.0.0\nrequests==2.31.0\n"}
    found = findings(tmp_path, before, {"requirements.txt": "flask==3.0.0\nrequests==2.32.3\n"})
    assert [(f.rule, f.message, f.line) for f in found] == [
        ("dependency.changed", "requests 2.31.0 -> 2.32.3", 2)
    ]


POETRY_LOCK = """\
[[package]]
name = "cachecontrol"
version = "0.14.0"
description = "httplib2 caching for requests"

[package.dependencies]
msgpack = ">=0.5.2,<2.0.0"
requests = ">=2.16.0"

[[package]]
name = "requests"
version = "{version}"
description = "Python HTTP for Humans."
files = [
    {{file = "requests-{version}-py3-none-any.whl", hash = "sha256:{digest}"}},
]
"""


def test_a_lock_file_bump_is_at_the_package_entry_not_a_dependents_line(tmp_path: Path) -> None:
    # The name is first written on line 4 (a description) and 8 (cachecontrol's dependencies);
    # its own entry starts on line 11.
    old = POETRY_LOCK.format(version="2.31.0", digest="a" * 64)
    new = POETRY_LOCK.format(version="2.32.3", digest="b" * 64)
    found = findings(tmp_path, {"poetry.lock": old}, {"poetry.lock": new})
    assert [(f.message, f.line) for f in found] == [("requests 2.31.0 -> 2.32.3", 11)]
    removed = findings(
        tmp_path / "r",
        {"poetry.lock": old},
        {"poetry.lock": old.split('[[package]]\nname = "requests"')[0]},
    )
    assert [(f.message, f.line) for f in removed] == [("removed requests 2.31.0", 11)]


def test_an_npm_lock_bump_is_at_the_package_entry(tmp_path: Path) -> None:
    def lock(version: str) -> str:
        packages = {
            "": {"name": "app", "dependencies": {"ms": "^2.1.0"}},
            "node_modules/debug": {"version": "4.3.4", "dependencies": {"ms": "2.1.2"}},
            "node_modules/ms": {
                "version": version,
                "resolved": f"https://r.example/ms/-/ms-{version}.tgz",
            },
        }
        return json.dumps({"lockfileVersion": 3, "packages": packages}, indent=2) + "\n"

    found = findings(
        tmp_path, {"package-lock.json": lock("2.1.2")}, {"package-lock.json": lock("2.1.3")}
    )
    text = lock("2.1.3").splitlines()
    (bump,) = found
    assert text[bump.line - 1].strip().startswith('"node_modules/ms"'), (bump.line, text)


def test_unchanged_dependencies_are_not_reported(tmp_path: Path) -> None:
    before = {"requirements.txt": "requests==2.19.1\n"}
    found = findings(tmp_path, before, {"requirements.txt": "requests==2.19.1\nsix==1.16.0\n"})
    assert [f.message for f in found] == ["added six 1.16.0"]


def test_a_removed_dependency_is_listed_at_its_old_line(tmp_path: Path) -> None:
    before = {"requirements.txt": "flask==3.0.0\nrequests==2.19.1\n"}
    found = findings(tmp_path, before, {"requirements.txt": "flask==3.0.0\n"})
    assert [(f.rule, f.level, f.message, f.line) for f in found] == [
        ("dependency.removed", "info", "removed requests 2.19.1", 2)
    ]


def test_a_deleted_requirements_file_lists_every_dependency_as_removed(tmp_path: Path) -> None:
    before = {"requirements/base.txt": "requests==2.19.1\nsix\n"}
    found = findings(tmp_path, before, {"requirements/base.txt": None})
    assert rules(found) == [("dependency.removed", "info")] * 2


def test_requirements_lines_skip_includes_options_and_comments(tmp_path: Path) -> None:
    text = (
        "# pinned by hand\n"
        "-r base.txt\n"
        "-e ./local-package\n"
        "--index-url https://example.invalid/simple\n"
        "./vendored/wheel.whl\n"
        "Requests[socks]==2.32.3 ; python_version >= '3.8'  # the client\n"
        "Typing_Extensions>=4.8 \\\n"
        "    --hash=sha256:0123456789abcdef\n"
        "flask\n"
    )
    deps = changed_dependencies(change(tmp_path, {}, {"requirements-dev.txt": text}))
    by_name = {d.name: d for d in deps}
    assert sorted(by_name) == ["flask", "requests", "typing-extensions"]
    assert by_name["requests"].versions == ("2.32.3",) and by_name["requests"].line == 6
    assert by_name["typing-extensions"].floor == "4.8" and by_name["typing-extensions"].line == 7
    assert by_name["flask"].versions == () and by_name["flask"].floor is None


def test_pyproject_dependencies_in_every_table_are_read(tmp_path: Path) -> None:
    text = """\
[project]
name = "app"
dependencies = ["requests>=2.19"]

[project.optional-dependencies]
web = ["Django==4.2.3"]

[dependency-groups]
dev = ["pytest>=8", {include-group = "lint"}]
lint = ["ruff==0.5.0"]

[tool.poetry.dependencies]
python = "^3.11"
httpx = "0.27.0"

[tool.poetry.group.docs.dependencies]
mkdocs = {version = "^1.5", extras = ["i18n"]}
"""
    before = {"pyproject.toml": '[project]\nname = "app"\ndependencies = []\n'}
    found = findings(tmp_path, before, {"pyproject.toml": text})
    added = sorted(f.message for f in found if f.rule == "dependency.added")
    assert added == [
        "added django 4.2.3",
        "added httpx 0.27.0",
        'added mkdocs {"extras": ["i18n"], "version": "^1.5"}',
        "added pytest >=8",
        "added requests >=2.19",
        "added ruff 0.5.0",
    ]
    # requests has no pin: its lower bound is checked, and the message says so.
    (vulnerable,) = [f for f in blocks(found) if "CVE-2018-18074" in f.message]
    assert "requests 2.19 (the lower bound of `>=2.19`" in vulnerable.message
    assert (vulnerable.file, vulnerable.line) == ("pyproject.toml", 3)


def test_a_range_is_checked_at_the_version_its_lock_file_pins(tmp_path: Path) -> None:
    lock = '[[package]]\nname = "requests"\nversion = "2.19.1"\n'
    pyproject = '[project]\nname = "app"\ndependencies = ["requests>=2.0"]\n'
    c = change(tmp_path, {}, {"pyproject.toml": pyproject, "poetry.lock": lock})
    manifest = next(d for d in changed_dependencies(c) if d.file == "pyproject.toml")
    assert (manifest.versions, manifest.floor) == (("2.19.1",), "2.0")
    found = scan(c, jconfig.parse({"scan": {"osv_db": str(osv_db(tmp_path / "osv"))}}))
    # One version, named by both files: each advisory is reported once, at the 2.19.1 pin.
    assert len(blocks(found)) == 2
    assert all("requests 2.19.1 is affected" in f.message for f in blocks(found))


# Version ranges, as OSV defines them -----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "advisory"),
    [
        ("requests==2.2.1", "GHSA-x84v-xcm2-53pg"),  # introduced "0": affected from the start
        ("requests==2.20.0", "GHSA-j8r2-6x86-q33q"),  # fixed: 2.20.0 leaves the first range
        ("requests==2.31.0", None),  # the fixed version itself is safe
        ("requests==2.31.0rc1", "GHSA-j8r2-6x86-q33q"),  # a prerelease of the fix is not
        ("django==3.1", None),  # before the first introduced
        ("Django==4.1.9", "GHSA-jh3w-4vvf-mjgr"),  # second introduced/fixed pair
        ("django==4.1.10", None),  # between a fixed and the next introduced
        ("django==4.2", "GHSA-jh3w-4vvf-mjgr"),  # introduced again
        ("django==4.2.3", None),
        ("py2play==0.1.8", "PYSEC-2026-742"),  # last_affected includes that version
        ("py2play==0.1.9", None),  # ...and nothing after it
        ("ctx==0.2.2", "MAL-2022-0001"),  # an explicit list of versions, no ranges
        ("ctx==0.2.3", None),
        ("withdrawn-pkg==1.0", None),  # a withdrawn advisory no longer applies
    ],
)
def test_osv_ranges_decide_which_versions_are_affected(
    tmp_path: Path, line: str, advisory: str | None
) -> None:
    found = blocks(findings(tmp_path, {}, {"requirements.txt": line + "\n"}))
    ids = [re.search(r"is affected by ([\w-]+)", f.message) for f in found]
    assert [m.group(1) for m in ids if m] == ([advisory] if advisory else [])


def test_a_version_without_a_fix_says_so(tmp_path: Path) -> None:
    (found,) = blocks(findings(tmp_path, {}, {"requirements.txt": "py2play==0.1.0\n"}))
    assert "no fixed version is published" in found.message
    assert "remote code execution via pickle" in found.message


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("2.0.0-beta.2", True),
        ("2.0.0-alpha.9", True),  # alpha sorts before beta
        ("2.0.0-beta.3", False),  # the fixed prerelease
        ("2.0.0-beta.10", False),  # numeric identifiers compare as numbers, not text
        ("2.0.0", False),  # a release sorts after its prereleases
        ("1.9.9", True),
    ],
)
def test_npm_prereleases_compare_as_semver(tmp_path: Path, version: str, affected: bool) -> None:
    manifest = json.dumps({"name": "app", "dependencies": {"pre-pkg": version}})
    found = blocks(findings(tmp_path, {}, {"package.json": manifest}))
    assert bool(found) is affected


def test_package_json_and_its_lock_are_read_and_checked(tmp_path: Path) -> None:
    before_manifest = {"name": "app", "dependencies": {"express": "^4.18.0"}}
    after_manifest = {
        "name": "app",
        "dependencies": {"express": "^4.18.0", "lodash": "^4.17.0"},
        "devDependencies": {"@types/node": "20.11.0"},
    }
    lock = {
        "name": "app",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "dependencies": {"lodash": "^4.17.0"}},
            "node_modules/express": {"version": "4.18.2"},
            "node_modules/lodash": {"version": "4.17.20"},
            "node_modules/@types/node": {"version": "20.11.0", "dev": True},
            "node_modules/express/node_modules/lodash": {"version": "4.17.21"},
            "packages/local": {"version": "1.0.0"},
            "node_modules/local": {"resolved": "packages/local", "link": True},
        },
    }
    old_lock = {**lock, "packages": {"node_modules/express": {"version": "4.18.2"}}}
    found = findings(
        tmp_path,
        {"package.json": json.dumps(before_manifest), "package-lock.json": json.dumps(old_lock)},
        {
            "package.json": json.dumps(after_manifest, indent=2),
            "package-lock.json": json.dumps(lock, indent=2),
        },
    )
    listed = sorted((f.file, f.message) for f in found if f.level == "info")
    assert listed == [
        ("package-lock.json", "added @types/node 20.11.0"),
        ("package-lock.json", "added lodash 4.17.20, 4.17.21"),
        ("package.json", "added @types/node 20.11.0"),
        ("package.json", "added lodash ^4.17.0"),
    ]
    (vulnerable,) = blocks(found)
    assert (
        "lodash 4.17.20 is affected by GHSA-35jh-r3h4-6jhm (CVE-2021-23337)" in vulnerable.message
    )
    assert "fixed in 4.17.21" in vulnerable.message


def test_the_zipped_copy_gives_the_same_answer_and_its_index_is_kept(
    tmp_path: Path, jackline_home: Path
) -> None:
    db = osv_db(tmp_path / "osv", zipped=True)
    c = change(tmp_path, {}, {"requirements.txt": "requests==2.19.1\nflask==0.12\n"})
    config = jconfig.parse({"scan": {"osv_db": str(db)}})
    assert len(blocks(scan(c, config))) == 2
    assert len(list((jackline_home / "cache").glob("osv-index-*.json"))) == 1
    osvdb._index.cache_clear()  # as a new process would: the saved index is read
    assert len(blocks(scan(c, config))) == 2
    # A new download changes the copy's stamp, and the index is built again.
    ADVISORIES["PyPI"].append(
        pypi("PYSEC-2019-179", "Flask", [{"introduced": "0"}, {"fixed": "1.0"}])
    )
    try:
        shutil.rmtree(db)
        osv_db(db, zipped=True)
    finally:
        ADVISORIES["PyPI"].pop()
    assert len(blocks(scan(c, config))) == 3


# When nothing can check -----------------------------------------------------------------------


def test_a_missing_osv_copy_warns_unless_the_database_is_required(tmp_path: Path) -> None:
    after = {"requirements.txt": "six==1.16.0\n"}
    nope = str(tmp_path / "nope")
    (warned,) = [
        f for f in findings(tmp_path / "a", {}, after, {"osv_db": nope}) if f.level != "info"
    ]
    assert (warned.rule, warned.level) == ("dependency.unverified", "warn")
    assert "could not verify six 1.16.0" in warned.message and "not a directory" in warned.message
    assert (warned.file, warned.line) == ("requirements.txt", 1)
    assert "require_vuln_db" in warned.why and "jackline osv update" in warned.why
    required = {"osv_db": nope, "require_vuln_db": True}
    (failed,) = blocks(findings(tmp_path / "b", {}, after, required))
    assert failed.rule == "scan.tool-failed.osv-db" and "not a directory" in failed.message
    assert (failed.file, failed.line) == ("requirements.txt", 1)


def test_a_relative_osv_copy_is_not_read_from_the_workspace(tmp_path: Path) -> None:
    # The workspace is the agent's: a relative `osv_db` would let it plant an empty database.
    found = findings(tmp_path, {}, {"requirements.txt": "requests==2.19.1\n"}, {"osv_db": "osv"})
    (warned,) = [f for f in found if f.level != "info"]
    assert warned.rule == "dependency.unverified" and "not an absolute path" in warned.message


def test_a_corrupt_zip_warns_unless_the_database_is_required(tmp_path: Path) -> None:
    (tmp_path / "osv" / "PyPI").mkdir(parents=True)
    (tmp_path / "osv" / "PyPI" / "all.zip").write_text("not a zip")
    after = {"requirements.txt": "six==1.16.0\n"}
    db = str(tmp_path / "osv")
    found = findings(tmp_path / "a", {}, after, {"osv_db": db})
    assert rules(found) == [("dependency.added", "info"), ("dependency.unverified", "warn")]
    found = findings(tmp_path / "b", {}, after, {"osv_db": db, "require_vuln_db": True})
    assert [f.rule for f in blocks(found)] == ["scan.tool-failed.osv-db"]


def test_a_change_with_no_dependency_asks_no_database(tmp_path: Path) -> None:
    config = {"osv_db": str(tmp_path / "nope"), "require_vuln_db": True}
    assert findings(tmp_path, {}, {"app.py": "x = 1\n"}, config) == []


def test_an_ecosystem_missing_from_the_copy_is_a_warning(tmp_path: Path) -> None:
    db = osv_db(tmp_path / "osv", ecosystems=("PyPI",))
    manifest = json.dumps({"dependencies": {"lodash": "4.17.21", "left-pad": "^1.3.0"}})
    found = findings(tmp_path, {}, {"package.json": manifest}, {"osv_db": str(db)})
    (warned,) = [f for f in found if f.level == "warn"]
    assert warned.rule == "dependency.unchecked" and "no npm advisories" in warned.message
    assert "lodash 4.17.21" in warned.message and "left-pad ^1.3.0" in warned.message


def test_npm_without_an_osv_copy_and_pip_audit_off_are_warnings(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        {},
        {"package.json": json.dumps({"dependencies": {"lodash": "4.17.20"}})},
        {"pip_audit": False},
    )
    assert rules(found) == [("dependency.added", "info"), ("dependency.unchecked", "warn")]
    found = findings(
        tmp_path / "py", {}, {"requirements.txt": "requests==2.19.1\n"}, {"pip_audit": False}
    )
    (warned,) = [f for f in found if f.level == "warn"]
    assert "pip_audit` is off" in warned.message and "requests 2.19.1" in warned.message


def test_a_dependency_with_no_version_to_check_is_a_warning(tmp_path: Path) -> None:
    found = findings(tmp_path, {}, {"requirements.txt": "requests\n"})
    assert rules(found) == [("dependency.added", "info"), ("dependency.unchecked", "warn")]


def test_an_unreadable_file_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    found = findings(
        tmp_path,
        {},
        {"pyproject.toml": "[project\n", "requirements.txt": "requests==2.32.3\nnot valid ==\n"},
    )
    unreadable = sorted(f.message for f in found if f.rule == "dependency.unreadable")
    assert len(unreadable) == 2 and all(f.level == "warn" for f in found)
    assert "pyproject.toml" in unreadable[0] and "requirements.txt: line 2" in unreadable[1]


def test_a_base_that_did_not_parse_compares_as_empty(tmp_path: Path) -> None:
    found = findings(
        tmp_path, {"package.json": "{oops"}, {"package.json": '{"dependencies": {"a": "1.0.0"}}'}
    )
    assert rules(found) == [("dependency.added", "info"), ("dependency.unreadable", "warn")]


# pip-audit ----------------------------------------------------------------------------------


def path_with(tmp_path: Path, scripts: dict[str, str]) -> str:
    """A PATH holding git and the given scripts, and nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("git") or "git", bin_dir / "git")
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
        (bin_dir / name).chmod(0o755)
    return str(bin_dir)


REQUIRED = {"scan": {"require_vuln_db": True}}


def test_pip_audit_missing_warns_and_names_the_offline_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = change(tmp_path, {}, {"requirements.txt": "requests==2.19.1\n"})
    monkeypatch.setenv("PATH", path_with(tmp_path, {}))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # nor beside Python
    (warned,) = [f for f in scan(c, jconfig.parse({})) if f.level != "info"]
    assert (warned.rule, warned.level, warned.line) == ("dependency.unverified", "warn", 1)
    assert "not on PATH" in warned.message and "[scan] osv_db" in warned.message
    assert "pip install pip-audit" in warned.why
    (failed,) = blocks(scan(c, jconfig.parse(REQUIRED)))
    assert failed.rule == "scan.tool-failed.pip-audit" and "not on PATH" in failed.message
    assert "pip install pip-audit" in failed.why


# What pip-audit 2.10 prints with --format json, for a vulnerable pin and for one it skipped.
AUDITED = {
    "dependencies": [
        {
            "name": "requests",
            "version": "2.19.1",
            "vulns": [
                {
                    "id": "PYSEC-2018-28",
                    "fix_versions": ["2.20.0"],
                    "aliases": ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
                    "description": "The Requests package before 2.20.0 sends an HTTP "
                    "Authorization header to an http URI.",
                }
            ],
        },
        {"name": "six", "version": "1.16.0", "vulns": []},
    ],
    "fixes": [],
}
SKIPPED = {
    "dependencies": [
        {
            "name": "requests",
            "skip_reason": "Dependency not found on PyPI and could not be audited: "
            "requests (2.19.1)",
        }
    ],
    "fixes": [],
}


def fake_pip_audit(report: dict[str, Any], code: int) -> str:
    return (
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "reqs = open(args[args.index('--requirement') + 1]).read()\n"
        "assert '--no-deps' in args and 'requests==2.19.1' in reqs, (args, reqs)\n"
        f"print(json.dumps({report!r}))\n"
        f"sys.exit({code})\n"
    )


def test_pip_audit_findings_become_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = change(tmp_path, {}, {"requirements.txt": "requests==2.19.1\nsix==1.16.0\n"})
    monkeypatch.setenv("PATH", path_with(tmp_path, {"pip-audit": fake_pip_audit(AUDITED, 1)}))
    (found,) = blocks(scan(c, jconfig.parse({})))
    assert found.rule == "dependency.vulnerable" and found.line == 1
    assert "PYSEC-2018-28 (CVE-2018-18074, GHSA-x84v-xcm2-53pg)" in found.message
    assert "fixed in 2.20.0" in found.message


def test_pip_audit_skipping_a_package_is_no_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where PyPI's per-version JSON API is unreachable, pip-audit skips every package as "not
    # found" and exits 0 saying "No known vulnerabilities found".
    c = change(tmp_path, {}, {"requirements.txt": "requests==2.19.1\n"})
    monkeypatch.setenv("PATH", path_with(tmp_path, {"pip-audit": fake_pip_audit(SKIPPED, 0)}))
    (warned,) = [f for f in scan(c, jconfig.parse({})) if f.level != "info"]
    assert warned.rule == "dependency.unverified" and "not found on PyPI" in warned.message
    (failed,) = blocks(scan(c, jconfig.parse(REQUIRED)))
    assert failed.rule == "scan.tool-failed.pip-audit"
    assert "not found on PyPI" in failed.message and "[scan] osv_db" in failed.message


def test_pip_audit_unreachable_warns_and_shows_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = change(tmp_path, {}, {"requirements.txt": "requests==2.19.1\n"})
    script = "import sys\nprint('ConnectionError: no route', file=sys.stderr)\nsys.exit(1)\n"
    monkeypatch.setenv("PATH", path_with(tmp_path, {"pip-audit": script}))
    # Unreachable: the bump is not stopped, and the warning says what happened.
    (warned,) = [f for f in scan(c, jconfig.parse({})) if f.level != "info"]
    assert warned.level == "warn" and "ConnectionError: no route" in warned.message
    (failed,) = blocks(scan(c, jconfig.parse(REQUIRED)))
    assert "exit 1" in failed.message and "ConnectionError: no route" in failed.message


def test_pip_audit_past_the_timeout_blocks_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = change(tmp_path, {}, {"requirements.txt": "requests==2.19.1\n"})
    monkeypatch.setenv("PATH", path_with(tmp_path, {"pip-audit": "import time\ntime.sleep(30)\n"}))
    config = {"timeout": 1, "require_vuln_db": True}
    (failed,) = blocks(scan(c, jconfig.parse({"scan": config})))
    assert "no answer within 1s" in failed.message


@pytest.mark.skipif(shutil.which("pip-audit") is None, reason="pip-audit is not installed")
def test_the_installed_pip_audit_accepts_the_flags(tmp_path: Path) -> None:
    # --dry-run collects the pins without asking any service, so this needs no network.
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests==2.19.1\n")
    argv = pip_audit_argv(shutil.which("pip-audit") or "", reqs, 120) + ["--dry-run"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dependencies"] == []
