"""A real PostgreSQL server on loopback, made in a folder and removed with it: for the tests (one
per test session, `tests/postgres.py`) and the benchmarks that measure team mode on it.

The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, not on PATH); `.ci/run` installs
the `postgresql` package where they are missing. `initdb` refuses to run as root: as root, the
cluster belongs to the `postgres` user. It listens on 127.0.0.1 on a free port and on a socket in
its folder; fsync is off (a crash loses throwaway data, which nobody wants back).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Each test's processes (the CLI's, DBOS's pools) connect to the test's database; six
    # workers at once stay far below this.
    "max_connections": "400",
    "shared_buffers": "64MB",
}


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
        "`apt-get install postgresql`, as .ci/run does"
    )


def _version(initdb: str) -> float:
    return float(Path(initdb).parents[1].name)


@dataclass(frozen=True)
class Cluster:
    port: int
    folder: Path

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create(self, name: str) -> str:
        """A new, empty database `name` (`CREATE DATABASE ... TEMPLATE template0`); its URL."""
        with self.admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop(self, name: str) -> None:
        with self.admin() as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def start(folder: Path) -> Cluster:
    """initdb and start a cluster in `folder` (made if missing; as root, the `postgres` user
    must be able to reach it: a folder of its own under /tmp, as `tempfile.mkdtemp` makes);
    `stop` ends it."""
    folder.mkdir(parents=True, exist_ok=True)
    return Cluster(_make(folder), folder)


def stop(folder: Path) -> None:
    """Stop the cluster in `folder`, if one runs there, and remove the folder."""
    data = folder / "data"
    if (data / "postmaster.pid").exists():
        _as_owner(
            str(folder), [str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        )
    shutil.rmtree(folder, ignore_errors=True)


def _make(folder: Path) -> int:
    """initdb and start; the port it listens on."""
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to `postgres`
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, sock = folder / "data", folder / "sock"
    _as_owner(str(folder), ["mkdir", "-p", str(sock)])
    bin_ = bin_dir()
    _as_owner(
        str(folder),
        [str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
         "--locale=C", "--no-sync", "--no-instructions"],
    )  # fmt: skip
    for _attempt in range(3):  # a port found free may be taken before the server binds it
        port = _free_port()
        options = " ".join(f"-c {k}={v}" for k, v in {**SETTINGS, "port": port}.items())
        started = _as_owner(
            str(folder),
            [str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60",
             "-o", f"{options} -k {sock}", "start"],
            check=False,
        )  # fmt: skip
        if started.returncode == 0:
            return port
    raise RuntimeError(f"PostgreSQL did not start: {(folder / 'log').read_text()[-2000:]}")


def _as_owner(folder: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dump(url: str) -> str:
    """Everything the database at `url` holds, as `pg_dump` writes it (to look for a byte that
    must not be stored anywhere)."""
    done = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--data-only", url], capture_output=True, text=True, check=True
    )
    return done.stdout
