// Package transfer copies graphs between stores: an image or index with
// every manifest and blob below it, the referrers of each (SBOMs, signatures,
// channel records, revocations, at any depth) and cosign's legacy
// "sha256-<hex>.sig/.att/.sbom" tags. Blobs move in parallel as stored
// (never recompressed), blobs the destination has are skipped, and within
// one registry they are mounted across repositories. Manifests go after
// their blobs, children before parents, referrers after their subject, and
// the tag last, so a tag never names an incomplete graph.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/internal/progress"
	"github.com/prebake/prebake/registry/store"
)

// Result reports what a Copy moved.
type Result struct {
	// Descriptor is the root image or index at the destination.
	Descriptor v1.Descriptor
	// Referrers are the referrers copied along (of the root and of every
	// manifest below it, at any depth), and cosign's legacy tags.
	Referrers []v1.Descriptor
	// Manifests is how many manifests the graph holds (root, children,
	// referrers); ManifestsSkipped of them the destination had already, so
	// they were not written again.
	Manifests, ManifestsSkipped int
	// Blobs is how many distinct blobs the graph holds.
	Blobs int
	// Uploaded is how many blob bytes were sent; Skipped how many were
	// already there (HEAD) or mounted from another repository.
	Uploaded, Skipped int64
	// BlobsUploaded, BlobsSkipped and BlobsMounted count blobs by outcome
	// (mounted blobs count as skipped too).
	BlobsUploaded, BlobsSkipped, BlobsMounted int
}

// Summary is the one-line report the CLI prints.
func (r Result) Summary() string {
	s := fmt.Sprintf("uploaded %s, skipped %s (%d blobs: %d uploaded, %d skipped",
		progress.Bytes(r.Uploaded), progress.Bytes(r.Skipped), r.Blobs, r.BlobsUploaded, r.BlobsSkipped)
	if r.BlobsMounted > 0 {
		s += fmt.Sprintf(", %d mounted", r.BlobsMounted)
	}
	return s + ")"
}

// Options tune Copy.
type Options struct {
	// Jobs is how many blobs move at once; 0 means 4.
	Jobs int
	// Progress receives an event per blob (Op); nil is silent.
	Progress progress.Func
	// Op is the progress events' Op: "upload" or "download".
	Op string
	// MountFrom is a repository of the destination's registry to mount
	// blobs from (see remote.MountSource).
	MountFrom string
	// NoReferrers copies the graph alone.
	NoReferrers bool
}

type gnode struct {
	d        v1.Descriptor
	raw      []byte
	m        *store.Parsed
	children []*gnode        // an index's manifests
	blobs    []v1.Descriptor // an image's config and layers
}

type legacyTag struct {
	tag string
	n   *gnode
}

// graph is everything below a root, in push order.
type graph struct {
	src       store.Store
	nodes     []*gnode // children before parents, subjects before referrers
	byDigest  map[v1.Hash]*gnode
	blobs     []v1.Descriptor
	blobSeen  map[v1.Hash]bool
	referrers map[v1.Hash][]v1.Descriptor // subject → referrers
	subjects  []v1.Descriptor             // keys of referrers, in order
	legacy    []legacyTag
}

func (g *graph) walk(ctx context.Context, d v1.Descriptor, withReferrers bool) (*gnode, error) {
	if n, ok := g.byDigest[d.Digest]; ok {
		return n, nil
	}
	raw, err := g.src.Manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	m, err := store.ParseManifest(d, raw)
	if err != nil {
		return nil, err
	}
	d.MediaType = m.MediaType
	n := &gnode{d: d, raw: raw, m: m}
	g.byDigest[d.Digest] = n
	if m.MediaType.IsIndex() {
		for _, c := range m.Manifests {
			if !(c.MediaType.IsImage() || c.MediaType.IsIndex()) {
				continue
			}
			cn, err := g.walk(ctx, c, withReferrers)
			if err != nil {
				return nil, fmt.Errorf("manifest %s of %s: %w", c.Digest, d.Digest, err)
			}
			n.children = append(n.children, cn)
		}
	} else {
		var bs []v1.Descriptor
		if m.Config != nil {
			bs = append(bs, *m.Config)
		}
		for _, l := range m.Layers {
			if len(l.URLs) > 0 || strings.Contains(string(l.MediaType), "foreign") || strings.Contains(string(l.MediaType), "nondistributable") {
				continue // foreign layers live elsewhere by design
			}
			bs = append(bs, l)
		}
		for _, b := range bs {
			b = v1.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size}
			n.blobs = append(n.blobs, b)
			if !g.blobSeen[b.Digest] {
				g.blobSeen[b.Digest] = true
				g.blobs = append(g.blobs, b)
			}
		}
	}
	g.nodes = append(g.nodes, n)
	if !withReferrers {
		return n, nil
	}
	rs, err := g.src.Referrers(ctx, d, "")
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", d.Digest, err)
	}
	for _, r := range rs {
		rn, err := g.walk(ctx, v1.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size}, true)
		if err != nil {
			return nil, fmt.Errorf("referrer %s of %s: %w", r.Digest, d.Digest, err)
		}
		if rn.m.Subject == nil || rn.m.Subject.Digest != d.Digest {
			continue // listed by a stale index; not a referrer of d
		}
		if _, ok := g.referrers[d.Digest]; !ok {
			g.subjects = append(g.subjects, d)
		}
		g.referrers[d.Digest] = append(g.referrers[d.Digest], store.ReferrerDescriptor(rn.d, rn.m))
	}
	return n, nil
}

// walkLegacy adds cosign's legacy tags (sha256-<hex>.sig, .att, .sbom) of
// every manifest in the graph.
func (g *graph) walkLegacy(ctx context.Context) error {
	tags, err := g.src.Tags(ctx)
	if err != nil || len(tags) == 0 {
		return nil // listing tags is best effort: some registries refuse it
	}
	have := map[string]bool{}
	for _, t := range tags {
		if store.IsFallbackTag(t) {
			have[t] = true
		}
	}
	for i := 0; i < len(g.nodes); i++ { // grows while we walk
		for _, suffix := range []string{".sig", ".att", ".sbom"} {
			t := store.FallbackTag(g.nodes[i].d.Digest) + suffix
			if !have[t] {
				continue
			}
			delete(have, t)
			d, err := g.src.Resolve(ctx, t, "")
			if err != nil {
				return fmt.Errorf("reading %s: %w", t, err)
			}
			n, err := g.walk(ctx, d, true)
			if err != nil {
				return fmt.Errorf("reading %s: %w", t, err)
			}
			g.legacy = append(g.legacy, legacyTag{tag: t, n: n})
		}
	}
	return nil
}

// Copy copies root, found in src, and everything below it to dst, and tags
// it tag there (last). Unless o.NoReferrers, every manifest's referrers and
// legacy cosign tags come along.
func Copy(ctx context.Context, src, dst store.Store, root v1.Descriptor, tag string, o Options) (_ Result, err error) {
	// A failed copy into a layout leaves none of the blobs it wrote.
	if d, ok := dst.(interface{ Discard() }); ok {
		defer func() {
			if err != nil {
				d.Discard()
			}
		}()
	}
	g := &graph{src: src, byDigest: map[v1.Hash]*gnode{}, blobSeen: map[v1.Hash]bool{}, referrers: map[v1.Hash][]v1.Descriptor{}}
	rootNode, err := g.walk(ctx, root, !o.NoReferrers)
	if err != nil {
		return Result{}, fmt.Errorf("reading %s: %w", src, err)
	}
	if !o.NoReferrers {
		if err := g.walkLegacy(ctx); err != nil {
			return Result{}, err
		}
	}
	res := Result{Descriptor: rootNode.d, Blobs: len(g.blobs), Manifests: len(g.nodes)}
	have, tagged := g.present(ctx, dst, rootNode, tag, o)
	if err := copyBlobs(ctx, g, dst, have, o, &res); err != nil {
		return res, err
	}
	for _, n := range g.nodes {
		if have[n.d.Digest] {
			res.ManifestsSkipped++
			continue
		}
		if err := dst.PutManifest(ctx, n.d, n.raw); err != nil {
			return res, fmt.Errorf("writing manifest %s to %s: %w", n.d.Digest, dst, err)
		}
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(Jobs(o.Jobs))
	for _, s := range g.subjects {
		rs := g.referrers[s.Digest]
		res.Referrers = append(res.Referrers, rs...)
		eg.Go(func() error {
			if err := dst.AddReferrers(ectx, s, rs); err != nil {
				return fmt.Errorf("recording referrers of %s in %s: %w", s.Digest, dst, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return res, err
	}
	for _, l := range g.legacy {
		res.Referrers = append(res.Referrers, store.ReferrerDescriptor(l.n.d, l.n.m))
		if tagged[l.tag] {
			continue
		}
		if err := dst.Tag(ctx, l.n.d, l.n.raw, l.tag); err != nil {
			return res, fmt.Errorf("tagging %s in %s: %w", l.tag, dst, err)
		}
	}
	if tag != "" && tagged[tag] {
		return res, nil
	}
	if err := dst.Tag(ctx, rootNode.d, rootNode.raw, tag); err != nil {
		return res, fmt.Errorf("tagging %s in %s: %w", tag, dst, err)
	}
	return res, nil
}

// ManifestChecker is a destination that tells with one request whether it
// holds a manifest, or whether a tag names it: a registry. A registry accepts
// a manifest only once everything it references is there (blobs, child
// manifests), so a manifest it holds needs none of its blobs or children
// checked or sent — re-pushing an unchanged image is one HEAD, as with crane
// and oras-go, which skip the same way. Local destinations do not implement
// it: checking their blobs costs a stat each, and a crashed gc may have left
// a manifest without its blobs.
type ManifestChecker interface {
	// HasManifest reports whether tag names d, or with tag "", whether
	// the destination holds d. An error counts as "no": the check only
	// saves work.
	HasManifest(ctx context.Context, d v1.Descriptor, tag string) bool
}

// present asks a ManifestChecker destination which manifests of the graph it
// has: the root (under tag, when given), every referrer and legacy-tagged
// manifest, and the children of those it lacks, a level at a time, each
// level in parallel. have holds every manifest and blob below a manifest it
// has; tagged the tags that already name their manifest.
func (g *graph) present(ctx context.Context, dst store.Store, root *gnode, tag string, o Options) (have map[v1.Hash]bool, tagged map[string]bool) {
	have, tagged = map[v1.Hash]bool{}, map[string]bool{}
	mc, ok := dst.(ManifestChecker)
	if !ok {
		return have, tagged
	}
	type check struct {
		n   *gnode
		tag string
	}
	level := []check{{root, tag}}
	queued := map[v1.Hash]bool{root.d.Digest: true}
	for _, sub := range g.subjects {
		for _, r := range g.referrers[sub.Digest] {
			if n := g.byDigest[r.Digest]; n != nil && !queued[r.Digest] {
				queued[r.Digest] = true
				level = append(level, check{n, ""})
			}
		}
	}
	for _, l := range g.legacy {
		level = append(level, check{l.n, l.tag})
	}
	var mark func(n *gnode)
	mark = func(n *gnode) {
		have[n.d.Digest] = true
		for _, b := range n.blobs {
			have[b.Digest] = true
		}
		for _, c := range n.children {
			mark(c)
		}
	}
	for len(level) > 0 {
		found := make([]bool, len(level))
		var eg errgroup.Group
		eg.SetLimit(Jobs(o.Jobs))
		for i, c := range level {
			eg.Go(func() error {
				found[i] = mc.HasManifest(ctx, c.n.d, c.tag)
				return nil
			})
		}
		_ = eg.Wait() // the checks return no errors
		var next []check
		for i, c := range level {
			if found[i] {
				mark(c.n)
				if c.tag != "" {
					tagged[c.tag] = true
				}
				continue
			}
			for _, ch := range c.n.children {
				if !queued[ch.d.Digest] {
					queued[ch.d.Digest] = true
					next = append(next, check{ch, ""})
				}
			}
		}
		level = next
	}
	return have, tagged
}

// Jobs is n, or the default 4 when n is not positive.
func Jobs(n int) int {
	if n <= 0 {
		return 4
	}
	return n
}

// copyBlobs copies the blobs of the graph dst lacks; those below a manifest
// it has (have) count as skipped without a check.
func copyBlobs(ctx context.Context, g *graph, dst store.Store, have map[v1.Hash]bool, o Options, res *Result) error {
	var uploaded, skipped atomic.Int64
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(Jobs(o.Jobs))
	p := o.Progress
	for _, b := range g.blobs {
		if have[b.Digest] {
			skipped.Add(b.Size)
			mu.Lock()
			res.BlobsSkipped++
			mu.Unlock()
			reportSkip(p, o.Op, b)
			continue
		}
		eg.Go(func() error {
			has, err := dst.HasBlob(ectx, b)
			if err != nil {
				return fmt.Errorf("checking blob %s in %s: %w", b.Digest, dst, err)
			}
			if has {
				skipped.Add(b.Size)
				mu.Lock()
				res.BlobsSkipped++
				mu.Unlock()
				reportSkip(p, o.Op, b)
				return nil
			}
			open := func() (io.ReadCloser, error) {
				var rc io.ReadCloser
				var err error
				if raw, ok := g.src.(store.RawBlobSource); ok {
					rc, err = raw.RawBlob(ectx, b)
				} else {
					rc, err = g.src.Blob(ectx, b)
				}
				if err != nil {
					return nil, err
				}
				if p == nil {
					return rc, nil // a bare *os.File lets net/http use sendfile
				}
				return store.ReadCloser{Reader: p.Reader(rc, o.Op, b.Digest.String(), b.Size), Closer: rc}, nil
			}
			mounted, err := dst.PutBlob(ectx, b, open, o.MountFrom)
			var de *store.DigestError
			if errors.As(err, &de) {
				return de // it names the blob and where it came from
			}
			if err != nil {
				return fmt.Errorf("copying blob %s to %s: %w", b.Digest, dst, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if mounted {
				skipped.Add(b.Size)
				res.BlobsSkipped++
				res.BlobsMounted++
				reportSkip(p, o.Op, b)
				return nil
			}
			uploaded.Add(b.Size)
			res.BlobsUploaded++
			p.Report(progress.Event{Op: o.Op, Name: b.Digest.String(), Done: b.Size, Total: b.Size, Finished: true})
			return nil
		})
	}
	err := eg.Wait()
	res.Uploaded, res.Skipped = uploaded.Load(), skipped.Load()
	return err
}

// reportSkip reports a blob that needed no transfer.
func reportSkip(p progress.Func, op string, d v1.Descriptor) {
	p.Report(progress.Event{Op: op, Name: d.Digest.String(), Done: d.Size, Total: d.Size, Finished: true, Skipped: true})
}
