package builder

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prebake/prebake/internal/lazyre"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/artifact"
)

// SBOM media and artifact types.
const (
	SBOMArtifactType      = "application/spdx+json"
	CycloneDXArtifactType = "application/vnd.cyclonedx+json"
)

// SPDX 2.3 document, as much of it as prebake fills in.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name                  string         `json:"name"`
	SPDXID                string         `json:"SPDXID"`
	VersionInfo           string         `json:"versionInfo,omitempty"`
	DownloadLocation      string         `json:"downloadLocation"`
	FilesAnalyzed         bool           `json:"filesAnalyzed"`
	Checksums             []spdxChecksum `json:"checksums,omitempty"`
	LicenseConcluded      string         `json:"licenseConcluded"`
	LicenseDeclared       string         `json:"licenseDeclared"`
	CopyrightText         string         `json:"copyrightText"`
	PrimaryPackagePurpose string         `json:"primaryPackagePurpose,omitempty"`
	Comment               string         `json:"comment,omitempty"`
	ExternalRefs          []spdxRef      `json:"externalRefs,omitempty"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxIDUnsafe = lazyre.New(`[^A-Za-z0-9.-]+`)

// bomArtifact wraps the document doc returns (given the index digest and
// the creation time, SOURCE_DATE_EPOCH) as JSON in an OCI 1.1 artifact
// manifest of artifactType whose subject is the index: the SPDX and
// CycloneDX SBOMs of the same packages.
func (b *build) bomArtifact(idx v1.ImageIndex, artifactType string, doc func(idx v1.Hash, created string) any) (v1.Image, error) {
	idxDigest, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	created := time.Unix(b.res.Epoch, 0).UTC().Format(time.RFC3339)
	body, err := json.MarshalIndent(doc(idxDigest, created), "", "  ")
	if err != nil {
		return nil, err
	}
	idxManifest, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	return Artifact(artifactType, body, map[string]string{"org.opencontainers.image.created": created},
		&v1.Descriptor{MediaType: types.OCIImageIndex, Digest: idxDigest, Size: int64(len(idxManifest))})
}

// sbom is the SPDX SBOM of the resolved components (bomArtifact).
func (b *build) sbom(idx v1.ImageIndex) (v1.Image, error) {
	return b.bomArtifact(idx, SBOMArtifactType, b.spdx)
}

// spdx is the SPDX document of the resolved components.
func (b *build) spdx(idxDigest v1.Hash, created string) any {
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              b.res.Name + "-" + b.res.Version,
		DocumentNamespace: fmt.Sprintf("https://prebake.dev/spdx/%s/%s/%s", b.res.Name, b.res.Version, idxDigest.Hex),
		CreationInfo:      spdxCreationInfo{Created: created, Creators: []string{"Tool: prebake"}},
	}
	imageID := "SPDXRef-Image"
	doc.Packages = append(doc.Packages, spdxPackage{
		Name: b.res.Name, SPDXID: imageID, VersionInfo: b.res.Version,
		DownloadLocation: "NOASSERTION", LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
		PrimaryPackagePurpose: "CONTAINER",
		Checksums:             []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: idxDigest.Hex}},
		ExternalRefs:          spdxRefs(imagePURL(b.res.Name, b.res.Version, idxDigest.String()), ""),
	})
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", imageID})
	for _, p := range b.packages() {
		purpose, loc := "APPLICATION", p.URL
		if p.Image {
			purpose, loc = "CONTAINER", "NOASSERTION"
		}
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: p.Name, SPDXID: "SPDXRef-" + p.ID, VersionInfo: p.Version, DownloadLocation: loc,
			Checksums:        []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: p.SHA256}},
			LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
			PrimaryPackagePurpose: purpose,
			Comment:               p.Comment,
			ExternalRefs:          spdxRefs(p.PURL, p.CPE),
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{imageID, "CONTAINS", "SPDXRef-" + p.ID})
	}
	return doc
}

func spdxRefs(purl, cpe string) []spdxRef {
	var refs []spdxRef
	if purl != "" {
		refs = append(refs, spdxRef{"PACKAGE-MANAGER", "purl", purl})
	}
	if cpe != "" {
		refs = append(refs, spdxRef{"SECURITY", "cpe23Type", cpe})
	}
	return refs
}

// Artifact wraps one blob of mediaType artifactType in an OCI 1.1 artifact
// manifest (empty config) with the given annotations and subject.
func Artifact(artifactType string, body []byte, annotations map[string]string, subject *v1.Descriptor) (v1.Image, error) {
	empty := artifact.Empty
	raw, err := artifact.Manifest(artifactType, []v1.Descriptor{artifact.Descriptor(types.MediaType(artifactType), body)},
		artifact.Options{Subject: subject, Annotations: annotations, EmbedConfig: true})
	if err != nil {
		return nil, err
	}
	layer := &bytesLayer{data: body, mediaType: types.MediaType(artifactType)}
	return partial.CompressedToImage(&rawImage{
		manifest: raw, config: empty, mediaType: types.OCIManifestSchema1,
		layers: map[v1.Hash]partial.CompressedLayer{digestOf(body): layer},
	})
}

// sbomPackage is one source or pre-pulled image of the image, with the
// identifiers scanners match on.
type sbomPackage struct {
	ID, Name, Version, URL, SHA256 string
	PURL, CPE                      string
	Image                          bool
	Comment                        string
}

// packages lists every source and pre-pulled image, per platform, in recipe
// order.
func (b *build) packages() []sbomPackage {
	var out []sbomPackage
	for _, pb := range b.res.Builds {
		for _, c := range pb.Components {
			for _, s := range c.Sources {
				v := s.Version
				if v == "" {
					v = c.Version
				}
				purl, cpe := sourceIDs(s.Name, v, s.URL, s.SHA256)
				out = append(out, sbomPackage{
					ID:   "Package-" + spdxIDUnsafe.ReplaceAllString(strings.Join([]string{c.Name, s.Name, pb.Arch}, "-"), "-"),
					Name: s.Name, Version: v, URL: s.URL, SHA256: s.SHA256, PURL: purl, CPE: cpe,
					Comment: fmt.Sprintf("component %s, platform %s", c.Name, pb.Platform()),
				})
			}
			for _, im := range c.Images { // pre-pulled images (images.go)
				out = append(out, sbomPackage{
					ID:   "Image-" + spdxIDUnsafe.ReplaceAllString(strings.Join([]string{c.Name, im.Ref, pb.Arch}, "-"), "-"),
					Name: im.Ref, Version: imageTag(im.Ref), SHA256: strings.TrimPrefix(im.Digest, "sha256:"),
					PURL: ociPURL(im.Ref, im.Digest, pb.Arch), Image: true,
					Comment: fmt.Sprintf("image %s@%s stored at %s, component %s, platform %s", im.Ref, im.Digest, im.Path, c.Name, pb.Platform()),
				})
			}
		}
	}
	return out
}

// upstream maps a GitHub release repository to its Go module path and, where
// NVD has one, its CPE vendor:product.
var upstream = map[string]struct{ module, cpe string }{
	"containerd/containerd":       {"github.com/containerd/containerd", "linuxfoundation:containerd"},
	"opencontainers/runc":         {"github.com/opencontainers/runc", "linuxfoundation:runc"},
	"containernetworking/plugins": {"github.com/containernetworking/plugins", ""},
	"kubernetes-sigs/cri-tools":   {"sigs.k8s.io/cri-tools", ""},
	"kubernetes/kubernetes":       {"k8s.io/kubernetes", "kubernetes:kubernetes"},
}

var (
	dlK8sURL    = lazyre.New(`^https://dl\.k8s\.io/release/v([0-9][^/]*)/bin/[^/]+/[^/]+/([^/]+)$`)
	ghReleaseRE = lazyre.New(`^https://github\.com/([^/]+)/([^/]+)/releases/download/([^/]+)/`)
	semverRE    = lazyre.New(`^v?([0-9]+)\.[0-9]+\.[0-9]+`)
)

// sourceIDs returns a source's package URL and CPE 2.3 name (empty when NVD
// names no product for it). Known upstreams (Kubernetes from dl.k8s.io,
// containerd, runc, CNI plugins, cri-tools from their GitHub releases) are Go
// modules, as scanners see them in the binaries (pkg:golang); other GitHub
// releases are pkg:github; anything else pkg:generic with its download URL
// and checksum.
func sourceIDs(name, version, url, sha256 string) (purl, cpe string) {
	if m := dlK8sURL.FindStringSubmatch(url); m != nil {
		return golangPURL("k8s.io/kubernetes", m[1]), cpe23("kubernetes:kubernetes", m[1])
	}
	if m := ghReleaseRE.FindStringSubmatch(url); m != nil {
		tag := m[3]
		v := strings.TrimPrefix(tag, "v")
		if u, ok := upstream[m[1]+"/"+m[2]]; ok && semverRE.MatchString(tag) {
			return golangPURL(u.module, v), cpe23(u.cpe, v)
		}
		return fmt.Sprintf("pkg:github/%s/%s@%s", strings.ToLower(m[1]), strings.ToLower(m[2]), purlEscape(tag)), ""
	}
	p := fmt.Sprintf("pkg:generic/%s", purlEscape(name))
	if version != "" {
		p += "@" + purlEscape(version)
	}
	return p + "?checksum=sha256:" + sha256 + "&download_url=" + purlQualifier(url), ""
}

// golangPURL is the Go module's package URL; a major version 2 or above is
// part of the module path (github.com/containerd/containerd/v2).
func golangPURL(module, version string) string {
	if m := semverRE.FindStringSubmatch(version); m != nil && m[1] != "0" && m[1] != "1" {
		module += "/v" + m[1]
	}
	return "pkg:golang/" + module + "@v" + purlEscape(strings.TrimPrefix(version, "v"))
}

func cpe23(vendorProduct, version string) string {
	if vendorProduct == "" {
		return ""
	}
	return "cpe:2.3:a:" + vendorProduct + ":" + strings.TrimPrefix(version, "v") + ":*:*:*:*:*:*:*"
}

// ociPURL names an image by digest (pkg:oci/NAME@DIGEST?repository_url=…):
// the digest, not the tag, says what it is.
func ociPURL(ref, digest, arch string) string {
	repo := ref
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	tag := ""
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	name := repo[strings.LastIndex(repo, "/")+1:]
	p := "pkg:oci/" + strings.ToLower(name) + "@" + purlEscape(digest) + "?"
	if arch != "" {
		p += "arch=" + arch + "&"
	}
	p += "repository_url=" + purlQualifier(repo)
	if tag != "" {
		p += "&tag=" + purlQualifier(tag)
	}
	return p
}

func imagePURL(name, version, digest string) string {
	return "pkg:oci/" + strings.ToLower(name) + "@" + purlEscape(digest) + "?tag=" + purlQualifier(version)
}

func imageTag(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return ""
}

// purlEscape percent-encodes a purl name or version: everything but
// unreserved characters.
func purlEscape(s string) string { return escape(s, ".-_~") }

// purlQualifier percent-encodes a qualifier value (URLs keep their / and :).
func purlQualifier(s string) string { return escape(s, ".-_~/:") }

func escape(s, keep string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// CycloneDX 1.5, as much of it as prebake fills in.
type cdxBOM struct {
	BOMFormat    string         `json:"bomFormat"`
	SpecVersion  string         `json:"specVersion"`
	SerialNumber string         `json:"serialNumber"`
	Version      int            `json:"version"`
	Metadata     cdxMetadata    `json:"metadata"`
	Components   []cdxComponent `json:"components"`
	Dependencies []cdxDep       `json:"dependencies"`
}

type cdxMetadata struct {
	Timestamp string       `json:"timestamp"`
	Tools     cdxTools     `json:"tools"`
	Component cdxComponent `json:"component"`
}

type cdxTools struct {
	Components []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type         string        `json:"type"`
	BOMRef       string        `json:"bom-ref,omitempty"`
	Name         string        `json:"name"`
	Version      string        `json:"version,omitempty"`
	PURL         string        `json:"purl,omitempty"`
	CPE          string        `json:"cpe,omitempty"`
	Hashes       []cdxHash     `json:"hashes,omitempty"`
	ExternalRefs []cdxExtRef   `json:"externalReferences,omitempty"`
	Properties   []cdxProperty `json:"properties,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

type cdxExtRef struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type cdxDep struct {
	Ref       string   `json:"ref"`
	DependsOn []string `json:"dependsOn"`
}

// cyclonedx is the CycloneDX SBOM of the same packages as sbom, wrapped
// like it.
func (b *build) cyclonedx(idx v1.ImageIndex) (v1.Image, error) {
	return b.bomArtifact(idx, CycloneDXArtifactType, b.cdx)
}

// cdx is the CycloneDX document of the resolved components.
func (b *build) cdx(idxDigest v1.Hash, created string) any {
	h := idxDigest.Hex
	image := cdxComponent{
		Type: "container", BOMRef: "image", Name: b.res.Name, Version: b.res.Version,
		PURL: imagePURL(b.res.Name, b.res.Version, idxDigest.String()), Hashes: []cdxHash{{"SHA-256", h}},
	}
	bom := cdxBOM{
		BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		// A name-based serial: the same image always has the same BOM.
		SerialNumber: fmt.Sprintf("urn:uuid:%s-%s-5%s-8%s-%s", h[0:8], h[8:12], h[13:16], h[17:20], h[20:32]),
		Metadata: cdxMetadata{Timestamp: created, Component: image,
			Tools: cdxTools{Components: []cdxComponent{{Type: "application", Name: "prebake"}}}},
	}
	dep := cdxDep{Ref: "image", DependsOn: []string{}}
	for _, p := range b.packages() {
		c := cdxComponent{
			Type: "application", BOMRef: p.ID, Name: p.Name, Version: p.Version, PURL: p.PURL, CPE: p.CPE,
			Hashes: []cdxHash{{"SHA-256", p.SHA256}}, Properties: []cdxProperty{{"prebake:comment", p.Comment}},
		}
		if p.Image {
			c.Type = "container"
		} else {
			c.ExternalRefs = []cdxExtRef{{"distribution", p.URL}}
		}
		bom.Components = append(bom.Components, c)
		dep.DependsOn = append(dep.DependsOn, p.ID)
	}
	bom.Dependencies = []cdxDep{dep}
	return bom
}
