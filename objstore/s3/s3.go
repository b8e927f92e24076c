// Package s3 is the objstore backend for Amazon S3 and S3-compatible
// servers (MinIO, versitygw): create-only is If-None-Match: *, compare-and-
// swap is If-Match: <ETag>, uploads of unknown or large size are multipart
// with the condition on CompleteMultipartUpload.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tiercel/tiercel/objstore"
)

// partSize is the multipart part size, and the size above which an upload
// goes multipart (S3's minimum part is 5 MiB).
const partSize = 16 << 20

// Config selects a bucket.
type Config struct {
	Bucket    string
	Prefix    string
	Region    string
	Endpoint  string // custom endpoint (MinIO, versitygw); empty = AWS
	PathStyle bool
	// Static credentials; empty = the standard AWS credential chain.
	AccessKey, SecretKey string
	// UnsignedPayload sends upload bodies as UNSIGNED-PAYLOAD (no SHA-256
	// pass over every byte; the CRC-32C the server checks still covers
	// them). URL: unsigned_payload=true|false; by default on for HTTPS
	// endpoints (AWS's included) and off for plain HTTP, where the
	// signature is the only guard against tampering in transit and some
	// S3-compatible servers require it.
	UnsignedPayload bool
}

// Bucket is an S3 bucket.
type Bucket struct {
	cfg      Config
	client   *s3.Client
	bodyOpts []func(*s3.Options) // for requests that carry a body
}

// New builds a client for cfg.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	opts := []func(*awsconfig.LoadOptions) error{}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	} else {
		opts = append(opts, awsconfig.WithRegion("us-east-1"))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: s3 config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Checksums only where the API requires them: S3-compatible
		// servers differ in the trailing-checksum encodings they accept.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// We verify whole objects ourselves (checksum.go); a multipart
		// object's composite checksum is not an error worth a log line.
		o.DisableLogOutputChecksumValidationSkipped = true
		o.RetryMaxAttempts = 1 // objstore.WithRetries retries, knowing which writes are conditional
	})
	b := &Bucket{cfg: cfg, client: client}
	if cfg.UnsignedPayload {
		b.bodyOpts = []func(*s3.Options){unsignedPayload}
	}
	return b, nil
}

func (b *Bucket) Name() string { return "s3://" + b.cfg.Bucket + "/" + b.cfg.Prefix }
func (b *Bucket) Close() error { return nil }

func (b *Bucket) key(k string) string { return b.cfg.Prefix + k }

// classify maps S3 errors to objstore classes.
func (b *Bucket) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	class := objstore.ErrPermanent
	var re *smithyhttp.ResponseError
	var ae smithy.APIError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch {
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		class = objstore.ErrNotFound
		if code == "NoSuchBucket" {
			class = objstore.ErrPermanent
		}
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		class = objstore.ErrPrecondition
	case code == "ConditionalRequestConflict" || status == http.StatusConflict && strings.Contains(code, "Conditional"):
		// A concurrent conditional write is in flight: retry, and the
		// retry will see the precondition or succeed.
		class = objstore.ErrRetriable
	case status == http.StatusTooManyRequests || status >= 500 || code == "SlowDown" || code == "RequestTimeout" || code == "InternalError":
		class = objstore.ErrRetriable
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		class = objstore.ErrRetriable
	case status == 0 && !errors.As(err, &ae):
		class = objstore.ErrRetriable // a connection failure
	}
	return objstore.Errorf(class, op, b.cfg.Bucket, key, err)
}

func (b *Bucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, objstore.Attrs, error) {
	in := &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key))}
	if offset > 0 || length >= 0 {
		if length == 0 {
			attrs, err := b.Head(ctx, key)
			return io.NopCloser(bytes.NewReader(nil)), attrs, err
		}
		r := fmt.Sprintf("bytes=%d-", offset)
		if length > 0 {
			r = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
		}
		in.Range = &r
	}
	if in.Range == nil {
		in.ChecksumMode = types.ChecksumModeEnabled // return the stored CRC32C to check
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidRange" {
			// A range starting at or past the end is empty, not an error.
			attrs, herr := b.Head(ctx, key)
			return io.NopCloser(bytes.NewReader(nil)), attrs, herr
		}
		return nil, objstore.Attrs{}, b.classify("get", key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if out.ContentRange != nil {
		if i := strings.LastIndexByte(*out.ContentRange, '/'); i >= 0 {
			fmt.Sscan((*out.ContentRange)[i+1:], &size)
		}
	}
	body := out.Body
	if in.Range == nil {
		body = verifying(body, aws.ToString(out.ChecksumCRC32C), aws.ToString(out.ETag), key)
	}
	return body, objstore.Attrs{Size: size, Version: aws.ToString(out.ETag)}, nil
}

func (b *Bucket) Head(ctx context.Context, key string) (objstore.Attrs, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key))})
	if err != nil {
		return objstore.Attrs{}, b.classify("head", key, err)
	}
	return objstore.Attrs{Size: aws.ToInt64(out.ContentLength), Version: aws.ToString(out.ETag)}, nil
}

func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	attrs, err := b.put(ctx, key, r, opts)
	if opts.IfVersion != "" && errors.Is(err, objstore.ErrNotFound) {
		// S3 answers If-Match on a missing key with 404: for a
		// compare-and-swap the expected version is simply not there.
		return attrs, objstore.Errorf(objstore.ErrPrecondition, "put", b.cfg.Bucket, key, err)
	}
	return attrs, err
}

// singlePutMax is the largest known-size, seekable body sent as one
// PutObject (S3 allows 5 GiB); larger ones go multipart. A tiered segment
// (1 GiB by default) is then one request, not 64 parts: requests per GiB
// are a cost, and the body streams from its file without a buffer.
const singlePutMax = 2 << 30

func (b *Bucket) put(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	if rs, ok := r.(io.ReadSeeker); ok && opts.Size >= 0 && opts.Size <= singlePutMax {
		return b.putReader(ctx, key, rs, opts.Size, opts)
	}
	// Read up to one part: small objects go in one PutObject with a length.
	first := make([]byte, partSize+1)
	n, err := io.ReadFull(r, first)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return objstore.Attrs{}, objstore.Errorf(objstore.ErrPermanent, "put", b.cfg.Bucket, key, err)
	}
	if n <= partSize {
		return b.putSingle(ctx, key, first[:n], opts)
	}
	return b.putMultipart(ctx, key, io.MultiReader(bytes.NewReader(first[:n]), r), opts)
}

func conditions(opts objstore.PutOptions) (ifNoneMatch, ifMatch *string) {
	if opts.IfNotExists {
		ifNoneMatch = aws.String("*")
	}
	if opts.IfVersion != "" {
		ifMatch = aws.String(opts.IfVersion)
	}
	return
}

func (b *Bucket) putSingle(ctx context.Context, key string, data []byte, opts objstore.PutOptions) (objstore.Attrs, error) {
	return b.putReader(ctx, key, bytes.NewReader(data), int64(len(data)), opts)
}

// unsignedPayload signs a body-carrying request without hashing the body
// (UNSIGNED-PAYLOAD): the CRC-32C we send is what the server checks the
// body against, so a SHA-256 pass over every byte uploaded (the SDK's
// default) buys nothing and costs a core-second per few hundred MiB.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// putReader sends one PutObject straight from a seekable body (the SDK
// needs to seek it to sign the payload), with no copy.
func (b *Bucket) putReader(ctx context.Context, key string, body io.ReadSeeker, size int64, opts objstore.PutOptions) (objstore.Attrs, error) {
	inm, im := conditions(opts)
	var sum string
	if opts.CRC32C != nil {
		sum = crcText(*opts.CRC32C)
	} else {
		var err error
		if sum, err = contentCRC32C(body); err != nil {
			return objstore.Attrs{}, objstore.Errorf(objstore.ErrPermanent, "put", b.cfg.Bucket, key, err)
		}
	}
	out, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key)), Body: body,
		ContentLength: aws.Int64(size), ChecksumCRC32C: aws.String(sum), IfNoneMatch: inm, IfMatch: im,
	}, b.bodyOpts...)
	if err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	return objstore.Attrs{Size: size, Version: aws.ToString(out.ETag)}, nil
}

func (b *Bucket) putMultipart(ctx context.Context, key string, r io.Reader, opts objstore.PutOptions) (objstore.Attrs, error) {
	k := aws.String(b.key(key))
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: k, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	if err != nil {
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	abort := func() {
		_, _ = b.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: k, UploadId: up.UploadId})
	}
	var parts []types.CompletedPart
	var total int64
	buf := make([]byte, partSize)
	for num := int32(1); ; num++ {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			part := bytes.NewReader(buf[:n])
			sum, _ := contentCRC32C(part)
			out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &b.cfg.Bucket, Key: k, UploadId: up.UploadId,
				PartNumber: aws.Int32(num), Body: part, ContentLength: aws.Int64(int64(n)), ChecksumCRC32C: aws.String(sum)}, b.bodyOpts...)
			if err != nil {
				abort()
				return objstore.Attrs{}, b.classify("put", key, err)
			}
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: aws.String(sum)})
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			abort()
			return objstore.Attrs{}, objstore.Errorf(objstore.ErrPermanent, "put", b.cfg.Bucket, key, rerr)
		}
	}
	inm, im := conditions(opts)
	out, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfNoneMatch: inm, IfMatch: im})
	if err != nil {
		abort()
		return objstore.Attrs{}, b.classify("put", key, err)
	}
	return objstore.Attrs{Size: total, Version: aws.ToString(out.ETag)}, nil
}

func (b *Bucket) Delete(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key))})
	if err != nil && !errors.Is(b.classify("delete", key, err), objstore.ErrNotFound) {
		return b.classify("delete", key, err)
	}
	return nil
}

func (b *Bucket) List(ctx context.Context, prefix string, opts objstore.ListOptions, fn func(objstore.ObjectInfo) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &b.cfg.Bucket, Prefix: aws.String(b.key(prefix))}
	if opts.StartAfter != "" {
		in.StartAfter = aws.String(b.key(opts.StartAfter))
	}
	if opts.PageSize > 0 {
		in.MaxKeys = aws.Int32(int32(opts.PageSize))
	}
	p := s3.NewListObjectsV2Paginator(b.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.classify("list", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(objstore.ObjectInfo{Key: strings.TrimPrefix(aws.ToString(o.Key), b.cfg.Prefix), Size: aws.ToInt64(o.Size)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// FromURL parses s3://bucket/prefix?region=...&endpoint=...&path_style=true.
// Credentials come from the standard AWS chain (environment, profile, IAM role).
func FromURL(u *url.URL) Config {
	q := u.Query()
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	endpoint := q.Get("endpoint")
	unsigned := endpoint == "" || strings.HasPrefix(endpoint, "https://")
	if v := q.Get("unsigned_payload"); v != "" {
		unsigned = v == "true"
	}
	return Config{Bucket: u.Host, Prefix: prefix, Region: q.Get("region"), Endpoint: endpoint, PathStyle: q.Get("path_style") == "true" || endpoint != "", UnsignedPayload: unsigned}
}

func init() {
	objstore.Register("s3", func(ctx context.Context, u *url.URL) (objstore.Bucket, error) {
		if u.Host == "" {
			return nil, fmt.Errorf("objstore: s3 URL %q has no bucket", u.String())
		}
		return New(ctx, FromURL(u))
	})
}

// CreateBucket makes a bucket (tests and first-time setup).
func (b *Bucket) CreateBucket(ctx context.Context) error {
	_, err := b.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b.cfg.Bucket})
	return b.classify("create-bucket", "", err)
}
