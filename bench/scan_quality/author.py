"""Write the risky corpus: each case's edit made on the real file at the project's pinned commit,
saved as a minimal patch (`git diff -U1`) in `cases/`, and the manifest `cases.toml`.

    python bench/scan_quality/author.py CLONES

The edits are written here as text operations (replace, insert after a line, delete lines, a
new file), so a case can be re-made on a later pinned commit by changing `projects.toml` and
running this again. The tokens are made up (random characters in the provider's format), so
no real credential is in the corpus.
"""

# ruff: noqa: E501 - a case reads best as one line of text to find and one to put
from __future__ import annotations

import random
import shutil
import string
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HC, CTFD, HTTPX, CLICK = "healthchecks/healthchecks", "CTFd/CTFd", "encode/httpx", "pallets/click"
_rng = random.Random(15)
ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


# Made-up tokens in each provider's published format.
GHP = "ghp_" + rand(36)
GH_PAT = "github_pat_11" + rand(20, string.ascii_uppercase + string.digits) + "_" + rand(59)
AIZA = "AIza" + rand(35, ALNUM + "-_")
ANTHROPIC = "sk-ant-api03-" + rand(93, ALNUM + "-_") + "AA"
OPENAI = "sk-proj-" + rand(74, ALNUM + "-_") + "T3BlbkFJ" + rand(74, ALNUM + "-_")
AWS_ID = "AKIA" + rand(16, string.ascii_uppercase + "234567")
AWS_SECRET = rand(40, ALNUM + "/+")
SLACK_BOT = f"xoxb-{rand(12, string.digits)}-{rand(13, string.digits)}-{rand(24)}"
SLACK_HOOK = f"https://hooks.slack.com/services/T{rand(8, string.ascii_uppercase + string.digits)}/B{rand(8, string.ascii_uppercase + string.digits)}/{rand(24)}"
STRIPE = "sk_live_" + rand(24)
SENDGRID = "SG." + rand(22, ALNUM + "-_") + "." + rand(43, ALNUM + "-_")
TELEGRAM = f"{rand(10, string.digits)}:AA{rand(33, ALNUM + '-_')}"
NPM = "npm_" + rand(36)
TWILIO = "SK" + rand(32, "0123456789abcdef")
MAILGUN = "key-" + rand(32, "0123456789abcdef")
DB_PASS = "Vq7" + rand(13)
DJANGO_KEY = "django-insecure-" + rand(
    50, string.ascii_lowercase + string.digits + "!@#$%^&*(-_=+)"
)
PEM_BODY = "\n".join(rand(64, ALNUM + "+/") for _ in range(8))
PRIVATE_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"


@dataclass(frozen=True)
class Spec:
    id: str
    repo: str
    file: str
    category: str
    level: str
    families: tuple[str, ...]
    why: str
    ops: tuple[tuple[str, ...], ...]


SECRET = ("secret",)
SECURITY = ("security", "bandit")
AUTH = ("security", "bandit", "guard", "auth")
"""Removed authentication or authorization: a security rule or a removed-guard rule may say so."""
WEAK = ("guard", "suppression", "scope")
"""A guard weakened in place: a guard rule, a new suppression, or a gate file's change."""
MIG = ("migration", "squawk")
DEP = ("dependency",)
SIZE = ("scope",)

MIGRATION_HEAD = (
    "from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
    '    dependencies = [\n        ("api", "0123_alter_channel_kind"),\n    ]\n\n'
)
ALEMBIC_HEAD = (
    '"""{title}\n\nRevision ID: 1a2b3c4d5e6f\nRevises: f73a96c97449\nCreate Date: 2026-09-01 '
    '10:00:00.000000\n\n"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
    '# revision identifiers, used by Alembic.\nrevision = "1a2b3c4d5e6f"\n'
    'down_revision = "f73a96c97449"\nbranch_labels = None\ndepends_on = None\n\n\n'
)
ALEMBIC_DOWN = "\n\ndef downgrade():\n    pass\n"
HC_MIG = "hc/api/migrations/0124_{}.py"
CTFD_MIG = "migrations/versions/1a2b3c4d5e6f_{}.py"


def specs() -> list[Spec]:
    s: list[Spec] = []

    def add(
        id: str,
        repo: str,
        file: str,
        cat: str,
        level: str,
        fam: tuple[str, ...],
        why: str,
        *ops: tuple[str, ...],
    ) -> None:
        s.append(Spec(id, repo, file, cat, level, fam, why, ops))

    sec = "a token in a provider's format is a leaked credential whatever code surrounds it"
    # --- secrets: block ---
    add(
        "secret-getenv-default-ghp",
        HC,
        "hc/settings.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            'METRICS_KEY = os.getenv("METRICS_KEY")',
            f'GITHUB_TOKEN = os.getenv("GITHUB_TOKEN", "{GHP}")',
        ),
    )
    add(
        "secret-getenv-default-openai",
        CTFD,
        "CTFd/config.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            "class TestingConfig(ServerConfig):",
            f'    OPENAI_API_KEY = os.getenv("OPENAI_API_KEY", "{OPENAI}")',
        ),
    )
    add(
        "secret-dict-value-stripe",
        HC,
        "hc/settings.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            'METRICS_KEY = os.getenv("METRICS_KEY")',
            f'PAYMENT_KEYS = {{"live": "{STRIPE}", "mode": "live"}}',
        ),
    )
    add(
        "secret-requests-arg-sendgrid",
        CTFD,
        "CTFd/utils/email/providers/mailgun.py",
        "secret",
        "block",
        SECRET,
        sec,
        ("sub", 'auth=("api", mailgun_api_key),', f'auth=("api", "{SENDGRID}"),'),
    )
    add(
        "secret-bearer-header-anthropic",
        CTFD,
        "CTFd/auth.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "sub",
            '"Authorization": "Bearer " + str(token),',
            f'"Authorization": "Bearer {ANTHROPIC}",',
        ),
    )
    add(
        "secret-docs-example-ghpat",
        HTTPX,
        "docs/advanced/authentication.md",
        "secret",
        "block",
        SECRET,
        "a docs example with a real-format token is a leaked token if it is real; a person checks",
        (
            "append",
            f'\n```python\nclient = httpx.Client(headers={{"Authorization": "token {GH_PAT}"}})\n```\n',
        ),
    )
    add(
        "secret-github-pat-assign",
        CLICK,
        "examples/repo/repo.py",
        "secret",
        "block",
        SECRET,
        sec,
        ("after", "import click", f'GITHUB_PAT = "{GH_PAT}"'),
    )
    add(
        "secret-google-aiza",
        HC,
        "hc/settings.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            'DISCORD_CLIENT_ID = os.getenv("DISCORD_CLIENT_ID")',
            f'GOOGLE_MAPS_KEY = "{AIZA}"',
        ),
    )
    add(
        "secret-anthropic-call-arg",
        HTTPX,
        "httpx/_main.py",
        "secret",
        "block",
        SECRET,
        sec,
        ("after", "import click", f'DEFAULT_HEADERS = dict(authorization="{ANTHROPIC}")'),
    )
    add(
        "secret-openai-project-key",
        CLICK,
        "examples/complex/complex/cli.py",
        "secret",
        "block",
        SECRET,
        sec,
        ("after", "import click", f'OPENAI_KEY = "{OPENAI}"'),
    )
    add(
        "secret-db-url-password",
        HC,
        "hc/settings.py",
        "secret",
        "block",
        SECRET,
        "a password written into a database URL is a credential",
        (
            "after",
            'METRICS_KEY = os.getenv("METRICS_KEY")',
            f'DATABASE_URL = "postgres://hc:{DB_PASS}@db.internal:5432/hc"',
        ),
    )
    add(
        "secret-compose-postgres-password",
        HC,
        "docker/docker-compose.yml",
        "secret",
        "block",
        SECRET,
        "a literal database password in the compose file is a credential",
        ("sub", "- POSTGRES_PASSWORD=$DB_PASSWORD", f"- POSTGRES_PASSWORD={DB_PASS}"),
    )
    add(
        "secret-compose-db-url",
        CTFD,
        "docker-compose.yml",
        "secret",
        "block",
        SECRET,
        "a literal password in a database URL in the compose file is a credential",
        ("sub", "mysql+pymysql://ctfd:ctfd@db/ctfd", f"mysql+pymysql://ctfd:{DB_PASS}@db/ctfd"),
    )
    add(
        "secret-django-secret-key",
        HC,
        "hc/settings.py",
        "secret",
        "block",
        SECRET,
        "a literal Django SECRET_KEY signs sessions and tokens: a leaked key forges them",
        ("sub", 'SECRET_KEY = envsecret("SECRET_KEY", "---")', f'SECRET_KEY = "{DJANGO_KEY}"'),
    )
    add(
        "secret-aws-keys",
        CTFD,
        "CTFd/config.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            "class TestingConfig(ServerConfig):",
            f'    AWS_ACCESS_KEY_ID = "{AWS_ID}"\n    AWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"',
        ),
    )
    add(
        "secret-aws-getenv",
        HC,
        "hc/lib/s3.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            "def put_object(code: UUID, n: int, data: bytes) -> None:",
            f'    access_key = os.getenv("S3_ACCESS_KEY", "{AWS_ID}")',
        ),
    )
    add(
        "secret-private-key",
        CLICK,
        "examples/imagepipe/imagepipe.py",
        "secret",
        "block",
        SECRET,
        sec,
        ("after", "import click", f'SIGNING_KEY = """{PRIVATE_KEY}"""'),
    )
    add(
        "secret-slack-bot-token",
        HC,
        "hc/settings.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            'DISCORD_CLIENT_ID = os.getenv("DISCORD_CLIENT_ID")',
            f'SLACK_BOT_TOKEN = "{SLACK_BOT}"',
        ),
    )
    add(
        "secret-slack-webhook-kwarg",
        CTFD,
        "CTFd/utils/updates/__init__.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            "import requests",
            f'\nALERTS = requests.Session()\nALERTS.post("{SLACK_HOOK}", json={{"text": "update"}})',
        ),
    )
    add(
        "secret-telegram-token-yaml",
        HC,
        ".github/workflows/tests.yml",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "sub",
            "SECRET_KEY: dummy-key",
            f"SECRET_KEY: dummy-key\n                  TELEGRAM_TOKEN: {TELEGRAM}",
        ),
    )
    add(
        "secret-twilio-env-file",
        HC,
        "docker/.env.example",
        "secret",
        "block",
        SECRET,
        sec,
        ("after", "TWILIO_ACCOUNT=", f"TWILIO_AUTH={TWILIO}"),
    )
    add(
        "secret-mailgun-config-ini",
        CTFD,
        "CTFd/config.ini",
        "secret",
        "block",
        SECRET,
        sec,
        ("after", "SECRET_KEY =", f"MAILGUN_API_KEY = {MAILGUN}"),
    )
    add(
        "secret-npm-token-in-test",
        HTTPX,
        "tests/conftest.py",
        "secret",
        "block",
        SECRET,
        "a provider token in a test file is still a provider token",
        ("after", "import pytest", f'NPM_TOKEN = "{NPM}"'),
    )
    add(
        "secret-ghp-in-fstring",
        CTFD,
        "CTFd/utils/updates/__init__.py",
        "secret",
        "block",
        SECRET,
        sec,
        (
            "after",
            "import requests",
            f'\nGITHUB_HEADERS = {{"Authorization": f"token {{\'{GHP}\'}}"}}',
        ),
    )

    sw = "a security weakening an owner should see: warn"
    auth = "removed authentication/authorization guard: block, a person who owns the code decides"
    # --- security: removed auth guards block, other weakenings warn ---
    add(
        "security-login-required-removed",
        HC,
        "hc/front/views.py",
        "security",
        "block",
        AUTH,
        auth,
        ("dellines", "@login_required\ndef checks(", 1),
    )
    add(
        "security-api-authorize-removed",
        HC,
        "hc/api/views.py",
        "security",
        "block",
        AUTH,
        auth,
        ("dellines", "@authorize\ndef delete_check(", 1),
    )
    add(
        "security-admins-only-removed",
        CTFD,
        "CTFd/admin/__init__.py",
        "security",
        "block",
        AUTH,
        auth,
        ("dellines", "@admins_only\ndef export_ctf(", 1),
    )
    add(
        "security-api-admins-only-removed",
        CTFD,
        "CTFd/api/v1/users.py",
        "security",
        "block",
        AUTH,
        auth,
        (
            "dellines",
            '    @admins_only\n    @users_namespace.doc(\n        description="Endpoint to create a User object"',
            1,
        ),
    )
    add(
        "security-authed-only-removed",
        CTFD,
        "CTFd/api/v1/users.py",
        "security",
        "block",
        AUTH,
        auth,
        ("dellines", "    @authed_only", 1),
    )
    add(
        "security-membership-check-removed",
        HC,
        "hc/front/views.py",
        "security",
        "block",
        AUTH,
        "the project-membership permission check is gone: any user reaches any check",
        (
            "sub",
            "    membership = get_object_or_404(Member, project=check.project, user=request.user)\n    return check, membership.is_rw",
            "    return check, True",
        ),
    )
    add(
        "security-is-admin-check-removed",
        CTFD,
        "CTFd/utils/decorators/__init__.py",
        "security",
        "block",
        AUTH,
        auth,
        (
            "sub",
            "        if is_admin():\n            return f(*args, **kwargs)",
            "        return f(*args, **kwargs)",
        ),
    )
    add(
        "security-authenticated-assert-removed",
        HC,
        "hc/front/views.py",
        "security",
        "block",
        AUTH,
        auth,
        ("dellines", "    assert request.user.is_authenticated\n\n    q = Check.objects", 2),
    )
    add(
        "security-csrf-exempt-added",
        HC,
        "hc/front/views.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "sub",
            "@login_required\n@require_POST\ndef switch_channel(",
            "@csrf_exempt\n@login_required\n@require_POST\ndef switch_channel(",
        ),
    )
    add(
        "security-allowed-hosts-star",
        HC,
        "hc/settings.py",
        "security",
        "warn",
        SECURITY,
        sw,
        ("sub", "    ALLOWED_HOSTS = [domain]", '    ALLOWED_HOSTS = ["*"]'),
    )
    add(
        "security-debug-true",
        CTFD,
        "CTFd/config.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "sub",
            "class TestingConfig(ServerConfig):",
            "    DEBUG = True\n\n\nclass TestingConfig(ServerConfig):",
        ),
    )
    add(
        "security-verify-false",
        CTFD,
        "CTFd/auth.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "sub",
            "requests.post(url, data=data, headers=headers, timeout=5)",
            "requests.post(url, data=data, headers=headers, timeout=5, verify=False)",
        ),
    )
    add(
        "security-verify-false-httpx",
        HTTPX,
        "httpx/_main.py",
        "security",
        "warn",
        SECURITY,
        sw,
        ("sub", "    verify: bool,", "    verify: bool = False,"),
    )
    add(
        "security-shell-true",
        HC,
        "hc/integrations/shell/transport.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "sub",
            "        code = os.system(cmd)",
            "        code = subprocess.run(cmd, shell=True).returncode",
        ),
        ("sub", "import os\n", "import os\nimport subprocess\n"),
    )
    add(
        "security-shell-true-fstring",
        CTFD,
        "CTFd/utils/updates/__init__.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "after",
            "import requests",
            '\nimport subprocess\n\n\ndef theme_version(path):\n    return subprocess.check_output(f"git -C {path} describe", shell=True)',
        ),
    )
    add(
        "security-yaml-load",
        CTFD,
        "CTFd/utils/updates/__init__.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "after",
            "import requests",
            "\nimport yaml\n\n\ndef read_manifest(path):\n    with open(path) as f:\n        return yaml.load(f)",
        ),
    )
    add(
        "security-sql-fstring",
        CTFD,
        "CTFd/utils/__init__.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "append",
            "\n\ndef find_user(name):\n    return db.session.execute(f\"SELECT * FROM users WHERE name = '{name}'\").fetchall()\n",
        ),
    )
    add(
        "security-sql-percent",
        HC,
        "hc/api/views.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "after",
            "def valid_ip(ip: str) -> bool:",
            "    from django.db import connection\n\n    connection.cursor().execute(\"SELECT 1 FROM api_ping WHERE remote_addr = '%s'\" % ip)",
        ),
    )
    add(
        "security-redirect-keeps-authorization",
        HTTPX,
        "httpx/_client.py",
        "security",
        "warn",
        SECURITY,
        sw,
        ("dellines", '                headers.pop("Authorization", None)', 1),
    )
    add(
        "security-pickle-loads",
        HC,
        "hc/api/views.py",
        "security",
        "warn",
        SECURITY,
        sw,
        (
            "after",
            "def valid_ip(ip: str) -> bool:",
            "    import pickle\n\n    pickle.loads(ip.encode())",
        ),
    )

    wk = "a guard weakened in place: warn, an owner looks"
    # --- guards weakened in place: warn ---
    add(
        "guard-assert-eq-weakened",
        HTTPX,
        "tests/test_utils.py",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            '    response = httpx.Response(200, content=content)\n    assert response.json() == {"abc": 123}',
            "    response = httpx.Response(200, content=content)\n    assert response.json()",
        ),
    )
    add(
        "guard-asserts-removed",
        CLICK,
        "tests/test_basic.py",
        "guard",
        "warn",
        WEAK,
        "asserts removed from a test: warn",
        ("dellines", '    assert "Hello World!" in result.output', 3),
    )
    add(
        "guard-test-removed",
        CLICK,
        "tests/test_basic.py",
        "guard",
        "warn",
        WEAK,
        "a test removed: warn",
        ("dellines", "def test_basic_functionality(runner):", 20),
    )
    add(
        "guard-skip-marker",
        CLICK,
        "tests/test_basic.py",
        "guard",
        "warn",
        WEAK,
        "a test skipped: warn",
        (
            "sub",
            "def test_basic_functionality(runner):",
            '@pytest.mark.skip(reason="flaky")\ndef test_basic_functionality(runner):',
        ),
    )
    add(
        "guard-assertequal-removed",
        HC,
        "hc/api/tests/test_pause.py",
        "guard",
        "warn",
        WEAK,
        "asserts removed from a test: warn",
        ("dellines", '        self.assertEqual(self.check.status, "paused")', 1),
    )
    add(
        "guard-unittest-skip",
        HC,
        "hc/api/tests/test_pause.py",
        "guard",
        "warn",
        WEAK,
        "a test skipped: warn",
        (
            "sub",
            "    def test_it_validates_ownership(self) -> None:",
            '    @skip("later")\n    def test_it_validates_ownership(self) -> None:',
        ),
    )
    add(
        "guard-timeout-none",
        CTFD,
        "CTFd/auth.py",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            "requests.get(url=user_url, headers=headers, timeout=5)",
            "requests.get(url=user_url, headers=headers, timeout=None)",
        ),
    )
    add(
        "guard-default-timeout-none",
        HTTPX,
        "httpx/_config.py",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            "DEFAULT_TIMEOUT_CONFIG = Timeout(timeout=5.0)",
            "DEFAULT_TIMEOUT_CONFIG = Timeout(timeout=None)",
        ),
    )
    add(
        "guard-retries-off",
        HC,
        "hc/lib/emails.py",
        "guard",
        "warn",
        WEAK,
        wk,
        ("sub", "    MAX_TRIES = 3", "    MAX_TRIES = 1"),
    )
    add(
        "guard-retries-zero",
        HC,
        "hc/lib/s3.py",
        "guard",
        "warn",
        WEAK,
        wk,
        ("sub", "    retries = 10\n", "    retries = 0\n"),
    )
    add(
        "guard-except-raise-to-pass",
        HTTPX,
        "httpx/_decoders.py",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            "        except zlib.error as exc:  # pragma: no cover\n            raise DecodingError(str(exc)) from exc",
            "        except Exception:  # pragma: no cover\n            pass",
        ),
    )
    add(
        "guard-except-reraise-swallowed",
        HC,
        "hc/lib/emails.py",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            "                    # re-raise the exception\n                    raise\n",
            "                    # re-raise the exception\n                    return\n",
        ),
    )
    add(
        "guard-pytest-addopts-k",
        HTTPX,
        "pyproject.toml",
        "guard",
        "warn",
        WEAK,
        wk,
        ("sub", 'addopts = "-rxXs"', "addopts = \"-rxXs -k 'not test_redirect'\""),
    )
    add(
        "guard-pytest-deselect",
        CLICK,
        "pyproject.toml",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            "addopts = \"-m 'not stress'\"",
            "addopts = \"-m 'not stress' --deselect tests/test_basic.py::test_repr\"",
        ),
    )
    add(
        "guard-ruff-per-file-ignores",
        HTTPX,
        "pyproject.toml",
        "guard",
        "warn",
        WEAK,
        wk,
        (
            "sub",
            '"__init__.py" = ["F403", "F405"]',
            '"__init__.py" = ["F403", "F405"]\n"httpx/_client.py" = ["B", "E", "F"]',
        ),
    )
    add(
        "guard-mypy-ignore-errors",
        HTTPX,
        "pyproject.toml",
        "guard",
        "warn",
        WEAK,
        wk,
        ("sub", 'module = "tests.*"', 'module = "tests.*"\nignore_errors = true'),
    )
    add(
        "guard-mypy-strict-off",
        CLICK,
        "pyproject.toml",
        "guard",
        "warn",
        WEAK,
        wk,
        ("sub", "pretty = true\nstrict = true", "pretty = true\nstrict = false"),
    )
    add(
        "guard-coverage-omit",
        HTTPX,
        "pyproject.toml",
        "guard",
        "warn",
        WEAK,
        wk,
        ("sub", 'omit = ["venv/*"]', 'omit = ["venv/*", "httpx/_transports/*"]'),
    )
    add(
        "guard-ci-script-loses-mypy",
        HTTPX,
        "scripts/check",
        "guard",
        "warn",
        WEAK,
        "a script CI runs lost a step: warn",
        ("dellines", "${PREFIX}mypy $SOURCE_FILES", 1),
    )
    add(
        "guard-ci-workflow-loses-step",
        HC,
        ".github/workflows/tests.yml",
        "guard",
        "warn",
        WEAK,
        "the CI workflow lost its test step: warn",
        ("dellines", "            - name: Run Tests", 8),
    )
    add(
        "guard-noqa-added",
        HTTPX,
        "httpx/_client.py",
        "guard",
        "warn",
        WEAK,
        "a new lint suppression: warn",
        (
            "sub",
            "        headers = Headers(request.headers)\n",
            "        headers = Headers(request.headers)  # noqa: E501,B006\n",
        ),
    )
    add(
        "guard-type-ignore-added",
        CLICK,
        "src/click/core.py",
        "guard",
        "warn",
        WEAK,
        "a new type-check suppression: warn",
        (
            "sub",
            "import collections.abc as cabc\n",
            "import collections.abc as cabc  # type: ignore\n",
        ),
    )
    add(
        "guard-pragma-no-cover",
        HC,
        "hc/lib/emails.py",
        "guard",
        "warn",
        WEAK,
        "a new coverage suppression: warn",
        ("sub", "    def run(self) -> None:", "    def run(self) -> None:  # pragma: no cover"),
    )
    add(
        "guard-assert-guard-removed-src",
        HC,
        "hc/lib/s3.py",
        "guard",
        "warn",
        WEAK,
        "a runtime assert removed from source: warn",
        ("dellines", "    assert settings.S3_BUCKET\n    key = ", 1),
    )

    dm = "a destructive migration loses data on deploy: block"
    # --- migrations: block ---
    add(
        "migration-django-remove-field",
        HC,
        HC_MIG.format("remove_check_desc"),
        "migration",
        "block",
        MIG,
        dm,
        (
            "new",
            MIGRATION_HEAD
            + '    operations = [\n        migrations.RemoveField(model_name="check", name="desc"),\n    ]\n',
        ),
    )
    add(
        "migration-django-delete-model",
        HC,
        HC_MIG.format("delete_tokenbucket"),
        "migration",
        "block",
        MIG,
        dm,
        (
            "new",
            MIGRATION_HEAD
            + '    operations = [\n        migrations.DeleteModel(name="TokenBucket"),\n    ]\n',
        ),
    )
    add(
        "migration-django-alter-field-narrow",
        HC,
        HC_MIG.format("alter_check_name"),
        "migration",
        "block",
        MIG,
        "narrowing a column truncates or fails on existing rows: block",
        (
            "new",
            MIGRATION_HEAD
            + '    operations = [\n        migrations.AlterField(\n            model_name="check",\n            name="name",\n            field=models.CharField(max_length=20),\n        ),\n    ]\n',
        ),
    )
    add(
        "migration-django-runpython-delete",
        HC,
        HC_MIG.format("prune_flips"),
        "migration",
        "block",
        MIG,
        "a data migration deleting rows destroys data: block",
        (
            "new",
            'from django.db import migrations\n\n\ndef prune(apps, schema_editor):\n    Flip = apps.get_model("api", "Flip")\n    Flip.objects.all().delete()\n\n\nclass Migration(migrations.Migration):\n    dependencies = [\n        ("api", "0123_alter_channel_kind"),\n    ]\n\n    operations = [\n        migrations.RunPython(prune, migrations.RunPython.noop),\n    ]\n',
        ),
    )
    add(
        "migration-django-runsql-drop",
        HC,
        HC_MIG.format("drop_ping_table"),
        "migration",
        "block",
        MIG,
        dm,
        (
            "new",
            MIGRATION_HEAD
            + '    operations = [\n        migrations.RunSQL("DROP TABLE api_ping"),\n    ]\n',
        ),
    )
    add(
        "migration-django-rename-field",
        HC,
        HC_MIG.format("rename_check_desc"),
        "migration",
        "block",
        MIG,
        "renaming a column breaks the running code that still reads the old name: block",
        (
            "new",
            MIGRATION_HEAD
            + '    operations = [\n        migrations.RenameField(model_name="check", old_name="desc", new_name="description"),\n    ]\n',
        ),
    )
    add(
        "migration-alembic-drop-column",
        CTFD,
        CTFD_MIG.format("drop_challenges_logic"),
        "migration",
        "block",
        MIG,
        dm,
        (
            "new",
            ALEMBIC_HEAD.format(title="Drop logic")
            + 'def upgrade():\n    op.drop_column("challenges", "logic")\n'
            + ALEMBIC_DOWN,
        ),
    )
    add(
        "migration-alembic-drop-table",
        CTFD,
        CTFD_MIG.format("drop_tracking"),
        "migration",
        "block",
        MIG,
        dm,
        (
            "new",
            ALEMBIC_HEAD.format(title="Drop tracking")
            + 'def upgrade():\n    op.drop_table("tracking")\n'
            + ALEMBIC_DOWN,
        ),
    )
    add(
        "migration-alembic-bind-execute-ddl",
        CTFD,
        CTFD_MIG.format("drop_via_bind"),
        "migration",
        "block",
        MIG,
        "DDL sent through the connection is a migration all the same: block",
        (
            "new",
            ALEMBIC_HEAD.format(title="Drop via bind")
            + 'def upgrade():\n    op.get_bind().execute(sa.text("ALTER TABLE users DROP COLUMN website"))\n'
            + ALEMBIC_DOWN,
        ),
    )
    add(
        "migration-alembic-connection-text-delete",
        CTFD,
        CTFD_MIG.format("delete_tracking"),
        "migration",
        "block",
        MIG,
        "a data migration deleting rows through connection.execute(text(...)): block",
        (
            "new",
            ALEMBIC_HEAD.format(title="Delete tracking rows")
            + 'def upgrade():\n    connection = op.get_bind()\n    connection.execute(sa.text("DELETE FROM tracking"))\n'
            + ALEMBIC_DOWN,
        ),
    )
    add(
        "migration-alembic-op-execute-drop",
        CTFD,
        CTFD_MIG.format("op_execute_drop"),
        "migration",
        "block",
        MIG,
        dm,
        (
            "new",
            ALEMBIC_HEAD.format(title="Drop notifications")
            + 'def upgrade():\n    op.execute("DROP TABLE notifications")\n'
            + ALEMBIC_DOWN,
        ),
    )
    add(
        "migration-alembic-alter-type",
        CTFD,
        CTFD_MIG.format("narrow_name"),
        "migration",
        "block",
        MIG,
        "narrowing a column's type truncates or fails on existing rows: block",
        (
            "new",
            ALEMBIC_HEAD.format(title="Narrow name")
            + 'def upgrade():\n    op.alter_column("users", "name", type_=sa.String(length=16), existing_type=sa.String(length=128))\n'
            + ALEMBIC_DOWN,
        ),
    )
    add(
        "migration-alembic-upgrade-edited",
        CTFD,
        "migrations/versions/f73a96c97449_add_logic_column_to_challenges.py",
        "migration",
        "block",
        MIG,
        "an applied migration rewritten to drop a column: block",
        (
            "sub",
            '    op.add_column(\n        "challenges", sa.Column("logic", sa.String(length=80), nullable=False)\n    )',
            '    op.drop_column("challenges", "category")',
        ),
    )
    add(
        "migration-sql-drop-file",
        CTFD,
        "scripts/cleanup.sql",
        "migration",
        "block",
        MIG,
        "a SQL script dropping a table: block",
        ("new", "DROP TABLE tracking;\n"),
    )

    vuln = "a pin on a version with a known vulnerability (an OSV record in osv/): block"
    # --- dependencies: block ---
    add(
        "dependency-requests-vulnerable",
        CTFD,
        "requirements.txt",
        "dependency",
        "block",
        DEP,
        vuln,
        ("resub", r"^requests==[^\n]*", "requests==2.30.0"),
    )
    add(
        "dependency-jinja2-vulnerable",
        CTFD,
        "requirements.txt",
        "dependency",
        "block",
        DEP,
        vuln,
        ("resub", r"^jinja2==[^\n]*", "jinja2==3.1.2"),
    )
    add(
        "dependency-werkzeug-vulnerable",
        CTFD,
        "requirements.txt",
        "dependency",
        "block",
        DEP,
        vuln,
        ("resub", r"^werkzeug==[^\n]*", "werkzeug==2.2.2"),
    )
    add(
        "dependency-flask-vulnerable",
        CTFD,
        "requirements.txt",
        "dependency",
        "block",
        DEP,
        vuln,
        ("resub", r"^flask==[^\n]*", "flask==2.2.4"),
    )
    add(
        "dependency-django-vulnerable",
        HC,
        "requirements.txt",
        "dependency",
        "block",
        DEP,
        vuln,
        ("resub", r"^Django\[argon2\]==[^\n]*", "Django[argon2]==4.2.2"),
    )
    add(
        "dependency-pyyaml-new-vulnerable",
        HTTPX,
        "requirements.txt",
        "dependency",
        "block",
        DEP,
        vuln,
        ("sub", "chardet==5.2.0\n", "chardet==5.2.0\npyyaml==5.3.1\n"),
    )
    add(
        "dependency-urllib3-pyproject",
        CLICK,
        "examples/repo/pyproject.toml",
        "dependency",
        "block",
        DEP,
        vuln,
        ("sub", '    "click>=8.1",\n', '    "click>=8.1",\n    "urllib3==1.26.5",\n'),
    )

    big = "a change far past the size limit (400 lines): an owner reads it"
    # --- size: warn ---
    add(
        "size-huge-new-module",
        CLICK,
        "src/click/_generated_help.py",
        "size",
        "warn",
        SIZE,
        big,
        (
            "new",
            "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(300)),
        ),
    )
    add(
        "size-huge-append",
        HTTPX,
        "httpx/_utils.py",
        "size",
        "warn",
        SIZE,
        big,
        (
            "append",
            "".join(f"\n\ndef _port_{i}(url: str) -> int:\n    return {i}\n" for i in range(120)),
        ),
    )
    return s


def apply_ops(text: str | None, ops: tuple[tuple[str, ...], ...]) -> str:
    import re

    for op in ops:
        kind = op[0]
        if kind == "new":
            text = op[1]
            continue
        assert text is not None, f"{op}: no such file"
        if kind == "sub":
            assert op[1] in text, f"not found: {op[1]!r}"
            text = text.replace(op[1], op[2], 1)
        elif kind == "resub":
            text, n = re.subn(op[1], op[2], text, count=1, flags=re.M | re.I)
            assert n == 1, f"not found: {op[1]!r}"
        elif kind == "resub_all":
            text, n = re.subn(op[1], op[2], text)
            assert n, f"not found: {op[1]!r}"
        elif kind == "after":
            lines = text.split("\n")
            at = next(i for i, ln in enumerate(lines) if op[1] in ln)
            lines[at + 1 : at + 1] = op[2].split("\n")
            text = "\n".join(lines)
        elif kind == "append":
            text = text + op[1]
        elif kind == "dellines":
            at = text.index(op[1])
            start = text.rfind("\n", 0, at) + 1
            lines = text[start:].split("\n")
            text = text[:start] + "\n".join(lines[int(op[2]) :])
        else:
            raise ValueError(kind)
    assert text is not None
    return text


def main() -> None:
    clones = Path(sys.argv[1]).resolve()
    projects = {
        p["name"]: p for p in tomllib.loads((HERE / "projects.toml").read_text())["project"]
    }
    out = HERE / "cases"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    manifest = [
        "# The risky corpus of bench/scan_quality.py: each case is a patch (cases/ID.patch) on a real",
        "# file of a public project at its pinned commit, the level it deserves (block or warn), the",
        "# rule families (a rule's first dotted part) any of which may catch it, and why.",
        "# Written by bench/scan_quality/author.py; edit the cases there.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        works: dict[str, Path] = {}
        for spec in specs():
            p = projects[spec.repo]
            work = works.get(spec.repo)
            if work is None:
                work = works[spec.repo] = Path(tmp) / p["folder"]
                subprocess.run(
                    [
                        "git",
                        "clone",
                        "-q",
                        "--shared",
                        "--no-checkout",
                        str(clones / p["folder"]),
                        str(work),
                    ],
                    check=True,
                )
            subprocess.run(
                ["git", "-C", str(work), "checkout", "-q", "-f", "--detach", p["pinned"]],
                check=True,
            )
            subprocess.run(["git", "-C", str(work), "clean", "-qfdx"], check=True)
            path = work / spec.file
            old = path.read_text() if path.exists() else None
            try:
                new = apply_ops(old, spec.ops)
            except (AssertionError, StopIteration, ValueError) as e:
                sys.exit(f"{spec.id}: {e!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new)
            subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
            patch = subprocess.run(
                ["git", "-C", str(work), "diff", "--cached", "-U1", "--no-color"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["git", "-C", str(work), "reset", "-q"], check=True)
            assert patch, spec.id
            (out / f"{spec.id}.patch").write_bytes(patch)
            manifest += [
                "[[case]]",
                f'id = "{spec.id}"',
                f'repo = "{spec.repo}"',
                f'commit = "{p["pinned"]}"',
                f'file = "{spec.file}"',
                f'patch = "{spec.id}.patch"',
                f'category = "{spec.category}"',
                f'level = "{spec.level}"',
                "families = [" + ", ".join(f'"{f}"' for f in spec.families) + "]",
                f'why = "{spec.why}"',
                "",
            ]
    (HERE / "cases.toml").write_text("\n".join(manifest))
    print(f"{len(specs())} cases written")


if __name__ == "__main__":
    main()
