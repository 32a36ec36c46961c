package server

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/prebake/prebake/internal/testenv"
)

// TestKill9DuringPushes pushes images and referrers to a `prebake serve`
// process from two clients and SIGKILLs it at a different moment in each of
// many rounds (during blob uploads, manifest commits, referrers updates).
// After a restart every tag must resolve to a complete graph whose every
// blob verifies, and every push the server acknowledged must be there.
func TestKill9DuringPushes(t *testing.T) {
	bin := testenv.Prebake(t)
	root := t.TempDir()
	var mu sync.Mutex
	acked := map[string]v1.Hash{} // tag -> digest of every acknowledged push
	const rounds = 24
	for round := range rounds {
		p := testenv.Serve(t, bin, "--root", root)
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan struct{}) // closed by the round's first acknowledged push
		var firstOnce sync.Once
		var wg sync.WaitGroup
		for client := range 2 {
			wg.Go(func() {
				for k := 0; ctx.Err() == nil; k++ {
					img, err := randomImageErr(96<<10, 3)
					if err != nil {
						return
					}
					tag := fmt.Sprintf("r%02d-c%d-%03d", round, client, k)
					r, err := name.ParseReference(p.Addr+"/kill/repo:"+tag, name.Insecure)
					if err != nil {
						return
					}
					if remote.Write(r, img, noRetry(ctx)...) != nil {
						return
					}
					d, _ := img.Digest()
					mu.Lock()
					acked[tag] = d
					mu.Unlock()
					firstOnce.Do(func() { close(first) })
					// A referrer on every other image: referrers
					// responses are rewritten on each push.
					if k%2 == 0 {
						sbom := artifactErr(img, tag)
						if sbom == nil {
							return
						}
						sd, _ := sbom.Digest()
						rr, _ := name.ParseReference(p.Addr+"/kill/repo@"+sd.String(), name.Insecure)
						if remote.Write(rr, sbom, noRetry(ctx)...) != nil {
							return
						}
					}
				}
			})
		}
		// Kill 20 ms .. ~720 ms after the round's first acknowledged push
		// (so that a slow machine still exercises every round), a
		// different point of the push cycle each round.
		select {
		case <-first:
		case <-time.After(2 * time.Minute):
			t.Fatalf("round %d: no push acknowledged in 2 minutes; serve log:\n%s", round, p.Log())
		}
		time.Sleep(20*time.Millisecond + time.Duration(round*67%700)*time.Millisecond)
		if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.Cmd.Wait()
		cancel()
		wg.Wait()
	}
	if len(acked) < rounds {
		t.Fatalf("only %d pushes were acknowledged in %d rounds; the test did not exercise much", len(acked), rounds)
	}
	t.Logf("%d pushes acknowledged over %d kills", len(acked), rounds)

	// On disk, without any server: every tag names a complete, verified graph.
	onDisk := verifyRoot(t, root)["kill/repo"]
	for tag, d := range acked {
		if onDisk[tag] != d.String() {
			t.Errorf("acknowledged push %s = %s lost (on disk: %q)", tag, d, onDisk[tag])
		}
	}
	// Through a restarted server, with ggcr verifying every blob.
	p := testenv.Serve(t, bin, "--root", root)
	for tag := range onDisk {
		verifyTag(t, must(name.ParseReference(p.Addr+"/kill/repo:"+tag, name.Insecure)))
	}
	// The store is still writable, and gc (another process, no grace:
	// nothing pushes now) keeps every tag intact.
	img := randomImage(t, 1024, 1)
	if err := remote.Write(must(name.ParseReference(p.Addr+"/kill/repo:after", name.Insecure)), img); err != nil {
		t.Fatalf("push after the kills: %v", err)
	}
	out, err := exec.Command(bin, "gc", "--root", root, "--grace", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("prebake gc: %v\n%s", err, out)
	}
	t.Logf("gc: %s", lastLine(out))
	onDisk = verifyRoot(t, root)["kill/repo"]
	if len(onDisk) < len(acked)+1 {
		t.Errorf("after gc %d tags, want at least %d", len(onDisk), len(acked)+1)
	}
	for tag := range onDisk {
		verifyTag(t, must(name.ParseReference(p.Addr+"/kill/repo:"+tag, name.Insecure)))
	}
}

// noRetry: a killed server is not coming back, don't wait for it.
func noRetry(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func lastLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
