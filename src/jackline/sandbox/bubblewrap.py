"""The bubblewrap sandbox: a command line for `bwrap` that gives the command new namespaces
(user, mount, pid, ipc, uts, cgroup, and network unless the step may use it), the machine
read-only, its workspace writable, and a private `/tmp` and home.

Mount order matters, and is the whole design: the root read-only; empty file systems over `/tmp`
and the home; the home's tool directories and `[sandbox] readable` back, read-only; then, so
nothing above can show them, empty file systems over Jackline's state and the machine's secret
files; last the workspace (which lives under Jackline's state) back, writable.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from jackline import paths
from jackline.errors import Refused
from jackline.sandbox import INSTALL_HINT, Spec, forward, harness_paths, home_tools

# Files outside the home that hold secrets of the machine.
SYSTEM_SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/etc/sudoers.d")


class Bubblewrap:
    name = "bubblewrap"

    def wrap(self, argv: list[str] | str, spec: Spec) -> list[str]:
        command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
        proxy = spec.proxy_socket if not spec.network else None
        services = {port: str(sock) for port, sock in spec.services} if not spec.network else {}
        if proxy is not None or services:
            # Inside: a forwarder on the sandbox's own loopback, with the proxy variables set,
            # to the proxy's socket outside, which lets through only the allowed hosts; and the
            # workspace's services on their ports, to their relays' sockets outside.
            command = forward.wrap(
                command,
                forward.PORT if proxy else 0,
                str(proxy or ""),
                no_proxy=spec.no_proxy,
                ports=services,
            )
        home = Path(os.path.abspath(os.environ.get("HOME") or Path.home()))
        out = [binary(), "--die-with-parent", "--new-session", "--unshare-all"]
        if spec.network:
            out.append("--share-net")
        out += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        if str(home) != "/":
            out += ["--tmpfs", str(home)]
            for tool in home_tools(home, os.environ.get("PATH", "")):
                out += ["--ro-bind", str(tool), str(tool)]
        for path in harness_paths():
            if Path("/tmp") in path.parents:  # under the home: among the tools above
                out += ["--ro-bind", str(path), str(path)]
        for path in spec.readable:
            if path.exists():
                out += ["--ro-bind", str(path), str(path)]
        # After `readable`, so no readable path can bring these back into view.
        out += ["--tmpfs", str(paths.home())]
        for secret in (*SYSTEM_SECRETS, *map(str, spec.hidden)):
            if Path(secret).is_dir():
                out += ["--tmpfs", secret]
            elif Path(secret).exists():
                out += ["--ro-bind", "/dev/null", secret]
        inside = spec.mount_at or spec.workspace
        out += ["--bind", str(spec.workspace), str(inside)]
        for path in spec.writable:
            path.mkdir(parents=True, exist_ok=True)
            out += ["--bind", str(path), str(path)]
        sockets = {Path(sock).parent for sock in services.values()}
        sockets |= {proxy.parent} if proxy is not None else set()
        for folder in sorted(sockets):
            out += ["--bind", str(folder), str(folder)]
        for host, seen in spec.ro_binds:
            out += ["--ro-bind", str(host), str(seen)]
        out += ["--chdir", str(inside), "--", *command]
        return out


def binary() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise Refused(f"bubblewrap (`bwrap`) is not installed: {INSTALL_HINT}")
    return found


@functools.cache
def check() -> None:
    """Refuse, with how to fix it, where bubblewrap is missing or cannot start here (a container
    without user namespaces, say)."""
    argv = [binary(), "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Refused(f"bubblewrap cannot start here ({e}): {INSTALL_HINT}") from None
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no reason given"
        raise Refused(f"bubblewrap cannot start here ({why}): {INSTALL_HINT}")
