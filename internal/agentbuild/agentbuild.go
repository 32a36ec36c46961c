// Package agentbuild builds prebake-agent release binaries reproducibly and
// keeps the catalog locks' entries for them in step: the same source and Go
// toolchain give the same bytes on any machine (static, -trimpath, no build
// ID, no VCS stamp), so anyone can check a published asset against the lock.
// hack/agentbuild (make agent) and the catalog test use it.
package agentbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ReleaseURL is the release asset's URL prefix; the catalog recipes append
// agent-vVERSION/prebake-agent-linux-ARCH.
const ReleaseURL = "https://github.com/prebake/prebake/releases/download/"

// Arches the catalog builds.
var Arches = []string{"amd64", "arm64"}

// AssetPath is an asset's path under the release prefix (and under a
// `make agent` output directory).
func AssetPath(version, arch string) string {
	return fmt.Sprintf("agent-v%s/prebake-agent-linux-%s", version, arch)
}

var versionRE = regexp.MustCompile(`(?m)^const Version = "([^"]+)"$`)

// Version reads cmd/prebake-agent's Version from the source under root.
func Version(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "cmd/prebake-agent/main.go"))
	if err != nil {
		return "", err
	}
	m := versionRE.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("cmd/prebake-agent/main.go: no `const Version = \"…\"`")
	}
	return string(m[1]), nil
}

// GoVersion is the toolchain the build uses: go.mod's go line (GOTOOLCHAIN
// is set to it, so a different local Go fetches that one or fails).
func GoVersion(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("go.mod: no `go X.Y.Z` line")
	}
	return "go" + string(m[1]), nil
}

// Build writes the linux/ARCH binary to out and returns its sha256 (hex).
func Build(ctx context.Context, root, arch, out string) (string, error) {
	gv, err := GoVersion(root)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid= -s -w", "-o", tmp, "./cmd/prebake-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOTOOLCHAIN="+gv, "GOFLAGS=-buildvcs=false", "GOAMD64=v1", "GOARM64=v8.0")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build prebake-agent linux/%s: %v\n%s", arch, err, b)
	}
	b, err := os.ReadFile(tmp)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// entryRE matches one lock entry for an agent asset.
var entryRE = regexp.MustCompile(`(?m)^  - url: ` + regexp.QuoteMeta(ReleaseURL) + `agent-v[^\n]*\n    sha256: [0-9a-f]{64}\n`)

// Entries returns the agent URLs and sha256s in a lock file's text.
func Entries(lock []byte) map[string]string {
	out := map[string]string{}
	for _, m := range entryRE.FindAll(lock, -1) {
		lines := strings.Split(strings.TrimSpace(string(m)), "\n")
		out[strings.TrimPrefix(strings.TrimSpace(lines[0]), "- url: ")] = strings.TrimPrefix(strings.TrimSpace(lines[1]), "sha256: ")
	}
	return out
}

// SetEntries replaces a lock file's agent entries with sums (URL -> sha256),
// keeping every other entry and the URL order.
func SetEntries(lock []byte, sums map[string]string) []byte {
	lock = entryRE.ReplaceAll(lock, nil)
	type entry struct{ url, text string }
	head, rest, _ := bytes.Cut(lock, []byte("sources:\n"))
	var es []entry
	// Split the remaining entries (each "  - url: …\n    sha256: …\n").
	re := regexp.MustCompile(`(?m)^  - url: (\S+)\n    sha256: [0-9a-f]{64}\n`)
	for _, m := range re.FindAllSubmatch(rest, -1) {
		es = append(es, entry{string(m[1]), string(m[0])})
	}
	for u, s := range sums {
		es = append(es, entry{u, fmt.Sprintf("  - url: %s\n    sha256: %s\n", u, s)})
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].url < es[j].url })
	var b bytes.Buffer
	b.Write(head)
	b.WriteString("sources:\n")
	for _, e := range es {
		b.WriteString(e.text)
	}
	return b.Bytes()
}
