package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// ent describes one entry of a test archive.
type ent struct {
	name  string
	typ   byte // tar type; 0 means regular file
	mode  int64
	body  string
	zeros int64 // regular file of this many zero bytes instead of body
	link  string
}

func file(name string, mode int64, body string) ent {
	return ent{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func dir(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent { return ent{name: name, typ: tar.TypeLink, link: target} }

// writeTar writes ents as a tar, compressed per f, into dir and returns the path.
func writeTar(t testing.TB, f Format, ents []ent) string {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var closer io.Closer
	switch f {
	case TarGz:
		zw := gzip.NewWriter(&buf)
		w, closer = zw, zw
	case TarZst:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w, closer = zw, zw
	}
	tw := tar.NewWriter(w)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body)) + e.zeros
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ != tar.TypeReg {
			continue
		}
		io.WriteString(tw, e.body)
		if _, err := io.CopyN(tw, zeroReader{}, e.zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if closer != nil {
		if err := closer.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(t.TempDir(), "src."+string(f))
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func writeZip(t testing.TB, ents []ent) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := fs.FileMode(e.mode) & fs.ModePerm
		switch e.typ {
		case tar.TypeDir:
			mode |= fs.ModeDir
			if !strings.HasSuffix(fh.Name, "/") {
				fh.Name += "/"
			}
		case tar.TypeSymlink:
			mode |= fs.ModeSymlink
		case tar.TypeChar:
			mode |= fs.ModeDevice | fs.ModeCharDevice
		case tar.TypeBlock:
			mode |= fs.ModeDevice
		case tar.TypeFifo:
			mode |= fs.ModeNamedPipe
		case typeSocket:
			mode |= fs.ModeSocket
		case tar.TypeLink:
			t.Fatalf("zip has no hardlinks (%s)", e.name)
		}
		fh.SetMode(mode)
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		body := e.body
		if e.typ == tar.TypeSymlink {
			body = e.link
		}
		io.WriteString(w, body)
		if _, err := io.CopyN(w, zeroReader{}, e.zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "src.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func write(t testing.TB, f Format, ents []ent) string {
	if f == Zip {
		return writeZip(t, ents)
	}
	return writeTar(t, f, ents)
}

// newRoot returns an empty root directory inside its own parent, so that
// leftover staging directories can be seen.
func newRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// tree lists everything under root as "path mode [-> target]" lines.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := "/" + filepath.ToSlash(rel) + " " + fi.Mode().String()
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertClean checks that root holds exactly want and no staging directory
// is left next to it.
func assertClean(t *testing.T, root string, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, tree(t, root)); diff != "" {
		t.Errorf("root after failed extract (-want +got):\n%s", diff)
	}
	sibs, err := os.ReadDir(filepath.Dir(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sibs {
		if s.Name() != filepath.Base(root) {
			t.Errorf("left behind next to root: %s", s.Name())
		}
	}
}

func TestHostileArchives(t *testing.T) {
	tars := []Format{Tar, TarGz, TarZst}
	all := []Format{Tar, TarGz, TarZst, Zip}
	tests := []struct {
		name    string
		formats []Format
		ents    []ent
		rules   []Rule
		lim     Limits
		want    error
		entry   string // entry the error must name ("" to skip)
		reason  string // text the error must contain
	}{
		{name: "dotdot escape", formats: all,
			ents: []ent{file("ok", 0o644, "x"), file("../evil", 0o644, "x")},
			want: ErrUnsafeEntry, entry: "../evil", reason: "escapes"},
		{name: "nested dotdot escape", formats: all,
			ents: []ent{file("a/b/../../../evil", 0o644, "x")},
			want: ErrUnsafeEntry, entry: "a/b/../../../evil", reason: "escapes"},
		{name: "absolute path", formats: all,
			ents: []ent{file("/etc/passwd", 0o644, "root::0:0")},
			want: ErrUnsafeEntry, entry: "/etc/passwd", reason: "absolute"},
		{name: "escape in an unselected entry", formats: all,
			ents:  []ent{file("bin/runc", 0o755, "x"), file("../../evil", 0o644, "x")},
			rules: []Rule{{"bin/runc", "/usr/bin/runc"}},
			want:  ErrUnsafeEntry, entry: "../../evil"},
		{name: "symlink to absolute path", formats: all,
			ents: []ent{symlink("etc", "/etc")},
			want: ErrUnsafeEntry, entry: "etc", reason: "absolute"},
		{name: "symlink climbing out", formats: all,
			ents: []ent{dir("a/", 0o755), symlink("a/up", "../../etc/shadow")},
			want: ErrUnsafeEntry, entry: "a/up", reason: "outside the root"},
		{name: "symlink safe in the archive, climbing out at its destination", formats: all,
			ents:  []ent{symlink("deep/up", "../x")},
			rules: []Rule{{"deep/up", "/"}},
			want:  ErrUnsafeEntry, entry: "deep/up", reason: "/up"},
		{name: "symlink climbing out of a dir destination", formats: all,
			ents:  []ent{symlink("lib/up", "../../x")},
			rules: []Rule{{"lib/*", "/opt/"}},
			want:  ErrUnsafeEntry, entry: "lib/up"},
		{name: "file through a symlink", formats: all,
			ents: []ent{dir("sub/", 0o755), symlink("link", "sub"), file("link/x", 0o644, "x")},
			want: ErrUnsafeEntry, entry: "link/x", reason: "goes through symlink"},
		{name: "file through an escaping symlink", formats: all,
			ents: []ent{symlink("link", "../../../tmp"), file("link/x", 0o644, "x")},
			want: ErrUnsafeEntry, entry: "link"},
		{name: "hardlink escape", formats: tars,
			ents: []ent{file("a", 0o644, "x"), hardlink("h", "../../etc/passwd")},
			want: ErrUnsafeEntry, entry: "h", reason: "escapes"},
		{name: "hardlink to absolute path", formats: tars,
			ents: []ent{hardlink("h", "/etc/passwd")},
			want: ErrUnsafeEntry, entry: "h", reason: "absolute"},
		{name: "hardlink to a missing entry", formats: tars,
			ents: []ent{hardlink("h", "nothing")},
			want: ErrUnsafeEntry, entry: "h", reason: "not an extracted regular file"},
		{name: "hardlink to an unselected entry", formats: tars,
			ents:  []ent{file("data/secret", 0o600, "x"), hardlink("bin/h", "data/secret")},
			rules: []Rule{{"bin/*", "/usr/bin/"}},
			want:  ErrUnsafeEntry, entry: "bin/h"},
		{name: "hardlink to a symlink", formats: tars,
			ents: []ent{symlink("s", "t"), hardlink("h", "s")},
			want: ErrUnsafeEntry, entry: "h"},
		{name: "char device", formats: all,
			ents: []ent{{name: "dev/null", typ: tar.TypeChar, mode: 0o666}},
			want: ErrUnsafeEntry, entry: "dev/null", reason: "character device"},
		{name: "block device", formats: all,
			ents: []ent{{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660}},
			want: ErrUnsafeEntry, entry: "dev/sda", reason: "block device"},
		{name: "fifo", formats: all,
			ents: []ent{{name: "run/fifo", typ: tar.TypeFifo, mode: 0o644}},
			want: ErrUnsafeEntry, entry: "run/fifo", reason: "fifo"},
		{name: "socket", formats: []Format{Zip},
			ents: []ent{{name: "run/sock", typ: typeSocket, mode: 0o644}},
			want: ErrUnsafeEntry, entry: "run/sock", reason: "socket"},
		{name: "bomb over MaxTotal", formats: all,
			ents: []ent{file("small", 0o644, "x"), {name: "zeros", mode: 0o644, zeros: 16 << 20}},
			lim:  Limits{MaxTotal: 1 << 20},
			want: ErrTooLarge, entry: "zeros"},
		// Zip reads only the selected entries, so an unselected bomb is
		// never decompressed there.
		{name: "bomb in an unselected entry", formats: tars,
			ents:  []ent{file("bin/x", 0o755, "x"), {name: "zeros", mode: 0o644, zeros: 16 << 20}},
			rules: []Rule{{"bin/x", "/usr/bin/x"}},
			lim:   Limits{MaxTotal: 1 << 20},
			want:  ErrTooLarge},
		{name: "bomb over MaxRatio", formats: []Format{TarGz, TarZst, Zip},
			ents: []ent{{name: "zeros", mode: 0o644, zeros: 8 << 20}},
			lim:  Limits{MaxRatio: 20},
			want: ErrTooLarge, reason: "expands more than 20:1"},
		{name: "file over MaxFile", formats: all,
			ents: []ent{file("big", 0o644, strings.Repeat("y", 2000))},
			lim:  Limits{MaxFile: 1000},
			want: ErrTooLarge, entry: "big", reason: "per-file limit"},
		{name: "too many entries", formats: all,
			ents: func() []ent {
				var es []ent
				for i := range 50 {
					es = append(es, file("f"+strings.Repeat("x", i), 0o644, "x"))
				}
				return es
			}(),
			lim:  Limits{MaxEntries: 10},
			want: ErrTooLarge, reason: "entries"},
		{name: "unmatched pattern", formats: all,
			ents:  []ent{file("bin/runc", 0o755, "x")},
			rules: []Rule{{"bin/runc", "/usr/bin/runc"}, {"bin/containerd*", "/usr/bin/"}},
			want:  ErrNoMatch, reason: "bin/containerd*"},
		{name: "two rules, one destination", formats: all,
			ents:  []ent{file("a/tool", 0o755, "a"), file("b/tool", 0o755, "b")},
			rules: []Rule{{"a/*", "/usr/bin/"}, {"b/tool", "/usr/bin/tool"}},
			want:  ErrConflict, entry: "b/tool", reason: "/usr/bin/tool"},
		{name: "duplicate entry", formats: all,
			ents: []ent{file("x", 0o644, "1"), file("x", 0o644, "2")},
			want: ErrConflict},
		{name: "file destination matching two files", formats: all,
			ents:  []ent{file("bin/a", 0o755, "a"), file("bin/b", 0o755, "b")},
			rules: []Rule{{"bin/*", "/usr/bin/tool"}},
			want:  ErrBadRule, reason: "exactly one regular file"},
		{name: "file destination matching a directory", formats: all,
			ents:  []ent{dir("bin/", 0o755), file("bin/a", 0o755, "a")},
			rules: []Rule{{"bin", "/usr/bin/tool"}},
			want:  ErrBadRule},
		{name: "relative destination", formats: all,
			ents:  []ent{file("a", 0o644, "a")},
			rules: []Rule{{"a", "usr/bin/a"}},
			want:  ErrBadRule},
		{name: "escaping destination", formats: all,
			ents:  []ent{file("a", 0o644, "a")},
			rules: []Rule{{"a", "/usr/../../a"}},
			want:  ErrBadRule},
		{name: "bad pattern", formats: all,
			ents:  []ent{file("a", 0o644, "a")},
			rules: []Rule{{"[", "/a"}},
			want:  ErrBadRule},
	}
	for _, tt := range tests {
		for _, f := range tt.formats {
			t.Run(tt.name+"/"+string(f), func(t *testing.T) {
				src := write(t, f, tt.ents)
				root := newRoot(t)
				got, err := Extract(context.Background(), src, f, tt.rules, root, tt.lim)
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v (entries %v)", err, tt.want, got)
				}
				if got != nil {
					t.Errorf("entries returned with an error: %v", got)
				}
				msg := err.Error()
				if !strings.Contains(msg, src) {
					t.Errorf("error %q does not name the archive", msg)
				}
				if tt.entry != "" {
					var ee *EntryError
					if !errors.As(err, &ee) || ee.Entry != tt.entry {
						t.Errorf("error %q: want an *EntryError for entry %q", msg, tt.entry)
					}
				}
				if !strings.Contains(msg, tt.reason) {
					t.Errorf("error %q does not contain %q", msg, tt.reason)
				}
				assertClean(t, root, nil)
			})
		}
	}
}

// A zip whose header understates the size of its content.
func TestZipLyingHeader(t *testing.T) {
	var deflated bytes.Buffer
	fw, _ := flateWriter(&deflated)
	io.CopyN(fw, zeroReader{}, 8<<20)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	fh := &zip.FileHeader{Name: "small", Method: zip.Deflate, CompressedSize64: uint64(deflated.Len()), UncompressedSize64: 100}
	fh.SetMode(0o644)
	w, err := zw.CreateRaw(fh)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(deflated.Bytes())
	zw.Close()
	src := filepath.Join(t.TempDir(), "lying.zip")
	os.WriteFile(src, buf.Bytes(), 0o644)
	root := newRoot(t)
	_, err = Extract(context.Background(), src, Zip, nil, root, Limits{MaxFile: 1 << 20})
	if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want the overlong entry refused", err)
	}
	assertClean(t, root, nil)
}

func flateWriter(w io.Writer) (io.WriteCloser, error) {
	// compress/flate through gzip's sibling: zip.Writer uses flate, which
	// the standard library exposes as compress/flate.
	return newFlate(w)
}

// On failure, what was under root before stays, untouched.
func TestFailureKeepsExistingRoot(t *testing.T) {
	root := newRoot(t)
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/old"), []byte("old"), 0o644)
	before := tree(t, root)

	// Fails late: the bad entry comes after good ones.
	src := writeTar(t, TarGz, []ent{file("bin/a", 0o755, "a"), file("bin/b", 0o755, "b"), file("../evil", 0o644, "x")})
	if _, err := Extract(context.Background(), src, TarGz, []Rule{{"bin/*", "/usr/bin/"}}, root, Limits{}); !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("err = %v", err)
	}
	assertClean(t, root, before)

	// Fails at commit: the destination exists.
	src = writeTar(t, TarGz, []ent{file("bin/new", 0o755, "n"), file("bin/old", 0o755, "o")})
	_, err := Extract(context.Background(), src, TarGz, []Rule{{"bin/*", "/usr/bin/"}}, root, Limits{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "/usr/bin/old") {
		t.Fatalf("err = %v, want ErrConflict naming /usr/bin/old", err)
	}
	assertClean(t, root, before)

	// Fails at commit: a parent in root is a symlink.
	os.Symlink("usr/bin", filepath.Join(root, "sbin"))
	before = tree(t, root)
	src = writeTar(t, Tar, []ent{file("x", 0o755, "x")})
	if _, err := Extract(context.Background(), src, Tar, []Rule{{"x", "/sbin/x"}}, root, Limits{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	assertClean(t, root, before)
}

func TestCancel(t *testing.T) {
	src := writeTar(t, TarGz, []ent{file("a", 0o644, "a"), {name: "zeros", mode: 0o644, zeros: 4 << 20}})
	root := newRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Extract(ctx, src, TarGz, nil, root, Limits{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertClean(t, root, nil)
}

// release is a typical release tarball.
var release = []ent{
	dir("./", 0o755),
	dir("./bin/", 0o755),
	file("./bin/runc", 0o755, "runc binary"),
	file("./bin/crictl", 0o4751, "crictl binary"), // setuid is dropped
	hardlink("./bin/runc-hl", "./bin/runc"),
	dir("./etc/", 0o755),
	file("./etc/config.toml", 0o640, "version = 2\n"),
	file("./lib/libseccomp.so.2", 0o644, "elf"),
	symlink("./lib/libseccomp.so", "libseccomp.so.2"),
	file("./share/doc/README", 0o444, "read me"),
	dir("./share/", 0o700), // after its children
	file("./LICENSE", 0o644, "Apache-2.0"),
}

var releaseRules = []Rule{
	{"bin/*", "/usr/local/bin/"},                  // glob into a directory
	{"etc/config.toml", "/etc/containerd/c.toml"}, // exact file
	{"share", "/opt/"},                            // a directory brings its subtree
	{"lib/libseccomp.so*", "/usr/lib/"},           // file and symlink
}

func TestExtractFormats(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	want := []Entry{
		{Path: "/etc", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/etc/containerd", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/etc/containerd/c.toml", Mode: 0o640, Type: tar.TypeReg, Size: 12},
		{Path: "/opt", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/opt/share", Mode: 0o700, Type: tar.TypeDir},
		{Path: "/opt/share/doc", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/opt/share/doc/README", Mode: 0o444, Type: tar.TypeReg, Size: 7},
		{Path: "/usr", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/usr/lib", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/usr/lib/libseccomp.so", Mode: 0o777, Type: tar.TypeSymlink, Linkname: "libseccomp.so.2"},
		{Path: "/usr/lib/libseccomp.so.2", Mode: 0o644, Type: tar.TypeReg, Size: 3},
		{Path: "/usr/local", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/usr/local/bin", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/usr/local/bin/crictl", Mode: 0o751, Type: tar.TypeReg, Size: 13},
		{Path: "/usr/local/bin/runc", Mode: 0o755, Type: tar.TypeReg, Size: 11},
		{Path: "/usr/local/bin/runc-hl", Mode: 0o755, Type: tar.TypeReg, Size: 11},
	}
	wantTree := []string{
		"/etc drwxr-xr-x",
		"/etc/containerd drwxr-xr-x",
		"/etc/containerd/c.toml -rw-r-----",
		"/opt drwxr-xr-x",
		"/opt/share drwx------",
		"/opt/share/doc drwxr-xr-x",
		"/opt/share/doc/README -r--r--r--",
		"/usr drwxr-xr-x",
		"/usr/lib drwxr-xr-x",
		"/usr/lib/libseccomp.so Lrwxrwxrwx -> libseccomp.so.2",
		"/usr/lib/libseccomp.so.2 -rw-r--r--",
		"/usr/local drwxr-xr-x",
		"/usr/local/bin drwxr-xr-x",
		"/usr/local/bin/crictl -rwxr-x--x",
		"/usr/local/bin/runc -rwxr-xr-x",
		"/usr/local/bin/runc-hl -rwxr-xr-x",
	}
	contents := map[string]string{
		"/usr/local/bin/runc":      "runc binary",
		"/usr/local/bin/runc-hl":   "runc binary",
		"/usr/local/bin/crictl":    "crictl binary",
		"/etc/containerd/c.toml":   "version = 2\n",
		"/opt/share/doc/README":    "read me",
		"/usr/lib/libseccomp.so.2": "elf",
	}
	for _, f := range []Format{Tar, TarGz, TarZst, Zip} {
		t.Run(string(f), func(t *testing.T) {
			ents := release
			w, wt := want, wantTree
			if f == Zip { // no hardlinks in zip
				ents = nil
				for _, e := range release {
					if e.typ != tar.TypeLink {
						ents = append(ents, e)
					}
				}
				w, wt = want[:len(want)-1], wantTree[:len(wantTree)-1]
			}
			src := write(t, f, ents)
			root := newRoot(t)
			got, err := Extract(context.Background(), src, f, releaseRules, root, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wt, tree(t, root)); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}
			for p, c := range contents {
				if f == Zip && p == "/usr/local/bin/runc-hl" {
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, p))
				if err != nil || string(b) != c {
					t.Errorf("%s = %q, %v; want %q", p, b, err, c)
				}
			}
			assertClean(t, root, wt)
		})
	}
}

func TestExtractEverything(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	src := writeTar(t, TarGz, release)
	root := newRoot(t)
	got, err := Extract(context.Background(), src, TarGz, nil, root, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range got {
		paths = append(paths, e.Path)
	}
	want := []string{"/LICENSE", "/bin", "/bin/crictl", "/bin/runc", "/bin/runc-hl", "/etc", "/etc/config.toml",
		"/lib", "/lib/libseccomp.so", "/lib/libseccomp.so.2", "/share", "/share/doc", "/share/doc/README"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, strings.Fields(strings.Join(func() []string {
		var ps []string
		for _, l := range tree(t, root) {
			ps = append(ps, strings.Fields(l)[0])
		}
		return ps
	}(), " "))); diff != "" {
		t.Errorf("tree paths (-want +got):\n%s", diff)
	}
}

// Extracting twice into one root merges directories.
func TestExtractMerge(t *testing.T) {
	root := newRoot(t)
	a := writeTar(t, TarGz, []ent{file("containerd", 0o755, "c")})
	b := writeZip(t, []ent{file("x/runc", 0o755, "r")})
	if _, err := Extract(context.Background(), a, TarGz, []Rule{{"containerd", "/usr/local/bin/"}}, root, Limits{}); err != nil {
		t.Fatal(err)
	}
	got, err := Extract(context.Background(), b, Zip, []Rule{{"x/runc", "/usr/local/bin/runc"}}, root, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[3].Path != "/usr/local/bin/runc" {
		t.Errorf("entries = %+v", got)
	}
	want := []string{
		"/usr drwxr-xr-x", "/usr/local drwxr-xr-x", "/usr/local/bin drwxr-xr-x",
		"/usr/local/bin/containerd -rwxr-xr-x", "/usr/local/bin/runc -rwxr-xr-x",
	}
	if diff := cmp.Diff(want, tree(t, root)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

// A read-only directory in the archive is filled before its mode is set.
func TestReadOnlyDirectory(t *testing.T) {
	src := writeTar(t, Tar, []ent{dir("ro/", 0o555), file("ro/f", 0o400, "f"), hardlink("ro/g", "ro/f")})
	root := newRoot(t)
	if _, err := Extract(context.Background(), src, Tar, nil, root, Limits{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"/ro dr-xr-xr-x", "/ro/f -r--------", "/ro/g -r--------"}
	if diff := cmp.Diff(want, tree(t, root)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	os.Chmod(filepath.Join(root, "ro"), 0o755) // let t.TempDir clean up
}

func TestFormatNone(t *testing.T) {
	src := filepath.Join(t.TempDir(), "0123abcd")
	os.WriteFile(src, []byte("kubectl"), 0o600)
	root := newRoot(t)
	got, err := Extract(context.Background(), src, None, []Rule{{"*", "/usr/bin/kubectl"}}, root, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Path: "/usr", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/usr/bin", Mode: 0o755, Type: tar.TypeDir},
		{Path: "/usr/bin/kubectl", Mode: 0o644, Type: tar.TypeReg, Size: 7},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/bin/kubectl")); string(b) != "kubectl" {
		t.Errorf("content = %q", b)
	}
	if _, err := Extract(context.Background(), src, None, nil, newRoot(t), Limits{}); !errors.Is(err, ErrBadRule) {
		t.Errorf("no rule: err = %v, want ErrBadRule", err)
	}
	if _, err := Extract(context.Background(), src, None, []Rule{{"*", "/x"}}, newRoot(t), Limits{MaxFile: 3}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: err = %v, want ErrTooLarge", err)
	}
}

// Several rules may take the same entry to different places.
func TestEntryAtTwoDestinations(t *testing.T) {
	src := writeTar(t, TarGz, []ent{file("bin/tool", 0o750, "tool")})
	root := newRoot(t)
	got, err := Extract(context.Background(), src, TarGz, []Rule{{"bin/tool", "/a/tool"}, {"bin/*", "/b/"}}, root, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/a drwxr-xr-x", "/a/tool -rwxr-x---", "/b drwxr-xr-x", "/b/tool -rwxr-x---"}
	if diff := cmp.Diff(want, tree(t, root)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	if len(got) != 4 {
		t.Errorf("entries = %+v", got)
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"none", "tar", "tar.gz", "tar.zst", "zip"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	for _, s := range []string{"", "tgz", "TAR", "gz", "tar.xz"} {
		if _, err := ParseFormat(s); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q): err = %v, want ErrFormat", s, err)
		}
	}
	src := writeTar(t, Tar, []ent{file("a", 0o644, "a")})
	if _, err := Extract(context.Background(), src, "tgz", nil, newRoot(t), Limits{}); !errors.Is(err, ErrFormat) {
		t.Errorf("Extract with format tgz: err = %v", err)
	}
	// A tar named as tar.gz is malformed for that format.
	root := newRoot(t)
	if _, err := Extract(context.Background(), src, TarGz, nil, root, Limits{}); !errors.Is(err, ErrFormat) {
		t.Errorf("tar as tar.gz: err = %v, want ErrFormat", err)
	}
	assertClean(t, root, nil)
}

func TestTruncatedArchive(t *testing.T) {
	src := writeTar(t, TarGz, []ent{file("a", 0o644, strings.Repeat("a", 100000))})
	b, _ := os.ReadFile(src)
	os.WriteFile(src, b[:len(b)/2], 0o644)
	root := newRoot(t)
	_, err := Extract(context.Background(), src, TarGz, nil, root, Limits{})
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
	assertClean(t, root, nil)
}

func TestClimbs(t *testing.T) {
	for _, tt := range []struct {
		dir, target string
		want        bool
	}{
		{"/", "a", false},
		{"/", "..", true},
		{"/", "./../a", true},
		{"/usr/lib", "../../etc", false},
		{"/usr/lib", "../../../etc", true},
		{"/usr/lib", "x/../../..", false},
		{"/usr/lib", "x/../../../..", true},
		{"/a", "b//c/./../..", false},
	} {
		if got := climbs(tt.dir, tt.target); got != tt.want {
			t.Errorf("climbs(%q, %q) = %v, want %v", tt.dir, tt.target, got, tt.want)
		}
	}
}
