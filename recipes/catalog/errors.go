package catalog

import "errors"

var (
	// ErrUnknownRecipe: no catalog recipe has that name.
	ErrUnknownRecipe = errors.New("no such catalog recipe")
	// ErrUnsupportedVersion: the lock has no downloads for that Kubernetes version.
	ErrUnsupportedVersion = errors.New("unsupported Kubernetes version")
)
