// Package archive extracts downloaded sources into a staging directory,
// safely.
//
// Extract treats every archive as hostile: it refuses entries that would land
// outside the root (absolute or ".." paths, symlinks leaving the root,
// hardlinks to anything it did not extract, writes through symlinks), device
// nodes, fifos and sockets, and stops decompression bombs by counting the
// bytes it actually decompresses, never trusting headers alone. On any error
// nothing from the call is left under the root.
//
// The package does not download (see builder/fetch), does not build layers
// and does not preserve ownership or timestamps: the layer writer sets those
// (uid/gid 0, mtime = epoch) for reproducibility. It never follows a symlink
// when writing.
package archive

import (
	"archive/tar"
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Format is how a source is packed.
type Format string

// Supported formats.
const (
	None   Format = "none"    // a single file, not an archive
	Tar    Format = "tar"     // uncompressed tar
	TarGz  Format = "tar.gz"  // gzip-compressed tar
	TarZst Format = "tar.zst" // zstd-compressed tar
	Zip    Format = "zip"     // zip (stored or deflated)
)

// ParseFormat returns the Format named s; the names are exactly the
// constants' values (no aliases such as "tgz").
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case None, Tar, TarGz, TarZst, Zip:
		return f, nil
	}
	return "", fmt.Errorf("%w: format %q (want none, tar, tar.gz, tar.zst or zip)", ErrFormat, s)
}

// Rule selects entries and places them in the image.
//
// Pattern is a path.Match glob matched against the cleaned entry path
// ("./bin/x" is matched as "bin/x"). Dest is an absolute image path. When
// Dest ends in "/" it is a directory: every match lands at Dest + its base
// name, and a matched directory brings its whole subtree. Otherwise the
// pattern must match exactly one regular file, which is placed at Dest.
//
// With format None the single file is an entry named after the archive
// file's base name; the pattern "*" always selects it.
type Rule struct {
	Pattern string
	Dest    string
}

// Limits bound what an archive may expand to. A zero field means its
// default; a negative field means no limit.
type Limits struct {
	// MaxTotal caps the bytes decompressed from the archive (everything
	// read, selected or not, plus copies made for hardlinks and for entries
	// placed at several destinations). Default DefaultMaxTotal (8 GiB).
	MaxTotal int64
	// MaxFile caps one extracted file. Default DefaultMaxFile (2 GiB).
	MaxFile int64
	// MaxEntries caps the number of entries in the archive, selected or
	// not. Default DefaultMaxEntries (200000).
	MaxEntries int
	// MaxRatio caps decompressed bytes / archive file size once more than
	// RatioFloor (1 MiB) has been decompressed. Default DefaultMaxRatio
	// (1000).
	MaxRatio int64
}

// Default limits.
const (
	DefaultMaxTotal   = int64(8) << 30
	DefaultMaxFile    = int64(2) << 30
	DefaultMaxEntries = 200000
	DefaultMaxRatio   = 1000
	RatioFloor        = int64(1) << 20
)

func (l Limits) withDefaults() Limits {
	def := func(v, d int64) int64 {
		switch {
		case v == 0:
			return d
		case v < 0:
			return math.MaxInt64
		}
		return v
	}
	l.MaxTotal = def(l.MaxTotal, DefaultMaxTotal)
	l.MaxFile = def(l.MaxFile, DefaultMaxFile)
	l.MaxRatio = def(l.MaxRatio, DefaultMaxRatio)
	switch {
	case l.MaxEntries == 0:
		l.MaxEntries = DefaultMaxEntries
	case l.MaxEntries < 0:
		l.MaxEntries = math.MaxInt
	}
	return l
}

// Entry is one path Extract wrote under the root.
type Entry struct {
	Path     string      // image path, e.g. "/usr/local/bin/runc"
	Mode     fs.FileMode // permission bits only (0777 at most)
	Type     byte        // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	Linkname string      // symlink target
	Size     int64       // regular files: content size
}

// Extract writes the entries of the archive at archivePath selected by rules
// under root (created if missing) and returns what it wrote, sorted by Path.
// Image path "/usr/local/bin/runc" is written to root/usr/local/bin/runc.
// No rules means every entry, at "/" + its path.
//
// Rules are applied in order, each to every entry; an entry may land at
// several destinations, but two entries (or rules) producing the same file
// destination is an ErrConflict, as is a destination that already exists
// under root (directories merge). The result includes every parent directory
// of every destination (mode 0755 unless the archive gives one).
// Directories that already existed under root are left as they were.
//
// Modes are set with chmod, independent of the umask: the archive's
// permission bits (setuid, setgid and sticky dropped), 0755 for directories
// the archive does not list, 0644 for format None and for zip files without
// Unix modes. Hardlinks are materialised as copies of their (extracted)
// target. Nothing is fsynced: root is a staging directory.
//
// Entries are first written into a temporary directory next to root, then
// moved in; on any error nothing from this call is left under root. root
// must not be written by anyone else during the call.
func Extract(ctx context.Context, archivePath string, f Format, rules []Rule, root string, lim Limits) ([]Entry, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, fmt.Errorf("%s: %w", archivePath, err)
	}
	x := &extractor{
		ctx:     ctx,
		archive: archivePath,
		lim:     lim.withDefaults(),
		nodes:   map[string]*node{},
		regular: map[string]string{},
	}
	for _, r := range rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, &EntryError{Archive: archivePath, Pattern: r.Pattern, Reason: err.Error(), Err: ErrBadRule}
		}
		x.rules = append(x.rules, cr)
	}
	if f == None && len(rules) == 0 {
		return nil, &EntryError{Archive: archivePath, Reason: "format none needs a rule giving the destination", Err: ErrBadRule}
	}

	file, err := os.Open(archivePath)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", archivePath, ErrFormat)
	}
	x.size = fi.Size()

	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating extraction root: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(root)), ".prebake-extract-*")
	if err != nil {
		return nil, fmt.Errorf("creating extraction staging directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	x.tmp = tmp

	switch f {
	case None:
		err = x.entry(header{name: filepath.Base(archivePath), typ: tar.TypeReg, mode: 0o644, size: x.size},
			func() (io.Reader, error) { return x.counted(file), nil })
	case Zip:
		err = x.zip(file)
	default:
		err = x.tar(file, f)
	}
	if err == nil {
		err = x.checkRules()
	}
	if err != nil {
		return nil, err
	}
	nodes := x.sorted()
	if err := x.commit(root, nodes); err != nil {
		return nil, err
	}
	out := make([]Entry, len(nodes))
	for i, n := range nodes {
		out[i] = n.Entry
	}
	return out, nil
}

// rule is a compiled Rule.
type rule struct {
	pattern string   // cleaned
	dest    string   // cleaned, no trailing slash (except "/")
	dir     bool     // Dest ended in "/"
	matches []string // entry names matched (directly or through an ancestor)
}

func compileRule(r Rule) (*rule, error) {
	p := r.Pattern
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	if p == "" {
		return nil, errors.New("empty pattern")
	}
	if strings.HasPrefix(p, "/") {
		return nil, errors.New("pattern must be relative to the archive root")
	}
	p = path.Clean(p)
	if p == ".." || strings.HasPrefix(p, "../") {
		return nil, errors.New("pattern climbs out of the archive")
	}
	if _, err := path.Match(p, ""); err != nil {
		return nil, fmt.Errorf("pattern: %v", err)
	}
	d := r.Dest
	dir := strings.HasSuffix(d, "/")
	if !strings.HasPrefix(d, "/") {
		return nil, fmt.Errorf("destination %q is not an absolute image path", d)
	}
	trimmed := strings.TrimSuffix(d, "/")
	if trimmed == "" {
		trimmed = "/"
	}
	if path.Clean(trimmed) != trimmed {
		return nil, fmt.Errorf("destination %q is not a clean path (no \"..\", \".\" or \"//\")", d)
	}
	if !dir && trimmed == "/" {
		return nil, errors.New(`destination "/" must be a directory`)
	}
	return &rule{pattern: p, dest: trimmed, dir: dir}, nil
}

// match returns where entry c lands under r, if anywhere.
func (r *rule) match(c string) (dest string, ok bool) {
	if m, _ := path.Match(r.pattern, c); m {
		if r.dir {
			return path.Join(r.dest, path.Base(c)), true
		}
		return r.dest, true
	}
	if !r.dir {
		return "", false
	}
	// A matched ancestor directory brings its subtree.
	for i := len(c) - 1; i > 0; i-- {
		if c[i] != '/' {
			continue
		}
		if m, _ := path.Match(r.pattern, c[:i]); m {
			return path.Join(r.dest, path.Base(c[:i]), c[i+1:]), true
		}
	}
	return "", false
}

// header is one archive entry, format-independent.
type header struct {
	name     string // as stored
	typ      byte   // tar type flag (typeSocket, typeOther for zip oddities)
	mode     fs.FileMode
	size     int64
	linkname string
}

const (
	typeSocket byte = 0xfe
	typeOther  byte = 0xff
)

// node is an Entry being staged.
type node struct {
	Entry
	from     string // archive entry that produced it; "" for implicit parents
	explicit bool   // directory listed in the archive
}

type extractor struct {
	ctx     context.Context
	archive string
	lim     Limits
	rules   []*rule
	tmp     string
	size    int64 // archive file size

	nodes   map[string]*node  // by image path
	regular map[string]string // cleaned entry name -> image path of its first copy
	entries int
	total   int64
	limErr  error // set once a limit is hit while reading
	buf     []byte
}

func (x *extractor) fail(name string, sentinel error, format string, args ...any) error {
	return &EntryError{Archive: x.archive, Entry: name, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}

// add counts n more decompressed bytes against the limits.
func (x *extractor) add(n int64) error {
	x.total += n
	switch {
	case x.total > x.lim.MaxTotal:
		x.limErr = fmt.Errorf("more than %d bytes decompressed (limit)", x.lim.MaxTotal)
	case x.total > RatioFloor && x.size > 0 && x.total/x.size > x.lim.MaxRatio:
		x.limErr = fmt.Errorf("expands more than %d:1 (%d bytes from a %d-byte archive)", x.lim.MaxRatio, x.total, x.size)
	}
	return x.limErr
}

// counted wraps a decompressed stream: it counts bytes against the limits
// and stops when ctx is done.
func (x *extractor) counted(r io.Reader) io.Reader { return &countReader{x: x, r: r} }

type countReader struct {
	x *extractor
	r io.Reader
}

var errLimit = errors.New("limit reached")

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.x.ctx.Err(); err != nil {
		return 0, err
	}
	if c.x.limErr != nil {
		return 0, errLimit
	}
	n, err := c.r.Read(p)
	if n > 0 && c.x.add(int64(n)) != nil {
		return n, errLimit
	}
	return n, err
}

// readErr turns an error reading the archive into the error to return.
func (x *extractor) readErr(name string, err error) error {
	if x.limErr != nil {
		return x.fail(name, ErrTooLarge, "%v", x.limErr)
	}
	if cerr := x.ctx.Err(); cerr != nil {
		return fmt.Errorf("extracting %s: %w", x.archive, cerr)
	}
	if name == "" {
		return fmt.Errorf("%s: %w: %v", x.archive, ErrFormat, err)
	}
	return x.fail(name, ErrFormat, "reading: %v", err)
}

func (x *extractor) tar(file *os.File, f Format) error {
	var r io.Reader = file
	switch f {
	case TarGz:
		zr, err := gzip.NewReader(file)
		if err != nil {
			return fmt.Errorf("%s: %w: gzip: %v", x.archive, ErrFormat, err)
		}
		defer zr.Close()
		r = zr
	case TarZst:
		zr, err := zstd.NewReader(file, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return fmt.Errorf("%s: %w: zstd: %v", x.archive, ErrFormat, err)
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(x.counted(r))
	last := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if x.limErr != nil || last == "" {
				return x.readErr(last, err) // the limit was hit skipping entry last
			}
			return x.readErr("", fmt.Errorf("after entry %q: %w", last, err))
		}
		last = h.Name
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // pax global header (git archive): metadata only
		}
		// tar.Reader already turns the legacy TypeRegA into TypeReg/TypeDir.
		hd := header{name: h.Name, typ: h.Typeflag, mode: fs.FileMode(h.Mode) & fs.ModePerm, size: h.Size, linkname: h.Linkname}
		if err := x.entry(hd, func() (io.Reader, error) { return tr, nil }); err != nil {
			return err
		}
	}
}

func (x *extractor) zip(file *os.File) error {
	zr, err := zip.NewReader(file, x.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked below
		return fmt.Errorf("%s: %w: zip: %v", x.archive, ErrFormat, err)
	}
	if len(zr.File) > x.lim.MaxEntries {
		return x.fail("", ErrTooLarge, "%d entries, limit %d", len(zr.File), x.lim.MaxEntries)
	}
	for _, zf := range zr.File {
		m := zf.Mode()
		h := header{name: zf.Name, typ: tar.TypeReg, size: int64(min(zf.UncompressedSize64, math.MaxInt64))}
		switch {
		case m&fs.ModeSymlink != 0:
			h.typ = tar.TypeSymlink
		case m.IsDir() || strings.HasSuffix(zf.Name, "/"):
			h.typ = tar.TypeDir
		case m&fs.ModeCharDevice != 0:
			h.typ = tar.TypeChar
		case m&fs.ModeDevice != 0:
			h.typ = tar.TypeBlock
		case m&fs.ModeNamedPipe != 0:
			h.typ = tar.TypeFifo
		case m&fs.ModeSocket != 0:
			h.typ = typeSocket
		case !m.IsRegular():
			h.typ = typeOther
		}
		// Only Unix (3) and macOS (19) creators store Unix permissions.
		if creator := zf.CreatorVersion >> 8; (creator == 3 || creator == 19) && zf.ExternalAttrs>>16 != 0 {
			h.mode = m.Perm()
		} else if h.typ == tar.TypeDir {
			h.mode = 0o755
		} else {
			h.mode = 0o644
		}
		if strings.Contains(zf.Name, `\`) {
			return x.fail(zf.Name, ErrUnsafeEntry, `backslash in name (a Windows path?)`)
		}
		open := func() (io.Reader, error) {
			rc, err := zf.Open()
			if err != nil {
				return nil, err
			}
			return x.counted(rc), nil
		}
		if h.typ == tar.TypeSymlink {
			r, err := open()
			if err != nil {
				return x.readErr(zf.Name, err)
			}
			b, err := io.ReadAll(io.LimitReader(r, 4097))
			if err != nil {
				return x.readErr(zf.Name, err)
			}
			if len(b) > 4096 {
				return x.fail(zf.Name, ErrUnsafeEntry, "symlink target longer than 4096 bytes")
			}
			h.linkname = string(b)
		}
		if err := x.entry(h, open); err != nil {
			return err
		}
	}
	return nil
}

// cleanName returns the cleaned entry path, or why it is unsafe.
func cleanName(name string) (string, string) {
	switch {
	case name == "":
		return "", "empty name"
	case strings.ContainsRune(name, 0):
		return "", "NUL byte in name"
	case strings.HasPrefix(name, "/"):
		return "", "absolute path"
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", "path escapes the archive root"
	}
	return c, ""
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case typeSocket:
		return "socket"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeDir:
		return "directory"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeReg:
		return "regular file"
	case typeOther:
		return "irregular file"
	}
	return fmt.Sprintf("entry of tar type %q", t)
}

// entry checks one archive entry and stages it at each destination its rules
// give. open returns its content (regular files only).
func (x *extractor) entry(h header, open func() (io.Reader, error)) error {
	if err := x.ctx.Err(); err != nil {
		return fmt.Errorf("extracting %s: %w", x.archive, err)
	}
	x.entries++
	if x.entries > x.lim.MaxEntries {
		return x.fail(h.name, ErrTooLarge, "more than %d entries (limit)", x.lim.MaxEntries)
	}
	// Every entry's path is checked, selected or not.
	c, why := cleanName(h.name)
	if why != "" {
		return x.fail(h.name, ErrUnsafeEntry, "%s", why)
	}
	var target string // hardlink target, cleaned
	if h.typ == tar.TypeLink {
		t, why := cleanName(h.linkname)
		if why != "" {
			return x.fail(h.name, ErrUnsafeEntry, "hardlink to %q: %s", h.linkname, why)
		}
		target = t
	}
	if c == "." {
		if h.typ != tar.TypeDir {
			return x.fail(h.name, ErrUnsafeEntry, "%s named like the archive root", typeName(h.typ))
		}
		return nil
	}

	var dests []string
	if len(x.rules) == 0 {
		dests = []string{"/" + c}
	}
	for _, r := range x.rules {
		d, ok := r.match(c)
		if !ok {
			continue
		}
		r.matches = append(r.matches, h.name)
		if !r.dir {
			if len(r.matches) > 1 {
				return &EntryError{Archive: x.archive, Pattern: r.pattern, Err: ErrBadRule,
					Reason: fmt.Sprintf("matches %q and %q; destination %s (no trailing /) takes exactly one regular file", r.matches[0], r.matches[1], r.dest)}
			}
			if h.typ != tar.TypeReg && h.typ != tar.TypeLink {
				return &EntryError{Archive: x.archive, Pattern: r.pattern, Err: ErrBadRule,
					Reason: fmt.Sprintf("matches %s %q; destination %s (no trailing /) takes a regular file", typeName(h.typ), h.name, r.dest)}
			}
		}
		dests = append(dests, d)
	}
	if len(dests) == 0 {
		return nil
	}

	switch h.typ {
	case tar.TypeReg:
		if h.size > x.lim.MaxFile {
			return x.fail(h.name, ErrTooLarge, "%d bytes, per-file limit %d", h.size, x.lim.MaxFile)
		}
	case tar.TypeDir:
	case tar.TypeSymlink:
		switch {
		case h.linkname == "":
			return x.fail(h.name, ErrUnsafeEntry, "symlink with an empty target")
		case strings.ContainsRune(h.linkname, 0):
			return x.fail(h.name, ErrUnsafeEntry, "NUL byte in symlink target")
		case path.IsAbs(h.linkname):
			return x.fail(h.name, ErrUnsafeEntry, "symlink to absolute path %q", h.linkname)
		}
		for _, d := range dests {
			if climbs(path.Dir(d), h.linkname) {
				return x.fail(h.name, ErrUnsafeEntry, "symlink %s -> %q points outside the root", d, h.linkname)
			}
		}
	case tar.TypeLink:
		if _, ok := x.regular[target]; !ok {
			return x.fail(h.name, ErrUnsafeEntry, "hardlink to %q, which is not an extracted regular file", h.linkname)
		}
	default:
		return x.fail(h.name, ErrUnsafeEntry, "%s", typeName(h.typ))
	}

	for i, d := range dests {
		if err := x.place(h, c, target, d, i == 0, open); err != nil {
			return err
		}
	}
	return nil
}

// climbs reports whether the relative symlink target, resolved from image
// directory dir, goes above "/".
func climbs(dir, target string) bool {
	depth := 0
	for _, s := range strings.Split(dir, "/") {
		if s != "" {
			depth++
		}
	}
	for _, s := range strings.Split(target, "/") {
		switch s {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func (x *extractor) tmpPath(image string) string {
	return filepath.Join(x.tmp, filepath.FromSlash(image))
}

// place stages entry h (cleaned name c) at image path dest.
func (x *extractor) place(h header, c, target, dest string, first bool, open func() (io.Reader, error)) error {
	// Parents: implicit directories, never through a non-directory.
	for i := 1; i < len(dest); i++ {
		if dest[i] != '/' {
			continue
		}
		p := dest[:i]
		n, ok := x.nodes[p]
		if ok && n.Type != tar.TypeDir {
			return x.fail(h.name, ErrUnsafeEntry, "destination %s goes through %s %s (from %q)", dest, typeName(n.Type), p, n.from)
		}
		if !ok {
			if err := os.Mkdir(x.tmpPath(p), 0o755); err != nil {
				return fmt.Errorf("staging %s: %w", p, err)
			}
			x.nodes[p] = &node{Entry: Entry{Path: p, Mode: 0o755, Type: tar.TypeDir}}
		}
	}
	if n, ok := x.nodes[dest]; ok {
		if n.Type == tar.TypeDir && h.typ == tar.TypeDir {
			n.Mode, n.explicit, n.from = h.mode, true, h.name
			return nil
		}
		from := n.from
		if from == "" {
			from = "a directory implied by other entries"
		} else {
			from = fmt.Sprintf("%q", from)
		}
		return x.fail(h.name, ErrConflict, "destination %s already written by %s", dest, from)
	}
	n := &node{Entry: Entry{Path: dest, Mode: h.mode, Type: h.typ}, from: h.name, explicit: true}
	tp := x.tmpPath(dest)
	switch h.typ {
	case tar.TypeDir:
		if err := os.Mkdir(tp, 0o755); err != nil {
			return fmt.Errorf("staging %s: %w", dest, err)
		}
	case tar.TypeSymlink:
		n.Mode, n.Linkname = 0o777, h.linkname
		if err := os.Symlink(h.linkname, tp); err != nil {
			return fmt.Errorf("staging %s: %w", dest, err)
		}
	case tar.TypeReg, tar.TypeLink:
		var src io.Reader
		if h.typ == tar.TypeLink || !first {
			// A hardlink, or a second destination: copy what is staged.
			from := x.regular[target]
			if h.typ == tar.TypeReg {
				from = x.regular[c]
			}
			orig := x.nodes[from]
			n.Type, n.Mode = tar.TypeReg, orig.Mode
			if err := x.add(orig.Size); err != nil {
				return x.fail(h.name, ErrTooLarge, "%v", err)
			}
			fh, err := os.Open(x.tmpPath(from))
			if err != nil {
				return fmt.Errorf("staging %s: %w", dest, err)
			}
			defer fh.Close()
			src = fh
		} else {
			r, err := open()
			if err != nil {
				return x.readErr(h.name, err)
			}
			src = r
		}
		size, err := x.writeFile(h.name, tp, src)
		if err != nil {
			return err
		}
		n.Size = size
		if h.typ == tar.TypeReg && first && size != h.size {
			return x.fail(h.name, ErrFormat, "%d bytes of content, header says %d", size, h.size)
		}
		if _, ok := x.regular[c]; !ok {
			x.regular[c] = dest
		}
	}
	x.nodes[dest] = n
	return nil
}

// writeFile copies src into a new file at p, enforcing the per-file limit.
func (x *extractor) writeFile(name, p string, src io.Reader) (int64, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("staging %s: %w", name, err)
	}
	defer f.Close()
	if x.buf == nil {
		x.buf = make([]byte, 1<<20)
	}
	src = io.LimitReader(src, x.lim.MaxFile+1)
	var n int64
	for {
		nr, rerr := src.Read(x.buf)
		if nr > 0 {
			if _, werr := f.Write(x.buf[:nr]); werr != nil {
				return n, fmt.Errorf("staging %s: %w", name, werr)
			}
			n += int64(nr)
			if n > x.lim.MaxFile {
				return n, x.fail(name, ErrTooLarge, "more than %d bytes (per-file limit)", x.lim.MaxFile)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, x.readErr(name, rerr)
		}
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("staging %s: %w", name, err)
	}
	return n, nil
}

// checkRules reports rules that matched nothing.
func (x *extractor) checkRules() error {
	for _, r := range x.rules {
		if len(r.matches) == 0 {
			return &EntryError{Archive: x.archive, Pattern: r.pattern, Err: ErrNoMatch,
				Reason: fmt.Sprintf("none of the archive's %d entries match", x.entries)}
		}
	}
	return nil
}

func (x *extractor) sorted() []*node {
	out := make([]*node, 0, len(x.nodes))
	for _, n := range x.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// commit moves the staged nodes from tmp into root. It first checks that
// nothing but directories already exists at their paths, then creates
// directories and renames files and symlinks, and sets directory modes last
// (so read-only directories can be filled). On failure it removes what it
// added.
func (x *extractor) commit(root string, nodes []*node) (err error) {
	tmp := x.tmp
	create := make([]bool, len(nodes))
	for i, n := range nodes {
		p := filepath.Join(root, filepath.FromSlash(n.Path))
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			create[i] = true
			continue
		}
		if err != nil {
			return fmt.Errorf("extracting into %s: %w", root, err)
		}
		if n.Type != tar.TypeDir || !fi.IsDir() {
			what := "an implied parent directory"
			if n.Type != tar.TypeDir || n.explicit {
				what = "a " + typeName(n.Type)
			}
			return x.fail(n.from, ErrConflict, "destination %s (%s) already exists in %s as %s", n.Path, what, root, describe(fi.Mode()))
		}
	}
	var added []int // indexes of nodes created under root, in order
	defer func() {
		if err == nil {
			return
		}
		for _, i := range added {
			if nodes[i].Type == tar.TypeDir {
				os.Chmod(filepath.Join(root, filepath.FromSlash(nodes[i].Path)), 0o755)
			}
		}
		for k := len(added) - 1; k >= 0; k-- {
			os.Remove(filepath.Join(root, filepath.FromSlash(nodes[added[k]].Path)))
		}
	}()
	for i, n := range nodes {
		if !create[i] {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(n.Path))
		switch n.Type {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("extracting into %s: %w", root, err)
			}
		case tar.TypeReg:
			t := filepath.Join(tmp, filepath.FromSlash(n.Path))
			if err := os.Chmod(t, n.Mode); err != nil {
				return fmt.Errorf("extracting into %s: %w", root, err)
			}
			if err := os.Rename(t, p); err != nil {
				return fmt.Errorf("extracting into %s: %w", root, err)
			}
		default:
			if err := os.Rename(filepath.Join(tmp, filepath.FromSlash(n.Path)), p); err != nil {
				return fmt.Errorf("extracting into %s: %w", root, err)
			}
		}
		added = append(added, i)
	}
	for k := len(added) - 1; k >= 0; k-- {
		n := nodes[added[k]]
		if n.Type == tar.TypeDir {
			if err := os.Chmod(filepath.Join(root, filepath.FromSlash(n.Path)), n.Mode); err != nil {
				return fmt.Errorf("extracting into %s: %w", root, err)
			}
		}
	}
	return nil
}

func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file"
}
