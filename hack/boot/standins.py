#!/usr/bin/env python3
"""Writes the boot test's stand-in upstream files (the URLs of the catalog
kubernetes-node recipe for linux/amd64) under DIR/<host>/<path>, and a lock
file with their checksums. Each binary is a shell script padded to roughly the
real binary's size (SCALE percent of it) with incompressible bytes, so a
download at boot costs what the real one would. The stand-in kubeadm does
not join anything (no control plane exists in the test): it records when it
was called and with which configuration, on the serial console, and powers
the machine off. Output is byte-stable.

Usage: standins.py DIR LOCKFILE [SCALE]"""
import gzip, hashlib, io, os, random, sys, tarfile

DIR, LOCK = sys.argv[1], sys.argv[2]
SCALE = int(sys.argv[3]) if len(sys.argv) > 3 else 100
K8S, CONTAINERD, RUNC, CNI, CRICTL = "1.36.4", "2.3.4", "1.4.3", "1.9.1", "1.36.0"
MB = 1 << 20
# Rough sizes of the real linux/amd64 binaries.
SIZES = {"kubelet": 78, "kubeadm": 70, "kubectl": 57, "containerd": 38, "containerd-shim-runc-v2": 9,
         "ctr": 19, "runc": 11, "bridge": 4, "host-local": 3, "loopback": 3, "portmap": 4, "crictl": 40}

def pad(name, n):
    """n incompressible bytes, the same for the same name (seeded PRNG)."""
    return random.Random(name).randbytes(n)

def standin(name, version, body=None):
    head = (body or f"echo '{name} v{version} (prebake boot-test stand-in)'\n")
    data = (f"#!/bin/sh\n# prebake boot-test stand-in for {name} {version} linux/amd64\n{head}exit 0\n").encode()
    size = SIZES.get(name, 1) * MB * SCALE // 100
    if size > len(data):
        data += b"# padding:\n" + pad(name, size - len(data) - 11)
    return data

KUBEADM = r'''
# Records the call: host time is stamped on each serial line by the harness.
up=$(cut -d' ' -f1 /proc/uptime)
cfg=
prev=
for a in "$@"; do [ "$prev" = --config ] && cfg=$a; prev=$a; done
con=/dev/ttyS0
echo "PREBAKE-BOOT join-trigger uptime=$up args=$*" >"$con"
if [ -n "$cfg" ] && [ -r "$cfg" ]; then
  echo "PREBAKE-BOOT join-config sha256=$(sha256sum "$cfg" | cut -d' ' -f1)" >"$con"
  # the test's fake token stays out of the log
  sed -e 's/\(token: *\).*/\1<redacted>/' -e 's/^/PREBAKE-BOOT join-config| /' "$cfg" >"$con"
fi
mkdir -p /var/lib/prebake-boot && echo "$up $*" >/var/lib/prebake-boot/kubeadm-called
echo "PREBAKE-BOOT done" >"$con"
systemctl poweroff --no-block
'''

def tgz(entries):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in sorted(entries):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = len(data), 0o755, 0, "", ""
            t.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=1) as g:
        g.write(raw.getvalue())
    return out.getvalue()

files = {}
for b in ["kubelet", "kubectl"]:
    files[f"https://dl.k8s.io/release/v{K8S}/bin/linux/amd64/{b}"] = standin(b, K8S)
files[f"https://dl.k8s.io/release/v{K8S}/bin/linux/amd64/kubeadm"] = standin("kubeadm", K8S, KUBEADM)
files[f"https://github.com/containerd/containerd/releases/download/v{CONTAINERD}/containerd-{CONTAINERD}-linux-amd64.tar.gz"] = tgz(
    [(f"bin/{b}", standin(b, CONTAINERD)) for b in ["containerd", "containerd-shim-runc-v2", "ctr"]])
files[f"https://github.com/opencontainers/runc/releases/download/v{RUNC}/runc.amd64"] = standin("runc", RUNC)
files[f"https://github.com/containernetworking/plugins/releases/download/v{CNI}/cni-plugins-linux-amd64-v{CNI}.tgz"] = tgz(
    [(f"./{b}", standin(b, CNI)) for b in ["bridge", "host-local", "loopback", "portmap"]])
files[f"https://github.com/kubernetes-sigs/cri-tools/releases/download/v{CRICTL}/crictl-v{CRICTL}-linux-amd64.tar.gz"] = tgz(
    [("crictl", standin("crictl", CRICTL))])

lock = ["# Checksums of the boot test's stand-ins (hack/boot/standins.py).",
        "apiVersion: prebake.dev/v1alpha1", "kind: Lock", "sources:"]
for url, data in sorted(files.items()):
    path = os.path.join(DIR, url.split("://", 1)[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    sha = hashlib.sha256(data).hexdigest()
    lock += [f"  - url: {url}", f"    sha256: {sha}"]
    print(f"{url}\t{sha}\t{len(data)}")
with open(LOCK, "w") as f:
    f.write("\n".join(lock) + "\n")
