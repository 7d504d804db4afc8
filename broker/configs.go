package broker

// DescribeConfigs (key 32, v0-4), AlterConfigs (key 33, v0-2),
// IncrementalAlterConfigs (key 44, v0-1).
//
// Topics (resource type 2) show every topic-level config with its effective
// value and source: DYNAMIC_TOPIC_CONFIG for an override, STATIC_BROKER_CONFIG
// for a broker default set in server.properties / --set / STRATA_ variables,
// DEFAULT_CONFIG otherwise. Overrides are validated whole, persisted in bbolt,
// then applied to the partition logs. AlterConfigs replaces a topic's overrides;
// IncrementalAlterConfigs sets, deletes, appends to or subtracts from them.
// The broker (resource type 4, name "" or its id) is described with its
// dynamic configs; altering it is brokerconfigs.go's.
// A sensitive config (remote.storage.url, which may carry S3 credentials) is
// answered as Kafka answers a password: IsSensitive, a null value, null
// synonym values.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/config"
)

const (
	resourceTopic  = kmsg.ConfigResourceType(2)
	resourceBroker = kmsg.ConfigResourceType(4)
)

func (s *Server) isThisBroker(name string) bool {
	return name == "" || name == strconv.Itoa(int(s.cfg.BrokerID))
}

func (s *Server) handleDescribeConfigs(_ context.Context, _ *conn, req *kmsg.DescribeConfigsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	resp.Version = req.Version
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var entries []config.Entry
		switch rr.ResourceType {
		case resourceTopic:
			t := s.topics.get(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			entries = s.cfg.DescribeTopic(t.cfg.Load().overrides)
		case resourceBroker:
			if !s.isThisBroker(rr.ResourceName) {
				sr.ErrorCode, sr.ErrorMessage = kerr.InvalidRequest.Code, strp("unknown broker "+rr.ResourceName)
				break
			}
			entries = s.describeBroker(rr.ResourceName)
		default:
			sr.ErrorCode, sr.ErrorMessage = kerr.InvalidRequest.Code, strp(fmt.Sprintf("resource type %d is not served", rr.ResourceType))
		}
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.Name) {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.ReadOnly, c.IsSensitive = e.Name, strp(e.Value), e.ReadOnly, e.Sensitive
			if e.Sensitive {
				c.Value = nil
			}
			c.IsDefault = e.Source == config.SourceDefault
			c.Source = kmsg.ConfigSource(e.Source)
			c.ConfigType = kmsg.ConfigType(e.Type)
			if req.IncludeSynonyms && rr.ResourceType == resourceBroker && !e.Sensitive {
				c.ConfigSynonyms = s.brokerSynonyms(rr.ResourceName, e.Name)
			} else if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = e.Name, c.Value, c.Source
				c.ConfigSynonyms = append(c.ConfigSynonyms, syn)
			}
			if req.IncludeDocumentation && e.Doc != "" {
				c.Documentation = strp(e.Doc)
			}
			sr.Configs = append(sr.Configs, c)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func (s *Server) handleAlterConfigs(ctx context.Context, _ *conn, req *kmsg.AlterConfigsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrAlterConfigsResponse()
	resp.Version = req.Version
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if rr.ResourceType == resourceBroker {
			names, next := brokerSetAll(rr.Configs)
			sr.ErrorCode, sr.ErrorMessage = s.alterBroker(ctx, rr.ResourceName, names, next, req.ValidateOnly)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		sr.ErrorCode, sr.ErrorMessage = s.alterResource(rr.ResourceType, rr.ResourceName, func(t *topic) error {
			overrides := map[string]string{}
			for _, c := range rr.Configs {
				if c.Value == nil {
					return fmt.Errorf("%w: config %s has a null value", errInvalidConfig, c.Name)
				}
				overrides[c.Name] = *c.Value
			}
			return s.setTopicConfig(t, overrides, req.ValidateOnly)
		})
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func (s *Server) handleIncrementalAlterConfigs(ctx context.Context, _ *conn, req *kmsg.IncrementalAlterConfigsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	resp.Version = req.Version
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if rr.ResourceType == resourceBroker {
			names, next := brokerIncremental(rr.Configs)
			sr.ErrorCode, sr.ErrorMessage = s.alterBroker(ctx, rr.ResourceName, names, next, req.ValidateOnly)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		sr.ErrorCode, sr.ErrorMessage = s.alterResource(rr.ResourceType, rr.ResourceName, func(t *topic) error {
			overrides, err := s.applyIncremental(t.cfg.Load().overrides, rr.Configs)
			if err != nil {
				return err
			}
			return s.setTopicConfig(t, overrides, req.ValidateOnly)
		})
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// alterResource answers one topic resource of AlterConfigs or
// IncrementalAlterConfigs: a topic gets apply; other types are not served
// (the broker's are alterBroker's).
func (s *Server) alterResource(typ kmsg.ConfigResourceType, name string, apply func(*topic) error) (int16, *string) {
	switch typ {
	case resourceTopic:
		t := s.topics.get(name)
		if t == nil {
			return kerr.UnknownTopicOrPartition.Code, nil
		}
		return adminError(apply(t))
	}
	return kerr.InvalidRequest.Code, strp(fmt.Sprintf("resource type %d is not served", typ))
}

// applyIncremental applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) to
// a copy of the overrides. APPEND and SUBTRACT work on list configs, starting
// from the effective value when the topic has no override.
func (s *Server) applyIncremental(cur map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, error) {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	for _, op := range ops {
		if !config.IsTopicConfig(op.Name) {
			return nil, fmt.Errorf("%w: unknown topic config %q", errInvalidConfig, op.Name)
		}
		val := ""
		if op.Value != nil {
			val = *op.Value
		}
		switch op.Op {
		case 0:
			if op.Value == nil {
				return nil, fmt.Errorf("%w: SET of %s needs a value", errInvalidConfig, op.Name)
			}
			out[op.Name] = val
		case 1:
			delete(out, op.Name)
		case 2, 3:
			if op.Name != "cleanup.policy" {
				return nil, fmt.Errorf("%w: %s is not a list config: APPEND and SUBTRACT apply to list configs only", errInvalidConfig, op.Name)
			}
			base, ok := out[op.Name]
			if !ok {
				for _, e := range s.cfg.DescribeTopic(out) {
					if e.Name == op.Name {
						base = e.Value
					}
				}
			}
			items := splitList(base)
			for _, v := range splitList(val) {
				if op.Op == 2 && !slices.Contains(items, v) {
					items = append(items, v)
				}
				if op.Op == 3 {
					items = slices.DeleteFunc(items, func(x string) bool { return x == v })
				}
			}
			out[op.Name] = strings.Join(items, ",")
		default:
			return nil, fmt.Errorf("%w: unknown operation %d on %s", errInvalidConfig, op.Op, op.Name)
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
