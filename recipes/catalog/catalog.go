// Package catalog holds the recipes prebake ships (kubernetes-node,
// kubernetes-control-plane), embedded in the binary with their lock files and
// the version matrix hack/genlock generates from Kubespray's data.
//
// A catalog recipe is built by name with only the Kubernetes version chosen:
// Variables fills in the containerd, runc, CNI, crictl and pause versions that
// go with it, and refuses a version whose downloads are not in the lock.
package catalog

import (
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/prebake/prebake/recipes"
)

//go:embed versions.yaml kubernetes-node kubernetes-control-plane
var files embed.FS

// FS is the catalog: one directory per recipe (recipe.yaml, recipe.lock.yaml,
// files/) and versions.yaml.
func FS() fs.FS { return files }

// Versions is one row of the version matrix: a supported Kubernetes patch
// version and the versions installed with it.
type Versions struct {
	Kubernetes string `yaml:"kubernetes" json:"kubernetes"`
	Containerd string `yaml:"containerd" json:"containerd"`
	Runc       string `yaml:"runc" json:"runc"`
	CNI        string `yaml:"cni" json:"cni"`
	Crictl     string `yaml:"crictl" json:"crictl"`
	Pause      string `yaml:"pause" json:"pause"`
	// Etcd is the etcd version Kubespray pairs with this minor (informational:
	// a control plane runs etcd from its image).
	Etcd string `yaml:"etcd,omitempty" json:"etcd,omitempty"`
}

// variables maps the row to the recipe variables it sets.
func (v Versions) variables() map[string]string {
	return map[string]string{
		"kubernetes": v.Kubernetes, "containerd": v.Containerd, "runc": v.Runc,
		"cni": v.CNI, "crictl": v.Crictl, "pause": v.Pause,
	}
}

var matrix = sync.OnceValues(func() ([]Versions, error) {
	b, err := files.ReadFile("versions.yaml")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Versions []Versions `yaml:"versions"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("catalog versions.yaml: %w", err)
	}
	return doc.Versions, nil
})

// Matrix returns the version matrix, newest Kubernetes version first.
func Matrix() ([]Versions, error) {
	m, err := matrix()
	return slices.Clone(m), err
}

// List returns the names of the catalog recipes, sorted.
func List() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		if _, err := fs.Stat(files, path.Join(e.Name(), "recipe.yaml")); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// Has reports whether name is a catalog recipe.
func Has(name string) bool { return slices.Contains(List(), name) }

// Entry is a loaded catalog recipe with its lock.
type Entry struct {
	Name   string
	Recipe *recipes.Recipe
	Lock   *recipes.Lock

	once      sync.Once
	supported []Versions
	err       error
}

// Get loads the catalog recipe name and its lock.
func Get(name string) (*Entry, error) {
	if !Has(name) {
		return nil, fmt.Errorf("%w %q (the catalog has: %s)", ErrUnknownRecipe, name, strings.Join(List(), ", "))
	}
	r, err := recipes.LoadFS(files, path.Join(name, "recipe.yaml"))
	if err != nil {
		return nil, err
	}
	lockFile := recipes.LockPath(path.Join(name, "recipe.yaml"))
	b, err := files.ReadFile(lockFile)
	if err != nil {
		return nil, fmt.Errorf("reading catalog lock: %w", err)
	}
	l, err := recipes.ParseLock(lockFile, b)
	if err != nil {
		return nil, err
	}
	return &Entry{Name: name, Recipe: r, Lock: l}, nil
}

// Supported returns the matrix rows whose every download, on every platform
// of the recipe, is in the lock; newest first.
func (e *Entry) Supported() ([]Versions, error) {
	e.once.Do(func() {
		m, err := matrix()
		if err != nil {
			e.err = err
			return
		}
		for _, row := range m {
			if _, err := e.Recipe.Resolve(recipes.ResolveOptions{Set: row.variables(), Lock: e.Lock, Locked: true}); err == nil {
				e.supported = append(e.supported, row)
			}
		}
	})
	return slices.Clone(e.supported), e.err
}

// SupportedKubernetes lists the supported Kubernetes versions, newest first.
func (e *Entry) SupportedKubernetes() ([]string, error) {
	rows, err := e.Supported()
	var out []string
	for _, r := range rows {
		out = append(out, r.Kubernetes)
	}
	return out, err
}

// Variables completes set (from --set) for a build: the Kubernetes version
// (set's, else the recipe's default) must be supported, and every version
// variable set does not name explicitly takes the matrix's value for it.
func (e *Entry) Variables(set map[string]string) (map[string]string, error) {
	k8s, ok := set["kubernetes"]
	if !ok {
		k8s = e.Recipe.Variables["kubernetes"]
	}
	rows, err := e.Supported()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(rows, func(r Versions) bool { return r.Kubernetes == k8s })
	if i < 0 {
		vs, _ := e.SupportedKubernetes()
		return nil, fmt.Errorf("%s: %w %q (supported: %s)", e.Name, ErrUnsupportedVersion, k8s, strings.Join(vs, ", "))
	}
	out := rows[i].variables()
	maps.Copy(out, set)
	return out, nil
}

// Resolve resolves the recipe for o.Set completed by Variables, with the
// catalog lock (o.Lock is ignored).
func (e *Entry) Resolve(o recipes.ResolveOptions) (*recipes.Resolved, error) {
	set, err := e.Variables(o.Set)
	if err != nil {
		return nil, err
	}
	o.Set, o.Lock = set, e.Lock
	return e.Recipe.Resolve(o)
}
