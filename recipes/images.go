package recipes

import (
	"fmt"
	"strings"

	"github.com/prebake/prebake/internal/lazyre"

	"github.com/google/go-containerregistry/pkg/name"
)

// Where an images component puts its archives and the unit importing them.
const (
	ImagesDir  = "/var/lib/prebake/images"
	ImagesUnit = "prebake-images.service"
)

// ResolvedImage is one pre-pulled image of one platform.
type ResolvedImage struct {
	// Ref is the name containerd imports it as (registry/repo:tag).
	Ref string `json:"ref"`
	// Digest of the manifest or index pulled (sha256:…).
	Digest string `json:"digest"`
	// OS and Arch select the image of an index.
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// Path of the OCI archive in the image (under ImagesDir).
	Path string `json:"path"`
}

var (
	imageDigestRE = lazyre.New(`^sha256:[a-f0-9]{64}$`)
	unsafeNameRE  = lazyre.New(`[^A-Za-z0-9._-]+`)
)

// ImageArchiveName is the archive file name of ref under ImagesDir:
// registry.k8s.io/pause:3.10.1 -> registry.k8s.io_pause_3.10.1.tar.
func ImageArchiveName(ref string) string {
	return unsafeNameRE.ReplaceAllString(ref, "_") + ".tar"
}

// checkImages validates what does not depend on variables.
func checkImages(p *problems, cf string, c Component, claim func(field, dst string)) {
	if len(c.Images) == 0 {
		return
	}
	claim(cf+".images", "/etc/systemd/system/"+ImagesUnit)
	for i, im := range c.Images {
		f := fmt.Sprintf("%s.images[%d]", cf, i)
		if im.Ref == "" {
			p.add(f+".ref", "ref is required (registry/repository:tag)")
		}
		if im.Digest != "" && !imageDigestRE.MatchString(im.Digest) {
			p.add(f+".digest", "digest must be sha256: and 64 lowercase hex digits, got %q", im.Digest)
		}
	}
}

// resolveImages adds the component's images, their archive paths and the
// enabled import unit to rc.
func (r *Recipe) resolveImages(cf string, c Component, rc *ResolvedComponent, osName, arch string, tx *expander, o ResolveOptions) {
	if len(c.Images) == 0 {
		return
	}
	p := tx.p
	seen := map[string]string{}
	var exec []string
	for i, im := range c.Images {
		f := fmt.Sprintf("%s.images[%d]", cf, i)
		ref := tx.expand(f+".ref", im.Ref, osName, arch)
		if ref == "" {
			continue
		}
		if _, err := name.NewTag(ref, name.StrictValidation); err != nil {
			p.add(f+".ref", "%q is not an image reference with registry and tag (registry.k8s.io/pause:3.10.1): %v", ref, err)
			continue
		}
		file := ImageArchiveName(ref)
		if prev, ok := seen[file]; ok {
			p.add(f+".ref", "image %s is also listed at %s", ref, prev)
			continue
		}
		seen[file] = f
		locked, inLock := o.Lock.ImageDigest(ref)
		ri := ResolvedImage{Ref: ref, OS: osName, Arch: arch, Path: ImagesDir + "/" + file}
		switch {
		case o.Locked && !inLock:
			p.add(f+".ref", "image %s is not in the lock file (--locked); run prebake lock", ref)
		case im.Digest != "" && inLock && im.Digest != locked:
			p.add(f+".digest", "digest %s differs from the lock file's %s for %s", im.Digest, locked, ref)
		case im.Digest != "":
			ri.Digest = im.Digest
		case inLock:
			ri.Digest = locked
		case !o.NoChecksums:
			p.add(f+".digest", "missing digest for image %s: add digest or a lock images entry", ref)
		}
		rc.Images = append(rc.Images, ri)
		exec = append(exec, fmt.Sprintf("ctr -n k8s.io images import %s & p%d=$$!", ri.Path, len(exec)))
	}
	var wait []string
	for i := range exec {
		wait = append(wait, fmt.Sprintf("wait $$p%d", i))
	}
	unit := fmt.Sprintf(`# installed by prebake, component %s
[Unit]
Description=Import the container images prebake pre-pulled into containerd
# Early boot, like containerd.service: on a cloud-init base the default
# dependencies (sysinit.target, basic.target) wait for cloud-init's first
# stages, and the import needs only containerd and the disk.
DefaultDependencies=no
Requires=containerd.service
After=containerd.service local-fs.target
Before=kubelet.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
# Every archive at once (an import is decompression and hashing, one core
# each); the unit fails if any import fails.
ExecStart=/bin/sh -ec '%s; %s'

[Install]
WantedBy=multi-user.target
`, c.Name, strings.Join(exec, "; "), strings.Join(wait, "; "))
	rc.Files = append(rc.Files,
		ResolvedFile{Path: "/etc/systemd/system/" + ImagesUnit, Mode: 0o644, Content: unit},
		ResolvedFile{Path: "/etc/systemd/system/multi-user.target.wants/" + ImagesUnit, Target: "/etc/systemd/system/" + ImagesUnit},
	)
}
