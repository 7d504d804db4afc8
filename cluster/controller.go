package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// controlLoop runs the controller while this node is elected: on every view
// change it reconciles leaders and ISRs (level-triggered).
func (n *Node) controlLoop() {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		ch := n.view.Changed()
		s := n.view.Snapshot()
		if s.Controller == n.cfg.NodeID && s.cands[n.candKey].rev == s.ControllerEpoch && s.ControllerEpoch != 0 {
			if err := n.reconcile(s); err != nil && n.ctx.Err() == nil {
				n.log.Warn("cluster: the controller's write failed; retrying", "err", err)
				retry.Reset(100 * time.Millisecond)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.fenced:
			return
		case <-ch:
		case <-retry.C:
		}
	}
}

// reconcile writes, for each partition that needs it, its new leader and
// ISR. Each write is fenced by the controller epoch and the partition key's
// mod revision; it returns after the view has applied them.
func (n *Node) reconcile(s *Snapshot) error {
	var last int64
	for tp, st := range s.Partitions {
		rec, ok := s.Topics[tp.Topic]
		if !ok || int(tp.Partition) >= len(rec.Replicas) {
			continue
		}
		next, change := decide(s, rec.Replicas[tp.Partition], st, n.unclean(rec))
		if !change {
			continue
		}
		rev, err := n.controllerPut(s, tp, next)
		if err != nil {
			return err
		}
		if rev > 0 {
			n.log.Info("cluster: partition state changed", "partition", tp.String(), "leader", next.Leader, "leader_epoch", next.LeaderEpoch, "isr", next.ISR, "partition_epoch", next.PartitionEpoch)
		}
		last = max(last, rev)
	}
	if last > 0 {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		return n.view.WaitRev(ctx, last)
	}
	return nil
}

func (n *Node) unclean(rec TopicRecord) bool {
	switch rec.Configs["unclean.leader.election.enable"] {
	case "true":
		return true
	case "false":
		return false
	}
	return n.cfg.UncleanLeaderElection
}

// controllerPut is one fenced write; it returns 0 when a fence failed (a
// newer controller, or the partition changed: the next view change decides
// again).
func (n *Node) controllerPut(s *Snapshot, tp TP, st PartitionState) (int64, error) {
	val, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	resp, err := n.client.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(n.candKey), "=", s.ControllerEpoch),
		clientv3.Compare(clientv3.ModRevision(partitionKey(tp)), "=", s.partRev[tp]),
	).Then(clientv3.OpPut(partitionKey(tp), string(val))).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, nil
	}
	return resp.Header.Revision, nil
}

// decide is the controller's rule for one partition: the state it should
// have, and whether that differs from st.
func decide(s *Snapshot, replicas []int32, st PartitionState, unclean bool) (PartitionState, bool) {
	liveISR := make([]int32, 0, len(st.ISR))
	for _, r := range st.ISR {
		if s.live(r) {
			liveISR = append(liveISR, r)
		}
	}
	leaderOK := st.Leader >= 0 && s.live(st.Leader) && s.Brokers[st.Leader].Epoch == st.LeaderBrokerEpoch
	if leaderOK {
		if len(liveISR) == len(st.ISR) {
			return st, false
		}
		next := st
		next.ISR, next.PartitionEpoch = liveISR, st.PartitionEpoch+1
		return next, true
	}
	// A new leader: the first replica in assignment order in the ISR and
	// live; a restarted old leader only if it is the only one.
	pick := int32(-1)
	for pass := 0; pass < 2 && pick < 0; pass++ {
		for _, r := range replicas {
			if !has(st.ISR, r) || !s.live(r) {
				continue
			}
			if pass == 0 && r == st.Leader {
				continue // the old leader, restarted (its epoch changed)
			}
			pick = r
			break
		}
	}
	next := PartitionState{LeaderEpoch: st.LeaderEpoch, PartitionEpoch: st.PartitionEpoch + 1, Leader: -1}
	switch {
	case pick >= 0:
		next.Leader, next.ISR = pick, liveISR
	case unclean:
		for _, r := range replicas {
			if s.live(r) {
				pick = r
				break
			}
		}
		if pick >= 0 {
			next.Leader, next.ISR = pick, []int32{pick}
		}
	}
	if next.Leader < 0 {
		// No leader: the ISR keeps its last member, as KRaft does, so
		// that replica can lead again when it returns.
		next.ISR = liveISR
		if len(next.ISR) == 0 && len(st.ISR) > 0 {
			last := st.ISR[len(st.ISR)-1]
			if has(st.ISR, st.Leader) {
				last = st.Leader
			}
			next.ISR = []int32{last}
		}
		if st.Leader < 0 && slices.Equal(next.ISR, st.ISR) {
			return st, false
		}
		if st.Leader < 0 {
			next.LeaderEpoch = st.LeaderEpoch
		} else {
			next.LeaderEpoch = st.LeaderEpoch + 1
		}
		return next, true
	}
	next.LeaderEpoch = st.LeaderEpoch + 1
	next.LeaderBrokerEpoch = s.Brokers[next.Leader].Epoch
	return next, true
}
