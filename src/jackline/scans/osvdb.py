"""A local copy of OSV's advisories: reading it for the dependencies scan, and refreshing it.

Two layouts are read, both holding OSV records:

- OSV's own export, per ecosystem: `<db>/PyPI/all.zip` or `<db>/PyPI/*.json` (and `npm/`), which
  `update` downloads;
- the PyPA advisory database (a clone of github.com/pypa/advisory-database): YAML records in
  `<db>/vulns/<package>/PYSEC-*.yaml`, PyPI only. OSV's export is preferred when both are there.

YAML is read with PyYAML's base loader, every scalar a string: a version written `2.0` or `1.10`
stays a version instead of becoming the float 2.0 or 1.1.

`update` fetches OSV's `all.zip` for PyPI into a temporary file beside the old copy, checks that
it is a zip of OSV records, and only then renames it over the old one, so a scan never reads a
half-written copy and a failed download leaves the old copy in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name

from jackline import paths
from jackline.errors import JacklineError

OSV_URL = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
"""Where OSV publishes every PyPI advisory as one zip of JSON records."""
URL_VARIABLE = "JACKLINE_OSV_URL"
"""Overrides `OSV_URL` (a mirror, or a test's server)."""

Advisory = dict[str, Any]
_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def advisories(db: Path, ecosystem: str, names: set[str]) -> dict[str, list[Advisory]] | None:
    """The advisories naming each package, None if the copy holds none for the ecosystem.

    Raises OSError, zipfile.BadZipFile or ValueError when the copy cannot be read."""
    found = _osv_export(db / ecosystem, ecosystem, names)
    if found is None and ecosystem == "PyPI" and (db / "vulns").is_dir():
        return _pypa(db / "vulns", names)
    return found


# OSV's export: all.zip or the JSON files -------------------------------------------------------


def _osv_export(folder: Path, ecosystem: str, names: set[str]) -> dict[str, list[Advisory]] | None:
    archive = folder / "all.zip"
    if archive.is_file():
        index = _index(str(archive), ecosystem, _stamp(archive))
        with zipfile.ZipFile(archive) as z:
            return _load(index, names, z.read)
    if not folder.is_dir() or next(folder.glob("*.json"), None) is None:
        return None
    index = _index(str(folder), ecosystem, _stamp(folder))
    return _load(index, names, lambda entry: (folder / entry).read_bytes())


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _index(source: str, ecosystem: str, stamp: tuple[int, int]) -> dict[str, list[str]]:
    """Package name -> the entries that name it, so a scan parses only the advisories it needs.

    A full PyPI copy holds a few hundred MB of JSON and takes seconds to read through, so the
    index is kept in memory and in Jackline's home, and rebuilt when the copy's stamp changes."""
    digest = hashlib.sha256(f"{source}\0{ecosystem}".encode()).hexdigest()[:16]
    saved = paths.home() / "cache" / f"osv-index-{digest}.json"
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
        if data["source"] == source and data["stamp"] == list(stamp):
            return dict(data["index"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    index = _build_index(Path(source), ecosystem)
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        partial = saved.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"source": source, "stamp": stamp, "index": index}))
        partial.replace(saved)
    except OSError:
        pass  # the saved index only saves time
    return index


_NAME = re.compile(rb'"name"\s*:\s*"([^"\\]+)"')


def _build_index(source: Path, ecosystem: str) -> dict[str, list[str]]:
    """A regular expression finds the names without parsing the JSON; it also catches names
    that are not packages (credits, CWEs), which costs only an unused key."""
    index: dict[str, list[str]] = defaultdict(list)
    for entry, data in _entries(source):
        for raw in set(_NAME.findall(data)):
            index[normal(ecosystem, raw.decode("utf-8", "replace"))].append(entry)
    return dict(index)


def _entries(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_file():
        with zipfile.ZipFile(source) as z:
            for info in z.infolist():
                if info.filename.endswith(".json"):
                    yield info.filename, z.read(info)
    else:
        for path in source.glob("*.json"):
            yield path.name, path.read_bytes()


def _load(
    index: dict[str, list[str]], names: set[str], read: Callable[[str], bytes]
) -> dict[str, list[Advisory]]:
    parsed: dict[str, Advisory] = {}
    found: dict[str, list[Advisory]] = {}
    for name in names:
        for entry in index.get(name, ()):
            if entry not in parsed:
                parsed[entry] = json.loads(read(entry))
            found.setdefault(name, []).append(parsed[entry])
    return found


# The PyPA advisory database: vulns/<package>/*.yaml ---------------------------------------------


def _pypa(vulns: Path, names: set[str]) -> dict[str, list[Advisory]]:
    """One folder per package, named as PyPA spells it (`Django`, `pyyaml`): listed once and
    matched by normalised name, so only the asked packages' records are parsed."""
    folders = {normal("PyPI", p.name): p for p in vulns.iterdir() if p.is_dir()}
    found: dict[str, list[Advisory]] = {}
    for name in sorted(names & folders.keys()):
        records = sorted(folders[name].glob("*.yaml")) + sorted(folders[name].glob("*.yml"))
        found[name] = [_yaml_record(p) for p in records]
    return found


def _yaml_record(path: Path) -> Advisory:
    try:
        record = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 - the base loader builds only strings, lists and dicts
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not YAML ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise ValueError(f"{path}: not an OSV record (no `id`)")
    return record


def normal(ecosystem: str, name: str) -> str:
    return str(canonicalize_name(name)) if ecosystem == "PyPI" else name


# Refreshing the copy ---------------------------------------------------------------------------


Progress = Callable[[int, int | None], None]
"""Told the bytes received so far and the total, when the server says it."""


@dataclass(frozen=True)
class Updated:
    path: Path
    """The zip now in place."""
    records: int
    """OSV records it holds."""
    size: int
    """Its size in bytes."""


def update(dest: Path, url: str | None = None, progress: Progress | None = None) -> Updated:
    """Download OSV's PyPI advisories into `dest/PyPI/all.zip`, replacing the old copy only once
    the new one is whole. A failure is a JacklineError saying what happened; the old copy stays."""
    url = url or os.environ.get(URL_VARIABLE) or OSV_URL
    folder = dest.expanduser() / "PyPI"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".all.zip.", suffix=".partial", dir=folder)
    except OSError as e:
        raise JacklineError(f"cannot write into {folder}: {e}") from None
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out.write, progress)
        records = _records(partial)
        final = folder / "all.zip"
        partial.replace(final)  # a rename within one folder: readers see the old or the new
    finally:
        partial.unlink(missing_ok=True)
    return Updated(final, records, final.stat().st_size)


def _download(url: str, write: Callable[[bytes], object], progress: Progress | None) -> None:
    import httpx  # here, not at the top: the scans import this module and never download

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=30.0) as response:
            if response.status_code != 200:
                raise JacklineError(f"{url} answered HTTP {response.status_code}")
            total = _length(response.headers.get("content-length"))
            got = 0
            for chunk in response.iter_bytes(1 << 20):
                write(chunk)
                got += len(chunk)
                if progress is not None:
                    progress(got, total)
    except httpx.HTTPError as e:
        raise JacklineError(
            f"could not download {url}: {type(e).__name__}: {e or 'no answer'} (is there a "
            f"network? `--url` or ${URL_VARIABLE} name a mirror)"
        ) from None


def _length(header: str | None) -> int | None:
    return int(header) if header and header.isdigit() else None


def _records(archive: Path) -> int:
    """How many OSV records the downloaded zip holds; JacklineError if it is not such a zip."""
    try:
        with zipfile.ZipFile(archive) as z:
            bad = z.testzip()
            names = [n for n in z.namelist() if n.endswith(".json")]
            sample = json.loads(z.read(names[0])) if names else None
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise JacklineError(f"the download is not a zip of OSV records: {e}") from None
    if bad is not None:
        raise JacklineError(f"the download is damaged (bad CRC in {bad})")
    if not isinstance(sample, dict) or "id" not in sample:
        raise JacklineError("the download holds no OSV records (JSON files with an `id`)")
    return len(names)
