#!/usr/bin/env python3
"""Boots one disk under qemu with UEFI (OVMF) and a NoCloud seed, stamps each
serial-console line with host time (seconds since qemu started), and writes
what it saw as JSON: kernel start, the initrd, systemd, prebake-agent's
start, claim and join start, cloud-init stages, the stand-in kubeadm's join
trigger (and the configuration path it was called with), power-off, and the
bytes the loopback mirror served during the boot.

KVM when /dev/kvm is usable, else TCG with -cpu qemu64 -smp 2.

Usage: boot.py --name N --disk D --seed S --mirror-log L --log OUT.log --json OUT.json [--timeout SECS]"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, threading, time

ap = argparse.ArgumentParser()
for a in ["--name", "--disk", "--seed", "--mirror-log", "--log", "--json"]:
    ap.add_argument(a, required=True)
ap.add_argument("--timeout", type=float, default=900)
ap.add_argument("--memory", default="2048")
args = ap.parse_args()

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
accel = ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg", "-cpu", "qemu64"]

work = tempfile.mkdtemp(prefix="prebake-boot-")
vars_fd = os.path.join(work, "OVMF_VARS.fd")
shutil.copyfile(OVMF_VARS, vars_fd)
cmd = ["qemu-system-x86_64", "-machine", "q35", *accel, "-smp", "2", "-m", args.memory,
       "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
       "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
       "-drive", f"if=pflash,format=raw,file={vars_fd}",
       # snapshot=on: the exported disk stays as it was, every boot is a first boot
       "-drive", f"file={args.disk},if=virtio,format=qcow2,snapshot=on",
       "-drive", f"file={args.seed},if=virtio,format=raw,readonly=on",
       "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"]

patterns = [
    ("firmwareBootsUKI", re.compile(r"BdsDxe: (loading|starting) Boot")),
    ("kernelStart", re.compile(r"Linux version \d")),
    # the kernel's line (KERN_INFO: not printed under loglevel=6), or the
    # first line of the base's initrd (hack/boot/initrd.sh)
    ("initrdInit", re.compile(r"Run /init as init process|prebake-initrd: ")),
    ("systemdStart", re.compile(r"Welcome to .*Debian")),
    ("agentStart", re.compile(r"prebake-agent: starting")),
    ("agentClaimed", re.compile(r"prebake-agent: .* claimed /var/lib/prebake/joined")),
    ("agentJoinStarted", re.compile(r"prebake-agent: join started")),
    ("agentRefused", re.compile(r"prebake-agent: REFUSED")),
    ("cloudInitFinished", re.compile(r"Cloud-init v\. \S+ finished")),
    ("joinTrigger", re.compile(r"PREBAKE-BOOT join-trigger")),
    ("powerOff", re.compile(r"reboot: Power down")),
]
stage_re = re.compile(r"Cloud-init v\. \S+ running '([^']+)'")
ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")

events, stages, config, join_line = {}, {}, [], ""
load_start = os.getloadavg()
t0 = time.time()
proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
timer = threading.Timer(args.timeout, proc.kill)
timer.start()
with open(args.log, "w") as log:
    log.write(f"# {' '.join(cmd)}\n# t0={t0:.3f} (host time); each line: seconds since qemu started\n")
    for raw in proc.stdout:
        t = time.time() - t0
        line = ansi.sub("", raw.decode("utf-8", "replace").rstrip("\n"))
        log.write(f"{t:9.3f} {line}\n")
        log.flush()
        for name, rx in patterns:
            if name not in events and rx.search(line):
                events[name] = round(t, 3)
        m = stage_re.search(line)
        if m and m.group(1) not in stages:
            stages[m.group(1)] = round(t, 3)
        if "PREBAKE-BOOT join-config| " in line:
            config.append(line.split("PREBAKE-BOOT join-config| ", 1)[1])
        if "PREBAKE-BOOT join-trigger" in line and not join_line:
            join_line = line.split("PREBAKE-BOOT ", 1)[1]
rc = proc.wait()
timer.cancel()
t_end = time.time()
shutil.rmtree(work, ignore_errors=True)

served, requests = 0, []
# No log means nothing can be said about downloads: fail rather than report 0.
with open(args.mirror_log) as f:
    for l in f:
        r = json.loads(l)
        if t0 <= r["time"] <= t_end:
            served += r["bytes"]
            requests.append({"path": r["path"], "bytes": r["bytes"], "at": round(r["time"] - t0, 3)})

res = {
    "variant": args.name,
    "accelerator": "kvm" if kvm else "tcg (-cpu qemu64 -smp 2)",
    "memoryMiB": int(args.memory),
    "disk": os.path.basename(args.disk),
    "secondsSinceQemuStart": events,
    "cloudInitStages": stages,
    "joinTriggerSinceKernelStart": round(events["joinTrigger"] - events["kernelStart"], 3) if "joinTrigger" in events and "kernelStart" in events else None,
    "agentStartSinceKernelStart": round(events["agentStart"] - events["kernelStart"], 3) if "agentStart" in events and "kernelStart" in events else None,
    "joinCall": join_line,
    "joinConfig": "\n".join(config),
    # TCG timings scale with the host's load: the 1-, 5- and 15-minute
    # load averages when qemu started and when it exited.
    "hostLoadAverage": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
    "bytesDownloadedAtBoot": served,
    "requestsAtBoot": requests,
    "qemuExit": rc,
    "timedOut": rc != 0 and t_end - t0 >= args.timeout,
    "note": "no control plane exists here: kubeadm is a stand-in that records its call and powers the machine off",
}
with open(args.json, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print(json.dumps({k: res[k] for k in ["variant", "secondsSinceQemuStart", "cloudInitStages", "bytesDownloadedAtBoot"]}))
sys.exit(0 if "joinTrigger" in events else 1)
