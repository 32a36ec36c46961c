#!/usr/bin/env bash
# `make e2e-cluster`: a two-machine Kubernetes cluster from prebake images,
# with nothing downloaded and no image pulled at boot. See docs/cluster.md.
#
#   1. real binaries built from source (hack/real/build.sh; cached by version),
#      laid out as a loopback mirror of their upstream URLs + a lock
#      (hack/real/mirror.py); `prebake serve` as the image registry
#   2. the control-plane images (kube-apiserver, kube-controller-manager,
#      kube-scheduler, kube-proxy, etcd, coredns, pause) and the test pod's
#      image built BY PREBAKE from the static binaries (hack/real/images/*)
#      and pushed under the names kubeadm expects (registry.k8s.io/…)
#   3. the catalog kubernetes-control-plane recipe built --locked, every
#      control-plane image pre-pulled by digest; the catalog kubernetes-node
#      recipe with what a worker runs (pause, kube-proxy, coredns, the pod)
#   4. prebake export of both over a Debian base
#   5. a CA, a token and user-data: `prebake render --init` for the control
#      plane, `prebake render` (pinned to the CA) for the worker
#   6. both machines under qemu (hack/cluster/boot.py; the worker starts when
#      the control plane's API server answers): guest to guest on a
#      private qemu socket network (192.0.2.0/24, TEST-NET-1), each machine's
#      user network `restrict=on` (no way out), the API server reached by the
#      host through a loopback port forward; results
#
# Fails unless both Nodes are Ready and the test Pod runs on the worker
# within BOOT_TIMEOUT, or if either machine fetched a byte or pulled an image.
#
# Environment: K8S_VERSION=1.36.3 BOOT_TIMEOUT=1800 BENCH_APPEND=1 (row in docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
NAME=cluster
. hack/e2e-setup.sh
export K8S_VERSION=${K8S_VERSION:-1.36.3}

log "real binaries (source builds, cached by version)"
t=$(date +%s)
hack/real/build.sh all >/dev/null
BUILD_SECONDS=$(( $(date +%s) - t ))
REAL=$ROOT/.cache/real

W=$CACHE/run
rm -rf "$W" && mkdir -p "$W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

log "loopback file mirror of the upstream URLs"
mkey=$( { cat hack/real/mirror.py hack/real/build.sh; echo "$K8S_VERSION"; } | sha256sum | cut -c1-16)
MIRROR=$CACHE/mirror-$mkey
if [ ! -s "$MIRROR/lock.yaml" ]; then
  rm -rf "$MIRROR.tmp" && mkdir -p "$MIRROR.tmp"
  python3 hack/real/mirror.py "$REAL" "$MIRROR.tmp/mirror" "$MIRROR.tmp/lock.yaml"
  rm -rf "$MIRROR" && mv "$MIRROR.tmp" "$MIRROR"
fi
MLOG=$W/mirror.log
: >"$MLOG"
python3 hack/boot/mirror.py "$MIRROR/mirror" "$MLOG" "$W/mirror.port" &
pids+=($!)
for _ in $(seq 600); do [ -s "$W/mirror.port" ] && break; sleep 0.1; done
M=http://127.0.0.1:$(cat "$W/mirror.port")

log "image registry (prebake serve, every request logged)"
RLOG=$W/registry.log
"$PREBAKE" serve --root "$W/registry" --addr 127.0.0.1:0 --debug >"$W/serve.out" 2>"$RLOG" &
pids+=($!)
for _ in $(seq 600); do grep -q "^listening on" "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
REG=$(sed -n 's/^listening on //p' "$W/serve.out")
[ -n "$REG" ] || { echo "e2e-cluster: prebake serve did not start: $(cat "$RLOG")" >&2; exit 1; }

log "control-plane and test images, built by prebake from static binaries"
# The names and tags kubeadm expects (`kubeadm config images list`).
mapfile -t WANT < <("$REAL/kubeadm-v$K8S_VERSION/kubeadm" config images list --kubernetes-version "v$K8S_VERSION")
printf '  %s\n' "${WANT[@]}" >&2
img_build() { # NAME BINARY REF -> prints REF@DIGEST
  local n=$1 bin=$2 ref=$3 repo=${3#*/}
  repo=${repo%:*}
  rm -rf "$W/img-$n" && cp -r "hack/real/images/$n" "$W/img-$n"
  cp "$bin" "$W/img-$n/$n"
  local d
  d=$(XDG_CACHE_HOME=$CACHE/xdg "$PREBAKE" build "$W/img-$n/recipe.yaml" -q -o "oci:$W/img-oci:$n" \
    --push "$REG/$repo:${ref##*:}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
  echo "$ref@$d"
}
build_go() { # NAME -> path of a static binary of ./hack/real/NAME
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -buildid=' -o "$W/$1.bin" "./hack/real/$1"
  echo "$W/$1.bin"
}
declare -A REFS
for ref in "${WANT[@]}"; do
  name=${ref#registry.k8s.io/}; name=${name%%:*}; name=${name##*/}
  case $name in
    kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy) bin=$REAL/$name-v$K8S_VERSION/$name ;;
    etcd) bin=$REAL/etcd-v$(ls "$REAL" | sed -n 's/^etcd-v\([0-9.]*\)$/\1/p' | head -1)/etcd ;;
    coredns) bin=$(ls -d "$REAL"/coredns-v*[0-9] | head -1)/coredns ;;
    pause) bin=$(build_go pause) ;;
    *) echo "e2e-cluster: kubeadm expects an image this test cannot build: $ref" >&2; exit 1 ;;
  esac
  REFS[$name]=$(img_build "$name" "$bin" "$ref")
done
HELLO_REF=registry.test/prebake/hello:1.0.0
REFS[hello]=$(img_build hello "$(build_go hello)" "$HELLO_REF")
for k in "${!REFS[@]}"; do echo "  ${REFS[$k]}" >&2; done

log "prebake-agent (built from this repository, checked against the catalog lock)"
go run ./hack/agentbuild -o "$CACHE/agent" -arch amd64 >&2
AGENT_URL=https://github.com/prebake/prebake/releases/download/

# build RECIPE OUT REF@DIGEST...: the catalog recipe, the real lock, --locked.
build_image() {
  local recipe=$1 out=$2; shift 2
  rm -rf "$W/$out" && cp -r "recipes/catalog/$recipe" "$W/$out"
  local pre=() r
  { cat "$MIRROR/lock.yaml"
    grep -A1 -F "url: ${AGENT_URL}agent-v" "recipes/catalog/$recipe/recipe.lock.yaml" | grep -v '^--$'
    echo "images:"
    for r in "$@"; do printf '  - ref: %s\n    digest: %s\n' "${r%@*}" "${r#*@}"; pre+=(--pre-pull "$r"); done
  } >"$W/$out/recipe.lock.yaml"
  XDG_CACHE_HOME=$CACHE/xdg "$PREBAKE" build "$W/$out/recipe.yaml" --platform linux/amd64 --locked -q \
    --set kubernetes="$K8S_VERSION" "${pre[@]}" \
    --mirror "https://dl.k8s.io/=$M/dl.k8s.io/" --mirror "https://github.com/=$M/github.com/" \
    --mirror "$AGENT_URL=file://$CACHE/agent/" \
    --mirror "registry.k8s.io=$REG" --mirror "registry.test=$REG" \
    -o "oci:$W/oci:$out" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])'
}
log "control-plane image: catalog kubernetes-control-plane, every control-plane image pre-pulled"
CP_DIGEST=$(build_image kubernetes-control-plane cp "${REFS[kube-apiserver]}" "${REFS[kube-controller-manager]}" \
  "${REFS[kube-scheduler]}" "${REFS[kube-proxy]}" "${REFS[etcd]}" "${REFS[coredns]}" "${REFS[pause]}")
log "worker image: catalog kubernetes-node, what a worker runs pre-pulled"
WK_DIGEST=$(build_image kubernetes-node worker "${REFS[pause]}" "${REFS[kube-proxy]}" "${REFS[coredns]}" "${REFS[hello]}")
CP_IMAGE="oci:$W/oci@$CP_DIGEST"
WK_IMAGE="oci:$W/oci@$WK_DIGEST"
echo "$CP_IMAGE $WK_IMAGE" >&2

log "Debian base with the images' osPackages"
BASE=$(BASE_PACKAGES="$(hack/boot/ospackages.py recipes/catalog/kubernetes-control-plane/recipe.yaml)" hack/boot/base.sh)
echo "$BASE" >&2

log "export the disks"
ekey=$(cat disk/*.go internal/cli/export.go | sha256sum | cut -c1-12)
bkey=$(basename "$BASE" .tar)
CP_DISK=$CACHE/cp-${CP_DIGEST#sha256:}-$bkey-$ekey.qcow2
WK_DISK=$CACHE/worker-${WK_DIGEST#sha256:}-$bkey-$ekey.qcow2
keep_disks "$CP_DISK" "$WK_DISK"
CMDLINE="console=tty0 console=ttyS0,115200 systemd.show_status=1"
t=$(date +%s)
[ -s "$CP_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export "$CP_IMAGE" --base "$BASE" --format qcow2 --size 8G --cmdline "$CMDLINE" -q -o "$CP_DISK"
[ -s "$WK_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export "$WK_IMAGE" --base "$BASE" --format qcow2 --size 6G --cmdline "$CMDLINE" -q -o "$WK_DISK"
EXPORT_SECONDS=$(( $(date +%s) - t ))

log "CA, token, admin credential (test only)"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/ca.key" -out "$W/ca.crt" -days 3650 -subj /CN=kubernetes \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature,keyEncipherment 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$W/admin.key" -out "$W/admin.csr" -subj "/O=system:masters/CN=e2e-admin" 2>/dev/null
openssl x509 -req -in "$W/admin.csr" -CA "$W/ca.crt" -CAkey "$W/ca.key" -CAcreateserial -days 1 -out "$W/admin.crt" 2>/dev/null
TOKEN=$(python3 -c 'import secrets,string; a=string.ascii_lowercase+string.digits; print("".join(secrets.choice(a) for _ in range(6))+"."+"".join(secrets.choice(a) for _ in range(16)))')
CERT_KEY=$(openssl rand -hex 32)
CP_IP=192.0.2.10 WK_IP=192.0.2.11
cat >"$W/cp.yaml" <<YAML
apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  name: prebake-e2e
  apiServerEndpoint: $CP_IP:6443
  caCertFile: ca.crt
  caKeyFile: ca.key
  bootstrapToken: $TOKEN
  podSubnet: 10.244.0.0/16
  initTimeout: 30m
node:
  name: cp-1
  hostname: cp-1
  advertiseAddress: $CP_IP
  certificateKey: $CERT_KEY
  kubeletExtraArgs: {node-ip: $CP_IP}
  # Under emulation the API server takes longer to answer than kubeadm's
  # probes allow (startup ~4 min, liveness 80 s); killed and restarted, it
  # starts over and never answers (seen here). Longer probes, through
  # kubeadm patches (docs/render.md). And no leader election for the one
  # controller manager and scheduler: renewing their lease every 2 s with a
  # 10 s deadline failed under emulation, and each loss restarts the
  # controller manager, whose CSR approver never got to the worker's CSR.
  kubeadmPatches:
$(for c in kube-apiserver kube-controller-manager kube-scheduler etcd; do cat <<PATCH
    - target: $c
      patch: |
        spec:
          containers:
            - name: $c
              startupProbe: {failureThreshold: 180, timeoutSeconds: 30}
              livenessProbe: {failureThreshold: 30, timeoutSeconds: 30}
PATCH
done)
$(for c in kube-controller-manager kube-scheduler; do cat <<PATCH
    - target: $c
      type: json
      patch: '[{"op": "add", "path": "/spec/containers/0/command/-", "value": "--leader-elect=false"}]'
PATCH
done)
YAML
cat >"$W/worker.yaml" <<YAML
apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  name: prebake-e2e
  apiServerEndpoint: $CP_IP:6443
  caCertFile: ca.crt
  bootstrapToken: $TOKEN
  discoveryTimeout: 30m
node:
  name: worker-1
  hostname: worker-1
  labels: {node.kubernetes.io/pool: e2e-cluster}
  kubeletExtraArgs: {node-ip: $WK_IP}
YAML
umask 022

log "user-data: render --init (control plane), render (worker)"
"$PREBAKE" render "$W/cp.yaml" --init --image "$CP_IMAGE" -o "$W/user-data.cp"
# The worker's user-data as a provisioner writes it: read from its image
# (join unit and prebake-agent from the annotations), so the agent joins.
"$PREBAKE" render "$W/worker.yaml" --image "$WK_IMAGE" -o "$W/user-data.worker"
for v in cp worker; do
  ip=$CP_IP mac=52:54:00:12:00:10; [ $v = worker ] && { ip=$WK_IP; mac=52:54:00:12:00:11; }
  printf 'instance-id: e2e-cluster-%s\nlocal-hostname: %s\n' "$v" "$v" >"$W/meta-data.$v"
  cat >"$W/network-config.$v" <<YAML
version: 2
ethernets:
  uplink:
    match: {macaddress: "52:54:00:12:34:56"}
    dhcp4: true
  cluster:
    match: {macaddress: "$mac"}
    addresses: [$ip/24]
YAML
  cloud-localds --network-config "$W/network-config.$v" "$W/seed.$v.img" "$W/user-data.$v" "$W/meta-data.$v"
done

log "boot both machines"
python3 hack/cluster/boot.py --cp-disk "$CP_DISK" --worker-disk "$WK_DISK" --cp-seed "$W/seed.cp.img" --worker-seed "$W/seed.worker.img" \
  --ca "$W/ca.crt" --cert "$W/admin.crt" --key "$W/admin.key" --hello "$HELLO_REF" \
  --mirror-log "$MLOG" --registry-log "$RLOG" --out "$OUT" --timeout "${BOOT_TIMEOUT:-1800}" || {
    echo "e2e-cluster: the cluster did not come up; consoles: $OUT/cp.console.log $OUT/worker.console.log" >&2
    tail -40 "$OUT/cp.console.log" >&2 || true
    tail -40 "$OUT/worker.console.log" >&2 || true
    exit 1; }

log "results"
cp "$MLOG" "$OUT/mirror.log"; cp "$RLOG" "$OUT/registry.log"
python3 hack/cluster/results.py "$OUT/cluster.json" "$BUILD_SECONDS" "$EXPORT_SECONDS" "$(( $(date +%s) - START ))" ${BENCH_APPEND:+docs/benchmarks.md}
