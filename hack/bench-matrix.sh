#!/usr/bin/env bash
# Matrix benchmark (issue 16: nightly builds at scale).
# The 3 newest patch releases of each catalog minor × 2 platforms of
# kubernetes-node, built and pushed to a loopback `prebake serve`:
#   matrix    one `prebake build --matrix --latest 3` invocation
#   loop      one `prebake build --set kubernetes=V` process per image, one
#             shared local cache (a shell loop on one machine)
#   fresh     one process per image, each with an empty cache (CI jobs that
#             share nothing)
# Each run pushes to its own empty registry. Sources are stand-ins served from
# a file:// mirror with a lock of their checksums: the real Kubernetes,
# containerd, runc, CNI and crictl binaries of .cache/real (`make real`), or
# Go toolchain executables without them, cut to 1/SCALE of their size and
# salted per version and architecture. Prints a Markdown table for
# docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREBAKE=${PREBAKE:-$ROOT/bin/prebake}
SCALE=${SCALE:-4}
LATEST=${LATEST:-3}
W=$(mktemp -d /tmp/prebake-bench-matrix.XXXXXX)
SERVE_PID=
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

mapfile -t vs < <("$PREBAKE" catalog list --json | jq -r '.[] | select(.name=="kubernetes-node") | .versions[]' |
  awk -F. -v n="$LATEST" '{m=$1"."$2; if (c[m]++ < n) print}')
"$PREBAKE" catalog show kubernetes-node --json | jq -r --argjson vs "$(printf '%s\n' "${vs[@]}" | jq -R . | jq -s .)" \
  '.versions[] | select(.kubernetes as $k | $vs | index($k)) | .platforms[].components[].sources[]?.url' | sort -u >"$W/urls"

python3 - "$W" "$SCALE" "$ROOT/.cache/real" <<'EOF'
import glob, gzip, hashlib, io, os, sys, tarfile
w, scale, real = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def realbin(name):
    hits = sorted(glob.glob(os.path.join(real, name + "-v*", name)))
    if hits:
        return hits[-1]
    import subprocess
    goroot = subprocess.check_output(["go", "env", "GOROOT"], text=True).strip()
    tools = sorted(glob.glob(os.path.join(goroot, "pkg", "tool", "*", "*")))
    return tools[sum(map(ord, name)) % len(tools)]
def blob(name, salt):
    p = realbin(name)
    b = open(p, "rb").read()
    return salt.encode() + b[: len(b) // scale]
def tgz(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tf:
        for n, b in entries:
            ti = tarfile.TarInfo(n); ti.size = len(b); ti.mode = 0o755
            tf.addfile(ti, io.BytesIO(b))
    return buf.getvalue()
lock = ["apiVersion: prebake.dev/v1alpha1", "kind: Lock", "sources:"]
for url in open(os.path.join(w, "urls")).read().split():
    base = url.rsplit("/", 1)[1]
    salt = url + "\n"
    if base.startswith("containerd-"):
        b = tgz([("bin/" + n, blob(n if n != "ctr" else "containerd", salt + n)) for n in ("containerd", "containerd-shim-runc-v2", "ctr")])
    elif base.startswith("cni-plugins-"):
        b = tgz([("./" + n, blob("cni-plugins", salt + n)) for n in ("bridge", "host-local", "loopback", "portmap", "bandwidth")])
    elif base.startswith("crictl-"):
        b = tgz([("crictl", blob("crictl", salt))])
    elif base.startswith("runc."):
        b = blob("runc", salt)
    elif base in ("kubelet", "kubeadm", "kubectl"):
        b = blob(base, salt)
    else:
        b = salt.encode()
    path = os.path.join(w, "mirror", url.split("://", 1)[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b)
    lock += ["  - url: " + url, "    sha256: " + hashlib.sha256(b).hexdigest()]
open(os.path.join(w, "lock.yaml"), "w").write("\n".join(lock) + "\n")
EOF
mib=$(( $(du -sb "$W/mirror" | cut -f1) / 1024 / 1024 ))
echo "bench-matrix: ${#vs[@]} versions (${vs[*]}) × 2 platforms, $(wc -l <"$W/urls") stand-in sources, $mib MiB, SCALE=$SCALE"

MIRRORS=(--mirror "https://dl.k8s.io/=file://$W/mirror/dl.k8s.io/" --mirror "https://github.com/=file://$W/mirror/github.com/")
start_registry() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" && wait "$SERVE_PID" 2>/dev/null || true
  rm -rf "$W/reg" "$W/serve.out"
  "$PREBAKE" serve --root "$W/reg" --addr 127.0.0.1:0 >"$W/serve.out" 2>/dev/null &
  SERVE_PID=$!
  until REG=$(sed -n 's/^listening on //p' "$W/serve.out") && [ -n "$REG" ]; do sleep 0.1; done
}
now() { date +%s.%N; }
# Warm a download cache once (file:// copies), shared by matrix and loop.
export XDG_CACHE_HOME=$W/warm XDG_DATA_HOME=$W/data
for v in "${vs[@]}"; do
  "$PREBAKE" build kubernetes-node --set kubernetes="$v" --lock "$W/lock.yaml" "${MIRRORS[@]}" -q -o "oci:$W/warmup" >/dev/null
done
reset() { rm -rf "$W/warm/prebake/layers" "$W/data" "$W/warmup"; start_registry; }

# summarise FILE...: uploaded bytes, layer builds, runtime builds per platform
summarise() {
  jq -s '[.[] | if .images then .images[] else . end] as $i |
    {uploaded: ([$i[].uploaded // 0] | add),
     built: ([$i[].platforms[].layers[] | select(.from=="build")] | length),
     runtime: ([$i[].platforms[] | .platform as $p | .layers[] | select(.component=="runtime" and .from=="build") | $p] | group_by(.) | map("\(.[0]) \(length)") | join(", "))}' "$@"
}

reset
load0=$(cut -d' ' -f1-3 /proc/loadavg); s=$(now)
"$PREBAKE" build kubernetes-node --matrix --latest "$LATEST" --lock "$W/lock.yaml" "${MIRRORS[@]}" -q \
  --push "$REG/nodes" --insecure --json >"$W/matrix.json"
t_matrix=$(echo "$(now) - $s" | bc); load_matrix="$load0 -> $(cut -d' ' -f1-3 /proc/loadavg)"
r_matrix=$(summarise "$W/matrix.json")

reset
load0=$(cut -d' ' -f1-3 /proc/loadavg); s=$(now)
for v in "${vs[@]}"; do
  "$PREBAKE" build kubernetes-node --set kubernetes="$v" --lock "$W/lock.yaml" "${MIRRORS[@]}" -q \
    --push "$REG/nodes" --insecure --json >"$W/loop-$v.json"
done
t_loop=$(echo "$(now) - $s" | bc); load_loop="$load0 -> $(cut -d' ' -f1-3 /proc/loadavg)"
r_loop=$(summarise "$W"/loop-*.json)

reset
load0=$(cut -d' ' -f1-3 /proc/loadavg); s=$(now)
for v in "${vs[@]}"; do
  XDG_CACHE_HOME=$W/fresh-$v "$PREBAKE" build kubernetes-node --set kubernetes="$v" --lock "$W/lock.yaml" "${MIRRORS[@]}" -q \
    --push "$REG/nodes" --insecure --json >"$W/fresh-$v.json"
  rm -rf "$W/fresh-$v"
done
t_fresh=$(echo "$(now) - $s" | bc); load_fresh="$load0 -> $(cut -d' ' -f1-3 /proc/loadavg)"
r_fresh=$(summarise "$W"/fresh-*.json)

row() { # name time result load
  printf '| %s | %.1f s | %.2f | %s MiB | %s | %s | %s |\n' "$1" "$2" "$(echo "$2 / $t_matrix" | bc -l)" \
    "$(echo "$3" | jq '.uploaded / 1048576 | . * 10 | floor / 10')" "$(echo "$3" | jq .built)" "$(echo "$3" | jq -r .runtime)" "$4"
}
echo
echo "| run | time | × matrix | pushed | layers built | runtime layer builds | load average (before -> after) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row "one \`--matrix\` invocation" "$t_matrix" "$r_matrix" "$load_matrix"
row "one process per image, shared cache" "$t_loop" "$r_loop" "$load_loop"
row "one process per image, empty caches" "$t_fresh" "$r_fresh" "$load_fresh"
