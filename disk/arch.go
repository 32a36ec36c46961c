package disk

import (
	"fmt"
	"os/exec"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultStubARM64 is systemd's arm64 EFI stub where Debian's
// systemd-boot-efi installs it on an arm64 machine (on another machine,
// hack/efistub.sh arm64 fetches it and Options.Stub names it).
const DefaultStubARM64 = "/usr/lib/systemd/boot/efi/linuxaa64.efi.stub"

// target is what differs between the architectures a disk boots on.
type target struct {
	arch string
	// stub is the default EFI stub; bootFile the removable-media path's
	// file name the firmware boots.
	stub, bootFile string
	// rootType is the GPT type code (sgdisk) of the root partition, the
	// Discoverable Partitions root type of the architecture.
	rootType string
	// objcopy commands that handle the architecture's PE images, in order
	// of preference.
	objcopy []string
	// pkg names the Debian package that brings the stub.
	pkg string
}

var targets = map[string]target{
	"amd64": {arch: "amd64", stub: DefaultStub, bootFile: "BOOTX64.EFI", rootType: "8304", objcopy: []string{"objcopy"}, pkg: "systemd-boot-efi"},
	"arm64": {arch: "arm64", stub: DefaultStubARM64, bootFile: "BOOTAA64.EFI", rootType: "8305", objcopy: []string{"aarch64-linux-gnu-objcopy", "objcopy"}, pkg: "systemd-boot-efi:arm64 (on another architecture: hack/efistub.sh arm64)"},
}

// targetOf returns the disk target of a platform ("" is this machine's).
func targetOf(platform string) (target, error) {
	arch := runtime.GOARCH
	if platform != "" {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return target{}, fmt.Errorf("platform %q: %w", platform, err)
		}
		if p.OS != "linux" {
			return target{}, fmt.Errorf("platform %q: only linux disks are made", platform)
		}
		arch = p.Architecture
	}
	t, ok := targets[arch]
	if !ok {
		return target{}, fmt.Errorf("platform %q: no bootable disk for %s (amd64 and arm64 are supported)", platform, arch)
	}
	return t, nil
}

// objcopyTool picks the first objcopy on PATH that handles the target's PE
// images: the host's own for amd64 on amd64, the cross binutils'
// (Debian package binutils-aarch64-linux-gnu) for arm64 elsewhere.
func (t target) objcopyTool() (string, bool) {
	cands := t.objcopy
	if t.arch == "arm64" && runtime.GOARCH == "arm64" {
		cands = []string{"objcopy"}
	} else if t.arch == "arm64" {
		cands = cands[:1]
	}
	for _, c := range cands {
		if _, err := exec.LookPath(c); err == nil {
			return c, true
		}
	}
	return cands[0], false
}
