package image

import (
	"context"
	"strings"
	"testing"

	"github.com/prebake/prebake/internal/testenv"
	"github.com/prebake/prebake/internal/testenv/fixture"
	"github.com/prebake/prebake/registry"
)

func TestConfigureProblems(t *testing.T) {
	_, pub := fixture.Keys(t)
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want []string
	}{
		{"minimal", map[string]any{"repository": "127.0.0.1:5000/nodes", "channel": "stable", "public_key": pub}, nil},
		{"layout", map[string]any{"repository": "oci:/srv/nodes", "channel": "candidate-1.36", "public_key": "env://PUB", "platform": "linux/arm64"}, nil},
		{"nothing", map[string]any{}, []string{"repository: required", "channel: required", "public_key: required"}},
		{"repository with tag", map[string]any{"repository": "127.0.0.1:5000/nodes:1.36.4", "channel": "stable", "public_key": pub},
			[]string{"repository:", "the channel picks the tag"}},
		{"repository with digest", map[string]any{"repository": "127.0.0.1:5000/nodes@sha256:" + strings.Repeat("0", 64), "channel": "stable", "public_key": pub},
			[]string{"repository:"}},
		{"bad channel", map[string]any{"repository": "127.0.0.1:5000/nodes", "channel": "no/slashes", "public_key": pub}, []string{"channel:", "valid tag"}},
		{"missing key", map[string]any{"repository": "127.0.0.1:5000/nodes", "channel": "stable", "public_key": "/nonexistent.pub"}, []string{"public_key:", "does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Datasource
			err := d.Configure(tc.raw)
			testenv.CheckError(t, tc.raw, err, tc.want...)
		})
	}
}

// TestResolveChannel promotes a signed image to "stable" in a loopback
// prebake registry and resolves it; another key and an unknown channel are
// refused.
func TestResolveChannel(t *testing.T) {
	testenv.Short(t, "builds an image")
	fixture.Isolate(t)
	host := fixture.Registry(t)
	priv, pub := fixture.Keys(t)
	_, otherPub := fixture.Keys(t)
	ropts := registry.Options{Insecure: true}
	digest := fixture.BuildQuickstart(t, host+"/nodes:1.36.4", priv, ropts)
	ref := registry.MustParse(host + "/nodes@" + digest)
	if _, err := registry.Promote(context.Background(), ref, "stable", registry.PromoteOptions{Options: ropts}); err != nil {
		t.Fatal(err)
	}
	resolve := func(channel, key string) (Output, error) {
		var d Datasource
		if err := d.Configure(map[string]any{"repository": host + "/nodes", "channel": channel, "public_key": key, "insecure": true}); err != nil {
			t.Fatal(err)
		}
		return d.resolve(context.Background())
	}
	out, err := resolve("stable", pub)
	if err != nil {
		t.Fatal(err)
	}
	if out.Digest != digest || out.Reference != host+"/nodes@"+digest || out.KubernetesVersion != "1.36.4" || out.OSPackages == "" {
		t.Errorf("output %+v", out)
	}
	if _, err := resolve("stable", otherPub); err == nil || !strings.Contains(err.Error(), "channel stable") {
		t.Errorf("another key: err = %v", err)
	}
	if _, err := resolve("candidate", pub); err == nil || !strings.Contains(err.Error(), "resolving channel candidate") {
		t.Errorf("unknown channel: err = %v", err)
	}
	var d Datasource
	if err := d.Configure(map[string]any{"repository": host + "/nodes", "channel": "stable", "public_key": pub, "insecure": true}); err != nil {
		t.Fatal(err)
	}
	v, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetAttr("digest").AsString(); got != digest {
		t.Errorf("Execute digest = %s, want %s", got, digest)
	}
}
