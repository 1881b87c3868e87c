#!/usr/bin/env bash
# Side by side with the Python peer on the same master table: generate ROWS
# rows, build the features once, then alternate RUNS times between
#   - revspend: `train fit-once --algorithm gbm` (the default configuration,
#     on the whole train split; holdout scored after isotonic calibration),
#   - the peer: scikit-learn's HistGradientBoostingClassifier with its
#     defaults and early stopping (scripts/peer/hgb.py),
# both on the same train split and the same holdout rows, each under
# /usr/bin/time -v. The peer runs from a pinned virtual environment
# (scripts/peer/requirements.txt, created in .venv-peer on first use).
#   scripts/bench-peer.sh 1000000
#   RUNS=5 KEEP=/tmp/bench1m scripts/bench-peer.sh 1000000   # keep the data
set -euo pipefail
rows=${1:?usage: $0 ROWS}
runs=${RUNS:-3}
customers=${CUSTOMERS:-$(( rows / 33 > 100 ? rows / 33 : 100 ))}
root=$(cd "$(dirname "$0")/.." && pwd)
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
if [ ! -f data/features.json ]; then
  sed 's|^  raw_glob: .*|  raw_glob: raw/*.csv|' "$root/params.yaml" > params.yaml
  "$bin/generate" --params params.yaml --out-dir raw --rows "$rows" --customers "$customers" 2>/dev/null
  "$bin/build-features" --params params.yaml --quality-suite "$root/config/quality.yaml" >/dev/null 2>&1
fi
echo "input: $rows rows, $customers customers, $(nproc) cores; $runs alternating runs each"
peak() { awk '/Maximum resident set size/ {printf "%d MiB", $NF / 1024}' "$1"; }
for i in $(seq "$runs"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$bin/train" fit-once --algorithm gbm --params params.yaml > ours.json 2> ours.time \
    || { cat ours.time; exit 1; }
  jq -r --arg rss "$(peak ours.time)" --arg load "$load" '
    "revspend run \($ARGS.positional[0]): fit \(.fit_seconds * 1000 | round / 1000) s, \(.rounds) rounds, holdout PR-AUC \(.holdout.pr_auc * 10000 | round / 10000), ROC-AUC \(.holdout.roc_auc * 10000 | round / 10000), peak RSS \($rss), load \($load)"
  ' ours.json --args "$i"
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$venv/bin/python" "$root/scripts/peer/hgb.py" --splits data/splits --features data/features.json \
    > peer.json 2> peer.time || { cat peer.time; exit 1; }
  jq -r --arg rss "$(peak peer.time)" --arg load "$load" '
    "peer     run \($ARGS.positional[0]): fit \(.fit_seconds) s, \(.iterations) iterations, holdout PR-AUC \(.holdout.pr_auc * 10000 | round / 10000), ROC-AUC \(.holdout.roc_auc * 10000 | round / 10000), peak RSS \($rss), load \($load)"
  ' peer.json --args "$i"
done
