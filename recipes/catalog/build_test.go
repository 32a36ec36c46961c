package catalog_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/recipes/catalog"
	"github.com/prebake/prebake/registry"
)

// standIns serves, laid out like dl.k8s.io and GitHub releases, small files
// standing in for the real downloads (a script naming the file, or a tar.gz
// with the entries the real archive has).
type standIns struct {
	mu    sync.Mutex
	files map[string][]byte // URL path (/dl.k8s.io/…) -> content
}

func (s *standIns) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, ok := s.files[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

// add creates the stand-in for upstream URL u and returns its sha256.
func (s *standIns) add(t *testing.T, u string) string {
	t.Helper()
	p := "/" + strings.TrimPrefix(u, "https://")
	base := path.Base(p)
	script := func(name string) []byte { return []byte("#!/bin/sh\necho stand-in " + name + " from " + u + "\n") }
	var b []byte
	switch {
	case strings.HasPrefix(base, "containerd-"):
		b = tgz(t, map[string][]byte{"bin/containerd": script("containerd"), "bin/containerd-shim-runc-v2": script("shim"), "bin/ctr": script("ctr")})
	case strings.HasPrefix(base, "cni-plugins-"):
		b = tgz(t, map[string][]byte{"./bridge": script("bridge"), "./host-local": script("host-local"), "./loopback": script("loopback")})
	case strings.HasPrefix(base, "crictl-"):
		b = tgz(t, map[string][]byte{"crictl": script("crictl")})
	default:
		b = script(base)
	}
	s.mu.Lock()
	s.files[p] = b
	s.mu.Unlock()
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func tgz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr", "./bridge", "./host-local", "./loopback", "crictl"} {
		b, ok := files[name]
		if !ok {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// TestBuildAcrossVersions builds kubernetes-node for a 1.34 and a 1.36
// release on both platforms from stand-ins (with a test lock of their
// checksums), checks the files, modes, units, links, sysctls and modules each
// layer holds, and that the two versions share the kernel, runtime and join
// layers.
func TestBuildAcrossVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four images")
	}
	e, err := catalog.Get("kubernetes-node")
	if err != nil {
		t.Fatal(err)
	}
	si := &standIns{files: map[string][]byte{}}
	srv := httptest.NewServer(si)
	defer srv.Close()
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()), fetch.WithMirrors(
		fetch.Mirror{From: "https://dl.k8s.io/", To: srv.URL + "/dl.k8s.io/"},
		fetch.Mirror{From: "https://github.com/", To: srv.URL + "/github.com/"},
	))
	if err != nil {
		t.Fatal(err)
	}
	layers := map[string]map[string][]string{} // k8s -> platform -> layer digests
	for _, k8s := range []string{"1.34.1", "1.36.4"} {
		set, err := e.Variables(map[string]string{"kubernetes": k8s})
		if err != nil {
			t.Fatal(err)
		}
		// The real lock names every URL; the test lock pins the stand-ins.
		real, err := e.Recipe.Resolve(recipes.ResolveOptions{Set: set, Lock: e.Lock, Locked: true})
		if err != nil {
			t.Fatal(err)
		}
		lock := &recipes.Lock{}
		for _, b := range real.Builds {
			for _, c := range b.Components {
				for _, s := range c.Sources {
					lock.Add(s.URL, si.add(t, s.URL))
				}
			}
		}
		res, err := e.Recipe.Resolve(recipes.ResolveOptions{Set: set, Lock: lock, Locked: true})
		if err != nil {
			t.Fatal(err)
		}
		result, err := builder.Build(t.Context(), res, builder.Options{Fetcher: f})
		if err != nil {
			t.Fatal(err)
		}
		layers[k8s] = map[string][]string{}
		for _, p := range result.Platforms {
			arch := strings.TrimPrefix(p.Platform, "linux/")
			var names []string
			for _, l := range p.Layers {
				names = append(names, l.Component)
				layers[k8s][p.Platform] = append(layers[k8s][p.Platform], l.Digest)
			}
			if got := strings.Join(names, ","); got != "kernel,runtime,kubernetes,join,agent" {
				t.Fatalf("%s %s: layers %s", k8s, p.Platform, got)
			}
			ls, err := p.Image.Layers()
			if err != nil {
				t.Fatal(err)
			}
			crictl, pause := "1.36.0", "3.10.2"
			if k8s == "1.34.1" {
				crictl, pause = "1.34.0", "3.10.1"
			}
			want := []map[string]string{
				{ // kernel
					"etc/modules-load.d/kernel.conf": "0644 overlay\nbr_netfilter",
					"etc/sysctl.d/90-kernel.conf":    "0644 net.bridge.bridge-nf-call-ip6tables = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1",
				},
				{ // runtime
					"usr/local/bin/containerd":              "0755 stand-in containerd from https://github.com/containerd/containerd/releases/download/v2.3.4/containerd-2.3.4-linux-" + arch,
					"usr/local/bin/ctr":                     "0755 stand-in ctr",
					"usr/local/sbin/runc":                   "0755 runc." + arch,
					"opt/cni/bin/bridge":                    "0755 cni-plugins-linux-" + arch + "-v1.9.1.tgz",
					"etc/systemd/system/containerd.service": "0644 ExecStart=/usr/local/bin/containerd",
					"etc/systemd/system/multi-user.target.wants/containerd.service": "link /etc/systemd/system/containerd.service",
				},
				{ // kubernetes
					"usr/local/bin/kubelet":                                      "0755 /v" + k8s + "/bin/linux/" + arch + "/kubelet",
					"usr/local/bin/kubeadm":                                      "0755 /v" + k8s + "/bin/linux/" + arch + "/kubeadm",
					"usr/local/bin/kubectl":                                      "0755 /v" + k8s + "/bin/linux/" + arch + "/kubectl",
					"usr/local/bin/crictl":                                       "0755 crictl-v" + crictl + "-linux-" + arch,
					"etc/crictl.yaml":                                            "0644 unix:///run/containerd/containerd.sock",
					"etc/containerd/config.toml":                                 "0644 registry.k8s.io/pause:" + pause + "'",
					"etc/systemd/system/kubelet.service":                         "0644 ExecStart=/usr/local/bin/kubelet",
					"etc/systemd/system/kubelet.service.d/10-kubeadm.conf":       "0644 $KUBELET_SWAP_ARGS",
					"etc/systemd/system/kubelet.service.d/20-swap.conf":          "0644 --fail-swap-on=false",
					"etc/systemd/system/multi-user.target.wants/kubelet.service": "link /etc/systemd/system/kubelet.service",
				},
				{ // join
					"etc/systemd/system/prebake-join.path":                         "0644 PathExists=/run/prebake/kubeadm-join.yaml",
					"etc/systemd/system/prebake-join.service":                      "0644 kubeadm join --config /run/prebake/kubeadm-join.yaml",
					"etc/systemd/system/multi-user.target.wants/prebake-join.path": "link /etc/systemd/system/prebake-join.path",
				},
				{ // agent
					"usr/local/bin/prebake-agent":                                       "0755 /agent-v0.1.0/prebake-agent-linux-" + arch,
					"etc/systemd/system/prebake-agent.service":                          "0644 ExecStart=/usr/local/bin/prebake-agent -datasource local",
					"etc/systemd/system/prebake-agent-ec2.service":                      "0644 ExecStart=/usr/local/bin/prebake-agent -datasource ec2",
					"etc/systemd/system/prebake-agent-join.service":                     "0644 kubeadm join --config /run/prebake/agent/kubeadm-join.yaml",
					"etc/systemd/system/prebake-join.service.d/10-prebake-agent.conf":   "0644 ConditionPathExists=!/var/lib/prebake/joined",
					"etc/systemd/system/sysinit.target.wants/prebake-agent.service":     "link /etc/systemd/system/prebake-agent.service",
					"etc/systemd/system/sysinit.target.wants/prebake-agent-ec2.service": "link /etc/systemd/system/prebake-agent-ec2.service",
				},
			}
			for i, l := range ls {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				tr := tar.NewReader(rc)
				for {
					h, err := tr.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					name := strings.TrimPrefix(h.Name, "./")
					switch h.Typeflag {
					case tar.TypeSymlink:
						got[name] = "link " + h.Linkname
					case tar.TypeReg:
						b, _ := io.ReadAll(tr)
						got[name] = fmt.Sprintf("%04o %s", h.Mode&0o7777, b)
					}
				}
				rc.Close()
				umociCheck(t, k8s, p.Platform, p.Image, want[i])
				for p, w := range want[i] {
					mode, content, _ := strings.Cut(w, " ")
					g, ok := got[p]
					if !ok {
						t.Errorf("%s %s layer %s: no %s", k8s, arch, names[i], p)
						continue
					}
					if mode == "link" {
						if g != w {
							t.Errorf("%s %s: %s is %q, want %q", k8s, arch, p, g, w)
						}
						continue
					}
					if !strings.HasPrefix(g, mode+" ") || !strings.Contains(g, content) {
						t.Errorf("%s %s: %s is %q, want mode %s containing %q", k8s, arch, p, g, mode, content)
					}
				}
			}
		}
	}
	for _, plat := range []string{"linux/amd64", "linux/arm64"} {
		a, b := layers["1.34.1"][plat], layers["1.36.4"][plat]
		for i, name := range []string{"kernel", "runtime", "kubernetes", "join"} {
			same := a[i] == b[i]
			if same != (name != "kubernetes") {
				t.Errorf("%s: %s layer 1.34.1 %s, 1.36.4 %s (shared: %v)", plat, name, a[i], b[i], same)
			}
		}
	}
}

// umociCheck writes the platform image to an OCI layout and unpacks it with
// the real umoci: every expected path is there with the expected mode or link
// target after a real client applied the layers.
func umociCheck(t *testing.T, k8s, platform string, img v1.Image, want map[string]string) {
	t.Helper()
	testenv.Tool(t, "umoci")
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if _, err := registry.Write(t.Context(), registry.MustParse("oci:"+layout+":img"), img, nil, registry.Options{}); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--rootless", "--image", layout+":img", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack %s %s: %v\n%s", k8s, platform, err, out)
	}
	for p, w := range want {
		full := filepath.Join(bundle, "rootfs", p)
		fi, err := os.Lstat(full)
		if err != nil {
			t.Errorf("%s %s: umoci unpacked no %s", k8s, platform, p)
			continue
		}
		mode, _, _ := strings.Cut(w, " ")
		if mode == "link" {
			target, _ := os.Readlink(full)
			if "link "+target != w {
				t.Errorf("%s %s: umoci: %s -> %s, want %s", k8s, platform, p, target, w)
			}
			continue
		}
		if got := fmt.Sprintf("%04o", fi.Mode().Perm()); got != mode {
			t.Errorf("%s %s: umoci: %s mode %s, want %s", k8s, platform, p, got, mode)
		}
	}
}
