#!/usr/bin/env python3
"""Writes the real-join baseline's user-data: what a Kubespray-style setup
does at boot instead of booting a prebake image, on the same base with the
same binaries and images. A MIME multipart document with
  1. the cloud-config `prebake render --kubernetes` writes for a machine
     without prebake's join unit (files, then `runcmd` runs kubeadm join), and
  2. a shell script (cloud-init runs it before runcmd) that downloads every
     binary from the file mirror, checks it against the lock, installs it
     where the image has it, unpacks the image's configuration files (units,
     sysctl, modules-load, containerd, crictl and CNI config; prebake's join,
     agent and image-import units and archives left out), points containerd at the
     image registry, loads the modules, applies the sysctls, starts
     containerd and pulls the images (as Kubespray's download role does).

Usage: kubespray.py NODEROOT LOCK MIRROR_URL CLOUD_CONFIG REGISTRY_URL REGISTRY... -- IMAGE...
  REGISTRY: a registry name (registry.k8s.io) whose pulls go to REGISTRY_URL."""
import base64, io, os, re, sys, tarfile
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

root, lockfile, mirror, cc, registry_url = sys.argv[1:6]
rest = sys.argv[6:]
sep = rest.index("--")
registries, images = rest[:sep], rest[sep + 1:]

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

skip = re.compile(r"^(usr/local/bin/|usr/local/sbin/runc$|opt/cni/bin/|var/lib/prebake/images)|prebake-join|prebake-images|prebake-agent")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(files) + sorted(x for x in dirs if os.path.islink(os.path.join(d, x))):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if skip.search(rel):
                continue
            t.add(p, arcname=rel, recursive=False)
payload = base64.encodebytes(buf.getvalue()).decode()

lines = ["#!/bin/sh",
         "# Kubespray-style node setup at boot: download, verify, install, configure, pull.",
         "set -eu",
         f"M={mirror}",
         "echo 'PREBAKE-BOOT install-start' >/dev/ttyS0",
         "mkdir -p /var/tmp/prebake-dl && cd /var/tmp/prebake-dl",
         'fetch() { curl -fsS --retry 5 --retry-connrefused -o "$2" "$M/$1"; echo "$3  $2" | sha256sum -c --quiet -; }']
for url, sha in sorted(urls.items()):
    if "/prebake/prebake/releases/" in url:
        continue  # prebake-agent: part of the prebake image only
    lines.append(f"fetch {url.split('://', 1)[1]} {url.rsplit('/', 1)[1]} {sha}")
    lines.append(install(url))
lines += ["echo 'PREBAKE-BOOT downloads-done' >/dev/ttyS0",
          "base64 -d <<'CONFIG' | tar -xz -C /",
          payload.rstrip("\n"),
          "CONFIG"]
# containerd reads registry hosts from certs.d only when told where.
lines += ["cat >>/etc/containerd/config.toml <<'TOML'",
          "[plugins.'io.containerd.cri.v1.images'.registry]",
          "  config_path = '/etc/containerd/certs.d'",
          "TOML"]
for r in registries:
    lines += [f"mkdir -p /etc/containerd/certs.d/{r}",
              f"printf 'server = \"{registry_url}\"\\n[host.\"{registry_url}\"]\\n  capabilities = [\"pull\", \"resolve\"]\\n' >/etc/containerd/certs.d/{r}/hosts.toml"]
lines += ["for m in $(cat /etc/modules-load.d/*.conf 2>/dev/null | grep -v '^#'); do modprobe \"$m\"; done",
          "sysctl --system >/dev/null",
          "systemctl daemon-reload",
          "systemctl enable containerd.service kubelet.service",
          "systemctl start containerd.service"]
for im in images:
    lines.append(f"crictl pull {im} >/dev/null")
lines += ["rm -rf /var/tmp/prebake-dl",
          "echo 'PREBAKE-BOOT install-done' >/dev/ttyS0",
          "echo 'PREBAKE-BOOT join-start' >/dev/ttyS0"]

msg = MIMEMultipart()
part = MIMEText(open(cc).read(), "cloud-config")
part.add_header("Content-Disposition", "attachment", filename="cloud-config")
msg.attach(part)
part = MIMEText("\n".join(lines) + "\n", "x-shellscript")
part.add_header("Content-Disposition", "attachment", filename="00-kubespray-install.sh")
msg.attach(part)
sys.stdout.write(msg.as_string())
