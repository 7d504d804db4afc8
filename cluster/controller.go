package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// controlLoop runs the controller while this node is elected: on every view
// change it reconciles leaders and ISRs (level-triggered).
func (n *Node) controlLoop(sess *session) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	// The preferred-leader check (auto.leader.rebalance.enable), every
	// leader.imbalance.check.interval.seconds.
	var rebalance <-chan time.Time
	if n.cfg.AutoLeaderRebalance && n.cfg.LeaderImbalanceCheckInterval > 0 {
		t := time.NewTicker(n.cfg.LeaderImbalanceCheckInterval)
		defer t.Stop()
		rebalance = t.C
	}
	check := false
	// Heartbeats: when each broker's heartbeat key last changed, by this
	// controller's clock (a new controller gives every broker a full
	// session from its start).
	beats := map[int32]beat{}
	// Checked every 1/20 of the session (50 to 500 ms), so a silent broker
	// is fenced at most that long after its session ran out.
	tick := time.NewTicker(min(max(n.cfg.SessionTimeout/20, 50*time.Millisecond), 500*time.Millisecond))
	defer tick.Stop()
	var active int64 // the controller epoch this node last logged as its own
	for {
		ch := n.view.Changed()
		s := n.view.Snapshot()
		if s.Controller == n.cfg.NodeID && s.cands[sess.candKey].rev == s.ControllerEpoch && s.ControllerEpoch != 0 {
			if active != s.ControllerEpoch {
				active = s.ControllerEpoch
				n.log.Info("cluster: this node is the controller", "controller_epoch", s.ControllerEpoch)
			}
			err := n.fenceSilent(s, sess, beats, time.Now())
			if err == nil {
				err = n.reconcile(s, sess)
			}
			if err == nil {
				err = n.completeReassignments(n.view.Snapshot(), sess)
			}
			if err == nil && check {
				check = false
				err = n.rebalance(n.view.Snapshot(), sess)
			}
			if err != nil && n.ctx.Err() == nil {
				n.log.Warn("cluster: the controller's write failed; retrying", "err", err)
				retry.Reset(100 * time.Millisecond)
			}
		} else if s.ControllerEpoch != 0 && s.Controller >= 0 {
			if err := n.deposeSilent(s, sess, beats, time.Now()); err != nil && n.ctx.Err() == nil {
				n.log.Warn("cluster: cannot depose a silent controller; retrying", "err", err)
				retry.Reset(100 * time.Millisecond)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-sess.fenced:
			return
		case <-ch:
		case <-retry.C:
		case <-rebalance:
			check = true
		case <-tick.C:
		}
	}
}

// deposeSilent is what a candidate does while another node is the
// controller: it watches that node's heartbeat key, and when it has not
// changed for broker.session.timeout.ms (by this node's clock) it deletes
// the controller's candidacy, its heartbeat and its registration, fenced by
// the candidacy's create revision: the oldest remaining candidate becomes
// the controller and moves the dead node's leaderships at once. (Waiting
// for the dead controller's lease would take an etcd election plus a whole
// session when the node was the etcd leader too: etcd restarts lease TTLs
// on a raft leader change.)
func (n *Node) deposeSilent(s *Snapshot, sess *session, beats map[int32]beat, now time.Time) error {
	ctrl := s.Controller
	observe(s, beats, now)
	b, ok := beats[ctrl]
	if !ok || !n.silentFor(beats, ctrl, now) {
		return nil
	}
	var candKey string
	for k, c := range s.cands {
		if c.id == ctrl && c.rev == s.ControllerEpoch {
			candKey = k
		}
	}
	if candKey == "" {
		return nil
	}
	ops := []clientv3.Op{clientv3.OpDelete(candKey), clientv3.OpDelete(heartbeatKey(ctrl))}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(candKey), "=", s.ControllerEpoch)}
	if r, ok := s.brokerRev[ctrl]; ok {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(brokerKey(ctrl)), "=", r))
		ops = append(ops, clientv3.OpDelete(brokerKey(ctrl)))
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	resp, err := n.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		n.log.Warn("cluster: the controller's heartbeats stopped: its candidacy and registration are removed", "controller", ctrl, "silent_for", now.Sub(b.at).Round(time.Millisecond))
		delete(beats, ctrl)
	}
	return nil
}

type beat struct {
	rev int64
	at  time.Time
}

// observe records when this node saw each registered broker's (and each
// candidate's) heartbeat key change; a broker whose key does not exist yet
// counts from when its registration was first seen.
func observe(s *Snapshot, beats map[int32]beat, now time.Time) {
	ids := map[int32]int64{}
	for id := range s.Brokers {
		ids[id] = s.beats[id]
	}
	for id, rev := range s.beats {
		ids[id] = rev
	}
	for id := range beats {
		if _, ok := ids[id]; !ok {
			delete(beats, id)
		}
	}
	for id, rev := range ids {
		if b, ok := beats[id]; !ok || b.rev != rev {
			beats[id] = beat{rev: rev, at: now}
		}
	}
}

// silentFor reports whether id's heartbeat has not changed for the session
// timeout while some other node's did within the last few heartbeats: if
// nobody's heartbeats arrive, etcd or this node's watch is what is behind
// (a slow disk, an election), and nobody is fenced for it.
func (n *Node) silentFor(beats map[int32]beat, id int32, now time.Time) bool {
	b, ok := beats[id]
	if !ok || now.Sub(b.at) <= n.cfg.SessionTimeout {
		return false
	}
	recent := 3*n.cfg.HeartbeatInterval + time.Second
	for j, o := range beats {
		if j != id && now.Sub(o.at) <= recent {
			return true
		}
	}
	return false
}

// fenceSilent removes the registration of every broker whose heartbeat key
// has not changed for broker.session.timeout.ms (by this controller's
// clock), fenced by the controller epoch and the registration's revision;
// the reconcile that follows moves its leaderships. It does not wait for
// the broker's lease: etcd restarts lease TTLs when its raft leader
// changes, so a broker that died with the etcd leader would keep its
// leaderships for an election plus a whole session.
func (n *Node) fenceSilent(s *Snapshot, sess *session, beats map[int32]beat, now time.Time) error {
	observe(s, beats, now)
	for id := range s.Brokers {
		b, ok := beats[id]
		if !ok || !n.silentFor(beats, id, now) {
			continue
		}
		// Its candidacies go too: a dead node's would otherwise stay as long
		// as its lease, and could become the oldest (the controller) when
		// this one goes, with no heartbeat left to stop and so nobody to
		// depose it (see runForController).
		ops := []clientv3.Op{clientv3.OpDelete(brokerKey(id)), clientv3.OpDelete(heartbeatKey(id))}
		for k, c := range s.cands {
			if c.id == id && k != sess.candKey {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		resp, err := n.client.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(sess.candKey), "=", s.ControllerEpoch),
			clientv3.Compare(clientv3.ModRevision(brokerKey(id)), "=", s.brokerRev[id]),
		).Then(ops...).Commit()
		cancel()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			n.log.Warn("cluster: a broker's heartbeats stopped: its registration is removed (fenced)", "broker", id, "silent_for", now.Sub(b.at).Round(time.Millisecond))
			delete(beats, id)
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			err := n.view.WaitRev(ctx, resp.Header.Revision)
			cancel()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// rebalance moves leaderships back to preferred replicas (the first of each
// assignment) for every broker whose share of preferred partitions it does
// not lead is above leader.imbalance.per.broker.percentage, as Kafka's
// controller does: only to a preferred replica that is live, not shutting
// down and in the ISR, at leader epoch + 1.
func (n *Node) rebalance(s *Snapshot, sess *session) error {
	preferred := map[int32]int{}
	var moves []TP
	byBroker := map[int32][]TP{}
	for tp, st := range s.Partitions {
		rec, ok := s.Topics[tp.Topic]
		if !ok || int(tp.Partition) >= len(rec.Replicas) || len(rec.Replicas[tp.Partition]) == 0 {
			continue
		}
		p := rec.Replicas[tp.Partition][0]
		preferred[p]++
		if st.Leader != p && st.Leader >= 0 && s.live(p) && has(st.ISR, p) {
			byBroker[p] = append(byBroker[p], tp)
		}
	}
	for b, tps := range byBroker {
		if len(tps)*100 > preferred[b]*n.cfg.LeaderImbalancePercent {
			moves = append(moves, tps...)
		}
	}
	if len(moves) == 0 {
		return nil
	}
	slices.SortFunc(moves, func(a, b TP) int { return strings.Compare(partitionKey(a), partitionKey(b)) })
	var last int64
	for len(moves) > 0 {
		batch := moves[:min(len(moves), controllerBatch)]
		moves = moves[len(batch):]
		sts := make([]PartitionState, len(batch))
		for i, tp := range batch {
			st := s.Partitions[tp]
			p := s.Topics[tp.Topic].Replicas[tp.Partition][0]
			st.Leader, st.LeaderEpoch, st.PartitionEpoch, st.LeaderBrokerEpoch = p, st.LeaderEpoch+1, st.PartitionEpoch+1, s.Brokers[p].Epoch
			st.ISR = slices.Clone(st.ISR)
			sts[i] = st
		}
		rev, err := n.controllerPut(s, sess, batch, sts)
		if err != nil {
			return err
		}
		if rev > 0 {
			for i := range batch {
				n.logChange(batch[i], sts[i])
			}
		}
		last = max(last, rev)
	}
	if last > 0 {
		n.log.Info("cluster: leaderships moved back to preferred replicas")
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		return n.view.WaitRev(ctx, last)
	}
	return nil
}

// reconcile writes, for each partition that needs it, its new leader and
// ISR. The writes go in batches of controllerBatch partitions, each one etcd
// transaction fenced by the controller epoch and every partition key's mod
// revision (a broker's failure moves all its leaderships in a few
// transactions, not one per partition); a batch whose fence fails is
// retried one partition at a time, so one partition that changed meanwhile
// does not hold back the others. It returns after the view has applied them.
func (n *Node) reconcile(s *Snapshot, sess *session) error {
	type change struct {
		tp TP
		st PartitionState
	}
	var changes []change
	for tp, st := range s.Partitions {
		rec, ok := s.Topics[tp.Topic]
		if !ok || int(tp.Partition) >= len(rec.Replicas) {
			continue
		}
		if next, ok := decide(s, rec.Replicas[tp.Partition], st, n.unclean(rec)); ok {
			changes = append(changes, change{tp, next})
		}
	}
	// A topic whose creator died between the transactions of a large
	// CreateTopic has partitions without state: they get their initial
	// state here (controllerPut fences it on the topic's revision), and
	// the next round elects their leaders if need be.
	for name, rec := range s.Topics {
		for p, replicas := range rec.Replicas {
			tp := TP{name, int32(p)}
			if _, ok := s.Partitions[tp]; !ok {
				changes = append(changes, change{tp, initialState(s, replicas)})
			}
		}
	}
	slices.SortFunc(changes, func(a, b change) int { return strings.Compare(partitionKey(a.tp), partitionKey(b.tp)) })
	var last int64
	for len(changes) > 0 {
		batch := changes[:min(len(changes), controllerBatch)]
		changes = changes[len(batch):]
		tps := make([]TP, len(batch))
		sts := make([]PartitionState, len(batch))
		for i, c := range batch {
			tps[i], sts[i] = c.tp, c.st
		}
		rev, err := n.controllerPut(s, sess, tps, sts)
		if err != nil {
			return err
		}
		if rev == 0 && len(batch) > 1 {
			// A fence failed: one at a time, so the others still move.
			for i := range tps {
				r, err := n.controllerPut(s, sess, tps[i:i+1], sts[i:i+1])
				if err != nil {
					return err
				}
				if r > 0 {
					n.logChange(tps[i], sts[i])
				}
				last = max(last, r)
			}
			continue
		}
		if rev > 0 {
			for i := range tps {
				n.logChange(tps[i], sts[i])
			}
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

// controllerBatch is how many partition states one controller transaction
// writes: each adds a compare and a put, within etcd's default
// --max-txn-ops (128) for an external etcd.
const controllerBatch = 60

func (n *Node) logChange(tp TP, st PartitionState) {
	n.log.Info("cluster: partition state changed", "partition", tp.String(), "leader", st.Leader, "leader_epoch", st.LeaderEpoch, "isr", st.ISR, "partition_epoch", st.PartitionEpoch)
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

// controllerPut is one fenced write of several partition states; it
// returns 0 when a fence failed (a newer controller, or a partition
// changed: the next view change decides again).
func (n *Node) controllerPut(s *Snapshot, sess *session, tps []TP, sts []PartitionState) (int64, error) {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(sess.candKey), "=", s.ControllerEpoch)}
	ops := make([]clientv3.Op, 0, len(tps))
	fenced := map[string]bool{}
	for i, tp := range tps {
		val, _ := json.Marshal(sts[i])
		// A partition without state yet (partRev 0: the key must not
		// exist) is written only for the topic the snapshot holds, never
		// for a topic deleted or re-created since.
		if _, ok := s.Partitions[tp]; !ok && !fenced[tp.Topic] {
			fenced[tp.Topic] = true
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(topicKey(tp.Topic)), "=", s.topicRev[tp.Topic]))
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(partitionKey(tp)), "=", s.partRev[tp]))
		ops = append(ops, clientv3.OpPut(partitionKey(tp), string(val)))
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	resp, err := n.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
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
