"""The offline vulnerability database: the PyPA advisory database's YAML layout read by the
dependency scan, and `jackline osv update` refreshing OSV's zip from a server on loopback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from changes import change, git
from conftest import cli_in_process

from jackline import config as jconfig
from jackline.errors import JacklineError
from jackline.models import Finding
from jackline.scans import osvdb
from jackline.scans.dependencies import scan

# Shaped as github.com/pypa/advisory-database writes them (PYSEC-2018-28 trimmed; the others
# made up in the same shape). Versions are plain YAML scalars: `1.10` must stay a version.
REQUESTS = """\
id: PYSEC-2018-28
details: The Requests package before 2.20.0 for Python sends an HTTP Authorization
  header to an http URI upon receiving a same-hostname https-to-http redirect, which
  makes it easier for remote attackers to discover credentials by sniffing the network.
affected:
- package:
    name: requests
    ecosystem: PyPI
    purl: pkg:pypi/requests
  ranges:
  - type: GIT
    repo: https://github.com/requests/requests
    events:
    - introduced: "0"
    - fixed: c45d7c49ea75133e52ab22a8e9e13173938e36ff
  - type: ECOSYSTEM
    events:
    - introduced: "0"
    - fixed: 2.20.0
  versions:
  - 2.19.0
  - 2.19.1
references:
- type: FIX
  url: https://github.com/requests/requests/commit/c45d7c49ea75133e52ab22a8e9e13173938e36ff
aliases:
- CVE-2018-18074
modified: "2021-06-16T00:03:24.800813Z"
published: "2018-10-09T17:29:00Z"
"""
DJANGO = """\
id: PYSEC-2017-9
details: Django 1.10 before 1.10.7 allows open redirects via a crafted URL.
affected:
- package:
    name: django
    ecosystem: PyPI
    purl: pkg:pypi/django
  versions:
  - 1.10
  - 1.10.6
aliases:
- CVE-2017-7233
modified: "2021-07-15T02:22:10.123Z"
published: "2017-04-04T17:59:00Z"
"""
WITHDRAWN = """\
id: PYSEC-2021-999
details: Reported against Django 1.1 by mistake.
withdrawn: "2021-09-01T00:00:00Z"
affected:
- package:
    name: django
    ecosystem: PyPI
  ranges:
  - type: ECOSYSTEM
    events:
    - introduced: "0"
modified: "2021-09-01T00:00:00Z"
"""


@pytest.fixture(autouse=True)
def jackline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("JACKLINE_HOME", str(home))
    monkeypatch.delenv(osvdb.URL_VARIABLE, raising=False)
    return home


def pypa_db(root: Path) -> Path:
    """A PyPA advisory database checkout: `vulns/<package>/<id>.yaml`, folders as PyPA names them."""
    for folder, name, text in (
        ("requests", "PYSEC-2018-28", REQUESTS),
        ("Django", "PYSEC-2017-9", DJANGO),
        ("Django", "PYSEC-2021-999", WITHDRAWN),
    ):
        (root / "vulns" / folder).mkdir(parents=True, exist_ok=True)
        (root / "vulns" / folder / f"{name}.yaml").write_text(text)
    return root


def scan_requirements(tmp_path: Path, text: str, db: Path) -> list[Finding]:
    made = change(tmp_path, {"README.md": "x\n"}, {"requirements.txt": text})
    return scan(made, jconfig.parse({"scan": {"osv_db": str(db)}}))


def test_pypa_yaml_records_block_a_vulnerable_pin(tmp_path: Path) -> None:
    db = pypa_db(tmp_path / "advisory-database")
    text = "flask==3.0.0\nrequests==2.19.1\nDjango==1.10\n"
    found = scan_requirements(tmp_path, text, db)
    blocked = sorted((f.line, f.message) for f in found if f.level == "block")
    assert [line for line, _ in blocked] == [2, 3]
    assert "requests 2.19.1 is affected by PYSEC-2018-28 (CVE-2018-18074)" in blocked[0][1]
    assert "fixed in 2.20.0" in blocked[0][1]
    # `1.10` read as YAML's float would be 1.1, and the listed version would not match.
    assert "django 1.10 is affected by PYSEC-2017-9" in blocked[1][1]
    assert all(f.level == "info" for f in found if f.level != "block")  # flask: checked, clean


def test_pypa_yaml_records_pass_a_fixed_version(tmp_path: Path) -> None:
    db = pypa_db(tmp_path / "advisory-database")
    found = scan_requirements(tmp_path, "requests==2.20.0\nDjango==1.11\n", db)
    assert [f.rule for f in found] == ["dependency.added", "dependency.added"]


def test_a_broken_yaml_record_is_a_database_that_could_not_be_read(tmp_path: Path) -> None:
    db = pypa_db(tmp_path / "advisory-database")
    (db / "vulns" / "requests" / "PYSEC-2023-74.yaml").write_text("id: [unclosed\n")
    found = scan_requirements(tmp_path, "requests==2.19.1\n", db)
    (warned,) = [f for f in found if f.level != "info"]
    assert warned.rule == "dependency.unverified" and "PYSEC-2023-74.yaml" in warned.message


# jackline osv update ---------------------------------------------------------------------------


def osv_zip(*records: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for record in records:
            z.writestr(f"{record['id']}.json", json.dumps(record))
    return buffer.getvalue()


RECORD = {
    "id": "PYSEC-2018-28",
    "modified": "2021-06-16T00:03:24Z",
    "aliases": ["CVE-2018-18074"],
    "details": "The Requests package before 2.20.0 sends an HTTP Authorization header ...",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
        }
    ],
}


@pytest.fixture
def server() -> Iterator[dict[str, bytes]]:
    """A server on loopback answering each path with the bytes put in the dict (404 if none);
    `url` in the dict is its address."""
    served: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            body = served.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served["url"] = f"http://127.0.0.1:{httpd.server_address[1]}".encode()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_update_downloads_the_zip_the_scan_then_reads(
    tmp_path: Path, server: dict[str, bytes]
) -> None:
    server["/PyPI/all.zip"] = osv_zip(RECORD)
    seen: list[tuple[int, int | None]] = []
    done = osvdb.update(
        tmp_path / "osv", server["url"].decode() + "/PyPI/all.zip", lambda *p: seen.append(p)
    )
    assert done.path == tmp_path / "osv" / "PyPI" / "all.zip" and done.records == 1
    assert seen[-1] == (len(server["/PyPI/all.zip"]), len(server["/PyPI/all.zip"]))
    assert [p.name for p in done.path.parent.iterdir()] == ["all.zip"]  # no partial file left
    found = scan_requirements(tmp_path, "requests==2.19.1\n", tmp_path / "osv")
    assert [f.rule for f in found if f.level == "block"] == ["dependency.vulnerable"]


def test_a_failed_update_keeps_the_old_copy(tmp_path: Path, server: dict[str, bytes]) -> None:
    old = tmp_path / "osv" / "PyPI" / "all.zip"
    old.parent.mkdir(parents=True)
    kept = osv_zip(RECORD)  # a zip's entries carry the second they were made: built once
    old.write_bytes(kept)
    base = server["url"].decode()
    server["/garbage.zip"] = b"<html>captive portal</html>"
    server["/empty.zip"] = osv_zip()
    for path, said in (
        ("/missing.zip", "answered HTTP 404"),
        ("/garbage.zip", "not a zip of OSV records"),
        ("/empty.zip", "holds no OSV records"),
    ):
        with pytest.raises(JacklineError, match=said):
            osvdb.update(tmp_path / "osv", base + path)
        assert old.read_bytes() == kept
        assert [p.name for p in old.parent.iterdir()] == ["all.zip"]


def jackline(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli_in_process(list(args), cwd, env, timeout=60)


def test_osv_update_command_uses_the_url_variable_and_shows_progress(
    tmp_path: Path, server: dict[str, bytes]
) -> None:
    server["/all.zip"] = osv_zip(RECORD)
    env = {**os.environ, osvdb.URL_VARIABLE: server["url"].decode() + "/all.zip"}
    proc = jackline("osv", "update", "--dest", str(tmp_path / "osv"), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Downloading OSV's PyPI advisories" in proc.stderr and "MiB" in proc.stderr
    assert "1 advisories" in proc.stdout and f'osv_db = "{tmp_path / "osv"}"' in proc.stdout
    assert (tmp_path / "osv" / "PyPI" / "all.zip").read_bytes() == server["/all.zip"]


def test_osv_update_without_a_network_says_so(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens, so the connection is refused at once.
    url = "http://127.0.0.1:9/PyPI/all.zip"
    proc = jackline(
        "osv",
        "update",
        "--dest",
        str(tmp_path / "osv"),
        "--url",
        url,
        cwd=tmp_path,
        env={**os.environ},
    )
    assert proc.returncode == 1
    assert f"Error: could not download {url}: ConnectError" in proc.stderr
    assert "is there a network?" in proc.stderr and "Traceback" not in proc.stderr


def test_osv_update_needs_a_destination(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "jackline.toml").write_text('[project]\nmain = "main"\n')
    proc = jackline("osv", "update", cwd=repo, env={**os.environ})
    assert proc.returncode == 1 and "sets no `[scan] osv_db`: pass --dest DIR" in proc.stderr
