package signing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/in-toto/in-toto-golang/in_toto"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/prebake/prebake/internal/version"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
)

// Predicate types of the attestations prebake makes, as cosign names them
// (cosign attest --type spdxjson / slsaprovenance1).
const (
	PredicateSBOM       = in_toto.PredicateSPDX         // https://spdx.dev/Document
	PredicateProvenance = slsa1.PredicateSLSAProvenance // https://slsa.dev/provenance/v1
	// SBOMArtifactType is the artifactType of the SBOM referrer the builder
	// attaches to an image.
	SBOMArtifactType = "application/spdx+json"
	// BuildType is the SLSA buildType of prebake's provenance.
	BuildType = "https://prebake.dev/provenance/build/v1"
	// BuilderID is the SLSA builder id of prebake's provenance.
	BuilderID = "https://github.com/prebake/prebake"
)

// Provenance is what prebake's provenance attestation states. Empty fields
// are taken from the image's annotations (dev.prebake.recipe,
// dev.prebake.recipe.digest, org.opencontainers.image.revision and .source)
// and, for BuilderVersion, from this binary.
type Provenance struct {
	Recipe         string `json:"recipe,omitempty"`
	RecipeDigest   string `json:"recipeDigest,omitempty"`
	LockDigest     string `json:"lockDigest,omitempty"`
	BuilderVersion string `json:"builderVersion,omitempty"`
	Source         string `json:"source,omitempty"`
	SourceRevision string `json:"sourceRevision,omitempty"`
}

// AttestOptions configure Attest. The zero value (plus a key) attests the
// image's SBOM referrer and a provenance statement.
type AttestOptions struct {
	KeyOptions
	// SBOM is an SPDX JSON document; nil reads the image's SBOM referrer
	// (artifactType application/spdx+json).
	SBOM []byte
	// SkipSBOM makes no SBOM attestation.
	SkipSBOM bool
	// Provenance fills the provenance statement.
	Provenance Provenance
	// SkipProvenance makes no provenance attestation.
	SkipProvenance bool
	// Identity is the subject name in the statements; empty means as in
	// SignOptions.
	Identity string
	// Registry reaches the image.
	Registry registry.Options
}

// Attested reports one attestation Attest stored.
type Attested struct {
	Digest        string `json:"digest"`
	PredicateType string `json:"predicateType"`
	// Attestations is where it is stored (REPO:sha256-<hex>.att).
	Attestations string `json:"attestations"`
	// Existed is true when the same statement signed by the same key was
	// already there.
	Existed bool `json:"existed"`
}

// Attest signs in-toto statements about the manifest ref names (by digest;
// a tag is a *TagReferenceError): the SBOM and the provenance, each a DSSE
// envelope stored as cosign attest does under the sha256-<hex>.att tag. An
// earlier attestation of the same predicate type by the same key is
// replaced; an identical one is kept and nothing is written.
func Attest(ctx context.Context, ref registry.Reference, o AttestOptions) ([]Attested, error) {
	_, desc, err := resolveDigest(ctx, ref, o.Registry)
	if err != nil {
		return nil, err
	}
	type statement struct {
		typ, kind string
		predicate []byte
	}
	var todo []statement
	if !o.SkipSBOM {
		sbom := o.SBOM
		if sbom == nil {
			if sbom, err = readSBOM(ctx, ref, desc.Digest, o.Registry); err != nil {
				return nil, err
			}
		}
		if err := checkSPDX(sbom); err != nil {
			return nil, err
		}
		todo = append(todo, statement{PredicateSBOM, "spdxjson", sbom})
	}
	if !o.SkipProvenance {
		p, err := provenancePredicate(ctx, ref, o.Provenance, o.Registry)
		if err != nil {
			return nil, err
		}
		todo = append(todo, statement{PredicateProvenance, "slsaprovenance1", p})
	}
	if len(todo) == 0 {
		return nil, nil
	}
	s, v, err := o.keys(ctx)
	if err != nil {
		return nil, err
	}
	id := identity(ref, o.Identity)
	tag := AttestationTag(desc.Digest)
	existing, err := readSignatures(ctx, ref, tag, o.Registry)
	if err != nil {
		return nil, err
	}
	var out []Attested
	changed := false
	for _, t := range todo {
		st, err := inTotoStatement(t.kind, t.predicate, desc.Digest.Hex, id)
		if err != nil {
			return nil, fmt.Errorf("attesting %s: %w", ref, err)
		}
		msg, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		res := Attested{Digest: desc.Digest.String(), PredicateType: t.typ, Attestations: ref.WithTag(tag).String()}
		// Keep the others' attestations; replace ours of this type unless
		// identical.
		keep := existing[:0:0]
		for _, e := range existing {
			if e.ann["predicateType"] == t.typ {
				if est, raw, err := checkAttestation(ctx, e, desc.Digest, v); err == nil && est.PredicateType == t.typ {
					if bytes.Equal(raw, msg) {
						res.Existed = true
						keep = append(keep, e)
					}
					continue
				}
			}
			keep = append(keep, e)
		}
		if !res.Existed {
			env, err := dsse.WrapSigner(sigstoreSigner(ctx, s), intotoPayloadType).SignMessage(bytes.NewReader(msg), sigopts.WithContext(ctx))
			if err != nil {
				return nil, fmt.Errorf("signing %s attestation of %s: %w", t.kind, desc.Digest, err)
			}
			keep = append(keep, newSigLayer(dssePayloadType, env, "", map[string]string{"predicateType": t.typ}))
			changed = true
		}
		existing = keep
		out = append(out, res)
	}
	if changed {
		if err := writeSignatures(ctx, ref, tag, existing, o.Registry); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readSBOM returns the SPDX document of the image's SBOM referrer.
func readSBOM(ctx context.Context, ref registry.Reference, d v1.Hash, o registry.Options) ([]byte, error) {
	pinned := ref.WithDigest(d.String())
	ds, err := registry.Referrers(ctx, pinned, SBOMArtifactType, o)
	if err != nil {
		return nil, fmt.Errorf("finding the SBOM of %s: %w", pinned, err)
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("%s has no referrer of type %s: %w (attach one when building, or give the SBOM file)", pinned, SBOMArtifactType, ErrNoSBOM)
	}
	sd := ds[len(ds)-1]
	a, _, err := registry.Get(ctx, ref.WithDigest(sd.Digest.String()), o)
	if err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %w", sd.Digest, err)
	}
	img, ok := a.(v1.Image)
	if !ok {
		return nil, fmt.Errorf("SBOM %s is not an image manifest", sd.Digest)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %w", sd.Digest, err)
	}
	for _, ld := range m.Layers {
		if string(ld.MediaType) != SBOMArtifactType && len(m.Layers) > 1 {
			continue
		}
		l, err := img.LayerByDigest(ld.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading SBOM %s: %w", sd.Digest, err)
		}
		return readVerified(l.Compressed, ld, pinned.String())
	}
	return nil, fmt.Errorf("SBOM %s of %s has no %s layer: %w", sd.Digest, pinned, SBOMArtifactType, ErrNoSBOM)
}

// checkSPDX refuses a document that is not SPDX JSON.
func checkSPDX(b []byte) error {
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("SBOM is not JSON: %w", err)
	}
	if !strings.HasPrefix(doc.SPDXVersion, "SPDX-") {
		return fmt.Errorf("SBOM is not an SPDX JSON document: spdxVersion is %q, expected SPDX-2.x", doc.SPDXVersion)
	}
	return nil
}

// provenancePredicate is the SLSA v1 provenance of the image ref names.
func provenancePredicate(ctx context.Context, ref registry.Reference, p Provenance, o registry.Options) ([]byte, error) {
	ann, err := registry.Annotations(ctx, ref, "", o)
	if err != nil {
		return nil, fmt.Errorf("reading annotations of %s: %w", ref, err)
	}
	fill := func(v *string, key string) {
		if *v == "" {
			*v = ann[key]
		}
	}
	fill(&p.Recipe, recipes.AnnotationRecipe)
	fill(&p.RecipeDigest, recipes.AnnotationRecipeDigest)
	fill(&p.Source, "org.opencontainers.image.source")
	fill(&p.SourceRevision, "org.opencontainers.image.revision")
	if p.BuilderVersion == "" {
		p.BuilderVersion = version.Get().Version
	}
	ext := map[string]string{}
	for k, v := range map[string]string{"recipe": p.Recipe, "recipeDigest": p.RecipeDigest, "lockDigest": p.LockDigest} {
		if v != "" {
			ext[k] = v
		}
	}
	pred := slsa1.ProvenancePredicate{
		BuildDefinition: slsa1.ProvenanceBuildDefinition{BuildType: BuildType, ExternalParameters: ext},
		RunDetails: slsa1.ProvenanceRunDetails{
			Builder: slsa1.Builder{ID: BuilderID, Version: map[string]string{"prebake": p.BuilderVersion}},
		},
	}
	if p.RecipeDigest != "" {
		pred.BuildDefinition.ResolvedDependencies = append(pred.BuildDefinition.ResolvedDependencies,
			slsa1.ResourceDescriptor{Name: "recipe", URI: p.Recipe, Digest: digestSet(p.RecipeDigest)})
	}
	if p.LockDigest != "" {
		pred.BuildDefinition.ResolvedDependencies = append(pred.BuildDefinition.ResolvedDependencies,
			slsa1.ResourceDescriptor{Name: "lock", Digest: digestSet(p.LockDigest)})
	}
	if p.Source != "" || p.SourceRevision != "" {
		rd := slsa1.ResourceDescriptor{Name: "source", URI: p.Source}
		if p.SourceRevision != "" {
			rd.Digest = map[string]string{"gitCommit": p.SourceRevision}
		}
		pred.BuildDefinition.ResolvedDependencies = append(pred.BuildDefinition.ResolvedDependencies, rd)
	}
	return json.Marshal(pred)
}

// digestSet turns "sha256:<hex>" (or bare hex) into an in-toto digest set.
func digestSet(d string) map[string]string {
	if alg, hex, ok := strings.Cut(d, ":"); ok {
		return map[string]string{alg: hex}
	}
	return map[string]string{"sha256": d}
}

// SignAndAttestOptions configure SignAndAttest: one key signs the image and
// its attestations. The KeyOptions and Registry of Sign and Attest are
// replaced by these.
type SignAndAttestOptions struct {
	KeyOptions
	Sign     SignOptions
	Attest   AttestOptions
	Registry registry.Options
}

// SignAndAttestResult is what SignAndAttest did.
type SignAndAttestResult struct {
	Signed   []Signed   `json:"signed"`
	Attested []Attested `json:"attested"`
}

// SignAndAttest signs the image ref names (Sign) and attests its SBOM and
// provenance (Attest) with one key, loaded once; `prebake build --push
// --sign-key` calls it after the push.
func SignAndAttest(ctx context.Context, ref registry.Reference, o SignAndAttestOptions) (*SignAndAttestResult, error) {
	s, err := o.signer(ctx)
	if err != nil {
		return nil, err
	}
	so, ao := o.Sign, o.Attest
	so.KeyOptions = KeyOptions{Signer: s}
	ao.KeyOptions = KeyOptions{Signer: s}
	so.Registry, ao.Registry = o.Registry, o.Registry
	res := &SignAndAttestResult{}
	if res.Signed, err = Sign(ctx, ref, so); err != nil {
		return res, err
	}
	if res.Attested, err = Attest(ctx, ref, ao); err != nil {
		return res, err
	}
	return res, nil
}
