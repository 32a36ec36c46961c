// Package disk turns a node image into a bootable disk: an OS root
// filesystem (the base, which brings the kernel, systemd and cloud-init)
// with the image's layers applied on top, written as a GPT disk with an EFI
// system partition holding a unified kernel image and an ext4 root
// partition, as raw or qcow2.
//
// Export needs no loop devices, mounts or kernel modules: the partitions are
// built as files by mkfs.ext4 -d, mkfs.vfat and mtools, the partition table
// by sgdisk, the kernel image by objcopy over systemd's EFI stub, and the
// pieces are copied into place at their offsets. Fixed GUIDs, hash seeds and
// timestamps make the same inputs give the same bytes. It runs as root only
// so the files keep their owners.
//
// The package does not build images (builder) or move them (registry: it
// reads them through registry.Get and unpacks them with registry.Unpack), and
// it never boots anything. It names what a published disk is (ArtifactType,
// MediaTypes, PublishedFile), which `prebake push DISK… REF` and the Packer
// post-processor publish through registry.FileArtifact; the registry packages
// know nothing of disks.
package disk
