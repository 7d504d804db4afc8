package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// View is a broker's copy of the cluster's state: one Get of the prefix,
// then a Watch from the next revision. After a compaction or a broken watch
// it reads the prefix again.
type View struct {
	client *clientv3.Client
	log    *slog.Logger

	mu struct {
		sync.Mutex
		snap    *Snapshot
		changed chan struct{}
	}
}

// Snapshot is the current state; never nil once Start has returned.
func (v *View) Snapshot() *Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.snap
}

// Changed is closed when the snapshot is replaced; take it again after.
func (v *View) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.changed
}

// WaitRev waits until the view has applied revision rev, or ctx ends.
func (v *View) WaitRev(ctx context.Context, rev int64) error {
	for {
		ch := v.Changed()
		if v.Snapshot().Rev >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (v *View) publish(s *Snapshot) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mu.snap = s
	close(v.mu.changed)
	v.mu.changed = make(chan struct{})
}

func newView(c *clientv3.Client, log *slog.Logger) *View {
	v := &View{client: c, log: log}
	v.mu.changed = make(chan struct{})
	return v
}

// load reads the whole prefix into a new snapshot.
func (v *View) load(ctx context.Context) (*Snapshot, error) {
	resp, err := v.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	s := &Snapshot{
		Rev:           resp.Header.Revision,
		Brokers:       map[int32]BrokerInfo{},
		Topics:        map[string]TopicRecord{},
		Partitions:    map[TP]PartitionState{},
		ClientQuotas:  map[string]map[string]float64{},
		BrokerConfigs: map[string]map[string]string{},
		partRev:       map[TP]int64{},
		topicRev:      map[string]int64{},
		cands:         map[string]candidate{},
		brokerRev:     map[int32]int64{},
		beats:         map[int32]int64{},
	}
	for _, kv := range resp.Kvs {
		v.apply(s, kv, false)
	}
	s.electController()
	return s, nil
}

// run keeps the snapshot current until ctx ends.
func (v *View) run(ctx context.Context, rev int64) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := v.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
		rev = v.follow(wch, rev)
		cancel()
		if ctx.Err() != nil {
			return
		}
		// A compaction or a broken watch: read everything again.
		for ctx.Err() == nil {
			s, err := v.load(ctx)
			if err == nil {
				v.publish(s)
				rev = s.Rev
				break
			}
			v.log.Warn("cluster: cannot read the cluster's state from etcd; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// follow applies watch responses until the watch ends; it returns the last
// revision applied.
func (v *View) follow(wch clientv3.WatchChan, rev int64) int64 {
	for resp := range wch {
		if resp.CompactRevision != 0 || resp.Err() != nil || resp.Canceled {
			return rev
		}
		cur := v.Snapshot()
		s := cur.clone()
		for _, ev := range resp.Events {
			v.apply(s, ev.Kv, ev.Type == mvccpb.DELETE)
		}
		s.electController()
		s.Rev = max(cur.Rev, resp.Header.Revision)
		if len(resp.Events) > 0 {
			s.Rev = max(s.Rev, resp.Events[len(resp.Events)-1].Kv.ModRevision)
		}
		rev = s.Rev
		v.publish(s)
	}
	return rev
}

func (s *Snapshot) clone() *Snapshot {
	return &Snapshot{
		Rev: s.Rev, Brokers: maps.Clone(s.Brokers), Topics: maps.Clone(s.Topics), Partitions: maps.Clone(s.Partitions),
		Controller: s.Controller, ControllerEpoch: s.ControllerEpoch, ClientQuotas: maps.Clone(s.ClientQuotas),
		BrokerConfigs: maps.Clone(s.BrokerConfigs),
		partRev:       maps.Clone(s.partRev), topicRev: maps.Clone(s.topicRev), cands: maps.Clone(s.cands),
		brokerRev: maps.Clone(s.brokerRev), beats: maps.Clone(s.beats),
	}
}

// electController sets Controller to the oldest candidate.
func (s *Snapshot) electController() {
	s.Controller, s.ControllerEpoch = -1, 0
	for _, c := range s.cands {
		if s.ControllerEpoch == 0 || c.rev < s.ControllerEpoch {
			s.Controller, s.ControllerEpoch = c.id, c.rev
		}
	}
}

// apply puts one key's new value (or its deletion) into s. A value that does
// not decode is skipped with a warning: one bad key must not stop the view.
func (v *View) apply(s *Snapshot, kv *mvccpb.KeyValue, deleted bool) {
	k := string(kv.Key)
	bad := func(err error) {
		v.log.Warn("cluster: skipping an etcd key that does not decode", "key", k, "err", err)
	}
	switch {
	case strings.HasPrefix(k, brokersPrefix):
		id, err := strconv.ParseInt(strings.TrimPrefix(k, brokersPrefix), 10, 32)
		if err != nil {
			return
		}
		if deleted {
			delete(s.Brokers, int32(id))
			delete(s.brokerRev, int32(id))
			return
		}
		var b BrokerInfo
		if err := json.Unmarshal(kv.Value, &b); err != nil {
			bad(err)
			return
		}
		b.ID, b.Epoch = int32(id), kv.CreateRevision
		s.Brokers[b.ID] = b
		s.brokerRev[b.ID] = kv.ModRevision
	case strings.HasPrefix(k, heartbeatsPrefix):
		id, err := strconv.ParseInt(strings.TrimPrefix(k, heartbeatsPrefix), 10, 32)
		if err != nil {
			return
		}
		if deleted {
			delete(s.beats, int32(id))
			return
		}
		s.beats[int32(id)] = kv.ModRevision
	case strings.HasPrefix(k, controllerPrefix):
		if deleted {
			delete(s.cands, k)
			return
		}
		id, err := strconv.ParseInt(string(kv.Value), 10, 32)
		if err != nil {
			bad(err)
			return
		}
		s.cands[k] = candidate{id: int32(id), rev: kv.CreateRevision}
	case strings.HasPrefix(k, topicsPrefix):
		name := strings.TrimPrefix(k, topicsPrefix)
		if deleted {
			delete(s.Topics, name)
			delete(s.topicRev, name)
			return
		}
		var t TopicRecord
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			bad(err)
			return
		}
		t.Name = name
		s.Topics[name], s.topicRev[name] = t, kv.ModRevision
	case strings.HasPrefix(k, quotasPrefix):
		entity := strings.TrimPrefix(k, quotasPrefix)
		if deleted {
			delete(s.ClientQuotas, entity)
			return
		}
		var vals map[string]float64
		if err := json.Unmarshal(kv.Value, &vals); err != nil {
			bad(err)
			return
		}
		s.ClientQuotas[entity] = vals
	case strings.HasPrefix(k, brokerCfgPrefix):
		entity := strings.TrimPrefix(k, brokerCfgPrefix)
		if deleted {
			delete(s.BrokerConfigs, entity)
			return
		}
		var vals map[string]string
		if err := json.Unmarshal(kv.Value, &vals); err != nil {
			bad(err)
			return
		}
		s.BrokerConfigs[entity] = vals
	case strings.HasPrefix(k, partitionsPrefix):
		tp, ok := parsePartitionKey(k)
		if !ok {
			return
		}
		if deleted {
			delete(s.Partitions, tp)
			delete(s.partRev, tp)
			return
		}
		var p PartitionState
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			bad(err)
			return
		}
		s.Partitions[tp], s.partRev[tp] = p, kv.ModRevision
	}
}
