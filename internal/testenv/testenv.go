// Package testenv is prebake's test harness: it finds the real tools tests
// talk to, builds the prebake binary once per test process, starts
// `prebake serve` as a process, and locates the repository's fixtures.
//
// One rule holds for every test that uses it: under -short a test that needs
// a tool, root or the binary is skipped; otherwise a missing tool fails the
// test, and a missing root or fixture fails it when CI=true (make test, .ci/run)
// and skips it elsewhere, so a CI run is never green without checking.
//
// It imports nothing of prebake, so that every package's own tests (registry,
// signing, disk, …) can use it without an import cycle; the in-process
// registry and the quickstart image live in testenv/fixture, which imports the
// libraries.
package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// CI reports whether the tests run as CI (CI=true): then nothing a test needs
// may be missing.
func CI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends a test that cannot have what it needs: it fails under
// CI=true and is skipped elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI=true: a test that cannot run fails)", msg)
	}
	t.Skip(msg)
}

// Short skips t under -short, saying what it needs.
func Short(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: this test %s", needs)
	}
}

// RepoRoot is the repository's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Path is a file or directory of the repository, by its slash-separated path
// from the root.
func Path(t testing.TB, rel string) string {
	return filepath.Join(RepoRoot(t), filepath.FromSlash(rel))
}

// Fixture is Path for a fixture the test cannot do without: when it is
// missing the test is Unavailable.
func Fixture(t testing.TB, rel string) string {
	t.Helper()
	p := Path(t, rel)
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "fixture %s: %v", rel, err)
	}
	return p
}

// Tool returns the path of an external program a test talks to: from PATH,
// else from .cache/tools/bin (where hack/tools.sh installs; make puts it on
// PATH, a plain `go test` may not). Skipped under -short; missing, the test
// fails.
func Tool(t testing.TB, name string) string {
	t.Helper()
	Short(t, "needs "+name)
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := Path(t, ".cache/tools/bin/"+name); isExec(p) {
		return p
	}
	t.Fatalf("%s not found on PATH or in .cache/tools/bin: run hack/tools.sh %s", name, name)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Root makes t need root (file owners, chroot, namespaces): skipped under
// -short, Unavailable when not root.
func Root(t testing.TB, why string) {
	t.Helper()
	Short(t, "runs as root: "+why)
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: %s", why)
	}
}

// GoldenDigest is the quickstart image's digest
// (builder/testdata/quickstart.digest).
func GoldenDigest(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(Fixture(t, "builder/testdata/quickstart.digest"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Quickstart is the path of the quickstart recipe.
func Quickstart(t testing.TB) string { return Fixture(t, "examples/quickstart/recipe.yaml") }

// Mirrors rewrite the quickstart's upstream URLs to the stand-in files in
// testdata/mirror, in the "FROM=TO" form of --mirror.
func Mirrors(t testing.TB) []string {
	m := "file://" + Fixture(t, "testdata/mirror")
	return []string{"https://dl.k8s.io/=" + m + "/dl.k8s.io/", "https://github.com/=" + m + "/github.com/"}
}

// QuickstartArgs is `build QUICKSTART --mirror …` followed by extra.
func QuickstartArgs(t testing.TB, extra ...string) []string {
	args := []string{"build", Quickstart(t)}
	for _, m := range Mirrors(t) {
		args = append(args, "--mirror", m)
	}
	return append(args, extra...)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Prebake is $PREBAKE_BIN (make test sets it), else a prebake built from
// this tree once per test process. Skipped under -short.
func Prebake(t testing.TB) string {
	t.Helper()
	Short(t, "runs the prebake binary")
	if p := os.Getenv("PREBAKE_BIN"); p != "" {
		return p
	}
	binOnce.Do(func() { binPath, binErr = BuildPrebake(RepoRoot(t)) })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// BuildPrebake builds cmd/prebake and cmd/prebake-serve (which `prebake
// serve` and `prebake gc` run, found next to prebake) of the tree at root
// into .cache/test-bin/<tree> (never committed; one directory per tree,
// each file replaced atomically by every build, so that concurrent test
// processes and worktrees sharing .cache do not collide) and returns
// prebake's path. TestMain functions call it directly.
func BuildPrebake(root string) (string, error) {
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(root, ".cache", "test-bin", hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"prebake-serve", "prebake"} {
		tmp, err := os.CreateTemp(dir, "."+name+"-*")
		if err != nil {
			return "", err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
		if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "prebake"), nil
}

// Server is a `prebake serve` child process.
type Server struct {
	Addr string // host:port from its "listening on" line
	Cmd  *exec.Cmd
	log  *syncBuffer
}

// Log is what the server wrote to stderr so far.
func (s *Server) Log() string { return s.log.String() }

// Serve runs `BIN serve --addr 127.0.0.1:0 ARGS...` and waits for its
// "listening on ADDR" line; the process is killed when the test ends (unless
// the test waited for it). Give --root in args; bin is usually Prebake(t).
func Serve(t testing.TB, bin string, args ...string) *Server {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Cmd: cmd, log: &syncBuffer{}}
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("prebake serve log (tail):\n%s", Tail(s.log.String(), 20))
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	select {
	case line, ok := <-lines:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("prebake serve: first line %q, want \"listening on ADDR\"; stderr:\n%s", line, s.log)
		}
		s.Addr = strings.TrimSpace(addr)
	case <-time.After(30 * time.Second):
		t.Fatalf("prebake serve did not start; stderr:\n%s", s.log)
	}
	return s
}

// Tail is the last n lines of s, for failure messages.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer collects a child's stderr for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DockerRegistry is Debian's docker-registry (distribution 2.8, no referrers
// API) on a free loopback port over a filesystem root: the real peer
// registry tests push to besides prebake's own.
type DockerRegistry struct {
	Host string // host:port
	Bin  string // the docker-registry binary
	Cfg  string // its configuration file
	cmd  *exec.Cmd
	log  *syncBuffer
}

// StartDockerRegistry runs docker-registry over root (a directory; empty
// means a temporary one) until the test ends.
func StartDockerRegistry(t testing.TB, root string) *DockerRegistry {
	t.Helper()
	bin := Tool(t, "docker-registry")
	if root == "" {
		root = filepath.Join(t.TempDir(), "data")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, root, host), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &DockerRegistry{Host: host, Bin: bin, Cfg: cfg, log: &syncBuffer{}}
	r.Start(t)
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("docker-registry log (tail):\n%s", Tail(r.log.String(), 20))
		}
	})
	return r
}

// Start starts the registry process and waits until it answers.
func (r *DockerRegistry) Start(t testing.TB) {
	t.Helper()
	r.cmd = exec.Command(r.Bin, "serve", r.Cfg)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not answer on %s", r.Host)
}

// Stop kills the registry process (its data stays).
func (r *DockerRegistry) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Restart stops and starts the registry over the same data.
func (r *DockerRegistry) Restart(t testing.TB) {
	r.Stop()
	r.Start(t)
}

// RealBinary is a source-built Kubernetes or runtime binary of
// hack/real/build.sh that `make test` names in the environment variable env
// (PREBAKE_KUBEADM, PREBAKE_CONTAINERD). Skipped under -short; otherwise a
// missing one fails the test, so a green run means the real binary was asked.
func RealBinary(t testing.TB, env, name string) string {
	t.Helper()
	Short(t, "needs the real "+name)
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run `make test`, or hack/real/build.sh %s and point %s at it", env, name, env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return p
}

// CheckError is the check of a table test of bad input: with no want, err
// must be nil; else err must be an error that mentions every want (a field,
// a file:line, the expected value). what names the input in the failure.
func CheckError(t testing.TB, what any, err error, want ...string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("%v: %v", what, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted %v", what)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}
