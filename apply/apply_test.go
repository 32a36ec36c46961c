package apply

import (
	"archive/tar"
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/ospkg"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func opts(root string, im *images) Options {
	return Options{Root: root, VerifyKey: im.pub, SkipOSPackagesCheck: true, Platform: "linux/amd64"}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestUpgradeAndRollbackOnDebianRoot: the quickstart image applied onto a
// real Debian root, upgraded by one Kubernetes patch release (only the
// kubernetes component's files change; the others are not even
// rewritten), and rolled back byte for byte.
func TestUpgradeAndRollbackOnDebianRoot(t *testing.T) {
	needRoot(t)
	im := quickstartImages(t)
	root := debianRoot(t)
	ctx := context.Background()
	base := snapshot(t, root)

	res, err := Apply(ctx, im.old, opts(root, im))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range res.Record.Components {
		names = append(names, c.Name)
	}
	t.Logf("applied %s: components %v, %d paths added", res.Record.Image, names, len(res.Changes.Added))
	if !reflect.DeepEqual(names, []string{"kernel", "runtime", "kubernetes"}) {
		t.Errorf("components %v", names)
	}
	if !res.Record.Verified || res.Record.Digest != im.old.Digest {
		t.Errorf("record: verified %v digest %s", res.Record.Verified, res.Record.Digest)
	}
	a := snapshot(t, root)
	added := changed(base, a)
	for _, p := range []string{"usr/local/bin/kubelet", "usr/local/bin/containerd", "etc/sysctl.d"} {
		found := false
		for _, q := range added {
			if strings.HasPrefix(q, p) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s not applied (changed: %v)", p, added)
		}
	}
	// Every path the image recorded is on the root as recorded.
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, f := range res.Record.files() {
		if ok, err := matches(r, f); err != nil || !ok {
			t.Errorf("/%s does not match its record (%v)", f.Path, err)
		}
	}
	for _, s := range res.Steps {
		if !strings.Contains(s, "skipped") && !strings.Contains(s, "units enabled") {
			t.Errorf("after-apply step ran on a root that is not /: %q", s)
		}
	}

	// Re-applying changes nothing.
	again, err := Apply(ctx, im.old, opts(root, im))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes.Added)+len(again.Changes.Changed)+len(again.Changes.Removed) != 0 {
		t.Errorf("re-applying changed %+v", again.Changes)
	}

	// Dry run of the upgrade: listed, not done.
	dry, err := Apply(ctx, im.new, Options{Root: root, VerifyKey: im.pub, SkipOSPackagesCheck: true, DryRun: true, Platform: "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dry.Changes.Components, []string{"kubernetes"}) || len(dry.Changes.Changed) == 0 {
		t.Errorf("dry run: %+v", dry.Changes)
	}
	if c := changed(a, snapshot(t, root)); len(c) != 0 {
		t.Errorf("a dry run changed %v", c)
	}

	// The upgrade: only the kubernetes component's files change.
	containerd := filepath.Join(root, "usr/local/bin/containerd")
	before := inode(t, containerd)
	up, err := Apply(ctx, im.new, opts(root, im))
	if err != nil {
		t.Fatal(err)
	}
	b := snapshot(t, root)
	moved := changed(a, b)
	t.Logf("upgrade changed %d paths: %v", len(moved), moved)
	if len(moved) == 0 {
		t.Fatal("the upgrade changed nothing")
	}
	owners := up.Record.owners()
	for _, p := range moved {
		i, ok := owners[p]
		if !ok || up.Record.Components[i].Name != "kubernetes" {
			t.Errorf("%s changed but is not the kubernetes component's", p)
		}
	}
	if !reflect.DeepEqual(up.Changes.Components, []string{"kubernetes"}) {
		t.Errorf("changed components %v", up.Changes.Components)
	}
	if inode(t, containerd) != before {
		t.Error("containerd (runtime component) was rewritten by a Kubernetes upgrade")
	}
	st, err := ReadStatus(root)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied.Digest != im.new.Digest || st.Previous.Digest != im.old.Digest || st.Interrupted != nil {
		t.Errorf("status: applied %s previous %s", st.Applied.Digest, st.Previous.Digest)
	}

	// Rollback restores the old files byte for byte, from the copy kept on
	// the root (the source layout is gone).
	src := im.old.Dir
	hidden := src + ".hidden"
	if err := os.Rename(src, hidden); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(hidden, src)
	if _, err := Rollback(ctx, Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	if c := changed(a, snapshot(t, root)); len(c) != 0 {
		t.Errorf("rollback left differences: %v", c)
	}
	st, err = ReadStatus(root)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied.Digest != im.old.Digest || st.Previous.Digest != im.new.Digest {
		t.Errorf("after rollback: applied %s previous %s", st.Applied.Digest, st.Previous.Digest)
	}
	// Only the two images are kept.
	if ents, _ := os.ReadDir(filepath.Join(root, StateDir, "store")); len(ents) != 2 {
		t.Errorf("store holds %d images, want 2", len(ents))
	}
}

func TestVerification(t *testing.T) {
	needRoot(t)
	im := quickstartImages(t)
	root := t.TempDir()
	ctx := context.Background()
	if _, err := Apply(ctx, im.unsigned, Options{Root: root}); !errors.Is(err, ErrUnsigned) {
		t.Errorf("no key: err = %v, want ErrUnsigned", err)
	}
	if _, err := Apply(ctx, im.unsigned, Options{Root: root, VerifyKey: im.pub}); !errors.Is(err, signing.ErrNoSignature) {
		t.Errorf("unsigned: err = %v, want ErrNoSignature", err)
	}
	tag := im.old
	tag.Digest, tag.Tag = "", "1.36.4"
	if _, err := Apply(ctx, tag, Options{Root: root, VerifyKey: im.pub}); !errors.Is(err, registry.ErrDigestRequired) {
		t.Errorf("tag: err = %v, want ErrDigestRequired", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("a refused apply wrote %v", ents)
	}
	res, err := Apply(ctx, im.unsigned, Options{Root: root, NoVerify: true, SkipOSPackagesCheck: true, Platform: "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Record.Verified {
		t.Error("record says verified after --no-verify")
	}
	// Revoked (an image of its own: the quickstart ones are shared).
	rev := smallImage(t, t.TempDir(), func() (v1.Layer, string) { return tarLayer(t, "one", entry{Name: "etc/x", Body: "x\n"}) })
	if _, err := registry.Revoke(ctx, rev, registry.RevokeOptions{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, rev, Options{Root: root, NoVerify: true}); !errors.Is(err, signing.ErrRevoked) {
		t.Errorf("revoked: err = %v, want ErrRevoked", err)
	}
}

// TestRootFilesBackedUp: files of the root an image replaces or whiteouts
// remove come back, byte for byte with their modes, when the next image
// does not claim them; modes, owners, setuid, symlinks and hard links are
// applied as the layers say.
func TestRootFilesBackedUp(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	for p, c := range map[string]string{"etc/foo.conf": "the root's own\n", "etc/bar": "removed by a whiteout\n", "opt/keep/x": "kept\n"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(filepath.Join(root, "etc/foo.conf"), 0, 42)
	base := snapshot(t, root)
	dir := t.TempDir()
	x := smallImage(t, dir, func() (v1.Layer, string) {
		return tarLayer(t, "one",
			entry{Name: "etc/", Type: tar.TypeDir},
			entry{Name: "etc/foo.conf", Body: "the image's\n", Mode: 0o600, UID: 7, GID: 8},
			entry{Name: "etc/.wh.bar"},
			entry{Name: "usr/local/bin/", Type: tar.TypeDir},
			entry{Name: "usr/local/bin/tool", Body: "#!/bin/sh\n", Mode: 0o4755},
			entry{Name: "usr/local/bin/tool-link", Type: tar.TypeSymlink, Link: "tool"},
			entry{Name: "usr/local/bin/tool-hard", Type: tar.TypeLink, Link: "usr/local/bin/tool"},
			entry{Name: "var/lib/kubelet/", Type: tar.TypeDir, Mode: 0o700, UID: 1234, GID: 5678},
		)
	}, func() (v1.Layer, string) {
		return tarLayer(t, "two", entry{Name: "opt/keep/y", Body: "new\n"})
	})
	y := smallImage(t, dir, func() (v1.Layer, string) {
		return tarLayer(t, "two", entry{Name: "opt/keep/y", Body: "newer\n"})
	})
	ctx := context.Background()
	o := Options{Root: root, NoVerify: true, Platform: "linux/amd64"}
	res, err := Apply(ctx, x, o)
	if err != nil {
		t.Fatal(err)
	}
	check := func(p, want string, mode os.FileMode, uid int) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return
		}
		b, _ := os.ReadFile(filepath.Join(root, p))
		st := fi.Sys().(*syscall.Stat_t)
		if (want != "" && string(b) != want) || fi.Mode() != mode || int(st.Uid) != uid {
			t.Errorf("%s: %q %v uid %d, want %q %v uid %d", p, b, fi.Mode(), st.Uid, want, mode, uid)
		}
	}
	check("etc/foo.conf", "the image's\n", 0o600, 7)
	check("usr/local/bin/tool", "#!/bin/sh\n", 0o755|os.ModeSetuid, 0)
	check("var/lib/kubelet", "", 0o700|os.ModeDir, 1234)
	if l, _ := os.Readlink(filepath.Join(root, "usr/local/bin/tool-link")); l != "tool" {
		t.Errorf("symlink -> %q", l)
	}
	if inode(t, filepath.Join(root, "usr/local/bin/tool-hard")) != inode(t, filepath.Join(root, "usr/local/bin/tool")) {
		t.Error("hard link is not one")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/bar")); !os.IsNotExist(err) {
		t.Errorf("whiteout: etc/bar still there (%v)", err)
	}
	if len(res.Record.Backups) != 2 {
		t.Errorf("backups %+v, want etc/bar and etc/foo.conf", res.Record.Backups)
	}
	if _, err := Apply(ctx, y, o); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, root)
	diff := changed(base, after)
	for _, p := range diff {
		if p != "opt/keep/y" && !strings.HasPrefix(p, "var/lib") && p != "var" {
			t.Errorf("after moving to an image that does not claim it, %s differs from the root's own: %s vs %s", p, base[p], after[p])
		}
	}
	// Back to x and then roll back: the same.
	if _, err := Rollback(ctx, o); err != nil {
		t.Fatal(err)
	}
	check("etc/foo.conf", "the image's\n", 0o600, 7)
	if _, err := Rollback(ctx, o); err != nil {
		t.Fatal(err)
	}
	if c := changed(after, snapshot(t, root)); len(c) != 0 {
		t.Errorf("rollback twice is not where it started: %v", c)
	}
}

// TestCrashAnywhere kills apply with SIGKILL at 20 random points (a child
// process; the points are the changes it makes to the root, the store
// and the records) and checks that the next apply brings the root to
// exactly the state of a clean apply.
func TestCrashAnywhere(t *testing.T) {
	needRoot(t)
	im := quickstartImages(t)
	root := debianRoot(t)
	ctx := context.Background()
	// Reference states, and the number of points of each transition.
	count := func(ref registry.Reference) (int, map[string]string) {
		n := 0
		crashHook = func() { n++ }
		defer func() { crashHook = nil }()
		if _, err := Apply(ctx, ref, opts(root, im)); err != nil {
			t.Fatal(err)
		}
		return n, snapshot(t, root)
	}
	nFirst, snapOld := count(im.old)
	nUp, snapNew := count(im.new)
	nDown, _ := count(im.old)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d; points: first apply of 1.36.4 %d, upgrade to 1.36.5 %d, downgrade %d", seed, nFirst, nUp, nDown)
	for i := 0; i < 20; i++ {
		target, want, n := im.new, snapNew, nUp
		if i%2 == 1 {
			target, want, n = im.old, snapOld, nDown
		}
		at := 1 + rng.Intn(n)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PREBAKE_APPLY_CRASH_AT="+strconv.Itoa(at), "PREBAKE_APPLY_ROOT="+root,
			"PREBAKE_APPLY_REF="+target.String(), "PREBAKE_APPLY_KEY="+im.pub)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("crash %d at point %d: the child was not killed: %v\n%s", i, at, err, out)
		}
		st, err := ReadStatus(root)
		if err != nil {
			t.Fatal(err)
		}
		pending := st.Interrupted != nil
		res, err := Apply(ctx, target, opts(root, im))
		if err != nil {
			t.Fatalf("apply after a crash at point %d (journal: %v): %v", at, pending, err)
		}
		if c := changed(want, snapshot(t, root)); len(c) != 0 {
			t.Fatalf("crash %d at point %d (journal %v, recovered %v): root differs from a clean apply at %v", i, at, pending, res.Recovered, c)
		}
		st, err = ReadStatus(root)
		if err != nil || st.Interrupted != nil || st.Applied.Digest != target.Digest {
			t.Fatalf("crash %d: status %+v, %v", i, st, err)
		}
		if pending != res.Recovered {
			t.Errorf("crash %d: journal left %v but recovered %v", i, pending, res.Recovered)
		}
		t.Logf("crash %d at point %d/%d: journal left %v, completed by the next apply %v", i, at, n, pending, res.Recovered)
	}
}

// crashChild is the child of TestCrashAnywhere: it applies and SIGKILLs
// itself at the given point.
func crashChild() {
	at, _ := strconv.Atoi(os.Getenv("PREBAKE_APPLY_CRASH_AT"))
	n := 0
	crashHook = func() {
		if n++; n == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	ref := registry.MustParse(os.Getenv("PREBAKE_APPLY_REF"))
	key := os.Getenv("PREBAKE_APPLY_KEY")
	_, err := Apply(context.Background(), ref, Options{Root: os.Getenv("PREBAKE_APPLY_ROOT"), VerifyKey: key, NoVerify: key == "", SkipOSPackagesCheck: true, Platform: "linux/amd64"})
	os.Stderr.WriteString("apply finished without reaching the crash point: " + strconv.Itoa(n) + " points; err " + errString(err) + "\n")
	os.Exit(3)
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestOSPackages: the quickstart image declares conntrack, socat, iptables
// and ethtool; the Debian root has only iptables. Apply fails naming the
// others; with InstallOSPackages apt-get installs them in the root.
func TestOSPackages(t *testing.T) {
	needRoot(t)
	im := quickstartImages(t)
	root := debianRoot(t)
	ctx := context.Background()
	o := Options{Root: root, VerifyKey: im.pub, Platform: "linux/amd64"}
	_, err := Apply(ctx, im.old, o)
	var me *ospkg.MissingError
	if !errors.As(err, &me) || !reflect.DeepEqual(me.Packages, []string{"conntrack", "socat", "ethtool"}) {
		t.Fatalf("err = %v, want conntrack, socat and ethtool missing", err)
	}
	if st, _ := ReadStatus(root); st.Applied != nil {
		t.Error("a failed check applied the image")
	}
	o.InstallOSPackages = true
	o.DryRun = true
	dry, err := Apply(ctx, im.old, o)
	if err != nil || !reflect.DeepEqual(dry.Installed, []string{"conntrack", "socat", "ethtool"}) {
		t.Fatalf("dry run: %v, would install %v", err, dry.Installed)
	}
	if db, err := ospkg.Open(root); err != nil || db.Installed("conntrack") {
		t.Fatalf("a dry run installed conntrack (%v)", err)
	}
	o.DryRun = false
	res, err := Apply(ctx, im.old, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Installed, []string{"conntrack", "socat", "ethtool"}) {
		t.Errorf("installed %v", res.Installed)
	}
	out, err := exec.Command("chroot", root, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", "conntrack", "socat", "ethtool").CombinedOutput()
	if err != nil || strings.Count(string(out), " installed") != 3 {
		t.Errorf("dpkg-query in the root: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/conntrack")); err != nil {
		t.Error(err)
	}
}

// TestCrashFirstApply kills the first apply onto a root (which backs up
// the root's own files and applies whiteouts) at 10 random points, each
// on a fresh copy of the root, and checks the next apply ends where a
// clean one does, and that moving on to an image that claims nothing of
// the root's restores it.
func TestCrashFirstApply(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	x := smallImage(t, dir, func() (v1.Layer, string) {
		return tarLayer(t, "one",
			entry{Name: "etc/", Type: tar.TypeDir},
			entry{Name: "etc/foo.conf", Body: "the image's\n", Mode: 0o600, UID: 7, GID: 8},
			entry{Name: "etc/.wh.bar"},
			entry{Name: "usr/local/bin/", Type: tar.TypeDir},
			entry{Name: "usr/local/bin/tool", Body: "#!/bin/sh\n", Mode: 0o4755},
			entry{Name: "usr/local/bin/tool-link", Type: tar.TypeSymlink, Link: "tool"},
			entry{Name: "usr/local/bin/tool-hard", Type: tar.TypeLink, Link: "usr/local/bin/tool"},
		)
	}, func() (v1.Layer, string) {
		return tarLayer(t, "two", entry{Name: "opt/keep/y", Body: "new\n"})
	})
	y := smallImage(t, dir, func() (v1.Layer, string) {
		return tarLayer(t, "two", entry{Name: "opt/keep/y", Body: "newer\n"})
	})
	fresh := func() string {
		root := filepath.Join(t.TempDir(), "root")
		for p, c := range map[string]string{"etc/foo.conf": "the root's own\n", "etc/bar": "removed by a whiteout\n", "opt/keep/x": "kept\n"} {
			os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	ctx := context.Background()
	o := func(root string) Options { return Options{Root: root, NoVerify: true, Platform: "linux/amd64"} }
	clean := fresh()
	base := snapshot(t, clean)
	n := 0
	crashHook = func() { n++ }
	_, err := Apply(ctx, x, o(clean))
	crashHook = nil
	if err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, clean)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d; %d points", seed, n)
	for i := 0; i < 10; i++ {
		root := fresh()
		at := 1 + rng.Intn(n)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PREBAKE_APPLY_CRASH_AT="+strconv.Itoa(at), "PREBAKE_APPLY_ROOT="+root, "PREBAKE_APPLY_REF="+x.String(), "PREBAKE_APPLY_KEY=")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("point %d: the child was not killed: %v\n%s", at, err, out)
		}
		if _, err := Apply(ctx, x, o(root)); err != nil {
			t.Fatalf("apply after a crash at point %d: %v", at, err)
		}
		if c := changed(want, snapshot(t, root)); len(c) != 0 {
			t.Fatalf("crash at point %d: root differs from a clean apply at %v", at, c)
		}
		if _, err := Apply(ctx, y, o(root)); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"etc/foo.conf", "etc/bar", "opt/keep/x"} {
			if got := snapshot(t, root)[p]; got != base[p] {
				t.Errorf("crash at point %d: /%s is %q after moving on, want the root's own %q", at, p, got, base[p])
			}
		}
	}
}
