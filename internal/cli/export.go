package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/prebake/prebake/disk"
	"github.com/prebake/prebake/registry"
	"github.com/prebake/prebake/signing"
)

func newExportCmd(a *app) *cobra.Command {
	var (
		rf       registryFlags
		base     string
		format   string
		size     string
		platform string
		cmdline  string
		output   string
		asJSON   bool
		skipPkgs bool
		stub     string
		key      string
	)
	cmd := &cobra.Command{
		Use:   "export [REF@DIGEST] --base BASE -o FILE",
		Short: "Write a node image onto an OS base as a bootable disk (raw or qcow2)",
		Long: `Export applies the node image's layers on top of an OS root filesystem
(BASE) and writes a disk that UEFI firmware boots:

  GPT
  ├─ 1 ESP (FAT)        \EFI\BOOT\BOOTX64.EFI (BOOTAA64.EFI for arm64): a unified
  │                     kernel image made of systemd's EFI stub, BASE's newest
  │                     /boot/vmlinuz-VERSION and /boot/initrd.img-VERSION, its
  │                     os-release, and the command line
  │                     "root=PARTLABEL=prebake-root rw" + --cmdline
  └─ 2 prebake-root     ext4 with the root filesystem

--platform linux/arm64 makes an arm64 disk (the node image's arm64 image on
an arm64 BASE): the stub is linuxaa64.efi.stub (Debian's systemd-boot-efi
for arm64; --stub names it on another machine, hack/efistub.sh fetches it),
built with aarch64-linux-gnu-objcopy off arm64 (Debian package
binutils-aarch64-linux-gnu), the gzip-compressed arm64 vmlinuz is
decompressed into the image, and the root partition has the arm64 root type.

BASE brings the kernel, systemd and cloud-init: a directory, a tarball
(plain, gzip or zstd) or an image reference (oci:DIR@…, a registry). Device
nodes, FIFOs and sockets of a directory or tarball base are left out (the
booted system mounts /dev). The image's layers are applied as by
'prebake pull -o DIR': in order, OCI whiteouts honoured, escapes refused.
Without REF the disk holds BASE alone (a baseline to compare against).

The OS packages the image declares (its recipe's osPackages, such as
conntrack and socat) are checked against BASE's package database
(/var/lib/dpkg/status; RPM bases are not read yet) before anything is
written: export fails naming the missing ones, unless
--skip-os-packages-check turns that into a warning. With --verify-key the
image's signature (and revocation) is verified first, as by 'prebake verify'.

No loop devices or mounts are used (mkfs.ext4 -d, mkfs.vfat and mtools,
sgdisk, objcopy, qemu-img for qcow2), but export runs as root so files keep
their owners. GUIDs, serials and hash seeds derive from the inputs and every
time stamp is pinned to SOURCE_DATE_EPOCH (else 1970), so the same inputs
give the same disk bytes. The file appears only when complete.`,
		Example: `  # a qcow2 from a node image on a Debian base made with mmdebstrap
  prebake export oci:out@sha256:… --base debian-12.tar --format qcow2 --size 4G -o node.qcow2

  # boot it
  qemu-system-x86_64 -m 2G -bios /usr/share/ovmf/OVMF.fd -drive file=node.qcow2,if=virtio -nographic

  # the disk bare: no image, for a baseline
  prebake export --base debian-12.tar -o base.raw`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return fmt.Errorf("-o FILE is required")
			}
			if base == "" {
				return fmt.Errorf("--base is required: a directory, tarball or image reference with a kernel, systemd and cloud-init")
			}
			var ref registry.Reference
			if len(args) == 1 {
				var err error
				if ref, err = registry.ParseReference(args[0]); err != nil {
					return err
				}
				if ref.Digest == "" {
					return fmt.Errorf("exporting %s: %w: name the image as REF@sha256:… so the disk holds exactly what was tested", ref, registry.ErrDigestRequired)
				}
			}
			if key != "" && len(args) == 1 {
				// The disk holds exactly what was signed: verified before
				// anything is read from it.
				if _, err := signing.Verify(cmd.Context(), ref, signing.VerifyOptions{Key: key, Registry: rf.options()}); err != nil {
					return err
				}
			}
			n, err := parseByteSize(size)
			if err != nil {
				return fmt.Errorf("--size %q: %w", size, err)
			}
			epoch, err := sourceDateEpoch()
			if err != nil {
				return err
			}
			o, done := rf.progressOptions(a)
			defer done()
			do := disk.Options{
				Base: base, Format: disk.Format(format), Size: n, Platform: platform,
				Cmdline: cmdline, Registry: o, Progress: o.Progress,
				SkipOSPackagesCheck: skipPkgs, Stub: stub,
			}
			if epoch != nil {
				do.Epoch = time.Unix(*epoch, 0)
			}
			res, err := disk.Export(cmd.Context(), ref, output, do)
			done()
			for _, w := range res.Warnings {
				fmt.Fprintf(a.Err, "warning: %s\n", w)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, res)
			}
			fmt.Fprintln(a.Out, res.Output)
			if !a.quiet {
				fmt.Fprintf(a.Err, "wrote %s: %s, %d MiB, kernel %s\n", res.Output, res.Format, res.Size>>20, res.Kernel)
			}
			return nil
		},
	}
	rf.register(cmd, true)
	cmd.Flags().StringVar(&base, "base", "", "OS root filesystem: directory, tarball or image reference (required)")
	cmd.Flags().StringVar(&format, "format", "raw", "disk format: raw or qcow2")
	cmd.Flags().StringVar(&size, "size", "4G", "disk size (bytes, or with K, M, G, T suffix; powers of 1024)")
	cmd.Flags().StringVar(&platform, "platform", "", "platform of an index to export, os/arch[/variant] (default linux/<this machine>)")
	cmd.Flags().StringVar(&cmdline, "cmdline", "", `kernel arguments after "root=PARTLABEL=prebake-root rw" (default "console=ttyS0,115200 console=tty0")`)
	cmd.Flags().StringVarP(&output, "output", "o", "", "disk file to write (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&key, "verify-key", "", "public key the image's signature must verify with before export (PEM file, env://VAR or KMS URI)")
	cmd.Flags().StringVar(&stub, "stub", "", "systemd EFI stub to build the kernel image on (default: Debian's, for the platform)")
	cmd.Flags().BoolVar(&skipPkgs, "skip-os-packages-check", false, "warn instead of failing when BASE lacks OS packages the image declares (or its package database cannot be read)")
	return cmd
}

// parseByteSize reads "4G", "512M", "4GiB" or a plain byte count.
func parseByteSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("want a positive size such as 4G or 512M")
	}
	return n * mult, nil
}
