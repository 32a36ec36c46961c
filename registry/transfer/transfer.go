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
	// Manifests is how many manifests were written (root, children, referrers).
	Manifests int
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
	d   v1.Descriptor
	raw []byte
	m   *store.Parsed
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
			if _, err := g.walk(ctx, c, withReferrers); err != nil {
				return nil, fmt.Errorf("manifest %s of %s: %w", c.Digest, d.Digest, err)
			}
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
			if !g.blobSeen[b.Digest] {
				g.blobSeen[b.Digest] = true
				g.blobs = append(g.blobs, v1.Descriptor{MediaType: b.MediaType, Digest: b.Digest, Size: b.Size})
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
	res := Result{Descriptor: rootNode.d, Blobs: len(g.blobs)}
	if err := copyBlobs(ctx, g, dst, o, &res); err != nil {
		return res, err
	}
	for _, n := range g.nodes {
		if err := dst.PutManifest(ctx, n.d, n.raw); err != nil {
			return res, fmt.Errorf("writing manifest %s to %s: %w", n.d.Digest, dst, err)
		}
		res.Manifests++
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
		if err := dst.Tag(ctx, l.n.d, l.n.raw, l.tag); err != nil {
			return res, fmt.Errorf("tagging %s in %s: %w", l.tag, dst, err)
		}
		res.Referrers = append(res.Referrers, store.ReferrerDescriptor(l.n.d, l.n.m))
	}
	if err := dst.Tag(ctx, rootNode.d, rootNode.raw, tag); err != nil {
		return res, fmt.Errorf("tagging %s in %s: %w", tag, dst, err)
	}
	return res, nil
}

// Jobs is n, or the default 4 when n is not positive.
func Jobs(n int) int {
	if n <= 0 {
		return 4
	}
	return n
}

func copyBlobs(ctx context.Context, g *graph, dst store.Store, o Options, res *Result) error {
	var uploaded, skipped atomic.Int64
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(Jobs(o.Jobs))
	p := o.Progress
	for _, b := range g.blobs {
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
