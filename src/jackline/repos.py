"""Repositories by URL: what a run records as its repository, made a working tree on this machine.

A run records its repository as a path on the machine that submitted it, or as a URL
(`file:///srv/git/shop.git`, `ssh://git@host/shop.git`, `git@host:acme/shop.git`,
`https://host/acme/shop.git`) that any worker on any machine can reach. `local` and `synced` turn
either into a working tree here: a path stays the path; a URL is this machine's own clone,
`JACKLINE_HOME/repos/<name>-<hash of the URL>`, made on first use. `synced` brings that clone to
the remote's main before a run is prepared, before a merge and before a release checks out a
commit. The clone is the harness's alone (nobody edits it), so catching up is a fetch and a reset,
never a merge; one lock per clone keeps two runs of one worker from fetching over each other.
Snapshots and the warm pool key on the clone's path: each worker keeps its own per repository.

What a remote holds is not trusted. Every git call that talks to it runs with `git.SAFE` (no
hook, no file-system monitor, no submodule), reads no system or global git configuration (a
filter or a URL rewrite there is the machine's, not the remote's business), and may use only the
URL's own protocol (`GIT_ALLOW_PROTOCOL`): a `.gitmodules` naming `ext::` or another host is
never followed. Credentials are never in a URL: see `remotes`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from jackline import git as g
from jackline import locks, paths, remotes
from jackline.errors import CommandFailed, NotFound, Refused

PROTOCOLS = ("file", "ssh", "https", "http")
"""The schemes a repository URL may have (besides git's `user@host:path` for ssh)."""
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# git's `transport::address` (`ext::sh -c ...` runs a command): only ever refused.
_HELPER = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")
# git's scp-like ssh address: a user, a host, a colon, a path (no slash before the colon).
_SCP_LIKE = re.compile(r"^[^/:@]+@[^/:]+:")
_SCP = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)@([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):(.+)$"
)
_RIGHT = (
    "file:///path/repo.git, ssh://user@host/path.git, user@host:path.git or https://host/path.git"
)
_FETCHED = "refs/remotes/origin"
"""Where the clone keeps the remote's branches as last fetched."""


@dataclass(frozen=True)
class Remote:
    """A repository URL, checked: one of `PROTOCOLS`, no password or token in it."""

    url: str
    protocol: str
    """What git calls its transport (`GIT_ALLOW_PROTOCOL`): file, ssh, https or http."""
    shown: str
    """The URL without any user information: what errors and messages name."""


def is_url(repo: str | Path) -> bool:
    """Whether a repository as given (or as a run recorded it) is a URL rather than a path."""
    if isinstance(repo, Path):
        return False
    return bool(_SCHEME.match(repo) or _HELPER.match(repo) or _SCP_LIKE.match(repo))


def parse(url: str) -> Remote:
    """The URL checked (`Refused`, naming it without user information and what would be right)."""
    helper = _HELPER.match(url)
    if helper is not None:
        name = helper.group(1)
        raise Refused(f"{name}::...: unknown scheme {name!r}; a repository URL is {_RIGHT}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        shown = _strip(url)
        raise Refused(f"{shown!r} is not a repository URL: it holds a space or a control character")
    scheme = _SCHEME.match(url)
    if scheme is None:
        return _scp(url)
    return _checked(url, scheme.group(1).lower(), urlsplit(url))


def _checked(url: str, protocol: str, parts: SplitResult) -> Remote:
    shown = _strip(url)
    if protocol not in PROTOCOLS:
        raise Refused(f"{shown}: unknown scheme {protocol!r}; a repository URL is {_RIGHT}")
    if parts.password is not None or (protocol in ("https", "http") and parts.username):
        raise Refused(
            f"{shown}: credentials never go in a URL (they would be in every log and command "
            f"line); name a token in {remotes.path()} as a secret reference instead"
        )
    if protocol == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise Refused(f"{shown}: a file URL is file:///absolute/path")
    elif not parts.hostname or parts.hostname.startswith("-"):
        raise Refused(f"{shown}: no host; a repository URL is {_RIGHT}")
    return Remote(url, protocol, shown)


def _scp(url: str) -> Remote:
    found = _SCP.match(url)
    if found is None or found.group(3).startswith("-"):
        raise Refused(f"{_strip(url)!r} is not a repository URL; one is {_RIGHT}")
    return Remote(url, "ssh", _strip(url))


def _strip(url: str) -> str:
    """`url` without the user information before a host (`user:token@`), whatever else it is."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        host_part = url.split("/", 1)[0]
        return url.split("@", 1)[1] if "@" in host_part else url
    rest = url[scheme.end() :]
    authority, slash, path = rest.partition("/")
    return f"{url[: scheme.end()]}{authority.rpartition('@')[2]}{slash}{path}"


def clone_path(remote: Remote) -> Path:
    """This machine's clone of the remote: named for people, keyed by the whole URL."""
    digest = hashlib.sha256(remote.url.encode()).hexdigest()[:12]
    last = remote.url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", last).strip("._") or "repo"
    return paths.home() / "repos" / f"{name}-{digest}"


def git_env(remote: Remote) -> dict[str, str]:
    """The environment of a git process that talks to the remote: its own protocol only, no
    system or global configuration, and the worker's token for it where one is configured."""
    return {
        "GIT_ALLOW_PROTOCOL": remote.protocol,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        **remotes.git_env(remote.url),
    }


def local(repo: str) -> Path:
    """The working tree on this machine of a repository as a run recorded it, as it is now: a
    path as given, a URL's clone here (which `synced` makes and brings up to date)."""
    return clone_path(parse(repo)) if is_url(repo) else Path(repo)


def synced(repo: str, main: str | None = None) -> Path:
    """`local(repo)`, and for a URL its clone made if missing and brought to the remote's
    newest `main` (checked out, the working tree exactly that commit). Without `main`: the
    branch the clone has checked out, at first the remote's default branch."""
    if not is_url(repo):
        return Path(repo)
    remote = parse(repo)
    tree = clone_path(remote)
    with locks.held("repo", remote.url):
        if not (tree / ".git").is_dir():
            _clone(remote, tree)
        _fetch(remote, tree)
        _reset(remote, tree, main or g.current_branch(tree) or "main")
    return tree


def fetch(repo: str) -> None:
    """Bring a URL's clone's view of the remote's branches up to date (nothing for a path)."""
    if is_url(repo):
        remote = parse(repo)
        with locks.held("repo", remote.url):
            _fetch(remote, clone_path(remote))


def _clone(remote: Remote, tree: Path) -> None:
    """Clone into a folder beside the clone's place, renamed into it once complete: a clone cut
    short (a crash, a network gone) leaves nothing that looks like a clone."""
    tree.parent.mkdir(parents=True, exist_ok=True)
    partial = tree.with_name(f".{tree.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    argv = ("clone", "--quiet", "--no-checkout", "--no-tags", "--", remote.url, str(partial))
    try:
        g.git(tree.parent, *argv, env=git_env(remote))
    except CommandFailed as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise NotFound(
            f"cannot clone {remote.shown}: {_last_line(e)}; check the URL, and that this "
            f"worker can read it (https: a token in {remotes.path()}; ssh: GIT_SSH_COMMAND "
            "with a key)"
        ) from None
    partial.rename(tree)


def _fetch(remote: Remote, tree: Path) -> None:
    """Every branch of the remote into `refs/remotes/origin/`, from the URL itself (never from
    configuration), branches the remote deleted pruned."""
    refspec = f"+refs/heads/*:{_FETCHED}/*"
    try:
        g.git(
            tree,
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "--",
            remote.url,
            refspec,
            env=git_env(remote),
        )
    except CommandFailed as e:
        raise NotFound(f"cannot fetch from {remote.shown}: {_last_line(e)}") from None


def _reset(remote: Remote, tree: Path, main: str) -> None:
    """Check out the remote's `main` in the clone, exactly: nothing of the clone's own survives."""
    fetched = f"{_FETCHED}/{main}"
    if not g.ok(tree, "rev-parse", "--verify", "--quiet", f"{fetched}^{{commit}}"):
        names = g.git(tree, "for-each-ref", "--format=%(refname:lstrip=3)", _FETCHED).split()
        branches = ", ".join(n for n in names if n != "HEAD") or "none: the repository is empty"
        raise NotFound(
            f"{remote.shown} has no branch {main!r} (its branches: {branches}); push it, or set "
            "[project] main in the jackline.toml of the remote's default branch"
        )
    env = git_env(remote)
    # Links checked out as the plain files they are in git: what Jackline reads from the clone
    # (jackline.toml, blueprints) can never be a link to a file of the worker's.
    g.git(
        tree,
        "-c",
        "core.symlinks=false",
        "checkout",
        "--quiet",
        "--force",
        "-B",
        main,
        fetched,
        env=env,
    )
    g.git(tree, "clean", "-ffdxq", env=env)


def _last_line(e: CommandFailed) -> str:
    lines = [line for line in (e.stderr or e.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"git exited {e.code}"
