"""Rules are chosen by the paths in play; nested AGENTS.md files along the directory chain."""

from __future__ import annotations

import shutil
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


def test_rules_and_instructions_that_are_links_are_not_read(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "shadow").write_text("root:HOST-MARKER:19000::::::\n")
    (host / "rule.md").write_text("HOST-MARKER as a rule\n")
    root = repo(tmp_path / "ws")
    (root / ".jackline" / "rules" / "evil.md").symlink_to(host / "shadow")
    (root / "AGENTS.md").unlink()
    (root / "AGENTS.md").symlink_to(host / "shadow")
    (root / "web" / "CLAUDE.md").symlink_to(host / "shadow")
    (root / "INFRASTRUCTURE.md").unlink()
    (root / "INFRASTRUCTURE.md").symlink_to(host / "shadow")
    (root / "linked").symlink_to(host)  # a folder in play through a link
    cfg = config.parse({})
    rules = context.select_rules(root, ["web/app.js", "linked/x.py"])
    text = context.render_brief("Fix it", root, cfg, rules, 2)
    assert "HOST-MARKER" not in text
    assert "Web rules." in text and "Run the tests." in text
    shutil.rmtree(root / ".jackline" / "rules")
    (root / ".jackline" / "rules").symlink_to(host)  # the whole rules folder
    assert "HOST-MARKER" not in repr(context.select_rules(root, []))
    assert context.paths_named("Look at linked/rule.md and ../host/rule.md", root) == []


def test_a_long_rule_is_cut_and_says_so(tmp_path: Path) -> None:
    root = repo(tmp_path)
    (root / ".jackline" / "rules" / "long.md").write_text("Keep it short.\n" + "x" * (1 << 20))
    text = context.render_brief("Fix it", root, config.parse({}), context.load_rules(root), 1)
    assert "Keep it short." in text and len(text) < 2 * context.LIMIT
    assert f"cut at {context.LIMIT} bytes" in text
