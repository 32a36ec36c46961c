#!/usr/bin/env bash
# Fetches systemd's EFI stub for another architecture (prebake export
# --platform linux/arm64 needs linuxaa64.efi.stub) from Debian with apt-get,
# without changing this machine's apt configuration: a private apt state
# (lists, cache) under .cache/efistub/ for that architecture only, the same
# mirror and archive keyring as the system, then `apt-get download
# systemd-boot-efi` and `dpkg-deb -x`. apt checks the Release signature and
# the package's sha256.
#
# Usage: hack/efistub.sh [ARCH]   # prints the stub's path (default arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-arm64}
case "$ARCH" in
  arm64) STUB=linuxaa64.efi.stub ;;
  amd64) STUB=linuxx64.efi.stub ;;
  *) echo "efistub: unknown architecture $ARCH (arm64, amd64)" >&2; exit 2 ;;
esac
MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
base=$PWD/.cache/efistub/$ARCH
out=$base/root/usr/lib/systemd/boot/efi/$STUB
if [ -s "$out" ]; then echo "$out"; exit 0; fi
[ -r "$KEYRING" ] || { echo "efistub: $KEYRING missing (Debian package debian-archive-keyring)" >&2; exit 1; }
mkdir -p "$base/lists/partial" "$base/archives/partial" "$base/etc"
echo "deb [arch=$ARCH signed-by=$KEYRING] $MIRROR bookworm main" > "$base/etc/sources.list"
apt_opts=(-o "APT::Architecture=$ARCH" -o "APT::Architectures=$ARCH"
  -o "Dir::State::Lists=$base/lists" -o "Dir::State::status=/dev/null"
  -o "Dir::Cache=$base" -o "Dir::Cache::archives=$base/archives"
  -o "Dir::Etc::SourceList=$base/etc/sources.list" -o "Dir::Etc::SourceParts=-"
  -o "Acquire::Languages=none" -o "Debug::NoLocking=1")
apt-get "${apt_opts[@]}" -qq update >&2
( cd "$base/archives" && apt-get "${apt_opts[@]}" -qq download "systemd-boot-efi:$ARCH" >&2 )
deb=$(ls "$base"/archives/systemd-boot-efi_*_"$ARCH".deb | head -1)
rm -rf "$base/root.tmp"
dpkg-deb -x "$deb" "$base/root.tmp"
[ -s "$base/root.tmp/usr/lib/systemd/boot/efi/$STUB" ] || { echo "efistub: $deb has no $STUB" >&2; exit 1; }
rm -rf "$base/root"
mv "$base/root.tmp" "$base/root"
echo "$out"
