package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Joined reports whether the node under root has joined already: the
// agent's stamp, or a kubelet kubeconfig from an earlier join by any path.
func Joined(root string) (string, bool) {
	for _, p := range []string{StampPath, KubeletConfPath} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			return p, true
		}
	}
	return "", false
}

// Apply writes c's files under root ("/" on a node) and claims the join, all
// or nothing: every file is staged next to its destination first (mode and
// owner set, synced), then the stamp is created exclusively, then the staged
// files are renamed into place. A failure before the stamp removes every
// staged file and leaves the node as it was; ErrJoined means the node had
// joined (or another path claimed it first). The stamp holds the mode and
// node name only.
func Apply(c *Config, root string) (err error) {
	if p, ok := Joined(root); ok {
		return fmt.Errorf("%w (%s exists)", ErrJoined, p)
	}
	type staged struct{ tmp, dst string }
	var done []staged
	defer func() {
		if err != nil {
			for _, s := range done {
				os.Remove(s.tmp)
			}
		}
	}()
	if err := os.MkdirAll(filepath.Join(root, Dir), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", Dir, err)
	}
	for i, f := range c.Files {
		dst := filepath.Join(root, f.Path)
		mode, _ := strconv.ParseUint(f.Mode, 8, 32)
		uid, gid, err := lookupOwner(root, f.Owner)
		if err != nil {
			return fmt.Errorf("files[%d] %s: %w", i, f.Path, err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("files[%d] %s: %w", i, f.Path, err)
		}
		if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: files[%d] %s: exists and is not a regular file", ErrInvalid, i, f.Path)
		}
		tmp, err := writeTemp(dst, f.Content, fs.FileMode(mode), uid, gid)
		if err != nil {
			return fmt.Errorf("files[%d] %s: %w", i, f.Path, err)
		}
		done = append(done, staged{tmp, dst})
	}
	// The claim: whoever creates the stamp joins.
	stamp := filepath.Join(root, StampPath)
	if err := os.MkdirAll(filepath.Dir(stamp), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(StampPath), err)
	}
	sf, err := os.OpenFile(stamp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w (%s appeared)", ErrJoined, StampPath)
	}
	if err != nil {
		return fmt.Errorf("claiming the join: %w", err)
	}
	_, werr := fmt.Fprintf(sf, "prebake-agent %s join of node %s\n", c.JoinMode, c.Node)
	if werr == nil {
		werr = sf.Sync()
	}
	if cerr := sf.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(stamp)
		return fmt.Errorf("claiming the join: %w", werr)
	}
	for i, s := range done {
		if err := os.Rename(s.tmp, s.dst); err != nil {
			// Renames within a directory do not fail short of I/O errors;
			// if one does, the stamp stays (a retry must not join twice)
			// and the message says what is missing.
			for _, r := range done[i:] {
				os.Remove(r.tmp)
			}
			done = nil
			return fmt.Errorf("installing %s (join claimed, not started; %d of %d files in place): %w",
				strings.TrimPrefix(s.dst, root), i, len(c.Files), err)
		}
	}
	syncDirs(done, func(s staged) string { return filepath.Dir(s.dst) })
	return nil
}

// Fail records this boot's refusal so the cloud-init join unit stands down
// too. The message (never the document) goes into the file.
func Fail(root, msg string) error {
	p := filepath.Join(root, FailedPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(msg+"\n"), 0o600)
}

func writeTemp(dst string, content []byte, mode fs.FileMode, uid, gid int) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".prebake-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	// 0600 from the start (CreateTemp's default); the final mode once the
	// content is in.
	if _, err := f.Write(content); err != nil {
		return fail(err)
	}
	if os.Geteuid() == 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

func syncDirs[T any](items []T, dir func(T) string) {
	seen := map[string]bool{}
	for _, it := range items {
		d := dir(it)
		if seen[d] {
			continue
		}
		seen[d] = true
		if f, err := os.Open(d); err == nil {
			f.Sync()
			f.Close()
		}
	}
}

// lookupOwner resolves user:group in root's /etc/passwd and /etc/group
// (root:root and numeric ids need no lookup).
func lookupOwner(root, owner string) (int, int, error) {
	if owner == "" || owner == "root:root" {
		return 0, 0, nil
	}
	u, g, _ := strings.Cut(owner, ":")
	uid, err := lookupID(filepath.Join(root, "/etc/passwd"), u)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: owner %q: user: %v", ErrInvalid, owner, err)
	}
	gid, err := lookupID(filepath.Join(root, "/etc/group"), g)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: owner %q: group: %v", ErrInvalid, owner, err)
	}
	return uid, gid, nil
}

// lookupID reads the id of name from a passwd or group file (name:x:id:…).
// os/user is not used: it reads the running system's files, not root's.
func lookupID(file, name string) (int, error) {
	if name == "root" {
		return 0, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			return strconv.Atoi(f[2])
		}
	}
	return 0, fmt.Errorf("%s not in %s", name, file)
}
