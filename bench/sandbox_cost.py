"""What the sandbox costs per command: a trivial command run plain, under bubblewrap, and under
bubblewrap with the network proxy's forwarder, each `--runs` times; medians and ratios.

    python bench/sandbox_cost.py [--runs 30] [--json]

The workspace and Jackline's state live in a throwaway folder, never in ~/.jackline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="jackline-sandbox-bench-"))
os.environ["JACKLINE_HOME"] = str(_TMP / "home")

from jackline.sandbox import Spec, scrub  # noqa: E402
from jackline.sandbox.bubblewrap import Bubblewrap  # noqa: E402
from jackline.sandbox.proxy import Proxy  # noqa: E402


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workspace = _TMP / "home" / "workspaces" / "w"
    workspace.mkdir(parents=True)
    env = scrub(os.environ)
    command = ["/bin/true"]
    python = [sys.executable, "-c", "pass"]
    try:
        sock = _TMP / "net" / "proxy.sock"
        sock.parent.mkdir()
        with Proxy(sock, ["pypi.org"]):
            plain_spec = Spec(workspace=workspace)
            proxied = Spec(workspace=workspace, proxy_socket=sock)
            results = {
                "true plain": timed(command, env, args.runs),
                "true bubblewrap": timed(Bubblewrap().wrap(command, plain_spec), env, args.runs),
                "true bubblewrap+proxy": timed(Bubblewrap().wrap(command, proxied), env, args.runs),
                "python plain": timed(python, env, args.runs),
                "python bubblewrap": timed(Bubblewrap().wrap(python, plain_spec), env, args.runs),
            }
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)
    median = {k: statistics.median(v) * 1000 for k, v in results.items()}
    figures = {
        "runs": args.runs,
        "median_ms": {k: round(v, 2) for k, v in median.items()},
        "bubblewrap_added_ms": round(median["true bubblewrap"] - median["true plain"], 2),
        "proxy_forwarder_added_ms": round(
            median["true bubblewrap+proxy"] - median["true bubblewrap"], 2
        ),
        "python_ratio": round(median["python bubblewrap"] / median["python plain"], 2),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{args.runs} runs each, median wall time per command:")
    for name, ms in median.items():
        print(f"  {name:<24} {ms:8.2f} ms")
    print(
        f"bubblewrap adds {figures['bubblewrap_added_ms']} ms per command; the network forwarder"
        f" {figures['proxy_forwarder_added_ms']} ms more; `python -c pass` under bubblewrap vs"
        f" plain: {figures['python_ratio']}x"
    )


if __name__ == "__main__":
    main()
