#!/usr/bin/env bash
# axe-core, the accessibility rules tests/test_browser.py injects into each page: pinned (a new
# release adds rules, and a test that turns red must be a change of ours), installed into
# .cache/node in the repository (gitignored) so it never meets a global npm's packages. Skipped
# when that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${AXE_CORE_VERSION:-4.14.1}
prefix=.cache/node
have=$(node -p "require('./$prefix/node_modules/axe-core/package.json').version" 2>/dev/null || true)
[ "$have" = "$want" ] && exit 0
command -v npm >/dev/null 2>&1 || {
  echo "axe-core: npm is needed to install axe-core (install Node.js 18+)" >&2
  exit 1
}
npm install --prefix "$prefix" --silent --no-fund --no-audit --no-save "axe-core@$want" >/dev/null 2>&1 || {
  echo "axe-core: npm install axe-core@$want failed" >&2
  exit 1
}
