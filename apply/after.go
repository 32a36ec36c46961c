package apply

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/prebake/prebake/internal/lazyre"

	"github.com/prebake/prebake/ospkg"
)

// live reports whether the root is the running system's.
func (a *applier) live() bool { return a.dir == "/" }

// after runs the steps a running system needs once the files changed, each
// idempotent, each skipped with a line saying why when the root is not
// the running system's or the tool is absent. Failures are reported as
// lines too: the files are applied and recorded either way.
func (a *applier) after(ctx context.Context, r *Record, c Changes) []string {
	var lines []string
	say := func(format string, args ...any) {
		l := fmt.Sprintf(format, args...)
		lines = append(lines, l)
		fmt.Fprintln(a.log, l)
	}
	files := r.files()
	var units, sysctls, modules, images []string
	for _, p := range sortedKeys(files) {
		switch dir, base := path.Split(p); {
		case strings.HasPrefix(p, "etc/systemd/system/") && strings.HasSuffix(dir, ".wants/"):
			units = append(units, base)
		case dir == "etc/sysctl.d/" && strings.HasSuffix(base, ".conf"):
			sysctls = append(sysctls, p)
		case dir == "etc/modules-load.d/" && strings.HasSuffix(base, ".conf"):
			modules = append(modules, p)
		case dir == "var/lib/prebake/images/" && strings.HasSuffix(base, ".tar"):
			images = append(images, p)
		}
	}
	skip := func(what, tool string) bool {
		if !a.live() {
			say("skipped %s: the root is %s, not the running system's /", what, a.dir)
			return true
		}
		if _, err := exec.LookPath(tool); err != nil {
			say("skipped %s: %s is not installed", what, tool)
			return true
		}
		return false
	}
	run := func(what string, name string, args ...string) {
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			say("%s failed: %s %s: %v: %s", what, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			return
		}
		say("%s: %s %s", what, name, strings.Join(args, " "))
	}

	if !skip("systemd daemon-reload", "systemctl") {
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			say("skipped systemd daemon-reload: systemd is not running")
		} else {
			run("systemd daemon-reload", "systemctl", "daemon-reload")
		}
	}
	if len(units) > 0 {
		say("units enabled by the image's links: %s", strings.Join(units, ", "))
	}
	if len(sysctls) > 0 && !skip("sysctls", "sysctl") {
		for _, f := range sysctls {
			run("sysctls", "sysctl", "-q", "-p", "/"+f)
		}
	}
	if len(modules) > 0 && !skip("kernel modules", "modprobe") {
		for _, f := range modules {
			mods, err := moduleNames(filepath.Join(a.dir, f))
			if err != nil {
				say("kernel modules failed: %v", err)
				continue
			}
			for _, m := range mods {
				run("kernel module", "modprobe", m)
			}
		}
	}
	if len(images) > 0 && !skip("importing pre-pulled images into containerd", "ctr") {
		if _, err := os.Stat("/run/containerd/containerd.sock"); err != nil {
			say("skipped importing pre-pulled images into containerd: containerd is not running (prebake-images.service imports them when it starts)")
		} else {
			for _, f := range images {
				run("imported into containerd", "ctr", "-n", "k8s.io", "images", "import", "/"+f)
			}
		}
	}
	return lines
}

// moduleNames reads a modules-load.d file.
func moduleNames(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

var pkgName = lazyre.New(`^[a-z0-9][a-z0-9.+-]*(:[a-z0-9]+)?$`)

// osPackages checks the image's packages against the root's database and,
// when asked, installs the missing ones with apt-get (in a chroot for a
// root other than /). It returns the packages installed.
func (a *applier) osPackages(ctx context.Context, want []string) ([]string, error) {
	db, err := ospkg.Open(a.dir)
	if err != nil {
		return nil, err
	}
	missing := db.Missing(want)
	if len(missing) == 0 {
		return nil, nil
	}
	if a.o.DryRun && a.o.InstallOSPackages {
		return missing, nil // what would be installed
	}
	if !a.o.InstallOSPackages || a.o.DryRun {
		return nil, db.Check(want)
	}
	for _, p := range missing {
		if !pkgName.MatchString(p) {
			return nil, fmt.Errorf("os package %q: not a Debian package name", p)
		}
	}
	if db.Manager != ospkg.Dpkg {
		return nil, fmt.Errorf("%w: installing into a %s root", ospkg.ErrUnsupported, db.Manager)
	}
	fmt.Fprintf(a.log, "installing OS packages: %s\n", strings.Join(missing, " "))
	if err := aptInstall(ctx, a.dir, missing, a.log); err != nil {
		return nil, err
	}
	if db, err = ospkg.Open(a.dir); err != nil {
		return nil, err
	}
	if err := db.Check(want); err != nil {
		return nil, fmt.Errorf("after apt-get install: %w", err)
	}
	return missing, nil
}

// aptInstall runs the root's own apt-get: directly for /, else in a chroot
// (with the host's resolv.conf, for the download).
func aptInstall(ctx context.Context, root string, pkgs []string, log interface{ Write([]byte) (int, error) }) error {
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	name := "apt-get"
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	if root != "/" {
		if _, err := os.Stat(filepath.Join(root, "usr/bin/apt-get")); err != nil {
			return fmt.Errorf("installing %s: the root %s has no apt-get", strings.Join(pkgs, ", "), root)
		}
		if _, err := exec.LookPath("chroot"); err != nil {
			return fmt.Errorf("installing %s: chroot is not installed", strings.Join(pkgs, ", "))
		}
		undo, err := chrootSetup(root)
		if err != nil {
			return err
		}
		defer undo()
		args = append([]string{root, "apt-get"}, args...)
		name = "chroot"
	} else if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("installing %s: apt-get is not installed", strings.Join(pkgs, ", "))
	}
	runApt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		log.Write(out.Bytes())
		if err != nil {
			return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
		}
		return nil
	}
	if err := runApt(args...); err != nil {
		// The package lists may be stale or absent: update and try again.
		upd := []string{"update", "-q"}
		if name == "chroot" {
			upd = append([]string{root, "apt-get"}, upd...)
		}
		if uerr := runApt(upd...); uerr != nil {
			return fmt.Errorf("installing OS packages: %w (and %v)", err, uerr)
		}
		if err := runApt(args...); err != nil {
			return fmt.Errorf("installing OS packages: %w", err)
		}
	}
	return nil
}

// chrootSetup gives a chroot what apt-get needs (the host's DNS
// configuration, /dev/null) and returns how to undo it.
func chrootSetup(root string) (func(), error) {
	var undo []func()
	done := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	resolv := filepath.Join(root, "etc/resolv.conf")
	if _, err := os.Lstat(resolv); errors.Is(err, os.ErrNotExist) {
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			if err := os.WriteFile(resolv, b, 0o644); err == nil {
				undo = append(undo, func() { os.Remove(resolv) })
			}
		}
	}
	null := filepath.Join(root, "dev/null")
	if _, err := os.Stat(null); errors.Is(err, os.ErrNotExist) {
		os.MkdirAll(filepath.Dir(null), 0o755)
		// A bind mount would need privileges beyond root in a container;
		// a character device node is what /dev/null is.
		if out, err := exec.Command("mknod", "-m", "666", null, "c", "1", "3").CombinedOutput(); err != nil {
			done()
			return nil, fmt.Errorf("creating %s: %v: %s", null, err, out)
		}
		undo = append(undo, func() { os.Remove(null) })
	}
	return done, nil
}
