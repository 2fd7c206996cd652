#!/usr/bin/env bash
# Claude Code, for the claude-code preset's tests: the real CLI from the npm registry, pinned to
# the version the preset was checked against (its stream-json, hooks and settings files).
set -euo pipefail
VERSION=${CLAUDE_CODE_VERSION:-2.1.330}
if command -v claude >/dev/null 2>&1 && claude --version 2>/dev/null | grep "^$VERSION " >/dev/null; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "claude-code: npm is missing (install Node.js 18+); the preset's tests will be skipped" >&2
  exit 0
fi
npm install -g --silent --no-fund --no-audit "@anthropic-ai/claude-code@$VERSION" >/dev/null 2>&1 \
  || npm install -g --no-fund --no-audit "@anthropic-ai/claude-code@$VERSION"
