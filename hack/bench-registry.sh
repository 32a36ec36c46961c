#!/usr/bin/env bash
# Registry push/pull benchmark (issue 3). A ~400 MB image of random gzip layers
# (hack/bench-registry/genimage.go) is pushed from an OCI layout to a local
# registry and pulled back by digest into an OCI layout, by prebake, crane and
# skopeo in the same run, against the same registry program. Every push goes
# to a freshly started, empty registry (no tool can skip or mount blobs left
# by another), the tools take turns within each round, and the median of
# RUNS rounds is reported. Ratio = peer time / prebake time = prebake's
# throughput relative to the peer's (target >= 1.0x).
#
# Registries: Debian's docker-registry (distribution 2.8) and `prebake serve`.
# Results are added to the "Registry push/pull" section of docs/benchmarks.md.
#
# Env: SIZE_MB (400), LAYERS (8), RUNS (5), TARGETS ("docker-registry prebake-serve"),
# PREBAKE (bin/prebake), NO_DOC=1 to only print.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREBAKE=${PREBAKE:-$ROOT/bin/prebake}
PATH=$ROOT/.cache/tools/bin:$PATH
SIZE_MB=${SIZE_MB:-400}
LAYERS=${LAYERS:-8}
RUNS=${RUNS:-5}
TARGETS=${TARGETS:-docker-registry prebake-serve}
for t in crane skopeo docker-registry bc python3; do
  command -v "$t" >/dev/null || { echo "bench-registry: $t not found: run hack/tools.sh" >&2; exit 1; }
done
[ -x "$PREBAKE" ] || { echo "bench-registry: $PREBAKE missing: run make build" >&2; exit 1; }

W=$(mktemp -d /tmp/prebake-bench-registry.XXXXXX)
REG_PID=
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

DIGEST=$(go run hack/bench-registry/genimage.go "$W/img" "$SIZE_MB" "$LAYERS")
BYTES=$(du -sb "$W/img/blobs" | cut -f1)
MB=$(echo "scale=1; $BYTES / 1048576" | bc)
echo "bench-registry: image $DIGEST, $MB MiB in $LAYERS layers"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_registry KIND: a fresh, empty registry; sets HOST and REG_PID.
start_registry() {
  local kind=$1 data
  data=$(mktemp -d "$W/reg.XXXXXX")
  case $kind in
  docker-registry)
    HOST=127.0.0.1:$(free_port)
    cat >"$data/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $data/data}}
http: {addr: $HOST}
EOF
    docker-registry serve "$data/config.yml" >"$data/log" 2>&1 &
    REG_PID=$!
    ;;
  prebake-serve)
    mkfifo "$data/out"
    "$PREBAKE" serve --root "$data/data" --addr 127.0.0.1:0 >"$data/out" 2>"$data/log" &
    REG_PID=$!
    exec 9<"$data/out"
    read -r line <&9
    HOST=${line#listening on }
    # keep draining stdout
    cat <&9 >/dev/null &
    exec 9<&-
    ;;
  esac
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/${HOST%:*}/${HOST##*:}") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench-registry: $kind did not start:" >&2; cat "$data/log" >&2; exit 1
}
stop_registry() {
  kill "$REG_PID" 2>/dev/null || true
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=
}

now() { date +%s.%N; }
timed() { local s; s=$(now); "$@" >/dev/null 2>"$W/err" || { echo "bench-registry: failed: $*" >&2; cat "$W/err" >&2; exit 1; }; echo "$(now) - $s" | bc; }

push() { # TOOL
  case $1 in
  prebake) timed "$PREBAKE" push "oci:$W/img:bench" "$HOST/bench/$1:v1" --insecure -q ;;
  crane) timed crane push "$W/img" "$HOST/bench/$1:v1" --insecure ;;
  skopeo) timed skopeo copy -q --dest-tls-verify=false "oci:$W/img:bench" "docker://$HOST/bench/$1:v1" ;;
  esac
}
pull() { # TOOL OUT
  rm -rf "$2"
  case $1 in
  prebake) timed "$PREBAKE" pull "$HOST/bench/$1@$DIGEST" -o "oci:$2" --insecure -q ;;
  crane) timed crane pull --format=oci --insecure "$HOST/bench/$1@$DIGEST" "$2" ;;
  skopeo) timed skopeo copy -q --src-tls-verify=false "docker://$HOST/bench/$1@$DIGEST" "oci:$2:bench" ;;
  esac
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
mbps() { echo "scale=0; $BYTES / 1048576 / $1" | bc; }

LOAD=$(cut -d' ' -f1 /proc/loadavg)
tools=(prebake crane skopeo)
rows=()
for target in $TARGETS; do
  declare -A P=() L=()
  for run in $(seq "$RUNS"); do
    # rotate the order each round
    order=("${tools[@]:$(( (run - 1) % 3 ))}" "${tools[@]:0:$(( (run - 1) % 3 ))}")
    for tool in "${order[@]}"; do
      start_registry "$target"
      p=$(push "$tool")
      l=$(pull "$tool" "$W/out-$tool")
      stop_registry
      rm -rf "$W/out-$tool" "$W"/reg.*
      P[$tool]+="$p "; L[$tool]+="$l "
      echo "  $target round $run: $tool push ${p}s pull ${l}s"
    done
  done
  declare -A PM=() LM=()
  for tool in "${tools[@]}"; do
    PM[$tool]=$(tr ' ' '\n' <<<"${P[$tool]}" | grep . | median)
    LM[$tool]=$(tr ' ' '\n' <<<"${L[$tool]}" | grep . | median)
  done
  row="| $(date -u +%F) | $target | $MB MiB, $LAYERS layers |"
  row+=" prebake ${PM[prebake]}s ($(mbps "${PM[prebake]}") MiB/s), crane ${PM[crane]}s, skopeo ${PM[skopeo]}s |"
  row+=" **$(ratio "${PM[crane]}" "${PM[prebake]}")×** / **$(ratio "${PM[skopeo]}" "${PM[prebake]}")×** |"
  row+=" prebake ${LM[prebake]}s ($(mbps "${LM[prebake]}") MiB/s), crane ${LM[crane]}s, skopeo ${LM[skopeo]}s |"
  row+=" **$(ratio "${LM[crane]}" "${LM[prebake]}")×** / **$(ratio "${LM[skopeo]}" "${LM[prebake]}")×** | $(nproc) cores, load $LOAD at start, median of $RUNS |"
  echo "$row"
  rows+=("$row")
  unset P L PM LM
done

[ -n "${NO_DOC:-}" ] && exit 0
doc=docs/benchmarks.md
[ -f "$doc" ] || echo "# Benchmarks" >"$doc"
if ! grep -q '^## Registry push/pull' "$doc"; then
  cat >>"$doc" <<'HDR'

## Registry push/pull

`hack/bench-registry.sh` (run by `make bench`): a ~400 MB image of random gzip
layers, pushed from an OCI layout to a local registry and pulled back by digest
into an OCI layout, by prebake, `crane` and `skopeo copy` in the same run.
Every push goes to a freshly started, empty registry, the tools take turns in
each round, and the table holds medians. Ratio = peer time / prebake time,
i.e. prebake's throughput relative to crane / skopeo (target ≥ 1.0×). All
three use 4 parallel blob transfers (prebake --jobs default, crane's default)
on loopback. prebake's pull checks every blob's digest while streaming (as
crane does) and, unlike crane and skopeo, fsyncs each blob before renaming it
into place: on a disk-bound machine that durability shows in the pull column.

| date | registry | image | push (median) | push ratio vs crane / skopeo | pull (median) | pull ratio vs crane / skopeo | machine |
|---|---|---|---|---|---|---|---|
HDR
fi
# Insert the rows at the end of this section's table.
tmp=$(mktemp)
awk -v rows="$(printf '%s\n' "${rows[@]}")" '
  FNR == NR {
    if ($0 == "## Registry push/pull") insec = 1; else if (/^## /) insec = 0
    if (insec && /^\|/) last = FNR
    next
  }
  { print; if (FNR == last) print rows }' "$doc" "$doc" >"$tmp"
mv "$tmp" "$doc"
