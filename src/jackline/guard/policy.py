"""The guard's policy for one run, left in the workspace for the in-loop guards to read.

The harness writes it into its inbox, shown read-only at `.jackline/run/policy.json` in the
sandbox, when it prepares the workspace; the Claude Code hook and the git wrapper, which run as
separate processes inside the agent's loop, read it back. This module stays small and
stdlib-only (pathspec is imported when a path is matched) because the git wrapper imports it on
every `git` the agent runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# Where the policy lives inside a workspace; the same folder as `jackline.workspaces.AGENT_DIR`,
# spelled out because the wrapper must not import the workspaces package.
POLICY_FILE = Path(".jackline/run/policy.json")

# Paths that configure the gates themselves (checks, CI, the harness's inbox). The agent may not
# change them: a change here would let it pass its own review.
GATES = [
    "jackline.toml",
    ".jackline/rules/**",
    ".jackline/blueprints/**",
    ".github/workflows/**",
    ".ci/**",
    ".pre-commit-config.yaml",
    ".gitlab-ci.yml",
    ".circleci/**",
    "Jenkinsfile",
    ".jackline/run/**",
]


@dataclass(frozen=True)
class Policy:
    main: str
    """The protected main branch; the agent works on its own `agent/*` branch."""
    forbidden: list[str]
    """`[scope] forbidden` globs (gitignore style), relative to the workspace."""
    gates: list[str]
    """Gate configuration globs (see `GATES`), relative to the workspace."""
    workspace: str
    """The workspace's absolute path: the only tree the agent may write."""

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def write(self, ws: Path) -> Path:
        path = ws / POLICY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps())
        return path

    @classmethod
    def load(cls, start: Path | None = None) -> Policy | None:
        """`$JACKLINE_POLICY` if set, else the nearest policy file at or above `start` (or cwd)."""
        path = _find(start or Path.cwd())
        return None if path is None else cls.read(path)

    @classmethod
    def read(cls, path: Path) -> Policy:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: unreadable jackline policy ({e})") from None
        if not isinstance(data, dict) or any(
            not isinstance(data.get(name), kind) for name, kind in _FIELDS.items()
        ):
            raise ValueError(f"{path}: not a jackline policy (needs {', '.join(_FIELDS)})")
        return cls(**{name: data[name] for name in _FIELDS})

    def gate(self, rel: str) -> bool:
        return _matches(self.gates, rel)

    def forbids(self, rel: str) -> bool:
        return _matches(self.forbidden, rel)


_FIELDS = {"main": str, "forbidden": list, "gates": list, "workspace": str}


def _find(start: Path) -> Path | None:
    explicit = os.environ.get("JACKLINE_POLICY")
    if explicit:
        return Path(explicit)
    start = start.absolute()
    for folder in [start, *start.parents]:
        if (folder / POLICY_FILE).is_file():
            return folder / POLICY_FILE
    return None


def _matches(patterns: list[str], rel: str) -> bool:
    import pathspec  # only when a path is matched: the git wrapper never needs it

    return bool(patterns) and pathspec.GitIgnoreSpec.from_lines(patterns).match_file(rel)
