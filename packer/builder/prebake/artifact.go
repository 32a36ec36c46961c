package prebake

import "fmt"

// Artifact is a built node image. Its Id is the image (index) digest.
type Artifact struct {
	Digest       string
	Reference    string // output reference, by digest
	Pushed       string // registry reference by digest; empty when not pushed
	Name         string
	Version      string
	RecipeDigest string
	Platforms    []string
	Signed       int // manifests signed
	Attested     int // attestations (SBOM, provenance) attached
}

// BuilderId identifies the builder.
func (a *Artifact) BuilderId() string { return BuilderID }

// Files is empty: the image lives in a layout, the store or a registry.
func (a *Artifact) Files() []string { return nil }

// Id is the image digest.
func (a *Artifact) Id() string { return a.Digest }

// String describes the image for Packer's summary.
func (a *Artifact) String() string {
	s := fmt.Sprintf("prebake image %s:%s %s at %s", a.Name, a.Version, a.Digest, a.Reference)
	if a.Pushed != "" {
		s += ", pushed to " + a.Pushed
	}
	return s
}

// State answers "digest", "reference", "pushed", "name", "version" and
// "recipe_digest", so post-processors can link to the image.
func (a *Artifact) State(name string) any {
	switch name {
	case "digest":
		return a.Digest
	case "reference":
		return a.Reference
	case "pushed":
		return a.Pushed
	case "name":
		return a.Name
	case "version":
		return a.Version
	case "recipe_digest":
		return a.RecipeDigest
	}
	return nil
}

// Destroy keeps the image: it is content-addressed and may be shared.
func (a *Artifact) Destroy() error { return nil }
