package prebake

import (
	"fmt"
	"regexp"
	"strings"
)

var pkgRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_:~-]*$`)

// applyScript is the POSIX shell script run on the machine. It extracts the
// layers in order (whiteouts first), writes image.json atomically, installs
// OS packages and imports container images, then removes the staging dir.
func applyScript(c *Config, p *plan, recRemote string, pkgs []string) (string, error) {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/sh")
	w("# written by the prebake Packer provisioner for %s", c.ref)
	w("set -eu")
	w("ROOT=%s", quote(c.Root))
	w("STAGING=%s", quote(p.staging))
	w(`trap 'rm -rf "$STAGING"' EXIT`)
	w(`if [ "$(id -u)" != 0 ]; then echo "prebake: applying an image needs root (set sudo = true)" >&2; exit 1; fi`)
	w(`command -v tar >/dev/null || { echo "prebake: tar is not installed on the machine" >&2; exit 1; }`)
	w(`mkdir -p "$ROOT"`)
	for i, l := range p.layers {
		w("# layer %d: %s %s (%s)", i+1, l.component, l.version, l.digest)
		for _, wh := range l.Whiteouts {
			w(`rm -rf -- "$ROOT"/%s`, quote(wh))
		}
		flag := ""
		switch l.Compression {
		case "gzip":
			flag = " -z"
		case "zstd":
			flag = " --zstd"
		}
		w(`tar -x%s -p -f %s -C "$ROOT" --numeric-owner --same-owner --same-permissions --keep-directory-symlink --exclude='.wh.*'`, flag, quote(l.remote))
	}
	w(`mkdir -p "$ROOT/etc/prebake"`)
	w(`cp %s "$ROOT/etc/prebake/.image.json.tmp"`, quote(recRemote))
	w(`chown 0:0 "$ROOT/etc/prebake/.image.json.tmp"`)
	w(`chmod 0644 "$ROOT/etc/prebake/.image.json.tmp"`)
	w(`sync "$ROOT/etc/prebake/.image.json.tmp" 2>/dev/null || true`)
	w(`mv -f "$ROOT/etc/prebake/.image.json.tmp" "$ROOT/etc/prebake/image.json"`)
	if len(pkgs) > 0 {
		for _, n := range pkgs {
			if !pkgRE.MatchString(n) {
				return "", fmt.Errorf("os package %q: not a package name", n)
			}
		}
		list := strings.Join(pkgs, " ")
		if c.Root != "/" {
			w(`echo "prebake: root is $ROOT, not /: skipping OS packages (%s)"`, list)
		} else {
			w(`PKGS=%s`, quote(list))
			w(`echo "prebake: installing OS packages: $PKGS"`)
			w(`if command -v apt-get >/dev/null 2>&1; then`)
			w(`  export DEBIAN_FRONTEND=noninteractive`)
			w(`  apt-get install -y -q --no-install-recommends $PKGS || { apt-get update -q && apt-get install -y -q --no-install-recommends $PKGS; }`)
			w(`elif command -v dnf >/dev/null 2>&1; then dnf install -y $PKGS`)
			w(`elif command -v yum >/dev/null 2>&1; then yum install -y $PKGS`)
			w(`elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install $PKGS`)
			w(`elif command -v apk >/dev/null 2>&1; then apk add --no-cache $PKGS`)
			w(`else echo "prebake: no supported package manager (apt-get, dnf, yum, zypper, apk) to install: $PKGS (set skip_os_packages = true to skip)" >&2; exit 1; fi`)
		}
	}
	if !c.SkipContainerdImport {
		if c.Root != "/" {
			w(`echo "prebake: root is $ROOT, not /: skipping the containerd import"`)
		} else {
			w(`IMAGES=%s`, quote(c.ImagesDir))
			w(`if [ -d "$IMAGES" ] && command -v ctr >/dev/null 2>&1 && ctr version >/dev/null 2>&1; then`)
			w(`  for f in "$IMAGES"/*.tar; do [ -e "$f" ] || continue; echo "prebake: importing $f into containerd"; ctr -n k8s.io images import "$f"; done`)
			w(`fi`)
		}
	}
	w(`echo "prebake: applied %s"`, p.summary())
	return b.String(), nil
}

func (p *plan) summary() string {
	return fmt.Sprintf("%d layers", len(p.layers))
}

// quote makes s one shell word.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
