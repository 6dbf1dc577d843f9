#!/usr/bin/env bash
# The whole test suite, on a fresh machine:
#   - Rust unit, property, store-conformance and API tests (cargo test);
#   - the zenpy compatibility suite against the real binary (creates .venv on first run);
#   - the web interface in Debian's Chromium with playwright-core (installs both on first run).
# With OPSDESK_TEST_DATABASE_URL=postgres://… set, every store and API test also runs on
# PostgreSQL (each test in a fresh schema).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -n ${OPSDESK_TEST_DATABASE_URL:-} ]] && command -v psql >/dev/null; then
    # Schemas left by earlier runs (t_<pid>_…, bench_…): drop them so the database stays small.
    psql "$OPSDESK_TEST_DATABASE_URL" -qAt -c "SELECT nspname FROM pg_namespace WHERE nspname ~ '^(t|bench_http|bench_floor|bench_auto|bench_mail|bench_sla)_[0-9]'" |
        while read -r s; do psql "$OPSDESK_TEST_DATABASE_URL" -q -c "DROP SCHEMA IF EXISTS \"$s\" CASCADE" >/dev/null; done
fi

echo "== cargo test (backends: sqlite${OPSDESK_TEST_DATABASE_URL:+, postgres})"
cargo test --workspace --locked

echo "== building the binary for the client tests"
cargo build --locked -p opsdesk
scripts/python-tests.sh target/debug/opsdesk
scripts/browser-tests.sh target/debug/opsdesk
