#!/usr/bin/env bash
# What the live drift gauges cost: the release server with the gauges on
# (the training profile) and off (--no-drift), with the prediction log on
# (the default: the log's writer thread bins the features) and off
# (--no-prediction-log: a thread bins for the gauges alone), all four
# servers up at once and measured in turn in each run (the order reversed
# every other run), so the ratios hold on a noisy machine. Prints per case
# req/s, p50/p99 latency, peak RSS and the server's CPU seconds per 1,000
# predictions (the difference of process_cpu_seconds_total between two
# scrapes), then the on/off ratios of each run.
# Needs wrk (Debian package) and the default pipeline's registry, snapshot
# and profile (`make pipeline`), or REGISTRY, SNAPSHOT and PROFILE set.
#   scripts/bench-drift.sh                      # c=32, 10 s per run, 2 runs
#   SECONDS_PER_RUN=5 RUNS=3 CONNECTIONS=64 scripts/bench-drift.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECONDS_PER_RUN:-10}
runs=${RUNS:-2}
conns=${CONNECTIONS:-32}
registry=${REGISTRY:-models/registry}
snapshot=${SNAPSHOT:-data/online/snapshot.bin}
profile=${PROFILE:-data/profile/train.json}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
for f in "$registry/index.json" "$snapshot" "$profile"; do
  [ -s "$f" ] || { echo "$f is missing: run make pipeline first (or set REGISTRY, SNAPSHOT, PROFILE)" >&2; exit 1; }
done
cargo build --quiet --release --locked --offline -p serve
bin=${CARGO_TARGET_DIR:-target}/release/serve
work=$(mktemp -d)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"

cat > "$work/known.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$root/examples/predict.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA

# name -> port and flags
declare -A port=([log-gauges]=18191 [log-nogauges]=18192 [nolog-gauges]=18193 [nolog-nogauges]=18194)
declare -A flags=(
  [log-gauges]="--prediction-log $work/logs1 --drift-profile $profile"
  [log-nogauges]="--prediction-log $work/logs2 --no-drift"
  [nolog-gauges]="--no-prediction-log --drift-profile $profile"
  [nolog-nogauges]="--no-prediction-log --no-drift"
)
declare -A pid
for name in log-gauges log-nogauges nolog-gauges nolog-nogauges; do
  # shellcheck disable=SC2086 # flags are words
  RUST_LOG=${SERVE_LOG:-info} REVSPEND_ALLOW_DEVELOPMENT_KEY=true start "$name" "${port[$name]}" "$bin" \
    --bind "127.0.0.1:${port[$name]}" --registry "$registry" --snapshot "$snapshot" --workers 2 \
    --state-dir "$work/state-$name" ${flags[$name]}
  pid[$name]=${pids[-1]}
done
curl -fs "http://127.0.0.1:${port[log-gauges]}/metrics" | grep -q '^revspend_drift_window_seconds ' \
  || { echo "the gauges are not on" >&2; exit 1; }

scrape() { # port -> "cpu_seconds predictions"
  curl -fs "http://127.0.0.1:$1/metrics" | awk '
    $1 == "process_cpu_seconds_total" { cpu = $2 }
    $1 ~ /^revspend_predictions_total/ { n += $2 }
    END { printf "%s %d\n", cpu, n }'
}

declare -A rps_of
measure() { # name
  local name=$1 out before after
  before=$(scrape "${port[$name]}")
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$work/known.lua" "http://127.0.0.1:${port[$name]}/predict")
  after=$(scrape "${port[$name]}")
  local rps p50 p99 non2xx cpu
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  cpu=$(awk -v b="$before" -v a="$after" 'BEGIN { split(b, x, " "); split(a, y, " ");
    n = y[2] - x[2]; if (n > 0) printf "%.3f", (y[1] - x[1]) / n * 1000; else print "-" }')
  rps_of[$name]=$rps
  printf '%-16s %10s req/s  p50 %8s  p99 %8s  RSS %4s MiB  CPU %s s/1000 pred  non-2xx %s\n' \
    "$name" "$rps" "$p50" "$p99" "$(rss "${pid[$name]}")" "$cpu" "${non2xx:-0}"
}

echo "$(nproc) cores, wrk -t2 -c$conns, ${secs} s per run, $runs runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(a shared, noisy machine: compare within a run)"
for run in $(seq 1 "$runs"); do
  echo "-- run $run"
  if [ $((run % 2)) -eq 1 ]; then
    order=(log-gauges log-nogauges nolog-gauges nolog-nogauges)
  else
    order=(log-nogauges log-gauges nolog-nogauges nolog-gauges)
  fi
  for name in "${order[@]}"; do measure "$name"; done
  awk -v a="${rps_of[log-gauges]}" -v b="${rps_of[log-nogauges]}" \
      -v c="${rps_of[nolog-gauges]}" -v d="${rps_of[nolog-nogauges]}" \
    'BEGIN { printf "gauges on / off, req/s: with the log %.3f, without %.3f\n", a / b, c / d }'
done
drift=$(curl -fs "http://127.0.0.1:${port[log-gauges]}/metrics" | grep -E '^revspend_(feature_psi_max|drift_window_requests) ')
echo "gauges after the runs (one request repeated: a large PSI is expected):"
echo "$drift"
