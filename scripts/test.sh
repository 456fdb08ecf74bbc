#!/usr/bin/env bash
# Every test: lint and format check, type check, then the whole Vitest suite against real
# SQLite files and real bubblewrap sandboxes. Prints a plain "N passed, N failed" summary.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts

npx biome check .
npx tsc -b packages/*/tsconfig.json

status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@" || status=$?
node scripts/summarize-tests.mjs test-artifacts/vitest.json || true
exit "$status"
