"""`OpenFeatureProvider`: applications read their environment's flag values through openfeature-sdk.

    from openfeature import api
    from jackline.flags import OpenFeatureProvider

    api.set_provider(OpenFeatureProvider("production", path="flags.toml"))
    # or, from a Jackline server: OpenFeatureProvider("production", url="http://jackline:8080")
    if api.get_client().get_boolean_value("new-checkout", False): ...

Applications import this module, so it imports only the standard library and openfeature; the
flag file's reader (pydantic) is imported on the first evaluation from a file.

A flag is never an exception in the application: whatever goes wrong (no file, a broken file, a
server down, a flag missing, a value of another type) the caller's default comes back, with
reason ERROR and an error code saying why. Values are the same for every evaluation context:
a flag here is a value per environment, not a targeting rule.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

DEFAULT = "default"  # the same key as in flags.toml; not imported, to keep this module light


@dataclass(frozen=True)
class _Snapshot:
    """One reading of the flags: the values for the environment, or why there are none."""

    values: Mapping[str, Any] = field(default_factory=dict)
    defaults: frozenset[str] = frozenset()
    error: tuple[ErrorCode, str] | None = None
    key: Any = None
    """What the reading was taken from: the file's identity, or the time of the request."""


class OpenFeatureProvider(AbstractProvider):
    def __init__(
        self,
        environment: str,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        token: str | None = None,
        ttl: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        """Read `environment`'s values from `path` (a flags.toml, re-read when it changes) or
        from `url` (a Jackline server: `GET {url}/flags/{environment}`, cached `ttl` seconds,
        sent `token` as a bearer token if given)."""
        super().__init__()
        if (path is None) == (url is None):
            raise ValueError("OpenFeatureProvider needs path= (a flags.toml) or url=, not both")
        if not environment:
            raise ValueError("OpenFeatureProvider needs the environment's name (`production`)")
        self.environment = environment
        self.path = Path(path) if path is not None else None
        self.url = url.rstrip("/") if url else None
        self.token = token
        self.ttl = ttl
        self.timeout = timeout
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def get_metadata(self) -> Metadata:
        return Metadata(name="jackline")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, "bool")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, "string")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, "int")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, "float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, "object")

    # resolving ---------------------------------------------------------------------------

    def _resolve(self, key: str, default: Any, kind: str) -> FlagResolutionDetails[Any]:
        snap = self._current()
        if snap.error:
            return _error(default, *snap.error)
        if key not in snap.values:
            return _error(
                default,
                ErrorCode.FLAG_NOT_FOUND,
                f"no flag {key!r} with a value for {self.environment} in {self._source()}",
            )
        value = snap.values[key]
        converted = _as(kind, value)
        if converted is _MISMATCH:
            return _error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"flag {key!r} is {_kind(value)} in {self.environment}, asked for as {kind}",
            )
        fallback = key in snap.defaults
        return FlagResolutionDetails(
            value=converted,
            reason=Reason.DEFAULT if fallback else Reason.STATIC,
            variant=DEFAULT if fallback else self.environment,
        )

    def _source(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.url}/flags/{urllib.parse.quote(self.environment, safe='')}"

    def _current(self) -> _Snapshot:
        with self._lock:
            snap = self._snapshot
            if self.path is not None:
                key = _identity(self.path)
                if snap is None or snap.key != key:
                    snap = self._read_file(self.path, key)
            elif snap is None or time.monotonic() - snap.key >= self.ttl:
                # A failed request is kept as long as a good one, so a server that is down
                # costs the application one timeout per `ttl`, not one per evaluation.
                snap = self._fetch()
            self._snapshot = snap
            return snap

    def _read_file(self, path: Path, key: Any) -> _Snapshot:
        if key is None:
            return _Snapshot(error=(ErrorCode.GENERAL, f"no flag file at {path}"), key=key)
        from jackline.errors import ConfigError
        from jackline.flags.model import payload, read

        try:
            body = payload(read(path), self.environment)
        except ConfigError as e:
            return _Snapshot(error=(ErrorCode.PARSE_ERROR, str(e)), key=key)
        except OSError as e:
            return _Snapshot(error=(ErrorCode.GENERAL, f"{path}: {e.strerror}"), key=key)
        return _snapshot(body, key)

    def _fetch(self) -> _Snapshot:
        now = time.monotonic()
        where = self._source()
        request = urllib.request.Request(where, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with _opener(where).open(request, timeout=self.timeout) as response:
                body = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            return _Snapshot(error=(ErrorCode.GENERAL, f"{where} answered {e.code}"), key=now)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            return _Snapshot(error=(ErrorCode.GENERAL, f"{where} unreachable: {reason}"), key=now)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _Snapshot(error=(ErrorCode.PARSE_ERROR, f"{where} did not answer JSON"), key=now)
        if not isinstance(body, dict) or not isinstance(body.get("flags"), dict):
            message = f'{where} answered JSON without {{"flags": {{...}}}}'
            return _Snapshot(error=(ErrorCode.PARSE_ERROR, message), key=now)
        return _snapshot(body, now)


def _opener(url: str) -> urllib.request.OpenerDirector:
    """No proxy for a server on loopback: a proxy from the environment could not reach it."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host == "::1" or host.startswith("127."):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _snapshot(body: dict[str, Any], key: Any) -> _Snapshot:
    defaults = body.get("defaults")
    names = [d for d in defaults if isinstance(d, str)] if isinstance(defaults, list) else []
    return _Snapshot(values=dict(body["flags"]), defaults=frozenset(names), key=key)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is rewritten (a new inode when written by rename), else None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(
        value=default, reason=Reason.ERROR, error_code=code, error_message=message
    )


_MISMATCH = object()
_FITS: dict[str, Callable[[Any], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    # A whole number serves a float flag (TOML writes 1, not 1.0); a bool is no number.
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict | list),
}


def _as(kind: str, value: Any) -> Any:
    """`value` as `kind`, or _MISMATCH."""
    if not _FITS[kind](value):
        return _MISMATCH
    return float(value) if kind == "float" else value


def _kind(value: Any) -> str:
    for kind, fits in _FITS.items():
        if fits(value):
            return f"{'an' if kind in ('int', 'object') else 'a'} {kind}"
    return f"a {type(value).__name__}"
