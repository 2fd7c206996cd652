"""A `git` first on the agent's PATH that refuses what only the harness may do, then runs real git.

It refuses, in the run's workspace only (other repositories, such as the ones a test suite makes
in a temporary folder, pass straight through):

- `push`: only the harness pushes, and only when the run ends;
- commits onto main (`commit`, `merge`, `cherry-pick`, `revert`, `am`, `pull`, `rebase` there);
- `reset --hard|--keep|--merge` to a remote-tracking ref, which throws the agent's work away;
- rewriting published history: `commit --amend`, `rebase`, `reset` or `update-ref` that drop
  commits reachable from a remote-tracking ref or from main; `filter-branch`, `filter-repo`,
  `replace`; `branch -f/-d/-D/-m/-M/-C` of main or of a branch published on a remote;
- changing what the harness relies on: `core.hooksPath`, `remote.*`, `url.*`, `git remote`.

The agent's own unpublished commits may be amended and rebased freely.

This is a guide for a well-meaning agent, not a wall: anything can call /usr/bin/git directly, set
`$JACKLINE_REAL_GIT`, or edit `.git` by hand. The walls are outside the loop: the sandbox holds no
credentials, the harness alone pushes, forbidden writes are reverted and the gate scan runs on the
final diff. What the wrapper buys is an early, explained refusal instead of a silent failure later.

When it cannot tell (not a repository, a revision git cannot resolve), it lets the real git run
and answer.

Exit codes: 77 (EX_NOPERM) refused, with the reason and what to do instead on stderr; 127 when no
real git is found; otherwise whatever the real git returns (the wrapper `exec`s it).

Start-up is on every `git` the agent runs, so this module imports only the standard library and
`jackline.guard.policy`, and reads the policy only for the commands it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from jackline.guard.policy import Policy

REFUSED = 77  # sysexits.h EX_NOPERM: distinct from git's own 1, 128 and 129
MARKER = "# jackline git wrapper"

PUSH = (
    "git push is refused: only the harness pushes; your work is published when the run ends. "
    "Leave it committed on your branch (or just in the working tree)."
)
ON_MAIN = (
    "refused: you are on {main}. Work on your agent/* branch (`git branch --list 'agent/*'` "
    "shows it; `git switch <it>`) and commit there."
)
DISCARD = (
    "refused: `git reset {mode} {target}` would throw away the work on this branch. To undo one "
    "file use `git restore <path>` (or `git restore --source={target} <path>`); to undo your last "
    "unpushed commit but keep its changes, `git reset --soft HEAD~1`."
)
PUBLISHED = (
    "refused: this rewrites commits that are already published (on a remote or on {main}). "
    "Add a new commit instead; to undo a published commit, `git revert <commit>`."
)
REWRITE = "refused: `git {command}` rewrites history, which only a person may do. Make new commits instead."
BRANCH = (
    "refused: this would move or delete branch {name}, which is {main} or is published on a "
    "remote. Create a new branch instead."
)
REFS = "refused: remote-tracking refs and {main} record what is published; only the harness moves them."
CONFIG = (
    "refused: the harness relies on git's hooks, remotes and URL settings as it set them up; "
    "leave `{key}` alone."
)
REMOTE = "refused: the harness relies on the remotes as it set them up; leave them as they are."

# Global options (before the subcommand) that take the next argument as their value.
_GLOBAL_VALUE = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env"}
# Builtins the wrapper never checks: no policy to read, no alias to look up (git does not let
# an alias shadow a builtin).
_UNCHECKED = set(
    "add bisect blame cat-file check-ignore checkout clean clone describe diff "
    "diff-files diff-index diff-tree fetch for-each-ref format-patch fsck gc grep hash-object "
    "help init log ls-files ls-remote ls-tree merge-base mv notes range-diff read-tree reflog "
    "restore rev-list rev-parse rm shortlog show show-ref stash status submodule switch "
    "symbolic-ref tag update-index version worktree write-tree".split()
)
_WATCHED_KEYS = ("core.hookspath", "remote.", "url.")
_CONFIG_READS = {"--get", "--get-all", "--get-regexp", "--get-urlmatch", "-l", "--list"}
_CONFIG_WRITES = {"--unset", "--unset-all", "--add", "--replace-all"}
_CONFIG_WRITES |= {"--rename-section", "--remove-section"}
_CONTINUING = {"--continue", "--abort", "--skip", "--quit", "--edit-todo", "--show-current-patch"}
_MOVES = {"-m", "-M", "--move", "-c", "-C", "--copy"}
_DELETES = {"-d", "-D", "--delete"}
_FORCES = {"-f", "--force", "-M", "-C"}


class Invocation(NamedTuple):
    cwd: Path
    options: list[str]  # global options other than -C, to inspect the same repository
    command: str | None
    args: list[str]


class Repo:
    """The repository a command runs in, inspected with the real git."""

    def __init__(self, git: str, inv: Invocation, policy: Policy) -> None:
        self.git, self.inv, self.main = git, inv, policy.main
        where = self.run(
            "rev-parse",
            "--path-format=absolute",
            "--git-common-dir",
            "--symbolic-full-name",
            "HEAD",
        )
        self.common_dir, head = (where or "\n").split("\n", 1)
        self.head = head if head.startswith("refs/") else None  # None: detached

    def run(self, *args: str) -> str | None:
        return _git(self.git, self.inv, *args)

    def is_workspace(self, workspace: str) -> bool:
        ours = os.path.realpath(os.path.join(workspace, ".git"))
        return bool(self.common_dir) and os.path.realpath(self.common_dir) == ours

    @property
    def on_main(self) -> bool:
        return self.head == f"refs/heads/{self.main}"

    def drops_published(self, *revs: str) -> bool:
        """Whether the commits `revs` select (rev-list syntax) include one reachable from a remote or main."""
        published = self.run(
            "for-each-ref", "--format=%(objectname)", "refs/remotes", f"refs/heads/{self.main}"
        )
        every = self.run("rev-list", "--count", *revs, "--")
        mine = self.run("rev-list", "--count", *revs, "--not", *(published or "").split(), "--")
        return every is not None and mine is not None and every != mine

    def is_remote(self, target: str) -> bool:
        cuts = [i for i in (target.find("~"), target.find("^")) if i >= 0]
        name = target[: min(cuts)] if cuts else target
        if name.startswith("FETCH_HEAD"):
            return True
        full = self.run("rev-parse", "--symbolic-full-name", name)
        return bool(full and full.startswith("refs/remotes/"))

    def published_branch(self, name: str) -> bool:
        if name in (self.main, f"refs/heads/{self.main}"):
            return True
        return bool(self.run("for-each-ref", "--format=%(refname)", f"refs/remotes/*/{name}"))


def _git(git: str, inv: Invocation, *args: str) -> str | None:
    try:
        done = subprocess.run(
            [git, *inv.options, *args], cwd=inv.cwd, capture_output=True, text=True
        )
    except OSError:  # e.g. `cd` into a folder that does not exist yet
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def parse(argv: list[str], cwd: Path) -> Invocation:
    """Split git's global options (`-C dir`, `-c k=v`, `--git-dir`...) from the subcommand."""
    options: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_VALUE and i + 1 < len(argv):
            if arg == "-C":
                cwd = cwd / argv[i + 1]
            else:
                options += argv[i : i + 2]
            i += 2
        elif arg.startswith("-") and arg not in ("--version", "--help", "-v", "-h"):
            options.append(arg)
            i += 1
        else:
            return Invocation(cwd, options, arg, argv[i + 1 :])
    return Invocation(cwd, options, None, [])


def decide(argv: list[str], cwd: Path, policy: Policy) -> str | None:
    """Why `git <argv>`, run in `cwd`, is refused under `policy`; None when it may run."""
    git = real_git() or "git"
    inv = _expand_alias(parse(argv, cwd), git)
    rule = _RULES.get(inv.command or "")
    if inv.command is None or rule is None:
        return None
    repo = Repo(git, inv, policy)
    if not repo.is_workspace(policy.workspace):
        return None
    refusal = rule(repo, inv.command, inv.args)
    return None if refusal is None else "jackline: " + refusal.replace("{main}", policy.main)


def _plain(command: str | None) -> bool:
    """Whether `command` certainly runs no checked subcommand (no alias lookup needed)."""
    return command is None or command in _UNCHECKED or command.startswith("-")


def _expand_alias(inv: Invocation, git: str, depth: int = 0) -> Invocation:
    if _plain(inv.command) or inv.command in _RULES or depth > 4:
        return inv
    found = _git(git, inv, "config", "--get", f"alias.{inv.command}")
    if not found or found.startswith("!"):  # a shell alias runs `git` again, through this wrapper
        return inv
    import shlex

    words = shlex.split(found)
    return _expand_alias(inv._replace(command=words[0], args=words[1:] + inv.args), git, depth + 1)


def _options(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


def _positionals(args: list[str], valued: frozenset[str] = frozenset()) -> list[str]:
    found: list[str] = []
    skip = False
    for arg in _options(args):
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif not arg.startswith("-"):
            found.append(arg)
    return found


def _flags(args: list[str]) -> set[str]:
    """Option names, with bundled short options (`-fD`) split apart."""
    found: set[str] = set()
    for arg in _options(args):
        if arg.startswith("--"):
            found.add(arg.split("=", 1)[0])
        elif arg.startswith("-"):
            found.update(f"-{c}" for c in arg[1:])
    return found


def _push(repo: Repo, command: str, args: list[str]) -> str | None:
    return PUSH


def _commit(repo: Repo, command: str, args: list[str]) -> str | None:
    if repo.on_main:
        return ON_MAIN
    if "--amend" in _options(args) and repo.drops_published("HEAD^!"):
        return PUBLISHED
    return None


def _onto_main(repo: Repo, command: str, args: list[str]) -> str | None:
    stopping = {"--abort", "--quit"} & set(args)
    return ON_MAIN if repo.on_main and not stopping else None


def _rebase(repo: Repo, command: str, args: list[str]) -> str | None:
    if _CONTINUING & set(args):
        return None  # the rebase under way was checked when it started
    valued = frozenset({"--onto", "-s", "--strategy", "-X", "--strategy-option", "-x", "--exec"})
    named = _positionals(args, valued)
    upstream = named[0] if named else "@{upstream}"
    branch = named[1] if len(named) > 1 else None
    if branch in (repo.main, f"refs/heads/{repo.main}") or (branch is None and repo.on_main):
        return ON_MAIN
    tip = branch or "HEAD"
    revs = [tip] if "--root" in args else [tip, f"^{upstream}"]
    return PUBLISHED if repo.drops_published(*revs) else None


def _reset(repo: Repo, command: str, args: list[str]) -> str | None:
    opts = _options(args)
    paths = args[len(opts) + 1 :]
    named = [a for a in opts if not a.startswith("-")]
    if paths or len(named) > 1 or {"-p", "--patch"} & set(opts):
        return None  # `git reset [<tree-ish>] <paths>` changes the index, never the branch
    target = named[0] if named else "HEAD"
    mode = next((m for m in ("--hard", "--keep", "--merge") if m in opts), None)
    if mode and repo.is_remote(target):
        return DISCARD.replace("{mode}", mode).replace("{target}", target)
    return PUBLISHED if repo.drops_published("HEAD", f"^{target}") else None


def _rewrite(repo: Repo, command: str, args: list[str]) -> str | None:
    listing = command == "replace" and (not args or {"-l", "--list"} & set(args))
    return None if listing else REWRITE.replace("{command}", command)


def _update_ref(repo: Repo, command: str, args: list[str]) -> str | None:
    named = _positionals(args, frozenset({"-m"}))
    if "--stdin" in args:
        return REFS
    if not named:
        return None
    ref = repo.head if named[0] == "HEAD" and "--no-deref" not in args else named[0]
    if ref is None or ref.startswith("refs/remotes/") or ref == f"refs/heads/{repo.main}":
        return REFS
    moving = "-d" not in args and len(named) > 1
    return PUBLISHED if moving and repo.drops_published(ref, f"^{named[1]}") else None


def _branch(repo: Repo, command: str, args: list[str]) -> str | None:
    flags = _flags(args)
    if not flags & (_MOVES | _DELETES | _FORCES) - {"-c", "--copy"}:
        return None  # listing, creating, copying to a new name
    if flags & {"-r", "--remotes"}:
        return REFS
    valued = frozenset({"-u", "--set-upstream-to", "--contains", "--no-contains", "--points-at"})
    named = _positionals(args, valued)
    if flags & _MOVES and len(named) == 1 and repo.head:
        named = [repo.head.removeprefix("refs/heads/"), *named]
    elif not flags & (_MOVES | _DELETES):
        named = named[:1]  # `branch -f <name> <start>`: the start point is not touched
    hit = next((n for n in named if repo.published_branch(n)), None)
    return None if hit is None else BRANCH.replace("{name}", hit)


def _config(repo: Repo, command: str, args: list[str]) -> str | None:
    named = _positionals(args, frozenset({"-f", "--file", "--blob", "--type", "--default"}))
    flags = set(_options(args))
    if flags & _CONFIG_READS or named[:1] in (["get"], ["list"]):
        return None
    key = next((n for n in named if n.lower().startswith(_WATCHED_KEYS)), None)
    writing = bool(flags & _CONFIG_WRITES) or len(named) >= 2
    return CONFIG.replace("{key}", key) if writing and key else None


def _remote(repo: Repo, command: str, args: list[str]) -> str | None:
    named = _positionals(args)
    return REMOTE if named[:1] in (["rename"], ["remove"], ["rm"], ["set-url"]) else None


_RULES = {
    "push": _push,
    "send-pack": _push,
    "commit": _commit,
    "merge": _onto_main,
    "cherry-pick": _onto_main,
    "revert": _onto_main,
    "am": _onto_main,
    "pull": _onto_main,
    "rebase": _rebase,
    "reset": _reset,
    "filter-branch": _rewrite,
    "filter-repo": _rewrite,
    "replace": _rewrite,
    "update-ref": _update_ref,
    "branch": _branch,
    "config": _config,
    "remote": _remote,
}


def real_git() -> str | None:
    """`$JACKLINE_REAL_GIT`, else the first `git` on PATH that is not this wrapper."""
    explicit = os.environ.get("JACKLINE_REAL_GIT")
    if explicit:
        return explicit
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder or ".", "git")
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            if not _is_wrapper(candidate):
                return candidate
    return None


def _is_wrapper(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return MARKER.encode() in f.read(256)
    except OSError:
        return False


def install_wrapper(bin_dir: Path) -> Path:
    """Write `bin_dir/git` for the agent's PATH, ahead of the real git.

    Commands the wrapper never checks go straight to the real git found now; the rest go through
    `main` here, run by this Python.
    """
    import shlex

    real = real_git()
    if real is None:
        raise FileNotFoundError("no git on PATH to wrap")
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
        "from jackline.guard.gitwrap import main; raise SystemExit(main(sys.argv[1:]))"
    )
    script = _SCRIPT.format(
        marker=MARKER,
        real=shlex.quote(real),
        unchecked="|".join(sorted(_UNCHECKED)),
        python=shlex.quote(sys.executable),
        code=shlex.quote(code),
    )
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "git"
    path.write_text(script)
    path.chmod(0o755)
    return path


_SCRIPT = """\
#!/bin/sh
{marker}: see jackline.guard.gitwrap
real={real}
# Commands the wrapper never checks go straight to git, without starting Python.
case "$1" in
  {unchecked}) exec "${{JACKLINE_REAL_GIT:-$real}}" "$@" ;;
esac
# -S skips site (its .pth files are most of Python's start-up; only the standard library and
# jackline are needed); -P keeps the current directory, the agent's workspace, off sys.path.
exec {python} -S -P -c {code} "$@"
"""


def main(argv: list[str]) -> int:
    git = real_git()
    if git is None:
        print("jackline: no real git on PATH; set JACKLINE_REAL_GIT", file=sys.stderr)
        return 127
    refusal = _check(argv)
    if refusal:
        print(refusal, file=sys.stderr)
        return REFUSED
    os.execv(git, [git, *argv])


def _check(argv: list[str]) -> str | None:
    cwd = Path.cwd()
    inv = parse(argv, cwd)
    if _plain(inv.command):
        return None  # the common case: no policy to read, no git to ask
    try:
        policy = Policy.load(inv.cwd)
    except ValueError as e:
        return f"jackline: {e}"
    return None if policy is None else decide(argv, cwd, policy)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
