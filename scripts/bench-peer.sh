#!/usr/bin/env bash
# Side by side with the Python peer on the same master table (issue 13):
# generate ROWS rows once, then alternate RUNS times between
#   - revspend's pipeline, from scratch: build-features (every layer rebuilt),
#     train (the whole stage: successive-halving search, refit, calibration,
#     registration) and evaluate (holdout scoring, plots), each under
#     /usr/bin/time -v;
#   - the peer: scikit-learn's HistGradientBoostingClassifier with its
#     defaults and early stopping (scripts/peer/hgb.py), fitted on the train
#     split revspend's build-features wrote and scored on the same holdout rows.
# Prints per run: each stage's wall time and peak RSS, the pipeline's wall
# time and peak RSS (the largest of its stages: they run one after another),
# the holdout PR-AUC / ROC-AUC / ECE of the calibrated model, the peer's fit
# time, PR-AUC and peak RSS, and the load average before each.
# The peer runs from a pinned virtual environment (scripts/peer/requirements.txt,
# created in .venv-peer on first use).
#   scripts/bench-peer.sh 1000000
#   RUNS=5 KEEP=/tmp/bench1m scripts/bench-peer.sh 1000000   # keep the data
#   PARAMS=my-params.yaml scripts/bench-peer.sh 1000000      # other params
set -euo pipefail
rows=${1:?usage: $0 ROWS}
runs=${RUNS:-3}
customers=${CUSTOMERS:-$(( rows / 33 > 100 ? rows / 33 : 100 ))}
root=$(cd "$(dirname "$0")/.." && pwd)
params=${PARAMS:-$root/params.yaml}
venv="$root/.venv-peer"
if [ ! -x "$venv/bin/python" ] || [ "$root/scripts/peer/requirements.txt" -nt "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/peer/requirements.txt"
  touch "$venv/bin/python"
fi
cargo build --quiet --locked --workspace --bins --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
if [ -n "${KEEP:-}" ]; then
  work=$KEEP
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"
sed 's|^  raw_glob: .*|  raw_glob: raw/*.csv|' "$params" > params.yaml
if [ ! -d raw ]; then
  "$bin/generate" --params params.yaml --out-dir raw --rows "$rows" --customers "$customers" --files "${FILES:-6}" 2>/dev/null
fi
echo "input: $rows rows, $customers customers, $(nproc) cores; $runs alternating runs each"
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$1"; }
rss() { awk '/Maximum resident set size/ { print int($NF / 1024) }' "$1"; }
stage() { # name, command...
  local name=$1
  shift
  /usr/bin/time -v "$@" > "$name.out" 2> "$name.time" || { tail -20 "$name.time"; exit 1; }
}
for i in $(seq "$runs"); do
  rm -rf data models reports
  load=$(cut -d' ' -f1 /proc/loadavg)
  stage build-features "$bin/build-features" --params params.yaml --quality-suite "$root/config/quality.yaml"
  stage train "$bin/train" --params params.yaml
  stage evaluate "$bin/evaluate" --params params.yaml
  total=$(awk -v a="$(wall build-features.time)" -v b="$(wall train.time)" -v c="$(wall evaluate.time)" 'BEGIN { printf "%.2f", a + b + c }')
  peak=$(printf '%s\n' "$(rss build-features.time)" "$(rss train.time)" "$(rss evaluate.time)" | sort -n | tail -1)
  echo "revspend run $i (load $load): build-features $(wall build-features.time) s / $(rss build-features.time) MiB," \
    "train $(wall train.time) s / $(rss train.time) MiB, evaluate $(wall evaluate.time) s / $(rss evaluate.time) MiB;" \
    "pipeline $total s, peak $peak MiB"
  jq -r '"  model \(.model_version) (\(.calibration)): holdout PR-AUC \(.model.pr_auc * 10000 | round / 10000), ROC-AUC \(.model.roc_auc * 10000 | round / 10000), ECE \(.model.ece * 10000 | round / 10000) on \(.rows) rows"' reports/metrics.json
  jq -r '"  search: \(.cv.candidates) candidates, rungs \([.cv.rungs[] | "\(.candidates)@\(.rows)"] | join(" → ")); chosen \(.hyperparameters | tostring), \(.cv.final_rounds // "-") rounds"' reports/train.json
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$venv/bin/python" "$root/scripts/peer/hgb.py" --splits data/splits --features data/features.json \
    > peer.json 2> peer.time || { cat peer.time; exit 1; }
  jq -r --arg rss "$(rss peer.time)" --arg load "$load" '
    "peer     run \($ARGS.positional[0]) (load \($load)): read \(.read_seconds) s, fit \(.fit_seconds) s, \(.iterations) iterations, holdout PR-AUC \(.holdout.pr_auc * 10000 | round / 10000), ROC-AUC \(.holdout.roc_auc * 10000 | round / 10000), peak RSS \($rss) MiB"
  ' peer.json --args "$i"
done
