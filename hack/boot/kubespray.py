#!/usr/bin/env python3
"""Writes the baseline's user-data: what a Kubespray-style setup does at boot
instead of booting a prebake image. A MIME multipart document with
  1. the cloud-config prebake render writes for an image without a join unit
     (files, then `runcmd` runs kubeadm join), and
  2. a shell script (run before runcmd: cloud-init runs scripts in name
     order, "00-kubespray-install.sh" < "runcmd") that downloads every
     binary from the mirror, checks it against the lock, installs it where
     the image has it, unpacks the image's configuration files (units,
     sysctl, modules-load, containerd and crictl config; prebake's join units
     left out), loads the modules, applies the sysctls and enables the units.

Usage: kubespray.py NODEROOT LOCK MIRROR_URL CLOUD_CONFIG > user-data"""
import base64, io, os, re, sys, tarfile
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

root, lockfile, mirror, cc = sys.argv[1:5]

# url -> sha256 from the lock
urls, cur = {}, None
for line in open(lockfile):
    m = re.match(r"\s*- url: (\S+)", line)
    if m:
        cur = m.group(1)
    m = re.match(r"\s*sha256: (\S+)", line)
    if m and cur:
        urls[cur] = m.group(1)

def install(url):
    name = url.rsplit("/", 1)[1]
    if "/containerd/" in url:
        return f"tar -xzf {name} -C /usr/local bin/"
    if "/plugins/" in url:
        return f"mkdir -p /opt/cni/bin && tar -xzf {name} -C /opt/cni/bin"
    if "/cri-tools/" in url:
        return f"tar -xzf {name} -C /usr/local/bin crictl"
    if "/runc/" in url:
        return f"install -m 0755 {name} /usr/local/sbin/runc"
    return f"install -m 0755 {name} /usr/local/bin/{name}"

downloaded = re.compile(r"^(usr/local/bin/|usr/local/sbin/runc$|opt/cni/bin/)")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(files) + sorted(x for x in dirs if os.path.islink(os.path.join(d, x))):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if downloaded.match(rel) or "prebake-join" in rel:
                continue
            t.add(p, arcname=rel, recursive=False)
payload = base64.encodebytes(buf.getvalue()).decode()

lines = ["#!/bin/sh",
         "# Kubespray-style node setup at boot: download, verify, install, configure.",
         "set -eu",
         f"M={mirror}",
         "echo 'PREBAKE-BOOT install-start' >/dev/ttyS0",
         "mkdir -p /var/tmp/prebake-dl && cd /var/tmp/prebake-dl",
         'fetch() { curl -fsS --retry 5 --retry-connrefused -o "$2" "$M/$1"; echo "$3  $2" | sha256sum -c --quiet -; }']
for url, sha in sorted(urls.items()):
    path = url.split("://", 1)[1]
    name = url.rsplit("/", 1)[1]
    lines.append(f"fetch {path} {name} {sha}")
    lines.append(install(url))
lines += ["echo 'PREBAKE-BOOT downloads-done' >/dev/ttyS0",
          "base64 -d <<'CONFIG' | tar -xz -C /",
          payload.rstrip("\n"),
          "CONFIG",
          "for m in $(cat /etc/modules-load.d/*.conf 2>/dev/null | grep -v '^#'); do modprobe \"$m\" || true; done",
          "sysctl --system >/dev/null || true",
          "systemctl daemon-reload",
          "systemctl enable containerd.service kubelet.service",
          "systemctl start containerd.service || true  # the stand-in containerd exits at once",
          "rm -rf /var/tmp/prebake-dl",
          "echo 'PREBAKE-BOOT install-done' >/dev/ttyS0"]

msg = MIMEMultipart()
part = MIMEText(open(cc).read(), "cloud-config")
part.add_header("Content-Disposition", "attachment", filename="cloud-config")
msg.attach(part)
part = MIMEText("\n".join(lines) + "\n", "x-shellscript")
part.add_header("Content-Disposition", "attachment", filename="00-kubespray-install.sh")
msg.attach(part)
sys.stdout.write(msg.as_string())
