"""The sandbox: where the agent, the checks and the set-up commands run.

An agent is an untrusted process. Under `bubblewrap` (the default) it sees only what commands
need, read-only: the system folders, `/etc` (its secret files hidden), `/opt`, the folders on
PATH, `[sandbox] readable`; no /run, /var, /home or /srv, so no host service's unix socket and no
other repository. It writes only its workspace (as much as `[sandbox] disk_mb` allows), has a
private `/tmp` and an empty home (bounded by `[sandbox] tmp_mb`, with the tool directories a
project needs put back read-only: pyenv, nvm, `~/.local`, the harness's own Python), cannot see
Jackline's state, SSH keys or cloud credentials, and has no network unless set-up runs or
`[sandbox] allow_network` names hosts (reached through an allowlisting proxy). Its environment is
an allowlist plus the secrets the step declares. `none` runs commands as they are, with a warning
on every run.

A sandbox is picked by name and turns a command into the command to run (`wrap`), plus the
resource limits its process starts with (`limits`).
"""

from __future__ import annotations

import functools
import os
import re
import resource
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from jackline.guard.redact import SECRET_NAME

if TYPE_CHECKING:
    from jackline.config import SandboxConfig

# Where a run's workspace appears inside the sandbox (under the sandbox's private /tmp: the
# machine's root is read-only, and a mount point must be made somewhere).
INSIDE = Path("/tmp/workspace")

# Variables a command may inherit from the harness; everything else is dropped.
ENV_ALLOWED = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TZ",
    "TMPDIR",
    "CI",
    "NO_COLOR",
    "FORCE_COLOR",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "NVM_DIR",
    "GOPATH",
    "GOROOT",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "JAVA_HOME",
}
ENV_ALLOWED_PREFIXES = ("LC_",)
# Set-up installs dependencies: it also keeps the package managers' settings (index URLs,
# mirrors, certificates). The agent and the checks do not get them.
SETUP_ENV_PREFIXES = ("PIP_", "UV_", "NPM_CONFIG_", "YARN_", "POETRY_", "CARGO_", "GO")

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install "
    'bubblewrap`), or set `[sandbox] mode = "none"` in jackline.toml to run agents unsandboxed'
)
NONE_WARNING = (
    'sandbox mode is "none": the agent runs with your files, your network and your '
    "credentials in reach. Use it only where bubblewrap cannot run."
)


@dataclass(frozen=True)
class Spec:
    """What one command may touch."""

    workspace: Path
    """Writable, and the working directory."""
    mount_at: Path | None = None
    """Where the workspace appears inside the sandbox (`INSIDE` for runs, so that what set-up
    wrote into a snapshot, a virtualenv's absolute paths say, holds in every workspace made from
    it); None: at its own path."""
    writable: tuple[Path, ...] = ()
    """Other paths the command must write (a check's report directory)."""
    readable: tuple[Path, ...] = ()
    """Paths to make readable that the sandbox would hide (`[sandbox] readable`)."""
    hidden: tuple[Path, ...] = ()
    """Paths to hide that the sandbox would show (`[sandbox] hidden`)."""
    network: bool = False
    """Share the host's network (set-up commands install dependencies)."""
    memory_mb: int = 0
    """Address-space limit in MiB (0: none)."""
    max_processes: int = 0
    """Process limit (0: none). The kernel does not apply it to root."""
    open_files: int = 0
    """Open-file limit (0: none)."""
    tmp_mb: int = 512
    """Size of each private in-memory folder (`/tmp`, the home, `/dev/shm`), in MiB: memory the
    address-space limit does not count, so never unbounded."""
    disk_mb: int = 0
    """What the command may add to the folders it writes, and the largest file it may write, in
    MiB (0: no limit). See `sandbox.disk`."""
    proxy_socket: Path | None = None
    """The allowlisting proxy's unix socket: the command reaches the network only through it."""
    no_proxy: str = "localhost,127.0.0.1,::1"
    """Hosts the command reaches directly (its own loopback)."""
    services: tuple[tuple[int, Path], ...] = ()
    """The workspace's services: each (port, socket) appears on the sandbox's loopback at that
    port, relayed through the unix socket to the service outside (see `workspaces.services`)."""
    ro_binds: tuple[tuple[Path, Path], ...] = ()
    """(host path, path inside) pairs bound read-only after the workspace, so they may sit inside
    it: the harness's git directory at the workspace's `.git`, the harness's inbox (brief,
    feedback, policy). The command reads them and cannot change them."""


class Sandbox(Protocol):
    name: str

    def wrap(self, argv: list[str] | str, spec: Spec) -> list[str] | str: ...


@dataclass(frozen=True)
class Jail:
    """A sandbox with the spec for one step: what `proc.run` needs to run a command inside."""

    sandbox: Sandbox
    spec: Spec

    def wrap(self, argv: list[str] | str) -> list[str] | str:
        return self.sandbox.wrap(argv, self.spec)


def rlimits(spec: Spec) -> list[tuple[int, int]]:
    """The resource limits `spec` asks for, as (kind, value) pairs: none where it asks none."""
    wanted = [
        (resource.RLIMIT_AS, spec.memory_mb * 1024 * 1024),
        (resource.RLIMIT_NPROC, spec.max_processes),
        (resource.RLIMIT_NOFILE, spec.open_files),
        # One file may not outgrow what the whole workspace may add (`disk` watches the sum).
        (resource.RLIMIT_FSIZE, spec.disk_mb * 1024 * 1024),
    ]
    return [(k, v) for k, v in wanted if v > 0]


def limits(spec: Spec) -> Callable[[], None] | None:
    """The `preexec_fn` that applies the spec's resource limits in the child, if any (a
    service's, started once a run; a command's are set from outside it: see `proc`)."""
    wanted = rlimits(spec)
    if not wanted:
        return None

    def apply() -> None:
        for kind, value in wanted:
            _, hard = resource.getrlimit(kind)
            resource.setrlimit(kind, (_capped(value, hard),) * 2)

    return apply


def apply_rlimits(pid: int, wanted: list[tuple[int, int]]) -> None:
    """Set `wanted` on the process `pid` (the caller's child, which has not run the command
    yet), each no higher than the hard limit it has."""
    for kind, value in wanted:
        _, hard = resource.prlimit(pid, kind)
        resource.prlimit(pid, kind, (_capped(value, hard),) * 2)


def _capped(value: int, hard: int) -> int:
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def scrub(
    env: Mapping[str, str], extra: tuple[str, ...] | list[str] = (), setup: bool = False
) -> dict[str, str]:
    """The environment a sandboxed command inherits: the allowlist and the names in `extra`
    (and, for set-up, the package managers' settings), never a name that looks like a secret."""
    keep = ENV_ALLOWED | set(extra)
    prefixes = ENV_ALLOWED_PREFIXES + (SETUP_ENV_PREFIXES if setup else ())
    return {
        k: v
        for k, v in env.items()
        if (k in keep or k.startswith(prefixes)) and not SECRET_NAME.search(k)
    }


def jail_for(
    box: SandboxConfig,
    workspace: Path,
    network: bool = False,
    proxy: Path | None = None,
    fresh_git: bool = True,
) -> Jail:
    """The sandbox `[sandbox]` describes, for a command in `workspace`: set-up gets the network,
    the rest do not (or only the allowed hosts, through the proxy listening on `proxy`).
    `fresh_git`: lay the commands' own git directory afresh (see `git_binds`)."""
    from jackline.sandbox.proxy import no_proxy

    sandboxed = box.mode == "bubblewrap"
    spec = Spec(
        workspace=workspace,
        mount_at=INSIDE if sandboxed else None,
        ro_binds=git_binds(workspace, sandboxed, fresh_git),
        readable=tuple(Path(p).expanduser() for p in box.readable),
        hidden=tuple(Path(p).expanduser() for p in box.hidden),
        network=network,
        proxy_socket=proxy,
        no_proxy=no_proxy(box.allow_network),
        memory_mb=box.memory_mb,
        max_processes=box.max_processes,
        open_files=box.open_files,
        tmp_mb=box.tmp_mb,
        disk_mb=box.disk_mb,
    )
    return Jail(get(box.mode), spec)


def git_binds(
    workspace: Path, sandboxed: bool, fresh: bool = True
) -> tuple[tuple[Path, Path], ...]:
    """A git directory of the commands' own at the workspace's `.git` (see
    `git.lay_agent_gitdir`), its objects borrowed from the harness's, which the sandbox shows
    read-only outside the workspace: `git status`, `diff`, `log`, even `commit` work, and nothing
    the commands do there reaches what the harness later runs git with. Laid afresh when
    `fresh` (before an agent's round, set-up), else only where there is none (the checks work
    on what the agent left, as they would on a developer's machine)."""
    from jackline import git, safeio

    harness = git.gitdir(workspace)
    if harness is None:
        return ()
    objects = harness / "objects"
    seen_at = git.OBJECTS_INSIDE if sandboxed else objects
    if fresh or not safeio.is_dir(workspace, ".git"):
        git.lay_agent_gitdir(workspace, seen_at)
    return ((objects, seen_at),) if sandboxed else ()


def get(mode: str) -> Sandbox:
    from jackline.sandbox.bubblewrap import Bubblewrap

    sandboxes: dict[str, Sandbox] = {"bubblewrap": Bubblewrap(), "none": Unsandboxed()}
    return sandboxes[mode]


class Unsandboxed:
    name = "none"

    def wrap(self, argv: list[str] | str, spec: Spec) -> list[str] | str:
        return argv


def harness_paths() -> list[Path]:
    """What the harness's own Python and package need: readable in every sandbox, wherever they
    are installed (a clone under /tmp, a virtualenv in the home)."""
    return list(_harness_paths())


@functools.cache
def _harness_paths() -> tuple[Path, ...]:
    # Found once: the harness does not move while it runs, and resolving costs a stat a part.
    import jackline

    return (
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.executable).resolve().parent,
        Path(jackline.__file__).resolve().parents[1],
    )


def home_tools(home: Path, path_variable: str) -> list[Path]:
    """Directories under the home that hold tools, not secrets: put back read-only in the
    sandbox's empty home. The harness's own interpreter and package always are."""
    candidates = [home / rel for rel in HOME_TOOLS]
    candidates += [Path(p) for p in path_variable.split(os.pathsep) if p]
    candidates += harness_paths()
    out: list[Path] = []
    for c in candidates:
        c = Path(os.path.abspath(c))
        if c == home or not within(c, home) or SECRET_PLACES.search(str(c)) or not c.exists():
            continue
        c = prefix(c)
        if c == home or any(within(c, o) for o in out):
            continue  # the home itself (a virtualenv?), or shown through a folder above it
        out = [o for o in out if not within(o, c)] + [c]
    return out


def path_tools(path_variable: str, home: Path, state: Path) -> list[Path]:
    """The folders on PATH outside the home and Jackline's state `state`: shown read-only,
    since a command finds its tools through them (a virtualenv under /srv, a toolchain under
    /work/tools). Never a folder in or above the home or the state, nor one level below `/`
    (`/home`, `/tmp`, or `/work`, which would show every repository beside the tools), nor the
    kernel's own (/proc, /sys, /dev)."""
    out: list[Path] = []
    for entry in path_variable.split(os.pathsep):
        if not entry.startswith("/"):
            continue  # `.` or a relative folder: wherever the command happens to be
        c = prefix(Path(os.path.abspath(entry)))
        if len(c.parts) < 3 or c.parts[1] in ("proc", "sys", "dev") or not c.is_dir():
            continue
        if any(within(c, n) or within(n, c) for n in (home, state)):
            continue
        if SECRET_PLACES.search(str(c)) or c in out:
            continue
        out.append(c)
    return out


def within(path: Path | str, folder: Path | str) -> bool:
    """Whether `path` is `folder` or under it (both absolute and normalized): by their text,
    which is what a mount's path is, and much cheaper than `Path.parents`."""
    p, f = str(path), str(folder)
    return p == f or p.startswith(f if f.endswith("/") else f + "/")


def prefix(folder: Path) -> Path:
    """What must be shown for a PATH folder's tools to work: a virtualenv's `bin` needs the
    virtualenv (its `pyvenv.cfg` and `lib`), `node_modules/.bin` its `node_modules`; any other
    folder only itself."""
    if folder.name == "bin" and (folder.parent / "pyvenv.cfg").is_file():
        return folder.parent
    if folder.name == ".bin" and folder.parent.name == "node_modules":
        return folder.parent
    return folder


HOME_TOOLS = (
    ".pyenv",
    ".nvm",
    ".volta",
    ".asdf",
    ".bun",
    ".deno",
    ".local/bin",
    ".local/lib",
    ".local/share/uv",
    ".local/share/pnpm",
    ".cargo/bin",
    ".rustup",
    ".sdkman",
    "go/bin",
)
# Never put back, whatever PATH says.
SECRET_PLACES = re.compile(
    r"/(\.ssh|\.aws|\.azure|\.kube|\.docker|\.gnupg|\.config/gcloud|\.config/gh|\.netrc|"
    r"\.git-credentials|\.npmrc|\.pypirc|\.jackline)(/|$)"
)
