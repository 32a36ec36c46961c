// Package depcheck holds the test that keeps prebake's architecture honest:
// the import rules of DESIGN.md, checked on every `go test ./...`.
package depcheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/prebake/prebake"

// rule forbids packages under dir (non-test files) from importing any import
// path with one of the prefixes.
type rule struct {
	dir       string
	forbidden []string
	why       string
}

var rules = []rule{
	{"builder", []string{module + "/registry", module + "/signing", module + "/cloudinit", module + "/internal/cli"}, "builder produces images; moving them is registry's job"},
	{"registry", []string{module + "/builder", module + "/internal/cli"}, "registry moves images; it does not build them"},
	{"recipes", []string{module + "/builder", module + "/registry", module + "/signing", module + "/cloudinit", module + "/internal/cli"}, "recipes is the bottom of the graph"},
	{"cloudinit", []string{module + "/registry", module + "/builder", module + "/signing", module + "/internal/cli"}, "Render is pure: the CLI resolves images, not the renderer"},
	{"signing", []string{module + "/builder", module + "/internal/cli"}, "signing works on references, not builds"},
	{"ospkg", []string{module + "/registry", module + "/signing", module + "/builder", module + "/cloudinit", module + "/disk", module + "/apply", module + "/internal/cli"}, "ospkg reads package databases; it neither moves images nor installs"},
	{"apply", []string{module + "/builder", module + "/cloudinit", module + "/disk", module + "/internal/cli"}, "apply consumes images by digest; it does not build or export them"},
	{"lock", []string{module + "/registry", module + "/signing", module + "/cloudinit", module + "/internal/cli", module + "/builder/archive"}, "lock finds checksums; it may only download (builder/fetch)"},
}

func imports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("parsing %s: %v", p, err)
			return nil
		}
		for _, i := range f.Imports {
			path, _ := strconv.Unquote(i.Path.Value)
			out[p] = append(out[p], path)
		}
		return nil
	})
	return out
}

func TestImportRules(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, r := range rules {
		for file, imps := range imports(t, filepath.Join(root, r.dir)) {
			for _, imp := range imps {
				for _, f := range r.forbidden {
					if imp == f || strings.HasPrefix(imp, f+"/") {
						t.Errorf("%s imports %s: %s", file, imp, r.why)
					}
				}
			}
		}
	}
}

// Only internal/cli imports cobra; only packer/ imports the Packer SDK.
func TestOnlyCLIImportsCobra(t *testing.T) {
	root := filepath.Join("..", "..")
	for file, imps := range imports(t, root) {
		rel, _ := filepath.Rel(root, file)
		for _, imp := range imps {
			if strings.HasPrefix(imp, "github.com/spf13/cobra") && !strings.HasPrefix(rel, filepath.Join("internal", "cli")+string(os.PathSeparator)) {
				t.Errorf("%s imports cobra: only internal/cli may", rel)
			}
			if strings.HasPrefix(imp, "github.com/hashicorp/packer-plugin-sdk") && !strings.HasPrefix(rel, "packer"+string(os.PathSeparator)) {
				t.Errorf("%s imports the Packer SDK: only packer/ may", rel)
			}
		}
	}
}

// Every package has a doc comment saying what it is for.
func TestPackagesHaveDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	docs := map[string]bool{}
	dirs := map[string]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || d.Name() == "packer" || d.Name() == "_out") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return nil
		}
		dir := filepath.Dir(p)
		dirs[dir] = true
		if f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name) || f.Name.Name == "main" && f.Doc != nil {
			docs[dir] = true
		}
		return nil
	})
	for d := range dirs {
		if !docs[d] {
			t.Errorf("package in %s has no doc comment (\"// Package x ...\")", d)
		}
	}
}
