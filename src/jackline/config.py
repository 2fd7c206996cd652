"""`jackline.toml`: read once, validated at the door, every problem reported with its place.

`load(repo)` is the only way in; `jackline validate` calls the same function, so what validate
accepts is exactly what a run accepts.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jackline.errors import ConfigError

FILENAME = "jackline.toml"


class _Section(BaseModel):
    # Each field's docstring is its documentation (`test_every_config_field_is_documented`
    # holds every field to one); pydantic is not asked to read them into `description`, which
    # nothing uses: reading the source at import was 35-45 ms of every process's start.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _command(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty")
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("expected a shell string or a non-empty list of strings (argv)")


def _secret_ref(value: str) -> str:
    scheme, _, rest = value.partition(":")
    if scheme not in ("env", "file") or not rest:
        raise ValueError(f"{value!r} is not a secret reference; expected 'env:NAME' or 'file:PATH'")
    return value


class ProjectConfig(_Section):
    main: str = "main"
    """The branch runs start from and approved work merges into."""


class WorkspaceConfig(_Section):
    setup: list[str] = []
    """Shell commands run once in each new workspace before the agent (install dependencies, build)."""
    setup_timeout: int = Field(default=1800, gt=0)
    """Seconds each set-up command may take."""
    setup_inputs: list[str] | None = None
    """Globs of the files set-up depends on; a snapshot is rebuilt when they change. Default:
    the lock files found (uv.lock, poetry.lock, requirements*.txt, package-lock.json, ...)."""
    shared: list[str] = []
    """Folders set-up made that workspaces may share by hard link when copied (never written in
    place), such as `.venv/lib`. Overlay workspaces share the whole snapshot anyway."""
    kept_mb: int = Field(default=50, ge=0)
    """MiB of a run's work (compressed, from its base commit) kept in the store after each step
    that changes it, so another worker can take the run over and make its workspace again. A
    run whose work is larger is not kept, and then cannot move to another machine (0: never)."""


class CheckConfig(_Section):
    command: str | list[str]
    """The command that runs the check. `{report}` is replaced by a path for a machine-readable report."""
    parser: Literal["junit", "ruff-json", "mypy", "plain"] = "plain"
    """How to read the result: `junit` (reads `{report}`), `ruff-json`, `mypy`, or `plain` (exit code and output)."""
    timeout: int = Field(default=900, gt=0)
    """Seconds the check may take before it counts as failed."""

    _check_command = field_validator("command", mode="before")(_command)


PRESETS = ("claude-code", "codex", "aider", "mini-swe-agent")


class AgentConfig(_Section):
    preset: Literal["claude-code", "codex", "aider", "mini-swe-agent"] | None = None
    """A real coding agent Jackline knows how to drive: the right non-interactive command, its
    rules in its own format, its transcript read into the audit log. Or leave it out and give
    `command`."""
    command: str | list[str] | None = None
    """The agent's command (when there is no preset, or to replace the preset's program path).
    `{prompt}` becomes a text (the brief, then from round 2 the feedback), `{brief}` a path."""
    model: str | None = None
    """The model the preset asks for (`claude-sonnet-4-5`, `gpt-5-codex`, ...); default: the
    program's own default."""
    args: list[str] = []
    """Extra flags appended to the preset's command line."""
    env: dict[str, str] = {}
    """Plain (not secret) variables the agent gets, such as a base URL for the model API."""
    timeout: int = Field(default=1800, gt=0)
    """Seconds one agent round may take."""
    secrets: dict[str, str] = {}
    """Environment variables the agent needs, as secret references (`API_KEY = "env:API_KEY"`
    or `"file:PATH"`). Their values are redacted from everything stored."""

    @field_validator("command", mode="before")
    @classmethod
    def _check_command(cls, value: Any) -> Any:
        return None if value is None else _command(value)

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for ref in value.values():
            _secret_ref(ref)
        return value

    @model_validator(mode="after")
    def _preset_or_command(self) -> AgentConfig:
        if self.preset is None and self.command is None:
            raise ValueError(
                "give `preset` (one of: " + ", ".join(PRESETS) + ") or `command` (any program)"
            )
        return self


class TogetherRule(_Section):
    when: str
    """Glob (gitignore style): when the change touches a file here..."""
    also: list[str] = Field(min_length=1)
    """...it must also touch a file matching each of these globs."""
    level: Literal["block", "warn", "info"] = "warn"
    """How serious a missing co-change is."""
    why: str = ""
    """Why these change together, shown to the reviewer (for example a line of INFRASTRUCTURE.md)."""


class ScopeConfig(_Section):
    forbidden: list[str] = []
    """Globs (gitignore style) the agent must not write. Writes there are reverted after each round and reported."""
    protected: list[str] = []
    """Globs the agent may change, but any change there is a block-level finding: an owner approves."""
    max_changed_lines: int | None = Field(default=None, gt=0)
    """Added plus removed lines above which the change is flagged (warn; block at twice this)."""
    max_changed_files: int | None = Field(default=None, gt=0)
    """Files changed above which the change is flagged (warn; block at twice this)."""
    together: list[TogetherRule] = []
    """Co-change rules: `[[scope.together]] when = "src/api/**"`, `also = ["openapi.yaml"]`."""


class ScanConfig(_Section):
    migrations: list[str] = [
        "**/migrations/**",
        "**/migrate/**",
        "**/alembic/versions/**",
        "**/versions/*.py",
        "*.sql",
    ]
    """Globs for migration files: SQL files go through squawk, Python files are read as Alembic
    or Django migrations."""
    osv_db: str | None = None
    """A directory of OSV's published advisories, for checking dependencies offline: per
    ecosystem (`PyPI/`, `npm/`: the JSON files or `all.zip`, as `jackline osv update` writes
    them), or a copy of the PyPA advisory database (`vulns/<package>/PYSEC-*.yaml`). An absolute
    path (`~` allowed): a relative one would be read from the workspace, which the agent writes."""
    pip_audit: bool = True
    """Check new Python dependencies with pip-audit (needs the network) if no `osv_db` is set."""
    require_vuln_db: bool = False
    """Block a change whose new dependency versions could not be checked against a vulnerability
    database (pip-audit unreachable or missing, `osv_db` unreadable). Off by default: that is a
    warning, since without the network every dependency bump would block."""
    timeout: int = Field(default=120, gt=0)
    """Seconds one external scan tool (squawk, pip-audit) may take."""
    weakenings: bool = True
    """Look for security weakenings in changed Python files: removed login and permission
    guards (block), and new `verify=False`, `shell=True`, `csrf_exempt`, unsafe YAML, formatted
    SQL and bandit's issues (warn)."""


class BlueprintConfig(_Section):
    name: str = "standard"
    """The blueprint a run follows unless `--blueprint` names another."""
    max_rounds: int = Field(default=2, ge=1, le=20)
    """Agent rounds before the run stops as failed and a person takes over."""


class ReviewConfig(_Section):
    allow_self_approval: bool = False
    """Let the person who submitted a run approve it. Off by default: a second pair of eyes."""
    owners: list[str] = []
    """People with the `owner` role: only they may approve a run with a block-level finding."""
    allow_as: bool = False
    """Let the command line act as someone other than its OS user (`--as NAME`,
    `JACKLINE_USER`), recorded as that user's claim. Off by default, since nothing checks the
    name: for a demo or tests that play several people. Teams decide through a server's tokens."""


class SandboxConfig(_Section):
    mode: Literal["bubblewrap", "none"] = "bubblewrap"
    """`bubblewrap`: agent, checks and set-up run isolated. `none`: as they are (warned on every run)."""
    allow_network: list[str] = []
    """Hosts the agent and checks may reach through an allowlisting proxy (`pypi.org`,
    `*.github.com`, `10.0.0.5:8080`). None by default; set-up always has the network."""

    @field_validator("allow_network")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        from jackline.sandbox.proxy import parse_allow

        parse_allow(value)  # raises ValueError naming the entry that is not a host
        return value

    readable: list[str] = []
    """Paths outside the workspace that commands need to read but the sandbox does not show. It
    shows only the system (`/usr`, `/etc`, `/opt`, ...), the tools on PATH and under the home:
    a dataset under /srv or the home, a socket's folder under /run, go here (read-only)."""
    hidden: list[str] = []
    """More paths to hide from commands (the home, Jackline's state and SSH/cloud credentials always are)."""
    env: list[str] = []
    """Environment variables passed through besides the allowlist (PATH, HOME, LANG, ...).
    Secrets go in `[agents.NAME] secrets`."""
    memory_mb: int = Field(default=16384, ge=0)
    """Address-space limit per command, in MiB (0: no limit)."""
    max_processes: int = Field(default=4096, ge=0)
    """Process limit per command (0: no limit): a `pids` cgroup of its own where one can be
    made, which holds for root too; else RLIMIT_NPROC, which the kernel does not apply to root."""
    open_files: int = Field(default=8192, ge=0)
    """Open-file limit per command (0: no limit)."""
    tmp_mb: int = Field(default=512, gt=0)
    """Size of each of a command's private in-memory folders (`/tmp`, its home, `/dev/shm`), in
    MiB. They are memory that `memory_mb` does not count, so they are always bounded: a write
    past it fails with "No space left on device". Raise it where set-up unpacks large packages
    there (pip builds in /tmp, uv and npm cache in the home)."""
    disk_mb: int = Field(default=10240, ge=0)
    """How much a command may add to its workspace (and the other folders it may write), in
    MiB (0: no limit). Past it the command is ended, and its log says "the workspace grew past
    [sandbox] disk_mb = N"; no single file it writes may grow past it either. Checked every
    quarter second, so a fast writer may overshoot by what it writes in that time."""


class ModelPrice(_Section):
    input: float = Field(ge=0)
    """US dollars per million input tokens."""
    output: float = Field(ge=0)
    """US dollars per million output tokens."""
    cache_read: float | None = Field(default=None, ge=0)
    """Per million tokens read from the prompt cache (default: the input price)."""
    cache_write: float | None = Field(default=None, ge=0)
    """Per million tokens written to the prompt cache (default: the input price)."""


class BudgetConfig(_Section):
    wall_time: str = ""
    """How long a run may work in all (`2h`), review waits not counted; empty: no limit."""
    rounds: int | None = Field(default=None, gt=0)
    """Agent rounds a run may use in all, review rounds included; None: no limit."""
    spend: float | None = Field(default=None, gt=0)
    """US dollars of model use one run may spend (from its transcripts and `prices`)."""
    daily_spend: float | None = Field(default=None, gt=0)
    """US dollars all of the project's runs may spend per day (UTC); new runs are refused once
    it is spent."""
    prices: dict[str, ModelPrice] = {}
    """Prices per model name, as the transcripts name it: `[budget.prices."claude-sonnet-4-5"]
    input = 3.0, output = 15.0`. A model with no price counts as free, and the run says so."""

    @field_validator("wall_time")
    @classmethod
    def _check_wall_time(cls, value: str) -> str:
        if value:
            seconds(value)
        return value


class QueueConfig(_Section):
    """Team mode's shared queue, as it serves this repository's runs (`jackline worker`)."""

    concurrency: int = Field(default=0, ge=0)
    """Runs of this repository at work at once, across all workers: taken by a worker and not
    resting (awaiting review, blocked, or ended). A run past it waits on the queue until one of
    them rests. 0: no limit."""
    priority: int = 0
    """Added to the priority of each of this repository's runs: lower goes first, so a negative
    number puts its runs ahead of other repositories' and a positive one behind."""
    automatic: int = 10
    """Added to the priority of a run that no person asked for at a keyboard (one submitted
    through the REST API by a program, or by anything but the CLI, the web page and Slack), so
    a person's run goes first; 0 treats both alike."""


class PoolConfig(_Section):
    size: int = Field(default=0, ge=0, le=32)
    """Workspaces kept ready (snapshot taken, overlay made) so a run starts at once. 0: none."""
    refresh_every: str = ""
    """How old the snapshot of main may get before it is rebuilt (`30m`, `2h`, `1d`); empty: only
    by `jackline pool refresh` or when set-up inputs change."""

    @field_validator("refresh_every")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        if value:
            seconds(value)
        return value


class ServiceConfig(_Section):
    start: str | list[str]
    """Starts the service in the foreground (Jackline keeps it running and stops it with the
    workspace): `redis-server --bind 127.0.0.1 --port {port} --dir {dir}`. `{port}` is a free
    port on the host's loopback, `{dir}` a folder of the workspace's own for its data."""
    ready: str | list[str] | None = None
    """A command that succeeds once the service answers (`redis-cli -p {port} ping`); retried
    until `ready_timeout`. None: ready when its port accepts a connection."""
    ready_timeout: int = Field(default=60, gt=0)
    """Seconds the service may take to become ready before the workspace counts as broken."""
    port: int | None = Field(default=None, gt=0, lt=65536)
    """The port the agent and checks reach it on inside the sandbox (`6379`), whatever port it
    got on the host; default: the same as the host's. Without a sandbox, always the host's."""
    env: dict[str, str] = {}
    """Variables the agent and checks get, with `{port}` and `{dir}` filled in:
    `REDIS_URL = "redis://127.0.0.1:{port}/0"`. `JACKLINE_SERVICE_<NAME>_PORT` is always set."""

    _check_start = field_validator("start", mode="before")(_command)

    @field_validator("ready", mode="before")
    @classmethod
    def _check_ready(cls, value: Any) -> Any:
        return None if value is None else _command(value)


class EnvironmentConfig(_Section):
    deploy: str | list[str]
    """Deploys a commit: `scripts/deploy.sh staging {sha}` (`{sha}`, `{previous_sha}`, `{env}`)."""
    rollback: str | list[str] | None = None
    """Puts the previous release back (`{previous_sha}`); default: `deploy` with the previous sha.
    On the first release there is none: `{previous_sha}` is empty and means take it down."""
    url: str | None = None
    """Where the environment serves (`http://127.0.0.1:8101`); probes are relative to it."""
    health: str | None = None
    """A path that answers 200 once the deploy serves (`/healthz`), waited for after deploy."""
    ready_timeout: str = "60s"
    """How long the environment may take to answer `health` after a deploy."""
    smoke: list[str] = []
    """Requests that must answer as stated: `GET /api/items 200`, `GET / 200 contains 'Shop'`."""
    logs: str | None = None
    """A log file of the environment (relative to the release's checkout, where deploys run),
    scanned for ERROR lines and tracebacks written since the deploy."""
    soak: str = ""
    """How long to watch the environment after its checks pass (`30s`, `5m`): health and logs
    again at the end. Empty: no soak."""
    requires_go: bool = False
    """A person's `jackline go` is needed before deploying here."""
    timeout: str = "10m"
    """How long `deploy` and `rollback` may take."""
    secrets: dict[str, str] = {}
    """Variables the deploy needs, as secret references; redacted from everything stored."""

    _check_deploy = field_validator("deploy", mode="before")(_command)

    @field_validator("rollback", mode="before")
    @classmethod
    def _check_rollback(cls, value: Any) -> Any:
        return None if value is None else _command(value)

    @field_validator("ready_timeout", "timeout")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        seconds(value)
        return value

    @field_validator("soak")
    @classmethod
    def _check_soak(cls, value: str) -> str:
        if value:
            seconds(value)
        return value

    @field_validator("smoke")
    @classmethod
    def _check_smoke(cls, value: list[str]) -> list[str]:
        for line in value:
            smoke_probe(line)
        return value

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for ref in value.values():
            _secret_ref(ref)
        return value


SMOKE = re.compile(
    r"^(?P<method>GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)\s+(?P<path>/\S*)\s+(?P<status>[1-5]\d\d)"
    r"(?:\s+contains\s+(?P<q>['\"])(?P<text>.*)(?P=q))?\s*$"
)


def smoke_probe(line: str) -> tuple[str, str, int, str | None]:
    """`GET /path 200 contains 'text'` as (method, path, status, text or None)."""
    m = SMOKE.match(line)
    if m is None:
        raise ValueError(
            f"{line!r} is not a smoke check; write `METHOD /path STATUS`, optionally followed "
            "by `contains 'text'` (`GET /api/items 200`)"
        )
    return m["method"], m["path"], int(m["status"]), m["text"]


class ReleaseConfig(_Section):
    production_branch: str = "production"
    """The branch that points at what production runs; only the release workflow moves it."""
    environments: dict[str, EnvironmentConfig] = {}
    """The environments a release goes through, in the order written; the last is production."""
    allow_self_go: bool = False
    """Let the person who started a release say go. Off by default: a second person decides."""
    flags: str = "flags.toml"
    """The project's flag file, validated before every release."""


class HealthErrors(_Section):
    name: str
    """What the figure is (`production errors`)."""
    log: str | None = None
    """A log file (relative to the project, or absolute) whose lines matching `pattern` within
    `window` are counted."""
    pattern: str = r"ERROR|CRITICAL|Traceback \(most recent call last\)"
    """A regular expression for an error line."""
    metrics_url: str | None = None
    """A Prometheus-format `/metrics` URL to read `metric` from, instead of a log."""
    metric: str | None = None
    """The metric (a counter or gauge, with labels if needed: `http_errors_total{code="500"}`)."""
    window: str = "1h"
    """How far back log lines count (lines need an ISO timestamp at the start to be dated)."""
    threshold: float = 0
    """Above this count (or metric value) the figure needs attention."""

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        seconds(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> HealthErrors:
        if (self.log is None) == (self.metrics_url is None):
            raise ValueError("give exactly one of `log` (a file) or `metrics_url` (with `metric`)")
        if self.metrics_url is not None and not self.metric:
            raise ValueError("`metrics_url` needs `metric`, the metric to read there")
        return self

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a regular expression: {e}") from None
        return value


class HealthService(_Section):
    name: str
    """The service's name in the report."""
    url: str
    """The URL to request (GET)."""
    status: int = Field(default=200, ge=100, le=599)
    """The status that means up."""
    timeout: float = Field(default=5, gt=0)
    """Seconds to wait for an answer."""


class HealthConfig(_Section):
    every: str = ""
    """How often `jackline worker` or `jackline serve` writes the report (`1d`); empty: on demand."""
    main_command: str | list[str] | None = None
    """A command whose exit code says whether main is healthy (instead of the checks Jackline
    last recorded on main)."""
    errors: list[HealthErrors] = []
    """Error rates to watch: `[[health.errors]] name = "production", log = "var/production.log"`."""
    services: list[HealthService] = []
    """Services to probe: `[[health.services]] name = "shop", url = "http://127.0.0.1:8102/healthz"`."""
    dependencies: list[str] | None = None
    """Dependency files to check for known vulnerabilities (pip-audit, or `[scan] osv_db`);
    default: the lock and requirements files found."""

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: str) -> str:
        if value:
            seconds(value)
        return value

    @field_validator("main_command", mode="before")
    @classmethod
    def _check_main(cls, value: Any) -> Any:
        return None if value is None else _command(value)


ROLES = ("viewer", "reviewer", "owner", "admin")


class Person(_Section):
    name: str
    """The Jackline name decisions are recorded under (as `--as NAME` would)."""
    role: Literal["viewer", "reviewer", "owner", "admin"] = "viewer"
    """What the person may do from this surface: `viewer` reads, `reviewer` decides on runs
    and says go, `owner` also approves block-level findings and protected flags, `admin` all."""


class ForgeConfig(_Section):
    kind: Literal["local", "github"] = "local"
    """`local`: branches are pushed into the repository on disk. `github`: to GitHub, with a
    pull request per run."""
    repository: str | None = None
    """`owner/name` on GitHub."""
    token: str | None = None
    """A secret reference to a GitHub token that may push branches and open pull requests."""
    api_url: str = "https://api.github.com"
    """The REST API's base URL (GitHub Enterprise: `https://HOST/api/v3`)."""
    remote_url: str | None = None
    """Where to push (default: `https://github.com/OWNER/NAME.git`)."""
    webhook_secret: str | None = None
    """A secret reference to the webhook's secret: `/github/webhook` refuses requests whose
    HMAC signature does not match."""
    labels: list[str] = ["jackline"]
    """Labels put on every pull request Jackline opens."""
    merge: Literal["local", "merge", "squash", "rebase"] = "merge"
    """How an approved run lands: through GitHub's API, merging the pull request that way
    (`merge`, `squash` or `rebase`), only if GitHub allows it (branch protection, required
    reviews and checks), then this machine's main follows GitHub's; or `local`: merged here and
    the pull request told, as the local forge does."""
    checks: bool = False
    """Post the checks of each published round, and the scan's findings, as check runs on the
    pull request's head commit, with annotations at file:line (GitHub's Checks API, which takes
    them from a GitHub App's token only, with the `checks: write` permission)."""
    issue_label: str | None = "jackline"
    """Putting this label on an issue starts a run on it (as `/jackline run` in a comment
    does), if the person who put it may submit runs; None: only the comment does."""
    wait_for_ci: bool = False
    """After publishing, wait for GitHub's checks on the pull request's head (the base
    branch's required ones where the token may read branch protection, else every check run
    not Jackline's own); a failure is read (annotations, the job's log) and handed to the agent
    as another round, within the blueprint's rounds."""
    ci_timeout: float = Field(default=3600, gt=0)
    """Seconds to wait for GitHub's checks to finish before the run fails saying so."""
    ci_start: float = Field(default=120, gt=0)
    """Seconds to wait for a first check to appear on the head: none by then means the
    repository runs no CI on it, and the run goes on."""
    ci_poll: float = Field(default=15, gt=0)
    """Seconds between two looks at the checks."""
    users: dict[str, Person] = {}
    """GitHub logins allowed to act through reviews, `/jackline` comments and the issue label,
    with their Jackline name and role: `users.octocat = { name = "alice", role = "reviewer" }`."""

    @field_validator("token", "webhook_secret")
    @classmethod
    def _check_refs(cls, value: str | None) -> str | None:
        return None if value is None else _secret_ref(value)

    @model_validator(mode="after")
    def _github_needs(self) -> ForgeConfig:
        if self.kind == "github" and (not self.repository or not self.token):
            raise ValueError('kind = "github" needs `repository` ("owner/name") and `token`')
        if self.repository is not None and self.repository.count("/") != 1:
            raise ValueError(f"repository {self.repository!r} is not `owner/name`")
        return self


class SlackConfig(_Section):
    signing_secret: str
    """A secret reference to the Slack app's signing secret: every request is verified by it."""
    bot_token: str
    """A secret reference to the bot token (`xoxb-...`) the app posts with."""
    channel: str | None = None
    """Where messages go (runs at review, releases waiting for go, rollbacks)."""
    api_url: str = "https://slack.com/api/"
    """Slack's Web API base URL (changed only to test against a local server)."""
    users: dict[str, Person] = {}
    """Slack user ids allowed to act, with their Jackline name and role:
    `users.U0123ABCD = { name = "alice", role = "reviewer" }`."""

    @field_validator("signing_secret", "bot_token")
    @classmethod
    def _check_refs(cls, value: str) -> str:
        return _secret_ref(value)


class SurfacesConfig(_Section):
    slack: SlackConfig | None = None
    """The Slack app (`/slack/events` on `jackline serve`)."""


def seconds(text: str) -> int:
    """`90s`, `30m`, `2h`, `1d` in seconds; a clear error for anything else."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise ValueError(f"{text!r} is not a duration; write a number and s, m, h or d (`30m`)")
    return int(number) * units[unit]


class JacklineConfig(_Section):
    project: ProjectConfig = ProjectConfig()
    """Which branch is main."""
    workspace: WorkspaceConfig = WorkspaceConfig()
    """How a workspace is prepared."""
    checks: dict[str, CheckConfig] = {}
    """The project's checks, by name (`test`, `lint`, ...), run after every agent round."""
    agents: dict[str, AgentConfig] = {}
    """The agents a run may use, by name; `default` is used unless `--agent` names another."""
    scope: ScopeConfig = ScopeConfig()
    """What the agent may touch."""
    blueprint: BlueprintConfig = BlueprintConfig()
    """Which steps a run takes and how many rounds it gets."""
    review: ReviewConfig = ReviewConfig()
    """Who may decide on a run."""
    scan: ScanConfig = ScanConfig()
    """How the change is scanned before review."""
    sandbox: SandboxConfig = SandboxConfig()
    """Where the agent, the checks and the set-up run."""
    pool: PoolConfig = PoolConfig()
    """Warm workspaces, ready before a run asks."""
    services: dict[str, ServiceConfig] = {}
    """Services each workspace gets its own of (a database, a cache), by name."""
    release: ReleaseConfig = ReleaseConfig()
    """How a merged commit goes live: environments, probes, who says go."""
    health: HealthConfig = HealthConfig()
    """What the morning report looks at."""
    forge: ForgeConfig = ForgeConfig()
    """Where branches and change requests go."""
    surfaces: SurfacesConfig = SurfacesConfig()
    """Ways in besides the CLI and the web page."""
    budget: BudgetConfig = BudgetConfig()
    """How much time, how many rounds and how much model spend a run (and a day) may use."""
    queue: QueueConfig = QueueConfig()
    """How the team's workers take this repository's runs: a limit at once, a priority."""


def load(repo: Path) -> JacklineConfig:
    path = repo / FILENAME
    if not path.is_file():
        raise ConfigError(str(path), ["not found; `jackline init` writes one"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), [f"invalid TOML: {e}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), ["not UTF-8 text"]) from None
    return parse(data, str(path))


def recorded(config: JacklineConfig) -> str:
    """The config as a run or release records it: JSON text, whose key order (the order checks
    and environments were written in) survives the audit log's sorted keys."""
    return config.model_dump_json()


def from_record(value: str | dict[str, Any]) -> JacklineConfig:
    """A config `recorded` (or, from older records, a dict whose order was lost)."""
    return parse(json.loads(value) if isinstance(value, str) else value, "the recorded config")


def parse(data: dict[str, Any], path: str = FILENAME) -> JacklineConfig:
    try:
        return JacklineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(path, [_describe(err) for err in e.errors()]) from None


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "missing":
        return f"{loc}: field required"
    if kind == "extra_forbidden":
        return f"{loc}: unknown key{_suggest(err['loc'])}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg} (got {err['input']!r})"


def _suggest(loc: tuple[Any, ...]) -> str:
    """Name the keys that are allowed where an unknown one stands, and the closest one."""
    model: Any = JacklineConfig
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", {})
        field = fields.get(str(part))
        if field is None:
            continue  # a dict key such as the check's name
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = args[-1] if args and isinstance(args[-1], type) else ann
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (expected one of: {', '.join(known)}){hint}"
