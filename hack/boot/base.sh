#!/usr/bin/env bash
# Builds the minimal Debian 12 base the boot test exports onto: systemd,
# udev, systemd-networkd, cloud-init (NoCloud only, trimmed to the modules
# the test needs), curl (for the download-at-boot baseline) and the kernel
# with its initrd. The initrd is made once, at the end (update-initramfs is
# diverted while packages install, which would otherwise build it twice:
# once for the kernel, once more for the packages that trigger it).
# Cached under .cache/boot/base-HASH.tar, HASH covering this script, the
# apt sources it uses and BASE_PACKAGES.
#
# Boot trims (docs/boot.md, "Trimming the base"):
#   - a minimal initrd (hack/boot/initrd.sh): static busybox and the modules
#     the boot test's disk needs (virtio PCI and block, ext4), no udev,
#     instead of initramfs-tools' (udevd, coldplug, scripts);
#   - cloud-init's generator (ds-identify, a long shell script run by systemd
#     before any unit starts) replaced by cloud-init.target enabled outright:
#     the base has one datasource, NoCloud;
#   - units a node never uses masked: apt and dpkg timers, e2scrub, fstrim,
#     and the early module loads and mounts for DRM, pstore, FUSE, loop,
#     device-mapper, configfs and binfmt_misc.
#
# Environment: BASE_PACKAGES="pkg1 pkg2" (or comma-separated) adds Debian packages.
#
# Usage: [BASE_PACKAGES="conntrack socat"] hack/boot/base.sh   # prints the tarball's path
set -euo pipefail
cd "$(dirname "$0")/../.."
MIRROR=${DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  # The same Debian mirror apt uses on this machine.
  MIRROR=$(grep -h '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
PKGS=systemd,systemd-sysv,udev,dbus,cloud-init,curl,ca-certificates,iproute2,linux-image-amd64,initramfs-tools,zstd,busybox-static
# BASE_PACKAGES: more Debian packages, space- or comma-separated (the real-join
# test adds the OS packages the node image declares).
[ -n "${BASE_PACKAGES:-}" ] && PKGS="$PKGS,$(echo "$BASE_PACKAGES" | tr ' ' ',' | sed 's/,,*/,/g; s/,$//')"
hash=$( { cat "$0" hack/boot/initrd.sh; echo "$MIRROR $PKGS"; } | sha256sum | cut -c1-16)
out=$PWD/.cache/boot/base-$hash.tar
if [ -s "$out" ]; then echo "$out"; exit 0; fi
mkdir -p .cache/boot
tmp=$out.tmp-$$
trap 'rm -f "$tmp"' EXIT
# SOURCE_DATE_EPOCH: mmdebstrap clamps times so the same packages give the
# same tarball.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} mmdebstrap --variant=apt --format=tar --mode=root \
  --include="$PKGS" \
  --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs && ln -s /bin/true "$1/usr/sbin/update-initramfs"' \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' \
  --customize-hook='echo prebake-node > "$1/etc/hostname"' \
  --customize-hook='mkdir -p "$1/etc/cloud/cloud.cfg.d" && cat > "$1/etc/cloud/cloud.cfg.d/90-prebake-boot.cfg" <<CFG
# prebake boot test: NoCloud only (no metadata-server probing), and only
# the modules the rendered user-data uses.
datasource_list: [NoCloud, None]
cloud_init_modules: [seed_random, write_files, set_hostname, update_hostname, users_groups]
cloud_config_modules: [runcmd]
cloud_final_modules: [scripts_per_once, scripts_per_boot, scripts_per_instance, scripts_user, final_message, power_state_change]
CFG' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
  --customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/50-dhcp.network"' \
  --customize-hook='rm "$1/usr/sbin/update-initramfs" && chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer' \
  --customize-hook='chroot "$1" systemctl mask modprobe@drm.service modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service modprobe@dm_mod.service modprobe@configfs.service sys-kernel-config.mount sys-fs-fuse-connections.mount systemd-binfmt.service proc-sys-fs-binfmt_misc.automount' \
  --customize-hook='mkdir -p "$1/etc/systemd/system-generators" "$1/etc/systemd/system/multi-user.target.wants" && ln -s /dev/null "$1/etc/systemd/system-generators/cloud-init-generator" && ln -s /lib/systemd/system/cloud-init.target "$1/etc/systemd/system/multi-user.target.wants/cloud-init.target"' \
  --customize-hook="cp $PWD/hack/boot/initrd.sh \"\$1/tmp/prebake-initrd.sh\"" \
  --customize-hook='for k in "$1"/lib/modules/*; do k=${k##*/}; chroot "$1" sh /tmp/prebake-initrd.sh "$k" "/boot/initrd.img-$k"; done; rm "$1/tmp/prebake-initrd.sh"' \
  --customize-hook='ls -l "$1"/boot/initrd.img-* >&2' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
  bookworm "$tmp" "$MIRROR" >&2
mv "$tmp" "$out"
trap - EXIT
echo "$out"
