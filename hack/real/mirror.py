#!/usr/bin/env python3
"""Lays the real binaries built by hack/real/build.sh out as a loopback mirror
of their upstream download URLs (linux/amd64), with the same file names and,
for release tarballs, the same member paths as upstream ships, plus a
.sha256 checksum file next to each (as upstream publishes) and a lock file
for the catalog kubernetes-node recipe. Tarballs are byte-stable (sorted,
owner 0:0, fixed mtime, gzip without a timestamp).

These bytes are not the official release builds: they are `go build` output
of the same source versions, so their checksums differ from the catalog's
official lock.

Usage: mirror.py BUILT_DIR OUT_DIR LOCKFILE
  BUILT_DIR holds NAME-vVERSION/ directories (hack/real/build.sh output);
  versions: K8S_VERSION CONTAINERD_VERSION RUNC_VERSION CNI_VERSION CRICTL_VERSION."""
import gzip, hashlib, io, os, sys, tarfile

BUILT, OUT, LOCK = sys.argv[1:4]
K8S = os.environ.get("K8S_VERSION", "1.36.3")
CONTAINERD = os.environ.get("CONTAINERD_VERSION", "2.3.4")
RUNC = os.environ.get("RUNC_VERSION", "1.4.3")
CNI = os.environ.get("CNI_VERSION", "1.9.1")
CRICTL = os.environ.get("CRICTL_VERSION", "1.36.0")
ARCH = "amd64"
MTIME = 1767225600  # 2026-01-01T00:00:00Z

def built(name, version, file):
    p = os.path.join(BUILT, f"{name}-v{version}", file)
    if not os.path.isfile(p):
        sys.exit(f"mirror.py: {p} is missing: run hack/real/build.sh first")
    return p

def tarball(members):
    """members: [(arcname, path)] -> deterministic .tar.gz bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        dirs = sorted({a.rsplit("/", 1)[0] + "/" for a, _ in members if "/" in a.strip("./")})
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, MTIME
            t.addfile(ti)
        for arc, path in sorted(members):
            data = open(path, "rb").read()
            ti = tarfile.TarInfo(arc)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, MTIME
            t.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as g:
        g.write(raw.getvalue())
    return out.getvalue()

files = {}  # url -> bytes
for b in ["kubelet", "kubeadm", "kubectl"]:
    files[f"https://dl.k8s.io/release/v{K8S}/bin/linux/{ARCH}/{b}"] = open(built(b, K8S, b), "rb").read()
files[f"https://github.com/containerd/containerd/releases/download/v{CONTAINERD}/containerd-{CONTAINERD}-linux-{ARCH}.tar.gz"] = \
    tarball([(f"bin/{b}", built("containerd", CONTAINERD, b)) for b in ["containerd", "containerd-shim-runc-v2", "ctr"]])
files[f"https://github.com/opencontainers/runc/releases/download/v{RUNC}/runc.{ARCH}"] = open(built("runc", RUNC, "runc"), "rb").read()
cni_dir = os.path.dirname(built("cni-plugins", CNI, ".done"))
files[f"https://github.com/containernetworking/plugins/releases/download/v{CNI}/cni-plugins-linux-{ARCH}-v{CNI}.tgz"] = \
    tarball([(f"./{n}", os.path.join(cni_dir, n)) for n in sorted(os.listdir(cni_dir)) if not n.startswith(".")])
files[f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v{CRICTL}/crictl-v{CRICTL}-linux-{ARCH}.tar.gz"] = \
    tarball([("crictl", built("crictl", CRICTL, "crictl"))])

lock = ["# Real binaries built from source by hack/real/build.sh (not the official",
        "# release builds: their checksums differ from the catalog's lock).",
        "apiVersion: prebake.dev/v1alpha1", "kind: Lock", "sources:"]
for url in sorted(files):
    data = files[url]
    sha = hashlib.sha256(data).hexdigest()
    path = os.path.join(OUT, url.split("://", 1)[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    with open(path + ".sha256", "w") as f:
        f.write(sha + "\n")
    lock += [f"  - url: {url}", f"    sha256: {sha}"]
with open(LOCK + ".tmp", "w") as f:
    f.write("\n".join(lock) + "\n")
os.replace(LOCK + ".tmp", LOCK)
