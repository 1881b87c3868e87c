#!/usr/bin/env bash
# Dependency audit, offline: `cargo audit` against a RustSec advisory
# database snapshot, with the accepted advisories in .cargo/audit.toml.
#
# The database is $ADVISORY_DB when set, else ../shared/advisory-db beside
# the checkout when it exists, else ci/advisory-db.tar.xz (the snapshot of
# advisory-db commit bf5c0d2, 2026-08-21, vendored so the audit runs on a
# machine that cannot clone the database). cargo-audit comes from the
# project's virtual environment (`make setup-audit`) or PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

audit=${CARGO_AUDIT:-}
if [ -z "$audit" ]; then
  if [ -x .venv/bin/cargo-audit ]; then audit=.venv/bin/cargo-audit
  elif command -v cargo-audit >/dev/null; then audit=cargo-audit
  else echo "audit: cargo-audit not found (run \`make setup-audit\`)" >&2; exit 1
  fi
fi

db=${ADVISORY_DB:-}
if [ -z "$db" ] && [ -d ../shared/advisory-db/crates ]; then db=../shared/advisory-db; fi
if [ -z "$db" ]; then
  db=target/advisory-db
  if [ ! -d "$db/crates" ] || [ ci/advisory-db.tar.xz -nt "$db" ]; then
    rm -rf "$db" && mkdir -p target
    tar -xJf ci/advisory-db.tar.xz -C target
    touch "$db"
  fi
fi
echo "audit: advisory database $db: $(sed -n '1{s/, without.*//;p}' "$db/SNAPSHOT.txt" 2>/dev/null)"

# The quick-xml advisories are accepted only because the crate is in
# Cargo.lock without being compiled: keep it that way.
for crate in quick-xml object_store; do
  if cargo tree --offline --workspace --edges normal,build -i "$crate" 2>/dev/null | grep -q .; then
    echo "audit: $crate is compiled into the workspace again (polars' \`lazy\` feature?);" \
      "its advisories are accepted in .cargo/audit.toml only while it is not" >&2
    cargo tree --offline --workspace --edges normal,build,features -i "$crate" >&2 || true
    exit 1
  fi
done

"$audit" audit --db "$db" --no-fetch --stale
