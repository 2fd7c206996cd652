"""The CLI's remote mode: `jackline --server URL ...` (or `JACKLINE_SERVER`), with the token in
`JACKLINE_TOKEN`, talks to a `jackline serve` instead of the local database.

`RemoteAPI` implements `jackline.verbs.Verbs` as `jackline.api` does (mypy checks both where the
CLI chooses one) and answers with the same records (`Run`, `Release`, `Event`, `Probe`,
`Report`), so each command renders a remote answer exactly as a local one. Who decides is the
token's person: the server records that name, `--as` is refused rather than silently ignored,
and JACKLINE_USER is not read. What needs this machine's files or engine (the pool, init, demo,
the worker, `logs --verify`) is refused with a clear message.

Progress: a new run is followed through the server's event stream (server-sent events) until it
rests; a decision or a release answers when it rests, and the events it made are printed after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

from jackline.errors import (
    ConfigError,
    Interrupted,
    Invalid,
    JacklineError,
    NotFound,
    Refused,
    WrongState,
)
from jackline.guard.audit import Event, Verdict
from jackline.models import Acceptance, Origin, Probe, Release, Run, from_json, to_json
from jackline.store import shortest_unique
from jackline.verbs import OnEvent

if TYPE_CHECKING:
    from jackline.health import Report
    from jackline.release.carried import Carrying

TIMEOUT = httpx.Timeout(30.0, read=1800.0)
"""A decision answers once its run rests, which may take a merge's checks: read long."""


class RemoteAPI:
    def __init__(self, url: str, token: str | None, transport: httpx.BaseTransport | None = None):
        if not token:
            raise Refused(
                f"--server {url} needs a token: set JACKLINE_TOKEN (`jackline token create NAME "
                "--role reviewer` on the server makes one)"
            )
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
            transport=transport,
            trust_env=False,  # a proxy from the environment must not see the token
        )
        self._details: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_environment(cls, url: str) -> RemoteAPI:
        return cls(url, os.environ.get("JACKLINE_TOKEN"))

    # runs ---------------------------------------------------------------------------------

    def submit(
        self,
        task: str,
        repo: Path | str | None = None,
        agent: str | None = None,
        blueprint: str | None = None,
        by: str | None = None,
        wait: bool = True,
        on_event: OnEvent | None = None,
        follow_up: str | None = None,
        origin: Origin = Origin.AUTOMATIC,
        priority: int = 0,
    ) -> Run:
        _no_as(by)
        body = {
            "task": task,
            "repo": _repo(repo),
            "agent": agent,
            "blueprint": blueprint,
            "follow_up": follow_up,
            "origin": str(origin),
            "priority": priority,
        }
        run = run_from_json(self._call("POST", "/api/runs", json=body))
        return self._followed(run, on_event) if wait else run

    def retry(
        self,
        run_id: str,
        agent: str | None = None,
        message: str = "",
        by: str | None = None,
        wait: bool = True,
        on_event: OnEvent | None = None,
    ) -> Run:
        _no_as(by)
        body = {"agent": agent, "message": message}
        run = run_from_json(self._call("POST", f"/api/runs/{run_id}/retry", json=body))
        return self._followed(run, on_event) if wait else run

    def _followed(self, run: Run, on_event: OnEvent | None) -> Run:
        """The run as it rests, its events told as they come."""
        try:
            for event in self.stream(run.id):
                if on_event:
                    on_event(run.id, event)
        except KeyboardInterrupt:  # the server drives it: only following it stops
            raise Interrupted([run.id], detached=True) from None
        return self.get(run.id)

    def submit_attempts(
        self,
        task: str,
        repo: Path | str,
        agents: list[str],
        attempts: int = 1,
        blueprint: str | None = None,
        by: str | None = None,
        wait: bool = True,
        on_event: OnEvent | None = None,
        origin: Origin = Origin.AUTOMATIC,
        priority: int = 0,
    ) -> list[Run]:
        _no_as(by)
        body = {
            "task": task,
            "repo": _repo(repo),
            "agents": agents,
            "attempts": attempts,
            "blueprint": blueprint,
            "origin": str(origin),
            "priority": priority,
        }
        runs = [run_from_json(r) for r in self._call("POST", "/api/attempts", json=body)]
        if not wait:
            return runs
        try:
            for run in runs:  # the server drives them at once: each is followed to its rest
                for event in self.stream(run.id):
                    if on_event:
                        on_event(run.id, event)
        except KeyboardInterrupt:
            raise Interrupted([r.id for r in runs], detached=True) from None
        return [self.get(r.id) for r in runs]

    def stream(self, run_id: str, after: int = 0) -> Iterator[Event]:
        """The run's events as the server streams them, until the run rests."""
        path = f"/api/runs/{run_id}/events/stream"
        try:
            with self._http.stream("GET", path, params={"after": after}) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise(response)
                for kind, data in _sse(response.iter_lines()):
                    if kind != "end":
                        yield event_from_json(data)
        except httpx.TransportError as e:
            self._unreachable(e)

    def runs(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        agent: str | None = None,
        by: str | None = None,
        repo: str | None = None,
    ) -> list[Run]:
        wanted = {"status": status, "agent": agent, "by": by, "repo": repo}
        params: dict[str, Any] = {"limit": limit, **{k: v for k, v in wanted.items() if v}}
        return [run_from_json(r) for r in self._call("GET", "/api/runs", params=params)]

    def short_ids(self, run_ids: list[str]) -> dict[str, str]:
        """Short ids unique among the newest runs the server lists (as many as it gives); the
        server itself takes one only where no run at all shares it, else names the runs."""
        every = [r.id for r in self.runs(limit=1000)]
        return shortest_unique(run_ids, every)

    def get(self, run_id: str) -> Run:
        detail = self._call("GET", f"/api/runs/{run_id}")
        self._details[detail["id"]] = detail
        return run_from_json(detail)

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        found = self._call("GET", f"/api/runs/{run_id}/events", params={"after": after})
        return [event_from_json(e) for e in found]

    def follow(self, run_id: str) -> Callable[[], list[Event]]:
        """`api.follow` over HTTP: each call asks for the events after the last one it got."""
        seen = 0

        def read() -> list[Event]:
            nonlocal seen
            found = self.events(run_id, after=seen)
            seen = found[-1].seq if found else seen
            return found

        return read

    def rounds(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._detail(run_id)["round_results"])

    def findings(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._detail(run_id)["findings"])

    def handoff_text(self, run: Run) -> str | None:
        text = self._detail(run.id)["handoff_markdown"]
        return str(text) if text is not None else None

    def artifact_names(self, record_id: str) -> list[str]:
        return list(self._call("GET", f"/api/runs/{record_id}/artifacts")["names"])

    def artifact_text(self, record_id: str, name: str) -> str | None:
        try:
            response = self._http.get(f"/api/runs/{record_id}/artifacts/{name}")
        except httpx.TransportError as e:
            self._unreachable(e)
        if response.status_code == 404 and "kept no artifact" in response.text:
            return None  # the run exists and kept nothing by that name
        if response.status_code >= 400:
            _raise(response)
        return response.text

    def _detail(self, run_id: str) -> dict[str, Any]:
        if run_id not in self._details:
            self.get(run_id)
        return self._details[run_id]

    # review -------------------------------------------------------------------------------

    def approve(
        self,
        run_id: str,
        by: str | None = None,
        message: str = "",
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Run:
        return self._decide(run_id, "approve", message, by or claimed, on_event)

    def request_changes(
        self,
        run_id: str,
        message: str,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Run:
        return self._decide(run_id, "request-changes", message, by or claimed, on_event)

    def reject(
        self,
        run_id: str,
        by: str | None = None,
        message: str = "",
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Run:
        return self._decide(run_id, "reject", message, by or claimed, on_event)

    def cancel(
        self, run_id: str, by: str | None = None, message: str = "", claimed: str | None = None
    ) -> Run:
        _no_as(by or claimed)
        return run_from_json(
            self._call("POST", f"/api/runs/{run_id}/cancel", json={"message": message})
        )

    def accept(
        self,
        run_id: str,
        finding: str,
        reason: str,
        by: str | None = None,
        claimed: str | None = None,
    ) -> Acceptance:
        _no_as(by or claimed)
        path = f"/api/runs/{run_id}/findings/{finding}/accept"
        return from_json(Acceptance, self._call("POST", path, json={"message": reason}))

    def _decide(
        self, run_id: str, verb: str, message: str, by: str | None, on_event: OnEvent | None
    ) -> Run:
        _no_as(by)
        seen = max((e.seq for e in self.events(run_id)), default=0)
        # The server answers once the run rests again (merged, back in review, or after the
        # agent's new round for changes): what happened meanwhile is in the events since.
        path = f"/api/runs/{run_id}/{verb}"
        run = run_from_json(self._call("POST", path, json={"message": message}))
        for event in self.events(run.id, after=seen):
            if on_event:
                on_event(run.id, event)
        return run

    # releases -----------------------------------------------------------------------------

    def release(
        self,
        repo: Path | None = None,
        sha: str | None = None,
        by: str | None = None,
        force: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release:
        _no_as(by or claimed)
        body = {"repo": _repo(repo), "sha": sha, "force": force}
        rel = release_from_json(self._call("POST", "/api/releases", json=body))
        self._replay(rel.id, 0, on_event)
        return rel

    def releases(self, repo: Path | None = None, limit: int = 100) -> list[Release]:
        params: dict[str, Any] = {"limit": limit}
        if _repo(repo):
            params["repo"] = _repo(repo)
        return [release_from_json(r) for r in self._call("GET", "/api/releases", params=params)]

    def release_figures(self, repo: Path | None = None) -> list[dict[str, Any]]:
        params = {"repo": _repo(repo)} if _repo(repo) else {}
        figures: list[dict[str, Any]] = self._call("GET", "/api/release-figures", params=params)
        return figures

    def release_get(self, release_id: str) -> Release:
        return release_from_json(self._release_detail(release_id))

    def release_probes(self, release_id: str) -> list[Probe]:
        return [Probe(**p) for p in self._release_detail(release_id)["probes"] or []]

    def release_events(self, release_id: str, after: int = 0) -> list[Event]:
        events = self._release_detail(release_id)["events"] or []
        return [
            Event(release_id, e["seq"], e["ts"], e["kind"], e["data"], True)
            for e in events
            if e["seq"] > after
        ]

    def release_carries(self, release_id: str) -> Carrying:
        from jackline.release.carried import Carried, Carrying

        said = self._release_detail(release_id).get("carries") or {"commits": [], "cut": False}
        commits = [Carried(**{**c, "warnings": tuple(c["warnings"])}) for c in said["commits"]]
        return Carrying(tuple(commits), bool(said["cut"]))

    def release_as_json(self, rel: Release, detail: bool = False) -> dict[str, Any]:
        return self._release_detail(rel.id) if detail else to_json(rel)

    def go(
        self,
        release_id: str,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release:
        return self._send_release(release_id, "go", by or claimed, on_event)

    def abort(
        self,
        release_id: str,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release:
        return self._send_release(release_id, "abort", by or claimed, on_event)

    def rollback(
        self,
        repo: Path | None = None,
        to: str | None = None,
        by: str | None = None,
        on_event: OnEvent | None = None,
        claimed: str | None = None,
    ) -> Release:
        _no_as(by or claimed)
        rel = release_from_json(
            self._call("POST", "/api/rollback", json={"repo": _repo(repo), "to": to})
        )
        return rel

    def _send_release(
        self, release_id: str, verb: str, by: str | None, on_event: OnEvent | None
    ) -> Release:
        _no_as(by)
        seen = max((e.seq for e in self.release_events(release_id)), default=0)
        rel = release_from_json(self._call("POST", f"/api/releases/{release_id}/{verb}"))
        self._replay(rel.id, seen, on_event)
        return rel

    def _replay(self, release_id: str, after: int, on_event: OnEvent | None) -> None:
        if on_event is None:
            return
        self._details.pop(release_id, None)
        for event in self.release_events(release_id, after):
            on_event(release_id, event)

    def _release_detail(self, release_id: str) -> dict[str, Any]:
        detail: dict[str, Any] = self._call("GET", f"/api/releases/{release_id}")
        return detail

    # flags, health ------------------------------------------------------------------------

    def flags_list(self, repo: Path | None = None, env: str | None = None) -> dict[str, Any]:
        params = {k: v for k, v in (("repo", _repo(repo)), ("env", env)) if v}
        listing: dict[str, Any] = self._call("GET", "/api/flags", params=params)
        return listing

    def set_flag(
        self,
        repo: Path | None,
        name: str,
        value: str,
        env: str,
        by: str | None = None,
        claimed: str | None = None,
    ) -> dict[str, Any]:
        _no_as(by or claimed)
        body = {"repo": _repo(repo), "env": env, "value": value}
        change: dict[str, Any] = self._call("POST", f"/api/flags/{name}", json=body)
        return change

    def health(self, repo: Path | None = None) -> Report:
        from jackline.health import Item, Report

        params = {"repo": _repo(repo)} if _repo(repo) else {}
        data = self._call("GET", "/api/health", params=params)
        items = tuple(Item(**i) for i in data["items"])
        return Report(items, datetime.fromisoformat(data["at"]))

    def whoami(self) -> str:
        return str(self._call("GET", "/api/whoami")["name"])

    def verify(self, run_id: str) -> Verdict:
        """The chain's keys are the server's: it is verified there, not through the API."""
        raise Refused(local_only("verify"))

    # http ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            self._unreachable(e)
        if response.status_code >= 400:
            _raise(response)
        return response.json()

    def _unreachable(self, e: Exception) -> NoReturn:
        raise JacklineError(
            f"cannot reach the Jackline server at {self.url} ({e}); is `jackline serve` running "
            "there? (--server / JACKLINE_SERVER)"
        ) from None


def local_only(what: str) -> str:
    return (
        f"`{what}` works on this machine's files and database, not through a server; "
        "run it without --server (unset JACKLINE_SERVER), on the server's machine if it is that"
    )


def _no_as(by: str | None) -> None:
    if by is not None:
        raise Refused(
            "--as does not apply with --server: the server records the person your token "
            "stands for (JACKLINE_TOKEN)"
        )


def _repo(repo: Path | str | None) -> str | None:
    """A repository named on the command line is a path on the server (or a URL it serves);
    the default `.` (this directory) means the server's own repository."""
    if repo is None or str(repo) == ".":
        return None
    return str(repo)


ERRORS: dict[str, Callable[[str], JacklineError]] = {
    "not_found": NotFound,
    "refused": Refused,
    "unauthenticated": Refused,
    "wrong_state": WrongState,
    "conflict": WrongState,  # a merge conflict's parts stay on the server: its words come
    "invalid": Invalid,
    "config_error": ConfigError.told,
}
"""The error each `kind` of the server's answer is raised as: the one the verb raised there,
so a command says the same whether it ran here or on a server."""


def _raise(response: httpx.Response) -> NoReturn:
    """The server's error as the JacklineError it was there (`deps.error_json`'s shape); an
    answer of another shape (a proxy's, a server older than that shape) by its status."""
    try:
        said = response.json()
    except json.JSONDecodeError:
        said = None
    error = said.get("error") if isinstance(said, dict) else None
    if isinstance(error, dict) and str(error.get("kind")) in ERRORS:
        raise ERRORS[str(error["kind"])](str(error.get("message", "")))
    detail = said.get("detail", response.text) if isinstance(said, dict) else response.text
    where = f"{response.request.method} {response.request.url}"
    if response.status_code in (401, 403):
        raise Refused(f"{detail} ({where} answered {response.status_code})")
    if response.status_code == 404:
        raise NotFound(str(detail))
    message = error.get("message", detail) if isinstance(error, dict) else detail
    raise JacklineError(f"{where} answered {response.status_code}: {message}")


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a server-sent event stream."""
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", list[str]()
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def run_from_json(data: dict[str, Any]) -> Run:
    return from_json(Run, data)


def release_from_json(data: dict[str, Any]) -> Release:
    return from_json(Release, data)


def event_from_json(data: dict[str, Any]) -> Event:
    return from_json(Event, data)
