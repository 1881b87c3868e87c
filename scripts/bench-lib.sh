# Shared by the serving benchmarks (sourced, not run): starting servers in
# the background, their peak memory, and stopping them at exit. The caller
# sets `work` (a temporary directory) before sourcing.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() { # name, port, command...: runs it, waits until GET /health answers
  local name=$1 port=$2
  shift 2
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pids+=($!)
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

rss() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; } # peak RSS in MiB of a pid
