"""Hydrate: build the brief the agent receives.

Rules are chosen by the paths in play: the ones the task names and the ones the agent touched in
earlier rounds. A rule file in `.jackline/rules/` applies when one of its `paths:` globs matches
(or always, when it has none); an `AGENTS.md` or `CLAUDE.md` applies when it sits on the directory
chain of a path in play (the root one always).

From round 2 the workspace is the agent's: every file here is read without following a link
(a rule that is a link to `/etc/shadow` is no rule) and within a bound (`LIMIT` a file, at most
`MAX_RULES` of them), a cut said in the text.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec
import yaml

from jackline import safeio
from jackline.config import JacklineConfig
from jackline.handoff import fenced
from jackline.models import AgentRound, CheckResult, Comment, Decision

NESTED = ("AGENTS.md", "CLAUDE.md")
RULES_DIR = ".jackline/rules"
LIMIT = 64 << 10
"""Bytes read at most from one rule file, `AGENTS.md`, `CLAUDE.md` or `INFRASTRUCTURE.md`."""
MAX_RULES = 100
"""Rule files read at most from `.jackline/rules/` (and, apart, nested instruction files)."""
_PATHLIKE = re.compile(r"[\w.@-]*[\w@-](?:/[\w.@-]+)+/?|[\w@-][\w.@-]*\.[A-Za-z]{1,8}\b")


@dataclass(frozen=True)
class Rule:
    source: str
    text: str
    paths: tuple[str, ...] = ()


def paths_named(task: str, repo: Path) -> list[str]:
    """Paths the task mentions that exist in the repository (`shop/pricing.py`, `migrations/`)."""
    found = []
    for token in _PATHLIKE.findall(task):
        token = token.rstrip("/.")
        if token and _kind(repo, token) is not None:
            found.append(token)
    return sorted(set(found))


def _kind(repo: Path, rel: str) -> str | None:
    """What stands at `repo/rel`, a "file" or a "dir", reached through no link (and none
    itself); else None."""
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or ".." in parts:
        return None
    where = repo
    for part in parts:
        where = where / part
        try:
            mode = os.lstat(where).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else None


def load_rules(repo: Path) -> list[Rule]:
    names = [n for n in safeio.files(repo, RULES_DIR) if n.endswith(".md")]
    rules = []
    for name in names[:MAX_RULES]:
        text = safeio.read_text(repo, f"{RULES_DIR}/{name}", LIMIT)
        if text is None:
            continue
        meta, body = _front_matter(text)
        rules.append(Rule(f"{RULES_DIR}/{name}", body.strip(), _globs(meta.get("paths"))))
    if len(names) > MAX_RULES:
        left = ", ".join(names[MAX_RULES:][:20])
        rules.append(
            Rule(
                RULES_DIR,
                f"[jackline: {len(names) - MAX_RULES} more rule files "
                f"not read, past {MAX_RULES}: {left}]",
            )
        )
    return rules


def _globs(value: object) -> tuple[str, ...]:
    """A rule's `paths:`, a string or a list of strings. Anything else is ignored: `str()` of a
    YAML alias bomb would never end."""
    listed = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(p for p in listed if isinstance(p, str))


def select_rules(repo: Path, in_play: Iterable[str]) -> list[Rule]:
    in_play = sorted(set(in_play))
    chosen = [
        r
        for r in load_rules(repo)
        if not r.paths
        or any(pathspec.GitIgnoreSpec.from_lines(r.paths).match_file(p) for p in in_play)
    ]
    dirs = {PurePosixPath(".")}
    for p in in_play:
        dirs.update(PurePosixPath(p).parents)
        if _kind(repo, p) == "dir":
            dirs.add(PurePosixPath(p))
    nested = 0
    for d in sorted(dirs, key=lambda d: (len(d.parts), str(d))):
        for name in NESTED:
            rel = str(d / name)
            text = safeio.read_text(repo, rel, LIMIT) if nested < MAX_RULES else None
            if text is not None:
                chosen.append(Rule(rel, text.strip()))
                nested += 1
    return chosen


def _front_matter(text: str) -> tuple[dict[str, object], str]:
    if not text.startswith("---"):
        return {}, text
    _, _, rest = text.partition("\n")
    head, sep, body = rest.partition("\n---")
    if not sep:
        return {}, text
    meta = yaml.safe_load(head) or {}
    return (meta if isinstance(meta, dict) else {}), body.partition("\n")[2]


def render_brief(
    task: str,
    repo: Path,
    config: JacklineConfig,
    rules: list[Rule],
    round_no: int,
    rounds: int | None = None,
) -> str:
    parts = [f"# Task\n\n{task}\n"]
    if rules:
        parts.append("# Rules in scope\n")
        for r in rules:
            scope = f" (applies to {', '.join(r.paths)})" if r.paths else ""
            parts.append(f"## {r.source}{scope}\n\n{r.text}\n")
    infra = safeio.read_text(repo, "INFRASTRUCTURE.md", LIMIT)
    if infra is not None:
        parts.append("# Infrastructure\n\n" + infra.strip() + "\n")
    if config.checks:
        parts.append("# Checks\n\nAfter you finish, the harness runs these; all must pass:\n")
        for name, check in config.checks.items():
            cmd = check.command if isinstance(check.command, str) else " ".join(check.command)
            parts.append(f"- `{name}`: `{cmd.replace('{report}', 'report.xml')}`")
        parts.append("")
    parts.append("# Boundaries\n")
    parts.append("- Do not commit, push or change branches: the harness commits your work.")
    for glob in config.scope.forbidden:
        parts.append(f"- Do not touch `{glob}`: writes there are reverted.")
    parts.append(
        "- Leave `.jackline/notes.md` with your assumptions and anything you are unsure of: "
        "it goes to the reviewer."
    )
    most = rounds or config.blueprint.max_rounds
    parts.append(f"\nThis is round {round_no} of at most {most}.\n")
    return "\n".join(parts)


def render_feedback(
    results: Iterable[CheckResult],
    review: Decision | None = None,
    agent: AgentRound | None = None,
    comments: Sequence[Comment] = (),
) -> str:
    """What failed, short and exact: the agent's own round, check, file, line, test, message;
    a reviewer's words and their comments on lines, each at its `file:line`."""
    parts = ["# Feedback from the previous round\n"]
    if review is not None:
        said = review.message.strip() or "See the comments on lines below."
        parts.append(f"## The reviewer ({review.by}) asks for changes\n\n{said}\n")
    if comments:
        parts += _comments_feedback(comments)
    if agent is not None and agent.problem():
        parts += _agent_feedback(agent)
    for r in results:
        if r.passed:
            continue
        parts.append(f"## Check `{r.name}` failed (exit {r.exit_code})\n\nCommand: `{r.command}`\n")
        for f in r.failures[:30]:
            where = f" {f.where()}" if f.where() else ""
            test = f" `{f.test}`" if f.test else ""
            rule = f" [{f.rule}]" if f.rule else ""
            parts.append(f"-{where}{test}{rule}: {f.message}")
        if len(r.failures) > 30:
            parts.append(f"- ... and {len(r.failures) - 30} more")
        if (not r.explained or not r.failures) and r.output_tail:
            # Nothing parsed says why: the output's last lines do.
            parts += ["", "The last lines it printed:", "", *fenced(r.output_tail, indent="")]
        parts.append("")
    return "\n".join(parts)


def _comments_feedback(comments: Sequence[Comment]) -> list[str]:
    """`calc.py:3: use a guard here (bob)`, one a comment; a line numbered as it was before
    the change (a removed one) says so."""
    lines = ["## Comments on lines of your change\n"]
    for c in comments:
        text = "\n  ".join(c.text.splitlines())
        lines.append(f"- {c.where}: {text} ({c.author})")
    if any(c.side == "old" for c in comments):
        lines.append("\n(old): the line's number before your change (a line you removed).")
    return [*lines, ""]


def render_main_moved(main: str, tip: str, conflicts: list[str]) -> str:
    """Feedback for a round moved onto the newest main: that it moved, and where the agent's
    change and main's changed the same lines (each file holds git's conflict markers)."""
    parts = [
        f"## {main} moved since this run started: this round starts on its newest commit\n",
        f"Your change is applied on top of `{main}` at {tip[:12]}.",
    ]
    if conflicts:
        parts += [
            f"\nThese files were changed both on `{main}` and by you, and hold conflict markers "
            "(`<<<<<<<`, `=======`, `>>>>>>>`). Resolve each conflict so that both changes "
            "hold, and remove the markers:\n",
            *(f"- `{path}`" for path in conflicts),
        ]
    return "\n".join(parts) + "\n"


def _agent_feedback(agent: AgentRound) -> list[str]:
    """The agent's own failure, as the next round reads it: what happened, then what it printed
    last or what counts as a change."""
    parts = [f"## Your last round: {agent.problem()}\n"]
    if not agent.changed:
        parts.append(
            "Nothing in the work tree changed. Only the files you leave count (the harness "
            "commits the work tree; commits of your own and `.jackline/` do not).\n"
        )
    elif not agent.left_change:
        parts.append("The files are back as the run found them: there is nothing to review.\n")
    if agent.tail and (agent.exit_code != 0 or agent.timed_out):
        parts += ["The last lines it printed:", "", *fenced(agent.tail, indent=""), ""]
    return parts
