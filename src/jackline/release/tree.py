"""What a release reads and runs comes from the commit it releases, never from a working tree.

The user's checkout is whatever they left there: uncommitted edits, or an agent's branch checked
out to look at it, whose `jackline.toml` may name itself main and whose deploy script may deploy
production with no go. So a release learns which branch is main from main as committed
(`main_branch`), reads `jackline.toml` from the released commit (`config_at`), and runs every
deploy and rollback command in a checkout the harness made (`checkout`): one per repository
under `JACKLINE_HOME/releases/trees/`, fetched from the repository's objects (copied, never hard
linked) and forced to the released commit, untracked files removed, before each command.

Ignored files survive that move on purpose: they are what a project's deploy scripts keep beside
themselves from one deploy to the next (pid files, databases, logs: `var/` in the example shop),
and only those scripts, from released commits, write there. So an environment's `logs` path is
relative to this checkout, not to the user's.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from jackline import config as cfg
from jackline import git as g
from jackline import paths
from jackline.errors import ConfigError, JacklineError, NotFound, Refused

MAX_CONFIG = 1 << 20
"""A `jackline.toml` larger than this (1 MiB) is refused unread."""
AGENT_BRANCHES = "agent/"
"""Where the harness publishes agents' work: unreviewed, so never main."""


def path(root: Path) -> Path:
    """The release checkout of the repository at `root` (made by `checkout`)."""
    root = root.resolve()
    key = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return paths.home() / "releases" / "trees" / f"{root.name}-{key}"


def checkout(root: Path, sha: str, *also: str) -> Path:
    """The release checkout of `root`, at `sha`, holding the commits `also` names too (the
    previous release, for a rollback command that exports it)."""
    tree = path(root)
    if not (tree / ".git").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        g.git(tree, "init", "--quiet")
    missing = [s for s in dict.fromkeys((sha, *also)) if s and not _has(tree, s)]
    if missing:
        g.git(tree, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(root), *missing)
    g.git(tree, "checkout", "--quiet", "--force", "--detach", sha)
    g.git(tree, "clean", "-ffdq")  # untracked files go; ignored ones (deploy state) stay
    return tree


def _has(tree: Path, sha: str) -> bool:
    return g.ok(tree, "cat-file", "-e", f"{sha}^{{commit}}")


def config_at(root: Path, rev: str) -> cfg.JacklineConfig:
    """`jackline.toml` as committed at `rev` in `root`, whatever the working tree holds."""
    sha = g.git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if not sha:
        raise NotFound(f"{rev!r} is not a commit in {root}")
    where = f"{cfg.FILENAME} at {rev} ({sha[:10]})"
    listed = g.git(root, "ls-tree", "-z", sha, "--", cfg.FILENAME, strip=False)
    if listed.split(" ", 1)[0] not in ("100644", "100755"):
        raise ConfigError(where, ["not committed as a file; commit one (`jackline init`)"])
    if int(g.git(root, "cat-file", "-s", f"{sha}:{cfg.FILENAME}")) > MAX_CONFIG:
        raise ConfigError(where, [f"larger than {MAX_CONFIG} bytes"])
    try:
        text = g.git(root, "cat-file", "blob", f"{sha}:{cfg.FILENAME}", strip=False)
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(where, ["not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(where, [f"invalid TOML: {e}"]) from None
    return cfg.parse(data, where)


def main_branch(root: Path) -> str:
    """Which branch is main, as main's own committed `jackline.toml` names it.

    The branch called `main` is asked first; a repository without one is asked through the
    commit checked out (HEAD's committed config, never the working tree's file). Either way the
    branch named must name itself in its own committed config, and may not be an agent's."""
    problems = []
    for hint in dict.fromkeys(["main", _head_hint(root)]):
        if not hint:
            continue
        try:
            named = config_at(root, f"refs/heads/{hint}").project.main
            if named != hint and config_at(root, f"refs/heads/{named}").project.main != named:
                raise Refused(f"{named!r}'s own committed {cfg.FILENAME} names another main")
        except (JacklineError, ValueError) as e:
            problems.append(f"{hint}: {e}")
            continue
        if named.startswith(AGENT_BRANCHES):
            raise Refused(f"{cfg.FILENAME} names {named!r} as main: an agent's branch never is")
        return named
    raise ConfigError(
        str(root / cfg.FILENAME),
        ["project.main: no committed jackline.toml names its own branch main", *problems],
    )


def _head_hint(root: Path) -> str:
    try:
        return config_at(root, "HEAD").project.main
    except (JacklineError, ValueError):
        return ""
