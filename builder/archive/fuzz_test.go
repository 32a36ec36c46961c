package archive

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzExtract unpacks arbitrary bytes as every archive format: no panic,
// nothing written outside the root (the staging directory is gone too),
// and on success exactly the returned entries exist under it.
func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		{file("bin/runc", 0o755, "runc"), dir("etc", 0o700), symlink("lib/x.so", "x.so.2"), file("lib/x.so.2", 0o644, "so")},
		{file("../evil", 0o644, "x")},
		{symlink("a", "/etc"), file("a/passwd", 0o644, "x")},
		{file("x", 0o644, "x"), hardlink("y", "x"), hardlink("z", "../x")},
		{file("big", 0o644, strings.Repeat("0", 4096))},
	}
	for fi, format := range []Format{Tar, TarGz, TarZst, Zip} {
		for _, ents := range seeds {
			if format == Zip && slices.ContainsFunc(ents, func(e ent) bool { return e.typ == tar.TypeLink }) {
				continue // zip has no hardlinks
			}
			b, err := os.ReadFile(write(f, format, ents))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, uint8(fi))
		}
	}
	formats := []Format{Tar, TarGz, TarZst, Zip, None}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		format := formats[int(which)%len(formats)]
		top := t.TempDir()
		src := filepath.Join(top, "archive")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(top, "root")
		got, err := Extract(context.Background(), src, format, nil, root, Limits{MaxTotal: 1 << 20, MaxFile: 1 << 20, MaxEntries: 1000, MaxRatio: 100})
		ents, _ := os.ReadDir(top)
		for _, e := range ents {
			if e.Name() != "archive" && e.Name() != "root" {
				t.Fatalf("left %s next to the root (err %v)", e.Name(), err)
			}
		}
		if err != nil {
			return
		}
		want := []string{"/"}
		for _, e := range got {
			if !strings.HasPrefix(e.Path, "/") || filepath.Clean(e.Path) != e.Path {
				t.Fatalf("entry path %q is not clean and absolute", e.Path)
			}
			want = append(want, e.Path)
		}
		var have []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			have = append(have, filepath.Clean("/"+rel))
			return nil
		})
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(slices.Compact(want), have) {
			t.Fatalf("entries %v, on disk %v", want, have)
		}
	})
}
