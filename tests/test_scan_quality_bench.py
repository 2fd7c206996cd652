"""The scan-quality benchmark's machinery (bench/scan_quality.py) on one tiny synthetic project,
so the script cannot rot while its public clones are not here: a risky case (a patch adding a
token) is scanned and caught, a benign commit scanned parent to commit is not a false alarm, and
a missing clone or commit is named."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scan_quality.py"
TOKEN = "ghp_" + "Zq4Lm8Xv2Nc6Tw1Yr5Ud0Pe8Sa2Hj4Kb7Fg3"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scan_quality_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _project(root: Path) -> tuple[Path, Path, str, str]:
    """A clones folder with one project of two commits, and the benchmark's data for it."""
    repo = root / "clones" / "acme+app"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text('import os\n\nNAME = os.getenv("NAME")\n')
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text(
        'import os\n\nNAME = os.getenv("NAME")\n\n\ndef hello():\n    return NAME\n'
    )
    _git(repo, "commit", "-q", "-am", "two")
    second = _git(repo, "rev-parse", "HEAD")

    data = root / "data"
    (data / "cases").mkdir(parents=True)
    (data / "projects.toml").write_text(
        f'[[project]]\nname = "acme/app"\nfolder = "acme+app"\npinned = "{second}"\nkind = "app"\n'
    )
    (data / "cases" / "token.patch").write_text(
        "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -3 +3,2 @@\n"
        f' NAME = os.getenv("NAME")\n+GITHUB_TOKEN = "{TOKEN}"\n'
    )
    (data / "cases.toml").write_text(
        f'[[case]]\nid = "token"\nrepo = "acme/app"\ncommit = "{first}"\nfile = "app.py"\n'
        'patch = "token.patch"\ncategory = "secret"\nlevel = "block"\nfamilies = ["secret"]\n'
        'why = "a provider token"\n'
    )
    (data / "benign.tsv").write_text(f"# header\nacme/app\t{second}\tbenign\t\t\n")
    return root / "clones", data, first, second


def test_a_case_is_caught_and_a_benign_commit_is_no_false_alarm(
    bench: ModuleType, tmp_path: Path
) -> None:
    clones, data, first, second = _project(tmp_path)
    results = bench.run(
        clones,
        bench.load_cases(data),
        bench.load_commits(data),
        bench.load_projects(data),
        osv_db=None,
        data=data,
    )
    assert results.missing == []
    s = bench.summary(results)
    print(bench.render(s))
    assert s["by_category"] == {"secret": {"caught": 1, "expected": 1}}
    assert s["commits"] == 1 and s["false_alarms"] == []
    assert s["seconds"]["max"] is not None
    # The clone was read, never changed: no worktree, same HEAD, clean.
    assert _git(clones / "acme+app", "rev-parse", "HEAD") == second
    assert _git(clones / "acme+app", "status", "--porcelain") == ""


def test_a_missing_clone_or_commit_is_named(bench: ModuleType, tmp_path: Path) -> None:
    clones, data, first, _ = _project(tmp_path)
    projects = bench.load_projects(data)
    lacks = bench.missing(clones, projects, {"acme/app": {first, "0" * 40}})
    assert lacks == [f"acme/app: {clones / 'acme+app'} lacks commit {'0' * 40}"]
    gone = bench.missing(tmp_path / "nowhere", projects, {"acme/app": {first}})
    assert len(gone) == 1 and "no clone at" in gone[0]
