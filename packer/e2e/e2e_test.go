//go:build e2e

// Package e2e runs the plugin inside a real Packer (v1.11.2, built from the
// module proxy by packer/hack/tools.sh): `packer plugins install --path`,
// then `packer build` of HCL2 templates against a loopback `prebake serve`
// and a local sshd started by the test. It is built only with the e2e tag
// (`make e2e-packer`, part of `make test`), because it needs packer, sshd
// and root, so `go test ./...` neither runs nor skips it.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
)

// env is one e2e run: binaries, directories, the registry and sshd.
type env struct {
	t         *testing.T
	dir       string
	packerBin string
	prebake   string
	registry  string // host:port of prebake serve
	sshPort   int
	sshKey    string
	priv      string
	pub       string
	environ   []string
	logN      int
}

func TestE2E(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the e2e test applies an image over SSH as root: run it as root")
	}
	e := setup(t)

	// 1. builder: recipe -> signed image in prebake serve.
	var buildOut struct {
		Builds []struct {
			ArtifactID string `json:"artifact_id"`
		} `json:"builds"`
	}
	built := e.packerRun("build", "build.pkr.hcl")
	e.readJSON("build-manifest.json", &buildOut)
	if len(buildOut.Builds) != 1 || !strings.HasPrefix(buildOut.Builds[0].ArtifactID, "sha256:") {
		t.Fatalf("build manifest: %+v", buildOut)
	}
	digest := buildOut.Builds[0].ArtifactID
	image := e.registry + "/nodes/quickstart@" + digest
	if !strings.Contains(built, "built "+digest+" pushed "+image) {
		t.Errorf("the shell-local provisioner did not see build.PrebakeDigest and build.PrebakePushed:\n%s", built)
	}
	e.prebakeRun("verify", image, "--key", e.pub, "--insecure")
	e.prebakeRun("promote", image, "--channel", "stable", "--verify-key", e.pub, "--insecure")

	// 2. data source + provisioner: the channel resolves to the digest, which
	// is applied over SSH under a scratch root.
	before, _ := filepath.Glob("/tmp/prebake.*")
	out := e.packerRun("build", "apply.pkr.hcl")
	after, _ := filepath.Glob("/tmp/prebake.*")
	if len(after) > len(before) {
		t.Errorf("the provisioner left its staging directory behind: %v (before: %v)", after, before)
	}
	if !strings.Contains(out, digest) {
		t.Errorf("apply output does not name %s", digest)
	}
	root := filepath.Join(e.dir, "root")
	for p, mode := range map[string]os.FileMode{
		"usr/local/bin/kubelet": 0o755, "usr/local/bin/kubeadm": 0o755, "usr/local/sbin/runc": 0o755,
		"etc/crictl.yaml": 0o644, "etc/prebake/image.json": 0o644,
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: %v %d:%d, want %v 0:0", p, fi.Mode(), st.Uid, st.Gid, mode)
		}
	}
	var rec struct {
		Digest string `json:"digest"`
	}
	e.readJSON(filepath.Join(root, "etc/prebake/image.json"), &rec)
	if rec.Digest != digest {
		t.Errorf("image.json digest %s, want %s", rec.Digest, digest)
	}

	// 3. post-processor: a stand-in qcow2 from the file builder is pushed,
	// signed, linked to the node image, and `prebake verify` accepts it.
	qcow := "QFI\xfb\x00\x00\x00\x03" + strings.Repeat("\x00", 64<<10)
	if err := os.WriteFile(filepath.Join(e.dir, "standin.qcow2"), []byte(qcow), 0o644); err != nil {
		t.Fatal(err)
	}
	e.packerRun("build", "-var", "source_image="+image, "disk.pkr.hcl")
	var diskOut struct {
		Builds []struct {
			ArtifactID string `json:"artifact_id"`
		} `json:"builds"`
	}
	e.readJSON("disk-manifest.json", &diskOut)
	if len(diskOut.Builds) != 1 || !strings.HasPrefix(diskOut.Builds[0].ArtifactID, "sha256:") {
		t.Fatalf("disk manifest: %+v", diskOut)
	}
	disk := e.registry + "/disks/node@" + diskOut.Builds[0].ArtifactID
	verify := e.prebakeRun("verify", disk, "--key", e.pub, "--insecure")
	if !strings.Contains(verify, digest) {
		t.Errorf("verify of the disk does not show the source image annotation %s:\n%s", digest, verify)
	}

	// 4. the complete templates of docs/packer are valid.
	e.validateDocs()

	// 5. packer validate refuses a tag for the provisioner, saying why.
	out, err := e.packer("validate", "tag.pkr.hcl")
	if err == nil {
		t.Fatalf("packer validate accepted a tag:\n%s", out)
	}
	flat := strings.Join(strings.Fields(out), " ") // packer wraps long lines
	if !strings.Contains(flat, "image: \""+e.registry+"/nodes/quickstart:1.36.4\" names the image by a tag (1.36.4); name it by digest, REF@sha256:") {
		t.Errorf("packer validate did not explain the refusal:\n%s", out)
	}
}

// validateDocs runs `packer validate` on every complete template (an hcl
// block with a build) in docs/packer, in a directory holding the files the
// templates name.
func (e *env) validateDocs() {
	docs, err := filepath.Glob(filepath.Join(testenv.RepoRoot(e.t), "docs", "packer", "*.md"))
	if err != nil || len(docs) == 0 {
		e.t.Fatalf("docs/packer: %v", err)
	}
	dir := filepath.Join(e.dir, "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	for name, from := range map[string]string{"cosign.key": e.priv, "cosign.pub": e.pub, "id_ed25519": e.sshKey} {
		b, err := os.ReadFile(from)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.qcow2"), []byte("QFI\xfb"), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(testenv.RepoRoot(e.t), "examples"), filepath.Join(dir, "examples")); err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			e.t.Fatal(err)
		}
		for i, block := range strings.Split(string(b), "```hcl\n")[1:] {
			block = block[:strings.Index(block, "```")]
			if !strings.Contains(block, "\nbuild {") {
				continue // a fragment
			}
			name := fmt.Sprintf("%s-%d.pkr.hcl", strings.TrimSuffix(filepath.Base(doc), ".md"), i)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(block), 0o644); err != nil {
				e.t.Fatal(err)
			}
			cmd := exec.Command(e.packerBin, "validate", name)
			cmd.Dir, cmd.Env = dir, e.environ
			if out, err := cmd.CombinedOutput(); err != nil {
				e.t.Errorf("packer validate of the template in %s: %v\n%s\n%s", filepath.Base(doc), err, out, block)
			}
			n++
		}
	}
	if n < 5 {
		e.t.Errorf("validated %d templates in docs/packer, want at least 5", n)
	}
}

func setup(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir()}
	e.packerBin = testenv.Tool(t, "packer")
	sshd := "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Fatal("no /usr/sbin/sshd: run packer/hack/tools.sh")
	}
	e.prebake = binary(t, "PREBAKE_BIN", "prebake", "../..", "./cmd/prebake")
	if os.Getenv("PREBAKE_BIN") == "" { // `prebake serve` runs prebake-serve from next to prebake
		if out, err := exec.Command("go", "build", "-C", "../..", "-o", filepath.Join(filepath.Dir(e.prebake), "prebake-serve"), "./cmd/prebake-serve").CombinedOutput(); err != nil {
			t.Fatalf("building prebake-serve: %v\n%s", err, out)
		}
	}
	plugin := binary(t, "PACKER_PLUGIN_BIN", "packer-plugin-prebake", "..", ".")
	e.environ = append(os.Environ(),
		"PACKER_PLUGIN_PATH="+filepath.Join(e.dir, "plugins"), "PACKER_CONFIG_DIR="+filepath.Join(e.dir, "config"),
		"PACKER_CACHE_DIR="+filepath.Join(e.dir, "cache"), "CHECKPOINT_DISABLE=1", "PACKER_NO_COLOR=1",
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "xdg-cache"), "XDG_DATA_HOME="+filepath.Join(e.dir, "xdg-data"),
		"COSIGN_PASSWORD=",
	)
	e.priv, e.pub = fixture.Keys(t)
	e.startRegistry()
	e.startSSHD(sshd)
	e.writeTemplates()
	if out, err := e.packer("plugins", "install", "--path", plugin, "github.com/prebake/prebake"); err != nil {
		t.Fatalf("packer plugins install --path: %v\n%s", err, out)
	}
	return e
}

// binary returns $envVar, or builds pkg in module dir into the test's
// temporary directory.
func binary(t *testing.T, envVar, name, dir, pkg string) string {
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	return out
}

func (e *env) startRegistry() {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, e.prebake, "serve", "--root", filepath.Join(e.dir, "registry"), "--addr", "127.0.0.1:0")
	cmd.Env = e.environ
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cancel(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		e.t.Fatalf("prebake serve: first line %q, %v", line, err)
	}
	e.registry = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}

func (e *env) startSSHD(sshd string) {
	d := filepath.Join(e.dir, "ssh")
	if err := os.MkdirAll(d, 0o700); err != nil {
		e.t.Fatal(err)
	}
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(d, k)).CombinedOutput(); err != nil {
			e.t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(d, "client.pub"))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "authorized_keys"), pub, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.sshKey = filepath.Join(d, "client")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.sshPort = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
`, e.sshPort, filepath.Join(d, "host"), filepath.Join(d, "authorized_keys"), filepath.Join(d, "sshd.pid"))
	if err := os.WriteFile(filepath.Join(d, "sshd_config"), []byte(conf), 0o600); err != nil {
		e.t.Fatal(err)
	}
	// Debian's sshd needs its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		e.t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(d, "sshd_config"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if e.t.Failed() {
			e.t.Logf("sshd log:\n%s", logs.String())
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.sshPort), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if i == 100 {
			e.t.Fatalf("sshd did not listen on %d: %v\n%s", e.sshPort, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeTemplates copies testdata/*.pkr.hcl into the run directory, each
// with the shared variable declarations (packer reads only the file it is
// given), and writes the run's values as a variables file.
func (e *env) writeTemplates() {
	decls, err := os.ReadFile("testdata/variables.pkr.hcl")
	if err != nil {
		e.t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/*.pkr.hcl")
	if err != nil || len(files) < 2 {
		e.t.Fatalf("templates: %v", err)
	}
	for _, f := range files {
		if filepath.Base(f) == "variables.pkr.hcl" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		b = append(append(append([]byte(nil), decls...), '\n'), b...)
		if err := os.WriteFile(filepath.Join(e.dir, filepath.Base(f)), b, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	mirrors, _ := json.Marshal(testenv.Mirrors(e.t))
	vars := fmt.Sprintf(`registry    = %q
recipe      = %q
mirrors     = %s
sign_key    = %q
public_key  = %q
ssh_port    = %d
ssh_key     = %q
root        = %q
`, e.registry, testenv.Quickstart(e.t), mirrors, e.priv, e.pub, e.sshPort, e.sshKey, filepath.Join(e.dir, "root"))
	if err := os.WriteFile(filepath.Join(e.dir, "e2e.pkrvars.hcl"), []byte(vars), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// packer runs packer in the run directory and returns its combined output.
func (e *env) packer(args ...string) (string, error) {
	if args[0] == "build" || args[0] == "validate" {
		args = append([]string{args[0], "-var-file=e2e.pkrvars.hcl"}, args[1:]...)
	}
	cmd := exec.Command(e.packerBin, args...)
	cmd.Dir, cmd.Env = e.dir, e.environ
	if logs := os.Getenv("PACKER_E2E_LOGS"); logs != "" { // debugging: one PACKER_LOG file per run
		e.logN++
		cmd.Env = append(cmd.Env, "PACKER_LOG=1", fmt.Sprintf("PACKER_LOG_PATH=%s/%02d-%s.log", logs, e.logN, args[0]))
	}
	start := time.Now()
	b, err := cmd.CombinedOutput()
	e.t.Logf("packer %s (%.1fs)", strings.Join(args, " "), time.Since(start).Seconds())
	return string(b), err
}

func (e *env) packerRun(args ...string) string {
	e.t.Helper()
	out, err := e.packer(args...)
	if err != nil {
		e.t.Fatalf("packer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (e *env) prebakeRun(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(e.prebake, args...)
	cmd.Dir, cmd.Env = e.dir, e.environ
	b, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("prebake %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

func (e *env) readJSON(name string, v any) {
	e.t.Helper()
	if !filepath.IsAbs(name) {
		name = filepath.Join(e.dir, name)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
}
