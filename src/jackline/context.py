"""Hydrate: build the brief the agent receives.

Rules are chosen by the paths in play: the ones the task names and the ones the agent touched in
earlier rounds. A rule file in `.jackline/rules/` applies when one of its `paths:` globs matches
(or always, when it has none); an `AGENTS.md` or `CLAUDE.md` applies when it sits on the directory
chain of a path in play (the root one always).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec
import yaml

from jackline.config import JacklineConfig
from jackline.models import CheckResult, Decision

NESTED = ("AGENTS.md", "CLAUDE.md")
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
        if token and (repo / token).exists():
            found.append(token)
    return sorted(set(found))


def load_rules(repo: Path) -> list[Rule]:
    rules = []
    for path in sorted((repo / ".jackline" / "rules").glob("*.md")):
        meta, body = _front_matter(path.read_text(encoding="utf-8"))
        globs = meta.get("paths") or []
        listed = (
            [globs] if isinstance(globs, str) else list(globs) if isinstance(globs, list) else []
        )
        rules.append(Rule(str(path.relative_to(repo)), body.strip(), tuple(str(p) for p in listed)))
    return rules


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
        if (repo / p).is_dir():
            dirs.add(PurePosixPath(p))
    for d in sorted(dirs, key=lambda d: (len(d.parts), str(d))):
        for name in NESTED:
            f = repo / d / name
            if f.is_file():
                chosen.append(
                    Rule(str(PurePosixPath(d) / name), f.read_text(encoding="utf-8").strip())
                )
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
    task: str, repo: Path, config: JacklineConfig, rules: list[Rule], round_no: int
) -> str:
    parts = [f"# Task\n\n{task}\n"]
    if rules:
        parts.append("# Rules in scope\n")
        for r in rules:
            scope = f" (applies to {', '.join(r.paths)})" if r.paths else ""
            parts.append(f"## {r.source}{scope}\n\n{r.text}\n")
    infra = repo / "INFRASTRUCTURE.md"
    if infra.is_file():
        parts.append("# Infrastructure\n\n" + infra.read_text(encoding="utf-8").strip() + "\n")
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
    parts.append(f"\nThis is round {round_no} of at most {config.blueprint.max_rounds}.\n")
    return "\n".join(parts)


def render_feedback(results: Iterable[CheckResult], review: Decision | None = None) -> str:
    """What failed, short and exact: check, file, line, test, message."""
    parts = ["# Feedback from the previous round\n"]
    if review is not None:
        parts.append(f"## The reviewer ({review.by}) asks for changes\n\n{review.message}\n")
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
        if not r.failures and r.output_tail:
            parts.append("```\n" + r.output_tail + "\n```")
        parts.append("")
    return "\n".join(parts)
