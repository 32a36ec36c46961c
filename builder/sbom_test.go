package builder_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/internal/testenv"
)

// sbomBody is the one blob of an SBOM artifact.
func sbomBody(t *testing.T, art v1.Image) []byte {
	t.Helper()
	ls, err := art.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("SBOM artifact: %d layers, %v", len(ls), err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The identifiers scanners match on, per source of the quickstart (amd64):
// Go module package URLs for the known upstreams, CPEs where NVD names the
// product.
var wantIDs = map[string][2]string{
	"kubelet":     {"pkg:golang/k8s.io/kubernetes@v1.36.4", "cpe:2.3:a:kubernetes:kubernetes:1.36.4:*:*:*:*:*:*:*"},
	"containerd":  {"pkg:golang/github.com/containerd/containerd/v2@v2.3.4", "cpe:2.3:a:linuxfoundation:containerd:2.3.4:*:*:*:*:*:*:*"},
	"runc":        {"pkg:golang/github.com/opencontainers/runc@v1.4.3", "cpe:2.3:a:linuxfoundation:runc:1.4.3:*:*:*:*:*:*:*"},
	"cni-plugins": {"pkg:golang/github.com/containernetworking/plugins@v1.9.1", ""},
	"crictl":      {"pkg:golang/sigs.k8s.io/cri-tools@v1.36.0", ""},
}

// Every source in both SBOMs (SPDX 2.3 and CycloneDX 1.5) has a package URL,
// and the known upstreams have their module purl and CPE; the image digest
// does not depend on them (the SBOMs are referrers).
func TestSBOMIdentifiers(t *testing.T) {
	r := build(t, quickstart(t, nil), t.TempDir(), builder.Options{})
	var spdx struct {
		Packages []struct {
			Name         string
			VersionInfo  string
			ExternalRefs []struct{ ReferenceType, ReferenceLocator string }
		}
	}
	if err := json.Unmarshal(sbomBody(t, r.SBOM), &spdx); err != nil {
		t.Fatal(err)
	}
	spdxIDs := map[string][2]string{}
	for _, p := range spdx.Packages {
		var id [2]string
		for _, e := range p.ExternalRefs {
			switch e.ReferenceType {
			case "purl":
				id[0] = e.ReferenceLocator
			case "cpe23Type":
				id[1] = e.ReferenceLocator
			}
		}
		if id[0] == "" {
			t.Errorf("SPDX package %s has no purl", p.Name)
		}
		if _, ok := spdxIDs[p.Name]; !ok {
			spdxIDs[p.Name] = id
		}
	}
	var cdx struct {
		BOMFormat, SpecVersion string
		Components             []struct{ Name, Version, PURL, CPE string }
	}
	if err := json.Unmarshal(sbomBody(t, r.CycloneDX), &cdx); err != nil {
		t.Fatal(err)
	}
	if cdx.BOMFormat != "CycloneDX" || cdx.SpecVersion != "1.5" || len(cdx.Components) != len(spdx.Packages)-1 {
		t.Errorf("CycloneDX %s %s with %d components, SPDX has %d packages", cdx.BOMFormat, cdx.SpecVersion, len(cdx.Components), len(spdx.Packages))
	}
	cdxIDs := map[string][2]string{}
	for _, c := range cdx.Components {
		if _, ok := cdxIDs[c.Name]; !ok {
			cdxIDs[c.Name] = [2]string{c.PURL, c.CPE}
		}
	}
	for name, want := range wantIDs {
		if spdxIDs[name] != want {
			t.Errorf("SPDX %s: %q, want %q", name, spdxIDs[name], want)
		}
		if cdxIDs[name] != want {
			t.Errorf("CycloneDX %s: %q, want %q", name, cdxIDs[name], want)
		}
	}
	if got := spdxIDs["quickstart-node"][0]; !strings.HasPrefix(got, "pkg:oci/quickstart-node@sha256%3A") {
		t.Errorf("image purl %q", got)
	}
	syftReadsBack(t, "spdx.json", sbomBody(t, r.SBOM))
	syftReadsBack(t, "cdx.json", sbomBody(t, r.CycloneDX))
}

// syftReadsBack converts the SBOM with the real syft and checks that it
// found the package URLs and CPEs.
func syftReadsBack(t *testing.T, name string, body []byte) {
	t.Helper()
	syft := testenv.Tool(t, "syft")
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(syft, "convert", p, "-o", "syft-json")
	cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("syft convert %s: %v\n%s", name, err, out)
	}
	var doc struct {
		Artifacts []struct {
			Name string
			PURL string
			CPEs []json.RawMessage
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("syft convert %s: %v", name, err)
	}
	// Per name, the purl and every CPE syft read (it may add CPEs of its own).
	purls, cpes := map[string]string{}, map[string][]string{}
	for _, a := range doc.Artifacts {
		if _, ok := purls[a.Name]; !ok {
			purls[a.Name] = a.PURL
		}
		for _, c := range a.CPEs {
			var s string
			var o struct{ CPE string }
			if json.Unmarshal(c, &s) != nil {
				json.Unmarshal(c, &o)
				s = o.CPE
			}
			cpes[a.Name] = append(cpes[a.Name], s)
		}
	}
	for n, want := range wantIDs {
		if purls[n] != want[0] {
			t.Errorf("syft read %s: %s has purl %q, want %q", name, n, purls[n], want[0])
		}
		if want[1] != "" && !slices.Contains(cpes[n], want[1]) {
			t.Errorf("syft read %s: %s has CPEs %q, want %q among them", name, n, cpes[n], want[1])
		}
	}
}
