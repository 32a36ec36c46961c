package cloudinit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the spec parser and renders whatever it
// accepts: neither may panic, and every reported problem wraps a sentinel.
// `go test` runs the seed corpus; `go test -fuzz FuzzParse` explores.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		baseSpec,
		"",
		"---\n---\n",
		"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfigList\nnodes: []\n",
		"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfigList\ncluster: &c {apiServerEndpoint: a:1}\nnodes: [{name: a}, {name: b, labels: *c}]\n",
		"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\nnode: &n {name: x}\ncluster: *n\n",
		"a: &a [*a]\n",
		"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\n? [a]\n: b\n",
		"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\nnode:\n  maxPods: 99999999999999999999\n  bindPort: -1\n",
		"apiVersion: prebake.dev/v1alpha1\nkind: NodeConfig\ncluster:\n  discoveryTimeout: -5m\n",
		"apiVersion: !!binary aGk=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := Parse("fuzz.yaml", data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || len(se.Problems) == 0 {
				t.Fatalf("Parse error %T %v is not a SpecError with problems", err, err)
			}
			for _, p := range se.Problems {
				if p.Err == nil {
					t.Fatalf("problem without a sentinel: %+v", p)
				}
				_ = p.Error()
			}
			return
		}
		for _, nc := range specs {
			for _, format := range Formats {
				_, _ = Render(nc, Options{KubernetesVersion: "1.36.4", Format: format})
			}
		}
	})
}
