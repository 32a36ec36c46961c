package testenv

import (
	"context"
	"testing"

	"github.com/prebake/prebake/builder"
	"github.com/prebake/prebake/builder/fetch"
	"github.com/prebake/prebake/recipes"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// BuildQuickstart builds the quickstart recipe from the stand-in mirror,
// writes it to dst, signs it there with priv (when not empty) and returns
// the index digest.
func BuildQuickstart(t testing.TB, dst string, priv string, o registry.Options) string {
	return BuildQuickstartWith(t, dst, priv, o, builder.Gzip)
}

// BuildQuickstartWith is BuildQuickstart with layers compressed by c.
func BuildQuickstartWith(t testing.TB, dst string, priv string, o registry.Options, c builder.Compression) string {
	t.Helper()
	ctx := context.Background()
	r, err := recipes.Load(Quickstart(t))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := recipes.LoadLock(recipes.LockPath(Quickstart(t)), true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Resolve(recipes.ResolveOptions{Lock: lock})
	if err != nil {
		t.Fatal(err)
	}
	var ms []fetch.Mirror
	for _, s := range Mirrors(t) {
		m, err := fetch.ParseMirror(s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	f, err := fetch.New(fetch.WithCacheDir(t.TempDir()), fetch.WithMirrors(ms...))
	if err != nil {
		t.Fatal(err)
	}
	result, err := builder.Build(ctx, res, builder.Options{Fetcher: f, Compression: c})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := registry.ParseReference(dst)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := registry.Write(ctx, ref, result.Index, []registry.Artifact{result.SBOM}, o)
	if err != nil {
		t.Fatal(err)
	}
	if priv != "" {
		Sign(t, ref.WithDigest(desc.Digest.String()), priv, o)
	}
	return desc.Digest.String()
}

// Sign signs ref (by digest) with priv.
func Sign(t testing.TB, ref registry.Reference, priv string, o registry.Options) {
	t.Helper()
	if _, err := signing.Sign(context.Background(), ref, signing.SignOptions{KeyOptions: signing.KeyOptions{Key: priv}, Registry: o}); err != nil {
		t.Fatalf("signing %s: %v", ref, err)
	}
}
