// Package azure is the objstore backend for Azure Blob Storage (and
// Azurite): block blobs, create-only is If-None-Match: *, compare-and-swap
// is If-Match: <ETag>, both applied when the block list is committed.
package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/tiercel/tiercel/objstore"
)

// Bucket is a container with an optional key prefix.
type Bucket struct {
	client    *azblob.Client
	container string
	prefix    string
}

// NewFromConnectionString opens a container with a connection string
// (shared key; what Azurite uses).
func NewFromConnectionString(conn, containerName, prefix string) (*Bucket, error) {
	c, err := azblob.NewClientFromConnectionString(conn, nil)
	if err != nil {
		return nil, fmt.Errorf("objstore: azure connection string: %w", err)
	}
	return &Bucket{client: c, container: containerName, prefix: withSlash(prefix)}, nil
}

// NewWithDefaultCredential opens a container of account with the default
// Azure credential chain (environment, managed identity, CLI login).
func NewWithDefaultCredential(account, containerName, prefix string) (*Bucket, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("objstore: azure credential: %w", err)
	}
	c, err := azblob.NewClient(fmt.Sprintf("https://%s.blob.core.windows.net/", account), cred, nil)
	if err != nil {
		return nil, fmt.Errorf("objstore: azure client: %w", err)
	}
	return &Bucket{client: c, container: containerName, prefix: withSlash(prefix)}, nil
}

func withSlash(p string) string {
	if p != "" && !strings.HasSuffix(p, "/") {
		return p + "/"
	}
	return p
}

func (b *Bucket) Name() string { return "azblob://" + b.container + "/" + b.prefix }
func (b *Bucket) Close() error { return nil }

func (b *Bucket) blob(key string) *blob.Client {
	return b.client.ServiceClient().NewContainerClient(b.container).NewBlobClient(b.prefix + key)
}

func (b *Bucket) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	class := objstore.ErrPermanent
	var re *azcore.ResponseError
	switch {
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		class = objstore.ErrNotFound
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists):
		class = objstore.ErrPrecondition
	case errors.As(err, &re) && re.StatusCode == http.StatusPreconditionFailed:
		class = objstore.ErrPrecondition
	case errors.As(err, &re) && (re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500):
		class = objstore.ErrRetriable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		class = objstore.ErrRetriable
	case !errors.As(err, &re):
		class = objstore.ErrRetriable // transport failures
	}
	return objstore.Errorf(class, op, b.container, key, err)
}

func (b *Bucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.Attrs, error) {
	if length == 0 {
		attrs, err := b.Head(ctx, key)
		return io.NopCloser(bytes.NewReader(nil)), attrs, err
	}
	rng := blob.HTTPRange{Offset: max(offset, 0)}
	if length > 0 {
		rng.Count = length
	}
	resp, err := b.client.DownloadStream(ctx, b.container, b.prefix+key, &azblob.DownloadStreamOptions{Range: rng})
	if bloberror.HasCode(err, bloberror.InvalidRange) {
		// A range starting at or past the end is empty, not an error.
		attrs, herr := b.Head(ctx, key)
		return io.NopCloser(bytes.NewReader(nil)), attrs, herr
	}
	if err != nil {
		return nil, objstore.Attrs{}, b.classify("get", key, err)
	}
	// The response describes the version it streams.
	attrs := objstore.Attrs{}
	if resp.ETag != nil {
		attrs.Version = string(*resp.ETag)
	}
	if resp.ContentLength != nil {
		attrs.Size = *resp.ContentLength
	}
	if resp.ContentRange != nil {
		if i := strings.LastIndexByte(*resp.ContentRange, '/'); i >= 0 {
			fmt.Sscan((*resp.ContentRange)[i+1:], &attrs.Size)
		}
	}
	return resp.Body, attrs, nil
}

func (b *Bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	p, err := b.blob(key).GetProperties(ctx, nil)
	if err != nil {
		return objstore.Attrs{}, b.classify("head", key, err)
	}
	var size int64
	if p.ContentLength != nil {
		size = *p.ContentLength
	}
	v := ""
	if p.ETag != nil {
		v = string(*p.ETag)
	}
	return objstore.Attrs{Size: size, Version: v}, nil
}

// countingReader counts what UploadStream consumed, for the returned size.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	cond := &blob.ModifiedAccessConditions{}
	switch {
	case opts.IfNotExists:
		cond.IfNoneMatch = to(azcore.ETagAny)
	case opts.IfVersion != "":
		cond.IfMatch = to(azcore.ETag(opts.IfVersion))
	}
	cr := &countingReader{r: r}
	resp, err := b.client.UploadStream(ctx, b.container, b.prefix+key, cr, &azblob.UploadStreamOptions{
		BlockSize: 8 << 20, Concurrency: 4,
		// Each staged block carries a CRC64 the service verifies.
		TransactionalValidation: blob.TransferValidationTypeComputeCRC64(),
		AccessConditions:        &blob.AccessConditions{ModifiedAccessConditions: cond},
	})
	if err != nil {
		err = b.classify("put", key, err)
		if opts.IfVersion != "" && errors.Is(err, objstore.ErrNotFound) {
			return objstore.Attrs{}, objstore.Errorf(objstore.ErrPrecondition, "put", b.container, key, err)
		}
		return objstore.Attrs{}, err
	}
	v := ""
	if resp.ETag != nil {
		v = string(*resp.ETag)
	}
	return objstore.Attrs{Size: cr.n, Version: v}, nil
}

func to[T any](v T) *T { return &v }

func (b *Bucket) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteBlob(ctx, b.container, b.prefix+key, nil)
	if err != nil && !errors.Is(b.classify("delete", key, err), objstore.ErrNotFound) {
		return b.classify("delete", key, err)
	}
	return nil
}

func (b *Bucket) List(ctx context.Context, prefix string, opts objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	lo := &container.ListBlobsFlatOptions{Prefix: to(b.prefix + prefix)}
	if opts.PageSize > 0 {
		lo.MaxResults = to(int32(opts.PageSize))
	}
	pager := b.client.NewListBlobsFlatPager(b.container, lo)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return b.classify("list", prefix, err)
		}
		for _, item := range page.Segment.BlobItems {
			key := strings.TrimPrefix(*item.Name, b.prefix)
			// Azure has no start-after: skip up to it (listings are lexical).
			if key <= opts.StartAfter {
				continue
			}
			var size int64
			if item.Properties != nil && item.Properties.ContentLength != nil {
				size = *item.Properties.ContentLength
			}
			if err := fn(objstore.ObjectInfo{Key: key, Size: size}); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateContainer makes the container (tests and first-time setup).
func (b *Bucket) CreateContainer(ctx context.Context) error {
	_, err := b.client.CreateContainer(ctx, b.container, nil)
	if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	return b.classify("create-container", "", err)
}

func init() {
	// azblob://container/prefix?account=NAME uses the default Azure
	// credential; without account, AZURE_STORAGE_CONNECTION_STRING.
	objstore.Register("azblob", func(_ context.Context, u *url.URL) (objstore.Bucket, error) {
		if u.Host == "" {
			return nil, fmt.Errorf("objstore: azblob URL %q has no container", u.String())
		}
		prefix := strings.TrimPrefix(u.Path, "/")
		if account := u.Query().Get("account"); account != "" {
			return NewWithDefaultCredential(account, u.Host, prefix)
		}
		conn := os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
		if conn == "" {
			return nil, fmt.Errorf("objstore: azblob URL %q: give ?account=NAME or set AZURE_STORAGE_CONNECTION_STRING", u.String())
		}
		return NewFromConnectionString(conn, u.Host, prefix)
	})
}
