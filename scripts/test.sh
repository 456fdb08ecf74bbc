#!/usr/bin/env bash
# Every test: lint and format check, type check, then the whole Vitest suite against real
# SQLite files and real bubblewrap sandboxes. Prints a plain "N passed, N failed" summary.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts

npx biome check .
npx tsc -b packages/*/tsconfig.json

# The dashboard's browser tests drive Debian's Chromium (playwright-core brings no browser).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'polydev test: installing chromium with apt-get (for the dashboard tests)\n' >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
  else
    printf 'polydev test: /usr/bin/chromium is missing, so the dashboard tests will fail;\n' >&2
    printf 'polydev test: install it (Debian/Ubuntu: sudo apt-get install chromium) and run this again\n' >&2
  fi
fi

status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@" || status=$?
node scripts/summarize-tests.mjs test-artifacts/vitest.json || true
exit "$status"
