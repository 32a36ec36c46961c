#!/usr/bin/env bash
# `make demo`, render step (hack/demo.sh runs it after the build): the
# user-data for one worker of the quickstart image, with the Kubernetes
# version and join unit read from the image's annotations, checked by
# cloud-init's own schema validator when it is installed.
# Env: PREBAKE (the binary), DEMO (output root), XDG_DATA_HOME (the store).
set -euo pipefail
cd "$(dirname "$0")/.."
PREBAKE=${PREBAKE:-$PWD/bin/prebake}
DEMO=${DEMO:-$PWD/_out/demo}
OUT=$DEMO/render
IMAGE=${IMAGE:-quickstart-node:1.36.4}
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "render the user-data for one worker of $IMAGE"
# A throwaway cluster CA: the node pins its public key; the private key never
# leaves this directory and is never rendered.
if [ ! -f "$OUT/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -days 3650 -subj /CN=kubernetes \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  chmod 600 "$OUT/ca.key"
fi
cat >"$OUT/worker.yaml" <<'SPEC'
apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  name: demo
  apiServerEndpoint: 192.0.2.10:6443
  caCertFile: ca.crt
  bootstrapToken: abcdef.0123456789abcdef
node:
  name: worker-1
  labels:
    node.kubernetes.io/pool: general
SPEC
# Nodes boot an image by digest: resolve the tag once.
digest=$("$PREBAKE" inspect "$IMAGE" --json | sed -n 's/^  "digest": "\(sha256:[0-9a-f]*\)",*$/\1/p' | head -n1)
if [ -z "$digest" ]; then
  echo "demo-render: cannot resolve $IMAGE to a digest" >&2
  exit 1
fi
ref="store:${IMAGE%%:*}@$digest"
echo "+ prebake render $OUT/worker.yaml --image $ref -o $OUT/worker-1.user-data"
"$PREBAKE" render "$OUT/worker.yaml" --image "$ref" -o "$OUT/worker-1.user-data"
sed -n '1,2p' "$OUT/worker-1.user-data"
echo "  ..."
"$PREBAKE" render "$OUT/worker.yaml" --image "$ref" --gzip --max-size aws -o "$OUT/worker-1.user-data.gz"
if command -v cloud-init >/dev/null 2>&1; then
  cloud-init schema --config-file "$OUT/worker-1.user-data"
fi
