#!/usr/bin/env bash
# `make e2e-join`: a prebake node image joins a REAL control plane and becomes
# a Ready node running a Pod, with nothing downloaded at boot; a
# Kubespray-style baseline (same base, binaries and images, downloaded at
# boot) joins the same control plane in the same run. See docs/boot.md.
#
#   1. real binaries built from source (hack/real/build.sh; cached by version)
#   2. a loopback file mirror laid out like the upstream URLs + a lock for them
#      (hack/real/mirror.py); `prebake serve` as the image registry (access log)
#   3. pause and the test pod's image built by prebake from static binaries
#   4. the catalog kubernetes-node recipe, unchanged, built --locked with the
#      real lock, pre-pulling both images by digest
#   5. prebake export over a Debian base with the image's osPackages
#   6. a real control plane on this machine (hack/join/controlplane.sh)
#   7. user-data from prebake render; both boots (hack/join/boot.py); results
#
# Fails if the prebake boot downloaded any byte or made any registry request,
# if either node is not Ready with its Pod Running within BOOT_TIMEOUT, or if
# the prebake node is not Ready first.
#
# Environment: K8S_VERSION=1.36.3 BOOT_TIMEOUT=900 BENCH_APPEND=1 (table in docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=join
. hack/e2e-setup.sh
export K8S_VERSION=${K8S_VERSION:-1.36.3}

log "real binaries (source builds, cached by version)"
t=$(date +%s)
hack/real/build.sh >/dev/null
BUILD_SECONDS=$(( $(date +%s) - t ))

W=$CACHE/run
rm -rf "$W" && mkdir -p "$W"
pids=()
cleanup() {
  hack/join/controlplane.sh stop "$W/cp" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

log "loopback file mirror of the upstream URLs"
mkey=$( { cat hack/real/mirror.py hack/real/build.sh; echo "$K8S_VERSION"; } | sha256sum | cut -c1-16)
MIRROR=$CACHE/mirror-$mkey
if [ ! -s "$MIRROR/lock.yaml" ]; then
  rm -rf "$MIRROR.tmp" && mkdir -p "$MIRROR.tmp"
  python3 hack/real/mirror.py "$ROOT/.cache/real" "$MIRROR.tmp/mirror" "$MIRROR.tmp/lock.yaml"
  rm -rf "$MIRROR" && mv "$MIRROR.tmp" "$MIRROR"
fi
MLOG=$W/mirror.log
: >"$MLOG"
python3 hack/boot/mirror.py "$MIRROR/mirror" "$MLOG" "$W/mirror.port" &
pids+=($!)
for _ in $(seq 600); do [ -s "$W/mirror.port" ] && break; sleep 0.1; done
MPORT=$(cat "$W/mirror.port")
M=http://127.0.0.1:$MPORT

log "image registry (prebake serve, every request logged)"
RLOG=$W/registry.log
"$PREBAKE" serve --root "$W/registry" --addr 127.0.0.1:0 --debug >"$W/serve.out" 2>"$RLOG" &
pids+=($!)
for _ in $(seq 600); do grep -q "^listening on" "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
REG=$(sed -n 's/^listening on //p' "$W/serve.out")
[ -n "$REG" ] || { echo "e2e-join: prebake serve did not start: $(cat "$RLOG")" >&2; exit 1; }

log "pause and test-pod images, built by prebake from static binaries"
img_build() { # NAME REF(registry/repo:tag) -> prints the pushed digest
  local n=$1 ref=$2 repo=${2#*/}
  rm -rf "$W/img-$n" && cp -r "hack/real/images/$n" "$W/img-$n"
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -buildid=' -o "$W/img-$n/$n" "./hack/real/$n"
  XDG_CACHE_HOME=$CACHE/xdg "$PREBAKE" build "$W/img-$n/recipe.yaml" -q -o "oci:$W/img-oci:$n" \
    --push "$REG/$repo" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'
}
PAUSE_REF=registry.k8s.io/pause:3.10.2
HELLO_REF=registry.test/prebake/hello:1.0.0
PAUSE_DIGEST=$(img_build pause "$PAUSE_REF")
HELLO_DIGEST=$(img_build hello "$HELLO_REF")
echo "$PAUSE_REF@$PAUSE_DIGEST $HELLO_REF@$HELLO_DIGEST" >&2

log "prebake-agent (built from this repository, checked against the catalog lock)"
go run ./hack/agentbuild -o "$CACHE/agent" -arch amd64 >&2
AGENT_URL=https://github.com/prebake/prebake/releases/download/

log "node image: catalog kubernetes-node, real lock, --locked"
cp -r recipes/catalog/kubernetes-node "$W/recipe"
{ cat "$MIRROR/lock.yaml"
  grep -A1 -F "url: ${AGENT_URL}agent-v" recipes/catalog/kubernetes-node/recipe.lock.yaml | grep -v '^--$'
  printf 'images:\n  - ref: %s\n    digest: %s\n  - ref: %s\n    digest: %s\n' "$PAUSE_REF" "$PAUSE_DIGEST" "$HELLO_REF" "$HELLO_DIGEST"
} >"$W/recipe/recipe.lock.yaml"
XDG_CACHE_HOME=$CACHE/xdg "$PREBAKE" build "$W/recipe/recipe.yaml" --platform linux/amd64 --locked -q \
  --set kubernetes="$K8S_VERSION" \
  --pre-pull "$PAUSE_REF@$PAUSE_DIGEST" --pre-pull "$HELLO_REF@$HELLO_DIGEST" \
  --mirror "https://dl.k8s.io/=$M/dl.k8s.io/" --mirror "https://github.com/=$M/github.com/" \
  --mirror "$AGENT_URL=file://$CACHE/agent/" \
  --mirror "registry.k8s.io=$REG" --mirror "registry.test=$REG" \
  -o "oci:$W/oci:node" --json >"$W/build.json"
DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$W/build.json")
IMAGE="oci:$W/oci@$DIGEST"
echo "$IMAGE" >&2

log "Debian base with the image's osPackages"
BASE=$(BASE_PACKAGES="$(hack/boot/ospackages.py recipes/catalog/kubernetes-node/recipe.yaml)" hack/boot/base.sh)
echo "$BASE" >&2

log "export the disks"
ekey=$(cat disk/*.go internal/cli/export.go | sha256sum | cut -c1-12)
bkey=$(basename "$BASE" .tar)
NODE_DISK=$CACHE/node-${DIGEST#sha256:}-$bkey-$ekey.qcow2
BASE_DISK=$CACHE/baseline-$bkey-$ekey.qcow2
keep_disks "$NODE_DISK" "$BASE_DISK"
CMDLINE="console=tty0 console=ttyS0,115200 systemd.show_status=1"
t=$(date +%s)
[ -s "$NODE_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export "$IMAGE" --base "$BASE" --format qcow2 --size 6G --cmdline "$CMDLINE" -q -o "$NODE_DISK"
[ -s "$BASE_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export --base "$BASE" --format qcow2 --size 6G --cmdline "$CMDLINE" -q -o "$BASE_DISK"
EXPORT_SECONDS=$(( $(date +%s) - t ))

log "real control plane on 127.0.0.1 (guests: 10.0.2.2)"
hack/join/controlplane.sh start "$W/cp"
# shellcheck disable=SC1091
. "$W/cp/env"
kc() { "$ROOT/.cache/real/kubectl-v$K8S_VERSION/kubectl" --kubeconfig "$KUBECONFIG" "$@"; }

log "user-data"
"$PREBAKE" pull "$IMAGE" -q -o "$W/noderoot" >/dev/null
for v in prebake baseline; do
  umask 077
  cat >"$W/node-$v.yaml" <<YAML
apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  name: prebake-e2e
  apiServerEndpoint: $ENDPOINT
  caCertHashes: [$CA_HASH]
  bootstrapToken: $TOKEN
node:
  name: $v-node
  hostname: $v-node
  labels: {node.kubernetes.io/pool: e2e-join}
YAML
  umask 022
  printf 'instance-id: e2e-join-%s\nlocal-hostname: %s-node\n' "$v" "$v" >"$W/meta-data.$v"
done
"$PREBAKE" render "$W/node-prebake.yaml" --image "$IMAGE" -q -o "$W/user-data.prebake"
"$PREBAKE" render "$W/node-baseline.yaml" --kubernetes "$K8S_VERSION" -q -o "$W/user-data.cloud-config"
python3 hack/join/kubespray.py "$W/noderoot" "$W/recipe/recipe.lock.yaml" "http://10.0.2.2:$MPORT" \
  "$W/user-data.cloud-config" "http://10.0.2.2:${REG##*:}" registry.k8s.io registry.test -- "$PAUSE_REF" "$HELLO_REF" \
  >"$W/user-data.baseline"
for v in prebake baseline; do
  cloud-localds "$W/seed.$v.img" "$W/user-data.$v" "$W/meta-data.$v"
done

for v in prebake baseline; do
  # The test Pod waits for its node (nodeSelector) from before the boot.
  cat >"$W/pod-$v.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: hello-$v, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: $v-node}
  automountServiceAccountToken: false
  containers:
    - name: hello
      image: $HELLO_REF
      imagePullPolicy: IfNotPresent
      env: [{name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
YAML
  for _ in $(seq 60); do kc apply -f "$W/pod-$v.yaml" >/dev/null 2>&1 && break; sleep 1; done
  kc get pod "hello-$v" >/dev/null
done

for v in prebake baseline; do
  disk=$NODE_DISK; [ $v = baseline ] && disk=$BASE_DISK
  log "boot: $v"
  python3 hack/join/boot.py --name "$v" --disk "$disk" --seed "$W/seed.$v.img" --mirror-log "$MLOG" \
    --registry-log "$RLOG" --kubeconfig "$KUBECONFIG" --node "$v-node" --pod "hello-$v" \
    --log "$OUT/$v.console.log" --json "$OUT/$v.json" --timeout "${BOOT_TIMEOUT:-900}" || {
      echo "e2e-join: the $v node did not become Ready with its Pod Running; console: $OUT/$v.console.log" >&2
      tail -60 "$OUT/$v.console.log" >&2
      kc get nodes -o wide >&2 || true; kc describe pod "hello-$v" | tail -20 >&2 || true
      exit 1; }
  kc get node "$v-node" -o wide >&2
done
kc get pods -o wide >&2
kc get csr >&2 || true

log "results"
cp "$MLOG" "$OUT/mirror.log"; cp "$RLOG" "$OUT/registry.log"
python3 hack/join/results.py "$OUT/prebake.json" "$OUT/baseline.json" "$OUT/results.json" \
  "$BUILD_SECONDS" "$EXPORT_SECONDS" "$(( $(date +%s) - START ))" ${BENCH_APPEND:+docs/benchmarks.md}
