"""Ways in besides the CLI and the server's own pages, each a thin skin over `jackline.api`.

- `mcp.py`: the MCP server, the harness's context as tools for an agent at work (stdio).
- `slack.py`: the Slack app, `/jackline` commands, review and go buttons, and the messages
  `notify.announce` sends when a run reaches review or a release waits or rolls back.

`register_notifiers()` is how a process that drives runs (the CLI's `main`, the server's app)
tells `jackline.notify` of Slack and GitHub when it starts; the core never names them.
"""

from __future__ import annotations

from jackline import notify


def register_notifiers() -> None:
    """Slack and a GitHub forge hear of runs and releases in this process (each does nothing
    unless configured). Their modules are imported at the first announcement to a project
    configured for them, not at start."""
    notify.register("slack", lambda config: config.surfaces.slack is not None, _slack)
    notify.register("github", lambda config: config.forge.kind == "github", _github)


def _slack() -> notify.Announce:
    from jackline.surfaces import slack

    return slack.announce


def _github() -> notify.Announce:
    from jackline.forge import github

    return github.announce
