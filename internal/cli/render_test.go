package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/cloudinit"
	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/server"
)

const cloudinitTestdata = "../../cloudinit/testdata"

func TestRenderMatchesLibraryGolden(t *testing.T) {
	out, stderr, err := runPrebake(t, "render", filepath.Join(cloudinitTestdata, "worker.yaml"), "--kubernetes", "1.36.4")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(cloudinitTestdata, "golden", "worker-1.36-cloud-config.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("CLI output differs from the library golden file")
	}
	if !strings.Contains(stderr, "worker-1: ") || !strings.Contains(stderr, " bytes cloud-config") {
		t.Errorf("size not reported: %q", stderr)
	}
}

// annotatedLayout writes an image with prebake's annotations to an OCI
// layout and returns its oci:DIR@DIGEST reference.
func annotatedLayout(t *testing.T, ann map[string]string) string {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	l, err := random.Layer(512, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, ann).(v1.Image)
	dir := filepath.Join(t.TempDir(), "layout")
	d, err := registry.Write(t.Context(), registry.MustParse("oci:"+dir+":node"), img, nil, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + "@" + d.Digest.String()
}

func TestRenderFromImageAnnotations(t *testing.T) {
	ref := annotatedLayout(t, map[string]string{
		recipes.AnnotationKubernetesVersion: "1.30.2",
		recipes.AnnotationJoinUnit:          "prebake-join.path",
	})
	out, _, err := runPrebake(t, "render", filepath.Join(cloudinitTestdata, "worker.yaml"), "--image", ref)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(cloudinitTestdata, "golden", "worker-1.30-cloud-config-joinunit.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("--image output differs from worker-1.30-cloud-config-joinunit.golden:\n%s", out)
	}
	// The spec's own image field works the same way.
	dir := t.TempDir()
	for _, name := range []string{"ca.crt", "registry-mirror.toml"} {
		b, err := os.ReadFile(filepath.Join(cloudinitTestdata, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := os.ReadFile(filepath.Join(cloudinitTestdata, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	withImage := strings.Replace(string(spec), "image: registry.example.com/nodes/kubernetes-node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image: "+ref, 1)
	if withImage == string(spec) {
		t.Fatal("fixture has no image line to replace")
	}
	if err := os.WriteFile(filepath.Join(dir, "worker.yaml"), []byte(withImage), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runPrebake(t, "render", filepath.Join(dir, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("spec image: output differs from worker-1.30-cloud-config-joinunit.golden")
	}
	// A tag is not enough: the nodes boot a digest.
	_, _, err = runPrebake(t, "render", filepath.Join(cloudinitTestdata, "worker.yaml"), "--image", strings.Split(ref, "@")[0]+":node")
	if !errors.Is(err, registry.ErrDigestRequired) {
		t.Errorf("tag reference: got %v, want ErrDigestRequired", err)
	}
	// An image without the version annotation asks for --kubernetes.
	bare := annotatedLayout(t, map[string]string{"org.opencontainers.image.title": "x"})
	_, _, err = runPrebake(t, "render", filepath.Join(cloudinitTestdata, "worker.yaml"), "--image", bare)
	if err == nil || !strings.Contains(err.Error(), "--kubernetes") {
		t.Errorf("unannotated image: %v", err)
	}
}

func TestRenderFleetToDirectory(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, err := runPrebake(t, "render", filepath.Join(cloudinitTestdata, "fleet.yaml"), "--kubernetes", "1.36.4", "--format", "ignition", "--gzip", "--max-size", "aws", "-o", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"pool-a-1", "pool-a-2", "pool-b-1"} {
		p := filepath.Join(out, n+".ign.gz")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 600 (user-data holds the token)", p, fi.Mode().Perm())
		}
		if !strings.Contains(stderr, n+": ") {
			t.Errorf("no size report for %s: %q", n, stderr)
		}
	}
	// Same input, same bytes.
	out2 := filepath.Join(t.TempDir(), "out")
	if _, _, err := runPrebake(t, "render", filepath.Join(cloudinitTestdata, "fleet.yaml"), "--kubernetes", "1.36.4", "--format", "ignition", "--gzip", "-o", out2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(out, "pool-a-1.ign.gz"))
	b, _ := os.ReadFile(filepath.Join(out2, "pool-a-1.ign.gz"))
	if !bytes.Equal(a, b) {
		t.Error("two renders of the same fleet differ")
	}
}

func TestRenderBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(filepath.Join(cloudinitTestdata, "fleet.yaml"))
	ca, _ := os.ReadFile(filepath.Join(cloudinitTestdata, "ca.crt"))
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "  - name: pool-b-1\n", "  - name: pool-b-1\n    role: boss\n", 1)
	spec := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(spec, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	_, _, err := runPrebake(t, "render", spec, "--kubernetes", "1.36.4", "-o", out)
	if !errors.Is(err, cloudinit.ErrUnknownRole) || !strings.Contains(err.Error(), "fleet.yaml:16:") {
		t.Fatalf("got %v, want ErrUnknownRole at fleet.yaml:16", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output directory created for a failed render: %v", err)
	}
	// Over the size limit: refused with a hint, nothing written.
	file := filepath.Join(dir, "node.yaml")
	_, _, err = runPrebake(t, "render", filepath.Join(cloudinitTestdata, "worker.yaml"), "--kubernetes", "1.36.4", "--max-size", "1000", "-o", file)
	if !errors.Is(err, cloudinit.ErrTooLarge) || !strings.Contains(err.Error(), "--gzip") {
		t.Errorf("got %v, want ErrTooLarge with a --gzip hint", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("output written for a failed render")
	}
	for _, args := range [][]string{
		{filepath.Join(cloudinitTestdata, "worker.yaml")},                                              // no version
		{filepath.Join(cloudinitTestdata, "worker.yaml"), "--kubernetes", "1.36"},                      // bad version
		{filepath.Join(cloudinitTestdata, "worker.yaml"), "--kubernetes", "1.36.4", "--format", "xml"}, // bad format
		{filepath.Join(cloudinitTestdata, "fleet.yaml"), "--kubernetes", "1.36.4"},                     // fleet to stdout
		{filepath.Join(cloudinitTestdata, "worker.yaml"), "--kubernetes", "1.36.4", "--bootstrap-url", "http://x/bootstrap"},
	} {
		if out, _, err := runPrebake(t, append([]string{"render"}, args...)...); err == nil || out != "" {
			t.Errorf("%v: err %v, output %d bytes", args, err, len(out))
		}
	}
}

// TestRenderBootstrapEndToEnd renders fetch-only user-data, serves the
// bootstrap directory with the real handler, and lets cloud-init's own
// UserDataProcessor follow the #include: it must get exactly the full
// document, once.
func TestRenderBootstrapEndToEnd(t *testing.T) {
	bdir := filepath.Join(t.TempDir(), "bootstrap")
	h, err := server.NewBootstrapHandler(bdir)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/bootstrap/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	spec := filepath.Join(cloudinitTestdata, "worker.yaml")
	full, _, err := runPrebake(t, "render", spec, "--kubernetes", "1.36.4")
	if err != nil {
		t.Fatal(err)
	}
	stub, _, err := runPrebake(t, "render", spec, "--kubernetes", "1.36.4", "--bootstrap-url", srv.URL+"/bootstrap", "--bootstrap-dir", bdir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stub, "abcdef.0123456789abcdef") || !strings.HasPrefix(stub, "#include\n"+srv.URL+"/bootstrap/") {
		t.Fatalf("stub user-data:\n%s", stub)
	}
	url := strings.TrimSpace(strings.TrimPrefix(stub, "#include\n"))

	if testing.Short() {
		// Without cloud-init: fetch directly.
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != full {
			t.Fatalf("fetched document differs from the full render")
		}
	} else {
		testenv.Tool(t, "cloud-init")
		script := `
import json, sys
from cloudinit import helpers
from cloudinit.user_data import UserDataProcessor
msg = UserDataProcessor(helpers.Paths({})).process(open(sys.argv[1], "rb").read())
json.dump([p.get_payload(decode=True).decode() for p in msg.walk() if p.get_content_maintype() != "multipart"], sys.stdout)
`
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "ud.py"), []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "user-data"), []byte(stub), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/usr/bin/python3", filepath.Join(dir, "ud.py"), filepath.Join(dir, "user-data"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("UserDataProcessor: %v\n%s", err, stderr.String())
		}
		var parts []string
		if err := json.Unmarshal(out, &parts); err != nil {
			t.Fatal(err)
		}
		if len(parts) != 1 || parts[0] != full {
			t.Fatalf("cloud-init got %d parts; want the full document once", len(parts))
		}
	}
	// The token is spent.
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second fetch: %d, want 404", resp.StatusCode)
	}
}
