"""Forges: where branches and change requests live. `local` (the user's repository) ships now;
GitHub plugs in beside it. The harness alone pushes, and only to `agent/*`.
"""

from __future__ import annotations

from jackline.errors import Refused


def check_branch(branch: str) -> None:
    if not branch.startswith("agent/"):
        raise Refused(f"the harness only pushes to agent/* branches, not {branch!r}")
