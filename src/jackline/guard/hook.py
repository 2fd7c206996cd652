"""Claude Code's PreToolUse hook: refuse, before they happen, writes and git commands a run forbids.

The protocol, from Claude Code's hooks reference: Claude Code runs the hook once per matching tool
call, with one JSON object on stdin (`session_id`, `transcript_path`, `cwd`, `hook_event_name`,
`tool_name`, `tool_input`, ...). Then:

- exit 0 and no output: no opinion, Claude Code's own permission flow applies (our "allow");
- exit 0 and `{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision":
  "deny", "permissionDecisionReason": ...}}` on stdout: the call is denied and the reason is shown
  to the model, which is why every reason says what to do instead;
- exit 2: the call is blocked and stderr is fed to the model. Any other exit code is a
  non-blocking error and the call goes ahead, so whatever goes wrong here (unreadable input, no
  policy, a bug) exits 2: the guard fails closed.

Checked: `Write`/`Edit`/`MultiEdit`/`NotebookEdit` (writes outside the workspace, into gates,
`[scope] forbidden`, `.git` or the session's own settings), `Bash` (git commands, decided by the
git wrapper's `decide`; redirections into those paths; credential stores) and `Read` (credential
stores). Like the wrapper, this guides a well-meaning agent; the walls are outside the loop.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from jackline.guard.gitwrap import decide
from jackline.guard.policy import Policy

BLOCK = 2  # Claude Code: blocks the tool call and shows stderr to the model
MATCHER = "Write|Edit|MultiEdit|NotebookEdit|Bash|Read"
_PATH_FIELD = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}

OUTSIDE = "{path} is outside the workspace ({ws}); write only inside it."
GATE = (
    "{rel} is gate configuration; describe the change you need in .jackline/notes.md "
    "and a person will make it."
)
INBOX = (
    "{rel} belongs to the harness: .jackline/run is its inbox for you, to read, not to write. "
    "Put your notes in .jackline/notes.md."
)
FORBIDDEN = (
    "{rel} is out of this run's scope ([scope] forbidden in jackline.toml) and changes there "
    "are reverted. If the task needs it, say so in .jackline/notes.md."
)
GIT_DATA = (
    "{rel} is git's own data; use git commands instead (committing on your agent/* branch is fine)."
)
SETTINGS = (
    "{rel} holds this session's guard settings, which do not change during a run. "
    "If you need a permission, say so in .jackline/notes.md."
)
CREDENTIALS = (
    "{word} looks like a credential store; a run has no credentials by design. "
    "If the task needs access to something, say so in .jackline/notes.md."
)

_SEPARATORS = set(";&|()`\n")
_REDIRECTS = {">", ">>", ">|", "&>", "&>>"}
_SHELLS = {"sh", "bash", "dash", "zsh"}
_CREDENTIAL_DIRS = re.compile(r"(^|[/=~])(\.ssh|\.aws|\.config/gcloud)(/|$)")
_CREDENTIAL_FILES = {".netrc", "_netrc", ".git-credentials"}


class Malformed(ValueError):
    """The hook's input is not a PreToolUse call it can read."""


def main(stdin: TextIO, stdout: TextIO) -> int:
    try:
        reason = _decide(_read(stdin))
    except Exception as e:  # fail closed: anything but exit 0 or 2 would let the call through
        print(
            f"jackline guard could not check this tool call, so it is blocked: {e}", file=sys.stderr
        )
        return BLOCK
    if reason:
        decision = {"hookEventName": "PreToolUse", "permissionDecision": "deny"}
        json.dump({"hookSpecificOutput": {**decision, "permissionDecisionReason": reason}}, stdout)
    return 0


def _read(stdin: TextIO) -> Any:
    try:
        return json.load(stdin)
    except ValueError as e:
        raise Malformed(f"the hook input is not JSON ({e})") from None


def _decide(event: Any) -> str | None:
    if not isinstance(event, dict) or "hook_event_name" not in event:
        raise Malformed("the input is not a Claude Code hook event")
    if event["hook_event_name"] != "PreToolUse":
        return None
    tool, data, cwd = event.get("tool_name"), event.get("tool_input"), event.get("cwd")
    if not (isinstance(tool, str) and isinstance(data, dict) and isinstance(cwd, str)):
        raise Malformed("a PreToolUse event needs tool_name, tool_input and cwd")
    here = Path(cwd)
    if tool in _PATH_FIELD:
        return write_refusal(_field(data, _PATH_FIELD[tool]), here, _policy(here))
    if tool == "Bash":
        return bash_refusal(_field(data, "command"), here, _policy(here))
    if tool == "Read":
        return _credential(_field(data, "file_path"))
    return None


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise Malformed(f"tool_input.{name} is missing")
    return value


def _policy(cwd: Path) -> Policy:
    starts = [cwd, Path(os.environ.get("CLAUDE_PROJECT_DIR") or cwd), Path.cwd()]
    for start in starts:
        policy = Policy.load(start)
        if policy is not None:
            return policy
    raise Malformed(f"no jackline policy found at or above {cwd} (set JACKLINE_POLICY)")


def write_refusal(path: str, cwd: Path, policy: Policy, outside_ok: bool = False) -> str | None:
    """Why the agent may not write `path`; None when it may."""
    ws = os.path.realpath(policy.workspace)
    target = os.path.realpath(cwd / os.path.expanduser(path))
    if os.path.commonpath([ws, target]) != ws:
        return None if outside_ok else OUTSIDE.format(path=path, ws=ws)
    rel = Path(os.path.relpath(target, ws)).as_posix()
    if rel == ".":
        return None
    if rel == ".git" or rel.startswith(".git/"):
        return GIT_DATA.format(rel=rel)
    if rel.startswith(".claude/settings"):
        return SETTINGS.format(rel=rel)
    if policy.gate(rel):
        return (INBOX if rel.startswith(".jackline/run/") else GATE).format(rel=rel)
    return FORBIDDEN.format(rel=rel) if policy.forbids(rel) else None


def bash_refusal(command: str, cwd: Path, policy: Policy) -> str | None:
    """Why the shell `command` may not run: a refused git command, a forbidden redirection, credentials."""
    for words in _simple_commands(command):
        if words[0] in ("cd", "pushd") and len(words) > 1:
            cwd = cwd / os.path.expanduser(words[1])
        reason = _command_refusal(words, cwd, policy)
        if reason:
            return reason
    return None


def _command_refusal(words: list[str], cwd: Path, policy: Policy) -> str | None:
    for word in words:
        if reason := _credential(word):
            return reason
    for op, target in zip(words, words[1:], strict=False):
        if op in _REDIRECTS and (reason := write_refusal(target, cwd, policy, outside_ok=True)):
            return reason
    if os.path.basename(words[0]) in _SHELLS and "-c" in words[:-1]:
        return bash_refusal(words[words.index("-c") + 1], cwd, policy)
    if words[0] == "eval":
        return bash_refusal(" ".join(words[1:]), cwd, policy)
    git = next((i for i, w in enumerate(words) if os.path.basename(w) == "git"), None)
    if git is None:
        return None
    argv = words[git + 1 :]
    redirect = next((i for i, w in enumerate(argv) if w and set(w) <= set("<>&")), len(argv))
    return decide(argv[:redirect], cwd, policy)


def _simple_commands(command: str) -> Iterator[list[str]]:
    """The words of each simple command, split at `;`, `&&`, `|`, newlines, `$(`, backticks."""
    words: list[str] = []
    for token in _tokens(command):
        if token and set(token) <= _SEPARATORS:
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def _tokens(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars="();<>|&`\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes (a heredoc with an apostrophe): split crudely instead
        return re.findall(r"[;&|()`\n]+|[^\s;&|()`]+", command)


def _credential(word: str) -> str | None:
    home = os.path.expanduser("~")
    path = os.path.expanduser(word.replace("${HOME}", home).replace("$HOME", home))
    if _CREDENTIAL_DIRS.search(path) or os.path.basename(path.rstrip("/")) in _CREDENTIAL_FILES:
        return CREDENTIALS.format(word=word)
    return None


def claude_settings(command: list[str]) -> dict[str, Any]:
    """The `.claude/settings*.json` fragment that runs `command` as the PreToolUse hook."""
    hook = {"type": "command", "command": shlex.join(command), "timeout": 30}
    return {"hooks": {"PreToolUse": [{"matcher": MATCHER, "hooks": [hook]}]}}


def install_claude_hook(ws: Path, command: list[str]) -> Path:
    """Register the hook in `<ws>/.claude/settings.local.json`, keeping what is there already.
    The workspace is the agent's: the file is read and written without following a link, and
    what is there is kept only if it is a JSON object."""
    from jackline import safeio

    rel = ".claude/settings.local.json"
    try:
        settings = json.loads(safeio.read_text(ws, rel, 256_000) or "{}")
    except ValueError:
        settings = {}
    if not isinstance(settings, dict) or not isinstance(settings.get("hooks", {}), dict):
        settings = {}
    entry = claude_settings(command)["hooks"]["PreToolUse"][0]
    registered = settings.setdefault("hooks", {}).setdefault("PreToolUse", [])
    if not isinstance(registered, list):
        registered = settings["hooks"]["PreToolUse"] = []
    registered[:] = [e for e in registered if e != entry] + [entry]  # installed twice, runs once
    safeio.write_text(ws, rel, json.dumps(settings, indent=2) + "\n")
    _exclude(ws, "/.claude/settings.local.json")
    return ws / rel


def _exclude(ws: Path, pattern: str) -> None:
    """Keep the harness's settings file out of the agent's commit, like the rest of its inbox
    (in the harness's own git directory of the workspace, where there is one)."""
    from jackline.git import gitdir

    found = gitdir(ws)
    if found is None:
        return
    exclude = found / "info" / "exclude"
    present = exclude.read_text().splitlines() if exclude.exists() else []
    if pattern not in present:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as f:
            f.write(f"{pattern}\n")


if __name__ == "__main__":
    raise SystemExit(main(sys.stdin, sys.stdout))
