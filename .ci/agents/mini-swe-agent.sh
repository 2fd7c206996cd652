#!/usr/bin/env bash
# mini-swe-agent (PyPI mini-swe-agent) for the mini-swe-agent preset's tests: a virtualenv of its
# own under /opt/jackline-agents/mini-swe-agent, so its dependencies (litellm, ...) never meet
# Jackline's, and `mini` on PATH through /usr/local/bin. Idempotent and quiet.
set -euo pipefail
VERSION=2.4.6
# litellm pinned: 1.106.x (what pip picks unpinned) fails every tool-calling completion with
# "No module named 'mcp'", so mini-swe-agent's bash tool never reaches the model.
LITELLM=1.81.10
DEST=/opt/jackline-agents/mini-swe-agent
LINK=/usr/local/bin/mini

if [ -x "$DEST/bin/mini" ] \
    && "$DEST/bin/python" -m pip show mini-swe-agent 2>/dev/null | grep -x "Version: $VERSION" >/dev/null \
    && "$DEST/bin/python" -m pip show litellm 2>/dev/null | grep -x "Version: $LITELLM" >/dev/null; then
  ln -sf "$DEST/bin/mini" "$LINK"
  exit 0
fi
PY=""
for candidate in python3.12 python3.11 python3.10 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
      'import sys, venv; sys.exit(sys.version_info[:2] < (3, 10))' 2>/dev/null; then
    PY=$candidate
    break
  fi
done
[ -n "$PY" ] || { echo "mini-swe-agent.sh: no Python 3.10+ for mini-swe-agent" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
"$PY" -m venv "$DEST"
log=$(mktemp)
if ! "$DEST/bin/python" -m pip install --quiet --disable-pip-version-check \
    "mini-swe-agent==$VERSION" "litellm==$LITELLM" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
ln -sf "$DEST/bin/mini" "$LINK"
