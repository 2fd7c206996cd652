"""Secrets in the change: detect-secrets over the added lines, the harness's own provider formats
and credential shapes, plus exact matches of every value the run's secret references resolve to.

detect-secrets runs with all its plugins, offline, without verifying anything against a
provider. Its inline allowlist (`pragma: allowlist secret`) is not honoured on added lines: a
pragma is a person's decision about one value, and an agent that adds one beside a fresh key is
silencing the scan, not answering it (the suppression scan reports the pragma as well). Its
`is_indirect_reference` filter drops every hit on a line shaped like `x = f(...)` or `x = y[...]`
whatever the plugin: a key as an `os.getenv` default, a dict value, an argument to
`requests.get`. Here it drops only generic hits (entropy, keywords); a provider's format is a
key wherever it stands.

Each finding's message ends with where its level comes from (`provider format -> block`,
`entropy only -> warn`, `test file -> info`):
- block: a provider's format (a GitHub, Google, OpenAI, Anthropic, AWS... key, a private key), a
  real-looking password in a URL or in a `*_PASSWORD=` / `*_TOKEN=` / `SECRET_KEY` assignment or
  default, a value of the run's own secrets. A block-level secret stops the run before commit
  (status `blocked`). A provider's key in a test file blocks too: a key is a key.
- warn: generic evidence (a high-entropy string, a secret-sounding keyword, a JSON web token), a
  weak, placeholder or test-file password, a private key in a test folder (test certificates),
  and a provider format whose body is a documented example or a placeholder.
- info: digest-shaped hex strings (sha256 in docs, nonces), entropy and keywords in test files,
  public IP addresses.
Not reported at all: Alembic revision ids, entropy in lock files, prose beside a keyword, a
template or a reference (`${DB_PASSWORD}`, `settings.SECRET_KEY`), a placeholder in docs.

A repository keeps reviewed non-secrets in detect-secrets' own baseline (`.secrets.baseline`:
file and SHA-1 of the value, never the value). It is read from the run's base commit, what a
person merged, never from the workspace: an agent that adds its own key to the baseline has not
had it reviewed. A baselined hit is an info finding and its value is not treated as a secret.

The values are returned so the harness can redact them from everything it stores; the findings
carry only a masked form: the provider's public prefix, if the value starts with a known one,
and the length (`mask`), never any other part of the value.

detect-secrets is given each file's added lines under a name the harness makes (`3/settings.py`),
never git's quoting of the path, so a file whose name holds a newline or a non-ASCII letter is
scanned like any other and its hits land on the right file.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from detect_secrets.core import scan as ds_scan
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.heuristic import (
    is_indirect_reference,
    is_lock_file,
    is_non_text_file,
    is_swagger_file,
)
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.settings import default_settings

from jackline import git as g
from jackline import proc, safeio
from jackline.models import Finding
from jackline.scans import LEVELS, READ_LIMIT, Change, FileChange

WHY = (
    "A secret in a commit is a leaked secret: it reaches every clone, fork and backup and "
    "cannot be taken back. Remove it from the workspace, rotate it if it is real, and pass it "
    "to the code as configuration instead."
)
MIN_LENGTH = 6
BASELINE = ".secrets.baseline"
"""detect-secrets' baseline of reviewed non-secrets, read from the run's base commit only."""
WHY_GENERIC = (
    "It looks like a secret but matches no provider's format, so it does not stop the run: if "
    "it is a real credential, remove it and rotate it; if it is not, a person can list it in "
    f"the repository's reviewed baseline (`{BASELINE}`, detect-secrets' format) on the main "
    "branch."
)
WHY_REVIEWED = (
    f"A person listed this value in {BASELINE} on the base branch as reviewed: it is no secret."
)

Level = Literal["block", "warn", "info"]


@dataclass(frozen=True)
class Found:
    findings: tuple[Finding, ...]
    values: frozenset[str]
    """The raw values, for the redactor only: never store them anywhere but the workspace."""

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """The findings that stop the run: a provider's format, a real-looking password, a
        value of the run's own secrets. Generic evidence warns."""
        return tuple(f for f in self.findings if f.level == "block")


@dataclass(frozen=True)
class Hit:
    kind: str
    """What was found: `GitHub fine-grained token`, `high-entropy string`."""
    level: Level
    source: str
    """Where the level comes from, said in the finding: `provider format`, `test file`."""


# Files detect-secrets reads as what they are (YAML, INI, .env), where unquoted values count:
# these are scanned whole, keeping the hits on added lines; other files by their added lines.
WHOLE = (".yaml", ".yml", ".env", ".ini", ".cfg", ".conf", ".properties", ".toml")


def generic_indirect_reference(secret: str, line: str, plugin: Any = None) -> bool:
    """detect-secrets' `is_indirect_reference` (`x = f(...)`, `x = y[...]`) for generic plugins
    only. As detect-secrets ships it, it drops the whole line before any plugin looks, so a key
    in an `os.getenv("K", "<key>")` default, a dict or a call passed unseen. A provider's
    pattern is its own evidence; entropy and keywords on such a line are mostly names."""
    return not isinstance(plugin, RegexBasedDetector) and is_indirect_reference(line)


@contextmanager
def _settings() -> Iterator[None]:
    with default_settings() as settings:
        settings.disable_filters(
            # Paths in the diff are relative to the workspace, not to our working directory.
            "detect_secrets.filters.common.is_invalid_file",
            "detect_secrets.filters.allowlist.is_line_allowlisted",
            "detect_secrets.filters.heuristic.is_indirect_reference",
        )
        settings.filters[f"{__name__}.generic_indirect_reference"] = {}
        yield


def _whole_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(WHOLE) or name.startswith(".env")


Where = tuple[str, int, str]
"""(path, line, value)."""


def scan(
    change: Change,
    known: Iterable[str] = (),
    whole_files: bool = True,
    baseline: Baseline | None = None,
) -> Found:
    """Secrets on the lines this change adds. With `whole_files=False` every file is read from
    the diff alone (for a change whose files are not in the working tree, such as a commit).
    `baseline`: the reviewed non-secrets; by default read from the change's base commit."""
    lines = {(f.path, ln.number): ln.text for f in change.files for ln in f.added}
    hits = _hits(change, lines, known, whole_files)
    reviewed = baseline if baseline is not None else Baseline.at(change.root, change.base)
    hits = {w: reviewed.judge(w[0], w[2], h) for w, h in hits.items()}
    values = frozenset(v for (_, _, v), h in hits.items() if h.level != "info")
    shown = frozenset(v for _, _, v in hits)
    findings = [
        _finding(hit, path, number, lines[(path, number)], value, shown)
        for (path, number, value), hit in _one_per_value(hits).items()
    ]
    if reviewed.problem:
        findings.append(
            Finding(
                "secret.baseline-unreadable",
                "warn",
                f"{BASELINE} at the base commit could not be read ({reviewed.problem}): "
                "it excuses nothing",
                file=BASELINE,
                why="A baseline is detect-secrets' JSON (`detect-secrets scan > .secrets.baseline`).",
            )
        )
    return Found(tuple(findings), values)


def _one_per_value(hits: dict[Where, Hit]) -> dict[Where, Hit]:
    """One finding for one value: where two hits on a line overlap (a GitLab token and the
    high-entropy string around it), the more serious one. Both values are still redacted."""
    ranked = sorted(hits.items(), key=lambda item: (LEVELS[item[1].level], -len(item[0][2])))
    kept: dict[Where, Hit] = {}
    on_line: dict[tuple[str, int], list[str]] = {}
    for (path, number, value), hit in ranked:
        there = on_line.setdefault((path, number), [])
        if not any(value in v or v in value for v in there):
            there.append(value)
            kept[(path, number, value)] = hit
    return kept


def _hits(
    change: Change, lines: dict[tuple[str, int], str], known: Iterable[str], whole_files: bool
) -> dict[Where, Hit]:
    """Every hit on the added lines, the most serious one for each value on a line."""
    hits: dict[Where, Hit] = {}

    def add(where: Where, hit: Hit | None) -> None:
        if hit is not None and (where not in hits or _stronger(hit, hits[where])):
            hits[where] = hit

    for (path, number), text in lines.items():
        for value, hit in own_hits(path, text):
            add((path, number, value), hit)
    for path, ds_hit in _detected(change, whole_files):
        line = lines.get((path, ds_hit.line_number))
        if line is None:  # a whole-file hit on a line this change did not add
            continue
        value = _whole(ds_hit.type, ds_hit.secret_value or "", line)
        if value:
            add((path, ds_hit.line_number, value), classify(ds_hit.type, value, path, line))
    for value in {v for v in known if len(v) >= MIN_LENGTH}:
        for (path, number), text in lines.items():
            if value in text:
                add((path, number, value), Hit(REFERENCE, "block", "the run's own secret"))
    return hits


def _stronger(a: Hit, b: Hit) -> bool:
    return LEVELS[a.level] < LEVELS[b.level]


REFERENCE = "a value of the run's own secrets"


# ---- What a hit is, and how serious ----------------------------------------------------------

# Provider formats the harness matches itself, on every added line whatever the code around it
# (detect-secrets has none for several of these, and its filters judge a line by its shape).
# Each is the provider's documented prefix and the body's length and alphabet.
PROVIDERS: dict[str, str] = {
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b",
    "GitHub fine-grained token": r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b",
    "GitLab token": r"\bgl(?:pat|dt|ptt|rt|cbt|oas)-[A-Za-z0-9_-]{20,}",
    "Google API key": r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
    "Anthropic API key": r"\bsk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_-]{80,}",
    "OpenAI API key": r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}"
    r"|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b",
    "AWS Access Key": r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
    "Slack token": r"\bxox[baprse]-[0-9A-Za-z-]{10,}|\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{32,}",
    "Slack webhook": r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{20,}",
    "Discord webhook": r"https://discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{60,}",
    "Stripe live key": r"\b[rs]k_live_[0-9A-Za-z]{20,}",
    "Hugging Face token": r"\bhf_[A-Za-z]{34}\b",
    "npm token": r"\bnpm_[A-Za-z0-9]{36}\b",
    "PyPI token": r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
    "SendGrid API key": r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])",
    "Shopify token": r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
    "DigitalOcean token": r"\bdo[por]_v1_[a-f0-9]{64}\b",
    "Databricks token": r"\bdapi[a-f0-9]{32}(?:-\d)?\b",
    "Groq API key": r"\bgsk_[A-Za-z0-9]{52}\b",
    "xAI API key": r"\bxai-[A-Za-z0-9]{80}\b",
    "Replicate token": r"\br8_[A-Za-z0-9]{37}\b",
    "Linear API key": r"\blin_api_[A-Za-z0-9]{40}\b",
    "HashiCorp Vault token": r"\bhvs\.[A-Za-z0-9_-]{90,}",
    "Postman API key": r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",
    "Twilio API key": r"\bSK[0-9a-f]{32}\b",
}
_PROVIDER = re.compile(
    "|".join(f"(?P<p{i}>{rx})" for i, rx in enumerate(PROVIDERS.values())),
)
_PROVIDER_NAMES = list(PROVIDERS)

# Credentials in the shapes configuration gives them: a password in a URL
# (`postgres://user:pass@host`), a secret-named variable set to a literal (`- POSTGRES_PASSWORD=x`
# in compose, `SECRET_KEY = "..."` in Django settings, `API_TOKEN: x` in YAML) or given as an
# environment lookup's default (`os.environ.get("SECRET_KEY", "...")`).
_URL_PASSWORD = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]*:([^\s@/'\"]+)@[\w.\[-]")
# The name ends with the word: `TOKEN_URL` and `PASSWORD_HASHERS` are settings about secrets.
_SECRET_NAME = (
    r"[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|SECRET_KEY|TOKEN|API_KEY|APIKEY|PRIVATE_KEY)\d*\b"
)
_ASSIGNED = re.compile(
    rf"(?:^|[\s'\"-])({_SECRET_NAME})['\"]?\s*(?::\s*[A-Za-z_][\w\[\], .|]*?\s*)?(?:=|:(?!:))\s*"
    r"(?:(?P<q>['\"])(?P<quoted>[^'\"\s]+)(?P=q)|(?P<bare>[^\s'\"#,;}]+))"
)
_DEFAULTED = re.compile(
    rf"\b({_SECRET_NAME})\s*=\s*[\w.]+\(\s*['\"][^'\"]*['\"]\s*,\s*['\"](?P<quoted>[^'\"\s]+)['\"]"
)
_CODE = (".py", ".js", ".ts", ".jsx", ".tsx", ".go", ".rb", ".java", ".kt", ".rs", ".php", ".cs")


# Literal pieces every match of `_PROVIDER` holds: a line without any is not searched (the
# alternation of two dozen patterns costs two seconds a megabyte; `in` costs nothing).
_PROVIDER_NEEDLES = (
    *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    *("glpat-", "gldt-", "glptt-", "glrt-", "glcbt-", "gloas-"),
    *("AIza", "sk-", "AKIA", "ASIA", "ABIA", "ACCA", "xox", "xapp-", "hooks.slack.com"),
    *("/api/webhooks/", "k_live_", "hf_", "npm_", "pypi-", "SG.", "shp", "_v1_", "dapi"),
    *("gsk_", "xai-", "r8_", "lin_api_", "hvs.", "PMAK-", "SK"),
)
_NAME_NEEDLES = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY")


def own_hits(path: str, text: str) -> Iterator[tuple[str, Hit]]:
    """The harness's own detectors on one added line: provider formats, then credential shapes."""
    if any(n in text for n in _PROVIDER_NEEDLES):
        for m in _PROVIDER.finditer(text):
            name = _PROVIDER_NAMES[int(str(m.lastgroup)[1:])]
            yield m.group(0), _provider(name, m.group(0))
    if "://" in text and "@" in text:
        for m in _URL_PASSWORD.finditer(text):
            yield from _password(m.group(1), path, "password in a URL")
    if any(n in text for n in _NAME_NEEDLES):
        yield from _assigned(path, text)


def _assigned(path: str, text: str) -> Iterator[tuple[str, Hit]]:
    for m in _ASSIGNED.finditer(text):
        bare = m.group("bare")
        if bare is not None and path.lower().endswith(_CODE):
            continue  # `API_TOKEN = os.environ[...]`: in code a value is quoted
        yield from _password(m.group("quoted") or bare, path, f"{m.group(1)} set to a literal")
    for m in _DEFAULTED.finditer(text):
        yield from _password(m.group("quoted"), path, f"{m.group(1)}'s default value")


def _provider(name: str, value: str) -> Hit:
    if _placeholder_token(value):
        return Hit(name, "warn", "provider format, but an example or placeholder body")
    return Hit(name, "block", "provider format")


def _placeholder_token(value: str) -> bool:
    """A documented example (`AKIAIOSFODNN7EXAMPLE`) or a placeholder (`ghp_xxxx...`): a key
    drawn at random has neither the word nor a run of six equal characters."""
    return "example" in value.lower() or bool(re.search(r"(.)\1{5,}", value))


# Values that stand in for a password in docs, examples and development set-ups.
PLACEHOLDERS = frozenset(
    (
        *("password", "passwd", "pass", "pwd", "secret", "changeme", "change_me", "change-me"),
        *("example", "placeholder", "dummy", "test", "testing", "foo", "bar", "foobar", "xxx"),
        *("postgres", "mysql", "root", "admin", "user", "username", "guest", "default", "none"),
        *(
            "null",
            "redacted",
            "hidden",
            "s3cr3t",
            "p4ssw0rd",
            "password123",
            "123456",
            "mypassword",
        ),
    )
)


def _password(value: str, path: str, shape: str) -> Iterator[tuple[str, Hit]]:
    level = _password_level(value, path)
    if level is not None:
        yield value, Hit(shape, *level)


def _password_level(value: str, path: str) -> tuple[Level, str] | None:
    """How serious a literal password or secret value is: None for a template or a variable
    (`${DB_PASSWORD}`, `{{ secrets.X }}`, `<password>`), or a placeholder in docs."""
    if not value or _TEMPLATE.search(value) or _looks_like_code(value):
        return None
    placeholder = _placeholder(value)
    if placeholder and _is_docs(path):
        return None
    if _is_test(path):
        return "warn", "test file"
    if placeholder:
        return "warn", "a placeholder value"
    if _real_looking(value):
        return "block", "a real-looking credential"
    return "warn", "a short, weak or word-like value"


def _placeholder(value: str) -> bool:
    lowered = value.lower().strip("_-.")
    return lowered in PLACEHOLDERS or any(
        w in lowered for w in ("example", "changeme", "placeholder", "your", "xxxx", "dummy")
    )


def _real_looking(value: str) -> bool:
    """Long enough, varied, and more than words: a digit or a symbol among mixed characters
    (`X-Auth-Token` and `correct-horse` are names or phrases; `hX9!rT2q` is a password)."""
    return (
        len(value) >= 8
        and _entropy(value) >= 2.5
        and _classes(value) >= 2
        and bool(re.search(r"[0-9]|[^A-Za-z0-9_.-]", value))
        and not re.match(r"[a-z][\w+.-]*://|\.{0,2}/", value)  # a URL or a path
    )


# `${DB_PASSWORD}`, `$DB_PASSWORD`, `{{ secrets.X }}`, `%(password)s`, `<password>`, `***`.
_TEMPLATE = re.compile(r"\$\{|^\$\w+$|\{\{|\{%|%\(\w+\)|^<[\w -]+>$|^\{\w*\}$|^\*+$")


def _looks_like_code(value: str) -> bool:
    """`settings.SECRET_KEY`, `get_token()`, `env("X")`: a reference, not a value."""
    return bool(re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[A-Za-z_][\w.]*\(.*\)?", value))


def _classes(value: str) -> int:
    return sum(bool(re.search(rx, value)) for rx in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


_TEST_DIRS = frozenset(("test", "tests", "testing", "__tests__", "spec", "specs", "fixtures"))


def _is_test(path: str) -> bool:
    parts = path.lower().split("/")
    name = parts[-1]
    return (
        any(p in _TEST_DIRS for p in parts[:-1])
        or name.startswith("test_")
        or name == "conftest.py"
        or bool(re.search(r"[._-](test|tests|spec)\.[a-z]+$", name))
    )


def _is_docs(path: str) -> bool:
    parts = path.lower().split("/")
    return parts[0] in ("doc", "docs") or parts[-1].endswith((".md", ".rst", ".txt", ".adoc"))


# detect-secrets' kinds that are evidence of a shape, not of a provider's key.
ENTROPY = frozenset(("Base64 High Entropy String", "Hex High Entropy String"))
GENERIC = frozenset(("Secret Keyword", "JSON Web Token", "Public IP (ipv4)", *ENTROPY))

# Alembic's revision ids (random hex, 12 characters) and its migration header.
_REVISION = re.compile(
    r"^\s*(?:(?:down_)?revision|branch_labels|depends_on)\b[^=]*=|^\s*(?:Revision ID|Revises)\s*:"
)
_DIGEST_WORDS = re.compile(
    r"sha-?(?:1|224|256|384|512)|md5|blake2|hash|digest|checksum|integrity|nonce|commit|etag",
    re.IGNORECASE,
)


def classify(kind: str, value: str, path: str, line: str) -> Hit | None:
    """What a detect-secrets hit is worth; None for what is no secret at all."""
    if kind == "Basic Auth Credentials":
        return None  # `own_hits` reads the URL itself, and keeps the password alone
    if kind == "Private Key" and _is_test(path):
        # Test certificates carry their keys (an HTTP library's TLS tests): made for the tests.
        return Hit(kind, "warn", "test file")
    if kind not in GENERIC:
        return _provider(kind, value)
    if kind == "Public IP (ipv4)":
        return Hit("public IP address", "info", "an address, not a credential")
    if kind == "JSON Web Token":
        return Hit(kind, "warn", "a token format any service may use")
    if kind == "Secret Keyword":
        return _keyword(value, path)
    if _REVISION.search(line) or is_lock_file(path):
        return None
    if re.fullmatch(r"[0-9a-fA-F]+", value) and (
        len(value) in (32, 40, 56, 64, 96, 128) or _DIGEST_WORDS.search(line)
    ):
        return Hit("digest-shaped hex string", "info", "the length or words of a digest")
    if re.fullmatch(r"[0-9a-fA-F]+", value) and len(value) < 16:
        return Hit("short hex string", "info", "too short for a key")
    if _is_test(path) or _DIGEST_WORDS.search(line):
        return Hit("high-entropy string", "info", "test file" if _is_test(path) else "a digest")
    return Hit("high-entropy string", "warn", "entropy only")


def _keyword(value: str, path: str) -> Hit | None:
    """A literal beside a secret-sounding name (`password = "..."`): prose (an email's text
    about passwords), a reference or a template is none; a test file's is a fixture."""
    if re.search(r"\s", value) or _looks_like_code(value) or _TEMPLATE.search(value):
        return None
    if _placeholder(value) and _is_docs(path):
        return None
    if _is_test(path):
        return Hit("secret keyword", "info", "test file")
    return Hit("secret keyword", "warn", "keyword only")


# ---- The reviewed baseline -------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """Reviewed non-secrets: (file, SHA-1 of the value) pairs from detect-secrets' baseline at
    the run's base commit. An entry a person audited as a real secret (`is_secret: true`) is no
    excuse."""

    entries: frozenset[tuple[str, str]] = frozenset()
    problem: str = ""
    """Why the baseline could not be read, if it could not (then it excuses nothing)."""

    @classmethod
    def at(cls, repo: Path, base: str) -> Baseline:
        """The baseline in the run's base commit, read from git's objects, never from the
        workspace (where the agent may have written one)."""
        try:
            # A change without files: a real one's `old_text` first reads every file's base.
            text = Change(repo, base, ()).old_text(BASELINE)
        except Exception as e:  # noqa: BLE001 - an unreadable baseline excuses nothing
            return cls(problem=f"{type(e).__name__}: {e}")
        return cls() if text is None else cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> Baseline:
        if len(text) > READ_LIMIT:
            return cls(problem=f"larger than {READ_LIMIT} bytes")
        try:
            results = json.loads(text)["results"]
            entries = frozenset(
                (str(file), str(e["hashed_secret"]))
                for file, listed in results.items()
                for e in listed
                if e.get("is_secret") is not True
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return cls(problem=f"not detect-secrets' baseline format ({type(e).__name__})")
        return cls(entries)

    def judge(self, path: str, value: str, hit: Hit) -> Hit:
        if hit.kind == REFERENCE or (path, _sha1(value)) not in self.entries:
            return hit
        return Hit(hit.kind, "info", f"reviewed: listed in {BASELINE} at the base commit")


def _sha1(value: str) -> str:
    """detect-secrets' `hashed_secret`."""
    return hashlib.sha1(value.encode("utf-8")).hexdigest()  # noqa: S324 - its format, no secrecy


# ---- detect-secrets ---------------------------------------------------------------------------


def _detected(change: Change, whole_files: bool) -> list[tuple[str, Any]]:
    """detect-secrets' hits on the change, each with the path of the file it is in."""
    files = [
        f
        for f in change.files
        if f.added and not f.binary and f.status != "deleted" and not _ds_skips(f.path)
    ]
    whole = [f for f in files if whole_files and _whole_file(f.path)]
    hits: list[tuple[str, Any]] = []
    with _settings():
        names = {f"{i}/{_safe_name(f.path)}": f for i, f in enumerate(files) if f not in whole}
        patch = "".join(f"--- a/{n}\n+++ b/{n}\n{_ds_patch(f)}" for n, f in names.items())
        if patch:
            hits += [(names[h.filename].path, h) for h in ds_scan.scan_diff(patch)]
        if whole:
            hits += _scan_whole(change, whole)
    # A file detect-secrets would skip by its name alone was shown under a plain one: its
    # provider-pattern hits count (an AWS key in `poetry.lock` is a key), not its entropy ones.
    return [(p, h) for p, h in hits if not _skipped_by_name(p) or h.type not in GENERIC]


DS_LINE_LIMIT = 1000
"""Characters of one added line detect-secrets reads. A longer line (minified JavaScript, a
data file) costs it about a second a megabyte and can only yield generic hits, which warn; the
harness's own provider patterns read every line whole."""


# Drawings, documents and built bundles: text detect-secrets spends seconds on for generic hits
# alone (a 1 MB Illustrator file took it 6 s). The provider patterns still read them.
_DS_SKIPS = (".svg", ".ai", ".eps", ".pdf", ".ps", ".map", ".min.js", ".min.css")


def _ds_skips(path: str) -> bool:
    return path.lower().endswith(_DS_SKIPS)


def _ds_patch(f: FileChange) -> str:
    """The file's hunks with each added line longer than `DS_LINE_LIMIT` left empty (still a
    line, so the numbers after it hold)."""
    if all(len(ln.text) <= DS_LINE_LIMIT for ln in f.added):
        return f.patch
    return "".join(
        "+\n" if line.startswith("+") and len(line) > DS_LINE_LIMIT + 2 else line
        for line in f.patch.splitlines(keepends=True)
    )


def _skipped_by_name(path: str) -> bool:
    """Names detect-secrets skips whole (lock files, images and other binary extensions,
    swagger files): the agent picks its files' names."""
    return any(skip(path) for skip in (is_lock_file, is_non_text_file, is_swagger_file))


def _safe_name(path: str) -> str:
    """A name for detect-secrets to see: the file's own name where it is plain (the plugins pick
    their patterns by extension, the filters skip lock files by name), else `file` and its
    extension; `file` for a name detect-secrets would skip."""
    name = path.rsplit("/", 1)[-1]
    if _skipped_by_name(path):
        return "file"
    if re.fullmatch(r"[A-Za-z0-9._-]+", name) and name not in (".", ".."):
        return name
    ext = re.search(r"\.[A-Za-z0-9]+$", name)
    return "file" + (ext.group(0) if ext else "")


def _scan_whole(change: Change, whole: list[FileChange]) -> list[tuple[str, Any]]:
    """Files detect-secrets reads whole, read from the workspace without following a link
    (a link is read from the diff alone) and scanned from a copy the harness owns."""
    hits: list[tuple[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jackline-secrets-") as tmp:
        for i, f in enumerate(whole):
            data = safeio.read_bytes(change.root, f.path, READ_LIMIT + 1)
            if data is None or len(data) > READ_LIMIT:
                name = f"{i}/{_safe_name(f.path)}"
                patch = f"--- a/{name}\n+++ b/{name}\n{_ds_patch(f)}"
                hits += [(f.path, h) for h in ds_scan.scan_diff(patch)]
                continue
            copy = Path(tmp) / str(i) / _safe_name(f.path)
            copy.parent.mkdir()
            copy.write_bytes(data)
            hits += [(f.path, h) for h in ds_scan.scan_file(str(copy))]
    return hits


def scan_commits(repo: Path, base: str, known: Iterable[str] = ()) -> Found:
    """Secrets in the commits the agent made itself (`base..HEAD`), one by one: a secret added
    in one commit and deleted in the next is absent from the final diff, yet would be pushed."""
    shas = g.git(repo, "rev-list", "--reverse", "--no-merges", f"{base}..HEAD").split()
    # The run's base holds the reviewed baseline, not a commit's parent: the agent wrote those.
    reviewed = Baseline.at(repo, base)
    findings: list[Finding] = []
    values: set[str] = set()
    for sha in shas:
        change = Change.between(repo, f"{sha}^", sha)
        found = scan(change, known, whole_files=False, baseline=reviewed)
        values |= found.values
        findings += [
            replace(f, message=f"{f.message} (in the agent's commit {sha[:10]})")
            for f in found.findings
        ]
    return Found(tuple(findings), frozenset(values))


def scan_text_file(path: Path) -> frozenset[str]:
    """Secret values found in a log file (an agent's output, say): for redaction. Only what the
    log keeps is read (`proc` bounds it), never through a link, and detect-secrets scans a
    private copy of that, not the path, each distinct line once: it spends about a millisecond a
    line, and output repeats itself (progress bars, a loop's messages). The provider patterns
    read every line too (a key printed as `client = Client("<key>")` is a key)."""
    text = safeio.read_text(path.parent, path.name, proc.LOG_LIMIT)
    if not text:
        return frozenset()
    lines = list(dict.fromkeys(text.splitlines()))
    with tempfile.NamedTemporaryFile("w", suffix=".log", encoding="utf-8") as copy:
        copy.write("\n".join(lines) + "\n")
        copy.flush()
        with _settings():
            hits = list(ds_scan.scan_file(copy.name))
    found = {
        _whole(
            h.type, h.secret_value, lines[h.line_number - 1] if h.line_number <= len(lines) else ""
        )
        for h in hits
        if h.secret_value
    }
    found |= {value for line in lines for value, _ in own_hits(path.name, line)}
    return frozenset(found)


def _whole(kind: str, value: str, line: str) -> str:
    """The whole secret. detect-secrets' pattern plugins report `findall`'s first group, which for
    some patterns is only a prefix (the GitHub token plugin reports `ghp`); widen it to the
    pattern's whole match on the line, then to the whole token it stands in: a pattern may also
    stop short of the key's end (Stripe's takes `sk_live_` and 24 characters of a longer key),
    and a tail left outside the value would be neither masked nor redacted."""
    plugin = _PLUGINS.get(kind)
    for regex in getattr(plugin, "denylist", ()):
        for m in regex.finditer(line):
            if value in m.group(0) and len(m.group(0)) > len(value):
                return _token(str(m.group(0)), line)
    return _token(value, line)


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_+/-]")


def _token(value: str, line: str) -> str:
    at = line.find(value)
    if not value or at < 0:
        return value
    start, end = at, at + len(value)
    while start > 0 and _TOKEN_CHAR.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_CHAR.match(line[end]):
        end += 1
    while end < len(line) and line[end] == "=":  # base64's padding
        end += 1
    return line[start:end]


_PLUGINS: dict[str, Any] = dict(get_mapping_from_secret_type_to_class())


# Public prefixes that say which provider issued a key (documented by each provider, and the
# same in every key it issues), longest first so `sk-ant-` wins over `sk-`.
PREFIXES = tuple(
    sorted(
        (
            *("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),
            *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-"),
            *("sk-ant-", "sk-proj-", "sk-", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-"),
            *("sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_"),
            *("AIza", "npm_", "pypi-", "SG.", "shpat_", "shpss_", "dop_v1_", "hf_"),
        ),
        key=len,
        reverse=True,
    )
)


def mask(value: str) -> str:
    """Which provider's and how long: the value's public prefix, if it has a known one, and its
    length. No other character of it: any part shown is a part given away (a tail narrows the
    search for the rest, and recognises the value across places)."""
    prefix = next((p for p in PREFIXES if value.startswith(p) and len(value) > len(p) + 8), "")
    return f"{prefix}…[{len(value)} chars]"


def _finding(
    hit: Hit, path: str, line: int, text: str, value: str, values: frozenset[str]
) -> Finding:
    quoted = text
    for v in sorted(values, key=len, reverse=True):  # every secret on the line, not this one only
        quoted = quoted.replace(v, mask(v))
    quoted = quoted.strip()
    if len(quoted) > 160:
        quoted = quoted[:157] + "..."
    rule = "reference" if hit.kind == REFERENCE else _slug(hit.kind)
    return Finding(
        f"secret.{rule}",
        hit.level,
        f"{hit.kind} added: {mask(value)} ({hit.source} -> {hit.level})",
        file=path,
        line=line,
        why=WHY_REVIEWED
        if hit.source.startswith("reviewed")
        else WHY
        if hit.level == "block"
        else WHY_GENERIC,
        quote=quoted,
    )


def _slug(kind: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
