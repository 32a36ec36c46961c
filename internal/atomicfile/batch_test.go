package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// content is file i's content in generation gen: 4 KiB that say who they are.
func content(i, gen int) []byte {
	line := fmt.Sprintf("file %d generation %d\n", i, gen)
	return bytes.Repeat([]byte(line), 4096/len(line)+1)[:4096]
}

func generation(n, gen int) []File {
	fs := make([]File, n)
	for i := range fs {
		fs[i] = File{Name: fmt.Sprintf("node-%04d.yaml", i), Data: content(i, gen)}
	}
	return fs
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFiles(dir, generation(50, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 50 {
		t.Fatalf("%d entries, want 50 (no temp files left)", len(ents))
	}
	for i, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fi, _ := e.Info()
		if !bytes.Equal(b, content(i, 1)) || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: wrong content or mode %v", e.Name(), fi.Mode())
		}
	}
	if err := WriteFiles(dir, []File{{Name: "../escape", Data: nil}}, 0o600); err == nil {
		t.Error("a name with a directory was accepted")
	}
}

// TestMain is, with ATOMICFILE_HELPER_DIR set, the process
// TestWriteFilesKill9 kills: it writes generation ATOMICFILE_HELPER_GEN of
// 1,000 files there; with ATOMICFILE_HELPER_NEWDIR set, the one
// TestWriteDirKill9 kills: it creates that directory of 1,000 files.
// Otherwise it runs the tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv("ATOMICFILE_HELPER_NEWDIR"); dir != "" {
		fmt.Println("started")
		if err := WriteDir(dir, generation(1000, 1), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dir := os.Getenv("ATOMICFILE_HELPER_DIR"); dir != "" {
		gen, _ := strconv.Atoi(os.Getenv("ATOMICFILE_HELPER_GEN"))
		fmt.Println("started")
		if err := WriteFiles(dir, generation(1000, gen), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// kill -9 a process writing 1,000 files over an earlier generation, at
// several moments: every file name then holds one whole generation, the
// old or the new, never a mix or a truncated file.
func TestWriteFilesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills helper processes")
	}
	dir := t.TempDir()
	const n = 1000
	if err := WriteFiles(dir, generation(n, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	// One writer runs to the end to learn how long writing takes here; the
	// others are killed at eighths of that.
	var full time.Duration
	killed := 0
	for round := 0; round < 8; round++ {
		gen := round + 2
		delay := full * time.Duration(round) / 8
		took, wasKilled := runHelper(t, round, delay, "ATOMICFILE_HELPER_DIR="+dir, "ATOMICFILE_HELPER_GEN="+strconv.Itoa(gen))
		if wasKilled {
			killed++
		}
		if round == 0 {
			full = took
		}
		seen := map[int]int{}
		for i := 0; i < n; i++ {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node-%04d.yaml", i)))
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			ok := false
			for g := 1; g <= gen; g++ {
				if bytes.Equal(b, content(i, g)) {
					seen[g]++
					ok = true
					break
				}
			}
			if !ok {
				t.Fatalf("round %d (kill after %v): node-%04d.yaml holds %d bytes of no whole generation: %q…", round, delay, i, len(b), b[:min(len(b), 40)])
			}
		}
		t.Logf("round %d, kill after %v of %v: generations visible %v", round, delay, full, seen)
	}
	if killed == 0 {
		t.Error("no helper was killed before it finished: the test proved nothing")
	}
	ents, _ := os.ReadDir(dir)
	tmp := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			tmp++
		}
	}
	t.Logf("%d of 7 writers killed; %d temp files left behind", killed, tmp)
}

// runHelper runs this test binary as the writer TestMain becomes with env
// set, and, after round 0 (which runs to the end), kills it with SIGKILL
// delay after it said it started. It returns how long the writer ran and
// whether it was killed before it finished.
func runHelper(t *testing.T, round int, delay time.Duration, env ...string) (time.Duration, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	out.Read(buf) // "started"
	start := time.Now()
	if round > 0 {
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
	}
	if err := cmd.Wait(); err != nil {
		if round == 0 {
			t.Fatalf("writer: %v", err)
		}
		return time.Since(start), true
	}
	return time.Since(start), false
}
