#!/bin/sh
# Writes a minimal initrd for the boot test's base: static busybox, the
# kernel modules the root disk needs (virtio PCI and block, ext4 with
# crc32c) and a 30-line /init that loads them, finds the root partition
# named by root=PARTLABEL=… (the kernel's PARTNAME in sysfs; no udev, no
# blkid), mounts it and hands over to systemd. Uncompressed: under TCG the
# kernel unpacks it faster than it decompresses a smaller one.
#
# It replaces initramfs-tools' initrd (MODULES=list: udevd, coldplug and
# its scripts), which took about 2.8 s under TCG from /init to systemd;
# see docs/boot.md, "Trimming the base".
#
# Runs inside the base (chroot): hack/boot/initrd.sh KVER OUT
set -eu
kver=$1 out=$2
mods="virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk crc16 mbcache jbd2 crc32c_generic ext4"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/bin" "$w/dev" "$w/proc" "$w/sys" "$w/root" "$w/lib/modules"
cp /bin/busybox "$w/bin/busybox"
for m in $mods; do
  f=$(find "/lib/modules/$kver/kernel" -name "$m.ko" | head -1)
  [ -n "$f" ] || { echo "initrd.sh: module $m not found for $kver" >&2; exit 1; }
  cp "$f" "$w/lib/modules/"
done
cat >"$w/init" <<EOF
#!/bin/busybox sh
# prebake boot-test initrd (hack/boot/initrd.sh)
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "prebake-initrd: loading modules"
for m in $mods; do /bin/busybox insmod /lib/modules/\$m.ko || echo "prebake-initrd: insmod \$m failed"; done
label=
rw=ro
for a in \$(/bin/busybox cat /proc/cmdline); do
  case \$a in root=PARTLABEL=*) label=\${a#root=PARTLABEL=} ;; rw) rw=rw ;; esac
done
dev=
i=0
while [ -z "\$dev" ] && [ \$i -lt 500 ]; do
  for u in /sys/class/block/*/uevent; do
    if /bin/busybox grep -qx "PARTNAME=\$label" "\$u"; then dev=/dev/\$(/bin/busybox basename \$(/bin/busybox dirname "\$u")); break; fi
  done
  [ -n "\$dev" ] || { i=\$((i+1)); /bin/busybox usleep 10000; }
done
[ -n "\$dev" ] || { echo "prebake-initrd: no partition named \$label"; exec /bin/busybox sh; }
/bin/busybox mount -t ext4 -o \$rw "\$dev" /root || { echo "prebake-initrd: mounting \$dev failed"; exec /bin/busybox sh; }
echo "prebake-initrd: root \$dev (\$label) mounted \$rw"
/bin/busybox mount --move /dev /root/dev
/bin/busybox umount /proc /sys
exec /bin/busybox switch_root /root /sbin/init
EOF
chmod 0755 "$w/init"
(cd "$w" && find . | sort | cpio -o -H newc --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
