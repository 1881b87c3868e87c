#!/usr/bin/env bash
# Throughput and latency of the release server against the bare-handler
# ceiling (../shared/bench/serve-ceiling: actix-web parsing the same JSON,
# no features, no model, no logging, no metrics), measured in one run with
# the same wrk settings, alternating, so the ratio holds on a noisy machine.
# Prints req/s, p50/p99 latency and peak RSS per case:
#   - single predictions of a known and of a cold-start customer at
#     concurrency 32 and 256 (ceiling alongside);
#   - batches of 1,000 rows on /predict/batch at concurrency 4.
# The server runs as shipped (RUST_LOG=info, or SERVE_LOG; metrics, the
# prediction log and alias following on)
# over the default pipeline's registry and snapshot (run `make pipeline`
# first). Needs wrk (Debian package).
#   scripts/bench-serve.sh            # 10 s per run, 2 runs per case
#   SECONDS_PER_RUN=5 RUNS=1 scripts/bench-serve.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECONDS_PER_RUN:-10}
runs=${RUNS:-2}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
[ -s models/registry/index.json ] && [ -s data/online/snapshot.bin ] \
  || { echo "no registry or snapshot: run make pipeline first" >&2; exit 1; }
ceiling_dir=${CEILING:-$root/../shared/bench/serve-ceiling}
cargo build --quiet --release --manifest-path "$ceiling_dir/Cargo.toml" --target-dir target/serve-ceiling
cargo build --quiet --release --locked -p serve
work=$(mktemp -d)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"

# Request bodies: the README's known customer, the same purchase by an
# unknown one, and a batch of 1,000 alternating rows.
cp examples/predict.json "$work/known.json"
sed 's/"id": "[0-9]*"/"id": "10000000001"/' examples/predict.json > "$work/cold.json"
{ printf '['; for i in $(seq 1 500); do [ "$i" -gt 1 ] && printf ','; cat "$work/known.json"; printf ','; cat "$work/cold.json"; done; printf ']'; } \
  | tr -d '\n' > "$work/batch.json"
for body in known cold batch; do
  cat > "$work/$body.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/$body.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA
done

measure() { # label, port, path, lua, connections, pid
  local out
  out=$(wrk -t2 -c"$5" -d"${secs}s" --latency -s "$4" "http://127.0.0.1:$2$3")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  printf '%-34s %10s req/s  p50 %8s  p99 %8s  RSS %4s MiB  non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "$(rss "$6")" "${non2xx:-0}"
}

start ceiling 18090 target/serve-ceiling/release/serve-ceiling 127.0.0.1:18090
ceiling_pid=${pids[-1]}
RUST_LOG=${SERVE_LOG:-info} REVSPEND_ALLOW_DEVELOPMENT_KEY=true start serve 18091 target/release/serve \
  --bind 127.0.0.1:18091 --registry models/registry --snapshot data/online/snapshot.bin --workers 2 \
  --prediction-log "$work/logs" --state-dir "$work/state"
serve_pid=${pids[-1]}
echo "$(nproc) cores, wrk -t2, ${secs} s per run, $runs runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$runs"); do
  echo "-- run $run"
  for c in 32 256; do
    measure "ceiling /predict c=$c" 18090 /predict "$work/known.lua" "$c" "$ceiling_pid"
    measure "serve /predict known c=$c" 18091 /predict "$work/known.lua" "$c" "$serve_pid"
    measure "serve /predict cold start c=$c" 18091 /predict "$work/cold.lua" "$c" "$serve_pid"
  done
  measure "serve /predict/batch 1000 rows c=4" 18091 /predict/batch "$work/batch.lua" 4 "$serve_pid"
done
