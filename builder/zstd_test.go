package builder

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// input is n bytes that compress like binaries do (repeats and noise).
func input(n int) []byte {
	r := rand.New(rand.NewSource(1))
	var b bytes.Buffer
	for b.Len() < n {
		if r.Intn(3) == 0 {
			fmt.Fprintf(&b, "symbol_%d_%d\n", r.Intn(5000), b.Len()%97)
		} else {
			w := make([]byte, 64)
			r.Read(w)
			b.Write(w)
		}
	}
	return b.Bytes()[:n]
}

func compress(t *testing.T, in []byte, chunks int) []byte {
	t.Helper()
	var out bytes.Buffer
	fw, err := newFrameWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	// Odd write sizes, as tar writes.
	for i := 0; i < len(in); {
		k := min(len(in)-i, len(in)/chunks+7)
		if _, err := fw.Write(in[i : i+k]); err != nil {
			t.Fatal(err)
		}
		i += k
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// A layer of several frames is the same bytes whatever GOMAXPROCS and the
// write sizes, and decompresses to its input with a standard decoder.
func TestFrameWriterDeterministic(t *testing.T) {
	in := input(3*zstdFrameSize + 12345)
	old := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(old)
	var sums []string
	for _, procs := range []int{1, 2, 4} {
		runtime.GOMAXPROCS(procs)
		for _, chunks := range []int{3, 1000} {
			out := compress(t, in, chunks)
			sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(out)))
			d, err := zstd.NewReader(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := got.ReadFrom(d); err != nil {
				t.Fatal(err)
			}
			d.Close()
			if !bytes.Equal(got.Bytes(), in) {
				t.Fatalf("GOMAXPROCS %d: decompressed %d bytes differ from the %d written", procs, got.Len(), len(in))
			}
		}
	}
	for _, s := range sums[1:] {
		if s != sums[0] {
			t.Fatalf("zstd output differs with GOMAXPROCS and write sizes: %v", sums)
		}
	}
	if out := compress(t, nil, 1); len(out) == 0 {
		t.Error("an empty input gave no frame")
	}
}
