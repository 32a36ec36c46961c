// Package registry moves prebake images between places: OCI layout
// directories, the local store, and OCI registries. It parses references (one
// parser for every command), writes layouts durably, copies graphs with their
// referrers, pulls by digest, and keeps channels and revocations.
//
// It speaks go-containerregistry's v1.Image and v1.ImageIndex and must not
// import the builder; the builder must not import it.
package registry
