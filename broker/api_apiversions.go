package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func apiVersionsResponse() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	keys := make([]int, 0, len(apis))
	for k := range apis {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		r := apis[int16(k)]
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: int16(k), MinVersion: r.min, MaxVersion: r.max})
	}
	return resp
}

func (b *Broker) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := apiVersionsResponse()
	resp.SetVersion(req.Version)
	return resp
}
