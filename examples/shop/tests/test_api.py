import json
import re
import threading
import urllib.error
import urllib.request

import pytest

from shop.app import make_server


@pytest.fixture
def server(tmp_path):
    server = make_server(str(tmp_path / "shop.db"), host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def base_url(server):
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def request(url, payload=None):
    """Return (status, content_type, body bytes); HTTP errors are returned, not raised."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Content-Type"), err.read()


def test_healthz(base_url):
    status, ctype, body = request(base_url + "/healthz")
    assert status == 200
    assert ctype.startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_index_page(base_url):
    status, ctype, body = request(base_url + "/")
    assert status == 200
    assert ctype.startswith("text/html")
    assert b"Shop" in body


def test_items_are_listed(base_url):
    status, _, body = request(base_url + "/api/items")
    assert status == 200
    items = json.loads(body)
    assert {item["sku"] for item in items} >= {"MUG-01", "SPN-01"}
    for item in items:
        assert isinstance(item["price_cents"], int)


def test_create_order(base_url):
    payload = {"lines": [{"sku": "MUG-01", "qty": 2}, {"sku": "SPN-01", "qty": 3}]}
    status, _, body = request(base_url + "/api/orders", payload)
    assert status == 201
    order = json.loads(body)
    assert order["total_cents"] == 2 * 1250 + 3 * 250
    assert isinstance(order["id"], int)

    status, _, body = request(base_url + "/api/orders", {"lines": [{"sku": "TEA-01", "qty": 1}]})
    assert status == 201
    assert json.loads(body)["id"] != order["id"]


def test_unknown_sku_is_rejected(base_url):
    status, ctype, body = request(
        base_url + "/api/orders", {"lines": [{"sku": "NOPE-99", "qty": 1}]}
    )
    assert status == 400
    assert ctype.startswith("application/json")
    assert "NOPE-99" in json.loads(body)["error"]


def test_malformed_order_is_rejected(base_url):
    status, _, body = request(base_url + "/api/orders", {"lines": [{"sku": "MUG-01"}]})
    assert status == 400
    assert "error" in json.loads(body)


def test_unknown_path_is_404(base_url):
    status, _, _ = request(base_url + "/nope")
    assert status == 404


def test_orders_are_listed_with_their_lines(base_url):
    status, _, body = request(base_url + "/api/orders")
    assert status == 200
    assert json.loads(body) == []

    payload = {"lines": [{"sku": "MUG-01", "qty": 2}, {"sku": "SPN-01", "qty": 3}]}
    status, _, body = request(base_url + "/api/orders", payload)
    assert status == 201
    created = json.loads(body)

    status, _, body = request(base_url + "/api/orders")
    assert status == 200
    [order] = json.loads(body)
    assert order["id"] == created["id"]
    assert order["total_cents"] == created["total_cents"]
    assert order["lines"] == payload["lines"]
    assert order["created_at"]


def test_server_error_answers_500_and_logs_a_dated_error_with_traceback(server, base_url, capfd):
    server.conn.close()  # every query now raises sqlite3.ProgrammingError

    status, ctype, body = request(base_url + "/api/items")

    assert status == 500
    assert ctype.startswith("application/json")
    assert json.loads(body) == {"error": "internal server error"}
    err = capfd.readouterr().err
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* ERROR GET /api/items", err, re.M)
    assert "Traceback (most recent call last)" in err
    assert "ProgrammingError" in err
