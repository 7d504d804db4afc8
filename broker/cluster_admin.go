package broker

// Admin and metadata requests in a cluster: topics are created, grown,
// configured and deleted in etcd (cluster.Node), and answered once this
// broker's view has applied the write, so the next request to this broker
// sees it. Metadata, FindCoordinator and DescribeCluster answer from the
// view: every registered broker with its rack, each partition's leader,
// leader epoch, replicas, ISR and offline replicas, the active controller.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/cluster"
)

// adminTimeout bounds an admin write to etcd and the wait for it to apply here.
const adminTimeout = 30 * time.Second

// liveBrokers lists the registered brokers not shutting down, by id.
func liveBrokers(snap *cluster.Snapshot) []cluster.BrokerInfo {
	var bs []cluster.BrokerInfo
	for _, b := range snap.Brokers {
		if !b.ShuttingDown {
			bs = append(bs, b)
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
	return bs
}

// clusterCreateTopic creates a topic in etcd with the assignment given or
// computed (Kafka's rules, cluster.Assign), and waits until this broker
// holds it. rf -1 is default.replication.factor.
func (s *Server) clusterCreateTopic(ctx context.Context, name string, nparts int32, rf int16, assignment [][]int32, overrides map[string]string, validateOnly bool) (*topic, [][]int32, error) {
	if _, err := s.topics.create(name, max(nparts, 1), overrides, true); err != nil {
		return nil, nil, err
	}
	snap := s.cl.View().Snapshot()
	if _, ok := snap.Topics[name]; ok {
		return nil, nil, fmt.Errorf("%w: %q", errTopicExists, name)
	}
	live := liveBrokers(snap)
	if assignment == nil {
		if rf == -1 {
			rf = s.cfg.DefaultReplicationFactor
		}
		if nparts <= 0 {
			return nil, nil, fmt.Errorf("%w: number of partitions must be at least 1, got %d", errInvalidParts, nparts)
		}
		var err error
		assignment, err = cluster.Assign(live, int(nparts), int(rf), 0)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: replication factor %d with %d live brokers: %v", errInvalidReplicationFactor, rf, len(live), err)
		}
	} else if err := checkAssignment(assignment, snap); err != nil {
		return nil, nil, err
	}
	if validateOnly {
		return nil, assignment, nil
	}
	var id [16]byte
	for id == ([16]byte{}) {
		rand.Read(id[:])
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	rev, err := s.cl.CreateTopic(ctx, cluster.TopicRecord{Name: name, ID: id, Configs: overrides, Replicas: assignment})
	if errors.Is(err, cluster.ErrTopicExists) {
		return nil, nil, fmt.Errorf("%w: %q", errTopicExists, name)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := s.applied(ctx, rev); err != nil {
		return nil, nil, err
	}
	return s.topics.get(name), assignment, nil
}

// errInvalidReplicationFactor is a replication factor the live brokers
// cannot hold.
var errInvalidReplicationFactor = errors.New("invalid replication factor")

// errInvalidAssignment is a replica assignment that names unknown brokers,
// a broker twice, or partitions out of order.
var errInvalidAssignment = errors.New("invalid replica assignment")

func checkAssignment(as [][]int32, snap *cluster.Snapshot) error {
	for p, reps := range as {
		if len(reps) == 0 {
			return fmt.Errorf("%w: partition %d has no replica", errInvalidAssignment, p)
		}
		seen := map[int32]bool{}
		for _, id := range reps {
			if _, ok := snap.Brokers[id]; !ok {
				return fmt.Errorf("%w: partition %d names broker %d, which is not registered", errInvalidAssignment, p, id)
			}
			if seen[id] {
				return fmt.Errorf("%w: partition %d names broker %d twice", errInvalidAssignment, p, id)
			}
			seen[id] = true
		}
		if len(reps) != len(as[0]) {
			return fmt.Errorf("%w: partition %d has %d replicas, partition 0 has %d", errInvalidAssignment, p, len(reps), len(as[0]))
		}
	}
	return nil
}

// applied waits until this broker's view has applied rev and reconciled it.
func (s *Server) applied(ctx context.Context, rev int64) error {
	if err := s.cl.View().WaitRev(ctx, rev); err != nil {
		return err
	}
	s.reconcile(s.cl.View().Snapshot())
	return nil
}

// clusterDeleteTopic deletes a topic in etcd; every replica deletes its copy.
func (s *Server) clusterDeleteTopic(ctx context.Context, t *topic) error {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	rev, err := s.cl.DeleteTopic(ctx, t.name, t.id)
	if errors.Is(err, cluster.ErrUnknownTopic) {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	if err != nil {
		return err
	}
	return s.applied(ctx, rev)
}

// clusterGrow adds partitions in etcd.
func (s *Server) clusterGrow(ctx context.Context, t *topic, n int32, assignment [][]int32, validateOnly bool) error {
	snap := s.cl.View().Snapshot()
	rec, ok := snap.Topics[t.name]
	if !ok || rec.ID != t.id {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	cur := int32(len(rec.Replicas))
	if n <= cur {
		return fmt.Errorf("%w: topic %q has %d partitions; the count can only grow", errInvalidParts, t.name, cur)
	}
	if assignment == nil {
		var err error
		// (The replication factor is partition 0's, without the
		// replicas a pending reassignment adds.)
		assignment, err = cluster.Assign(liveBrokers(snap), int(n-cur), len(rec.Assigned(0)), int(cur))
		if err != nil {
			return fmt.Errorf("%w: %v", errInvalidReplicationFactor, err)
		}
	} else if len(assignment) != int(n-cur) {
		return fmt.Errorf("%w: %d assignments for %d new partitions", errInvalidAssignment, len(assignment), n-cur)
	} else if err := checkAssignment(append([][]int32{rec.Assigned(0)}, assignment...), snap); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	rev, err := s.cl.CreatePartitions(ctx, t.name, t.id, assignment)
	if err != nil {
		return err
	}
	return s.applied(ctx, rev)
}

// clusterSetConfig sets a topic's overrides in etcd.
func (s *Server) clusterSetConfig(t *topic, overrides map[string]string, validateOnly bool) error {
	if _, err := s.topics.resolve(t.name, overrides); err != nil {
		return fmt.Errorf("%w: %v", errInvalidConfig, err)
	}
	if validateOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, adminTimeout)
	defer cancel()
	rev, err := s.cl.SetTopicConfigs(ctx, t.name, t.id, overrides)
	if errors.Is(err, cluster.ErrUnknownTopic) {
		return fmt.Errorf("%w: %q", errUnknownTopic, t.name)
	}
	if err != nil {
		return err
	}
	return s.applied(ctx, rev)
}

// clusterMetadata fills a Metadata response's brokers and controller, and
// one topic's partitions, from the view.
func (s *Server) clusterBrokers(resp *kmsg.MetadataResponse, snap *cluster.Snapshot) {
	for _, b := range liveBrokers(snap) {
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = b.ID, b.Host, b.Port
		if b.Rack != "" {
			rack := b.Rack
			mb.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ControllerID = snap.Controller
}

func (s *Server) clusterPartitions(mt *kmsg.MetadataResponseTopic, snap *cluster.Snapshot, name string) {
	rec, ok := snap.Topics[name]
	if !ok {
		mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	for i, reps := range rec.Replicas {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		st, ok := snap.Partitions[cluster.TP{Topic: name, Partition: int32(i)}]
		if !ok {
			st.Leader = -1
		}
		mp.Leader, mp.LeaderEpoch = st.Leader, st.LeaderEpoch
		mp.Replicas = slices.Clone(reps)
		mp.ISR = slices.Clone(st.ISR)
		for _, id := range reps {
			if _, live := snap.Brokers[id]; !live {
				mp.OfflineReplicas = append(mp.OfflineReplicas, id)
			}
		}
		if st.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
}

// coordinatorFor is the broker that coordinates group: the leader of its
// __consumer_offsets partition. ok is false while it has none (or the topic
// is not created yet).
func (s *Server) coordinatorFor(group string) (cluster.BrokerInfo, bool) {
	snap := s.cl.View().Snapshot()
	rec, ok := snap.Topics[offsetsTopic]
	if !ok || len(rec.Replicas) == 0 {
		return cluster.BrokerInfo{}, false
	}
	st, ok := snap.Partitions[cluster.TP{Topic: offsetsTopic, Partition: groupPartition(group, int32(len(rec.Replicas)))}]
	if !ok || st.Leader < 0 {
		return cluster.BrokerInfo{}, false
	}
	b, ok := snap.Brokers[st.Leader]
	return b, ok
}

// ensureOffsetsTopic creates __consumer_offsets in etcd on first use, with
// offsets.topic.replication.factor replicas, lowered (with a warning) to
// the live broker count as Kafka's development setups need.
func (s *Server) ensureOffsetsTopic(ctx context.Context) error {
	if _, ok := s.cl.View().Snapshot().Topics[offsetsTopic]; ok {
		return nil
	}
	live := len(liveBrokers(s.cl.View().Snapshot()))
	rf := s.cfg.OffsetsTopicReplicationFactor
	if int(rf) > live {
		s.log.Warn("offsets.topic.replication.factor is above the live broker count: __consumer_offsets is created with fewer replicas",
			"offsets.topic.replication.factor", rf, "live_brokers", live)
		rf = int16(max(live, 1))
	}
	_, _, err := s.clusterCreateTopic(ctx, offsetsTopic, s.offsets.partitions, rf, nil, s.offsets.topicConfigs(), false)
	if errors.Is(err, errTopicExists) {
		return nil
	}
	return err
}

// clusterIDMulti is the cluster id a cluster's brokers answer.
const clusterIDMulti = "strata-cluster"

func (s *Server) handleClusterMetadata(ctx context.Context, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = req.Version
	snap := s.cl.View().Snapshot()
	s.clusterBrokers(resp, snap)
	cid := clusterIDMulti
	resp.ClusterID = &cid
	resp.AuthorizedOperations = noAuthorizedOps
	allowAuto := s.cfg.AutoCreateTopicsEnable && (req.Version < 4 || req.AllowAutoTopicCreation)
	topic := func(name string, rec cluster.TopicRecord) kmsg.MetadataResponseTopic {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = &name
		mt.TopicID = rec.ID
		mt.IsInternal = isInternalTopic(name)
		mt.AuthorizedOperations = noAuthorizedOps
		s.clusterPartitions(&mt, snap, name)
		return mt
	}
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		names := make([]string, 0, len(snap.Topics))
		for name := range snap.Topics {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			resp.Topics = append(resp.Topics, topic(name, snap.Topics[name]))
		}
		return resp, nil
	}
	byID := map[[16]byte]string{}
	for name, rec := range snap.Topics {
		byID[rec.ID] = name
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil || *rt.Topic == "" {
			name, ok := byID[rt.TopicID]
			if !ok {
				code := kerr.UnknownTopicID
				if rt.TopicID == ([16]byte{}) {
					code = kerr.InvalidTopicException
				}
				resp.Topics = append(resp.Topics, metadataTopicError(req.Version, "", rt.TopicID, code))
				continue
			}
			resp.Topics = append(resp.Topics, topic(name, snap.Topics[name]))
			continue
		}
		name := *rt.Topic
		rec, ok := snap.Topics[name]
		if !ok {
			code := kerr.UnknownTopicOrPartition
			switch {
			case validTopicName(name) != nil:
				code = kerr.InvalidTopicException
			case allowAuto && isInternalTopic(name):
				if err := s.ensureOffsetsTopic(ctx); err != nil {
					s.log.Warn("cannot create the offsets topic", "err", err)
				}
			case allowAuto:
				// Answered at once once created, as on one node. Kafka
				// answers LEADER_NOT_AVAILABLE first; kafka-go's Writer gives
				// up on that, while a produce that reaches a leader before it
				// took the partition gets a retriable NOT_LEADER_OR_FOLLOWER.
				_, _, err := s.clusterCreateTopic(ctx, name, s.cfg.NumPartitions, -1, nil, nil, false)
				if err != nil && !errors.Is(err, errTopicExists) {
					s.log.Warn("auto-create failed", "topic", name, "err", err)
				}
			}
			snap = s.cl.View().Snapshot()
			if rec, ok = snap.Topics[name]; !ok {
				resp.Topics = append(resp.Topics, metadataTopicError(req.Version, name, [16]byte{}, code))
				continue
			}
		}
		resp.Topics = append(resp.Topics, topic(name, rec))
	}
	return resp, nil
}

// clusterFindCoordinator answers a group coordinator lookup: the leader of
// the group's offsets partition (the topic is created on first lookup).
func (s *Server) clusterFindCoordinator(req *kmsg.FindCoordinatorRequest, resp *kmsg.FindCoordinatorResponse) *kmsg.FindCoordinatorResponse {
	if _, err := s.offsets.ensure(); err != nil {
		s.log.Warn("cannot create the offsets topic", "err", err)
	}
	answer := func(key string) (int32, string, int32, int16) {
		b, ok := s.coordinatorFor(key)
		if !ok {
			return -1, "", -1, kerr.CoordinatorNotAvailable.Code
		}
		return b.ID, b.Host, b.Port, 0
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = key
			c.NodeID, c.Host, c.Port, c.ErrorCode = answer(key)
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp
	}
	resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = answer(req.CoordinatorKey)
	return resp
}
