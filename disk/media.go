package disk

import (
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/registry"
)

// Published disks: exported node disks pushed next to their images as OCI
// 1.1 artifacts (`prebake push DISK… REF`, the Packer post-processor), one
// layer per disk file.
const (
	// ArtifactType is the artifactType of a published disk.
	ArtifactType = "application/vnd.prebake.disk.v1"
	// AnnotationFormat is each disk layer's format (qcow2, raw, vmdk).
	AnnotationFormat = "dev.prebake.disk.format"
)

// MediaTypes maps a disk file format to its layer media type.
var MediaTypes = map[string]types.MediaType{
	"qcow2": "application/vnd.prebake.disk.layer.v1.qcow2",
	"raw":   "application/vnd.prebake.disk.layer.v1.raw",
	"vmdk":  "application/vnd.prebake.disk.layer.v1.vmdk",
}

// FileFormat is the disk file format a file name says (by extension), or "".
func FileFormat(name string) string {
	switch filepath.Ext(name) {
	case ".qcow2", ".QCOW2":
		return "qcow2"
	case ".raw", ".img", ".RAW", ".IMG":
		return "raw"
	case ".vmdk", ".VMDK":
		return "vmdk"
	}
	return ""
}

// PublishedFile is the layer that publishes the disk at path, of format
// (qcow2, raw, vmdk), in an ArtifactType artifact built by
// registry.FileArtifact: the format's media type and AnnotationFormat.
func PublishedFile(path, format string) registry.File {
	return registry.File{Path: path, MediaType: MediaTypes[format], Annotations: map[string]string{AnnotationFormat: format}}
}
