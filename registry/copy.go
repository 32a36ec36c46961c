package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/prebake/prebake/internal/progress"
)

// CopyResult reports what a Copy or Push moved.
type CopyResult struct {
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
func (r CopyResult) Summary() string {
	s := fmt.Sprintf("uploaded %s, skipped %s (%d blobs: %d uploaded, %d skipped",
		humanBytes(r.Uploaded), humanBytes(r.Skipped), r.Blobs, r.BlobsUploaded, r.BlobsSkipped)
	if r.BlobsMounted > 0 {
		s += fmt.Sprintf(", %d mounted", r.BlobsMounted)
	}
	return s + ")"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Copy copies the image or index src names, with all its referrers (SBOMs,
// signatures, channel records, revocations) and cosign's legacy
// "sha256-<hex>.sig/.att/.sbom" tags, to dst — between any of layouts, the
// store and registries. Blobs move in parallel (o.Jobs) as stored (never
// recompressed), blobs dst already has are skipped after a HEAD, and within
// one registry they are mounted across repositories. Manifests go after their
// blobs, children before parents, referrers after their subject, and dst's
// tag last, so the tag never names an incomplete graph. A dst with neither tag
// nor digest (possible for oci: layouts; ParseReference gives registry and
// store references "latest") gets src's tag. o.Progress receives "upload"
// events.
func Copy(ctx context.Context, src, dst Reference, o Options) (CopyResult, error) {
	se, err := openEndpoint(ctx, src, o, false)
	if err != nil {
		return CopyResult{}, err
	}
	root, err := se.resolve(ctx, src.Tag, src.Digest)
	if err != nil {
		return CopyResult{}, err
	}
	de, err := openEndpoint(ctx, dst, o, true, src)
	if err != nil {
		return CopyResult{}, err
	}
	tag, err := dstTag(src, dst, root)
	if err != nil {
		return CopyResult{}, err
	}
	return copyGraph(ctx, se, de, root, tag, copyOptions{Options: o, op: "upload", mountFrom: mountSource(src, dst, o)})
}

func dstTag(src, dst Reference, root v1.Descriptor) (string, error) {
	if dst.Digest != "" && dst.Digest != root.Digest.String() {
		return "", &DigestError{What: "manifest", Source: src.String(), Expected: dst.Digest, Actual: root.Digest.String()}
	}
	if dst.Tag == "" && dst.Digest == "" {
		return src.Tag, nil
	}
	return dst.Tag, nil
}

// mountSource is src's repository when src and dst are repositories of the
// same registry.
func mountSource(src, dst Reference, o Options) string {
	if src.Transport != TransportRemote || dst.Transport != TransportRemote {
		return ""
	}
	s, err1 := name.NewRepository(src.Name, o.nameOptions()...)
	d, err2 := name.NewRepository(dst.Name, o.nameOptions()...)
	if err1 != nil || err2 != nil || s.RegistryStr() != d.RegistryStr() || s.RepositoryStr() == d.RepositoryStr() {
		return ""
	}
	return s.RepositoryStr()
}

// Push writes root (an image or index held in memory, e.g. fresh from the
// builder) and its referrers to dst, like Copy: layers are streamed as stored
// (layer.Compressed), existing blobs skipped, the tag written last.
func Push(ctx context.Context, dst Reference, root Artifact, referrers []Artifact, o Options) (CopyResult, error) {
	se, err := newMemEndpoint(root, referrers)
	if err != nil {
		return CopyResult{}, err
	}
	de, err := openEndpoint(ctx, dst, o, true)
	if err != nil {
		return CopyResult{}, err
	}
	if dst.Digest != "" && dst.Digest != se.root.Digest.String() {
		return CopyResult{}, &DigestError{What: "manifest", Source: dst.String(), Expected: dst.Digest, Actual: se.root.Digest.String()}
	}
	return copyGraph(ctx, se, de, se.root, dst.Tag, copyOptions{Options: o, op: "upload"})
}

type copyOptions struct {
	Options
	op        string // progress Op: "upload" or "download"
	mountFrom string // repository to mount blobs from (same registry)
	// noReferrers copies the graph alone.
	noReferrers bool
}

type gnode struct {
	d   v1.Descriptor
	raw []byte
	m   *parsedManifest
}

type legacyTag struct {
	tag string
	n   *gnode
}

// graph is everything below a root, in push order.
type graph struct {
	src       endpoint
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
	raw, err := g.src.manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(d, raw)
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
	rs, err := g.src.referrers(ctx, d, "")
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
		g.referrers[d.Digest] = append(g.referrers[d.Digest], referrerDescriptor(rn.d, rn.m))
	}
	return n, nil
}

// walkLegacy adds cosign's legacy tags (sha256-<hex>.sig, .att, .sbom) of
// every manifest in the graph.
func (g *graph) walkLegacy(ctx context.Context) error {
	tags, err := g.src.tags(ctx)
	if err != nil || len(tags) == 0 {
		return nil // listing tags is best effort: some registries refuse it
	}
	have := map[string]bool{}
	for _, t := range tags {
		if isFallbackTag(t) {
			have[t] = true
		}
	}
	for i := 0; i < len(g.nodes); i++ { // grows while we walk
		for _, suffix := range []string{".sig", ".att", ".sbom"} {
			t := fallbackTag(g.nodes[i].d.Digest) + suffix
			if !have[t] {
				continue
			}
			delete(have, t)
			d, err := g.src.resolve(ctx, t, "")
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

func copyGraph(ctx context.Context, src, dst endpoint, root v1.Descriptor, tag string, o copyOptions) (CopyResult, error) {
	g := &graph{src: src, byDigest: map[v1.Hash]*gnode{}, blobSeen: map[v1.Hash]bool{}, referrers: map[v1.Hash][]v1.Descriptor{}}
	rootNode, err := g.walk(ctx, root, !o.noReferrers)
	if err != nil {
		return CopyResult{}, fmt.Errorf("reading %s: %w", src, err)
	}
	if !o.noReferrers {
		if err := g.walkLegacy(ctx); err != nil {
			return CopyResult{}, err
		}
	}
	res := CopyResult{Descriptor: rootNode.d, Blobs: len(g.blobs)}
	if err := copyBlobs(ctx, g, dst, o, &res); err != nil {
		return res, err
	}
	for _, n := range g.nodes {
		if err := dst.putManifest(ctx, n.d, n.raw); err != nil {
			return res, fmt.Errorf("writing manifest %s to %s: %w", n.d.Digest, dst, err)
		}
		res.Manifests++
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs(o.Jobs))
	for _, s := range g.subjects {
		rs := g.referrers[s.Digest]
		res.Referrers = append(res.Referrers, rs...)
		eg.Go(func() error {
			if err := dst.addReferrers(ectx, s, rs); err != nil {
				return fmt.Errorf("recording referrers of %s in %s: %w", s.Digest, dst, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return res, err
	}
	for _, l := range g.legacy {
		if err := dst.tag(ctx, l.n.d, l.n.raw, l.tag); err != nil {
			return res, fmt.Errorf("tagging %s in %s: %w", l.tag, dst, err)
		}
		res.Referrers = append(res.Referrers, referrerDescriptor(l.n.d, l.n.m))
	}
	if err := dst.tag(ctx, rootNode.d, rootNode.raw, tag); err != nil {
		return res, fmt.Errorf("tagging %s in %s: %w", tag, dst, err)
	}
	return res, nil
}

func jobs(n int) int {
	if n <= 0 {
		return 4
	}
	return n
}

func copyBlobs(ctx context.Context, g *graph, dst endpoint, o copyOptions, res *CopyResult) error {
	var uploaded, skipped atomic.Int64
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(jobs(o.Jobs))
	p := o.Progress
	for _, b := range g.blobs {
		eg.Go(func() error {
			has, err := dst.hasBlob(ectx, b)
			if err != nil {
				return fmt.Errorf("checking blob %s in %s: %w", b.Digest, dst, err)
			}
			if has {
				skipped.Add(b.Size)
				mu.Lock()
				res.BlobsSkipped++
				mu.Unlock()
				reportSkip(p, o.op, b)
				return nil
			}
			open := func() (io.ReadCloser, error) {
				var rc io.ReadCloser
				var err error
				if raw, ok := g.src.(rawBlobSource); ok {
					rc, err = raw.rawBlob(ectx, b)
				} else {
					rc, err = g.src.blob(ectx, b)
				}
				if err != nil {
					return nil, err
				}
				if p == nil {
					return rc, nil // a bare *os.File lets net/http use sendfile
				}
				return readCloser{p.Reader(rc, o.op, b.Digest.String(), b.Size), rc}, nil
			}
			mounted, err := dst.putBlob(ectx, b, open, o.mountFrom)
			var de *DigestError
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
				reportSkip(p, o.op, b)
				return nil
			}
			uploaded.Add(b.Size)
			res.BlobsUploaded++
			p.Report(progress.Event{Op: o.op, Name: b.Digest.String(), Done: b.Size, Total: b.Size, Finished: true})
			return nil
		})
	}
	err := eg.Wait()
	res.Uploaded, res.Skipped = uploaded.Load(), skipped.Load()
	return err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// verifiedOK passes on the verifier's verdict (see verifiedReader).
func (r readCloser) verifiedOK() bool {
	v, ok := r.Closer.(verifiedReader)
	return ok && v.verifiedOK()
}
