package lazyre

import (
	"strings"
	"testing"
)

func TestCompilesOnFirstUseOnce(t *testing.T) {
	r := New(`^a+b$`)
	if !r.MatchString("aab") || r.MatchString("ba") {
		t.Fatal("MatchString disagrees with the pattern")
	}
	if first, again := r.Regexp(), r.Regexp(); first != again {
		t.Fatal("compiled more than once")
	}
	if got := r.FindStringSubmatch("aab"); len(got) != 1 || got[0] != "aab" {
		t.Fatalf("FindStringSubmatch = %q", got)
	}
	if got := r.ReplaceAllString("aab", "x"); got != "x" {
		t.Fatalf("ReplaceAllString = %q", got)
	}
}

func TestCheckReportsBadPatterns(t *testing.T) {
	New(`(unclosed`)
	err := Check()
	if err == nil || !strings.Contains(err.Error(), `"(unclosed"`) {
		t.Fatalf("Check() = %v, want the bad pattern named", err)
	}
	mu.Lock()
	all = all[:len(all)-1]
	mu.Unlock()
	if err := Check(); err != nil {
		t.Fatalf("Check() after removing it = %v", err)
	}
}
