package prebake

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/hashicorp/packer-plugin-sdk/chroot"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry"
)

const someDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPrepareProblems(t *testing.T) {
	_, pub := fixture.Keys(t)
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want []string
	}{
		{"minimal", map[string]any{"image": "127.0.0.1:5000/nodes@" + someDigest, "public_key": pub}, nil},
		{"layout and options", map[string]any{"image": "oci:/srv/nodes@" + someDigest, "public_key": "env://PREBAKE_PUB",
			"root": "/mnt/scratch", "platform": "linux/arm64", "sudo": true, "skip_os_packages": true}, nil},
		{"data source output unknown (packer validate)", map[string]any{"image": "<unknown>", "public_key": pub}, nil},
		{"nothing", map[string]any{}, []string{"image: required", "public_key: required"}},
		{"tag instead of digest", map[string]any{"image": "127.0.0.1:5000/nodes:1.36.4", "public_key": pub},
			[]string{"image:", "names the image by a tag (1.36.4)", "name it by digest, REF@sha256:"}},
		{"no tag and no digest", map[string]any{"image": "127.0.0.1:5000/nodes", "public_key": pub}, []string{"image:", "by digest"}},
		{"malformed digest", map[string]any{"image": "127.0.0.1:5000/nodes@sha256:abc", "public_key": pub}, []string{"image:", "sha256:abc"}},
		{"missing key file", map[string]any{"image": "127.0.0.1:5000/nodes@" + someDigest, "public_key": "/nonexistent/cosign.pub"},
			[]string{"public_key: key file /nonexistent/cosign.pub does not exist"}},
		{"relative root", map[string]any{"image": "127.0.0.1:5000/nodes@" + someDigest, "public_key": pub, "root": "scratch"}, []string{"root:", "absolute"}},
		{"bad platform", map[string]any{"image": "127.0.0.1:5000/nodes@" + someDigest, "public_key": pub, "platform": "amd64"}, []string{"platform:", "os/arch"}},
		{"staging at /", map[string]any{"image": "127.0.0.1:5000/nodes@" + someDigest, "public_key": pub, "staging_dir": "/"}, []string{"staging_dir:"}},
		{"unknown option", map[string]any{"image": "127.0.0.1:5000/nodes@" + someDigest, "public_key": pub, "key": "x"}, []string{"key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Provisioner
			err := p.Prepare(tc.raw)
			testenv.CheckError(t, tc.raw, err, tc.want...)
		})
	}
}

// localComm runs the provisioner's commands on this machine through the
// SDK's chroot communicator with the chroot at "/": real shell, real tar,
// real files, no SSH. (The e2e test covers SSH.)
func localComm(t *testing.T) packersdk.Communicator {
	testenv.Root(t, "applying an image extracts as root (chroot, chown)")
	return &chroot.Communicator{Chroot: "/", CmdWrapper: func(s string) (string, error) { return s, nil }}
}

func provision(t *testing.T, raw map[string]any) error {
	t.Helper()
	var p Provisioner
	if err := p.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	return p.Provision(context.Background(), packersdk.TestUi(t), localComm(t), nil)
}

// TestApplyQuickstart applies the signed quickstart image under a scratch
// root and checks files, modes, owners and /etc/prebake/image.json.
func TestApplyQuickstart(t *testing.T) {
	fixture.Isolate(t)
	localComm(t)
	priv, pub := fixture.Keys(t)
	layout := filepath.Join(t.TempDir(), "nodes")
	digest := fixture.BuildQuickstart(t, "oci:"+layout+":1.36.4", priv, registry.Options{})
	root := filepath.Join(t.TempDir(), "root")
	staging := filepath.Join(t.TempDir(), "staging")
	raw := map[string]any{"image": "oci:" + layout + "@" + digest, "public_key": pub, "root": root, "staging_dir": staging, "platform": "linux/amd64"}
	for i := 0; i < 2; i++ { // applying again over the result works too
		if err := provision(t, raw); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"usr/local/bin/kubelet", 0o755},
		{"usr/local/bin/kubeadm", 0o755},
		{"usr/local/sbin/runc", 0o755},
		{"etc/crictl.yaml", 0o644},
		{"etc/prebake/image.json", 0o644},
	} {
		fi, err := os.Lstat(filepath.Join(root, f.path))
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if fi.Mode().Perm() != f.mode || !fi.Mode().IsRegular() {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", f.path, st.Uid, st.Gid)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/prebake/image.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec imageRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Digest != digest || rec.Platform != "linux/amd64" || rec.KubernetesVersion != "1.36.4" || len(rec.Components) != 3 {
		t.Errorf("image.json = %s", b)
	}
	if got := strings.Join(rec.OSPackages, ","); got != "conntrack,socat,iptables,ethtool" {
		t.Errorf("osPackages = %q", got)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging dir left behind: %v", err)
	}
}

// TestApplyZstd applies an image with zstd layers (tar --zstd on the machine).
func TestApplyZstd(t *testing.T) {
	fixture.Isolate(t)
	localComm(t)
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("zstd not on PATH: run hack/tools.sh")
	}
	priv, pub := fixture.Keys(t)
	layout := filepath.Join(t.TempDir(), "nodes")
	digest := fixture.BuildQuickstartWith(t, "oci:"+layout+":1.36.4", priv, registry.Options{}, builder.Zstd)
	root := filepath.Join(t.TempDir(), "root")
	if err := provision(t, map[string]any{"image": "oci:" + layout + "@" + digest, "public_key": pub, "root": root, "platform": "linux/arm64"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/prebake/image.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec imageRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Platform != "linux/arm64" || rec.Digest != digest {
		t.Errorf("image.json = %s", b)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/local/bin/kubelet")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("kubelet: %v %v", fi, err)
	}
}

// TestApplyRefusesOtherKey: an image signed by another key is refused before
// anything reaches the machine.
func TestApplyRefusesOtherKey(t *testing.T) {
	fixture.Isolate(t)
	localComm(t)
	priv, _ := fixture.Keys(t)
	_, otherPub := fixture.Keys(t)
	layout := filepath.Join(t.TempDir(), "nodes")
	digest := fixture.BuildQuickstart(t, "oci:"+layout+":1.36.4", priv, registry.Options{})
	root := filepath.Join(t.TempDir(), "root")
	err := provision(t, map[string]any{"image": "oci:" + layout + "@" + digest, "public_key": otherPub, "root": root})
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("err = %v, want a signature refusal", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root was touched: %v", err)
	}
}

// TestApplyWhiteouts: a .wh. entry removes the path; an opaque directory
// removes what the image's earlier layers put there, not the machine's own
// files; modes and a setuid bit survive.
func TestApplyWhiteouts(t *testing.T) {
	fixture.Isolate(t)
	localComm(t)
	priv, pub := fixture.Keys(t)
	l1 := tarLayer(t, []entry{
		{"opt/", 0o755, ""}, {"opt/a/", 0o750, ""}, {"opt/a/x", 0o644, "x"}, {"opt/a/y", 0o600, "y"},
		{"opt/d/", 0o755, ""}, {"opt/d/z", 0o644, "z"}, {"opt/bin/", 0o755, ""}, {"opt/bin/tool", 0o4755, "#!/bin/sh\n"},
	})
	l2 := tarLayer(t, []entry{
		{"opt/a/", 0o750, ""}, {"opt/a/.wh.x", 0o644, ""}, {"opt/d/", 0o755, ""}, {"opt/d/.wh..wh..opq", 0o644, ""}, {"opt/d/new", 0o640, "new"},
	})
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "wh")
	ref, err := registry.ParseReference("oci:" + layout + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := registry.Write(context.Background(), ref, img, nil, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fixture.Sign(t, ref.WithDigest(desc.Digest.String()), priv, registry.Options{})
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "opt/d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "opt/d/machine"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := provision(t, map[string]any{"image": "oci:" + layout + "@" + desc.Digest.String(), "public_key": pub, "root": root}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		"opt/a": os.ModeDir | 0o750, "opt/a/y": 0o600, "opt/d/new": 0o640, "opt/d/machine": 0o644, "opt/bin/tool": os.ModeSetuid | 0o755,
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	for _, gone := range []string{"opt/a/x", "opt/d/z", "opt/a/.wh.x", "opt/d/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there (%v)", gone, err)
		}
	}
}

// TestApplyRefusesBadPackageName: an osPackages entry that is not a package
// name stops the apply before anything runs, and the staging directory is
// removed.
func TestApplyRefusesBadPackageName(t *testing.T) {
	fixture.Isolate(t)
	localComm(t)
	priv, pub := fixture.Keys(t)
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, []entry{{"opt/", 0o755, ""}, {"opt/f", 0o644, "f"}}))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}); err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"dev.prebake.os-packages": "socat,x;reboot"}).(v1.Image)
	ref := registry.MustParse("oci:" + filepath.Join(t.TempDir(), "bad") + ":v1")
	desc, err := registry.Write(context.Background(), ref, img, nil, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fixture.Sign(t, ref.WithDigest(desc.Digest.String()), priv, registry.Options{})
	root := filepath.Join(t.TempDir(), "root")
	staging := filepath.Join(t.TempDir(), "staging")
	err = provision(t, map[string]any{"image": ref.WithDigest(desc.Digest.String()).String(), "public_key": pub, "root": root, "staging_dir": staging})
	if err == nil || !strings.Contains(err.Error(), `os package "x;reboot": not a package name`) {
		t.Fatalf("err = %v", err)
	}
	for _, d := range []string{root, staging} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused apply (%v)", d, err)
		}
	}
}

type entry struct {
	name string
	mode int64
	body string
}

func tarLayer(t *testing.T, entries []entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil && h.Size > 0 {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}
