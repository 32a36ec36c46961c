package registry

import (
	"archive/tar"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/prebake/prebake/internal/testenv"
)

// tamperer serves a registry but flips one byte of the response body of
// every GET whose path ends in suffix.
type tamperer struct {
	target http.Handler
	suffix string
}

func (t *tamperer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || t.suffix == "" || !strings.HasSuffix(r.URL.Path, t.suffix) {
		t.target.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	t.target.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if len(body) > 0 {
		body[len(body)/2] ^= 0xff
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(body)
}

type tarEntry = testenv.TarEntry

// tarLayer is an OCI gzip layer of the given entries.
func tarLayer(t *testing.T, entries ...tarEntry) v1.Layer { return testenv.Layer(t, entries...) }

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(ociImage(t, 0, 0), layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPullUnpacksWithWhiteouts(t *testing.T) {
	ctx := ctxT(t)
	img := imageOf(t,
		tarLayer(t,
			tarEntry{Name: "etc/", Type: tar.TypeDir},
			tarEntry{Name: "etc/a", Body: "a1"},
			tarEntry{Name: "etc/gone", Body: "x"},
			tarEntry{Name: "opt/old/", Type: tar.TypeDir},
			tarEntry{Name: "opt/old/file", Body: "old"},
			tarEntry{Name: "usr/bin/tool", Body: "#!/bin/sh\n", Mode: 0o755},
			tarEntry{Name: "bin", Type: tar.TypeSymlink, Link: "usr/bin"},
		),
		tarLayer(t,
			tarEntry{Name: "etc/a", Body: "a2"},
			tarEntry{Name: "etc/.wh.gone"},
			tarEntry{Name: "opt/old/.wh..wh..opq"},
			tarEntry{Name: "opt/old/new", Body: "new"},
			tarEntry{Name: "bin/viasymlink", Body: "inside"},
			tarEntry{Name: "hard", Type: tar.TypeLink, Link: "etc/a"},
		),
	)
	ref := MustParse(ggcrHost(t) + "/nodes/a:v1")
	if _, err := Push(ctx, ref, img, nil, insecure()); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rootfs")
	var resolved v1.Descriptor
	o := PullOptions{Options: insecure(), Resolved: func(d v1.Descriptor) { resolved = d }}
	res, err := Pull(ctx, ref, out, o)
	if err != nil {
		t.Fatal(err)
	}
	if resolved.Digest.String() != digestOf(t, img) || res.Image.Digest != resolved.Digest {
		t.Fatalf("resolved %s, image %s, want %s", resolved.Digest, res.Image.Digest, digestOf(t, img))
	}
	want := map[string]string{"etc/a": "a2", "opt/old/new": "new", "usr/bin/tool": "#!/bin/sh\n", "usr/bin/viasymlink": "inside", "hard": "a2"}
	for p, body := range want {
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", p, b, err, body)
		}
	}
	for _, p := range []string{"etc/gone", "opt/old/file"} {
		if _, err := os.Lstat(filepath.Join(out, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived its whiteout: %v", p, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, "usr/bin/tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("tool mode: %v %v", fi, err)
	}
	assertOnly(t, filepath.Dir(out), "rootfs")
}

// assertOnly checks dir holds exactly names (no staging leftovers).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

func TestUnpackRefusesEscapes(t *testing.T) {
	cases := map[string][]tarEntry{
		"dotdot":           {{Name: "../escape", Body: "x"}},
		"nested dotdot":    {{Name: "a/../../escape", Body: "x"}},
		"absolute symlink": {{Name: "etc", Type: tar.TypeSymlink, Link: "/etc"}, {Name: "etc/passwd", Body: "x"}},
		"relative symlink": {{Name: "up", Type: tar.TypeSymlink, Link: "../../.."}, {Name: "up/escape", Body: "x"}},
		"hardlink out":     {{Name: "h", Type: tar.TypeLink, Link: "../../etc/passwd"}},
		"device":           {{Name: "dev/sda", Type: tar.TypeBlock}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "rootfs")
			err := Unpack(ctxT(t), imageOf(t, tarLayer(t, entries...)), out, UnpackOptions{})
			t.Log(err)
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			assertOnly(t, parent)
			if _, err := os.Lstat(filepath.Join(filepath.Dir(parent), "escape")); err == nil {
				t.Fatal("escape was written")
			}
		})
	}
}

func TestPullTampered(t *testing.T) {
	ctx := ctxT(t)
	img := imageOf(t, tarLayer(t, tarEntry{Name: "f", Body: strings.Repeat("x", 4096)}))
	sbom := sbomFor(t, img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	md := digestOf(t, img)
	for _, tc := range []struct {
		name, suffix, expected string
	}{
		{"blob", "/blobs/" + ld.String(), ld.String()},
		{"manifest", "/manifests/" + md, md},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := &tamperer{target: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
			ref := MustParse(testHost(t, tp) + "/nodes/a:v1")
			if _, err := Push(ctx, ref, img, []Artifact{sbom}, insecure()); err != nil {
				t.Fatal(err)
			}
			tp.suffix = tc.suffix
			for _, out := range []string{"rootfs", "oci:layout"} {
				parent := t.TempDir()
				dst := filepath.Join(parent, strings.TrimPrefix(out, "oci:"))
				if strings.HasPrefix(out, "oci:") {
					dst = "oci:" + dst
				}
				_, err := Pull(ctx, ref.WithDigest(md), dst, PullOptions{Options: insecure()})
				var de *DigestError
				if !errors.As(err, &de) || !errors.Is(err, ErrDigestMismatch) {
					t.Fatalf("pull to %s: err = %v, want a DigestError", out, err)
				}
				t.Logf("pull to %s: %v", out, err)
				if de.Expected != tc.expected || de.Actual == tc.expected || !strings.Contains(err.Error(), "expected "+tc.expected) {
					t.Fatalf("pull to %s: %v", out, err)
				}
				assertOnly(t, parent)
			}
		})
	}
}

func TestPullRequireDigestAndRevoked(t *testing.T) {
	ctx := ctxT(t)
	img := imageOf(t, tarLayer(t, tarEntry{Name: "f", Body: "x"}))
	for name, host := range map[string]string{"api": olaregHost(t), "fallback": ggcrHost(t)} {
		t.Run(name, func(t *testing.T) {
			ref := MustParse(host + "/nodes/a:v1")
			if _, err := Push(ctx, ref, img, nil, insecure()); err != nil {
				t.Fatal(err)
			}
			_, err := Pull(ctx, ref, filepath.Join(t.TempDir(), "o"), PullOptions{Options: insecure(), RequireDigest: true})
			if !errors.Is(err, ErrDigestRequired) {
				t.Fatalf("tag pull with RequireDigest: %v", err)
			}
			byDigest := ref.WithDigest(digestOf(t, img))
			rev, err := Revoke(ctx, byDigest, RevokeOptions{Options: insecure(), Reason: "CVE-2099-0001", By: "test"})
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			_, err = Pull(ctx, byDigest, filepath.Join(parent, "o"), PullOptions{Options: insecure(), RequireDigest: true})
			var re *RevokedError
			if !errors.Is(err, ErrRevoked) || !errors.As(err, &re) || re.Revocations[0].Reason != "CVE-2099-0001" || re.Revocations[0].Record != rev.Record {
				t.Fatalf("revoked pull: %v", err)
			}
			assertOnly(t, parent)
			if _, err := Pull(ctx, byDigest, "oci:"+filepath.Join(parent, "o"), PullOptions{Options: insecure(), AllowRevoked: true}); err != nil {
				t.Fatalf("pull with AllowRevoked: %v", err)
			}
			// The revocation travels with the image.
			revs, err := Revocations(ctx, MustParse("oci:"+filepath.Join(parent, "o")+"@"+byDigest.Digest), Options{})
			if err != nil || len(revs) != 1 {
				t.Fatalf("revocations in the pulled layout: %v %v", revs, err)
			}
		})
	}
}

func TestPullIndexPlatform(t *testing.T) {
	ctx := ctxT(t)
	idx := ociIndex(t)
	ref := MustParse(olaregHost(t) + "/nodes/a:v1")
	if _, err := Push(ctx, ref, idx, nil, insecure()); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	res, err := Pull(ctx, ref, filepath.Join(t.TempDir(), "o"), PullOptions{Options: insecure(), Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image.Digest != im.Manifests[1].Digest {
		t.Fatalf("unpacked %s, want the arm64 image %s", res.Image.Digest, im.Manifests[1].Digest)
	}
	_, err = Pull(ctx, ref, filepath.Join(t.TempDir(), "o"), PullOptions{Options: insecure(), Platform: "linux/s390x"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing platform: %v", err)
	}
	// Into an existing layout: merged, with both tags.
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := Pull(ctx, ref, "oci:"+dir+":one", PullOptions{Options: insecure()}); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, ref, "oci:"+dir+":two", PullOptions{Options: insecure()}); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"one", "two"} {
		_, d, err := Get(ctx, MustParse("oci:"+dir+":"+tag), Options{})
		if err != nil || d.Digest.String() != digestOf(t, idx) {
			t.Fatalf("%s: %v %v", tag, d.Digest, err)
		}
	}
	assertOnly(t, filepath.Dir(dir), "layout")
}
