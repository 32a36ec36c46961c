package pipeline

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// VersionRange selects Kubernetes versions: comparisons that must all hold
// (">=1.35", "<1.36.3"), or version prefixes of which one must match ("1.35"
// is every 1.35 patch release, "1.36.4" that release). Terms are separated by
// commas or spaces; a range may mix both kinds. The zero value matches every
// version.
type VersionRange struct {
	src      string
	compares []versionCompare
	prefixes []version
}

type versionCompare struct {
	op string
	v  version
}

// version is a dotted numeric version; a missing part is unset (prefix).
type version []int

func parseVersion(s string) (version, error) {
	s = strings.TrimPrefix(s, "v")
	parts := strings.Split(s, ".")
	if s == "" || len(parts) > 3 {
		return nil, fmt.Errorf("%q is not a version (MAJOR[.MINOR[.PATCH]])", s)
	}
	v := make(version, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return nil, fmt.Errorf("%q is not a version (MAJOR[.MINOR[.PATCH]])", s)
		}
		v[i] = n
	}
	return v, nil
}

// compare compares a with b on b's parts: 1.35.2 equals the prefix 1.35.
func (a version) compare(b version) int {
	for i := range b {
		x := 0
		if i < len(a) {
			x = a[i]
		}
		if x != b[i] {
			if x < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// ParseVersionRange parses a --versions value.
func ParseVersionRange(s string) (VersionRange, error) {
	r := VersionRange{src: s}
	for _, t := range strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' }) {
		op := ""
		for _, o := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(t, o) {
				op = o
				break
			}
		}
		v, err := parseVersion(strings.TrimPrefix(t, op))
		if err != nil {
			return VersionRange{}, fmt.Errorf("%w %q: %v", ErrVersionRange, s, err)
		}
		if op == "" || op == "=" {
			r.prefixes = append(r.prefixes, v)
		} else {
			r.compares = append(r.compares, versionCompare{op, v})
		}
	}
	if len(r.compares) == 0 && len(r.prefixes) == 0 && strings.TrimSpace(s) != "" {
		return VersionRange{}, fmt.Errorf("%w %q: no version in it", ErrVersionRange, s)
	}
	return r, nil
}

func (r VersionRange) String() string { return r.src }

// Match reports whether the version s is in the range; a string that is not
// a version matches only the empty range.
func (r VersionRange) Match(s string) bool {
	if len(r.compares) == 0 && len(r.prefixes) == 0 {
		return true
	}
	v, err := parseVersion(s)
	if err != nil {
		return false
	}
	for _, c := range r.compares {
		d := v.compare(c.v)
		ok := map[string]bool{">=": d >= 0, "<=": d <= 0, ">": d > 0, "<": d < 0}[c.op]
		if !ok {
			return false
		}
	}
	if len(r.prefixes) == 0 {
		return true
	}
	for _, p := range r.prefixes {
		if v.compare(p) == 0 {
			return true
		}
	}
	return false
}

// minorOf is MAJOR.MINOR of a version string, or s itself.
func minorOf(s string) string {
	parts := strings.SplitN(strings.TrimPrefix(s, "v"), ".", 3)
	if len(parts) < 2 {
		return s
	}
	return parts[0] + "." + parts[1]
}

// lessVersion orders version strings numerically, non-versions last by text.
func lessVersion(a, b string) bool {
	va, ea := parseVersion(a)
	vb, eb := parseVersion(b)
	if ea != nil || eb != nil {
		if (ea == nil) != (eb == nil) {
			return ea == nil
		}
		return a < b
	}
	return va.compare(vb) < 0 || (va.compare(vb) == 0 && len(va) < len(vb))
}

// CompactVersions summarises versions as one range per minor, newest
// first: 1.36.0-1.36.4, 1.35.0-1.35.8, … ("1.34.2" alone when a minor has one
// version, "1.34.0-1.34.3 (not 1.34.2)" when the patch releases have a gap).
func CompactVersions(vs []string) []string {
	byMinor := map[string][]string{}
	var minors []string
	for _, v := range vs {
		m := minorOf(v)
		if _, ok := byMinor[m]; !ok {
			minors = append(minors, m)
		}
		byMinor[m] = append(byMinor[m], v)
	}
	sort.Slice(minors, func(i, j int) bool { return lessVersion(minors[j], minors[i]) })
	var out []string
	for _, m := range minors {
		l := byMinor[m]
		sort.Slice(l, func(i, j int) bool { return lessVersion(l[i], l[j]) })
		if len(l) == 1 {
			out = append(out, l[0])
			continue
		}
		s := l[0] + "-" + l[len(l)-1]
		lo, err1 := parseVersion(l[0])
		hi, err2 := parseVersion(l[len(l)-1])
		if err1 == nil && err2 == nil && len(lo) == 3 && len(hi) == 3 {
			have := map[string]bool{}
			for _, v := range l {
				have[v] = true
			}
			var gaps []string
			for p := lo[2] + 1; p < hi[2]; p++ {
				if v := fmt.Sprintf("%d.%d.%d", lo[0], lo[1], p); !have[v] {
					gaps = append(gaps, v)
				}
			}
			if len(gaps) > 0 {
				s += " (not " + strings.Join(gaps, ", ") + ")"
			}
		}
		out = append(out, s)
	}
	return out
}
