package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prebake/prebake/registry/reference"
	"github.com/prebake/prebake/registry/store"
)

// manifestAccept lists the manifest media types prebake reads.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ", ")

// repoClient speaks the OCI distribution API to one repository. Auth is
// go-containerregistry's transport (Docker config keychain, bearer tokens);
// everything above it is plain HTTP so that prebake controls what is sent:
// HEAD before upload, cross-repository mounts, one streaming PUT per blob,
// digest checks on every byte read.
type repoClient struct {
	repo   name.Repository
	base   string // https://host/v2/<repo>
	client *http.Client
}

var (
	baseTransportOnce sync.Once
	baseTransport     http.RoundTripper
)

// defaultTransport is http.DefaultTransport with enough idle connections per
// host for parallel blob transfers and 64 KiB buffers (the default 4 KiB
// would send a streamed upload in 4 KiB writes). Not larger: each connection
// allocates both, and a blob's body is read in 1 MiB reads that bypass the
// read buffer anyway; at 256 KiB the buffers of a pull's five connections
// were enough to start GC cycles whose assists showed in its profile.
func defaultTransport() http.RoundTripper {
	baseTransportOnce.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		t.WriteBufferSize = 64 << 10
		t.ReadBufferSize = 64 << 10
		t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		baseTransport = t
	})
	return baseTransport
}

// newRepoClient authenticates against ref's registry for scope (transport.PullScope
// or transport.PushScope); extra lists further repositories to pull from (mount
// sources).
func newRepoClient(ctx context.Context, ref reference.Reference, scope string, o Options, extra ...name.Repository) (*repoClient, error) {
	repo, err := name.NewRepository(ref.Name, o.NameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", ref, err)
	}
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := kc.Resolve(repo.Registry)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	base := o.Transport
	if base == nil {
		base = defaultTransport()
	}
	scopes := []string{repo.Scope(scope)}
	for _, e := range extra {
		scopes = append(scopes, e.Scope(transport.PullScope))
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, base, scopes)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", repo.RegistryStr(), err)
	}
	return &repoClient{
		repo:   repo,
		base:   "https://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr(),
		client: &http.Client{Transport: rt},
	}, nil
}

func (c *repoClient) do(ctx context.Context, method, u string, body io.Reader, size int64, hdr map[string]string) (*http.Response, error) {
	// Reads are retried on network errors and 429/5xx: some registries
	// (distribution's filesystem driver) answer 500 while a tag they read is
	// being rewritten. Writes carry a streamed body and are not replayed.
	idempotent := body == nil && (method == http.MethodGet || method == http.MethodHead)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.ContentLength = size
			if size == 0 {
				req.Body = http.NoBody
			}
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.client.Do(req)
		retry := idempotent && attempt < 4 && ctx.Err() == nil &&
			(err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500)
		if !retry {
			return resp, err
		}
		if resp != nil {
			drain(resp)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 3
	}
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func (c *repoClient) url(parts ...string) string { return c.base + "/" + strings.Join(parts, "/") }

// httpError turns a non-expected response into an error; 404 wraps store.ErrNotFound.
func httpError(resp *http.Response, what string, codes ...int) error {
	err := transport.CheckError(resp, codes...)
	if err == nil {
		return nil
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: %w: %v", what, store.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// headManifest resolves a tag or digest to its descriptor without the body
// (falling back to GET when the registry gives no digest).
func (c *repoClient) headManifest(ctx context.Context, ref string) (v1.Descriptor, bool, error) {
	resp, err := c.do(ctx, http.MethodHead, c.url("manifests", ref), nil, 0, map[string]string{"Accept": manifestAccept})
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	drain(resp)
	if resp.StatusCode == http.StatusNotFound {
		return v1.Descriptor{}, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return v1.Descriptor{}, false, fmt.Errorf("HEAD %s: %s", c.url("manifests", ref), resp.Status)
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil || resp.ContentLength < 0 {
		d, _, err := c.getManifest(ctx, ref, nil)
		if errors.Is(err, store.ErrNotFound) {
			return v1.Descriptor{}, false, nil
		}
		return d, err == nil, err
	}
	return v1.Descriptor{MediaType: types.MediaType(resp.Header.Get("Content-Type")), Digest: h, Size: resp.ContentLength}, true, nil
}

// getManifest fetches a manifest by tag or digest. With want set (a fetch by
// digest) the body must hash to want.Digest; by tag the descriptor is
// computed from the body.
func (c *repoClient) getManifest(ctx context.Context, ref string, want *v1.Descriptor) (v1.Descriptor, []byte, error) {
	u := c.url("manifests", ref)
	resp, err := c.do(ctx, http.MethodGet, u, nil, 0, map[string]string{"Accept": manifestAccept})
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	defer drain(resp)
	if err := httpError(resp, "fetching manifest "+u, http.StatusOK); err != nil {
		return v1.Descriptor{}, nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, store.MaxManifestSize+1))
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("fetching manifest %s: %w", u, err)
	}
	if len(raw) > store.MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s is larger than %d bytes", u, store.MaxManifestSize)
	}
	d := store.DescribeManifest(raw, types.MediaType(resp.Header.Get("Content-Type")))
	u = resp.Request.URL.String() // with the scheme actually used
	if want != nil {
		if err := store.CheckDigest("manifest", u, *want, d); err != nil {
			return v1.Descriptor{}, nil, err
		}
	} else if hd := resp.Header.Get("Docker-Content-Digest"); hd != "" && strings.HasPrefix(hd, "sha256:") && hd != d.Digest.String() {
		return v1.Descriptor{}, nil, &store.DigestError{What: "manifest", Source: u, Expected: hd, Actual: d.Digest.String(), ExpectedSize: d.Size, ActualSize: d.Size}
	}
	return d, raw, nil
}

func (c *repoClient) putManifest(ctx context.Context, ref string, d v1.Descriptor, raw []byte) (subjectAck bool, err error) {
	u := c.url("manifests", ref)
	resp, err := c.do(ctx, http.MethodPut, u, bytes.NewReader(raw), int64(len(raw)), map[string]string{"Content-Type": string(d.MediaType)})
	if err != nil {
		return false, err
	}
	defer drain(resp)
	if err := httpError(resp, "pushing manifest "+u, http.StatusCreated, http.StatusOK, http.StatusAccepted); err != nil {
		return false, err
	}
	return resp.Header.Get("OCI-Subject") != "", nil
}

// headBlob reports whether the repository holds blob d.
func (c *repoClient) headBlob(ctx context.Context, d v1.Descriptor) (bool, error) {
	u := c.url("blobs", d.Digest.String())
	resp, err := c.do(ctx, http.MethodHead, u, nil, 0, nil)
	if err != nil {
		return false, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.ContentLength < 0 || d.Size < 0 || resp.ContentLength == d.Size, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, httpError(resp, "HEAD "+u, http.StatusOK)
}

// getBlob streams blob d; the reader fails with a store.DigestError on the read
// that completes a body of the wrong digest or size.
func (c *repoClient) getBlob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	u := c.url("blobs", d.Digest.String())
	resp, err := c.do(ctx, http.MethodGet, u, nil, 0, nil)
	if err != nil {
		return nil, err
	}
	if err := httpError(resp, "fetching blob "+u, http.StatusOK); err != nil {
		drain(resp)
		return nil, err
	}
	return store.NewVerifier(resp.Body, d, "blob", resp.Request.URL.String()), nil
}

// startUpload opens an upload session, mounting from fromRepo when given.
// mounted is true when the registry mounted the blob (nothing to send).
func (c *repoClient) startUpload(ctx context.Context, d v1.Descriptor, fromRepo string) (location string, mounted bool, err error) {
	u := c.base + "/blobs/uploads/"
	if fromRepo != "" {
		u += "?" + url.Values{"mount": {d.Digest.String()}, "from": {fromRepo}}.Encode()
	}
	resp, err := c.do(ctx, http.MethodPost, u, http.NoBody, 0, nil)
	if err != nil {
		return "", false, err
	}
	defer drain(resp)
	if err := httpError(resp, "starting upload "+u, http.StatusCreated, http.StatusAccepted); err != nil {
		return "", false, err
	}
	if resp.StatusCode == http.StatusCreated {
		return "", true, nil
	}
	loc, err := resp.Location()
	if err != nil {
		return "", false, fmt.Errorf("starting upload %s: no Location: %w", u, err)
	}
	return loc.String(), false, nil
}

// uploadBlob sends r as the whole of blob d in one PUT.
func (c *repoClient) uploadBlob(ctx context.Context, location string, d v1.Descriptor, r io.Reader) error {
	loc, err := url.Parse(location)
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", d.Digest.String())
	loc.RawQuery = q.Encode()
	resp, err := c.do(ctx, http.MethodPut, loc.String(), r, d.Size, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("uploading blob %s: %w", d.Digest, err)
	}
	defer drain(resp)
	return httpError(resp, "uploading blob "+d.Digest.String(), http.StatusCreated, http.StatusAccepted, http.StatusNoContent)
}

// tags lists every tag of the repository, following Link pagination.
func (c *repoClient) tags(ctx context.Context) ([]string, error) {
	var out []string
	u := c.url("tags", "list") + "?n=1000"
	for u != "" {
		resp, err := c.do(ctx, http.MethodGet, u, nil, 0, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusNotFound {
			drain(resp)
			return nil, nil
		}
		if err := httpError(resp, "listing tags "+u, http.StatusOK); err != nil {
			drain(resp)
			return nil, err
		}
		var tl struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, store.MaxManifestSize)).Decode(&tl)
		next := nextLink(resp)
		drain(resp)
		if err != nil {
			return nil, fmt.Errorf("listing tags %s: %w", u, err)
		}
		out = append(out, tl.Tags...)
		u = next
	}
	return out, nil
}

// referrers asks the OCI 1.1 referrers API. ok is false when the registry does
// not have it (anything but 200 with an index).
func (c *repoClient) referrers(ctx context.Context, subject v1.Hash, artifactType string) (ds []v1.Descriptor, ok bool, err error) {
	u := c.url("referrers", subject.String())
	if artifactType != "" {
		u += "?" + url.Values{"artifactType": {artifactType}}.Encode()
	}
	for u != "" {
		resp, err := c.do(ctx, http.MethodGet, u, nil, 0, map[string]string{"Accept": string(types.OCIImageIndex)})
		if err != nil {
			return nil, false, err
		}
		if resp.StatusCode != http.StatusOK {
			drain(resp)
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusBadRequest {
				return nil, false, nil
			}
			return nil, false, httpError(resp, "listing referrers "+u, http.StatusOK)
		}
		var im v1.IndexManifest
		err = json.NewDecoder(io.LimitReader(resp.Body, store.MaxManifestSize)).Decode(&im)
		next := nextLink(resp)
		drain(resp)
		if err != nil {
			// A registry without the API may answer 200 with something else.
			return nil, false, nil
		}
		ds = append(ds, im.Manifests...)
		u = next
	}
	return ds, true, nil
}

// nextLink returns the absolute URL of a `Link: <…>; rel="next"` header.
func nextLink(resp *http.Response) string {
	l := resp.Header.Get("Link")
	if l == "" {
		return ""
	}
	i, j := strings.Index(l, "<"), strings.Index(l, ">")
	if i < 0 || j < i || !strings.Contains(l[j:], `rel="next"`) {
		return ""
	}
	next, err := resp.Request.URL.Parse(l[i+1 : j])
	if err != nil {
		return ""
	}
	return next.String()
}
