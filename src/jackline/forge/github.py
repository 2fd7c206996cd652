"""The `github` forge: `agent/*` branches pushed to GitHub, one pull request per run.

    publish    push the branch with the token, open the pull request (labels from `[forge]
               labels`) or, on a later round, find the open one for the same branch
    announce   `run.awaiting_review`: the pull request's body becomes the handoff (PATCH),
               and with `[forge] checks`, the round's checks and the scan's findings become
               check runs on the head commit; `run.merged`: a comment "merged as <sha>"

An approval (from any surface, the webhook included) merges the pull request through GitHub's API
(`[forge] merge`: merge, squash or rebase), only if GitHub allows it, and this machine's main then
follows GitHub's (`merge_pull`, `follow_main`); `merge = "local"` lands it here as the `local`
forge does and tells the pull request. A rejection closes the pull request with the reason.

The token never enters the workspace: it travels to git as an `http.extraheader` set through
`GIT_CONFIG_*` variables of the one push (not in argv, where other users' `ps` would show it, and
not in any config file), hooks are off for every harness-side git call, and a failed push is
redacted before it is raised. The API is called through githubkit (`GitHub(token, base_url=
[forge] api_url)`), whose generated models also check what GitHub answers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from jackline import config as cfg
from jackline import git as g
from jackline.errors import CommandFailed, ConfigError, NotFound, Refused
from jackline.forge import check_branch
from jackline.guard.redact import Redactor, resolve
from jackline.handoff import Handoff, finding_line

if TYPE_CHECKING:
    from githubkit import GitHub

    from jackline.store import IssueRun

BODY_LIMIT = 65_000
"""GitHub refuses pull request and comment bodies over 65,536 characters."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    """The page people open (`html_url`)."""
    created: bool = False
    """Opened by this call (False: an open one for the branch was found)."""
    open: bool = True
    merged: bool = False


# githubkit --------------------------------------------------------------------------------


def githubkit() -> ModuleType:
    """githubkit, imported on first use (it is large): only runs with a `github` forge pay."""
    import githubkit as kit

    return kit


def models() -> ModuleType:
    """githubkit's models generated from GitHub's REST description (request and response)."""
    githubkit()
    import githubkit_schemas.latest.models as m

    return m


def _where(key: str) -> str:
    return f"{cfg.FILENAME}: forge.{key}"


def token(forge: cfg.ForgeConfig) -> str:
    if not forge.token:
        raise ConfigError(cfg.FILENAME, ['forge.token: kind = "github" needs a token reference'])
    return resolve(forge.token, _where("token"))


def client(forge: cfg.ForgeConfig) -> GitHub[Any]:
    kit = githubkit()
    gh: GitHub[Any] = kit.GitHub(token(forge), base_url=forge.api_url, http_cache=False)
    return gh


def owner_repo(forge: cfg.ForgeConfig) -> tuple[str, str]:
    if not forge.repository:
        raise ConfigError(cfg.FILENAME, ['forge.repository: kind = "github" needs "owner/name"'])
    owner, _, name = forge.repository.partition("/")
    return owner, name


# push -------------------------------------------------------------------------------------


def remote_url(forge: cfg.ForgeConfig) -> str:
    return forge.remote_url or f"https://github.com/{forge.repository}.git"


def push(workspace: Path, forge: cfg.ForgeConfig, branch: str) -> None:
    """Push the workspace's HEAD to `branch` at `[forge] remote_url`, by URL: the workspace's
    own remotes are configuration the agent could have rewritten."""
    check_branch(branch)
    _with_token(workspace, forge, "push", "--quiet", "--force", remote_url(forge),
                f"HEAD:refs/heads/{branch}")  # fmt: skip


def follow_main(repo: Path, forge: cfg.ForgeConfig, main: str) -> str:
    """This machine's `main` takes GitHub's where that only moves it forward: fetched by URL
    with the token into `refs/jackline/github-main`, then fast-forwarded (a checked-out main
    only while it holds no uncommitted change); a main with commits of its own is `Refused`.
    Returns GitHub's tip."""
    ref = "refs/jackline/github-main"
    _with_token(repo, forge, "fetch", "--quiet", "--no-tags", remote_url(forge),
                f"+refs/heads/{main}:{ref}")  # fmt: skip
    tip = g.rev(repo, ref)
    old = g.rev(repo, main)
    if old == tip:
        return tip
    if not g.ok(repo, "merge-base", "--is-ancestor", old, tip):
        raise Refused(
            f"{repo}'s {main} has commits GitHub's {main} does not ({old[:10]} is not in "
            f"{tip[:10]}): the merge is checked on GitHub's {main}, so push them (or reset "
            f"{main} to GitHub's) and approve again"
        )
    if g.current_branch(repo) != main:
        g.git(repo, "update-ref", f"refs/heads/{main}", tip, old)
    elif not g.dirty_tracked(repo):
        g.git(repo, "merge", "--quiet", "--ff-only", tip)
    return tip


def _with_token(where: Path, forge: cfg.ForgeConfig, *args: str) -> None:
    """git ARGS with the token as an `http.extraheader`, through `GIT_CONFIG_*` variables of
    this one call; a failure is raised with the token redacted."""
    secret = token(forge)
    basic = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    env = {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "http.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
        "GIT_CONFIG_KEY_1": "credential.helper",  # no helper of the user's gets asked instead
        "GIT_CONFIG_VALUE_1": "",
    }
    try:
        g.git(where, *args, env=env)
    except CommandFailed as e:
        redact = Redactor({"forge.token": secret, "forge.token.basic": basic})
        raise CommandFailed(
            [redact(a) for a in e.argv] if isinstance(e.argv, list) else redact(e.argv),
            e.code,
            redact(e.stdout),
            redact(e.stderr),
        ) from None


# pull requests ----------------------------------------------------------------------------


def find_pull(
    forge: cfg.ForgeConfig, branch: str, state: Literal["open", "all"] = "open"
) -> PullRequest | None:
    """The open pull request whose head is `branch` in the repository itself, if any (`all`:
    a closed or merged one too)."""
    owner, repo = owner_repo(forge)
    gh = client(forge)  # the namespaces hold their client weakly: keep it referenced
    found = gh.rest.pulls.list(owner, repo, state=state, head=f"{owner}:{branch}")
    for pr in found.parsed_data:
        if pr.head.ref == branch:
            return PullRequest(pr.number, pr.html_url, open=pr.state == "open",
                               merged=bool(pr.merged_at))  # fmt: skip
    return None


def open_pull(forge: cfg.ForgeConfig, branch: str, base: str, title: str, body: str) -> PullRequest:
    """Open the pull request for `branch` (labelled), or find the one already open."""
    found = find_pull(forge, branch)
    if found:
        return found
    owner, repo = owner_repo(forge)
    gh = client(forge)
    pr = gh.rest.pulls.create(
        owner, repo, title=title[:250], head=branch, base=base, body=_clip(body)
    ).parsed_data
    if forge.labels:
        gh.rest.issues.add_labels(owner, repo, pr.number, labels=list(forge.labels))
    return PullRequest(pr.number, pr.html_url, created=True)


def update_body(forge: cfg.ForgeConfig, branch: str, body: str) -> PullRequest:
    pr = find_pull(forge, branch)
    if pr is None:
        raise NotFound(f"no open pull request for {branch} in {forge.repository}")
    owner, repo = owner_repo(forge)
    gh = client(forge)
    gh.rest.pulls.update(owner, repo, pr.number, body=_clip(body))
    return pr


def close_pull(forge: cfg.ForgeConfig, number: int) -> None:
    owner, repo = owner_repo(forge)
    gh = client(forge)
    gh.rest.pulls.update(owner, repo, number, state="closed")


def comment(forge: cfg.ForgeConfig, number: int, text: str) -> int:
    """A comment on an issue or pull request; its id."""
    owner, repo = owner_repo(forge)
    gh = client(forge)
    return int(gh.rest.issues.create_comment(owner, repo, number, body=_clip(text)).parsed_data.id)


def edit_comment(forge: cfg.ForgeConfig, comment_id: int, text: str) -> None:
    owner, repo = owner_repo(forge)
    gh = client(forge)
    gh.rest.issues.update_comment(owner, repo, comment_id, body=_clip(text))


def issue_comments(forge: cfg.ForgeConfig, number: int) -> list[tuple[str, str]]:
    """The issue's comments as (login, text), oldest first (the first 100)."""
    owner, repo = owner_repo(forge)
    gh = client(forge)
    found: list[Any] = gh.rest.issues.list_comments(owner, repo, number, per_page=100).parsed_data
    return [(c.user.login if c.user else "", c.body or "") for c in found]


@dataclass(frozen=True)
class LineComment:
    """A review's comment on one line of a pull request's diff."""

    path: str
    line: int
    side: Literal["old", "new"]
    body: str


def review_comments(forge: cfg.ForgeConfig, number: int, review_id: int) -> list[LineComment]:
    """The comments on lines a review holds (a comment on a whole file, which has no line, is
    not one), each with its side: `LEFT` is the old file's numbering."""
    owner, repo = owner_repo(forge)
    gh = client(forge)
    found = gh.rest.pulls.list_comments_for_review(owner, repo, number, review_id, per_page=100)
    listed: list[Any] = found.parsed_data  # githubkit types it as its own list alias
    return [
        LineComment(c.path, c.line, "old" if c.side == "LEFT" else "new", c.body)
        for c in listed
        if isinstance(c.line, int)
    ]


def merge_pull(forge: cfg.ForgeConfig, branch: str, head: str, title: str, message: str) -> str:
    """Merge the pull request of `branch` through GitHub's API (`[forge] merge`), only while
    its head is still `head`; GitHub's refusal (branch protection, required reviews or checks,
    a conflict) is `Refused` with GitHub's own words. Returns the commit it made on the base;
    "" for a pull request merged already (this step done once, then replayed after a crash)."""
    from githubkit.exception import RequestFailed

    found = find_pull(forge, branch, state="all")
    if found is None:
        raise Refused(f"{forge.repository} has no pull request for {branch}")
    number = found.number
    if found.merged:  # GitHub's list does not say which commit: the caller finds it
        return ""
    if not found.open:
        raise Refused(f"pull request #{number} of {branch} is closed on GitHub")
    owner, repo = owner_repo(forge)
    gh = client(forge)
    try:
        done = gh.rest.pulls.merge(
            owner, repo, number, commit_title=title, commit_message=message, sha=head,
            merge_method=forge.merge if forge.merge != "local" else "merge",
        ).parsed_data  # fmt: skip
    except RequestFailed as e:
        raise Refused(f"GitHub refused to merge pull request #{number}: {_said(e)}") from None
    return str(done.sha)


def _said(e: Any) -> str:
    """GitHub's own words for a refused request (its JSON `message`), else the status."""
    try:
        said = e.response.json().get("message")
    except Exception:  # noqa: BLE001 - an answer that is not JSON
        said = None
    return str(said or f"HTTP {e.response.status_code}")


def head_branch(forge: cfg.ForgeConfig, number: int) -> str:
    """The branch a pull request proposes (an `issue_comment` event does not carry it)."""
    owner, repo = owner_repo(forge)
    gh = client(forge)
    return str(gh.rest.pulls.get(owner, repo, number).parsed_data.head.ref)


# check runs -------------------------------------------------------------------------------

ANNOTATIONS = 50
"""GitHub takes at most 50 annotations a request: the first are sent, the summary counts all."""
LEVELS: dict[str, Literal["notice", "warning", "failure"]] = {
    "block": "failure",
    "warn": "warning",
    "info": "notice",
}


def post_checks(forge: cfg.ForgeConfig, record: Handoff) -> int:
    """The checks of the run's last round and the scan's findings, each a completed check run
    on the head commit (`jackline / NAME`, `jackline / scan`), failures and findings annotated
    at their file and line. Returns how many check runs were made."""
    if not record.head or not record.rounds:
        return 0
    owner, repo = owner_repo(forge)
    gh = client(forge)
    made = 0
    for check in record.rounds[-1].checks:
        notes = [
            _annotation(f.file, f.line, "failure", f.message, f.test or f.rule or check.name)
            for f in check.failures
            if f.file and f.line
        ]
        summary = check.summary or ("passed" if check.passed else "failed")
        title = f"{check.name}: {summary}"
        text = f"`{check.command}` exited {check.exit_code} in {check.duration:.1f}s."
        _check_run(gh, owner, repo, record.head, check.name, check.passed, title, text, notes)
        made += 1
    blocking = [f for f in record.findings if f.level == "block"]
    notes = [
        _annotation(f.file, f.line, LEVELS[f.level], f.message, f.rule)
        for f in record.findings
        if f.file and f.line
    ]
    counts = ", ".join(
        f"{sum(f.level == level for f in record.findings)} {level}" for level in LEVELS
    )
    title = f"scan: {counts}" if record.findings else "scan: nothing found"
    text = "\n".join(f"- {finding_line(f)}" for f in record.findings) or "No findings."
    _check_run(gh, owner, repo, record.head, "scan", not blocking, title, text, notes)
    return made + 1


def _check_run(
    gh: GitHub[Any],
    owner: str,
    repo: str,
    sha: str,
    name: str,
    passed: bool,
    title: str,
    text: str,
    notes: list[dict[str, Any]],
) -> None:
    if len(notes) > ANNOTATIONS:
        text += f"\n\n{len(notes) - ANNOTATIONS} more annotations are in Jackline's handoff."
    output: Any = {"title": title[:255], "summary": _clip(text), "annotations": notes[:ANNOTATIONS]}
    gh.rest.checks.create(
        owner,
        repo,
        name=f"jackline / {name}",
        head_sha=sha,
        status="completed",
        conclusion="success" if passed else "failure",
        output=output,
    )


def _annotation(
    path: str, line: int, level: Literal["notice", "warning", "failure"], message: str, title: str
) -> dict[str, Any]:
    return {
        "path": path,
        "start_line": line,
        "end_line": line,
        "annotation_level": level,
        "message": message[:4000] or title,
        "title": title[:255],
    }


# GitHub's CI on the pull request ------------------------------------------------------------

FAILED = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure"})
"""Check run conclusions that fail a head (`neutral` and `skipped` do not, as on GitHub)."""
LOG_LINES = 80
"""The last lines of a failed Actions job's log handed to the agent (where the error is)."""
LOG_READ = 64 * 2**20
"""At most this much of a job's log is read (streamed; only its end is kept in memory)."""
LOG_TAIL = 256 * 2**10
"""The bytes kept of what was read: enough for `LOG_LINES` lines of any sane width."""


@dataclass(frozen=True)
class CiCheck:
    name: str
    conclusion: str | None
    """None while it runs."""
    id: int = 0
    actions: bool = False
    """A GitHub Actions job's (its log can be read)."""


@dataclass(frozen=True)
class CiLook:
    """What GitHub's checks on a head say at one look."""

    state: Literal["pending", "passed", "failed", "none"]
    checks: tuple[CiCheck, ...] = ()
    required: tuple[str, ...] | None = None
    """The base branch's required checks, where the token may read them."""

    @property
    def failed(self) -> tuple[CiCheck, ...]:
        return tuple(c for c in self.checks if c.conclusion in FAILED)


def required_checks(forge: cfg.ForgeConfig, base: str) -> tuple[str, ...] | None:
    """The status checks branch protection requires on `base`; None where it is not protected
    or the token may not read it (then every check run is waited for)."""
    from githubkit.exception import RequestFailed

    owner, repo = owner_repo(forge)
    gh = client(forge)
    try:
        found = gh.rest.repos.get_all_status_check_contexts(owner, repo, base).parsed_data
    except RequestFailed:
        return None
    return tuple(str(x) for x in found) or None


def look_at_ci(
    forge: cfg.ForgeConfig, head: str, required: tuple[str, ...] | None, give_up: bool
) -> CiLook:
    """One look at the check runs on `head`, Jackline's own (`jackline / ...`) left out. With
    `required`, those decide (a required one not there yet is pending); without, every other
    one does. No check at all is pending until `give_up` (the repository runs no CI on it)."""
    owner, repo = owner_repo(forge)
    gh = client(forge)
    listed = gh.rest.checks.list_for_ref(owner, repo, head, filter_="latest", per_page=100)
    checks = tuple(
        CiCheck(
            c.name,
            c.conclusion if c.status == "completed" else None,
            c.id,
            bool(c.app and c.app.slug == "github-actions"),
        )  # fmt: skip
        for c in listed.parsed_data.check_runs
        if not c.name.startswith("jackline / ")
    )
    if required is not None:
        checks = tuple(c for c in checks if c.name in required)
    failed = any(c.conclusion in FAILED for c in checks)
    if required is not None and set(required) - {c.name for c in checks} and not failed:
        return CiLook("pending", checks, required)  # a required check not there yet
    if not checks:
        return CiLook("none" if give_up else "pending", (), required)
    if failed:
        return CiLook("failed", checks, required)
    if any(c.conclusion is None for c in checks):
        return CiLook("pending", checks, required)
    return CiLook("passed", checks, required)


def ci_failure(forge: cfg.ForgeConfig, check: CiCheck) -> str:
    """What a failed check says, for the agent: its annotations at file:line and, for an
    Actions job, the last lines of its log. Untrusted text (whatever the job printed): the
    caller redacts it and bounds it."""
    from githubkit.exception import RequestFailed

    owner, repo = owner_repo(forge)
    gh = client(forge)
    lines = [f"### {check.name}: {check.conclusion}"]
    try:
        notes = gh.rest.checks.list_annotations(owner, repo, check.id, per_page=50).parsed_data
        lines += [f"- {a.path}:{a.start_line}: {a.annotation_level}: {a.message}" for a in notes]
    except RequestFailed as e:
        lines.append(f"(its annotations could not be read: {_said(e)})")
    if check.actions:
        try:
            with client(forge) as streaming:  # one connection, kept open while it is read
                got = streaming.rest.actions.download_job_logs_for_workflow_run(
                    owner, repo, check.id, stream=True
                )
                end, whole = _tail(got.raw_response)
            tail = end.decode(errors="replace").rstrip("\n").splitlines()[-LOG_LINES:]
            which = "its log" if whole else f"the first {LOG_READ >> 20} MB of its log"
            lines += ["", f"The last {len(tail)} lines of {which}:", "```", *tail, "```"]
        except RequestFailed as e:
            lines.append(f"(its log could not be read: {_said(e)})")
    return "\n".join(lines)


def _tail(response: Any) -> tuple[bytes, bool]:
    """The last `LOG_TAIL` bytes of a streamed answer, read up to `LOG_READ`, and whether the
    whole of it was read: a job's log can be gigabytes, and only its end is wanted."""
    kept, read = bytearray(), 0
    try:
        for chunk in response.iter_bytes():
            read += len(chunk)
            kept += chunk
            del kept[:-LOG_TAIL]
            if read > LOG_READ:
                return bytes(kept), False
    finally:
        response.close()
    return bytes(kept), True


# setup ------------------------------------------------------------------------------------

EVENTS = ("issue_comment", "issues", "pull_request_review")
"""The webhook events `/github/webhook` acts on (`jackline.server.github`)."""


def events(forge: cfg.ForgeConfig) -> tuple[str, ...]:
    """The events this project's webhook must send: `issues` only for `[forge] issue_label`."""
    return tuple(e for e in EVENTS if e != "issues" or forge.issue_label)


@dataclass(frozen=True)
class Looked:
    """One thing `setup` checked: True, False, or None where the token cannot tell."""

    what: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class Setup:
    webhook: str
    events: tuple[str, ...]
    permissions: tuple[str, ...]
    looked: tuple[Looked, ...]

    @property
    def ready(self) -> bool:
        return all(x.ok is not False for x in self.looked)


def setup(forge: cfg.ForgeConfig, server: str) -> Setup:
    """What GitHub must be told (the webhook, its events, the permissions a GitHub App or a
    fine-grained token needs), and what the API says of it now, read-only: the repository as the
    token sees it, its pull requests and Actions runs, and the webhook where the token may list
    them (an admin's)."""
    from githubkit.exception import RequestFailed

    webhook = f"{server.rstrip('/')}/github/webhook"
    wanted = events(forge)
    needs = [
        "Contents: read and write (push agent/* branches)",
        "Pull requests: read and write (open them, write the handoff)",
        "Issues: read and write (comments, labels)",
        "Actions: read (the morning report reads main's runs; wait_for_ci reads job logs)",
    ]
    if forge.checks:
        needs.append("Checks: read and write (a GitHub App only: check runs)")
    elif forge.wait_for_ci:
        needs.append("Checks: read (wait_for_ci: the checks on a pull request's head)")
    if forge.wait_for_ci:
        needs.append(
            "Administration: read (optional: branch protection's required checks; without it "
            "every check on the head is waited for)"
        )
    owner, repo = owner_repo(forge)
    found: list[Looked] = []
    try:
        secret = (
            resolve(forge.webhook_secret, _where("webhook_secret")) if forge.webhook_secret else ""
        )
    except ConfigError as e:
        found.append(Looked("webhook secret", False, str(e)))
    else:
        found.append(
            Looked("webhook secret", True, f"{forge.webhook_secret} is set")
            if secret
            else Looked(
                "webhook secret",
                False,
                "[forge] webhook_secret is not set: "
                "/github/webhook refuses every delivery without one",
            )  # fmt: skip
        )
    try:
        gh = client(forge)
        seen = gh.rest.repos.get(owner, repo).parsed_data
    except ConfigError as e:
        return Setup(webhook, wanted, tuple(needs), (*found, Looked("token", False, str(e))))
    except RequestFailed as e:
        why = {401: "the token is refused (bad credentials)", 404: "not found, or the token "
               "cannot see it"}.get(e.response.status_code, f"HTTP {e.response.status_code}")  # fmt: skip
        looked = Looked(f"repository {forge.repository}", False, why)
        return Setup(webhook, wanted, tuple(needs), (*found, looked))
    found.append(
        Looked(f"repository {forge.repository}", True, f"default branch {seen.default_branch}")
    )
    rights = seen.permissions or None
    if rights is None:
        found.append(Looked("push", None, "the API does not say for this token (a GitHub App's "
                            "installation: its permissions are set on the app)"))  # fmt: skip
    else:
        found.append(Looked("push", bool(rights.push), "may push" if rights.push else
                            "the token may not push: agent/* branches cannot be published"))  # fmt: skip
    for what, call in (
        ("pull requests", lambda: gh.rest.pulls.list(owner, repo, per_page=1)),
        (
            "Actions runs",
            lambda: gh.rest.actions.list_workflow_runs_for_repo(owner, repo, per_page=1),
        ),
    ):
        try:
            call()
            found.append(Looked(what, True, "readable"))
        except RequestFailed as e:
            found.append(Looked(what, False, f"HTTP {e.response.status_code}"))
    found.append(_webhook(gh, owner, repo, webhook, wanted))
    return Setup(webhook, wanted, tuple(needs), tuple(found))


def _webhook(gh: GitHub[Any], owner: str, repo: str, url: str, wanted: tuple[str, ...]) -> Looked:
    from githubkit.exception import RequestFailed

    try:
        hooks = gh.rest.repos.list_webhooks(owner, repo).parsed_data
    except RequestFailed as e:
        return Looked("webhook", None, f"the token may not list webhooks (HTTP "
                      f"{e.response.status_code}: it needs admin); check Settings → Webhooks")  # fmt: skip
    ours = [h for h in hooks if (h.config.url or "").rstrip("/") == url]
    if not ours:
        return Looked("webhook", False, f"no webhook delivers to {url}")
    hook = ours[0]
    sent = set(hook.events)
    missing = [] if "*" in sent else sorted(set(wanted) - sent)
    if not hook.active:
        return Looked("webhook", False, f"the webhook to {url} is not active")
    if missing:
        return Looked("webhook", False, f"the webhook does not send {', '.join(missing)}")
    if hook.config.content_type != "json":
        return Looked("webhook", False, "its content type is not application/json")
    return Looked("webhook", True, f"delivers {', '.join(sorted(hook.events))} as JSON")


def _clip(text: str) -> str:
    if len(text) <= BODY_LIMIT:
        return text
    return text[:BODY_LIMIT] + "\n\n... (cut: the full handoff is in Jackline)"


# the seams: steps.publish and notify.announce -----------------------------------------------


def publish(
    workspace: Path, config: cfg.JacklineConfig, branch: str, run_id: str, task: str
) -> PullRequest:
    """Push the branch and make sure a pull request is open for it. Its body says the handoff
    follows: the handoff is written after publishing and replaces it (`announce`)."""
    push(workspace, config.forge, branch)
    title = task.strip().splitlines()[0] if task.strip() else run_id
    body = (
        f"Jackline run `{run_id}` is writing its handoff; it replaces this text when the run "
        f"reaches review.\n\n> {title}\n"
    )
    closes = _closes(_issue(run_id))
    return open_pull(config.forge, branch, config.project.main, title, body + closes)


def _issue(run_id: str) -> IssueRun | None:
    """The GitHub issue that started the run (`jackline.server.github`), if one did."""
    from jackline.store import Store

    return Store().issue_of(run_id)


def _closes(issue: IssueRun | None) -> str:
    """The line that makes GitHub close the run's issue when its pull request merges."""
    return f"\n\nCloses #{issue.number}\n" if issue else ""


def announce(event: str, config: cfg.JacklineConfig, data: dict[str, Any]) -> None:
    """The pull request hears what the run did: its handoff at review, its merge, its
    rejection; the issue that started the run, how it goes (its progress comment). Each is
    told even when the other cannot be (a deleted comment must not keep the handoff from the
    pull request); what failed is raised after, for the run's log."""
    if config.forge.kind != "github":
        return
    issue = _issue(data["run"]["id"])
    failed = []
    for tell in (_tell_pull, _tell_issue):
        try:
            tell(event, config, data, issue)
        except Exception as e:  # noqa: BLE001 - raised below, with the other's
            failed.append(f"{type(e).__name__}: {e}")
    if failed:
        raise RuntimeError("; ".join(failed))


def _tell_issue(
    event: str, config: cfg.JacklineConfig, data: dict[str, Any], issue: IssueRun | None
) -> None:
    said = progress(event, data)
    if issue and issue.comment_id and said:
        edit_comment(config.forge, issue.comment_id, said)


def _tell_pull(
    event: str, config: cfg.JacklineConfig, data: dict[str, Any], issue: IssueRun | None
) -> None:
    run = data["run"]
    if event == "run.awaiting_review" or (event == "run.accepted" and data.get("handoff")):
        update_body(config.forge, run["branch"], (data.get("handoff") or "") + _closes(issue))
    if event == "run.awaiting_review" and config.forge.checks and data.get("record"):
        post_checks(config.forge, Handoff.from_json(data["record"]))
    elif event == "run.rejected":
        pr = find_pull(config.forge, run["branch"])
        if pr is not None:  # never published (blocked, say): nothing to close
            why = f": {data['reason']}" if data.get("reason") else ""
            comment(config.forge, pr.number, f"Rejected by {data['by']} in Jackline{why}")
            close_pull(config.forge, pr.number)
    elif event == "run.merged":  # merged by GitHub (closed now), or here (still open)
        pr = find_pull(config.forge, run["branch"], state="all")
        if pr is None:
            raise NotFound(f"no pull request for {run['branch']} in {config.forge.repository}")
        comment(
            config.forge,
            pr.number,
            f"Merged as {run.get('merge_sha') or '?'} into `{config.project.main}` by Jackline "
            f"(run `{run['id']}`). Main is not live: releasing is a separate step.",
        )


# an issue's progress comment ------------------------------------------------------------------

MARK = "<!-- jackline:progress -->"
"""The first line of every progress comment: Jackline's own, never read back as a person's."""


def progress(event: str, data: dict[str, Any]) -> str | None:
    """The issue's progress comment for a run event (None: the event changes nothing there).
    `run.queued` is the webhook's own, once the run is recorded."""
    run = data["run"]
    pr = run.get("pull_request") or ""
    where = f" in {pr}" if pr else ""
    reason = str(run.get("reason") or "")
    said = {
        "run.queued": f"Queued, by {run.get('submitted_by')}, for the agent `{run.get('agent')}`.",
        "run.round": f"Working: round {data.get('round')} of the agent `{run.get('agent')}`.",
        "run.ci": f"Waiting for GitHub's checks on {str(data.get('head', ''))[:10]}{where}.",
        "run.awaiting_review": f"Waiting for review{where}.",
        "run.merged": f"Merged{where} as {str(run.get('merge_sha') or '?')[:10]}.",
        "run.rejected": f"Rejected by {data.get('by')}: {data.get('reason') or 'no reason given'}.",
        "run.failed": f"Failed: {reason or 'see the run'}.",
        "run.blocked": "Blocked: the scan found a secret in the change; a person decides.",
        "run.over_budget": f"Stopped over budget: {reason or 'see the run'}.",
        "run.cancelled": f"Cancelled: {reason or 'by a person'}.",
    }.get(event)
    if said is None:
        return None
    return f"{MARK}\n**Jackline** run `{run['id']}`: {said}\n"
