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


def scan_fixture_unmanaged(root: Path, app: str) -> list[Finding]:
    """The app as a legacy database's would be: its CreateModel says `managed: False`, so none
    of its migrations runs SQL, and none should block."""
    migrations = sorted((FIXTURES / app / "migrations").glob("*.py"))
    rel = {m: f"{app}/migrations/{m.name}" for m in migrations}
    unmanaged = {
        rel[m]: m.read_text().replace(
            "migrations.CreateModel(", 'migrations.CreateModel(options={"managed": False}, '
        )
        for m in migrations
    }
    repo = Repo(root).commit({p: t for p, t in list(unmanaged.items())[:-1]})
    repo.write(dict(list(unmanaged.items())[-1:]))
    return repo.scan()


def scan_fixture_first(root: Path, app: str) -> list[Finding]:
    """The app's first migration (its CreateModel) as a change of its own."""
    first = sorted((FIXTURES / app / "migrations").glob("*.py"))[0]
    return Repo(root).commit().write({f"{app}/migrations/{first.name}": first.read_text()}).scan()


@needs_fixtures
def test_fixture_summary_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every fixture migration: the latest as labelled, the first on its own (a CreateModel:
    safe), and the latest once more with the models unmanaged (no SQL: safe)."""
    rows, wrong = [], []
    for app, (incompatible, _) in sorted(LABELS.items()):
        cases = [("latest", incompatible, scan_fixture_app)]
        if app != "app_create_table_with_not_null_column":
            cases += [("0001 alone", False, scan_fixture_first)]
            cases += [("unmanaged", False, scan_fixture_unmanaged)]
        for case, bad, scanner in cases:
            hits = blocks(scanner(tmp_path / app / case.replace(" ", "_"), app))
            ok = bool(hits) == bad
            wrong += [] if ok else [f"{app} {case}"]
            verdict = ("found" if hits else "MISSED") if bad else ("FALSE ALARM" if hits else "ok")
            label = "incompatible" if bad else "compatible"
            shown = ", ".join(sorted(rules(hits))) or "-"
            rows.append(f"{app:44} {case:10} {label:12} {verdict:11} {shown}")
    with capsys.disabled():
        print("\n\ndjango-migration-linter fixtures (block-level findings)")
        print("\n".join(rows))
        print(f"{len(rows) - len(wrong)}/{len(rows)} as labelled; wrong: {wrong or 'none'}\n")
    assert wrong == []


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
        # SQL sent through op.execute or a connection is squawk's to read, as a .sql file is.
        ('    op.execute("ALTER TABLE users DROP COLUMN email")', "squawk.ban-drop-column"),
        ('    op.execute(sa.text("DROP TABLE users"))', "squawk.ban-drop-table"),
        (
            '    op.execute("ALTER TABLE IF EXISTS users RENAME TO people")',
            "squawk.renaming-table",
        ),
        (
            '    op.get_bind().execute(sa.text("ALTER TABLE users DROP COLUMN email"))',
            "squawk.ban-drop-column",
        ),
        (
            "    conn = op.get_bind()\n"
            '    conn.execute(text("ALTER TABLE users ALTER COLUMN age TYPE bigint"))',
            "squawk.changing-column-type",
        ),
        (
            '    connection = op.get_context().connection\n    sql = "DROP TABLE users"\n'
            "    connection.exec_driver_sql(sql)",
            "squawk.ban-drop-table",
        ),
        ('    op.execute("DELETE FROM users WHERE age IS NULL")', "migration.deletes-rows"),
        ('    op.execute("UPDATE users SET age = 0 WHERE age IS NULL")', "migration.rewrites-rows"),
        ("    op.execute(users.delete().where(users.c.age < 0))", "migration.deletes-rows"),
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


def test_alembic_sql_built_at_run_time_blocks(tmp_path: Path) -> None:
    (hit,) = alembic(Repo(tmp_path / "a"), '    op.execute(f"DROP TABLE {name}")')
    assert (hit.rule, hit.level, hit.line) == ("migration.raw-sql", "block", 10)
    assert "built at run time" in hit.message and "it drops a table" in hit.message
    (hit,) = alembic(Repo(tmp_path / "b"), "    op.get_bind().execute(statement)")
    assert (hit.rule, hit.level) == ("migration.raw-sql", "block")


def test_alembic_sqlalchemy_inserts_and_selects_pass(repo: Repo) -> None:
    body = (
        '    users = sa.table("users", sa.column("id"), sa.column("age"))\n'
        "    op.execute(users.insert().values(id=1, age=3))\n"
        "    op.get_bind().execute(sa.select(users.c.id))"
    )
    assert alembic(repo, body) == []


def test_alembic_sql_written_out_goes_through_squawk_at_its_line(repo: Repo) -> None:
    body = (
        '    op.execute("""\n'
        "        CREATE INDEX ix_users_age ON users (age);\n"
        "        ALTER TABLE users DROP COLUMN email;\n"
        '    """)'
    )
    found = alembic(repo, body)  # the string opens on line 10, its SQL on 11 and 12
    assert sorted((f.line, f.rule, f.level) for f in found) == [
        (11, "squawk.require-concurrent-index-creation", "warn"),
        (12, "squawk.ban-drop-column", "block"),
    ]


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
            "squawk.ban-drop-column",
        ),
        (  # MySQL's dialect: squawk cannot parse it, and the scan reads it itself
            '        migrations.RunSQL("ALTER TABLE `shop_order` DROP COLUMN `note`"),',
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


def test_django_run_sql_that_deletes_rows_blocks(repo: Repo) -> None:
    found = django(repo, '        migrations.RunSQL(["DELETE FROM shop_order WHERE total < 0"]),')
    assert [(f.rule, f.level, f.line) for f in found] == [("migration.deletes-rows", "block", 8)]


# --- models Django does not manage ---------------------------------------------------------------

# As `inspectdb` writes them for a legacy database: Django reads the table, never migrates it.
UNMANAGED = DJANGO.format(
    ops="        migrations.CreateModel(\n"
    '            name="LegacyOrder",\n'
    "            fields=[\n"
    '                ("id", models.AutoField(primary_key=True)),\n'
    '                ("total", models.IntegerField()),\n'
    "            ],\n"
    '            options={"db_table": "legacy_orders", "managed": False},\n'
    "        ),"
)
ADD_FIELDS = "\n".join(
    f'        migrations.AddField("legacyorder", "f{i}", models.IntegerField(default=0)),'
    for i in range(54)
)


def test_add_field_on_an_unmanaged_model_runs_no_sql_and_does_not_block(repo: Repo) -> None:
    repo.commit({"shop/migrations/0001_initial.py": UNMANAGED})
    ops = ADD_FIELDS + '\n        migrations.RemoveField("legacyorder", "total"),'
    repo.write({"shop/migrations/0002_more.py": DJANGO.format(ops=ops)})
    assert repo.scan() == []


def test_an_unmanaged_model_created_in_the_same_migration_does_not_block(repo: Repo) -> None:
    ops = UNMANAGED.split("operations = [\n")[1].rsplit("    ]", 1)[0]
    ops += '        migrations.AddField("legacyorder", "paid", models.BooleanField(default=False)),'
    repo.commit().write({"shop/migrations/0001_initial.py": DJANGO.format(ops=ops)})
    assert repo.scan() == []


def test_alter_model_options_managing_the_model_again_blocks(repo: Repo) -> None:
    repo.commit({"shop/migrations/0001_initial.py": UNMANAGED})
    ops = (
        '        migrations.AlterModelOptions(name="legacyorder", options={"db_table": "x"}),\n'
        '        migrations.AddField("legacyorder", "paid", models.BooleanField(default=False)),'
    )
    repo.write({"shop/migrations/0002_manage.py": DJANGO.format(ops=ops)})
    (hit,) = blocks(repo.scan())
    assert (hit.rule, hit.line) == ("migration.not-null-without-default", 9)


MODELS = """from django.db import models


class Report(models.Model):
    total = models.IntegerField()

    class Meta:
        managed = {managed}
        db_table = "reporting_view"
"""


def test_a_model_the_migrations_never_create_is_judged_by_its_meta_at_the_base(
    repo: Repo,
) -> None:
    # The app's CreateModel was squashed away; models.py at the base says Django does not
    # manage the table.
    repo.commit({"shop/models.py": MODELS.format(managed=False)})
    ops = '        migrations.AddField("report", "paid", models.BooleanField(default=False)),'
    repo.write({"shop/migrations/0002_more.py": DJANGO.format(ops=ops)})
    assert repo.scan() == []


def test_the_agent_cannot_unmanage_a_model_by_editing_its_meta_or_history(repo: Repo) -> None:
    repo.commit(
        {"shop/migrations/0001_initial.py": INITIAL, "shop/models.py": MODELS.format(managed=True)}
    )
    add = '        migrations.AddField("order", "paid", models.BooleanField(default=False)),'
    repo.write(
        {
            # models.py at the head, and the merged 0001 rewritten in the workspace, both say
            # unmanaged: the migrations that databases ran (the base's) say otherwise.
            "shop/models.py": MODELS.format(managed=False).replace("Report", "Order"),
            "shop/migrations/0001_initial.py": INITIAL.replace(
                "        ]),", '        ], options={"managed": False}),'
            ),
            "shop/migrations/0002_paid.py": DJANGO.format(ops=add),
        }
    )
    found = repo.scan()
    assert rules(found, "block") == {"migration.not-null-without-default"}
    assert ("migration.edited", "shop/migrations/0001_initial.py") in {
        (f.rule, f.file) for f in found
    }


def test_history_is_not_read_through_a_link_in_the_workspace(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text(UNMANAGED.replace("LegacyOrder", "Order"))
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    (repo.root / "shop/migrations/0001_x_link.py").symlink_to(outside)
    add = '        migrations.AddField("order", "paid", models.BooleanField(default=False)),'
    repo.write({"shop/migrations/0002_paid.py": DJANGO.format(ops=add)})
    assert rules(repo.scan(), "block") == {"migration.not-null-without-default"}


# --- RunPython -----------------------------------------------------------------------------------

RUN_PYTHON = """from django.db import migrations


def forwards(apps, schema_editor):
    Order = apps.get_model("shop", "Order")
{body}


def backwards(apps, schema_editor):
    apps.get_model("shop", "Order").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
"""


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ("    Order.objects.filter(total__lt=0).delete()", "migration.deletes-rows"),
        ("    for order in Order.objects.all():\n        order.delete()", "migration.deletes-rows"),
        ("    Order.objects.filter(total=None).update(total=0)", "migration.rewrites-rows"),
        (
            "    orders = list(Order.objects.all())\n"
            "    Order.objects.bulk_update(orders, ['total'])",
            "migration.rewrites-rows",
        ),
        (
            "    with schema_editor.connection.cursor() as cursor:\n"
            '        cursor.execute("DELETE FROM shop_order WHERE total < 0")',
            "migration.deletes-rows",
        ),
        ('    schema_editor.execute("UPDATE shop_order SET total = 0")', "migration.rewrites-rows"),
        (
            '    schema_editor.execute("ALTER TABLE shop_order DROP COLUMN note")',
            "squawk.ban-drop-column",
        ),
        ("    schema_editor.execute(build_sql())", "migration.raw-sql"),
        (
            "    cleanup(Order)\n\n\ndef cleanup(model):\n    model.objects.all().delete()",
            "migration.deletes-rows",
        ),
    ],
)
def test_run_python_that_deletes_or_rewrites_rows_blocks(repo: Repo, body: str, rule: str) -> None:
    text = RUN_PYTHON.format(body=body)
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    repo.write({"shop/migrations/0002_data.py": text})
    (hit,) = blocks(repo.scan())
    assert hit.rule == rule
    # At the call in forwards() or what it calls, never in backwards() (which deletes too).
    assert hit.line == _line_of(text, hit), (hit.line, text)


def _line_of(text: str, hit: Finding) -> int:
    wanted = {
        "migration.deletes-rows": ("delete", "DELETE"),
        "migration.rewrites-rows": ("update", "UPDATE"),
        "squawk.ban-drop-column": ("DROP COLUMN",),
        "migration.raw-sql": ("execute(",),
    }[hit.rule]
    lines = text.splitlines()
    skip = range(lines.index("def backwards(apps, schema_editor):") + 1, len(lines))
    return next(
        i for i, line in enumerate(lines, 1) if any(w in line for w in wanted) and i - 1 not in skip
    )


@pytest.mark.parametrize(
    "body",
    [
        "    Order.objects.bulk_create([Order(total=1)])",
        "    for order in Order.objects.all():\n        order.note = str(order.total)\n        order.save()",
        '    defaults = {}\n    defaults.update({"total": 0})',
        '    cache.delete("orders")',
    ],
)
def test_run_python_that_adds_rows_does_not_block(repo: Repo, body: str) -> None:
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    repo.write({"shop/migrations/0002_data.py": RUN_PYTHON.format(body=body)})
    assert blocks(repo.scan()) == []


def test_run_python_of_an_imported_function_warns(repo: Repo) -> None:
    ops = "        migrations.RunPython(shop.data.backfill),"
    found = django(repo, ops)
    assert [(f.rule, f.level, f.line) for f in found] == [("migration.run-python", "warn", 8)]


def test_run_sql_through_a_name_and_with_parameters_is_read(repo: Repo) -> None:
    text = DJANGO.format(
        ops='        migrations.RunSQL([("UPDATE shop_order SET note = %s", ["x"])]),\n'
        "        migrations.RunSQL(DROP),"
    ).replace(
        "class Migration", 'DROP = "ALTER TABLE shop_order DROP COLUMN note"\n\n\nclass Migration'
    )
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    repo.write({"shop/migrations/0002_sql.py": text})
    found = sorted((f.rule, f.line) for f in blocks(repo.scan()))
    assert found == [("migration.rewrites-rows", 11), ("squawk.ban-drop-column", 12)]


# --- lines ---------------------------------------------------------------------------------------


def test_an_edited_merged_migration_is_reported_at_the_edited_line(repo: Repo) -> None:
    repo.commit({"shop/migrations/0001_initial.py": INITIAL})
    repo.write(
        {"shop/migrations/0001_initial.py": INITIAL.replace("max_length=20", "max_length=30")}
    )
    (hit,) = repo.scan()
    assert (hit.rule, hit.line) == ("migration.edited", 10)
    assert INITIAL.splitlines()[9].strip().startswith('("note"')


def test_an_unparseable_migration_is_reported_at_the_error_line(repo: Repo) -> None:
    repo.commit().write({"shop/migrations/0002_broken.py": "x = 1\n\nclass Migration(:\n"})
    (hit,) = repo.scan()
    assert (hit.rule, hit.line) == ("migration.unreadable", 3)


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
