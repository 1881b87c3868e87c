#!/usr/bin/env bash
# The monitor on generated drift (issue 17), in a scratch directory. Seven
# months are generated from config/scenarios/<scenario>.yaml; the training
# period ends on 2020-06-30 (build_features.split.until), so July is the
# live traffic the monitor compares with the training reference.
#
#   scripts/demo-monitor.sh clean   # July as the first six months: no alarm
#   scripts/demo-monitor.sh drift   # a limit shock and a new merchant mix
#                                   # from 2020-06-29 (see the scenario file)
#
# The drift run also has a worse model in production when July comes: the
# default search registers v0001 (production), a naive-Bayes model is
# registered as v0002 and promoted by hand. Then:
#   1. `monitor` (a dry run) names the drifted features and the alarms that
#      fire, and what it would do;
#   2. `monitor --act` does it: production goes back to v0001 (the alias log
#      names the alarm), and a retrain request up to July's last day is
#      written;
#   3. build-features honours the request (the training period now ends on
#      2020-07-28), train registers v0003 trained on July too, and evaluate
#      scores it;
#   4. the registry log, the action log and the report show all of it.
# Fails (non-zero) when an expected alarm, drifted feature or action is
# missing, or an untouched feature is flagged, so scripts/e2e.sh uses it as a
# check.   KEEP=/tmp/mon scripts/demo-monitor.sh drift   keeps the directory.
set -euo pipefail
scenario=${1:?usage: $0 clean|drift}
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
fail() { echo "demo-monitor ($scenario): $*" >&2; exit 1; }
# params.yaml with the scenario's generate section, the raw files here and
# the training period ending on 2020-06-30.
python3 - "$root/params.yaml" "$root/config/scenarios/$scenario.yaml" > params.yaml <<'PY'
import re, sys
params, scenario = (open(p).read() for p in sys.argv[1:3])
section = scenario[scenario.index("generate:"):]
params = re.sub(r"(?ms)^generate:\n.*?(?=^\S)", lambda _: section.rstrip() + "\n\n", params, count=1)
params = re.sub(r"(?m)^  raw_glob: .*$", "  raw_glob: raw/*.csv", params)
params = re.sub(r"(?m)^    until: null$", '    until: "2020-06-30"', params)
sys.stdout.write(params)
PY
grep -q 'until: "2020-06-30"' params.yaml || fail "params.yaml: no build_features.split.until line to change"
sed 's|^  algorithms: \[.*\]|  algorithms: [naive_bayes]|' params.yaml > worse.yaml
mkdir -p config
printf '{\n  "version": 1,\n  "request": null\n}\n' > config/retrain.json
cp "$root/config/alarms.yaml" config/alarms.yaml
export RUST_LOG=${RUST_LOG:-warn}
export REVSPEND_STAGE_LOG=$work/logs/stage-runs.jsonl
flags=(--quality-suite "$root/config/quality.yaml" --retrain-request config/retrain.json)
monitor() {
  "$bin/monitor" --params params.yaml --alarms config/alarms.yaml \
    --retrain-request config/retrain.json --stage-runs none --prediction-log none "$@"
}
echo "== generate ($scenario), build features (training period to 2020-06-30), train"
"$bin/generate" --params params.yaml --out-dir raw
"$bin/build-features" --params params.yaml "${flags[@]}" >/dev/null
jq -r '"training period to \(.training_period.until) (\(.training_period.source)); rows after it: \(.training_period.live_rows)"' reports/build_features.json
"$bin/train" --params params.yaml >/dev/null
"$bin/evaluate" --params params.yaml >/dev/null
if [ "$scenario" = drift ]; then
  echo "== a worse model (naive Bayes) is registered and promoted by hand"
  "$bin/train" --params worse.yaml >/dev/null
  "$bin/registry" promote v0002 >/dev/null
fi

echo
echo "== monitor (dry run)"
monitor
report=reports/monitor.json
jq -r '.windows[] | "window \(.window) (\(.rows) rows): drifted \(.drifted_features | length) of \([.features[] | select(.test != null)] | length): \(.drifted_features | join(", "))"' $report
jq -r '.windows[-1] | "  prediction PSI \(.prediction.psi * 1000 | round / 1000), label rate \(.label_rate * 1000 | round / 10) % (test split \(.reference_label_rate * 1000 | round / 10) %), estimated F1 \(.metrics["estimated.f1"] * 1000 | round / 1000), realised F1 \(.metrics["realised.f1"] * 1000 | round / 1000)"' $report
jq -r '.alarms.findings[] | "  alarm \(.alarm) [\(.severity), \(.action)]: \(.message)"' $report
jq -r '.actions.actions[] | "  \(.outcome): \(.action) (\(.alarm)): \(.would // .detail // "")"' $report
drifted=$(jq -r '.windows[-1].drifted_features | join(" ")' $report)
alarms=$(jq -r '[.alarms.findings[].alarm] | unique | join(" ")' $report)
if [ "$scenario" = clean ]; then
  [ -z "$alarms" ] || fail "alarms fired on the clean window: $alarms"
  echo "clean: no alarm"
  exit 0
fi

# What the scenario moves, and what it must leave alone.
for f in prev_utilisation non_vital_share_30d; do
  [[ " $drifted " == *" $f "* ]] || fail "$f is not flagged as drifted ($drifted)"
done
for f in idade sexo_m account_age_months abroad weekday is_weekend; do
  [[ " $drifted " != *" $f "* ]] || fail "untouched feature $f is flagged as drifted"
done
for a in feature_drift_share feature_psi previous_version_better; do
  [[ " $alarms " == *" $a "* ]] || fail "alarm $a did not fire ($alarms)"
done
[ "$("$bin/registry" show production | jq -r .version)" = v0002 ] || fail "a dry run moved production"
jq -e '.request == null' config/retrain.json >/dev/null || fail "a dry run wrote a retrain request"

echo
echo "== monitor --act"
monitor --act
jq -r '.actions.actions[] | "  \(.outcome): \(.action) (\(.alarm)): \(.would // .detail // "")"' $report
[ "$("$bin/registry" show production | jq -r .version)" = v0001 ] || fail "production was not rolled back to v0001"
jq -e '.request.until == "2020-07-28"' config/retrain.json >/dev/null || fail "no retrain request up to 2020-07-28"
echo "  retrain request: $(jq -c .request config/retrain.json)"
echo "== monitor --act again: the cool-down stops a second action on the same window"
monitor --act
jq -e '[.actions.actions[] | select(.outcome == "done")] | length == 0' $report >/dev/null \
  || fail "an alarm acted twice on the same window"

echo
echo "== the pipeline honours the request: build-features, train, evaluate"
"$bin/build-features" --params params.yaml "${flags[@]}" >/dev/null
jq -r '"training period to \(.training_period.until) (\(.training_period.source), alarm \(.training_period.request.alarm) on \(.training_period.request.window))"' reports/build_features.json
jq -e '.training_period.until == "2020-07-28" and .training_period.source == "retrain_request"' reports/build_features.json >/dev/null \
  || fail "build-features did not extend the training period to the request"
"$bin/train" --params params.yaml >/dev/null
"$bin/evaluate" --params params.yaml >/dev/null
[ "$("$bin/registry" show candidate | jq -r .version)" = v0003 ] || fail "the retrain registered no v0003"
jq -r '"evaluate: \(.decision) (\(.reason))"' reports/promotion.json
echo
echo "== registry log"
"$bin/registry" log
echo
echo "== monitor action log"
jq -c '{time, alarm, window, action, outcome, detail}' models/registry/monitor-actions.jsonl
