// Package lazyre holds regular expressions that are compiled on first use.
//
// Every prebake command pays the package initialisation of every package
// linked into the binary; a package-level regexp.MustCompile costs each
// command its compilation even when the command never matches the pattern
// (a pull paid ~8 ms of CPU for the patterns of recipes, cloudinit and
// signing). A Regexp here compiles once, when first used, and Check
// compiles every one declared so a test can prove the patterns valid.
package lazyre

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
)

// Regexp is a pattern compiled when first used.
type Regexp struct {
	expr string
	re   func() *regexp.Regexp
}

var (
	mu  sync.Mutex
	all []*Regexp
)

// New declares a pattern (a package-level var); it panics on first use if
// expr does not compile, as regexp.MustCompile would at start-up.
func New(expr string) *Regexp {
	r := &Regexp{expr: expr, re: sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })}
	mu.Lock()
	all = append(all, r)
	mu.Unlock()
	return r
}

// Check compiles every pattern declared so far and reports those that do
// not compile.
func Check() error {
	mu.Lock()
	rs := append([]*Regexp(nil), all...)
	mu.Unlock()
	var errs []error
	for _, r := range rs {
		if _, err := regexp.Compile(r.expr); err != nil {
			errs = append(errs, fmt.Errorf("pattern %q: %w", r.expr, err))
		}
	}
	return errors.Join(errs...)
}

// Regexp returns the compiled pattern.
func (r *Regexp) Regexp() *regexp.Regexp { return r.re() }

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.re().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.re().FindStringSubmatch(s) }

// ReplaceAllString is regexp.Regexp.ReplaceAllString.
func (r *Regexp) ReplaceAllString(src, repl string) string { return r.re().ReplaceAllString(src, repl) }
