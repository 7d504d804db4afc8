package broker

// Replica fetchers: a follower copies its partitions from their leaders with
// the Fetch API, as Kafka's followers do. The partitions it follows on one
// leader are spread over num.replica.fetchers connections (by partition
// hash); each fetcher sends one Fetch at a time for all of its partitions,
// with its broker id (ReplicaID before v15, ReplicaState from v15), each
// partition's log end offset as the fetch offset, the leader epoch it
// follows (a leader at another epoch answers FENCED_LEADER_EPOCH or
// UNKNOWN_LEADER_EPOCH) and the epoch of its last batch (v12+: a leader whose
// log diverges answers DivergingEpoch and the follower truncates, KIP-320).
// Before its first fetch under a new leader epoch a follower asks the leader,
// with OffsetForLeaderEpoch, where its latest epoch ends and truncates its
// log there (KIP-101, KIP-279). A follower whose log end is below the
// leader's local log start (a replaced disk, or a follower far behind) gets
// OFFSET_MOVED_TO_TIERED_STORAGE, asks the leader's earliest local offset
// (ListOffsets -4) and starts again, empty, there; one below the leader's
// whole log starts at its log start. Each response's log start offset moves
// the follower's (DeleteRecords and retention reach every replica).

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/cluster"
	"github.com/stratalog/strata/internal/kwire"
	"github.com/stratalog/strata/localstore"
)

// fetchers are this broker's replica fetchers.
type fetchers struct {
	s  *Server
	mu sync.Mutex
	// parts is what each followed partition's leader is.
	parts   map[*replica]int32
	workers map[fetcherKey]*fetcher
}

type fetcherKey struct{ leader, shard int32 }

type fetcher struct {
	key  fetcherKey
	kick chan struct{}

	mu          sync.Mutex
	cancel      context.CancelFunc // ends the fetch in flight; nil: none
	interrupted bool
}

// interrupt ends the fetch in flight (parked at the leader for up to
// replica.fetch.wait.max.ms): a partition just joined this fetcher and the
// next fetch, at once, includes it.
func (w *fetcher) interrupt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
		w.interrupted = true
	}
}

// inFlight records the cancel of the fetch about to be sent (nil: done);
// it reports whether an interrupt came in between.
func (w *fetcher) inFlight(cancel context.CancelFunc) (interrupted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	interrupted, w.interrupted = w.interrupted, false
	w.cancel = cancel
	return interrupted
}

func newFetchers(s *Server) *fetchers {
	return &fetchers{s: s, parts: map[*replica]int32{}, workers: map[fetcherKey]*fetcher{}}
}

func (f *fetchers) shardOf(r *replica) int32 {
	n := max(int32(f.s.cfg.NumReplicaFetchers), 1)
	h := fnv.New32a()
	h.Write([]byte(r.tp.Topic))
	return int32((h.Sum32() + uint32(r.tp.Partition)) % uint32(n))
}

// follow makes r fetched from leader (again: a new epoch truncates first).
func (f *fetchers) follow(r *replica, leader int32) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, had := f.parts[r]
	f.parts[r] = leader
	k := fetcherKey{leader, f.shardOf(r)}
	w := f.workers[k]
	if w == nil {
		w = &fetcher{key: k, kick: make(chan struct{}, 1)}
		f.workers[k] = w
		f.s.wg.Add(1)
		go func() {
			defer f.s.wg.Done()
			f.run(w)
		}()
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if !had || prev != leader {
		w.interrupt()
	}
}

// unfollow stops fetching r.
func (f *fetchers) unfollow(r *replica) {
	if f == nil {
		return
	}
	f.mu.Lock()
	delete(f.parts, r)
	f.mu.Unlock()
}

// mine lists the partitions w fetches now.
func (f *fetchers) mine(w *fetcher) []*replica {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []*replica
	for r, leader := range f.parts {
		if leader == w.key.leader && f.shardOf(r) == w.key.shard {
			rs = append(rs, r)
		}
	}
	return rs
}

// run is one fetcher's loop, until the broker stops.
func (f *fetchers) run(w *fetcher) {
	s := f.s
	var conn *kwire.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := func() {
		t := time.NewTimer(time.Duration(max(s.cfg.ReplicaFetchBackoffMs, 10)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
	}
	for s.ctx.Err() == nil {
		rs := f.mine(w)
		if len(rs) == 0 {
			select {
			case <-w.kick:
			case <-s.ctx.Done():
			}
			continue
		}
		if conn == nil {
			addr, ok := s.brokerAddr(w.key.leader)
			if !ok {
				backoff()
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			c, err := kwire.Dial(ctx, addr, "strata-replica-fetcher")
			cancel()
			if err != nil {
				s.log.Debug("replica fetcher cannot reach its leader", "leader", w.key.leader, "addr", addr, "err", err)
				backoff()
				continue
			}
			conn = c
		}
		rctx, cancel := context.WithCancel(s.ctx)
		w.inFlight(cancel)
		wake, err := f.round(rctx, conn, rs)
		cancel()
		if w.inFlight(nil) && err != nil {
			// Interrupted for a new partition: a new connection, at once.
			conn.Close()
			conn = nil
			continue
		}
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Debug("replica fetch failed", "leader", w.key.leader, "err", err)
			}
			conn.Close()
			conn = nil
			backoff()
			continue
		}
		if !wake.IsZero() {
			// Every partition is backing off: until the first is due, or
			// a change of the partitions (a new epoch) comes first.
			t := time.NewTimer(time.Until(wake))
			select {
			case <-t.C:
			case <-w.kick:
			case <-s.ctx.Done():
			}
			t.Stop()
		}
	}
}

// shortBackoff is how long a partition waits after its leader answered that
// it is not leading it yet (UNKNOWN_LEADER_EPOCH, LEADER_NOT_AVAILABLE: it
// has not applied the state etcd already gives it, a matter of
// milliseconds); other errors wait replica.fetch.backoff.ms, as in Kafka.
const shortBackoff = 50 * time.Millisecond

// followed is one partition of a fetch round, with what it was sent under.
type followed struct {
	r           *replica
	leaderEpoch int32
	offset      int64
}

// round truncates the partitions that need it, then sends one Fetch for all
// the partitions not backing off and applies the response. A partition-level
// error backs that partition alone off (the others go on fetching); a
// connection error is returned. When every partition is backing off it sends
// nothing and returns when the first is due.
func (f *fetchers) round(rctx context.Context, conn *kwire.Conn, rs []*replica) (time.Time, error) {
	s := f.s
	var need, restart []*replica
	for _, r := range rs {
		r.mu.Lock()
		if r.role == roleFollower && r.truncate {
			need = append(need, r)
		} else if r.role == roleFollower && r.restart {
			restart = append(restart, r)
		}
		r.mu.Unlock()
	}
	if len(need) > 0 {
		if err := f.truncate(conn, need); err != nil {
			return time.Time{}, err
		}
	}
	if len(restart) > 0 {
		if err := f.restartAt(conn, restart); err != nil {
			return time.Time{}, err
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = s.cfg.BrokerID
	req.ReplicaState.ID = s.cfg.BrokerID
	req.ReplicaState.Epoch = s.brokerEpoch()
	req.MaxWaitMillis = int32(s.cfg.ReplicaFetchWaitMaxMs)
	req.MinBytes = int32(s.cfg.ReplicaFetchMinBytes)
	req.MaxBytes = int32(min(s.cfg.ReplicaFetchResponseMaxBytes, math.MaxInt32))
	req.SessionEpoch = -1
	version, _ := conn.Version(kmsg.Fetch.Int16())
	byID := version >= 13
	var sent []followed
	var wake time.Time
	now := time.Now()
	topics := map[string]int{}
	for _, r := range rs {
		r.mu.Lock()
		ok := r.role == roleFollower && !r.truncate && !r.restart
		epoch, after := r.st.LeaderEpoch, r.fetchAfter
		r.mu.Unlock()
		if !ok {
			continue
		}
		if after.After(now) {
			if wake.IsZero() || after.Before(wake) {
				wake = after
			}
			continue
		}
		l := r.p.log.Local()
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = r.tp.Partition
		fp.CurrentLeaderEpoch = epoch
		fp.FetchOffset = l.LogEndOffset()
		fp.LogStartOffset = l.LogStartOffset()
		fp.PartitionMaxBytes = int32(min(s.cfg.ReplicaFetchMaxBytes, math.MaxInt32))
		if e, ok := l.LatestEpoch(); ok {
			fp.LastFetchedEpoch = e
		}
		i, ok := topics[r.tp.Topic]
		if !ok {
			i = len(req.Topics)
			topics[r.tp.Topic] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = r.tp.Topic, r.p.topic.id
			req.Topics = append(req.Topics, rt)
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, fp)
		sent = append(sent, followed{r: r, leaderEpoch: epoch, offset: fp.FetchOffset})
	}
	if len(sent) == 0 {
		return wake, nil
	}
	ctx, cancel := context.WithTimeout(rctx, time.Duration(req.MaxWaitMillis)*time.Millisecond+30*time.Second)
	defer cancel()
	kresp, err := conn.Request(ctx, req)
	if err != nil {
		return time.Time{}, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return time.Time{}, err
	}
	find := func(topic string, id [16]byte, partition int32) *followed {
		for i := range sent {
			fd := &sent[i]
			if fd.r.tp.Partition == partition && ((byID && fd.r.p.topic.id == id) || (!byID && fd.r.tp.Topic == topic)) {
				return fd
			}
		}
		return nil
	}
	for _, rt := range resp.Topics {
		for i := range rt.Partitions {
			rp := &rt.Partitions[i]
			if fd := find(rt.Topic, rt.TopicID, rp.Partition); fd != nil {
				f.apply(fd, rp)
			}
		}
	}
	return time.Time{}, nil
}

// apply writes one partition's fetched records. An error from the leader,
// or one writing them, backs the partition off (fetchAfter).
func (f *fetchers) apply(fd *followed, rp *kmsg.FetchResponseTopicPartition) {
	if d := f.applyOne(fd, rp); d > 0 {
		fd.r.mu.Lock()
		fd.r.fetchAfter = time.Now().Add(d)
		fd.r.mu.Unlock()
	}
}

// backoff is replica.fetch.backoff.ms.
func (f *fetchers) backoff() time.Duration {
	return time.Duration(max(f.s.cfg.ReplicaFetchBackoffMs, 10)) * time.Millisecond
}

// applyOne is apply; it returns how long the partition backs off (0: not).
func (f *fetchers) applyOne(fd *followed, rp *kmsg.FetchResponseTopicPartition) time.Duration {
	s := f.s
	r := fd.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleFollower || r.st.LeaderEpoch != fd.leaderEpoch || r.truncate || r.restart {
		return 0 // the partition changed hands while the fetch was out
	}
	l := r.p.log.Local()
	switch err := kerr.ErrorForCode(rp.ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.OffsetMovedToTieredStorage):
		// Below the leader's local log, above its log start: the tier
		// holds it. Ask the leader where its local log starts (next round).
		r.restart = true
		return 0
	case errors.Is(err, kerr.OffsetOutOfRange):
		if fd.offset < rp.LogStartOffset {
			// Below the leader's whole log: start again, empty, at its start.
			start := rp.LogStartOffset
			if err := l.TruncateFullyAndStartAt(start); err != nil {
				s.log.Error("follower cannot restart its log", "topic", r.tp.Topic, "partition", r.tp.Partition, "err", err)
				return f.backoff()
			}
			s.log.Info("follower restarted its log at the leader's log start", "topic", r.tp.Topic, "partition", r.tp.Partition, "offset", start)
			return 0
		}
		// Past the leader's end: truncate against it again.
		r.truncate = true
		return 0
	case errors.Is(err, kerr.UnknownLeaderEpoch), errors.Is(err, kerr.LeaderNotAvailable):
		return shortBackoff
	default:
		s.log.Debug("follower fetch error", "topic", r.tp.Topic, "partition", r.tp.Partition, "err", err)
		return f.backoff()
	}
	if rp.DivergingEpoch.EndOffset >= 0 && rp.DivergingEpoch.Epoch >= 0 {
		to := rp.DivergingEpoch.EndOffset
		if _, own := l.EndOffsetForEpoch(rp.DivergingEpoch.Epoch); own >= 0 {
			to = min(to, own)
		}
		if _, err := l.TruncateTo(to); err != nil {
			s.log.Error("follower cannot truncate", "topic", r.tp.Topic, "partition", r.tp.Partition, "offset", to, "err", err)
			return f.backoff()
		}
		s.log.Info("follower truncated a diverging log", "topic", r.tp.Topic, "partition", r.tp.Partition, "offset", to)
		return 0
	}
	if len(rp.RecordBatches) > 0 {
		if _, err := l.AppendReplica(rp.RecordBatches); err != nil {
			if errors.Is(err, localstore.ErrOffsetMismatch) {
				r.truncate = true
				return 0
			}
			s.log.Error("follower cannot append", "topic", r.tp.Topic, "partition", r.tp.Partition, "err", err)
			return f.backoff()
		}
	}
	r.p.log.SetHighWatermark(min(rp.HighWatermark, l.LogEndOffset()))
	// The log start follows the leader's (DeleteRecords, retention), as
	// Kafka's followers do; a no-op unless the leader's moved above ours.
	if start := min(rp.LogStartOffset, r.p.log.HighWatermark()); start > r.p.log.LogStartOffset() {
		if _, err := r.p.log.DeleteRecordsBefore(start); err != nil {
			s.log.Warn("follower cannot move its log start to the leader's", "topic", r.tp.Topic, "partition", r.tp.Partition, "offset", start, "err", err)
		}
	}
	return 0
}

// leaderAsk is one partition a follower asks its leader about, at the
// leader epoch it follows (the answer applies only while it still does).
type leaderAsk struct {
	r      *replica
	epoch  int32
	latest int32 // OffsetForLeaderEpoch: the log's latest epoch
}

// topicSlot returns the index of topic's entry in a request's topic list,
// appending one made by mk the first time: one entry per topic, as the
// protocol wants.
func topicSlot[T any](slots map[string]int, list *[]T, topic string, mk func() T) int {
	i, ok := slots[topic]
	if !ok {
		i = len(*list)
		slots[topic] = i
		*list = append(*list, mk())
	}
	return i
}

// askLeader sends req on conn, with nothing to send when there is nothing
// to ask (a nil response).
func (f *fetchers) askLeader(conn *kwire.Conn, req kmsg.Request, asks map[cluster.TP]leaderAsk) (kmsg.Response, error) {
	if len(asks) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(f.s.ctx, 30*time.Second)
	defer cancel()
	return conn.Request(ctx, req)
}

// restartAt asks the leader where its local log starts (ListOffsets,
// EARLIEST_LOCAL_TIMESTAMP, as Kafka's followers do on
// OFFSET_MOVED_TO_TIERED_STORAGE) and restarts each partition's log there,
// empty: the remote tier holds what is below.
func (f *fetchers) restartAt(conn *kwire.Conn, rs []*replica) error {
	s := f.s
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = s.cfg.BrokerID
	asks := map[cluster.TP]leaderAsk{}
	slots := map[string]int{}
	for _, r := range rs {
		_, epoch := r.leaderHint()
		i := topicSlot(slots, &req.Topics, r.tp.Topic, func() kmsg.ListOffsetsRequestTopic {
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = r.tp.Topic
			return rt
		})
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.Timestamp = r.tp.Partition, epoch, -4
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		asks[r.tp] = leaderAsk{r: r, epoch: epoch}
	}
	kresp, err := f.askLeader(conn, req, asks)
	if err != nil || kresp == nil {
		return err
	}
	for _, rt := range kresp.(*kmsg.ListOffsetsResponse).Topics {
		for _, rp := range rt.Partitions {
			a, ok := asks[cluster.TP{Topic: rt.Topic, Partition: rp.Partition}]
			if !ok || rp.ErrorCode != 0 || rp.Offset < 0 {
				continue
			}
			r := a.r
			r.mu.Lock()
			if r.role == roleFollower && r.st.LeaderEpoch == a.epoch && r.restart {
				if err := r.p.log.Local().TruncateFullyAndStartAt(rp.Offset); err != nil {
					s.log.Error("follower cannot restart its log", "topic", r.tp.Topic, "partition", r.tp.Partition, "err", err)
				} else {
					r.restart = false
					s.log.Info("follower restarted its log at the leader's local log start", "topic", r.tp.Topic, "partition", r.tp.Partition, "offset", rp.Offset)
				}
			}
			r.mu.Unlock()
		}
	}
	return nil
}

// truncate asks the leader where each partition's latest epoch ends
// (OffsetForLeaderEpoch) and truncates there (KIP-101, KIP-279).
func (f *fetchers) truncate(conn *kwire.Conn, rs []*replica) error {
	s := f.s
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = s.cfg.BrokerID
	asks := map[cluster.TP]leaderAsk{}
	slots := map[string]int{}
	for _, r := range rs {
		_, epoch := r.leaderHint()
		latest, ok := r.p.log.Local().LatestEpoch()
		if !ok {
			// No epoch in the log (empty): nothing can diverge.
			r.mu.Lock()
			if r.st.LeaderEpoch == epoch {
				r.truncate = false
			}
			r.mu.Unlock()
			continue
		}
		i := topicSlot(slots, &req.Topics, r.tp.Topic, func() kmsg.OffsetForLeaderEpochRequestTopic {
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = r.tp.Topic
			return rt
		})
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = r.tp.Partition, epoch, latest
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		asks[r.tp] = leaderAsk{r: r, epoch: epoch, latest: latest}
	}
	kresp, err := f.askLeader(conn, req, asks)
	if err != nil || kresp == nil {
		return err
	}
	for _, rt := range kresp.(*kmsg.OffsetForLeaderEpochResponse).Topics {
		for _, rp := range rt.Partitions {
			if a, ok := asks[cluster.TP{Topic: rt.Topic, Partition: rp.Partition}]; ok {
				f.truncateOne(a.r, a.epoch, a.latest, rp)
			}
		}
	}
	return nil
}

func (f *fetchers) truncateOne(r *replica, epoch, latest int32, rp kmsg.OffsetForLeaderEpochResponseTopicPartition) {
	s := f.s
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.role != roleFollower || r.st.LeaderEpoch != epoch || !r.truncate {
		return
	}
	if rp.ErrorCode != 0 {
		return // the leader is not there yet: ask again next round
	}
	l := r.p.log.Local()
	leo := l.LogEndOffset()
	to := leo
	switch {
	case rp.EndOffset < 0:
		// The leader knows no epoch at or below ours: keep what is
		// committed, as Kafka's fallback does.
		to = min(leo, r.p.log.HighWatermark())
	case rp.LeaderEpoch == latest:
		to = min(leo, rp.EndOffset)
	default:
		// The leader's latest epoch at or below ours is older: our log
		// after its end offset diverges (KIP-279).
		to = rp.EndOffset
		if _, own := l.EndOffsetForEpoch(rp.LeaderEpoch); own >= 0 {
			to = min(to, own)
		}
		to = min(to, leo)
	}
	if to < leo {
		if _, err := l.TruncateTo(to); err != nil {
			s.log.Error("follower cannot truncate", "topic", r.tp.Topic, "partition", r.tp.Partition, "offset", to, "err", err)
			return
		}
		s.log.Info("follower truncated its log to the leader's", "topic", r.tp.Topic, "partition", r.tp.Partition, "from", leo, "to", to, "leader_epoch", epoch)
	}
	r.truncate = false
}
