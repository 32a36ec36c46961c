package recipes

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"

	"gopkg.in/yaml.v3"
)

// APIVersion is the only recipe API version this prebake reads.
const APIVersion = "prebake.dev/v1alpha1"

// Recipe is a recipe file as written: templates unexpanded, checksums possibly
// in a lock file. Resolve turns it into concrete per-platform builds.
type Recipe struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	// Variables and their defaults; override with --set NAME=VALUE. Templates
	// reference them as {{ .NAME }}; {{ .arch }} and {{ .os }} are built in.
	Variables map[string]string `yaml:"variables,omitempty" json:"variables,omitempty"`
	// Platforms the image is built for: linux/amd64, linux/arm64.
	Platforms []string `yaml:"platforms" json:"platforms"`
	// Epoch is the default SOURCE_DATE_EPOCH (seconds) for timestamps; the
	// SOURCE_DATE_EPOCH environment variable wins. Zero when both are unset.
	Epoch *int64 `yaml:"epoch,omitempty" json:"epoch,omitempty"`
	// OSPackages the base OS must provide (recorded as an annotation).
	OSPackages []string `yaml:"osPackages,omitempty" json:"osPackages,omitempty"`
	// Components in layer order: each becomes one layer.
	Components []Component `yaml:"components" json:"components"`
	// Config is how a container runtime runs the image, for recipes that make
	// container images (a pause or test image from a static binary) rather
	// than node images; node images leave it out.
	Config *RunConfig `yaml:"config,omitempty" json:"config,omitempty"`

	file string
	fsys fs.FS // set by LoadFS: from: paths are read from it
	pos  positions
}

// Metadata names the recipe.
type Metadata struct {
	Name string `yaml:"name" json:"name"`
	// Version of the image (templated); default: the kubernetes variable, else "latest".
	Version     string            `yaml:"version,omitempty" json:"version,omitempty"`
	Description string            `yaml:"description,omitempty" json:"description,omitempty"`
	Source      string            `yaml:"source,omitempty" json:"source,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Component is one layer of the image.
type Component struct {
	Name    string   `yaml:"name" json:"name"`
	Version string   `yaml:"version,omitempty" json:"version,omitempty"`
	Sources []Source `yaml:"sources,omitempty" json:"sources,omitempty"`
	Files   []File   `yaml:"files,omitempty" json:"files,omitempty"`
	Kernel  *Kernel  `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	Systemd *Systemd `yaml:"systemd,omitempty" json:"systemd,omitempty"`
	// Images are container images pulled by digest at build time and stored
	// as OCI archives under /var/lib/prebake/images/, with the oneshot unit
	// prebake-images.service (enabled) importing them into containerd
	// before kubelet starts. At most one component of a recipe has images.
	Images []Image `yaml:"images,omitempty" json:"images,omitempty"`
}

// RunConfig is the run configuration of a container image (the OCI image
// config's entrypoint, command, environment, working directory and user).
type RunConfig struct {
	Entrypoint []string `yaml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	Cmd        []string `yaml:"cmd,omitempty" json:"cmd,omitempty"`
	// Env entries are NAME=VALUE.
	Env        []string `yaml:"env,omitempty" json:"env,omitempty"`
	WorkingDir string   `yaml:"workingDir,omitempty" json:"workingDir,omitempty"`
	User       string   `yaml:"user,omitempty" json:"user,omitempty"`
}

// Image is a container image pre-pulled into the node image.
type Image struct {
	// Ref is the name containerd imports the image as, with its registry and
	// tag (registry.k8s.io/pause:3.10.1); templated.
	Ref string `yaml:"ref" json:"ref"`
	// Digest (sha256:…) of the image's manifest or index (an index is
	// narrowed to the build's platform), or from the lock's images list.
	Digest string `yaml:"digest,omitempty" json:"digest,omitempty"`
}

// Source is a file downloaded at build time and verified by sha256.
type Source struct {
	// Name and Version identify the source in the SBOM; Name defaults to the
	// URL's last path element, Version to the component's.
	Name    string `yaml:"name,omitempty" json:"name,omitempty"`
	Version string `yaml:"version,omitempty" json:"version,omitempty"`
	// URL, templated; {{ .arch }} gives one URL per platform.
	URL string `yaml:"url" json:"url"`
	// SHA256 per architecture (amd64, arm64), or from the recipe's lock file.
	SHA256 map[string]string `yaml:"sha256,omitempty" json:"sha256,omitempty"`
	// Archive is none (default), tar, tar.gz or zip.
	Archive string `yaml:"archive,omitempty" json:"archive,omitempty"`
	// Extract maps paths in the archive (globs allowed) to destinations; a
	// destination ending in "/" is a directory.
	Extract map[string]string `yaml:"extract,omitempty" json:"extract,omitempty"`
	// Dest is where a plain (archive: none) file goes.
	Dest string `yaml:"dest,omitempty" json:"dest,omitempty"`
	// Mode overrides the mode of every file this source installs, e.g. "0755".
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// File is a file written into the image from the recipe itself.
type File struct {
	Path string `yaml:"path" json:"path"`
	// Content inline (templated), or From a path relative to the recipe
	// (copied verbatim).
	Content *string `yaml:"content,omitempty" json:"content,omitempty"`
	From    string  `yaml:"from,omitempty" json:"from,omitempty"`
	// Mode, default "0644".
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// Kernel settings: modules loaded at boot and sysctls.
type Kernel struct {
	// Modules go to /etc/modules-load.d/<component>.conf.
	Modules []string `yaml:"modules,omitempty" json:"modules,omitempty"`
	// Sysctl go to /etc/sysctl.d/<priority>-<component>.conf.
	Sysctl map[string]string `yaml:"sysctl,omitempty" json:"sysctl,omitempty"`
	// Priority is the sysctl file's number prefix; default 90.
	Priority *int `yaml:"priority,omitempty" json:"priority,omitempty"`
}

// Systemd units installed to /etc/systemd/system and enabled without a
// boot-time `systemctl enable`.
type Systemd struct {
	Units []Unit `yaml:"units,omitempty" json:"units,omitempty"`
	// Enable lists units (from any component) to enable: the wants/ and
	// requires/ symlinks their [Install] section asks for are created.
	Enable []string `yaml:"enable,omitempty" json:"enable,omitempty"`
}

// Unit is a systemd unit file or a drop-in.
type Unit struct {
	// Name is the unit file name (kubelet.service), or for a drop-in the
	// directory-qualified name (kubelet.service.d/10-kubeadm.conf).
	Name    string  `yaml:"name" json:"name"`
	Content *string `yaml:"content,omitempty" json:"content,omitempty"`
	From    string  `yaml:"from,omitempty" json:"from,omitempty"`
}

// File returns the path the recipe was loaded from.
func (r *Recipe) File() string { return r.file }

// Dir is the directory `from:` paths are relative to.
func (r *Recipe) Dir() string { return filepath.Dir(r.file) }

// Load reads and strictly parses the recipe at path. Every unknown field and
// type error is reported at once, with file:line:column.
func Load(path string) (*Recipe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading recipe: %w", err)
	}
	return Parse(path, b)
}

// LoadFS reads and strictly parses the recipe at name in fsys (an embedded
// catalog, for instance); its from: paths are read from fsys too.
func LoadFS(fsys fs.FS, name string) (*Recipe, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("reading recipe: %w", err)
	}
	r, err := Parse(name, b)
	if err != nil {
		return nil, err
	}
	r.fsys = fsys
	return r, nil
}

// readFrom reads a from: path relative to the recipe.
func (r *Recipe) readFrom(from string) ([]byte, error) {
	if r.fsys != nil {
		return fs.ReadFile(r.fsys, path.Join(path.Dir(r.file), filepath.ToSlash(from)))
	}
	return os.ReadFile(filepath.Join(r.Dir(), from))
}

// Parse parses a recipe from b; file names it in errors and anchors from:
// paths.
func Parse(file string, b []byte) (*Recipe, error) {
	p := &problems{file: file, pos: positions{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		p.list = append(p.list, yamlSyntaxProblem(file, err))
		return nil, p.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.list = append(p.list, Problem{File: file, Line: extra.Line, Column: extra.Column, Msg: "more than one YAML document; a recipe file holds one"})
	}
	r := &Recipe{file: file}
	strictWalk(&doc, reflect.TypeFor[Recipe](), "", p)
	decodeInto(&doc, r, p)
	r.pos = p.pos
	if err := p.err(); err != nil {
		return nil, err
	}
	return r, nil
}

func yamlSyntaxProblem(file string, err error) Problem {
	pr := Problem{File: file, Msg: err.Error()}
	var line int
	if _, scanErr := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); scanErr == nil {
		pr.Line, pr.Column = line, 1
	}
	return pr
}
