"""Gates loosened without touching a CI file: tool configuration, and the scripts CI runs.

Part of the guards scan (`guards.scan` calls `scan`):

- `guard.config-loosened` (warn, as every guard finding): a linter, type checker, test runner or
  coverage setting that now checks less, read as TOML (`pyproject.toml`, `ruff.toml`) or INI
  (`setup.cfg`, `tox.ini`, `.coveragerc`, `mypy.ini`, `pytest.ini`, `.flake8`) in the base and
  the head: new entries in `ignore`, `extend-ignore`, `per-file-ignores`, `omit`, `exclude`,
  `disable`; entries dropped from `select`; mypy's `ignore_errors`, `ignore_missing_imports`,
  `allow_*` turned on or `strict`, `disallow_*`, `warn_*`, `check_untyped_defs` turned off (a new
  `[[tool.mypy.overrides]]` or `[mypy-x.*]` section counts as off before).
- `guard.tests-deselected` (warn): pytest's `addopts` gaining `-k`, `-m`, `--deselect`,
  `--ignore`, `--ignore-glob`, `-p no:...` or `--continue-on-collection-errors`.
- `guard.ci-gate` (block, the level of `scope.gate`): an edit to a file CI runs. The files are
  read from the base commit's `.github/workflows/*.yml` `run:` lines (never the workspace's,
  which the agent wrote): a path named there (`scripts/check`, `./ci/test.sh`), the Makefile
  targets named by `make` (and the targets they depend on), the `commands` of tox.ini's
  `[testenv]` sections for `tox`, `noxfile.py` for `nox`, `justfile` for `just`. In a Makefile
  or tox.ini only a step changed or lost counts (a new target or env is not one CI ran); in a
  script any edit does. The finding stands at the first line the change removed there (the old
  file's number: a lost step) or, if it only added lines, the first added one.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from jackline import git as g
from jackline.errors import CommandFailed
from jackline.models import Finding
from jackline.scans import Change, FileChange

WHY_LOOSENED = (
    "The setting makes a check CI runs look at less; the check still passes, so nobody is told "
    "what it stopped checking."
)
WHY_DESELECTED = "Deselected tests stop running in every later build without showing as skipped."
WHY_CI = (
    "CI runs this file, so it is part of the gate: an edit here can drop a step and CI still "
    "passes. A person who owns the gate decides."
)
TOML = {"pyproject.toml", "ruff.toml", ".ruff.toml"}
INI = {"setup.cfg", "tox.ini", ".coveragerc", "mypy.ini", ".mypy.ini", "pytest.ini", ".flake8"}
GROWN = {"ignore", "extend_ignore", "omit", "exclude", "extend_exclude", "disable", "ignore_paths"}
SHRUNK = {"select", "extend_select", "enable"}
ON = re.compile(r"^(?:ignore_errors|ignore_missing_imports|allow_\w+)$")
OFF = re.compile(
    r"^(?:strict|strict_optional|check_untyped_defs|disallow_\w+|warn_\w+|xfail_strict)$"
)
DESELECTING = re.compile(
    r"^(?:-k|-m|--deselect|--ignore|--ignore-glob|--continue-on-collection-errors|-p)(?:[=\s]|$)"
)
RUNNERS = {"tox": "tox.ini", "nox": "noxfile.py", "just": "justfile"}
MAX_WORKFLOW = 1_000_000
_LAUNCHERS = {
    *("&&", "||", ";", "|", "sudo", "env", "exec", "time", "source", "."),
    *("bash", "sh", "zsh", "python", "python3", "pwsh", "node", "ruby", "perl", "-c", "run"),
}


def scan(change: Change, files: list[FileChange]) -> list[Finding]:
    findings: list[Finding] = []
    for fc in files:
        name = PurePosixPath(fc.path).name
        if fc.status != "deleted" and (name in TOML or name in INI):
            findings += _loosened(change, fc, name)
    return findings + _ci_gates(change, files)


# --- tool configuration -----------------------------------------------------------------------


def _loosened(change: Change, fc: FileChange, name: str) -> list[Finding]:
    old = change.old_text(fc.old_path) if fc.old_path else ""
    new = change.new_text(fc.path)
    if new is None:
        return []
    before, after = _settings(old or "", name), _settings(new, name)
    if before is None or after is None:
        return []  # a file that does not parse says nothing reliable
    findings = []
    for path, value in after.items():
        for what, item in _looser(path, before.get(path), value):
            line = _line_of(fc, path[-1] if what.startswith("turned") else item, path[-1])
            key = ".".join(path)
            if path[-1] == "addopts":
                message = f"pytest `addopts` now deselects tests: `{item}`"
                findings.append(_finding("tests-deselected", message, fc, line, WHY_DESELECTED))
            else:
                message = f"`{key}` {what}: `{item}`"
                findings.append(_finding("config-loosened", message, fc, line, WHY_LOOSENED))
    return findings


def _finding(rule: str, message: str, fc: FileChange, line: int, why: str) -> Finding:
    quote = next((ln.text.strip() for ln in fc.added if ln.number == line), "")
    return Finding(f"guard.{rule}", "warn", message, fc.path, line or None, why, quote)


Settings = dict[tuple[str, ...], tuple[str, ...]]


def _settings(text: str, name: str) -> Settings | None:
    """Every setting as its key path and its items (a scalar is one item)."""
    if name in TOML:
        try:
            return dict(_flatten(tomllib.loads(text), ()))
        except (tomllib.TOMLDecodeError, ValueError):
            return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    out: Settings = {}
    for section in parser.sections():
        for key, value in parser.items(section, raw=True):
            path = (section, _norm(key))
            if "per_file_ignores" in path[-1]:
                out[path] = tuple(_per_file(value))
            elif path[-1] == "addopts":
                out[path] = tuple(_split_opts(value))
            else:
                out[path] = tuple(i for i in re.split(r"[,\s]+", value) if i)
    return out


def _flatten(
    value: Any, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...]]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if "per_file_ignores" in _norm(k) and isinstance(v, dict):
                items = [f"{p}:{c}" for p, codes in v.items() for c in _items(codes)]
                yield (*path, _norm(k)), tuple(items)
            else:
                yield from _flatten(v, (*path, _norm(k)))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            # mypy overrides are named by their modules: a new one is new, whatever its place
            yield from _flatten(v, (*path, ",".join(_items(v.get("module", str(i))))))
    elif path and path[-1] == "addopts":
        yield (
            path,
            tuple(_split_opts(value if isinstance(value, str) else " ".join(map(str, value)))),
        )
    else:
        yield path, tuple(_items(value))


def _items(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
    return [str(value).lower() if isinstance(value, bool) else str(value)]


def _norm(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _per_file(value: str) -> list[str]:
    items = []
    for entry in re.split(r"\n", value):
        pattern, _, codes = entry.partition(":")
        items += [f"{pattern.strip()}:{c}" for c in re.split(r"[,\s]+", codes) if c]
    return items


def _split_opts(value: str) -> list[str]:
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    out, i = [], 0
    while i < len(words):  # an option and its value travel together: `-k "not slow"`
        word = words[i]
        if word in ("-k", "-m", "-p", "--deselect", "--ignore", "--ignore-glob") and i + 1 < len(
            words
        ):
            word, i = f"{word} {words[i + 1]}", i + 1
        out.append(word)
        i += 1
    return out


def _looser(
    path: tuple[str, ...], old: tuple[str, ...] | None, new: tuple[str, ...]
) -> list[tuple[str, str]]:
    """(what happened, the item) for each way `new` checks less than `old` did."""
    key, before = path[-1], set(old or ())
    if key == "addopts":
        return [("", i) for i in new if DESELECTING.match(i) and i not in before and _deselects(i)]
    if key in GROWN or "per_file_ignores" in key:
        return [("gained", i) for i in new if i not in before]
    if key in SHRUNK and old:
        return [("lost", i) for i in old if i not in new]
    value = new[0].lower() if len(new) == 1 else ""
    was = old[0].lower() if old and len(old) == 1 else ""
    if ON.match(key) and value == "true" and was != "true":
        return [("turned on", f"{key} = true")]
    if OFF.match(key) and value == "false" and was not in ("false", ""):
        return [("turned off", f"{key} = false")]
    return []


def _deselects(option: str) -> bool:
    """`-m "not slow"` deselects; `-m slow` selects, and so does `-p` other than `no:`."""
    if option.startswith(("-m", "-k")):
        return "not " in option or option.startswith("-k")
    return not option.startswith("-p") or " no:" in option


def _line_of(fc: FileChange, item: str, key: str) -> int:
    """The added line that sets the key (for a switch) or holds the item (for a list entry);
    the first added line else."""
    spelled = "[-_]".join(map(re.escape, key.split("_")))
    setting = re.compile(rf"^\s*[\"']?{spelled}[\"']?\s*[=:]", re.IGNORECASE)
    if item == key:
        found = [ln.number for ln in fc.added if setting.match(ln.text)]
    else:
        words = [w for w in re.split(r"[:=\s]+", item) if w] or [item]
        holding = [ln for ln in fc.added if all(w in ln.text for w in words)]
        found = [ln.number for ln in holding if setting.match(ln.text)]
        found += [ln.number for ln in holding]
    return found[0] if found else fc.added[0].number if fc.added else 0


# --- files CI runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Invoked:
    path: str
    """The file CI runs."""
    how: str
    """The workflow line that runs it."""
    targets: frozenset[str] = frozenset()
    """For a Makefile: the targets CI makes (empty: the whole file counts)."""


def _ci_gates(change: Change, files: list[FileChange]) -> list[Finding]:
    changed = {fc.old_path or fc.path: fc for fc in files}
    if not changed:
        return []
    findings = []
    for invoked in _invoked(change, set(changed)):
        fc = changed[invoked.path]
        line = _gate_line(change, fc, invoked)
        if line is None:
            continue
        lost = bool(fc.removed)
        message = f"the change edits `{fc.path}`, which CI runs ({invoked.how})"
        if lost:
            message += f"; {len(fc.removed)} line(s) removed"
        quote = next((ln.text.strip() for ln in (*fc.removed, *fc.added) if ln.number == line), "")
        findings.append(Finding("guard.ci-gate", "block", message, fc.path, line, WHY_CI, quote))
    return findings


def _workflows(change: Change) -> list[str]:
    try:
        out = g.git_bytes(
            change.root, "ls-tree", "-r", "-z", "--name-only", change.base, "--",
            ".github/workflows",
        )  # fmt: skip
    except CommandFailed:  # a base that is not a commit has no workflows to read
        return []
    return [p for p in g.z_paths(out) if p.endswith((".yml", ".yaml"))]


def _invoked(change: Change, changed: set[str]) -> list[_Invoked]:
    found: dict[str, _Invoked] = {}
    for wf in _workflows(change):
        text = change.old_text(wf)
        if text is None or len(text) > MAX_WORKFLOW:
            continue
        for run in _runs(text):
            for inv in _calls(run, wf, changed):
                old = found.get(inv.path)
                targets = inv.targets | (old.targets if old else frozenset())
                found[inv.path] = _Invoked(inv.path, (old or inv).how, targets)
    return list(found.values())


def _runs(text: str) -> list[str]:
    """Every `run:` of every step, each line of it a command."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    runs = []
    for job in (jobs or {}).values() if isinstance(jobs, dict) else []:
        steps = job.get("steps") if isinstance(job, dict) else None
        for step in steps if isinstance(steps, list) else []:
            if isinstance(step, dict) and isinstance(step.get("run"), str):
                runs += [ln.strip() for ln in step["run"].splitlines() if ln.strip()]
    return runs


def _calls(run: str, wf: str, changed: set[str]) -> Iterable[_Invoked]:
    try:
        words = shlex.split(run, comments=True)
    except ValueError:
        words = run.split()
    how = f"`{wf}`: `{run[:80]}`"
    for i, word in enumerate(words):
        path = word.removeprefix("./")
        # a file run as a command, or handed to an interpreter; not every argument (a compose
        # file, a requirements list) is a step of the gate
        if path in changed and (i == 0 or words[i - 1] in _LAUNCHERS) and _script_like(path):
            yield _Invoked(path, how)
        runner = PurePosixPath(word).name
        if i > 0 and words[i - 1] in ("install", "add", "-U", "--upgrade"):
            continue  # `pip install tox` installs the runner, it does not run it
        if runner == "make":
            targets = [w for w in words[i + 1 :] if re.match(r"^[\w.-]+$", w)]
            for makefile in ("Makefile", "makefile", "GNUmakefile"):
                if makefile in changed:
                    yield _Invoked(makefile, how, frozenset(targets or ["<default>"]))
        elif runner in RUNNERS and RUNNERS[runner] in changed:
            yield _Invoked(RUNNERS[runner], how)


def _script_like(path: str) -> bool:
    """A file of steps: a shell script (any file not Python), or a Python one kept with the
    project's scripts or named for a check. An application run by CI (`python manage.py test`)
    is what the gate checks, not a step of it."""
    p = PurePosixPath(path)
    if p.suffix != ".py":
        return True
    folders = {"scripts", "script", "ci", ".ci", "tools", "bin", "dev"}
    return bool(folders & set(p.parts[:-1])) or bool(
        re.match(r"^(?:check|lint|tests?|run_tests|ci|verify)(?:[_-]|$)", p.stem)
    )


def _gate_line(change: Change, fc: FileChange, inv: _Invoked) -> int | None:
    """The first removed line (old numbering), else the first added one, that counts."""
    name = PurePosixPath(inv.path).name
    old_rows = None
    if inv.targets:
        old_rows = _make_rows(change.old_text(fc.old_path or fc.path) or "", inv.targets)
    elif name == "tox.ini":
        old_rows = _tox_rows(change.old_text(fc.old_path or fc.path) or "")
    removed = [ln.number for ln in fc.removed if old_rows is None or ln.number in old_rows]
    if old_rows is not None:  # a Makefile's or tox.ini's steps: only a step changed or lost
        return removed[0] if removed else None  # (a new env or target is not one CI ran)
    added = [ln.number for ln in fc.added]
    return removed[0] if removed else added[0] if added else None


def _make_rows(text: str, targets: frozenset[str]) -> set[int]:
    """Line numbers of the rules for `targets` and the targets they depend on."""
    rules: dict[str, tuple[list[str], list[int]]] = {}
    current: list[int] | None = None
    first = ""
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^([\w./-]+(?:\s+[\w./-]+)*)\s*::?(?!=)(.*)$", line)
        if m and not line.startswith("\t"):
            current = [n]
            for t in m[1].split():
                first = first or t
                rules[t] = (m[2].split(), current)
        elif current is not None and (line.startswith("\t") or line.endswith("\\")):
            current.append(n)
        elif current is not None and line.strip() and not line.startswith("#"):
            current = None
    wanted = [first if t == "<default>" else t for t in targets]
    rows: set[int] = set()
    seen: set[str] = set()
    while wanted:
        t = wanted.pop()
        if t in seen or t not in rules:
            continue
        seen.add(t)
        deps, lines = rules[t]
        rows.update(lines)
        wanted += deps
    return rows


def _tox_rows(text: str) -> set[int]:
    """Line numbers of the `commands` (and `commands_pre`/`_post`) of tox.ini's `[testenv...]`
    sections: the steps; the env list, dependencies and a tool's own section are not."""
    rows: set[int] = set()
    section, inside = "", False
    for n, line in enumerate(text.splitlines(), 1):
        if m := re.match(r"^\[([^\]]+)\]", line):
            section, inside = m[1], False
        elif m := re.match(r"^([\w-]+)\s*=", line):
            inside = section.startswith("testenv") and m[1].startswith("commands")
        elif line.strip() and not line[:1].isspace():
            inside = False
        if inside:
            rows.add(n)
    return rows
