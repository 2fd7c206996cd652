"""HTTP service: a tiny shop API on http.server + sqlite3.

Run with ``python -m shop.app --port 8101 --db var/shop.db``.

A request that fails with an unexpected exception answers 500 and is logged to stderr as one
``<ISO time> ERROR ...`` line followed by the traceback, so a log scan can find and date it.
"""

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shop import db, pricing

INDEX_HTML = """<!doctype html>
<html>
<head><meta charset="utf-8"><title>Shop</title></head>
<body>
<h1>Shop</h1>
<p>See <a href="/api/items">/api/items</a> for the catalogue.</p>
</body>
</html>
"""

MAX_BODY_BYTES = 64 * 1024


def log(level: str, message: str) -> None:
    """Write one dated line (plus any traceback in ``message``) to stderr in a single write."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    sys.stderr.write(f"{stamp} {level} {message}\n")
    sys.stderr.flush()


class BadRequest(Exception):
    """Client error reported as HTTP 400."""


class ShopServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, db_path: str):
        self.conn = db.connect(db_path)
        self.db_lock = threading.Lock()
        try:
            db.migrate(self.conn)
            super().__init__(address, ShopHandler)
        except BaseException:
            self.conn.close()
            raise

    def server_close(self) -> None:
        super().server_close()
        self.conn.close()


class ShopHandler(BaseHTTPRequestHandler):
    server: ShopServer

    def log_message(self, format: str, *args) -> None:
        if os.environ.get("SHOP_ACCESS_LOG"):
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def do_GET(self) -> None:
        self._serve(self._get)

    def do_POST(self) -> None:
        self._serve(self._post)

    def _serve(self, route) -> None:
        # Every route builds its whole answer before sending it, so a failure can still answer 500.
        try:
            route()
        except Exception:
            log("ERROR", f"{self.command} {self.path} failed\n{traceback.format_exc().rstrip()}")
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal server error"})

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send_json(HTTPStatus.OK, {"status": "ok"})
        elif path == "/":
            self._send(HTTPStatus.OK, INDEX_HTML.encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/api/items":
            self._send_json(HTTPStatus.OK, self._list_items())
        elif path == "/api/orders":
            self._send_json(HTTPStatus.OK, self._list_orders())
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/api/orders":
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            lines = self._parse_order(self._read_json())
            order = self._create_order(lines)
        except BadRequest as exc:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._send_json(HTTPStatus.CREATED, order)

    def _read_json(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise BadRequest("invalid Content-Length") from exc
        if length <= 0 or length > MAX_BODY_BYTES:
            raise BadRequest("request body missing or too large")
        try:
            return json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest("body is not valid JSON") from exc

    @staticmethod
    def _parse_order(payload) -> list[tuple[str, int]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("lines"), list):
            raise BadRequest('expected {"lines": [{"sku": ..., "qty": ...}]}')
        if not payload["lines"]:
            raise BadRequest("an order needs at least one line")
        lines = []
        for line in payload["lines"]:
            if not isinstance(line, dict):
                raise BadRequest("each line must be an object")
            sku, qty = line.get("sku"), line.get("qty")
            if not isinstance(sku, str) or not sku:
                raise BadRequest("each line needs a sku")
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                raise BadRequest("qty must be a positive integer")
            lines.append((sku, qty))
        return lines

    def _list_items(self) -> list[dict]:
        with self.server.db_lock:
            rows = self.server.conn.execute(
                "SELECT id, sku, name, price_cents FROM items ORDER BY id"
            ).fetchall()
        return [dict(row) for row in rows]

    def _create_order(self, lines: list[tuple[str, int]]) -> dict:
        conn = self.server.conn
        with self.server.db_lock:
            prices = {}
            for sku, _qty in lines:
                row = conn.execute("SELECT price_cents FROM items WHERE sku = ?", (sku,)).fetchone()
                if row is None:
                    raise BadRequest(f"unknown sku: {sku}")
                prices[sku] = row["price_cents"]
            total = pricing.order_total([(prices[sku], qty) for sku, qty in lines])
            with conn:
                cur = conn.execute("INSERT INTO orders (total_cents) VALUES (?)", (total,))
                order_id = cur.lastrowid
                conn.executemany(
                    "INSERT INTO order_lines (order_id, sku, qty) VALUES (?, ?, ?)",
                    [(order_id, sku, qty) for sku, qty in lines],
                )
        return {"id": order_id, "total_cents": total}

    def _list_orders(self) -> list[dict]:
        conn = self.server.conn
        with self.server.db_lock:
            orders = conn.execute(
                "SELECT id, created_at, total_cents FROM orders ORDER BY id"
            ).fetchall()
            lines = conn.execute(
                "SELECT order_id, sku, qty FROM order_lines ORDER BY rowid"
            ).fetchall()
        by_order: dict[int, list[dict]] = {}
        for order_id, sku, qty in lines:
            by_order.setdefault(order_id, []).append({"sku": sku, "qty": qty})
        return [{**dict(order), "lines": by_order.get(order["id"], [])} for order in orders]


def make_server(db_path: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Open (and migrate) the database and return a bound, not yet serving, server."""
    return ShopServer((host, port), db_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shop.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--db", default="var/shop.db", help="SQLite database path")
    args = parser.parse_args(argv)
    server = make_server(args.db, args.host, args.port)
    host, port = server.server_address[:2]
    # A deploy stops the previous process with TERM: leave through `finally` so the database
    # is closed cleanly, as on Ctrl-C.
    signal.signal(signal.SIGTERM, _stop)
    log("INFO", f"shop listening on http://{host}:{port} (db: {args.db})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log("INFO", "shop stopped")


def _stop(signum: int, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
