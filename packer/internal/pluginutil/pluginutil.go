// Package pluginutil holds what the plugin's components share: parsing and
// checking image references and key passwords, and reporting configuration
// problems the way Packer shows them. It must stay free of any component's
// logic; the work itself belongs to prebake's libraries.
package pluginutil

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/hcl2helper"
	"github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

// Problems collects configuration errors so that Prepare reports all of them
// at once.
type Problems struct{ errs []error }

// Addf records one problem, naming the option it is about.
func (p *Problems) Addf(option, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", option, fmt.Sprintf(format, args...)))
}

// Add records err (when not nil) against option.
func (p *Problems) Add(option string, err error) {
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: %w", option, err))
	}
}

// Err returns the collected problems, or nil.
func (p *Problems) Err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &packer.MultiError{Errors: p.errs}
}

// ParseDigestRef parses s as a prebake reference that must name its image by
// digest (REF@sha256:…). A tag is refused: what a template applies or
// publishes must be exactly what was tested.
func ParseDigestRef(s string) (registry.Reference, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return ref, err
	}
	if ref.Digest == "" {
		what := "no digest"
		if ref.Tag != "" {
			what = "a tag (" + ref.Tag + ")"
		}
		return ref, fmt.Errorf("%q names the image by %s; name it by digest, REF@sha256:… (`prebake ls` or the prebake-image data source gives the digest)", s, what)
	}
	return ref, nil
}

// ParseRepoRef parses s as a destination or repository reference; a digest
// is refused because a destination is named by a tag, or by nothing.
func ParseRepoRef(s string) (registry.Reference, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return ref, err
	}
	if ref.Digest != "" {
		return ref, fmt.Errorf("%q: a destination is named by a repository or tag, not a digest", s)
	}
	return ref, nil
}

// Password returns the PassFunc for a private key: the configured password
// when set, else $COSIGN_PASSWORD, else the empty password.
func Password(configured string) signing.PassFunc {
	return func(bool) ([]byte, error) {
		if configured != "" {
			return []byte(configured), nil
		}
		if p, ok := signing.EnvPassword(); ok {
			return p, nil
		}
		return nil, nil
	}
}

// CheckKeyFile reports a key reference that names a missing local file
// (env:// and KMS URIs are checked when used).
func CheckKeyFile(key string) error {
	if key == "" || hasScheme(key) {
		return nil
	}
	if _, err := os.Stat(key); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("key file %s does not exist", key)
		}
		return err
	}
	return nil
}

func hasScheme(s string) bool {
	for i, c := range s {
		if c == ':' {
			return i > 0 && len(s) > i+2 && s[i+1] == '/' && s[i+2] == '/'
		}
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return false
}

// Unknown reports whether s is the placeholder Packer passes for a value it
// does not know yet: a data source output during `packer validate` (without
// -evaluate-datasources). Such a value is checked when it is known, at build.
func Unknown(s string) bool {
	return s == "<unknown>" || s == hcl2helper.UnknownVariableValue
}
