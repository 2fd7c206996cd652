"""SQLite connection and forward-only migrations."""

import sqlite3
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def connect(path: str) -> sqlite3.Connection:
    """Open the database at ``path`` (creating parent directories as needed)."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every not-yet-applied ``*.sql`` file in name order; return the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name TEXT PRIMARY KEY,"
        " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    conn.commit()
    done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    applied = []
    for sql_file in sorted(migrations_dir.glob("*.sql")):
        if sql_file.name in done:
            continue
        script = sql_file.read_text(encoding="utf-8")
        escaped = sql_file.name.replace("'", "''")
        try:
            conn.executescript(
                f"BEGIN;\n{script}\n"
                f"INSERT INTO schema_migrations (name) VALUES ('{escaped}');\nCOMMIT;"
            )
        except sqlite3.Error:
            conn.rollback()
            raise
        applied.append(sql_file.name)
    return applied
