"""The migrations scan: real git repositories, the real squawk, the django-migration-linter fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_FIXTURES

from jackline import config as jconfig
from jackline.models import Finding
from jackline.scans import Change
from jackline.scans.migrations import EXPAND_CONTRACT, scan

FIXTURES = SHARED_FIXTURES / "django-migration-linter"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} is not here")

# app -> (backward-incompatible?, the rule that should say so), from the fixtures' README.
LABELS: dict[str, tuple[bool, str | None]] = {
    "app_drop_column": (True, "migration.drop-column"),
    "app_drop_table": (True, "migration.drop-table"),
    "app_rename_column": (True, "migration.rename-column"),
    "app_rename_table": (True, "migration.rename-table"),
    "app_add_not_null_column": (True, "migration.not-null-without-default"),
    "app_alter_column": (True, "migration.alter-type"),
    "app_make_not_null_with_django_default": (True, "migration.make-not-null"),
    "app_alter_column_drop_not_null": (False, None),
    "app_correct": (False, None),
    "app_add_not_null_column_followed_by_default": (False, None),
    "app_create_table_with_not_null_column": (False, None),
}


class Repo:
    """A git repository with a base commit; `write` then `scan` to review a change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.base = ""

    def git(self, *args: str) -> str:
        argv = ["git", "-C", str(self.root), "-c", "user.name=T", "-c", "user.email=t@example.com"]
        argv += ["-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def write(self, files: dict[str, str]) -> Repo:
        for rel, text in files.items():
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_text(text)
        return self

    def commit(self, files: dict[str, str] | None = None) -> Repo:
        self.write({"README.md": "base\n", **(files or {})})
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "base")
        self.base = self.git("rev-parse", "HEAD")
        return self

    def change(self) -> Change:
        return Change.of_workspace(self.root, self.base)

    def scan(self, data: dict[str, Any] | None = None) -> list[Finding]:
        return scan(self.change(), jconfig.parse(data or {}))


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def blocks(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "block"]


def rules(findings: list[Finding], level: str | None = None) -> set[str]:
    return {f.rule for f in findings if level is None or f.level == level}


# --- the django-migration-linter fixtures -------------------------------------------------------


def scan_fixture_app(root: Path, app: str) -> list[Finding]:
    """The app's latest migration as the change; the ones before it at the base commit."""
    migrations = sorted((FIXTURES / app / "migrations").glob("*.py"))
    rel = {m: f"{app}/migrations/{m.name}" for m in migrations}
    repo = Repo(root).commit({rel[m]: m.read_text() for m in migrations[:-1]})
    repo.write({rel[migrations[-1]]: migrations[-1].read_text()})
    return repo.scan()


@needs_fixtures
@pytest.mark.parametrize("app", sorted(LABELS))
def test_fixture_app_is_labelled_like_django_migration_linter(tmp_path: Path, app: str) -> None:
    incompatible, rule = LABELS[app]
    found = blocks(scan_fixture_app(tmp_path / "repo", app))
    if incompatible:
        assert rule in rules(found), found
    else:
        assert found == []


@needs_fixtures
def test_fixture_summary_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows, found, missed, alarms = [], 0, 0, 0
    for app, (incompatible, _) in sorted(LABELS.items()):
        hits = blocks(scan_fixture_app(tmp_path / app, app))
        verdict = (
            ("found" if hits else "MISSED")
            if incompatible
            else ("FALSE ALARM" if hits else "ok (no block)")
        )
        found += incompatible and bool(hits)
        missed += incompatible and not hits
        alarms += not incompatible and bool(hits)
        label = "incompatible" if incompatible else "compatible"
        rows.append(f"{app:45} {label:13} {verdict:14} {', '.join(sorted(rules(hits))) or '-'}")
    bad = sum(i for i, _ in LABELS.values())
    with capsys.disabled():
        print("\n\ndjango-migration-linter fixtures (block-level findings)")
        print("\n".join(rows))
        print(
            f"backward-incompatible: found {found}/{bad}, missed {missed}; "
            f"compatible: false alarms {alarms}/{len(LABELS) - bad}\n"
        )
    assert (missed, alarms) == (0, 0)


# --- SQL through squawk --------------------------------------------------------------------------


def test_sql_drop_column_blocks_with_squawk_rule_and_line(repo: Repo) -> None:
    repo.commit().write(
        {
            "db/migrations/0002.sql": "SET lock_timeout = '1s';\nALTER TABLE users DROP COLUMN email;\n"
        }
    )
    (hit,) = blocks(repo.scan())
    assert (hit.rule, hit.file, hit.line) == ("squawk.ban-drop-column", "db/migrations/0002.sql", 2)
    assert "Dropping a column" in hit.message
    assert hit.why == EXPAND_CONTRACT["migration.drop-column"]
    assert "DROP COLUMN email" in hit.quote


def test_sql_nullable_column_does_not_block(repo: Repo) -> None:
    repo.commit().write({"db/migrations/0002.sql": "ALTER TABLE users ADD COLUMN nickname text;\n"})
    assert blocks(repo.scan()) == []


def test_sql_index_without_concurrently_warns(repo: Repo) -> None:
    repo.commit().write({"schema/0003.sql": "CREATE INDEX idx_age ON users (age);\n"})
    found = repo.scan()
    assert blocks(found) == []
    assert "squawk.require-concurrent-index-creation" in rules(found, "warn")
    hit = next(f for f in found if f.rule == "squawk.require-concurrent-index-creation")
    assert "concurrently" in hit.message and "squawkhq.com/docs" in hit.why


def test_sql_destructive_statements_each_block(repo: Repo) -> None:
    sql = (
        "ALTER TABLE a RENAME COLUMN x TO y;\n"
        "ALTER TABLE a RENAME TO b;\n"
        "ALTER TABLE a ALTER COLUMN n TYPE bigint;\n"
        "ALTER TABLE a ADD COLUMN r text NOT NULL;\n"
        "ALTER TABLE a ALTER COLUMN m SET NOT NULL;\n"
        "DROP TABLE old;\n"
    )
    repo.commit().write({"migrations/0002.sql": sql})
    assert {(f.rule, f.line) for f in blocks(repo.scan())} == {
        ("squawk.renaming-column", 1),
        ("squawk.renaming-table", 2),
        ("squawk.changing-column-type", 3),
        ("squawk.adding-required-field", 4),
        ("squawk.adding-not-nullable-field", 5),
        ("squawk.ban-drop-table", 6),
    }


def test_all_sql_files_go_through_one_squawk_run(repo: Repo) -> None:
    repo.commit().write(
        {
            "a/migrations/1.sql": "ALTER TABLE a DROP COLUMN x;\n",
            "b/migrations/2.sql": "DROP TABLE b;\n",
            "notes.txt": "not a migration\n",
        }
    )
    assert {(f.file, f.rule) for f in blocks(repo.scan())} == {
        ("a/migrations/1.sql", "squawk.ban-drop-column"),
        ("b/migrations/2.sql", "squawk.ban-drop-table"),
    }


def test_unparseable_sql_warns_once(repo: Repo) -> None:
    repo.commit().write({"migrations/0002.sql": "SELECT FROM WHERE ((;\n"})
    found = repo.scan()
    assert [f.rule for f in found] == ["squawk.syntax-error"] and found[0].level == "warn"


def test_squawk_missing_blocks(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.commit().write({"migrations/0002.sql": "ALTER TABLE a ADD COLUMN b text;\n"})
    change = repo.change()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python"))  # nor beside Python
    (hit,) = scan(change, jconfig.parse({}))
    assert (hit.rule, hit.level, hit.file) == (
        "scan.tool-failed.squawk",
        "block",
        "migrations/0002.sql",
    )
    assert "pip install squawk-cli" in hit.why


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo 'thread main panicked' >&2; exit 101", "exit 101"),
        ("echo 'not json'; exit 1", "not json"),
        ("echo '[]'; exit 1", "exit 1"),
        ("echo '[{\"unexpected\": 1}]'; exit 1", "unexpected"),
        ("echo '[]'; echo 'Failed to find files' >&2; exit 1", "Failed to find files"),
        ("exec sleep 5", "timed out after 1s"),
    ],
)
def test_squawk_failures_block_and_show_what_happened(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, expected: str
) -> None:
    repo.commit().write({"migrations/0002.sql": "ALTER TABLE a ADD COLUMN b text;\n"})
    change = repo.change()
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "squawk").write_text(f"#!/bin/sh\n{script}\n")
    (fake / "squawk").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    (hit,) = scan(change, jconfig.parse({"scan": {"timeout": 1}}))
    assert (hit.rule, hit.level) == ("scan.tool-failed.squawk", "block")
    assert expected in hit.message


def test_edited_sql_migration_reports_only_the_touched_statements(repo: Repo) -> None:
    old = "ALTER TABLE a DROP COLUMN x;\nALTER TABLE a ADD COLUMN y text;\n"
    repo.commit({"migrations/0001.sql": old})
    repo.write({"migrations/0001.sql": old + "ALTER TABLE a RENAME COLUMN y TO z;\n"})
    found = repo.scan()
    assert rules(blocks(found)) == {"squawk.renaming-column"}
    assert "migration.edited" in rules(found, "warn")


# squawk's own rule pages (squawkhq.com/docs, sbdchd/squawk docs/docs/*.md): the "instead of"
# statement and the "use" statement each rule page gives.
SQUAWK_DOC_EXAMPLES = [
    ('ALTER TABLE "recipe" ADD COLUMN "public" boolean NOT NULL;', True),
    ('ALTER TABLE "recipe" ADD COLUMN "public" boolean;', False),
    ('ALTER TABLE "recipe" ADD COLUMN "public" boolean NOT NULL DEFAULT false;', False),
    ('ALTER TABLE "recipe" ALTER COLUMN "view_count" SET NOT NULL;', True),
    (
        'ALTER TABLE "recipe" ADD CONSTRAINT view_count_not_null\n'
        '    CHECK ("view_count" IS NOT NULL) NOT VALID;',
        False,
    ),
    ('ALTER TABLE "account" ADD COLUMN "foo" integer DEFAULT 10;', False),
    ('CREATE INDEX "email_idx" ON "app_user" ("email");', False),
    ('CREATE INDEX CONCURRENTLY "email_idx" ON "app_user" ("email");', False),
]


@pytest.mark.parametrize(("sql", "destructive"), SQUAWK_DOC_EXAMPLES)
def test_squawk_doc_examples(repo: Repo, sql: str, destructive: bool) -> None:
    repo.commit().write({"migrations/0002.sql": sql + "\n"})
    assert bool(blocks(repo.scan())) == destructive


# --- Alembic -------------------------------------------------------------------------------------

ALEMBIC = '''"""add things"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
{body}


def downgrade():
    op.drop_table("everything")
'''


def alembic(repo: Repo, body: str) -> list[Finding]:
    repo.commit().write({"alembic/versions/0002_change.py": ALEMBIC.format(body=body)})
    return repo.scan()


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ('    op.drop_column("users", "email")', "migration.drop-column"),
        ('    op.drop_table("users")', "migration.drop-table"),
        ('    op.rename_table("users", "people")', "migration.rename-table"),
        (
            '    op.alter_column("users", "age", type_=sa.BigInteger(), existing_nullable=True)',
            "migration.alter-type",
        ),
        (
            '    op.alter_column("users", "name", new_column_name="full_name")',
            "migration.rename-column",
        ),
        ('    op.alter_column("users", "age", nullable=False)', "migration.make-not-null"),
        (
            '    op.add_column("users", sa.Column("age", sa.Integer(), nullable=False))',
            "migration.not-null-without-default",
        ),
        ('    op.execute("ALTER TABLE users DROP COLUMN email")', "migration.drop-column"),
        ('    op.execute(sa.text("DROP TABLE users"))', "migration.drop-table"),
        (
            '    op.execute("ALTER TABLE IF EXISTS users RENAME TO people")',
            "migration.rename-table",
        ),
        (
            '    with op.batch_alter_table("users") as batch_op:\n'
            '        batch_op.drop_column("email")',
            "migration.drop-column",
        ),
    ],
)
def test_alembic_destructive_operations_block(repo: Repo, body: str, rule: str) -> None:
    (hit,) = blocks(alembic(repo, body))
    assert (hit.rule, hit.file) == (rule, "alembic/versions/0002_change.py")
    assert hit.line is not None and hit.line >= 10
    assert hit.why == EXPAND_CONTRACT[rule]
    assert "users" in hit.message


@pytest.mark.parametrize(
    "body",
    [
        '    op.add_column("users", sa.Column("age", sa.Integer(), nullable=False, '
        'server_default="0"))',
        '    op.add_column("users", sa.Column("age", sa.Integer(), nullable=True))',
        '    op.add_column("users", sa.Column("age", sa.Integer()))',
        '    op.alter_column("users", "age", nullable=True)',
        '    op.alter_column("users", "age", nullable=False, existing_nullable=False, '
        'server_default="0")',
        '    op.create_index("ix_age", "users", ["age"])',
    ],
)
def test_alembic_safe_operations_do_not_block(repo: Repo, body: str) -> None:
    assert blocks(alembic(repo, body)) == []


def test_alembic_downgrade_is_not_read(repo: Repo) -> None:
    assert alembic(repo, "    pass") == []


def test_alembic_mentions_name_the_column_and_table(repo: Repo) -> None:
    (hit,) = alembic(repo, '    op.drop_column("users", "email")')
    assert "`email`" in hit.message and "`users`" in hit.message


def test_alembic_follows_functions_upgrade_calls(repo: Repo) -> None:
    # The squawk docs' Alembic example: schema changes in `schema_upgrades()`, called by upgrade().
    body = (
        "    schema_upgrades()\n\n\n"
        "def schema_upgrades():\n"
        '    op.alter_column("recipe", "view_count", existing_type=sa.BigInteger(), nullable=False)'
    )
    assert rules(blocks(alembic(repo, body))) == {"migration.make-not-null"}


def test_alembic_sql_built_at_run_time_is_info(repo: Repo) -> None:
    (hit,) = alembic(repo, '    op.execute(f"DROP TABLE {name}")')
    assert (hit.rule, hit.level) == ("migration.raw-sql", "info")


# --- Django beyond the fixtures ------------------------------------------------------------------

DJANGO = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
{ops}
    ]
"""
INITIAL = DJANGO.format(
    ops='        migrations.CreateModel(name="Order", fields=[\n'
    '            ("id", models.AutoField(primary_key=True)),\n'
    '            ("note", models.CharField(max_length=20, null=True)),\n'
    '            ("total", models.IntegerField()),\n'
    "        ]),"
)


def django(repo: Repo, ops: str, name: str = "0002_change.py") -> list[Finding]:
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    repo.write({f"shop/migrations/{name}": DJANGO.format(ops=ops)})
    return repo.scan()


@pytest.mark.parametrize(
    ("ops", "rule"),
    [
        (
            '        migrations.AddField("order", "paid", models.BooleanField(default=False)),',
            "migration.not-null-without-default",
        ),
        (
            '        migrations.AlterField("order", "note", models.CharField(max_length=5, '
            "null=True)),",
            "migration.alter-type",
        ),
        (
            '        migrations.AlterField("order", "total", models.IntegerField('
            'db_column="amount")),',
            "migration.rename-column",
        ),
        (
            '        migrations.AlterModelTable(name="order", table="orders"),',
            "migration.rename-table",
        ),
        (
            '        migrations.RunSQL("ALTER TABLE shop_order DROP COLUMN note", '
            "reverse_sql=migrations.RunSQL.noop),",
            "migration.drop-column",
        ),
        (
            '        migrations.RenameField("order", "note", "comment"),\n'
            '        migrations.AlterField("order", "comment", models.CharField(max_length=20)),',
            "migration.make-not-null",
        ),
    ],
)
def test_django_operations_block(repo: Repo, ops: str, rule: str) -> None:
    assert rule in rules(blocks(django(repo, ops)))


@pytest.mark.parametrize(
    "ops",
    [
        '        migrations.AddField("order", "paid", models.BooleanField(db_default=False)),',
        '        migrations.AddField("order", "tags", models.ManyToManyField("shop.Tag")),',
        '        migrations.AlterField("order", "note", models.CharField(max_length=50, null=True)),',
        '        migrations.AlterField("order", "total", models.IntegerField(null=True)),',
        "        migrations.SeparateDatabaseAndState(\n"
        '            state_operations=[migrations.RemoveField("order", "note")],\n'
        "            database_operations=[],\n"
        "        ),",
        "        migrations.RunPython(migrations.RunPython.noop),",
        '        migrations.RunSQL("ALTER INDEX shop_order_total RENAME TO order_total"),',
    ],
)
def test_django_safe_operations_do_not_block(repo: Repo, ops: str) -> None:
    assert blocks(django(repo, ops)) == []


def test_django_alter_field_without_history_warns(repo: Repo) -> None:
    found = django(repo, '        migrations.AlterField("invoice", "x", models.IntegerField()),')
    assert [(f.rule, f.level) for f in found] == [("migration.alter-field", "warn")]
    assert "could not tell what changed" in found[0].message


def test_django_run_sql_that_deletes_rows_warns(repo: Repo) -> None:
    found = django(repo, '        migrations.RunSQL(["DELETE FROM shop_order WHERE total < 0"]),')
    assert [(f.rule, f.level) for f in found] == [("migration.destructive-sql", "warn")]


def test_unparseable_python_migration_warns(repo: Repo) -> None:
    repo.commit().write({"shop/migrations/0002_broken.py": "class Migration(:\n"})
    (hit,) = repo.scan()
    assert (hit.rule, hit.level) == ("migration.unreadable", "warn")


def test_files_outside_the_migration_globs_are_not_read(repo: Repo) -> None:
    repo.commit().write(
        {
            "src/cleanup.py": 'def upgrade():\n    op.drop_table("users")\n',
            "db/0002.sql": "DROP TABLE users;\n",
        }
    )
    assert repo.scan({"scan": {"migrations": ["migrations/**"]}}) == []


def test_deleted_migrations_are_not_read(repo: Repo) -> None:
    repo.commit({"migrations/0002.sql": "DROP TABLE users;\n"})
    (repo.root / "migrations/0002.sql").unlink()
    assert repo.scan() == []


# --- expand/contract -----------------------------------------------------------------------------

EXPAND = '        migrations.AddField("order", "total_v2", models.BigIntegerField(null=True)),'
CONTRACT = '        migrations.RemoveField("order", "total"),'


def test_contract_of_a_merged_expand_step_warns(repo: Repo) -> None:
    repo.commit(
        {
            "shop/migrations/0001_initial.py": INITIAL,
            "shop/migrations/0002_add_total_v2.py": DJANGO.format(ops=EXPAND),
        }
    )
    repo.write(
        {
            "shop/migrations/0003_drop_total.py": "# jackline: contract-of 0002_add_total_v2\n"
            + DJANGO.format(ops=CONTRACT)
        }
    )
    (hit,) = repo.scan()
    assert (hit.rule, hit.level) == ("migration.drop-column", "warn")
    assert "expand step is already merged" in hit.message
    assert "release workflow" in hit.message


def test_contract_of_an_expand_step_not_at_base_blocks(repo: Repo) -> None:
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    repo.write(
        {
            "shop/migrations/0002_add_total_v2.py": DJANGO.format(ops=EXPAND),
            "shop/migrations/0003_drop_total.py": "# jackline: contract-of 0002_add_total_v2\n"
            + DJANGO.format(ops=CONTRACT),
        }
    )
    (hit,) = repo.scan()
    assert (hit.rule, hit.level) == ("migration.drop-column", "block")
    assert "not at the base commit" in hit.message


def test_sql_contract_of_by_path_warns(repo: Repo) -> None:
    repo.commit(
        {"db/migrations/0003_add_email_v2.sql": "ALTER TABLE u ADD COLUMN email_v2 text;\n"}
    )
    repo.write(
        {
            "db/migrations/0004_drop_email.sql": "-- jackline: contract-of "
            "db/migrations/0003_add_email_v2.sql\nALTER TABLE u DROP COLUMN email;\n"
        }
    )
    found = repo.scan()
    assert blocks(found) == []
    assert "squawk.ban-drop-column" in rules(found, "warn")


def test_every_destructive_rule_explains_expand_contract() -> None:
    for rule, why in EXPAND_CONTRACT.items():
        assert rule.startswith(("migration.", "squawk.")), rule
        assert 2 <= why.count(". ") + 1 <= 3, (rule, why)
        assert "release" in why or "later migration" in why, rule


# --- speed ---------------------------------------------------------------------------------------


def test_a_handful_of_migrations_scan_quickly(repo: Repo) -> None:
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    files = {f"db/migrations/{i:04}.sql": "ALTER TABLE a DROP COLUMN x;\n" for i in range(5)}
    ops = '        migrations.AlterField("order", "total", models.IntegerField(null=True)),'
    files |= {f"shop/migrations/{i:04}_x.py": DJANGO.format(ops=ops) for i in range(2, 7)}
    change = repo.write(files).change()
    started = time.monotonic()
    found = scan(change, jconfig.parse({}))
    assert time.monotonic() - started < 2
    assert len(blocks(found)) == 5


@pytest.mark.skipif(shutil.which("squawk") is None, reason="squawk-cli is not installed")
def test_squawk_is_the_version_the_rule_names_come_from() -> None:
    out = subprocess.run(["squawk", "--version"], capture_output=True, text=True).stdout
    assert out.split()[-1].startswith("2.")
