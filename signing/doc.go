// Package signing signs, attests and verifies prebake images with signatures
// the cosign CLI reads and writes: keys in cosign's encrypted format,
// simple-signing payloads under the sha256-<hex>.sig tag and DSSE in-toto
// attestations under the sha256-<hex>.att tag, next to the image in a
// registry, an OCI layout or the local store.
//
// Verification is offline and fail-closed: it needs the public key and the
// place the image lives, nothing else (no transparency log, no Fulcio, no
// TUF), and every failure is an error that errors.Is matches to one of the
// sentinels in errors.go.
//
// The package is silent (no output, no prompts: callers pass a PassFunc) and
// reaches images only through the registry package.
package signing
