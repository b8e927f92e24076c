package broker

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tiercel/tiercel/internal/config"
)

// Config resource types of DescribeConfigs and friends.
const (
	resourceTopic  = 2
	resourceBroker = 4
)

func (b *Broker) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	for _, rr := range req.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		var values []config.Value
		switch int8(rr.ResourceType) {
		case resourceTopic:
			t := b.getTopic(rr.ResourceName)
			if t == nil {
				res.ErrorCode = kerr.UnknownTopicOrPartition.Code
				resp.Resources = append(resp.Resources, res)
				continue
			}
			values = b.cfg.Topic(t.meta.Configs)
		case resourceBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.nodeID)) {
				res.ErrorCode = kerr.InvalidRequest.Code
				res.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("this broker is %d, not %s", b.nodeID, rr.ResourceName))
				resp.Resources = append(resp.Resources, res)
				continue
			}
			values = b.cfg.Describe()
		default:
			res.ErrorCode = kerr.InvalidRequest.Code
			res.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("resource type %d is not supported", rr.ResourceType))
			resp.Resources = append(resp.Resources, res)
			continue
		}
		want := map[string]bool{}
		for _, k := range rr.ConfigNames {
			want[k] = true
		}
		for _, v := range values {
			if rr.ConfigNames != nil && !want[v.Name] {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name = v.Name
			if !v.Sensitive {
				c.Value = kmsg.StringPtr(v.Value)
			}
			c.ReadOnly = v.ReadOnly
			c.Source = kmsg.ConfigSource(v.Source)
			c.IsDefault = v.Source == config.SourceDefault
			c.IsSensitive = v.Sensitive
			c.ConfigType = kmsg.ConfigType(v.Type)
			if req.IncludeDocumentation {
				c.Documentation = kmsg.StringPtr(v.Doc)
			}
			if req.IncludeSynonyms {
				for _, s := range v.Synonyms {
					syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
					syn.Name, syn.Value, syn.Source = s.Name, kmsg.StringPtr(s.Value), kmsg.ConfigSource(s.Source)
					c.ConfigSynonyms = append(c.ConfigSynonyms, syn)
				}
			}
			res.Configs = append(res.Configs, c)
		}
		resp.Resources = append(resp.Resources, res)
	}
	return resp
}

func (b *Broker) handleAlterConfigs(req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrAlterConfigsResponse()
	for _, rr := range req.Resources {
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		values := map[string]string{}
		for _, c := range rr.Configs {
			if c.Value != nil {
				values[c.Name] = *c.Value
			}
		}
		// AlterConfigs replaces the whole set of overrides.
		err := b.applyConfigs(int8(rr.ResourceType), rr.ResourceName, func(map[string]string) (map[string]string, error) { return values, nil }, req.ValidateOnly)
		res.ErrorCode, res.ErrorMessage = errorCodeConfig(err), errMessage(err)
		resp.Resources = append(resp.Resources, res)
	}
	return resp
}

// Incremental operations.
const (
	opSet      = 0
	opDelete   = 1
	opAppend   = 2
	opSubtract = 3
)

func (b *Broker) handleIncrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	for _, rr := range req.Resources {
		res := kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		err := b.applyConfigs(int8(rr.ResourceType), rr.ResourceName, func(cur map[string]string) (map[string]string, error) {
			next := map[string]string{}
			for k, v := range cur {
				next[k] = v
			}
			for _, c := range rr.Configs {
				val := ""
				if c.Value != nil {
					val = *c.Value
				}
				switch c.Op {
				case opSet:
					next[c.Name] = val
				case opDelete:
					delete(next, c.Name)
				case opAppend, opSubtract:
					d, ok := config.Lookup(c.Name)
					if !ok || d.Type != config.TypeList {
						return nil, fmt.Errorf("%w: %s is not a list config; APPEND and SUBTRACT need one", errInvalidRequest, c.Name)
					}
					next[c.Name] = editList(b.currentValue(int8(rr.ResourceType), cur, c.Name), val, c.Op == opAppend)
				default:
					return nil, fmt.Errorf("%w: unknown operation %d", errInvalidRequest, c.Op)
				}
			}
			return next, nil
		}, req.ValidateOnly)
		res.ErrorCode, res.ErrorMessage = errorCodeConfig(err), errMessage(err)
		resp.Resources = append(resp.Resources, res)
	}
	return resp
}

var errInvalidRequest = fmt.Errorf("invalid request")

func errorCodeConfig(err error) int16 {
	if err != nil && strings.Contains(err.Error(), errInvalidRequest.Error()) {
		return kerr.InvalidRequest.Code
	}
	return errorCode(err)
}

func (b *Broker) currentValue(resourceType int8, cur map[string]string, name string) string {
	if v, ok := cur[name]; ok {
		return v
	}
	if resourceType == resourceTopic {
		return b.cfg.TopicValue(nil, name)
	}
	return b.cfg.Get(name)
}

func editList(cur, items string, add bool) string {
	var out []string
	have := map[string]bool{}
	for _, v := range strings.Split(cur, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out, have[v] = append(out, v), true
		}
	}
	for _, v := range strings.Split(items, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if add && !have[v] {
			out, have[v] = append(out, v), true
		}
		if !add && have[v] {
			kept := out[:0]
			for _, o := range out {
				if o != v {
					kept = append(kept, o)
				}
			}
			out, have[v] = kept, false
		}
	}
	return strings.Join(out, ",")
}

// applyConfigs computes a resource's new overrides with edit and stores them.
func (b *Broker) applyConfigs(resourceType int8, name string, edit func(map[string]string) (map[string]string, error), validateOnly bool) error {
	switch resourceType {
	case resourceTopic:
		t := b.getTopic(name)
		if t == nil {
			return fmt.Errorf("%w: %q", errUnknownTopic, name)
		}
		b.mu.RLock()
		cur := t.meta.Configs
		b.mu.RUnlock()
		next, err := edit(cur)
		if err != nil {
			return err
		}
		if err := config.ValidateTopic(next); err != nil {
			return err
		}
		if validateOnly {
			return nil
		}
		return b.setTopicConfigs(t, next)
	case resourceBroker:
		if name != "" && name != strconv.Itoa(int(b.nodeID)) {
			return fmt.Errorf("%w: this broker is %d, not %s", errInvalidRequest, b.nodeID, name)
		}
		next, err := edit(b.cfg.Dynamic())
		if err != nil {
			return err
		}
		if validateOnly {
			probe, _ := config.Load(config.LoadOptions{})
			return probe.SetDynamic(next)
		}
		return b.setBrokerConfigs(next)
	}
	return fmt.Errorf("%w: resource type %d is not supported", errInvalidRequest, resourceType)
}
