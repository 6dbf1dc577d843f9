#!/usr/bin/env bash
# The web interface's end-to-end tests in a real browser (tests/browser/run.mjs):
# Playwright (playwright-core from npm, pinned in tests/browser/package-lock.json) driving
# Debian's Chromium. Never downloads a browser.
#
#   scripts/browser-tests.sh PATH_TO_OPSDESK_BINARY
#
# Installs what it needs on a fresh machine: Debian's `chromium` package (as root, with apt)
# when /usr/bin/chromium is missing, and the npm packages (again only when the lock file
# changes). Screenshots of the main pages land in test-artifacts/screenshots.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 PATH_TO_OPSDESK_BINARY" >&2; exit 2; }
binary="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

chromium=${OPSDESK_CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing Debian's chromium"
        apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    else
        echo "error: $chromium is missing; install Debian's chromium package (apt-get install chromium) or set OPSDESK_CHROMIUM" >&2
        exit 1
    fi
fi

dir=tests/browser
stamp=$dir/node_modules/.opsdesk-lock.sha256
wanted="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [[ $(cat "$stamp" 2>/dev/null || true) != "$wanted" ]]; then
    echo "== installing $dir/package-lock.json"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$wanted" >"$stamp"
fi

echo "== browser tests (Chromium, playwright-core)"
OPSDESK_CHROMIUM="$chromium" node "$dir/run.mjs" "$binary" "$root/test-artifacts/screenshots"
