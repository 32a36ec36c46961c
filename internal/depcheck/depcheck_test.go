// Package depcheck holds the test that keeps prebake's architecture honest:
// the import rules of docs/architecture.md, for every package of both
// modules, checked on every `go test ./...`.
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

// allowed lists, for every package directory of both modules (the root
// module and the Packer plugin's, packer/), the prebake packages its non-test
// files may import: the import rules of docs/architecture.md. A package
// missing here fails the test, so a new package states its place in the
// graph when it is added. Data flows one way, recipe -> image ->
// store/registry -> signature -> render/export; commands sit on top.
var allowed = map[string]struct {
	imports []string
	why     string
}{
	// Leaves: helpers every layer may use.
	"internal/atomicfile": {nil, "a leaf: atomic file writes"},
	"internal/progress":   {nil, "a leaf: progress events"},
	"internal/version":    {nil, "a leaf: the version stamp"},
	"internal/artifact":   {nil, "a leaf: OCI 1.1 artifact manifests"},
	"internal/safepath":   {nil, "a leaf: files read inside a base directory"},
	"internal/lazyre":     {nil, "a leaf: regular expressions compiled on first use"},
	// Recipes: the bottom of the graph.
	"recipes":         {[]string{"internal/"}, "recipes is the bottom of the graph"},
	"recipes/catalog": {[]string{"recipes"}, "the catalog is embedded recipes"},
	// Sources and layers.
	"builder/fetch":   {[]string{"internal/"}, "fetch downloads; it knows no recipe"},
	"builder/archive": {[]string{"internal/"}, "archive reads archives; it knows no recipe"},
	"lock":            {[]string{"recipes", "builder/fetch", "internal/"}, "lock finds checksums; it may only download"},
	"builder":         {[]string{"recipes", "builder/fetch", "builder/archive", "internal/"}, "builder produces images; moving them is registry's job"},
	// Moving images.
	"registry/reference":        {nil, "references are parsed purely: no store, no network"},
	"registry/store":            {[]string{"registry/reference", "internal/"}, "the content store knows layouts and memory, not registries"},
	"registry/remote":           {[]string{"registry/reference", "registry/store", "internal/"}, "the registry client is one Store"},
	"registry/transfer":         {[]string{"registry/store", "internal/"}, "copy works on any two Stores"},
	"registry/unpack":           {[]string{"registry/store", "internal/"}, "unpack applies layers; it neither fetches by reference nor copies"},
	"registry/records":          {[]string{"registry/reference", "registry/store", "internal/"}, "records are artifacts in any Store"},
	"registry":                  {[]string{"recipes", "registry/", "internal/"}, "registry moves images (it reads recipes' annotation names); it does not build, sign or render them"},
	"registry/server":           {[]string{"registry", "internal/"}, "the server stores what registry moves"},
	"registry/server/bootstrap": {nil, "one-time join documents: render issues them without linking the server"},
	// Trust.
	"signing":     {[]string{"registry", "recipes", "internal/"}, "signing works on references, not builds"},
	"signing/kms": {nil, "only registers providers; commands import it"},
	// Outputs of a pulled image.
	"cloudinit": {[]string{"recipes", "agent", "internal/"}, "Render is pure: the CLI resolves images, not the renderer (it writes the agent's payload format)"},
	"render":    {[]string{"cloudinit", "recipes", "registry", "registry/server/bootstrap", "internal/atomicfile"}, "the render command as one call: specs, image annotations, cloudinit, bootstrap tokens, files"},
	// The node agent: its own small binary, nothing of the build side.
	"agent":               {nil, "the agent's payload and join: standard library only, so prebake-agent stays small"},
	"agent/datasource":    {nil, "reads user-data from seeds, config drives, IMDSv2 and files"},
	"cmd/prebake-agent":   {[]string{"agent", "agent/datasource"}, "main of the node agent: no registry or signing code"},
	"internal/agentbuild": {nil, "builds prebake-agent reproducibly (make agent, the catalog lock test)"},
	"disk":                {[]string{"registry", "recipes", "ospkg", "internal/"}, "export reads images (and the osPackages annotation recipes names); it does not build or sign them"},
	"ospkg":               {[]string{"internal/"}, "ospkg reads package databases; it neither moves images nor installs"},
	"apply":               {[]string{"registry", "signing", "recipes", "ospkg", "internal/"}, "apply consumes images by digest; it does not build or export them"},
	// The main job as one call.
	"pipeline": {[]string{"recipes", "builder", "registry", "signing", "internal/progress", "internal/atomicfile"}, "pipeline orders the library steps; it prints and parses no flags"},
	// Front ends.
	"internal/cli": {[]string{"recipes", "builder", "lock", "registry", "signing", "cloudinit", "render", "disk", "pipeline", "apply", "ospkg", "internal/atomicfile", "internal/progress", "internal/version"}, "the CLI calls libraries, never the Packer plugin"},
	"cmd/prebake":  {[]string{"internal/cli", "signing/kms"}, "main wires the CLI"},
	// The registry server's commands, linked only into prebake-serve.
	"internal/servecmd": {[]string{"internal/cli", "registry/server"}, "serve and gc: the only CLI code that links the registry server"},
	"cmd/prebake-serve": {[]string{"internal/cli", "internal/servecmd"}, "main of prebake with the server (what prebake serve and gc run)"},
	// Test harness: only tests import it.
	"internal/testenv":         {nil, "imports nothing of prebake so that every package's own tests can use it"},
	"internal/testenv/fixture": {[]string{"pipeline", "builder", "registry", "signing", "internal/testenv"}, "fixtures for tests"},
	// The Packer plugin (module packer/): thin over the same libraries.
	"packer":                     {[]string{"packer/", "signing/kms"}, "the plugin's main registers its components"},
	"packer/internal/pluginutil": {[]string{"registry", "signing"}, "shared option parsing only"},
	"packer/builder/prebake":     {[]string{"pipeline", "recipes", "builder", "registry", "signing", "packer/internal/pluginutil"}, "the builder is pipeline.Run"},
	"packer/provisioner/prebake": {[]string{"registry", "signing", "recipes", "builder", "packer/internal/pluginutil"}, "the provisioner applies a verified image"},
	"packer/post-processor/push": {[]string{"registry", "signing", "recipes", "disk", "packer/internal/pluginutil"}, "the post-processor publishes disk files"},
	"packer/datasource/image":    {[]string{"registry", "signing", "recipes", "packer/internal/pluginutil"}, "the data source resolves a channel"},
	// Developer tools: free to use anything but the plugin.
	"hack/gendocs":           {[]string{"internal/cli"}, "generates docs/cli"},
	"hack/genlock":           {[]string{"internal/agentbuild"}, "reads Kubespray data, writes recipes/catalog (with the agent's lock entries)"},
	"hack/deps":              {nil, "a dependency listing"},
	"hack/bench-registry":    {nil, "a benchmark peer"},
	"hack/agentbuild":        {[]string{"internal/agentbuild"}, "builds prebake-agent for harnesses"},
	"hack/real/pause":        {nil, "the real-join test's sandbox image program"},
	"hack/real/hello":        {nil, "the real-join test's pod program"},
	"hack/civalidate/tekton": {nil, "validates examples/ci/tekton with Tekton's API (its own module)"},
	"hack/civalidate/argo":   {nil, "validates examples/ci/argo with Argo Workflows' API (its own module)"},
}

func imports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
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
	seen := map[string]bool{}
	for file, imps := range imports(t, root) {
		rel, _ := filepath.Rel(root, filepath.Dir(file))
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "_") || strings.Contains(rel, "/testdata") {
			continue
		}
		seen[rel] = true
		rule, ok := allowed[rel]
		if !ok {
			t.Errorf("%s: package %s has no import rule in depcheck (add it, and its place to docs/architecture.md)", file, rel)
			continue
		}
		for _, imp := range imps {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			p := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !permitted(p, rule.imports) {
				t.Errorf("%s imports %s: %s", file, imp, rule.why)
			}
		}
	}
	if len(seen) < len(allowed)/2 {
		t.Fatalf("read only %d packages: the walk is broken", len(seen))
	}
	for dir := range allowed {
		if !seen[dir] {
			t.Errorf("depcheck has a rule for %s, which holds no package", dir)
		}
	}
}

// permitted reports whether package p (a path below the module) is one of
// the allowed entries or below one.
func permitted(p string, allowed []string) bool {
	for _, a := range allowed {
		if p == a || strings.HasPrefix(p, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

// Only cmd/ and the plugin's main register the cloud KMS providers: no
// library drags four cloud SDKs into its importers.
func TestKMSOnlyInMains(t *testing.T) {
	root := filepath.Join("..", "..")
	for file, imps := range imports(t, root) {
		rel, _ := filepath.Rel(root, filepath.Dir(file))
		rel = filepath.ToSlash(rel)
		for _, imp := range imps {
			if strings.HasPrefix(imp, "github.com/sigstore/sigstore/pkg/signature/kms/") && rel != "signing/kms" {
				t.Errorf("%s imports %s: only signing/kms registers KMS providers", file, imp)
			}
			if imp == module+"/signing/kms" && rel != "cmd/prebake" && rel != "packer" {
				t.Errorf("%s imports signing/kms: only commands (cmd/prebake, the plugin's main) register KMS providers", file)
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
			// hack/deps only pins modules (build tag tools, never compiled).
			if strings.HasPrefix(imp, "github.com/spf13/cobra") && !strings.HasPrefix(rel, filepath.Join("internal", "cli")+string(os.PathSeparator)) && !strings.HasPrefix(rel, filepath.Join("hack", "deps")+string(os.PathSeparator)) {
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
		if d.IsDir() && p != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || d.Name() == "_out") {
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

// docs/architecture.md's import table names every package that has a rule
// here (packer/… and hack/… as groups), so the document cannot fall behind
// the rules.
func TestArchitectureDocNamesEveryPackage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for dir := range allowed {
		name := dir
		for _, group := range []string{"packer/", "hack/"} {
			if strings.HasPrefix(dir, group) {
				name = group + "…"
			}
		}
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/architecture.md does not name %s in its import rules", name)
		}
	}
}
