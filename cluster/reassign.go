package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Reassignment is a partition's pending move to new replicas (KIP-455).
// While it lasts the partition's replicas are Target followed by the
// Original replicas not in Target (Kafka's order): the adding replicas
// (Target - Original) follow the leader and catch up; once the ISR holds all
// of Target the controller completes it.
type Reassignment struct {
	Original []int32
	Target   []int32
}

// Adding lists the target replicas that were not replicas before.
func (r Reassignment) Adding() []int32 { return minus(r.Target, r.Original) }

// Removing lists the original replicas that are not in the target.
func (r Reassignment) Removing() []int32 { return minus(r.Original, r.Target) }

// Replicas is the union the partition has during the move: the target
// first.
func (r Reassignment) Replicas() []int32 {
	return append(slices.Clone(r.Target), r.Removing()...)
}

func minus(a, b []int32) []int32 {
	out := []int32{}
	for _, x := range a {
		if !has(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Assigned is partition p's assignment as it will be once no move is
// pending: the target of a pending reassignment, else its replicas.
func (rec TopicRecord) Assigned(p int32) []int32 {
	if ra, ok := rec.Reassignments[p]; ok {
		return ra.Target
	}
	return rec.Replicas[p]
}

// cloneRecord copies rec deeply enough to change its replicas and
// reassignments (a snapshot's record is shared).
func cloneRecord(rec TopicRecord) TopicRecord {
	rec.Replicas = slices.Clone(rec.Replicas)
	rec.Reassignments = maps.Clone(rec.Reassignments)
	return rec
}

// AlterPartitionReassignment is Kafka's AlterPartitionReassignments on one
// partition. A target starts (or replaces) a reassignment: the partition's
// replicas become the original ones (those before any pending move) and
// the target's union; a target with nothing to add or remove just sets the
// replicas (their order). A nil target cancels the pending one: the
// replicas are the original ones again. Replicas that leave the replica set
// leave the ISR in the same write, and a leader that leaves is replaced by
// the first remaining replica in the ISR and live (leader epoch bumped).
// The write is a compare-and-swap on the topic's and the partition's keys
// (decided again on a newer view if either changed). It returns the write's
// revision (0: nothing to change), or ErrUnknownTopic,
// ErrInvalidAssignment, ErrNoReassignmentInProgress.
func (n *Node) AlterPartitionReassignment(ctx context.Context, tp TP, target []int32) (int64, error) {
	if target != nil {
		if err := checkReplicas([][]int32{target}); err != nil {
			return 0, err
		}
	}
	for {
		s := n.view.Snapshot()
		rec, ok := s.Topics[tp.Topic]
		st, hasState := s.Partitions[tp]
		if !ok || !hasState || tp.Partition < 0 || int(tp.Partition) >= len(rec.Replicas) {
			return 0, ErrUnknownTopic
		}
		for _, id := range target {
			if _, ok := s.Brokers[id]; !ok {
				return 0, fmt.Errorf("%w: broker %d is not registered", ErrInvalidAssignment, id)
			}
		}
		next, nst, err := reassign(s, rec, tp.Partition, st, target)
		if err != nil || next == nil {
			return 0, err
		}
		rev, ok, err := n.putReassignment(ctx, s, tp, *next, nst)
		if err != nil || ok {
			return rev, err
		}
		// The topic or the partition changed: decide again on the view
		// that has the change.
		if err := n.view.WaitRev(ctx, rev); err != nil {
			return 0, err
		}
	}
}

// putReassignment writes rec and tp's state st if the topic's and the
// partition's keys are still at the revisions s saw; it returns the
// transaction's revision and whether it wrote.
func (n *Node) putReassignment(ctx context.Context, s *Snapshot, tp TP, rec TopicRecord, st PartitionState) (int64, bool, error) {
	resp, err := n.client.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(topicKey(tp.Topic)), "=", s.topicRev[tp.Topic]),
		clientv3.Compare(clientv3.ModRevision(partitionKey(tp)), "=", s.partRev[tp]),
	).Then(
		clientv3.OpPut(topicKey(tp.Topic), topicValue(rec)),
		clientv3.OpPut(partitionKey(tp), stateValue(st)),
	).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("cluster: cannot reassign %s: %w", tp, err)
	}
	if resp.Succeeded {
		n.log.Info("cluster: partition reassignment written", "partition", tp.String(), "replicas", rec.Replicas[tp.Partition], "pending", rec.Reassignments[tp.Partition])
		n.logChange(tp, st)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

func stateValue(st PartitionState) string {
	val, _ := json.Marshal(st)
	return string(val)
}

// reassign is AlterPartitionReassignment's rule on partition p of rec: the
// new record and state, or a nil record when nothing changes.
func reassign(s *Snapshot, rec TopicRecord, p int32, st PartitionState, target []int32) (*TopicRecord, PartitionState, error) {
	pending, moving := rec.Reassignments[p]
	base := rec.Replicas[p]
	if moving {
		base = pending.Original
	}
	next := cloneRecord(rec)
	if next.Reassignments == nil {
		next.Reassignments = map[int32]Reassignment{}
	}
	var replicas []int32
	switch {
	case target == nil && !moving:
		return nil, st, ErrNoReassignmentInProgress
	case target == nil:
		replicas = slices.Clone(pending.Original)
		delete(next.Reassignments, p)
	default:
		ra := Reassignment{Original: slices.Clone(base), Target: slices.Clone(target)}
		if len(ra.Adding()) == 0 && len(ra.Removing()) == 0 {
			replicas = ra.Target
			delete(next.Reassignments, p)
		} else {
			replicas = ra.Replicas()
			next.Reassignments[p] = ra
		}
	}
	if len(next.Reassignments) == 0 {
		next.Reassignments = nil
	}
	if slices.Equal(replicas, rec.Replicas[p]) && maps.EqualFunc(next.Reassignments, rec.Reassignments, func(a, b Reassignment) bool {
		return slices.Equal(a.Original, b.Original) && slices.Equal(a.Target, b.Target)
	}) {
		return nil, st, nil
	}
	next.Replicas[p] = replicas
	nst, ok := shrinkTo(s, st, replicas, replicas)
	if !ok {
		return nil, st, fmt.Errorf("%w: no in-sync replica of %s-%d would remain among %v", ErrInvalidAssignment, rec.Name, p, replicas)
	}
	return &next, nst, nil
}

// shrinkTo is st with its ISR cut to replicas and, when its leader is not
// among them, the first of candidates that is in the ISR and live as the
// leader (leader epoch bumped); the partition epoch is bumped (the replica
// set changes with it). ok is false when a leader must go and no candidate
// can take over.
func shrinkTo(s *Snapshot, st PartitionState, replicas, candidates []int32) (PartitionState, bool) {
	next := st
	next.ISR = []int32{}
	for _, r := range st.ISR {
		if has(replicas, r) {
			next.ISR = append(next.ISR, r)
		}
	}
	next.PartitionEpoch = st.PartitionEpoch + 1
	if st.Leader < 0 || has(replicas, st.Leader) {
		if st.Leader < 0 && len(next.ISR) == 0 {
			return st, false // an offline partition keeps its last ISR member
		}
		return next, true
	}
	for _, r := range candidates {
		if has(next.ISR, r) && s.live(r) {
			next.Leader, next.LeaderEpoch, next.LeaderBrokerEpoch = r, st.LeaderEpoch+1, s.Brokers[r].Epoch
			return next, true
		}
	}
	return st, false
}

// completeReassignments is the controller completing every pending
// reassignment whose target replicas are all in the ISR: the topic's
// replicas become the target, the removing replicas leave the ISR, and a
// leader outside the target is replaced by the first target replica in the
// ISR and live (leader epoch bumped). One transaction per topic (at most
// controllerBatch partitions; the rest on the next pass), fenced by the
// controller epoch and the mod revisions of the topic key and of every
// partition key it writes: a fence that fails leaves it to the next view
// change. It returns after the view has applied its writes.
func (n *Node) completeReassignments(s *Snapshot, sess *session) error {
	var last int64
	for _, name := range slices.Sorted(maps.Keys(s.Topics)) {
		rec := s.Topics[name]
		if len(rec.Reassignments) == 0 {
			continue
		}
		next := cloneRecord(rec)
		var tps []TP
		var sts []PartitionState
		for _, p := range slices.Sorted(maps.Keys(rec.Reassignments)) {
			ra := rec.Reassignments[p]
			tp := TP{name, p}
			st, ok := s.Partitions[tp]
			if !ok || int(p) >= len(rec.Replicas) || len(tps) == controllerBatch || !containsAll(st.ISR, ra.Target) {
				continue
			}
			nst, ok := shrinkTo(s, st, ra.Target, ra.Target)
			if !ok {
				continue // no target replica can lead yet
			}
			next.Replicas[p] = slices.Clone(ra.Target)
			delete(next.Reassignments, p)
			tps, sts = append(tps, tp), append(sts, nst)
		}
		if len(tps) == 0 {
			continue
		}
		if len(next.Reassignments) == 0 {
			next.Reassignments = nil
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(sess.candKey), "=", s.ControllerEpoch),
			clientv3.Compare(clientv3.ModRevision(topicKey(name)), "=", s.topicRev[name]),
		}
		ops := []clientv3.Op{clientv3.OpPut(topicKey(name), topicValue(next))}
		for i, tp := range tps {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(partitionKey(tp)), "=", s.partRev[tp]))
			ops = append(ops, clientv3.OpPut(partitionKey(tp), stateValue(sts[i])))
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		resp, err := n.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
		cancel()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			continue
		}
		last = max(last, resp.Header.Revision)
		for i, tp := range tps {
			n.log.Info("cluster: partition reassignment completed", "partition", tp.String(), "replicas", next.Replicas[tp.Partition])
			n.logChange(tp, sts[i])
		}
	}
	if last > 0 {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		return n.view.WaitRev(ctx, last)
	}
	return nil
}

func containsAll(set, of []int32) bool {
	for _, x := range of {
		if !has(set, x) {
			return false
		}
	}
	return true
}

// Pending is one partition's pending reassignment.
type Pending struct {
	TP
	Reassignment
}

// Reassigning lists the partitions being reassigned, in topic and
// partition order.
func (s *Snapshot) Reassigning() []Pending {
	var out []Pending
	for name, rec := range s.Topics {
		for p, ra := range rec.Reassignments {
			out = append(out, Pending{TP{name, p}, ra})
		}
	}
	slices.SortFunc(out, func(a, b Pending) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return out
}
