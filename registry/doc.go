// Package registry moves prebake images between places — OCI layout
// directories, the local store and OCI registries — one call per job:
// Write, Copy, Push, Pull, Get, Inspect, List, Referrers, channels
// (Promote, Rollback, ChannelHistory), revocations (Revoke, Revocations)
// and file artifacts (FileArtifact). It is the API the CLI, the pipeline and
// the Packer plugin call, the way crane sits over go-containerregistry's
// packages; the work is done by packages with one job each:
//
//   - reference: parsing and printing references (pure);
//   - store: the Store interface every place implements, layouts and the
//     local store, the platform matcher;
//   - remote: the registry client (a Store for a repository);
//   - transfer: copying a graph with its referrers between two Stores;
//   - unpack: applying layers (root file systems, the provisioner's staging);
//   - records: channel assignments and revocations as referrer artifacts.
//
// The names those packages export that callers of this one need (Reference,
// Layout, ErrNotFound, …) are repeated here as aliases. It speaks
// go-containerregistry's v1.Image and v1.ImageIndex and must not import the
// builder; the builder must not import it.
package registry
