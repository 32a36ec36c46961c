#!/usr/bin/env python3
"""Combines the two boots of `make e2e-join` into results.json, checks the
run's rules and, given a benchmarks file, appends a row to its "Boot to a
Ready node" table. Exits 1 when a rule fails:
  - the prebake boot downloaded a byte from the mirror or made any request
    to the image registry;
  - a node was not Ready or its Pod not Running;
  - the prebake node was not Ready before the baseline's.

Usage: results.py PREBAKE.json BASELINE.json OUT.json BUILD_S EXPORT_S TOTAL_S [BENCHMARKS.md]"""
import datetime, json, os, sys

pb, bl = (json.load(open(p)) for p in sys.argv[1:3])
out, build_s, export_s, total_s = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
bench = sys.argv[7] if len(sys.argv) > 7 else None

marks = ["kernelStart", "joinStart", "nodeCreated", "nodeReady", "podRunning"]
def t(r, k):
    return r["secondsSinceQemuStart"].get(k)

problems = []
if pb["bytesDownloadedAtBoot"] != 0:
    problems.append(f"the prebake boot downloaded {pb['bytesDownloadedAtBoot']} bytes from the mirror")
if pb["registryRequestsAtBoot"] != 0:
    problems.append(f"the prebake boot made {pb['registryRequestsAtBoot']} requests to the image registry")
for r in (pb, bl):
    if not r["ready"] or not r["podRunning"]:
        problems.append(f"{r['variant']}: node Ready={r['ready']}, Pod Running={r['podRunning']}")
if pb["ready"] and bl["ready"] and not t(pb, "nodeReady") < t(bl, "nodeReady"):
    problems.append(f"the prebake node was Ready at {t(pb, 'nodeReady')} s, not before the baseline's {t(bl, 'nodeReady')} s")

ratio = {k: round(t(pb, k) / t(bl, k), 2) for k in marks if t(pb, k) and t(bl, k)}
load = os.getloadavg()
res = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "loadAverage": [round(x, 2) for x in load],
    "accelerator": pb["accelerator"],
    "secondsSinceQemuStart": {"prebake": pb["secondsSinceQemuStart"], "baseline": bl["secondsSinceQemuStart"]},
    "ratioPrebakeToBaseline": ratio,
    "bytesDownloadedAtBoot": {"prebake": pb["bytesDownloadedAtBoot"], "baseline": bl["bytesDownloadedAtBoot"]},
    "registryRequestsAtBoot": {"prebake": pb["registryRequestsAtBoot"], "baseline": bl["registryRequestsAtBoot"]},
    "realBinaryBuildSeconds": build_s,
    "exportSeconds": export_s,
    "totalSeconds": total_s,
    "problems": problems,
}
with open(out, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print(json.dumps(res, indent=2))

if bench and not problems:
    def cell(r, k):
        v = t(r, k)
        return "-" if v is None else f"{v:.1f}"
    row = (f"| {res['date']} | {pb['accelerator']} | "
           + " | ".join(f"{cell(pb, k)} / {cell(bl, k)}" for k in marks)
           + f" | {ratio.get('nodeReady', '-')} | {pb['bytesDownloadedAtBoot']} B, {pb['registryRequestsAtBoot']} req / "
           + f"{bl['bytesDownloadedAtBoot'] / 1e6:.0f} MB, {bl['registryRequestsAtBoot']} req | {load[0]:.2f} | {total_s} s |\n")
    text = open(bench).read()
    head = "## Boot to a Ready node (real control plane, `make e2e-join`)"
    if head not in text:
        text += f"""
{head}

Seconds since qemu started, prebake / Kubespray-style baseline (same base, same
source-built binaries and images, same control plane, same run). Node created,
Ready and Pod Running are polled from the API server; the kernel's start comes
from the serial console, the join's from the journal (prebake: the join unit or
the agent's kubeadm) or the installer's console marker (baseline). Ratio:
prebake / baseline for Node Ready.

| date | accelerator | kernel | join start | Node created | Node Ready | Pod Running | ratio (Ready) | fetched at boot (prebake / baseline) | load (1 min) | run |
|---|---|---|---|---|---|---|---|---|---|---|
"""
    # The row goes after the last row of the section's table (other
    # sections, such as e2e-boot's, may follow the table under this heading).
    i = text.index("| date | accelerator |", text.index(head))
    lines = text[i:].split("\n")
    n = 0
    while n < len(lines) and lines[n].startswith("|"):
        n += 1
    at = i + sum(len(l) + 1 for l in lines[:n])
    text = text[:at] + row + text[at:]
    with open(bench + ".tmp", "w") as f:
        f.write(text)
    os.replace(bench + ".tmp", bench)
sys.exit(1 if problems else 0)
