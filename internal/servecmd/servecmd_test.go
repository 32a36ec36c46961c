package servecmd_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/cli"
	"github.com/prebake/prebake/internal/servecmd"
	"github.com/prebake/prebake/registry/server"
)

func init() { cli.SetServer(servecmd.Commands()) }

// runPrebake runs the root command (with the server linked in, as
// prebake-serve) in-process.
func runPrebake(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

// gc's flag default is the server's.
func TestGCGraceDefault(t *testing.T) {
	if cli.DefaultGCGrace != server.DefaultGracePeriod {
		t.Errorf("cli.DefaultGCGrace %v, server.DefaultGracePeriod %v", cli.DefaultGCGrace, server.DefaultGracePeriod)
	}
}

// serve runs `prebake serve` in-process until the returned stop is called,
// and returns the address from its first line.
func serveInProcess(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: pw, Err: io.Discard})
	root.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr)
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		cancel()
		t.Fatalf("first line %q (%v), want \"listening on ADDR\"; serve: %v", line, err, <-done)
	}
	return addr, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			t.Fatal("serve did not stop")
			return nil
		}
	}
}

func TestServeAndGC(t *testing.T) {
	root := t.TempDir()
	addr, stop := serveInProcess(t, "--root", root)
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(addr+"/cli/node:v1", name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	orphan := static.NewLayer([]byte("orphan"), types.OCILayer)
	if err := remote.WriteLayer(r.Context(), orphan); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve after SIGINT-like cancel: %v, want nil", err)
	}

	out, _, err := runPrebake(t, "gc", "--root", root, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "would remove 0 blobs") {
		t.Errorf("gc --dry-run with the default grace:\n%s\nwant nothing removed (the orphan is young)", out)
	}
	od, _ := orphan.Digest()
	out, _, err = runPrebake(t, "gc", "--root", root, "--grace", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed cli/node@"+od.String()+" (6 bytes)") || !strings.Contains(out, "removed 1 blobs") {
		t.Errorf("gc --grace 0:\n%s\nwant the orphan %s removed", out, od)
	}

	// The image survived, through a restarted server.
	addr, stop = serveInProcess(t, "--root", root)
	defer stop()
	r, _ = name.ParseReference(addr+"/cli/node:v1", name.Insecure)
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("cli/node:v1 = %s after gc and restart", d)
	}
}

func TestServeFlagProblems(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--root", t.TempDir(), "--anonymous-pull"},
		{"serve", "--root", t.TempDir(), "--tls-cert", "x.crt"},
		{"serve", "--root", t.TempDir(), "--htpasswd", "/nonexistent/htpasswd"},
		{"gc"},
	} {
		if _, _, err := runPrebake(t, args...); err == nil {
			t.Errorf("prebake %s: no error", strings.Join(args, " "))
		}
	}
}
