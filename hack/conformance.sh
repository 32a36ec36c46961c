#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against `prebake serve`
# (pull, push, tag listing, referrers and deletes, OCI_VERSION=1.1) and fails
# unless every test passes. The suite is built once from the Go module proxy
# into .cache/tools/bin; the results go to docs/conformance/.
#
# Usage: hack/conformance.sh        (make conformance; needs bin/prebake)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MOD=github.com/opencontainers/distribution-spec/conformance
VER=v0.0.0-20260831232431-97274622c111
TOOLS=$REPO/.cache/tools
BIN=$TOOLS/bin/conformance
PREBAKE=${PREBAKE_BIN:-$REPO/bin/prebake}
mkdir -p "$TOOLS/bin"
export GOFLAGS=-buildvcs=false

if [ ! -x "$BIN" ] || [ "$(cat "$BIN.version" 2>/dev/null)" != "$MOD@$VER" ]; then
  echo "conformance: building $MOD@$VER" >&2
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  (
    cd "$src"
    cat >go.mod <<MOD
module prebake.local/conformance-runner

go 1.24
MOD
    GOFLAGS=-mod=mod go get "$MOD@$VER" >/dev/null
    # The suite is a main package; "go test" runs it too but is deprecated.
    GOFLAGS=-mod=mod go build -trimpath -o "$BIN" "$MOD"
  )
  echo "$MOD@$VER" >"$BIN.version"
  rm -rf "$src"; trap - EXIT
fi

[ -x "$PREBAKE" ] || { echo "conformance: $PREBAKE missing (run make build)" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port: prebake prints the one it got.
"$PREBAKE" serve --root "$work/root" --addr 127.0.0.1:0 --delete >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/^listening on //p' "$work/serve.out" | head -1)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "conformance: prebake serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "${addr:-}" ] || { echo "conformance: prebake serve did not report its address" >&2; exit 1; }

echo "conformance: prebake serve on $addr" >&2
status=0
(
  cd "$work"
  env OCI_REGISTRY="$addr" OCI_TLS=disabled OCI_VERSION=1.1 \
    OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 \
    OCI_API_PULL=true OCI_API_PUSH=true OCI_API_TAGS_LIST=true OCI_API_REFERRER=true \
    OCI_API_BLOBS_DELETE=true OCI_API_MANIFESTS_DELETE=true OCI_API_TAGS_DELETE=true \
    OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true \
    OCI_RESULTS_DIR="$work/results" OCI_LOG=warn \
    "$BIN"
) >"$work/summary.txt" 2>"$work/conformance.log" || status=$?

# Publish: the results file and the text report, with the run's temp paths
# and port replaced so that unchanged results give unchanged files.
# report.html and junit.xml (1+ MB each) stay in .cache/conformance.
out=docs/conformance
mkdir -p "$out" .cache/conformance
cp "$work"/results/* .cache/conformance/ 2>/dev/null || true
scrub() { sed -e "s#$addr#127.0.0.1:PORT#g" -e "s#$work#TMP#g"; }
[ -f "$work/results/results.yaml" ] && scrub <"$work/results/results.yaml" >"$out/results.yaml"
scrub <"$work/summary.txt" >"$out/summary.txt"
# junit.xml's first (testsuites) element has the totals; absent counts are 0.
counts() { { grep -o "$1=\"[0-9]*\"" "$work/results/junit.xml" 2>/dev/null || true; } | head -1 | tr -dc 0-9; }
total=$(counts tests); f=$(counts failures); e=$(counts errors); skipped=$(counts skipped)
failed=$(( ${f:-0} + ${e:-0} )); skipped=${skipped:-0}
if [ "$status" -ne 0 ] || [ -z "$total" ] || [ "$total" -eq 0 ] || [ "$failed" -ne 0 ] || ! grep -q '^OCI Conformance Test: Pass' "$work/summary.txt"; then
  cat "$work/summary.txt" "$work/conformance.log" >&2
  echo "conformance: FAILED (exit $status, ${failed:-?} failed of ${total:-0}); results in $out/ and .cache/conformance/" >&2
  exit 1
fi
passed=$(( total - failed - skipped ))
line="conformance: $passed passed, $failed failed, $skipped skipped"
printf '%s\n' "$line" "OCI_VERSION=1.1 with pull, push, tag listing, referrers, deletes, upload cancel and tag parameters; $MOD@$VER" >"$out/SUMMARY"
echo "$line"
