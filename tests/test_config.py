"""jackline.toml: validated at the door, one clear line per problem, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project

from jackline import config
from jackline.errors import ConfigError


def problems(text: str, tmp_path: Path) -> list[str]:
    (tmp_path / "jackline.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        config.load(tmp_path)
    return e.value.problems


def test_each_problem_gets_one_line_naming_the_key(tmp_path: Path) -> None:
    found = problems(
        '[projct]\nmain = "x"\n[checks.test]\nparser = "junit"\n[blueprint]\nmax_rounds = "two"\n',
        tmp_path,
    )
    assert len(found) == 3
    assert any(p.startswith("projct: unknown key") and "did you mean 'project'" in p for p in found)
    assert "checks.test.command: field required" in found
    assert any(p.startswith("blueprint.max_rounds:") and "'two'" in p for p in found)


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    (found,) = problems("[project\nmain = 1\n", tmp_path)
    assert found.startswith("invalid TOML") and "line 1" in found


def test_wrong_types_and_bad_references_are_explained(tmp_path: Path) -> None:
    found = problems(
        '[checks.lint]\ncommand = 5\nparser = "eslint"\n'
        '[agents.default]\ncommand = ["x"]\nsecrets = {K = "vault:k"}\n',
        tmp_path,
    )
    assert any(p.startswith("checks.lint.command: expected a shell string") for p in found)
    assert any(p.startswith("checks.lint.parser:") and "junit" in p for p in found)
    assert any("vault:k" in p and "env:NAME" in p for p in found)


def test_every_config_field_is_documented() -> None:
    from pydantic._internal._docs_extraction import extract_docstrings_from_cls

    def walk(model: type) -> None:
        docs: dict[str, str] = {}
        for cls in reversed(model.__mro__):  # a field may be declared by a base
            if cls is not object and hasattr(cls, "model_fields"):
                docs |= extract_docstrings_from_cls(cls, use_inspect=True)
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            assert docs.get(name), f"{model.__name__}.{name} has no docstring"
            ann = field.annotation
            for arg in (*getattr(ann, "__args__", ()), ann):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    walk(arg)

    walk(config.JacklineConfig)


def test_validate_command_exits_2_and_run_starts_nothing(project: Project) -> None:
    project.create(["true"])
    (project.repo / "jackline.toml").write_text(
        '[checks.test]\nparser = "junit"\n[agents.default]\ncommand = []\n'
    )
    checked = project.jl("validate", ok=False)
    assert checked.returncode == 2  # a config error, as a usage error
    assert "jackline.toml: checks.test.command: field required" in checked.stderr
    assert "agents.default.command" in checked.stderr
    started = project.jl("run", "Fix add", ok=False)
    assert started.returncode == 2 and "checks.test.command" in started.stderr
    assert "Traceback" not in started.stderr
    assert project.jl_json("runs") == []
    assert not (project.home / "workspaces").exists()


def test_valid_config_is_summarised(project: Project) -> None:
    project.create(["true"])
    done = project.jl("validate")
    assert "valid" in done.stdout and "test" in done.stdout


def test_unknown_agent_is_named_with_the_known_ones(project: Project) -> None:
    project.create(["true"])
    refused = project.jl("run", "x", "--agent", "codex", ok=False)
    assert refused.returncode == 1 and "'codex'" in refused.stderr and "default" in refused.stderr


def test_init_detects_the_checks_and_writes_a_valid_file(project: Project) -> None:
    project.repo.mkdir(parents=True)
    (project.repo / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\ntest = ["pytest"]\n'
        "[tool.ruff]\nline-length = 100\n[tool.mypy]\nstrict = true\n"
    )
    (project.repo / "tests").mkdir()
    import subprocess

    subprocess.run(["git", "init", "-q", "-b", "main", str(project.repo)], check=True)
    done = project.jl("init")
    assert "check test" in done.stdout and "check lint" in done.stdout
    written = config.load(project.repo)
    assert written.checks["test"].parser == "junit"
    assert written.checks["lint"].parser == "ruff-json"
    assert written.checks["types"].parser == "mypy"
    assert written.workspace.setup[-1] == ".venv/bin/pip install -e '.[test]'"
    assert project.jl("init", ok=False).returncode == 1  # it does not overwrite


def test_a_recorded_config_keeps_the_order_checks_and_environments_were_written_in() -> None:
    from jackline.config import from_record, parse, recorded

    written = parse(
        {
            "checks": {"zlint": {"command": "z"}, "atest": {"command": "a"}},
            "release": {"environments": {"staging": {"deploy": "d"}, "prod": {"deploy": "d"}}},
        }
    )
    # The audit log sorts an event's keys; the recorded config is text, so its order holds.
    import json

    back = from_record(
        json.loads(json.dumps({"config": recorded(written)}, sort_keys=True))["config"]
    )
    assert list(back.checks) == ["zlint", "atest"]
    assert list(back.release.environments) == ["staging", "prod"]
