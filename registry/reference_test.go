package registry

import "testing"

// TagGiven tells a written tag from the "latest" ParseReference fills in.
func TestReferenceTagGiven(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for s, want := range map[string]bool{
		"127.0.0.1:5000/nodes": false, "127.0.0.1:5000/nodes:v1": true, "reg.example.com/a/b": false,
		"reg.example.com/a/b:x": true, "reg.example.com/a/b@" + d: false,
		"store:nodes": false, "nodes": false, "store:nodes:latest": true, "nodes:1.0": true,
		"oci:out": false, "oci:out:x": true, "oci:out@" + d: false,
	} {
		r, err := ParseReference(s)
		if err != nil {
			t.Fatal(err)
		}
		if r.TagGiven != want {
			t.Errorf("ParseReference(%q).TagGiven = %v", s, r.TagGiven)
		}
		if r2 := r.WithDigest(d); r2.TagGiven {
			t.Errorf("%q: WithDigest keeps TagGiven", s)
		}
		if r2 := r.WithTag("t"); !r2.TagGiven {
			t.Errorf("%q: WithTag does not set TagGiven", s)
		}
	}
}
