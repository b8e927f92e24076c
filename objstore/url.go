package objstore

import (
	"context"
	"fmt"
	"net/url"
)

// Opener builds a Bucket from a parsed URL; backends register one per scheme.
type Opener func(ctx context.Context, u *url.URL) (Bucket, error)

var openers = map[string]Opener{}

// Register makes a scheme available to Open (called from backend packages'
// init or explicitly by the binary's wiring).
func Register(scheme string, o Opener) { openers[scheme] = o }

// Open returns the bucket a URL names: file:///path, mem://name, and the
// cloud schemes of the backends linked in (s3://, gs://, azblob://). The
// bucket retries retriable errors with DefaultRetryPolicy.
func Open(ctx context.Context, raw string) (Bucket, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("objstore: bad URL %q: %w", raw, err)
	}
	o, ok := openers[u.Scheme]
	if !ok {
		return nil, fmt.Errorf("objstore: unsupported URL scheme %q in %q (want file://, mem://, s3://, gs:// or azblob://)", u.Scheme, raw)
	}
	b, err := o(ctx, u)
	if err != nil {
		return nil, err
	}
	return WithRetries(b, DefaultRetryPolicy), nil
}
