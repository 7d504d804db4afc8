package broker

// Dynamic broker configs (AlterConfigs / IncrementalAlterConfigs on resource
// type 4), as in Kafka: the name is this broker's id (DYNAMIC_BROKER_CONFIG)
// or empty (the cluster-wide default, DYNAMIC_DEFAULT_BROKER_CONFIG). Only
// the keys config.DynamicBrokerKeys lists may change: today the KIP-956
// bandwidth limits, which the tier applies at once. They are stored in bbolt
// and applied again at start-up. Altering a static key is refused with
// INVALID_REQUEST ("Cannot update these configs dynamically: ..."); an
// unknown key or a bad value with INVALID_CONFIG naming the key and what is
// allowed. A cluster (etcd) refuses them: the cluster package has no place
// for broker configs yet, and a value stored on one node would silently
// differ from the others'.

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/config"
)

const (
	fetchLimitKey = "remote.log.manager.fetch.max.bytes.per.second"
	copyLimitKey  = "remote.log.manager.copy.max.bytes.per.second"
)

// dynamicTier is the part of the tier that applies the dynamic limits
// (tier.Manager implements it).
type dynamicTier interface {
	SetFetchMaxBytesPerSecond(int64)
	SetCopyMaxBytesPerSecond(int64)
}

// dynamicConfigs are the dynamic broker configs in force.
type dynamicConfigs struct {
	mu  sync.Mutex // also serialises alterations: store, then apply
	cfg config.DynamicBroker
}

func (s *Server) dyn() *dynamicConfigs { return &s.dynCfg }

// snapshot is a copy of the dynamic configs in force.
func (d *dynamicConfigs) snapshot() config.DynamicBroker {
	d.mu.Lock()
	defer d.mu.Unlock()
	return config.DynamicBroker{PerBroker: maps.Clone(d.cfg.PerBroker), Default: maps.Clone(d.cfg.Default)}
}

func (s *Server) brokerEntity() string { return strconv.Itoa(int(s.cfg.BrokerID)) }

// loadDynamicConfigs reads the stored dynamic broker configs and applies
// them to the tier. New calls it once, before serving. A cluster ignores
// them (it refuses to store any).
func (s *Server) loadDynamicConfigs() error {
	if s.cfg.ClusterMode() {
		return nil
	}
	per, err := s.meta.BrokerConfigs(s.brokerEntity())
	if err != nil {
		return fmt.Errorf("broker: cannot read the dynamic broker configs: %w", err)
	}
	def, err := s.meta.BrokerConfigs("")
	if err != nil {
		return fmt.Errorf("broker: cannot read the dynamic broker configs: %w", err)
	}
	d := s.dyn()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg = config.DynamicBroker{PerBroker: per, Default: def}
	s.applyDynamicLocked()
	if len(per)+len(def) > 0 {
		s.log.Info("dynamic broker configs", "broker", per, "default", def)
	}
	return nil
}

// applyDynamicLocked gives the tier the limits in force. The dynamic
// configs' lock must be held.
func (s *Server) applyDynamicLocked() {
	dt, ok := s.tier.(dynamicTier)
	if !ok {
		return
	}
	d := s.dyn().cfg
	dt.SetFetchMaxBytesPerSecond(s.cfg.DynamicInt64(d, fetchLimitKey))
	dt.SetCopyMaxBytesPerSecond(s.cfg.DynamicInt64(d, copyLimitKey))
}

// describeBroker lists the broker's configs with the dynamic ones in force:
// for its id, its own over the default; for the default resource (name
// ""), the default's only, as Kafka's default resource holds no broker's
// own values.
func (s *Server) describeBroker(name string) []config.Entry {
	d := s.dyn().snapshot()
	if name == "" {
		d.PerBroker = nil
	}
	return s.cfg.DescribeBrokerDynamic(d)
}

// brokerSynonyms are the sources of a broker key, strongest first.
func (s *Server) brokerSynonyms(resource, name string) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	d := s.dyn().snapshot()
	if resource == "" {
		d.PerBroker = nil
	}
	for _, syn := range s.cfg.BrokerSynonyms(d, name) {
		c := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		c.Name, c.Value, c.Source = name, strp(syn.Value), kmsg.ConfigSource(syn.Source)
		out = append(out, c)
	}
	return out
}

// alterBroker answers one broker resource of AlterConfigs or
// IncrementalAlterConfigs: names are the keys the request names (checked
// first: a static or unknown key refuses the whole resource), next computes
// the entity's new dynamic configs from its current ones.
func (s *Server) alterBroker(name string, names []string, next func(cur map[string]string) (map[string]string, error), validateOnly bool) (int16, *string) {
	if !s.isThisBroker(name) {
		return kerr.InvalidRequest.Code, strp("unknown broker " + name)
	}
	if err := config.CheckDynamicBrokerKeys(names); err != nil {
		if len(err.Static) > 0 {
			return kerr.InvalidRequest.Code, strp(err.Error())
		}
		return kerr.InvalidConfig.Code, strp(err.Error())
	}
	if s.cfg.ClusterMode() {
		return kerr.InvalidRequest.Code, strp("dynamic broker configs are not supported in a cluster (etcd) yet: set " +
			strings.Join(config.DynamicBrokerKeys(), " and ") + " in each node's server.properties and restart it")
	}
	entity := ""
	if name != "" {
		entity = s.brokerEntity()
	}
	d := s.dyn()
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cfg.Default
	if entity != "" {
		cur = d.cfg.PerBroker
	}
	want, err := next(maps.Clone(cur))
	if err != nil {
		return adminError(err)
	}
	canon, derr := config.CheckDynamicBroker(want)
	if derr != nil {
		return kerr.InvalidConfig.Code, strp(derr.Error())
	}
	if validateOnly {
		return 0, nil
	}
	if err := s.meta.SetBrokerConfigs(entity, canon); err != nil {
		return kerr.UnknownServerError.Code, strp(err.Error())
	}
	if entity != "" {
		d.cfg.PerBroker = canon
	} else {
		d.cfg.Default = canon
	}
	s.applyDynamicLocked()
	s.log.Info("dynamic broker configs changed", "entity", name, "configs", canon)
	return 0, nil
}

// brokerSetAll is AlterConfigs' next: the request's configs replace the
// entity's.
func brokerSetAll(cfgs []kmsg.AlterConfigsRequestResourceConfig) (names []string, next func(map[string]string) (map[string]string, error)) {
	for _, c := range cfgs {
		names = append(names, c.Name)
	}
	return names, func(map[string]string) (map[string]string, error) {
		out := map[string]string{}
		for _, c := range cfgs {
			if c.Value == nil {
				return nil, fmt.Errorf("%w: config %s has a null value", errInvalidConfig, c.Name)
			}
			out[c.Name] = *c.Value
		}
		return out, nil
	}
}

// brokerIncremental is IncrementalAlterConfigs' next: SET and DELETE; the
// dynamic broker keys are no lists, so APPEND and SUBTRACT are refused.
func brokerIncremental(ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (names []string, next func(map[string]string) (map[string]string, error)) {
	for _, op := range ops {
		names = append(names, op.Name)
	}
	return names, func(cur map[string]string) (map[string]string, error) {
		if cur == nil {
			cur = map[string]string{}
		}
		for _, op := range ops {
			switch op.Op {
			case 0:
				if op.Value == nil {
					return nil, fmt.Errorf("%w: SET of %s needs a value", errInvalidConfig, op.Name)
				}
				cur[op.Name] = *op.Value
			case 1:
				delete(cur, op.Name)
			case 2, 3:
				return nil, fmt.Errorf("%w: %s is not a list config: APPEND and SUBTRACT apply to list configs only", errInvalidConfig, op.Name)
			default:
				return nil, fmt.Errorf("%w: unknown operation %d on %s", errInvalidConfig, op.Op, op.Name)
			}
		}
		return cur, nil
	}
}
