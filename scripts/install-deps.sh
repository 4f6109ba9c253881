#!/usr/bin/env bash
# Installs every Debian bookworm package Chronos needs to build, test and run.
# Idempotent: packages already present are skipped, and apt is only touched
# when something is missing. Run as root (CI and `make run`/`make test` do).
#
#   install-deps.sh           what `make build`/`make run`/`make test` need
#   install-deps.sh --bench   also the benchmark's tools (`make bench`)
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache clang libclang-rt-14-dev
  # consensus and storage (libraft itself: build-libraft.sh, below)
  libuv1-dev liblz4-dev librocksdb-dev zlib1g-dev
  # snapshot images are compressed frames
  libzstd-dev
  # building libraft 0.22.1 from Debian's source package
  dpkg-dev autoconf automake libtool
  # allocator of the chronos binary
  libjemalloc-dev
  # API server, HTTP client, crypto
  libboost-dev libcurl4-openssl-dev libssl-dev libsodium-dev
  # time zones, JSON, YAML, CLI, logging
  libabsl-dev tzdata nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev
  # tests
  libgtest-dev libgmock-dev libbenchmark-dev curl python3 procps
  # cluster partition tests: network namespaces (ip netns) and packet drops
  iproute2 nftables
)

# `make bench` only: the etcd baseline and the HTTP load generator.
BENCH_PACKAGES=(etcd-server wrk)

for arg in "$@"; do
  case "$arg" in
    --bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    *) echo "install-deps: unknown argument: $arg (known: --bench)" >&2; exit 2 ;;
  esac
done

# libraft 0.22.1 from Debian's source, twice: the build's and, instrumented,
# the ASan+UBSan build's (docs/architecture.md, "libraft 0.22.1, built from
# Debian's source"). No-ops once installed.
build_libraft() {
  local here
  here=$(dirname "$0")
  bash "$here/build-libraft.sh" /opt/chronos-deps/raft-0.22.1
  CHRONOS_RAFT_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
    bash "$here/build-libraft.sh" /opt/chronos-deps/raft-0.22.1-asan
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  build_libraft
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo $0) to install them" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
build_libraft
