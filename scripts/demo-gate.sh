#!/usr/bin/env bash
# The promotion gate on real runs (issue 14), in a scratch directory, on the
# default generated data with `evaluate.promotion: auto`:
#   1. a crippled model (train.algorithms: [logistic]) is the first version
#      registered, so it becomes production ("bootstrap");
#   2. the default search (boosted trees) beats it: the gate promotes it and
#      the registry's alias log says why;
#   3. the crippled model again: the gate rejects it, naming the failed
#      checks, and production does not move.
# Prints each decision's check table and the alias log at the end, and
# fails (non-zero) when a decision is not the expected one, so the e2e run
# (scripts/e2e.sh) uses it as a check.
#   scripts/demo-gate.sh            # in a temporary directory, removed after
#   KEEP=/tmp/gate scripts/demo-gate.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --quiet --locked --workspace --bins --manifest-path "$root/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
if [ -n "${KEEP:-}" ]; then
  work=$KEEP
  rm -rf "$work"
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"
sed -e 's|^  raw_glob: .*|  raw_glob: raw/*.csv|' -e 's|^  promotion: manual|  promotion: auto|' \
  "$root/params.yaml" > default.yaml
sed 's|^  algorithms: \[.*\]|  algorithms: [logistic]|' default.yaml > crippled.yaml
grep -q '^  algorithms: \[logistic\]' crippled.yaml || { echo "params.yaml: no train.algorithms line to change" >&2; exit 1; }
grep -q '^  promotion: auto' default.yaml || { echo "params.yaml: no evaluate.promotion line to change" >&2; exit 1; }
export RUST_LOG=${RUST_LOG:-warn}
"$bin/generate" --params default.yaml --out-dir raw
"$bin/build-features" --params default.yaml --quality-suite "$root/config/quality.yaml" >/dev/null
step() { # title, params, expected decision, expected production version
  echo
  echo "== $1"
  "$bin/train" --params "$2" >/dev/null
  "$bin/evaluate" --params "$2" >/dev/null
  jq -r '"decision: \(.decision) (\(.reason)); production moved: \(.promoted)"' reports/promotion.json
  jq -r '.checks[] | "  \(if .passed then "pass" else "FAIL" end)  \(.check): \(.value) \(.op) \(.limit)"' reports/promotion.json
  local decision production
  decision=$(jq -r .decision reports/promotion.json)
  production=$("$bin/registry" show production | jq -r .version)
  if [ "$decision" != "$3" ] || [ "$production" != "$4" ]; then
    echo "demo-gate: expected $3 with production $4, got $decision with production $production" >&2
    exit 1
  fi
}
step "1. crippled model (logistic only): first version, production by bootstrap" crippled.yaml keep v0001
step "2. default search: should be promoted" default.yaml promote v0002
step "3. crippled model again: should be rejected" crippled.yaml keep v0002
jq -e '[.checks[] | select(.passed | not)] | length > 0' reports/promotion.json >/dev/null \
  || { echo "demo-gate: the rejection names no failed check" >&2; exit 1; }
echo
echo "== registry log"
"$bin/registry" log
