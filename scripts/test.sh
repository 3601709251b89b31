#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages, the venv), then runs every
# tier: unit, Django, integration (real Postfix, clamd, DNS servers, Redis, PostgreSQL),
# conformance and browser (real Chromium) against the embedded setup (SQLite + embedded store),
# then the database-facing tiers again against PostgreSQL + Redis (less the tests marked
# backend_neutral, which use neither).
#
#   sudo bash scripts/test.sh            # everything
#   sudo bash scripts/test.sh tests/unit # a subset (first pass only)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/install-deps.sh --test || exit 1
py=.venv/bin/python
export PYTHONDONTWRITEBYTECODE=1
export BULWARK_REQUIRE_COMPILED=1  # tests/unit/test_compiled.py: the suite runs on the compiled modules
export TMPDIR=${TMPDIR:-/tmp}
unset GATEWAY_DATABASE_URL GATEWAY_REDIS_URL
export GATEWAY_DATA_DIR=$(mktemp -d /tmp/bulwark-test-XXXXXX)
trap 'rm -rf "$GATEWAY_DATA_DIR"' EXIT

run_pytest() {
  "$py" -m pytest "$@"
  rc=$?
  # exit 5 = no tests collected: not a failure of the suite for a subset run
  if [ "$rc" = 5 ]; then echo "pytest: no tests collected for: $*"; rc=0; fi
  return $rc
}

status=0
if [ "$#" -gt 0 ]; then
  run_pytest -q "$@" || status=$?
  exit $status
fi

echo "== pass 1: all tiers, SQLite + embedded store"
run_pytest -q --durations=15 tests || status=$?

echo "== pass 2: database and store tiers, PostgreSQL + Redis"
"$py" scripts/with-services.py -- "$py" -m pytest -q --durations=10 -m "not browser and not backend_neutral" \
    tests/django tests/integration/spine $(ls -d tests/integration/antispam 2>/dev/null) || {
  rc=$?; [ "$rc" = 5 ] || status=$rc; }

echo "== test status: $status"
exit $status
