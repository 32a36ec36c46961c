#!/usr/bin/env bash
# `make bench`: every benchmark that compares prebake with a real peer in the
# same run; each appends its numbers to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in hack/bench-ci.sh hack/bench-build.sh hack/bench-registry.sh hack/bench-verify.sh; do
  if [ -x "$b" ]; then echo "== $b"; "$b"; fi
done
