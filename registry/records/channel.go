package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/store"
)

// ArtifactTypeChannel is the artifact type of channel assignment records.
const ArtifactTypeChannel = "application/vnd.prebake.channel.v1+json"

// artifactTypeChannelAnchor marks the per-channel manifest that assignment
// records refer to. It is deterministic (it holds only the channel's name),
// so every client finds the same digest and with it the channel's history,
// on any registry: through the referrers API or the tag fallback.
const artifactTypeChannelAnchor = "application/vnd.prebake.channel-anchor.v1+json"

// Assignment is one channel move.
type Assignment struct {
	Channel  string    `json:"channel"`
	Digest   string    `json:"digest"`             // what the channel points at after the move
	Previous string    `json:"previous,omitempty"` // what it pointed at before ("" at first)
	Action   string    `json:"action"`             // "promote" or "rollback"
	Undoes   string    `json:"undoes,omitempty"`   // rollback: the record it undid
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	// Record is the digest of the record artifact (set when read back).
	Record string `json:"record,omitempty"`
}

// PromoteOptions configure Promote and Rollback.
type PromoteOptions struct {
	// By names who promotes (required; callers default it, e.g. to
	// $PREBAKE_ACTOR or user@host).
	By string
	// At is the time recorded; zero means now.
	At time.Time
	// AllowRevoked promotes a revoked digest anyway.
	AllowRevoked bool
}

// CheckChannel checks that channel is a valid channel name (a tag, not a
// referrers fallback tag).
func CheckChannel(channel string) error {
	if !reference.ValidTag(channel) || store.IsFallbackTag(channel) {
		return fmt.Errorf("channel %q: must be a valid tag (letters, digits, '_', '.', '-')", channel)
	}
	return nil
}

// channelAnchor is the deterministic manifest a channel's records refer to.
func channelAnchor(channel string) (v1.Descriptor, []byte, error) {
	return buildArtifact(artifactTypeChannelAnchor, nil, "", nil, map[string]string{AnnotationChannel: channel})
}

// Promote points the tag channel of s at digest, after recording the
// assignment (who, when, the previous digest) as a referrer artifact, so
// ChannelHistory and Rollback work on any OCI registry. The digest must exist
// and (unless o.AllowRevoked) carry no revocation (a *RevokedError).
func Promote(ctx context.Context, s store.Store, digest, channel string, o PromoteOptions) (Assignment, error) {
	return assign(ctx, s, channel, digest, "promote", "", o)
}

func assign(ctx context.Context, e store.Store, channel, digest, action, undoes string, o PromoteOptions) (Assignment, error) {
	if err := CheckChannel(channel); err != nil {
		return Assignment{}, err
	}
	d, err := e.Resolve(ctx, "", digest)
	if err != nil {
		return Assignment{}, err
	}
	if !o.AllowRevoked {
		if err := CheckRevoked(ctx, e, e.String(), d); err != nil {
			return Assignment{}, err
		}
	}
	raw, err := e.Manifest(ctx, d)
	if err != nil {
		return Assignment{}, err
	}
	a := Assignment{Channel: channel, Digest: d.Digest.String(), Action: action, Undoes: undoes, By: o.By, At: o.At}
	if prev, err := e.Resolve(ctx, channel, ""); err == nil {
		a.Previous = prev.Digest.String()
	} else if !errors.Is(err, store.ErrNotFound) {
		return Assignment{}, err
	}
	if a.By == "" {
		return Assignment{}, fmt.Errorf("promoting %s: %w", a.Digest, ErrNoActor)
	}
	if a.At.IsZero() {
		a.At = time.Now()
	}
	a.At = a.At.UTC()
	anchor, anchorRaw, err := channelAnchor(channel)
	if err != nil {
		return Assignment{}, err
	}
	if err := putArtifactManifest(ctx, e, anchor, anchorRaw); err != nil {
		return Assignment{}, fmt.Errorf("writing channel %s: %w", channel, err)
	}
	payload, err := json.Marshal(a)
	if err != nil {
		return Assignment{}, err
	}
	ann := map[string]string{
		AnnotationCreated: a.At.Format(time.RFC3339Nano),
		AnnotationBy:      a.By,
		AnnotationChannel: channel,
		AnnotationDigest:  a.Digest,
		AnnotationAction:  action,
	}
	if a.Previous != "" {
		ann[AnnotationPrevious] = a.Previous
	}
	if undoes != "" {
		ann[AnnotationUndoes] = undoes
	}
	// The record first, the tag last: a failure between the two leaves a
	// record of a move that did not happen, which history shows as such
	// (the tag is the truth), never a move without a record.
	rd, err := Push(ctx, e, ArtifactTypeChannel, anchor, ArtifactTypeChannel, payload, ann)
	if err != nil {
		return Assignment{}, fmt.Errorf("recording channel %s: %w", channel, err)
	}
	a.Record = rd.Digest.String()
	if err := e.Tag(ctx, d, raw, channel); err != nil {
		return Assignment{}, fmt.Errorf("moving channel %s to %s: %w", channel, a.Digest, err)
	}
	return a, nil
}

// ChannelHistory returns the channel's assignments in e, newest first.
func ChannelHistory(ctx context.Context, e store.Store, channel string) ([]Assignment, error) {
	if err := CheckChannel(channel); err != nil {
		return nil, err
	}
	anchor, _, err := channelAnchor(channel)
	if err != nil {
		return nil, err
	}
	rs, err := e.Referrers(ctx, anchor, ArtifactTypeChannel)
	if err != nil {
		return nil, fmt.Errorf("reading channel %s: %w", channel, err)
	}
	var out []Assignment
	for _, r := range rs {
		ann, err := recordAnnotations(ctx, e, r)
		if err != nil {
			return nil, err
		}
		if ann[AnnotationChannel] != channel {
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, ann[AnnotationCreated])
		out = append(out, Assignment{
			Channel: channel, Digest: ann[AnnotationDigest], Previous: ann[AnnotationPrevious],
			Action: ann[AnnotationAction], Undoes: ann[AnnotationUndoes], By: ann[AnnotationBy], At: at,
			Record: r.Digest.String(),
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.After(out[j].At)
		}
		return out[i].Record < out[j].Record
	})
	return out, nil
}

// Rollback undoes the promotion that put the channel on its current digest:
// it points the channel back at that promotion's previous digest and records
// the move. Repeated rollbacks walk further back, one promotion each.
func Rollback(ctx context.Context, e store.Store, channel string, o PromoteOptions) (Assignment, error) {
	if err := CheckChannel(channel); err != nil {
		return Assignment{}, err
	}
	cur, err := e.Resolve(ctx, channel, "")
	if err != nil {
		return Assignment{}, fmt.Errorf("channel %s: %w", channel, err)
	}
	hist, err := ChannelHistory(ctx, e, channel)
	if err != nil {
		return Assignment{}, err
	}
	undone := map[string]bool{}
	for _, a := range hist {
		if a.Undoes != "" {
			undone[a.Undoes] = true
		}
	}
	for _, a := range hist {
		if a.Action != "promote" || a.Digest != cur.Digest.String() || undone[a.Record] {
			continue
		}
		if a.Previous == "" {
			return Assignment{}, fmt.Errorf("channel %s: %s was its first promotion; nothing to roll back to", channel, a.Digest)
		}
		return assign(ctx, e, channel, a.Previous, "rollback", a.Record, o)
	}
	return Assignment{}, fmt.Errorf("channel %s points at %s, which no recorded promotion explains; promote a digest explicitly", channel, cur.Digest)
}
