// Package records keeps prebake's record artifacts in any store.Store:
// channel assignments (Promote, Rollback, ChannelHistory) and revocations
// (Revoke, Revocations, CheckRevoked). A record is an OCI 1.1 artifact whose
// subject is the image it speaks of (a channel's records refer to a
// deterministic per-channel anchor), so every client finds it through the
// referrers API or the tag fallback, on any registry, layout or the store.
package records
