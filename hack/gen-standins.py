#!/usr/bin/env python3
"""Writes the stand-in upstream files under testdata/mirror/ (dl.k8s.io and
GitHub release layouts) that the quickstart and tests serve instead of the real
downloads, which this project's machines cannot reach. Output is byte-stable
(mtime 0, sorted, gzip without name/time), so the checksums in
examples/quickstart/recipe.lock.yaml stay valid. Prints url<TAB>sha256 lines."""
import gzip, hashlib, io, os, sys, tarfile

ROOT = os.path.join(os.path.dirname(__file__), "..", "testdata", "mirror")
ARCHES = ["amd64", "arm64"]
K8S = ["1.36.4", "1.36.5"]
CONTAINERD, RUNC, CNI, CRICTL = "2.3.4", "1.4.3", "1.9.1", "1.36.0"

def script(name, version, arch):
    return (f"#!/bin/sh\n# prebake stand-in for {name} {version} linux/{arch}\n"
            f"echo '{name} v{version} (prebake stand-in, linux/{arch})'\n").encode()

def tgz(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in sorted(entries):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = len(data), mode, 0, "", ""
            t.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as g:
        g.write(raw.getvalue())
    return out.getvalue()

files = {}
for arch in ARCHES:
    for v in K8S:
        for b in ["kubelet", "kubeadm", "kubectl"]:
            files[f"https://dl.k8s.io/release/v{v}/bin/linux/{arch}/{b}"] = script(b, v, arch)
    files[f"https://github.com/containerd/containerd/releases/download/v{CONTAINERD}/containerd-{CONTAINERD}-linux-{arch}.tar.gz"] = tgz(
        [(f"bin/{b}", script(b, CONTAINERD, arch), 0o755) for b in ["containerd", "containerd-shim-runc-v2", "ctr"]])
    files[f"https://github.com/opencontainers/runc/releases/download/v{RUNC}/runc.{arch}"] = script("runc", RUNC, arch)
    files[f"https://github.com/containernetworking/plugins/releases/download/v{CNI}/cni-plugins-linux-{arch}-v{CNI}.tgz"] = tgz(
        [(f"./{b}", script(b, CNI, arch), 0o755) for b in ["bridge", "host-local", "loopback", "portmap"]])
    files[f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v{CRICTL}/crictl-v{CRICTL}-linux-{arch}.tar.gz"] = tgz(
        [("crictl", script("crictl", CRICTL, arch), 0o755)])

for url, data in sorted(files.items()):
    path = os.path.join(ROOT, url.split("://", 1)[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    sys.stdout.write(f"{url}\t{hashlib.sha256(data).hexdigest()}\n")
