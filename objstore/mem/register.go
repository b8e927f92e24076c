package mem

import (
	"context"
	"net/url"

	"github.com/tiercel/tiercel/objstore"
)

func init() {
	objstore.Register("mem", func(_ context.Context, u *url.URL) (objstore.Bucket, error) { return New(u.Host + u.Path), nil })
}
