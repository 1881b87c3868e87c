#!/usr/bin/env bash
# Benchmark: generate ROWS rows, build the features, then time ONE fit of the
# default GBM configuration (the first value of each `train.search.gbm` list)
# on the whole train split, with `train fit-once` under /usr/bin/time -v.
#   scripts/bench-train.sh 1000000
#   THREADS=1 ALGORITHM=forest scripts/bench-train.sh 100000
#   KEEP=/tmp/bench1m scripts/bench-train.sh 1000000   # keep the data there,
#     e.g. for `target/debug/examples/bench_round --data /tmp/bench1m`
# Prints fit seconds, rows/s, peak RSS and holdout PR-AUC / ROC-AUC / ECE
# (calibrated by isotonic regression on the calibration split).
# Uses the dev build, which compiles core, train and every dependency at
# opt-level 3 (see Cargo.toml), like `dvc repro`.
set -euo pipefail
rows=${1:?usage: $0 ROWS}
customers=${CUSTOMERS:-$(( rows / 33 > 100 ? rows / 33 : 100 ))}
algorithm=${ALGORITHM:-gbm}
threads=${THREADS:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --locked --workspace --bins --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP"
  work=$(cd "$KEEP" && pwd)
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
sed 's|^  raw_glob: .*|  raw_glob: raw/*.csv|' "$root/params.yaml" > "$work/params.yaml"
cd "$work"
"$bin/generate" --params params.yaml --out-dir raw --rows "$rows" --customers "$customers" 2>/dev/null
"$bin/build-features" --params params.yaml --quality-suite "$root/config/quality.yaml" >/dev/null 2>&1
echo "input: $rows rows, $customers customers; $algorithm, $threads threads, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
/usr/bin/time -v "$bin/train" fit-once --algorithm "$algorithm" --params params.yaml --threads "$threads" \
  > fit.json 2> time.txt || { cat time.txt; exit 1; }
rss=$(grep 'Maximum resident set size' time.txt | awk '{print $NF}')
jq -r --arg rss "$rss" '
  "train split: \(.train_rows) rows x \(.features) features; default config \(.hyperparameters | tostring)",
  "fit: \(.fit_seconds * 1000 | round / 1000) s, \(.rows_per_second | round) rows/s, \(.rounds // "-") rounds, peak RSS \($rss | tonumber / 1024 | round) MiB (whole process)",
  "holdout (\(.calibration) calibration): PR-AUC \(.holdout.pr_auc * 10000 | round / 10000), ROC-AUC \(.holdout.roc_auc * 10000 | round / 10000), Brier \(.holdout.brier * 100000 | round / 100000), ECE \(.holdout.ece * 10000 | round / 10000) (before calibration \(.holdout_uncalibrated.ece * 10000 | round / 10000))"
' fit.json
