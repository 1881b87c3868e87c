#!/usr/bin/env bash
# Uses the server's Swagger UI (/docs/) in headless Chromium, driven by
# puppeteer-core (scripts/browser/try-it-out.mjs): the page renders with
# nothing fetched from outside the server, "Try it out" on POST /predict with
# the README's example shows a prediction, and an incomplete body shows a 4xx
# naming the field. Writes a screenshot of the page and of each answer.
# Usage: scripts/check-docs-browser.sh BASE_URL [SCREENSHOT]
# Needs node, npm and Debian's chromium (CHROMIUM overrides its path);
# installs scripts/browser's locked dependencies on first use (no browser
# download: puppeteer-core drives the system Chromium).
set -euo pipefail
url=${1:?usage: scripts/check-docs-browser.sh BASE_URL [SCREENSHOT]}
shot=${2:-target/docs-check/docs.png}
dir=$(cd "$(dirname "$0")/browser" && pwd)
command -v node >/dev/null || { echo "node not found: apt-get install nodejs npm" >&2; exit 2; }
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 2; }
[ -x "$browser" ] || { echo "CHROMIUM=$browser: not an executable" >&2; exit 2; }
# npm ci again when the lockfile changed since the last install.
if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"; then
  command -v npm >/dev/null || { echo "npm not found: apt-get install npm" >&2; exit 2; }
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"
fi
CHROMIUM=$browser node "$dir/try-it-out.mjs" "$url" "$shot"
