#!/usr/bin/env bash
# Benchmark: the monitor stage on ROWS rows of feature data.
#   scripts/bench-monitor.sh 1000000
#   FILES=10 scripts/bench-monitor.sh 10000000
# Generates ROWS rows (the default 180 days), builds the feature layer, and
# times `monitor` (the dev build DVC runs; monitor, table and core are
# optimised there) scanning every month of it (`--from` the first day): each
# month read, checked against its SHA-256, scored by the production model
# of this checkout's registry (train the default pipeline first), streamed
# into the windows. Prints wall time, rows/s and peak RSS (/usr/bin/time -v),
# with build-features' on the same rows as the reference in the same run.
set -euo pipefail
rows=${1:?usage: $0 ROWS}
customers=${CUSTOMERS:-$(( rows / 33 > 100 ? rows / 33 : 100 ))}
files=${FILES:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/models/registry/index.json" ] || { echo "no registry: run the pipeline first (make pipeline)" >&2; exit 1; }
cargo build --quiet --locked --workspace --bins --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's|^  raw_glob: .*|  raw_glob: raw/*.csv|' "$root/params.yaml" > "$work/params.yaml"
cp -r "$root/models/registry" "$work/registry"
cd "$work"
export RUST_LOG=warn
"$bin/generate" --params params.yaml --out-dir raw --rows "$rows" --customers "$customers" --files "$files" 2>/dev/null
timed() { # label, command...
  local label=$1
  shift
  /usr/bin/time -v "$@" 2> time.txt >/dev/null || { cat time.txt; exit 1; }
  local wall rss secs
  wall=$(grep 'Elapsed (wall clock)' time.txt | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' time.txt | awk '{print $NF}')
  secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  awk -v l="$label" -v r="$rows" -v s="$secs" -v m="$rss" \
    'BEGIN { printf "%s: %.2f s, %.0f rows/s, peak RSS %.0f MiB\n", l, s, r/s, m/1024 }'
}
echo "input: $rows rows, $customers customers, $files files"
timed build-features "$bin/build-features" --params params.yaml --quality-suite "$root/config/quality.yaml" \
  --retrain-request "$root/config/retrain.json"
first=$(jq -r .date_min reports/build_features.json)
timed monitor "$bin/monitor" --params params.yaml --registry registry --alarms "$root/config/alarms.yaml" \
  --promotion "$root/reports/promotion.json" --prediction-log none --stage-runs none --from "$first"
jq -r '"monitor: \(.windows | length) windows, \(.rows_read) rows read, \(.partitions_read) partitions"' reports/monitor.json
