package ospkg

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Manager names a kind of package database.
type Manager string

// Package managers ospkg recognises.
const (
	Dpkg Manager = "dpkg"
	RPM  Manager = "rpm"
)

// DpkgStatus is where dpkg keeps its database, relative to the root.
const DpkgStatus = "var/lib/dpkg/status"

// rpmDatabases are the files whose presence marks an RPM root (BerkeleyDB,
// NDB and SQLite back ends, in the old and the new location).
var rpmDatabases = []string{
	"var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages", "usr/lib/sysimage/rpm/Packages.db", "usr/lib/sysimage/rpm/rpmdb.sqlite",
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Arch    string `json:"arch,omitempty"`
}

// DB is the set of packages installed in a root.
type DB struct {
	// Manager is the database's kind.
	Manager Manager
	// Source says where the database was read, for messages
	// ("/srv/root/var/lib/dpkg/status", "base.tar:var/lib/dpkg/status").
	Source string
	// installed maps a name, and name:arch, to the package.
	installed map[string]Package
	// provides maps a virtual package to an installed package providing it.
	provides map[string]string
}

// Packages lists the installed packages sorted by name and architecture.
func (db *DB) Packages() []Package {
	seen := map[Package]bool{}
	var out []Package
	for _, p := range db.installed {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Arch < out[j].Arch
	})
	return out
}

// Installed reports whether name is installed or provided by an installed
// package. name may carry an architecture ("libc6:amd64").
func (db *DB) Installed(name string) bool {
	if _, ok := db.installed[name]; ok {
		return true
	}
	_, ok := db.provides[name]
	return ok
}

// Missing returns the names of want that are not installed, in want's
// order, without duplicates.
func (db *DB) Missing(want []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range want {
		w = strings.TrimSpace(w)
		if w == "" || seen[w] {
			continue
		}
		seen[w] = true
		if !db.Installed(w) {
			out = append(out, w)
		}
	}
	return out
}

// Check returns a *MissingError (errors.Is ErrMissing) naming the packages
// of want that are not installed, or nil.
func (db *DB) Check(want []string) error {
	if m := db.Missing(want); len(m) > 0 {
		return &MissingError{Packages: m, Manager: db.Manager, Source: db.Source}
	}
	return nil
}

// MissingError names declared packages a root lacks.
type MissingError struct {
	Packages []string
	Manager  Manager
	Source   string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s: %s (not installed according to %s)", ErrMissing, strings.Join(e.Packages, ", "), e.Source)
}

// Unwrap makes errors.Is(err, ErrMissing) true.
func (e *MissingError) Unwrap() error { return ErrMissing }

// Split parses the comma-separated list of the image annotation
// recipes.AnnotationOSPackages.
func Split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Open reads the package database of the root filesystem in the directory
// root. Symbolic links are resolved inside root.
func Open(root string) (*DB, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	defer r.Close()
	f, err := r.Open(DpkgStatus)
	if err == nil {
		defer f.Close()
		return ParseDpkgStatus(f, path.Join(root, DpkgStatus))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	for _, p := range rpmDatabases {
		if _, err := r.Stat(p); err == nil {
			return nil, rpmError(path.Join(root, p))
		}
	}
	return nil, noDatabase(root)
}

// ReadTar reads the package database of a root filesystem from a tar
// stream of it (uncompressed; name is used in messages). It returns an
// error wrapping ErrNoDatabase when the tar holds none, so the layers of
// an image can be searched one after another.
func ReadTar(r io.Reader, name string) (*DB, error) {
	tr := tar.NewReader(r)
	var db *DB
	rpm := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading tar: %w", name, err)
		}
		p := path.Clean("/" + h.Name)[1:]
		switch {
		case p == DpkgStatus && h.Typeflag == tar.TypeReg:
			if db, err = ParseDpkgStatus(tr, name+":"+DpkgStatus); err != nil {
				return nil, err
			}
		case p == DpkgStatus && (h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink):
			return nil, fmt.Errorf("%s:%s: a link (to %s): %w", name, DpkgStatus, h.Linkname, ErrUnsupported)
		case rpm == "" && h.Typeflag == tar.TypeReg && isRPMDatabase(p):
			rpm = name + ":" + p
		}
	}
	if db != nil {
		return db, nil
	}
	if rpm != "" {
		return nil, rpmError(rpm)
	}
	return nil, noDatabase(name)
}

func isRPMDatabase(p string) bool {
	for _, r := range rpmDatabases {
		if p == r {
			return true
		}
	}
	return false
}

func rpmError(p string) error {
	return fmt.Errorf("%s: an RPM root: %w: prebake reads dpkg databases only so far (Debian, Ubuntu)", p, ErrUnsupported)
}

func noDatabase(root string) error {
	return fmt.Errorf("%s: %w: expected /%s (dpkg) or an RPM database", root, ErrNoDatabase, DpkgStatus)
}

// ParseDpkgStatus reads a dpkg status file (name is used in messages).
// Malformed input is reported with name:line.
func ParseDpkgStatus(r io.Reader, name string) (*DB, error) {
	db := &DB{Manager: Dpkg, Source: name, installed: map[string]Package{}, provides: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var (
		line  int
		start int // line of the stanza's first field
		cur   map[string]string
		last  string // field a continuation line belongs to
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		defer func() { cur = nil }()
		if cur["package"] == "" {
			return fmt.Errorf("%s:%d: %w: stanza without a Package field", name, start, ErrSyntax)
		}
		st := strings.Fields(cur["status"])
		if len(st) != 3 {
			return fmt.Errorf("%s:%d: %w: package %s: Status %q: want three words such as \"install ok installed\"", name, start, ErrSyntax, cur["package"], cur["status"])
		}
		if st[1] != "ok" || st[2] != "installed" {
			return nil
		}
		p := Package{Name: cur["package"], Version: cur["version"], Arch: cur["architecture"]}
		db.installed[p.Name] = p
		if p.Arch != "" {
			db.installed[p.Name+":"+p.Arch] = p
		}
		for _, v := range strings.Split(cur["provides"], ",") {
			v = strings.TrimSpace(v)
			if i := strings.IndexAny(v, " ("); i >= 0 {
				v = v[:i]
			}
			v = strings.TrimSuffix(v, ":any")
			if v != "" {
				db.provides[v] = p.Name
			}
		}
		return nil
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if b[0] == ' ' || b[0] == '\t' {
			if cur == nil || last == "" {
				return nil, fmt.Errorf("%s:%d: %w: continuation line outside a field", name, line, ErrSyntax)
			}
			continue // multi-line values (Description, Conffiles) are not needed
		}
		k, v, ok := strings.Cut(string(b), ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: %w: want \"Field: value\", got %q", name, line, ErrSyntax, truncate(string(b), 60))
		}
		if cur == nil {
			cur, start = map[string]string{}, line
		}
		last = strings.ToLower(k)
		cur[last] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return db, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
