package signing_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/registry/server"
	"github.com/prebake/prebake/signing"
)

// TestServeRestart: signatures and attestations pushed to prebake serve are
// there after the server stops and a new one starts on the same root.
func TestServeRestart(t *testing.T) {
	ctx := context.Background()
	s, v := newKey(t)
	root := t.TempDir()
	serve := func() (string, func()) {
		srv, err := server.New(root)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		u, _ := url.Parse(hs.URL)
		return u.Host, func() { hs.Close(); srv.Close() }
	}
	host, stop := serve()
	ref, idx := pushIndex(t, host, "nodes/k8s", "1.36.4")
	attachSBOM(t, ref, idx, sbomDoc("restart"))
	if _, err := signing.SignAndAttest(ctx, ref, signing.SignAndAttestOptions{KeyOptions: signing.KeyOptions{Signer: s}, Registry: ropts}); err != nil {
		t.Fatal(err)
	}
	stop()

	host2, stop2 := serve()
	defer stop2()
	moved := registry.MustParse(strings.Replace(ref.String(), host, host2, 1))
	res, err := signing.Verify(ctx, moved, signing.VerifyOptions{Verifier: v, Attestations: true, Registry: ropts})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != ref.Digest || len(res.Attestations) != 2 {
		t.Errorf("after restart verified %+v", res)
	}
}
