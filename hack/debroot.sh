#!/usr/bin/env bash
# Builds a small real Debian 12 root filesystem with mmdebstrap, the root
# prebake's package-database and apply tests run against: the minbase
# variant (dpkg, apt) plus iptables, and deliberately without conntrack, so
# tests can check an image's osPackages both ways. Cached under
# .cache/debroot/bookworm-HASH.tar, HASH covering the mmdebstrap options
# and the mirror (bump VERSION when the hooks change).
#
# Usage: hack/debroot.sh   # prints the tarball's path
set -euo pipefail
cd "$(dirname "$0")/.."
MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  # The same Debian mirror apt uses on this machine.
  MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
VERSION=1
PKGS=iptables
hash=$(echo "$VERSION $MIRROR $PKGS" | sha256sum | cut -c1-16)
out=$PWD/.cache/debroot/bookworm-$hash.tar
if [ -s "$out" ]; then echo "$out"; exit 0; fi
command -v mmdebstrap >/dev/null || hack/tools.sh mmdebstrap >&2
mkdir -p .cache/debroot
tmp=$out.tmp-$$
trap 'rm -f "$tmp"' EXIT
# The apt lists are kept (--skip=cleanup/apt/lists) so apt-get can install
# into the root without downloading them again.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} mmdebstrap --variant=minbase --format=tar --mode=root \
  --include="$PKGS" \
  --skip=cleanup/apt/lists \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' \
  bookworm "$tmp" "$MIRROR" >&2
mv "$tmp" "$out"
trap - EXIT
echo "$out"
