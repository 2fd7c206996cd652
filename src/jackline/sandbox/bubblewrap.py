"""The bubblewrap sandbox: a command line for `bwrap` that gives the command new namespaces
(user, mount, pid, ipc, uts, cgroup, and network unless the step may use it), a file system
built from what commands need, its workspace writable, and a private `/tmp` and home.

The file system is built up, not carved out of `/`: a host folder the sandbox does not name is
not there, so no unix socket of the host's services (PostgreSQL, Redis, Docker, D-Bus under
/run and /var/run), no other repository and no other user's folder is reachable, whatever the
machine holds. What is named, read-only: the system folders (`/usr`, and `/bin`, `/lib`, ... as
the host has them, links on a merged-/usr system), `/etc` (its secret files hidden), `/opt`,
the files `/etc` links to elsewhere (a resolv.conf under /run), the harness's own Python, the
tools under the home, the folders on PATH, `[sandbox] readable`. Then `/dev`, `/proc`, and
in-memory folders each bounded by `[sandbox] tmp_mb` (`/tmp`, `/dev/shm`, the home; /var/tmp is
/tmp), since what a command puts there is memory that its address-space limit does not count.

Mount order matters: the system; the in-memory folders; the tools and `readable` (which may sit
under them); then, so nothing above can show them, empty folders over the machine's secret
files, and over Jackline's state where something shown holds it; then the workspace (which
lives under Jackline's state), writable, and the harness's read-only folders inside it. Last,
everything the command must not write into (the root, /dev, the hiding folders) is made
read-only.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
from pathlib import Path

from jackline import paths
from jackline.errors import Refused
from jackline.sandbox import (
    INSTALL_HINT,
    Spec,
    forward,
    harness_paths,
    home_tools,
    path_tools,
    within,
)

# Files outside the home that hold secrets of the machine.
SYSTEM_SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/etc/sudoers.d")
# The system, read-only (or as the link it is on the host: `/bin -> usr/bin`). Nix's store, not
# /nix, which also holds the daemon's socket.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SYSTEM_MORE = ("/nix/store",)
# Files in /etc that are often links out of it: their targets are shown too, alone.
ETC_LINKS = (
    "/etc/resolv.conf",  # into /run/systemd/resolve or /run/NetworkManager
    "/etc/hosts",
    "/etc/localtime",
    "/etc/ssl/certs",  # into /var/lib/ca-certificates on some systems
    "/etc/ssl/cert.pem",
)
HIDDEN_SIZE = 1 << 20  # bytes: a hiding folder holds only the mount points made in it
TOOLS_FOR = 60.0
"""Seconds the tool folders found for a home, PATH and state are used again (see `tools`)."""
_found: dict[tuple[str, str, str], tuple[float, tuple[Path, ...]]] = {}


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
        out += system()
        size = str(spec.tmp_mb * 1024 * 1024)
        out += ["--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--proc", "/proc"]
        out += ["--size", size, "--tmpfs", "/tmp", "--symlink", "../tmp", "/var/tmp"]
        if str(home) != "/":
            out += ["--size", size, "--tmpfs", str(home)]
        found = tools(home)
        for path in found:
            out += ["--ro-bind-try", str(path), str(path)]
        more = readable(spec, found)
        for path in more:
            out += ["--ro-bind", str(path), str(path)]
        # After what is shown, so nothing shown can bring these back into view. Jackline's state
        # is hidden only where something shown holds it (or lies in it): elsewhere (in the
        # home, under /tmp) it is under a fresh in-memory folder already, and two mounts fewer
        # is a tenth of what bubblewrap spends. Where the state is reached through a link, the
        # folder it really is is hidden too: a folder shown may hold that one.
        hiding: list[str] = []
        state = paths.home()
        for place in dict.fromkeys((str(state), os.path.realpath(state))):
            if in_view(Path(place), (*found, *more)):
                hiding.append(place)
                out += ["--size", str(HIDDEN_SIZE), "--tmpfs", place]
        for secret in (*SYSTEM_SECRETS, *map(str, spec.hidden)):
            if Path(secret).is_dir():
                out += ["--size", str(HIDDEN_SIZE), "--tmpfs", secret]
                hiding.append(secret)
            elif Path(secret).exists():
                out += ["--ro-bind", "/dev/null", secret]
        inside = spec.mount_at or spec.workspace
        out += ["--bind", str(spec.workspace), str(inside)]
        for path in spec.writable:
            path.mkdir(parents=True, exist_ok=True)
            out += ["--bind", str(path), str(path)]
        for folder in socket_folders(spec):
            out += ["--bind", str(folder), str(folder)]
        for host, seen in spec.ro_binds:
            out += ["--ro-bind", str(host), str(seen)]
        # Now that every mount point is made: nothing else is writable (an in-memory folder the
        # command could fill past `tmp_mb`).
        for place in (*hiding, "/dev", "/"):
            out += ["--remount-ro", place]
        out += ["--chdir", str(inside), "--", *command]
        return out


@functools.cache
def system() -> tuple[str, ...]:
    """The arguments that show the system, as this host lays it out (read once: it does not
    change while the harness runs)."""
    out: list[str] = []
    for place in (*SYSTEM, *SYSTEM_MORE):
        if os.path.islink(place):
            out += ["--symlink", os.readlink(place), place]
        elif os.path.isdir(place):
            out += ["--ro-bind", place, place]
    for target in etc_targets():
        out += ["--ro-bind", target, target]
    return tuple(out)


@functools.cache
def etc_targets() -> tuple[str, ...]:
    """Where the files of `ETC_LINKS` that link out of `/etc` lead (shown with the system)."""
    out: list[str] = []
    for link in ETC_LINKS:
        target = Path(link).resolve()
        if target != Path(link) and target.exists() and not covered(target, ()):
            out.append(str(target))
    return tuple(out)


def in_view(path: Path, shown: tuple[Path, ...]) -> bool:
    """Whether any of `path` is shown: it lies under something shown (the system, the files
    `/etc` links to, `shown`), or something shown lies under it."""
    places: list[Path | str] = [*SYSTEM, *SYSTEM_MORE, *etc_targets(), *shown]
    return any(within(path, s) or within(s, path) for s in places)


def tools(home: Path) -> tuple[Path, ...]:
    """The folders shown read-only besides the system, in order, each once: the tools under the
    home, the harness's own Python and package, the folders on PATH.

    Looked for at most once a `TOOLS_FOR` for a given home, PATH and Jackline state, not once a
    command: finding them is some fifty `stat` calls, most of what `wrap` cost. What they come
    from is the harness's own environment and the host's folders outside the sandbox, which no
    sandboxed command can change. A tool installed meanwhile is shown within `TOOLS_FOR`; one
    removed meanwhile is skipped (`wrap` binds them with `--ro-bind-try`)."""
    path_variable, state = os.environ.get("PATH", ""), paths.home()
    key = (str(home), path_variable, str(state))
    now = time.monotonic()
    seen = _found.get(key)
    if seen is not None and now - seen[0] < TOOLS_FOR:
        return seen[1]
    wanted = [
        *home_tools(home, path_variable),
        *harness_paths(),
        *path_tools(path_variable, home, state),
    ]
    out: list[Path] = []
    for path in wanted:
        path = Path(os.path.abspath(path))
        if path.exists() and not covered(path, out):
            out.append(path)
    if len(_found) > 16:
        _found.clear()  # another home or PATH each time (tests): keep only what is in use
    _found[key] = (now, tuple(out))
    return tuple(out)


def readable(spec: Spec, shown: tuple[Path, ...]) -> list[Path]:
    """`[sandbox] readable`, each folder that is there and not in view already."""
    out: list[Path] = []
    for path in spec.readable:
        path = Path(os.path.abspath(path))
        if path.exists() and not covered(path, (*shown, *out)):
            out.append(path)
    return out


def covered(path: Path, shown: list[Path] | tuple[Path, ...]) -> bool:
    """Whether `path` is already in view: under a system folder, or under one shown before it."""
    return any(within(path, s) for s in (*SYSTEM, *SYSTEM_MORE, *shown))


def socket_folders(spec: Spec) -> list[Path]:
    """The folders of the unix sockets through which the command reaches the proxy and its
    services: bound writable, as connecting to a socket needs."""
    if spec.network:
        return []
    found = {sock.parent for _, sock in spec.services}
    found |= {spec.proxy_socket.parent} if spec.proxy_socket is not None else set()
    return sorted(found)


def binary() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise Refused(f"bubblewrap (`bwrap`) is not installed: {INSTALL_HINT}")
    return found


@functools.cache
def check() -> None:
    """Refuse, with how to fix it, where bubblewrap is missing or cannot start here (a container
    without user namespaces, say)."""
    # `--size` (bubblewrap 0.7 and later) bounds the in-memory folders: an older one refuses it.
    argv = [binary(), "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev"]
    argv += ["--size", "1048576", "--tmpfs", "/tmp", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Refused(f"bubblewrap cannot start here ({e}): {INSTALL_HINT}") from None
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no reason given"
        raise Refused(f"bubblewrap cannot start here ({why}): {INSTALL_HINT}")
