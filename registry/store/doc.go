// Package store is prebake's content store: the Store interface through
// which every place a graph of manifests and blobs can live is read and
// written — an OCI layout directory, a name in the local store (itself one
// layout, images tagged NAME:TAG), images held in memory, and (package
// remote) a registry repository — and its implementations for layouts and
// memory. Every read verifies digest and size (DigestError).
//
// It also holds what every store shares: the parsed view of a manifest, the
// referrers descriptors and fallback tags of OCI 1.1, and the one platform
// matcher (MatchPlatform, PlatformImage).
//
// Layout writes are durable: blobs and index.json go through a temp file and
// a rename, index.json changes are serialised across processes with a lock
// file, and an interrupted write leaves the layout valid and without the
// partial image.
package store
