"""How long the scans take on a large change: a 5,000-line diff, every scan on.

The change is generated into a throwaway git repository: Python modules and their tests (with
asserts removed, a test skipped, `noqa` added), a SQL migration and a Django migration, changed
requirements and package.json, a CI file, and a few planted secrets. Each scan is timed on its
own over `--runs` repetitions (the first one, which pays for imports, is left out); the median
per scan and the median total are printed. Goal (the issue): all scans together under 2 s.

For comparison, the detect-secrets command line (`detect-secrets scan` over the changed files, in
a subprocess), which is what a pre-commit hook would run for the secret scan alone.

    python bench/scan_speed.py [--runs 5] [--lines 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jackline import config as cfg
from jackline.scans import Change, registry
from jackline.scans import secrets as secret_scan

GOAL = 2.0


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", *args],
        check=True,
        capture_output=True,
    )


def _module(i: int, changed: bool) -> str:
    """Twenty functions; the changed version renames every variable, so every line changes,
    and drops the retries and the exception handler from every fifth function."""
    a, b = ("left", "right") if changed else ("a", "b")
    body = []
    for j in range(20):
        weakened = changed and j % 5 == 0
        body.append(
            f"def f{i}_{j}({a}, {b}, retries=3, timeout=5):\n"
            + (
                f"    return {a} + {b}\n"
                if weakened
                else f"    for attempt in range(retries):\n"
                f"        try:\n"
                f"            return {a} - {b}\n"
                f"        except ValueError:\n"
                f"            continue\n"
                f"    return None\n"
            )
        )
    return "\n\n".join(body) + "\n"


def _tests(i: int, changed: bool) -> str:
    """Twenty tests; the changed version renames every local, skips one test, drops every
    fourth assert and adds a `type: ignore`."""
    name = "result" if changed else "value"
    out = ["import pytest\n", f"from mod{i} import *  # noqa: F403\n"]
    for j in range(20):
        skip = "@pytest.mark.skip(reason='flaky')\n" if changed and j == 0 else ""
        check = "" if changed and j % 4 == 0 else f"    assert {name} == 0\n"
        ignore = "  # type: ignore[operator]" if changed and j == 1 else ""
        out.append(f"\n\n{skip}def test_f{i}_{j}():\n    {name} = f{i}_{j}(1, 1){ignore}\n{check}")
    return "".join(out)


def build(root: Path, lines: int) -> tuple[Path, str]:
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    n = max(1, round(lines / 180))  # each module and its tests change ~180 lines
    for i in range(n):
        (repo / f"mod{i}.py").write_text(_module(i, False))
        (repo / "tests").mkdir(exist_ok=True)
        (repo / "tests" / f"test_mod{i}.py").write_text(_tests(i, False))
    (repo / "requirements.txt").write_text("requests==2.31.0\nflask==3.0.0\n")
    (repo / "package.json").write_text(json.dumps({"dependencies": {"left-pad": "1.3.0"}}))
    (repo / "app" / "migrations").mkdir(parents=True)
    (repo / "app" / "migrations" / "0001_initial.py").write_text(
        "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
        "    operations = [\n        migrations.CreateModel(name='A', fields=[\n"
        "            ('id', models.AutoField(primary_key=True)),\n"
        "            ('b', models.IntegerField(null=True)),\n        ]),\n    ]\n"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    base = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    for i in range(n):
        (repo / f"mod{i}.py").write_text(_module(i, True))
        (repo / "tests" / f"test_mod{i}.py").write_text(_tests(i, True))
    (repo / "settings_local.py").write_text(
        'AWS_ACCESS_KEY_ID = "AKIAZ7Q3K9L2M4N6P8R1"\n'
        'GITHUB_TOKEN = "ghp_4f8Kq2Lm9Xz7Vb3Nc6Tw1Yr5Ud0Pe8Sa2Hj4"\n'
    )
    (repo / "requirements.txt").write_text("requests==2.32.3\nflask==3.0.0\nurllib3==1.26.5\n")
    (repo / "package.json").write_text(
        json.dumps({"dependencies": {"left-pad": "1.3.0", "lodash": "4.17.20"}})
    )
    (repo / "db").mkdir()
    (repo / "db" / "migrations").mkdir()
    (repo / "db" / "migrations" / "0002_drop.sql").write_text(
        "ALTER TABLE orders DROP COLUMN note;\nCREATE INDEX orders_by_day ON orders (day);\n"
    )
    (repo / "app" / "migrations" / "0002_remove_b.py").write_text(
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
        "    dependencies = [('app', '0001_initial')]\n"
        "    operations = [migrations.RemoveField(model_name='a', name='b')]\n"
    )
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\njobs: {}\n")
    return repo, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="jackline-scan-bench-"))
    try:
        repo, base = build(root, args.lines)
        config = cfg.parse({"scope": {"max_changed_lines": 1000}, "scan": {"pip_audit": False}})
        scans = registry()
        times: dict[str, list[float]] = {"diff": [], "secrets": [], **{k: [] for k in scans}}
        totals: list[float] = []
        counts: dict[str, int] = {}
        size = 0
        for i in range(args.runs + 1):
            started = time.perf_counter()
            change = Change.of_workspace(repo, base)
            t = time.perf_counter()
            times["diff"].append(t - started)
            size = change.added_lines + change.removed_lines
            found = secret_scan.scan(change)
            times["secrets"].append(time.perf_counter() - t)
            counts["secrets"] = len(found.findings)
            for name, fn in scans.items():
                t = time.perf_counter()
                counts[name] = len(fn(change, config))
                times[name].append(time.perf_counter() - t)
            totals.append(time.perf_counter() - started)
            if i == 0:  # the first pass pays for imports and cold caches
                for v in times.values():
                    v.clear()
                totals.clear()

        started = time.perf_counter()
        files = [
            str(p.relative_to(repo))
            for p in repo.rglob("*")
            if p.is_file() and ".git" not in p.parts
        ]
        subprocess.run(
            [shutil.which("detect-secrets") or "detect-secrets", "scan", *files],
            cwd=repo,
            capture_output=True,
            check=True,
        )
        cli = time.perf_counter() - started

        median = {k: statistics.median(v) for k, v in times.items()}
        total = statistics.median(totals)
        result = {
            "changed_lines": size,
            "runs": args.runs,
            "median_seconds": {k: round(v, 4) for k, v in median.items()},
            "findings": counts,
            "total_median": round(total, 3),
            "total_min": round(min(totals), 3),
            "total_max": round(max(totals), 3),
            "goal": GOAL,
            "detect_secrets_cli": round(cli, 3),
            "secrets_vs_cli": round(median["secrets"] / cli, 3),
        }
        if args.json:
            print(json.dumps(result, indent=2))
            return
        print(f"change: {size} changed lines, {args.runs} runs (after one warm-up)")
        for name, v in median.items():
            found = f"  {counts[name]} finding(s)" if name in counts else ""
            print(f"  {name:<13} {v * 1000:8.1f} ms{found}")
        verdict = "met" if total < GOAL else "MISSED"
        print(
            f"all scans: median {total:.3f} s (min {min(totals):.3f}, max {max(totals):.3f});"
            f" goal under {GOAL:.1f} s: {verdict}"
        )
        print(
            f"secret scan in-process {median['secrets']:.3f} s vs `detect-secrets scan` CLI on"
            f" the same files {cli:.3f} s: ratio {median['secrets'] / cli:.2f}x"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
