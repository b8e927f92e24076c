// Package objstore is the one small interface Tiercel uses for object
// storage (S3, GCS, Azure Blob, a local directory, memory), with classified
// errors, so tiering, the metadata log and leases are written once.
//
// Correctness may rest on create-only and compare-and-swap PUTs, which every
// provider offers; it must never rest on conditional DELETE, which MinIO and
// fake-gcs-server ignore.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Error classes. Test with errors.Is.
var (
	ErrNotFound     = errors.New("object not found")
	ErrPrecondition = errors.New("precondition failed")
	ErrRetriable    = errors.New("transient object store error")
	ErrPermanent    = errors.New("object store error")
	// ErrCorrupt marks a read whose bytes failed the object's checksum. It
	// comes with ErrRetriable (reading the object again may succeed) but is
	// never resumed: the bytes already handed out are the suspect ones.
	ErrCorrupt = errors.New("checksum mismatch: the bytes read are not the bytes stored")
)

// Error wraps a backend error with the operation, bucket, key and class.
type Error struct {
	Op     string
	Bucket string
	Key    string
	Class  error // one of the Err* classes
	Err    error // the backend's error, if any
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("objstore: %s %s/%s: %v", e.Op, e.Bucket, e.Key, e.Class)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *Error) Is(target error) bool { return target == e.Class }

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a classified error.
func Errorf(class error, op, bucket, key string, cause error) error {
	return &Error{Op: op, Bucket: bucket, Key: key, Class: class, Err: cause}
}

// Attrs describe a stored object. Version is opaque (an ETag, a GCS
// generation, an Azure ETag, or the fs backend's stamp) and is what a
// compare-and-swap Put is checked against.
type Attrs struct {
	Size    int64
	Version string
}

// PutOptions make a Put conditional.
type PutOptions struct {
	// IfNotExists makes the Put create-only: ErrPrecondition if the key exists.
	IfNotExists bool
	// IfVersion makes the Put a compare-and-swap: ErrPrecondition unless
	// the object's current version is this one.
	IfVersion string
	// Size is the body's length if known, -1 if not.
	Size int64
	// CRC32C, if set, is the body's CRC-32C (Castagnoli), which a caller
	// that already read the body can pass so the store need not read it
	// again to send its checksum.
	CRC32C *uint32
}

// ObjectInfo is one listed object.
type ObjectInfo struct {
	Key  string
	Size int64
}

// ListOptions page through a listing.
type ListOptions struct {
	StartAfter string // list keys strictly after this one
	PageSize   int    // a hint for the backend; 0 = its default
}

// Bucket is one bucket (with an optional key prefix applied by the backend).
type Bucket interface {
	// Get streams an object; length -1 reads to the end. A range past the
	// end is cut at the end.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Attrs, error)
	Head(ctx context.Context, key string) (Attrs, error)
	// Put stores r under key, conditionally with opts, and returns the new attributes.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (Attrs, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for each key under prefix in lexical order.
	List(ctx context.Context, prefix string, opts ListOptions, fn func(ObjectInfo) error) error
	// Name identifies the bucket in errors and metrics.
	Name() string
	Close() error
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, b Bucket, key string) ([]byte, Attrs, error) {
	rc, attrs, err := b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, attrs, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, attrs, Errorf(ErrRetriable, "get", b.Name(), key, err)
	}
	return data, attrs, nil
}

// Refusal names why a store refused a request, from the providers' error
// codes: "wrong credentials", "the bucket does not exist", "no
// permission", or "" if the error says none of these.
func Refusal(err error) string {
	msg := err.Error()
	has := func(codes ...string) bool {
		for _, c := range codes {
			if strings.Contains(msg, c) {
				return true
			}
		}
		return false
	}
	switch {
	case has("InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthenticationFailed", "InvalidAuthenticationInfo", "XAdminUserNotFound", "StatusCode: 401", "Error 401"):
		return "wrong credentials"
	case has("NoSuchBucket", "ContainerNotFound", "bucket doesn't exist", "ErrBucketNotExist"):
		return "the bucket does not exist"
	case has("AccessDenied", "AuthorizationFailure", "AuthorizationPermissionMismatch", "StatusCode: 403", "Error 403"):
		return "no permission"
	}
	return ""
}
