#!/usr/bin/env bash
# `make e2e-boot`: boots, under qemu (UEFI, NoCloud seed), in the same run:
#   agent     the catalog node image with prebake-agent: the agent joins
#   cloudinit the same image without the agent component: cloud-init joins,
#             from the same seed (the same rendered user-data)
#   baseline  the base alone with a download-at-boot installer (Kubespray-style)
# and records kernel -> agent start -> join start for each. See docs/boot.md
# and docs/agent.md. Everything lands under _out/boot; the Debian base, the
# stand-ins and the disks are cached by content hash under .cache/boot.
#
#   1. a minimal Debian 12 base (hack/boot/base.sh, mmdebstrap)
#   2. stand-in upstream binaries on a loopback HTTP mirror (hack/boot/standins.py, mirror.py)
#   3. prebake-agent built from this repository (make agent: reproducible,
#      checked against the catalog lock), taken through --mirror
#   4. the catalog kubernetes-node recipe built from those (prebake build
#      --locked), with and without its agent component
#   5. prebake export: two node disks (base + image), baseline disk = base alone
#   6. user-data: prebake render (one document for both node disks); render +
#      a Kubespray-style installer (baseline)
#   7. the three boots (hack/boot/boot.py), results JSON, a table in docs/benchmarks.md
#
# Fails if a node boot downloaded any byte, if a boot did not reach the join,
# if the agent boot did not join through the agent or the cloud-init boot
# not through cloud-init, or if the cloud-init boot did not beat the baseline.
#
# Environment: STANDIN_SCALE=100 (percent of real binary sizes),
# BOOT_TIMEOUT=900 (seconds per boot), BENCH_APPEND=1 (append to docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=boot
. hack/e2e-setup.sh
SCALE=${STANDIN_SCALE:-100}

log "Debian 12 base with the image's osPackages"
BASE=$(BASE_PACKAGES="$(hack/boot/ospackages.py recipes/catalog/kubernetes-node/recipe.yaml)" hack/boot/base.sh)
echo "$BASE" >&2

log "stand-ins (${SCALE}% of real sizes)"
skey=$( { cat hack/boot/standins.py; echo "$SCALE"; } | sha256sum | cut -c1-16)
STANDINS=$CACHE/standins-$skey
if [ ! -s "$STANDINS/lock.yaml" ]; then
  rm -rf "$STANDINS.tmp" && mkdir -p "$STANDINS.tmp"
  python3 hack/boot/standins.py "$STANDINS.tmp/mirror" "$STANDINS.tmp/lock.yaml" "$SCALE" >/dev/null
  rm -rf "$STANDINS" && mv "$STANDINS.tmp" "$STANDINS"
fi

W=$CACHE/run
rm -rf "$W" && mkdir -p "$W"

log "loopback mirror"
MLOG=$W/mirror.log
: >"$MLOG"
python3 hack/boot/mirror.py "$STANDINS/mirror" "$MLOG" "$W/mirror.port" &
MPID=$!
trap 'kill $MPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$W/mirror.port" ] && break; sleep 0.1; done
PORT=$(cat "$W/mirror.port")
M=http://127.0.0.1:$PORT

log "prebake-agent (built from this repository, checked against the catalog lock)"
go run ./hack/agentbuild -o "$CACHE/agent" -arch amd64 >&2
AGENT_URL=https://github.com/prebake/prebake/releases/download/

log "node images from the catalog recipe (stand-ins from $M, the agent from $CACHE/agent)"
# With the agent: the catalog recipe as is; the lock is the stand-ins' plus
# the catalog lock's prebake-agent entries. Without: the agent component and
# its annotation cut out (everything else identical).
mkdir -p "$W/recipe" "$W/recipe-noagent"
cp -r recipes/catalog/kubernetes-node/. "$W/recipe/"
{ cat "$STANDINS/lock.yaml"; grep -A1 -F "url: ${AGENT_URL}agent-v" recipes/catalog/kubernetes-node/recipe.lock.yaml | grep -v '^--$'; } >"$W/recipe/recipe.lock.yaml"
cp -r "$W/recipe/." "$W/recipe-noagent/"
sed -e '/dev.prebake.agent:/d' -e '/^  # prebake-agent (docs\/agent.md)/,$d' recipes/catalog/kubernetes-node/recipe.yaml >"$W/recipe-noagent/recipe.yaml"
build_image() { # RECIPE_DIR TAG -> digest
  XDG_CACHE_HOME=$CACHE/xdg "$PREBAKE" build "$1/recipe.yaml" --platform linux/amd64 --locked -q \
    --mirror "https://dl.k8s.io/=$M/dl.k8s.io/" --mirror "https://github.com/=$M/github.com/" \
    --mirror "$AGENT_URL=file://$CACHE/agent/" \
    -o "oci:$W/oci:$2" --json >"$W/build-$2.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("digest") or d["image"]["digest"])' "$W/build-$2.json"
}
DIGEST=$(build_image "$W/recipe" node)
IMAGE="oci:$W/oci@$DIGEST"
DIGEST_NOAGENT=$(build_image "$W/recipe-noagent" node-noagent)
IMAGE_NOAGENT="oci:$W/oci@$DIGEST_NOAGENT"
echo "agent: $IMAGE" >&2
echo "no agent: $IMAGE_NOAGENT" >&2

log "export the disks"
# The kernel command line (baked into the disks' kernel image): loglevel=6
# keeps the kernel's notices (its version line) on the serial console and
# drops its info lines and systemd's duplicate kmsg lines (every console byte
# is emulated under TCG); cryptomgr.notests skips the crypto self-tests at
# boot; systemd.gpt_auto=0: root= names the root, nothing to discover. See
# docs/boot.md, "Trimming the base".
CMDLINE="console=tty0 console=ttyS0,115200 systemd.show_status=1 loglevel=6 cryptomgr.notests systemd.gpt_auto=0"
ekey=$( { cat disk/*.go internal/cli/export.go; echo "$CMDLINE"; } | sha256sum | cut -c1-12)
bkey=$(basename "$BASE" .tar)
NODE_DISK=$CACHE/node-${DIGEST#sha256:}-$bkey-$ekey.qcow2
NOAGENT_DISK=$CACHE/node-${DIGEST_NOAGENT#sha256:}-$bkey-$ekey.qcow2
BASE_DISK=$CACHE/baseline-$bkey-$ekey.qcow2
keep_disks "$NODE_DISK" "$NOAGENT_DISK" "$BASE_DISK"
t=$(date +%s.%N)
[ -s "$NODE_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export "$IMAGE" --base "$BASE" --format qcow2 --size 4G --cmdline "$CMDLINE" -q -o "$NODE_DISK"
[ -s "$NOAGENT_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export "$IMAGE_NOAGENT" --base "$BASE" --format qcow2 --size 4G --cmdline "$CMDLINE" -q -o "$NOAGENT_DISK"
[ -s "$BASE_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export --base "$BASE" --format qcow2 --size 4G --cmdline "$CMDLINE" -q -o "$BASE_DISK"
EXPORT_SECONDS=$(python3 -c "import time; print(round(time.time()-$t, 1))")
qemu-img check -q "$NODE_DISK"
qemu-img check -q "$NOAGENT_DISK"

log "user-data"
cat >"$W/node.yaml" <<YAML
apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  name: boot-test
  apiServerEndpoint: 10.0.2.2:6443   # no control plane exists: kubeadm is a stand-in
  caCertHashes: [sha256:0000000000000000000000000000000000000000000000000000000000000000]
  bootstrapToken: abcdef.0123456789abcdef
node:
  name: boot-test-worker
  hostname: boot-test-worker
  labels: {node.kubernetes.io/pool: boot-test}
YAML
# One document for both node disks: the image with the agent declares it
# (dev.prebake.agent), so the render carries the agent's block; cloud-init
# reads the same bytes on the disk without the agent.
"$PREBAKE" render "$W/node.yaml" --image "$IMAGE" -q -o "$W/user-data.prebake"
grep -q '^# prebake-agent/v1 begin ' "$W/user-data.prebake" || { echo "e2e-boot: the render has no prebake-agent block" >&2; exit 1; }
"$PREBAKE" render "$W/node.yaml" --kubernetes 1.36.4 -q -o "$W/user-data.cloud-config"
# The baseline installs at boot what the image holds: the same binaries,
# downloaded from the mirror and checked against the lock, and the image's
# configuration files (units, sysctl, modules), minus prebake's join units.
"$PREBAKE" pull "$IMAGE_NOAGENT" -q -o "$W/noderoot" >/dev/null
python3 hack/boot/kubespray.py "$W/noderoot" "$STANDINS/lock.yaml" "http://10.0.2.2:$PORT" \
  "$W/user-data.cloud-config" >"$W/user-data.baseline"
for v in prebake baseline; do
  printf 'instance-id: boot-test-%s\nlocal-hostname: boot-test-worker\n' "$v" >"$W/meta-data.$v"
  cloud-localds "$W/seed.$v.img" "$W/user-data.$v" "$W/meta-data.$v"
done

for v in agent cloudinit baseline; do
  case $v in
    agent) disk=$NODE_DISK seed=$W/seed.prebake.img ;;
    cloudinit) disk=$NOAGENT_DISK seed=$W/seed.prebake.img ;;
    baseline) disk=$BASE_DISK seed=$W/seed.baseline.img ;;
  esac
  log "boot: $v"
  mkdir -p "$OUT"
  python3 hack/boot/boot.py --name "$v" --disk "$disk" --seed "$seed" --mirror-log "$MLOG" \
    --log "$OUT/$v.console.log" --json "$OUT/$v.json" --timeout "${BOOT_TIMEOUT:-900}" || {
      echo "e2e-boot: the $v boot did not reach the join; console: $OUT/$v.console.log" >&2; tail -40 "$OUT/$v.console.log" >&2; exit 1; }
done

log "results"
mkdir -p "$OUT"
cp "$MLOG" "$OUT/mirror.log"
python3 hack/boot/results.py "$OUT/agent.json" "$OUT/cloudinit.json" "$OUT/baseline.json" "$OUT/results.json" "$EXPORT_SECONDS" "$(( $(date +%s) - START ))" \
  ${BENCH_APPEND:+docs/benchmarks.md}
