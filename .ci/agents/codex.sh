#!/usr/bin/env bash
# The Codex CLI (`codex`, npm @openai/codex) for tests/test_preset_codex.py. Pinned to the version
# the preset was built against (its JSON events and config keys change between releases);
# CODEX_VERSION=latest to try a newer one. Skipped when that version is already installed.
set -euo pipefail
want=${CODEX_VERSION:-0.169.0}
if command -v codex >/dev/null 2>&1; then
  have=$(codex --version 2>/dev/null | awk '{print $NF}')
  if [ "$want" != latest ] && [ "$have" = "$want" ]; then
    exit 0
  fi
fi
command -v npm >/dev/null 2>&1 || {
  echo "codex: npm is needed to install @openai/codex (install Node.js 18+)" >&2
  exit 1
}
npm install -g --silent --no-fund --no-audit "@openai/codex@$want" >/dev/null 2>&1 || {
  echo "codex: npm install -g @openai/codex@$want failed" >&2
  exit 1
}
