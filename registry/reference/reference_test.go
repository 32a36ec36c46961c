package reference

import (
	"regexp"
	"strings"
	"testing"
)

// TagGiven tells a written tag from the "latest" Parse fills in.
func TestReferenceTagGiven(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for s, want := range map[string]bool{
		"127.0.0.1:5000/nodes": false, "127.0.0.1:5000/nodes:v1": true, "reg.example.com/a/b": false,
		"reg.example.com/a/b:x": true, "reg.example.com/a/b@" + d: false,
		"store:nodes": false, "nodes": false, "store:nodes:latest": true, "nodes:1.0": true,
		"oci:out": false, "oci:out:x": true, "oci:out@" + d: false,
	} {
		r, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if r.TagGiven != want {
			t.Errorf("Parse(%q).TagGiven = %v", s, r.TagGiven)
		}
		if r2 := r.WithDigest(d); r2.TagGiven {
			t.Errorf("%q: WithDigest keeps TagGiven", s)
		}
		if r2 := r.WithTag("t"); !r2.TagGiven {
			t.Errorf("%q: WithTag does not set TagGiven", s)
		}
	}
}

// A layout directory with ':' in its last element prints with a trailing
// '/' and parses back to itself (found by FuzzParse: "oci::/").
func TestLayoutDirWithColon(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"oci::/":          "oci::/",
		"oci:a/b:/":       "oci:a/b:/",
		"oci:x:y/:v1":     "oci:x:y/:v1",
		"oci:x:y/@" + d:   "oci:x:y/@" + d,
		"oci:a:b/c:v1":    "oci:a:b/c:v1",
		"oci:/tmp/out:v1": "oci:/tmp/out:v1",
	} {
		r, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got := r.String(); got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, got, want)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Errorf("%q: %+v, after String/Parse %+v (%v)", in, r, back, err)
		}
	}
}

// FuzzParse: any string parses or fails, never panics; an accepted
// reference prints as a string that parses back to the same reference.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"oci:/tmp/x:v1", "oci:rel/dir@sha256:" + strings.Repeat("a", 64), "store:k8s:1.36.4", "k8s@sha256:" + strings.Repeat("b", 64),
		"localhost:5000/nodes/k8s:1.36.4", "registry.example.com/a/b@sha256:" + strings.Repeat("c", 64), "ghcr.io/o/r", "a/b:c:d", "oci:", ":", "@",
		"oci::/", "oci:a:b/", "oci:x/y:/:t",
	} {
		f.Add(s)
	}
	store := f.TempDir()
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s, ParseOptions{StoreDir: store})
		if err != nil {
			return
		}
		back, err := Parse(r.String(), ParseOptions{StoreDir: store})
		if err != nil {
			t.Fatalf("%q parsed as %+v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		// String writes a defaulted tag out, so the copy has it as given.
		back.TagGiven = r.TagGiven
		if back != r {
			t.Fatalf("%q: %+v, after String/Parse %+v", s, r, back)
		}
	})
}

// The hand-written checks accept exactly what the distribution spec's
// patterns accept.
func TestChecksMatchSpecPatterns(t *testing.T) {
	digestRE := regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	tagRE := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	nameRE := regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	inputs := []string{"", "a", "A", "_", ".", "-", "a.b", "a..b", "a__b", "a___b", "a_b", "a-b", "a--b", "a-", "-a", "a/b", "a//b", "/a", "a/",
		"library/ubuntu", "my.registry_x/a-b__c", "UPPER", "tag_1.0-rc", ".tag", "-tag", strings.Repeat("t", 128), strings.Repeat("t", 129),
		"sha256:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("a", 63), "sha512:" + strings.Repeat("a", 64),
		"a\n", "é", "a b"}
	alphabet := "ab0._-/A:"
	for n := 1; n <= 5; n++ {
		var gen func(prefix string)
		gen = func(prefix string) {
			if len(prefix) == n {
				inputs = append(inputs, prefix)
				return
			}
			for _, c := range alphabet {
				gen(prefix + string(c))
			}
		}
		gen("")
	}
	for _, s := range inputs {
		if got, want := validDigest(s), digestRE.MatchString(s); got != want {
			t.Errorf("validDigest(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := validTag(s), tagRE.MatchString(s); got != want {
			t.Errorf("validTag(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := validName(s), nameRE.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, pattern says %v", s, got, want)
		}
	}
}
