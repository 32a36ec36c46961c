package registry

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/prebake/prebake/recipes"
)

// TestChannels promotes three versions, reads the history back, rolls back
// twice and refuses revoked digests, on a registry with the referrers API, one
// without, and in the store.
func TestChannels(t *testing.T) {
	ctx := ctxT(t)
	for name, repo := range map[string]string{
		"api":      olaregHost(t) + "/nodes/k8s",
		"fallback": ggcrHost(t) + "/nodes/k8s",
		"store":    "store:nodes",
	} {
		t.Run(name, func(t *testing.T) {
			parse := func(s string) Reference {
				r, err := ParseReference(s, ParseOptions{StoreDir: filepath.Join(t.TempDir(), "store")})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			base := parse(repo)
			storeDir := base.Dir
			var digests []string
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, v := range []string{"1.34.0", "1.34.1", "1.34.2"} {
				img := mutate.Annotations(ociImage(t, 256, 1), map[string]string{
					recipes.AnnotationKubernetesVersion: v,
					AnnotationCreated:                   t0.Add(time.Duration(i) * time.Hour).Format(time.RFC3339),
				}).(Artifact)
				ref := base.WithTag("v" + v)
				ref.Dir = storeDir
				res, err := Push(ctx, ref, img, nil, insecure())
				if err != nil {
					t.Fatal(err)
				}
				digests = append(digests, res.Descriptor.Digest.String())
				a, err := Promote(ctx, ref.WithDigest(digests[i]), "production", PromoteOptions{Options: insecure(), By: "ci", At: t0.Add(time.Duration(i) * time.Minute)})
				if err != nil {
					t.Fatal(err)
				}
				if a.Digest != digests[i] || (i > 0 && a.Previous != digests[i-1]) || (i == 0 && a.Previous != "") {
					t.Fatalf("promotion %d: %+v", i, a)
				}
			}
			repoRef := base
			repoRef.Dir = storeDir
			hist, err := ChannelHistory(ctx, repoRef, "production", insecure())
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 3 || hist[0].Digest != digests[2] || hist[2].Digest != digests[0] || hist[0].By != "ci" || hist[0].Previous != digests[1] {
				t.Fatalf("history: %+v", hist)
			}
			current := func() string {
				_, d, err := Get(ctx, repoRef.WithTag("production"), insecure())
				if err != nil {
					t.Fatal(err)
				}
				return d.Digest.String()
			}
			a, err := Rollback(ctx, repoRef, "production", PromoteOptions{Options: insecure()})
			if err != nil {
				t.Fatal(err)
			}
			if a.Digest != digests[1] || current() != digests[1] || a.Action != "rollback" {
				t.Fatalf("first rollback: %+v, channel at %s", a, current())
			}
			// Revoke the next target: rollback refuses it.
			if _, err := Revoke(ctx, repoRef.WithDigest(digests[0]), RevokeOptions{Options: insecure(), Reason: "bad kubelet"}); err != nil {
				t.Fatal(err)
			}
			if _, err := Rollback(ctx, repoRef, "production", PromoteOptions{Options: insecure()}); !errors.Is(err, ErrRevoked) {
				t.Fatalf("rollback onto a revoked digest: %v", err)
			}
			if _, err := Promote(ctx, repoRef.WithDigest(digests[0]), "production", PromoteOptions{Options: insecure()}); !errors.Is(err, ErrRevoked) {
				t.Fatalf("promote of a revoked digest: %v", err)
			}
			a, err = Rollback(ctx, repoRef, "production", PromoteOptions{Options: insecure(), AllowRevoked: true})
			if err != nil {
				t.Fatal(err)
			}
			if a.Digest != digests[0] || current() != digests[0] {
				t.Fatalf("second rollback: %+v", a)
			}
			if _, err := Rollback(ctx, repoRef, "production", PromoteOptions{Options: insecure()}); err == nil {
				t.Fatal("rollback past the first promotion succeeded")
			}
			hist, err = ChannelHistory(ctx, repoRef, "production", insecure())
			if err != nil || len(hist) != 5 {
				t.Fatalf("history after rollbacks: %d entries, %v", len(hist), err)
			}

			vs, err := List(ctx, repoRef, insecure())
			if err != nil {
				t.Fatal(err)
			}
			// v1.34.2, v1.34.1, v1.34.0 and the production tag.
			if len(vs) != 4 {
				t.Fatalf("list: %+v", vs)
			}
			if vs[0].Tag != "v1.34.2" || vs[0].Kubernetes != "1.34.2" || !vs[0].Created.Equal(t0.Add(2*time.Hour)) || vs[0].Revoked {
				t.Errorf("newest: %+v", vs[0])
			}
			for _, v := range vs {
				if v.Digest == digests[0] && !v.Revoked {
					t.Errorf("%s not marked revoked", v.Tag)
				}
			}
		})
	}
}

func TestPromoteNeedsDigest(t *testing.T) {
	_, err := Promote(ctxT(t), MustParse(ggcrHost(t)+"/nodes/a:v1"), "production", PromoteOptions{Options: insecure()})
	if !errors.Is(err, ErrDigestRequired) {
		t.Fatalf("err = %v", err)
	}
	_, err = Promote(ctxT(t), MustParse(ggcrHost(t)+"/nodes/a@sha256:"+"0123456789012345678901234567890123456789012345678901234567890123"), "bad channel!", PromoteOptions{Options: insecure()})
	if err == nil {
		t.Fatal("bad channel name accepted")
	}
}
