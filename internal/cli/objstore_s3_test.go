package cli

import (
	"strings"
	"testing"

	"github.com/tiercel/tiercel/internal/testservers"
)

// TestObjstoreRefusalsNamed checks the operator sees which of wrong
// credentials or a missing bucket stopped them, against a real S3 server.
func TestObjstoreRefusalsNamed(t *testing.T) {
	srv := testservers.StartVersityGW(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	base := "s3://%s?endpoint=" + srv.Endpoint
	mustRun(t, "x", "", "objstore", "mb", strings.Replace(base, "%s", "exists", 1))
	if out := mustRun(t, "x", "v", "objstore", "put", strings.Replace(base, "%s", "exists", 1), "k"); !strings.Contains(out, "stored k") {
		t.Fatalf("put: %q", out)
	}
	_, err := run(t, "x", "", "objstore", "ls", strings.Replace(base, "%s", "missing", 1))
	if err == nil || !strings.Contains(err.Error(), "the bucket does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	_, err = run(t, "x", "", "objstore", "ls", strings.Replace(base, "%s", "exists", 1))
	if err == nil || !strings.Contains(err.Error(), "wrong credentials") {
		t.Fatalf("wrong secret: %v", err)
	}
}
