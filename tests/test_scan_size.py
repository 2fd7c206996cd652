"""The size limits count what a reviewer reads: lock files, catalogues, generated, vendored and
test data are left out, as the base commit's `.gitattributes` says too, never the workspace's."""

from __future__ import annotations

from pathlib import Path

import pytest
from changes import git

from jackline import config as cfg
from jackline.models import Finding
from jackline.scans import Change
from jackline.scans import scope as scope_scan
from jackline.scans import secrets as secret_scan


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("x\n")
    return root


def commit(repo: Path, files: dict[str, str] | None = None) -> str:
    write(repo, files or {})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return git(repo, "rev-parse", "HEAD")


def write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


def lines(n: int, word: str = "line") -> str:
    return "".join(f"{word} {i}\n" for i in range(n))


def size(repo: Path, base: str, lines_limit: int = 50, files_limit: int = 20) -> list[Finding]:
    config = cfg.parse(
        {"scope": {"max_changed_lines": lines_limit, "max_changed_files": files_limit}}
    )
    return scope_scan.scan(Change.of_workspace(repo, base), config)


UNCOUNTED = {
    "poetry.lock": "lock file",
    "uv.lock": "lock file",
    "frontend/package-lock.json": "lock file",
    "frontend/yarn.lock": "lock file",
    "frontend/pnpm-lock.yaml": "lock file",
    "Pipfile.lock": "lock file",
    "rust/Cargo.lock": "lock file",
    "app/locale/fr/LC_MESSAGES/django.po": "translation catalogue",
    "app/locale/fr/LC_MESSAGES/django.mo": "translation catalogue",
    "static/js/app.min.js": "minified asset",
    "static/css/site.min.css": "minified asset",
    "api/orders_pb2.py": "generated",
    "src/pkg/_vendor/six.py": "vendored",
    "tests/unit/fixtures/orders.json": "test data",
    "pkg/tests/fixtures/big.csv": "test data",
    "internal/testdata/golden.txt": "test data",
    "tests/__snapshots__/test_ui.ambr": "test data",
    "tests/ui/button.snap": "test data",
}


@pytest.mark.parametrize(("path", "why"), sorted(UNCOUNTED.items()))
def test_files_nobody_reads_line_by_line_do_not_count(repo: Path, path: str, why: str) -> None:
    base = commit(repo)
    write(repo, {path: lines(500), "src/app.py": lines(10)})
    assert size(repo, base, files_limit=1) == []


TOM_SELECT = """/**
 * Tom Select Bootstrap 4
 */
/**
 * tom-select.css (v2.6.1)
 * Copyright (c) contributors
 *
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this
 */
"""


def test_web_assets_are_judged_by_their_text(repo: Path) -> None:
    own = "/* Copyright (c) 2024 Acme Inc. All rights reserved. */\n"
    base = commit(repo, {"static/app.css": own + lines(5, ".a {}")})
    write(
        repo,
        {
            "static/vendor-lib.css": TOM_SELECT + lines(300, ".ts-control { padding: 6px; }"),
            "static/bundle.js": ("x" * 200 + "\n") * 40,  # minified, whatever its name
            "static/app.css": own + lines(60, ".b {}"),  # the project's own header: counted
        },
    )
    (finding,) = size(repo, base)
    assert "65 lines changed" in finding.message
    assert "static/bundle.js (minified asset)" in finding.message
    assert "static/vendor-lib.css (vendored)" in finding.message


def test_data_in_a_test_folder_does_not_count(repo: Path) -> None:
    base = commit(repo)
    write(repo, {"tests/models/whatwg.json": lines(9000), "tests/models/test_url.py": lines(60)})
    (finding,) = size(repo, base)
    assert (
        "60 lines changed" in finding.message
        and "tests/models/whatwg.json (test data)" in finding.message
    )


def test_over_the_limit_the_finding_says_what_was_counted_and_left_out(repo: Path) -> None:
    base = commit(repo)
    write(repo, {"src/app.py": lines(80), "poetry.lock": lines(900), "a/b.po": lines(40)})
    (finding,) = size(repo, base)
    assert (finding.rule, finding.level, finding.line) == ("scope.max-changed-lines", "warn", None)
    assert finding.message == (
        "80 lines changed; the limit is 50. Counted: 1 files, 80 lines. Left out: 2 files, "
        "940 lines (1 lock file, 1 translation catalogue): a/b.po (translation catalogue), "
        "poetry.lock (lock file)"
    )


def test_the_base_gitattributes_marks_generated_and_vendored(repo: Path) -> None:
    attributes = (
        "# generated clients and the vendored SDK\n"
        "clients/** linguist-generated=true\n"
        "clients/handwritten.py -linguist-generated\n"
        "sdk/** linguist-vendored\n"
        "*.svg -diff\n"
        "data/*.bin binary\n"
    )
    base = commit(
        repo, {".gitattributes": attributes, "web/.gitattributes": "*.js linguist-generated\n"}
    )
    write(
        repo,
        {
            "clients/api.py": lines(300),
            "sdk/core.py": lines(300),
            "art/logo.svg": lines(300),
            "web/bundle.js": lines(300),
            "clients/handwritten.py": lines(60),
        },
    )
    (finding,) = size(repo, base)
    assert "60 lines changed" in finding.message and "Counted: 1 files, 60 lines" in finding.message
    assert "4 files, 1200 lines (2 generated, 1 not diffed, 1 vendored)" in finding.message


def test_a_counted_default_can_be_counted_again_by_the_base_gitattributes(repo: Path) -> None:
    base = commit(repo, {".gitattributes": "vendor/** -linguist-vendored\n"})
    write(repo, {"vendor/ours.py": lines(60)})
    (finding,) = size(repo, base)
    assert "60 lines changed" in finding.message and "nothing left out" in finding.message


def test_the_agent_cannot_exempt_its_own_files_with_gitattributes(repo: Path) -> None:
    # The workspace's .gitattributes is the agent's: marking everything generated, or not to be
    # diffed (git would then call every file binary and show no line), changes nothing counted.
    base = commit(repo)
    write(
        repo,
        {
            ".gitattributes": "* linguist-generated linguist-vendored -diff\n",
            "src/.gitattributes": "*.py linguist-generated=true\n",
            "src/app.py": lines(120),
        },
    )
    (finding,) = size(repo, base)
    assert finding.level == "block" and "122 lines changed" in finding.message
    assert "nothing left out" in finding.message
    change = Change.of_workspace(repo, base)
    app = next(f for f in change.files if f.path == "src/app.py")
    assert not app.binary and len(app.added) == 120
    # ...and every other scan still sees the lines: a key planted under `* -diff` is found (the
    # diff was read in the workspace, where git took the agent's word and showed no line).
    write(repo, {"src/keys.py": 'AWS_KEY = "AKIAIOSFODNN7EXAMPLF"\n'})
    found = secret_scan.scan(Change.of_workspace(repo, base)).findings
    assert [(f.rule, f.file, f.line) for f in found] == [
        ("secret.aws-access-key", "src/keys.py", 1)
    ]


def test_a_real_binary_file_is_still_binary(repo: Path) -> None:
    base = commit(repo)
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 4)
    (png,) = Change.of_workspace(repo, base).files
    assert png.binary and png.added == ()


def test_a_hostile_name_and_a_link_do_not_break_the_count(repo: Path) -> None:
    base = commit(repo, {".gitattributes": "*.lock2 linguist-generated\n"})
    write(repo, {"we\nird .lock2": lines(300), "poetry.lock": lines(10)})
    (repo / "link.po").symlink_to("/etc/passwd")
    (repo / "src").mkdir()
    (repo / "src" / ".gitattributes").symlink_to("/etc/passwd")
    write(repo, {"src/app.py": lines(60)})
    (finding,) = size(repo, base)
    assert "60 lines changed" in finding.message or "61 lines changed" in finding.message
    assert "we\nird .lock2 (generated)" in finding.message
