package server

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prebake/prebake/internal/testenv"
)

// TestLargeBlobMemoryBounded streams a 512 MiB blob up (one PATCH) and back
// down while sampling the heap: client and server share this process, so
// the peak bounds both. The server must never hold a blob in memory.
func TestLargeBlobMemoryBounded(t *testing.T) {
	testenv.Short(t, "moves 1 GiB through the registry")
	const size = 512 << 20
	const limit = 64 << 20 // an eighth of the blob: any whole-blob buffer blows it
	_, host := start(t, t.TempDir())
	base := "http://" + host + "/v2/big/blob"

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	resp, err := http.Post(base+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + host + loc
	}
	up := sha256.New()
	body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), up)
	req, _ := http.NewRequest(http.MethodPatch, loc, body) // no length: chunked, streamed
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	dig := "sha256:" + hex.EncodeToString(up.Sum(nil))
	loc = resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + host + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ = http.NewRequest(http.MethodPut, loc+sep+"digest="+dig, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}

	resp, err = http.Get(base + "/blobs/" + dig)
	if err != nil {
		t.Fatal(err)
	}
	down := sha256.New()
	n, err := io.Copy(down, resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if got := "sha256:" + hex.EncodeToString(down.Sum(nil)); got != dig || n != size {
		t.Errorf("downloaded %d bytes %s, want %d bytes %s", n, got, size, dig)
	}
	t.Logf("peak heap in use: %d MiB for a %d MiB blob", peak.Load()>>20, size>>20)
	if peak.Load() > limit {
		t.Errorf("peak heap in use %d MiB > %d MiB: a blob is being buffered", peak.Load()>>20, limit>>20)
	}
}
