package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkExtract measures extraction of 32 MiB of binary-like content
// (half random, half zeros per file) in 64 files, per format.
func BenchmarkExtract(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ents []ent
	var total int64
	for i := range 64 {
		half := make([]byte, 256<<10)
		for j := range half {
			half[j] = byte(rng.Uint32())
		}
		ents = append(ents, ent{name: fmt.Sprintf("bin/f%02d", i), typ: 0, mode: 0o755, body: string(half), zeros: 256 << 10})
		total += 512 << 10
	}
	for _, f := range []Format{Tar, TarGz, TarZst, Zip} {
		b.Run(string(f), func(b *testing.B) {
			src := write(b, f, ents)
			dir := b.TempDir()
			b.SetBytes(total)
			b.ResetTimer()
			for i := range b.N {
				root := filepath.Join(dir, fmt.Sprint(i))
				if _, err := Extract(context.Background(), src, f, []Rule{{"bin/*", "/usr/bin/"}}, root, Limits{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(root)
				b.StartTimer()
			}
		})
	}
}
