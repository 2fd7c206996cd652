"""The secret scan and the scope scan over real git repositories, and the secret scan measured
against detect-secrets' own public test data (../shared/fixtures/detect-secrets)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED_FIXTURES

from jackline import config as cfg
from jackline.scans import Change, run_scans
from jackline.scans import scope as scope_scan
from jackline.scans import secrets as secret_scan

FIXTURES = SHARED_FIXTURES / "detect-secrets"

# Labelled from the fixtures' README: (file, line) holding a secret, and lines that hold none.
SECRETS = {
    ("each_secret.py", 3),  # base64_secret
    ("each_secret.py", 4),  # hex_secret
    ("each_secret.py", 5),  # basic_auth (password in URL)
    ("each_secret.py", 7),  # aws_access_key
    ("each_secret.py", 8),  # aws_secret_access_key
    ("files/file_with_secrets.py", 3),  # SUPER_SEECRET_VALUE
    ("files/file_with_secrets.py", 4),  # VERY_SECRET_TOO (allowlisted by pragma)
    ("config.env", 1),  # mimi=
    ("config.yaml", 6),  # nested.value: AKIAabcdefghijklmnop
    ("config.yaml", 13),  # allowlisted_api_key (allowlisted by pragma)
    ("config.yaml", 15),  # high_entropy_binary_secret (!!binary)
    ("sample.diff", 10),  # "012345678a"
    ("sample.diff", 22),  # "2b00042f7481c7b056c4b410d28f33cf"
    ("sample.diff", 34),  # the same string again
    ("sample.diff", 72),  # "hashed_secret" in .secrets.baseline
}
CLEAN = {
    ("each_secret.py", 1),  # red_herring = 'DEADBEEF'
    ("config.yaml", 2),  # some_value_here: not_secret
    *(("files/file_with_no_secrets.py", n) for n in range(1, 20)),
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    (r / "app.py").write_text("TOKEN = load_from_env()\n")
    _git(r, "add", "-A")
    _git(r, "commit", "-q", "-m", "base")
    return r


def _change(repo: Path) -> Change:
    return Change.of_workspace(repo, "HEAD")


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the shared fixtures are not beside the repo")
def test_detect_secrets_public_samples(repo: Path) -> None:
    shutil.copytree(FIXTURES / "test_data", repo / "data")
    found = secret_scan.scan(_change(repo))
    hits = {(f.file.removeprefix("data/"), f.line) for f in found.findings if f.file}
    caught = SECRETS & hits
    missed = SECRETS - hits
    false = CLEAN & hits
    unlabelled = hits - SECRETS - CLEAN
    print(
        f"\ndetect-secrets samples: {len(caught)} found / {len(missed)} missed of "
        f"{len(SECRETS)} labelled secrets; {len(false)} false alarms on {len(CLEAN)} labelled "
        f"clean lines; {len(unlabelled)} hits on unlabelled lines: {sorted(unlabelled)}; "
        f"missed: {sorted(missed)}"
    )
    assert len(caught) >= 14, sorted(missed)
    assert not false
    # The inline allowlist pragma does not hide a secret an agent adds.
    assert ("files/file_with_secrets.py", 4) in hits


def test_only_added_lines_count_and_values_are_masked(repo: Path) -> None:
    key = "AKIAZ7Q3K9L2M4N6P8R1"
    (repo / "old.py").write_text(f'OLD = "{key}"\n')
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "a key that is already in history")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "old.py").write_text(f'OLD = "{key}"\nNEW = 1\n')
    found = secret_scan.scan(Change.of_workspace(repo, base))
    assert found.findings == ()
    (repo / "new.py").write_text(f'KEY = "{key}"\n')
    found = secret_scan.scan(Change.of_workspace(repo, base))
    (finding,) = found.findings
    assert (finding.rule, finding.level, finding.file, finding.line) == (
        "secret.aws-access-key",
        "block",
        "new.py",
        1,
    )
    assert key not in finding.quote + finding.message
    assert "AKIA…[20 chars]" in finding.quote
    assert found.values == {key}


def test_the_runs_own_secret_values_are_matched_exactly(repo: Path) -> None:
    (repo / "notes.txt").write_text("the shop key is plum-orbit-cascade-7\n")
    found = secret_scan.scan(_change(repo), known=["plum-orbit-cascade-7", "short"])
    (finding,) = found.findings
    assert finding.rule == "secret.reference" and finding.line == 1
    assert "plum-orbit-cascade-7" not in finding.quote


def test_gates_and_protected_paths_block(repo: Path) -> None:
    for rel in ("jackline.toml", ".github/workflows/ci.yml", ".jackline/rules/a.md", "infra/db.tf"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x = 1\n")
    config = cfg.parse({"scope": {"protected": ["infra/**"]}})
    findings = scope_scan.scan(_change(repo), config)
    got = {(f.rule, f.file, f.level) for f in findings}
    assert got == {
        ("scope.gate", "jackline.toml", "block"),
        ("scope.gate", ".github/workflows/ci.yml", "block"),
        ("scope.gate", ".jackline/rules/a.md", "block"),
        ("scope.protected", "infra/db.tf", "block"),
    }


def test_size_limits_warn_then_block_at_twice(repo: Path) -> None:
    (repo / "big.py").write_text("".join(f"x{i} = {i}\n" for i in range(30)))
    for limit, level in ((29, "warn"), (15, "warn"), (14, "block"), (30, None)):
        config = cfg.parse({"scope": {"max_changed_lines": limit}})
        levels = [f.level for f in scope_scan.scan(_change(repo), config)]
        assert levels == ([level] if level else []), (limit, levels)
    config = cfg.parse({"scope": {"max_changed_files": 1}})
    (repo / "other.py").write_text("y = 1\n")
    (finding,) = scope_scan.scan(_change(repo), config)
    assert finding.rule == "scope.max-changed-files" and finding.level == "warn"


def test_co_change_rules(repo: Path) -> None:
    config = cfg.parse(
        {
            "scope": {
                "together": [
                    {
                        "when": "src/api/**",
                        "also": ["openapi.yaml"],
                        "why": "INFRASTRUCTURE.md: API changes update the OpenAPI spec first.",
                    }
                ]
            }
        }
    )
    (repo / "src" / "api").mkdir(parents=True)
    (repo / "src" / "api" / "orders.py").write_text("def get(): ...\n")
    (finding,) = scope_scan.scan(_change(repo), config)
    assert (finding.rule, finding.level, finding.file) == (
        "scope.together",
        "warn",
        "src/api/orders.py",
    )
    assert "OpenAPI spec first" in finding.why
    (repo / "openapi.yaml").write_text("openapi: 3.1.0\n")
    assert scope_scan.scan(_change(repo), config) == []


def test_a_scan_that_fails_to_run_is_a_block_finding(repo: Path) -> None:
    def broken(change: Change, config: cfg.JacklineConfig) -> list:  # type: ignore[type-arg]
        raise FileNotFoundError("squawk: not found")

    (repo / "a.py").write_text("a = 1\n")
    report = run_scans(_change(repo), cfg.parse({}), scans={"broken": broken})
    (finding,) = report.findings
    assert finding.rule == "scan.error" and finding.level == "block"
    assert "broken scan failed" in finding.message and "squawk: not found" in finding.message


def test_config_rejects_a_bad_together_rule() -> None:
    with pytest.raises(Exception) as e:
        cfg.parse({"scope": {"together": [{"when": "a/**", "also": []}]}})
    assert "scope.together.0.also" in str(e.value)
