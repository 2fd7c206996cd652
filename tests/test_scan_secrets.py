"""The secret scan and the scope scan over real git repositories, and the secret scan measured
against detect-secrets' own public test data (../shared/fixtures/detect-secrets)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import secret_snippets as snippets
from conftest import SHARED_FIXTURES
from detect_secrets.filters.heuristic import is_indirect_reference
from secret_snippets import FALSE_ALARMS, Snippet
from secret_snippets import SECRETS as SNIPPET_SECRETS

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


# ---- Levels on real shapes (tests/secret_snippets.py) -----------------------------------------


def _top(repo: Path, s: Snippet) -> tuple[str, list[str]]:
    target = repo / s.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(s.text)
    found = secret_scan.scan(_change(repo))
    levels = [f.level for f in found.findings]
    top = next((lv for lv in ("block", "warn", "info") if lv in levels), "none")
    return top, [f.message for f in found.findings]


@pytest.mark.parametrize("snippet", SNIPPET_SECRETS, ids=lambda s: s.name)
def test_a_secret_in_any_code_shape_blocks(repo: Path, snippet: Snippet) -> None:
    top, said = _top(repo, snippet)
    assert top == "block", said


@pytest.mark.parametrize("snippet", FALSE_ALARMS, ids=lambda s: s.name)
def test_known_non_secrets_do_not_block(repo: Path, snippet: Snippet) -> None:
    top, said = _top(repo, snippet)
    allowed = ("info", "none") if snippet.expect == "quiet" else ("warn", "info", "none")
    assert top in allowed, said


def test_detect_secrets_indirect_reference_filter_no_longer_hides_provider_patterns(
    repo: Path,
) -> None:
    """detect-secrets' `is_indirect_reference` drops a line shaped like `x = f(...)` before any
    plugin looks; kept only for generic plugins, its own GitHub pattern sees the key."""
    line = f'API_KEY = os.getenv("API_KEY", "{snippets.GHP}")'
    assert is_indirect_reference(line)
    (repo / "config.py").write_text(line + "\n")
    kinds = {h.type for _, h in secret_scan._detected(_change(repo), whole_files=True)}
    assert "GitHub Token" in kinds


def test_each_finding_says_where_its_level_comes_from(repo: Path) -> None:
    (repo / "a.py").write_text(f'KEY = "{snippets.GOOGLE}"\nblob = "{snippets.AWS_SECRET}"\n')
    found = secret_scan.scan(_change(repo))
    said = {f.line: (f.level, f.message) for f in found.findings}
    assert said[1] == ("block", "Google API key added: AIza…[39 chars] (provider format -> block)")
    assert said[2][0] == "warn" and "(entropy only -> warn)" in said[2][1]
    assert found.blocking == tuple(f for f in found.findings if f.line == 1)
    assert snippets.GOOGLE in found.values and snippets.AWS_SECRET in found.values


def test_placeholders_templates_and_test_files(repo: Path) -> None:
    lines = {
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": "warn",  # a placeholder body
        "postgres://app:${DB_PASSWORD}@db/app": None,  # a template
        "POSTGRES_PASSWORD=postgres": "warn",  # a development default
        "SECRET_KEY = settings.SECRET_KEY": None,  # a reference
        'CSRF_HEADER_TOKEN = "X-CSRFToken"': "warn",  # a name, not a password
    }
    for text, level in lines.items():
        hits = [h.level for _, h in secret_scan.own_hits("app/conf.env", text)]
        assert hits == ([level] if level else []), text
    (hit,) = [h for _, h in secret_scan.own_hits("tests/test_db.py", 'u = "pg://a:Zx9!kq2Lp@h/d"')]
    assert (hit.level, hit.source) == ("warn", "test file")
    # A provider's key in a test file is a key all the same.
    (hit,) = [h for _, h in secret_scan.own_hits("tests/test_api.py", snippets.ANTHROPIC)]
    assert hit.level == "block"


# ---- The reviewed baseline --------------------------------------------------------------------


def _baseline(entries: dict[str, list[dict[str, object]]]) -> str:
    return json.dumps({"version": "1.5.0", "results": entries})


def _listed(path: str, value: str, **extra: object) -> dict[str, list[dict[str, object]]]:
    return {path: [{"type": "Secret Keyword", "hashed_secret": _sha1(value), **extra}]}


def _sha1(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()  # noqa: S324 - detect-secrets' format


def test_a_baseline_at_the_base_commit_excuses_a_reviewed_value(repo: Path) -> None:
    key = snippets.SENDGRID
    (repo / ".secrets.baseline").write_text(_baseline(_listed("fixtures/mail.py", key)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "reviewed: the revoked key in the mail fixture")
    (repo / "fixtures").mkdir()
    (repo / "fixtures" / "mail.py").write_text(f'KEY = "{key}"\n')
    (repo / "other.py").write_text(f'KEY = "{key}"\n')  # the same value elsewhere: not reviewed
    found = secret_scan.scan(_change(repo))
    levels = {f.file: f.level for f in found.findings}
    assert levels == {"fixtures/mail.py": "info", "other.py": "block"}
    (reviewed,) = [f for f in found.findings if f.file == "fixtures/mail.py"]
    assert "reviewed: listed in .secrets.baseline at the base commit -> info" in reviewed.message


def test_a_baseline_the_agent_writes_excuses_nothing(repo: Path) -> None:
    """The workspace is the agent's: a baseline entry added there, in the working tree or in a
    commit of its own, has not been reviewed by anyone."""
    key = snippets.GITHUB_PAT
    (repo / "app.py").write_text(f'TOKEN = "{key}"\n')
    (repo / ".secrets.baseline").write_text(_baseline(_listed("app.py", key)))
    found = secret_scan.scan(_change(repo))
    assert [f.level for f in found.findings if f.file == "app.py"] == ["block"]
    assert key in found.values
    # Nor does a link to a baseline outside the workspace: nothing follows it.
    outside = repo.parent / "elsewhere.baseline"
    outside.write_text(_baseline(_listed("app.py", key)))
    (repo / ".secrets.baseline").unlink()
    (repo / ".secrets.baseline").symlink_to(outside)
    found = secret_scan.scan(_change(repo))
    assert [f.level for f in found.findings if f.file == "app.py"] == ["block"]
    base = _git(repo, "rev-parse", "HEAD")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "agent: a baseline of its own, then the key")
    committed = secret_scan.scan_commits(repo, base)
    assert [f.level for f in committed.findings if f.file == "app.py"] == ["block"]


def test_a_baseline_entry_audited_as_a_secret_or_unreadable_excuses_nothing(repo: Path) -> None:
    key = snippets.HF
    (repo / ".secrets.baseline").write_text(_baseline(_listed("a.py", key, is_secret=True)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "audited: a real secret")
    (repo / "a.py").write_text(f'login(token="{key}")\n')
    assert [f.level for f in secret_scan.scan(_change(repo)).findings] == ["block"]
    (repo / "a.py").unlink()
    (repo / ".secrets.baseline").write_text("{not json")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "a broken baseline")
    (repo / "a.py").write_text(f'login(token="{key}")\n')
    found = secret_scan.scan(_change(repo))
    assert sorted((f.rule, f.level) for f in found.findings) == [
        ("secret.baseline-unreadable", "warn"),
        ("secret.hugging-face-token", "block"),
    ]


def test_every_provider_pattern_finds_its_format() -> None:
    """One made-up key per provider pattern, on a line of code that detect-secrets' filters
    would drop (`x = f(...)`); each found by its own pattern at block."""
    r = snippets._rand
    hexd = "0123456789abcdef"
    samples = {
        "GitHub token": snippets.GHP,
        "GitHub fine-grained token": snippets.GITHUB_PAT,
        "GitLab token": snippets.GITLAB,
        "Google API key": snippets.GOOGLE,
        "Anthropic API key": snippets.ANTHROPIC,
        "OpenAI API key": snippets.OPENAI_PROJECT,
        "AWS Access Key": snippets.AWS_ID,
        "Slack token": snippets.SLACK,
        "Slack webhook": f"https://hooks.slack.com/services/T{r(8).upper()}/B{r(8).upper()}/{r(24)}",
        "Discord webhook": f"https://discord.com/api/webhooks/{r(18, '0123456789')}/{r(68)}",
        "Stripe live key": snippets.STRIPE,
        "Hugging Face token": snippets.HF,
        "npm token": snippets.NPM,
        "PyPI token": snippets.PYPI,
        "SendGrid API key": snippets.SENDGRID,
        "Shopify token": snippets.SHOPIFY,
        "DigitalOcean token": snippets.DIGITALOCEAN,
        "Databricks token": "dapi" + r(32, hexd),
        "Groq API key": "gsk_" + r(52),
        "xAI API key": "xai-" + r(80),
        "Replicate token": "r8_" + r(37),
        "Linear API key": "lin_api_" + r(40),
        "HashiCorp Vault token": "hvs." + r(92),
        "Postman API key": f"PMAK-{r(24, hexd)}-{r(34, hexd)}",
        "Twilio API key": "SK" + r(32, hexd),
    }
    assert set(samples) == set(secret_scan.PROVIDERS)
    for name, key in samples.items():
        hits = list(secret_scan.own_hits("app/client.py", f'client = Client(key="{key}")'))
        assert hits == [(key, secret_scan.Hit(name, "block", "provider format"))], name


def test_a_key_printed_in_any_code_shape_is_found_in_a_log(tmp_path: Path) -> None:
    """What the agent printed is redacted by what this finds: the same shapes count there."""
    log = tmp_path / "output.log"
    log.write_text(
        f'API_KEY = os.getenv("API_KEY", "{snippets.GHP}")\n'
        f"curl -H 'Authorization: Bearer {snippets.ANTHROPIC}' https://api.example.com\n"
        "connecting to postgres://app:hX9rT2qLm4@db:5432/app\n"
        "all 12 checks passed\n"
    )
    found = secret_scan.scan_text_file(log)
    assert {snippets.GHP, snippets.ANTHROPIC, "hX9rT2qLm4"} <= found


def test_credential_shapes_in_configuration_and_code() -> None:
    password = "hX9rT2qLm4-aa8Zq"
    shapes = {
        "mysite/settings.py": f'SECRET_KEY: str = "{password}"',
        "docker-compose.yml": f"      - POSTGRES_PASSWORD={password}",
        "k8s/deploy.yaml": f"  POSTGRES_PASSWORD: {password}",
        "config.json": f'{{"API_TOKEN": "{password}"}}',
        "Dockerfile": f"ENV DB_PASSWORD={password}",
        "app/cache.py": f'CACHE = redis.from_url("redis://:{password}@cache:6379/0")',
        "app/db.py": f'DB_PASSWORD = os.getenv("DB_PASSWORD", "{password}")',
    }
    for path, text in shapes.items():
        assert [(v, h.level) for v, h in secret_scan.own_hits(path, text)] == [
            (password, "block")
        ], path
    # In code an unquoted value is a reference, whatever its annotation.
    assert not list(secret_scan.own_hits("s.py", 'SECRET_KEY: Final[str] = os.environ["X"]'))
