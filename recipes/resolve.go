package recipes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/prebake/prebake/internal/lazyre"

	"github.com/prebake/prebake/internal/safepath"
)

// Platforms prebake can build for.
var SupportedPlatforms = []string{"linux/amd64", "linux/arm64"}

// ResolveOptions adjust Resolve. The zero value resolves every platform with
// the recipe's defaults.
type ResolveOptions struct {
	// Set overrides variables (from --set NAME=VALUE); unknown names are errors.
	Set map[string]string
	// Platforms restricts the build to these (a subset of the recipe's); empty means all.
	Platforms []string
	// Lock supplies checksums for sources without an inline sha256.
	Lock *Lock
	// Locked refuses any source URL that is not in Lock.
	Locked bool
	// SourceDateEpoch, when set, overrides the recipe's epoch.
	SourceDateEpoch *int64
	// NoChecksums resolves a source whose checksum is neither inline nor in
	// Lock with an empty SHA256 instead of reporting it (prebake lock, which
	// finds the checksums). Such a result must not be built.
	NoChecksums bool
	// Images are pre-pulled in addition to the recipe's own (prebake build
	// --pre-pull REF@DIGEST), each with its digest: they join the recipe's
	// images component, or a new last component named "images".
	Images []Image
}

// Resolved is a recipe with every variable expanded and every checksum known:
// exactly what a build does, per platform. Same Resolved, same image.
type Resolved struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Description string            `json:"description,omitempty"`
	Source      string            `json:"source,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Variables   map[string]string `json:"variables,omitempty"`
	Epoch       int64             `json:"epoch"`
	OSPackages  []string          `json:"osPackages,omitempty"`
	Config      *RunConfig        `json:"config,omitempty"`
	Builds      []PlatformBuild   `json:"builds"`
	// Digest is the sha256 of this resolved recipe (without Digest) as JSON.
	Digest string `json:"digest"`
}

// PlatformBuild is what one platform's image holds.
type PlatformBuild struct {
	OS         string              `json:"os"`
	Arch       string              `json:"arch"`
	Components []ResolvedComponent `json:"components"`
}

// Platform is "os/arch".
func (b PlatformBuild) Platform() string { return b.OS + "/" + b.Arch }

// ResolvedComponent is one layer's content.
type ResolvedComponent struct {
	Name    string           `json:"name"`
	Version string           `json:"version,omitempty"`
	Sources []ResolvedSource `json:"sources,omitempty"`
	// Files are written from the recipe: inline and from: files, kernel
	// configuration, systemd units and the symlinks that enable them.
	Files []ResolvedFile `json:"files,omitempty"`
	// Images are pulled by digest and stored as OCI archives (images.go).
	Images []ResolvedImage `json:"images,omitempty"`
}

// ResolvedSource is one download with its verified checksum.
type ResolvedSource struct {
	Name    string        `json:"name"`
	Version string        `json:"version,omitempty"`
	URL     string        `json:"url"`
	SHA256  string        `json:"sha256"`
	Archive string        `json:"archive"`
	Extract []ExtractRule `json:"extract,omitempty"`
	Dest    string        `json:"dest,omitempty"`
	Mode    *Mode         `json:"mode,omitempty"`
	// Size is the expected size in bytes from the lock (0: unknown); it
	// bounds the download and is not part of the digest.
	Size int64 `json:"-"`
}

// ExtractRule places archive entries matching Pattern at Dest.
type ExtractRule struct {
	Pattern string `json:"pattern"`
	Dest    string `json:"dest"`
}

// ResolvedFile is a regular file (Content) or a symlink (Target).
type ResolvedFile struct {
	Path    string `json:"path"`
	Mode    Mode   `json:"mode,omitempty"`
	Content string `json:"content,omitempty"`
	Target  string `json:"symlink,omitempty"`
}

var (
	nameRE       = lazyre.New(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	varRE        = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hexRE        = lazyre.New(`^[a-f0-9]{64}$`)
	moduleRE     = lazyre.New(`^[A-Za-z0-9_-]+$`)
	sysctlRE     = lazyre.New(`^[a-z0-9_][a-z0-9_./*-]*$`)
	unitRE       = lazyre.New(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|path|timer|target|mount|slice)$`)
	dropinRE     = lazyre.New(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|path|timer|target|mount|slice)\.d/[A-Za-z0-9_.-]+\.conf$`)
	builtinVars  = []string{"arch", "os", "platform"}
	archiveKinds = []string{"none", "tar", "tar.gz", "zip"}
)

// templateFuncs are the functions templates may call.
var templateFuncs = template.FuncMap{
	// minor turns 1.36.4 into 1.36.
	"minor": func(v string) string {
		p := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
		if len(p) < 2 {
			return v
		}
		return p[0] + "." + p[1]
	},
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
}

// Resolve validates the recipe with its variables and returns the concrete
// builds. Every problem is reported at once, each at its file:line:column.
func (r *Recipe) Resolve(o ResolveOptions) (*Resolved, error) {
	if len(o.Images) > 0 {
		return r.withImages(o.Images).resolve(o)
	}
	return r.resolve(o)
}

// withImages returns a copy of r whose images component also pre-pulls
// extra (or, without one, that gains a last component "images").
func (r *Recipe) withImages(extra []Image) *Recipe {
	rr := *r
	rr.Components = slices.Clone(r.Components)
	for i, c := range rr.Components {
		if len(c.Images) > 0 {
			c.Images = append(slices.Clone(c.Images), extra...)
			rr.Components[i] = c
			return &rr
		}
	}
	name := "images"
	for _, c := range rr.Components {
		if c.Name == name {
			name = "pre-pulled-images"
		}
	}
	rr.Components = append(rr.Components, Component{Name: name, Version: "1", Images: extra})
	return &rr
}

func (r *Recipe) resolve(o ResolveOptions) (*Resolved, error) {
	p := &problems{file: r.file, pos: r.pos}
	res := &Resolved{
		Name:        r.Metadata.Name,
		Description: r.Metadata.Description,
		Source:      r.Metadata.Source,
		Annotations: r.Metadata.Annotations,
		OSPackages:  r.OSPackages,
	}
	if r.APIVersion != APIVersion {
		p.add("apiVersion", "unsupported apiVersion %q (want %q)", r.APIVersion, APIVersion)
	}
	if r.Kind != "Recipe" {
		p.add("kind", "kind must be Recipe, not %q", r.Kind)
	}
	if !nameRE.MatchString(r.Metadata.Name) {
		p.add("metadata.name", "name %q must be lowercase letters, digits, '-' and '.'", r.Metadata.Name)
	}

	vars := map[string]string{}
	for k, v := range r.Variables {
		if !varRE.MatchString(k) || slices.Contains(builtinVars, k) {
			p.add("variables."+k, "invalid variable name %q (letters, digits, '_'; arch, os and platform are built in)", k)
		}
		vars[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(o.Set)) {
		if _, ok := r.Variables[k]; !ok {
			p.add("variables", "--set %s: unknown variable %q (the recipe declares: %s)", k, k, strings.Join(slices.Sorted(maps.Keys(r.Variables)), ", "))
			continue
		}
		vars[k] = o.Set[k]
	}
	res.Variables = vars

	epoch := int64(0)
	if r.Epoch != nil {
		epoch = *r.Epoch
	}
	if o.SourceDateEpoch != nil {
		epoch = *o.SourceDateEpoch
	}
	if epoch < 0 {
		p.add("epoch", "epoch must not be negative")
	}
	res.Epoch = epoch

	// Platforms.
	if len(r.Platforms) == 0 {
		p.add("platforms", "at least one platform is required (%s)", strings.Join(SupportedPlatforms, ", "))
	}
	seenPlat := map[string]bool{}
	for i, pl := range r.Platforms {
		if !slices.Contains(SupportedPlatforms, pl) {
			p.add(fmt.Sprintf("platforms[%d]", i), "unsupported platform %q (supported: %s)", pl, strings.Join(SupportedPlatforms, ", "))
		}
		if seenPlat[pl] {
			p.add(fmt.Sprintf("platforms[%d]", i), "platform %q listed twice", pl)
		}
		seenPlat[pl] = true
	}
	plats := r.Platforms
	if len(o.Platforms) > 0 {
		plats = nil
		for _, pl := range o.Platforms {
			if !slices.Contains(r.Platforms, pl) {
				p.add("platforms", "--platform %s: the recipe builds only %s", pl, strings.Join(r.Platforms, ", "))
				continue
			}
			plats = append(plats, pl)
		}
	}

	tx := &expander{p: p, vars: vars}
	version := r.Metadata.Version
	if version == "" {
		if _, ok := vars["kubernetes"]; ok {
			version = "{{ .kubernetes }}"
		} else {
			version = "latest"
		}
	}
	res.Version = tx.expand("metadata.version", version, "", "")
	if res.Version != "" && !regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`).MatchString(res.Version) {
		p.add("metadata.version", "version %q is not usable as an image tag", res.Version)
	}

	r.checkStatic(p)
	res.Config = r.checkConfig(p)
	units := r.unitContents(p)
	for _, pl := range plats {
		osName, arch, _ := strings.Cut(pl, "/")
		b := PlatformBuild{OS: osName, Arch: arch}
		for ci, c := range r.Components {
			b.Components = append(b.Components, r.resolveComponent(ci, c, osName, arch, tx, o, units))
		}
		res.Builds = append(res.Builds, b)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	d, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(d)
	res.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return res, nil
}

// checkStatic validates what does not depend on variables or platform:
// names, modes, paths, kinds and duplicate destinations.
func (r *Recipe) checkStatic(p *problems) {
	if len(r.Components) == 0 {
		p.add("components", "at least one component is required")
	}
	names := map[string]int{}
	dests := map[string]string{} // image path -> field that installs it
	claim := func(field, dst string) {
		if prev, ok := dests[dst]; ok {
			p.add(field, "destination %s is also installed by %s", dst, prev)
			return
		}
		dests[dst] = field
	}
	for ci, c := range r.Components {
		cf := fmt.Sprintf("components[%d]", ci)
		if !nameRE.MatchString(c.Name) {
			p.add(cf+".name", "component name %q must be lowercase letters, digits, '-' and '.'", c.Name)
		}
		if prev, ok := names[c.Name]; ok && c.Name != "" {
			p.add(cf+".name", "component %q already defined at components[%d]", c.Name, prev)
		}
		names[c.Name] = ci
		if len(c.Sources) == 0 && len(c.Files) == 0 && c.Kernel == nil && c.Systemd == nil && len(c.Images) == 0 {
			p.add(cf, "component %q installs nothing (give sources, files, kernel, systemd or images)", c.Name)
		}
		checkImages(p, cf, c, claim)
		for si, s := range c.Sources {
			sf := fmt.Sprintf("%s.sources[%d]", cf, si)
			noTemplate(p, sf+".name", s.Name)
			noTemplate(p, sf+".dest", s.Dest)
			if s.URL == "" {
				p.add(sf+".url", "url is required")
			}
			kind := s.Archive
			if kind == "" {
				kind = "none"
			}
			if !slices.Contains(archiveKinds, kind) {
				p.add(sf+".archive", "archive %q is not one of %s", s.Archive, strings.Join(archiveKinds, ", "))
			}
			if s.Mode != "" {
				if _, err := ParseMode(s.Mode); err != nil {
					p.add(sf+".mode", "%v", err)
				}
			}
			for arch, sum := range s.SHA256 {
				if !slices.Contains([]string{"amd64", "arm64"}, arch) {
					p.add(sf+".sha256."+arch, "unknown architecture %q (amd64, arm64)", arch)
				}
				if !hexRE.MatchString(sum) {
					p.add(sf+".sha256."+arch, "sha256 must be 64 lowercase hex digits, got %q", sum)
				}
			}
			switch {
			case kind == "none":
				if s.Dest == "" {
					p.add(sf+".dest", "dest is required for a plain file (archive: none)")
				} else if checkPath(p, sf+".dest", s.Dest, false) {
					claim(sf+".dest", s.Dest)
				}
				if len(s.Extract) > 0 {
					p.add(sf+".extract", "extract needs an archive (set archive: tar.gz, tar or zip)")
				}
			default:
				if s.Dest != "" {
					p.add(sf+".dest", "dest is for plain files; use extract for archives")
				}
				for _, pat := range slices.Sorted(maps.Keys(s.Extract)) {
					ef := sf + ".extract." + pat
					dst := s.Extract[pat]
					noTemplate(p, ef, pat+dst)
					if _, err := path.Match(pat, ""); err != nil || strings.HasPrefix(pat, "/") || hasDotDot(pat) {
						p.add(ef, "archive pattern %q must be a relative glob without '..'", pat)
					}
					isDir := strings.HasSuffix(dst, "/")
					if checkPath(p, ef, dst, isDir) && !isDir {
						claim(ef, dst)
					}
				}
			}
		}
		for fi, f := range c.Files {
			ff := fmt.Sprintf("%s.files[%d]", cf, fi)
			if f.Path == "" {
				p.add(ff+".path", "path is required")
			} else if !strings.Contains(f.Path, "{{") && checkPath(p, ff+".path", f.Path, false) {
				claim(ff+".path", f.Path)
			}
			switch {
			case f.Content != nil && f.From != "":
				p.add(ff, "give content or from, not both")
			case f.Content == nil && f.From == "":
				p.add(ff, "content or from is required")
			case f.From != "":
				checkFrom(p, ff+".from", f.From)
			}
			if f.Mode != "" {
				if _, err := ParseMode(f.Mode); err != nil {
					p.add(ff+".mode", "%v", err)
				}
			}
		}
		if k := c.Kernel; k != nil {
			kf := cf + ".kernel"
			for i, m := range k.Modules {
				if !moduleRE.MatchString(m) {
					p.add(fmt.Sprintf("%s.modules[%d]", kf, i), "invalid module name %q", m)
				}
			}
			for key, v := range k.Sysctl {
				if !sysctlRE.MatchString(key) {
					p.add(kf+".sysctl."+key, "invalid sysctl name %q", key)
				}
				if strings.ContainsAny(v, "\n") {
					p.add(kf+".sysctl."+key, "sysctl value must be one line")
				}
			}
			if k.Priority != nil && (*k.Priority < 0 || *k.Priority > 99) {
				p.add(kf+".priority", "priority must be 0-99")
			}
			if len(k.Modules) > 0 {
				claim(kf+".modules", "/etc/modules-load.d/"+c.Name+".conf")
			}
			if len(k.Sysctl) > 0 {
				claim(kf+".sysctl", sysctlPath(c.Name, k))
			}
		}
		if s := c.Systemd; s != nil {
			for ui, u := range s.Units {
				uf := fmt.Sprintf("%s.systemd.units[%d]", cf, ui)
				if !unitRE.MatchString(u.Name) && !dropinRE.MatchString(u.Name) {
					p.add(uf+".name", "%q is not a unit name (name.service, name.path, …) or drop-in (name.service.d/NN-x.conf)", u.Name)
				} else {
					claim(uf+".name", "/etc/systemd/system/"+u.Name)
				}
				switch {
				case u.Content != nil && u.From != "":
					p.add(uf, "give content or from, not both")
				case u.Content == nil && u.From == "":
					p.add(uf, "content or from is required")
				case u.From != "":
					checkFrom(p, uf+".from", u.From)
				}
			}
		}
	}
}

func sysctlPath(component string, k *Kernel) string {
	prio := 90
	if k.Priority != nil {
		prio = *k.Priority
	}
	return fmt.Sprintf("/etc/sysctl.d/%02d-%s.conf", prio, component)
}

func noTemplate(p *problems, field, s string) {
	if strings.Contains(s, "{{") {
		p.add(field, "templates are allowed only in url, version, files' path and content, and unit content")
	}
}

func hasDotDot(s string) bool {
	return slices.Contains(strings.Split(s, "/"), "..")
}

// checkPath requires an absolute, clean image path without "..".
func checkPath(p *problems, field, dst string, dir bool) bool {
	clean := dst
	if dir {
		clean = strings.TrimSuffix(dst, "/")
	}
	switch {
	case !strings.HasPrefix(dst, "/"):
		p.add(field, "destination %q must be an absolute path in the image", dst)
	case hasDotDot(dst):
		p.add(field, "destination %q escapes with '..'", dst)
	case clean == "" || clean == "/":
		p.add(field, "destination %q is the image root", dst)
	case path.Clean(clean) != clean:
		p.add(field, "destination %q is not clean (want %q)", dst, path.Clean(clean))
	default:
		return true
	}
	return false
}

func checkFrom(p *problems, field, from string) {
	if filepath.IsAbs(from) || hasDotDot(filepath.ToSlash(from)) {
		p.add(field, "from %q must be a path inside the recipe's directory (relative, no '..')", from)
	}
}

// fromProblem reports a from: file that could not be read; one that
// leaves the recipe's directory says where it pointed.
func (r *Recipe) fromProblem(p *problems, field, from string, err error) {
	var esc *safepath.EscapeError
	if errors.As(err, &esc) && esc.Absolute {
		p.add(field, "from %v", esc)
		return
	}
	if errors.As(err, &esc) {
		p.add(field, "from %q resolves to %s, outside the recipe's directory %s (symlinks must stay inside it)", from, esc.Target, r.Dir())
		return
	}
	p.add(field, "reading %s: %v", from, err)
}

// unitContents maps every unit name in the recipe to its field and content
// (for enable).
func (r *Recipe) unitContents(p *problems) map[string]unitRef {
	out := map[string]unitRef{}
	for ci, c := range r.Components {
		if c.Systemd == nil {
			continue
		}
		for ui, u := range c.Systemd.Units {
			field := fmt.Sprintf("components[%d].systemd.units[%d]", ci, ui)
			var content string
			if u.Content != nil {
				content = *u.Content
			} else if u.From != "" && !filepath.IsAbs(u.From) && !hasDotDot(filepath.ToSlash(u.From)) {
				b, err := r.readFrom(u.From)
				if err != nil {
					r.fromProblem(p, field+".from", u.From, err)
					continue
				}
				content = string(b)
			}
			out[u.Name] = unitRef{field: field, content: content}
		}
	}
	return out
}

type unitRef struct {
	field   string
	content string
}

func (r *Recipe) resolveComponent(ci int, c Component, osName, arch string, tx *expander, o ResolveOptions, units map[string]unitRef) ResolvedComponent {
	p := tx.p
	cf := fmt.Sprintf("components[%d]", ci)
	rc := ResolvedComponent{Name: c.Name, Version: tx.expand(cf+".version", c.Version, osName, arch)}
	for si, s := range c.Sources {
		sf := fmt.Sprintf("%s.sources[%d]", cf, si)
		u := tx.expand(sf+".url", s.URL, osName, arch)
		rs := ResolvedSource{
			Name:    s.Name,
			Version: tx.expand(sf+".version", s.Version, osName, arch),
			URL:     u,
			Archive: s.Archive,
			Dest:    s.Dest,
		}
		if rs.Archive == "" {
			rs.Archive = "none"
		}
		if rs.Version == "" {
			rs.Version = rc.Version
		}
		if pu, err := url.Parse(u); u != "" && (err != nil || !slices.Contains([]string{"http", "https", "file"}, pu.Scheme)) {
			p.add(sf+".url", "url %q must be http, https or file", u)
		} else if rs.Name == "" && err == nil {
			rs.Name = path.Base(pu.Path)
		}
		if s.Mode != "" {
			if m, err := ParseMode(s.Mode); err == nil {
				rs.Mode = &m
			}
		}
		for _, pat := range slices.Sorted(maps.Keys(s.Extract)) {
			rs.Extract = append(rs.Extract, ExtractRule{Pattern: pat, Dest: s.Extract[pat]})
		}
		sum, inline := s.SHA256[arch]
		locked, inLock := "", false
		if o.Lock != nil {
			locked, inLock = o.Lock.SHA256(u)
		}
		switch {
		case o.Locked && !inLock:
			p.add(sf+".url", "%s is not in the lock file (--locked); run prebake lock", u)
		case inline && inLock && sum != locked:
			p.add(sf+".sha256."+arch, "sha256 %s differs from the lock file's %s for %s", sum, locked, u)
		case inline:
			rs.SHA256 = sum
		case inLock:
			rs.SHA256 = locked
			rs.Size = o.Lock.Size(u)
		case u != "" && !o.NoChecksums:
			p.add(sf+".sha256", "missing checksum for %s (%s/%s): add sha256.%s or a lock entry", u, osName, arch, arch)
		}
		rc.Sources = append(rc.Sources, rs)
	}
	for fi, f := range c.Files {
		ff := fmt.Sprintf("%s.files[%d]", cf, fi)
		rf := ResolvedFile{Path: tx.expand(ff+".path", f.Path, osName, arch), Mode: 0o644}
		if strings.Contains(f.Path, "{{") && rf.Path != "" {
			checkPath(p, ff+".path", rf.Path, false)
		}
		if f.Mode != "" {
			if m, err := ParseMode(f.Mode); err == nil {
				rf.Mode = m
			}
		}
		switch {
		case f.Content != nil:
			rf.Content = tx.expand(ff+".content", *f.Content, osName, arch)
		case f.From != "" && !filepath.IsAbs(f.From) && !hasDotDot(filepath.ToSlash(f.From)):
			b, err := r.readFrom(f.From)
			if err != nil {
				r.fromProblem(p, ff+".from", f.From, err)
			}
			rf.Content = string(b)
		}
		rc.Files = append(rc.Files, rf)
	}
	if k := c.Kernel; k != nil {
		if len(k.Modules) > 0 {
			rc.Files = append(rc.Files, ResolvedFile{Path: "/etc/modules-load.d/" + c.Name + ".conf", Mode: 0o644,
				Content: "# installed by prebake, component " + c.Name + "\n" + strings.Join(k.Modules, "\n") + "\n"})
		}
		if len(k.Sysctl) > 0 {
			var b strings.Builder
			b.WriteString("# installed by prebake, component " + c.Name + "\n")
			for _, key := range slices.Sorted(maps.Keys(k.Sysctl)) {
				fmt.Fprintf(&b, "%s = %s\n", key, k.Sysctl[key])
			}
			rc.Files = append(rc.Files, ResolvedFile{Path: sysctlPath(c.Name, k), Mode: 0o644, Content: b.String()})
		}
	}
	if s := c.Systemd; s != nil {
		for ui, u := range s.Units {
			uf := fmt.Sprintf("%s.systemd.units[%d]", cf, ui)
			content := units[u.Name].content
			if u.Content != nil {
				content = tx.expand(uf+".content", *u.Content, osName, arch)
			}
			rc.Files = append(rc.Files, ResolvedFile{Path: "/etc/systemd/system/" + u.Name, Mode: 0o644, Content: content})
		}
		for ei, name := range s.Enable {
			ef := fmt.Sprintf("%s.systemd.enable[%d]", cf, ei)
			ref, ok := units[name]
			if !ok {
				p.add(ef, "unit %q is not defined by any component's systemd.units", name)
				continue
			}
			targets := installTargets(ref.content)
			if len(targets) == 0 {
				p.add(ef, "unit %q has no [Install] WantedBy= or RequiredBy=, so enabling it does nothing", name)
			}
			for _, t := range targets {
				rc.Files = append(rc.Files, ResolvedFile{Path: "/etc/systemd/system/" + t + "/" + name, Target: "/etc/systemd/system/" + name})
			}
		}
	}
	r.resolveImages(cf, c, &rc, osName, arch, tx, o)
	sort.SliceStable(rc.Files, func(i, j int) bool { return rc.Files[i].Path < rc.Files[j].Path })
	return rc
}

// installTargets returns the wants/ and requires/ directories a
// `systemctl enable` of a unit with this content creates links in.
func installTargets(content string) []string {
	var out []string
	section := ""
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line
			continue
		}
		if section != "[Install]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		suffix := map[string]string{"WantedBy": ".wants", "RequiredBy": ".requires", "UpheldBy": ".upholds"}[strings.TrimSpace(k)]
		if suffix == "" {
			continue
		}
		for _, t := range strings.Fields(v) {
			out = append(out, t+suffix)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// expander evaluates templates against the variables, reporting problems.
type expander struct {
	p     *problems
	vars  map[string]string
	cache map[string]*template.Template
}

var unknownKeyRE = lazyre.New(`map has no entry for key "([^"]+)"`)

func (t *expander) expand(field, s, osName, arch string) string {
	if !strings.Contains(s, "{{") {
		return s
	}
	if t.cache == nil {
		t.cache = map[string]*template.Template{}
	}
	tmpl, ok := t.cache[s]
	if !ok {
		var err error
		tmpl, err = template.New(field).Funcs(templateFuncs).Option("missingkey=error").Parse(s)
		if err != nil {
			t.p.add(field, "bad template: %v", trimTemplateErr(err))
			return ""
		}
		t.cache[s] = tmpl
	}
	data := map[string]string{"os": osName, "arch": arch, "platform": osName + "/" + arch}
	if osName == "" {
		data = map[string]string{}
	}
	for k, v := range t.vars {
		data[k] = v
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		if m := unknownKeyRE.FindStringSubmatch(err.Error()); m != nil {
			if osName == "" && slices.Contains(builtinVars, m[1]) {
				t.p.add(field, "{{ .%s }} is per platform and cannot be used here", m[1])
			} else {
				t.p.add(field, "unknown variable %q (declared: %s)", m[1], strings.Join(slices.Sorted(maps.Keys(t.vars)), ", "))
			}
			return ""
		}
		t.p.add(field, "template: %v", trimTemplateErr(err))
		return ""
	}
	return b.String()
}

func trimTemplateErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "template:") {
		return s[i+2:]
	}
	return s
}

// ParseEpoch parses a SOURCE_DATE_EPOCH value (ResolveOptions.SourceDateEpoch);
// an empty one is unset: nil, the recipe's own epoch.
func ParseEpoch(s string) (*int64, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970 (a non-negative integer)", s)
	}
	return &v, nil
}

// checkConfig validates the image run configuration and returns it (nil
// when the recipe has none).
func (r *Recipe) checkConfig(p *problems) *RunConfig {
	c := r.Config
	if c == nil {
		return nil
	}
	if len(c.Entrypoint) > 0 && c.Entrypoint[0] == "" {
		p.add("config.entrypoint[0]", "the entrypoint's program must not be empty")
	}
	for i, e := range c.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || !varRE.MatchString(k) {
			p.add(fmt.Sprintf("config.env[%d]", i), "env entry %q must be NAME=VALUE", e)
		}
	}
	if len(c.Entrypoint) == 0 && len(c.Cmd) == 0 {
		p.add("config", "config needs an entrypoint or a cmd (the program a container runs)")
	}
	if c.WorkingDir != "" && !strings.HasPrefix(c.WorkingDir, "/") {
		p.add("config.workingDir", "workingDir %q must be an absolute path", c.WorkingDir)
	}
	return c
}
