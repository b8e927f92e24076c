package fs

import (
	"context"
	"fmt"
	"net/url"

	"github.com/tiercel/tiercel/objstore"
)

func init() {
	objstore.Register("file", func(_ context.Context, u *url.URL) (objstore.Bucket, error) {
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("objstore: file URL %q names host %q; want file:///absolute/path", u.String(), u.Host)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("objstore: file URL %q has no path", u.String())
		}
		return New(u.Path)
	})
}
