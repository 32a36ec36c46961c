// Package builder turns a resolved recipe into an OCI image index: it fetches
// and verifies the sources, lays each component out as one deterministic tar
// layer (sorted, parents present, uid/gid 0, mtime = the epoch, no host
// metadata), compresses it once and caches it by its inputs, and assembles
// one image per platform, an index over them and an SPDX SBOM referring to
// the index.
//
// Build returns go-containerregistry values; writing them anywhere is the
// registry package's job. builder must not import registry.
package builder
