#!/usr/bin/env bash
# Registry part of `make demo` (called by hack/demo.sh after the build steps):
# starts `prebake serve` on a free loopback port, pushes the quickstart image
# from the local store (again: nothing is uploaded; then the patch bump: one
# layer), lists the versions, pulls the image back by digest, promotes it to a
# channel, and stops the server. Needs PREBAKE and DEMO (hack/demo.sh sets
# both); writes only under $DEMO.
set -euo pipefail
cd "$(dirname "$0")/.."
PREBAKE=${PREBAKE:-$PWD/bin/prebake}
DEMO=${DEMO:-$PWD/_out/demo}
IMAGE=${IMAGE:-quickstart-node}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO/registry" "$DEMO/pulled" "$DEMO/rootfs"
mkdir -p "$DEMO"
out=$(mktemp -u "$DEMO/.serve-out.XXXXXX")
mkfifo "$out"
"$PREBAKE" serve --root "$DEMO/registry" --addr 127.0.0.1:0 >"$out" 2>"$DEMO/serve.log" &
SERVE_PID=$!
stop() { kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; rm -f "$out"; }
trap stop EXIT
exec 9<"$out"
read -r line <&9 || { echo "prebake serve did not start:" >&2; cat "$DEMO/serve.log" >&2; exit 1; }
cat <&9 >/dev/null &
exec 9<&-
ADDR=${line#listening on }
REPO=$ADDR/nodes/$IMAGE

step "prebake serve is listening on $ADDR (data in $DEMO/registry)"

step "push the image (with its SBOM) from the local store"
"$PREBAKE" push -q "$IMAGE:1.36.4" "$REPO:1.36.4" --insecure 2>&1

step "push it again: every blob is already there, nothing is uploaded"
"$PREBAKE" push -q "$IMAGE:1.36.4" "$REPO:1.36.4" --insecure 2>&1

if "$PREBAKE" inspect "$IMAGE:1.36.5" >/dev/null 2>&1; then
  step "push the patch bump: only the kubernetes layers, configs and SBOM travel"
  "$PREBAKE" push -q "$IMAGE:1.36.5" "$REPO:1.36.5" --insecure 2>&1
fi

step "the versions in the registry"
"$PREBAKE" ls "$ADDR/nodes/$IMAGE" --insecure

step "pull it back by digest (what a provisioner does)"
DIGEST=$("$PREBAKE" pull -q "$REPO:1.36.4" --insecure -o "oci:$DEMO/pulled" 2>/dev/null | sed 's/.*@//')
echo "$REPO:1.36.4 is $DIGEST"
"$PREBAKE" pull -q "$REPO@$DIGEST" --require-digest --insecure -o "$DEMO/rootfs" --platform linux/amd64 2>&1
echo "root filesystem in $DEMO/rootfs:"
(cd "$DEMO/rootfs" && find . -maxdepth 3 -type d | sort | head -12)

step "promote the digest to the production channel and read the record back"
# --no-verify here because signing comes later in the demo; releases use --verify-key.
"$PREBAKE" promote "$REPO@$DIGEST" --channel production --insecure --no-verify
"$PREBAKE" channel history "$ADDR/nodes/$IMAGE" production --insecure

step "stop prebake serve"
stop
trap - EXIT
echo "stopped"
