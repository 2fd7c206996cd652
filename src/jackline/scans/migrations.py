"""Migrations: schema changes that break the code still running while they deploy.

A deploy runs the new migration while the old release still serves traffic, and a rollback of the
code does not bring dropped data back. So a migration that drops, renames, retypes or tightens what
the old code reads and writes is a block-level finding, with the expand/contract steps to ask for
instead (`EXPAND_CONTRACT`). The scan reads the migration files the change adds or edits (the
`[scan] migrations` globs):

- SQL files go through squawk, one process for all of them (it assumes PostgreSQL). Its destructive
  rules block; the rest (locks, timeouts, robustness) warn.
- Python files are parsed with `ast`, never imported: Django `Migration.operations` (the database
  side of `SeparateDatabaseAndState` only) and Alembic `upgrade()` (never `downgrade()`). An
  `AlterField` is judged against the field's earlier definition in the same app's migrations.

In a migration that is already at the base commit, only the operations on changed lines count, and
the edit itself is a warning: a database that ran the migration will not run it again.

A file that says `jackline: contract-of <migration>` in a comment is the contract step of an
expand/contract sequence: when that migration is at the base commit, its findings are warn-level.

It does not connect to a database, know the live release's schema (the release workflow checks the
contract step against that), follow Django migrations across apps, or read SQL built at run time.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pathspec

from jackline.config import JacklineConfig
from jackline.errors import render_failure
from jackline.models import Finding
from jackline.scans import Change, FileChange, find_tool, tool_failed

Level = Literal["block", "warn", "info"]
Fields = dict[tuple[str, str], ast.Call]
"""A Django app's fields as its migrations left them: (model, field) to the field's constructor."""

_ADVICE = {
    "migration.drop-column": (
        "The release still running during the deploy reads and writes this column, and a rollback "
        "does not bring the data back. Ask for two steps: stop the code reading and writing the "
        "column and release that; then drop the column in a later migration."
    ),
    "migration.drop-table": (
        "The release still running during the deploy uses this table, and a rollback does not "
        "bring the data back. Ask for two steps: stop the code using the table (model) and release "
        "that; then drop it in a later migration, with a backup at hand."
    ),
    "migration.rename-column": (
        "The running release still uses the old name and fails the moment the rename runs. Ask for "
        "expand/contract: add the new column, write both, backfill it, switch reads to it and "
        "release; drop the old column in a later migration."
    ),
    "migration.rename-table": (
        "The running release still uses the old table name and fails the moment the rename runs. "
        "Ask for expand/contract: create the new table, write both, backfill, switch reads and "
        "release; drop the old table in a later migration."
    ),
    "migration.not-null-without-default": (
        "The running release does not set the new column, so its inserts fail once the column is "
        "NOT NULL with no database default (a Django `default=` lives in Python, not the database). "
        "Ask for the column nullable or with a database default (`db_default=`, `server_default=`, "
        "`DEFAULT`), a backfill, and the NOT NULL constraint in a later migration."
    ),
    "migration.make-not-null": (
        "The running release may still write NULL here, and existing NULL rows make the migration "
        "fail. Ask for the steps: make every writer set a value and release, backfill the NULLs, "
        "then add the NOT NULL constraint in a later migration."
    ),
    "migration.alter-type": (
        "The running release reads and writes the old type, and changing it in place can rewrite "
        "and lock the table. Ask for a new column of the new type instead: write both, backfill, "
        "switch reads to it and release; drop the old column in a later migration."
    ),
    "migration.destructive-sql": (
        "SQL that drops or deletes cannot be undone by rolling back the code. Ask for it split: "
        "stop the code using what it removes and release; then drop or delete in a later "
        "migration, with a backup at hand."
    ),
}

_SQUAWK_DESTRUCTIVE = {
    "ban-drop-column": "migration.drop-column",
    "ban-drop-table": "migration.drop-table",
    "ban-drop-database": "migration.destructive-sql",
    "ban-drop-schema": "migration.destructive-sql",
    "ban-truncate-cascade": "migration.destructive-sql",
    "renaming-column": "migration.rename-column",
    "renaming-table": "migration.rename-table",
    "changing-column-type": "migration.alter-type",
    "adding-required-field": "migration.not-null-without-default",
    "adding-not-nullable-field": "migration.make-not-null",
}
"""squawk 2.70's rules for statements that break the running release or lose data."""

EXPAND_CONTRACT: dict[str, str] = {
    **_ADVICE,
    **{f"squawk.{name}": _ADVICE[rule] for name, rule in _SQUAWK_DESTRUCTIVE.items()},
}
"""What to ask for instead of each destructive operation, by finding rule id."""

_INSTALL = "pip install squawk-cli"
_CONTRACT = re.compile(r"^\s*(?:#|--)\s*jackline:\s*contract-of\s+(\S+)", re.MULTILINE)
_RAW_SQL = {
    "migration.drop-column": r"\bdrop\s+column\b",
    "migration.drop-table": r"\bdrop\s+table\b",
    "migration.rename-column": r"\brename\s+(?:column\s+)?(?!to\b|constraint\b)\S+\s+to\b",
    "migration.rename-table": r"\balter\s+table\s+(?:if\s+exists\s+)?\S+\s+rename\s+to\b|\brename\s+table\b",
    "migration.alter-type": r"\balter\s+column\s+\S+\s+(?:set\s+data\s+)?type\b",
    "migration.make-not-null": r"\bset\s+not\s+null\b",
    "migration.destructive-sql": (
        r"\b(?:truncate|delete\s+from|drop\s+(?:schema|database|view|type|function|sequence))\b"
    ),
}
"""Raw SQL in Python migrations (RunSQL, op.execute): the statements each rule stands for.
Only `destructive-sql` is warn-level: a data migration may delete rows on purpose."""
_NO_VALUE_NEEDED = {"ManyToManyField", "GeneratedField", "NullBooleanField"}
"""Django fields whose AddField needs no value for existing rows."""
_ALEMBIC_PARAMS = {
    "drop_column": ("table_name", "column_name"),
    "drop_table": ("table_name",),
    "rename_table": ("old_table_name", "new_table_name"),
    "alter_column": ("table_name", "column_name"),
    "add_column": ("table_name", "column"),
    "execute": ("sqltext",),
}
"""Alembic `op` methods the scan reads, with their positional parameters."""


@dataclass(frozen=True)
class _Hit:
    """What one file does, before the contract-of marker sets its level."""

    rule: str
    level: Level
    message: str
    line: int | None = None
    span: tuple[int, int] | None = None
    """The lines the operation covers; None for a finding about the whole file."""
    why: str = ""


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    spec = pathspec.GitIgnoreSpec.from_lines(config.scan.migrations)
    files = [
        f
        for f in change.files
        if f.status != "deleted" and not f.binary and spec.match_file(f.path)
    ]
    sql = [f.path for f in files if f.path.endswith(".sql")]
    hits: dict[str, list[_Hit]] = {f.path: [] for f in files}
    findings: list[Finding] = []
    if sql:
        found = _squawk(change, sql, config.scan.timeout)
        if isinstance(found, Finding):
            findings.append(found)
        else:
            for path in sql:
                hits[path] += found.get(path, [])
    for f in files:
        if f.path.endswith(".py"):
            hits[f.path] += _python(change, f.path)
    for f in files:
        findings += _findings(change, f, hits[f.path])
    return findings


# --- turning hits into findings ------------------------------------------------------------------


def _findings(change: Change, f: FileChange, hits: list[_Hit]) -> list[Finding]:
    """The file's findings: only what the change touched in an existing migration, with the
    contract-of marker applied."""
    text = change.new_text(f.path) or ""
    out = []
    if f.status != "added":
        added = {ln.number for ln in f.added}
        hits = [h for h in hits if h.span is None or added & set(range(h.span[0], h.span[1] + 1))]
        if f.added or f.removed or f.status == "renamed":
            out.append(_edited(f))
    name = _contract_of(text)
    merged = name is not None and _at_base(change, f.path, name)
    lines = text.splitlines()
    for h in hits:
        level, message = h.level, h.message
        if name is not None and h.level == "block" and h.rule in EXPAND_CONTRACT:
            level, message = _contract_level(message, name, merged)
        quote = "\n".join(lines[h.span[0] - 1 : h.span[1]][:12]) if h.span else ""
        why = h.why or EXPAND_CONTRACT.get(h.rule, "")
        out.append(Finding(h.rule, level, message, f.path, h.line, why, quote))
    return out


def _contract_level(message: str, name: str, merged: bool) -> tuple[Level, str]:
    if merged:
        return "warn", (
            f"{message}; this is the contract step of `{name}`, whose expand step is already "
            "merged (the check against the live release arrives with the release workflow)"
        )
    return "block", (
        f"{message}; the file says it is the contract step of `{name}`, which is not at the base "
        "commit: merge and release the expand step first"
    )


def _edited(f: FileChange) -> Finding:
    return Finding(
        "migration.edited",
        "warn",
        f"the change edits `{f.path}`, a migration that is already merged",
        f.path,
        why="A database that already ran this migration will not run the edit, and a renamed "
        "migration may run twice. Ask for a new migration instead of editing a merged one.",
    )


def _contract_of(text: str) -> str | None:
    match = _CONTRACT.search(text)
    return match.group(1) if match else None


def _at_base(change: Change, path: str, name: str) -> bool:
    """Whether the migration `name` (a path, or a file name or stem in `path`'s folder) exists at
    the base commit."""
    folder = posixpath.dirname(path)
    candidates = {name, posixpath.join(folder, name)}
    candidates |= {posixpath.join(folder, name + ext) for ext in (".py", ".sql")}
    here = change.root / folder
    if here.is_dir():
        candidates |= {posixpath.join(folder, p.name) for p in here.iterdir() if p.stem == name}
    return any(c != path and change.old_text(c) is not None for c in sorted(candidates))


# --- SQL: squawk ---------------------------------------------------------------------------------


def _squawk(change: Change, paths: list[str], timeout: int) -> dict[str, list[_Hit]] | Finding:
    """squawk's violations by file, or the finding that says it could not run.

    squawk reads copies the harness made (`0.sql`, `1.sql`, ...), never the workspace: it would
    follow a link the agent left, and a name with a newline or a quote reaches it as a plain one.
    """
    exe = find_tool("squawk")
    if exe is None:
        return tool_failed(
            "squawk", "not found on PATH or beside Python", file=paths[0], install=_INSTALL
        )
    data = {p: change.new_bytes(p) for p in paths}
    linked = {p: [_unreadable("it is a link or is missing")] for p in paths if data[p] is None}
    names = {f"{i}.sql": p for i, p in enumerate(p for p in paths if p not in linked)}
    if not names:
        return linked
    with tempfile.TemporaryDirectory(prefix="jackline-squawk-") as tmp:
        for name, path in names.items():
            (Path(tmp) / name).write_bytes(data[path] or b"")
        found = _run_squawk(exe, list(names), Path(tmp), timeout)
    if isinstance(found, Finding):
        return replace(found, file=paths[0])
    return {**linked, **{names[n]: hits for n, hits in found.items()}}


def _run_squawk(
    exe: str, names: list[str], cwd: Path, timeout: int
) -> dict[str, list[_Hit]] | Finding:
    argv = [exe, "--reporter", "json", "--", *names]
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        detail = f"timed out after {timeout}s: {' '.join(argv)}"
        return tool_failed("squawk", detail, install=_INSTALL)
    except OSError as e:
        return tool_failed("squawk", str(e), install=_INSTALL)
    report = _squawk_report(proc)
    if report is not None:
        try:
            return _squawk_hits(report, names)
        except (KeyError, TypeError, ValueError):
            pass  # JSON of another shape: a squawk this scan does not know
    detail = render_failure(argv, proc.returncode, proc.stdout, proc.stderr, tail=20)
    return tool_failed("squawk", detail, install=_INSTALL)


def _squawk_report(proc: subprocess.CompletedProcess[str]) -> list[dict[str, object]] | None:
    """squawk's list of violations, or None when it did not run through.

    squawk exits 1 when it finds violations, so only its output tells that apart from a failure;
    a path it could not read is a complaint on stderr beside the other files' report.
    """
    if proc.returncode not in (0, 1) or proc.stderr.strip():
        return None
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return None
    if not isinstance(report, list) or bool(report) != (proc.returncode == 1):
        return None
    return report


def _squawk_hits(report: list[dict[str, object]], paths: list[str]) -> dict[str, list[_Hit]]:
    out: dict[str, list[_Hit]] = {}
    for v in report:
        path, rule = str(v["file"]), str(v["rule_name"])
        if path not in paths:
            raise ValueError(f"squawk reported a file it was not given: {path}")
        hits = out.setdefault(path, [])
        if rule == "syntax-error" and any(h.rule == "squawk.syntax-error" for h in hits):
            continue  # one parse error explains the rest
        line = int(str(v["line"])) + 1  # squawk counts lines from 0
        end = int(str(v.get("line_end", v["line"]))) + 1
        hits.append(
            _Hit(
                f"squawk.{rule}",
                "block" if rule in _SQUAWK_DESTRUCTIVE else "warn",
                " ".join(str(v[k]) for k in ("message", "help") if v.get(k)),
                line,
                (line, end),
                "" if rule in _SQUAWK_DESTRUCTIVE else _squawk_why(rule),
            )
        )
    return out


def _squawk_why(rule: str) -> str:
    if rule == "syntax-error":
        return (
            "squawk could not parse this SQL, so it did not check the statements after the error; "
            "read them yourself."
        )
    return (
        "squawk flags statements that lock tables or break clients while a migration runs; "
        f"see https://squawkhq.com/docs/{rule}."
    )


# --- Python: Django and Alembic ------------------------------------------------------------------


def _python(change: Change, path: str) -> list[_Hit]:
    text = change.new_text(path)
    if text is None:
        return [_unreadable("the file is not UTF-8 text")]
    try:
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError) as e:
        return [_unreadable(f"line {getattr(e, 'lineno', '?')}: {e}")]
    operations = _django_operations(tree)
    if operations is not None:
        return _django(change, path, operations)
    return [hit for fn in _upgrade_functions(tree) for hit in _alembic(fn)]


def _unreadable(problem: str) -> _Hit:
    return _Hit(
        "migration.unreadable",
        "warn",
        f"the migration could not be parsed ({problem})",
        why="The scan could not read this migration, so nothing vouches for what it does to the "
        "schema; read it yourself.",
    )


def _upgrade_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """Alembic's `upgrade()` (or `upgrade_<engine>()` in its multi-database template) and the
    module's functions it calls, such as the `schema_upgrades()` of a common recipe."""
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    todo = [name for name in defs if name == "upgrade" or name.startswith("upgrade_")]
    seen: list[ast.FunctionDef] = []
    while todo:
        fn = defs[todo.pop()]
        if fn not in seen:
            seen.append(fn)
            called = (c.func for c in ast.walk(fn) if isinstance(c, ast.Call))
            todo += [f.id for f in called if isinstance(f, ast.Name) and f.id in defs]
    return seen


# --- Django --------------------------------------------------------------------------------------


def _django_operations(tree: ast.Module) -> list[ast.Call] | None:
    """The database operations of `class Migration(migrations.Migration)`, None if there is none."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_name(b) == "Migration" for b in node.bases):
            for stmt in node.body:
                value = _assigned(stmt, "operations")
                if isinstance(value, ast.List | ast.Tuple):
                    return _database_side(value.elts)
            return []
    return None


def _assigned(stmt: ast.stmt, name: str) -> ast.expr | None:
    if isinstance(stmt, ast.Assign) and any(_name(t) == name for t in stmt.targets):
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and _name(stmt.target) == name:
        return stmt.value
    return None


def _database_side(elts: list[ast.expr]) -> list[ast.Call]:
    """The operations that reach the database: `SeparateDatabaseAndState` contributes its
    `database_operations`, not its `state_operations`."""
    out: list[ast.Call] = []
    for op in elts:
        if not isinstance(op, ast.Call):
            continue
        if _name(op.func) == "SeparateDatabaseAndState":
            inner = _arg(op, 1, "database_operations")
            out += _database_side(inner.elts) if isinstance(inner, ast.List | ast.Tuple) else []
        else:
            out.append(op)
    return out


def _django(change: Change, path: str, ops: list[ast.Call]) -> list[_Hit]:
    needs_history = any(_name(op.func) == "AlterField" for op in ops)
    fields = _history(change.root, path) if needs_history else {}
    hits = []
    for i, op in enumerate(ops):
        hits += _django_op(op, ops[i + 1 :], fields)
        _replay(fields, op)
    return hits


def _django_op(op: ast.Call, following: list[ast.Call], fields: Fields) -> list[_Hit]:
    kind = _name(op.func)
    if kind == "AddField":
        return _add_field(op, following)
    if kind == "AlterField":
        return _alter_field(op, fields)
    if kind == "RunSQL":
        return _sql_hits("RunSQL", _arg(op, 0, "sql"), op)
    found = _drop_or_rename(kind, op)
    return [found] if found else []


def _drop_or_rename(kind: str, op: ast.Call) -> _Hit | None:
    if kind == "RemoveField":
        model, name = _str(op, 0, "model_name"), _str(op, 1, "name")
        msg = f"RemoveField drops column `{name}` of model `{model}`"
        return _block("migration.drop-column", msg, op)
    if kind == "RenameField":
        model, old, new = (
            _str(op, 0, "model_name"),
            _str(op, 1, "old_name"),
            _str(op, 2, "new_name"),
        )
        msg = f"RenameField renames column `{old}` of model `{model}` to `{new}`"
        return _block("migration.rename-column", msg, op)
    if kind == "DeleteModel":
        msg = f"DeleteModel drops the table of model `{_str(op, 0, 'name')}`"
        return _block("migration.drop-table", msg, op)
    if kind == "RenameModel":
        old, new = _str(op, 0, "old_name"), _str(op, 1, "new_name")
        msg = f"RenameModel renames model `{old}` to `{new}`, and its table with it"
        return _block("migration.rename-table", msg, op)
    if kind == "AlterModelTable":
        model, table = _str(op, 0, "name"), _str(op, 1, "table")
        msg = f"AlterModelTable moves model `{model}` to table `{table}`"
        return _block("migration.rename-table", msg, op)
    return None


def _add_field(op: ast.Call, following: list[ast.Call]) -> list[_Hit]:
    model, name, field = _str(op, 0, "model_name"), _str(op, 1, "name"), _arg(op, 2, "field")
    if not isinstance(field, ast.Call) or _name(field.func) in _NO_VALUE_NEEDED:
        return []
    if _nullable(field) or _kw(field, "db_default") is not None:
        return []
    # django-add-default-value's AddDefaultValue sets the database default right after.
    if any(
        _name(o.func) == "AddDefaultValue"
        and _str(o, 0, "model_name").lower() == model.lower()
        and _str(o, 1, "name") == name
        for o in following
    ):
        return []
    msg = f"AddField adds NOT NULL column `{name}` to model `{model}` with no database default"
    if _kw(field, "default") is not None:
        msg += " (its `default=` is set by Django, not the database)"
    return [_block("migration.not-null-without-default", msg, op)]


def _alter_field(op: ast.Call, fields: Fields) -> list[_Hit]:
    model, name, new = _str(op, 0, "model_name"), _str(op, 1, "name"), _arg(op, 2, "field")
    old = fields.get((model.lower(), name))
    where = f"field `{name}` of model `{model}`"
    if old is None or not isinstance(new, ast.Call):
        return [
            _Hit(
                "migration.alter-field",
                "warn",
                f"AlterField changes {where}; could not tell what changed (no earlier "
                "definition in this app's migrations)",
                op.lineno,
                _span(op),
                why="A field change can retype, rename or tighten the column under the running "
                "release; compare it with the field's current definition.",
            )
        ]
    before, after = _name(old.func), _name(new.func)
    if before != after or _shrinks(old, new):
        msg = f"AlterField changes the type of {where}: {_unparse(old)} to {_unparse(new)}"
        return [_block("migration.alter-type", msg, op)]
    if _column(old, name) != _column(new, name):
        msg = f"AlterField moves {where} to column `{_column(new, name)}`"
        return [_block("migration.rename-column", msg, op)]
    if _nullable(old) and not _nullable(new):
        return [_block("migration.make-not-null", f"AlterField makes {where} NOT NULL", op)]
    return []


def _shrinks(old: ast.Call, new: ast.Call) -> bool:
    before, after = _literal(_kw(old, "max_length")), _literal(_kw(new, "max_length"))
    return isinstance(before, int) and isinstance(after, int) and after < before


def _column(field: ast.Call, name: str) -> str:
    column = _literal(_kw(field, "db_column"))
    return column if isinstance(column, str) else name


def _nullable(field: ast.Call) -> bool:
    return _literal(_kw(field, "null")) is True


def _history(root: Path, path: str) -> Fields:
    """The app's fields as the migrations before `path` in its folder (by name) left them."""
    fields: Fields = {}
    here = root / path
    for earlier in sorted(here.parent.glob("*.py")):
        if earlier.name >= here.name:
            continue
        try:
            ops = _django_operations(ast.parse(earlier.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        for op in ops or []:
            _replay(fields, op)
    return fields


def _replay(fields: Fields, op: ast.Call) -> None:
    """Apply one operation to the app's fields."""
    kind = _name(op.func)
    if kind == "CreateModel":
        model, spec = _str(op, 0, "name").lower(), _arg(op, 1, "fields")
        for item in spec.elts if isinstance(spec, ast.List | ast.Tuple) else []:
            if isinstance(item, ast.Tuple) and len(item.elts) == 2:
                name, field = _literal(item.elts[0]), item.elts[1]
                if isinstance(name, str) and isinstance(field, ast.Call):
                    fields[(model, name)] = field
    elif kind == "DeleteModel":
        _move_model(fields, _str(op, 0, "name").lower(), None)
    elif kind == "RenameModel":
        _move_model(fields, _str(op, 0, "old_name").lower(), _str(op, 1, "new_name").lower())
    else:
        _replay_field(fields, kind, op)


def _move_model(fields: Fields, old: str, new: str | None) -> None:
    for model, name in [key for key in fields if key[0] == old]:
        field = fields.pop((model, name))
        if new is not None:
            fields[(new, name)] = field


def _replay_field(fields: Fields, kind: str, op: ast.Call) -> None:
    model, name = _str(op, 0, "model_name").lower(), _str(op, 1, "name")
    field = _arg(op, 2, "field")
    if kind in ("AddField", "AlterField") and isinstance(field, ast.Call):
        fields[(model, name)] = field
    elif kind == "RemoveField":
        fields.pop((model, name), None)
    elif kind == "RenameField":
        moved = fields.pop((model, _str(op, 1, "old_name")), None)
        if moved is not None:
            fields[(model, _str(op, 2, "new_name"))] = moved


# --- Alembic -------------------------------------------------------------------------------------


def _alembic(fn: ast.FunctionDef) -> list[_Hit]:
    batches = _batch_tables(fn)
    hits = []
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver, method = _name(node.func.value), node.func.attr
        if method not in _ALEMBIC_PARAMS or not (receiver == "op" or receiver in batches):
            continue
        params = _ALEMBIC_PARAMS[method]
        if receiver != "op":
            params = tuple(p for p in params if p != "table_name")
        args = {**dict(zip(params, node.args, strict=False)), **_kws(node)}
        table = batches.get(receiver) or _text(args.get("table_name"))
        hits += _alembic_op(method, args, table, node)
    return hits


def _batch_tables(fn: ast.FunctionDef) -> dict[str, str]:
    """`with op.batch_alter_table("t") as batch_op:` gives batch_op's table."""
    out = {}
    for node in ast.walk(fn):
        for item in node.items if isinstance(node, ast.With) else []:
            call, alias = item.context_expr, item.optional_vars
            if isinstance(alias, ast.Name) and isinstance(call, ast.Call):
                if _name(call.func) == "batch_alter_table":
                    out[alias.id] = _text(_arg(call, 0, "table_name"))
    return out


def _alembic_op(method: str, args: dict[str, ast.expr], table: str, node: ast.Call) -> list[_Hit]:
    column = _text(args.get("column_name"))
    if method == "drop_column":
        msg = f"op.drop_column drops column `{column}` of table `{table}`"
        return [_block("migration.drop-column", msg, node)]
    if method == "drop_table":
        return [_block("migration.drop-table", f"op.drop_table drops table `{table}`", node)]
    if method == "rename_table":
        old, new = _text(args.get("old_table_name")), _text(args.get("new_table_name"))
        return [
            _block("migration.rename-table", f"op.rename_table renames `{old}` to `{new}`", node)
        ]
    if method == "alter_column":
        return _alter_column(args, f"column `{column}` of table `{table}`", node)
    if method == "add_column":
        return _add_column(args.get("column"), table, node)
    return _sql_hits("op.execute", args.get("sqltext"), node)


def _alter_column(args: dict[str, ast.expr], where: str, node: ast.Call) -> list[_Hit]:
    hits = []
    if "new_column_name" in args:
        msg = f"op.alter_column renames {where} to `{_text(args['new_column_name'])}`"
        hits.append(_block("migration.rename-column", msg, node))
    if "type_" in args:
        msg = f"op.alter_column changes the type of {where} to {_unparse(args['type_'])}"
        hits.append(_block("migration.alter-type", msg, node))
    was_null = _literal(args.get("existing_nullable")) is not False
    if _literal(args.get("nullable")) is False and was_null:
        hits.append(
            _block("migration.make-not-null", f"op.alter_column makes {where} NOT NULL", node)
        )
    return hits


def _add_column(column: ast.expr | None, table: str, node: ast.Call) -> list[_Hit]:
    if not (isinstance(column, ast.Call) and _name(column.func) == "Column"):
        return []
    nullable = _literal(_kw(column, "nullable")) is not False
    if nullable or _literal(_kw(column, "server_default")) is not None:
        return []
    msg = (
        f"op.add_column adds NOT NULL column `{_str(column, 0, 'name')}` to table `{table}` "
        "with no server_default"
    )
    return [_block("migration.not-null-without-default", msg, node)]


# --- raw SQL in Python migrations ----------------------------------------------------------------


def _sql_hits(what: str, sql: ast.expr | None, node: ast.Call) -> list[_Hit]:
    if sql is None:
        return []
    texts = _strings(sql)
    if texts is None:
        return [
            _Hit(
                "migration.raw-sql",
                "info",
                f"{what} runs SQL built at run time, which the scan cannot read",
                node.lineno,
                _span(node),
                why="Read the SQL it builds: the scan checks only SQL written out as strings.",
            )
        ]
    hits = []
    for statement in (part for text in texts for part in text.split(";")):
        for rule, pattern in _RAW_SQL.items():
            if re.search(pattern, statement, re.IGNORECASE):
                level: Level = "warn" if rule == "migration.destructive-sql" else "block"
                message = f"{what} runs `{_shorten(' '.join(statement.split()))}`"
                hits.append(_Hit(rule, level, message, node.lineno, _span(node)))
    return hits


def _strings(node: ast.expr) -> list[str] | None:
    """The SQL strings in a RunSQL/op.execute argument (a string, `sa.text(...)`, or a list of
    strings or `(sql, params)` pairs); None if any part is not written out."""
    if isinstance(node, ast.Call) and _name(node.func) == "text" and node.args:
        return _strings(node.args[0])
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.List | ast.Tuple):
        parts = [_strings(e) for e in node.elts if not isinstance(e, ast.Dict | ast.List)]
        return None if any(p is None for p in parts) else [s for p in parts for s in p or []]
    return None


# --- reading the syntax tree ---------------------------------------------------------------------


def _block(rule: str, message: str, node: ast.Call) -> _Hit:
    return _Hit(rule, "block", message, node.lineno, _span(node))


def _span(node: ast.expr) -> tuple[int, int]:
    return node.lineno, node.end_lineno or node.lineno


def _name(node: ast.expr) -> str:
    """The last name in `a.b.C` or `C`; empty for anything else."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _kws(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _arg(call: ast.Call, index: int, name: str) -> ast.expr | None:
    """An argument given by position or by keyword."""
    return call.args[index] if index < len(call.args) else _kw(call, name)


def _literal(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _text(node: ast.expr | None) -> str:
    """A string argument's value, or its source when it is not a plain string."""
    value = _literal(node)
    if isinstance(value, str):
        return value
    return _unparse(node) if node is not None else "?"


def _str(call: ast.Call, index: int, name: str) -> str:
    return _text(_arg(call, index, name))


def _unparse(node: ast.expr) -> str:
    return _shorten(ast.unparse(node))


def _shorten(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
