package datasource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// IMDS is EC2's instance metadata service, version 2 (session tokens):
// PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds, then
// GET /latest/user-data with X-aws-ec2-metadata-token. A 404 on user-data
// means the instance has none; a 401 means the token expired (fetched anew
// once). Connection errors are retried until ctx ends: the agent may start
// before the network is up.
type IMDS struct {
	// Endpoint defaults to http://169.254.169.254.
	Endpoint string
	// Client defaults to one with a 2 s timeout per request, no proxy (the
	// metadata service is link-local).
	Client *http.Client
	// Retry is the pause between attempts while the service is unreachable
	// (default 200 ms).
	Retry time.Duration
}

// Headers and TTL of IMDSv2.
const (
	imdsTTLHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	imdsTokenHeader = "X-aws-ec2-metadata-token"
	imdsTTL         = "300"
)

func (m *IMDS) Name() string { return "ec2" }

func (m *IMDS) UserData(ctx context.Context) ([]byte, error) {
	ep := strings.TrimRight(m.Endpoint, "/")
	if ep == "" {
		ep = "http://169.254.169.254"
	}
	c := m.Client
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	retry := m.Retry
	if retry <= 0 {
		retry = 200 * time.Millisecond
	}
	var last error
	for {
		b, err := m.once(ctx, c, ep)
		if err == nil || !errors.Is(err, errTransient) {
			return b, err
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: ec2 metadata service unreachable until %v (last: %v)", ErrNotFound, ctx.Err(), last)
		case <-time.After(retry):
		}
	}
}

var errTransient = errors.New("transient")

func (m *IMDS) once(ctx context.Context, c *http.Client, ep string) ([]byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		token, err := m.token(ctx, c, ep)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep+"/latest/user-data", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set(imdsTokenHeader, token)
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%w: GET user-data: %v", errTransient, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxSize+1))
		resp.Body.Close()
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: GET user-data: %v", errTransient, err)
		case resp.StatusCode == http.StatusOK:
			if len(body) > MaxSize {
				return nil, fmt.Errorf("ec2 user-data: over %d bytes", MaxSize)
			}
			if len(body) == 0 {
				return nil, fmt.Errorf("%w: ec2 user-data is empty", ErrNoUserData)
			}
			return body, nil
		case resp.StatusCode == http.StatusNotFound:
			return nil, fmt.Errorf("%w: the ec2 metadata service has no user-data for this instance", ErrNoUserData)
		case resp.StatusCode == http.StatusUnauthorized:
			continue // token expired between the PUT and the GET: once more
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			return nil, fmt.Errorf("%w: GET user-data: %s", errTransient, resp.Status)
		default:
			return nil, fmt.Errorf("ec2 metadata service: GET user-data: %s", resp.Status)
		}
	}
	return nil, fmt.Errorf("ec2 metadata service: GET user-data refused a fresh token twice (401)")
}

func (m *IMDS) token(ctx context.Context, c *http.Client, ep string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, ep+"/latest/api/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(imdsTTLHeader, imdsTTL)
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: PUT token: %v", errTransient, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: PUT token: %v", errTransient, err)
	case resp.StatusCode == http.StatusOK && len(b) > 0:
		return strings.TrimSpace(string(b)), nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return "", fmt.Errorf("%w: PUT token: %s", errTransient, resp.Status)
	default:
		// 403: IMDS disabled or IMDSv2 tokens refused; 400: bad request.
		return "", fmt.Errorf("%w: ec2 metadata service: PUT token: %s", ErrNotFound, resp.Status)
	}
}

// OnEC2 reports whether the machine's DMI data says EC2 (as cloud-init's
// ds-identify checks): sys_vendor "Amazon EC2", or a product UUID or
// hypervisor UUID starting with ec2.
func OnEC2(sysfs string) bool {
	read := func(p string) string {
		b, _ := os.ReadFile(sysfs + p)
		return strings.ToLower(strings.TrimSpace(string(b)))
	}
	return read("/class/dmi/id/sys_vendor") == "amazon ec2" ||
		strings.HasPrefix(read("/class/dmi/id/product_uuid"), "ec2") ||
		strings.HasPrefix(read("/hypervisor/uuid"), "ec2")
}
