#!/usr/bin/env bash
# The paths a CI job calls, each against its peer in the same run (issue 18):
#
#   start     `prebake version` vs `crane version`: CPU (user+system), plus
#             packages linked, binary size and package-initialisation time
#   re-push   pushing an image the registry already has (0 bytes moved) vs crane
#   pull      pull by digest into an OCI layout vs `crane pull --format=oci`
#   verify    `prebake verify --skip-blobs` vs `cosign verify` (key, no tlog)
#   zstd      building one large component as a zstd layer vs
#             `tar -c | zstd -T0 -3 | sha256sum` over the same files
#   render    rendering a 1,000-node NodeConfigList to a new directory
#             (docs/s; no peer: the target is >= 5,000 docs/s on ext4)
#
# Registry rows use Debian's docker-registry on loopback. A row's commands
# run in rounds of hyperfine, the order reversed every other round (other
# work on the machine hits both alike); medians are reported, ratio = prebake / peer (below 1 is
# faster). The load average is recorded at the start and the end. Appends a
# row to the "CI paths" section of docs/benchmarks.md and writes
# docs/benchmarks-ci.json (the last run).
#
# Env: PREBAKE (bin/prebake), RUNS (20), ZSTD_MB (250), IMAGE_MB (64), NO_DOC=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$ROOT/.cache/tools/bin:$PATH
PREBAKE=${PREBAKE:-$ROOT/bin/prebake}
RUNS=${RUNS:-20}
ZSTD_MB=${ZSTD_MB:-250}
IMAGE_MB=${IMAGE_MB:-64}
for t in crane cosign docker-registry hyperfine jq zstd openssl python3 bc; do
  command -v "$t" >/dev/null || { echo "bench-ci: $t not found: run hack/tools.sh" >&2; exit 1; }
done
[ -x "$PREBAKE" ] || { echo "bench-ci: $PREBAKE missing: run make build" >&2; exit 1; }

W=$(mktemp -d /tmp/prebake-bench-ci.XXXXXX)
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench-ci: load average at start $LOAD_START ($(nproc) cores)"

# hf NAME [--prepare CMD] -n NAME CMD [-n NAME CMD] : the commands measured in
# HF_ROUNDS (4) rounds of hyperfine, the order reversed every other round
# (A B, B A, …), so drift in the machine's load hits both sides of a row
# alike (one hyperfine call runs all of a command's runs before the next
# command's); every round's times merged into $W/NAME.json (medians over all).
hf() {
  local name=$1; shift
  local opts=() pairs=() runs=${HF_RUNS:-$RUNS} rounds=${HF_ROUNDS:-4}
  while [ $# -gt 0 ]; do
    case $1 in
      --prepare) opts+=(--prepare "$2"); shift 2 ;;
      -n) pairs+=("$2" "$3"); shift 3 ;;
      *) echo "hf: unexpected $1" >&2; return 1 ;;
    esac
  done
  local per=$(( (runs + rounds - 1) / rounds )) r i args
  for r in $(seq 0 $((rounds - 1))); do
    args=()
    if [ $((r % 2)) -eq 0 ]; then
      for ((i = 0; i < ${#pairs[@]}; i += 2)); do args+=(-n "${pairs[i]}" "${pairs[i+1]}"); done
    else
      for ((i = ${#pairs[@]} - 2; i >= 0; i -= 2)); do args+=(-n "${pairs[i]}" "${pairs[i+1]}"); done
    fi
    hyperfine -N --warmup "$([ "$r" -eq 0 ] && echo "${HF_WARMUP:-2}" || echo 0)" --runs "$per" \
      --export-json "$W/$name.$r.json" "${opts[@]}" "${args[@]}" >&2
  done
  python3 - "$W/$name.json" "$W/$name".[0-9]*.json <<'PY'
import json, statistics, sys
out, parts = sys.argv[1], sys.argv[2:]
acc = {}
for p in parts:
    for r in json.load(open(p))["results"]:
        a = acc.setdefault(r["command"], {"times": [], "user": [], "system": []})
        n = len(r["times"])
        a["times"] += r["times"]
        a["user"] += [r["user"]] * n
        a["system"] += [r["system"]] * n
json.dump({"results": [{"command": c, "median": statistics.median(a["times"]), "times": a["times"],
                        "user": statistics.fmean(a["user"]), "system": statistics.fmean(a["system"])}
                       for c, a in acc.items()]}, open(out, "w"))
PY
}
med() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .median * 1000' "$W/$1.json"; }
cpu() { jq -r --arg n "$2" '.results[] | select(.command == $n) | (.user + .system) * 1000' "$W/$1.json"; }
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
ms() { printf '%.0f' "$1"; }

# --- start-up -----------------------------------------------------------------
hf start -n prebake "$PREBAKE version" -n crane "crane version"
START_P=$(cpu start prebake); START_C=$(cpu start crane)
PKGS=$(go list -deps ./cmd/prebake | wc -l)
PKGS_CRANE=$(go list -deps github.com/google/go-containerregistry/cmd/crane | wc -l)
SIZE_MB=$(echo "scale=1; $(stat -c %s "$PREBAKE") / 1048576" | bc)
INIT_MS=$(for _ in 1 2 3 4 5; do GODEBUG=inittrace=1 "$PREBAKE" version 2>&1 >/dev/null | awk '/^init / {s += $5} END {print s}'; done | sort -n | sed -n 3p)
echo "start: prebake CPU $(ms "$START_P") ms vs crane $(ms "$START_C") ms; $PKGS packages (crane $PKGS_CRANE), $SIZE_MB MB, init $INIT_MS ms"

# --- registry -----------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$port
cat >"$W/config.yml" <<CFG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: $HOST}
CFG
docker-registry serve "$W/config.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -fsS "http://$HOST/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

DIGEST=$(go run hack/bench-registry/genimage.go "$W/img" "$IMAGE_MB" 4)
"$PREBAKE" push "oci:$W/img:bench" "$HOST/bench/prebake:v1" --insecure -q >/dev/null
crane push "$W/img" "$HOST/bench/crane:v1" --insecure >/dev/null 2>&1
hf repush -n prebake "$PREBAKE push oci:$W/img:bench $HOST/bench/prebake:v1 --insecure -q" \
  -n crane "crane push $W/img $HOST/bench/crane:v1 --insecure"
# Each pull starts with nothing unwritten on the disk (sync in --prepare):
# a flush reaches the whole device (on this VM, the host's cache of it), so
# without it the tool that syncs would also pay for writing out the other
# tool's last, unsynced pull.
hf pull --prepare "sh -c 'rm -rf $W/pull-prebake $W/pull-crane; sync'" \
  -n prebake "$PREBAKE pull $HOST/bench/prebake@$DIGEST -o oci:$W/pull-prebake --insecure -q" \
  -n crane "crane pull --format=oci --insecure $HOST/bench/crane@$DIGEST $W/pull-crane"
(
  export HOME=$W/home COSIGN_PASSWORD=bench
  mkdir -p "$HOME"
  "$PREBAKE" keygen --prefix "$W/key" >/dev/null
  "$PREBAKE" sign "$HOST/bench/prebake@$DIGEST" --key "$W/key.key" --insecure -q >/dev/null
  hf verify -n prebake "$PREBAKE verify $HOST/bench/prebake@$DIGEST --key $W/key.pub --insecure --skip-blobs -q" \
    -n cosign "cosign verify --key $W/key.pub --insecure-ignore-tlog --allow-http-registry $HOST/bench/prebake@$DIGEST"
)
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; REG_PID=

# --- zstd build -----------------------------------------------------------------
# One component of ~ZSTD_MB of stand-in binaries (the Go toolchain's
# executables, salted so that copies differ).
mapfile -t tools < <(find "$(go env GOROOT)/pkg/tool" "$(go env GOROOT)/bin" -type f -perm -u+x | sort)
mkdir -p "$W/src"
total=0; i=0
{
  echo "apiVersion: prebake.dev/v1alpha1"
  echo "kind: Recipe"
  echo "metadata: {name: bench-zstd}"
  echo "platforms: [linux/amd64]"
  echo "epoch: 0"
  echo "components:"
  echo "  - name: big"
  echo "    sources:"
} >"$W/recipe.yaml"
while [ $total -lt $((ZSTD_MB * 1024 * 1024)) ]; do
  { printf 'copy-%d\n' "$i"; cat "${tools[$((i % ${#tools[@]}))]}"; } >"$W/src/bin$i"
  printf '      - url: file://%s/src/bin%d\n        dest: /usr/local/bin/bin%d\n        mode: "0755"\n        sha256: {amd64: %s}\n' \
    "$W" "$i" "$i" "$(sha256sum "$W/src/bin$i" | cut -c1-64)" >>"$W/recipe.yaml"
  total=$((total + $(stat -c %s "$W/src/bin$i"))); i=$((i + 1))
done
ZMB=$((total / 1048576))
export XDG_CACHE_HOME=$W/cache
"$PREBAKE" build "$W/recipe.yaml" -q --allow-file-sources --compression zstd -o "oci:$W/warm" >/dev/null # fills the download cache
HF_RUNS=5 HF_WARMUP=0 hf zstd --prepare "rm -rf $XDG_CACHE_HOME/prebake/layers $W/zout $W/peer.tzst" \
  -n prebake "$PREBAKE build $W/recipe.yaml -q --allow-file-sources --compression zstd -o oci:$W/zout" \
  -n peer "bash -c 'tar -C $W/src -cf - . | zstd -T0 -3 -q | tee $W/peer.tzst | sha256sum >/dev/null'"
unset XDG_CACHE_HOME

# --- render ---------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/ca.key" -out "$W/ca.crt" \
  -days 30 -subj /CN=kubernetes -addext basicConstraints=critical,CA:TRUE 2>/dev/null
{
  echo "apiVersion: prebake.dev/v1alpha1"
  echo "kind: NodeConfigList"
  echo "cluster: {apiServerEndpoint: 192.0.2.10:6443, caCertFile: ca.crt, bootstrapToken: abcdef.0123456789abcdef}"
  echo "nodes:"
  for n in $(seq 1000); do echo "  - {name: worker-$n, labels: {node.kubernetes.io/pool: a}}"; done
} >"$W/fleet.yaml"
# The previous run's output is moved aside, not deleted, before each run:
# on ext4 without a journal (this machine's) the inode allocator skips
# inodes freed in the last minutes, so creating 1,000 files right after
# deleting many costs several times as much (a cost of the deletion, not of
# render: RENDER_AFTER_RM measures that case once, for the record).
mkdir -p "$W/render" "$W/render-old"
# And each run starts with nothing unwritten on the disk (sync), as the
# pulls do: render's one syncfs would otherwise also write out the zstd
# row's last few hundred megabytes.
HF_RUNS=10 hf render --prepare "sh -c 'mv $W/render/out $W/render-old/\$(date +%s%N) 2>/dev/null; sync'" \
  -n prebake "$PREBAKE render $W/fleet.yaml --kubernetes 1.36.4 -q -o $W/render/out"
rm -rf "$W/render/out"
sync
t0=$(date +%s%N)
"$PREBAKE" render "$W/fleet.yaml" --kubernetes 1.36.4 -q -o "$W/render/out" >/dev/null
RENDER_AFTER_RM=$(echo "scale=2; ($(date +%s%N) - $t0) / 1000000000" | bc | sed 's/^\./0./')
rm -rf "$W/render-old"
RENDER_FS=$(df -T "$W" | awk 'NR == 2 {print $2}')
DOCS=$(echo "scale=0; 1000000 / $(med render prebake)" | bc)

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u +%F)
R_START=$(ratio "$START_P" "$START_C"); R_REPUSH=$(ratio "$(med repush prebake)" "$(med repush crane)")
R_PULL=$(ratio "$(med pull prebake)" "$(med pull crane)"); R_VERIFY=$(ratio "$(med verify prebake)" "$(med verify cosign)")
R_ZSTD=$(ratio "$(med zstd prebake)" "$(med zstd peer)")
jq -n --arg date "$DATE" --arg loadStart "$LOAD_START" --arg loadEnd "$LOAD_END" --argjson cores "$(nproc)" \
  --argjson startCPU "$START_P" --argjson craneCPU "$START_C" --argjson packages "$PKGS" --argjson cranePackages "$PKGS_CRANE" \
  --argjson binaryMB "$SIZE_MB" --argjson initMS "${INIT_MS:-0}" \
  --argjson repush "$(med repush prebake)" --argjson repushCrane "$(med repush crane)" \
  --argjson pull "$(med pull prebake)" --argjson pullCrane "$(med pull crane)" \
  --argjson verify "$(med verify prebake)" --argjson verifyCosign "$(med verify cosign)" \
  --argjson zstd "$(med zstd prebake)" --argjson zstdPeer "$(med zstd peer)" --argjson zstdMB "$ZMB" \
  --argjson render "$(med render prebake)" --argjson docsPerSecond "$DOCS" --arg renderFS "$RENDER_FS" --argjson renderAfterRmS "$RENDER_AFTER_RM" \
  '{date: $date, cores: $cores, load: {start: $loadStart, end: $loadEnd}, unit: "ms (medians; start: CPU user+system)",
    start: {prebake: $startCPU, crane: $craneCPU, ratio: ($startCPU / $craneCPU), packages: $packages, cranePackages: $cranePackages, binaryMB: $binaryMB, initMS: $initMS},
    repush: {prebake: $repush, crane: $repushCrane, ratio: ($repush / $repushCrane)},
    pull: {prebake: $pull, crane: $pullCrane, ratio: ($pull / $pullCrane)},
    verify: {prebake: $verify, cosign: $verifyCosign, ratio: ($verify / $verifyCosign)},
    zstd: {prebake: $zstd, peer: $zstdPeer, ratio: ($zstd / $zstdPeer), inputMB: $zstdMB},
    render: {nodes: 1000, ms: $render, docsPerSecond: $docsPerSecond, fs: $renderFS, afterRmSeconds: $renderAfterRmS}}' >"$W/result.json"
cat "$W/result.json"

row="| $DATE | $(ms "$START_P") vs $(ms "$START_C") ms → **${R_START}×**; $PKGS pkgs (crane $PKGS_CRANE), $SIZE_MB MB, init $INIT_MS ms"
row+=" | $(ms "$(med repush prebake)") vs $(ms "$(med repush crane)") ms → **${R_REPUSH}×**"
row+=" | $(ms "$(med pull prebake)") vs $(ms "$(med pull crane)") ms → **${R_PULL}×**"
row+=" | $(ms "$(med verify prebake)") vs $(ms "$(med verify cosign)") ms → **${R_VERIFY}×**"
row+=" | ${ZMB} MiB: $(ms "$(med zstd prebake)") vs $(ms "$(med zstd peer)") ms → **${R_ZSTD}×**"
row+=" | **$DOCS docs/s** ($RENDER_FS; right after deleting the last output: ${RENDER_AFTER_RM} s)"
row+=" | $(nproc) cores, load $LOAD_START → $LOAD_END |"
echo "$row"
[ -n "${NO_DOC:-}" ] && exit 0
cp "$W/result.json" docs/benchmarks-ci.json
doc=docs/benchmarks.md
if ! grep -q '^## CI paths' "$doc"; then
  cat >>"$doc" <<'HDR'

## CI paths

`hack/bench-ci.sh` (run by `make bench`; the last run's numbers also in
`docs/benchmarks-ci.json`): every path a CI job calls, against its peer in the
same run, medians over rounds of hyperfine runs, the commands' order reversed every other round (ratio =
prebake / peer; below 1 is faster). start: `prebake version` vs `crane
version`, CPU (user + system); packages linked (`go list -deps`), the stripped
binary and the package initialisers' time (`GODEBUG=inittrace=1`, median of
5). re-push: an image of 4 random layers the registry already has (0 bytes
moved). pull: by digest into an OCI layout. verify: `--skip-blobs` vs `cosign
verify --key --insecure-ignore-tlog`. Registry rows against Debian's
docker-registry on loopback. zstd: one component of stand-in binaries built
cold (download cache warm, layer cache empty) vs `tar -c | zstd -T0 -3 |
sha256sum` over the same files. render: a 1,000-node NodeConfigList to a
new directory (filled under a hidden name while it renders, one sync, then
renamed into place). Targets (issue
18): start ≤ 1.5×, re-push ≤ 1.5×, pull ≤ 1.0×, verify ≤ 1.0×, zstd ≤ 1.2×,
render ≥ 5,000 docs/s. The load average is the machine's at the start and
the end of the run: other work slows both columns of a row alike, but not
the render and packages numbers, which have no peer.

| date | start (CPU) | re-push | pull | verify | zstd build | render 1,000 | machine |
|---|---|---|---|---|---|---|---|
HDR
fi
tmp=$(mktemp)
awk -v row="$row" '
  FNR == NR {
    if ($0 == "## CI paths") insec = 1; else if (/^## /) insec = 0
    if (insec && !done && /^\|/) last = FNR
    else if (insec && last) done = 1 # the first table only
    next
  }
  { print; if (FNR == last) print row }' "$doc" "$doc" >"$tmp"
mv "$tmp" "$doc"
