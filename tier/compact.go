package tier

// Remote compaction: the tier's log cleaner for a compacted topic's remote
// part. A compacted topic uploads segments the local cleaner has cleaned
// once (compactedReady), but a key's newer record may arrive after its older
// one was uploaded: the remote part gets dirty. When the bytes of the remote
// segments at or above the partition's remote cleaned-up-to offset
// (metadata.RemoteCleanedUpTo) reach min.cleanable.dirty.ratio of the remote
// part, a partition's round compacts it:
//
//  1. a key map (the local cleaner's, localstore.Compactor) of the remote
//     dirty range, each segment read through the chunk cache, then of the
//     local log above the remote part: a key whose newer record lives
//     locally is dropped remotely;
//  2. every remote segment, from the remote start, filtered by it (the
//     local cleaner's rule and batch rewrite). A segment that loses nothing
//     stays as it is; one that loses everything is dropped, unless it is
//     the first or the last (the remote start and highest offset do not
//     move); any other is replaced by its filtered copy, at the same base
//     and end offsets, under a fresh upload id, with its own sidecar;
//  3. per run of replacements (at most compactRunBytes of input): the
//     intent (metadata.StartRemoteCompaction, COMPACT_STARTED, naming the
//     old entries and the new ones with their keys), the new objects
//     (paced by remote.log.compaction.max.bytes.per.second), the switch
//     (one bbolt transaction: old entries out, new ones in as
//     COPY_FINISHED, the cleaned-up-to offset moved, COMPACT_SWITCHED),
//     then the old objects deleted and the intent dropped.
//
// A crash before the switch leaves the old set: finishPending (at start-up
// or the next round) deletes the new objects the intent names and drops
// it. A crash after it leaves the new set: finishPending deletes the old
// objects. Reconcile counts the objects an intent names as owned. Reads
// that raced the switch and find an old object gone fail with
// ErrUnavailable (retriable) and read the new set when retried.
//
// Compaction runs inside the partition's round, so it never races the
// partition's uploads or remote retention. Not in a cluster yet: replicated
// partitions are not compacted remotely.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
)

const (
	// compactRunBytes bounds the input bytes one switch replaces, and so
	// the local disk the replacements take before they are uploaded.
	compactRunBytes = 256 << 20
	// compactDirSuffix names the compaction's scratch directory, beside the
	// chunk cache's (<remote.cache.dir>.compact: never a partition
	// directory, whose names end in -<digits>); New empties it.
	compactDirSuffix = ".compact"
)

// compactState returns the partition's remote dirty and total bytes and its
// cleaned-up-to offset.
func (m *Manager) compactState(ps *partState) (dirty, total, cleaned int64, err error) {
	cleaned, err = m.meta.RemoteCleanedUpTo(ps.key.topic, ps.key.partition)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, s := range m.viewOf(ps).finished {
		total += s.Size
		if s.EndOffset >= cleaned {
			dirty += s.Size
		}
	}
	return dirty, total, cleaned, nil
}

// compactRemote compacts the partition's remote part if its dirty ratio
// reached min.cleanable.dirty.ratio. Called in the partition's round.
func (m *Manager) compactRemote(ctx context.Context, ps *partState, pl PartitionLog) (err error) {
	c := pl.Compaction
	dirty, total, cleaned, err := m.compactState(ps)
	if err != nil || dirty == 0 || float64(dirty) < c.MinCleanableDirtyRatio*float64(total) {
		return err
	}
	key := ps.key
	fin := m.viewOf(ps).finished
	highest := m.viewOf(ps).highest
	m.m.compactActive.Inc()
	defer m.m.compactActive.Dec()
	defer func() {
		if err != nil && ctx.Err() == nil {
			m.m.compactErrors.Inc()
		}
	}()
	tmp, err := os.MkdirTemp(compactDir(m.cfg.CacheDir), "run-")
	if err != nil {
		return fmt.Errorf("tier: remote compaction of %s-%d: %w", key.topic, key.partition, err)
	}
	defer os.RemoveAll(tmp)

	// 1. The key map: the remote dirty range, then the local log above it.
	var records int64
	for _, s := range fin {
		if s.EndOffset >= cleaned {
			records += s.EndOffset - max(s.BaseOffset, cleaned) + 1
		}
	}
	limit := pl.Log.LogEndOffset()
	if pl.HighWatermark != nil {
		limit = min(limit, pl.HighWatermark())
	}
	records += max(0, limit-highest-1)
	comp := pl.Log.NewCompactor(m.cfg.CompactDedupeBufferBytes, records, m.cfg.Now(), c.DeleteRetentionMs)
	defer comp.Close()
	more := true
	for _, s := range fin {
		if s.EndOffset < cleaned || !more {
			continue
		}
		f, err := m.downloadSegment(ctx, key, s, tmp)
		if err != nil {
			return err
		}
		more, err = comp.AddKeys(f, s.Size, max(s.BaseOffset, cleaned))
		f.Close()
		os.Remove(f.Name())
		if err != nil {
			return fmt.Errorf("tier: remote compaction of %s-%d: segment %d: %w", key.topic, key.partition, s.BaseOffset, err)
		}
	}
	if more {
		if _, err := comp.AddLogKeys(highest+1, limit); err != nil {
			return fmt.Errorf("tier: remote compaction of %s-%d: local log: %w", key.topic, key.partition, err)
		}
	}
	newCleaned := min(comp.MapEnd(), highest+1)

	// 2 and 3. Filter every segment; switch in runs.
	var run compactRun
	stats := compactStats{}
	for i, s := range fin {
		if s.BaseOffset >= comp.MapEnd() {
			break // the map stopped before it: nothing of it can go
		}
		f, err := m.downloadSegment(ctx, key, s, tmp)
		if err != nil {
			return err
		}
		out, removed, written, err := m.filterSegment(comp, f, s, tmp)
		f.Close()
		os.Remove(f.Name())
		if err != nil {
			return fmt.Errorf("tier: remote compaction of %s-%d: segment %d: %w", key.topic, key.partition, s.BaseOffset, err)
		}
		stats.read += s.Size
		if removed == 0 || (written == 0 && (i == 0 || i == len(fin)-1)) {
			out.Close()
			os.Remove(out.Name())
			continue
		}
		stats.removed += removed
		run.old = append(run.old, s)
		run.in += s.Size
		if written > 0 {
			ns, sc, err := m.replacement(key, s, out, written)
			if err != nil {
				out.Close()
				return err
			}
			run.new = append(run.new, ns)
			run.files = append(run.files, out)
			run.sidecars = append(run.sidecars, sc)
		} else {
			out.Close()
			os.Remove(out.Name())
		}
		if run.in >= compactRunBytes {
			if err := m.commitRun(ctx, ps, &run, -1, &stats); err != nil {
				return err
			}
		}
	}
	if err := m.commitRun(ctx, ps, &run, newCleaned, &stats); err != nil {
		return err
	}
	m.m.compactRuns.Inc()
	m.m.compactRead.Add(float64(stats.read))
	m.m.compactWritten.Add(float64(stats.written))
	m.m.compactRemoved.Add(float64(stats.removed))
	m.logger.Debug("remote compaction", "topic", key.topic, "partition", key.partition, "dirty_bytes", dirty,
		"total_bytes", total, "bytes_read", stats.read, "bytes_written", stats.written, "records_removed", stats.removed,
		"cleaned_up_to", newCleaned)
	return nil
}

type compactStats struct{ read, written, removed int64 }

// compactRun is the replacements of one switch, not yet committed.
type compactRun struct {
	old, new []metadata.RemoteSegment
	files    []*os.File // of new, in order
	sidecars []*sidecar
	in       int64
}

func (r *compactRun) discard() {
	for _, f := range r.files {
		f.Close()
		os.Remove(f.Name())
	}
	*r = compactRun{}
}

// downloadSegment copies a remote segment's .log into a file under dir,
// chunk by chunk through the chunk cache, paced by the compaction limit.
func (m *Manager) downloadSegment(ctx context.Context, key tp, s metadata.RemoteSegment, dir string) (*os.File, error) {
	sc, err := m.sidecar(ctx, key, s)
	if err != nil {
		return nil, fmt.Errorf("tier: remote compaction of %s-%d: sidecar of %d: %w", key.topic, key.partition, s.BaseOffset, err)
	}
	f, err := os.CreateTemp(dir, "in-*.log")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("tier: remote compaction of %s-%d: segment %d: %w", key.topic, key.partition, s.BaseOffset, err)
	}
	for c, ch := range sc.Chunks {
		if m.compactLimiter != nil {
			if err := m.compactLimiter.wait(ctx, int(ch.Len)); err != nil {
				return fail(err)
			}
		}
		cf, release, err := m.cache.Get(ctx, m.chunk(key, s, c, ch))
		if err != nil {
			return fail(err)
		}
		_, err = io.Copy(f, io.NewSectionReader(cf, 0, ch.Len))
		release()
		if err != nil {
			return fail(err)
		}
	}
	return f, nil
}

// filterSegment writes f's records that the compactor keeps to a new file.
func (m *Manager) filterSegment(comp *localstore.Compactor, f *os.File, s metadata.RemoteSegment, dir string) (out *os.File, removed, written int64, err error) {
	out, err = os.CreateTemp(dir, "out-*.log")
	if err != nil {
		return nil, 0, 0, err
	}
	w := bufio.NewWriterSize(out, 256<<10)
	removed, written, err = comp.Filter(f, s.Size, w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, 0, 0, err
	}
	return out, removed, written, nil
}

// replacement describes the filtered copy of s in out: its sidecar and its
// entry (the base and end offsets of s, a fresh upload id).
func (m *Manager) replacement(key tp, s metadata.RemoteSegment, out *os.File, size int64) (metadata.RemoteSegment, *sidecar, error) {
	sc, err := buildSidecar(io.NewSectionReader(out, 0, size), key.topic, key.partition, s.BaseOffset, s.EndOffset, size, m.cfg.ChunkBytes)
	if err != nil {
		return metadata.RemoteSegment{}, nil, fmt.Errorf("tier: remote compaction of %s-%d: index of segment %d: %w", key.topic, key.partition, s.BaseOffset, err)
	}
	if t, err := m.meta.Topic(key.topic); err == nil {
		sc.TopicID = t.ID
	}
	sc.LeaderEpoch = s.LeaderEpoch
	ns := s
	ns.UploadID = newUploadID()
	ns.Size = size
	ns.CRC32C = sc.LogCRC
	ns.FirstTimestamp = sc.FirstTimestamp
	ns.State = metadata.CopyFinished
	ns.UpdatedAtMs = m.cfg.Now().UnixMilli()
	return ns, sc, nil
}

// commitRun takes a run through the intent, the new objects, the switch and
// the deletion of the old objects. cleaned (-1: unchanged) is the remote
// cleaned-up-to offset the switch records; with it a run without
// replacements is still committed, to record it.
func (m *Manager) commitRun(ctx context.Context, ps *partState, run *compactRun, cleaned int64, stats *compactStats) (err error) {
	defer run.discard()
	if len(run.old) == 0 && cleaned < 0 {
		return nil
	}
	key := ps.key
	c := metadata.RemoteCompaction{Old: run.old, New: run.new, CleanedUpTo: cleaned}
	if err := m.meta.StartRemoteCompaction(key.topic, key.partition, c); err != nil {
		return fmt.Errorf("tier: remote compaction of %s-%d: %w", key.topic, key.partition, err)
	}
	m.m.compactIntents.Inc()
	switched := false
	defer func() {
		if err == nil || switched || m.ctx.Err() != nil || errors.Is(err, errCompactCrash) {
			// Switched: the old objects are deleted by the next round's
			// finishPending. Closing: the next start rolls back.
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		if derr := m.finishCompaction(rctx, ps, false); derr != nil {
			m.logger.Debug("cannot roll back a remote compaction; the next round will", "topic", key.topic, "partition", key.partition, "err", derr)
		}
	}()
	if err := m.compactStep("started"); err != nil {
		return err
	}
	for i, ns := range run.new {
		logK := logKey(key.topic, key.partition, ns.BaseOffset, ns.UploadID)
		idxK := sidecarKey(key.topic, key.partition, ns.BaseOffset, ns.UploadID)
		var body io.ReadSeeker = io.NewSectionReader(run.files[i], 0, ns.Size)
		if m.compactLimiter != nil {
			body = &limitedReader{ctx: ctx, r: body, b: m.compactLimiter}
		}
		if err := m.store.Put(ctx, logK, body, ns.Size); err != nil {
			return fmt.Errorf("tier: remote compaction: cannot upload %q: %w", logK, err)
		}
		if err := m.compactStep("log put"); err != nil {
			return err
		}
		idx := run.sidecars[i].encode()
		if err := m.store.Put(ctx, idxK, bytes.NewReader(idx), int64(len(idx))); err != nil {
			return fmt.Errorf("tier: remote compaction: cannot upload %q: %w", idxK, err)
		}
		stats.written += ns.Size
	}
	if err := m.compactStep("uploaded"); err != nil {
		return err
	}
	if err := m.meta.SwitchRemoteCompaction(key.topic, key.partition); err != nil {
		return fmt.Errorf("tier: remote compaction of %s-%d: switch: %w", key.topic, key.partition, err)
	}
	switched = true
	if err := m.reloadView(ps); err != nil {
		return err
	}
	for i, ns := range run.new {
		m.sidecars.put(sidecarKey(key.topic, key.partition, ns.BaseOffset, ns.UploadID), run.sidecars[i])
	}
	if err := m.compactStep("switched"); err != nil {
		return err
	}
	return m.finishCompaction(ctx, ps, false)
}

// reloadView replaces the partition's view with the index.
func (m *Manager) reloadView(ps *partState) error {
	segs, err := m.meta.RemoteSegments(ps.key.topic, ps.key.partition)
	if err != nil {
		return fmt.Errorf("tier: cannot reload the remote index of %s-%d: %w", ps.key.topic, ps.key.partition, err)
	}
	m.setView(ps, segs)
	return nil
}

// finishCompaction settles the partition's compaction record, if any:
// COMPACT_STARTED is rolled back (the new objects deleted), COMPACT_SWITCHED
// finished (the old objects and their cached chunks deleted); then the
// record is dropped. Every step may be repeated. interrupted: settling what
// a crash or a failed round left (logged at info).
func (m *Manager) finishCompaction(ctx context.Context, ps *partState, interrupted bool) error {
	key := ps.key
	c, ok, err := m.meta.RemoteCompaction(key.topic, key.partition)
	if err != nil || !ok {
		return err
	}
	gone := c.New
	if c.State == metadata.CompactionSwitched {
		gone = c.Old
	}
	for _, s := range gone {
		if c.State == metadata.CompactionSwitched {
			if err := m.purgeCached(ctx, key, s); err != nil {
				return err
			}
		}
		if err := m.deleteObjects(ctx, key, s); err != nil {
			return err
		}
		if err := m.compactStep("deleted"); err != nil {
			return err
		}
	}
	if err := m.meta.DropRemoteCompaction(key.topic, key.partition); err != nil {
		return fmt.Errorf("tier: cannot drop the remote compaction record of %s-%d: %w", key.topic, key.partition, err)
	}
	m.m.compactIntents.Dec()
	switch {
	case c.State == metadata.CompactionStarted:
		m.logger.Info("rolled back a remote compaction", "topic", key.topic, "partition", key.partition, "interrupted", interrupted, "segments", len(c.New))
	case interrupted:
		m.logger.Info("finished an interrupted remote compaction", "topic", key.topic, "partition", key.partition, "replaced", len(c.Old), "by", len(c.New))
	default:
		m.logger.Debug("remote compaction finished", "topic", key.topic, "partition", key.partition, "replaced", len(c.Old), "by", len(c.New))
	}
	return nil
}

// compactStep calls the test hook, if any, after a step of a compaction.
func (m *Manager) compactStep(step string) error {
	if m.compactHook != nil {
		return m.compactHook(step)
	}
	return nil
}

// errCompactCrash is what a test hook returns to stop a compaction as a
// crash would: nothing is rolled back in-line.
var errCompactCrash = errors.New("tier: remote compaction stopped by a test")

func compactDir(cacheDir string) string { return filepath.Clean(cacheDir) + compactDirSuffix }

// resetCompactDir empties the scratch directory (what a crash left) and
// creates it.
func resetCompactDir(cacheDir string) error {
	d := compactDir(cacheDir)
	if err := os.RemoveAll(d); err != nil {
		return err
	}
	return os.MkdirAll(d, 0o755)
}
