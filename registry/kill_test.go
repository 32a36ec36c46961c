package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/registry/store"
)

// The child of TestKill9DuringLayoutWrites runs one layout write and is
// SIGKILLed by the parent somewhere inside it.
func TestMain(m *testing.M) {
	if op := os.Getenv("PREBAKE_KILL_CHILD"); op != "" {
		if err := killChild(op); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// seededImage is an image of n layers of size bytes each, the same for the
// same seed in every process.
func seededImage(seed int64, n, size int) (v1.Image, error) {
	rng := rand.New(rand.NewSource(seed))
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range n {
		b := make([]byte, size)
		rng.Read(b)
		var err error
		if img, err = mutate.AppendLayers(img, static.NewLayer(b, types.OCILayer)); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// killChild performs op: "write SEED DST" (Write, the build's path into a
// layout) or "pull SRC DST" (Pull into a layout).
func killChild(op string) error {
	f := strings.Fields(op)
	ctx := context.Background()
	switch f[0] {
	case "write":
		seed, _ := strconv.ParseInt(f[1], 10, 64)
		img, err := seededImage(seed, 4, 2<<20)
		if err != nil {
			return err
		}
		_, err = Write(ctx, MustParse(f[2]), img, nil, Options{})
		return err
	case "pull":
		_, err := Pull(ctx, MustParse(f[1]), f[2], PullOptions{})
		return err
	}
	return fmt.Errorf("unknown op %q", op)
}

// fsckLayout checks what a reader of dir may rely on after a crash:
// index.json parses, every graph it names is complete and hashes right, and
// no file under blobs/sha256 holds anything but its digest's content.
func fsckLayout(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, os.ErrNotExist) {
		return // a pull that had not reached its rename: nothing there
	}
	ents, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a temp file of the killed write
		}
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != e.Name() {
			t.Fatalf("blob %s holds content of another digest (%d bytes)", e.Name(), len(b))
		}
	}
	s, err := store.Open(Reference{Transport: TransportLayout, Dir: dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	im, err := s.Layout().ReadIndex()
	if err != nil {
		t.Fatalf("index.json after a crash: %v", err)
	}
	for _, d := range im.Manifests {
		raw, err := s.Manifest(t.Context(), d)
		if err != nil {
			t.Fatalf("index.json names %s: %v", d.Digest, err)
		}
		m, err := store.ParseManifest(d, raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range append(m.Layers, *m.Config) {
			rc, err := s.Blob(t.Context(), b)
			if err != nil {
				t.Fatalf("index.json names %s, whose blob %s: %v", d.Digest, b.Digest, err)
			}
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Fatalf("index.json names %s, whose blob %s: %v", d.Digest, b.Digest, err)
			}
		}
	}
}

// TestKill9DuringLayoutWrites SIGKILLs a process writing a build into a
// layout, or pulling into one, at random moments (blobs are synced once per
// operation, index.json written last) and checks that the layout is never
// left naming incomplete content or holding a blob under a wrong digest,
// and that the next run completes it.
func TestKill9DuringLayoutWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	const rounds = 10
	top := t.TempDir()
	// The source of the pulls: a layout with an image of its own.
	src := filepath.Join(top, "src")
	srcImg, err := seededImage(99, 4, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	srcRef := Reference{Transport: TransportLayout, Dir: src, Tag: "v1", TagGiven: true}
	if _, err := Write(t.Context(), srcRef, srcImg, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	run := func(op string) (time.Duration, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PREBAKE_KILL_CHILD="+op)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		return time.Since(start), nil
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	killed := 0
	took := map[string]time.Duration{}
	for i := range rounds {
		dst := filepath.Join(top, fmt.Sprint("dst", i%4/2))
		var op string
		var finish func() error
		if i%2 == 0 {
			op = fmt.Sprintf("write %d oci:%s:t%d", i, dst, i)
			finish = func() error {
				img, err := seededImage(int64(i), 4, 2<<20)
				if err != nil {
					return err
				}
				_, err = Write(t.Context(), MustParse(fmt.Sprintf("oci:%s:t%d", dst, i)), img, nil, Options{})
				return err
			}
		} else {
			dst += "-pull"
			op = fmt.Sprintf("pull %s oci:%s", srcRef, dst)
			finish = func() error {
				_, err := Pull(t.Context(), srcRef, "oci:"+dst, PullOptions{})
				return err
			}
		}
		// How long the operation takes here, measured once per kind on a
		// scratch copy.
		kind := strings.Fields(op)[0]
		d, ok := took[kind]
		if !ok {
			scratch := filepath.Join(top, "scratch-"+kind)
			if d, err = run(strings.ReplaceAll(op, dst, scratch)); err != nil {
				t.Fatalf("clean run of %q: %v", op, err)
			}
			took[kind] = d
		}
		at := time.Duration(rng.Int63n(int64(d)))
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PREBAKE_KILL_CHILD="+op)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(at)
		cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			killed++
		}
		fsckLayout(t, dst)
		if err := finish(); err != nil {
			t.Fatalf("round %d (%s, killed after %v of %v): completing: %v", i, op, at, d, err)
		}
		fsckLayout(t, dst)
	}
	if killed < rounds/2 {
		t.Errorf("only %d of %d children were killed mid-operation", killed, rounds)
	}
	t.Logf("%d of %d children killed mid-operation", killed, rounds)
}
