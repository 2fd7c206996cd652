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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pathspec

from jackline import git as g
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
    "migration.deletes-rows": (
        "Deleted rows do not come back when the code is rolled back, and the running release may "
        "still read them. Ask for the rows to stop being used first and released; then delete "
        "them in a later migration, with a backup at hand."
    ),
    "migration.rewrites-rows": (
        "Rewritten rows keep their new values when the code is rolled back, and the running "
        "release reads them meanwhile. Ask whether the old release copes with both values, for "
        "a backup of what changes, and for the rewrite to run in its own later migration."
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
_ROWS = {
    "migration.deletes-rows": r"\bdelete\s+from\b|\btruncate\b",
    "migration.rewrites-rows": r"\bupdate\s+(?:only\s+)?[\w.\"`]+(?:\s+(?:as\s+)?\w+)?\s+set\b",
}
"""SQL in Python migrations that squawk does not judge: statements that delete or rewrite rows."""
_RAW_SQL = {
    "migration.drop-column": r"\bdrop\s+column\b",
    "migration.drop-table": r"\bdrop\s+table\b",
    "migration.rename-column": r"\brename\s+(?:column\s+)?(?!to\b|constraint\b)\S+\s+to\b",
    "migration.rename-table": r"\balter\s+table\s+(?:if\s+exists\s+)?\S+\s+rename\s+to\b|\brename\s+table\b",
    "migration.alter-type": r"\balter\s+column\s+\S+\s+(?:set\s+data\s+)?type\b",
    "migration.make-not-null": r"\bset\s+not\s+null\b",
    "migration.destructive-sql": (
        r"\bdrop\s+(?:schema|database|view|materialized\s+view|type|function|sequence)\b"
    ),
    **_ROWS,
}
"""What each rule stands for in raw SQL: the schema statements are read this way only where
squawk could not parse the SQL (another dialect), and to name what SQL built at run time does."""
_SAYS = {
    "migration.drop-column": "it drops a column",
    "migration.drop-table": "it drops a table",
    "migration.rename-column": "it renames a column",
    "migration.rename-table": "it renames a table",
    "migration.alter-type": "it changes a column's type",
    "migration.make-not-null": "it makes a column NOT NULL",
    "migration.destructive-sql": "it drops a schema object",
    "migration.deletes-rows": "it deletes rows",
    "migration.rewrites-rows": "it rewrites rows",
}
_SESSION_RULES = {"require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts"}
"""squawk rules about the SQL file as a session of its own. SQL in a Python migration runs in
the framework's connection and transaction, so for it they say nothing."""
_EXECUTE = {"execute", "exec_driver_sql", "executemany", "executescript"}
"""Methods that send SQL: `op.execute`, a connection's, a cursor's, a schema editor's."""
_PARAMETER = re.compile(r"%(?:\([^)]*\))?s")
"""A DB-API parameter (`%s`, `%(name)s`), shown to squawk as `$1` so that it can parse."""
_NO_VALUE_NEEDED = {"ManyToManyField", "GeneratedField", "NullBooleanField"}
"""Django fields whose AddField needs no value for existing rows."""
_ALEMBIC_PARAMS = {
    "drop_column": ("table_name", "column_name"),
    "drop_table": ("table_name",),
    "rename_table": ("old_table_name", "new_table_name"),
    "alter_column": ("table_name", "column_name"),
    "add_column": ("table_name", "column"),
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
    """The lines quoted, those of the operation; None for a finding about the whole file."""
    why: str = ""
    touch: tuple[tuple[int, int], ...] = ()
    """More lines whose edit makes the hit count in a merged migration: a RunPython hit is at
    the call in the function, and counts when the operation that runs it changed too."""


@dataclass(frozen=True)
class _Sql:
    """SQL written out in a Python migration, for squawk to read with the SQL files."""

    what: str
    """How it runs: `RunSQL`, `op.execute`, `RunPython forwards: cursor.execute`."""
    text: str
    lines: tuple[int, ...] | None
    """The migration's line for each line of `text`; None where they cannot be told apart (an
    escaped newline), and the operation's first line stands for all."""
    span: tuple[int, int]
    """The operation's lines."""
    touch: tuple[tuple[int, int], ...] = ()
    """As `_Hit.touch`: the RunPython operation that runs the function holding this SQL."""

    def line(self, index: int) -> int:
        if self.lines is None or not 0 <= index < len(self.lines):
            return self.span[0]
        return self.lines[index]


def scan(change: Change, config: JacklineConfig) -> list[Finding]:
    spec = pathspec.GitIgnoreSpec.from_lines(config.scan.migrations)
    files = [
        f
        for f in change.files
        if f.status != "deleted" and not f.binary and spec.match_file(f.path)
    ]
    hits: dict[str, list[_Hit]] = {f.path: [] for f in files}
    literals: dict[str, list[_Sql]] = {}
    history = _Histories(change)
    for f in files:
        if f.path.endswith(".py"):
            hits[f.path], literals[f.path] = _python(change, f.path, history)
    findings: list[Finding] = []
    sql = [f.path for f in files if f.path.endswith(".sql")]
    if sql or any(literals.values()):
        found = _squawk(change, sql, literals, config.scan.timeout)
        if isinstance(found, Finding):
            findings.append(replace(found, file=(sql or list(literals))[0]))
        else:
            for path, more in found.items():
                hits[path] += more
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
        hits = [h for h in hits if h.span is None or added & _lines(h.span, *h.touch)]
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


def _lines(*spans: tuple[int, int]) -> set[int]:
    return {n for start, end in spans for n in range(start, end + 1)}


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
    """At the first line the change touched: in the new file, or the old one if it only removed."""
    first = f.added[0].number if f.added else f.removed[0].number if f.removed else None
    return Finding(
        "migration.edited",
        "warn",
        f"the change edits `{f.path}`, a migration that is already merged",
        f.path,
        first,
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
    candidates |= {
        p for p in _listing(change, folder) if posixpath.splitext(p)[0].endswith("/" + name)
    }
    return any(c != path and change.old_text(c) is not None for c in sorted(candidates))


# --- SQL: squawk ---------------------------------------------------------------------------------


def _squawk(
    change: Change, paths: list[str], literals: dict[str, list[_Sql]], timeout: int
) -> dict[str, list[_Hit]] | Finding:
    """squawk's violations by file (the SQL files', and those of the SQL written out in Python
    migrations), or the finding that says it could not run.

    squawk reads copies the harness made (`0.sql`, `1.sql`, ...), never the workspace: it would
    follow a link the agent left, and a name with a newline or a quote reaches it as a plain one.
    """
    exe = find_tool("squawk")
    if exe is None:
        return tool_failed("squawk", "not found on PATH or beside Python", install=_INSTALL)
    data = {p: change.new_bytes(p) for p in paths}
    out = {p: [_unreadable("it is a link or is missing")] for p in paths if data[p] is None}
    files = [p for p in paths if p not in out]
    pieces = [(path, sql) for path, found in literals.items() for sql in found]
    names = [f"{i}.sql" for i in range(len(files) + len(pieces))]
    if not names:
        return out
    with tempfile.TemporaryDirectory(prefix="jackline-squawk-") as tmp:
        for name, path in zip(names, files, strict=False):
            (Path(tmp) / name).write_bytes(data[path] or b"")
        for name, (_, sql) in zip(names[len(files) :], pieces, strict=True):
            (Path(tmp) / name).write_text(_PARAMETER.sub("$1", sql.text), encoding="utf-8")
        found = _run_squawk(exe, names, Path(tmp), timeout)
    if isinstance(found, Finding):
        return found
    for name, path in zip(names, files, strict=False):
        out.setdefault(path, []).extend(found.get(name, []))
    for name, (path, sql) in zip(names[len(files) :], pieces, strict=True):
        out.setdefault(path, []).extend(_in_python(sql, found.get(name, [])))
    return out


def _in_python(sql: _Sql, hits: list[_Hit]) -> list[_Hit]:
    """squawk's hits on SQL written in a Python migration, at the migration's lines. SQL squawk
    could not parse (another database's dialect, `%s` parameters) is read by `_RAW_SQL` too."""
    out = []
    for h in hits:
        line = sql.line((h.line or 1) - 1)
        shown = _shorten(" ".join(sql.text.split()))
        if h.rule == "squawk.syntax-error":
            out += _raw_ddl(sql)
            message = f"{sql.what} runs `{shown}`, which squawk could not parse: {h.message}"
        else:
            message = f"{sql.what} runs `{shown}`: {h.message}"
        out.append(replace(h, message=message, line=line, span=sql.span, touch=sql.touch))
    return [h for h in out if h.rule.removeprefix("squawk.") not in _SESSION_RULES]


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


def _python(change: Change, path: str, history: _Histories) -> tuple[list[_Hit], list[_Sql]]:
    """The file's hits, and the SQL it writes out for squawk."""
    text = change.new_text(path)
    if text is None:
        return [_unreadable("the file is not UTF-8 text")], []
    try:
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError) as e:
        line = getattr(e, "lineno", None)
        return [_unreadable(f"line {line or '?'}: {e}", line)], []
    module = _Module(tree, text)
    operations = _django_operations(tree)
    if operations is not None:
        return _django(path, operations, module, history)
    found = [_alembic(fn, module) for fn in _upgrade_functions(tree)]
    return [h for hits, _ in found for h in hits], [q for _, sql in found for q in sql]


def _unreadable(problem: str, line: int | None = None) -> _Hit:
    return _Hit(
        "migration.unreadable",
        "warn",
        f"the migration could not be parsed ({problem})",
        line,
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


def _django(
    path: str, ops: list[ast.Call], module: _Module, histories: _Histories
) -> tuple[list[_Hit], list[_Sql]]:
    """Each operation judged against the app's state as the migrations before it left it: an
    operation on a model Django does not manage (`managed = False`) runs no SQL at all."""
    state = histories.before(path)
    hits: list[_Hit] = []
    literals: list[_Sql] = []
    for i, op in enumerate(ops):
        model = _model_of(op)
        if model is None or not state.unmanaged(model):
            more, sql = _django_op(op, ops[i + 1 :], state.fields, module)
            hits += more
            literals += sql
        state.replay(op)
    return hits, literals


def _django_op(
    op: ast.Call, following: list[ast.Call], fields: Fields, module: _Module
) -> tuple[list[_Hit], list[_Sql]]:
    kind = _name(op.func)
    if kind == "AddField":
        return _add_field(op, following), []
    if kind == "AlterField":
        return _alter_field(op, fields), []
    if kind == "RunSQL":
        return _sql("RunSQL", _arg(op, 0, "sql"), op, module.names)
    if kind == "RunPython":
        return _run_python(op, module)
    found = _drop_or_rename(kind, op)
    return ([found] if found else []), []


_FIELD_OPERATIONS = {
    *("AddField", "RemoveField", "AlterField", "RenameField", "AddIndex", "RemoveIndex"),
    *("RenameIndex", "AddConstraint", "RemoveConstraint", "AlterOrderWithRespectTo"),
}
_MODEL_OPERATIONS = {
    *("CreateModel", "DeleteModel", "RenameModel", "AlterModelTable", "AlterModelOptions"),
    *("AlterUniqueTogether", "AlterIndexTogether", "AlterModelTableComment"),
}


def _model_of(op: ast.Call) -> str | None:
    """The model a schema operation works on (its first argument), None for RunSQL/RunPython."""
    kind = _name(op.func)
    if kind in _FIELD_OPERATIONS:
        return _str(op, 0, "model_name").lower()
    if kind in _MODEL_OPERATIONS:
        return _str(op, 0, "old_name" if kind == "RenameModel" else "name").lower()
    return None


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


@dataclass
class _State:
    """A Django app as its migrations leave it: the fields, and whether Django manages each
    model (only `CreateModel` and `AlterModelOptions` say; AlterModelOptions without `managed`
    puts back the default, managed). Models the migrations never create (another app's, a
    history squashed away) are judged by `Meta.managed` in the app's models at the base commit,
    or at the head for a model the base does not have."""

    fields: Fields = field(default_factory=dict)
    managed: dict[str, bool] = field(default_factory=dict)
    meta: dict[str, bool] = field(default_factory=dict)

    def unmanaged(self, model: str) -> bool:
        return not self.managed.get(model, self.meta.get(model, True))

    def replay(self, op: ast.Call) -> None:
        kind = _name(op.func)
        if kind == "CreateModel":
            self.managed[_str(op, 0, "name").lower()] = _manages(_arg(op, 2, "options"))
        elif kind == "AlterModelOptions":
            self.managed[_str(op, 0, "name").lower()] = _manages(_arg(op, 1, "options"))
        elif kind in ("DeleteModel", "RenameModel"):
            old = self.managed.pop(
                _str(op, 0, "old_name" if kind == "RenameModel" else "name").lower(), True
            )
            if kind == "RenameModel":
                self.managed[_str(op, 1, "new_name").lower()] = old
        _replay(self.fields, op)


def _manages(options: ast.expr | None) -> bool:
    if not isinstance(options, ast.Dict):
        return True
    for key, value in zip(options.keys, options.values, strict=True):
        if _literal(key) == "managed":
            return _literal(value) is not False
    return True


class _Histories:
    """The migrations before a changed one in its folder, read once per folder: from the base
    commit where they are there (what databases ran), else as the change adds them. Never by
    listing or reading the workspace's folder, where the agent may have left a link."""

    def __init__(self, change: Change) -> None:
        self.change = change
        self.folders: dict[str, list[tuple[str, list[ast.Call]]]] = {}
        self.metas: dict[str, dict[str, bool]] = {}

    def before(self, path: str) -> _State:
        folder, name = posixpath.split(path)
        state = _State(meta=self._meta(posixpath.dirname(folder)))
        for earlier, ops in self._folder(folder):
            if earlier < name:
                for op in ops:
                    state.replay(op)
        return state

    def _folder(self, folder: str) -> list[tuple[str, list[ast.Call]]]:
        if folder not in self.folders:
            texts = self._texts(folder, ".py")
            self.folders[folder] = [(posixpath.basename(p), _operations(t)) for p, t in texts]
        return self.folders[folder]

    def _meta(self, app: str) -> dict[str, bool]:
        if app not in self.metas:
            base = [self.change.old_text(posixpath.join(app, "models.py"))]
            base += [t for _, t in self._texts(posixpath.join(app, "models"), ".py", head=False)]
            head = [self.change.new_text(posixpath.join(app, "models.py"))]
            head += [
                self.change.new_text(f.path)
                for f in self.change.files
                if _inside(f.path, posixpath.join(app, "models"))
            ]
            self.metas[app] = {**_managed_meta(head), **_managed_meta(base)}
        return self.metas[app]

    def _texts(self, folder: str, suffix: str, head: bool = True) -> list[tuple[str, str]]:
        """The folder's files at the base commit, and with `head` those the change adds, by name."""
        at_base = _listing(self.change, folder)
        added = [
            f.path
            for f in self.change.files
            if head
            and f.status != "deleted"
            and posixpath.dirname(f.path) == folder
            and f.path not in at_base
        ]
        old = self.change.old_texts([p for p in at_base if p.endswith(suffix)])
        texts = {p: t for p, t in old.items() if t is not None}
        texts |= {
            p: t for p in added if p.endswith(suffix) and (t := self.change.new_text(p)) is not None
        }
        return sorted(texts.items())


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder + "/") and path.endswith(".py")


def _listing(change: Change, folder: str) -> set[str]:
    """The files directly in `folder` at the base commit."""
    if not folder:
        return set()
    out = g.git_bytes(
        change.root,
        "--literal-pathspecs",
        "ls-tree",
        "-z",
        "--name-only",
        change.base,
        "--",
        folder + "/",
    )
    return set(g.z_paths(out))


def _operations(text: str) -> list[ast.Call]:
    try:
        return _django_operations(ast.parse(text)) or []
    except (SyntaxError, ValueError):
        return []


def _managed_meta(texts: list[str | None]) -> dict[str, bool]:
    """Model name (lower case) -> whether its `class Meta` leaves `managed` on."""
    out: dict[str, bool] = {}
    for text in texts:
        try:
            tree = ast.parse(text or "")
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                out[node.name.lower()] = _meta_manages(node)
    return out


def _meta_manages(model: ast.ClassDef) -> bool:
    for inner in model.body:
        if isinstance(inner, ast.ClassDef) and inner.name == "Meta":
            for stmt in inner.body:
                if _literal(_assigned(stmt, "managed")) is False:
                    return False
    return True


def _replay(fields: Fields, op: ast.Call) -> None:
    """Apply one operation to the app's fields."""
    kind = _name(op.func)
    if kind == "CreateModel":
        model, spec = _str(op, 0, "name").lower(), _arg(op, 1, "fields")
        for item in spec.elts if isinstance(spec, ast.List | ast.Tuple) else []:
            if isinstance(item, ast.Tuple) and len(item.elts) == 2:
                name, column = _literal(item.elts[0]), item.elts[1]
                if isinstance(name, str) and isinstance(column, ast.Call):
                    fields[(model, name)] = column
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


def _alembic(fn: ast.FunctionDef, module: _Module) -> tuple[list[_Hit], list[_Sql]]:
    batches = _batch_tables(fn)
    names = {**module.names, **_names_in(fn)}
    hits: list[_Hit] = []
    literals: list[_Sql] = []
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver, method = _name(node.func.value), node.func.attr
        if method in _EXECUTE:
            # op.execute, op.get_bind().execute, connection.execute(text(...)), ...: SQL all
            more, sql = _sql(_called(node), _arg(node, 0, "sqltext"), node, names)
            hits += more
            literals += sql
            continue
        if method not in _ALEMBIC_PARAMS or not (receiver == "op" or receiver in batches):
            continue
        params = _ALEMBIC_PARAMS[method]
        if receiver != "op":
            params = tuple(p for p in params if p != "table_name")
        args = {**dict(zip(params, node.args, strict=False)), **_kws(node)}
        table = batches.get(receiver) or _text(args.get("table_name"))
        hits += _alembic_op(method, args, table, node)
    return hits, literals


def _called(node: ast.Call) -> str:
    """`op.execute`, `op.get_bind().execute`, `conn.execute`: how the call names itself."""
    return _shorten(ast.unparse(node.func))


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
    return _add_column(args.get("column"), table, node)


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


# --- SQL and data in Python migrations ----------------------------------------------------------


class _Module:
    """A migration module: its functions by name, its simple assignments (`SQL = "..."`), and
    its text, to tell which line of a string each line of SQL is on."""

    def __init__(self, tree: ast.Module, text: str) -> None:
        self.functions = {
            n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.names = _names_in(tree)
        self.text = text


def _names_in(scope: ast.AST) -> dict[str, ast.expr]:
    """Names assigned once in the scope (`sql = "DROP ..."`), to read through `execute(sql)`."""
    seen: dict[str, list[ast.expr]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                seen.setdefault(target.id, []).append(node.value)
    return {name: values[0] for name, values in seen.items() if len(values) == 1}


def _sql(
    what: str, node: ast.expr | None, call: ast.Call, names: dict[str, ast.expr]
) -> tuple[list[_Hit], list[_Sql]]:
    """SQL a migration sends: written out, it goes to squawk and is read for rows it deletes or
    rewrites; built at run time, it blocks, since nothing here can read it, unless it is
    SQLAlchemy's builder (`table.insert()`, `sa.select`; `update`/`delete` rewrite rows)."""
    node = _resolved(node, names)
    if node is None or _name(node) == "noop":
        return [], []
    strings = _strings(node, names)
    if strings is None:
        return _built(what, node, call), []
    hits: list[_Hit] = []
    literals: list[_Sql] = []
    for constant in strings:
        # SQL named elsewhere (`SQL = "..."`) is reported where the operation sends it.
        inside = call.lineno <= constant.lineno <= (call.end_lineno or call.lineno)
        sql = _Sql(what, str(constant.value), _line_map(constant) if inside else None, _span(call))
        hits += _rows(sql)
        literals.append(sql)
    return hits, literals


def _resolved(node: ast.expr | None, names: dict[str, ast.expr]) -> ast.expr | None:
    for _ in range(3):  # a name for a name for a string, and no further
        if not (isinstance(node, ast.Name) and node.id in names):
            break
        node = names[node.id]
    return node


def _strings(node: ast.expr, names: dict[str, ast.expr]) -> list[ast.Constant] | None:
    """The SQL strings in a RunSQL/execute argument (a string, `sa.text(...)`, or a list of
    strings or `(sql, params)` pairs); None if any part is not written out."""
    node = _resolved(node, names) or node
    if isinstance(node, ast.Call) and _name(node.func) in ("text", "TextClause") and node.args:
        return _strings(node.args[0], names)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.List | ast.Tuple):
        parts = [_strings(e, names) for e in node.elts if not isinstance(e, ast.Dict | ast.List)]
        return None if any(p is None for p in parts) else [c for p in parts for c in p or []]
    return None


def _line_map(constant: ast.Constant) -> tuple[int, ...] | None:
    """The line of each line of the string: one after the other from its first, unless the
    source spells a newline as `\\n` (then the lines cannot be told apart)."""
    text = str(constant.value)
    lines = text.count("\n") + 1
    end = constant.end_lineno or constant.lineno
    if end - constant.lineno + 1 != lines:
        return None
    return tuple(range(constant.lineno, constant.lineno + lines))


def _built(what: str, node: ast.expr, call: ast.Call) -> list[_Hit]:
    calls = {_name(c.func) for c in ast.walk(node) if isinstance(c, ast.Call)}
    shown = _unparse(node)
    if "text" not in calls and calls & {"delete", "update", "insert", "select", "values"}:
        if "delete" in calls:
            return [_block("migration.deletes-rows", f"{what} deletes rows: `{shown}`", call)]
        if "update" in calls:
            return [_block("migration.rewrites-rows", f"{what} rewrites rows: `{shown}`", call)]
        return []  # an insert or a select built with SQLAlchemy
    rule = next((r for r, p in _RAW_SQL.items() if re.search(p, _skeleton(node), re.I)), "")
    said = f" (its fixed parts say {_SAYS[rule]})" if rule else ""
    return [
        _Hit(
            "migration.raw-sql",
            "block",
            f"{what} runs SQL built at run time, which the scan cannot read{said}: `{shown}`",
            call.lineno,
            _span(call),
            why="Nothing vouches for SQL the scan cannot read: it may drop, rewrite or lock "
            "what the running release uses. Read the SQL it builds, or ask for it written out.",
        )
    ]


def _skeleton(node: ast.expr) -> str:
    """The written-out parts of SQL built at run time (`f"DROP TABLE {name}"` -> `DROP TABLE  `)."""
    return " ".join(
        str(n.value)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def _rows(sql: _Sql) -> list[_Hit]:
    """What squawk does not judge: statements that delete or rewrite rows, and drops of objects
    other than tables and columns."""
    return _matches(sql, _ROWS)


def _raw_ddl(sql: _Sql) -> list[_Hit]:
    """The schema statements squawk would have judged, for SQL it could not parse."""
    return _matches(sql, {r: p for r, p in _RAW_SQL.items() if r not in _ROWS})


def _matches(sql: _Sql, patterns: dict[str, str]) -> list[_Hit]:
    hits = []
    at = 0
    for statement in sql.text.split(";"):
        for rule, pattern in patterns.items():
            if re.search(pattern, statement, re.IGNORECASE):
                shown = _shorten(" ".join(statement.split()))
                offset = len(statement) - len(statement.lstrip())
                line = sql.line(sql.text.count("\n", 0, at + offset))
                message = f"{sql.what} runs `{shown}`"
                hits.append(_Hit(rule, "block", message, line, sql.span, touch=sql.touch))
        at += len(statement) + 1
    return hits


# --- RunPython -----------------------------------------------------------------------------------


def _run_python(op: ast.Call, module: _Module) -> tuple[list[_Hit], list[_Sql]]:
    """What the forward function (never `reverse_code`) does to rows: `.delete()`, a queryset's
    `.update(...)`, `bulk_update`, and SQL it executes. A function the module does not define
    (imported) cannot be read, and says so."""
    code = _arg(op, 0, "code")
    if code is None or _name(code) == "noop":
        return [], []
    if isinstance(code, ast.Lambda):
        bodies: list[ast.AST] = [code]
        label = "RunPython's lambda"
    elif isinstance(code, ast.Name) and code.id in module.functions:
        bodies = list(_reached(module, code.id))
        label = f"RunPython `{code.id}`"
    else:
        return [
            _Hit(
                "migration.run-python",
                "warn",
                f"RunPython runs `{_unparse(code)}`, which this file does not define",
                op.lineno,
                _span(op),
                why="The scan reads only functions the migration defines; read what this one "
                "does to rows (a delete or a rewrite cannot be rolled back with the code).",
            )
        ], []
    hits: list[_Hit] = []
    literals: list[_Sql] = []
    for body in bodies:
        names = {**module.names, **_names_in(body)}
        for node in ast.walk(body):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                more, sql = _data_call(label, node, names)
                hits += [replace(h, touch=(_span(op),)) for h in more]
                literals += [replace(q, touch=(_span(op),)) for q in sql]
    return _once(hits), literals


def _reached(module: _Module, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The function and the module's functions it calls, and theirs."""
    todo, seen = [name], []
    while todo:
        fn = module.functions[todo.pop()]
        if fn not in seen:
            seen.append(fn)
            called = (c.func for c in ast.walk(fn) if isinstance(c, ast.Call))
            todo += [f.id for f in called if isinstance(f, ast.Name) and f.id in module.functions]
    return seen


def _data_call(
    label: str, node: ast.Call, names: dict[str, ast.expr]
) -> tuple[list[_Hit], list[_Sql]]:
    assert isinstance(node.func, ast.Attribute)
    method, shown = node.func.attr, _unparse(node)
    # `.delete()` with no argument is a queryset's or a model instance's (a cache's or a
    # client's takes a key); `.update(x=...)` with keywords only is a queryset's, not a dict's.
    if method == "delete" and not node.args and not node.keywords:
        return [_block("migration.deletes-rows", f"{label} deletes rows: `{shown}`", node)], []
    if (method == "update" and node.keywords and not node.args) or method == "bulk_update":
        return [_block("migration.rewrites-rows", f"{label} rewrites rows: `{shown}`", node)], []
    if method in _EXECUTE:
        return _sql(f"{label}: {_called(node)}", _arg(node, 0, "sql"), node, names)
    return [], []


def _once(hits: list[_Hit]) -> list[_Hit]:
    return list({(h.rule, h.line): h for h in hits}.values())


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
