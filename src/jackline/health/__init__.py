"""The morning report: is main healthy, are errors rising, is a dependency known-vulnerable, is a
service down, and what waits for a person. `gather` looks; `render` shows.

Every figure is an `Item` that is `ok`, needs `attention`, or is `unknown` (could not tell, which
ranks with attention: a probe that could not run proves nothing). A source that fails in an
unexpected way becomes an unknown item with the reason, so one broken source never hides the rest.

Sources, from `[health]` in jackline.toml:
    main          `main_command`'s exit code, else the checks Jackline recorded when it last merged;
                  with a `github` forge, also the latest GitHub Actions run of each workflow on main
    errors        matching lines in a log over a window, or a metric on a `/metrics` page
    dependencies  the dependency scan over main's dependency files (offline OSV copy or pip-audit)
    services      an HTTP GET per service, expecting its status within its timeout
    waiting       runs awaiting review (releases awaiting go arrive as `extra`, from the API)
    flags         expired flags (arrive as `extra`, from the API)
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from jackline.config import JacklineConfig
from jackline.health import deps, main, rates, services, waiting
from jackline.health.records import SECTIONS, Item, Report, State, ordered
from jackline.models import ReleaseStatus
from jackline.store import Store

__all__ = ["SECTIONS", "Item", "Report", "State", "gather"]

WORKERS = 8
Job = Callable[[], Item | list[Item]]


def gather(
    repo: Path,
    cfg: JacklineConfig,
    store: Store,
    extra: Sequence[Item] = (),
    now: datetime | None = None,
) -> Report:
    """Look at everything `[health]` names; `extra` items (releases, flags) join the report."""
    at = (now or datetime.now(UTC)).astimezone()
    jobs = _jobs(repo, cfg, at)
    # The slow parts (a command, HTTP, the dependency lookup) run side by side; what reads the
    # store stays in this thread, because a SQLite connection belongs to the thread that made it.
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(jobs))) as pool:
        futures = [pool.submit(_safe, section, name, job) for section, name, job in jobs]
        found = _from_store(repo, cfg, store, at)
        for future in futures:
            found += future.result()
    return Report(ordered(found + list(extra)), at)


def _jobs(repo: Path, cfg: JacklineConfig, now: datetime) -> list[tuple[str, str, Job]]:
    h = cfg.health
    jobs: list[tuple[str, str, Job]] = []
    if h.main_command is not None:
        jobs.append(("main", "main", partial(main.from_command, repo, h.main_command)))
    if cfg.forge.kind == "github":
        jobs.append(
            ("main", "GitHub Actions", partial(main.from_github, cfg.forge, cfg.project.main))
        )
    jobs += [
        ("errors", e.name, partial(rates.items, repo, e, i, now)) for i, e in enumerate(h.errors)
    ]
    jobs.append(("dependencies", "dependencies", partial(deps.items, repo, cfg)))
    jobs += [("services", s.name, partial(services.probe, s)) for s in h.services]
    return jobs


def _from_store(repo: Path, cfg: JacklineConfig, store: Store, now: datetime) -> list[Item]:
    found: list[Item] = []
    if cfg.health.main_command is None:
        job = partial(main.from_store, repo, cfg.project.main, store, now)
        found += _safe("main", "main", job)
    if cfg.release.environments:
        production = list(cfg.release.environments)[-1]
        found += _safe(
            "main",
            "production",
            partial(main.from_production, repo, cfg.project.main, production, store, now),
        )
    return found + _safe("waiting", "runs", partial(waiting.runs, repo, store, now))


def _safe(section: str, name: str, job: Job) -> list[Item]:
    try:
        result = job()
    except Exception as e:  # noqa: BLE001 - one broken source must not hide the others
        summary = f"could not look: {type(e).__name__}: {e}".splitlines()[0]
        return [Item(section, name, "unknown", summary, traceback.format_exc(limit=5))]
    return result if isinstance(result, list) else [result]


def report(repo: Path, store: Store | None = None) -> Report:
    """The whole morning report of `repo`: what `[health]` names, plus expired flags and the
    releases that wait for a person."""
    from jackline.config import load

    cfg = load(repo)
    store = store or Store()
    extra = _safe("flags", "flags", partial(_expired_flags, repo, cfg))
    extra += _safe("waiting", "releases", partial(_waiting_releases, repo, store))
    return gather(repo, cfg, store, extra=extra)


def write_report(repo: Path) -> Path:
    """Gather the report and keep it, as markdown and JSON, under `~/.jackline/reports/`
    (what the scheduled report does); the markdown's path."""
    from jackline import paths
    from jackline.health.render import to_json, to_markdown

    done = report(repo)
    folder = paths.home() / "reports" / repo.resolve().name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = done.at.strftime("%Y%m%d-%H%M%S")
    (folder / f"{stamp}.json").write_text(to_json(done))
    markdown = folder / f"{stamp}.md"
    markdown.write_text(to_markdown(done))
    (folder / "latest.md").write_text(to_markdown(done))
    return markdown


def _expired_flags(repo: Path, cfg: JacklineConfig) -> list[Item]:
    from jackline import flags

    gone = flags.expired(flags.load(repo, cfg))
    return [
        Item(
            "flags",
            f.name,
            "attention",
            f"expired on {f.expires.isoformat()} (owner {f.owner}): remove it or extend it",
            f.description,
        )
        for f in gone
    ]


def _waiting_releases(repo: Path, store: Store) -> list[Item]:
    lister = getattr(store, "list_releases", None)
    if lister is None:
        return []
    waiting = [r for r in lister() if r.repo == str(repo.resolve()) and r.status in WAITING]
    return [
        Item(
            "waiting",
            r.id,
            "attention",
            f"release of {r.sha[:10]} {r.status.replace('_', ' ')} (started by {r.started_by})",
            r.reason,
        )
        for r in waiting
    ]


WAITING = (ReleaseStatus.AWAITING_GO, ReleaseStatus.PAUSED)
