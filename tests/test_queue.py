"""Team mode's queue as `[queue]` in jackline.toml sets it: a repository's limit of runs at work
across workers, priorities (a person's run before an automatic one, a repository's own), and
fair share between repositories.

Runs are submitted, then claimed, by the real `api.submit` and `engine.claim` against a
PostgreSQL database of the test's own, each in a process of its own forked from this one (a
worker's look at the queue, without the worker's loop; the engine is imported here once, and
launched in each): nothing takes the runs but the claims
the test makes, so what each claim takes is exactly what the queue's order gives it. A claiming
process exits at once: the runs it took are left claimed and not yet driven, as a run is
between a worker's claim and its first step, and they count as at work from then on.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import git, unmount_under

from jackline import api, engine
from jackline import config as cfg
from jackline.errors import ConfigError
from jackline.models import Origin, Status
from jackline.store import EXCLUSIVE_LOCK, Store

TOML = """\
[agents.default]
command = ["true"]

[sandbox]
mode = "none"
"""


@pytest.fixture
def team(tmp_path: Path, pg_url: str) -> Iterator[dict[str, str]]:
    """The environment of every process of the test: team mode on the test's database."""
    env = {**os.environ, "JACKLINE_HOME": str(tmp_path / "home"), "JACKLINE_DATABASE_URL": pg_url}
    for name in ("JACKLINE_USER", "JACKLINE_TOKEN"):
        env.pop(name, None)
    yield env
    unmount_under(tmp_path)  # a claimed run that began its workspace before its process ended


def repository(tmp_path: Path, name: str, queue: str = "") -> Path:
    """A repository whose `jackline.toml` has `queue` as its `[queue]` section."""
    repo = tmp_path / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "alice@example.com")
    git(repo, "config", "user.name", "Alice")
    (repo / "jackline.toml").write_text(TOML + (f"\n[queue]\n{queue}\n" if queue else ""))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "jackline")
    return repo


class Forked:
    """A function run in a process of its own, forked from this one, with the test's
    environment; its answer comes back as JSON through a pipe."""

    def __init__(self, env: dict[str, str], fn: Callable[[], Any]) -> None:
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(read)
            try:
                os.environ.clear()
                os.environ.update(env)
                answer = {"ok": fn()}
            except BaseException:  # noqa: BLE001 - told to the test, whatever it is
                answer = {"error": traceback.format_exc()}
            data = json.dumps(answer).encode()
            while data:
                data = data[os.write(write, data) :]
            os._exit(0)  # at once: the engine's threads (and what it claimed) are left as they are
        os.close(write)
        self._read = read

    def answer(self, within: float = 120) -> Any:
        chunks, deadline = [], time.monotonic() + within
        while True:
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"no answer in {within}s")
            chunk = os.read(self._read, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self._read)
        os.waitpid(self.pid, 0)
        answer = json.loads(b"".join(chunks))
        assert "error" not in answer, answer["error"]
        return answer["ok"]


def submit(env: dict[str, str], *runs: tuple[Path, Origin, int]) -> list[str]:
    """Submit one run for each (repository, origin, priority), in this order, oldest first;
    their ids."""

    def each() -> list[str]:
        ids = []
        for repo, origin, priority in runs:
            run = api.submit(
                "Fix add", repo, by="alice", wait=False, origin=origin, priority=priority
            )
            ids.append(run.id)
            time.sleep(0.002)  # the queue orders by the millisecond
        return ids

    answer: list[str] = Forked(env, each).answer()
    return answer


def claim(env: dict[str, str], room: int) -> Forked:
    """A worker's look at the queue with room for `room`."""

    def look() -> list[str]:
        return engine.claim(room)

    return Forked(env, look)


def claimed(env: dict[str, str], room: int) -> list[str]:
    answer: list[str] = claim(env, room).answer()
    return answer


PERSON, AUTOMATIC = Origin.PERSON, Origin.AUTOMATIC


def test_a_repositorys_limit_holds_its_runs_back_until_one_rests_and_not_another_repositorys(
    tmp_path: Path, team: dict[str, str], pg_url: str
) -> None:
    limited = repository(tmp_path, "limited", "concurrency = 1")
    free = repository(tmp_path, "free")
    l1, l2, _, f1 = submit(
        team, (limited, PERSON, 0), (limited, PERSON, 0), (limited, PERSON, 0), (free, PERSON, 0)
    )
    assert claimed(team, 5) == [l1, f1]
    # l1 was claimed by a process that is gone, and no step of it has run: it is at work still.
    assert claimed(team, 5) == []
    # Once it rests for a person (as its handoff step leaves it), the next one goes.
    Store(tmp_path / "j.db", url=pg_url).update_run(l1, status=Status.AWAITING_REVIEW)
    assert claimed(team, 5) == [l2]


def test_workers_looking_at_once_take_turns_and_no_more_than_the_limit(
    tmp_path: Path, team: dict[str, str], pg_url: str
) -> None:
    repo = repository(tmp_path, "repo", "concurrency = 2")
    runs = submit(team, *[(repo, PERSON, 0)] * 6)
    # This test holds the queue as a worker in the middle of its claim would: three more look
    # at it meanwhile, each seeing runs waiting. Only once all three wait for it (had any of
    # them counted the runs at work before it waited, each would take two) does it let go.
    store = Store(tmp_path / "j.db", url=pg_url)
    with store.exclusive("take-over"):
        workers = [claim(team, 6) for _ in range(3)]
        until_waiting(store, 3)
    taken = [run for worker in workers for run in worker.answer()]
    assert sorted(taken) == sorted(runs[:2])


def until_waiting(store: Store, count: int, within: float = 60) -> None:
    """Until `count` processes wait for the exclusion this one holds (`Store.exclusive`)."""
    waiting = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        f" AND classid = {EXCLUSIVE_LOCK}"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    deadline = time.monotonic() + within
    while True:
        with store.transaction() as db:
            if db.execute(waiting).scalar() == count:
                return
        assert time.monotonic() < deadline, f"{count} processes never waited for the queue"
        time.sleep(0.05)


def test_a_persons_run_goes_before_an_automatic_one_and_a_repositorys_priority_adds(
    tmp_path: Path, team: dict[str, str]
) -> None:
    plain = repository(tmp_path, "plain")
    ahead = repository(tmp_path, "ahead", "priority = -20")
    behind = repository(tmp_path, "behind", "priority = 5")
    bot, person, late_bot, urgent, pushed = submit(
        team,
        (plain, AUTOMATIC, 0),  # 10: [queue] automatic, by default
        (plain, PERSON, 0),  # 0
        (ahead, AUTOMATIC, 0),  # 10 - 20
        (behind, PERSON, -7),  # -7 + 5
        (plain, PERSON, 3),  # 3
    )
    assert claimed(team, 5) == [late_bot, urgent, person, pushed, bot]


def test_fair_share_takes_from_the_repository_with_fewest_runs_at_work(
    tmp_path: Path, team: dict[str, str]
) -> None:
    one = repository(tmp_path, "one")
    two = repository(tmp_path, "two")
    a1, a2, a3, b1, b2 = submit(
        team,
        (one, PERSON, 0),
        (one, PERSON, 0),
        (one, PERSON, 0),
        (two, PERSON, 0),
        (two, PERSON, 0),
    )
    assert claimed(team, 1) == [a1]
    # one has a run at work (claimed by another worker): two's goes first, though younger;
    # then, at one each, the oldest; and so on, counting what this look takes.
    assert claimed(team, 4) == [b1, a2, b2, a3]


@pytest.mark.parametrize(
    ("section", "said"),
    [
        ("concurrency = -1", "queue.concurrency: Input should be greater than or equal to 0"),
        ('priority = "high"', "queue.priority: Input should be a valid integer"),
        ("concurency = 2", "queue.concurency: unknown key (expected one of: concurrency,"),
    ],
)
def test_a_bad_queue_setting_is_named_with_what_would_be_right(
    tmp_path: Path, section: str, said: str
) -> None:
    (tmp_path / "jackline.toml").write_text(f"{TOML}\n[queue]\n{section}\n")
    with pytest.raises(ConfigError) as e:
        cfg.load(tmp_path)
    assert said in str(e.value)
    assert str(tmp_path / "jackline.toml") in str(e.value)
