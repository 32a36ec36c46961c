package push

import (
	"fmt"
	"strings"
)

// Artifact is a published disk artifact. Its Id is the manifest digest.
type Artifact struct {
	Digest       string
	Reference    string // where it was pushed, by digest
	SourceDigest string // the node image the disk runs, when known
	Disks        []string
	Signed       bool
}

// BuilderId identifies the post-processor.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files is empty: the disks now live in the registry.
func (a *Artifact) Files() []string { return nil }

// Id is the artifact's manifest digest.
func (a *Artifact) Id() string { return a.Digest }

// String describes the artifact for Packer's summary.
func (a *Artifact) String() string {
	s := fmt.Sprintf("prebake disk artifact %s (%s)", a.Reference, strings.Join(a.Disks, ", "))
	if a.Signed {
		s += ", signed"
	}
	return s
}

// State answers "digest", "reference" and "source_digest".
func (a *Artifact) State(name string) any {
	switch name {
	case "digest":
		return a.Digest
	case "reference":
		return a.Reference
	case "source_digest":
		return a.SourceDigest
	}
	return nil
}

// Destroy keeps the pushed artifact.
func (a *Artifact) Destroy() error { return nil }
