package builder

import "errors"

// ErrOfflineImage: an offline build (Options.Offline) has an image to pull
// whose registry has no mirror (Options.RegistryMirrors).
var ErrOfflineImage = errors.New("image not pullable offline")
