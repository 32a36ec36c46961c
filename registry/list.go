package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry/records"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/transfer"
)

// Version is one tag of a repository, as `prebake ls` shows it.
type Version struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
	// Kubernetes is the dev.prebake.kubernetes.version annotation (of the
	// index, else of its first image).
	Kubernetes string `json:"kubernetes,omitempty"`
	// Created is org.opencontainers.image.created, else the config's created
	// time; zero when neither is known.
	Created   time.Time `json:"created,omitzero"`
	Platforms []string  `json:"platforms,omitempty"`
	// Revoked is set when the digest carries a revocation.
	Revoked bool `json:"revoked,omitempty"`
}

// List returns the versions (tags) of repo, newest first, leaving out the
// referrers fallback tags and cosign's legacy tags. repo's own tag or digest
// is ignored.
func List(ctx context.Context, repo Reference, o Options) ([]Version, error) {
	e, err := Open(ctx, repo, o, false)
	if err != nil {
		return nil, err
	}
	tags, err := e.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", e, err)
	}
	var (
		mu  sync.Mutex
		out []Version
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(transfer.Jobs(o.Jobs))
	for _, t := range tags {
		if store.IsFallbackTag(t) {
			continue
		}
		eg.Go(func() error {
			v, err := describeVersion(ectx, e, t)
			if err != nil {
				return fmt.Errorf("%s:%s: %w", e, t, err)
			}
			if v.Digest == "" {
				return nil // a channel anchor or other non-image
			}
			mu.Lock()
			out = append(out, v)
			mu.Unlock()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Tag < out[j].Tag
	})
	return out, nil
}

func describeVersion(ctx context.Context, e store.Store, tag string) (Version, error) {
	d, err := e.Resolve(ctx, tag, "")
	if err != nil {
		return Version{}, err
	}
	raw, err := e.Manifest(ctx, d)
	if err != nil {
		return Version{}, err
	}
	m, err := store.ParseManifest(d, raw)
	if err != nil {
		return Version{}, err
	}
	if m.ArtifactType != "" {
		return Version{}, nil
	}
	v := Version{Tag: tag, Digest: d.Digest.String()}
	ann := map[string]string{}
	img := m

	if m.MediaType.IsIndex() {
		for k, val := range m.Annotations {
			ann[k] = val
		}
		img = nil
		for _, c := range m.Manifests {
			if c.Platform != nil {
				v.Platforms = append(v.Platforms, c.Platform.String())
			}
			if img == nil && c.MediaType.IsImage() {
				craw, err := e.Manifest(ctx, c)
				if err != nil {
					return Version{}, err
				}
				if img, err = store.ParseManifest(c, craw); err != nil {
					return Version{}, err
				}

			}
		}
	}
	if img != nil {
		for k, val := range img.Annotations {
			if _, ok := ann[k]; !ok {
				ann[k] = val
			}
		}
	}
	v.Kubernetes = ann[recipes.AnnotationKubernetesVersion]
	if t, err := time.Parse(time.RFC3339, ann[AnnotationCreated]); err == nil {
		v.Created = t
	} else if img != nil && img.Config != nil && img.Config.Size < store.MaxManifestSize {
		if t, ok := configCreated(ctx, e, *img.Config); ok {
			v.Created = t
		}
	}
	rs, err := records.Revocations(ctx, e, d)
	if err != nil {
		return Version{}, err
	}
	v.Revoked = len(rs) > 0
	return v, nil
}

func configCreated(ctx context.Context, e store.Store, d v1.Descriptor) (time.Time, bool) {
	rc, err := e.Blob(ctx, d)
	if err != nil {
		return time.Time{}, false
	}
	defer rc.Close()
	var cfg struct {
		Created time.Time `json:"created"`
	}
	if json.NewDecoder(rc).Decode(&cfg) != nil || cfg.Created.IsZero() || cfg.Created.Unix() <= 0 {
		return time.Time{}, false
	}
	return cfg.Created, true
}
