package broker

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestHeader is the Kafka request header (v1, or v2 for flexible versions).
type requestHeader struct {
	key         int16
	version     int16
	correlation int32
	clientID    string
	host        string // the client's address, for DescribeGroups
}

var errMalformed = errors.New("malformed request")

// parseHeader reads the header at the start of a frame body and returns it
// with the remaining bytes. flexible is whether the body's version uses
// tagged fields, which also means a v2 header with its own tag section.
func parseHeader(b []byte) (requestHeader, []byte, error) {
	var h requestHeader
	if len(b) < 10 {
		return h, nil, fmt.Errorf("%w: %d-byte frame is shorter than a request header", errMalformed, len(b))
	}
	h.key = int16(binary.BigEndian.Uint16(b))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(b[4:]))
	n := int(int16(binary.BigEndian.Uint16(b[8:])))
	rest := b[10:]
	if n > 0 {
		if n > len(rest) {
			return h, nil, fmt.Errorf("%w: client id of %d bytes past the frame end", errMalformed, n)
		}
		h.clientID = string(rest[:n])
		rest = rest[n:]
	}
	return h, rest, nil
}

// skipHeaderTags skips the tagged fields of a v2 request header.
func skipHeaderTags(b []byte) ([]byte, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad header tag count", errMalformed)
	}
	b = b[n:]
	for i := uint64(0); i < count; i++ {
		if _, n = binary.Uvarint(b); n <= 0 {
			return nil, fmt.Errorf("%w: bad header tag", errMalformed)
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("%w: bad header tag size", errMalformed)
		}
		b = b[n+int(size):]
	}
	return b, nil
}

// decodeRequest turns a frame body into a typed request. It returns
// errUnsupportedVersion (with the header filled) when the version is out of
// the advertised range, so ApiVersions can answer it as Kafka does.
func decodeRequest(body []byte) (requestHeader, kmsg.Request, error) {
	h, rest, err := parseHeader(body)
	if err != nil {
		return h, nil, err
	}
	api, ok := apis[h.key]
	if !ok {
		return h, nil, fmt.Errorf("%w: api key %d", errUnknownAPI, h.key)
	}
	if h.version < api.min || h.version > api.max {
		return h, nil, fmt.Errorf("%w: %s v%d (supported %d-%d)", errUnsupportedVersion, kmsg.NameForKey(h.key), h.version, api.min, api.max)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if req.IsFlexible() {
		if rest, err = skipHeaderTags(rest); err != nil {
			return h, nil, err
		}
	}
	if err := req.ReadFrom(rest); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d body: %v", errMalformed, kmsg.NameForKey(h.key), h.version, err)
	}
	return h, req, nil
}

var (
	errUnknownAPI         = errors.New("unknown api key")
	errUnsupportedVersion = errors.New("unsupported version")
)

// appendResponse frames a response: size, correlation id, the response
// header's tag section for flexible versions (never for ApiVersions, whose
// response header stays v0 so old clients can parse it), then the body.
func appendResponse(dst []byte, correlation int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlation))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
