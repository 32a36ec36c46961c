package apply

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/internal/atomicfile"
)

// crashHook, when set (by tests only), is called before each change to the
// root; a test process kills itself there to check that the journal brings
// the next apply through.
var crashHook func()

func step() {
	if crashHook != nil {
		crashHook()
	}
}

// Changes lists how a transition moves the root's files.
type Changes struct {
	// Components whose layer differs (or that appear or go).
	Components []string `json:"components,omitempty"`
	Added      []string `json:"added,omitempty"`
	Changed    []string `json:"changed,omitempty"`
	Removed    []string `json:"removed,omitempty"`
	// Restored are the root's own files put back from backups.
	Restored []string `json:"restored,omitempty"`
	// Unchanged counts the image's paths left untouched.
	Unchanged int `json:"unchanged"`
}

// diff computes what moving from → to changes, without looking at the root.
func diff(from, to *Record) Changes {
	var c Changes
	ff, tf := from.files(), to.files()
	fl := map[string]string{}
	if from != nil {
		for _, x := range from.Components {
			fl[x.Name] = x.Layer
		}
	}
	seen := map[string]bool{}
	if to != nil {
		for _, x := range to.Components {
			seen[x.Name] = true
			if fl[x.Name] != x.Layer {
				c.Components = append(c.Components, x.Name)
			}
		}
	}
	for n := range fl {
		if !seen[n] {
			c.Components = append(c.Components, n)
		}
	}
	sort.Strings(c.Components)
	for _, p := range sortedKeys(tf) {
		old, ok := ff[p]
		switch {
		case !ok:
			c.Added = append(c.Added, p)
		case !old.same(tf[p]):
			c.Changed = append(c.Changed, p)
		default:
			c.Unchanged++
		}
	}
	bk := from.backups()
	tr := to.removed()
	for _, p := range sortedKeys(ff) {
		if _, ok := tf[p]; ok || tr[p] {
			continue
		}
		if _, ok := bk[p]; ok {
			c.Restored = append(c.Restored, p)
		} else if ff[p].Type != TypeDir {
			c.Removed = append(c.Removed, p)
		}
	}
	for _, p := range to.Removed {
		if !from.removed()[p] {
			c.Removed = append(c.Removed, p)
		}
	}
	for _, p := range sortedKeys(from.removed()) {
		if _, ok := tf[p]; !ok && !tr[p] {
			if _, ok := bk[p]; ok {
				c.Restored = append(c.Restored, p)
			}
		}
	}
	return c
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// transition moves the root from j.From to j.To. Every step checks the
// root first, so running it again after a crash part-way finishes the job.
// img is j.To's image (nil when To is nil: everything is removed).
func (a *applier) transition(ctx context.Context, j *journal, img v1.Image) error {
	root := a.root
	ff, tf := j.From.files(), j.To.files()
	owners := j.To.owners()
	fromBackups := j.From.backups()
	toRemoved := j.To.removed()
	inRemoved := func(p string) bool {
		for r := range toRemoved {
			if under(p, r) {
				return true
			}
		}
		return false
	}
	dirs := map[string]bool{} // directories whose entries changed, to sync

	// 1. Paths leaving the image: removed, or the root's own file restored.
	leaving := []string{}
	for p, f := range ff {
		if _, ok := tf[p]; ok || inRemoved(p) || f.Type == TypeDir {
			continue
		}
		leaving = append(leaving, p)
	}
	for p := range j.From.removed() {
		if _, ok := tf[p]; !ok && !inRemoved(p) {
			leaving = append(leaving, p)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(leaving)))
	for _, p := range leaving {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := fromBackups[p]; ok {
			continue // restored in step 5
		}
		step()
		if err := remove(root, p); err != nil {
			return err
		}
		dirs[path.Dir(p)] = true
	}

	// 2. Whiteouts.
	for _, p := range j.To.Removed {
		step()
		if err := remove(root, p); err != nil {
			return err
		}
		dirs[path.Dir(p)] = true
	}

	// 3. Directories, parents first.
	created := map[string]bool{}
	for _, d := range j.To.Dirs {
		created[d] = true
	}
	var want []File
	for _, p := range sortedKeys(tf) {
		if tf[p].Type == TypeDir {
			want = append(want, tf[p])
		}
	}
	for _, d := range j.To.Dirs {
		if _, ok := tf[d]; !ok {
			want = append(want, File{Path: d, Type: TypeDir, Mode: 0o755})
		}
	}
	sort.Slice(want, func(i, k int) bool { return want[i].Path < want[k].Path })
	for _, d := range want {
		if old, ok := ff[d.Path]; ok && old.same(d) && !created[d.Path] {
			continue
		}
		if created[d.Path] {
			if ok, err := matches(root, d); err != nil || ok {
				if err != nil {
					return err
				}
				continue
			}
		}
		step()
		if err := ensureDir(root, d, created[d.Path]); err != nil {
			return err
		}
	}

	// 4. Files and symlinks, layer by layer; then hard links.
	need := func(f File) (bool, error) {
		if old, ok := ff[f.Path]; ok && old.same(f) {
			return false, nil
		}
		ok, err := matches(root, f)
		return !ok, err
	}
	if j.To != nil {
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for i, c := range j.To.Components {
			todo := 0
			for _, f := range c.Files {
				if f.Type == TypeFile || f.Type == TypeSymlink {
					if n, err := need(f); err != nil {
						return err
					} else if n {
						todo++
					}
				}
			}
			if todo == 0 {
				continue
			}
			err := eachEntry(ctx, layers[i], func(h *tar.Header, p string, r io.Reader) error {
				f, ok := tf[p]
				if !ok || owners[p] != i || (f.Type != TypeFile && f.Type != TypeSymlink) {
					return nil
				}
				if n, err := need(f); err != nil || !n {
					return err
				}
				step()
				dirs[path.Dir(p)] = true
				if f.Type == TypeSymlink {
					return writeSymlink(root, f)
				}
				return writeFile(root, f, r, h.ModTime)
			})
			if err != nil {
				return fmt.Errorf("component %s (layer %s): %w", c.Name, c.Layer, err)
			}
		}
		for _, p := range sortedKeys(tf) {
			f := tf[p]
			if f.Type != TypeHardlink {
				continue
			}
			if n, err := need(f); err != nil {
				return err
			} else if !n {
				continue
			}
			step()
			if err := writeHardlink(root, f); err != nil {
				return err
			}
			dirs[path.Dir(p)] = true
		}
	}

	// 5. The root's own files, back where no image claims them.
	var restore []File
	for _, b := range fromBackups {
		for _, p := range leaving {
			if under(b.Path, p) {
				restore = append(restore, b)
				break
			}
		}
	}
	sort.Slice(restore, func(i, k int) bool { return restore[i].Path < restore[k].Path })
	for _, b := range restore {
		step()
		if err := a.restore(b); err != nil {
			return err
		}
		dirs[path.Dir(b.Path)] = true
	}

	// 6. Directories apply made that nothing needs any more, deepest first.
	keep := map[string]bool{}
	for _, d := range j.To.Dirs {
		keep[d] = true
	}
	var gone []string
	if j.From != nil {
		for _, d := range j.From.Dirs {
			if !keep[d] {
				gone = append(gone, d)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(gone)))
	for _, d := range gone {
		step()
		if err := root.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("removing /%s: %w", d, err)
		}
	}

	for d := range dirs {
		if err := atomicfile.SyncDir(filepath.Join(a.dir, filepath.FromSlash(d))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// backup saves the root's own entry at p (a whole tree for a directory)
// before the image replaces or removes it.
func (a *applier) backup(p string) ([]File, error) {
	f, ok, err := inspect(a.root, p, true)
	if err != nil || !ok {
		return nil, err
	}
	out := []File{f}
	switch f.Type {
	case TypeFile:
		if err := a.saveObject(p, f.Digest); err != nil {
			return nil, err
		}
	case TypeDir:
		err := fs.WalkDir(a.root.FS(), p, func(q string, d fs.DirEntry, err error) error {
			if err != nil || q == p {
				return err
			}
			g, ok, err := inspect(a.root, q, true)
			if err != nil || !ok {
				return err
			}
			if g.Type == TypeFile {
				if err := a.saveObject(q, g.Digest); err != nil {
					return err
				}
			}
			if g.Type != "special" {
				out = append(out, g)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	case "special":
		return nil, nil
	}
	return out, nil
}

func (a *applier) saveObject(p, digest string) error {
	dst := a.st.objectPath(digest)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	r, err := a.root.Open(p)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := atomicfile.Create(dst)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("backing up /%s: %w", p, err)
	}
	return w.Commit(0o600)
}

// restore puts a backed-up entry back.
func (a *applier) restore(b File) error {
	if ok, err := matches(a.root, b); err != nil || ok {
		return err
	}
	switch b.Type {
	case TypeDir:
		return ensureDir(a.root, b, true)
	case TypeSymlink:
		return writeSymlink(a.root, b)
	case TypeFile:
		r, err := os.Open(a.st.objectPath(b.Digest))
		if err != nil {
			return fmt.Errorf("restoring /%s: %w", b.Path, err)
		}
		defer r.Close()
		return writeFile(a.root, b, r, time.Time{})
	}
	return nil
}
