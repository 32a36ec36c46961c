package builder

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/artifact"
)

// SBOM media and artifact types.
const (
	SBOMArtifactType = "application/spdx+json"
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

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// sbom builds the SPDX document of the resolved components and wraps it in
// an OCI 1.1 artifact manifest whose subject is the index.
func (b *build) sbom(idx v1.ImageIndex) (v1.Image, error) {
	idxDigest, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	created := time.Unix(b.res.Epoch, 0).UTC().Format(time.RFC3339)
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
	})
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", imageID})
	for _, pb := range b.res.Builds {
		for _, c := range pb.Components {
			for _, s := range c.Sources {
				id := "SPDXRef-Package-" + spdxIDUnsafe.ReplaceAllString(strings.Join([]string{c.Name, s.Name, pb.Arch}, "-"), "-")
				doc.Packages = append(doc.Packages, spdxPackage{
					Name: s.Name, SPDXID: id, VersionInfo: s.Version, DownloadLocation: s.URL,
					Checksums:        []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: s.SHA256}},
					LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
					PrimaryPackagePurpose: "APPLICATION",
					Comment:               fmt.Sprintf("component %s, platform %s", c.Name, pb.Platform()),
				})
				doc.Relationships = append(doc.Relationships, spdxRelationship{imageID, "CONTAINS", id})
			}
			for _, im := range c.Images { // pre-pulled images (images.go)
				id := "SPDXRef-Image-" + spdxIDUnsafe.ReplaceAllString(strings.Join([]string{c.Name, im.Ref, pb.Arch}, "-"), "-")
				doc.Packages = append(doc.Packages, spdxPackage{
					Name: im.Ref, SPDXID: id, DownloadLocation: "NOASSERTION",
					Checksums:        []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: strings.TrimPrefix(im.Digest, "sha256:")}},
					LicenseConcluded: "NOASSERTION", LicenseDeclared: "NOASSERTION", CopyrightText: "NOASSERTION",
					PrimaryPackagePurpose: "CONTAINER",
					Comment:               fmt.Sprintf("image %s@%s stored at %s, component %s, platform %s", im.Ref, im.Digest, im.Path, c.Name, pb.Platform()),
				})
				doc.Relationships = append(doc.Relationships, spdxRelationship{imageID, "CONTAINS", id})
			}
		}
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	idxManifest, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	return Artifact(SBOMArtifactType, body, map[string]string{"org.opencontainers.image.created": created},
		&v1.Descriptor{MediaType: types.OCIImageIndex, Digest: idxDigest, Size: int64(len(idxManifest))})
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
