package records

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/internal/artifact"
	"github.com/prebake/prebake/registry/store"
)

// buildArtifact returns the manifest of an artifact of artifactType whose one
// layer is payload (of payloadType; none when payload is nil), pointing at
// subject (none when nil).
func buildArtifact(artifactType string, subject *v1.Descriptor, payloadType types.MediaType, payload []byte, annotations map[string]string) (v1.Descriptor, []byte, error) {
	var layers []v1.Descriptor
	if payload != nil {
		layers = []v1.Descriptor{artifact.Descriptor(payloadType, payload)}
	}
	raw, err := artifact.Manifest(artifactType, layers, artifact.Options{Subject: subject, Annotations: annotations})
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	d := store.DescribeManifest(raw, types.OCIManifestSchema1)
	d.Annotations = annotations
	return d, raw, nil
}

// Push writes an artifact (blobs, manifest) to e and records it as a
// referrer of subject.
func Push(ctx context.Context, e store.Store, artifactType string, subject v1.Descriptor, payloadType types.MediaType, payload []byte, annotations map[string]string) (v1.Descriptor, error) {
	d, raw, err := buildArtifact(artifactType, &subject, payloadType, payload, annotations)
	if err != nil {
		return v1.Descriptor{}, err
	}
	blobs := []smallBlob{{artifact.EmptyType, artifact.Empty}}
	if payload != nil {
		blobs = append(blobs, smallBlob{payloadType, payload})
	}
	if err := putWithBlobs(ctx, e, d, raw, blobs); err != nil {
		return v1.Descriptor{}, fmt.Errorf("writing %s to %s: %w", artifactType, e, err)
	}
	if err := e.AddReferrers(ctx, subject, []v1.Descriptor{d}); err != nil {
		return v1.Descriptor{}, fmt.Errorf("recording %s as referrer of %s: %w", d.Digest, subject.Digest, err)
	}
	return d, nil
}

// putArtifactManifest writes a subject-less artifact (and its blobs).
func putArtifactManifest(ctx context.Context, e store.Store, d v1.Descriptor, raw []byte) error {
	return putWithBlobs(ctx, e, d, raw, []smallBlob{{artifact.EmptyType, artifact.Empty}})
}

// putWithBlobs uploads small blobs and then the manifest.
// Registries built on distribution 2.x can briefly lose a blob while several
// clients upload the same one at once (the shared empty config of artifacts),
// and then refuse the manifest; the blobs are checked again and the manifest
// retried a few times before giving up.
type smallBlob struct {
	mediaType types.MediaType
	data      []byte
}

func putWithBlobs(ctx context.Context, e store.Store, d v1.Descriptor, raw []byte, blobs []smallBlob) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 100 * time.Millisecond):
			}
		}
		for _, b := range blobs {
			if err = putSmallBlob(ctx, e, b.mediaType, b.data); err != nil {
				break
			}
		}
		if err == nil {
			if err = e.PutManifest(ctx, d, raw); err == nil {
				return nil
			}
		}
	}
	return err
}

func putSmallBlob(ctx context.Context, e store.Store, mt types.MediaType, b []byte) error {
	d := artifact.Descriptor(mt, b)
	has, err := e.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	if has {
		return nil
	}
	_, err = e.PutBlob(ctx, d, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, "")
	return err
}
