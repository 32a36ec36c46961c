package server

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// prebakeBin is the prebake binary the black-box tests run: $PREBAKE_BIN
// (make test sets it), else one TestMain builds. Empty under -short.
var prebakeBin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run()
		}
		prebakeBin = os.Getenv("PREBAKE_BIN")
		if prebakeBin == "" {
			dir, err := os.MkdirTemp("", "prebake-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			prebakeBin = filepath.Join(dir, "prebake")
			cmd := exec.Command("go", "build", "-o", prebakeBin, "./cmd/prebake")
			cmd.Dir = filepath.Join("..", "..")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building prebake:", err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// serveProcess is a `prebake serve` child process.
type serveProcess struct {
	cmd  *exec.Cmd
	addr string
	log  *syncBuffer
}

// startServe runs `prebake serve --root root --addr 127.0.0.1:0 args...`
// and waits for the "listening on" line.
func startServe(t *testing.T, root string, args ...string) *serveProcess {
	t.Helper()
	if prebakeBin == "" {
		t.Skip("needs the prebake binary (not built under -short)")
	}
	cmd := exec.Command(prebakeBin, append([]string{"serve", "--root", root, "--addr", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, log: &syncBuffer{}}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
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
			t.Fatalf("prebake serve: first line %q, want \"listening on ADDR\"; stderr:\n%s", line, p.log)
		}
		p.addr = addr
	case <-time.After(30 * time.Second):
		t.Fatalf("prebake serve did not start; stderr:\n%s", p.log)
	}
	return p
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
