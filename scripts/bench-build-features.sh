#!/usr/bin/env bash
# Benchmark: generate ROWS rows, then time build-features on them.
#   scripts/bench-build-features.sh 1000000
#   FILES=10 scripts/bench-build-features.sh 10000000
# Uses the dev build DVC runs (core and build-features are compiled at
# opt-level 3 there); PROFILE=release for a release build.
# Prints wall time, rows/s and peak RSS (from /usr/bin/time -v).
set -euo pipefail
rows=${1:?usage: $0 ROWS}
customers=${CUSTOMERS:-$(( rows / 33 > 100 ? rows / 33 : 100 ))}
profile=${PROFILE:-dev}
files=${FILES:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$profile" = release ]; then flag=--release; dir=release; else flag=; dir=debug; fi
# --workspace: building single packages resolves features differently and
# would compile a second copy of polars.
cargo build --quiet --locked $flag --workspace --bins --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's|^  raw_glob: .*|  raw_glob: raw/*.csv|' "$root/params.yaml" > "$work/params.yaml"
cd "$work"
"$bin/generate" --params params.yaml --out-dir raw --rows "$rows" --customers "$customers" --files "$files" 2>/dev/null
echo "input: $rows rows, $customers customers, $(du -sh raw | cut -f1) of CSV ($profile build)"
/usr/bin/time -v "$bin/build-features" --params params.yaml --quality-suite "$root/config/quality.yaml" \
  2> time.txt >/dev/null || { cat time.txt; exit 1; }
wall=$(grep 'Elapsed (wall clock)' time.txt | awk '{print $NF}')
rss=$(grep 'Maximum resident set size' time.txt | awk '{print $NF}')
secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
awk -v r="$rows" -v s="$secs" -v m="$rss" \
  'BEGIN { printf "build-features: %.2f s, %.0f rows/s, peak RSS %.0f MiB\n", s, r/s, m/1024 }'
