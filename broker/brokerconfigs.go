package broker

// Dynamic broker configs (AlterConfigs / IncrementalAlterConfigs on resource
// type 4), as in Kafka: the name is this broker's id (DYNAMIC_BROKER_CONFIG)
// or empty (the cluster-wide default, DYNAMIC_DEFAULT_BROKER_CONFIG). Only
// the keys config.DynamicBrokerKeys lists may change: today the KIP-956
// bandwidth limits, which the tier applies at once. They are stored in bbolt
// and applied again at start-up. Altering a static key is refused with
// INVALID_REQUEST ("Cannot update these configs dynamically: ..."); an
// unknown key or a bad value with INVALID_CONFIG naming the key and what is
// allowed. In a cluster they live in etcd (brokerconfigs/<id> and
// brokerconfigs/<default>), any broker alters any registered broker's or
// the default, and each broker applies its own and the default from its
// view (reconcile), as it does topics and client quotas.

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/cluster"
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
// them to the tier. New calls it once, before serving. A cluster takes
// them from etcd instead (applyClusterBrokerConfigs).
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
func (s *Server) alterBroker(ctx context.Context, name string, names []string, next func(cur map[string]string) (map[string]string, error), validateOnly bool) (int16, *string) {
	if !s.knownBroker(name) {
		return kerr.InvalidRequest.Code, strp("unknown broker " + name)
	}
	if err := config.CheckDynamicBrokerKeys(names); err != nil {
		if len(err.Static) > 0 {
			return kerr.InvalidRequest.Code, strp(err.Error())
		}
		return kerr.InvalidConfig.Code, strp(err.Error())
	}
	// check is next followed by the keys' validation.
	check := func(cur map[string]string) (map[string]string, error) {
		want, err := next(maps.Clone(cur))
		if err != nil {
			return nil, err
		}
		canon, derr := config.CheckDynamicBroker(want)
		if derr != nil {
			return nil, fmt.Errorf("%w: %s", errInvalidConfig, derr.Error())
		}
		return canon, nil
	}
	if s.clustered() {
		entity := cluster.DefaultBrokerEntity
		if name != "" {
			entity = name
		}
		if validateOnly {
			_, err := check(s.cl.View().Snapshot().BrokerConfigs[entity])
			return adminError(err)
		}
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		rev, err := s.cl.AlterBrokerConfigs(ctx, entity, check)
		if err == nil {
			err = s.applied(ctx, rev)
		}
		if err == nil {
			s.log.Info("dynamic broker configs changed", "entity", entity)
		}
		return adminError(err)
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
	canon, err := check(cur)
	if err != nil || validateOnly {
		return adminError(err)
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

// knownBroker reports whether name is a broker resource this broker
// answers for: the default (""), itself, or in a cluster any registered
// broker (their dynamic configs live in etcd).
func (s *Server) knownBroker(name string) bool {
	if s.isThisBroker(name) {
		return true
	}
	if !s.clustered() {
		return false
	}
	id, err := strconv.ParseInt(name, 10, 32)
	if err != nil {
		return false
	}
	_, ok := s.cl.View().Snapshot().Brokers[int32(id)]
	return ok
}

// applyClusterBrokerConfigs takes this broker's dynamic configs and the
// default from a cluster snapshot and applies them if they changed.
func (s *Server) applyClusterBrokerConfigs(snap *cluster.Snapshot) {
	next := config.DynamicBroker{PerBroker: snap.BrokerConfigs[s.brokerEntity()], Default: snap.BrokerConfigs[cluster.DefaultBrokerEntity]}
	d := s.dyn()
	d.mu.Lock()
	defer d.mu.Unlock()
	if maps.Equal(d.cfg.PerBroker, next.PerBroker) && maps.Equal(d.cfg.Default, next.Default) {
		return
	}
	d.cfg = next
	s.applyDynamicLocked()
	s.log.Info("dynamic broker configs", "broker", next.PerBroker, "default", next.Default)
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
