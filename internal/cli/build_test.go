package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/pipeline"
	"github.com/prebake/prebake/registry"
)

// Building the quickstart from separate processes with different caches, time
// zones, umasks and working directories - each with its own copy of the
// recipe, named by a relative path - gives the golden digest every time.
func TestBuildReproducibleAcrossEnvironments(t *testing.T) {
	bin := testenv.Prebake(t)
	want := testenv.GoldenDigest(t)
	for _, env := range []struct{ tz, umask string }{{"UTC", "022"}, {"Pacific/Chatham", "077"}, {"Asia/Kolkata", "002"}} {
		tmp := t.TempDir()
		wd := filepath.Join(tmp, "work", env.umask)
		if err := os.CopyFS(wd, os.DirFS(filepath.Dir(testenv.Quickstart(t)))); err != nil {
			t.Fatal(err)
		}
		args := []string{"build", "recipe.yaml", "--json", "-q", "-o", "oci:" + filepath.Join(tmp, "out"), "--cache-dir", filepath.Join(tmp, "cache")}
		for _, m := range testenv.Mirrors(t) {
			args = append(args, "--mirror", m)
		}
		cmd := exec.Command("sh", "-c", "umask "+env.umask+"; exec \"$0\" \"$@\"", bin)
		cmd.Args = append(cmd.Args, args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "TZ="+env.tz, "XDG_DATA_HOME="+filepath.Join(tmp, "data"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("TZ=%s umask %s: %v\n%s", env.tz, env.umask, err, exitStderr(err))
		}
		var res pipeline.Result
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out)
		}
		if res.Digest != want {
			t.Errorf("TZ=%s umask %s: digest %s, golden %s", env.tz, env.umask, res.Digest, want)
		}
		if len(res.Platforms) != 2 || res.SBOM == "" || res.Reference == "" {
			t.Errorf("--json lacks platforms/sbom/reference: %s", out)
		}
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// The built layout is valid for real clients: skopeo inspects it and umoci
// unpacks each platform to exactly the expected files and modes.
func TestBuildOutputWithRealClients(t *testing.T) {
	skopeo, umoci := testenv.Tool(t, "skopeo"), testenv.Tool(t, "umoci")
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "out")
	if _, stderr, err := runPrebake(t, testenv.QuickstartArgs(t, "-q", "--cache-dir", filepath.Join(tmp, "cache"), "-o", "oci:"+layout+":node")...); err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+layout+":node").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"application/vnd.oci.image.index.v1+json"`) {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if out, err := exec.Command(skopeo, "inspect", "--override-arch", "arm64", "oci:"+layout+":node").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), `"Architecture": "arm64"`) || !strings.Contains(string(out), `"org.opencontainers.image.version": "1.36.4"`) {
		t.Fatalf("skopeo inspect arm64: %v\n%s", err, out)
	}
	sum, err := registry.Inspect(t.Context(), registry.MustParse("oci:"+layout+":node"), registryOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/etc/modules-load.d/kernel.conf": "-rw-r--r-- # installed by prebake, component kernel\noverlay\nbr_netfilter\n",
		"/etc/sysctl.d/90-kernel.conf": "-rw-r--r-- # installed by prebake, component kernel\n" +
			"net.bridge.bridge-nf-call-ip6tables = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n",
		"/etc/systemd/system/multi-user.target.wants/kubelet.service":    "L /etc/systemd/system/kubelet.service",
		"/etc/systemd/system/multi-user.target.wants/containerd.service": "L /etc/systemd/system/containerd.service",
		"/usr/local/sbin/runc":                                  "-rwxr-xr-x",
		"/usr/local/bin/containerd":                             "-rwxr-xr-x",
		"/usr/local/bin/kubelet":                                "-rwxr-xr-x",
		"/usr/local/bin/crictl":                                 "-rwxr-xr-x",
		"/opt/cni/bin/bridge":                                   "-rwxr-xr-x",
		"/etc/containerd/config.toml":                           "-rw-r--r--",
		"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": "-rw-r--r--",
	}
	for _, p := range sum.Platforms {
		arch := strings.TrimPrefix(p.Platform, "linux/")
		// umoci unpacks the platform image by digest from a one-image tag.
		bundle := filepath.Join(tmp, "bundle-"+arch)
		ref := layout + "@" + p.Digest
		_ = ref
		tag := "plat-" + arch
		if _, stderr, err := runPrebake(t, "copy", "oci:"+layout+"@"+p.Digest, "oci:"+layout+":"+tag); err != nil {
			// copy is the registry engineer's; fall back to tagging by hand
			t.Logf("prebake copy unavailable (%v, %s); tagging with skopeo", err, stderr)
			if out, err := exec.Command(skopeo, "copy", "oci:"+layout+":node", "oci:"+layout+":"+tag, "--override-arch", arch).CombinedOutput(); err != nil {
				t.Fatalf("skopeo copy: %v\n%s", err, out)
			}
		}
		if out, err := exec.Command(umoci, "unpack", "--rootless", "--image", layout+":"+tag, bundle).CombinedOutput(); err != nil {
			t.Fatalf("umoci unpack %s: %v\n%s", arch, err, out)
		}
		rootfs := filepath.Join(bundle, "rootfs")
		var files []string
		filepath.Walk(rootfs, func(path string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				files = append(files, strings.TrimPrefix(path, rootfs))
			}
			return nil
		})
		sort.Strings(files)
		if len(files) != 21 {
			t.Errorf("%s: %d files, want 21: %v", arch, len(files), files)
		}
		for path, w := range want {
			full := filepath.Join(rootfs, path)
			fi, err := os.Lstat(full)
			if err != nil {
				t.Errorf("%s: %s missing", arch, path)
				continue
			}
			got := fi.Mode().String()
			if fi.Mode()&os.ModeSymlink != 0 {
				target, _ := os.Readlink(full)
				got = "L " + target
			} else if strings.Contains(w, " ") {
				b, _ := os.ReadFile(full)
				got += " " + string(b)
			}
			if got != w {
				t.Errorf("%s: %s is %q, want %q", arch, path, got, w)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(rootfs, "usr/local/bin/kubelet")); !strings.Contains(string(b), "linux/"+arch) {
			t.Errorf("%s: kubelet is not the %s stand-in: %s", arch, arch, b)
		}
	}
}

// Bad input fails with the named error and writes no output.
func TestBuildBadInputWritesNothing(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", filepath.Join(testenv.RepoRoot(t), "recipes", "testdata", "bad", "escape.yaml"), "-o", "oci:" + out}, "escapes with '..'"},
		{testenv.QuickstartArgs(t, "--set", "kubernetes=1.99.0", "-o", "oci:"+out, "--cache-dir", filepath.Join(tmp, "c1")), "missing checksum for https://dl.k8s.io/release/v1.99.0/bin/linux/amd64/kubelet"},
		{testenv.QuickstartArgs(t, "--offline", "-o", "oci:"+out, "--cache-dir", filepath.Join(tmp, "c2")), "offline"},
		{testenv.QuickstartArgs(t, "--compression", "lz4", "-o", "oci:"+out, "--cache-dir", filepath.Join(tmp, "c3")), `unknown compression "lz4"`},
	} {
		_, _, err := runPrebake(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args[2:], err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v left output at %s", tc.args, out)
		}
	}
}

// diff names exactly the component whose version changed.
func TestInspectAndDiff(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("PREBAKE_STORE", filepath.Join(tmp, "store"))
	cache := filepath.Join(tmp, "cache")
	for _, v := range []string{"1.36.4", "1.36.5"} {
		if _, stderr, err := runPrebake(t, testenv.QuickstartArgs(t, "-q", "--cache-dir", cache, "--set", "kubernetes="+v)...); err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
	}
	out, _, err := runPrebake(t, "diff", "quickstart-node:1.36.4", "quickstart-node:1.36.5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var changes []registry.ComponentChange
	if err := json.Unmarshal([]byte(out), &changes); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Component != "kubernetes" || changes[1].Component != "kubernetes" || changes[0].Change != "changed" {
		t.Errorf("diff: %s", out)
	}
	out, _, err = runPrebake(t, "inspect", "quickstart-node:1.36.5")
	if err != nil || !strings.Contains(out, "kubernetes  1.36.5") || !strings.Contains(out, "linux/arm64") {
		t.Errorf("inspect: %v\n%s", err, out)
	}
}

func registryOptions() registry.Options { return registry.Options{} }

// build --push --sign-key pushes, signs and attests in one step; verify then
// accepts the pushed digest with the public key, attestations included.
func TestBuildPushSign(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "build-test")
	if _, stderr, err := runPrebake(t, "keygen", "--prefix", filepath.Join(tmp, "cosign")); err != nil {
		t.Fatalf("keygen: %v\n%s", err, stderr)
	}
	repo := strings.TrimPrefix(olaregURL(t), "http://") + "/nodes/quickstart"
	out, stderr, err := runPrebake(t, testenv.QuickstartArgs(t, "-q", "--json", "--cache-dir", filepath.Join(tmp, "cache"), "-o", "oci:"+filepath.Join(tmp, "out"),
		"--push", repo, "--insecure", "--sign-key", filepath.Join(tmp, "cosign.key"))...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var res pipeline.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Digest != testenv.GoldenDigest(t) || res.Signatures != 3 || res.Pushed != repo+"@"+res.Digest || res.Attestations < 2 || !strings.HasSuffix(res.Pushed, "@"+res.Digest) {
		t.Fatalf("build --push --sign-key: %s", out)
	}
	// Without a tag, --push tags the version.
	if out, _, err := runPrebake(t, "ls", repo, "--insecure"); err != nil || !strings.Contains(out, "1.36.4") {
		t.Errorf("ls after build --push: %v\n%s", err, out)
	}
	vout, stderr, err := runPrebake(t, "verify", res.Pushed, "--key", filepath.Join(tmp, "cosign.pub"), "--insecure", "--attestations")
	if err != nil || !strings.Contains(vout, res.Digest) {
		t.Fatalf("verify: %v\n%s\n%s", err, vout, stderr)
	}
	// --sign-key without --push has nothing to sign by digest in a registry.
	if _, _, err := runPrebake(t, testenv.QuickstartArgs(t, "-q", "--cache-dir", filepath.Join(tmp, "cache"), "-o", "oci:"+filepath.Join(tmp, "out2"),
		"--sign-key", filepath.Join(tmp, "cosign.key"))...); err == nil || !strings.Contains(err.Error(), "--push") {
		t.Errorf("--sign-key without --push: %v", err)
	}
}

// docs/cli is generated from the command tree and must be current.
func TestCLIReferenceCurrent(t *testing.T) {
	if err := WriteDocs(filepath.Join(testenv.RepoRoot(t), "docs", "cli"), true); err != nil {
		t.Fatal(err)
	}
}

// An exported disk is published with `prebake push FILE REF` as an OCI
// artifact and pulled back by digest, byte for byte.
func TestPushDiskFile(t *testing.T) {
	tmp := t.TempDir()
	qcow := filepath.Join(tmp, "node.qcow2")
	content := append([]byte("QFI\xfb"), bytes.Repeat([]byte("disk"), 4096)...)
	if err := os.WriteFile(qcow, content, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := olaregURL(t) + "/disks/node"
	out, stderr, err := runPrebake(t, "push", qcow, repo+":1.36.4", "--insecure", "--json", "-a", "dev.prebake.disk.source.digest="+testenv.GoldenDigest(t))
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var res struct{ Destination, Digest, ArtifactType string }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.ArtifactType != disk.ArtifactType || !strings.HasSuffix(res.Destination, "@"+res.Digest) {
		t.Fatalf("push FILE: %s", out)
	}
	layout := filepath.Join(tmp, "pulled")
	if _, stderr, err := runPrebake(t, "pull", res.Destination, "--insecure", "--require-digest", "-o", "oci:"+layout); err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	sum := sha256.Sum256(content)
	got, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", hex.EncodeToString(sum[:])))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the pulled layout lacks the disk bytes: %v", err)
	}
	sumOut, err := registry.Inspect(t.Context(), registry.MustParse(res.Destination), registry.Options{Insecure: true})
	if err != nil || len(sumOut.Platforms) != 1 || sumOut.Platforms[0].Layers[0].MediaType != "application/vnd.prebake.disk.layer.v1.qcow2" {
		t.Fatalf("inspect: %v %+v", err, sumOut)
	}
	// Files that are not disks need an explicit type.
	other := filepath.Join(tmp, "notes.txt")
	os.WriteFile(other, []byte("x"), 0o644)
	if _, _, err := runPrebake(t, "push", other, repo+":notes", "--insecure"); err == nil || !strings.Contains(err.Error(), "--artifact-type is required") {
		t.Errorf("push of a non-disk file without a type: %v", err)
	}
}
