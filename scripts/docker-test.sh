#!/usr/bin/env bash
# The container, built and run for real (`make docker-test`, part of `make
# test`):
#  1. a Docker engine is up (dockerd is started, and stopped again at the
#     end, when none runs) and the base images exist
#     (scripts/docker-base-images.sh makes them locally when missing);
#  2. `docker compose build` builds docker/Dockerfile (timed);
#  3. `docker compose up -d` with docker/compose.test.yaml on top: host
#     networking, the server on a free 127.0.0.1 port, models/ replaced by a
#     throwaway copy of the registry; the test waits for GET /health/ready;
#  4. the container runs as a non-root user on a read-only root filesystem
#     (a write to / fails, /tmp is a writable tmpfs);
#  5. POST /predict answers examples/predict.json, and /metrics then has
#     the drift gauges (the training profile is mounted) with that
#     prediction in their window;
#  6. another version is promoted on the host (`registry promote` on the
#     copy) and the running container serves it within RELOAD_WAIT seconds,
#     without a restart; Docker's health check reports healthy;
#  7. `docker compose stop` ends the server with exit status 0; the
#     prediction log in its volume is closed and holds the prediction of
#     step 5; then `docker compose down --volumes` removes it all.
# Prints the image size and the build time. Needs root (dockerd,
# debootstrap), docker.io, debootstrap, jq, curl, and the pipeline's
# artifacts (models/registry, data/online/snapshot.bin,
# data/profile/train.json: `make pipeline`).
#
# Environment: DOCKER (default /usr/bin/docker, the client that builds with
# BuildKit; /usr/local/bin/docker on these machines has no buildx),
# COMPOSE (a docker-compose v2 binary; default: scripts/docker-compose-bin.sh
# fetches the pinned one into TOOLS_DIR, default .venv), RELOAD_WAIT
# (default 20 s; the server checks the alias every 5 s by default).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-/usr/bin/docker}
RELOAD_WAIT=${RELOAD_WAIT:-20}
export DOCKER_BUILDKIT=1
# Its own project name, so a `revspend` stack someone runs by hand is left alone.
export COMPOSE_PROJECT_NAME=revspend-test
unset COMPOSE_FILE

step() { printf '\n== docker-test: %s\n' "$*"; }
fail() { echo "docker-test FAILED: $*" >&2; exit 1; }

for f in models/registry/index.json data/online/snapshot.bin data/profile/train.json examples/predict.json; do
  [ -s "$f" ] || fail "$f is missing: run \`make pipeline\` first"
done
command -v jq >/dev/null || fail "jq is not installed"
command -v curl >/dev/null || fail "curl is not installed"
[ -x "$DOCKER" ] || fail "$DOCKER not found (apt-get install docker.io)"

work=$(mktemp -d "${TMPDIR:-/tmp}/revspend-docker-test.XXXXXX")
started_dockerd=
dockerd_pid=
compose_up=
compose() { "$COMPOSE" -f docker/compose.yaml -f docker/compose.test.yaml "$@"; }
cleanup() {
  local rc=$?
  if [ -n "$compose_up" ]; then
    if [ "$rc" -ne 0 ]; then
      echo "--- container logs" >&2
      compose logs --no-color --tail 50 >&2 || true
    fi
    compose down --volumes --timeout 5 >/dev/null 2>&1 || true
  fi
  if [ -n "$started_dockerd" ] && [ -z "${KEEP_DOCKERD:-}" ]; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
step "Docker engine"
if ! "$DOCKER" info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || fail "no Docker engine running and no dockerd (apt-get install docker.io)"
  log=${DOCKERD_LOG:-/tmp/revspend-dockerd.log}
  echo "starting dockerd (log: $log)"
  # Its own session, so it does not hold this terminal or get its signals.
  setsid dockerd >"$log" 2>&1 </dev/null &
  dockerd_pid=$!
  started_dockerd=1
  for _ in $(seq 1 120); do
    "$DOCKER" info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -n 20 "$log" >&2; fail "dockerd exited"; }
    sleep 0.5
  done
  "$DOCKER" info >/dev/null 2>&1 || { tail -n 20 "$log" >&2; fail "dockerd did not come up in 60 s"; }
fi
"$DOCKER" version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'

step "base images"
DOCKER="$DOCKER" scripts/docker-base-images.sh

if [ -z "${COMPOSE:-}" ]; then
  tools=${TOOLS_DIR:-.venv}
  py=python3
  [ -x "$tools/bin/python" ] && py="$tools/bin/python"
  COMPOSE=$(PYTHON="$py" scripts/docker-compose-bin.sh "$tools")
fi
"$COMPOSE" version

# ---------------------------------------------------------------------------
# What the test promotes on the host: a copy of the registry, bind-mounted
# read-only in place of models/ (the real registry is never touched).
step "a throwaway registry with a second version to promote"
cargo build --quiet --locked -p registry
reg_dir="$work/models/registry"
mkdir -p "$work/models"
cp -r models/registry "$reg_dir"
rm -f "$reg_dir/.lock"
# The server runs as uid 10001: everything must be readable by others
# (mktemp makes 0700 directories).
chmod 0755 "$work" "$work/models"
chmod -R a+rX "$reg_dir"
reg() { target/debug/registry --registry "$reg_dir" "$@"; }
production=$(reg show production | jq -r .version)
# The newest version production does not point to; `train` registers one per
# run, so a registry that has seen two runs (as after `make e2e`) has one.
target=$(jq -r --arg p "$production" \
  '[.versions[].version | select(. != $p)] | last // empty' "$reg_dir/index.json")
if [ -z "$target" ]; then
  # A single run's registry: register a byte-identical copy of the
  # production artifact as the next version, recorded exactly as `train`
  # records one (same model_version and SHA-256; the registry CLI has no
  # `register`). `registry promote` below checks it like any version.
  jq -e '.format == 1' "$reg_dir/index.json" >/dev/null \
    || fail "registry index format changed: update this copy step"
  next=$(jq -r '[.versions[].version | ltrimstr("v") | tonumber] | max + 1' "$reg_dir/index.json")
  target=$(printf 'v%04d' "$next")
  src=$(jq -r --arg p "$production" '.versions[] | select(.version == $p) | .artifact' "$reg_dir/index.json")
  mkdir -p "$reg_dir/versions/$target"
  cp "$reg_dir/$src" "$reg_dir/versions/$target/model.bin"
  jq --arg p "$production" --arg t "$target" \
    '.versions += [(.versions[] | select(.version == $p)
                   | .version = $t | .artifact = "versions/\($t)/model.bin")]' \
    "$reg_dir/index.json" >"$work/index.json"
  mv "$work/index.json" "$reg_dir/index.json"
  chmod -R a+rX "$reg_dir"
  echo "registered a copy of $production as $target"
fi
target_model=$(reg show "$target" | jq -r .model_version)
echo "serving $production first, then promoting $target ($target_model)"

# ---------------------------------------------------------------------------
step "docker compose build"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export REVSPEND_TEST_PORT=$port REVSPEND_TEST_MODELS="$work/models"
url="http://127.0.0.1:$port"
build_start=$(date +%s.%N)
compose build --progress plain >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "image build failed"; }
build_secs=$(awk -v s="$build_start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
grep -E 'Finished|CACHED' "$work/build.log" | tail -n 3 || true
image=$(compose config --images | head -n1)
size_mb=$("$DOCKER" image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.1f", $1 / 1e6 }')
echo "built $image in $build_secs s, $size_mb MB"

# ---------------------------------------------------------------------------
step "docker compose up -d (host network, $url)"
compose_up=1
compose up -d --no-build
cid=$(compose ps -q serve)
[ -n "$cid" ] || fail "no container for service serve"
ready=
for _ in $(seq 1 120); do
  if curl -fsS -o "$work/ready.json" "$url/health/ready" 2>/dev/null; then ready=1; break; fi
  [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$cid")" = true ] || fail "the container exited"
  sleep 0.5
done
[ -n "$ready" ] || fail "GET /health/ready did not answer 200 within 60 s"
cat "$work/ready.json"; echo
started_at=$("$DOCKER" inspect -f '{{.State.StartedAt}}' "$cid")

step "non-root user, read-only root filesystem"
uid=$("$DOCKER" exec "$cid" id -u)
echo "uid in the container: $uid (image user $("$DOCKER" inspect -f '{{.Config.User}}' "$cid"))"
[ "$uid" != 0 ] || fail "the server runs as root"
[ "$("$DOCKER" inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$cid")" = true ] \
  || fail "HostConfig.ReadonlyRootfs is not true"
if "$DOCKER" exec "$cid" bash -c ': >/revspend-write-probe' 2>/dev/null; then
  fail "a write to / succeeded"
fi
"$DOCKER" exec "$cid" bash -c ': >/tmp/revspend-write-probe && rm /tmp/revspend-write-probe' \
  || fail "/tmp is not writable"
if "$DOCKER" exec "$cid" bash -c ': >/app/models/registry/revspend-write-probe' 2>/dev/null; then
  fail "the models mount is writable"
fi
echo "root filesystem read-only, /tmp writable, models mount read-only"

step "POST /predict"
curl -fsS -X POST "$url/predict" -H 'content-type: application/json' \
  -d @examples/predict.json | tee "$work/predict.json"; echo
jq -e '(.is_revenge_spending | type == "boolean") and (.probability >= 0 and .probability <= 1)
       and (.threshold | type == "number") and (.model_version | test("^[a-z_]+-[0-9a-f]{12}$"))' \
  "$work/predict.json" >/dev/null || fail "unexpected /predict response"
curl -fsS "$url/version" >"$work/version.json"
jq -e --arg v "$production" '.origin.registry_version == $v' "$work/version.json" >/dev/null \
  || fail "serving $(jq -c .origin "$work/version.json"), expected registry version $production"

step "drift gauges in /metrics"
jq -e '.drift_profile == "/app/data/profile/train.json" and (.drift_features | length > 0)' \
  "$work/version.json" >/dev/null || fail "no drift gauges: $(jq -c '{drift_profile, drift_features}' "$work/version.json")"
# The prediction reaches the window through the log's writer thread, a few
# milliseconds after its answer.
gauged=
for _ in $(seq 1 40); do
  curl -fsS "$url/metrics" >"$work/metrics.txt"
  if grep -q '^revspend_feature_psi{feature="' "$work/metrics.txt" \
    && awk '$1 == "revspend_drift_window_requests" && $2 >= 1 { ok = 1 } END { exit !ok }' "$work/metrics.txt"; then
    gauged=1; break
  fi
  sleep 0.25
done
[ -n "$gauged" ] || { grep -E '^revspend_(feature|drift)' "$work/metrics.txt" >&2 || true; fail "no revspend_feature_psi gauge after a prediction"; }
grep -E '^revspend_(feature_psi_max|drift_window_requests) |^process_cpu_seconds_total ' "$work/metrics.txt"
echo "$(grep -c '^revspend_feature_psi{' "$work/metrics.txt") feature PSI gauges"

step "promote $target on the host; the container follows without a restart"
reg promote "$target"
promoted=$(date +%s.%N)
followed=
for _ in $(seq 1 $((RELOAD_WAIT * 4))); do
  curl -fsS "$url/version" >"$work/version.json" 2>/dev/null || true
  if jq -e --arg v "$target" '.origin.registry_version == $v' "$work/version.json" >/dev/null 2>&1; then
    followed=1; break
  fi
  sleep 0.25
done
[ -n "$followed" ] || fail "still serving $(jq -c .origin "$work/version.json" 2>/dev/null) $RELOAD_WAIT s after promoting $target"
awk -v s="$promoted" -v e="$(date +%s.%N)" -v t="$target" \
  'BEGIN { printf "serving %s %.1f s after the promotion\n", t, e - s }'
jq -c '{model_version, origin}' "$work/version.json"
jq -e --arg m "$target_model" '.model_version == $m' "$work/version.json" >/dev/null \
  || fail "/version model_version is not $target_model"
curl -fsS "$url/health/ready" | jq -e --arg m "$target_model" '.model_version == $m' >/dev/null \
  || fail "/health/ready does not report $target_model"
curl -fsS -X POST "$url/predict" -H 'content-type: application/json' \
  -d @examples/predict.json | jq -e --arg m "$target_model" '.model_version == $m' >/dev/null \
  || fail "/predict does not answer with $target_model"
[ "$("$DOCKER" inspect -f '{{.State.StartedAt}} {{.RestartCount}}' "$cid")" = "$started_at 0" ] \
  || fail "the container was restarted"
health=
for _ in $(seq 1 60); do
  health=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$cid")
  [ "$health" = healthy ] && break
  [ "$health" = unhealthy ] && break
  sleep 0.5
done
[ "$health" = healthy ] || fail "Docker's health check says $health"
echo "same container, no restart; Docker health check: $health"

step "docker compose stop / down"
compose stop --timeout 10
read -r exit_code oom < <("$DOCKER" inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' "$cid")
compose logs --no-color --tail 5
[ "$exit_code" = 0 ] && [ "$oom" = false ] \
  || fail "the server exited with status $exit_code (OOM killed: $oom), expected 0 on SIGTERM"
echo "exited with status 0"

step "the prediction log in the volume: closed on SIGTERM, holding the prediction"
id=$(jq -r .prediction_id "$work/predict.json")
volume="${COMPOSE_PROJECT_NAME}_logs"
"$DOCKER" run --rm --network none -v "$volume:/logs:ro" debian:bookworm-slim \
  sh -c 'find /logs -type f | sort; cat /logs/predictions/date=*/hour=*/*.jsonl' >"$work/log.txt" \
  || fail "cannot read the logs volume $volume"
grep -E '^/logs/predictions/' "$work/log.txt" | head -n 5
if grep -q '\.partial$' "$work/log.txt"; then fail "a prediction log file was left open after SIGTERM"; fi
grep -q "\"prediction_id\":\"$id\"" "$work/log.txt" || fail "prediction $id is not in the prediction log"
echo "prediction $id is in a closed log file"
compose down --volumes
compose_up=

echo
echo "docker-test: image $image $size_mb MB, built in $build_secs s"
echo "docker-test: 1 passed, 0 failed"
