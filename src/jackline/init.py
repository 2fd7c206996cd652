"""`jackline init`: write a jackline.toml for a repository, with the checks it already has."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from jackline import config as cfg
from jackline.errors import Refused

PYTHON_TOOLS = {"test": "pytest", "lint": "ruff", "types": "mypy"}
"""The Python checks `init` writes and the package each calls (`python -m <package>`)."""


def detect(repo: Path) -> dict[str, Any]:
    """What the repository already uses: set-up commands and checks, with parsers. Python checks
    run the workspace's own venv (`.venv/bin/python -m TOOL`), and set-up installs each tool
    they call there, so the config works as written, whatever the project's extras hold."""
    setup: list[str] = []
    checks: dict[str, dict[str, str]] = {}
    pyproject = _toml(repo / "pyproject.toml")
    tool = pyproject.get("tool", {})
    text = (repo / "pyproject.toml").read_text() if (repo / "pyproject.toml").exists() else ""
    py = ".venv/bin/python"
    if (
        "pytest" in tool
        or "pytest" in text
        or (repo / "pytest.ini").exists()
        or (repo / "tests").is_dir()
    ):
        checks["test"] = {"command": f"{py} -m pytest -q --junitxml={{report}}", "parser": "junit"}
    if "ruff" in tool or (repo / "ruff.toml").exists() or (repo / ".ruff.toml").exists():
        checks["lint"] = {
            "command": f"{py} -m ruff check --no-fix --output-format=json .",
            "parser": "ruff-json",
        }
    if "mypy" in tool or (repo / "mypy.ini").exists():
        checks["types"] = {"command": f"{py} -m mypy .", "parser": "mypy"}
    project = _python_install(repo, pyproject)
    if checks or project:
        tools = [PYTHON_TOOLS[name] for name in checks]
        setup = ["python3 -m venv .venv"]
        setup += [f".venv/bin/pip install {' '.join(tools)}"] if tools else []
        setup += [project] if project else []
    package = repo / "package.json"
    if package.exists():
        scripts = json.loads(package.read_text()).get("scripts", {})
        setup.append("npm ci" if (repo / "package-lock.json").exists() else "npm install")
        if "test" in scripts:
            checks["npm-test"] = {"command": "npm test", "parser": "plain"}
        if "lint" in scripts:
            checks["npm-lint"] = {"command": "npm run lint", "parser": "plain"}
    return {"setup": setup, "checks": checks}


def _python_install(repo: Path, pyproject: dict[str, Any]) -> str | None:
    """The set-up line that installs the project itself (with its test extra), if it is one."""
    if pyproject.get("project") or pyproject.get("build-system"):
        extras = pyproject.get("project", {}).get("optional-dependencies", {})
        extra = next((e for e in ("test", "tests", "dev") if e in extras), None)
        return f".venv/bin/pip install -e '.[{extra}]'" if extra else ".venv/bin/pip install -e ."
    if (repo / "requirements.txt").exists():
        return ".venv/bin/pip install -r requirements.txt"
    return None


def render(found: dict[str, Any], main: str) -> str:
    lines = [
        "# Jackline: how agents work on this repository. `jackline validate` checks this file.",
        "",
        "[project]",
        f'main = "{main}"            # runs start here; approved work merges here',
        "",
        "[workspace]",
        "# Run once in each new workspace, before the agent (dependencies, builds).",
        "setup = " + json.dumps(found["setup"]),
        "",
    ]
    if not found["checks"]:
        lines += [
            "# No checks were found. Add one per command, for example:",
            "# [checks.test]",
            '# command = "pytest -q --junitxml={report}"',
            '# parser = "junit"',
            "",
        ]
    for name, check in found["checks"].items():
        lines += [
            f"[checks.{name}]",
            f"command = {json.dumps(check['command'])}",
            f'parser = "{check["parser"]}"',
            "",
        ]
    lines += [
        "[agents.default]",
        "# A real coding agent, driven without prompts in the sandbox (presets: claude-code,",
        "# codex, aider, mini-swe-agent), or `command = [...]`: any program, where {prompt} is",
        "# a text (the brief, then each round's feedback) and {brief} a path. `jackline validate`",
        "# checks it is installed.",
        'preset = "claude-code"',
        "# Its API key: a reference, read only when the agent runs, redacted from all it stores.",
        'secrets = { ANTHROPIC_API_KEY = "env:ANTHROPIC_API_KEY" }',
        "",
        "[sandbox]",
        "# The agent has no network but these hosts (its model's API), through an allowlisting",
        "# proxy; set-up always has the network.",
        'allow_network = ["api.anthropic.com"]',
        "",
        "[scope]",
        "# The agent may not write here; writes are reverted after each round.",
        'forbidden = [".github/**"]',
        "# Changes here are allowed but need an owner's approval (block-level finding).",
        "protected = []",
        "# Flag changes larger than this (warn; block at twice the limit).",
        "max_changed_lines = 400",
        "max_changed_files = 20",
        "# What must change together, for example:",
        "# [[scope.together]]",
        '# when = "src/api/**"',
        '# also = ["openapi.yaml"]',
        "",
        "[blueprint]",
        '# name = "standard"  # or local, autofix, or your own .jackline/blueprints/NAME.toml',
        "max_rounds = 2",
        "",
        "[review]",
        "allow_self_approval = false",
        "# Only these people may approve a run with a block-level finding.",
        "owners = []",
        "",
        "[scan]",
        "# Offline OSV advisories (PyPI/, npm/) for checking new dependencies; else pip-audit.",
        '# osv_db = "/srv/osv"  # `jackline osv update --dest /srv/osv` fills and refreshes it',
        "# Block (not warn) when new dependencies could not be checked for known vulnerabilities.",
        "# require_vuln_db = true",
        "# Removed login/permission guards (block), verify=False, shell=True, bandit (warn).",
        "weakenings = true",
        "",
    ]
    return "\n".join(lines)


def write(repo: Path, main: str, force: bool = False) -> tuple[Path, dict[str, Any]]:
    path = repo / cfg.FILENAME
    if path.exists() and not force:
        raise Refused(f"{path} exists; use --force to overwrite it")
    found = detect(repo)
    text = render(found, main)
    cfg.parse(tomllib.loads(text), str(path))  # what init writes must validate
    path.write_text(text)
    return path, found


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
