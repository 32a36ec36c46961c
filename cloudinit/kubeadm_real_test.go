package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prebake/prebake/internal/testenv"
)

// TestJoinConfigurationRealKubeadm feeds every shape of JoinConfiguration
// the renderer emits, in both kubeadm API versions, to the real kubeadm's
// `kubeadm config validate`, and checks that it refuses a broken one.
func TestJoinConfigurationRealKubeadm(t *testing.T) {
	kubeadm := testenv.RealBinary(t, "PREBAKE_KUBEADM", "kubeadm")
	out, err := exec.Command(kubeadm, "version", "-o", "short").CombinedOutput()
	if err != nil {
		t.Fatalf("kubeadm version: %v: %s", err, out)
	}
	t.Logf("kubeadm %s", strings.TrimSpace(string(out)))

	hash := "sha256:" + strings.Repeat("ab", 32)
	cluster := func() *Cluster {
		return &Cluster{APIServerEndpoint: "10.0.2.2:6443", BootstrapToken: "abcdef.0123456789abcdef"}
	}
	cases := map[string]joinInput{
		"worker":           {node: &Node{Name: "w1", Role: RoleWorker}, cluster: cluster(), caHashes: []string{hash}},
		"worker-unsafe-ca": {node: &Node{Name: "w1", Role: RoleWorker}, cluster: cluster(), unsafeCA: true},
		"worker-everything": {
			node: &Node{
				Name: "w2", Role: RoleWorker, MaxPods: 50,
				Labels:           map[string]string{"node.kubernetes.io/pool": "gpu", "example.com/rack": "r1"},
				Taints:           []Taint{{Key: "gpu", Value: "true", Effect: "NoSchedule"}, {Key: "dedicated", Effect: "NoExecute"}},
				KubeletExtraArgs: map[string]string{"v": "2", "node-ip": "10.0.2.15"},
			},
			cluster: func() *Cluster {
				c := cluster()
				c.DiscoveryTimeout = Duration{Duration: 3 * time.Minute}
				return c
			}(),
			caHashes: []string{hash, "sha256:" + strings.Repeat("cd", 32)},
		},
		"control-plane": {
			node: &Node{
				Name: "cp2", Role: RoleControlPlane, CertificateKey: strings.Repeat("0f", 32),
				AdvertiseAddress: "10.0.2.16", BindPort: 6443,
			},
			cluster: cluster(), caHashes: []string{hash},
		},
	}
	dir := t.TempDir()
	for _, api := range []string{kubeadmV1beta4, kubeadmV1beta3} {
		for name, in := range cases {
			t.Run(strings.TrimPrefix(api, kubeadmGroup+"/")+"/"+name, func(t *testing.T) {
				b, err := joinConfiguration(api, in)
				if err != nil {
					t.Fatal(err)
				}
				f := filepath.Join(dir, strings.ReplaceAll(api, "/", "_")+"-"+name+".yaml")
				if err := os.WriteFile(f, b, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(kubeadm, "config", "validate", "--config", f).CombinedOutput()
				if err != nil {
					t.Fatalf("kubeadm config validate: %v\n%s\n--- %s:\n%s", err, out, f, b)
				}
				// v1beta4 is current: any warning is a finding. v1beta3 is
				// deprecated and says so; nothing else is expected.
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					if line == "ok" || (api == kubeadmV1beta3 && strings.Contains(line, "deprecated API spec")) {
						continue
					}
					t.Errorf("kubeadm config validate printed %q\n--- %s:\n%s", line, f, b)
				}
			})
		}
	}

	t.Run("refuses-a-bad-token", func(t *testing.T) {
		c := cluster()
		c.BootstrapToken = "ABCDEF.0123456789abcdef"
		b, err := joinConfiguration(kubeadmV1beta4, joinInput{node: &Node{Name: "w1", Role: RoleWorker}, cluster: c, caHashes: []string{hash}})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(kubeadm, "config", "validate", "--config", f).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bootstrap token is invalid") {
			t.Fatalf("kubeadm accepted an invalid token (err %v):\n%s", err, out)
		}
	})
}
