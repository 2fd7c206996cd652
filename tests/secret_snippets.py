"""Labelled snippets for the secret scan: secrets in the shapes real code and docs give them
(expected `block`), and the false alarms a secret scan raises on real merged commits (expected
not to block; `warn_at_most` where a warning is the right answer, `quiet` where nothing should be
said). The tokens are made here from a seeded generator, in each provider's documented format,
so that no file of this repository holds one whole (a push-protection scanner would stop it).

Used by tests/test_scan_secrets.py (one test per snippet) and bench/secret_snippets.py (the
figures before and after a change to the scan)."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

_RNG = random.Random(15)
_ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


GHP = "ghp" + "_" + _rand(36)
GITHUB_PAT = "github" + "_pat_" + _rand(22) + "_" + _rand(59)
GOOGLE = "AI" + "za" + "Sy" + _rand(33, _ALNUM + "-_")
ANTHROPIC = "sk-" + "ant-api03-" + _rand(93, _ALNUM + "-_") + "AA"
OPENAI_PROJECT = (
    "sk-" + "proj-" + _rand(74, _ALNUM + "-_") + "T3Blbk" + "FJ" + _rand(74, _ALNUM + "-_")
)
OPENAI_PLAIN = "sk-" + _rand(20) + "T3Blbk" + "FJ" + _rand(20)
AWS_ID = "AK" + "IA" + _rand(16, string.ascii_uppercase + "234567")
AWS_SECRET = _rand(40, _ALNUM + "/+")
SLACK = "xo" + "xb-" + _rand(12, string.digits) + "-" + _rand(13, string.digits) + "-" + _rand(24)
STRIPE = "sk" + "_live_" + _rand(99)
HF = "h" + "f_" + _rand(34, string.ascii_letters)
GITLAB = "gl" + "pat-" + _rand(20, _ALNUM + "-_")
NPM = "np" + "m_" + _rand(36)
PYPI = "py" + "pi-AgEIcHlwaS5vcmc" + _rand(60, _ALNUM + "-_")
SENDGRID = "S" + "G." + _rand(22, _ALNUM + "-_") + "." + _rand(43, _ALNUM + "-_")
SHOPIFY = "sh" + "pat_" + _rand(32, "0123456789abcdef")
DIGITALOCEAN = "do" + "p_v1_" + _rand(64, "0123456789abcdef")
PASSWORD = _rand(20)
DJANGO_KEY = _rand(50, string.ascii_lowercase + string.digits + "!@#%^&*(-_=+)")


@dataclass(frozen=True)
class Snippet:
    name: str
    path: str
    text: str
    expect: str
    """`block`: a real-looking secret, whatever the code around it. `warn`: a warning at most
    (a test password). `quiet`: nothing at block or warn (a known non-secret shape)."""


SECRETS = (
    Snippet(
        "getenv-default", "app/config.py", f'API_KEY = os.getenv("API_KEY", "{GHP}")\n', "block"
    ),
    Snippet(
        "dict-value",
        "app/clients.py",
        f'CONFIG = {{"token": "{GITHUB_PAT}", "org": "acme"}}\n',
        "block",
    ),
    Snippet(
        "requests-get-argument",
        "app/fetch.py",
        f'r = requests.get(url, params={{"key": "{GOOGLE}"}}, timeout=5)\n',
        "block",
    ),
    Snippet(
        "bearer-header",
        "app/llm.py",
        f'headers = {{"Authorization": "Bearer {OPENAI_PROJECT}"}}\n',
        "block",
    ),
    Snippet(
        "anthropic-client",
        "app/llm.py",
        f'client = anthropic.Anthropic(api_key="{ANTHROPIC}")\n',
        "block",
    ),
    Snippet(
        "openai-legacy",
        "app/llm.py",
        f'openai.api_key = os.environ.get("OPENAI_API_KEY", "{OPENAI_PLAIN}")\n',
        "block",
    ),
    Snippet(
        "markdown-docs",
        "README.md",
        f"Set the key first:\n\n```sh\nexport OPENAI_API_KEY={OPENAI_PROJECT}\n```\n",
        "block",
    ),
    Snippet(
        "rst-docs",
        "docs/quickstart.rst",
        f'.. code-block:: python\n\n    gmaps = googlemaps.Client(key="{GOOGLE}")\n',
        "block",
    ),
    Snippet(
        "aws-in-call",
        "app/storage.py",
        f's3 = boto3.client("s3", aws_access_key_id="{AWS_ID}", region_name="eu-west-1")\n',
        "block",
    ),
    Snippet("slack-in-call", "app/notify.py", f'client = WebClient(token="{SLACK}")\n', "block"),
    Snippet(
        "stripe-getenv",
        "app/billing.py",
        f'stripe.api_key = os.environ.get("STRIPE_KEY", "{STRIPE}")\n',
        "block",
    ),
    Snippet("huggingface-login", "train.py", f'login(token="{HF}")\n', "block"),
    Snippet(
        "gitlab-ci",
        ".gitlab-ci.yml",
        f'deploy:\n  script:\n    - curl --header "PRIVATE-TOKEN: {GITLAB}" $API\n',
        "block",
    ),
    Snippet("npmrc", ".npmrc", f"//registry.npmjs.org/:_authToken={NPM}\n", "block"),
    Snippet("pypi-upload", "scripts/release.py", f'upload(password="{PYPI}")\n', "block"),
    Snippet("sendgrid-call", "app/mail.py", f'sg = SendGridAPIClient("{SENDGRID}")\n', "block"),
    Snippet(
        "shopify-call", "app/shop.py", f'session = Session(shop, "2024-01", "{SHOPIFY}")\n', "block"
    ),
    Snippet(
        "digitalocean-call",
        "infra/do.py",
        f'manager = digitalocean.Manager(token="{DIGITALOCEAN}")\n',
        "block",
    ),
    Snippet(
        "github-pat-in-markdown",
        "docs/setup.md",
        f"Use this token: `{GITHUB_PAT}` to clone.\n",
        "block",
    ),
    Snippet(
        "database-url",
        "app/settings.py",
        f'DATABASE_URL = "postgres://app:{PASSWORD}@db.internal.example.com:5432/app"\n',
        "block",
    ),
    Snippet(
        "database-url-in-call",
        "app/db.py",
        f'engine = create_engine("postgresql+psycopg2://admin:{PASSWORD}@10.0.3.7/prod")\n',
        "block",
    ),
    Snippet(
        "compose-list-entry",
        "docker-compose.yml",
        f"services:\n  db:\n    image: postgres:16\n    environment:\n      - POSTGRES_PASSWORD={PASSWORD}\n",
        "block",
    ),
    Snippet("django-secret-key", "mysite/settings.py", f'SECRET_KEY = "{DJANGO_KEY}"\n', "block"),
    Snippet(
        "django-secret-key-default",
        "mysite/settings.py",
        f'SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "{DJANGO_KEY}")\n',
        "block",
    ),
    Snippet(
        "aws-secret-keyword", "app/aws.py", f'aws_secret_access_key = "{AWS_SECRET}"\n', "block"
    ),
    Snippet(
        "private-key",
        "deploy/key.pem",
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + _rand(64, _ALNUM + "+/")
        + "\n-----END RSA PRIVATE KEY-----\n",
        "block",
    ),
)

_SHA = "".join(_RNG.choice("0123456789abcdef") for _ in range(64))
_SHA_B = "".join(_RNG.choice("0123456789abcdef") for _ in range(64))

FALSE_ALARMS = (
    Snippet(
        "sha256-in-docs",
        "docs/install.md",
        f"Check the download:\n\n    sha256: {_SHA}\n",
        "quiet",
    ),
    Snippet(
        "sha256-in-rst",
        "docs/changes.rst",
        f"The wheel's digest is ``{_SHA_B}``.\n",
        "quiet",
    ),
    Snippet(
        "digest-auth-nonce",
        "tests/test_auth.py",
        '    nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"\n',
        "warn",
    ),
    Snippet(
        "url-test-vector",
        "tests/test_utils.py",
        '        ("http://user:pass@complex.url.com/path?query=yes", ("user", "pass")),\n',
        "warn",
    ),
    Snippet(
        "test-password",
        "tests/test_models.py",
        '    user.set_password("Xq82mzLpR4vKe9sT")\n',
        "warn",
    ),
    Snippet(
        "test-password-keyword",
        "tests/conftest.py",
        '    password = "correct-horse-battery-staple"\n',
        "warn",
    ),
    Snippet(
        "alembic-revision",
        "alembic/versions/ae1027a6acf_add_orders.py",
        'revision = "ae1027a6acf"\ndown_revision = "1975ea83b712"\n',
        "quiet",
    ),
    Snippet(
        "alembic-header",
        "migrations/versions/3a7bd5f6c9e1_users.py",
        '"""add users\n\nRevision ID: 3a7bd5f6c9e1\nRevises: 9f0c2d4e6b8a\n"""\n'
        'revision: str = "3a7bd5f6c9e1"\ndown_revision: Union[str, None] = "9f0c2d4e6b8a"\n',
        "quiet",
    ),
    Snippet(
        "poetry-lock-hash",
        "poetry.lock",
        f'files = [\n    {{file = "idna-3.7-py3-none-any.whl", hash = "sha256:{_SHA}"}},\n]\n',
        "quiet",
    ),
    Snippet(
        "requirements-hash",
        "requirements.txt",
        f"idna==3.7 \\\n    --hash=sha256:{_SHA_B}\n",
        "quiet",
    ),
    Snippet(
        "npm-integrity",
        "package-lock.json",
        '      "integrity": "sha512-' + _rand(86, _ALNUM + "+/") + '=="\n',
        "quiet",
    ),
    Snippet(
        "commit-in-changelog",
        "CHANGES.md",
        "- Fix the retry loop (1f3a9c27e4b05d6a8c9e0f1b2d3c4e5f6a7b8c9d).\n",
        "quiet",
    ),
    Snippet("env-reference", "app/config.py", 'API_KEY = os.environ["API_KEY"]\n', "quiet"),
    Snippet(
        "function-reference", "app/config.py", "password = vault.read_password(name)\n", "quiet"
    ),
    Snippet(
        "placeholder-url-in-docs",
        "README.md",
        "Set `DATABASE_URL=postgres://user:password@localhost:5432/app`.\n",
        "quiet",
    ),
    Snippet(
        "compose-dev-default",
        "docker-compose.yml",
        "services:\n  db:\n    environment:\n      - POSTGRES_PASSWORD=postgres\n",
        "warn",
    ),
    Snippet(
        "compose-variable",
        "docker-compose.yml",
        "services:\n  db:\n    environment:\n      - POSTGRES_PASSWORD=${POSTGRES_PASSWORD}\n",
        "quiet",
    ),
    Snippet(
        "aws-docs-example", "docs/aws.md", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", "warn"
    ),
    Snippet(
        "secret-key-from-env",
        "mysite/settings.py",
        'SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]\n',
        "quiet",
    ),
    Snippet("uuid", "app/ids.py", 'TENANT = "9b2f4c1e-7d3a-4e8b-9c0f-1a2b3c4d5e6f"\n', "quiet"),
    Snippet(
        "templated-token",
        ".github/workflows/ci.yml",
        "env:\n  TOKEN: ${{ secrets.GITHUB_TOKEN }}\n",
        "quiet",
    ),
)
