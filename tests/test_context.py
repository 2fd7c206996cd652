"""Rules are chosen by the paths in play; nested AGENTS.md files along the directory chain."""

from __future__ import annotations

from pathlib import Path

from jackline import config, context


def repo(tmp_path: Path) -> Path:
    files = {
        ".jackline/rules/money.md": '---\npaths: ["shop/pricing.py"]\n---\nMoney is integer cents.\n',
        ".jackline/rules/general.md": "Run the tests.\n",
        ".jackline/rules/web.md": '---\npaths: ["web/**"]\n---\nNo inline scripts.\n',
        "AGENTS.md": "Root rules.\n",
        "shop/AGENTS.md": "Shop rules.\n",
        "web/AGENTS.md": "Web rules.\n",
        "shop/pricing.py": "",
        "INFRASTRUCTURE.md": "Runs on port 8101.\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_rules_follow_the_paths_the_task_names(tmp_path: Path) -> None:
    root = repo(tmp_path)
    named = context.paths_named("Fix the discount in shop/pricing.py please.", root)
    assert named == ["shop/pricing.py"]
    sources = [r.source for r in context.select_rules(root, named)]
    assert sources == [
        ".jackline/rules/general.md",
        ".jackline/rules/money.md",
        "AGENTS.md",
        "shop/AGENTS.md",
    ]


def test_paths_touched_in_earlier_rounds_bring_their_rules(tmp_path: Path) -> None:
    root = repo(tmp_path)
    sources = [r.source for r in context.select_rules(root, ["web/app.js"])]
    assert ".jackline/rules/web.md" in sources and "web/AGENTS.md" in sources
    assert ".jackline/rules/money.md" not in sources


def test_brief_holds_task_rules_infrastructure_checks_and_boundaries(tmp_path: Path) -> None:
    root = repo(tmp_path)
    cfg = config.parse(
        {
            "checks": {"test": {"command": "pytest --junitxml={report}"}},
            "scope": {"forbidden": ["ops/**"]},
        }
    )
    text = context.render_brief("Fix it", root, cfg, context.select_rules(root, []), 1)
    for part in (
        "# Task",
        "Fix it",
        "Run the tests.",
        "Root rules.",
        "Runs on port 8101.",
        "`test`",
        "ops/**",
        "notes.md",
    ):
        assert part in text
    assert "Money is integer cents." not in text
