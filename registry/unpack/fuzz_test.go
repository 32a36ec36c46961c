package unpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzUnpack applies arbitrary bytes as an image layer (tar, gzip or zstd
// as a registry may serve it): no panic, and nothing is written outside the
// target directory.
func FuzzUnpack(f *testing.F) {
	tarOf := func(hs ...tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range hs {
			h.Size = int64(len(h.Name))
			if h.Typeflag != tar.TypeReg {
				h.Size = 0
			}
			tw.WriteHeader(&h)
			if h.Size > 0 {
				tw.Write([]byte(h.Name))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	for _, l := range [][]byte{
		tarOf(tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644}),
		tarOf(tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}),
		tarOf(tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, tar.Header{Name: "l/passwd", Typeflag: tar.TypeReg, Mode: 0o644}),
		tarOf(tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}),
		tarOf(tar.Header{Name: "a/.wh..wh..opq", Typeflag: tar.TypeReg}, tar.Header{Name: ".wh.a", Typeflag: tar.TypeReg}),
	} {
		f.Add(l, false)
		f.Add(gz(l), true)
	}
	f.Fuzz(func(t *testing.T, layer []byte, compressed bool) {
		mt := types.OCIUncompressedLayer
		if compressed {
			mt = types.OCILayer
		}
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer(layer, mt))
		if err != nil {
			return
		}
		top := t.TempDir()
		out := filepath.Join(top, "root")
		_ = Unpack(context.Background(), img, out, Options{})
		ents, _ := os.ReadDir(top)
		for _, e := range ents {
			if e.Name() != "root" {
				t.Fatalf("left %s next to the target", e.Name())
			}
		}
	})
}
