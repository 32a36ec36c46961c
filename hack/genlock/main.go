// Command genlock writes the lock files and the version matrix of the
// Kubernetes catalog (recipes/catalog) from Kubespray's data: checksums.yml
// (every sha256), download.yml (the download URL templates and how default
// versions are chosen) and main.yml (pause and etcd per Kubernetes minor).
//
//	go run ./hack/genlock -data testdata/kubespray -out recipes/catalog -docs docs/catalog.md
//
// Output is deterministic: the same data gives the same bytes.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/internal/agentbuild"
)

// Minors are the Kubernetes minors the catalog supports.
var minors = []string{"1.34", "1.35", "1.36"}

// arches the catalog builds for.
var arches = []string{"amd64", "arm64"}

// recipeDirs are the catalog recipes that get a lock (all install the same
// downloads).
var recipeDirs = []string{"kubernetes-node", "kubernetes-control-plane"}

func main() {
	data := flag.String("data", "testdata/kubespray", "directory holding kubespray's checksums.yml, download.yml and main.yml")
	out := flag.String("out", "recipes/catalog", "catalog directory (one subdirectory per recipe)")
	docs := flag.String("docs", "", "markdown file whose version matrix (between the genlock markers) is rewritten")
	flag.Parse()
	if err := run(*data, *out, *docs); err != nil {
		fmt.Fprintln(os.Stderr, "genlock:", err)
		os.Exit(1)
	}
}

// Versions is one row of the matrix: a Kubernetes patch version and the
// versions of everything installed with it.
type Versions struct {
	Kubernetes string `yaml:"kubernetes"`
	Containerd string `yaml:"containerd"`
	Runc       string `yaml:"runc"`
	CNI        string `yaml:"cni"`
	Crictl     string `yaml:"crictl"`
	Pause      string `yaml:"pause"`
	Etcd       string `yaml:"etcd"`
}

// checksums is component -> arch -> versions in file order.
type checksums map[string]map[string][]entry

type entry struct{ version, sha string }

func (c checksums) get(comp, arch, version string) (string, error) {
	for _, e := range c[comp][arch] {
		if e.version == version {
			if !regexp.MustCompile(`^[a-f0-9]{64}$`).MatchString(e.sha) {
				return "", fmt.Errorf("%s %s %s: checksum %q is not a sha256", comp, arch, version, e.sha)
			}
			return e.sha, nil
		}
	}
	return "", fmt.Errorf("checksums.yml: no %s checksum for %s on %s", comp, version, arch)
}

func (c checksums) first(comp string) (string, error) {
	l := c[comp]["amd64"]
	if len(l) == 0 {
		return "", fmt.Errorf("checksums.yml: %s has no amd64 versions", comp)
	}
	return l[0].version, nil
}

// firstBelow is kubespray's `keys() | select('version', limit, '<') | first`.
func (c checksums) firstBelow(comp, limit string) (string, error) {
	for _, e := range c[comp]["amd64"] {
		if compareVersions(e.version, limit) < 0 {
			return e.version, nil
		}
	}
	return "", fmt.Errorf("checksums.yml: no %s version below %s", comp, limit)
}

func run(data, out, docs string) error {
	sums, err := readChecksums(filepath.Join(data, "checksums.yml"))
	if err != nil {
		return err
	}
	urls, err := readURLTemplates(filepath.Join(data, "download.yml"))
	if err != nil {
		return err
	}
	pause, etcdLimits, err := readMain(filepath.Join(data, "main.yml"))
	if err != nil {
		return err
	}
	// Defaults as download.yml derives them: the first key of the amd64 list.
	containerd, err := sums.first("containerd_archive_checksums")
	if err != nil {
		return err
	}
	runc, err := sums.first("runc_checksums")
	if err != nil {
		return err
	}
	cni, err := sums.first("cni_binary_checksums")
	if err != nil {
		return err
	}

	var matrix []Versions
	for _, e := range sums["kubelet_checksums"]["amd64"] {
		v := e.version
		m := minorOf(v)
		if !slices.Contains(minors, m) || strings.Contains(v, "-") {
			continue
		}
		next := nextMinor(m)
		crictl, err := sums.firstBelow("crictl_checksums", next)
		if err != nil {
			return err
		}
		if minorOf(crictl) != m {
			return fmt.Errorf("crictl for Kubernetes %s is %s, not of the same minor", v, crictl)
		}
		p, ok := pause[m]
		if !ok {
			return fmt.Errorf("main.yml: no pod_infra_supported_versions entry for %s", m)
		}
		etcd := ""
		if lim, ok := etcdLimits[m]; ok {
			if etcd, err = sums.firstBelow("etcd_binary_checksums", lim); err != nil {
				return err
			}
		}
		matrix = append(matrix, Versions{Kubernetes: v, Containerd: containerd, Runc: runc, CNI: cni, Crictl: crictl, Pause: p, Etcd: etcd})
	}
	if len(matrix) == 0 {
		return errors.New("no Kubernetes versions of the supported minors in checksums.yml")
	}
	slices.SortFunc(matrix, func(a, b Versions) int { return -compareVersions(a.Kubernetes, b.Kubernetes) })

	// The lock: every download of every version on every arch.
	type src struct{ urlKey, sumKey, version string }
	lock := map[string]string{}
	for _, row := range matrix {
		for _, arch := range arches {
			for _, s := range []src{
				{"kubelet_download_url", "kubelet_checksums", row.Kubernetes},
				{"kubeadm_download_url", "kubeadm_checksums", row.Kubernetes},
				{"kubectl_download_url", "kubectl_checksums", row.Kubernetes},
				{"containerd_download_url", "containerd_archive_checksums", row.Containerd},
				{"runc_download_url", "runc_checksums", row.Runc},
				{"cni_download_url", "cni_binary_checksums", row.CNI},
				{"crictl_download_url", "crictl_checksums", row.Crictl},
			} {
				sha, err := sums.get(s.sumKey, arch, s.version)
				if err != nil {
					return err
				}
				vars := map[string]string{
					"kube_version": row.Kubernetes, "containerd_version": row.Containerd, "runc_version": row.Runc,
					"cni_version": row.CNI, "crictl_version": row.Crictl, "image_arch": arch,
				}
				u, err := expandURL(urls, s.urlKey, vars)
				if err != nil {
					return err
				}
				if prev, ok := lock[u]; ok && prev != sha {
					return fmt.Errorf("%s: two checksums (%s, %s)", u, prev, sha)
				}
				lock[u] = sha
			}
		}
	}
	// prebake-agent's entries are not Kubespray's: they pin this
	// repository's own build (make agent-lock) and are kept as they are.
	if prev, err := os.ReadFile(filepath.Join(out, recipeDirs[0], "recipe.lock.yaml")); err == nil {
		for u, sum := range agentbuild.Entries(prev) {
			lock[u] = sum
		}
	}
	var lb bytes.Buffer
	lb.WriteString("# Generated by hack/genlock from Kubespray's checksums.yml; do not edit.\n")
	lb.WriteString("# Every download of every supported Kubernetes version on amd64 and arm64.\n")
	lb.WriteString("apiVersion: prebake.dev/v1alpha1\nkind: Lock\nsources:\n")
	keys := make([]string, 0, len(lock))
	for k := range lock {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&lb, "  - url: %s\n    sha256: %s\n", k, lock[k])
	}
	for _, d := range recipeDirs {
		if err := writeFile(filepath.Join(out, d, "recipe.lock.yaml"), lb.Bytes()); err != nil {
			return err
		}
	}

	var vb bytes.Buffer
	vb.WriteString("# Generated by hack/genlock from Kubespray's data; do not edit.\n")
	vb.WriteString("# The versions installed with each supported Kubernetes version (newest first).\n")
	mb, err := yaml.Marshal(map[string][]Versions{"versions": matrix})
	if err != nil {
		return err
	}
	vb.Write(mb)
	if err := writeFile(filepath.Join(out, "versions.yaml"), vb.Bytes()); err != nil {
		return err
	}
	if docs != "" {
		return rewriteDocs(docs, matrix)
	}
	return nil
}

const beginMarker, endMarker = "<!-- BEGIN genlock matrix -->", "<!-- END genlock matrix -->"

func rewriteDocs(path string, matrix []Versions) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: markers %q and %q not found", path, beginMarker, endMarker)
	}
	var t strings.Builder
	t.WriteString(beginMarker + "\n")
	t.WriteString("| Kubernetes | containerd | runc | CNI plugins | crictl | pause | etcd (control plane) |\n")
	t.WriteString("|---|---|---|---|---|---|---|\n")
	for _, v := range matrix {
		fmt.Fprintf(&t, "| %s | %s | %s | %s | %s | %s | %s |\n", v.Kubernetes, v.Containerd, v.Runc, v.CNI, v.Crictl, v.Pause, v.Etcd)
	}
	return writeFile(path, []byte(s[:i]+t.String()+s[j:]))
}

// writeFile writes durably: temp file, fsync, rename, fsync the directory.
func writeFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".genlock-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readChecksums keeps the order of versions as written (kubespray's defaults
// are "the first key").
func readChecksums(path string) (checksums, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a mapping", path)
	}
	out := checksums{}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		comp, archs := top.Content[i].Value, top.Content[i+1]
		if archs.Kind != yaml.MappingNode {
			continue
		}
		out[comp] = map[string][]entry{}
		for j := 0; j+1 < len(archs.Content); j += 2 {
			arch, vers := archs.Content[j].Value, archs.Content[j+1]
			if vers.Kind != yaml.MappingNode {
				continue
			}
			for k := 0; k+1 < len(vers.Content); k += 2 {
				out[comp][arch] = append(out[comp][arch], entry{
					version: vers.Content[k].Value,
					sha:     strings.TrimPrefix(vers.Content[k+1].Value, "sha256:"),
				})
			}
		}
	}
	return out, nil
}

// readURLTemplates returns the *_download_url templates and the base URLs.
func readURLTemplates(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok && (strings.HasSuffix(k, "_download_url") || k == "github_url" || k == "dl_k8s_io_url") {
			out[k] = s
		}
	}
	return out, nil
}

var exprRE = regexp.MustCompile(`\{\{\s*(.*?)\s*\}\}`)

// expandURL evaluates the few Jinja expressions kubespray's URL templates use.
// Anything else is an error, so a changed template is noticed.
func expandURL(urls map[string]string, key string, vars map[string]string) (string, error) {
	t, ok := urls[key]
	if !ok {
		return "", fmt.Errorf("download.yml: no %s", key)
	}
	var bad error
	s := exprRE.ReplaceAllStringFunc(t, func(m string) string {
		e := exprRE.FindStringSubmatch(m)[1]
		switch {
		case e == "github_url" || e == "dl_k8s_io_url":
			return urls[e]
		case e == "ansible_facts['system'] | lower":
			return "linux"
		case e == "'static-' if containerd_static_binary":
			return "" // kubespray's default: containerd_static_binary false
		}
		if v, ok := vars[e]; ok {
			return v
		}
		bad = fmt.Errorf("download.yml: %s: cannot evaluate {{ %s }}", key, e)
		return ""
	})
	return s, bad
}

var (
	pauseRE = regexp.MustCompile(`^\s+'(\d+\.\d+)':\s*'([^']+)'`)
	etcdRE  = regexp.MustCompile(`^\s+'(\d+\.\d+)':\s*".*select\('version', '([0-9.]+)', '<'\)\)\[0\]`)
)

// readMain reads pod_infra_supported_versions and the version limits of
// etcd_supported_versions from main.yml.
func readMain(path string) (pause, etcd map[string]string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	pause, etcd = map[string]string{}, map[string]string{}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" && line[0] != ' ' {
			section, _, _ = strings.Cut(line, ":")
			continue
		}
		switch section {
		case "pod_infra_supported_versions":
			if m := pauseRE.FindStringSubmatch(line); m != nil {
				pause[m[1]] = m[2]
			}
		case "etcd_supported_versions":
			if m := etcdRE.FindStringSubmatch(line); m != nil {
				etcd[m[1]] = m[2]
			}
		}
	}
	if len(pause) == 0 {
		return nil, nil, fmt.Errorf("%s: no pod_infra_supported_versions", path)
	}
	return pause, etcd, nil
}

func minorOf(v string) string {
	p := strings.SplitN(v, ".", 3)
	if len(p) < 2 {
		return v
	}
	return p[0] + "." + p[1]
}

func nextMinor(m string) string {
	maj, min, _ := strings.Cut(m, ".")
	n, _ := strconv.Atoi(min)
	return maj + "." + strconv.Itoa(n+1)
}

// compareVersions compares dotted numeric versions (1.36.4 > 1.36).
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
