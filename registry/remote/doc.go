// Package remote is prebake's one registry client: Repository, the
// store.Store of a repository of an OCI distribution registry, so that copy,
// pull, channels and revocations work on registries exactly as on layouts.
//
// Authentication (Docker config keychain, credential helpers, bearer tokens)
// is go-containerregistry's transport; the requests above it are written
// here rather than with go-containerregistry's remote package, because that
// package cannot do what prebake promises:
//   - every byte read is checked against its descriptor while it streams,
//     and a tag is resolved from the manifest body (the digest is computed,
//     never taken from a header);
//   - a blob is uploaded in one streaming PUT from the file as stored (an
//     *os.File body lets net/http use sendfile) after a HEAD, or mounted
//     from a named repository of the same registry; remote.Write re-reads
//     layers through v1.Layer and decides mounts itself;
//   - the OCI 1.1 referrers fallback tag ("sha256-<hex>") is maintained with
//     a read-merge-write loop that survives concurrent writers (see
//     Repository.AddReferrers); go-containerregistry overwrites it;
//   - reads are retried on 429/5xx (distribution's filesystem driver answers
//     500 while a tag it reads is being rewritten), writes never replayed.
package remote
