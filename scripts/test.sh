#!/usr/bin/env bash
# Every test: lint and format check, type check, then the whole Vitest suite against real
# SQLite files and real bubblewrap sandboxes. Prints a plain "N passed, N failed" summary.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts

npx biome check .
npx tsc -b packages/*/tsconfig.json

# Test-only system packages: Debian's Chromium for the dashboard's browser tests (playwright-core
# brings no browser), a real OCI registry with skopeo for the image-pull tests, and getfattr
# (attr) for reading overlay's opaque-directory markers when a layer is committed (and setting
# them in the storage pool's clone tests), Postgres and Redis servers for the store and bus
# contract suites (each test starts its own on a unix socket in a temp dir; the default start
# needs neither). The storage pool's own xfsprogs comes with setup (scripts/ensure.sh); it is
# checked here too for a test.sh run on its own.
test_missing=()
[ -x /usr/sbin/mkfs.xfs ] || test_missing+=(xfsprogs)
[ -x /usr/bin/chromium ] || test_missing+=(chromium)
[ -x /usr/bin/docker-registry ] || test_missing+=(docker-registry)
[ -x /usr/bin/skopeo ] || test_missing+=(skopeo)
[ -x /usr/bin/getfattr ] || test_missing+=(attr)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || test_missing+=(postgresql)
[ -x /usr/bin/redis-server ] || test_missing+=(redis-server)
if [ "${#test_missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf 'polydev test: installing %s with apt-get (for the tests)\n' "${test_missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${test_missing[@]}" >/dev/null
  else
    printf 'polydev test: %s missing, so the tests that need them will fail or skip;\n' "${test_missing[*]}" >&2
    printf 'polydev test: install them (Debian/Ubuntu: sudo apt-get install %s) and run this again\n' "${test_missing[*]}" >&2
  fi
fi

status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@" || status=$?
node scripts/summarize-tests.mjs test-artifacts/vitest.json || true
exit "$status"
