# Sourced by the qemu end-to-end tests (hack/e2e-boot.sh, hack/e2e-join.sh,
# hack/cluster/e2e.sh) after `cd` to the repository root, with NAME set to
# the test's name: sets ROOT, START, OUT (_out/NAME), CACHE (.cache/NAME),
# PATH and log(), installs what the tests need (tools into .cache/tools,
# Debian packages with apt-get) and builds a private copy of prebake and
# prebake-serve (serve runs it from beside prebake) into $CACHE/bin:
# `make clean` elsewhere must not pull it away mid-run. PREBAKE names it
# unless the caller set PREBAKE.
ROOT=$PWD
START=$(date +%s)
OUT=$ROOT/_out/$NAME
CACHE=$ROOT/.cache/$NAME
mkdir -p "$OUT" "$CACHE"
export PATH="$ROOT/.cache/tools/bin:$PATH" GOFLAGS=-buildvcs=false
log() { printf '\n\033[1m== %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - START ))" >&2; }
# keep_disks DISK...: removes the cached disks ($CACHE/*.qcow2, 1-1.3 GB
# each) this run does not use. They are named by image digest and inputs,
# so a changed image or disk code makes new ones, and the old ones would
# fill the machine's disk run after run.
keep_disks() {
  local d k keep
  for d in "$CACHE"/*.qcow2; do
    [ -e "$d" ] || continue
    keep=
    for k in "$@"; do [ "$d" = "$k" ] && keep=1; done
    [ -n "$keep" ] || { echo "e2e: removing unused cached disk $(basename "$d")" >&2; rm -f "$d"; }
  done
}

log "tools"
hack/tools.sh sgdisk mcopy mmd mkfs.vfat mkfs.ext4 debugfs qemu-img objcopy openssl
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
make -s build >/dev/null
mkdir -p "$CACHE/bin" && cp bin/prebake bin/prebake-serve "$CACHE/bin/"
PREBAKE=${PREBAKE:-$CACHE/bin/prebake}
