// Package registry moves prebake images between places: OCI layout
// directories, the local store, and OCI registries. It parses references (one
// parser for every command), writes layouts durably, copies graphs with their
// referrers, pulls by digest, and keeps channels and revocations.
//
// It speaks go-containerregistry's v1.Image and v1.ImageIndex and must not
// import the builder; the builder must not import it.
//
// Why one package of about 4k lines: the three places (layout, store,
// registry) implement one unexported endpoint interface through which copy,
// pull, unpack, channels and revocations all work, so a feature is added once
// for every place. Splitting it along that interface (references, a content
// store with the interface exported, the remote client, copy, unpack) is
// planned; until then its files follow those lines (reference.go,
// layout.go, remote.go, endpoint.go, copy.go, pull.go, unpack.go).
package registry
