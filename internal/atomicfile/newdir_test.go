package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteDir(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	parent := t.TempDir()
	dir := filepath.Join(parent, "a", "out")
	// A new directory (and its missing parent): modes exactly perm whatever
	// the umask; the directory's what MkdirAll gives.
	if err := WriteDir(dir, generation(50, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(gen int, perm os.FileMode) {
		t.Helper()
		ents, _ := os.ReadDir(dir)
		if len(ents) != 50 {
			t.Fatalf("%d entries, want 50", len(ents))
		}
		for i, e := range ents {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			fi, _ := e.Info()
			if !bytes.Equal(b, content(i, gen)) || fi.Mode().Perm() != perm {
				t.Errorf("%s: wrong content or mode %v", e.Name(), fi.Mode())
			}
		}
	}
	check(1, 0o644)
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700 (0755 under umask 077)", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("staging left behind: %v", ents)
	}
	// An existing directory: each file replaced.
	syscall.Umask(0o022)
	if err := WriteDir(dir, generation(50, 2), 0o600); err != nil {
		t.Fatal(err)
	}
	check(2, 0o600)
	// Bad names fail and leave nothing.
	if err := WriteDir(filepath.Join(parent, "bad"), []File{{Name: "../escape"}}, 0o600); err == nil {
		t.Error("a name with a directory was accepted")
	}
	if _, err := os.Stat(filepath.Join(parent, "bad")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed WriteDir left %v", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("staging left behind: %v", ents)
	}
}

// A directory that appears between CreateDir and Commit is not replaced.
func TestNewDirDoesNotReplace(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	d, err := CreateDir(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Abort()
	if err := d.Write("a.yaml", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("theirs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Commit over an existing directory: %v, want fs.ErrExist", err)
	}
	d.Abort()
	if b, _ := os.ReadFile(filepath.Join(dir, "b.yaml")); string(b) != "theirs" {
		t.Errorf("existing directory changed")
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("staging left behind: %v", ents)
	}
	if _, err := CreateDir(dir, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateDir of an existing directory: %v, want fs.ErrExist", err)
	}
}

// kill -9 a process creating a directory of 1,000 files, at several
// moments: the directory is then absent or complete, never partial.
func TestWriteDirKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills helper processes")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	var full time.Duration
	killed, complete := 0, 0
	for round := 0; round < 8; round++ {
		os.RemoveAll(dir)
		delay := full * time.Duration(round) / 8
		took, wasKilled := runHelper(t, round, delay, "ATOMICFILE_HELPER_NEWDIR="+dir)
		if wasKilled {
			killed++
		}
		if round == 0 {
			full = took
		}
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			t.Logf("round %d, kill after %v of %v: absent", round, delay, full)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1000 {
			t.Fatalf("round %d (kill after %v): %d files, want none or 1000", round, delay, len(ents))
		}
		for i := 0; i < 1000; i++ {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node-%04d.yaml", i)))
			if err != nil || !bytes.Equal(b, content(i, 1)) {
				t.Fatalf("round %d (kill after %v): node-%04d.yaml incomplete: %v", round, delay, i, err)
			}
		}
		complete++
		t.Logf("round %d, kill after %v of %v: complete", round, delay, full)
	}
	if killed == 0 {
		t.Error("no helper was killed before it finished: the test proved nothing")
	}
	ents, _ := os.ReadDir(parent)
	hidden := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".out.tmp-") {
			hidden++
		}
	}
	t.Logf("%d of 7 writers killed, %d complete directories seen; %d hidden staging directories left", killed, complete, hidden)
}
