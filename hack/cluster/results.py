#!/usr/bin/env python3
"""Summarizes hack/cluster/boot.py's cluster.json and, with a benchmarks file,
appends a row to its "Two-machine cluster (`make e2e-cluster`)" table.

Usage: results.py CLUSTER.json BUILD_S EXPORT_S TOTAL_S [docs/benchmarks.md]"""
import datetime, json, os, subprocess, sys

path, build_s, export_s, total_s = sys.argv[1:5]
bench = sys.argv[5] if len(sys.argv) > 5 else None
r = json.load(open(path))
cp, wk = r["machines"]["cp"]["secondsSinceQemuStart"], r["machines"]["worker"]["secondsSinceQemuStart"]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
summary = {"date": date, "commit": commit, "buildSeconds": int(build_s), "exportSeconds": int(export_s),
           "runSeconds": int(total_s), "controlPlane": cp, "worker": wk,
           "bytesDownloadedAtBoot": r["bytesDownloadedAtBoot"], "registryRequestsAtBoot": r["registryRequestsAtBoot"],
           "imagePullEvents": r["imagePullEvents"], "loadAverage": r["loadAverage"], "nodes": r["nodes"]}
print(json.dumps(summary, indent=2))

if bench and r["ok"]:
    def c(d, k):
        return "-" if d.get(k) is None else f"{d[k]:.1f}"
    row = (f"| {date} ({commit}) | {r['accelerator']} | {c(cp, 'workerStarted')} | {c(cp, 'kernelStart')} / {c(wk, 'kernelStart')} | "
           f"{c(cp, 'initStart')} / {c(wk, 'joinStart')} | {c(cp, 'apiServerHealthy')} | "
           f"{c(cp, 'nodeReady')} / {c(wk, 'nodeReady')} | {c(wk, 'podRunning')} | "
           f"{r['bytesDownloadedAtBoot']} B, {r['registryRequestsAtBoot']} req, "
           f"{'pull events not read' if r['imagePullEvents'] is None else str(r['imagePullEvents']) + ' pulls'} | "
           f"{r['loadAverage'][0]:.2f} | {total_s} s |\n")
    text = open(bench).read()
    head = "## Two-machine cluster (`make e2e-cluster`)"
    if head not in text:
        text += f"""
{head}

Seconds since each machine's qemu started, control plane / worker; the worker
starts when the control plane's API server first answers ("worker starts", on
the control plane's clock). The control plane runs `kubeadm init` from `prebake render --init`
user-data (init unit), the worker `kubeadm join`; kernel and unit starts from
the serial console and journal, the rest polled from the API server. Fetched
at boot: bytes from the file mirror, requests to the registry, kubelet image
pull events (both machines' user networks are `restrict=on`). See
docs/cluster.md.

| date | accelerator | worker starts | kernel | init / join start | API server healthy | Node Ready | Pod Running (worker) | fetched at boot | load (1 min) | run |
|---|---|---|---|---|---|---|---|---|---|---|
"""
    i = text.index(head)
    j = text.find("\n## ", i + 1)
    end = len(text) if j < 0 else j
    section = text[i:end].rstrip("\n") + "\n" + row
    text = text[:i] + section + ("\n" + text[end:].lstrip("\n") if j >= 0 else "")
    with open(bench + ".tmp", "w") as f:
        f.write(text)
    os.replace(bench + ".tmp", bench)
sys.exit(0 if r["ok"] else 1)
