#!/usr/bin/env bash
# End-to-end check of the real pipeline and the real server:
#  1. `dvc repro` runs every stage; a second `dvc repro` has nothing to do;
#  2. changing one train param reruns only train and evaluate (then the
#     original params are restored and DVC's run cache restores the outputs);
#  3. `dvc metrics show` and `dvc plots show` work; the honest model beats
#     the prior baseline on holdout PR-AUC and its ECE is reported;
#  4. reports/index.html renders in headless Chromium with every image; the
#     gate promotes a better model and rejects a worse one on real runs
#     (scripts/check-report-page.sh, scripts/demo-gate.sh);
#  4b. a simulated online experiment on those two models: a Thompson-sampling
#     bandit fed the purchases' outcomes as late feedback moves its traffic
#     to the better one, and `registry experiment-report` shows it
#     (scripts/demo-experiment.sh);
#  5. the registry lists the versions train registered, and promote /
#     rollback / alias log work (on a copy, so the real registry is untouched);
#  6. the server starts on a free loopback port, loads the model the
#     registry's `production` alias points to, and answers one real
#     prediction (examples/predict.json, the README's curl example) and /health;
#  7. /docs in headless Chromium driven by puppeteer-core: Swagger UI renders
#     with nothing from outside the server, and "Try it out" on /predict shows
#     a prediction and a 4xx naming the field (scripts/check-docs-browser.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DVC=${DVC:-.venv/bin/dvc}
log=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  if [ -f "$log/params.yaml" ]; then cp "$log/params.yaml" params.yaml; fi
  rm -rf "$log"
}
trap cleanup EXIT

step() { printf '\n== e2e: %s\n' "$*"; }
fail() { echo "e2e FAILED: $*" >&2; exit 1; }

step "dvc repro (full pipeline)"
"$DVC" repro 2>&1 | tee "$log/repro1.txt"
for f in data/splits/train.parquet data/splits/test.parquet data/splits/holdout.parquet \
         data/splits/calibration.parquet models/model.bin \
         reports/metrics.json reports/search.csv reports/plots/roc.png reports/plots/confusion.png \
         reports/plots/reliability.png reports/plots/reliability.json models/registry/index.json; do
  [ -s "$f" ] || fail "$f was not written"
done

step "second dvc repro is a no-op"
"$DVC" repro 2>&1 | tee "$log/repro2.txt"
if grep -q "Running stage" "$log/repro2.txt"; then fail "second dvc repro reran a stage"; fi
"$DVC" status | tee "$log/status.txt"
grep -q "up to date" "$log/status.txt" || fail "dvc status is not clean"

step "one train param changed: only train and evaluate rerun"
cp params.yaml "$log/params.yaml"
sed -i 's/^  n_trees: \([0-9]*\)$/  n_trees: 7/' params.yaml
grep -q '^  n_trees: 7$' params.yaml || fail "could not edit train.n_trees"
"$DVC" repro 2>&1 | tee "$log/repro3.txt"
# Outputs are deterministic, so on a machine that already ran this step DVC
# may restore a stage's outputs from its run cache instead of running it.
grep -qE "Running stage 'train'|Stage 'train' is cached" "$log/repro3.txt" \
  || fail "train did not rerun"
grep -qE "Running stage 'evaluate'|Stage 'evaluate' is cached" "$log/repro3.txt" \
  || fail "evaluate did not rerun"
if grep -qE "Running stage '(generate|build_features)'" "$log/repro3.txt"; then
  fail "an upstream stage reran for a train param"
fi
cp "$log/params.yaml" params.yaml
"$DVC" repro 2>&1 | tee "$log/repro4.txt"
"$DVC" status | grep -q "up to date" || fail "pipeline not up to date after restoring params"

step "dvc metrics show / plots show"
"$DVC" metrics show | tee "$log/metrics.txt"
grep -q "roc_auc" "$log/metrics.txt" || fail "dvc metrics show has no roc_auc"
grep -q "ece" "$log/metrics.txt" || fail "dvc metrics show has no ece"
jq -e '.model.pr_auc > .baseline_prior.pr_auc + 0.2' reports/metrics.json >/dev/null \
  || fail "the model does not beat the prior baseline on holdout PR-AUC"
jq -e '.algorithm != "prior"' reports/train.json >/dev/null || fail "the prior baseline was selected"
[ "$(wc -l < reports/search.csv)" -gt 6 ] || fail "reports/search.csv has too few trials"
"$DVC" plots show -o "$log/plots" >/dev/null
[ -s "$log/plots/index.html" ] || fail "dvc plots show wrote no index.html"

step "the evaluation page in headless Chromium: self-contained, every image rendered"
scripts/check-report-page.sh reports/index.html "$log/index.png"

step "the promotion gate on real runs: a better model promoted, a worse one rejected"
KEEP="$log/gate" scripts/demo-gate.sh

step "an online experiment: a bandit over the two models, fed back the outcomes"
scripts/demo-experiment.sh "$log/gate"

step "monitor: the pipeline's stage ran clean; the experiment's log read back"
for f in reports/monitor.json reports/monitor.prom reports/monitor.html reports/monitor/drift.json; do
  [ -s "$f" ] || fail "$f was not written"
done
jq -e '(.windows | length) > 0 and (.alarms.findings | length) == 0' reports/monitor.json >/dev/null \
  || fail "the default data's monitor run has no window or raised an alarm"
grep -q '^revspend_monitor_psi{' reports/monitor.prom || fail "no per-feature PSI in the Prometheus file"
# The serving section on the experiment's prediction log: both variants, the
# feedback's outcomes realised.
repo=$PWD
(cd "$log/gate" && "$repo/target/debug/monitor" --params default.yaml --alarms "$repo/config/alarms.yaml" \
  --prediction-log logs/predictions --stage-runs none \
  --report monitor.json --plots-dir monitor --prometheus monitor.prom --page monitor.html)
jq -e '[.serving.windows[].groups[]] | length == 2 and all(.with_outcome > 0 and .realised != null)' \
  "$log/gate/monitor.json" >/dev/null || fail "the monitor's serving section lacks a variant or its feedback"

step "monitor on generated drift: a clean month raises no alarm; a drifted one names its features, rolls back and retrains"
scripts/demo-monitor.sh clean
scripts/demo-monitor.sh drift

step "registry: list, show, promote, rollback, alias log, experiments"
# The binaries scripts/stage built for the pipeline, serve and registry included.
cargo build --quiet --locked --workspace --bins
target/debug/registry list | tee "$log/list.txt"
grep -q "production" "$log/list.txt" || fail "no production alias in the registry"
target/debug/registry experiments | tail -n 3
production=$(target/debug/registry show production | jq -r .model_version)
[ -n "$production" ] && [ "$production" != null ] || fail "registry show production failed"
cp -r models/registry "$log/registry"
reg() { target/debug/registry --registry "$log/registry" "$@"; }
before=$(reg show production | jq -r .version)
candidate=$(reg show candidate | jq -r .version)
reg promote candidate | tee "$log/promote.txt"
[ "$(reg show production | jq -r .version)" = "$candidate" ] || fail "promote did not move production"
reg promote "$before" >/dev/null
reg rollback | tee "$log/rollback.txt"
[ "$(reg show production | jq -r .version)" = "$candidate" ] || fail "rollback did not restore the previous version"
reg log | tail -n 3 | grep -q rollback || fail "the rollback is not in the alias log"

step "serve: real server on a free loopback port, model by registry alias"
# The pipeline ran on generated data with the development key
# (build_features.allow_development_key), so the server opts into it too; it
# would refuse any other key (fingerprint check).
jq -e '.pseudonym_key == "development default"' reports/build_features.json >/dev/null \
  || [ -n "${REVSPEND_PSEUDONYM_KEY:-}" ] || fail "build-features did not record the development key"
target/debug/serve --bind 127.0.0.1:0 --registry models/registry --alias production \
  --snapshot data/online/snapshot.bin --allow-development-key >"$log/serve.out" 2>"$log/serve.err" &
server_pid=$!
url=
for _ in $(seq 1 100); do
  url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log/serve.out" | head -n1 || true)
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log/serve.err"; fail "server exited"; }
  sleep 0.1
done
[ -n "$url" ] || fail "server did not report its address"
echo "server at $url"
curl -fsS "$url/health" | tee "$log/health.json"; echo
jq -e --arg v "$production" '.model_version == $v' "$log/health.json" >/dev/null \
  || fail "the server does not serve the production version $production"
curl -fsS -X POST "$url/predict" -H 'content-type: application/json' \
  -d @examples/predict.json | tee "$log/predict.json"; echo
jq -e '(.is_revenge_spending | type == "boolean") and (.probability >= 0 and .probability <= 1)
       and (.threshold | type == "number") and (.model_version | test("^[a-z_]+-[0-9a-f]{12}$"))' \
  "$log/predict.json" >/dev/null || fail "unexpected /predict response"
code=$(curl -s -o "$log/bad.json" -w '%{http_code}' -X POST "$url/predict" \
  -H 'content-type: application/json' -d '{"id": "1"}')
[ "$code" = 400 ] || fail "incomplete request answered $code, expected 400"
cat "$log/bad.json"; echo
# A purchase dated in year 9999 reads but breaks a quality rule: 422 naming it.
code=$(sed 's/02\.07\.2020/31.12.9999/' examples/predict.json | curl -s -o "$log/rule.json" -w '%{http_code}' \
  -X POST "$url/predict" -H 'content-type: application/json' -d @-)
[ "$code" = 422 ] || fail "a purchase in year 9999 answered $code, expected 422"
jq -e '.rule == "ranges.data" and .field == "data"' "$log/rule.json" >/dev/null \
  || fail "the 422 does not name the rule: $(cat "$log/rule.json")"
cat "$log/rule.json"; echo
step "/docs in headless Chromium: Try it out on /predict"
scripts/check-docs-browser.sh "$url" "$log/docs.png"

echo
echo "e2e: 1 passed, 0 failed"
