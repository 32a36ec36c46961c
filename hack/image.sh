#!/usr/bin/env bash
# make image: prebake's own container image, built by prebake from
# hack/image/recipe.yaml. Cross-compiles prebake and prebake-serve
# (CGO_ENABLED=0, -trimpath, no build ID: reproducible) for linux/amd64 and
# linux/arm64, writes their checksums into a lock, builds the recipe into
# the layout _out/image/oci (tag = the version), then checks it: both
# platforms are there, each binary is for its architecture, the amd64
# layer's prebake runs and prints its version, and a second build with an
# empty cache gives the same digest. With PUSH=REGISTRY/REPO it is pushed
# too, and with SIGN_KEY=KEY (file, env://VAR or KMS URI; password from
# COSIGN_PASSWORD) signed and attested like the node images. docs/ci.md.
#
# Environment: VERSION and LDFLAGS (from the Makefile), PREBAKE (default
# bin/prebake), SOURCE_DATE_EPOCH (default: the commit's time), PUSH,
# SIGN_KEY, INSECURE=1 (plain HTTP to a loopback registry).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?VERSION (run make image)}" "${LDFLAGS:?LDFLAGS (run make image)}"
V=${VERSION#v}
command -v jq >/dev/null || hack/tools.sh jq
PREBAKE=${PREBAKE:-$PWD/bin/prebake}
OUT=_out/image
REL=https://github.com/prebake/prebake/releases/download/
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1767225600)}
rm -rf "$OUT"
mkdir -p "$OUT/release/v$V"

lock="$OUT/prebake.lock.yaml"
printf 'apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources:\n' >"$lock"
for arch in amd64 arm64; do
  for cmd in prebake prebake-serve; do
    f="$OUT/release/v$V/$cmd-linux-$arch"
    echo "image: go build $cmd linux/$arch" >&2
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -tags image -trimpath -ldflags "$LDFLAGS" -o "$f" "./cmd/$cmd"
    printf '  - url: %s\n    sha256: %s\n' "${REL}v$V/$cmd-linux-$arch" "$(sha256sum "$f" | cut -d' ' -f1)" >>"$lock"
  done
done

build() { # build OUTPUT CACHE-DIR [FLAGS...]
  local out=$1 cache=$2
  shift 2
  "$PREBAKE" build hack/image/recipe.yaml --lock "$lock" --locked --set "prebake=$V" \
    --mirror "$REL=file://$PWD/$OUT/release/" --cache-dir "$cache" -o "$out" --json "$@"
}
flags=()
[ -n "${PUSH:-}" ] && flags+=(--push "$PUSH")
[ -n "${SIGN_KEY:-}" ] && flags+=(--sign-key "$SIGN_KEY")
[ -n "${INSECURE:-}" ] && flags+=(--insecure)
build "oci:$OUT/oci:$V" "$OUT/cache" "${flags[@]}" >"$OUT/result.json"
digest=$(jq -r .digest "$OUT/result.json")

# Both platforms, each binary for its architecture (ELF e_machine: 62
# x86-64, 183 aarch64).
plats=$("$PREBAKE" inspect "oci:$OUT/oci:$V" --json | jq -r '[.platforms[].platform] | sort | join(" ")')
[ "$plats" = "linux/amd64 linux/arm64" ] || { echo "image: platforms are '$plats', want linux/amd64 linux/arm64" >&2; exit 1; }
for arch in amd64 arm64; do
  root="$OUT/rootfs-$arch"
  "$PREBAKE" pull -q "oci:$OUT/oci:$V" --platform "linux/$arch" -o "$root" >/dev/null
  for cmd in prebake prebake-serve; do
    m=$(od -An -t u2 -j 18 -N 2 "$root/usr/local/bin/$cmd" | tr -d ' ')
    want=62; [ "$arch" = arm64 ] && want=183
    [ "$m" = "$want" ] || { echo "image: linux/$arch $cmd: ELF machine $m, want $want" >&2; exit 1; }
  done
done
got=$("$OUT/rootfs-amd64/usr/local/bin/prebake" version | head -1)
[ "$got" = "prebake $VERSION" ] || { echo "image: the amd64 layer's prebake version says '$got', want 'prebake $VERSION'" >&2; exit 1; }

# Reproducible: the same binaries, lock and epoch with an empty cache.
again=$(build "oci:$OUT/again:$V" "$OUT/cache-again" | jq -r .digest)
[ "$again" = "$digest" ] || { echo "image: a second build gave $again, the first $digest" >&2; exit 1; }
rm -rf "$OUT/again" "$OUT/cache-again"

echo "image: prebake:$V $digest (linux/amd64, linux/arm64) in oci:$OUT/oci:$V${PUSH:+, pushed to $(jq -r .pushed "$OUT/result.json")}${SIGN_KEY:+, signed}"
