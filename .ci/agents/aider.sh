#!/usr/bin/env bash
# Aider (PyPI aider-chat) for the aider preset's tests: a virtualenv of its own under
# /opt/jackline-agents/aider, so its pinned dependencies (litellm, openai, ...) never meet
# Jackline's, and `aider` on PATH through /usr/local/bin. Idempotent and quiet.
set -euo pipefail
VERSION=0.86.2
DEST=/opt/jackline-agents/aider
LINK=/usr/local/bin/aider

if [ -x "$DEST/bin/aider" ] && "$DEST/bin/python" -m pip show aider-chat 2>/dev/null \
    | grep -x "Version: $VERSION" >/dev/null; then
  ln -sf "$DEST/bin/aider" "$LINK"
  exit 0
fi
# aider-chat supports Python 3.10 to 3.12: take the newest of those that is here.
PY=""
for candidate in python3.12 python3.11 python3.10 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
      'import sys, venv; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
    PY=$candidate
    break
  fi
done
[ -n "$PY" ] || { echo "aider.sh: no Python 3.10-3.12 to install aider-chat with" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
"$PY" -m venv "$DEST"
# Quiet unless it fails (pip's warnings about this machine's extra indexes are noise).
log=$(mktemp)
if ! "$DEST/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aider-chat==$VERSION" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
ln -sf "$DEST/bin/aider" "$LINK"
