"""The secret scan on labelled snippets (tests/secret_snippets.py) and on detect-secrets' public
test data (the shared fixtures): how many secrets it blocks, and what it says on known
non-secrets, with the time it takes per file.

    PYTHONPATH=src python3 bench/secret_snippets.py [--fixtures DIR]

Run it with another checkout's `src` on PYTHONPATH for the figures before a change. Each snippet
is written into a fresh git repository's work tree and scanned as a run's change would be.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from secret_snippets import FALSE_ALARMS, SECRETS, Snippet  # noqa: E402

from jackline.scans import Change  # noqa: E402
from jackline.scans import secrets as secret_scan  # noqa: E402

LEVELS = ("block", "warn", "info")

# The fixtures' labels, as tests/test_scan_secrets.py keeps them (file, line).
FIXTURE_SECRETS = {
    ("each_secret.py", 3),
    ("each_secret.py", 4),
    ("each_secret.py", 5),
    ("each_secret.py", 7),
    ("each_secret.py", 8),
    ("files/file_with_secrets.py", 3),
    ("files/file_with_secrets.py", 4),
    ("config.env", 1),
    ("config.yaml", 6),
    ("config.yaml", 13),
    ("config.yaml", 15),
    ("sample.diff", 10),
    ("sample.diff", 22),
    ("sample.diff", 34),
    ("sample.diff", 72),
}
FIXTURE_CLEAN = {
    ("each_secret.py", 1),
    ("config.yaml", 2),
    *(("files/file_with_no_secrets.py", n) for n in range(1, 20)),
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", *args],
        check=True,
        capture_output=True,
    )


def _repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("base\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def _level(repo: Path, s: Snippet) -> tuple[str, float, list[str]]:
    target = repo / s.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(s.text)
    started = time.perf_counter()
    found = secret_scan.scan(Change.of_workspace(repo, "HEAD"))
    took = time.perf_counter() - started
    target.unlink()
    levels = [f.level for f in found.findings]
    top = next((lv for lv in LEVELS if lv in levels), "none")
    return top, took, [f"{f.level}: {f.message}" for f in found.findings]


def snippets(repo: Path, verbose: bool) -> list[float]:
    times = []
    print("secrets (expected block):")
    blocked = 0
    for s in SECRETS:
        top, took, said = _level(repo, s)
        times.append(took)
        blocked += top == "block"
        if verbose or top != "block":
            print(f"  {s.name:28} {top:6} {said}")
    print(f"  blocked {blocked} / {len(SECRETS)}")
    print("known non-secrets:")
    blocks = warns = over = 0
    for s in FALSE_ALARMS:
        top, took, said = _level(repo, s)
        times.append(took)
        blocks += top == "block"
        warns += top == "warn"
        worse = top in ("block", "warn") if s.expect == "quiet" else top == "block"
        over += worse
        if verbose or worse:
            print(f"  {s.name:28} {top:6} (at most {s.expect}) {said}")
    print(
        f"  {len(FALSE_ALARMS)} snippets: {blocks} blocked, {warns} warned; "
        f"{over} above their expected level"
    )
    return times


def fixtures(root: Path, data: Path) -> None:
    repo = root / "fixtures"
    shutil.copytree(root / "repo", repo)
    shutil.copytree(data, repo / "data")
    started = time.perf_counter()
    found = secret_scan.scan(Change.of_workspace(repo, "HEAD"))
    took = time.perf_counter() - started
    by_level = {
        lv: {
            (f.file.removeprefix("data/"), f.line)
            for f in found.findings
            if f.file and f.level == lv
        }
        for lv in LEVELS
    }
    hits = set().union(*by_level.values())
    files = len({f for f, _ in FIXTURE_SECRETS | FIXTURE_CLEAN})
    print(
        f"fixtures: {len(FIXTURE_SECRETS & hits)} / {len(FIXTURE_SECRETS)} labelled secrets found "
        f"({len(FIXTURE_SECRETS & by_level['block'])} at block, "
        f"{len(FIXTURE_SECRETS & by_level['warn'])} at warn); "
        f"{len(FIXTURE_CLEAN & hits)} false alarms on {len(FIXTURE_CLEAN)} clean lines; "
        f"{len(hits - FIXTURE_SECRETS - FIXTURE_CLEAN)} hits on unlabelled lines; "
        f"{took * 1000 / files:.0f} ms a file"
    )


def commits(clone: Path, count: int, verbose: bool) -> None:
    """The secret scan over a clone's last merged commits, each from its parent: real work that
    a person merged, so every block is a false alarm unless it is listed and checked."""
    shas = subprocess.run(
        ["git", "-C", str(clone), "rev-list", "--no-merges", "-n", str(count), "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    blocked: list[str] = []
    warned = 0
    ms = []
    for sha in shas:
        started = time.perf_counter()
        found = secret_scan.scan(Change.between(clone, f"{sha}^", sha), whole_files=False)
        ms.append((time.perf_counter() - started) * 1000)
        levels = {f.level for f in found.findings}
        warned += "warn" in levels and "block" not in levels
        shown = ("block", "warn") if verbose else ("block",)
        blocked += [
            f"{sha[:10]} {f.file}:{f.line} {f.level}: {f.message}"
            for f in found.findings
            if f.level in shown
        ]
    ms.sort()
    stopped = len({b.split()[0] for b in blocked if " block: " in b})
    print(
        f"{clone}: {len(shas)} commits, {stopped} with a block, {warned} more with a warning; "
        f"time median {statistics.median(ms):.0f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.0f} ms, "
        f"max {ms[-1]:.0f} ms"
    )
    for b in blocked:
        print(f"  {b}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fixtures", type=Path, default=Path("/work/shared/fixtures/detect-secrets/test_data")
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--clone", type=Path, action="append", default=[], help="a git clone")
    parser.add_argument("--commits", type=int, default=100, help="commits of each clone")
    args = parser.parse_args()
    for clone in args.clone:
        commits(clone, args.commits, args.verbose)
    if args.clone:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = _repo(root)
        times = snippets(repo, args.verbose)
        ms = sorted(t * 1000 for t in times)
        print(
            f"time a snippet: median {statistics.median(ms):.0f} ms, "
            f"p95 {ms[int(0.95 * (len(ms) - 1))]:.0f} ms, max {ms[-1]:.0f} ms"
        )
        if args.fixtures.is_dir():
            fixtures(root, args.fixtures)
        else:
            print(f"fixtures: {args.fixtures} is missing; skipped")


if __name__ == "__main__":
    main()
