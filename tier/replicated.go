package tier

// Tiering in a cluster (see "Replicas" in doc.go): only a partition's leader
// uploads and deletes; every replica learns the remote index from the bucket.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
)

// errDeposed ends an upload whose broker no longer leads the partition at
// the epoch the upload started under.
var errDeposed = errors.New("tier: this broker no longer leads the partition")

// stillLeads reports whether the round's broker still leads at pl's epoch.
func stillLeads(pl PartitionLog) bool {
	if !pl.Replicated {
		return true
	}
	return pl.Leader && (pl.StillLeader == nil || pl.StillLeader(pl.LeaderEpoch))
}

// replicatedRound is the store work of a round of a replicated partition.
// The leader learns the index from the bucket once per leader epoch (and
// again after any failure), before its first upload, then uploads and
// applies remote retention. A follower learns the index only when it holds a
// closed segment below its high watermark that the index it knows does not
// cover, the only case where learning lets local retention free disk (a
// follower that becomes leader learns anyway). Called holding ps.opMu.
func (m *Manager) replicatedRound(ctx context.Context, ps *partState, pl PartitionLog) (err error) {
	if !stillLeads(pl) {
		ps.learnedEpoch = -1 // a later leadership learns again
		if !m.followerShouldLearn(ps, pl) {
			return nil
		}
		return m.learn(ctx, ps, pl, false)
	}
	defer func() {
		if err != nil {
			ps.learnedEpoch = -1 // what failed may have changed the bucket
		}
	}()
	if ps.learnedEpoch != pl.LeaderEpoch {
		if err := m.learn(ctx, ps, pl, true); err != nil {
			return err
		}
		ps.learnedEpoch = pl.LeaderEpoch
	}
	if pl.Remote && !pl.CopyDisabled {
		if err := m.uploadEligible(ctx, ps, pl); err != nil {
			return err
		}
	}
	return m.remoteRetention(ctx, ps)
}

// followerShouldLearn reports whether a follower has a closed local segment
// wholly below its high watermark that no COPY_FINISHED entry it knows
// covers.
func (m *Manager) followerShouldLearn(ps *partState, pl PartitionLog) bool {
	if !pl.Remote && len(m.viewOf(ps).segs) == 0 {
		return false
	}
	return len(eligible(pl, m.viewOf(ps).highest, m.cfg.Now())) > 0
}

// bucketAttempt is one upload attempt found under a partition's prefix.
type bucketAttempt struct {
	base     int64
	uploadID string
	log, idx *remotestore.ObjectInfo
}

// learn rebuilds the partition's remote index from the bucket: one LIST of
// the partition's prefix, then one GET of the sidecar of each complete
// attempt (a .log and its .idx) the index does not already hold. Attempts
// without a sidecar are in flight or abandoned: their uploader rolls them
// back, or the reconciler deletes them; they are never learned. Of complete
// segments covering the same offsets (two leaders raced), the one of the
// higher leader epoch is kept; the leader deletes the other's objects, a
// follower only ignores it. The leader also finishes its own interrupted
// deletes; any replica rolls back its own interrupted uploads that never
// got a sidecar (nobody learns those). Otherwise a follower leaves objects
// alone.
func (m *Manager) learn(ctx context.Context, ps *partState, pl PartitionLog, leader bool) error {
	key := ps.key
	attempts := map[string]*bucketAttempt{}
	err := m.store.List(ctx, partitionPrefix(key.topic, key.partition), func(info remotestore.ObjectInfo) error {
		n, ok := parseKey(info.Key)
		if !ok || n.Topic != key.topic || n.Partition != key.partition {
			return nil
		}
		id := fmt.Sprintf("%020d-%s", n.Base, n.UploadID)
		a := attempts[id]
		if a == nil {
			a = &bucketAttempt{base: n.Base, uploadID: n.UploadID}
			attempts[id] = a
		}
		if n.Suffix == logSuffix {
			a.log = &info
		} else {
			a.idx = &info
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tier: cannot list %s-%d: %w", key.topic, key.partition, err)
	}
	m.m.learnLists.Inc()

	known := map[string]metadata.RemoteSegment{}
	for _, s := range m.viewOf(ps).segs {
		known[fmt.Sprintf("%020d-%s", s.BaseOffset, s.UploadID)] = s
	}
	var cands []metadata.RemoteSegment
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for k := range attempts {
			if !yield(k) {
				return
			}
		}
	}) {
		a := attempts[id]
		k, isKnown := known[id]
		if isKnown && k.State == metadata.DeleteStarted {
			continue // being deleted: never learned again (the leader finishes it below)
		}
		if a.log == nil || a.idx == nil {
			continue
		}
		if isKnown && k.State == metadata.CopyFinished {
			cands = append(cands, k)
			continue
		}
		sc, err := fetchSidecar(ctx, m.store, a.idx.Key)
		m.m.learnGets.Inc()
		switch {
		case err != nil && (errors.Is(err, errBadSidecar) || remotestore.IsNotFound(err)):
			m.logger.Warn("not learning a remote segment", "key", a.idx.Key, "err", err)
			continue
		case err != nil:
			return fmt.Errorf("tier: cannot learn %q: %w", a.idx.Key, err)
		case sc.Topic != key.topic || sc.Partition != key.partition || sc.BaseOffset != a.base || sc.Size != a.log.Size:
			m.logger.Warn("not learning a remote segment: its sidecar does not describe it", "key", a.idx.Key,
				"sidecar", fmt.Sprintf("%s-%d base %d, %d bytes", sc.Topic, sc.Partition, sc.BaseOffset, sc.Size), "log_bytes", a.log.Size)
			continue
		case pl.TopicID != ([16]byte{}) && sc.TopicID != ([16]byte{}) && sc.TopicID != pl.TopicID:
			continue // a deleted topic's leftover under the same name: its deletion removes it
		}
		m.sidecars.put(a.idx.Key, sc)
		cands = append(cands, metadata.RemoteSegment{
			BaseOffset: sc.BaseOffset, EndOffset: sc.EndOffset,
			FirstTimestamp: sc.FirstTimestamp, MaxTimestamp: sc.MaxTimestamp, Size: sc.Size,
			LeaderEpoch: sc.LeaderEpoch, UploadID: a.uploadID, State: metadata.CopyFinished, CRC32C: sc.LogCRC,
			RolledAtMs: a.log.LastModified.UnixMilli(),
		})
	}
	keep, losers := resolveOverlaps(cands)

	// The index becomes what the bucket holds.
	kept := map[int64]metadata.RemoteSegment{}
	for _, s := range keep {
		kept[s.BaseOffset] = s
	}
	for _, s := range m.viewOf(ps).segs {
		if k, ok := kept[s.BaseOffset]; ok && k.UploadID == s.UploadID && s.State == metadata.CopyFinished {
			continue
		}
		switch {
		case s.State == metadata.CopyStarted:
			// Our own interrupted upload (no upload runs: opMu), leader
			// or not now. Complete in the bucket: learned above like any
			// other; else no broker ever learns it, and its objects are
			// deleted.
			if a := attempts[fmt.Sprintf("%020d-%s", s.BaseOffset, s.UploadID)]; a == nil || a.log == nil || a.idx == nil {
				if err := m.deleteObjects(ctx, key, s); err != nil {
					return err
				}
				m.logger.Info("rolled back an interrupted upload", "topic", key.topic, "partition", key.partition,
					"base", s.BaseOffset, "upload_id", s.UploadID)
			}
		case s.State == metadata.DeleteStarted && leader:
			if err := m.deleteObjects(ctx, key, s); err != nil {
				return err
			}
		}
		if _, ok := kept[s.BaseOffset]; !ok {
			if err := m.dropEntry(ps, s); err != nil {
				return err
			}
		}
	}
	for _, s := range keep {
		cur := m.viewOf(ps)
		i := sort.Search(len(cur.segs), func(i int) bool { return cur.segs[i].BaseOffset >= s.BaseOffset })
		if i < len(cur.segs) && cur.segs[i].BaseOffset == s.BaseOffset && cur.segs[i].UploadID == s.UploadID && cur.segs[i].State == metadata.CopyFinished {
			continue
		}
		if i < len(cur.segs) && cur.segs[i].BaseOffset == s.BaseOffset && cur.segs[i].UploadID != s.UploadID {
			m.sidecars.remove(sidecarKey(key.topic, key.partition, s.BaseOffset, cur.segs[i].UploadID))
		}
		if err := m.putEntry(ps, s); err != nil {
			return err
		}
	}
	if leader {
		for _, s := range losers {
			if err := m.deleteObjects(ctx, key, s); err != nil {
				return err
			}
			m.m.learnSuperseded.Inc()
			m.logger.Info("deleted a remote segment superseded by a higher leader epoch's", "topic", key.topic, "partition", key.partition,
				"base", s.BaseOffset, "end", s.EndOffset, "leader_epoch", s.LeaderEpoch, "upload_id", s.UploadID)
		}
	}
	v := m.viewOf(ps)
	m.logger.Debug("learned the remote index from the bucket", "topic", key.topic, "partition", key.partition,
		"leader", leader, "segments", len(v.finished), "start", v.start, "highest", v.highest, "superseded", len(losers))
	return nil
}

// resolveOverlaps keeps, of segments covering common offsets, the one of
// the higher leader epoch (then the longer, then the later upload id, so
// every broker picks the same), and returns the kept ones by base offset and
// the others.
func resolveOverlaps(cands []metadata.RemoteSegment) (keep, losers []metadata.RemoteSegment) {
	order := slices.Clone(cands)
	slices.SortFunc(order, func(a, b metadata.RemoteSegment) int {
		if c := cmp.Compare(b.LeaderEpoch, a.LeaderEpoch); c != 0 {
			return c
		}
		if c := cmp.Compare(b.EndOffset-b.BaseOffset, a.EndOffset-a.BaseOffset); c != 0 {
			return c
		}
		return cmp.Compare(b.UploadID, a.UploadID)
	})
	for _, s := range order {
		i := sort.Search(len(keep), func(i int) bool { return keep[i].BaseOffset > s.EndOffset })
		// keep[i-1] is the last kept segment starting at or before s ends.
		if i > 0 && keep[i-1].EndOffset >= s.BaseOffset {
			losers = append(losers, s)
			continue
		}
		keep = slices.Insert(keep, i, s)
	}
	return keep, losers
}
