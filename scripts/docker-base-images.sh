#!/usr/bin/env bash
# Make the two base images docker/Dockerfile builds FROM, locally, because no
# image registry is reachable from these machines:
#
#   debian:<release>-slim            debootstrap --variant=minbase from the
#                                    Debian mirror apt uses, then `docker import`
#   rust:<version>-slim-<release>    that image + gcc/libc6-dev/ca-certificates
#                                    (apt) + this machine's Rust toolchain
#                                    (bin/ and lib/ only, no docs)
#
#   scripts/docker-base-images.sh
#
# Idempotent: an image that already exists under its name is reused, never
# rebuilt (remove it with `docker image rm` to force a rebuild). The names
# come from the ARGs in docker/Dockerfile (DEBIAN_RELEASE, RUST_VERSION), so
# the Dockerfile stays the one place that names them. Needs root (debootstrap),
# a running Docker engine and network access to the Debian mirror.
#
# Environment: DOCKER (default /usr/bin/docker: the client that builds with
# BuildKit), DEBIAN_MIRROR (default: the first Debian mirror in the apt
# sources, else http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER_BUILDKIT=1

arg() { sed -n "s/^ARG $1=\\(.*\\)$/\\1/p" docker/Dockerfile | head -n1; }
release=$(arg DEBIAN_RELEASE)
rust_version=$(arg RUST_VERSION)
[ -n "$release" ] && [ -n "$rust_version" ] \
  || { echo "cannot read DEBIAN_RELEASE / RUST_VERSION from docker/Dockerfile" >&2; exit 1; }
debian_image="debian:${release}-slim"
rust_image="rust:${rust_version}-slim-${release}"

work=$(mktemp -d "${TMPDIR:-/tmp}/revspend-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  # deb822 (URIs: ...) and one-line (deb URI suite ...) sources; skip the
  # security archive, which has no base system.
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | sed -nE 's/^URIs:[[:space:]]*//p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
      | tr ' ' '\n' | grep -E '^https?://' | grep -v -- '-security' | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

if have "$debian_image"; then
  echo "docker-base-images: $debian_image exists, reused"
else
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  m=$(mirror)
  echo "docker-base-images: debootstrap --variant=minbase $release from $m"
  start=$SECONDS
  root="$work/rootfs"
  debootstrap --variant=minbase "$release" "$root" "$m" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }
  # What the official -slim images leave out: documentation, manuals,
  # translations, apt's package lists and downloaded archives. The dpkg
  # rule keeps packages installed later (the builder's gcc) from adding
  # them back.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* "$root"/tmp/* \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
  tar --numeric-owner -C "$root" -c . \
    | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $release $m" \
        - "$debian_image" >/dev/null
  rm -rf "$root"
  echo "docker-base-images: $debian_image made in $((SECONDS - start)) s"
fi

if have "$rust_image"; then
  echo "docker-base-images: $rust_image exists, reused"
else
  command -v rustc >/dev/null || { echo "no rustc on PATH to copy into $rust_image" >&2; exit 1; }
  host_version=$(rustc --version | awk '{print $2}')
  case "$host_version" in
    "$rust_version" | "$rust_version".*) ;;
    *) echo "this machine's rustc is $host_version, docker/Dockerfile wants $rust_version" >&2; exit 1 ;;
  esac
  sysroot=$(rustc --print sysroot)
  [ -x "$sysroot/bin/cargo" ] || { echo "no cargo next to rustc in $sysroot" >&2; exit 1; }
  echo "docker-base-images: $rust_image from $debian_image + the toolchain in $sysroot ($host_version)"
  start=$SECONDS
  ctx="$work/rust"
  # cargo and rustc with their libraries (LLVM, rustc_driver, the standard
  # library, rust-lld, which the linker wrapper uses); no docs, clippy,
  # rustfmt or rustdoc.
  mkdir -p "$ctx/toolchain/bin"
  cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$ctx/toolchain/bin/"
  cp -a "$sysroot/lib" "$ctx/toolchain/"
  # The builder trusts the certificate authorities this machine trusts: its
  # HTTPS may go through a TLS-inspecting proxy whose CA only the host's
  # bundle holds, and cargo fetches crates over HTTPS.
  bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  if [ -s "$bundle" ]; then cp "$bundle" "$ctx/host-ca-certificates.crt"; else : >"$ctx/host-ca-certificates.crt"; fi
  cat >"$ctx/Dockerfile" <<EOF
FROM $debian_image
# gcc drives the link and compiles the C in the dependency tree (the cc
# crate); ca-certificates lets cargo fetch crates over HTTPS.
RUN apt-get update \\
    && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
COPY host-ca-certificates.crt /usr/local/share/ca-certificates/host-bundle.crt
RUN if [ -s /usr/local/share/ca-certificates/host-bundle.crt ]; then \\
        cat /usr/local/share/ca-certificates/host-bundle.crt >>/etc/ssl/certs/ca-certificates.crt; \\
    fi
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain /usr/local/rust
RUN mkdir -p /usr/local/cargo/bin && cargo --version && rustc --version
EOF
  "$DOCKER" build --network host --quiet -t "$rust_image" "$ctx" >/dev/null
  echo "docker-base-images: $rust_image made in $((SECONDS - start)) s"
fi
