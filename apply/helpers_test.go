package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// needRoot skips under -short; applying gives files owners, which needs
// root (required under CI).
func needRoot(t *testing.T) {
	t.Helper()
	testenv.Root(t, "apply writes real roots with their file owners")
}

// images are the quickstart recipe built at two Kubernetes patch releases
// from the stand-in binaries of testdata/mirror, in one OCI layout, signed
// with a fresh key.
type images struct {
	old, new registry.Reference // by digest
	pub      string
	unsigned registry.Reference
}

var built *images

func quickstartImages(t *testing.T) *images {
	t.Helper()
	if built != nil {
		return built
	}
	dir, err := os.MkdirTemp("", "prebake-apply-images-")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("../testdata/mirror")
	if err != nil {
		t.Fatal(err)
	}
	f, err := fetch.New(fetch.WithCacheDir(filepath.Join(dir, "cache")), fetch.WithMirrors(
		fetch.Mirror{From: "https://dl.k8s.io/", To: "file://" + abs + "/dl.k8s.io/"},
		fetch.Mirror{From: "https://github.com/", To: "file://" + abs + "/github.com/"},
	))
	if err != nil {
		t.Fatal(err)
	}
	r, err := recipes.Load("../examples/quickstart/recipe.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := recipes.LoadLock(recipes.LockPath(r.File()), false)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := signing.GenerateKeyPair(signing.KeygenOptions{Prefix: filepath.Join(dir, "cosign")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	im := &images{pub: kp.PublicKey}
	for _, v := range []string{"1.36.4", "1.36.5", "unsigned"} {
		set := map[string]string{"kubernetes": v}
		if v == "unsigned" {
			set = nil
		}
		res, err := r.Resolve(recipes.ResolveOptions{Lock: lock, Set: set})
		if err != nil {
			t.Fatal(err)
		}
		if v == "unsigned" {
			res.Description = "unsigned copy"
		}
		b, err := builder.Build(ctx, res, builder.Options{Fetcher: f, CacheDir: filepath.Join(dir, "layers")})
		if err != nil {
			t.Fatal(err)
		}
		dst := registry.Reference{Transport: registry.TransportLayout, Dir: filepath.Join(dir, "oci"), Tag: v}
		d, err := registry.Write(ctx, dst, b.Index, nil, registry.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ref := registry.Reference{Transport: registry.TransportLayout, Dir: dst.Dir, Digest: d.Digest.String()}
		switch v {
		case "1.36.4":
			im.old = ref
		case "1.36.5":
			im.new = ref
		default:
			im.unsigned = ref
			continue
		}
		if _, err := signing.Sign(ctx, ref, signing.SignOptions{KeyOptions: signing.KeyOptions{Key: kp.PrivateKey}}); err != nil {
			t.Fatal(err)
		}
	}
	built = im
	return im
}

func TestMain(m *testing.M) {
	if os.Getenv("PREBAKE_APPLY_CRASH_AT") != "" {
		crashChild()
		return
	}
	code := m.Run()
	if built != nil {
		os.RemoveAll(built.old.Dir)
		os.RemoveAll(filepath.Dir(built.pub))
	}
	os.Exit(code)
}

// debianRoot extracts the real Debian 12 root of hack/debroot.sh
// (mmdebstrap, cached) into a fresh directory.
func debianRoot(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("../hack/debroot.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/debroot.sh: %v", err)
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", strings.TrimSpace(string(out)), "-C", root, "--numeric-owner", "--same-owner", "-p").CombinedOutput(); err != nil {
		t.Fatalf("extracting the Debian root: %v: %s", err, out)
	}
	return root
}

// snapshot describes every entry under root but apply's own state files:
// type, mode, owner, content digest or link target.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch rel {
		case StateDir + "/store", StateDir + "/objects":
			return filepath.SkipDir
		case StateDir + "/applied.json", StateDir + "/applied.previous.json", StateDir + "/journal.json":
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("%o %d:%d", st.Mode, st.Uid, st.Gid)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(s[:8])
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// changed lists the paths whose description differs between a and b.
func changed(a, b map[string]string) []string {
	var out []string
	for p, d := range a {
		if b[p] != d {
			out = append(out, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

type entry = testenv.TarEntry

func tarLayer(t *testing.T, component string, entries ...entry) (v1.Layer, string) {
	t.Helper()
	return testenv.Layer(t, entries...), component
}

// smallImage writes an image of component layers to a layout and returns
// its reference by digest.
func smallImage(t *testing.T, dir string, layers ...func() (v1.Layer, string)) registry.Reference {
	t.Helper()
	img := empty.Image
	for _, f := range layers {
		l, c := f()
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, Annotations: map[string]string{recipes.AnnotationComponent: c}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	d, err := registry.Write(context.Background(), registry.Reference{Transport: registry.TransportLayout, Dir: dir, Tag: fmt.Sprint(time.Now().UnixNano())}, img, nil, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return registry.Reference{Transport: registry.TransportLayout, Dir: dir, Digest: d.Digest.String()}
}
