#!/usr/bin/env bash
# Build benchmark (issue: recipes and reproducible builds).
# A recipe with ~400 MB of stand-in binaries over two platforms (copies of the Go
# toolchain's real executables, so they compress like real binaries) is built
# with a warm download cache and a cold layer cache, and compared in the same run
# with the machine's limit for the same bytes: `tar -c | gzip -1` and
# `tar -c | zstd -T0`, each plus `sha256sum`. Appends the result to
# docs/benchmarks.md (section "Build").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREBAKE=${PREBAKE:-$ROOT/bin/prebake}
W=$(mktemp -d /tmp/prebake-bench-build.XXXXXX)
trap 'rm -rf "$W"' EXIT
TARGET_MB=${TARGET_MB:-200}   # per platform

# Stand-in binaries: Go tool executables, salted per platform so the two
# platforms' layers differ like real amd64/arm64 builds do.
mapfile -t tools < <(find "$(go env GOROOT)/pkg/tool" "$(go env GOROOT)/bin" -type f -perm -u+x | sort)
{
  echo "apiVersion: prebake.dev/v1alpha1"
  echo "kind: Recipe"
  echo "metadata: {name: bench}"
  echo "platforms: [linux/amd64, linux/arm64]"
  echo "epoch: 0"
  echo "components:"
} >"$W/recipe.yaml"
for arch in amd64 arm64; do mkdir -p "$W/src/$arch"; done
total=0; i=0; comp=0
while [ $total -lt $((TARGET_MB * 1024 * 1024)) ]; do
  t=${tools[$((i % ${#tools[@]}))]}
  for arch in amd64 arm64; do
    { printf '%s-%d\n' "$arch" "$i"; cat "$t"; } >"$W/src/$arch/bin$i"
  done
  total=$((total + $(stat -c %s "$W/src/amd64/bin$i")))
  i=$((i + 1))
done
n=$i; per=$(( (n + 3) / 4 ))
for c in 0 1 2 3; do
  echo "  - name: part$c" >>"$W/recipe.yaml"
  echo "    sources:" >>"$W/recipe.yaml"
  for ((j = c * per; j < (c + 1) * per && j < n; j++)); do
    a=$(sha256sum "$W/src/amd64/bin$j" | cut -c1-64); b=$(sha256sum "$W/src/arm64/bin$j" | cut -c1-64)
    printf '      - url: file://%s/src/{{ .arch }}/bin%d\n        dest: /usr/local/bin/bin%d\n        mode: "0755"\n        sha256: {amd64: %s, arm64: %s}\n' "$W" "$j" "$j" "$a" "$b" >>"$W/recipe.yaml"
  done
done
bytes=$(du -cb "$W"/src/*/* | tail -1 | cut -f1)
echo "bench-build: $n binaries per platform, $((bytes / 1024 / 1024)) MiB in all"

export XDG_CACHE_HOME=$W/cache
"$PREBAKE" build "$W/recipe.yaml" -q --allow-file-sources -o "oci:$W/warmup" >/dev/null   # fill the download cache
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

run_prebake() { # $1 compression
  rm -rf "$XDG_CACHE_HOME/prebake/layers" "$W/out"
  local s; s=$(now)
  "$PREBAKE" build "$W/recipe.yaml" -q --allow-file-sources --compression "$1" -o "oci:$W/out" >/dev/null
  secs "$s" "$(now)"
}
run_peer() { # $1: compressor command
  local s; s=$(now)
  for arch in amd64 arm64; do
    tar -C "$W/src/$arch" -cf - . | $1 >"$W/peer.$arch"
    sha256sum "$W/peer.$arch" >/dev/null
  done
  secs "$s" "$(now)"
}
best() { sort -n | head -1; }
pg=$(for r in 1 2 3; do run_prebake gzip; done | best)
tg=$(for r in 1 2 3; do run_peer "gzip -1"; done | best)
pz=$(for r in 1 2 3; do run_prebake zstd; done | best)
tz=$(for r in 1 2 3; do run_peer "zstd -T0 -q"; done | best)
run_prebake gzip >/dev/null   # leaves the gzip layers in the layer cache
rm -rf "$W/out"; s=$(now); "$PREBAKE" build "$W/recipe.yaml" -q --allow-file-sources -o "oci:$W/out" >/dev/null; warm=$(secs "$s" "$(now)")
ratio() { echo "scale=2; $1 / $2" | bc; }
line="| $(date -u +%F) | $((bytes / 1024 / 1024)) MiB, 2 platforms | gzip: prebake ${pg}s vs tar\|gzip -1 ${tg}s → **$(ratio "$pg" "$tg")×** | zstd: prebake ${pz}s vs tar\|zstd -T0 ${tz}s → **$(ratio "$pz" "$tz")×** | ${warm}s | $(nproc) cores |"
echo "$line"
doc=docs/benchmarks.md
[ -f "$doc" ] || echo "# Benchmarks" >"$doc"
if ! grep -q '^## Build' "$doc"; then
  cat >>"$doc" <<'HDR'

## Build

`hack/bench-build.sh` (run by `make bench`): a recipe with ~400 MB of stand-in
binaries (copies of the Go toolchain's executables) over two platforms, built
with a warm download cache and a cold layer cache, against the machine's limit
for the same bytes in the same run: `tar -c | gzip -1` (resp. `zstd -T0`) plus
`sha256sum`. Ratio = prebake time / limit time, best of 3; target ≤ 1.5×.
prebake's gzip is level 6 (klauspost/compress); layers are built in parallel,
up to --jobs (default: the number of CPUs). "warm" is a rebuild with the layer
cache filled (it only writes the output layout). Other work on the machine
during a run shows in both columns alike, since they alternate.

| date | input | gzip | zstd | warm | machine |
|---|---|---|---|---|---|
HDR
fi
# Add the row at the end of the Build table (other sections follow it).
ROW=$line python3 - "$doc" <<'PY'
import os, sys
p = sys.argv[1]
lines = open(p).read().split("\n")
b = lines.index("## Build")
last = b
for j in range(b + 1, len(lines)):
    if lines[j].startswith("## "):
        break
    if lines[j].startswith("|"):
        last = j
lines.insert(last + 1, os.environ["ROW"])
open(p + ".tmp", "w").write("\n".join(lines))
os.replace(p + ".tmp", p)
PY
