#!/usr/bin/env python3
"""Boots the two machines of `make e2e-cluster` under qemu (UEFI, NoCloud
seeds) and records, per machine, in seconds since its qemu started: the kernel, the init or join unit's start (serial console, then the
journal), and from the API server (polled every 0.5 s through a loopback port
forward to the control plane): the API server healthy (/readyz), the Node
object, Node Ready; and the test Pod (created as soon as the API answers,
nodeSelector on the worker) Running.

The worker starts when the control plane's API server first answers
(--worker-after api), or together with it (--worker-after 0): with two
emulated machines on two host cores, a worker booting beside `kubeadm init`
only slows the init down, and it cannot join before the API answers anyway.
Disk writes go to a throw-away overlay (snapshot=on) with cache=unsafe:
etcd's fsyncs reach no host disk (the machines are discarded at the end).

Networks: each machine has a user network with restrict=on (no route out of
the machine: nothing can be downloaded) and a private qemu socket network
between the two (192.0.2.0/24, set by the seeds' network-config). The control
plane's user network forwards 127.0.0.1:PORT to its API server.

What the boots fetched: bytes from the loopback file mirror and requests to
the image registry while the machines ran, and the cluster's image-pull
events (reason Pulling) at the end. Exits 0 only if both Nodes are Ready and
the Pod runs on the worker with nothing fetched and nothing pulled.

KVM when /dev/kvm is usable, else TCG with -cpu qemu64 -smp 2."""
import argparse, datetime, json, os, re, shutil, socket, ssl, subprocess, sys, tempfile, threading, time, urllib.request

ap = argparse.ArgumentParser()
for a in ["--cp-disk", "--worker-disk", "--cp-seed", "--worker-seed", "--ca", "--cert", "--key", "--hello",
          "--mirror-log", "--registry-log", "--out"]:
    ap.add_argument(a, required=True)
ap.add_argument("--timeout", type=float, default=1800)
ap.add_argument("--diagnose-after", type=float, default=600)
ap.add_argument("--worker-after", default="api", choices=["api", "0"])
args = ap.parse_args()

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
accel = ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg", "-cpu", "qemu64"]
work = tempfile.mkdtemp(prefix="prebake-cluster-")

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

api_port, sock_port = free_port(), free_port()
ctx = ssl.create_default_context(cafile=args.ca)
ctx.check_hostname = False  # the serving certificate names 192.0.2.10, not the forward's 127.0.0.1
ctx.load_cert_chain(args.cert, args.key)
server = f"https://127.0.0.1:{api_port}"

def api(path, body=None, timeout=5):
    req = urllib.request.Request(server + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            data = r.read()
            return r.status, (json.loads(data) if data[:1] in (b"{", b"[") else data.decode())
    except urllib.error.HTTPError as e:
        return e.code, None
    except Exception:
        return None, None

MACHINES = {
    "cp": dict(disk=args.cp_disk, seed=args.cp_seed, memory="4096", mac="52:54:00:12:00:10",
               user=f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{api_port}-:6443",
               sock=f"socket,id=n1,listen=127.0.0.1:{sock_port}", node="cp-1"),
    "worker": dict(disk=args.worker_disk, seed=args.worker_seed, memory="2048", mac="52:54:00:12:00:11",
                   user="user,id=n0,restrict=on", sock=f"socket,id=n1,connect=127.0.0.1:{sock_port}", node="worker-1"),
}
patterns = [
    ("kernelStart", re.compile(r"Linux version \d")),
    ("systemdStart", re.compile(r"Welcome to .*Debian")),
    ("imagesImported", re.compile(r"Finished .*prebake-images\.service")),
    ("initStart", re.compile(r"Starting .*prebake-init\.service")),
    ("joinStart", re.compile(r"Starting .*prebake-(agent-)?join\.service")),
    ("kubeletStarted", re.compile(r"Started .*kubelet\.service")),
]
ansi = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
journal_re = re.compile(r"PREBAKE-JOURNAL (\d+\.\d+) \S+ (.*)")
done = threading.Event()
DIAG = ("systemctl --no-pager --full status prebake-init.service prebake-join.service prebake-agent-join.service "
        "prebake-images.service containerd.service kubelet.service 2>&1 | cat; "
        "journalctl --no-pager -b -n 80 -u prebake-init.service -u prebake-join.service -u prebake-agent-join.service "
        "-u kubelet.service 2>&1 | cat; crictl ps -a 2>&1 | cat; ip -br addr | cat; free -m; cat /proc/loadavg; "
        "top -b -n1 -o %CPU -w 200 | head -16; for c in kube-apiserver etcd; do i=$(crictl ps -q --name $c | head -1); "
        "[ -n \"$i\" ] && crictl logs --tail 12 $i 2>&1 | cut -c1-240; done\n")
JOURNAL = ("journalctl -o short-unix --no-pager -b | grep -E 'Starting prebake-init.service|Starting prebake-join.service|"
           "Starting prebake-agent-join.service|Running pre-flight checks|Finished prebake-images.service|Started kubelet.service' "
           "| sed 's/^/PREBAKE-JOURNAL /'; "
           "journalctl --no-pager -b | grep -c 'PullImage' | sed 's/^/PREBAKE-PULLS /'; echo PREBAKE-JOURNAL-END\n")


class Machine:
    def __init__(self, name, m):
        self.name, self.m = name, m
        self.events, self.journal_events = {}, {}
        self.logged_in = False
        self.journal_end = threading.Event()
        self.pull_lines = None
        vars_fd = os.path.join(work, f"{name}.OVMF_VARS.fd")
        shutil.copyfile(OVMF_VARS, vars_fd)
        self.cmd = ["qemu-system-x86_64", "-machine", "q35", *accel, "-smp", "2", "-m", m["memory"],
                    "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot",
                    "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                    "-drive", f"if=pflash,format=raw,file={vars_fd}",
                    "-drive", f"file={m['disk']},if=virtio,format=qcow2,snapshot=on,cache=unsafe",
                    "-drive", f"file={m['seed']},if=virtio,format=raw,readonly=on",
                    "-netdev", m["user"], "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
                    "-netdev", m["sock"], "-device", f"virtio-net-pci,netdev=n1,mac={m['mac']}"]

    def start(self):
        self.t0 = time.time()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self.read, daemon=True).start()
        threading.Thread(target=self.diagnose, daemon=True).start()

    def at(self, t):
        return round(t - self.t0, 3)

    def type(self, text):
        self.logged_in = True
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except OSError:
            pass

    def read(self):
        with open(os.path.join(args.out, f"{self.name}.console.log"), "w") as log:
            log.write(f"# {' '.join(self.cmd)}\n# t0={self.t0:.3f} (host time); each line: seconds since qemu started\n")
            for raw in self.proc.stdout:
                t = time.time() - self.t0
                line = ansi.sub("", raw.decode("utf-8", "replace").rstrip("\n"))
                log.write(f"{t:9.3f} {line}\n")
                log.flush()
                # Once logged in (diagnosis, journal), the console echoes
                # unit names from status output: events come from the
                # journal then.
                for key, rx in patterns:
                    if not self.logged_in and key not in self.events and rx.search(line):
                        self.events[key] = round(t, 3)
                m = journal_re.search(line)
                if m:
                    what = m.group(2)
                    key = ("imagesImported" if "prebake-images" in what else "kubeletStarted" if "kubelet" in what
                           else "initUnitStart" if "prebake-init" in what else "joinUnitStart" if "join" in what
                           else "kubeadmPreflight")
                    self.journal_events.setdefault(key, round(float(m.group(1)) - self.t0, 3))
                m = re.search(r"PREBAKE-PULLS (\d+)", line)
                if m:
                    self.pull_lines = int(m.group(1))
                if line.startswith("PREBAKE-JOURNAL-END"):
                    self.journal_end.set()

    def diagnose(self):
        """A stuck boot says why: its units' state on the serial console."""
        if done.wait(args.diagnose_after):
            return
        self.type("\nroot\n")
        while not done.wait(5):
            self.type(DIAG)
            if done.wait(175):
                return

    def journal(self):
        self.type("\nroot\n")
        time.sleep(5)
        self.type(JOURNAL)
        self.journal_end.wait(120)


machines = {n: Machine(n, m) for n, m in MACHINES.items()}
machines["cp"].start()
cp, wk = machines["cp"], machines["worker"]
if args.worker_after == "0":
    time.sleep(1)  # the socket network's listening end first
    wk.start()

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": "default"},
       "spec": {"nodeSelector": {"kubernetes.io/hostname": "worker-1"}, "automountServiceAccountToken": False,
                "containers": [{"name": "hello", "image": args.hello, "imagePullPolicy": "IfNotPresent"}]}}
pod_created = False
deadline = time.time() + args.timeout
ok = False
def started():
    return [m for m in machines.values() if hasattr(m, "proc")]

while time.time() < deadline and all(m.proc.poll() is None for m in started()):
    now = time.time()
    status, body = api("/readyz")
    if status == 200:
        cp.events.setdefault("apiServerHealthy", cp.at(now))
    if not hasattr(wk, "proc") and (status is not None or "apiServerHealthy" in cp.events):
        wk.start()
        cp.events.setdefault("workerStarted", cp.at(wk.t0))
    if "apiServerHealthy" in cp.events:
        if not pod_created:
            st, _ = api("/api/v1/namespaces/default/pods", POD)
            pod_created = st in (201, 409)
            if pod_created:
                cp.events.setdefault("podCreated", cp.at(now))
        for m in started():
            st, node = api(f"/api/v1/nodes/{m.m['node']}")
            if st == 200 and node:
                m.events.setdefault("nodeCreated", m.at(now))
                for c in node.get("status", {}).get("conditions", []):
                    if c["type"] == "Ready" and c["status"] == "True":
                        m.events.setdefault("nodeReady", m.at(now))
        if pod_created:
            st, pod = api("/api/v1/namespaces/default/pods/hello")
            if st == 200 and pod and pod.get("status", {}).get("phase") == "Running":
                wk.events.setdefault("podRunning", wk.at(now))
    if all("nodeReady" in m.events for m in machines.values()) and "podRunning" in wk.events:
        ok = True
        break
    time.sleep(0.5)
t_end = time.time()

# The cluster's state, its image pulls (kubelet events), then each journal.
def api_final(path):
    # The emulated API server can be slow to answer a list: a few tries,
    # longer each, so that a result is not missing for a slow answer (a
    # run printed "None pulls" when the events list timed out after 5 s).
    for timeout in (10, 20, 40):
        st, body = api(path, timeout=timeout)
        if st == 200:
            return body
    return None

pods = api_final("/api/v1/pods")
nodes = api_final("/api/v1/nodes")
pull_events = api_final("/api/v1/events?fieldSelector=reason%3DPulling")
pods_summary = [{"namespace": p["metadata"]["namespace"], "name": p["metadata"]["name"], "node": p["spec"].get("nodeName"),
                 "phase": p.get("status", {}).get("phase"),
                 "restarts": sum(c.get("restartCount", 0) for c in p.get("status", {}).get("containerStatuses", []) or [])}
                for p in (pods or {}).get("items", [])]
nodes_summary = [{"name": n["metadata"]["name"], "kubelet": n["status"]["nodeInfo"]["kubeletVersion"],
                  "runtime": n["status"]["nodeInfo"]["containerRuntimeVersion"],
                  "addresses": [a["address"] for a in n["status"].get("addresses", [])],
                  "ready": any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
                 for n in (nodes or {}).get("items", [])]
pulls_k8s = len((pull_events or {}).get("items", [])) if isinstance(pull_events, dict) else None
threads = [threading.Thread(target=m.journal) for m in started() if m.proc.poll() is None]
for th in threads:
    th.start()
for th in threads:
    th.join()
done.set()
for m in started():
    m.proc.kill()
    m.proc.wait()
shutil.rmtree(work, ignore_errors=True)

served, downloads = 0, []
with open(args.mirror_log) as f:
    for l in f:
        r = json.loads(l)
        if cp.t0 <= r["time"] <= t_end:
            served += r["bytes"]
            downloads.append({"path": r["path"], "bytes": r["bytes"]})
reg = []
req = re.compile(r"^time=(\S+) .*msg=request method=(\S+) path=(\S+) status=(\d+)")
with open(args.registry_log) as f:
    for l in f:
        mm = req.match(l)
        if mm and cp.t0 <= datetime.datetime.fromisoformat(mm.group(1)).timestamp() <= t_end:
            reg.append({"method": mm.group(2), "path": mm.group(3), "status": int(mm.group(4))})

res = {"accelerator": "kvm" if kvm else "tcg (-cpu qemu64 -smp 2)", "loadAverage": os.getloadavg(),
       "ok": ok, "timeoutSeconds": args.timeout, "machines": {}, "nodes": nodes_summary, "pods": pods_summary,
       "bytesDownloadedAtBoot": served, "downloadsAtBoot": downloads, "registryRequestsAtBoot": len(reg),
       "registryRequests": reg, "imagePullEvents": pulls_k8s}
for n, m in machines.items():
    ev = dict(m.events)
    for k, v in m.journal_events.items():
        ev.setdefault(k, v)
    starts = [v for k, v in m.journal_events.items() if k in ("initUnitStart", "joinUnitStart", "kubeadmPreflight")]
    key = "initStart" if n == "cp" else "joinStart"
    if starts and (key not in ev or min(starts) < ev[key]):
        ev[key] = min(starts)
    res["machines"][n] = {"disk": os.path.basename(m.m["disk"]), "memoryMiB": int(m.m["memory"]), "node": m.m["node"],
                          "secondsSinceQemuStart": ev, "journalPullLines": m.pull_lines, "qemuExit": m.proc.returncode if hasattr(m, "proc") else None}
with open(os.path.join(args.out, "cluster.json"), "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
print(json.dumps({n: v["secondsSinceQemuStart"] for n, v in res["machines"].items()}, indent=1))
print(json.dumps({k: res[k] for k in ["ok", "bytesDownloadedAtBoot", "registryRequestsAtBoot", "imagePullEvents", "loadAverage"]}))
for p in pods_summary:
    print(f"  pod {p['namespace']}/{p['name']} on {p['node']}: {p['phase']} (restarts {p['restarts']})")
fetched = served > 0 or reg or (pulls_k8s or 0) > 0
if fetched:
    print("boot.py: the machines fetched or pulled something at boot", file=sys.stderr)
sys.exit(0 if ok and not fetched else 1)
