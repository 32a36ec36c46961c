#!/usr/bin/env bash
# Signing part of `make demo` (called by hack/demo.sh after the build and
# registry steps): generates a key pair, exports the quickstart image with its
# SBOM to an OCI layout, shows that a tag cannot be signed, signs the index and
# its platform images by digest, attests the SBOM and the provenance, verifies
# offline with the public key alone, and shows the refusals of a tampered copy
# and of another key. Needs PREBAKE and DEMO (hack/demo.sh sets both, and
# XDG_DATA_HOME for the store); writes only under $DEMO.
set -euo pipefail
cd "$(dirname "$0")/.."
PREBAKE=${PREBAKE:-$PWD/bin/prebake}
DEMO=${DEMO:-$PWD/_out/demo}
IMAGE=${IMAGE:-quickstart-node}
# The demo key's password; a real key's comes from a secret store or a prompt.
export COSIGN_PASSWORD=${COSIGN_PASSWORD:-demo}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DEMO/keys" "$DEMO/signed" "$DEMO/tampered"
mkdir -p "$DEMO/keys"
KEY=$DEMO/keys/release.key PUB=$DEMO/keys/release.pub
LAYOUT=oci:$DEMO/signed

step "generate a cosign-compatible key pair"
"$PREBAKE" keygen --prefix "$DEMO/keys/release"

step "export $IMAGE:1.36.4 with its SBOM to an OCI layout"
DIGEST=$("$PREBAKE" copy -q "$IMAGE:1.36.4" "$LAYOUT:1.36.4" --json | sed -n 's/.*"digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' | head -1)
echo "$LAYOUT:1.36.4 is $DIGEST"

step "a tag cannot be signed: the error names the digest to sign"
if "$PREBAKE" sign "$LAYOUT:1.36.4" --key "$KEY" 2>&1; then
  echo "BUG: a tag was signed" >&2
  exit 1
fi

step "sign the index and its platform images by digest, attest the SBOM and the provenance"
"$PREBAKE" sign "$LAYOUT@$DIGEST" --key "$KEY" -a release=demo
"$PREBAKE" attest "$LAYOUT@$DIGEST" --key "$KEY"

step "verify with nothing but the public key and the layout"
"$PREBAKE" verify "$LAYOUT:1.36.4" --key "$PUB" --attestations

step "a copy with one layer altered is refused"
cp -r "$DEMO/signed" "$DEMO/tampered"
blobs=$DEMO/tampered/blobs/sha256
sha() { grep -o '"digest": *"sha256:[0-9a-f]*"' | sed 's/.*sha256://; s/"//'; }
platform=$(sha <"$blobs/${DIGEST#sha256:}" | head -1)              # first platform image
layer=$(sed 's/.*"layers"//' "$blobs/$platform" | sha | tail -1)    # its last layer
echo "altering layer sha256:$layer of platform image sha256:$platform"
blob=$blobs/$layer
chmod u+w "$blob"
printf 'tampered' | dd of="$blob" bs=1 seek=64 conv=notrunc status=none
if "$PREBAKE" verify "oci:$DEMO/tampered:1.36.4" --key "$PUB" 2>&1; then
  echo "BUG: a tampered image verified" >&2
  exit 1
fi

step "another key is refused"
"$PREBAKE" keygen --prefix "$DEMO/keys/other" >/dev/null
if "$PREBAKE" verify "$LAYOUT:1.36.4" --key "$DEMO/keys/other.pub" 2>&1; then
  echo "BUG: verified with another key" >&2
  exit 1
fi
