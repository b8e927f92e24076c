package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tiercel/tiercel/objstore"
)

// RawDisk is the ceiling for an object store on this machine: plain files
// written, fsynced and read back, with none of a store's work.
type RawDisk struct{ Dir string }

func (r RawDisk) path(k string) string { return filepath.Join(r.Dir, strings.ReplaceAll(k, "/", "_")) }
func (r RawDisk) Name() string         { return "raw-disk" }
func (r RawDisk) Close() error         { return nil }

func (r RawDisk) Put(_ context.Context, k string, body io.Reader, _ objstore.PutOptions) (objstore.Attrs, error) {
	f, err := os.Create(r.path(k))
	if err != nil {
		return objstore.Attrs{}, err
	}
	defer f.Close()
	n, err := io.Copy(f, body)
	if err == nil {
		err = f.Sync()
	}
	return objstore.Attrs{Size: n}, err
}

func (r RawDisk) Get(_ context.Context, k string, off, n int64) (io.ReadCloser, objstore.Attrs, error) {
	f, err := os.Open(r.path(k))
	if err != nil {
		return nil, objstore.Attrs{}, err
	}
	st, _ := f.Stat()
	if n < 0 {
		n = st.Size() - off
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, n), f}, objstore.Attrs{Size: st.Size()}, nil
}

func (r RawDisk) Head(context.Context, string) (objstore.Attrs, error) { return objstore.Attrs{}, nil }
func (r RawDisk) Delete(_ context.Context, k string) error             { return os.Remove(r.path(k)) }
func (r RawDisk) List(context.Context, string, objstore.ListOptions, func(objstore.ObjectInfo) error) error {
	return nil
}

// PlainS3 drives an S3 endpoint with the bare AWS SDK (one PutObject, one
// GetObject, no retries, no classification): the baseline our S3 backend's
// overhead is measured against. Credentials come from the environment.
type PlainS3 struct {
	client *s3.Client
	bucket string
	// Checksums makes the baseline do the end-to-end checking Tiercel's
	// backend does (CRC32C on PUT, checksum mode on whole GETs, which the SDK
	// then verifies), to separate the cost of checksums from our layer's.
	Checksums bool
}

// NewPlainS3 builds the baseline client for endpoint and bucket.
func NewPlainS3(ctx context.Context, endpoint, region, bucket string) (*PlainS3, error) {
	if region == "" {
		region = "us-east-1"
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, err
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &PlainS3{client: c, bucket: bucket}, nil
}

func (p *PlainS3) Name() string {
	if p.Checksums {
		return "plain-sdk-crc"
	}
	return "plain-sdk"
}
func (p *PlainS3) Close() error { return nil }

func (p *PlainS3) Put(ctx context.Context, k string, body io.Reader, o objstore.PutOptions) (objstore.Attrs, error) {
	rs, ok := body.(io.ReadSeeker)
	if !ok {
		data, err := io.ReadAll(body)
		if err != nil {
			return objstore.Attrs{}, err
		}
		rs, o.Size = bytes.NewReader(data), int64(len(data))
	}
	in := &s3.PutObjectInput{Bucket: &p.bucket, Key: &k, Body: rs, ContentLength: aws.Int64(o.Size)}
	if p.Checksums {
		h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		if _, err := io.Copy(h, rs); err != nil {
			return objstore.Attrs{}, err
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return objstore.Attrs{}, err
		}
		in.ChecksumCRC32C = aws.String(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	_, err := p.client.PutObject(ctx, in)
	return objstore.Attrs{Size: o.Size}, err
}

func (p *PlainS3) Get(ctx context.Context, k string, off, n int64) (io.ReadCloser, objstore.Attrs, error) {
	in := &s3.GetObjectInput{Bucket: &p.bucket, Key: &k}
	if off > 0 || n >= 0 {
		r := "bytes=" + itoa(off) + "-"
		if n > 0 {
			r += itoa(off + n - 1)
		}
		in.Range = &r
	} else if p.Checksums {
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	out, err := p.client.GetObject(ctx, in)
	if err != nil {
		return nil, objstore.Attrs{}, err
	}
	return out.Body, objstore.Attrs{}, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (p *PlainS3) Head(context.Context, string) (objstore.Attrs, error) { return objstore.Attrs{}, nil }
func (p *PlainS3) Delete(ctx context.Context, k string) error {
	_, err := p.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &p.bucket, Key: &k})
	return err
}
func (p *PlainS3) List(context.Context, string, objstore.ListOptions, func(objstore.ObjectInfo) error) error {
	return nil
}
