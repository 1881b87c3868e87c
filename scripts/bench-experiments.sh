#!/usr/bin/env bash
# Serving throughput and latency with each online-experiment policy on,
# against the plain server and the bare-handler ceiling
# (../shared/bench/serve-ceiling) in the same run, alternating, same wrk
# settings (c=32, 2 threads), so the ratios hold on a noisy machine.
# Every request names another known customer (1,000 ids from the raw files,
# in turn), so a split really splits. The release server runs as shipped
# (metrics, prediction log, file watch), one server per case:
#   plain, no log   no routing file, --no-prediction-log
#   plain           no routing file, prediction log on (the default)
#   ab              50/50 sticky split over production and candidate
#   shadow 10%      production answers, candidate scores 10 % off the path
#   shadow 100%     ... every request
#   bandit          Thompson sampling over the two (no feedback: every
#                   request samples the two Beta posteriors)
# The default pipeline's registry has production and candidate (run `make
# pipeline` first); both may point at the same version, which measures the
# policies' own cost. Needs wrk (Debian package).
#   scripts/bench-experiments.sh            # 10 s per run, 2 runs
#   SECONDS_PER_RUN=5 RUNS=1 scripts/bench-experiments.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${SECONDS_PER_RUN:-10}
runs=${RUNS:-2}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
[ -s models/registry/index.json ] && [ -s data/online/snapshot.bin ] \
  || { echo "no registry or snapshot: run make pipeline first" >&2; exit 1; }
jq -e '.aliases.candidate and .aliases.production' models/registry/index.json >/dev/null \
  || { echo "the registry needs production and candidate aliases" >&2; exit 1; }
ceiling_dir=${CEILING:-$root/../shared/bench/serve-ceiling}
cargo build --quiet --release --manifest-path "$ceiling_dir/Cargo.toml" --target-dir target/serve-ceiling
cargo build --quiet --release --locked -p serve
work=$(mktemp -d)
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"

# 1,000 known customers, and a wrk script that names the next one in each
# request (the README's purchase otherwise).
python3 - "$work" <<'PY'
import glob, io, json, sys
ids = []
for path in sorted(glob.glob("data/raw/*.csv")):
    for line in io.open(path, encoding="cp1252").readlines()[1:]:
        ids.append(line.split(";", 1)[0])
ids = sorted(set(ids))[:1000]
body = json.load(open("examples/predict.json"))
lua = ["wrk.method = \"POST\"", "wrk.headers[\"Content-Type\"] = \"application/json\"",
       "local ids = {" + ",".join(f'"{i}"' for i in ids) + "}", "local n = 0",
       "request = function()", "  n = n % #ids + 1",
       "  local body = [[" + json.dumps(dict(body, id="@ID@")) + "]]",
       "  return wrk.format(nil, nil, nil, (body:gsub(\"@ID@\", ids[n])))", "end"]
open(sys.argv[1] + "/customers.lua", "w").write("\n".join(lua) + "\n")
PY

routing() { # name, policy
  printf 'experiment: bench\nvariants:\n  - {name: production, model: production}\n  - {name: candidate, model: candidate}\npolicy: %s\n' "$2" > "$work/$1.yaml"
}
routing ab '{kind: ab, weights: {production: 1, candidate: 1}}'
routing shadow10 '{kind: shadow, variants: [candidate], fraction: 0.1}'
routing shadow100 '{kind: shadow, variants: [candidate], fraction: 1.0}'
routing bandit '{kind: bandit, algorithm: thompson}'

serve() { # name, port, extra args...
  local name=$1 port=$2
  shift 2
  RUST_LOG=${SERVE_LOG:-info} REVSPEND_ALLOW_DEVELOPMENT_KEY=true start "$name" "$port" target/release/serve \
    --bind "127.0.0.1:$port" --registry models/registry --snapshot data/online/snapshot.bin --workers 2 \
    --prediction-log "$work/logs-$name" --state-dir "$work/state-$name" "$@"
}
measure() { # label, port, pid
  local out rps p50 p99 non2xx
  out=$(wrk -t2 -c32 -d"${secs}s" --latency -s "$work/customers.lua" "http://127.0.0.1:$2/predict")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  printf '%-22s %10s req/s  p50 %8s  p99 %8s  RSS %4s MiB  non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "$(rss "$3")" "${non2xx:-0}"
}

start ceiling 18190 target/serve-ceiling/release/serve-ceiling 127.0.0.1:18190
declare -A pid_of
pid_of[ceiling]=${pids[-1]}
serve nolog 18191 --no-prediction-log; pid_of[nolog]=${pids[-1]}
serve plain 18192; pid_of[plain]=${pids[-1]}
serve ab 18193 --routing "$work/ab.yaml"; pid_of[ab]=${pids[-1]}
serve shadow10 18194 --routing "$work/shadow10.yaml"; pid_of[shadow10]=${pids[-1]}
serve shadow100 18195 --routing "$work/shadow100.yaml"; pid_of[shadow100]=${pids[-1]}
serve bandit 18196 --routing "$work/bandit.yaml"; pid_of[bandit]=${pids[-1]}
echo "$(nproc) cores, wrk -t2 -c32, ${secs} s per run, $runs runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for run in $(seq 1 "$runs"); do
  echo "-- run $run"
  measure "ceiling" 18190 "${pid_of[ceiling]}"
  measure "plain, no log" 18191 "${pid_of[nolog]}"
  measure "plain" 18192 "${pid_of[plain]}"
  measure "ab 50/50" 18193 "${pid_of[ab]}"
  measure "shadow 10%" 18194 "${pid_of[shadow10]}"
  measure "shadow 100%" 18195 "${pid_of[shadow100]}"
  measure "bandit (thompson)" 18196 "${pid_of[bandit]}"
done
echo "-- what the servers counted (the log's drops, the shadow queue's drops)"
for name in plain ab shadow10 shadow100 bandit; do
  port=$(( 18192 + $(printf '%s\n' plain ab shadow10 shadow100 bandit | grep -n "^$name$" | cut -d: -f1) - 1 ))
  curl -fs "http://127.0.0.1:$port/metrics" \
    | awk -v n="$name" '/^revspend_(prediction_log_dropped|shadow_dropped|shadow_scored)_total / { printf "%-10s %s %s\n", n, $1, $2 }'
done
