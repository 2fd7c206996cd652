"""Ways in besides the CLI and the server's own pages, each a thin skin over `jackline.api`.

- `mcp.py`: the MCP server, the harness's context as tools for an agent at work (stdio).
- `slack.py`: the Slack app, `/jackline` commands, review and go buttons, and the messages
  `notify.announce` sends when a run reaches review or a release waits or rolls back.
"""
