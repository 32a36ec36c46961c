#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each. Targets are
# discovered, not listed: `go test -list '^Fuzz'` over every package, so a new
# func FuzzXxx is fuzzed without touching this script. `make test` already
# runs each target's seed corpus (plain `go test` does); this explores.
#
# A crash makes Go write the failing input to PKG/testdata/fuzz/FuzzXxx/;
# commit it with the fix and it becomes a regression test of `make test`.
#
# Usage: hack/fuzz.sh [PKG_PATTERN...]   (make fuzz; default ./...)
#   FUZZTIME=60s       time per target (go test -fuzztime: 30s, 1000x, ...)
#   FUZZ_PARALLEL=N    fuzzing workers per target (default: GOMAXPROCS)
#   FUZZ_ONLY=REGEXP   only targets whose name matches
#   FUZZMINIMIZETIME=5s  time to minimise each new interesting input (Go's
#                      default, 60s, can eat a whole short run on targets
#                      whose seeds are large files such as locks)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
export GOFLAGS=${GOFLAGS:--buildvcs=false}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

# `go test -list` prints a package's matching names, then "ok  PKG  TIME".
targets=()
names=()
while IFS= read -r line; do
  case "$line" in
    Fuzz*) names+=("$line") ;;
    "ok "*)
      pkg=$(awk '{print $2}' <<<"$line")
      for n in "${names[@]}"; do targets+=("$pkg $n"); done
      names=() ;;
    "?"*|"") names=() ;;
    *) echo "fuzz: unexpected 'go test -list' output: $line" >&2; exit 1 ;;
  esac
done < <($GO test -list '^Fuzz' "${pkgs[@]}")
if [ -n "${FUZZ_ONLY:-}" ]; then
  kept=()
  for t in "${targets[@]}"; do [[ ${t#* } =~ $FUZZ_ONLY ]] && kept+=("$t"); done
  targets=("${kept[@]}")
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets found" >&2; exit 1; }
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each" >&2

par=()
[ -z "${FUZZ_PARALLEL:-}" ] || par=(-parallel "$FUZZ_PARALLEL")
failed=()
summary=()
for t in "${targets[@]}"; do
  pkg=${t% *}; name=${t#* }
  log=$(mktemp)
  echo "fuzz: $pkg $name" >&2
  if $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "${FUZZMINIMIZETIME:-5s}" "${par[@]}" "$pkg" >"$log" 2>&1; then
    res=ok
  elif ! grep -q 'Failing input written to' "$log" && grep -qx '    context deadline exceeded' "$log" &&
       $GO test -count=1 -run "^${name}\$" "$pkg" >/dev/null 2>&1; then
    # Go <= 1.26's fuzz coordinator can report its own -fuzztime deadline
    # as a failure when a worker is mid-exec on a loaded machine
    # (go.dev/issue/75804, fixed in Go 1.27). No input was written and the
    # corpus replays clean: not a finding.
    res=ok*
  else
    res=FAIL
    failed+=("$pkg $name")
    cat "$log" >&2
  fi
  # The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (2/sec), new interesting: ..."
  stats=$(grep -E '^fuzz: elapsed' "$log" | tail -1 | sed -E 's/^fuzz: //' || true)
  summary+=("$(printf '%-4s %-48s %-28s %s' "$res" "${pkg#github.com/prebake/prebake/}" "$name" "$stats")")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
if printf '%s\n' "${summary[@]}" | grep -q '^ok\*'; then
  echo "ok*: the Go fuzz coordinator reported its own deadline (go.dev/issue/75804); no failing input, seeds replay clean" >&2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
