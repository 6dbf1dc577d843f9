#!/usr/bin/env bash
# Drive a real opsdesk server with zenpy (the Zendesk client from PyPI).
#
#   scripts/python-tests.sh PATH_TO_OPSDESK_BINARY [extra pytest args...]
#
# Creates or reuses a virtualenv at .venv in the repository root and installs
# tests/python/requirements.txt into it (again only when that file changes: the sha256 of the
# installed requirements is kept in .venv/.opsdesk-requirements.sha256). Then runs pytest on
# tests/python against SQLite and, when OPSDESK_TEST_DATABASE_URL is set
# (e.g. postgres://postgres@127.0.0.1:5432/test), once more against PostgreSQL.
# Exits non-zero if any run fails, including a run that collected no tests.
set -euo pipefail

usage() {
    echo "usage: $0 PATH_TO_OPSDESK_BINARY [extra pytest args...]" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
binary=$1
shift
if [[ ! -f $binary || ! -x $binary ]]; then
    echo "error: $binary is not an executable file" >&2
    usage
fi
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.venv"
requirements="$root/tests/python/requirements.txt"
stamp="$venv/.opsdesk-requirements.sha256"

if [[ ! -x $venv/bin/python ]]; then
    echo "== creating virtualenv at $venv"
    python3 -m venv "$venv"
fi

wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
installed="$(cat "$stamp" 2>/dev/null || true)"
if [[ $wanted != "$installed" ]]; then
    echo "== installing $requirements"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    printf '%s\n' "$wanted" >"$stamp"
fi

failures=()

run_suite() {
    local backend=$1
    shift
    echo "== zenpy suite against $backend"
    local rc=0
    OPSDESK_BIN="$binary" OPSDESK_BACKEND="$backend" \
        "$venv/bin/python" -m pytest tests/python -p no:cacheprovider -ra "$@" || rc=$?
    case $rc in
        0) ;;
        5)
            echo "error: pytest collected no tests against $backend" >&2
            failures+=("$backend (no tests)")
            ;;
        *) failures+=("$backend (pytest exit $rc)") ;;
    esac
}

run_suite sqlite "$@"
if [[ -n ${OPSDESK_TEST_DATABASE_URL:-} ]]; then
    run_suite postgres "$@"
else
    echo "== OPSDESK_TEST_DATABASE_URL is not set: skipping the PostgreSQL run"
fi

if [[ ${#failures[@]} -gt 0 ]]; then
    echo "python tests FAILED: ${failures[*]}" >&2
    exit 1
fi
echo "python tests passed"
