// Package server is prebake's embedded OCI registry, the library behind
// `prebake serve`: an http.Handler over an on-disk store of one OCI image
// layout per repository.
//
// The distribution API itself (uploads, manifests, tags, referrers) is
// olareg's; this package wraps it with what a registry that holds release
// artifacts owes its users and olareg does not provide: every write is made
// durable (temp file, fsync, rename, directory fsync) before it is
// acknowledged, index.json changes are serialised per repository across
// goroutines and processes, tags only ever name complete, verified graphs
// (even after kill -9), htpasswd authentication, and a garbage collector that
// is safe to run beside pushes.
//
// It must not import the builder or internal packages of other features; the
// client side of the registry lives in package registry.
package server
