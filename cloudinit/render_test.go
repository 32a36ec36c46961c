package cloudinit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

// versions are the two kubeadm API generations the renderer targets.
var versions = []struct{ k8s, short, api string }{
	{"1.30.2", "1.30", kubeadmV1beta3},
	{"1.36.4", "1.36", kubeadmV1beta4},
}

func mustLoad(t testing.TB, path string) []*NodeConfig {
	t.Helper()
	specs, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return specs
}

// goldenCases renders every spec × version × format (and the join-unit
// variants) and names each output.
func goldenCases(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, spec := range []string{"worker", "control-plane"} {
		nc := mustLoad(t, filepath.Join("testdata", spec+".yaml"))[0]
		for _, v := range versions {
			for _, f := range Formats {
				b, err := Render(nc, Options{KubernetesVersion: v.k8s, Format: f})
				if err != nil {
					t.Fatalf("Render(%s, %s, %s): %v", spec, v.k8s, f, err)
				}
				out[spec+"-"+v.short+"-"+string(f)] = b
			}
			for _, f := range []Format{FormatCloudConfig, FormatMIME} {
				b, err := Render(nc, Options{KubernetesVersion: v.k8s, Format: f, JoinUnit: "prebake-join.path"})
				if err != nil {
					t.Fatalf("Render(%s, %s, %s, join unit): %v", spec, v.k8s, f, err)
				}
				out[spec+"-"+v.short+"-"+string(f)+"-joinunit"] = b
			}
		}
	}
	return out
}

func TestGolden(t *testing.T) {
	for name, got := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cloudinit -run TestGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs from golden (-want +got):\n%s", name, diff)
			}
		})
	}
}

// cloudConfigFile is the part of a cloud-config these tests read back.
type cloudConfigFile struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Owner       string `yaml:"owner"`
		Permissions string `yaml:"permissions"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
	Runcmd [][]string `yaml:"runcmd"`
}

func parseCloudConfig(t testing.TB, b []byte) (cloudConfigFile, map[string]any) {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("#cloud-config\n")) {
		t.Fatalf("no #cloud-config header: %.40q", b)
	}
	var cc cloudConfigFile
	if err := yaml.Unmarshal(b, &cc); err != nil {
		t.Fatalf("rendered cloud-config is not YAML: %v", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		t.Fatal(err)
	}
	return cc, top
}

func fileContent(t testing.TB, cc cloudConfigFile, path string) (string, string) {
	t.Helper()
	for _, f := range cc.WriteFiles {
		if f.Path == path {
			return f.Content, f.Permissions
		}
	}
	t.Fatalf("%s not written", path)
	return "", ""
}

// TestJoinConfigurationStrict reads the embedded JoinConfiguration back with
// sigs.k8s.io/yaml's strict decoder (kubeadm's own decoding path) into the
// mirrored type for its apiVersion; the other generation's type must refuse
// it, which shows the shapes really differ.
func TestJoinConfigurationStrict(t *testing.T) {
	for _, spec := range []string{"worker", "control-plane"} {
		nc := mustLoad(t, filepath.Join("testdata", spec+".yaml"))[0]
		for _, v := range versions {
			b, err := Render(nc, Options{KubernetesVersion: v.k8s})
			if err != nil {
				t.Fatal(err)
			}
			cc, _ := parseCloudConfig(t, b)
			jc, mode := fileContent(t, cc, JoinConfigPath)
			if mode != "0600" {
				t.Errorf("%s: join config mode %q, want \"0600\"", spec, mode)
			}
			var tm typeMeta
			if err := sigsyaml.Unmarshal([]byte(jc), &tm); err != nil {
				t.Fatal(err)
			}
			if tm.APIVersion != v.api || tm.Kind != "JoinConfiguration" {
				t.Errorf("%s %s: got %s %s, want %s JoinConfiguration", spec, v.k8s, tm.APIVersion, tm.Kind, v.api)
			}
			var b3 joinConfigurationV1beta3
			var b4 joinConfigurationV1beta4
			err3 := sigsyaml.UnmarshalStrict([]byte(jc), &b3)
			err4 := sigsyaml.UnmarshalStrict([]byte(jc), &b4)
			var token string
			var args int
			switch v.api {
			case kubeadmV1beta3:
				if err3 != nil {
					t.Fatalf("%s %s: strict v1beta3: %v", spec, v.k8s, err3)
				}
				token, args = b3.Discovery.BootstrapToken.Token, len(b3.NodeRegistration.KubeletExtraArgs)
			case kubeadmV1beta4:
				if err4 != nil {
					t.Fatalf("%s %s: strict v1beta4: %v", spec, v.k8s, err4)
				}
				token, args = b4.Discovery.BootstrapToken.Token, len(b4.NodeRegistration.KubeletExtraArgs)
			}
			if token != nc.Cluster.BootstrapToken {
				t.Errorf("%s %s: token not carried into discovery", spec, v.k8s)
			}
			if spec == "worker" {
				if args != 3 {
					t.Errorf("%s %s: %d kubelet args, want 3 (cgroup-driver, max-pods, node-labels)", spec, v.k8s, args)
				}
				// The worker sets kubeletExtraArgs and a discovery timeout, both
				// of which changed shape between v1beta3 and v1beta4.
				if v.api == kubeadmV1beta3 && err4 == nil {
					t.Errorf("v1beta3 document decoded strictly as v1beta4")
				}
				if v.api == kubeadmV1beta4 && err3 == nil {
					t.Errorf("v1beta4 document decoded strictly as v1beta3")
				}
			}
			if spec == "control-plane" {
				var cp *joinControlPlane
				if v.api == kubeadmV1beta3 {
					cp = b3.ControlPlane
				} else {
					cp = b4.ControlPlane
				}
				if cp == nil || cp.CertificateKey != nc.Node.CertificateKey || cp.LocalAPIEndpoint.AdvertiseAddress != "10.0.0.12" {
					t.Errorf("%s %s: controlPlane = %+v", spec, v.k8s, cp)
				}
			}
		}
	}
}

// TestNoInjection: values that look like YAML stay values.
func TestNoInjection(t *testing.T) {
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	nc.Node.KubeletExtraArgs = map[string]string{"v": "2\nkind: Evil", "feature-gates": "A=true: {x}"}
	if _, err := Render(nc, Options{KubernetesVersion: "1.36.4"}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("multi-line kubelet arg: got %v, want ErrInvalidValue", err)
	}
	nc.Node.KubeletExtraArgs = map[string]string{"feature-gates": "A=true: {x}, kind: Evil"}
	b, err := Render(nc, Options{KubernetesVersion: "1.36.4"})
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := parseCloudConfig(t, b)
	jc, _ := fileContent(t, cc, JoinConfigPath)
	var j joinConfigurationV1beta4
	if err := sigsyaml.UnmarshalStrict([]byte(jc), &j); err != nil {
		t.Fatal(err)
	}
	if j.Kind != "JoinConfiguration" {
		t.Errorf("kind = %q", j.Kind)
	}
	found := false
	for _, a := range j.NodeRegistration.KubeletExtraArgs {
		if a.Name == "feature-gates" && a.Value == "A=true: {x}, kind: Evil" {
			found = true
		}
	}
	if !found {
		t.Errorf("feature-gates value not carried verbatim: %+v", j.NodeRegistration.KubeletExtraArgs)
	}
}

func TestJoinUnitWritesOnlyFiles(t *testing.T) {
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	b, err := Render(nc, Options{KubernetesVersion: "1.36.4", JoinUnit: "prebake-join.path"})
	if err != nil {
		t.Fatal(err)
	}
	cc, top := parseCloudConfig(t, b)
	if _, ok := top["runcmd"]; ok {
		t.Error("runcmd rendered although the image has a join unit")
	}
	if last := cc.WriteFiles[len(cc.WriteFiles)-1].Path; last != JoinConfigPath {
		t.Errorf("last file written is %s, want the join config %s (the join unit fires on it)", last, JoinConfigPath)
	}
	b, err = Render(nc, Options{KubernetesVersion: "1.36.4"})
	if err != nil {
		t.Fatal(err)
	}
	cc, _ = parseCloudConfig(t, b)
	script, mode := fileContent(t, cc, joinScriptPath)
	if mode != "0700" || !strings.Contains(script, "kubeadm join --config "+JoinConfigPath) || !strings.Contains(script, SentinelPath) {
		t.Errorf("join script (mode %s):\n%s", mode, script)
	}
	if len(cc.Runcmd) != 1 || strings.Join(cc.Runcmd[0], " ") != "/bin/sh "+joinScriptPath {
		t.Errorf("runcmd = %q", cc.Runcmd)
	}
	for _, f := range cc.WriteFiles {
		if strings.HasPrefix(f.Path, "/tmp/") {
			t.Errorf("%s written under /tmp", f.Path)
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, f := range Formats {
		for _, gz := range []bool{false, true} {
			opts := Options{KubernetesVersion: "1.36.4", Format: f, Gzip: gz}
			a, err := Render(mustLoad(t, "testdata/worker.yaml")[0], opts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Render(mustLoad(t, "testdata/worker.yaml")[0], opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s gzip=%v: two renders differ", f, gz)
			}
			if !gz {
				continue
			}
			// RFC 1952 header: magic, CM, FLG (no FNAME/FCOMMENT), MTIME 0.
			if len(a) < 10 || a[0] != 0x1f || a[1] != 0x8b || a[3] != 0 || !bytes.Equal(a[4:8], []byte{0, 0, 0, 0}) {
				t.Errorf("%s: gzip header % x: want no name and mtime 0", f, a[:10])
			}
			zr, err := gzip.NewReader(bytes.NewReader(a))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Render(mustLoad(t, "testdata/worker.yaml")[0], Options{KubernetesVersion: "1.36.4", Format: f})
			if !bytes.Equal(plain, want) {
				t.Errorf("%s: gunzipped output differs from the plain render", f)
			}
		}
	}
}

// cloudConfigAllowlist is every top-level key prebake may render. Debian's
// cloud-init 22.4.2 silently ignores unknown top-level keys, so its schema
// check cannot catch a misspelt module name; this list can.
var cloudConfigAllowlist = map[string]bool{
	"hostname":            true,
	"ssh_authorized_keys": true,
	"ntp":                 true,
	"write_files":         true,
	"runcmd":              true,
}

func checkAllowlist(b []byte) error {
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		return err
	}
	var bad []string
	for k := range top {
		if !cloudConfigAllowlist[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		return errors.New("top-level keys outside the allowlist: " + strings.Join(bad, ", "))
	}
	return nil
}

func TestTopLevelAllowlist(t *testing.T) {
	for name, b := range goldenCases(t) {
		if !strings.Contains(name, "cloud-config") {
			continue
		}
		if err := checkAllowlist(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	broken, err := os.ReadFile("testdata/broken-cloud-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAllowlist(broken); err == nil {
		t.Error("allowlist accepted the broken fixture's misspelt key")
	}
}

func TestFleet(t *testing.T) {
	specs := mustLoad(t, "testdata/fleet.yaml")
	if len(specs) != 3 {
		t.Fatalf("got %d specs, want 3", len(specs))
	}
	docs, err := RenderAll(specs, Options{KubernetesVersion: "1.36.4"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"pool-a-1", "pool-a-2", "pool-b-1"} {
		cc, _ := parseCloudConfig(t, docs[i])
		jc, _ := fileContent(t, cc, JoinConfigPath)
		var j joinConfigurationV1beta4
		if err := sigsyaml.UnmarshalStrict([]byte(jc), &j); err != nil {
			t.Fatal(err)
		}
		if j.NodeRegistration.Name != want {
			t.Errorf("doc %d is for %s, want %s", i, j.NodeRegistration.Name, want)
		}
		// pool-b-1 says taints: [] (no taints); the others leave kubeadm's default.
		if gotEmpty := j.NodeRegistration.Taints != nil; gotEmpty != (want == "pool-b-1") {
			t.Errorf("%s: taints = %#v", want, j.NodeRegistration.Taints)
		}
	}
	// A problem in one node of a list is reported at its line.
	dir := t.TempDir()
	writeFile(t, dir, "ca.crt", mustRead(t, "testdata/ca.crt"))
	bad := strings.Replace(string(mustRead(t, "testdata/fleet.yaml")), "name: pool-a-2", "name: Pool_A_2", 1)
	writeFile(t, dir, "fleet.yaml", []byte(bad))
	_, err = Load(filepath.Join(dir, "fleet.yaml"))
	if err == nil || !strings.Contains(err.Error(), "fleet.yaml:13:") || !strings.Contains(err.Error(), "node.name") {
		t.Errorf("got %v, want node.name problem at fleet.yaml:13", err)
	}
}

func TestSizeLimit(t *testing.T) {
	nc := mustLoad(t, "testdata/worker.yaml")[0]
	nc.Files = append(nc.Files, File{Path: "/etc/big.txt", Content: strings.Repeat("prebake renders only the per-node data\n", 500)})
	_, err := Render(nc, Options{KubernetesVersion: "1.36.4", MaxSize: LimitAWS})
	var se *SizeError
	if !errors.As(err, &se) || !errors.Is(err, ErrTooLarge) || se.Limit.Name != "aws" {
		t.Fatalf("got %v, want a SizeError over the aws limit", err)
	}
	if _, err := Render(nc, Options{KubernetesVersion: "1.36.4", MaxSize: LimitAWS, Gzip: true}); err != nil {
		t.Errorf("gzip should fit the aws limit: %v", err)
	}
	l, err := ParseSizeLimit("openstack")
	if err != nil || !l.Base64 || l.Size(3) != 4 {
		t.Errorf("openstack limit = %+v, %v", l, err)
	}
	if err := l.Check("n", 49152); err == nil {
		t.Error("49152 bytes is 65536 after base64: should be over the openstack limit")
	}
	if err := l.Check("n", 49149); err != nil {
		t.Errorf("49149 bytes is 65532 after base64: %v", err)
	}
	if _, err := ParseSizeLimit("azure"); err == nil {
		t.Error("unknown provider accepted")
	}
	if l, _ := ParseSizeLimit("1000"); l.Bytes != 1000 {
		t.Errorf("byte count limit = %+v", l)
	}
}

func TestKubernetesVersion(t *testing.T) {
	for _, tc := range []struct {
		in, api string
		ok      bool
	}{
		{"1.30.14", kubeadmV1beta3, true},
		{"v1.31.0", kubeadmV1beta4, true},
		{"1.22.0", kubeadmV1beta3, true},
		{"1.36.4-rc.1", kubeadmV1beta4, true},
		{"1.21.9", "", false},
		{"1.30", "", false},
		{"2.0.0", "", false},
		{"1.030.1", "", false},
		{"", "", false},
	} {
		v, err := ParseKubernetesVersion(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if tc.ok && KubeadmAPIVersion(v) != tc.api {
			t.Errorf("%q: %s, want %s", tc.in, KubeadmAPIVersion(v), tc.api)
		}
		if !tc.ok && !errors.Is(err, ErrKubernetesVersion) {
			t.Errorf("%q: %v is not ErrKubernetesVersion", tc.in, err)
		}
	}
}

func TestRenderFetch(t *testing.T) {
	for _, f := range Formats {
		b, err := RenderFetch("https://boot.example.com/bootstrap/tok", Options{Format: f})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("https://boot.example.com/bootstrap/tok")) {
			t.Errorf("%s: URL missing:\n%s", f, b)
		}
	}
	if _, err := RenderFetch("https://x/\n#cloud-config", Options{}); err == nil {
		t.Error("URL with a newline accepted")
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
