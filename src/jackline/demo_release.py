"""The demo's second release: a small change to the shop that production's probes catch.

The change records each order's currency and shows its total with the currency's symbol. Its
migration adds the `currency` column (a proper expand step) but does not fill it in for the
orders that already exist, so `GET /api/orders` fails with a KeyError on any order placed before
the change. That passes the shop's unit tests (they place their orders through the new code) and
staging's probes (staging holds no orders), and fails production's, which holds the order that
`place_order` placed after the first release: the smoke check `GET /api/orders 200` gets a 500 and
the production log shows an ERROR line with the traceback. The old code ignores the new column,
so rolling back to the first release serves production again.

Kept as data so the demo can commit it (`commit`) or hand it to a scripted agent.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jackline import git as g
from jackline.errors import CommandFailed, JacklineError, NotFound


@dataclass(frozen=True)
class Edit:
    """Replace `old` with `new` once in the file at `path`; `old` empty: write a new file."""

    path: str
    old: str
    new: str


MIGRATION = "migrations/0003_add_order_currency.sql"
APP = "shop/app.py"

EDITS = (
    Edit(
        MIGRATION,
        "",
        "-- Orders record the currency they were placed in (the shop sells in euros for now).\n"
        "ALTER TABLE orders ADD COLUMN currency TEXT;\n",
    ),
    Edit(
        APP,
        "MAX_BODY_BYTES = 64 * 1024\n",
        "MAX_BODY_BYTES = 64 * 1024\n"
        'CURRENCY = "EUR"\n'
        'CURRENCY_SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$"}\n'
        "\n"
        "\n"
        "def display_price(cents: int, currency: str) -> str:\n"
        '    return f"{CURRENCY_SYMBOLS[currency]}{cents // 100}.{cents % 100:02d}"\n',
    ),
    Edit(
        APP,
        '                cur = conn.execute("INSERT INTO orders (total_cents) VALUES (?)", (total,))\n',
        "                cur = conn.execute(\n"
        '                    "INSERT INTO orders (total_cents, currency) VALUES (?, ?)", (total, CURRENCY)\n'
        "                )\n",
    ),
    Edit(
        APP,
        '"SELECT id, created_at, total_cents FROM orders ORDER BY id"',
        '"SELECT id, created_at, total_cents, currency FROM orders ORDER BY id"',
    ),
    Edit(
        APP,
        '        return [{**dict(order), "lines": by_order.get(order["id"], [])} for order in orders]\n',
        "        return [\n"
        "            {\n"
        "                **dict(order),\n"
        '                "total": display_price(order["total_cents"], order["currency"]),\n'
        '                "lines": by_order.get(order["id"], []),\n'
        "            }\n"
        "            for order in orders\n"
        "        ]\n",
    ),
)

MESSAGE = "Orders: record the currency and show each order's total with its symbol"

ORDER = {"lines": [{"sku": "MUG-01", "qty": 2}, {"sku": "TEA-01", "qty": 1}]}
"""What `place_order` buys: two mugs and a tea."""


def apply(repo: Path) -> list[str]:
    """Make the change in the working tree of `repo`; return the paths it touched."""
    for edit in EDITS:
        path = repo / edit.path
        if not edit.old:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(edit.new, encoding="utf-8")
            continue
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if edit.old not in text:
            raise NotFound(
                f"{path}: does not contain {edit.old!r}; the demo's change expects the shop "
                "as bundled with Jackline"
            )
        path.write_text(text.replace(edit.old, edit.new, 1), encoding="utf-8")
    return sorted({edit.path for edit in EDITS})


def commit(repo: Path) -> str:
    """Make the change and commit it on the current branch of `repo`; return the commit's sha."""
    paths = apply(repo)
    g.git(repo, "add", "--", *paths)
    g.git(repo, "commit", "--quiet", "-m", MESSAGE)
    return g.git(repo, "rev-parse", "HEAD")


def place_order(url: str, timeout: float = 10) -> dict[str, Any]:
    """Place `ORDER` with the shop serving at `url` (`http://127.0.0.1:8102`); the created order."""
    request = urllib.request.Request(
        url.rstrip("/") + "/api/orders",
        data=json.dumps(ORDER).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            order: dict[str, Any] = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise JacklineError(f"placing the demo's order with the shop at {url} failed: {e}") from e
    return order


def stop(repo: Path, env: str) -> None:
    """Stop the shop that `scripts/deploy.sh` started for `env` (none running: fine): from the
    checkout a release deploys from (`release.tree`), where the script keeps its pid files; from
    `repo` itself only where no release ever ran (a deploy run there by hand)."""
    from jackline.release import tree

    released = tree.path(repo)
    where = released if (released / ".git").is_dir() else repo
    argv = ["sh", "scripts/stop.sh", env]
    proc = subprocess.run(argv, cwd=where, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stdout, proc.stderr)
