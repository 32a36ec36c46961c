package unpack

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func tarLayer(t *testing.T, names ...string) v1.Layer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		h := &tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}
		if n[len(n)-1] == '/' {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return static.NewLayer(b.Bytes(), types.OCIUncompressedLayer)
}

// Stage plans whiteouts for a live root: an opaque directory removes only
// what the image's earlier layers wrote there, a .wh. entry its name.
func TestStageWhiteouts(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image,
		tarLayer(t, "a/", "a/x", "a/y", "b"),
		tarLayer(t, "a/", "a/.wh..wh..opq", "a/z", ".wh.b"),
		tarLayer(t, "c/.wh.machine-file"),
	)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := Stage(t.Context(), img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 {
		t.Fatalf("%d layers staged, want 3", len(ls))
	}
	for i, want := range [][]string{nil, {"a/x", "a/y", "b"}, {"c/machine-file"}} {
		if !slices.Equal(ls[i].Whiteouts, want) {
			t.Errorf("layer %d whiteouts %q, want %q", i+1, ls[i].Whiteouts, want)
		}
		if fi, err := os.Stat(ls[i].File); err != nil || fi.Size() != ls[i].Descriptor.Size {
			t.Errorf("layer %d file: %v", i+1, err)
		}
	}
}

// An entry that leaves the root fails the staging with ErrUnsafePath.
func TestStageRefusesEscape(t *testing.T) {
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, "../evil"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Stage(t.Context(), img, t.TempDir()); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("err = %v, want ErrUnsafePath", err)
	}
}
