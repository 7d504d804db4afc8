package tier

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/crashpoint"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
)

// rollbackTimeout bounds the deletes that undo a failed upload, which run
// even when the round's context is cancelled.
const rollbackTimeout = 30 * time.Second

// Manage records the partitions' logs and settings and queues a round for
// each partition that tiers (or still has remote segments). It never waits
// for the store: rounds run on the upload workers, at most one per partition
// at a time and Config.UploadConcurrency in all.
//
// It also recomputes the copy lag of every partition from its log and the
// remote index (closed segments no COPY_FINISHED entry covers), so the lag
// gauges move while an upload hangs, and the store gauges.
func (m *Manager) Manage(ctx context.Context, parts []PartitionLog) {
	m.jobs.Lock()
	if m.jobs.closed {
		m.jobs.Unlock()
		return
	}
	type lagged struct {
		ps *partState
		pl PartitionLog
	}
	var lag, floors []lagged
	for _, pl := range parts {
		if pl.Log == nil || m.jobs.forgotten[pl.TopicID] {
			continue
		}
		if m.jobs.remoteOff[pl.TopicID] {
			pl.Remote = false // DropRemote: this description may predate it
		}
		ps := m.part(tp{pl.Topic, pl.Partition})
		ps.log, ps.hasLog, ps.topicID = pl, true, pl.TopicID
		if ps.deleted {
			continue
		}
		if pl.Remote && pl.Compaction != nil {
			floors = append(floors, lagged{ps, pl})
		}
		lag = append(lag, lagged{ps, pl})
		if ps.queued {
			continue
		}
		if !pl.Remote && len(m.viewOf(ps).segs) == 0 {
			continue
		}
		ps.queued = true
		m.jobs.queue = append(m.jobs.queue, ps)
	}
	m.jobs.cond.Broadcast()
	m.jobs.Unlock()

	// What the index holds is the tier's: the local cleaner leaves it alone
	// (localstore's tier floor, clean_tier.go). Outside the jobs lock: the
	// floor takes the log's writer lock.
	for _, f := range floors {
		f.pl.Log.SetTierFloor(m.viewOf(f.ps).tierFloor())
	}
	for _, l := range lag {
		m.updateLag(l.ps, l.pl)
	}
	m.updateLagAge()
	last := m.health.State().LastSuccess
	if last.IsZero() {
		last = m.started
	}
	m.m.storeSinceOK.Set(max(0, time.Since(last).Seconds()))
}

// worker runs queued rounds until Close.
func (m *Manager) worker() {
	defer m.wg.Done()
	m.jobs.Lock()
	for {
		for len(m.jobs.queue) == 0 && !m.jobs.closed {
			m.jobs.cond.Wait()
		}
		if m.jobs.closed {
			m.jobs.Unlock()
			return
		}
		ps := m.jobs.queue[0]
		m.jobs.queue = m.jobs.queue[1:]
		m.jobs.running++
		m.jobs.Unlock()

		m.round(ps)

		m.jobs.Lock()
		m.jobs.running--
		ps.queued = false
		m.jobs.cond.Broadcast()
	}
}

// waitIdle waits until no round is queued or running (tests).
func (m *Manager) waitIdle() {
	m.jobs.Lock()
	defer m.jobs.Unlock()
	for (len(m.jobs.queue) > 0 || m.jobs.running > 0) && !m.jobs.closed {
		m.jobs.cond.Wait()
	}
}

// round is one management round of a partition: finish interrupted work,
// upload what is eligible in offset order (nothing with
// remote.log.copy.disable), delete the remote segments below the retention
// cut-off the partition asked for (DeleteRemoteBefore). After a failure the
// store work waits for the partition's backoff. Local segments are the
// partition's (package partition): the tier never deletes them.
func (m *Manager) round(ps *partState) {
	ps.opMu.Lock()
	defer ps.opMu.Unlock()
	m.jobs.Lock()
	if ps.deleted || m.jobs.closed {
		m.jobs.Unlock()
		return
	}
	pl := ps.log
	if m.jobs.remoteOff[pl.TopicID] {
		pl.Remote = false
	}
	ctx, cancel := context.WithCancel(m.ctx)
	ps.cancel = cancel
	storeDue := !m.cfg.Now().Before(ps.retryAt)
	m.jobs.Unlock()
	defer cancel()

	if storeDue {
		var err error
		if pl.Replicated {
			err = m.replicatedRound(ctx, ps, pl)
		} else {
			err = m.finishPending(ctx, ps)
			if err == nil && pl.Remote && !pl.CopyDisabled {
				err = m.uploadEligible(ctx, ps, pl)
			}
			if err == nil {
				err = m.remoteRetention(ctx, ps)
			}
			if err == nil && pl.Remote && pl.Compaction != nil {
				err = m.compactRemote(ctx, ps, pl)
			}
		}
		if err == nil {
			m.m.retentionPasses.Inc()
		}
		if ctx.Err() == nil {
			m.noteResult(ps, err)
		}
	}
	m.updateLag(ps, pl)
	m.updateLagAge()
}

// noteResult records a round's outcome: the backoff of the partition, and
// one log line per run of failures that the store's health does not already
// explain (onHealth reports those: once per change of availability).
func (m *Manager) noteResult(ps *partState, err error) {
	storeDown := !m.health.State().Available
	m.jobs.Lock()
	defer m.jobs.Unlock()
	if err == nil {
		ps.failures, ps.retryAt, ps.lastErr = 0, time.Time{}, ""
		if m.jobs.outage {
			m.jobs.outage = false
			m.logger.Info("remote tier operations succeed again")
		}
		return
	}
	ps.failures++
	backoff := m.cfg.RetryBackoff
	for i := 1; i < ps.failures && backoff < m.cfg.MaxRetryBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, m.cfg.MaxRetryBackoff)
	ps.retryAt = m.cfg.Now().Add(backoff)
	ps.lastErr = err.Error()
	if !m.jobs.outage && !storeDown {
		m.jobs.outage = true
		m.logger.Warn("remote tier operation failed; segments wait on local disk and are retried with backoff",
			"topic", ps.key.topic, "partition", ps.key.partition, "retry_in", backoff, "err", err)
	} else {
		m.logger.Debug("remote tier operation failed", "topic", ps.key.topic, "partition", ps.key.partition,
			"retry_in", backoff, "err", err)
	}
}

// eligible returns the closed, non-empty local segments wholly below the
// upload limit (the high watermark in a cluster, else the log end offset)
// that hold offsets above highest, the last offset in the remote tier, in
// offset order. The first may begin at or below highest: a new leader's
// segments are cut where its own log rolled, not where the old leader's
// were, and upload copies such a segment from its first batch above highest.
//
// Of a compacted topic only the leading segments that are ready are
// eligible (compactedReady): uploads go in offset order.
func eligible(pl PartitionLog, highest int64, now time.Time) []localstore.SegmentInfo {
	limit := pl.Log.LogEndOffset()
	if pl.HighWatermark != nil {
		limit = min(limit, pl.HighWatermark())
	}
	cleaned := int64(-1)
	if pl.Compaction != nil {
		cleaned = pl.Log.CleanedUpTo()
	}
	var out []localstore.SegmentInfo
	for _, s := range pl.Log.Segments() {
		if s.Active || s.Size == 0 || s.NextOffset > limit || s.NextOffset-1 <= highest {
			continue
		}
		if pl.Compaction != nil && !compactedReady(pl.Compaction, s, cleaned, now) {
			break
		}
		out = append(out, s)
	}
	return out
}

// compactedReady reports whether a compacted topic's closed segment may be
// uploaded: it is older than min.compaction.lag.ms, and the local cleaner
// has cleaned it once (cleaned is the cleaner's first dirty offset) or its
// oldest record is older than max.compaction.lag.ms (a cleaner that cannot
// keep up does not keep the segment local for ever). What is uploaded is
// then compacted once, and the remote compaction (compact.go) goes on from
// there.
func compactedReady(c *Compaction, s localstore.SegmentInfo, cleaned int64, now time.Time) bool {
	nowMs := now.UnixMilli()
	if c.MinCompactionLagMs > 0 && s.MaxTimestamp > nowMs-c.MinCompactionLagMs {
		return false
	}
	if s.NextOffset <= cleaned {
		return true
	}
	return c.MaxCompactionLagMs < math.MaxInt64 && s.FirstTimestamp >= 0 && nowMs-s.FirstTimestamp > c.MaxCompactionLagMs
}

// uploadEligible uploads the eligible segments one after the other: segment
// N+1 only once N is COPY_FINISHED.
func (m *Manager) uploadEligible(ctx context.Context, ps *partState, pl PartitionLog) error {
	for {
		highest := m.viewOf(ps).highest
		segs := eligible(pl, highest, m.cfg.Now())
		if len(segs) == 0 {
			return nil
		}
		if pl.Compaction != nil && !pl.Log.PinForUpload(segs[0].BaseOffset, segs[0].NextOffset, segs[0].Size) {
			// The cleaner swapped the segment out since the listing: list
			// again at the next round.
			return nil
		}
		if err := m.upload(ctx, ps, pl, segs[0], highest); err != nil {
			return err
		}
		m.updateLag(ps, pl)
		m.updateLagAge()
	}
}

// upload copies one closed segment: COPY_STARTED, the .log (rate-limited)
// and the .idx under fresh keys, COPY_FINISHED. On any error it deletes what
// it put and drops the entry; the segment stays local and is retried. A
// segment that begins at or below highest is copied from its first batch
// above it (the .log object is then the tail of the local file).
//
// In a cluster the upload is fenced by the leader epoch it started under:
// the sidecar records it, and before the sidecar is put (the attempt's
// commit in the bucket, which every replica learns from) and again before
// COPY_FINISHED, the broker must still lead at that epoch. Deposed before
// the sidecar: the attempt is rolled back like a failed one. Deposed after
// it: the segment is complete in the bucket, holds only records below the
// high watermark (committed), and is the new leader's to learn or, if it
// raced an upload of the new epoch, to delete (replicated.go): the broker
// only drops its own entry.
func (m *Manager) upload(ctx context.Context, ps *partState, pl PartitionLog, si localstore.SegmentInfo, highest int64) (err error) {
	key := ps.key
	local := pl.Log
	seg0, err := local.OpenSegment(si.BaseOffset)
	if err != nil {
		return fmt.Errorf("tier: cannot open segment %d of %s-%d: %w", si.BaseOffset, key.topic, key.partition, err)
	}
	defer seg0.Done()
	f := seg0.File
	sc, err := buildSidecar(io.NewSectionReader(f, 0, si.Size), key.topic, key.partition,
		si.BaseOffset, si.NextOffset-1, si.Size, m.cfg.ChunkBytes)
	if err != nil {
		return fmt.Errorf("tier: cannot index segment %d of %s-%d: %w", si.BaseOffset, key.topic, key.partition, err)
	}
	from, size := int64(0), si.Size
	if si.BaseOffset <= highest {
		i := sort.Search(len(sc.Batches), func(i int) bool { return sc.Batches[i].LastOffset > highest })
		if i == len(sc.Batches) {
			return fmt.Errorf("tier: segment %d of %s-%d has no batch above offset %d", si.BaseOffset, key.topic, key.partition, highest)
		}
		from = sc.Batches[i].Pos
		size = si.Size - from
		sc, err = buildSidecar(io.NewSectionReader(f, from, size), key.topic, key.partition,
			sc.Batches[i].BaseOffset, si.NextOffset-1, size, m.cfg.ChunkBytes)
		if err != nil {
			return fmt.Errorf("tier: cannot index segment %d of %s-%d from position %d: %w", si.BaseOffset, key.topic, key.partition, from, err)
		}
	}
	// The sidecar names the topic ID, so Recover can tell this topic's
	// segments from those of a deleted topic of the same name.
	if t, err := m.meta.Topic(key.topic); err == nil {
		sc.TopicID = t.ID
	}
	sc.LeaderEpoch = pl.LeaderEpoch
	idx := sc.encode()

	seg := metadata.RemoteSegment{
		BaseOffset: sc.BaseOffset, EndOffset: si.NextOffset - 1,
		FirstTimestamp: sc.FirstTimestamp, MaxTimestamp: sc.MaxTimestamp,
		Size: size, LeaderEpoch: pl.LeaderEpoch, UploadID: newUploadID(), State: metadata.CopyStarted,
	}
	if !si.RolledAt.IsZero() {
		seg.RolledAtMs = si.RolledAt.UnixMilli()
	}
	if err := m.putEntry(ps, seg); err != nil {
		return err
	}
	crashpoint.At("upload-copy-started")
	m.m.copyRequests.Inc()
	logK := logKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID)
	idxK := sidecarKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID)
	committed := false // the sidecar is in the bucket
	defer func() {
		if err == nil {
			return
		}
		m.m.copyErrors.Inc()
		if m.ctx.Err() != nil {
			return // closing: the COPY_STARTED entry is rolled back at the next start
		}
		if committed && pl.Replicated {
			// Complete in the bucket: the leader's learning settles it.
			if derr := m.dropEntry(ps, seg); derr != nil {
				m.logger.Warn("cannot drop the entry of an upload", "key", logK, "err", derr)
			}
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if derr := m.deleteObjects(rctx, key, seg); derr != nil {
			m.logger.Debug("cannot delete the objects of a failed upload; the reconciler will", "key", logK, "err", derr)
		}
		if derr := m.dropEntry(ps, seg); derr != nil {
			m.logger.Warn("cannot drop the entry of a failed upload", "key", logK, "err", derr)
		}
	}()

	var body io.ReadSeeker = &limitedReader{ctx: ctx, r: io.NewSectionReader(f, from, size), b: m.limiter}
	if err := m.store.Put(ctx, logK, body, size); err != nil {
		return fmt.Errorf("tier: cannot upload %q: %w", logK, err)
	}
	crashpoint.At("upload-log-put")
	if !stillLeads(pl) {
		m.logger.Info("upload abandoned: no longer the leader", "topic", key.topic, "partition", key.partition,
			"base", seg.BaseOffset, "leader_epoch", pl.LeaderEpoch)
		return fmt.Errorf("%w %s-%d at leader epoch %d", errDeposed, key.topic, key.partition, pl.LeaderEpoch)
	}
	if err := m.store.Put(ctx, idxK, bytes.NewReader(idx), int64(len(idx))); err != nil {
		return fmt.Errorf("tier: cannot upload %q: %w", idxK, err)
	}
	committed = true
	crashpoint.At("upload-idx-put")
	if !stillLeads(pl) {
		m.logger.Info("upload complete in the bucket but no longer the leader: left to the new leader", "topic", key.topic, "partition", key.partition,
			"base", seg.BaseOffset, "leader_epoch", pl.LeaderEpoch)
		return fmt.Errorf("%w %s-%d at leader epoch %d", errDeposed, key.topic, key.partition, pl.LeaderEpoch)
	}
	seg.State, seg.CRC32C = metadata.CopyFinished, sc.LogCRC
	if err := m.putEntry(ps, seg); err != nil {
		return err
	}
	m.sidecars.put(idxK, sc)
	m.m.copyBytes.Add(float64(size))
	if !si.RolledAt.IsZero() {
		m.m.timeToTier.Observe(max(0, m.cfg.Now().Sub(si.RolledAt).Seconds()))
	}
	m.logger.Debug("segment copied", "topic", key.topic, "partition", key.partition,
		"base", seg.BaseOffset, "end", seg.EndOffset, "bytes", seg.Size, "leader_epoch", seg.LeaderEpoch, "key", logK)
	return nil
}

// RetentionItems describes the partition's COPY_FINISHED segments for the
// partition's retention cut-off, and the highest offset they hold (-1: none).
func (m *Manager) RetentionItems(topic string, partition int32) ([]localstore.RetentionItem, int64) {
	ps := m.lookup(tp{topic, partition})
	if ps == nil {
		return nil, -1
	}
	v := m.viewOf(ps)
	items := make([]localstore.RetentionItem, 0, len(v.finished))
	for _, s := range v.finished {
		items = append(items, localstore.RetentionItem{NextOffset: s.EndOffset + 1, Size: s.Size, MaxTimestamp: s.MaxTimestamp})
	}
	return items, v.highest
}

// DeleteRemoteBefore records the partition's retention cut-off: its next
// round deletes the remote segments that end below offset (DELETE_STARTED,
// the objects, the entry), retrying while the store is down. A partition the
// manager holds nothing of has nothing to delete.
func (m *Manager) DeleteRemoteBefore(topic string, partition int32, offset int64) {
	ps := m.lookup(tp{topic, partition})
	if ps == nil {
		return
	}
	m.jobs.Lock()
	ps.retentionCut = max(ps.retentionCut, offset)
	m.jobs.Unlock()
}

// remoteRetention deletes the remote segments below the retention cut-off
// the partition last asked for.
func (m *Manager) remoteRetention(ctx context.Context, ps *partState) error {
	m.jobs.Lock()
	cut := ps.retentionCut
	m.jobs.Unlock()
	for _, s := range m.viewOf(ps).finished {
		if s.EndOffset >= cut {
			break
		}
		if err := m.deleteRemote(ctx, ps, s); err != nil {
			return err
		}
		m.logger.Debug("remote retention deleted a segment", "topic", ps.key.topic, "partition", ps.key.partition,
			"base", s.BaseOffset, "end", s.EndOffset)
	}
	return nil
}

// updateLag recomputes the partition's copy lag from its log and the remote
// index (the closed segments no COPY_FINISHED entry covers, an upload in
// progress included) and the totals.
func (m *Manager) updateLag(ps *partState, pl PartitionLog) {
	ps.lagMu.Lock()
	defer ps.lagMu.Unlock()
	var (
		lagBytes int64
		lagSegs  int
		oldest   time.Time
	)
	if pl.Remote && !pl.CopyDisabled { // with copy disabled nothing waits to be copied
		for _, s := range eligible(pl, m.viewOf(ps).highest, m.cfg.Now()) {
			lagBytes += s.Size
			lagSegs++
			if !s.RolledAt.IsZero() && (oldest.IsZero() || s.RolledAt.Before(oldest)) {
				oldest = s.RolledAt
			}
		}
	}
	m.jobs.Lock()
	if ps.deleted { // ForgetTopic took its lag out; a late update must not put it back
		lagBytes, lagSegs, oldest = 0, 0, time.Time{}
	}
	m.jobs.lagBytes += lagBytes - ps.lagBytes
	m.jobs.lagSegs += lagSegs - ps.lagSegs
	ps.lagBytes, ps.lagSegs, ps.lagOldest = lagBytes, lagSegs, oldest
	m.m.copyLagBytes.Set(float64(m.jobs.lagBytes))
	m.m.copyLagSegs.Set(float64(m.jobs.lagSegs))
	m.jobs.Unlock()
}

// updateLagAge sets the age of the oldest lagging segment, over every
// partition.
func (m *Manager) updateLagAge() {
	parts := m.allParts()
	m.jobs.Lock()
	defer m.jobs.Unlock()
	var first time.Time
	for _, p := range parts {
		if p.lagSegs > 0 && !p.lagOldest.IsZero() && (first.IsZero() || p.lagOldest.Before(first)) {
			first = p.lagOldest
		}
	}
	age := 0.0
	if !first.IsZero() {
		age = max(0, m.cfg.Now().Sub(first).Seconds())
	}
	m.m.copyLagOldest.Set(age)
}

// tokenBucket limits bytes per second: every upload together (the copy
// limit), or every remote read together (the fetch limit). Reservations may
// drive the balance negative; the reserver then waits it back to zero. The
// rate may change at any time (setRate: the dynamic broker configs of
// KIP-956); a waiter then wakes and waits out the rest of its deficit at the
// new rate. A rate <= 0 is unlimited: wait returns at once.
type tokenBucket struct {
	// now and sleep are time.Now and sleepCtx; tests replace them before
	// first use to see the waits the bucket asks for without spending them.
	// sleep returns early, with nil, when wake is closed.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration, wake <-chan struct{}) error
	mu    struct {
		sync.Mutex
		rate, burst float64 // rate <= 0: unlimited
		step        int     // largest reservation of one read; 0: unlimited
		tokens      float64
		last        time.Time
		changed     chan struct{} // closed and replaced by setRate
	}
}

func newTokenBucket(bytesPerSec int64) *tokenBucket {
	b := &tokenBucket{now: time.Now, sleep: sleepCtx}
	b.mu.changed = make(chan struct{})
	b.mu.last = b.now()
	b.setRateLocked(bytesPerSec)
	b.mu.tokens = b.mu.burst
	return b
}

// setRate changes the limit (<= 0: unlimited) and wakes the waiters, who
// wait out the rest of their deficit at the new rate.
func (b *tokenBucket) setRate(bytesPerSec int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refillLocked()
	b.setRateLocked(bytesPerSec)
	if b.mu.rate <= 0 {
		b.mu.tokens = 0
	} else {
		b.mu.tokens = min(b.mu.tokens, b.mu.burst)
	}
	close(b.mu.changed)
	b.mu.changed = make(chan struct{})
}

func (b *tokenBucket) setRateLocked(bytesPerSec int64) {
	if bytesPerSec <= 0 {
		b.mu.rate, b.mu.burst, b.mu.step = 0, 0, 0
		return
	}
	b.mu.rate = float64(bytesPerSec)
	b.mu.step = int(min(64<<10, max(1, bytesPerSec/10)))
	b.mu.burst = max(float64(b.mu.step), b.mu.rate/10)
}

// limits returns the rate (<= 0: unlimited), the burst and the step.
func (b *tokenBucket) limits() (rate, burst float64, step int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.rate, b.mu.burst, b.mu.step
}

// chunk caps a read of len(p) bytes at the bucket's step (none when
// unlimited).
func (b *tokenBucket) chunk(p []byte) []byte {
	b.mu.Lock()
	step := b.mu.step
	b.mu.Unlock()
	if step > 0 && len(p) > step {
		return p[:step]
	}
	return p
}

// refillLocked adds the tokens earned since the last refill. b.mu must be
// held.
func (b *tokenBucket) refillLocked() {
	now := b.now()
	if b.mu.rate > 0 {
		b.mu.tokens = min(b.mu.burst, b.mu.tokens+now.Sub(b.mu.last).Seconds()*b.mu.rate)
	}
	b.mu.last = now
}

// wait reserves n bytes and sleeps until they are covered.
func (b *tokenBucket) wait(ctx context.Context, n int) error {
	b.mu.Lock()
	if b.mu.rate <= 0 {
		b.mu.Unlock()
		return nil
	}
	b.refillLocked()
	b.mu.tokens -= float64(n)
	deficit, rate, wake := -b.mu.tokens, b.mu.rate, b.mu.changed
	b.mu.Unlock()
	for deficit > 0 {
		start := b.now()
		if err := b.sleep(ctx, time.Duration(deficit/rate*float64(time.Second)), wake); err != nil {
			return err
		}
		select {
		case <-wake:
		default:
			return nil // slept it out
		}
		// The rate changed while we slept: what is left of the deficit is
		// waited at the new rate.
		deficit -= b.now().Sub(start).Seconds() * rate
		b.mu.Lock()
		rate, wake = b.mu.rate, b.mu.changed
		b.mu.Unlock()
		if rate <= 0 {
			return nil
		}
	}
	return nil
}

// sleepCtx waits d, or until wake is closed (nil), or until ctx is done
// (its cause).
func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// limitedReader paces reads of an upload body through the bucket. Seek
// passes through, so a retrying Put can rewind it.
type limitedReader struct {
	ctx context.Context
	r   io.ReadSeeker
	b   *tokenBucket
}

func (l *limitedReader) Read(p []byte) (int, error) {
	p = l.b.chunk(p)
	if err := l.b.wait(l.ctx, len(p)); err != nil {
		return 0, err
	}
	return l.r.Read(p)
}

func (l *limitedReader) Seek(off int64, whence int) (int64, error) { return l.r.Seek(off, whence) }
