#!/usr/bin/env bash
# A simulated online experiment on real runs (issue 16), in the directory
# scripts/demo-gate.sh leaves with KEEP (its registry holds v0001, a
# crippled logistic model, and v0002, the default boosted trees):
#   1. the server starts with a Thompson-sampling bandit over the two
#      versions (config/routing.yaml written here, seeded), a prediction log
#      and a bandit state directory;
#   2. scripts/simulate-experiment.py replays the last 6,000 raw purchases
#      in batches and sends each one's outcome (the label rule) back as
#      feedback one batch later;
#   3. `registry experiment-report` reads the log and the bandit state.
# Fails unless the allocation moved to the better model: the boosted trees
# get a larger share of the last tenth of the requests than of the first,
# most of the last tenth, and the bandit's P(best) for them is above 0.95;
# and unless the server, stopped with SIGTERM, left every prediction in a
# closed log file.
#   KEEP=/tmp/gate scripts/demo-gate.sh && scripts/demo-experiment.sh /tmp/gate
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: scripts/demo-experiment.sh DIR (a KEEP directory of scripts/demo-gate.sh)}
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
cd "$work"
[ -s models/registry/index.json ] && [ -s data/online/snapshot.bin ] \
  || { echo "demo-experiment: $work has no registry or snapshot: run KEEP=$work scripts/demo-gate.sh" >&2; exit 1; }
fail() { echo "demo-experiment FAILED: $*" >&2; exit 1; }

mkdir -p config
cat > config/routing.yaml <<'YAML'
experiment: demo-bandit
variants:
  - {name: logistic, model: v0001}
  - {name: gbm, model: v0002}
policy: {kind: bandit, algorithm: thompson, seed: 7}
YAML
rm -rf logs
RUST_LOG=warn "$bin/serve" --bind 127.0.0.1:0 --registry models/registry --routing config/routing.yaml \
  --snapshot data/online/snapshot.bin --allow-development-key >serve.out 2>serve.err &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
url=
for _ in $(seq 1 200); do
  url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' serve.out | head -n1 || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat serve.err >&2; fail "the server exited"; }
  sleep 0.1
done
[ -n "$url" ] || fail "the server did not report its address"
curl -fsS "$url/experiment" | jq -c '{experiment, policy, variants: [.variants[] | {name, model_version}]}'

echo
echo "== replaying 6000 purchases with late feedback"
python3 "$root/scripts/simulate-experiment.py" --url "$url" --raw 'raw/*.csv' --rows 6000

kill -TERM "$pid"
wait "$pid" || fail "the server did not exit 0 on SIGTERM"
trap - EXIT
if find logs/predictions -name '*.partial' | grep -q .; then fail "a log file was left open"; fi

echo
echo "== registry experiment-report"
"$bin/registry" experiment-report --log logs/predictions \
  --bandit-state logs/state/bandit-demo-bandit.json --json report.json
# Every prediction and every feedback is in the log, and nothing else.
jq -e '([.variants[].requests] | add) == 6000 and ([.variants[].feedback.count] | add) == 6000
       and .reading.bad_lines == 0' report.json >/dev/null \
  || fail "the log does not hold the 6000 predictions and their feedback"
share() { jq -r --argjson s "$1" '.allocation[] | select(.slice == $s) | .shares[] | select(.variant == "gbm") | .share' report.json; }
first=$(share 1)
last=$(share 10)
p_best=$(jq -r '.bandit.arms[] | select(.variant == "gbm") | .p_best' report.json)
echo "boosted trees: ${first} of the first tenth, ${last} of the last; P(best) ${p_best}"
awk -v f="$first" -v l="$last" -v p="$p_best" 'BEGIN { exit !(l > f && l > 0.8 && p > 0.95) }' \
  || fail "the allocation did not move to the better model"
echo "demo-experiment: the bandit moved to the boosted trees"
