#!/usr/bin/env python3
"""Combines the two boots' JSON into RESULTS, prints a table, optionally
appends it to docs/benchmarks.md, and fails if the prebake boot downloaded
anything, either boot missed the join, or prebake's join was not first.

Usage: results.py PREBAKE.json BASELINE.json RESULTS.json EXPORT_SECONDS TOTAL_SECONDS [BENCHMARKS.md]"""
import datetime, json, platform, subprocess, sys

pb, bl = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
out, export_s, total_s = sys.argv[3], sys.argv[4], sys.argv[5]
bench = sys.argv[6] if len(sys.argv) > 6 else None

def ev(r, k):
    return r["secondsSinceQemuStart"].get(k)

def stage(r, k):
    return r["cloudInitStages"].get(k)

rows = [
    ("firmware hands over to the UKI", lambda r: ev(r, "firmwareBootsUKI")),
    ("kernel starts", lambda r: ev(r, "kernelStart")),
    ("systemd starts", lambda r: ev(r, "systemdStart")),
    ("cloud-init init-local", lambda r: stage(r, "init-local")),
    ("cloud-init init (network)", lambda r: stage(r, "init")),
    ("cloud-init modules:config", lambda r: stage(r, "modules:config")),
    ("cloud-init modules:final", lambda r: stage(r, "modules:final")),
    ("**kubeadm join called**", lambda r: ev(r, "joinTrigger")),
    ("join since kernel start", lambda r: r["joinTriggerSinceKernelStart"]),
    ("power-off", lambda r: ev(r, "powerOff")),
]
fmt = lambda v: "—" if v is None else f"{v:.1f} s"
problems = []
if pb["bytesDownloadedAtBoot"] != 0:
    problems.append(f"the prebake boot downloaded {pb['bytesDownloadedAtBoot']} bytes: {pb['requestsAtBoot']}")
for r in (pb, bl):
    if ev(r, "joinTrigger") is None:
        problems.append(f"the {r['variant']} boot never called kubeadm join")
if not problems and ev(pb, "joinTrigger") >= ev(bl, "joinTrigger"):
    problems.append("the prebake boot did not reach the join before the baseline")

when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = "?"
table = [f"### Boot to join: prebake image vs download at boot ({when}, commit {commit})", "",
         f"`make e2e-boot` on {platform.machine()}, qemu {pb['accelerator']}, {pb['memoryMiB']} MiB, UEFI (OVMF), "
         "Debian 12 base, NoCloud seed; seconds since qemu started (host clock on each serial line). "
         "kubeadm is a stand-in that records its call: no control plane exists here, so this measures "
         "the time to the join trigger, not to a Ready node. See docs/boot.md.", "",
         "| | prebake image | Kubespray-style baseline |", "|---|---:|---:|"]
for name, f in rows:
    table.append(f"| {name} | {fmt(f(pb))} | {fmt(f(bl))} |")
table.append(f"| bytes downloaded at boot | {pb['bytesDownloadedAtBoot']:,} | {bl['bytesDownloadedAtBoot']:,} |")
table.append(f"| requests to the mirror at boot | {len(pb['requestsAtBoot'])} | {len(bl['requestsAtBoot'])} |")
table += ["", f"Disk export (both disks, 4 GiB qcow2; 0 when cached): {export_s} s. Whole run: {total_s} s.", ""]
text = "\n".join(table) + "\n"
print(text)
res = {"prebake": pb, "baseline": bl, "exportSeconds": float(export_s), "totalSeconds": int(total_s),
       "passed": not problems, "problems": problems, "when": when, "commit": commit}
with open(out, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
if bench and not problems:
    with open(bench, "a") as f:
        f.write("\n" + text)
if problems:
    print("e2e-boot FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"e2e-boot passed: results in {out}")
