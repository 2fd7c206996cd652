"""What keeping a run's work in the store costs a step, and what checking its workspace costs.

After each step that changes the work (prepare, an agent round, a blueprint command, the commit),
`steps.keeping.keep_work` reads the work tree (`git.worktree_tree`), bundles it and writes it to
the store; it scans the change for secrets only where the step did not (an agent round and a
command step pass theirs, the commit reuses the verdict on its tree); every step that
works in the workspace first checks that it is the run's here (`kept.not_here`). This times
those parts, as `keep_work` runs them, on a small repository (the calc project of the tests, a
few files) and on one with a few hundred files, each change touching a few files.

    python bench/kept_work.py [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_TMP = Path(tempfile.mkdtemp(prefix="jackline-bench-"))
os.environ["JACKLINE_HOME"] = str(_TMP / "home")

from jackline.scans import Change  # noqa: E402
from jackline.scans import secrets as secret_scan  # noqa: E402
from jackline.store import Store  # noqa: E402
from jackline.workspaces import kept  # noqa: E402
from jackline.workspaces.clone import CloneProvider  # noqa: E402


def _repo(where: Path, files: int) -> Path:
    repo = where / f"repo-{files}"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    for i in range(files):
        (repo / "pkg" / f"m{i // 50}").mkdir(parents=True, exist_ok=True)
        (repo / "pkg" / f"m{i // 50}" / f"f{i}.py").write_text(f"X_{i} = {i}\n" * 40)
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x"}
    env |= {"GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "base"], check=True, env=env)
    return repo


T = TypeVar("T")


def _timed(fn: Callable[..., T], *args: object) -> tuple[T, float]:
    started = time.perf_counter()
    value = fn(*args)
    return value, (time.perf_counter() - started) * 1000


def _scan(ws: Path, base: str, tree: str) -> object:
    return secret_scan.scan(Change.between(ws, base, tree)).blocking


def measure(files: int, repeat: int) -> dict[str, float]:
    repo = _repo(_TMP, files)
    ws = CloneProvider().create(repo, "main", "agent/x", _TMP / "ws" / f"run-{files}").path
    base = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    store = Store()
    place = kept.claim(store, "run-1", ws)
    parts: dict[str, list[float]] = {"tree": [], "scan": [], "bundle": [], "store": [], "check": []}
    size = 0
    for i in range(repeat):
        (ws / "calc.py").write_text(f"def add(a, b):\n    return a + b  # {i}\n")
        (ws / "docs").mkdir(exist_ok=True)
        (ws / "docs" / f"note-{i}.md").write_text(f"round {i}\n" * 20)
        (head, tree), ms = _timed(kept.head_and_tree, ws, "agent/x")
        parts["tree"].append(ms)
        parts["scan"].append(_timed(_scan, ws, base, tree)[1])
        data, ms = _timed(kept.bundle, ws, head, tree, base, 50 << 20)
        parts["bundle"].append(ms)
        assert isinstance(data, bytes)
        size = len(data)
        entry = kept.Kept(f"agent:{i}", head, tree, base, "agent/x", slot=None)
        parts["store"].append(_timed(kept.record, store, "run-1", entry, data)[1])
        parts["check"].append(_timed(_check, store, ws)[1])
    assert kept.not_here(place, ws, "run-1") is None
    out: dict[str, float] = {name: round(statistics.median(ms), 1) for name, ms in parts.items()}
    out["keep"] = round(sum(out[k] for k in ("tree", "bundle", "store")), 1)
    out["bundle_bytes"] = size
    out["files"] = files + 2
    return out


def _check(store: Store, ws: Path) -> str | None:
    return kept.not_here(kept.place_of(store, "run-1"), ws, "run-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(0, args.repeat), measure(500, args.repeat)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"median of {args.repeat}, milliseconds a step (bundle in bytes)")
    for r in results:
        print(
            f"{r['files']:>4} files: keep {r['keep']} ms (work tree {r['tree']}, bundle "
            f"{r['bundle']}, store {r['store']}; {r['bundle_bytes']:.0f} B), plus a secret scan "
            f"{r['scan']} ms where the step has none; workspace check {r['check']} ms"
        )


if __name__ == "__main__":
    main()
