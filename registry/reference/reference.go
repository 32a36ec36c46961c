// Package reference parses and prints the names prebake gives images: OCI
// layout directories (oci:DIR[:TAG|@DIGEST]), the local store
// (store:NAME[:TAG|@DIGEST] or NAME[:TAG]) and registries
// (host/repo[:tag|@digest]). Parsing is pure: it reads no environment and
// touches no file, and a Reference remembers whether a tag was written.
package reference

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Transport says where a Reference lives.
type Transport string

const (
	// TransportLayout is an OCI image layout directory: oci:DIR[:TAG|@DIGEST].
	TransportLayout Transport = "oci"
	// TransportStore is prebake's local store, itself one OCI layout in which
	// images are tagged NAME:TAG: store:NAME[:TAG|@DIGEST].
	TransportStore Transport = "store"
	// TransportRemote is an OCI registry: host[:port]/repo[:tag|@digest].
	TransportRemote Transport = "remote"
)

// Reference names an image or index in one of the transports.
type Reference struct {
	Transport Transport
	// Dir is the layout directory (TransportLayout) or the store directory
	// (TransportStore; empty means the default store, which the caller
	// chooses when it opens the reference: see store.Dir).
	Dir string
	// Name is the store name (TransportStore) or host/repository
	// (TransportRemote); empty for layouts.
	Name string
	// Tag and Digest: at most one may be empty-free; both may be empty for a
	// layout that holds a single image.
	Tag    string
	Digest string
	// TagGiven says the tag was written in the parsed string; false when
	// Parse filled in "latest" (the store, a registry) or there is
	// none. Callers that default the tag to something else check it.
	TagGiven bool
}

// The grammar's three checks are written out rather than compiled from
// regular expressions at start-up, which every command paid (~3 ms CPU);
// reference_test.go compares them with the distribution spec's patterns.

// validDigest: sha256:<64 lowercase hex>.
func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validTag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(isLowerAlnum(c) || c >= 'A' && c <= 'Z' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validName: path components of [a-z0-9]+ joined by '.', '_', "__" or
// runs of '-', separated by '/'.
func validName(s string) bool {
	for _, comp := range strings.Split(s, "/") {
		if !validComponent(comp) {
			return false
		}
	}
	return true
}

func validComponent(c string) bool {
	if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 0; i < len(c); {
		if isLowerAlnum(c[i]) {
			i++
			continue
		}
		// A separator: '.', '_', "__" or one or more '-', then alnum.
		j := i
		switch c[i] {
		case '.':
			j++
		case '_':
			j++
			if j < len(c) && c[j] == '_' {
				j++
			}
		case '-':
			for j < len(c) && c[j] == '-' {
				j++
			}
		default:
			return false
		}
		if j >= len(c) || !isLowerAlnum(c[j]) {
			return false
		}
		i = j
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// ParseOptions adjust Parse.
type ParseOptions struct {
	// StoreDir is the local store's directory; empty leaves Dir empty: the
	// default store, found when the reference is opened (store.Dir).
	StoreDir string
}

// Parse parses s:
//
//	oci:DIR[:TAG|@DIGEST]      an OCI layout directory
//	store:NAME[:TAG|@DIGEST]   the local store
//	host[:port]/repo[:tag|@digest]   a registry
//	NAME[:TAG|@DIGEST]         (no "/") the local store
//
// Parsing is pure: it reads no environment and touches no file.
func Parse(s string, opts ...ParseOptions) (Reference, error) {
	var o ParseOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if s == "" {
		return Reference{}, fmt.Errorf("empty reference")
	}
	switch {
	case strings.HasPrefix(s, "oci:"):
		return parseLayout(s, strings.TrimPrefix(s, "oci:"))
	case strings.HasPrefix(s, "store:"):
		return parseStore(s, strings.TrimPrefix(s, "store:"), o.StoreDir)
	case !strings.Contains(s, "/"):
		return parseStore(s, s, o.StoreDir)
	}
	return parseRemote(s)
}

// MustParse is Parse for constants in tests and examples.
func MustParse(s string) Reference {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

func splitTagDigest(orig, rest string) (base, tag, dgst string, err error) {
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest, dgst = rest[:i], rest[i+1:]
		if !validDigest(dgst) {
			return "", "", "", fmt.Errorf("reference %q: digest %q is not sha256:<64 hex>", orig, dgst)
		}
	}
	// The tag follows the last ':' after the last '/'.
	slash := strings.LastIndex(rest, "/")
	if i := strings.LastIndex(rest, ":"); i > slash {
		if dgst != "" {
			return "", "", "", fmt.Errorf("reference %q: give a tag or a digest, not both", orig)
		}
		rest, tag = rest[:i], rest[i+1:]
		if !validTag(tag) {
			return "", "", "", fmt.Errorf("reference %q: invalid tag %q", orig, tag)
		}
	}
	return rest, tag, dgst, nil
}

func parseLayout(orig, rest string) (Reference, error) {
	dir, tag, dgst, err := splitTagDigest(orig, rest)
	if err != nil {
		return Reference{}, err
	}
	if dir == "" {
		return Reference{}, fmt.Errorf("reference %q: no directory after \"oci:\"", orig)
	}
	return Reference{Transport: TransportLayout, Dir: filepath.Clean(dir), Tag: tag, Digest: dgst, TagGiven: tag != ""}, nil
}

func parseStore(orig, rest, dir string) (Reference, error) {
	n, tag, dgst, err := splitTagDigest(orig, rest)
	if err != nil {
		return Reference{}, err
	}
	if !validName(n) {
		return Reference{}, fmt.Errorf("reference %q: invalid store name %q (lowercase letters, digits, '.', '_', '-')", orig, n)
	}
	given := tag != ""
	if tag == "" && dgst == "" {
		tag = "latest"
	}
	return Reference{Transport: TransportStore, Dir: dir, Name: n, Tag: tag, Digest: dgst, TagGiven: given}, nil
}

func parseRemote(s string) (Reference, error) {
	r, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		// StrictValidation refuses a missing tag; accept it and default.
		r, err = name.ParseReference(s)
		if err != nil {
			return Reference{}, fmt.Errorf("reference %q: %w", s, err)
		}
	}
	ref := Reference{Transport: TransportRemote, Name: r.Context().Name()}
	switch v := r.(type) {
	case name.Digest:
		ref.Digest = v.DigestStr()
	case name.Tag:
		ref.Tag = v.TagStr()
		last := s[strings.LastIndex(s, "/")+1:]
		ref.TagGiven = strings.Contains(last, ":")
	}
	return ref, nil
}

// String formats r so that Parse(r.String()) gives r back (for the store,
// the directory is not part of the string). A layout directory whose last
// element holds a ':' is written with a trailing '/', so that the ':' is not
// read as the start of a tag ("oci::/" is the directory ":").
func (r Reference) String() string {
	var b strings.Builder
	switch r.Transport {
	case TransportLayout:
		b.WriteString("oci:" + r.Dir)
		if strings.Contains(r.Dir[strings.LastIndex(r.Dir, "/")+1:], ":") {
			b.WriteString("/")
		}
	case TransportStore:
		b.WriteString("store:" + r.Name)
	default:
		b.WriteString(r.Name)
	}
	if r.Digest != "" {
		b.WriteString("@" + r.Digest)
	} else if r.Tag != "" {
		b.WriteString(":" + r.Tag)
	}
	return b.String()
}

// WithDigest returns r pointing at digest d instead of its tag.
func (r Reference) WithDigest(d string) Reference {
	r.Digest, r.Tag, r.TagGiven = d, "", false
	return r
}

// WithTag returns r pointing at tag t instead of its digest.
func (r Reference) WithTag(t string) Reference {
	r.Tag, r.Digest, r.TagGiven = t, "", true
	return r
}

// RefName is the name an image gets in a layout's index.json
// (org.opencontainers.image.ref.name): the tag for oci: layouts, NAME:TAG in
// the store.
func (r Reference) RefName() string {
	if r.Transport == TransportStore {
		return r.Name + ":" + r.Tag
	}
	return r.Tag
}

// Remote returns the go-containerregistry reference of a registry Reference.
func (r Reference) Remote(opts ...name.Option) (name.Reference, error) {
	if r.Transport != TransportRemote {
		return nil, fmt.Errorf("%s is not a registry reference", r)
	}
	if r.Digest != "" {
		return name.NewDigest(r.Name+"@"+r.Digest, opts...)
	}
	t := r.Tag
	if t == "" {
		t = "latest"
	}
	return name.NewTag(r.Name+":"+t, opts...)
}

// ValidTag reports whether t is a valid tag (letters, digits, '_', '.',
// '-'; at most 128 characters, not starting with '.' or '-').
func ValidTag(t string) bool { return validTag(t) }
