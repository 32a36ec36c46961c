package builder

import "errors"

// Errors Build returns, wrapped with what they are about.
var (
	// ErrCacheDigest: a layer from Options.LayerCache does not have the
	// digest or size its entry names.
	ErrCacheDigest = errors.New("cached layer does not match its digest")
	// ErrOfflineImage: an offline build (Options.Offline) has an image to pull
	// whose registry has no mirror (Options.RegistryMirrors).
	ErrOfflineImage = errors.New("image not pullable offline")
)
