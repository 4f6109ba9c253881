#!/usr/bin/env bash
# Builds libraft 0.22.1 (the maintained cowsql fork; Debian 13 "trixie"
# ships it) from Debian's own source package and installs it, static, into
# a prefix the CMake build finds through pkg-config. Bookworm's libraft 0.15
# is the last release of an upstream that stopped (docs/architecture.md).
#
#   build-libraft.sh [PREFIX]        default /opt/chronos-deps/raft-0.22.1
#   CHRONOS_RAFT_CFLAGS=... build-libraft.sh PREFIX
#                                    e.g. an ASan+UBSan build for the
#                                    sanitizer tests
#
# Does nothing when PREFIX already holds this version. The source comes
# through apt with a private configuration (its own sources list, lists and
# cache under a temporary directory): one deb-src line for trixie at the
# archive URI the machine already uses for bookworm, so apt checks the
# Release signature and the package's hashes as for any other package. The
# machine's own apt configuration is not touched. Needs: dpkg-dev (for
# `apt-get source`), autoconf, automake, libtool, pkg-config, libuv1-dev,
# liblz4-dev (install-deps.sh installs them first).
set -euo pipefail

VERSION=0.22.1
DEB_VERSION=0.22.1-1
PREFIX=${1:-/opt/chronos-deps/raft-$VERSION}
CFLAGS_EXTRA=${CHRONOS_RAFT_CFLAGS:-}
STAMP="$PREFIX/.chronos-build"
# Fixes of ours applied on top of Debian's source (each patch says why).
PATCHES=$(cd "$(dirname "$0")/libraft-patches" && pwd)
WANT="raft $DEB_VERSION cflags:$CFLAGS_EXTRA patches:$(cat "$PATCHES"/*.patch | cksum | cut -d' ' -f1)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] &&
   PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --exact-version="$VERSION" raft; then
  exit 0
fi

# The archive URI of the machine's bookworm entry (deb822 or one-line
# sources alike), e.g. http://deb.debian.org/debian/.
archive=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' |
          awk '$2 == "bookworm" { print $1; exit }')
if [ -z "$archive" ]; then
  echo "build-libraft: no apt source for Debian bookworm found" >&2
  exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

work=$(mktemp -d /tmp/chronos-libraft.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
echo "deb-src [signed-by=$keyring] $archive trixie main" > "$work/apt/sources.list"
cat > "$work/apt/apt.conf" <<EOF
Dir::Etc::SourceList "$work/apt/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::State::Lists "$work/apt/lists";
Dir::Cache "$work/apt/cache";
EOF
export APT_CONFIG="$work/apt/apt.conf"

echo "build-libraft: fetching raft $DEB_VERSION (source) from $archive trixie"
apt-get update -qq
# Root fetches into a directory the _apt user cannot write: say so rather
# than warn.
(cd "$work/src" && apt-get source -qq -o APT::Sandbox::User=root "raft=$DEB_VERSION")
srcdir="$work/src/raft-$VERSION"

echo "build-libraft: building into $PREFIX${CFLAGS_EXTRA:+ (CFLAGS $CFLAGS_EXTRA)}"
(
  cd "$srcdir"
  for p in "$PATCHES"/*.patch; do patch -s -p1 < "$p"; done
  autoreconf -i >/dev/null
  # Static and position-independent: linked into the chronos binary, no
  # run-time search path. -g: debug info for backtraces and sanitizers.
  ./configure -q --prefix="$PREFIX" --disable-shared --enable-static --with-pic \
    --disable-example --disable-benchmark CFLAGS="-O2 -g $CFLAGS_EXTRA"
  make -s -j"$(nproc)"
  rm -rf "$PREFIX"
  make -s install >/dev/null
)
echo "$WANT" > "$STAMP"
echo "build-libraft: raft $VERSION installed in $PREFIX"
