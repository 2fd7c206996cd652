"""The morning report, against real things: HTTP servers on loopback, log files, an offline OSV
copy, git repositories, commands, and run records in a real store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process
from rich.console import Console

from jackline import config as jconfig
from jackline.guard.audit import AuditLog
from jackline.guard.redact import Redactor
from jackline.health import Item, Report, gather, main, prometheus, rates
from jackline.health.render import table, to_json, to_markdown
from jackline.models import Run
from jackline.store import Store

Routes = dict[str, tuple[int, str, float]]
"""path -> (status, body, seconds to wait before answering)"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JACKLINE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    s = Store(home / "jackline.db")
    yield s
    s.close()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        routes: Routes = self.server.routes  # type: ignore[attr-defined]
        status, body, delay = routes.get(self.path, (404, "no such page", 0))
        time.sleep(delay)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:
            pass  # the client gave up waiting: what a timeout test wants

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Routes], str]]:
    """Start a real HTTP server on a free loopback port; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(routes: Routes) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.routes = routes  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on: bound to learn a free one, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(repo: Path, *args: str) -> str:
    argv = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for rel, text in {"README.md": "shop\n", **(files or {})}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def report_of(repo: Path, store: Store, health: dict[str, Any], **rest: Any) -> Report:
    config = jconfig.parse({"health": health, "scan": {"pip_audit": False}, **rest})
    return gather(repo, config, store)


def section(report: Report, name: str) -> list[Item]:
    return [i for i in report.items if i.section == name]


def one(report: Report, name: str) -> Item:
    found = section(report, name)
    assert len(found) == 1, found
    return found[0]


# services -------------------------------------------------------------------------------------


def test_a_service_that_is_up_is_ok_and_one_nothing_listens_on_needs_attention(
    tmp_path: Path, store: Store, serve: Callable[[Routes], str]
) -> None:
    url = serve({"/healthz": (200, "ok", 0)})
    down = f"http://127.0.0.1:{free_port()}/healthz"
    services = [{"name": "shop", "url": f"{url}/healthz"}, {"name": "billing", "url": down}]
    report = report_of(make_repo(tmp_path), store, {"services": services})
    shop, billing = (
        next(i for i in section(report, "services") if i.name == n) for n in ("shop", "billing")
    )
    assert shop.state == "ok" and shop.summary.startswith("200 in ")
    assert billing.state == "attention" and "connection refused" in billing.summary
    assert down in billing.summary
    assert report.items.index(billing) < report.items.index(shop)


def test_a_service_with_the_wrong_status_shows_what_it_answered(
    tmp_path: Path, store: Store, serve: Callable[[Routes], str]
) -> None:
    url = serve({"/healthz": (503, "database unreachable", 0)})
    report = report_of(
        make_repo(tmp_path), store, {"services": [{"name": "shop", "url": f"{url}/healthz"}]}
    )
    item = one(report, "services")
    assert item.state == "attention"
    assert "answered 503, expected 200" in item.summary and item.detail == "database unreachable"


def test_a_service_that_does_not_answer_in_time_needs_attention(
    tmp_path: Path, store: Store, serve: Callable[[Routes], str]
) -> None:
    url = serve({"/slow": (200, "late", 1.5)})
    services = [{"name": "slow", "url": f"{url}/slow", "timeout": 0.3}]
    started = time.monotonic()
    item = one(report_of(make_repo(tmp_path), store, {"services": services}), "services")
    assert item.state == "attention" and "no answer within 0.3s" in item.summary
    assert time.monotonic() - started < 1.4


def test_a_redirect_is_reported_not_followed(
    tmp_path: Path, store: Store, serve: Callable[[Routes], str]
) -> None:
    url = serve({"/healthz": (302, "", 0), "/login": (200, "log in", 0)})
    item = one(
        report_of(
            make_repo(tmp_path), store, {"services": [{"name": "s", "url": f"{url}/healthz"}]}
        ),
        "services",
    )
    assert item.state == "attention" and "answered 302" in item.summary


# errors in a log ------------------------------------------------------------------------------


def stamp(ago: timedelta) -> str:
    return (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local(ago: timedelta) -> str:
    """As Python's logging writes it: local time, no offset, a comma before the milliseconds."""
    return (datetime.now() - ago).strftime("%Y-%m-%d %H:%M:%S,123")


TRACEBACK = """\
Traceback (most recent call last):
  File "shop/app.py", line 12, in handler
    raise KeyError(item)
KeyError: 'apple'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "shop/app.py", line 14, in handler
    raise ValueError("ERROR: no item")
ValueError: ERROR: no item
"""


def test_an_error_burst_in_the_window_needs_attention_and_older_errors_do_not_count(
    tmp_path: Path, store: Store
) -> None:
    minutes, hours = timedelta(minutes=5), timedelta(hours=3)
    log = "\n".join(
        [
            f"{stamp(hours)} ERROR old failure",
            f"{stamp(hours)} ERROR another old failure",
            f"{stamp(minutes)} INFO GET /api/items 200",
            f"{stamp(minutes)} ERROR payment provider timed out",
            f"[{stamp(minutes)}] CRITICAL disk full",
            f"{local(minutes)} ERROR handler crashed",
            TRACEBACK.rstrip(),  # belongs to the line above: one error, not three
            f"{stamp(minutes)} INFO GET / 200",
        ]
    )
    repo = make_repo(tmp_path)
    (repo / "var").mkdir()
    (repo / "var" / "production.log").write_text(log + "\n")
    errors = [{"name": "production", "log": "var/production.log", "window": "1h"}]
    item = one(report_of(repo, store, {"errors": errors}), "errors")
    assert item.state == "attention"
    assert item.summary.startswith("3 error(s) in the last 1h in var/production.log")
    assert "2 matching record(s) before the window, not counted" in item.detail
    assert "ERROR handler crashed" in item.detail and "old failure" not in item.detail


def test_errors_at_or_below_the_threshold_are_ok(tmp_path: Path, store: Store) -> None:
    repo = make_repo(tmp_path)
    (repo / "app.log").write_text(f"{stamp(timedelta(minutes=1))} ERROR one\n")
    errors = [{"name": "app", "log": "app.log", "threshold": 1}]
    assert one(report_of(repo, store, {"errors": errors}), "errors").state == "ok"


def undated_log(path: Path) -> None:
    path.write_text("starting\nERROR cannot reach cache\n" + TRACEBACK + "serving on :8000\n")


def test_undated_errors_count_when_the_file_changed_within_the_window(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path)
    undated_log(repo / "app.log")
    item = one(report_of(repo, store, {"errors": [{"name": "app", "log": "app.log"}]}), "errors")
    # One plain error line, and the chained traceback as one block.
    assert item.summary.startswith("2 error(s)") and item.state == "attention"
    assert "2 matching undated line(s) or traceback(s) counted" in item.detail
    assert "within the 1h window" in item.detail


def test_undated_errors_do_not_count_when_the_file_is_older_than_the_window(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path)
    undated_log(repo / "app.log")
    old = time.time() - 7200
    os.utime(repo / "app.log", (old, old))
    item = one(report_of(repo, store, {"errors": [{"name": "app", "log": "app.log"}]}), "errors")
    assert item.state == "ok" and item.summary.startswith("0 error(s)")
    assert "not counted: the file last changed 2h ago, before the 1h window" in item.detail


def test_a_missing_log_is_unknown(tmp_path: Path, store: Store) -> None:
    repo = make_repo(tmp_path)
    item = one(report_of(repo, store, {"errors": [{"name": "app", "log": "nope.log"}]}), "errors")
    assert item.state == "unknown" and "does not exist" in item.summary


def test_records_group_a_traceback_and_split_dated_lines() -> None:
    lines = ["2024-05-01T10:00:00Z ERROR a", *TRACEBACK.splitlines(), "2024-05-01T10:00:01Z ok"]
    found = list(rates.records(lines))
    assert [len(r.lines) for r in found] == [1 + len(TRACEBACK.splitlines()), 1]
    assert rates.stamp("2024-13-01T10:00:00Z oops") is None  # looks like a date, is not


# errors from /metrics -------------------------------------------------------------------------

METRICS = """\
# HELP http_requests_total Requests by status.
# TYPE http_requests_total counter
http_requests_total{code="200",path="/api/items"} 1027
http_requests_total{code="500",path="/api/items"} 3
http_requests_total{code="500",path="/checkout"} 4 1714557600000
# TYPE queue_depth gauge
queue_depth{queue="mail \\"outbound\\""} 12.5
up 1
"""


def test_a_metric_above_its_threshold_needs_attention_and_below_is_ok(
    tmp_path: Path, store: Store, serve: Callable[[Routes], str]
) -> None:
    url = serve({"/metrics": (200, METRICS, 0)}) + "/metrics"
    errors = [
        {
            "name": "5xx",
            "metrics_url": url,
            "metric": 'http_requests_total{code="500"}',
            "threshold": 5,
        },
        {
            "name": "queue",
            "metrics_url": url,
            "metric": 'queue_depth{queue="mail \\"outbound\\""}',
            "threshold": 20,
        },
    ]
    report = report_of(make_repo(tmp_path), store, {"errors": errors})
    five, queue = (
        next(i for i in section(report, "errors") if i.name == n) for n in ("5xx", "queue")
    )
    assert five.state == "attention"  # 3 + 4 across both paths
    assert five.summary == f'http_requests_total{{code="500"}} = 7 at {url} (threshold 5)'
    assert "counts since the process started" in five.detail
    assert queue.state == "ok" and "= 12.5" in queue.summary


def test_a_metric_that_is_absent_or_unreachable_is_unknown(
    tmp_path: Path, store: Store, serve: Callable[[Routes], str]
) -> None:
    url = serve({"/metrics": (200, METRICS, 0)}) + "/metrics"
    errors = [
        {"name": "gone", "metrics_url": url, "metric": "errors_total"},
        {"name": "down", "metrics_url": f"http://127.0.0.1:{free_port()}/metrics", "metric": "up"},
    ]
    report = report_of(make_repo(tmp_path), store, {"errors": errors})
    by_name = {i.name: i for i in section(report, "errors")}
    assert all(i.state == "unknown" for i in by_name.values())
    assert "no sample of errors_total" in by_name["gone"].summary
    assert "http_requests_total" in by_name["gone"].detail
    assert "could not read" in by_name["down"].summary and "refused" in by_name["down"].summary


def test_an_error_source_with_no_log_and_no_metric_is_a_config_error() -> None:
    from jackline import config
    from jackline.errors import ConfigError

    with pytest.raises(ConfigError, match="health.errors.0: `metrics_url` needs `metric`"):
        config.parse({"health": {"errors": [{"name": "x", "metrics_url": "http://h/metrics"}]}})
    with pytest.raises(ConfigError, match="give exactly one of `log`"):
        config.parse({"health": {"errors": [{"name": "x"}]}})


def test_the_exposition_parser_reads_labels_escapes_and_special_values() -> None:
    page = prometheus.parse(METRICS + 'temp{a="x,y",b="\\\\"} +Inf\nnan_metric NaN\n')
    queue = next(s for s in page.samples if s.name == "queue_depth")
    assert dict(queue.labels) == {"queue": 'mail "outbound"'}
    temp = next(s for s in page.samples if s.name == "temp")
    assert dict(temp.labels) == {"a": "x,y", "b": "\\"} and temp.value == float("inf")
    assert page.type_of("http_requests_total") == "counter"
    with pytest.raises(ValueError, match="line 2"):
        prometheus.parse("ok 1\nbroken{a=1} 2\n")
    with pytest.raises(ValueError, match="only `=` matches"):
        prometheus.selector('x{code!="200"}')


# dependencies ---------------------------------------------------------------------------------


def osv_copy(root: Path) -> Path:
    """A copy of OSV's PyPI advisories, in the layout OSV publishes: `PyPI/<id>.json`."""
    folder = root / "PyPI"
    folder.mkdir(parents=True)
    advisories = [
        ("PYSEC-2018-28", [{"introduced": "0"}, {"fixed": "2.20.0"}], ["CVE-2018-18074"]),
        ("GHSA-j8r2-6x86-q33q", [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}], ["CVE-2023-32681"]),
    ]
    for ident, events, aliases in advisories:
        advisory = {
            "id": ident,
            "aliases": aliases,
            "summary": f"a flaw in requests ({ident})",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "requests"},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                }
            ],
        }
        (folder / f"{ident}.json").write_text(json.dumps(advisory))
    return root


def test_a_vulnerable_dependency_on_main_is_listed_with_its_advisories(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path, {"requirements.txt": "six==1.16.0\nrequests==2.19.1\n"})
    scan = {"osv_db": str(osv_copy(tmp_path / "osv"))}
    report = report_of(repo, store, {}, scan=scan)
    item = one(report, "dependencies")
    assert (item.name, item.state) == ("requests 2.19.1", "attention")
    assert (
        item.summary == "GHSA-j8r2-6x86-q33q, PYSEC-2018-28; fixed in 2.31.0 (requirements.txt:2)"
    )
    assert "CVE-2018-18074" in item.detail


def test_dependencies_are_read_from_main_not_the_working_tree(tmp_path: Path, store: Store) -> None:
    repo = make_repo(tmp_path, {"requirements.txt": "requests==2.31.0\n"})
    (repo / "requirements.txt").write_text("requests==2.19.1\n")  # uncommitted: not main
    scan = {"osv_db": str(osv_copy(tmp_path / "osv"))}
    item = one(report_of(repo, store, {}, scan=scan), "dependencies")
    assert item.state == "ok"
    assert item.summary.startswith("1 dependencies in requirements.txt: none known-vulnerable")


def test_a_dependency_check_that_cannot_run_is_unknown_with_the_reason(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path, {"requirements.txt": "requests==2.19.1\n"})
    report = report_of(repo, store, {}, scan={"osv_db": str(tmp_path / "no-such-copy")})
    item = one(report, "dependencies")
    assert item.state == "unknown" and "is not a directory" in item.summary


def test_a_named_dependency_file_that_main_lacks_is_unknown(tmp_path: Path, store: Store) -> None:
    repo = make_repo(tmp_path, {"requirements.txt": "six==1.16.0\n"})
    scan = {"osv_db": str(osv_copy(tmp_path / "osv"))}
    report = report_of(
        repo, store, {"dependencies": ["requirements.txt", "uv.lock", "README.md"]}, scan=scan
    )
    by_name = {i.name: i for i in section(report, "dependencies")}
    assert "no such file on main" in by_name["uv.lock"].summary
    assert "not a file the scan reads" in by_name["README.md"].summary
    assert by_name["dependencies"].state == "ok"


# main -----------------------------------------------------------------------------------------


def test_main_command_passing_is_ok_and_failing_needs_attention_with_its_output(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path)
    passing = one(report_of(repo, store, {"main_command": "echo all green"}), "main")
    assert passing.state == "ok" and "`echo all green` passed" in passing.summary
    failing_cmd = [sys.executable, "-c", "print('3 tests failed'); raise SystemExit(2)"]
    failing = one(report_of(repo, store, {"main_command": failing_cmd}), "main")
    assert failing.state == "attention" and "failed (exit 2)" in failing.summary
    assert "3 tests failed" in failing.detail


def test_main_command_output_is_redacted(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value-123")
    item = one(
        report_of(make_repo(tmp_path), store, {"main_command": "echo $DEPLOY_TOKEN"}), "main"
    )
    assert "s3cr3t-value-123" not in item.detail and "[redacted:DEPLOY_TOKEN]" in item.detail


def test_main_command_past_its_timeout_is_unknown(tmp_path: Path) -> None:
    started = time.monotonic()
    item = main.from_command(make_repo(tmp_path), "sleep 10", timeout=0.5)
    assert item.state == "unknown" and "did not finish within 0.5s" in item.summary
    assert time.monotonic() - started < 8


def merged_run(store: Store, repo: Path, sha: str, passed: bool = True) -> Run:
    """A run record as the runner leaves it after a merge: its checks, then the merge."""
    now = time.time()
    run = Run(
        id=f"run-{int(now * 1000)}",
        task="Fix add",
        repo=str(repo),
        agent="default",
        blueprint="standard",
        status="merged",
        branch="agent/fix-add",
        submitted_by="alice",
        created_at=now - 600,
        updated_at=now - 60,
        merge_sha=sha,
    )
    store.insert_run(run)
    audit = AuditLog(store, Redactor({}))
    check = {
        "name": "test",
        "passed": passed,
        "exit_code": 0 if passed else 1,
        "summary": "5 passed",
    }
    audit.record(run.id, "round", round=1, passed=passed, checks=[check])
    audit.record(run.id, "merge", outcome="merged", sha=sha, by="bob")
    return run


def test_main_without_a_command_shows_the_checks_jackline_recorded_at_its_last_merge(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path)
    assert one(report_of(repo, store, {}), "main").state == "unknown"  # nothing merged yet
    sha = git(repo, "rev-parse", "HEAD")
    run = merged_run(store, repo, sha)
    item = one(report_of(repo, store, {}), "main")
    assert item.state == "ok"
    assert item.summary.startswith(f"checks passed on {sha[:10]} ({run.id}, merged ")
    assert "by bob" in item.summary and item.summary.endswith(": test")
    (repo / "hotfix.txt").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pushed straight to main")
    moved = one(report_of(repo, store, {}), "main")
    assert "main is 1 commit(s) past it, not checked by Jackline" in moved.summary


# waiting --------------------------------------------------------------------------------------


def waiting_run(store: Store, repo: Path, run_id: str, age: float, task: str) -> None:
    now = time.time()
    store.insert_run(
        Run(
            run_id,
            task,
            str(repo),
            "default",
            "standard",
            "awaiting_review",
            f"agent/{run_id}",
            "alice",
            now - age,
            now - age,
            blocking=1,
        )
    )


def test_runs_awaiting_review_are_listed_oldest_first_and_overdue_after_a_day(
    tmp_path: Path, store: Store
) -> None:
    repo = make_repo(tmp_path)
    assert one(report_of(repo, store, {}), "waiting").state == "ok"
    waiting_run(store, repo, "run-fresh", 3600, "Add a search box")
    waiting_run(store, repo, "run-old", 2 * 86400 + 60, "Fix the login bug")
    waiting_run(store, tmp_path / "elsewhere", "run-other", 60, "Another project's run")
    found = section(report_of(repo, store, {}), "waiting")
    assert [i.name for i in found] == ["run-old", "run-fresh"]
    assert found[0].summary == "overdue: awaiting review for 2d: Fix the login bug"
    assert found[1].summary == "awaiting review for 1h: Add a search box"
    assert all(i.state == "attention" for i in found)
    assert "1 block-level finding(s)" in found[0].detail


# the report and its renderings ----------------------------------------------------------------


def sample_report(tmp_path: Path, store: Store) -> Report:
    config = jconfig.parse({"health": {"main_command": "true"}, "scan": {"pip_audit": False}})
    extra = [Item("flags", "new-checkout", "attention", "expired on 2024-01-01 (owner: carol)")]
    return gather(make_repo(tmp_path), config, store, extra=extra)


def test_extra_items_join_and_attention_comes_first(tmp_path: Path, store: Store) -> None:
    report = sample_report(tmp_path, store)
    states = [i.state for i in report.items]
    assert states == sorted(states, key=lambda s: s == "ok")
    assert report.items[0].name == "new-checkout" and not report.ok


def test_markdown_puts_attention_first_one_line_per_item(tmp_path: Path, store: Store) -> None:
    text = to_markdown(sample_report(tmp_path, store))
    assert text.startswith("### Jackline health, ") and "1 item(s) need attention" in text
    attention, ok = text.split("**OK**")
    assert "- **flags · new-checkout** (attention): expired on 2024-01-01" in attention
    assert "- **main**: `true` passed" in ok


def test_json_carries_every_item_and_the_time(tmp_path: Path, store: Store) -> None:
    data = json.loads(to_json(sample_report(tmp_path, store)))
    assert data["attention"] == 1 and data["ok"] is False
    assert datetime.fromisoformat(data["at"]).tzinfo is not None
    assert {"section", "name", "state", "summary", "detail"} <= set(data["items"][0])


def test_the_rich_table_lists_attention_before_ok(tmp_path: Path, store: Store) -> None:
    console = Console(record=True, width=140)
    console.print(table(sample_report(tmp_path, store)))
    text = console.export_text()
    assert text.index("new-checkout") < text.index("passed")
    assert "1 item(s) need attention" in text


# the command line -----------------------------------------------------------------------------


def jackline(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JACKLINE_HOME": str(home)}
    return cli_in_process(["health", *args], repo, env, timeout=60)


def test_the_cli_reports_a_service_down_exits_0_and_1_with_strict(
    tmp_path: Path, home: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}/healthz"
    toml = f'[scan]\npip_audit = false\n[[health.services]]\nname = "shop"\nurl = "{down}"\n'
    repo = make_repo(tmp_path, {"jackline.toml": toml})
    shown = jackline(repo, home)
    assert shown.returncode == 0 and "connection refused" in shown.stdout
    data = json.loads(jackline(repo, home, "--json").stdout)
    states = {i["name"]: i["state"] for i in data["items"]}
    assert states["shop"] == "attention" and states["main"] == "unknown"  # nothing merged yet
    assert jackline(repo, home, "--markdown", "--strict").returncode == 1
    assert jackline(repo, home, "--json", "--markdown").returncode == 2


def test_the_whole_report_lists_expired_flags_and_the_schedule_keeps_it(
    tmp_path: Path, home: Path
) -> None:
    from jackline import health, schedule

    flags_toml = (
        "[flags.old_checkout]\n"
        'description = "The checkout before the redesign"\n'
        'owner = "bob"\nexpires = 2020-01-31\n'
        "[flags.old_checkout.values]\ndefault = false\n"
        "[flags.new_search]\n"
        'owner = "carol"\nexpires = 2999-01-01\n'
        "[flags.new_search.values]\ndefault = true\n"
    )
    toml = '[health]\nevery = "1d"\n[scan]\npip_audit = false\n'
    repo = make_repo(tmp_path, {"flags.toml": flags_toml, "jackline.toml": toml})
    done = health.report(repo)
    (flag,) = [i for i in done.items if i.section == "flags"]
    assert flag.name == "old_checkout" and flag.state == "attention"
    assert "expired on 2020-01-31 (owner bob)" in flag.summary

    assert schedule.tick("health", str(repo)) == 86_400  # the next report in a day
    kept = (home / "reports" / "repo" / "latest.md").read_text()
    assert "old_checkout" in kept and "new_search" not in kept


def test_github_actions_on_main_show_in_the_report_with_a_github_forge(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jackline.testing.github import FakeGitHub

    monkeypatch.setenv("HEALTH_GH_TOKEN", "ghp_health")
    with FakeGitHub("acme/shop", token="ghp_health") as gh:
        forge = {
            "kind": "github",
            "repository": "acme/shop",
            "token": "env:HEALTH_GH_TOKEN",
            "api_url": gh.url,
        }
        repo = make_repo(tmp_path)
        gh.add_workflow_run("lint", "success", head_sha="a" * 40)
        gh.add_workflow_run("tests", "failure", head_sha="b" * 40)
        gh.add_workflow_run("tests", "success", branch="feature", head_sha="c" * 40)
        report = report_of(repo, store, {}, forge=forge)
        (actions,) = [i for i in section(report, "main") if i.name == "GitHub Actions"]
        assert actions.state == "attention"
        assert actions.summary == "GitHub Actions on main: 1 of 2 workflows passing; failing: tests"
        assert "tests: failure at bbbbbbbbbb" in actions.detail

        gh.add_workflow_run("tests", "success", head_sha="d" * 40)  # fixed: the newest wins
        report = report_of(repo, store, {}, forge=forge)
        (actions,) = [i for i in section(report, "main") if i.name == "GitHub Actions"]
        assert actions.state == "ok" and "2 of 2 workflows passing" in actions.summary
        assert not gh.invalid  # every request matched GitHub's own description
