"""A fake GitHub REST API on loopback, for testing the `github` forge without GitHub.

Every request body is validated with githubkit's own generated request models (GitHub's REST
description), unknown fields included, and a wrong one is answered 422 and kept in `invalid`;
every answer is built as githubkit's response model and dumped, so it has the documented shape.

    with FakeGitHub("acme/shop", token="ghp_test") as gh:
        # [forge] api_url = gh.url
        ...
    gh.pulls[1].body, gh.pulls[1].labels, gh.pulls[1].comments
    gh.calls                       # (method, path, body) of every request, in order
    gh.invalid                     # requests the models refused (a test wants this empty)

Served: pulls list / create / get / update, issues (`open_issue`), comments create / list /
edit on either, labels add, check runs create (`check_runs`) and list for a commit with CI's own
(`add_check_run`: annotations, and an Actions job's log behind a redirect, as GitHub serves it),
the base branch's required checks (`required_checks`), Actions runs list, the repository, its
webhooks (`hooks`), a review's comments on lines (`review_comments`), merges (`git_dir`,
`merge_refusal`). Also the webhook side: `review_payload`, `comment_payload` (on a pull request or
an issue) and `issue_payload` build valid githubkit webhook models, and `sign(secret, body)` their
`X-Hub-Signature-256`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import threading
import types
import typing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ValidationError

from jackline.forge.github import models as _models

EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


# documented shapes --------------------------------------------------------------------------


def sample(model: type[BaseModel], **values: Any) -> dict[str, Any]:
    """A valid instance of a githubkit model as JSON: `values` deep-merged over filler for the
    required fields, validated by the model, then dumped the way GitHub would send it."""
    data = _merge(_filler(model, model.__name__), values)
    return model.model_validate(data).model_dump(mode="json", by_alias=True, exclude_unset=True)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _filler(model: type[BaseModel], trail: str) -> dict[str, Any]:
    return {
        f.alias or name: _value(f.annotation, name, f"{trail}.{name}")
        for name, f in model.model_fields.items()
        if f.is_required()
    }


def _value(ann: Any, name: str, trail: str) -> Any:  # noqa: PLR0911 - one case per type
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return _value(args[0], name, trail)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args:
            return None
        return _value(args[0], name, trail)
    if origin is typing.Literal:
        return args[0]
    if origin in (list, tuple, set):
        return []
    if origin is dict:
        return {}
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return _filler(ann, trail)
    if ann is bool:
        return False
    if ann is int:
        return 1
    if ann is float:
        return 1.0
    if ann is dt.datetime:
        return EPOCH.isoformat()
    if ann is dt.date:
        return EPOCH.date().isoformat()
    if ann is str:
        return f"https://example.invalid/{name}" if name.endswith("url") else name
    return None


class BadRequest(Exception):
    """A request body GitHub would refuse (422)."""


def _check_body(model: type[BaseModel], body: Any) -> None:
    """Refuse what GitHub would: a body the model does not validate, or fields it does not have
    (the generated models ignore extras; a typo'd field must not pass silently here)."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
    known = {f.alias or n for n, f in model.model_fields.items()} | set(model.model_fields)
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(f"{model.__name__}: unknown fields {unknown}")
    try:
        model.model_validate(body)
    except ValidationError as e:
        raise BadRequest(f"{model.__name__}: {e}") from None


def _item_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The model of the items of a list field (`labels` differs between PR shapes)."""
    (item,) = typing.get_args(model.model_fields[name].annotation)
    return typing.cast(type[BaseModel], item)


# the server ------------------------------------------------------------------------------


@dataclass
class Pull:
    number: int
    title: str
    head: str
    base: str
    body: str | None
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    merged: str = ""
    """The commit its merge made on the base, once merged (`PUT .../merge`)."""
    authors: list[str] = field(default_factory=list)
    """Who wrote each comment (the token's user for the API's)."""


@dataclass
class Issue:
    number: int
    title: str
    body: str
    login: str
    """Who opened it."""
    labels: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    state: str = "open"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    status: int


class Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FakeGitHub:
    def __init__(self, repository: str, token: str = "ghp_fake") -> None:
        self.repository = repository
        self.token = token
        self.pulls: dict[int, Pull] = {}
        self.issues: dict[int, Issue] = {}
        """Issues (not pull requests), numbered with them as GitHub numbers both."""
        self.login = "jackline-bot"
        """The token's user: the author of every comment made through the API."""
        self.ci_runs: list[dict[str, Any]] = []
        """Check runs of CI (`add_check_run`), beside Jackline's own (`check_runs`)."""
        self.required_checks: list[str] | None = None
        """The base branch's required status checks; None: not protected (404)."""
        self.workflow_runs: list[dict[str, Any]] = []
        """GitHub Actions runs, newest first (`add_workflow_run`)."""
        self.check_runs: list[dict[str, Any]] = []
        """The check runs created, each as its request body, in order."""
        self.permissions: dict[str, bool] | None = {"admin": False, "push": True, "pull": True}
        """What the repository's `permissions` say of the token (None: absent, as for an app)."""
        self.review_comments: dict[int, list[dict[str, Any]]] = {}
        """A review's comments on lines by the review's id: `path`, `line`, `side` (`RIGHT`
        or `LEFT`), `body`."""
        self.git_dir: Path | None = None
        """The bare repository standing for GitHub's: where a merge is made (`[forge]
        remote_url` of the project under test)."""
        self.merge_refusal: str | None = None
        """What a merge is refused with (405), as branch protection would say it."""
        self.hooks: list[dict[str, Any]] | None = []
        """The repository's webhooks (`url`, `events`, `content_type`, `active`); None: listing
        them is forbidden to the token (403), as to anyone not an admin."""
        self.calls: list[Call] = []
        self.invalid: list[tuple[Call, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def __enter__(self) -> FakeGitHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server, "the fake is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def open_pull(self, head: str, base: str = "main", title: str = "t", body: str = "") -> Pull:
        """Put a pull request there, as if someone had opened it."""
        with self._lock:
            pr = Pull(self._next(), title, head, base, body)
            self.pulls[pr.number] = pr
            return pr

    def open_issue(self, title: str, body: str = "", login: str = "reporter") -> Issue:
        """Put an issue there, as if `login` had opened it."""
        with self._lock:
            issue = Issue(self._next(), title, body, login)
            self.issues[issue.number] = issue
            return issue

    def say(self, number: int, login: str, text: str) -> None:
        """A comment by `login` on an issue or pull request, as if made on GitHub."""
        with self._lock:
            thread = self._on(number)
            thread.comments.append(text)
            thread.authors.append(login)

    def add_check_run(
        self,
        head_sha: str,
        name: str,
        conclusion: str | None = "success",
        status: str = "completed",
        annotations: list[dict[str, Any]] | None = None,
        log: str | None = None,
        summary: str = "",
    ) -> int:
        """A check run of CI on `head_sha` (an Actions job's, with `log`, if given); its id.
        `annotations`: `path`, `start_line`, `annotation_level`, `message`."""
        with self._lock:
            n = 5000 + len(self.ci_runs) + 1
            self.ci_runs.append(
                {"id": n, "name": name, "head_sha": head_sha, "status": status,
                 "conclusion": conclusion if status == "completed" else None,
                 "annotations": annotations or [], "log": log, "summary": summary}
            )  # fmt: skip
            return n

    def finish_check_run(self, check_id: int, conclusion: str) -> None:
        with self._lock:
            (run,) = [r for r in self.ci_runs if r["id"] == check_id]
            run.update(status="completed", conclusion=conclusion)

    def _next(self) -> int:
        return max([0, *self.pulls, *self.issues]) + 1

    def _on(self, number: int) -> Pull | Issue:
        if number in self.issues:
            return self.issues[number]
        return self._pull(number)

    def add_workflow_run(
        self,
        name: str,
        conclusion: str | None,
        branch: str = "main",
        status: str = "completed",
        head_sha: str = "0" * 40,
    ) -> None:
        """A GitHub Actions run, as if a workflow had just run (the newest first)."""
        with self._lock:
            n = len(self.workflow_runs) + 1
            run = {"id": n, "name": name, "head_branch": branch, "status": status}
            run.update(conclusion=conclusion, head_sha=head_sha, run_number=n)
            self.workflow_runs.insert(0, run)

    # routing

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Any:
        blob = re.fullmatch(r"/_blobs/job-(\d+)\.txt", urlsplit(target).path)
        if blob and method == "GET":  # where GitHub's redirect for a log leads: signed, no token
            return 200, self._log(int(blob.group(1)))
        if headers.get("authorization", "") not in (
            f"token {self.token}",
            f"Bearer {self.token}",
            f"bearer {self.token}",
        ):
            raise Refusal(401, "Bad credentials")
        url = urlsplit(target)
        body = json.loads(raw) if raw else None
        prefix = f"/repos/{self.repository}"
        if url.path != prefix and not url.path.startswith(prefix + "/"):
            raise Refusal(404, "Not Found")
        path, query = url.path[len(prefix) :], parse_qs(url.query)
        for pattern, verb, action in self._routes():
            m = re.fullmatch(pattern, path)
            if m and verb == method:
                args = (int(x) if x.isdigit() else x for x in m.groups())
                with self._lock:
                    return action(*args, body=body, query=query)
        raise Refusal(404, "Not Found")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            (r"/pulls", "GET", self._list_pulls),
            (r"/pulls", "POST", self._create_pull),
            (r"/pulls/(\d+)", "GET", self._get_pull),
            (r"/pulls/(\d+)", "PATCH", self._update_pull),
            (r"/issues/(\d+)/comments", "POST", self._create_comment),
            (r"/issues/(\d+)/comments", "GET", self._list_comments),
            (r"/issues/(\d+)/labels", "POST", self._add_labels),
            (r"/issues/comments/(\d+)", "PATCH", self._edit_comment),
            (r"/commits/([0-9a-f]{40})/check-runs", "GET", self._list_check_runs),
            (r"/check-runs/(\d+)/annotations", "GET", self._list_annotations),
            (r"/actions/jobs/(\d+)/logs", "GET", self._job_logs),
            (
                r"/branches/([\w.-]+)/protection/required_status_checks/contexts",
                "GET",
                self._required_checks,
            ),
            (r"/actions/runs", "GET", self._list_workflow_runs),
            (r"/check-runs", "POST", self._create_check_run),
            (r"", "GET", self._get_repository),
            (r"/hooks", "GET", self._list_hooks),
            (r"/pulls/(\d+)/reviews/(\d+)/comments", "GET", self._list_review_comments),
            (r"/pulls/(\d+)/merge", "PUT", self._merge_pull),
        ]

    # endpoints

    def _list_pulls(self, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [""])[0]
        owner = self.repository.split("/")[0]
        found = [
            p
            for p in self.pulls.values()
            if (state == "all" or p.state == state) and (not head or head == f"{owner}:{p.head}")
        ]
        m = _models()
        return 200, [sample(m.PullRequestSimple, **self._pull_json(p, simple=True)) for p in found]

    def _create_pull(self, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        _check_body(m.ReposOwnerRepoPullsPostBody, body)
        if any(p.head == body["head"] and p.state == "open" for p in self.pulls.values()):
            raise Refusal(422, f"A pull request already exists for {body['head']}.")
        pr = Pull(self._next(), body["title"], body["head"], body["base"], body.get("body"))
        self.pulls[pr.number] = pr
        return 201, sample(m.PullRequest, **self._pull_json(pr))

    def _get_pull(self, number: int, body: Any, query: Any) -> tuple[int, Any]:
        return 200, sample(_models().PullRequest, **self._pull_json(self._pull(number)))

    def _update_pull(self, number: int, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        _check_body(m.ReposOwnerRepoPullsPullNumberPatchBody, body)
        pr = self._pull(number)
        for key in ("title", "body", "state", "base"):
            if key in body:
                setattr(pr, key, body[key])
        return 200, sample(m.PullRequest, **self._pull_json(pr))

    def _create_comment(self, number: int, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        _check_body(m.ReposOwnerRepoIssuesIssueNumberCommentsPostBody, body)
        thread = self._on(number)
        thread.comments.append(body["body"])
        thread.authors.append(self.login)
        return 201, sample(m.IssueComment, **self._comment_json(thread, len(thread.comments)))

    def _list_comments(self, number: int, body: Any, query: Any) -> tuple[int, Any]:
        thread = self._on(number)
        m = _models()
        return 200, [
            sample(m.IssueComment, **self._comment_json(thread, i + 1))
            for i in range(len(thread.comments))
        ]

    def _edit_comment(self, comment_id: int, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        _check_body(m.ReposOwnerRepoIssuesCommentsCommentIdPatchBody, body)
        number, index = divmod(comment_id, 1000)
        thread = self._on(number)
        if not 0 < index <= len(thread.comments):
            raise Refusal(404, "Not Found")
        if thread.authors[index - 1] != self.login:
            raise Refusal(403, "Must have admin rights to Repository.")
        thread.comments[index - 1] = body["body"]
        return 200, sample(m.IssueComment, **self._comment_json(thread, index))

    def _list_check_runs(self, sha: str, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        ours = [
            {"id": i + 1, "name": r["name"], "head_sha": r["head_sha"], "status": r["status"],
             "conclusion": r.get("conclusion"), "app": {"slug": "jackline"}}
            for i, r in enumerate(self.check_runs)
        ]  # fmt: skip
        theirs = [
            {"id": r["id"], "name": r["name"], "head_sha": r["head_sha"], "status": r["status"],
             "conclusion": r["conclusion"], "app": {"slug": "github-actions"},
             "output": {"title": r["summary"] or None, "summary": r["summary"] or None,
                        "annotations_count": len(r["annotations"])}}
            for r in self.ci_runs
        ]  # fmt: skip
        found = [
            sample(m.CheckRun, **{**r, "app": _app(r["app"]["slug"])})
            for r in ours + theirs
            if r["head_sha"] == sha
        ]
        return 200, sample(
            m.ReposOwnerRepoCommitsRefCheckRunsGetResponse200,
            total_count=len(found),
            check_runs=found,
        )

    def _list_annotations(self, check_id: int, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        found = [r for r in self.ci_runs if r["id"] == check_id]
        if not found:
            raise Refusal(404, "Not Found")
        return 200, [
            sample(
                m.CheckAnnotation,
                end_line=a["start_line"],
                blob_href="https://example.invalid",
                **{"title": None, "raw_details": None, **a},
            )  # fmt: skip
            for a in found[0]["annotations"]
        ]

    def _job_logs(self, job_id: int, body: Any, query: Any) -> tuple[int, Any]:
        """GitHub answers 302 with a short-lived URL of the log (`Location`)."""
        self._log(job_id)
        return 302, {"location": f"{self.url}/_blobs/job-{job_id}.txt"}

    def _log(self, job_id: int) -> Text:
        found = [r for r in self.ci_runs if r["id"] == job_id and r["log"] is not None]
        if not found:
            raise Refusal(404, "Not Found")
        return Text(found[0]["log"])

    def _required_checks(self, branch: str, body: Any, query: Any) -> tuple[int, Any]:
        if self.required_checks is None:
            raise Refusal(404, "Branch not protected")
        return 200, list(self.required_checks)

    def _add_labels(self, number: int, body: Any, query: Any) -> tuple[int, Any]:
        m = _models()
        _check_body(m.ReposOwnerRepoIssuesIssueNumberLabelsPostBodyOneof0, body)
        pr = self._on(number)
        pr.labels += [n for n in body["labels"] if n not in pr.labels]
        return 200, [sample(m.Label, **self._label_json(n)) for n in pr.labels]

    def _create_check_run(self, body: Any, query: Any) -> tuple[int, Any]:
        """A completed check run is one shape, any other status another (GitHub's `oneOf`);
        at most 50 annotations a request, as GitHub takes."""
        m = _models()
        done = isinstance(body, dict) and body.get("status") == "completed"
        shape = (
            m.ReposOwnerRepoCheckRunsPostBodyOneof0
            if done
            else m.ReposOwnerRepoCheckRunsPostBodyOneof1
        )
        _check_body(shape, body)
        if len((body.get("output") or {}).get("annotations") or []) > 50:
            raise BadRequest("output.annotations: at most 50 a request")
        self.check_runs.append(body)
        n = len(self.check_runs)
        made = {"id": n, "name": body["name"], "head_sha": body["head_sha"]}
        made.update(status=body.get("status", "queued"), conclusion=body.get("conclusion"))
        return 201, sample(m.CheckRun, **made)

    def _merge_pull(self, number: int, body: Any, query: Any) -> tuple[int, Any]:
        """The merge as GitHub makes it, in `git_dir`: refused while `merge_refusal` says so
        (branch protection), when the head is not `sha` (409), or on a conflict; else a merge
        commit (two parents) or, for `squash` and `rebase`, one commit on the base (the fake
        does not replay a rebase commit by commit), and the pull request is closed, merged."""
        m = _models()
        _check_body(m.ReposOwnerRepoPullsPullNumberMergePutBody, body or {})
        body = body or {}
        pr = self._pull(number)
        if pr.state != "open":
            raise Refusal(405, "Pull Request is not mergeable")
        if self.merge_refusal:
            raise Refusal(405, self.merge_refusal)
        assert self.git_dir is not None, "set `git_dir` to the bare repository to merge in"
        head = _git(self.git_dir, "rev-parse", f"refs/heads/{pr.head}")
        if body.get("sha") and body["sha"] != head:
            raise Refusal(409, "Head branch was modified. Review and try the merge again.")
        base = _git(self.git_dir, "rev-parse", f"refs/heads/{pr.base}")
        done = subprocess.run(
            ["git", "-C", str(self.git_dir), "merge-tree", "--write-tree", base, head],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise Refusal(405, "Pull Request is not mergeable")
        tree = done.stdout.split()[0]
        method = body.get("merge_method") or "merge"
        parents = ["-p", base, "-p", head] if method == "merge" else ["-p", base]
        title = body.get("commit_title") or f"Merge pull request #{number} from {pr.head}"
        text = f"{title}\n\n{body['commit_message']}" if body.get("commit_message") else title
        sha = _git(self.git_dir, "commit-tree", tree, *parents, "-m", text)
        _git(self.git_dir, "update-ref", f"refs/heads/{pr.base}", sha, base)
        pr.state, pr.merged = "closed", sha
        for n in re.findall(
            r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?) #(\d+)", pr.body or ""
        ):
            if int(n) in self.issues:  # GitHub closes the issues its body says it closes
                self.issues[int(n)].state = "closed"
        merged = {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        return 200, sample(m.PullRequestMergeResult, **merged)

    def _get_repository(self, body: Any, query: Any) -> tuple[int, Any]:
        owner, name = self.repository.split("/")
        found: dict[str, Any] = {"name": name, "full_name": self.repository}
        found.update(owner={"login": owner}, default_branch="main", private=True)
        if self.permissions is not None:
            found["permissions"] = self.permissions
        return 200, sample(_models().FullRepository, **found)

    def _list_review_comments(
        self, number: int, review: int, body: Any, query: Any
    ) -> tuple[int, Any]:
        self._pull(number)
        m = _models()
        return 200, [
            sample(
                m.ReviewComment,
                id=i + 1,
                pull_request_review_id=review,
                path=c["path"],
                line=c["line"],
                side=c.get("side", "RIGHT"),
                body=c["body"],
            )  # fmt: skip
            for i, c in enumerate(self.review_comments.get(review, []))
        ]

    def _list_hooks(self, body: Any, query: Any) -> tuple[int, Any]:
        if self.hooks is None:
            raise Refusal(403, "Resource not accessible by personal access token")
        m = _models()
        return 200, [
            sample(
                m.Hook,
                id=i + 1,
                name="web",
                active=h.get("active", True),
                events=h["events"],
                config={"url": h["url"], "content_type": h.get("content_type", "json")},
            )  # fmt: skip
            for i, h in enumerate(self.hooks)
        ]

    def _list_workflow_runs(self, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
        branch = query.get("branch", [""])[0]
        per_page = int(query.get("per_page", ["30"])[0])
        found = [r for r in self.workflow_runs if not branch or r["head_branch"] == branch]
        m = _models()
        runs = [sample(m.WorkflowRun, **self._workflow_run_json(r)) for r in found[:per_page]]
        return 200, sample(
            m.ReposOwnerRepoActionsRunsGetResponse200, total_count=len(found), workflow_runs=runs
        )

    def _workflow_run_json(self, run: dict[str, Any]) -> dict[str, Any]:
        return {
            **run,
            "html_url": f"https://github.com/{self.repository}/actions/runs/{run['id']}",
            "url": f"{self.url}/repos/{self.repository}/actions/runs/{run['id']}",
            "created_at": EPOCH.isoformat(),
            "updated_at": EPOCH.isoformat(),
        }

    # shapes

    def _pull(self, number: int) -> Pull:
        if number not in self.pulls:
            raise Refusal(404, "Not Found")
        return self.pulls[number]

    def _pull_json(self, pr: Pull, simple: bool = False) -> dict[str, Any]:
        m = _models()
        api = f"{self.url}/repos/{self.repository}"
        label = _item_model(m.PullRequestSimple if simple else m.PullRequest, "labels")
        return {
            "id": 1000 + pr.number,
            "number": pr.number,
            "url": f"{api}/pulls/{pr.number}",
            "html_url": f"https://github.com/{self.repository}/pull/{pr.number}",
            "state": pr.state,
            "title": pr.title,
            "body": pr.body,
            "labels": [sample(label, **self._label_json(n)) for n in pr.labels],
            "head": {"ref": pr.head, "label": f"{self.repository.split('/')[0]}:{pr.head}"},
            "base": {"ref": pr.base, "label": f"{self.repository.split('/')[0]}:{pr.base}"},
            "created_at": EPOCH.isoformat(),
            "updated_at": EPOCH.isoformat(),
            **({"merged_at": EPOCH.isoformat()} if pr.merged else {}),
        }

    def _comment_json(self, thread: Pull | Issue, index: int) -> dict[str, Any]:
        kind = "issues" if isinstance(thread, Issue) else "pull"
        login = thread.authors[index - 1] if index <= len(thread.authors) else self.login
        return {
            "id": thread.number * 1000 + index,
            "body": thread.comments[index - 1],
            "user": sample(_models().SimpleUser, login=login, id=_uid(login), type="User"),
            "html_url": f"https://github.com/{self.repository}/{kind}/{thread.number}#c{index}",
            "created_at": EPOCH.isoformat(),
            "updated_at": EPOCH.isoformat(),
        }

    def _label_json(self, name: str) -> dict[str, Any]:
        return {
            "id": int(hashlib.sha256(name.encode()).hexdigest()[:6], 16),
            "name": name,
            "color": "ededed",
            "default": False,
            "url": f"{self.url}/repos/{self.repository}/labels/{name}",
        }


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, answer = fake.handle(self.command, self.path, headers, raw)
            except BadRequest as e:
                status, answer = 422, {"message": "Validation Failed", "errors": [str(e)]}
                fake.invalid.append((Call(self.command, self.path, _loads(raw), 422), str(e)))
            except Refusal as e:
                status, answer = e.status, {"message": str(e)}
            except Exception as e:  # noqa: BLE001 - a bug in the fake answers, never hangs
                status, answer = 500, {"message": f"{type(e).__name__}: {e}"}
            fake.calls.append(Call(self.command, self.path, _loads(raw), status))
            text = isinstance(answer, Text)
            out = answer.encode() if text else json.dumps(answer).encode()
            self.send_response(status)
            if status == 302:
                self.send_header("location", answer["location"])
            kind = "text/plain" if text else "application/json"
            self.send_header("content-type", f"{kind}; charset=utf-8")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PATCH = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class Text(str):
    """An answer that is text (a job's log), not JSON."""


def _app(slug: str) -> dict[str, Any]:
    """The GitHub App that made a check run (`github-actions` for a workflow's job)."""
    m = _models()
    owner = sample(m.SimpleUser, login=slug, id=_uid(slug), type="Organization")
    return sample(m.Integration, id=_uid(slug), slug=slug, name=slug, owner=owner)


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


# webhooks -----------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "GitHub", "GIT_AUTHOR_EMAIL": "noreply@github.com",
           "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise Refusal(500, f"git {args[0]}: {done.stderr.strip()}")
    return done.stdout.strip()


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` header GitHub sends with `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def review_payload(
    repository: str,
    number: int,
    branch: str,
    login: str,
    state: str = "approved",
    body: str = "",
    *,
    commit_id: str,
    submitted_at: dt.datetime | None = None,
    review_id: int = 1,
) -> dict[str, Any]:
    """A `pull_request_review` (action `submitted`) event, valid as githubkit's webhook model.
    `commit_id` is the pull request's head the reviewer saw (GitHub records it with the review);
    `submitted_at` is now unless given."""
    m = _models()
    user = {"login": login, "id": _uid(login), "type": "User"}
    at = (submitted_at or dt.datetime.now(dt.UTC)).isoformat()
    return sample(
        m.WebhookPullRequestReviewSubmitted,
        action="submitted",
        repository={"full_name": repository, "name": repository.split("/")[1]},
        sender=user,
        review={
            "id": review_id,
            "state": state,
            "body": body or None,
            "user": user,
            "commit_id": commit_id,
            "submitted_at": at,
        },
        pull_request={"number": number, "head": {"ref": branch, "sha": commit_id}, "state": "open"},
    )


def comment_payload(
    repository: str,
    number: int,
    login: str,
    body: str,
    created_at: dt.datetime | None = None,
    issue: Issue | None = None,
) -> dict[str, Any]:
    """An `issue_comment` (action `created`) event on a pull request (or on `issue`, with its
    title and body), valid as githubkit's webhook model. It names the pull request's number,
    not its branch or head (as GitHub's does); `created_at` is GitHub's clock when the comment
    was made, now unless given."""
    m = _models()
    user = {"login": login, "id": _uid(login), "type": "User"}
    at = (created_at or dt.datetime.now(dt.UTC)).isoformat()
    on: dict[str, Any] = (
        {"number": issue.number, "title": issue.title, "body": issue.body or None}
        if issue
        else {"number": number, "pull_request": {"url": f"https://example.invalid/{number}"}}
    )
    return sample(
        m.WebhookIssueCommentCreated,
        action="created",
        repository={"full_name": repository, "name": repository.split("/")[1]},
        sender=user,
        comment={"body": body, "user": user, "created_at": at, "updated_at": at},
        issue=on,
    )


def issue_payload(repository: str, issue: Issue, login: str, label: str) -> dict[str, Any]:
    """An `issues` (action `labeled`) event: `login` put `label` on `issue`."""
    m = _models()
    user = {"login": login, "id": _uid(login), "type": "User"}
    author = {"login": issue.login, "id": _uid(issue.login), "type": "User"}
    return sample(
        m.WebhookIssuesLabeled,
        action="labeled",
        repository={"full_name": repository, "name": repository.split("/")[1]},
        sender=user,
        label=sample(m.WebhooksLabel, name=label, color="ededed", default=False),
        issue={
            "number": issue.number,
            "title": issue.title,
            "body": issue.body or None,
            "user": author,
        },  # fmt: skip
    )


def _uid(login: str) -> int:
    return int(hashlib.sha256(login.encode()).hexdigest()[:6], 16)
