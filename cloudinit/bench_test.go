package cloudinit

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// fleetSpec is a NodeConfigList of n workers.
func fleetSpec(n int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: prebake.dev/v1alpha1
kind: NodeConfigList
cluster:
  apiServerEndpoint: api.prod.example.com:6443
  caCertFile: ca.crt
  bootstrapToken: abcdef.0123456789abcdef
sshAuthorizedKeys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMaxYt27zxDbIitzjhOM2xTT3CLXgaksiP2BsG0N1q+ ops@example.com
nodes:
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: worker-%05d\n    labels: {node.kubernetes.io/pool: pool-%d, topology.kubernetes.io/zone: zone-%d}\n", i, i%10, i%3)
	}
	return b.String()
}

func loadFleet(b *testing.B, n int) []*NodeConfig {
	b.Helper()
	dir := b.TempDir()
	writeFile(b, dir, "ca.crt", mustRead(b, "testdata/ca.crt"))
	specs, err := Load(writeFile(b, dir, "fleet.yaml", []byte(fleetSpec(n))))
	if err != nil {
		b.Fatal(err)
	}
	if len(specs) != n {
		b.Fatalf("loaded %d specs, want %d", len(specs), n)
	}
	return specs
}

// BenchmarkRender10000Workers renders the user-data of a 10,000-worker fleet
// (one op = all 10,000 documents). Target: under 1 s per op on the project's
// 2-core machine. Results are recorded in docs/render.md.
func BenchmarkRender10000Workers(b *testing.B) {
	for _, format := range Formats {
		b.Run(string(format), func(b *testing.B) {
			specs := loadFleet(b, 10000)
			opts := Options{KubernetesVersion: "1.36.4", Format: format}
			var total int
			for b.Loop() {
				docs, err := RenderAll(specs, opts)
				if err != nil {
					b.Fatal(err)
				}
				total = 0
				for _, d := range docs {
					total += len(d)
				}
			}
			b.ReportMetric(float64(total)/10000, "bytes/doc")
		})
	}
}

// BenchmarkLoad10000Workers parses and validates the 10,000-node list.
func BenchmarkLoad10000Workers(b *testing.B) {
	dir := b.TempDir()
	writeFile(b, dir, "ca.crt", mustRead(b, "testdata/ca.crt"))
	p := writeFile(b, dir, "fleet.yaml", []byte(fleetSpec(10000)))
	for b.Loop() {
		if _, err := Load(filepath.Clean(p)); err != nil {
			b.Fatal(err)
		}
	}
}
