package recipes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Lock pins the checksum of every source URL a recipe may fetch, for every
// version and platform it supports. A recipe's lock lives next to it:
// recipe.yaml -> recipe.lock.yaml.
type Lock struct {
	APIVersion string         `yaml:"apiVersion" json:"apiVersion"`
	Kind       string         `yaml:"kind" json:"kind"`
	Sources    []LockedSource `yaml:"sources" json:"sources"`
	// Images pins the digest of every image reference (images components).
	Images []LockedImage `yaml:"images,omitempty" json:"images,omitempty"`

	byURL map[string]string
}

// LockedSource is one URL, its sha256 (hex) and, when known, its size.
type LockedSource struct {
	URL    string `yaml:"url" json:"url"`
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Size in bytes, recorded when prebake lock downloaded the source
	// (--verify-downloads). A build refuses a download of another size and
	// reads no more than this many bytes.
	Size int64 `yaml:"size,omitempty" json:"size,omitempty"`
}

// LockedImage is one image reference and its digest (sha256:…).
type LockedImage struct {
	Ref    string `yaml:"ref" json:"ref"`
	Digest string `yaml:"digest" json:"digest"`
}

// ImageDigest returns the locked digest of the image reference ref.
func (l *Lock) ImageDigest(ref string) (string, bool) {
	if l == nil {
		return "", false
	}
	for _, i := range l.Images {
		if i.Ref == ref {
			return i.Digest, true
		}
	}
	return "", false
}

// AddImage records ref's digest, replacing an older one.
func (l *Lock) AddImage(ref, digest string) {
	for i := range l.Images {
		if l.Images[i].Ref == ref {
			l.Images[i].Digest = digest
			return
		}
	}
	l.Images = append(l.Images, LockedImage{Ref: ref, Digest: digest})
	slices.SortFunc(l.Images, func(a, b LockedImage) int { return strings.Compare(a.Ref, b.Ref) })
}

// LockPath is where the lock file of the recipe at path lives.
func LockPath(recipePath string) string {
	ext := filepath.Ext(recipePath)
	return strings.TrimSuffix(recipePath, ext) + ".lock" + ext
}

// LoadLock reads a lock file strictly. A missing file gives (nil, nil) when
// optional is true.
func LoadLock(path string, optional bool) (*Lock, error) {
	b, err := os.ReadFile(path)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	return ParseLock(path, b)
}

// ParseLock parses a lock file, reporting every problem.
func ParseLock(file string, b []byte) (*Lock, error) {
	p := &problems{file: file, pos: positions{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		p.list = append(p.list, yamlSyntaxProblem(file, err))
		return nil, p.err()
	}
	l := &Lock{}
	if doc.Kind == 0 {
		p.add("", "empty lock file")
		return nil, p.err()
	}
	strictWalk(&doc, reflect.TypeFor[Lock](), "", p)
	decodeInto(&doc, l, p)
	if l.APIVersion != APIVersion {
		p.add("apiVersion", "unsupported apiVersion %q (want %q)", l.APIVersion, APIVersion)
	}
	if l.Kind != "Lock" {
		p.add("kind", "kind must be Lock, not %q", l.Kind)
	}
	l.byURL = map[string]string{}
	for i, s := range l.Sources {
		f := fmt.Sprintf("sources[%d]", i)
		if !hexRE.MatchString(s.SHA256) {
			p.add(f+".sha256", "sha256 must be 64 lowercase hex digits, got %q", s.SHA256)
		}
		if s.Size < 0 {
			p.add(f+".size", "size must not be negative, got %d", s.Size)
		}
		if prev, ok := l.byURL[s.URL]; ok && prev != s.SHA256 {
			p.add(f+".url", "%s is listed twice with different checksums", s.URL)
		}
		l.byURL[s.URL] = s.SHA256
	}
	seenImages := map[string]string{}
	for i, im := range l.Images {
		f := fmt.Sprintf("images[%d]", i)
		if !imageDigestRE.MatchString(im.Digest) {
			p.add(f+".digest", "digest must be sha256: and 64 lowercase hex digits, got %q", im.Digest)
		}
		if prev, ok := seenImages[im.Ref]; ok && prev != im.Digest {
			p.add(f+".ref", "%s is listed twice with different digests", im.Ref)
		}
		seenImages[im.Ref] = im.Digest
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return l, nil
}

// SHA256 returns the locked checksum of url.
func (l *Lock) SHA256(url string) (string, bool) {
	if l == nil {
		return "", false
	}
	if l.byURL == nil {
		l.byURL = map[string]string{}
		for _, s := range l.Sources {
			l.byURL[s.URL] = s.SHA256
		}
	}
	s, ok := l.byURL[url]
	return s, ok
}

// Size returns the locked size of url, 0 when unknown.
func (l *Lock) Size(url string) int64 {
	if l == nil {
		return 0
	}
	for _, s := range l.Sources {
		if s.URL == url {
			return s.Size
		}
	}
	return 0
}

// SetSize records url's size; url must be in the lock already.
func (l *Lock) SetSize(url string, size int64) {
	for i := range l.Sources {
		if l.Sources[i].URL == url {
			l.Sources[i].Size = size
		}
	}
}

// Add records url's checksum, replacing an older one.
func (l *Lock) Add(url, sha string) {
	l.SHA256("") // build the map
	if _, ok := l.byURL[url]; ok {
		for i := range l.Sources {
			if l.Sources[i].URL == url && l.Sources[i].SHA256 != sha {
				l.Sources[i].SHA256, l.Sources[i].Size = sha, 0
			}
		}
	} else {
		l.Sources = append(l.Sources, LockedSource{URL: url, SHA256: sha})
	}
	l.byURL[url] = sha
	slices.SortFunc(l.Sources, func(a, b LockedSource) int { return strings.Compare(a.URL, b.URL) })
}

// Marshal renders the lock file deterministically.
func (l *Lock) Marshal() ([]byte, error) {
	if l.APIVersion == "" {
		l.APIVersion = APIVersion
	}
	if l.Kind == "" {
		l.Kind = "Lock"
	}
	return yaml.Marshal(l)
}
