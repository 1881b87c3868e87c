#!/usr/bin/env bash
# Opens the evaluation page (reports/index.html) in headless Chromium, as a
# reader would, and checks that it is self-contained and renders whole:
#  - no reference leaves the file (no http(s):, protocol-relative or file
#    URL in src/href), so it opens offline;
#  - every image decodes: a copy of the page with a probe script appended
#    counts the images whose pixels loaded (the page itself has no script);
#  - a screenshot of the page is written for a person to look at.
# Usage: scripts/check-report-page.sh [PAGE] [SCREENSHOT]
# Needs Debian's `chromium` (apt-get install chromium).
set -euo pipefail
page=${1:-reports/index.html}
shot=${2:-target/report-check/index.png}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 2; }
[ -s "$page" ] || { echo "$page: missing or empty (run the evaluate stage)" >&2; exit 1; }

if grep -Eo '(src|href)="(https?:|//|file:)[^"]*"' "$page" | head -5 | grep -q .; then
  echo "$page: refers outside itself:" >&2
  grep -Eo '(src|href)="(https?:|//|file:)[^"]*"' "$page" | head -5 >&2
  exit 1
fi
if grep -qi '<script' "$page"; then
  echo "$page: has a script; the page must read without JavaScript" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
       --user-data-dir="$work/profile" --virtual-time-budget=10000)
# The probe: images complete with a natural width, against all images.
sed 's|</body>|<script>addEventListener("load",()=>{const i=[...document.images];document.body.setAttribute("data-images",i.filter(x=>x.complete\&\&x.naturalWidth>0).length+"/"+i.length)})</script></body>|' \
  "$page" > "$work/probe.html"
counts=$("$browser" "${flags[@]}" --dump-dom "file://$(realpath "$work/probe.html")" 2>/dev/null |
  grep -o 'data-images="[0-9]*/[0-9]*"' | grep -o '[0-9]*/[0-9]*' || true)
loaded=${counts%/*}
total=${counts#*/}
if [ -z "$counts" ] || [ "$total" -eq 0 ] || [ "$loaded" != "$total" ]; then
  echo "$page: ${counts:-no} images rendered (loaded/total)" >&2
  exit 1
fi

mkdir -p "$(dirname "$shot")"
"$browser" "${flags[@]}" --window-size=1280,2600 --screenshot="$(realpath -m "$shot")" \
  "file://$(realpath "$page")" 2>/dev/null
[ -s "$shot" ] || { echo "no screenshot written to $shot" >&2; exit 1; }
echo "$page: self-contained, $loaded/$total images rendered; screenshot: $shot"
