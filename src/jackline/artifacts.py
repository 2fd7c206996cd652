"""What a run or release keeps in the store besides its record and its audit log, by name.

Kept there (`Store.put_artifact`), not only as files in the run's folder, so that a server or a
worker on another machine reads them: `jackline serve` needs nothing of the machine a run ran on.
Every artifact is redacted before it is kept, as every stored byte is.
"""

from __future__ import annotations

import json
from pathlib import Path

from jackline import handoff
from jackline.handoff import Handoff
from jackline.store import Store

HANDOFF = "handoff.json"
"""The handoff's record (`handoff.Handoff`), from which its markdown and pages are rendered."""
NOTE = "handoff.md"
"""A short note in markdown, kept only when a run failed and its handoff could not be made."""
CHANGE = "change.diff"
"""The change the run committed, base to head (`git diff --stat --patch`)."""
ROUND_CHANGES = "changes/"
"""What each round changed since the round before it, by its head (`round_change`)."""
CHANGE_LIMIT = 4 * 1024 * 1024
"""Characters of a change kept: a bigger one is cut, and says so."""
# Logs are kept under their path in the run's folder: `setup-1.log`, `round-2/agent.log`,
# `round-2/test.log`, `steps/1-autofix/output.log`; a release's as `deploy-staging.log`.
HARNESS_ONLY = ("work/",)
"""What the harness keeps for itself (the run's work as git bundles, `workspaces.kept`; its
inbox, `steps.context`): not a person's to read, and not text."""


def round_change(head: str) -> str:
    """The name of the change from the round before to the round that committed `head`."""
    return f"{ROUND_CHANGES}{head}.diff"


def readable(name: str) -> bool:
    """Whether `name` is an artifact a person reads (`jackline logs --files`, the API)."""
    return not name.startswith(HARNESS_ONLY)


def keep_handoff(h: Handoff, directory: Path, store: Store, run_id: str) -> Path:
    """Write the handoff's files in the run's folder (`handoff.write`) and keep its record in
    the store, where a server or worker on any machine reads it (`handoff_of`)."""
    md = handoff.write(h, directory)
    keep_handoff_record(h, store, run_id)
    return md


def keep_handoff_record(h: Handoff, store: Store, run_id: str) -> None:
    """Keep the handoff's record in the store only: where the run's folder is another
    machine's, a server writes nothing on its own disk (`handoff_of` reads the record)."""
    store.put_artifact(run_id, HANDOFF, json.dumps(handoff.as_json(h)).encode())


def handoff_of(store: Store, run_id: str, markdown_path: str | None) -> Handoff | None:
    """The run's handoff: from the store, else (a run made before handoffs were kept there)
    from the record beside its `handoff.md`."""
    data = store.get_artifact(run_id, HANDOFF)
    if data is None:
        return handoff.load(markdown_path)
    try:
        return Handoff.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError):  # a record this version cannot read
        return None
