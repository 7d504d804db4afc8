package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// initialState is a new partition's state: ISR the live replicas in
// assignment order, the first of them the leader.
func initialState(s *Snapshot, replicas []int32) PartitionState {
	st := PartitionState{Leader: -1, ISR: []int32{}}
	for _, r := range replicas {
		if s.live(r) {
			st.ISR = append(st.ISR, r)
		}
	}
	if len(st.ISR) > 0 {
		st.Leader = st.ISR[0]
		st.LeaderBrokerEpoch = s.Brokers[st.Leader].Epoch
	}
	return st
}

func checkReplicas(replicas [][]int32) error {
	for p, rs := range replicas {
		if len(rs) == 0 {
			return fmt.Errorf("%w: partition %d has no replica", ErrInvalidAssignment, p)
		}
		for i, r := range rs {
			if r < 0 || slices.Contains(rs[:i], r) {
				return fmt.Errorf("%w: partition %d lists broker %d twice or a negative id", ErrInvalidAssignment, p, r)
			}
		}
	}
	return nil
}

// CreateTopic writes the topic and the initial state of each partition in
// one transaction if no topic of that name exists (else ErrTopicExists). It
// returns the transaction's revision.
func (n *Node) CreateTopic(ctx context.Context, rec TopicRecord) (int64, error) {
	if err := checkReplicas(rec.Replicas); err != nil {
		return 0, err
	}
	s := n.view.Snapshot()
	key := topicKey(rec.Name)
	val := topicValue(TopicRecord{ID: rec.ID, Configs: rec.Configs, Replicas: rec.Replicas})
	ops := []clientv3.Op{clientv3.OpPut(key, val)}
	var rest []clientv3.Op
	for p, rs := range rec.Replicas {
		st, _ := json.Marshal(initialState(s, rs))
		op := clientv3.OpPut(partitionKey(TP{rec.Name, int32(p)}), string(st))
		if len(ops) < maxTxnOps {
			ops = append(ops, op)
		} else {
			rest = append(rest, op)
		}
	}
	resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(ops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: cannot create topic %q: %w", rec.Name, err)
	}
	if !resp.Succeeded {
		return 0, ErrTopicExists
	}
	rev := resp.Header.Revision
	if n.afterFirstCreateTxn != nil {
		n.afterFirstCreateTxn()
	}
	// More partitions than one transaction holds: the rest follow, each
	// conditioned on the topic being the one just created and on the
	// partition having no state yet. A creator that dies in between leaves
	// a topic with partitions without state; the controller gives them
	// their initial state (reconcile), and a partition it got to first is
	// not written again here.
	created := rev
	for len(rest) > 0 {
		k := min(len(rest), maxTxnOps-1)
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", created)}
		for _, op := range rest[:k] {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(string(op.KeyBytes())), "=", 0))
		}
		resp, err := n.client.Txn(ctx).If(cmps...).Then(rest[:k]...).Commit()
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot create the partitions of topic %q: %w", rec.Name, err)
		}
		if resp.Succeeded {
			rev, rest = resp.Header.Revision, rest[k:]
			continue
		}
		// The topic is gone, or the controller wrote some of these
		// partitions' states: drop those and go on.
		if rest, err = n.withoutState(ctx, rec.Name, created, rest); err != nil {
			return 0, err
		}
	}
	return rev, nil
}

// withoutState keeps the partition puts of ops whose keys have no state
// yet (one keys-only read of the topic's partitions); ErrUnknownTopic when
// the topic is no longer the one created at created.
func (n *Node) withoutState(ctx context.Context, name string, created int64, ops []clientv3.Op) ([]clientv3.Op, error) {
	key := topicKey(name)
	tresp, err := n.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot read %s: %w", key, err)
	}
	if len(tresp.Kvs) == 0 || tresp.Kvs[0].CreateRevision != created {
		return nil, ErrUnknownTopic
	}
	presp, err := n.client.Get(ctx, partitionsOf(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot read the partitions of %q: %w", name, err)
	}
	has := make(map[string]bool, len(presp.Kvs))
	for _, kv := range presp.Kvs {
		has[string(kv.Key)] = true
	}
	out := ops[:0:0]
	for _, op := range ops {
		if !has[string(op.KeyBytes())] {
			out = append(out, op)
		}
	}
	return out, nil
}

// topicValue is rec as the topic key holds it (the name is the key's).
func topicValue(rec TopicRecord) string {
	val, _ := json.Marshal(TopicRecord{ID: rec.ID, Configs: rec.Configs, Replicas: rec.Replicas, Reassignments: rec.Reassignments})
	return string(val)
}

// getTopic reads the topic record and its mod revision; ErrUnknownTopic when
// the name holds another id or none.
func (n *Node) getTopic(ctx context.Context, name string, id [16]byte) (TopicRecord, int64, error) {
	resp, err := n.client.Get(ctx, topicKey(name))
	if err != nil {
		return TopicRecord{}, 0, fmt.Errorf("cluster: cannot read topic %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return TopicRecord{}, 0, ErrUnknownTopic
	}
	var rec TopicRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return TopicRecord{}, 0, fmt.Errorf("cluster: topic %q does not decode: %w", name, err)
	}
	if rec.ID != id {
		return TopicRecord{}, 0, ErrUnknownTopic
	}
	rec.Name = name
	return rec, resp.Kvs[0].ModRevision, nil
}

// updateTopic writes rec (and ops) if the topic is still at modRev.
func (n *Node) updateTopic(ctx context.Context, rec TopicRecord, modRev int64, ops ...clientv3.Op) (int64, bool, error) {
	ops = append([]clientv3.Op{clientv3.OpPut(topicKey(rec.Name), topicValue(rec))}, ops...)
	resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(topicKey(rec.Name)), "=", modRev)).Then(ops...).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("cluster: cannot update topic %q: %w", rec.Name, err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// CreatePartitions appends partitions with the given replicas (one list per
// new partition) to the topic.
func (n *Node) CreatePartitions(ctx context.Context, name string, id [16]byte, newReplicas [][]int32) (int64, error) {
	if err := checkReplicas(newReplicas); err != nil {
		return 0, err
	}
	if len(newReplicas) >= maxTxnOps {
		return 0, fmt.Errorf("%w: at most %d partitions may be added at once", ErrInvalidAssignment, maxTxnOps-1)
	}
	for {
		rec, modRev, err := n.getTopic(ctx, name, id)
		if err != nil {
			return 0, err
		}
		s := n.view.Snapshot()
		var ops []clientv3.Op
		for i, rs := range newReplicas {
			st, _ := json.Marshal(initialState(s, rs))
			ops = append(ops, clientv3.OpPut(partitionKey(TP{name, int32(len(rec.Replicas) + i)}), string(st)))
		}
		rec.Replicas = append(slices.Clone(rec.Replicas), newReplicas...)
		rev, ok, err := n.updateTopic(ctx, rec, modRev, ops...)
		if err != nil || ok {
			return rev, err
		}
	}
}

// SetTopicConfigs replaces the topic's configs.
func (n *Node) SetTopicConfigs(ctx context.Context, name string, id [16]byte, configs map[string]string) (int64, error) {
	for {
		rec, modRev, err := n.getTopic(ctx, name, id)
		if err != nil {
			return 0, err
		}
		rec.Configs = maps.Clone(configs)
		rev, ok, err := n.updateTopic(ctx, rec, modRev)
		if err != nil || ok {
			return rev, err
		}
	}
}

// DeleteTopic removes the topic and its partitions' states.
func (n *Node) DeleteTopic(ctx context.Context, name string, id [16]byte) (int64, error) {
	for {
		_, modRev, err := n.getTopic(ctx, name, id)
		if err != nil {
			return 0, err
		}
		resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(topicKey(name)), "=", modRev)).
			Then(clientv3.OpDelete(topicKey(name)), clientv3.OpDelete(partitionsOf(name), clientv3.WithPrefix())).Commit()
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot delete topic %q: %w", name, err)
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
	}
}

// AlterPartition is the leader changing its ISR: it writes newISR with
// PartitionEpoch+1 if the stored state is still cur (partition and leader
// epoch) and this broker's registration is the one cur's leader was elected
// with; ErrStalePartitionEpoch otherwise.
func (n *Node) AlterPartition(ctx context.Context, tp TP, cur PartitionState, newISR []int32) (PartitionState, error) {
	self := n.Self()
	if cur.Leader != self.ID {
		return PartitionState{}, ErrNotLeader
	}
	key := partitionKey(tp)
	tresp, err := n.client.Get(ctx, topicKey(tp.Topic))
	if err != nil {
		return PartitionState{}, fmt.Errorf("cluster: cannot read topic %q: %w", tp.Topic, err)
	}
	var rec TopicRecord
	if len(tresp.Kvs) == 0 || json.Unmarshal(tresp.Kvs[0].Value, &rec) != nil || int(tp.Partition) >= len(rec.Replicas) {
		return PartitionState{}, ErrUnknownTopic
	}
	if !has(newISR, self.ID) {
		return PartitionState{}, ErrInvalidISR
	}
	for i, r := range newISR {
		if !has(rec.Replicas[tp.Partition], r) || slices.Contains(newISR[:i], r) {
			return PartitionState{}, ErrInvalidISR
		}
	}
	resp, err := n.client.Get(ctx, key)
	if err != nil {
		return PartitionState{}, fmt.Errorf("cluster: cannot read partition %s: %w", tp, err)
	}
	if len(resp.Kvs) == 0 {
		return PartitionState{}, ErrUnknownTopic
	}
	var st PartitionState
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		return PartitionState{}, fmt.Errorf("cluster: partition %s does not decode: %w", tp, err)
	}
	if st.PartitionEpoch != cur.PartitionEpoch || st.LeaderEpoch != cur.LeaderEpoch || st.Leader != cur.Leader {
		return PartitionState{}, ErrStalePartitionEpoch
	}
	next := st
	next.ISR, next.PartitionEpoch = slices.Clone(newISR), st.PartitionEpoch+1
	val, _ := json.Marshal(next)
	tx, err := n.client.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision),
		clientv3.Compare(clientv3.CreateRevision(brokerKey(self.ID)), "=", st.LeaderBrokerEpoch),
	).Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return PartitionState{}, fmt.Errorf("cluster: cannot alter partition %s: %w", tp, err)
	}
	if !tx.Succeeded {
		return PartitionState{}, ErrStalePartitionEpoch
	}
	return next, nil
}
