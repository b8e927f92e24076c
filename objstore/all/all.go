// Package all links every objstore backend, so objstore.Open knows every
// URL scheme.
package all

import (
	_ "github.com/tiercel/tiercel/objstore/azure" // azblob://
	_ "github.com/tiercel/tiercel/objstore/fs"    // file://
	_ "github.com/tiercel/tiercel/objstore/gcs"   // gs://
	_ "github.com/tiercel/tiercel/objstore/mem"   // mem://
	_ "github.com/tiercel/tiercel/objstore/s3"    // s3://
)
