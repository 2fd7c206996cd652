"""scan: the change scanned before anything is committed; a block-level secret blocks the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from jackline.checks import listed
from jackline.events import Kind
from jackline.guard.audit import Event
from jackline.models import Finding, StepOutcome
from jackline.scans import Change, run_scans, sort
from jackline.scans import secrets as secret_scan
from jackline.steps.moving import working


@dataclass(frozen=True)
class ScanOutcome(StepOutcome):
    blocked: bool
    """A secret is in the change: nothing is committed, a person decides."""
    blocking: int = 0
    warnings: int = 0
    secrets: tuple[str, ...] = ()
    """Where each secret found is (`file:line`), never its value."""


def scan(run_id: str) -> ScanOutcome:
    """Scan the change before anything is committed. A found secret blocks the run here."""
    ctx = working(run_id)
    ctx.record(Kind.STEP, step="scan")
    change = Change.of_workspace(ctx.ws, ctx.run.base_sha or "HEAD")
    known = ctx.known_secrets()
    found = secret_scan.scan(change, known)
    committed = secret_scan.scan_commits(ctx.ws, ctx.run.base_sha or "HEAD", known)
    found = secret_scan.Found(
        found.findings
        + tuple(f for f in committed.findings if (f.file, f.line) not in _where(found.findings)),
        found.values | committed.values,
    )
    ctx.remember_secrets(found.values)
    printed = ctx.run.redacted
    report = run_scans(change, ctx.config)
    reverted = ctx.run.reverted
    findings = [
        *found.findings,
        *report.findings,
        *(
            Finding(
                "scope.forbidden",
                "warn",
                "the agent wrote here; the write was reverted",
                file=p,
                why="[scope] forbidden in jackline.toml: the agent may not write here.",
            )
            for p in reverted
        ),
        *_check_changes(ctx.audit.read(run_id)),
    ]
    if printed:
        findings.append(
            Finding(
                "secret.printed",
                "warn",
                f"the agent's output held {printed} secret-like value(s); they were redacted "
                "from the logs and the audit log",
                why="A secret the agent could print is a secret it could send elsewhere. If the "
                "value is real, rotate it.",
            )
        )
    findings = sort(findings)
    blocking = sum(f.level == "block" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    # Only a block-level secret stops the run: generic evidence (entropy, a keyword) warns.
    stopping = found.blocking
    where = [f"{f.file}:{f.line}" if f.line else str(f.file) for f in stopping]
    # A new round's change is judged afresh: what a person accepted was the head before.
    blocks = tuple(f.id for f in findings if f.level == "block")
    ctx.update(
        blocking=blocking, warnings=warnings, secrets_found=where, block_ids=blocks, accepted=()
    )
    ctx.record(
        Kind.SCAN,
        findings=[asdict(f) for f in findings],
        secrets=len(stopping),
        blocking=blocking,
        warnings=warnings,
        timings=report.timings,
    )
    if stopping:
        shown = ", ".join(f"{f.file}:{f.line}" for f in stopping[:3])
        ctx.update(reason=f"a secret in the change ({shown}); nothing was committed")
    return ScanOutcome(bool(stopping), blocking, warnings, tuple(where))


def _check_changes(events: list[Event]) -> list[Finding]:
    """What the checks of the run's rounds changed or created in the work tree (all put back
    before anything was committed, see `_keep_the_agents_work`): one finding per check and kind."""
    seen: dict[tuple[str, str], tuple[set[str], set[int]]] = {}
    for e in events:
        if e.kind != Kind.WARNING or "check" not in e.data or e.data.get("label") != "round":
            continue
        for kind in ("changed", "created"):
            if e.data.get(kind):
                paths, rounds = seen.setdefault((e.data["check"], kind), (set(), set()))
                paths.update(e.data[kind])
                rounds.add(e.data["round"])
    done = {
        "changed": "the harness put the agent's version back and the check failed that round",
        "created": "removed, never committed",
    }
    return [
        Finding(
            "check.changed_files",
            "warn",
            f"the check `{check}` {kind} {listed(sorted(paths))} in round "
            f"{', '.join(map(str, sorted(rounds)))}: {done[kind]}",
            why="A check that writes (a linter's fix, a formatter) would have its rewrite "
            "committed as the agent's work, judged by nobody. Make it report without writing "
            "(`ruff check` without `--fix`, `ruff format --check`), or list what it creates in "
            ".gitignore.",
        )
        for (check, kind), (paths, rounds) in seen.items()
    ]


def _where(findings: tuple[Finding, ...]) -> set[tuple[str | None, int | None]]:
    return {(f.file, f.line) for f in findings}
