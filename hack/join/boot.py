#!/usr/bin/env python3
"""Boots one node disk under qemu (UEFI, NoCloud seed) against the real
control plane of hack/join/controlplane.sh and records, in seconds since qemu
started: the kernel, systemd, the join's start (serial console), the Node
object's creation, Node Ready and the test Pod Running (polled from the API
server every 0.25 s). Also what the boot fetched: bytes from the loopback file
mirror and requests to the image registry during the boot.

Stops the machine once the Pod runs (or at --timeout) and exits 0 only if
the Node became Ready and the Pod Running.

KVM when /dev/kvm is usable, else TCG with -cpu qemu64 -smp 2.

Usage: boot.py --name N --disk D --seed S --mirror-log L --registry-log R
               --kubeconfig K --node NODE --pod POD --log OUT.log --json OUT.json [--timeout S]"""
import argparse, base64, datetime, json, os, re, shutil, ssl, subprocess, sys, tempfile, threading, time, urllib.request

ap = argparse.ArgumentParser()
for a in ["--name", "--disk", "--seed", "--mirror-log", "--registry-log", "--kubeconfig", "--node", "--pod", "--log", "--json"]:
    ap.add_argument(a, required=True)
ap.add_argument("--timeout", type=float, default=900)
ap.add_argument("--memory", default="3072")
ap.add_argument("--diagnose-after", type=float, default=300,
                help="seconds after which, if the Node is not Ready, log in on the serial console (root, empty password in the test base) and print the join's state; repeated every 120 s")
args = ap.parse_args()

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
accel = ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg", "-cpu", "qemu64"]

work = tempfile.mkdtemp(prefix="prebake-join-")
os.chmod(work, 0o700)

# API access with the kubeconfig's client certificate (files 0600 in work).
kc = open(args.kubeconfig).read()
def kfield(k):
    m = re.search(rf"{k}: (\S+)", kc)
    if not m:
        sys.exit(f"boot.py: {args.kubeconfig}: no {k}")
    return m.group(1)
server = kfield("server")
for k, f in [("certificate-authority-data", "ca.crt"), ("client-certificate-data", "client.crt"), ("client-key-data", "client.key")]:
    with open(os.open(os.path.join(work, f), os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
        out.write(base64.b64decode(kfield(k)))
ctx = ssl.create_default_context(cafile=os.path.join(work, "ca.crt"))
ctx.load_cert_chain(os.path.join(work, "client.crt"), os.path.join(work, "client.key"))

def get(path):
    try:
        with urllib.request.urlopen(server + path, context=ctx, timeout=5) as r:
            return json.load(r)
    except Exception:
        return None

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
    ("kernelStart", re.compile(r"Linux version \d")),
    ("systemdStart", re.compile(r"Welcome to .*Debian")),
    ("installStart", re.compile(r"PREBAKE-BOOT install-start")),
    ("installDone", re.compile(r"PREBAKE-BOOT install-done")),
    ("joinStart", re.compile(r"Starting .*prebake-join\.service|PREBAKE-BOOT join-start")),
    ("kubeletStarted", re.compile(r"Started .*kubelet\.service")),
]
ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
journal_re = re.compile(r"PREBAKE-JOURNAL (\d+\.\d+) \S+ (.*)")
events, journal_events = {}, {}
done = threading.Event()
t0 = time.time()
proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

DIAG = ("systemctl --no-pager --full status prebake-join.service prebake-join.path containerd.service "
        "prebake-images.service kubelet.service 2>&1 | cat; journalctl --no-pager -b -n 60 "
        "-u prebake-join.service -u prebake-agent.service -u containerd.service 2>&1 | cat\n")

def diagnose():
    """A stuck boot says why: its units' state on the serial console."""
    if done.wait(args.diagnose_after):
        return
    try:
        proc.stdin.write(b"\nroot\n")
        proc.stdin.flush()
        while not done.wait(5):
            proc.stdin.write(DIAG.encode())
            proc.stdin.flush()
            if done.wait(115):
                return
    except OSError:
        pass

def poll():
    while not done.is_set() and proc.poll() is None:
        t = round(time.time() - t0, 3)
        node = get(f"/api/v1/nodes/{args.node}")
        if node:
            events.setdefault("nodeCreated", t)
            for c in node.get("status", {}).get("conditions", []):
                if c["type"] == "Ready" and c["status"] == "True":
                    events.setdefault("nodeReady", t)
        if "nodeCreated" in events:
            pod = get(f"/api/v1/namespaces/default/pods/{args.pod}")
            if pod and pod.get("status", {}).get("phase") == "Running":
                events.setdefault("podRunning", t)
        if "podRunning" in events and "nodeReady" in events:
            done.set()
            journal()
            proc.kill()
            return
        time.sleep(0.25)

# systemd's status lines on the console are not all printed once a getty
# shares it, so the join's start is also read from the journal at the end
# (wall-clock seconds; the guest's clock comes from the host's).
JOURNAL = ("journalctl -o short-unix --no-pager -b | grep -E 'Starting prebake-join.service|Starting prebake-agent.service|"
           "Running pre-flight checks' | sed 's/^/PREBAKE-JOURNAL /'; echo PREBAKE-JOURNAL-END\n")
journal_end = threading.Event()

def journal():
    try:
        proc.stdin.write(b"\nroot\n")
        proc.stdin.flush()
        time.sleep(5)
        proc.stdin.write(JOURNAL.encode())
        proc.stdin.flush()
    except OSError:
        return
    journal_end.wait(90)

def timeout():
    if not done.wait(args.timeout):
        proc.kill()

threading.Thread(target=poll, daemon=True).start()
threading.Thread(target=timeout, daemon=True).start()
threading.Thread(target=diagnose, daemon=True).start()
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
        m = journal_re.search(line)
        if m:
            at = round(float(m.group(1)) - t0, 3)
            what = m.group(2)
            key = ("joinUnitStart" if "prebake-join" in what else
                   "agentStart" if "prebake-agent" in what else "kubeadmPreflight")
            journal_events.setdefault(key, at)
        if line.startswith("PREBAKE-JOURNAL-END"):
            journal_end.set()
rc = proc.wait()
# The join's start: the console's marker (baseline) or the journal's first
# start of the join unit or the agent's kubeadm (prebake).
for k, v in journal_events.items():
    events.setdefault(k, v)
starts = [v for k, v in journal_events.items() if k in ("joinUnitStart", "kubeadmPreflight")]
if starts and ("joinStart" not in events or min(starts) < events["joinStart"]):
    events["joinStart"] = min(starts)
t_end = time.time()
ok = done.is_set()
done.set()
shutil.rmtree(work, ignore_errors=True)

# What the boot fetched. No log means nothing can be said: fail, not 0.
served, downloads = 0, []
with open(args.mirror_log) as f:
    for l in f:
        r = json.loads(l)
        if t0 <= r["time"] <= t_end:
            served += r["bytes"]
            downloads.append({"path": r["path"], "bytes": r["bytes"], "at": round(r["time"] - t0, 3)})
pulls = []
req = re.compile(r"^time=(\S+) .*msg=request method=(\S+) path=(\S+) status=(\d+)")
with open(args.registry_log) as f:
    for l in f:
        m = req.match(l)
        if not m:
            continue
        at = datetime.datetime.fromisoformat(m.group(1)).timestamp()
        if t0 <= at <= t_end:
            pulls.append({"method": m.group(2), "path": m.group(3), "status": int(m.group(4)), "at": round(at - t0, 3)})

def since_kernel(k):
    return round(events[k] - events["kernelStart"], 3) if k in events and "kernelStart" in events else None

res = {
    "variant": args.name,
    "accelerator": "kvm" if kvm else "tcg (-cpu qemu64 -smp 2)",
    "memoryMiB": int(args.memory),
    "disk": os.path.basename(args.disk),
    "node": args.node,
    "secondsSinceQemuStart": events,
    "secondsSinceKernelStart": {k: since_kernel(k) for k in events if k != "kernelStart"},
    "bytesDownloadedAtBoot": served,
    "downloadsAtBoot": downloads,
    "registryRequestsAtBoot": len(pulls),
    "registryRequests": pulls,
    "ready": "nodeReady" in events,
    "podRunning": "podRunning" in events,
    "timedOut": not ok,
    "qemuExit": rc,
}
with open(args.json, "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print(json.dumps({k: res[k] for k in ["variant", "secondsSinceQemuStart", "bytesDownloadedAtBoot", "registryRequestsAtBoot"]}))
sys.exit(0 if ok else 1)
