package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/internal/testenv"
)

// catalogMinors reads the catalog's supported Kubernetes versions
// (recipes/catalog/versions.yaml) and returns the newest patch of each minor.
func catalogMinors(t *testing.T) map[int]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "recipes", "catalog", "versions.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vs struct {
		Versions []struct {
			Kubernetes string `yaml:"kubernetes"`
		} `yaml:"versions"`
	}
	if err := yaml.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, v := range vs.Versions { // newest first
		kv, err := ParseKubernetesVersion(v.Kubernetes)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := out[kv.Minor]; !ok {
			out[kv.Minor] = v.Kubernetes
		}
	}
	if len(out) == 0 {
		t.Fatal("versions.yaml lists no versions")
	}
	return out
}

// kubeadmFor is the real kubeadm that validates a configuration for
// Kubernetes 1.minor: PREBAKE_KUBEADM_1_<minor> when set, else
// PREBAKE_KUBEADM if its own minor is minor or minor+1 (kubeadm deploys its
// own minor and the one before).
func kubeadmFor(t *testing.T, minor int) string {
	t.Helper()
	if p := os.Getenv("PREBAKE_KUBEADM_1_" + strconv.Itoa(minor)); p != "" {
		return testenv.RealBinary(t, "PREBAKE_KUBEADM_1_"+strconv.Itoa(minor), "kubeadm")
	}
	k := testenv.RealBinary(t, "PREBAKE_KUBEADM", "kubeadm")
	out, err := exec.Command(k, "version", "-o", "short").CombinedOutput()
	if err != nil {
		t.Fatalf("kubeadm version: %v: %s", err, out)
	}
	kv, err := ParseKubernetesVersion(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if kv.Minor != minor && kv.Minor != minor+1 {
		t.Fatalf("kubeadm %s cannot deploy Kubernetes 1.%d: set PREBAKE_KUBEADM_1_%d (K8S_VERSION=1.%d.x hack/real/build.sh kubeadm; make test does)", kv, minor, minor, minor)
	}
	return k
}

// TestInitConfigurationRealKubeadm renders the first control plane (render
// --init) for every catalog minor, in every shape, and feeds the
// InitConfiguration + ClusterConfiguration to the real kubeadm of that
// minor (`kubeadm config validate`), which must print nothing but ok. A
// control-plane join for the same cluster is validated alongside.
func TestInitConfigurationRealKubeadm(t *testing.T) {
	dir := t.TempDir()
	testCA(t, dir)
	shapes := map[string]string{
		"everything": initSpec,
		"minimal":    "apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\ncluster: {apiServerEndpoint: cp.example.test:6443}\nnode: {name: cp-1}\n",
		"no-taints-labels-subnets": strings.Replace(strings.Replace(initSpec, "  podSubnet: 10.244.0.0/16\n",
			"  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.112.0.0/12\n  clusterDomain: example.internal\n  imageRepository: registry.example.test/k8s\n", 1),
			"  name: cp-1\n", "  name: cp-1\n  taints: []\n  labels: {node.kubernetes.io/pool: control}\n  maxPods: 64\n  bindPort: 8443\n  kubeletExtraArgs: {node-ip: 192.0.2.10}\n", 1),
		"patches": initSpec + patchesSpec,
	}
	for minor, version := range catalogMinors(t) {
		kubeadm := kubeadmFor(t, minor)
		for name, spec := range shapes {
			t.Run(version+"/"+name, func(t *testing.T) {
				p := filepath.Join(dir, name+".yaml")
				if err := os.WriteFile(p, []byte(spec), 0o600); err != nil {
					t.Fatal(err)
				}
				specs, err := LoadInit(p)
				if err != nil {
					t.Fatal(err)
				}
				out, err := Render(specs[0], Options{KubernetesVersion: version, Init: true})
				if err != nil {
					t.Fatal(err)
				}
				files, _ := writtenFiles(t, out)
				cfg := filepath.Join(dir, version+"-"+name+"-init.yaml")
				if err := os.WriteFile(cfg, []byte(files[InitConfigPath]["content"]), 0o600); err != nil {
					t.Fatal(err)
				}
				res, err := exec.Command(kubeadm, "config", "validate", "--config", cfg).CombinedOutput()
				if err != nil || strings.TrimSpace(string(res)) != "ok" {
					t.Fatalf("kubeadm config validate: %v\n%s\n--- %s:\n%s", err, res, cfg, files[InitConfigPath]["content"])
				}
				if name == "patches" {
					checkPatchApplied(t, kubeadm, files, cfg)
				}
			})
		}
		t.Run(version+"/control-plane-join", func(t *testing.T) {
			b, err := joinConfiguration(KubeadmAPIVersion(mustVersion(t, version)), joinInput{
				node:     &Node{Name: "cp-2", Role: RoleControlPlane, CertificateKey: strings.Repeat("0f", 32), AdvertiseAddress: "192.0.2.12"},
				cluster:  &Cluster{APIServerEndpoint: "192.0.2.10:6443", BootstrapToken: "abcdef.0123456789abcdef"},
				caHashes: []string{"sha256:" + strings.Repeat("ab", 32)},
			})
			if err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, version+"-join.yaml")
			if err := os.WriteFile(cfg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			res, err := exec.Command(kubeadm, "config", "validate", "--config", cfg).CombinedOutput()
			if err != nil || strings.TrimSpace(string(res)) != "ok" {
				t.Fatalf("kubeadm config validate: %v\n%s\n--- %s:\n%s", err, res, cfg, b)
			}
		})
	}
}

func mustVersion(t *testing.T, s string) KubeVersion {
	t.Helper()
	v, err := ParseKubernetesVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkPatchApplied has the real kubeadm write the API server's static Pod
// manifest (a dry run, into a temporary directory) with the rendered
// patches, from a copy of the patch files: patchesSpec's startup probe must
// be in it.
func checkPatchApplied(t *testing.T, kubeadm string, files map[string]map[string]string, cfg string) {
	t.Helper()
	dir := t.TempDir()
	patches, dry := filepath.Join(dir, "patches"), filepath.Join(dir, "dry")
	for _, d := range []string{patches, dry} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for path, f := range files {
		if rest, ok := strings.CutPrefix(path, PatchesDir+"/"); ok {
			if err := os.WriteFile(filepath.Join(patches, rest), []byte(f["content"]), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d patch files under %s, want 2", n, PatchesDir)
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "init.yaml")
	if err := os.WriteFile(local, []byte(strings.Replace(string(data), "directory: "+PatchesDir, "directory: "+patches, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubeadm, "init", "phase", "control-plane", "apiserver", "--config", local, "--dry-run")
	cmd.Env = append(os.Environ(), "KUBEADM_INIT_DRYRUN_DIR="+dry)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubeadm init phase control-plane apiserver --dry-run: %v\n%s", err, out)
	}
	manifest, err := os.ReadFile(filepath.Join(dry, "kube-apiserver.yaml"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var pod struct {
		Spec struct {
			Containers []struct {
				StartupProbe struct {
					FailureThreshold int `yaml:"failureThreshold"`
				} `yaml:"startupProbe"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(manifest, &pod); err != nil || len(pod.Spec.Containers) != 1 {
		t.Fatalf("manifest: %v\n%s", err, manifest)
	}
	if got := pod.Spec.Containers[0].StartupProbe.FailureThreshold; got != 120 {
		t.Errorf("startupProbe.failureThreshold %d, want the patch's 120; kubeadm said:\n%s", got, out)
	}
}
