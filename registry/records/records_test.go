package records_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry/records"
	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/remote"
	"github.com/prebake/prebake/registry/store"
	"github.com/prebake/prebake/registry/transfer"
)

// places are the stores records must work in alike: a layout, prebake's
// registry (referrers API) and a registry with the tag fallback only.
func places(t *testing.T) map[string]store.Store {
	t.Helper()
	l, err := store.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Store{"layout": l.Store("", "")}
	for kind, host := range map[string]string{"prebake": fixture.Registry(t), "fallback": testenv.ServeHTTP(t, testenv.FallbackRegistry())} {
		r, err := remote.Open(t.Context(), reference.MustParse(host+"/nodes/k8s"), remote.Options{Insecure: true}, true)
		if err != nil {
			t.Fatal(err)
		}
		out[kind] = r
	}
	return out
}

// images puts n images into s (untagged) and returns their descriptors.
func images(t *testing.T, s store.Store, n int) []v1.Descriptor {
	t.Helper()
	var out []v1.Descriptor
	for range n {
		m, err := store.NewMemory(testenv.Image(t, 256, 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := transfer.Copy(t.Context(), m, s, m.Root(), "", transfer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Descriptor)
	}
	return out
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Promotions are recorded with who and when and what came before; history
// is newest first and per channel; rollbacks walk back one promotion each
// and are recorded too.
func TestChannelPromoteHistoryRollback(t *testing.T) {
	for kind, s := range places(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			d := images(t, s, 3)
			var promoted []records.Assignment
			for i, img := range d {
				a, err := records.Promote(ctx, s, img.Digest.String(), "production", records.PromoteOptions{By: "release-bot", At: t0.Add(time.Duration(i) * time.Minute)})
				if err != nil {
					t.Fatal(err)
				}
				want := ""
				if i > 0 {
					want = d[i-1].Digest.String()
				}
				if a.Digest != img.Digest.String() || a.Previous != want || a.Action != "promote" || a.By != "release-bot" || a.Record == "" {
					t.Fatalf("promotion %d = %+v", i, a)
				}
				promoted = append(promoted, a)
			}
			if _, err := records.Promote(ctx, s, d[0].Digest.String(), "staging", records.PromoteOptions{By: "ci", At: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if cur, err := s.Resolve(ctx, "production", ""); err != nil || cur.Digest != d[2].Digest {
				t.Fatalf("production = %v, %v; want %s", cur.Digest, err, d[2].Digest)
			}
			hist, err := records.ChannelHistory(ctx, s, "production")
			if err != nil || len(hist) != 3 {
				t.Fatalf("history = %+v, %v", hist, err)
			}
			for i, a := range hist {
				if want := promoted[2-i]; a.Digest != want.Digest || a.Previous != want.Previous || a.Record != want.Record || !a.At.Equal(want.At) || a.By != want.By {
					t.Errorf("history[%d] = %+v, want %+v", i, a, want)
				}
			}

			o := records.PromoteOptions{By: "oncall", At: t0.Add(2 * time.Hour)}
			back, err := records.Rollback(ctx, s, "production", o)
			if err != nil || back.Digest != d[1].Digest.String() || back.Action != "rollback" || back.Undoes != promoted[2].Record || back.Previous != d[2].Digest.String() {
				t.Fatalf("rollback = %+v, %v", back, err)
			}
			o.At = o.At.Add(time.Minute)
			if back, err = records.Rollback(ctx, s, "production", o); err != nil || back.Digest != d[0].Digest.String() {
				t.Fatalf("second rollback = %+v, %v", back, err)
			}
			o.At = o.At.Add(time.Minute)
			if _, err := records.Rollback(ctx, s, "production", o); err == nil || !strings.Contains(err.Error(), "first promotion") {
				t.Errorf("rollback past the first promotion: %v", err)
			}
			if cur, err := s.Resolve(ctx, "production", ""); err != nil || cur.Digest != d[0].Digest {
				t.Errorf("production after rollbacks = %v, %v", cur.Digest, err)
			}
			if hist, err := records.ChannelHistory(ctx, s, "production"); err != nil || len(hist) != 5 || hist[0].Action != "rollback" {
				t.Errorf("history after rollbacks = %+v, %v", hist, err)
			}
			if _, err := records.Rollback(ctx, s, "never-promoted", o); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("rollback of a channel that does not exist: %v", err)
			}
		})
	}
}

// A revoked digest is listed, refused by CheckRevoked and by Promote (unless
// allowed), with who, when and why.
func TestRevoke(t *testing.T) {
	for kind, s := range places(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			d := images(t, s, 2)
			if err := records.CheckRevoked(ctx, s, "node", d[0]); err != nil {
				t.Fatalf("CheckRevoked before any revocation: %v", err)
			}
			r, err := records.Revoke(ctx, s, d[0].Digest.String(), records.RevokeOptions{Reason: "CVE-2026-0001", By: "security", At: t0})
			if err != nil || r.Record == "" || r.Digest != d[0].Digest.String() {
				t.Fatalf("Revoke = %+v, %v", r, err)
			}
			rs, err := records.Revocations(ctx, s, d[0])
			if err != nil || len(rs) != 1 || rs[0].Reason != "CVE-2026-0001" || rs[0].By != "security" || !rs[0].At.Equal(t0) || rs[0].Record != r.Record {
				t.Fatalf("Revocations = %+v, %v", rs, err)
			}
			if rs, err := records.Revocations(ctx, s, d[1]); err != nil || len(rs) != 0 {
				t.Errorf("Revocations of another digest = %+v, %v", rs, err)
			}
			err = records.CheckRevoked(ctx, s, "node", d[0])
			var re *records.RevokedError
			if !errors.Is(err, records.ErrRevoked) || !errors.As(err, &re) || re.Ref != "node@"+d[0].Digest.String() || !strings.Contains(err.Error(), "CVE-2026-0001") {
				t.Fatalf("CheckRevoked = %v", err)
			}
			if _, err := records.Promote(ctx, s, d[0].Digest.String(), "production", records.PromoteOptions{By: "bot"}); !errors.Is(err, records.ErrRevoked) {
				t.Errorf("Promote of a revoked digest: %v", err)
			}
			if _, err := records.Promote(ctx, s, d[0].Digest.String(), "production", records.PromoteOptions{By: "bot", AllowRevoked: true}); err != nil {
				t.Errorf("Promote of a revoked digest, allowed: %v", err)
			}
		})
	}
}

// Records say who made them and why, and name a valid channel; a digest the
// store lacks is not found.
func TestRecordsRefuseBadInput(t *testing.T) {
	ctx := t.Context()
	l, err := store.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := l.Store("", "")
	d := images(t, s, 1)[0].Digest.String()
	missing := "sha256:" + strings.Repeat("0", 64)
	for name, err := range map[string]error{
		"promote without By": errs(records.Promote(ctx, s, d, "production", records.PromoteOptions{})),
		"revoke without By":  errs(records.Revoke(ctx, s, d, records.RevokeOptions{Reason: "x"})),
	} {
		if !errors.Is(err, records.ErrNoActor) {
			t.Errorf("%s: %v, want ErrNoActor", name, err)
		}
	}
	if _, err := records.Revoke(ctx, s, d, records.RevokeOptions{By: "x"}); !errors.Is(err, records.ErrNoReason) {
		t.Errorf("revoke without a reason: %v, want ErrNoReason", err)
	}
	if _, err := records.Promote(ctx, s, missing, "production", records.PromoteOptions{By: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("promote of a missing digest: %v", err)
	}
	if _, err := records.Revoke(ctx, s, missing, records.RevokeOptions{By: "x", Reason: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke of a missing digest: %v", err)
	}
	for _, c := range []string{"", "a/b", "-lead", strings.Repeat("x", 129), "sha256-" + strings.Repeat("a", 64)} {
		if err := records.CheckChannel(c); err == nil {
			t.Errorf("CheckChannel(%q) accepted", c)
		}
		if _, err := records.Promote(ctx, s, d, c, records.PromoteOptions{By: "x"}); err == nil {
			t.Errorf("Promote to channel %q accepted", c)
		}
	}
	for _, c := range []string{"production", "nightly-1.36.4", "v1_2"} {
		if err := records.CheckChannel(c); err != nil {
			t.Errorf("CheckChannel(%q): %v", c, err)
		}
	}
	if tags, err := s.Tags(ctx); err != nil || len(tags) != 0 {
		t.Errorf("refused records left tags %v (%v)", tags, err)
	}
}

func errs[T any](_ T, err error) error { return err }
