package broker

// Cluster mode: the broker as a member of a replicated cluster (package
// cluster holds the etcd side). etcd is the truth for topics, their configs,
// partition assignments and each partition's leader, leader epoch, ISR and
// partition epoch; each broker mirrors it, level-triggered on every change
// of its view (reconcile): a topic in etcd and not here is created here with
// etcd's topic ID (an empty local log for each partition, which a partition
// this broker does not replicate keeps empty, and which a broker removed
// from a partition's replicas by a reassignment empties: replica.go); a
// topic here and not in etcd (or under another ID) is deleted here the
// single node's crash-safe way;
// partition counts, configs and client quotas follow etcd's; and every
// partition this broker replicates becomes leader or follower as its state says
// (replica.go, fetcher.go). Admin requests write to etcd and wait until this
// broker's view has applied their revision, so the topic exists here when
// the response leaves. The segment index of the remote tier stays in each
// broker's bbolt.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stratalog/strata/cluster"
)

// clustered reports whether the broker runs in a cluster.
func (s *Server) clustered() bool { return s.cl != nil }

// fenced reports whether this broker lost its registration (it must not act
// as a leader).
func (s *Server) fenced() bool {
	if s.cl == nil {
		return false
	}
	select {
	case <-s.cl.Fenced():
		return true
	default:
		return false
	}
}

// brokerEpoch is this broker's registration epoch (-1 on one node).
func (s *Server) brokerEpoch() int64 {
	if s.cl == nil {
		return -1
	}
	return s.cl.Self().Epoch
}

// leadWake is closed (and replaced) when this broker starts leading a
// partition: parked follower fetches return, so the followers' next fetches
// include it.
func (s *Server) leadWake() <-chan struct{} {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.leadCh == nil {
		s.leadCh = make(chan struct{})
	}
	return s.leadCh
}

func (s *Server) wakeFollowers() {
	s.leadMu.Lock()
	defer s.leadMu.Unlock()
	if s.leadCh != nil {
		close(s.leadCh)
		s.leadCh = nil
	}
}

// brokerLive reports whether broker id is registered and not shutting down:
// a follower that is shutting down is not taken back into an ISR (the
// controller is taking it out; its controlled shutdown waits for that).
func (s *Server) brokerLive(id int32) bool {
	b, ok := s.cl.View().Snapshot().Brokers[id]
	return ok && !b.ShuttingDown
}

// rack is this broker's broker.rack.
func (s *Server) rack() string { return strings.TrimSpace(s.cfg.BrokerRack) }

// brokerAddr is the advertised address of broker id.
func (s *Server) brokerAddr(id int32) (string, bool) {
	b, ok := s.cl.View().Snapshot().Brokers[id]
	if !ok {
		return "", false
	}
	return b.Host + ":" + strconv.Itoa(int(b.Port)), true
}

// startCluster joins the cluster: etcd (embedded or not), registration, the
// view, and the reconcile loop. The first reconcile runs before it returns.
func (s *Server) startCluster() error {
	ccfg, err := s.cfg.Cluster()
	if err != nil {
		return err
	}
	_, port := s.advertised()
	if port == 0 {
		return fmt.Errorf("broker: in a cluster, listeners (or advertised.listeners) must name a port: other brokers and clients reach this one there")
	}
	self := cluster.BrokerInfo{ID: ccfg.NodeID, Host: s.advHost, Port: port, Rack: ccfg.Rack}
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	// The embedded etcd member keeps its data in <metadata.log.dir>/etcd
	// (default <log.dirs>/etcd).
	dataDir := s.cfg.LogDir()
	if s.cfg.MetadataLogDir != "" {
		dataDir = s.cfg.MetadataLogDir
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("broker: cannot create the cluster's data dir %q: %w", dataDir, err)
	}
	node, err := cluster.Start(ctx, ccfg, dataDir, self, s.log.With("component", "cluster"))
	if err != nil {
		return fmt.Errorf("broker: joining the cluster: %w", err)
	}
	s.cl = node
	s.fetchers = newFetchers(s)
	s.pids.meta = etcdProducerIDs{s.cl.Client()}
	s.offsets.clusterCreate = func() error { return s.ensureOffsetsTopic(s.ctx) }
	s.offsets.groups = s.groups
	s.hwStart = s.loadHWCheckpoint()
	s.topics.newRep = func(p *partition) { s.attachReplica(p) }
	for _, t := range s.topics.all() {
		for _, p := range t.parts() {
			s.attachReplica(p)
		}
	}
	s.reconcile(node.View().Snapshot())
	s.wg.Add(3)
	go s.reconcileLoop()
	go s.isrLoop()
	go s.hwCheckpointLoop()
	return nil
}

// reconcileLoop applies every new view of the cluster until the broker stops.
func (s *Server) reconcileLoop() {
	defer s.wg.Done()
	v := s.cl.View()
	for {
		ch := v.Changed()
		s.reconcile(v.Snapshot())
		select {
		case <-ch:
		case <-s.cl.Fenced():
			s.log.Error("this broker lost its registration in etcd (its session expired): it stops leading and rejoins")
			s.stepDownAll()
			if !s.rejoin() {
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// rejoin registers again after the broker was fenced, retrying until it
// succeeds or the broker stops (false).
func (s *Server) rejoin() bool {
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		err := s.cl.Rejoin(ctx)
		cancel()
		if err == nil {
			s.log.Info("rejoined the cluster", "broker_epoch", s.brokerEpoch())
			return true
		}
		s.log.Warn("cannot rejoin the cluster yet", "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
		t.Stop()
		backoff = min(2*backoff, 5*time.Second)
	}
	return false
}

// reconcile makes the local topics and replica roles what snap says.
func (s *Server) reconcile(snap *cluster.Snapshot) {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	s.quotas.set(snap.ClientQuotas) // the snapshot's maps are never changed
	s.applyClusterBrokerConfigs(snap)
	for _, t := range s.topics.all() {
		if rec, ok := snap.Topics[t.name]; !ok || rec.ID != t.id {
			s.dropLocal(t)
		}
	}
	names := slices.Sorted(maps.Keys(snap.Topics))
	for _, name := range names {
		rec := snap.Topics[name]
		n := int32(len(rec.Replicas))
		t := s.topics.get(name)
		if t == nil {
			var err error
			if t, err = s.topics.createWithID(name, rec.ID, n, rec.Configs, false); err != nil {
				s.log.Warn("cannot create a replica of a cluster topic", "topic", name, "err", err)
				continue
			}
		}
		if int32(len(t.parts())) < n {
			if err := s.topics.grow(t, n, false); err != nil {
				s.log.Warn("cannot add partitions", "topic", name, "err", err)
			}
		}
		if !maps.Equal(rec.Configs, t.cfg.Load().overrides) && !(len(rec.Configs) == 0 && len(t.cfg.Load().overrides) == 0) {
			if err := s.topics.setConfig(t, rec.Configs, false); err != nil {
				s.log.Warn("cannot apply topic configs", "topic", name, "err", err)
			}
		}
		for _, p := range t.parts() {
			st, ok := snap.Partitions[cluster.TP{Topic: name, Partition: p.index}]
			if !ok || int(p.index) >= len(rec.Replicas) {
				continue
			}
			r := p.rep.Load()
			if r == nil {
				r = s.attachReplica(p)
			}
			r.apply(st, rec.Replicas[p.index])
		}
		if name == offsetsTopic {
			s.offsets.clusterSync(t)
		}
	}
}

// attachReplica gives p its replication state, leading nothing until etcd's
// state is applied; the high watermark starts at the checkpoint (never past
// the log end), else at the log start.
func (s *Server) attachReplica(p *partition) *replica {
	if r := p.rep.Load(); r != nil {
		return r
	}
	r := newReplica(s, p, s.cfg.BrokerID)
	hw, ok := s.hwStart[cluster.TP{Topic: p.topic.name, Partition: p.index}]
	if !ok {
		hw = p.log.LogStartOffset()
	}
	p.log.SetReplicated(true, min(hw, p.log.LogEndOffset()))
	p.rep.Store(r)
	return r
}

// dropLocal deletes the local copy of a topic etcd no longer has.
func (s *Server) dropLocal(t *topic) {
	for _, p := range t.parts() {
		if r := p.rep.Load(); r != nil {
			r.stepDown()
		}
	}
	if err := s.deleteTopic(t); err != nil && !errors.Is(err, errUnknownTopic) {
		s.log.Warn("cannot delete the local copy of a deleted topic", "topic", t.name, "err", err)
	}
}

// stepDownAll stops every leadership and fetch (fenced, or stopping).
func (s *Server) stepDownAll() {
	for _, t := range s.topics.all() {
		for _, p := range t.parts() {
			if r := p.rep.Load(); r != nil {
				r.stepDown()
			}
		}
	}
}

// isrLoop shrinks the ISRs of the partitions this broker leads, checking
// every half replica.lag.time.max.ms, as Kafka does.
func (s *Server) isrLoop() {
	defer s.wg.Done()
	lag := ms(s.cfg.ReplicaLagTimeMaxMs)
	tick := time.NewTicker(max(lag/2, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			for _, t := range s.topics.all() {
				for _, p := range t.parts() {
					if r := p.rep.Load(); r != nil {
						r.shrink(now, lag)
					}
				}
			}
		}
	}
}

// stopCluster leaves the cluster: a controlled shutdown first (the
// controller moves this broker's leaderships away, so producers see only
// retriable errors), then the registration and etcd.
func (s *Server) stopCluster(ctx context.Context) {
	if s.cl == nil {
		return
	}
	if s.cfg.ControlledShutdownEnable && !s.fenced() {
		if err := s.cl.ControlledShutdown(ctx); err != nil {
			s.log.Warn("controlled shutdown did not finish: leaderships move when the session expires", "err", err)
		} else {
			s.log.Info("controlled shutdown: this broker leads no partition")
		}
	}
	s.stepDownAll()
}

// replicaFor returns p's replication state in a cluster, nil on one node.
func replicaFor(p *partition) *replica {
	if p == nil {
		return nil
	}
	return p.rep.Load()
}

// etcdProducerIDs allocates producer id blocks from one counter in etcd, so
// ids are unique across the cluster's brokers (Kafka's controller hands out
// blocks the same way, KIP-730).
type etcdProducerIDs struct{ c *clientv3.Client }

const producerIDKey = "/strata/producer-ids"

func (e etcdProducerIDs) AllocateProducerIDs(n int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		get, err := e.c.Get(ctx, producerIDKey)
		if err != nil {
			return -1, err
		}
		var next int64
		var cmp clientv3.Cmp
		if len(get.Kvs) == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(producerIDKey), "=", 0)
		} else {
			if len(get.Kvs[0].Value) != 8 {
				return -1, fmt.Errorf("broker: %s holds %d bytes, want 8", producerIDKey, len(get.Kvs[0].Value))
			}
			next = int64(binary.BigEndian.Uint64(get.Kvs[0].Value))
			cmp = clientv3.Compare(clientv3.ModRevision(producerIDKey), "=", get.Kvs[0].ModRevision)
		}
		val := make([]byte, 8)
		binary.BigEndian.PutUint64(val, uint64(next+n))
		txn, err := e.c.Txn(ctx).If(cmp).Then(clientv3.OpPut(producerIDKey, string(val))).Commit()
		if err != nil {
			return -1, err
		}
		if txn.Succeeded {
			return next, nil
		}
	}
}
