package cloudinit

import (
	"bytes"
	"errors"
	"github.com/prebake/prebake/internal/testenv"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/agent"
)

func renderAgent(t *testing.T, nc *NodeConfig, format Format) []byte {
	t.Helper()
	b, err := Render(nc, Options{KubernetesVersion: "1.36.4", JoinUnit: "prebake-join.path", Agent: true, Format: format})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type writeFiles struct {
	WriteFiles []struct {
		Path, Permissions, Content string
		Append                     bool
	} `yaml:"write_files"`
	Runcmd [][]string `yaml:"runcmd"`
}

// One document for both paths: the agent's block carries the files
// cloud-init writes (the join configuration at the agent's own path), and
// the cloud-config is unchanged around it.
func TestAgentBlockMatchesCloudConfig(t *testing.T) {
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	plain, err := Render(nc, Options{KubernetesVersion: "1.36.4", JoinUnit: "prebake-join.path"})
	if err != nil {
		t.Fatal(err)
	}
	withAgent := renderAgent(t, nc, FormatCloudConfig)
	c, err := agent.Extract(withAgent)
	if err != nil {
		t.Fatal(err)
	}
	var wf writeFiles
	if err := yaml.Unmarshal(withAgent, &wf); err != nil {
		t.Fatal(err)
	}
	// Without the block's lines, the document is what renders without the agent.
	var stripped bytes.Buffer
	for _, l := range strings.SplitAfter(string(withAgent), "\n") {
		if !strings.HasPrefix(l, "# prebake-agent/v1 ") && !(strings.HasPrefix(l, "# ") && strings.Trim(l[2:], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n") == "") {
			stripped.WriteString(l)
		}
	}
	if stripped.String() != string(plain) {
		t.Errorf("the agent block changed the cloud-config around it:\n%s\n---\n%s", stripped.String(), plain)
	}
	if c.JoinMode != agent.ModeKubeadm || c.Node != "worker-1" {
		t.Errorf("config %+v", c)
	}
	byPath := map[string]agent.File{}
	for _, f := range c.Files {
		byPath[f.Path] = f
	}
	hosts := 0
	for _, w := range wf.WriteFiles {
		p := w.Path
		if p == agent.HostsPath {
			// Appended by cloud-init; the agent appends the same line
			// itself (agent.AddHost), so it is not in the block.
			hosts++
			if !w.Append || w.Content != agent.HostsLine(c.Node) || w.Permissions != "0644" {
				t.Errorf("%s: append %v, permissions %s, content %q; want an appended %q, 0644", p, w.Append, w.Permissions, w.Content, agent.HostsLine(c.Node))
			}
			continue
		}
		if p == JoinConfigPath {
			p = agent.KubeadmJoinPath
		}
		f, ok := byPath[p]
		if !ok {
			t.Errorf("%s: in write_files, not in the agent block", w.Path)
			continue
		}
		if string(f.Content) != w.Content || f.Mode != w.Permissions {
			t.Errorf("%s: block has %s %q, write_files %s %q", p, f.Mode, f.Content, w.Permissions, w.Content)
		}
	}
	if hosts != 1 {
		t.Errorf("write_files has %d entries for %s, want 1", hosts, agent.HostsPath)
	}
	if len(byPath) != len(wf.WriteFiles)-hosts {
		t.Errorf("block has %d files, write_files %d besides %s", len(byPath), len(wf.WriteFiles)-hosts, agent.HostsPath)
	}
	// MIME and gzip carry the same block.
	for _, b := range [][]byte{renderAgent(t, nc, FormatMIME)} {
		if c2, err := agent.Extract(b); err != nil || len(c2.Files) != len(c.Files) {
			t.Errorf("MIME: %v", err)
		}
	}
	// Ignition has no agent block (Flatcar joins from its own unit).
	ign := renderAgent(t, nc, FormatIgnition)
	if bytes.Contains(ign, []byte("prebake-agent")) {
		t.Error("the Ignition config has an agent block")
	}
}

func kubeletSpec(t *testing.T) *NodeConfig {
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	nc.Node.JoinMode = JoinModeKubelet
	return nc
}

func TestKubeletJoinMode(t *testing.T) {
	nc := kubeletSpec(t)
	b := renderAgent(t, nc, FormatCloudConfig)
	var wf writeFiles
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	for _, w := range wf.WriteFiles {
		paths[w.Path] = w.Permissions
	}
	if _, ok := paths[JoinConfigPath]; ok {
		t.Error("the kubelet mode writes kubeadm's join file (the image's kubeadm join unit would fire)")
	}
	for _, p := range []string{agent.BootstrapKubeconfigPath, agent.KubeletConfigPath, kubeletCAPath, kubeletFlagsPath} {
		if paths[kubeletStage+p] != "0600" {
			t.Errorf("%s not staged 0600: %q", kubeletStage+p, paths[kubeletStage+p])
		}
	}
	if len(wf.Runcmd) != 1 || wf.Runcmd[0][1] != joinScriptPath {
		t.Fatalf("runcmd %v", wf.Runcmd)
	}
	var script string
	for _, w := range wf.WriteFiles {
		if w.Path == joinScriptPath {
			script = w.Content
		}
	}
	for _, want := range []string{agent.StampPath, agent.FailedPath, "systemctl restart kubelet", "install -D -m 0600 " + kubeletStage + agent.BootstrapKubeconfigPath} {
		if !strings.Contains(script, want) {
			t.Errorf("join script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, nc.Cluster.BootstrapToken) {
		t.Error("the join script holds the token")
	}
	c, err := agent.Extract(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.JoinMode != agent.ModeKubelet {
		t.Fatalf("mode %s", c.JoinMode)
	}
	for _, f := range c.Files {
		switch f.Path {
		case agent.BootstrapKubeconfigPath:
			if f.Mode != "0600" || !strings.Contains(string(f.Content), "token: "+nc.Cluster.BootstrapToken) || !strings.Contains(string(f.Content), "server: https://api.prod.example.com:6443") {
				t.Errorf("bootstrap kubeconfig %s:\n%s", f.Mode, f.Content)
			}
		case kubeletFlagsPath:
			for _, want := range []string{"--hostname-override=worker-1", "--node-labels=node.kubernetes.io/pool=general,", "--register-with-taints=dedicated=batch:NoSchedule", "--max-pods=110"} {
				if !strings.Contains(string(f.Content), want) {
					t.Errorf("flags lack %s:\n%s", want, f.Content)
				}
			}
		case agent.KubeletConfigPath:
			if !strings.Contains(string(f.Content), "- 10.96.0.10\nclusterDomain: cluster.local\n") {
				t.Errorf("kubelet config:\n%s", f.Content)
			}
		}
	}
}

func TestJoinModeValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		mut   func(*NodeConfig)
		field string
	}{
		"unknown mode": {func(nc *NodeConfig) { nc.Node.JoinMode = "ssh" }, "node.joinMode"},
		"control plane": {func(nc *NodeConfig) {
			nc.Node.JoinMode = JoinModeKubelet
			nc.Node.Role = RoleControlPlane
			nc.Node.CertificateKey = strings.Repeat("a", 64)
		}, "node.joinMode"},
		"no CA certificate": {func(nc *NodeConfig) {
			nc.Node.JoinMode = JoinModeKubelet
			nc.Cluster.CACert = nil
			nc.Cluster.CACertFile = ""
			nc.Cluster.CACertHashes = []string{"sha256:" + strings.Repeat("0", 64)}
		}, "cluster.caCertFile"},
		"bad cluster DNS":    {func(nc *NodeConfig) { nc.Cluster.ClusterDNS = []string{"dns"} }, "cluster.clusterDNS[0]"},
		"bad cluster domain": {func(nc *NodeConfig) { nc.Cluster.ClusterDomain = "Bad_Domain" }, "cluster.clusterDomain"},
	} {
		t.Run(name, func(t *testing.T) {
			nc := mustLoad(t, "testdata/worker.yaml")[0]
			tc.mut(nc)
			_, err := Render(nc, Options{KubernetesVersion: "1.36.4", Agent: true})
			var se *SpecError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want a problem with %s", err, tc.field)
			}
		})
	}
}

// The agent's documents stay valid cloud-config for Debian's cloud-init.
func TestAgentCloudInitSchema(t *testing.T) {
	ci := testenv.Tool(t, "cloud-init")
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"kubeadm": renderAgent(t, mustLoad(t, "testdata/worker.yaml")[0], FormatCloudConfig),
		"kubelet": renderAgent(t, kubeletSpec(t), FormatCloudConfig),
	} {
		p := writeFile(t, dir, name+".yaml", b)
		out, err := exec.Command(ci, "schema", "--config-file", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
			t.Errorf("%s: cloud-init schema: %v\n%s", name, err, out)
		}
	}
}
