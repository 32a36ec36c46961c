package render

import "errors"

// Sentinel errors of Run; the CLI adds its flag hints to them.
var (
	// ErrNoKubernetesVersion: a node has no Kubernetes version (no version
	// given, no image, or an image without prebake's version annotation).
	ErrNoKubernetesVersion = errors.New("no Kubernetes version")
	// ErrOutputDirRequired: several nodes need a directory to be written to.
	ErrOutputDirRequired = errors.New("several nodes need an output directory, one file per node")
	// ErrInitOneNode: an init renders the first control plane only.
	ErrInitOneNode = errors.New("init renders one node, the first control plane (render the others as joins)")
	// ErrDuplicateNode: two specs name the same node.
	ErrDuplicateNode = errors.New("node given twice")
)
