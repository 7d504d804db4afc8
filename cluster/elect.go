package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ElectLeaders is Kafka's ElectLeaders on one partition: preferred (the
// first replica of the assignment leads, if it is live and in the ISR) or
// unclean (a partition without a live leader gets the first live ISR
// member, else the first live replica, with an ISR of itself: records the
// old ISR held beyond it are lost, as with unclean.leader.election.enable).
// The new state, with the leader and partition epochs bumped, is written by
// compare-and-swap on the partition's state, as the controller's writes
// are, so a decision taken meanwhile by the controller or the leader is
// never overwritten: the election is decided again on the newer state. It
// returns the write's revision, or ErrElectionNotNeeded,
// ErrPreferredLeaderNotAvailable, ErrEligibleLeadersNotAvailable,
// ErrUnknownTopic.
func (n *Node) ElectLeaders(ctx context.Context, tp TP, unclean bool) (int64, error) {
	for {
		s := n.view.Snapshot()
		rec, ok := s.Topics[tp.Topic]
		st, hasState := s.Partitions[tp]
		if !ok || !hasState || tp.Partition < 0 || int(tp.Partition) >= len(rec.Replicas) {
			return 0, ErrUnknownTopic
		}
		next, err := elect(s, rec.Replicas[tp.Partition], st, unclean)
		if err != nil {
			return 0, err
		}
		val, _ := json.Marshal(next)
		key := partitionKey(tp)
		resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", s.partRev[tp])).
			Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return 0, fmt.Errorf("cluster: cannot elect a leader for %s: %w", tp, err)
		}
		if resp.Succeeded {
			n.logChange(tp, next)
			return resp.Header.Revision, nil
		}
		// The state changed: decide again once the view has the change.
		if err := n.view.WaitRev(ctx, resp.Header.Revision); err != nil {
			return 0, err
		}
	}
}

// elect is ElectLeaders' rule on one partition's state.
func elect(s *Snapshot, replicas []int32, st PartitionState, unclean bool) (PartitionState, error) {
	leaderLive := st.Leader >= 0 && s.live(st.Leader) && s.Brokers[st.Leader].Epoch == st.LeaderBrokerEpoch
	pick := int32(-1)
	isr := slices.Clone(st.ISR)
	if !unclean {
		if len(replicas) == 0 {
			return st, ErrPreferredLeaderNotAvailable
		}
		p := replicas[0]
		if st.Leader == p && leaderLive {
			return st, ErrElectionNotNeeded
		}
		if !s.live(p) || !has(st.ISR, p) {
			return st, ErrPreferredLeaderNotAvailable
		}
		pick = p
	} else {
		if leaderLive {
			return st, ErrElectionNotNeeded
		}
		for _, r := range replicas {
			if has(st.ISR, r) && s.live(r) {
				pick = r
				break
			}
		}
		if pick < 0 {
			for _, r := range replicas {
				if s.live(r) {
					pick, isr = r, []int32{r}
					break
				}
			}
		}
		if pick < 0 {
			return st, ErrEligibleLeadersNotAvailable
		}
	}
	next := st
	next.Leader, next.LeaderEpoch, next.PartitionEpoch, next.LeaderBrokerEpoch = pick, st.LeaderEpoch+1, st.PartitionEpoch+1, s.Brokers[pick].Epoch
	next.ISR = isr
	return next, nil
}
