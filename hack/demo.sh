#!/usr/bin/env bash
# `make demo`: prebake's main job on embedded defaults, with no network.
# Builds the quickstart recipe from the stand-in mirror in testdata/ into the
# local store, shows what it built, then (when those steps exist) pushes it to a
# loopback `prebake serve`, signs and verifies it, and renders a worker's
# user-data. Everything it writes lives under _out/demo (rm -rf to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREBAKE=${PREBAKE:-$ROOT/bin/prebake}
DEMO=$ROOT/_out/demo
mkdir -p "$DEMO"
export XDG_CACHE_HOME=$DEMO/cache XDG_DATA_HOME=$DEMO/data
MIRROR="file://$ROOT/testdata/mirror"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "validate the quickstart recipe"
"$PREBAKE" recipe validate examples/quickstart/recipe.yaml

step "build it (sources from the stand-in mirror, into the local store)"
"$PREBAKE" build examples/quickstart/recipe.yaml \
  --mirror "https://dl.k8s.io/=$MIRROR/dl.k8s.io/" \
  --mirror "https://github.com/=$MIRROR/github.com/"

step "what was built"
"$PREBAKE" inspect quickstart-node:1.36.4

step "a Kubernetes patch bump changes only the kubernetes layer"
"$PREBAKE" build examples/quickstart/recipe.yaml --set kubernetes=1.36.5 -q \
  --mirror "https://dl.k8s.io/=$MIRROR/dl.k8s.io/" \
  --mirror "https://github.com/=$MIRROR/github.com/" >/dev/null
"$PREBAKE" diff quickstart-node:1.36.4 quickstart-node:1.36.5

for extra in hack/demo-registry.sh hack/demo-sign.sh hack/demo-render.sh; do
  if [ -x "$extra" ]; then
    PREBAKE=$PREBAKE DEMO=$DEMO "$extra"
  fi
done
step "done: the store is $XDG_DATA_HOME/prebake/store"
