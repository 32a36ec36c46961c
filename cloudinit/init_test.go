package cloudinit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// testCA writes a fresh CA certificate and key into dir as ca.crt, ca.key
// and returns their PEM.
func testCA(t testing.TB, dir string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Unix(1767225600, 0), NotAfter: time.Unix(1767225600, 0).AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	if dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certPEM, keyPEM
}

const initSpec = `apiVersion: prebake.dev/v1alpha1
kind: NodeConfig
cluster:
  name: e2e
  apiServerEndpoint: 192.0.2.10:6443
  caCertFile: ca.crt
  caKeyFile: ca.key
  bootstrapToken: abcdef.0123456789abcdef
  podSubnet: 10.244.0.0/16
  initTimeout: 20m
node:
  name: cp-1
  advertiseAddress: 192.0.2.10
  certificateKey: 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f
`

// patchesSpec is initSpec's node.kubeadmPatches (appended to it): a longer
// startup probe for the API server and a kubelet setting.
const patchesSpec = `  kubeadmPatches:
    - target: kube-apiserver
      patch: |
        spec:
          containers:
            - name: kube-apiserver
              startupProbe: {failureThreshold: 120}
    - target: kubeletconfiguration
      type: merge
      patch: '{"serializeImagePulls": false}'
`

// writtenFiles decodes a cloud-config's write_files by path.
func writtenFiles(t testing.TB, doc []byte) (map[string]map[string]string, []string) {
	t.Helper()
	var cc struct {
		WriteFiles []map[string]string `yaml:"write_files"`
		RunCmd     [][]string          `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(doc, &cc); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	files := map[string]map[string]string{}
	for _, f := range cc.WriteFiles {
		files[f["path"]] = f
	}
	var run []string
	for _, r := range cc.RunCmd {
		run = append(run, strings.Join(r, " "))
	}
	return files, run
}

func TestRenderInit(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := testCA(t, dir)
	spec := filepath.Join(dir, "cp.yaml")
	if err := os.WriteFile(spec, []byte(initSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, err := LoadInit(spec)
	if err != nil {
		t.Fatal(err)
	}
	// The same spec is no join: the CA key is refused there.
	if _, err := Load(spec); err == nil || !errors.Is(err, ErrPrivateKey) {
		t.Fatalf("Load (a join) accepted a CA key: %v", err)
	}

	t.Run("runcmd", func(t *testing.T) {
		out, err := Render(specs[0], Options{KubernetesVersion: "1.36.3", Init: true})
		if err != nil {
			t.Fatal(err)
		}
		files, run := writtenFiles(t, out)
		if f := files["/etc/kubernetes/pki/ca.key"]; f["permissions"] != "0600" || f["content"] != string(keyPEM) {
			t.Errorf("ca.key: %q", f["permissions"])
		}
		if f := files["/etc/kubernetes/pki/ca.crt"]; f["content"] != string(certPEM) {
			t.Errorf("ca.crt not written")
		}
		ic := files[InitConfigPath]
		if ic["permissions"] != "0600" {
			t.Errorf("%s: permissions %q", InitConfigPath, ic["permissions"])
		}
		for _, want := range []string{"kind: InitConfiguration", "kind: ClusterConfiguration", "kubernetesVersion: v1.36.3",
			`controlPlaneEndpoint: "192.0.2.10:6443"`, "token: abcdef.0123456789abcdef", "advertiseAddress: 192.0.2.10", `podSubnet: "10.244.0.0/16"`, `controlPlaneComponentHealthCheck: "20m0s"`, `kubeletHealthCheck: "20m0s"`, `kubernetesAPICall: "20m0s"`} {
			if !strings.Contains(ic["content"], want) {
				t.Errorf("init configuration lacks %q:\n%s", want, ic["content"])
			}
		}
		if !strings.Contains(files[initScriptPath]["content"], "kubeadm init --config "+InitConfigPath+" --upload-certs") {
			t.Errorf("init script: %s", files[initScriptPath]["content"])
		}
		if len(run) != 1 || run[0] != "/bin/sh "+initScriptPath {
			t.Errorf("runcmd %q", run)
		}
		if _, ok := files[JoinConfigPath]; ok {
			t.Errorf("an init wrote the join file (the image's join unit would run kubeadm join)")
		}
	})

	t.Run("init-unit", func(t *testing.T) {
		out, err := Render(specs[0], Options{KubernetesVersion: "1.36.3", Init: true, InitUnit: "prebake-init.path", Agent: true})
		if err != nil {
			t.Fatal(err)
		}
		files, run := writtenFiles(t, out)
		if len(run) != 0 || files[initScriptPath] != nil {
			t.Errorf("with an init unit the document runs nothing: runcmd %q", run)
		}
		if got := files[InitEnvPath]["content"]; !strings.Contains(got, "KUBEADM_INIT_FLAGS=--upload-certs\n") {
			t.Errorf("%s: %q", InitEnvPath, got)
		}
		if strings.Contains(string(out), "prebake-agent") {
			t.Errorf("an init carries no agent block (the agent joins)")
		}
	})

	t.Run("v1beta3", func(t *testing.T) {
		out, err := Render(specs[0], Options{KubernetesVersion: "1.30.2", Init: true})
		if err != nil {
			t.Fatal(err)
		}
		files, _ := writtenFiles(t, out)
		if c := files[InitConfigPath]["content"]; strings.Count(c, "apiVersion: kubeadm.k8s.io/v1beta3") != 2 || !strings.Contains(c, `timeoutForControlPlane: "20m0s"`) {
			t.Errorf("want two v1beta3 documents:\n%s", c)
		}
	})

	t.Run("ignition-refused", func(t *testing.T) {
		if _, err := Render(specs[0], Options{KubernetesVersion: "1.36.3", Init: true, Format: FormatIgnition}); !errors.Is(err, ErrFormat) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRenderInitProblems(t *testing.T) {
	dir := t.TempDir()
	testCA(t, dir)
	_, otherKey := testCA(t, "")
	if err := os.WriteFile(filepath.Join(dir, "other.key"), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		spec  string
		field string
		err   error
	}{
		"worker-role":  {strings.Replace(initSpec, "  name: cp-1\n", "  name: cp-1\n  role: worker\n", 1), "node.role", ErrInvalidValue},
		"other-key":    {strings.Replace(initSpec, "caKeyFile: ca.key", "caKeyFile: other.key", 1), "cluster.caKeyFile", ErrCAKey},
		"key-no-cert":  {strings.Replace(initSpec, "  caCertFile: ca.crt\n", "", 1), "cluster.caKeyFile", ErrRequired},
		"bad-subnet":   {strings.Replace(initSpec, "10.244.0.0/16", "10.244.0.0", 1), "cluster.podSubnet", ErrInvalidValue},
		"kubelet-mode": {strings.Replace(initSpec, "  name: cp-1\n", "  name: cp-1\n  joinMode: kubelet\n", 1), "node.joinMode", ErrInvalidValue},
		"patch-target": {initSpec + "  kubeadmPatches: [{target: kube-proxy, patch: 'a: 1'}]\n", "node.kubeadmPatches[0].target", ErrInvalidValue},
		"patch-type":   {initSpec + "  kubeadmPatches: [{target: etcd, type: jsonpatch, patch: 'a: 1'}]\n", "node.kubeadmPatches[0].type", ErrInvalidValue},
		"patch-empty":  {initSpec + "  kubeadmPatches: [{target: etcd}]\n", "node.kubeadmPatches[0].patch", ErrRequired},
		"patch-json":   {initSpec + "  kubeadmPatches: [{target: etcd, type: json, patch: 'a: 1'}]\n", "node.kubeadmPatches[0].patch", ErrInvalidValue},
		"patch-yaml":   {initSpec + "  kubeadmPatches: [{target: etcd, patch: 'a: [1'}]\n", "node.kubeadmPatches[0].patch", ErrInvalidValue},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(p, []byte(c.spec), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadInit(p)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a SpecError", err)
			}
			found := false
			for _, pr := range se.Problems {
				if pr.Field == c.field && errors.Is(pr.Err, c.err) {
					found = true
				}
				if strings.Contains(pr.Error(), "PRIVATE KEY") || strings.Contains(pr.Error(), "0123456789abcdef") {
					t.Errorf("a problem echoes a secret: %s", pr.Error())
				}
			}
			if !found {
				t.Fatalf("want %s: %v; got %v", c.field, c.err, err)
			}
		})
	}
	// Without token, CA or certificate key: kubeadm creates them.
	minimal := "apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\ncluster: {apiServerEndpoint: 192.0.2.10:6443}\nnode: {name: cp-1}\n"
	p := filepath.Join(dir, "minimal.yaml")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, err := LoadInit(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(specs[0], Options{KubernetesVersion: "1.36.3", Init: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "--upload-certs") || strings.Contains(string(out), "/etc/kubernetes/pki") || strings.Contains(string(out), "bootstrapTokens") {
		t.Errorf("minimal init:\n%s", out)
	}
}

// Patches: files under PatchesDir in the spec's order, the directory in the
// init and join configurations; a worker's join refuses control-plane
// targets.
func TestRenderKubeadmPatches(t *testing.T) {
	dir := t.TempDir()
	testCA(t, dir)
	p := filepath.Join(dir, "cp.yaml")
	if err := os.WriteFile(p, []byte(initSpec+patchesSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	specs, err := LoadInit(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.30.14", "1.36.3"} {
		out, err := Render(specs[0], Options{KubernetesVersion: v, Init: true})
		if err != nil {
			t.Fatal(err)
		}
		files, _ := writtenFiles(t, out)
		api := files[PatchesDir+"/kube-apiserver000+strategic.yaml"]
		kubelet := files[PatchesDir+"/kubeletconfiguration001+merge.yaml"]
		if !strings.Contains(api["content"], "failureThreshold: 120") || kubelet["content"] != "{\"serializeImagePulls\": false}\n" {
			t.Errorf("%s: patch files %v %v", v, api, kubelet)
		}
		if !strings.Contains(files[InitConfigPath]["content"], "patches:\n  directory: "+PatchesDir+"\n") {
			t.Errorf("%s: init configuration without the patches directory:\n%s", v, files[InitConfigPath]["content"])
		}
	}

	worker := "apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\ncluster: {apiServerEndpoint: 192.0.2.10:6443, caCertFile: ca.crt, bootstrapToken: abcdef.0123456789abcdef}\nnode:\n  name: worker-1\n"
	for name, c := range map[string]struct {
		patches string
		problem string
	}{
		"kubelet":       {"  kubeadmPatches: [{target: kubeletconfiguration, type: merge, patch: '{\"maxPods\": 50}'}]\n", ""},
		"control-plane": {"  kubeadmPatches: [{target: etcd, patch: 'spec: {}'}]\n", "node.kubeadmPatches[0].target"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(p, []byte(worker+c.patches), 0o600); err != nil {
				t.Fatal(err)
			}
			specs, err := Load(p)
			if c.problem != "" {
				var se *SpecError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), c.problem) {
					t.Fatalf("got %v, want a problem at %s", err, c.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := Render(specs[0], Options{KubernetesVersion: "1.36.3"})
			if err != nil {
				t.Fatal(err)
			}
			files, _ := writtenFiles(t, out)
			if files[PatchesDir+"/kubeletconfiguration000+merge.yaml"] == nil ||
				!strings.Contains(files[JoinConfigPath]["content"], "patches:\n  directory: "+PatchesDir+"\n") {
				t.Errorf("join with patches:\n%s", out)
			}
		})
	}
}
