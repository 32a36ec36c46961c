package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prebake/prebake/agent"
	"github.com/prebake/prebake/cloudinit"
	"github.com/prebake/prebake/internal/testenv"
)

const token = "abcdef.0123456789abcdef"

// build compiles the agent the way releases are built (static, stripped).
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "prebake-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-buildid= -s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The agent links the standard library and its own packages only, and stays
// small: no cobra, no registry or signing code.
func TestSmallAndSelfContained(t *testing.T) {
	testenv.Short(t, "builds the agent")
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/prebake/prebake/cmd/prebake-agent", "github.com/prebake/prebake/agent", "github.com/prebake/prebake/agent/datasource":
		default:
			t.Errorf("prebake-agent links %s", p)
		}
	}
	fi, err := os.Stat(build(t))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 10<<20 {
		t.Errorf("prebake-agent is %d bytes, over 10 MiB", fi.Size())
	}
	t.Logf("prebake-agent %s/%s: %d bytes", runtime.GOOS, runtime.GOARCH, fi.Size())
}

func render(t *testing.T, mode string, format cloudinit.Format) []byte {
	t.Helper()
	nc := &cloudinit.NodeConfig{
		Cluster: cloudinit.Cluster{APIServerEndpoint: "10.0.0.1:6443", BootstrapToken: token,
			CACertHashes: []string{"sha256:" + strings.Repeat("0", 64)}},
		Node: cloudinit.Node{Name: "worker-1", Labels: map[string]string{"node.kubernetes.io/pool": "a"}},
	}
	if mode == "kubelet" {
		nc.Node.JoinMode = "kubelet"
		nc.Cluster.CACertHashes = nil
		nc.Cluster.CACert = testCA(t)
	}
	b, err := cloudinit.Render(nc, cloudinit.Options{KubernetesVersion: "1.36.4", JoinUnit: "prebake-join.path", Agent: true, Format: format})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type result struct {
	code int
	out  string
}

func runAgent(t *testing.T, bin, root string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-root", root, "-no-start", "-wait", "0s"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), token) || strings.Contains(out.String(), "0123456789abcdef") {
		t.Errorf("the agent logged the token:\n%s", out.String())
	}
	return result{code, out.String()}
}

func TestAgentCommand(t *testing.T) {
	testenv.Short(t, "builds the agent")
	bin := build(t)
	dir := t.TempDir()
	ud := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	good := ud("good", render(t, "kubeadm", cloudinit.FormatCloudConfig))

	t.Run("joins", func(t *testing.T) {
		root := t.TempDir()
		r := runAgent(t, bin, root, "-datasource", "file="+good)
		if r.code != 0 || !strings.Contains(r.out, "claimed "+agent.StampPath) {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
		fi, err := os.Stat(filepath.Join(root, agent.KubeadmJoinPath))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("join file: %v %v", fi, err)
		}
		// The node's name resolves locally (kubeadm's preflight looks it up).
		if b, err := os.ReadFile(filepath.Join(root, agent.HostsPath)); err != nil || !strings.Contains(string(b), agent.HostsLine("worker-1")) {
			t.Errorf("%s: %q %v, want a line %q", agent.HostsPath, b, err, agent.HostsLine("worker-1"))
		}
		// Second boot: nothing happens.
		r = runAgent(t, bin, root, "-datasource", "file="+good)
		if r.code != 0 || !strings.Contains(r.out, "already joined") {
			t.Fatalf("second run: exit %d:\n%s", r.code, r.out)
		}
	})
	t.Run("no block: cloud-init joins", func(t *testing.T) {
		root := t.TempDir()
		plain := ud("plain", []byte("#cloud-config\nwrite_files: []\n"))
		r := runAgent(t, bin, root, "-datasource", "file="+plain)
		if r.code != 0 || !strings.Contains(r.out, "leaving the join to cloud-init") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
		if _, ok := agent.Joined(root); ok {
			t.Error("claimed")
		}
	})
	t.Run("no datasource", func(t *testing.T) {
		r := runAgent(t, bin, t.TempDir(), "-datasource", "file="+filepath.Join(dir, "missing"))
		if r.code != 0 || !strings.Contains(r.out, "no datasource found") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
	})
	t.Run("malformed: refused, no join by anyone", func(t *testing.T) {
		root := t.TempDir()
		b, _ := os.ReadFile(good)
		bad := ud("bad", bytes.Replace(b, []byte("# prebake-agent/v1 end"), []byte("# prebake-agent/v1 ending"), 1))
		r := runAgent(t, bin, root, "-datasource", "file="+bad)
		if r.code != 1 || !strings.Contains(r.out, "REFUSED, no join") || !strings.Contains(r.out, "malformed prebake agent block: user-data line ") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
		if _, err := os.Stat(filepath.Join(root, agent.FailedPath)); err != nil {
			t.Error("no failure mark for the cloud-init join unit")
		}
		if _, ok := agent.Joined(root); ok {
			t.Error("claimed")
		}
		if _, err := os.Stat(filepath.Join(root, agent.KubeadmJoinPath)); err == nil {
			t.Error("join file written")
		}
	})
	t.Run("MIME and gzip", func(t *testing.T) {
		for _, f := range []cloudinit.Format{cloudinit.FormatMIME} {
			root := t.TempDir()
			r := runAgent(t, bin, root, "-datasource", "file="+ud("mime", render(t, "kubeadm", f)))
			if r.code != 0 || !strings.Contains(r.out, "claimed") {
				t.Fatalf("%s: exit %d:\n%s", f, r.code, r.out)
			}
		}
		z, _ := cloudinit.Gzip(render(t, "kubeadm", cloudinit.FormatCloudConfig))
		r := runAgent(t, bin, t.TempDir(), "-datasource", "file="+ud("gz", z))
		if r.code != 0 || !strings.Contains(r.out, "claimed") {
			t.Fatalf("gzip: exit %d:\n%s", r.code, r.out)
		}
	})
	t.Run("kubelet mode", func(t *testing.T) {
		root := t.TempDir()
		r := runAgent(t, bin, root, "-datasource", "file="+ud("kubelet", render(t, "kubelet", cloudinit.FormatCloudConfig)))
		if r.code != 0 || !strings.Contains(r.out, "(kubelet join)") {
			t.Fatalf("exit %d:\n%s", r.code, r.out)
		}
		for p, mode := range map[string]os.FileMode{agent.BootstrapKubeconfigPath: 0o600, agent.KubeletConfigPath: 0o644,
			"/etc/kubernetes/pki/ca.crt": 0o644, "/var/lib/kubelet/kubeadm-flags.env": 0o644} {
			fi, err := os.Stat(filepath.Join(root, p))
			if err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %v %v, want mode %v", p, fi, err, mode)
			}
		}
		kc, _ := os.ReadFile(filepath.Join(root, agent.BootstrapKubeconfigPath))
		if !strings.Contains(string(kc), "token: "+token) || !strings.Contains(string(kc), "server: https://10.0.0.1:6443") {
			t.Errorf("bootstrap kubeconfig:\n%s", kc)
		}
		if _, err := os.Stat(filepath.Join(root, agent.KubeadmJoinPath)); err == nil {
			t.Error("kubeadm join file written in the kubelet mode")
		}
	})
	t.Run("check", func(t *testing.T) {
		out, err := exec.Command(bin, "check", good).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "node worker-1, kubeadm join") || strings.Contains(string(out), token) {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}

// The agent reads the NoCloud seed cloud-localds makes, with the same
// user-data cloud-init reads.
func TestAgentFromSeed(t *testing.T) {
	testenv.Short(t, "builds the agent")
	localds, err := exec.LookPath("cloud-localds")
	if err != nil {
		t.Fatal("cloud-localds not on PATH: run hack/tools.sh")
	}
	bin := build(t)
	dir := t.TempDir()
	ud := filepath.Join(dir, "user-data")
	os.WriteFile(ud, render(t, "kubeadm", cloudinit.FormatCloudConfig), 0o600)
	md := filepath.Join(dir, "meta-data")
	os.WriteFile(md, []byte("instance-id: i-1\n"), 0o644)
	seed := filepath.Join(dir, "seed.img")
	if out, err := exec.Command(localds, seed, ud, md).CombinedOutput(); err != nil {
		t.Fatalf("cloud-localds: %v\n%s", err, out)
	}
	root := t.TempDir()
	r := runAgent(t, bin, root, "-datasource", "nocloud", "-devices", filepath.Join(dir, "meta-data")+","+seed)
	if r.code != 0 || !strings.Contains(r.out, "nocloud user-data: wrote") {
		t.Fatalf("exit %d:\n%s", r.code, r.out)
	}
}
