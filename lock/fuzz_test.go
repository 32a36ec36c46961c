package lock

import (
	"strings"
	"testing"
)

// FuzzParseChecksumFile: upstream checksum files are outside bytes. Any
// content gives a 64-hex sha256 or an error, never a panic.
func FuzzParseChecksumFile(f *testing.F) {
	h := strings.Repeat("ab", 32)
	for _, s := range []string{h, h + "\n", h + "  kubelet\n", h + " *kubelet\n" + strings.Repeat("cd", 32) + "  kubectl\n", "# comment\n" + h + "  ./kubelet", "not hex", ""} {
		f.Add([]byte(s), "kubelet", true)
		f.Add([]byte(s), "kubelet", false)
	}
	f.Fuzz(func(t *testing.T, b []byte, name string, perFile bool) {
		sum, err := parseChecksumFile(b, name, perFile)
		if err != nil {
			return
		}
		if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
			t.Fatalf("accepted %q as a sha256", sum)
		}
	})
}
