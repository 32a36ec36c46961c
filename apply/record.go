package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/prebake/prebake/internal/atomicfile"
)

// StateDir is where apply keeps its records, journal, image copies and
// backups, relative to the root.
const StateDir = "var/lib/prebake"

// Files in StateDir.
const (
	appliedFile  = "applied.json"
	previousFile = "applied.previous.json"
	journalFile  = "journal.json"
	storeDir     = "store"   // one OCI layout per image kept, by digest hex
	objectsDir   = "objects" // backups of the root's own files, by sha256
)

// Entry types of a record.
const (
	TypeFile     = "file"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
	TypeDir      = "dir"
)

// File is one path the image puts on the root.
type File struct {
	// Path is relative to the root, slash-separated, without a leading /.
	Path string `json:"path"`
	Type string `json:"type"`
	// Mode is the Unix permission bits with setuid, setgid and sticky
	// (07777).
	Mode uint32 `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	// Digest (sha256:…) and Size of a file's content (of the linked file
	// for a hard link).
	Digest string `json:"digest,omitempty"`
	Size   int64  `json:"size,omitempty"`
	// Link is a symlink's target or the path a hard link points to.
	Link string `json:"link,omitempty"`
}

// same reports whether two entries put the same thing on disk.
func (f File) same(g File) bool {
	return f.Type == g.Type && f.Mode == g.Mode && f.UID == g.UID && f.GID == g.GID &&
		f.Digest == g.Digest && f.Link == g.Link
}

// Component is one layer of the image and the files it provides in the
// applied result (a path a later layer overrides belongs to the later one).
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Layer is the layer's digest.
	Layer string `json:"layer"`
	Files []File `json:"files"`
}

// Record is what is applied on a root: /var/lib/prebake/applied.json.
type Record struct {
	SchemaVersion int `json:"schemaVersion"`
	// Ref is the reference as applied, pinned to the digest verified.
	Ref string `json:"ref"`
	// Digest is the digest Ref names (an index or an image); Image the
	// platform image's digest whose layers were applied.
	Digest   string `json:"digest"`
	Image    string `json:"image"`
	Platform string `json:"platform"`
	// Verified tells whether the signature was checked (false with
	// --no-verify).
	Verified bool `json:"verified"`
	// KubernetesVersion and OSPackages come from the image's annotations.
	KubernetesVersion string      `json:"kubernetesVersion,omitempty"`
	OSPackages        []string    `json:"osPackages,omitempty"`
	Components        []Component `json:"components"`
	// Removed are paths the image's whiteouts remove from the root.
	Removed []string `json:"removed,omitempty"`
	// Dirs are the directories apply created (removed again, when empty,
	// once no record needs them).
	Dirs []string `json:"dirs,omitempty"`
	// Backups are the root's own files the image replaced or removed
	// (content under objects/), restored when no image claims the path any
	// more.
	Backups []File `json:"backups,omitempty"`
}

// files maps each path of the record to its entry.
func (r *Record) files() map[string]File {
	m := map[string]File{}
	if r == nil {
		return m
	}
	for _, c := range r.Components {
		for _, f := range c.Files {
			m[f.Path] = f
		}
	}
	return m
}

// owners maps each path to the index of the component providing it.
func (r *Record) owners() map[string]int {
	m := map[string]int{}
	if r == nil {
		return m
	}
	for i, c := range r.Components {
		for _, f := range c.Files {
			m[f.Path] = i
		}
	}
	return m
}

func (r *Record) backups() map[string]File {
	m := map[string]File{}
	if r == nil {
		return m
	}
	for _, b := range r.Backups {
		m[b.Path] = b
	}
	return m
}

func (r *Record) removed() map[string]bool {
	m := map[string]bool{}
	if r != nil {
		for _, p := range r.Removed {
			m[p] = true
		}
	}
	return m
}

// journal is an apply in progress: the root moves from From to To.
type journal struct {
	Op   string  `json:"op"`
	From *Record `json:"from"`
	To   *Record `json:"to"`
}

// state reads and writes the files of StateDir under a root.
type state struct {
	root string // the root directory
	dir  string // root/StateDir
}

func newState(root string) state {
	return state{root: root, dir: filepath.Join(root, filepath.FromSlash(StateDir))}
}

func (s state) path(name string) string { return filepath.Join(s.dir, name) }

// readJSON reads name into v; a missing file leaves found false.
func (s state) readJSON(name string, v any) (found bool, err error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w: %v", s.path(name), ErrCorrupt, err)
	}
	return true, nil
}

func (s state) writeJSON(name string, v any) error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path(name), append(b, '\n'), 0o644)
}

func (s state) remove(name string) error {
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(s.dir)
}

// record reads applied.json (nil when nothing is applied).
func (s state) record(name string) (*Record, error) {
	var r Record
	found, err := s.readJSON(name, &r)
	if err != nil || !found {
		return nil, err
	}
	if r.SchemaVersion != 1 {
		return nil, fmt.Errorf("%s: %w: schemaVersion %d, want 1", s.path(name), ErrCorrupt, r.SchemaVersion)
	}
	return &r, nil
}

func (s state) journal() (*journal, error) {
	var j journal
	found, err := s.readJSON(journalFile, &j)
	if err != nil || !found {
		return nil, err
	}
	return &j, nil
}

// commit makes the journal's target the applied record: the record it
// replaces becomes the previous one (for a rollback, the two swap), then
// the journal goes.
func (s state) commit(j *journal) error {
	if j.From != nil {
		if err := s.writeJSON(previousFile, j.From); err != nil {
			return err
		}
	} else if err := s.remove(previousFile); err != nil {
		return err
	}
	step()
	if j.To != nil {
		if err := s.writeJSON(appliedFile, j.To); err != nil {
			return err
		}
	} else if err := s.remove(appliedFile); err != nil {
		return err
	}
	step()
	return s.remove(journalFile)
}

// storeRef is the layout under the state directory holding image d.
func (s state) storeLayout(image string) string {
	hex := image
	if i := len("sha256:"); len(image) > i && image[:i] == "sha256:" {
		hex = image[i:]
	}
	return filepath.Join(s.dir, storeDir, hex)
}

func (s state) objectPath(digest string) string {
	hex := digest
	if i := len("sha256:"); len(digest) > i && digest[:i] == "sha256:" {
		hex = digest[i:]
	}
	return filepath.Join(s.dir, objectsDir, "sha256", hex)
}

// gc removes stored images and backups no record or journal refers to.
func (s state) gc(keep ...*Record) error {
	images := map[string]bool{}
	objects := map[string]bool{}
	for _, r := range keep {
		if r == nil {
			continue
		}
		images[filepath.Base(s.storeLayout(r.Image))] = true
		for _, b := range r.Backups {
			if b.Type == TypeFile {
				objects[filepath.Base(s.objectPath(b.Digest))] = true
			}
		}
	}
	sweep := func(dir string, keep map[string]bool) error {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !keep[e.Name()] {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := sweep(filepath.Join(s.dir, storeDir), images); err != nil {
		return err
	}
	return sweep(filepath.Join(s.dir, objectsDir, "sha256"), objects)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
