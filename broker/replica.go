package broker

// A partition's replication state in a cluster (cluster.go wires it): the
// role this broker plays for it (leader, follower, or neither), and, on the
// leader, each follower's log end offset, the high watermark and the
// produces waiting for it (acks=all).
//
// The leader advances the high watermark to the lowest log end offset of the
// in-sync replicas, counting a follower added to the ISR as soon as it is
// proposed (it has caught up) and one being removed until its removal is
// committed, so the high watermark never counts on a replica that is not in
// the ISR etcd holds. ISR changes are compare-and-swap writes in etcd fenced
// by the partition epoch (cluster.Node.AlterPartition); the controller's
// changes (a new leader, a fenced broker removed) arrive through the view and
// win over an in-flight change of ours, whose CAS then fails.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/cluster"
)

// replica is this broker's replica of one partition of a replicated topic.
type replica struct {
	s    *Server
	p    *partition
	tp   cluster.TP
	self int32

	mu       sync.Mutex
	st       cluster.PartitionState // the state applied last
	replicas []int32
	role     replicaRole
	// Leader only.
	followers  map[int32]*followerState
	adding     int32 // a follower proposed for the ISR, -1: none
	altering   bool  // an AlterPartition is in flight
	epochStart int64 // the log end offset when this leader epoch began
	hwCh       chan struct{}
	// Follower only: set when the log must be truncated against the new
	// leader before fetching (a new leader or leader epoch).
	truncate bool
	// restart: the follower's fetch offset is below the leader's local log
	// (OFFSET_MOVED_TO_TIERED_STORAGE): it asks the leader where its local
	// log starts and starts again, empty, there (KIP-1023's idea).
	restart bool
	// fetchAfter: the partition backs off until then after its leader
	// answered an error (the fetcher leaves it out of its fetches).
	fetchAfter time.Time
}

type replicaRole int

const (
	roleNone replicaRole = iota
	roleLeader
	roleFollower
)

// followerState is what the leader knows of one follower.
type followerState struct {
	leo                int64
	lastCaughtUp       time.Time
	lastFetch          time.Time
	lastFetchLeaderLEO int64
}

func newReplica(s *Server, p *partition, self int32) *replica {
	r := &replica{s: s, p: p, tp: cluster.TP{Topic: p.topic.name, Partition: p.index}, self: self, adding: -1, hwCh: make(chan struct{})}
	r.st.Leader, r.st.LeaderEpoch = -1, -1 // no state from etcd yet: not led
	return r
}

// wakeLocked wakes every produce waiting for the high watermark. Caller holds mu.
func (r *replica) wakeLocked() {
	close(r.hwCh)
	r.hwCh = make(chan struct{})
}

// apply installs a partition state from etcd. It returns the leader to
// fetch from when this broker just became (or stays) a follower that must
// (re)start fetching, else -1.
func (r *replica) apply(st cluster.PartitionState, replicas []int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.LeaderEpoch < r.st.LeaderEpoch || (st.LeaderEpoch == r.st.LeaderEpoch && st.PartitionEpoch < r.st.PartitionEpoch) {
		return // older than what we hold (our own AlterPartition's result came first)
	}
	newEpoch := st.LeaderEpoch != r.st.LeaderEpoch || st.Leader != r.st.Leader || r.role == roleNone
	r.replicas = slices.Clone(replicas)
	switch {
	case st.Leader == r.self && !r.s.fenced() && st.LeaderBrokerEpoch == r.s.brokerEpoch():
		// (A leadership given to an earlier registration of this broker
		// is not ours: the controller moves it, at a new epoch.)
		if r.role != roleLeader || newEpoch {
			r.becomeLeaderLocked(st)
		} else {
			r.st = st
			if slices.Contains(st.ISR, r.adding) {
				r.adding = -1
			}
			r.syncFollowersLocked()
		}
		r.advanceHWLocked()
	case st.Leader >= 0 && st.Leader != r.self && slices.Contains(replicas, r.self):
		if r.role != roleFollower || newEpoch {
			r.role = roleFollower
			r.truncate, r.restart, r.fetchAfter = true, false, time.Time{}
			r.followers = nil
			r.p.log.SetReplicated(true, r.p.log.HighWatermark())
			r.wakeLocked()
		}
		r.st = st
		r.s.fetchers.follow(r, st.Leader)
		return
	default:
		if r.role != roleNone {
			r.role = roleNone
			r.followers = nil
			r.wakeLocked()
		}
		r.st = st
		r.p.log.SetReplicated(true, r.p.log.HighWatermark())
	}
	r.s.fetchers.unfollow(r)
	if len(replicas) > 0 && !slices.Contains(replicas, r.self) {
		r.dropLocalLocked()
	}
}

// syncFollowersLocked tracks the followers of a replica set that changed
// under the same leader (a reassignment): an adding replica gets a
// follower state (it joins the ISR once caught up), a removed one loses
// it. Caller holds mu.
func (r *replica) syncFollowersLocked() {
	now := time.Now()
	for _, id := range r.replicas {
		if _, ok := r.followers[id]; !ok && id != r.self {
			r.followers[id] = &followerState{leo: -1, lastCaughtUp: now, lastFetch: now}
		}
	}
	for id := range r.followers {
		if !slices.Contains(r.replicas, id) {
			delete(r.followers, id)
		}
	}
}

// dropLocalLocked deletes the local copy of a partition this broker no
// longer replicates (a reassignment moved it away, perhaps while this
// broker was down): the log restarts empty, as it is on a broker that
// never replicated it. Caller holds mu (a fetch response still in flight
// is dropped: the role is none).
func (r *replica) dropLocalLocked() {
	l := r.p.log.Local()
	if l.LogEndOffset() == 0 && l.LogStartOffset() == 0 {
		return
	}
	if err := l.TruncateFullyAndStartAt(0); err != nil {
		r.s.log.Error("cannot delete the local copy of a partition this broker no longer replicates", "topic", r.tp.Topic, "partition", r.tp.Partition, "err", err)
		return
	}
	r.p.log.SetReplicated(true, 0)
	r.s.log.Info("deleted the local copy of a partition this broker no longer replicates", "topic", r.tp.Topic, "partition", r.tp.Partition)
}

// becomeLeaderLocked starts leading at st.LeaderEpoch. Caller holds mu.
func (r *replica) becomeLeaderLocked(st cluster.PartitionState) {
	r.s.fetchers.unfollow(r)
	now := time.Now()
	r.role = roleLeader
	r.st = st
	r.adding = -1
	r.truncate = false
	r.epochStart = r.p.log.LogEndOffset()
	r.followers = map[int32]*followerState{}
	for _, id := range r.replicas {
		if id == r.self {
			continue
		}
		// An ISR member is given a full lag period to fetch before it is
		// dropped, as Kafka does when a leader starts.
		r.followers[id] = &followerState{leo: -1, lastCaughtUp: now, lastFetch: now}
	}
	// The high watermark carries over: records below it are committed; the
	// ISR moves it on from there.
	r.p.log.SetReplicated(true, r.p.log.HighWatermark())
	r.wakeLocked()
	r.s.wakeFollowers()
	r.s.log.Info("leading partition", "topic", r.tp.Topic, "partition", r.tp.Partition, "leader_epoch", st.LeaderEpoch, "isr", st.ISR)
}

// isLeader reports whether this broker leads the partition, and at which epoch.
func (r *replica) isLeader() (bool, int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.role == roleLeader, r.st.LeaderEpoch
}

// checkLeader is the leader check of a produce, a fetch or a list: this
// broker must lead, at the client's leader epoch when it sent one (-1: none).
func (r *replica) checkLeader(currentLeaderEpoch int32) *kerr.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkLeaderLocked(currentLeaderEpoch)
}

func (r *replica) checkLeaderLocked(currentLeaderEpoch int32) *kerr.Error {
	switch {
	case currentLeaderEpoch >= 0 && currentLeaderEpoch < r.st.LeaderEpoch:
		return kerr.FencedLeaderEpoch
	case currentLeaderEpoch > r.st.LeaderEpoch:
		return kerr.UnknownLeaderEpoch
	case r.role != roleLeader:
		if r.st.Leader < 0 {
			return kerr.LeaderNotAvailable
		}
		return kerr.NotLeaderForPartition
	}
	return nil
}

// checkRead is a consumer fetch's check: this broker must lead, or, when
// fromFollower (Fetch v11+, KIP-392), follow, at the client's leader epoch
// when it sent one (-1: none). leader reports which.
func (r *replica) checkRead(currentLeaderEpoch int32, fromFollower bool) (leader bool, err *kerr.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fromFollower && r.role == roleFollower {
		switch {
		case currentLeaderEpoch >= 0 && currentLeaderEpoch < r.st.LeaderEpoch:
			return false, kerr.FencedLeaderEpoch
		case currentLeaderEpoch > r.st.LeaderEpoch:
			return false, kerr.UnknownLeaderEpoch
		}
		return false, nil
	}
	if err := r.checkLeaderLocked(currentLeaderEpoch); err != nil {
		return false, err
	}
	return true, nil
}

// preferredReadReplica is the replica a consumer in clientRack fetching at
// offset should read from instead of this leader (KIP-392, Kafka's
// RackAwareReplicaSelector), -1: this leader. The candidates are the in-sync,
// live followers whose log end offset has reached offset, as Kafka's
// ReplicaManager.findPreferredReadReplica takes them.
func (r *replica) preferredReadReplica(clientRack string, offset int64) int32 {
	snap := r.s.cl.View().Snapshot()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleLeader {
		return -1
	}
	var cands []readCandidate
	for _, id := range r.st.ISR {
		if id == r.self {
			continue
		}
		f := r.followers[id]
		b, ok := snap.Brokers[id]
		if f == nil || f.leo < offset || !ok || b.ShuttingDown {
			continue
		}
		cands = append(cands, readCandidate{id: id, rack: b.Rack, leo: f.leo, caughtUp: f.lastCaughtUp})
	}
	return selectRackReplica(clientRack, r.s.rack(), cands)
}

// readCandidate is a follower a consumer may be sent to read from.
type readCandidate struct {
	id       int32
	rack     string
	leo      int64
	caughtUp time.Time // when it was last caught up to the leader's end
}

// selectRackReplica is RackAwareReplicaSelector's rule: a consumer without a
// rack, or in the leader's rack, or in no candidate's, reads from the leader
// (-1); else from the candidate of its rack with the highest log end offset,
// then the one caught up last, then the highest id.
func selectRackReplica(clientRack, leaderRack string, cands []readCandidate) int32 {
	if clientRack == "" || clientRack == leaderRack {
		return -1
	}
	best := -1
	for i, c := range cands {
		if c.rack != clientRack {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := cands[best]
		switch {
		case c.leo != b.leo:
			if c.leo > b.leo {
				best = i
			}
		case !c.caughtUp.Equal(b.caughtUp):
			if c.caughtUp.After(b.caughtUp) {
				best = i
			}
		case c.id > b.id:
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	return cands[best].id
}

// leaderHint is the leader and epoch this broker knows of (KIP-951).
func (r *replica) leaderHint() (int32, int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Leader, r.st.LeaderEpoch
}

// inSync is the size of the ISR, for min.insync.replicas.
func (r *replica) inSync() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.st.ISR)
}

// appended is called after the leader appended: with an ISR of one, the
// high watermark moves at once.
func (r *replica) appended() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role == roleLeader {
		r.advanceHWLocked()
	}
}

// advanceHWLocked moves the high watermark to the lowest log end offset of
// the ISR (with a proposed member). Caller holds mu.
func (r *replica) advanceHWLocked() {
	if r.role != roleLeader {
		return
	}
	hw := r.p.log.LogEndOffset()
	count := func(id int32) {
		if id == r.self {
			return
		}
		f := r.followers[id]
		if f == nil || f.leo < 0 {
			hw = min(hw, r.p.log.HighWatermark())
			return
		}
		hw = min(hw, f.leo)
	}
	for _, id := range r.st.ISR {
		count(id)
	}
	if r.adding >= 0 {
		count(r.adding)
	}
	if r.p.log.SetHighWatermark(max(hw, r.p.log.HighWatermark())) {
		r.wakeLocked()
		r.p.notify()
	}
}

// followerFetched records a follower's fetch at offset (its log end offset)
// and returns the leader's error for it, if any.
func (r *replica) followerFetched(id int32, currentLeaderEpoch int32, offset int64) *kerr.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkLeaderLocked(currentLeaderEpoch); err != nil {
		return err
	}
	f := r.followers[id]
	if f == nil {
		return kerr.NotLeaderForPartition // not a replica of this partition
	}
	leo := r.p.log.LogEndOffset()
	if offset > leo {
		return kerr.OffsetOutOfRange
	}
	now := time.Now()
	// Kafka's rule: caught up now if at the end; caught up at the last fetch
	// if it reached what the leader had then.
	if offset >= leo {
		f.lastCaughtUp = now
	} else if offset >= f.lastFetchLeaderLEO && !f.lastFetch.IsZero() {
		f.lastCaughtUp = f.lastFetch
	}
	f.leo, f.lastFetch, f.lastFetchLeaderLEO = offset, now, leo
	if !slices.Contains(r.st.ISR, id) && r.adding < 0 && !r.altering &&
		offset >= r.p.log.HighWatermark() && offset >= r.epochStart && r.s.brokerLive(id) {
		// Caught up: propose it for the ISR.
		r.adding = id
		r.alterLocked(append(slices.Clone(r.st.ISR), id))
	}
	r.advanceHWLocked()
	return nil
}

// shrink drops from the ISR the followers that have not caught up within
// lag (replica.lag.time.max.ms).
func (r *replica) shrink(now time.Time, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleLeader || r.altering {
		return
	}
	isr := slices.Clone(r.st.ISR)
	var out []int32
	for _, id := range isr {
		f := r.followers[id]
		if id == r.self || f == nil || now.Sub(f.lastCaughtUp) <= lag {
			out = append(out, id)
		}
	}
	if len(out) < len(isr) {
		r.s.log.Info("shrinking ISR", "topic", r.tp.Topic, "partition", r.tp.Partition, "from", isr, "to", out)
		r.alterLocked(out)
	}
}

// alterLocked proposes a new ISR to etcd in the background. Caller holds mu.
func (r *replica) alterLocked(isr []int32) {
	r.altering = true
	cur := r.st
	go func() {
		ctx, cancel := context.WithTimeout(r.s.ctx, 30*time.Second)
		defer cancel()
		st, err := r.s.cl.AlterPartition(ctx, r.tp, cur, isr)
		if err != nil && !errors.Is(err, cluster.ErrStalePartitionEpoch) && r.s.ctx.Err() == nil {
			r.s.log.Warn("ISR change failed", "topic", r.tp.Topic, "partition", r.tp.Partition, "isr", isr, "err", err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.alterDoneLocked(st, err)
	}()
}

// alterDoneLocked takes the result of the AlterPartition in flight. The
// proposal is decided either way, so no follower stays "being added": its
// state is taken if it is newer than the one applied, and a follower it
// proposed that is not in the ISR applied (the change failed, or a later
// state the view delivered first, the controller's removal of it, say,
// superseded it) is proposed again at its next fetch if still caught up.
// (Before, a follower whose addition was superseded that way stayed
// "adding" for the rest of the leader epoch, and no follower could join
// the partition's ISR again.) Caller holds mu.
func (r *replica) alterDoneLocked(st cluster.PartitionState, err error) {
	r.altering = false
	if err == nil && r.role == roleLeader && st.LeaderEpoch == r.st.LeaderEpoch && st.PartitionEpoch > r.st.PartitionEpoch {
		r.st = st
	}
	r.adding = -1
	r.advanceHWLocked()
}

// waitHW waits until the high watermark reaches target (acks=all). It fails
// with NOT_LEADER_OR_FOLLOWER when this broker stops leading meanwhile.
func (r *replica) waitHW(ctx context.Context, epoch int32, target int64) *kerr.Error {
	for {
		r.mu.Lock()
		if r.role != roleLeader || r.st.LeaderEpoch != epoch {
			r.mu.Unlock()
			return kerr.NotLeaderForPartition
		}
		if r.p.log.HighWatermark() >= target {
			r.mu.Unlock()
			return nil
		}
		ch := r.hwCh
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return kerr.RequestTimedOut
		}
	}
}

// stepDown stops leading and following (the broker was fenced or stops).
func (r *replica) stepDown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleNone {
		r.role = roleNone
		r.followers = nil
		r.wakeLocked()
	}
	r.s.fetchers.unfollow(r)
}

// checkProduce is a produce's leader check: this broker must lead, and with
// acks=all the ISR must hold min.insync.replicas replicas. It returns the
// leader epoch to stamp.
func (r *replica) checkProduce(acks int16, minISR int64) (*kerr.Error, int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkLeaderLocked(-1); err != nil {
		return err, 0
	}
	if acks == -1 && int64(len(r.st.ISR)) < minISR {
		return kerr.NotEnoughReplicas, 0
	}
	return nil, r.st.LeaderEpoch
}
