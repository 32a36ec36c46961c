package catalog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/internal/agentbuild"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
)

// lockURLs maps each lock URL shape to its checksums.yml key.
var lockURLs = []struct {
	re  *regexp.Regexp
	key string // "" = the binary's name + _checksums
}{
	{regexp.MustCompile(`^https://dl\.k8s\.io/release/v(?P<v>[^/]+)/bin/linux/(?P<a>[^/]+)/(?P<n>kubelet|kubeadm|kubectl)$`), ""},
	{regexp.MustCompile(`^https://github\.com/containerd/containerd/releases/download/v[^/]+/containerd-(?P<v>[^/]+)-linux-(?P<a>[^/]+)\.tar\.gz$`), "containerd_archive_checksums"},
	{regexp.MustCompile(`^https://github\.com/opencontainers/runc/releases/download/v(?P<v>[^/]+)/runc\.(?P<a>[^/]+)$`), "runc_checksums"},
	{regexp.MustCompile(`^https://github\.com/containernetworking/plugins/releases/download/v[^/]+/cni-plugins-linux-(?P<a>[^/]+)-v(?P<v>[^/]+)\.tgz$`), "cni_binary_checksums"},
	{regexp.MustCompile(`^https://github\.com/kubernetes-sigs/cri-tools/releases/download/v[^/]+/crictl-v(?P<v>[^/]+)-linux-(?P<a>[^/]+)\.tar\.gz$`), "crictl_checksums"},
}

func TestLocksMatchKubespray(t *testing.T) {
	b, err := os.ReadFile(testenv.Fixture(t, "testdata/kubespray/checksums.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]map[string]map[string]string
	if err := yaml.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	for _, name := range List() {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Lock.Sources) == 0 {
			t.Fatalf("%s: empty lock", name)
		}
		for _, s := range e.Lock.Sources {
			if strings.HasPrefix(s.URL, agentbuild.ReleaseURL+"agent-v") {
				continue // prebake-agent: checked against a build (agent_test.go)
			}
			matched := false
			for _, u := range lockURLs {
				m := u.re.FindStringSubmatch(s.URL)
				if m == nil {
					continue
				}
				matched = true
				key := u.key
				if key == "" {
					key = m[u.re.SubexpIndex("n")] + "_checksums"
				}
				v, a := m[u.re.SubexpIndex("v")], m[u.re.SubexpIndex("a")]
				want, ok := data[key][a][v]
				if !ok {
					t.Errorf("%s: %s: checksums.yml has no %s[%s][%s]", name, s.URL, key, a, v)
				} else if "sha256:"+s.SHA256 != want {
					t.Errorf("%s: %s: lock sha256 %s, checksums.yml %s[%s][%s] = %s", name, s.URL, s.SHA256, key, a, v, want)
				}
			}
			if !matched {
				t.Errorf("%s: lock URL %s is not a known download", name, s.URL)
			}
		}
		// Every 1.34-1.36 release Kubespray knows is supported.
		supported, err := e.SupportedKubernetes()
		if err != nil {
			t.Fatal(err)
		}
		for v := range data["kubelet_checksums"]["amd64"] {
			if regexp.MustCompile(`^1\.3[456]\.\d+$`).MatchString(v) && !contains(supported, v) {
				t.Errorf("%s: Kubernetes %s is in checksums.yml but not supported by the catalog", name, v)
			}
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestEveryMatrixRowIsLocked(t *testing.T) {
	m, err := Matrix()
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Fatal("empty version matrix")
	}
	for _, name := range List() {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := e.Supported()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != len(m) {
			t.Errorf("%s: %d of %d matrix rows have every download in the lock", name, len(s), len(m))
		}
		if def := e.Recipe.Variables; def["kubernetes"] != m[0].Kubernetes || def["crictl"] != m[0].Crictl || def["pause"] != m[0].Pause ||
			def["containerd"] != m[0].Containerd || def["runc"] != m[0].Runc || def["cni"] != m[0].CNI {
			t.Errorf("%s: default variables %v are not the newest matrix row %+v", name, def, m[0])
		}
	}
}

func TestList(t *testing.T) {
	got := strings.Join(List(), ",")
	if got != "kubernetes-control-plane,kubernetes-node" {
		t.Fatalf("List() = %s", got)
	}
	if _, err := Get("kubernetes-nope"); !errors.Is(err, ErrUnknownRecipe) || !strings.Contains(err.Error(), "kubernetes-node") {
		t.Fatalf("Get(unknown) = %v, want ErrUnknownRecipe listing the recipes", err)
	}
}

func TestResolveSupportedVersions(t *testing.T) {
	cases := []struct{ k8s, crictl, pause string }{
		{"1.34.1", "1.34.0", "3.10.1"},
		{"1.35.2", "1.35.0", "3.10.1"},
		{"1.36.4", "1.36.0", "3.10.2"},
	}
	for _, name := range List() {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if e.Recipe.Metadata.Annotations[recipes.AnnotationJoinUnit] != "prebake-join.path" {
			t.Errorf("%s: annotation %s missing", name, recipes.AnnotationJoinUnit)
		}
		for _, c := range cases {
			res, err := e.Resolve(recipes.ResolveOptions{Set: map[string]string{"kubernetes": c.k8s}, Locked: true})
			if err != nil {
				t.Fatalf("%s %s: %v", name, c.k8s, err)
			}
			if res.Version != c.k8s || len(res.Builds) != 2 {
				t.Fatalf("%s %s: version %s, %d builds", name, c.k8s, res.Version, len(res.Builds))
			}
			for _, b := range res.Builds {
				files := map[string]recipes.ResolvedFile{}
				urls := map[string]string{}
				for _, comp := range b.Components {
					for _, f := range comp.Files {
						files[f.Path] = f
					}
					for _, s := range comp.Sources {
						urls[s.Name] = s.URL
						if want, _ := e.Lock.SHA256(s.URL); s.SHA256 != want || want == "" {
							t.Errorf("%s %s %s: %s sha256 %s, lock %q", name, c.k8s, b.Arch, s.URL, s.SHA256, want)
						}
					}
				}
				for src, want := range map[string]string{
					"kubelet": "https://dl.k8s.io/release/v" + c.k8s + "/bin/linux/" + b.Arch + "/kubelet",
					"kubeadm": "https://dl.k8s.io/release/v" + c.k8s + "/bin/linux/" + b.Arch + "/kubeadm",
					"kubectl": "https://dl.k8s.io/release/v" + c.k8s + "/bin/linux/" + b.Arch + "/kubectl",
					"crictl":  "https://github.com/kubernetes-sigs/cri-tools/releases/download/v" + c.crictl + "/crictl-v" + c.crictl + "-linux-" + b.Arch + ".tar.gz",
				} {
					if urls[src] != want {
						t.Errorf("%s %s %s: %s URL %q, want %q", name, c.k8s, b.Arch, src, urls[src], want)
					}
				}
				if cfg := files["/etc/containerd/config.toml"].Content; !strings.Contains(cfg, "registry.k8s.io/pause:"+c.pause+"'") || !strings.Contains(cfg, "SystemdCgroup = true") {
					t.Errorf("%s %s: containerd config.toml:\n%s", name, c.k8s, cfg)
				}
				for _, p := range []string{
					"/etc/crictl.yaml",
					"/etc/modules-load.d/kernel.conf",
					"/etc/sysctl.d/90-kernel.conf",
					"/etc/systemd/system/containerd.service",
					"/etc/systemd/system/multi-user.target.wants/containerd.service",
					"/etc/systemd/system/kubelet.service",
					"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
					"/etc/systemd/system/kubelet.service.d/20-swap.conf",
					"/etc/systemd/system/multi-user.target.wants/kubelet.service",
					"/etc/systemd/system/prebake-join.path",
					"/etc/systemd/system/prebake-join.service",
					"/etc/systemd/system/multi-user.target.wants/prebake-join.path",
				} {
					if _, ok := files[p]; !ok {
						t.Errorf("%s %s %s: no %s", name, c.k8s, b.Arch, p)
					}
				}
				for p, want := range map[string][]string{
					"/etc/modules-load.d/kernel.conf":                       {"overlay", "br_netfilter"},
					"/etc/sysctl.d/90-kernel.conf":                          {"net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1", "net.bridge.bridge-nf-call-ip6tables = 1"},
					"/etc/systemd/system/kubelet.service.d/20-swap.conf":    {"--fail-swap-on=false"},
					"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": {"$KUBELET_SWAP_ARGS"},
					"/etc/systemd/system/prebake-join.path":                 {"PathExists=/run/prebake/kubeadm-join.yaml"},
					"/etc/systemd/system/prebake-join.service":              {"kubeadm join --config /run/prebake/kubeadm-join.yaml", "/run/cluster-api/bootstrap-success.complete"},
				} {
					for _, w := range want {
						if !strings.Contains(files[p].Content, w) {
							t.Errorf("%s %s: %s lacks %q:\n%s", name, c.k8s, p, w, files[p].Content)
						}
					}
				}
			}
		}
	}
}

func TestUnsupportedVersionListsSupported(t *testing.T) {
	e, err := Get("kubernetes-node")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.33.5", "1.37.0", "1.36.99", "latest"} {
		_, err := e.Resolve(recipes.ResolveOptions{Set: map[string]string{"kubernetes": v}})
		if !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("kubernetes=%s: %v, want ErrUnsupportedVersion", v, err)
		}
		for _, want := range []string{`"` + v + `"`, "1.36.4", "1.35.2", "1.34.1"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("kubernetes=%s: error %q does not mention %s", v, err, want)
			}
		}
	}
	// A component version outside the lock is refused too.
	_, err = e.Resolve(recipes.ResolveOptions{Set: map[string]string{"kubernetes": "1.35.2", "containerd": "2.0.0"}, Locked: true})
	if err == nil || !strings.Contains(err.Error(), "containerd-2.0.0-linux-amd64.tar.gz") {
		t.Fatalf("containerd outside the lock: %v", err)
	}
}

// The two recipes install the same files; catch one being edited alone.
func TestRecipeFilesAgree(t *testing.T) {
	ents, err := fs.ReadDir(FS(), "kubernetes-node/files")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ents {
		a, _ := fs.ReadFile(FS(), "kubernetes-node/files/"+f.Name())
		b, err := fs.ReadFile(FS(), "kubernetes-control-plane/files/"+f.Name())
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("files/%s differs between kubernetes-node and kubernetes-control-plane (%v)", f.Name(), err)
		}
	}
	a, _ := fs.ReadFile(FS(), "kubernetes-node/recipe.lock.yaml")
	b, _ := fs.ReadFile(FS(), "kubernetes-control-plane/recipe.lock.yaml")
	if !bytes.Equal(a, b) {
		t.Error("the two recipes' locks differ")
	}
}
