#!/usr/bin/env bash
# `make e2e-boot`: boots a prebake node disk and a download-at-boot baseline
# under qemu (UEFI, NoCloud seed), and compares when each reaches the join.
# See docs/boot.md. Everything lands under _out/boot; the Debian base, the
# stand-ins and the disks are cached by content hash under .cache/boot.
#
#   1. a minimal Debian 12 base (hack/boot/base.sh, mmdebstrap)
#   2. stand-in upstream binaries on a loopback HTTP mirror (hack/boot/standins.py, mirror.py)
#   3. the catalog kubernetes-node recipe built from that mirror (prebake build)
#   4. prebake export: node disk = base + image; baseline disk = base alone
#   5. user-data: prebake render (prebake); render + a Kubespray-style installer (baseline)
#   6. both boots (hack/boot/boot.py), results JSON, a table in docs/benchmarks.md
#
# Fails if the prebake boot downloaded any byte, if either boot did not reach
# the join, or if the prebake boot did not reach it first.
#
# Environment: STANDIN_SCALE=100 (percent of real binary sizes),
# BOOT_TIMEOUT=900 (seconds per boot), BENCH_APPEND=1 (append to docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
OUT=$ROOT/_out/boot
CACHE=$ROOT/.cache/boot
SCALE=${STANDIN_SCALE:-100}
mkdir -p "$OUT" "$CACHE"
export PATH="$ROOT/.cache/tools/bin:$PATH" GOFLAGS=-buildvcs=false
log() { printf '\n\033[1m== %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - START ))" >&2; }

log "tools"
hack/tools.sh sgdisk mcopy mmd mkfs.vfat mkfs.ext4 debugfs qemu-img objcopy
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
command -v cloud-localds >/dev/null || need+=(cloud-image-utils)
if [ ${#need[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# A private copy of the binary: `make clean` elsewhere must not pull it away
# mid-run (the same goes for _out/boot, recreated before each write).
make -s build >/dev/null
mkdir -p "$CACHE/bin" && cp bin/prebake "$CACHE/bin/prebake"
PREBAKE=${PREBAKE:-$CACHE/bin/prebake}

log "Debian 12 base"
BASE=$(hack/boot/base.sh)
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

log "node image from the catalog recipe (stand-ins from $M)"
cp -r recipes/catalog/kubernetes-node "$W/recipe"
cp "$STANDINS/lock.yaml" "$W/recipe/recipe.lock.yaml"
XDG_CACHE_HOME=$CACHE/xdg "$PREBAKE" build "$W/recipe/recipe.yaml" --platform linux/amd64 --locked -q \
  --mirror "https://dl.k8s.io/=$M/dl.k8s.io/" --mirror "https://github.com/=$M/github.com/" \
  -o "oci:$W/oci:node" --json >"$W/build.json"
DIGEST=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("digest") or d["image"]["digest"])' "$W/build.json")
IMAGE="oci:$W/oci@$DIGEST"
echo "$IMAGE" >&2

log "export the disks"
ekey=$(cat disk/*.go internal/cli/export.go | sha256sum | cut -c1-12)
bkey=$(basename "$BASE" .tar)
NODE_DISK=$CACHE/node-${DIGEST#sha256:}-$bkey-$ekey.qcow2
BASE_DISK=$CACHE/baseline-$bkey-$ekey.qcow2
CMDLINE="console=tty0 console=ttyS0,115200 systemd.show_status=1"
t=$(date +%s.%N)
[ -s "$NODE_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export "$IMAGE" --base "$BASE" --format qcow2 --size 4G --cmdline "$CMDLINE" -q -o "$NODE_DISK"
[ -s "$BASE_DISK" ] || SOURCE_DATE_EPOCH=1767225600 "$PREBAKE" export --base "$BASE" --format qcow2 --size 4G --cmdline "$CMDLINE" -q -o "$BASE_DISK"
EXPORT_SECONDS=$(python3 -c "import time; print(round(time.time()-$t, 1))")
qemu-img check -q "$NODE_DISK"

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
"$PREBAKE" render "$W/node.yaml" --image "$IMAGE" -q -o "$W/user-data.prebake"
"$PREBAKE" render "$W/node.yaml" --kubernetes 1.36.4 -q -o "$W/user-data.cloud-config"
# The baseline installs at boot what the image holds: the same binaries,
# downloaded from the mirror and checked against the lock, and the image's
# configuration files (units, sysctl, modules), minus prebake's join units.
"$PREBAKE" pull "$IMAGE" -q -o "$W/noderoot" >/dev/null
python3 hack/boot/kubespray.py "$W/noderoot" "$STANDINS/lock.yaml" "http://10.0.2.2:$PORT" \
  "$W/user-data.cloud-config" >"$W/user-data.baseline"
for v in prebake baseline; do
  printf 'instance-id: boot-test-%s\nlocal-hostname: boot-test-worker\n' "$v" >"$W/meta-data.$v"
  cloud-localds "$W/seed.$v.img" "$W/user-data.$v" "$W/meta-data.$v"
done

for v in prebake baseline; do
  disk=$NODE_DISK; [ $v = baseline ] && disk=$BASE_DISK
  log "boot: $v"
  mkdir -p "$OUT"
  python3 hack/boot/boot.py --name "$v" --disk "$disk" --seed "$W/seed.$v.img" --mirror-log "$MLOG" \
    --log "$OUT/$v.console.log" --json "$OUT/$v.json" --timeout "${BOOT_TIMEOUT:-900}" || {
      echo "e2e-boot: the $v boot did not reach the join; console: $OUT/$v.console.log" >&2; tail -40 "$OUT/$v.console.log" >&2; exit 1; }
done

log "results"
mkdir -p "$OUT"
cp "$MLOG" "$OUT/mirror.log"
python3 hack/boot/results.py "$OUT/prebake.json" "$OUT/baseline.json" "$OUT/results.json" "$EXPORT_SECONDS" "$(( $(date +%s) - START ))" \
  ${BENCH_APPEND:+docs/benchmarks.md}
