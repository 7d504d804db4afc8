package broker

// Fetch (key 1), versions 4-17.
//
// v4 is the first version with v2 record batches. Per partition the broker
// takes a slice of a segment file: from the local log when the offset is at or
// above the local log start, else from the remote tier (a cached chunk file).
// Limits: the request's max bytes over all partitions and each partition's max
// bytes, except that the first partition with data returns at least one whole
// batch (KIP-74). When fewer than min bytes are ready, the fetch parks until an
// append to one of its partitions or max wait. Sessions (v7+, KIP-227) are in
// fetch_session.go. The response is written by fetch_writer.go: headers from
// memory, record sets with sendfile. v13+ names topics by ID. Leader epoch is
// always 0: a CurrentLeaderEpoch above it is UNKNOWN_LEADER_EPOCH.
//
// In a cluster (KIP-392): with replica.selector.class set, a leader answers a
// consumer's fetch (v11+) whose rack_id is the rack of an in-sync follower,
// and not its own, with that follower as PreferredReadReplica and no records;
// the consumer then fetches there. A follower serves any consumer fetch at
// v11+ up to its own high watermark, as Kafka's does (below v11 a consumer
// reads only from the leader).

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/tier/tierapi"
)

// fetchPart is one partition of a fetch, with its result.
type fetchPart struct {
	key         sessKey
	p           *partition // nil: unknown
	offset      int64
	maxBytes    int32
	leaderEpoch int32
	lastEpoch   int32     // LastFetchedEpoch (v12+), -1: none
	sess        *sessPart // nil outside a session

	err      *kerr.Error
	hw       int64
	logStart int64
	records  recordSet
	// diverging: a follower's log diverges from the leader's after
	// divergeEpoch ends at divergeEnd (DivergingEpoch, v12+).
	diverging    bool
	divergeEpoch int32
	divergeEnd   int64
	// hint: the partition's leader as this broker knows it, sent with
	// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH (KIP-951, v12+).
	hint                        bool
	hintLeader, hintLeaderEpoch int32
	// redirect: the consumer should read from readReplica (KIP-392's
	// PreferredReadReplica); the partition has no records.
	redirect    bool
	readReplica int32
	// follower: read by this broker as a follower (KIP-392).
	follower bool
}

// fetchClient is what a fetch's reads need to know of its sender.
type fetchClient struct {
	replicaID int32  // a follower's id, -1: a consumer
	version   int16  // the Fetch version
	rack      string // the consumer's client.rack (rack_id, v11+)
}

// recordSet is a partition's records in a fetch response: a slice of a local
// segment, or consecutive slices of cached remote chunks. Each is sent with
// sendfile; together they are one record set on the wire.
type recordSet []localstore.Slice

// Len is the record set's size in bytes.
func (r recordSet) Len() int64 {
	var n int64
	for _, sl := range r {
		n += sl.Len
	}
	return n
}

// Done releases every slice.
func (r recordSet) Done() {
	for _, sl := range r {
		sl.Done()
	}
}

func (s *Server) handleFetch(ctx context.Context, c *conn, hdr requestHeader, req *kmsg.FetchRequest) (kmsg.Response, error) {
	replicaID := req.ReplicaID
	if req.Version >= 15 {
		replicaID = req.ReplicaState.ID
	}
	if replicaID >= 0 && !s.clustered() {
		// A follower fetch: no replication on one node.
		return s.fetchError(c, hdr, req, kerr.NotLeaderForPartition)
	}
	c.q.exempt = replicaID >= 0 // replication is not a client
	parts, sess, full, ferr := s.fetchSet(req)
	if ferr != nil {
		return s.fetchError(c, hdr, req, ferr)
	}
	if sess != nil {
		defer sess.inUse.Unlock()
	}
	sessionID := int32(0)
	if sess != nil {
		sessionID = sess.id
	}

	maxBytes := int64(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = 1<<31 - 1
	}
	if replicaID < 0 {
		maxBytes = s.fetchQuotaBytes(c, maxBytes)
	}
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	deadline := time.Now().Add(maxWait)
	var w *waiter
	// A follower's parked fetch also ends when this broker starts leading
	// a partition: the follower's next fetch then includes it (else a new
	// partition's first acks=all produce waited out replica.fetch.wait.max.ms).
	var newLeader <-chan struct{}
	if replicaID >= 0 {
		newLeader = s.leadWake()
	}
	for {
		total, now := s.readParts(ctx, parts, maxBytes, fetchClient{replicaID: replicaID, version: req.Version, rack: req.Rack})
		if total >= int64(req.MinBytes) || now || maxWait <= 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		// Not enough yet: release what was read, park until an append or the deadline.
		for i := range parts {
			parts[i].records.Done()
			parts[i].records = nil
		}
		if w == nil {
			w = newWaiter()
			for i := range parts {
				if parts[i].p != nil {
					parts[i].p.watch(w)
				}
			}
			defer func() {
				for i := range parts {
					if parts[i].p != nil {
						parts[i].p.unwatch(w)
					}
				}
			}()
			continue // an append may have landed between the read and the watch
		}
		t := time.NewTimer(time.Until(deadline))
		parked := time.Now()
		select {
		case <-w.ch:
		case <-t.C:
		case <-ctx.Done():
		case <-newLeader:
			newLeader = nil
			deadline = time.Now() // answer now, with what there is
		}
		t.Stop()
		c.q.waited += time.Since(parked) // not handler time
	}
	defer func() {
		for i := range parts {
			parts[i].records.Done()
		}
	}()

	// In an incremental session, answer only partitions with news.
	out := parts
	if sess != nil {
		gotData := map[sessKey]bool{}
		if !full {
			out = out[:0:0]
		}
		for i := range parts {
			fp := &parts[i]
			sp := fp.sess
			code := int16(0)
			if fp.err != nil {
				code = fp.err.Code
			}
			n := fp.records.Len()
			changed := !sp.sent || n > 0 || code != 0 || fp.redirect || sp.sentHW != fp.hw || sp.sentLogStart != fp.logStart || sp.sentErr != code
			if n > 0 {
				gotData[fp.key] = true
			}
			sp.sent, sp.sentHW, sp.sentLogStart, sp.sentErr = true, fp.hw, fp.logStart, code
			if !full && changed {
				out = append(out, *fp)
			}
		}
		sess.rotate(gotData)
	}
	if replicaID < 0 {
		out = s.chargeFetch(c, out)
		if c.q.throttle > 0 && req.Version < 8 {
			// Before KIP-219 the client does not back off: delay the response.
			s.throttled(c.q.typ, c.q.throttle)
			s.pause(ms(int64(c.q.throttle)))
			c.q.delayed = true
		}
	}
	var followerBytes int64
	for i := range out {
		if out[i].redirect {
			s.metrics.preferredReplica.Inc()
		}
		if out[i].follower {
			followerBytes += out[i].records.Len()
		}
	}
	s.metrics.fetchRequests.Inc()
	if err := s.writeFetchResponse(c, hdr, req.Version, 0, sessionID, out); err != nil {
		return nil, err
	}
	s.metrics.followerFetchBytes.Add(float64(followerBytes))
	return nil, nil
}

// hintEndpoints are the endpoints of the leaders named in parts' hints
// (KIP-951's NodeEndpoints, Fetch v16+).
func (s *Server) hintEndpoints(parts []fetchPart) []kmsg.FetchResponseBroker {
	if s.cl == nil {
		return nil
	}
	var out []kmsg.FetchResponseBroker
	seen := map[int32]bool{}
	snap := s.cl.View().Snapshot()
	for i := range parts {
		fp := &parts[i]
		if !fp.hint || seen[fp.hintLeader] {
			continue
		}
		seen[fp.hintLeader] = true
		if b, ok := snap.Brokers[fp.hintLeader]; ok {
			ep := kmsg.NewFetchResponseBroker()
			ep.NodeID, ep.Host, ep.Port = b.ID, b.Host, b.Port
			if b.Rack != "" {
				rack := b.Rack
				ep.Rack = &rack
			}
			out = append(out, ep)
		}
	}
	return out
}

// fetchError answers a whole fetch with one error: from v7 in the top-level
// error code with no partitions; before v7, which has no top-level error, on
// every requested partition, as Kafka does.
func (s *Server) fetchError(c *conn, hdr requestHeader, req *kmsg.FetchRequest, e *kerr.Error) (kmsg.Response, error) {
	if req.Version >= 7 {
		return nil, s.writeFetchResponse(c, hdr, req.Version, e.Code, 0, nil)
	}
	var parts []fetchPart
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			parts = append(parts, fetchPart{key: sessKey{name: rt.Topic, index: rp.Partition}, err: e, hw: -1, logStart: -1})
		}
	}
	return nil, s.writeFetchResponse(c, hdr, req.Version, 0, 0, parts)
}

// fetchSet resolves the request's partitions, through its session if it has
// one. A returned session is locked; the caller unlocks it.
func (s *Server) fetchSet(req *kmsg.FetchRequest) (parts []fetchPart, sess *fetchSession, full bool, ferr *kerr.Error) {
	byID := req.Version >= 13
	reqParts := func(yield func(sessPart)) {
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				k := sessKey{index: rp.Partition}
				if byID {
					k.id = rt.TopicID
				} else {
					k.name = rt.Topic
				}
				lastEpoch := int32(-1)
				if req.Version >= 12 {
					lastEpoch = rp.LastFetchedEpoch
				}
				yield(sessPart{key: k, fetchOffset: rp.FetchOffset, maxBytes: rp.PartitionMaxBytes, currentLeaderEpoch: rp.CurrentLeaderEpoch, lastFetchedEpoch: lastEpoch})
			}
		}
	}
	resolve := func(sp sessPart) fetchPart {
		fp := fetchPart{key: sp.key, offset: sp.fetchOffset, maxBytes: sp.maxBytes, leaderEpoch: sp.currentLeaderEpoch, lastEpoch: sp.lastFetchedEpoch}
		var t *topic
		if byID {
			t = s.topics.getByID(sp.key.id)
		} else {
			t = s.topics.get(sp.key.name)
		}
		if t != nil {
			fp.p = t.partition(sp.key.index)
		}
		return fp
	}

	if req.Version < 7 || req.SessionEpoch == -1 {
		if req.Version >= 7 && req.SessionID != 0 {
			s.fetches.remove(req.SessionID)
		}
		reqParts(func(sp sessPart) { parts = append(parts, resolve(sp)) })
		return parts, nil, true, nil
	}
	if req.SessionEpoch == 0 {
		if req.SessionID != 0 {
			s.fetches.remove(req.SessionID)
		}
		sess = s.fetches.create()
		sess.inUse.Lock()
		reqParts(func(sp sessPart) { sess.upsert(sp) })
		full = true
	} else {
		sess = s.fetches.get(req.SessionID)
		if sess == nil {
			return nil, nil, false, kerr.FetchSessionIDNotFound
		}
		sess.inUse.Lock()
		if sess.epoch != req.SessionEpoch {
			sess.inUse.Unlock()
			return nil, nil, false, kerr.InvalidFetchSessionEpoch
		}
		reqParts(func(sp sessPart) { sess.upsert(sp) })
		for _, ft := range req.ForgottenTopics {
			for _, idx := range ft.Partitions {
				k := sessKey{index: idx}
				if byID {
					k.id = ft.TopicID
				} else {
					k.name = ft.Topic
				}
				sess.forget(k)
			}
		}
	}
	sess.epoch = nextEpoch(sess.epoch)
	// A client re-sends a partition whenever its fetch offset moves, so the
	// cached offsets are current.
	for _, sp := range sess.parts {
		fp := resolve(*sp)
		fp.sess = sp
		parts = append(parts, fp)
	}
	return parts, sess, full, nil
}

// readParts reads every partition's record set within the limits; it
// returns the bytes read and whether the fetch must be answered now (a
// partition has an error or a preferred read replica). The remote
// partitions are warmed first, all at once (each one's first batch brought
// into the chunk cache), so a fetch over several cold partitions waits for one
// round of GETs; each is then read in order within exactly the bytes left,
// so nothing is read past its limit and dropped.
func (s *Server) readParts(ctx context.Context, parts []fetchPart, maxBytes int64, fc fetchClient) (total int64, errored bool) {
	if fc.replicaID >= 0 {
		return s.readReplicaParts(ctx, parts, maxBytes, fc.replicaID)
	}
	// KIP-392: rack_id exists from v11, and so does reading from a follower.
	fromFollower := fc.version >= 11
	rackAware := fromFollower && fc.rack != "" && s.cfg.RackAwareReads()
	s.warmRemote(ctx, parts)
	minOne := true
	for i := range parts {
		fp := &parts[i]
		fp.err = nil
		fp.hw, fp.logStart = -1, -1
		if fp.p == nil {
			fp.err = kerr.UnknownTopicOrPartition
			if fp.key.name == "" {
				fp.err = kerr.UnknownTopicID
			}
			errored = true
			continue
		}
		fp.hint, fp.redirect, fp.follower = false, false, false
		if r := replicaFor(fp.p); r != nil {
			var leader bool
			if leader, fp.err = r.checkRead(fp.leaderEpoch, fromFollower); fp.err != nil {
				if fp.err == kerr.NotLeaderForPartition || fp.err == kerr.FencedLeaderEpoch {
					fp.hintLeader, fp.hintLeaderEpoch = r.leaderHint()
					fp.hint = fp.hintLeader >= 0
				}
				errored = true
				continue
			}
			fp.follower = !leader
			// Only reads of the local log go to a follower: below the
			// leader's local log start a follower may not know the remote
			// segment (it learns the remote index lazily), and a consumer
			// sent back by it would be sent to it again.
			if leader && rackAware && fp.offset >= fp.p.log.LocalLogStartOffset() {
				if id := r.preferredReadReplica(fc.rack, fp.offset); id >= 0 {
					// As Kafka: no read, the consumer goes to the replica.
					fp.redirect, fp.readReplica = true, id
					fp.hw, fp.logStart = fp.p.log.HighWatermark(), fp.p.log.LogStartOffset()
					errored = true
					continue
				}
			}
		} else if fp.leaderEpoch > 0 {
			fp.err = kerr.UnknownLeaderEpoch
			errored = true
			continue
		}
		l := fp.p.log
		fp.hw = l.HighWatermark()
		fp.logStart = l.LogStartOffset()
		limit := min(int64(fp.maxBytes), maxBytes-total)
		if limit <= 0 && !minOne {
			continue
		}
		limit = max(limit, 0)
		remote := l.IsRemote(fp.offset)
		sls, err := l.Read(ctx, fp.offset, limit, minOne)
		if err != nil {
			fp.err = fetchError(err)
			errored = true
			if fp.err == kerr.UnknownServerError || fp.err == kerr.KafkaStorageError {
				s.log.Warn("fetch failed", "topic", fp.p.topic.name, "partition", fp.p.index, "offset", fp.offset, "err", err)
			}
			continue
		}
		rs := recordSet(sls)
		fp.records = rs
		if n := rs.Len(); n > 0 {
			if remote {
				s.metrics.remoteFetchBytes.Add(float64(n))
			}
			minOne = false
			total += n
		}
	}
	return total, errored
}

// readReplicaParts reads a follower's fetch: each partition's fetch offset
// is the follower's log end offset, which the leader records (it may move
// the high watermark or admit the follower to the ISR) before reading up to
// its own log end offset, from the local log only.
func (s *Server) readReplicaParts(ctx context.Context, parts []fetchPart, maxBytes int64, replicaID int32) (total int64, errored bool) {
	minOne := true
	for i := range parts {
		fp := &parts[i]
		fp.err, fp.diverging = nil, false
		fp.hw, fp.logStart = -1, -1
		r := replicaFor(fp.p)
		if r == nil {
			fp.err = kerr.UnknownTopicOrPartition
			errored = true
			continue
		}
		l := fp.p.log
		local := l.Local()
		// The whole log's start, as Kafka sends it to followers: a
		// follower's log start follows it (DeleteRecords, retention).
		fp.logStart = l.LogStartOffset()
		if fp.lastEpoch >= 0 {
			// KIP-320: the follower's last epoch must end where the leader's does.
			e, end := local.EndOffsetForEpoch(fp.lastEpoch)
			if e >= 0 && (e < fp.lastEpoch || end < fp.offset) {
				if fp.err = r.checkLeader(fp.leaderEpoch); fp.err != nil {
					errored = true
					continue
				}
				fp.diverging, fp.divergeEpoch, fp.divergeEnd = true, e, end
				fp.hw = l.HighWatermark()
				continue
			}
		}
		if fp.offset < local.LogStartOffset() {
			fp.err = kerr.OffsetOutOfRange
			if l.IsRemote(fp.offset) {
				fp.err = kerr.OffsetMovedToTieredStorage
			}
			errored = true
			continue
		}
		if fp.err = r.followerFetched(replicaID, fp.leaderEpoch, fp.offset); fp.err != nil {
			errored = true
			continue
		}
		fp.hw = l.HighWatermark()
		limit := min(int64(fp.maxBytes), maxBytes-total)
		if limit <= 0 && !minOne {
			continue
		}
		sls, err := l.ReadReplica(ctx, fp.offset, max(limit, 0), minOne)
		if err != nil {
			fp.err = fetchError(err)
			errored = true
			continue
		}
		fp.records = recordSet(sls)
		if n := fp.records.Len(); n > 0 {
			minOne = false
			total += n
		}
	}
	return total, errored
}

// warmRemote warms, all at once, the partitions of a fetch whose offsets are
// in the remote tier (partition.Log.Warm), when there are two or more.
func (s *Server) warmRemote(ctx context.Context, parts []fetchPart) {
	var idx []int
	for i := range parts {
		fp := &parts[i]
		if fp.p != nil && fp.leaderEpoch <= 0 && fp.p.log.IsRemote(fp.offset) {
			idx = append(idx, i)
		}
	}
	if len(idx) < 2 {
		return
	}
	var wg sync.WaitGroup
	for _, i := range idx {
		fp := &parts[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			fp.p.log.Warm(ctx, fp.offset)
		}()
	}
	wg.Wait()
}

func fetchError(err error) *kerr.Error {
	switch {
	case errors.Is(err, localstore.ErrOffsetOutOfRange), errors.Is(err, tierapi.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange
	case errors.Is(err, localstore.ErrClosed):
		return kerr.NotLeaderForPartition
	case errors.Is(err, tierapi.ErrUnavailable), errors.Is(err, localstore.ErrStorage), errors.Is(err, context.DeadlineExceeded):
		return kerr.KafkaStorageError
	}
	return kerr.UnknownServerError
}
