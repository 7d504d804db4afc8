package localstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// AppendReplica appends batches as a follower got them in a Fetch response
// from its leader: offsets, leader epochs and bytes are kept as they are.
// The batches are checked first as ValidateBatches checks a produce (framing,
// CRC, every record), so a follower never writes garbage; the first must not
// start below the log end offset and each must start above the one before
// (ErrOffsetMismatch). As in Kafka a batch may start above where the one
// before ended: a compacted leader's log has gaps. Leader epochs may not go
// backwards (ErrCorruptBatch); each new one starts a leader-epoch cache
// entry. Every batch is applied to the producer state without a sequence
// check, so that after a failover this log answers a producer's retry with
// its original offsets.
//
// A trailing partial batch (a leader may cut the last one at its byte
// limit) is ignored. If nothing whole remains (an empty response, or only a
// partial batch) nothing is written and the result is BaseOffset = the log
// end offset, LastOffset = the log end offset - 1, with no error.
func (l *Log) AppendReplica(batches []byte) (AppendResult, error) {
	whole, err := wholeBatches(batches)
	if err != nil {
		return AppendResult{}, err
	}
	if len(whole) == 0 {
		l.mu.RLock()
		defer l.mu.RUnlock()
		if l.mu.closed {
			return AppendResult{}, ErrClosed
		}
		leo := l.active().st.next
		return AppendResult{BaseOffset: leo, LastOffset: leo - 1, LogAppendTime: -1, LogStartOffset: l.logStartOffset()}, nil
	}
	// The expensive check runs before the writer lock is taken.
	if _, err := ValidateBatches(whole, 0); err != nil {
		return AppendResult{}, err
	}
	return l.append(whole, appendReplica, UndefinedEpoch)
}

// wholeBatches returns the prefix of b made of whole batches, as Kafka's
// batch iterator reads a fetched record set: fewer bytes than a batch's
// size and magic, or fewer than its length says, is a partial batch; a
// length below a batch header's is corrupt.
func wholeBatches(b []byte) ([]byte, error) {
	pos := 0
	for pos < len(b) {
		rest := b[pos:]
		if len(rest) <= batchOffMagic {
			break
		}
		length := int32(binary.BigEndian.Uint32(rest[batchOffLength:]))
		if length < minBatchLength {
			return nil, fmt.Errorf("%w: length %d at position %d", ErrCorruptBatch, length, pos)
		}
		size := batchLogOverhead + int64(length)
		if size > int64(len(rest)) {
			break
		}
		pos += int(size)
	}
	return b[:pos], nil
}

// checkReplicaBatch checks a replicated batch's offsets and leader epoch:
// it must start at or after next (the log end offset leo for the first),
// within a segment's reach of leo, and carry an epoch no lower than latest.
func checkReplicaBatch(h BatchHeader, leo, next int64, latest int32) error {
	switch {
	case h.BaseOffset < next:
		return fmt.Errorf("%w: batch at offset %d, expected %d or above (log end offset %d)", ErrOffsetMismatch, h.BaseOffset, next, leo)
	case h.BaseOffset-leo > math.MaxUint32-int64(h.LastOffsetDelta):
		return fmt.Errorf("%w: batch at offset %d is too far past the log end offset %d", ErrOffsetMismatch, h.BaseOffset, leo)
	case h.PartitionLeaderEpoch >= 0 && h.PartitionLeaderEpoch < latest:
		return fmt.Errorf("%w: batch at offset %d has leader epoch %d, below the log's %d", ErrCorruptBatch, h.BaseOffset, h.PartitionLeaderEpoch, latest)
	}
	return nil
}

// Truncation is made atomic by an intent file, truncationFile, written
// (fsynced, renamed, directory fsynced) before anything changes and removed
// after everything did. Open finds it after a crash and finishes the job,
// which is idempotent, so a kill -9 at any point leaves either the log as
// it was or the log as truncated, never a mixture:
//
//   - TruncateTo removes the segments after the cut, the last first, then
//     truncates the segment holding the cut and rewrites its indexes. Each
//     step leaves a prefix of the log, and the truncated segment is then the
//     last one, which Open always scans whole; snapshots above the new end
//     go first, the leader-epoch cache and cleaner checkpoint are trimmed
//     after the data.
//   - TruncateFullyAndStartAt removes every segment, snapshot and checkpoint,
//     then creates the empty segment at the new start.
//
// The file: u8 kind, u64 offset, u32 CRC-32C of the nine bytes.
const (
	truncationFile = "truncation"
	truncationSize = 13

	truncateTo    = 1
	truncateFully = 2
)

func writeTruncation(dir string, kind byte, off int64) error {
	b := make([]byte, 9, truncationSize)
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:], uint64(off))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return writeFileAtomic(filepath.Join(dir, truncationFile), b)
}

// readTruncation returns the pending truncation; ok is false if there is
// none. A damaged file is an error: guessing could lose data.
func readTruncation(dir string) (kind byte, off int64, ok bool, err error) {
	path := filepath.Join(dir, truncationFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, storageErr("read", path, err)
	}
	if len(b) != truncationSize || binary.BigEndian.Uint32(b[9:]) != crc32.Checksum(b[:9], castagnoli) ||
		(b[0] != truncateTo && b[0] != truncateFully) || int64(binary.BigEndian.Uint64(b[1:])) < 0 {
		return 0, 0, false, fmt.Errorf("%w: damaged truncation intent %q", ErrStorage, path)
	}
	return b[0], int64(binary.BigEndian.Uint64(b[1:])), true, nil
}

func removeTruncation(dir string) error {
	if err := os.Remove(filepath.Join(dir, truncationFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(dir)
}

// TruncateTo removes every batch holding an offset at or above offset (a
// batch straddling offset goes whole, so the new log end offset may be
// below offset) and returns the new log end offset. Producer state is
// rebuilt for the new end and leader epochs starting at or above it are
// dropped. An offset at or above the log end changes nothing; one below the
// log start empties the log and restarts it there, as
// TruncateFullyAndStartAt (Kafka's truncateTo does the same). Readers
// holding a slice of a removed segment go on reading its file; a slice of
// the truncated part of the segment that holds the cut may read short.
func (l *Log) TruncateTo(offset int64) (newLEO int64, err error) {
	if offset < 0 {
		return 0, fmt.Errorf("%w: truncate to %d", ErrOffsetOutOfRange, offset)
	}
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	if l.wr.err != nil {
		return 0, l.wr.err
	}
	if leo := l.active().st.next; offset >= leo {
		return leo, nil
	}
	if offset < l.logStartOffset() {
		if err := l.truncateFullyLocked(offset); err != nil {
			return 0, err
		}
		return offset, nil
	}
	return l.truncateToLocked(offset)
}

// truncateToLocked is TruncateTo for logStart <= offset < LEO. Caller holds wr.
func (l *Log) truncateToLocked(offset int64) (int64, error) {
	fail := func(err error) (int64, error) {
		if !errors.Is(err, ErrStorage) {
			err = fmt.Errorf("%w: truncate %q: %w", ErrStorage, l.dir, err)
		}
		l.wr.err = err // read-only until reopened, which finishes the truncation
		return 0, err
	}
	segs := l.mu.segs
	i := 0 // the segment holding the first batch that goes
	for segs[i].st.next <= offset {
		i++
	}
	s := segs[i]
	// The new prefix of s: its batches whose last offset is below offset.
	cfg := l.wr.cfg
	maxIdx, maxTidx := maxIndexEntries(cfg)
	st := newStats(s.base)
	idx, tidx := []byte{}, []byte{}
	err := forEachBatch(s.f, 0, s.st.size, nil, func(pos int64, h BatchHeader, _ []byte) (bool, error) {
		if h.lastOffset() >= offset {
			return false, nil
		}
		idx, tidx = st.add(s.base, h, pos, cfg.IndexIntervalBytes, idx, tidx,
			maxIdx-len(idx)/offsetEntrySize, maxTidx-len(tidx)/timeEntrySize)
		return true, nil
	})
	if err != nil {
		return 0, fmt.Errorf("truncate %q: %w", s.logPath, err)
	}
	newLEO := st.next

	if err := writeTruncation(l.dir, truncateTo, offset); err != nil {
		return fail(storageErr("write", filepath.Join(l.dir, truncationFile), err))
	}
	// Publish first: from here no reader is sent to what goes.
	act := l.active()
	if err := act.closeIndexFiles(); err != nil {
		return fail(storageErr("close index of", act.logPath, err))
	}
	l.mu.Lock()
	l.mu.segs = slices.Clone(segs[:i+1])
	s.st, s.idx, s.tidx, s.rolledAt = st, idx, tidx, time.Time{}
	l.mu.Unlock()

	if err := removeSnapshotsAbove(l.dir, newLEO); err != nil {
		return fail(storageErr("remove snapshots in", l.dir, err))
	}
	for j := len(segs) - 1; j > i; j-- {
		for _, p := range []string{segs[j].logPath, segs[j].idxPath, segs[j].tidxPath} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fail(storageErr("remove", p, err))
			}
		}
		segs[j].release() // slices still being sent keep the file open
	}
	if err := syncDir(l.dir); err != nil {
		return fail(storageErr("fsync directory", l.dir, err))
	}
	if err := s.f.Truncate(st.size); err != nil {
		return fail(storageErr("truncate", s.logPath, err))
	}
	if err := s.f.Sync(); err != nil {
		return fail(storageErr("fsync", s.logPath, err))
	}
	if err := writeIndexes(s, idx, tidx); err != nil {
		return fail(storageErr("write index of", s.logPath, err))
	}
	if err := l.loadProducerState(); err != nil {
		return fail(err)
	}
	if es := epochsTrimmedEnd(l.mu.epochs, newLEO); len(es) != len(l.mu.epochs) {
		if err := l.writeEpochsLocked(es); err != nil {
			return 0, err
		}
	}
	if err := l.truncateCleanCheckpoint(newLEO); err != nil {
		return fail(err)
	}
	if err := writeRecoveryPoint(l.dir, newLEO); err != nil {
		return fail(storageErr("write recovery point in", l.dir, err))
	}
	if err := removeTruncation(l.dir); err != nil {
		return fail(storageErr("remove", filepath.Join(l.dir, truncationFile), err))
	}
	l.wr.unflushedMsgs, l.wr.unflushedSince = 0, time.Time{}
	l.logger.Info("truncated log", "dir", l.dir, "to", offset, "logEndOffset", newLEO, "segmentsRemoved", len(segs)-1-i)
	return newLEO, nil
}

// TruncateFullyAndStartAt removes every local segment and restarts the log
// empty at offset: log start = log end = offset, no leader epochs, no
// producer state. A follower whose log is far behind its leader's, or whose
// disk was replaced, starts so from the leader's log start or its latest
// tiered offset (KIP-1023). Readers holding slices go on reading the files.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: start at %d", ErrOffsetOutOfRange, offset)
	}
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.wr.err != nil {
		return l.wr.err
	}
	return l.truncateFullyLocked(offset)
}

// truncateFullyLocked: caller holds wr.
func (l *Log) truncateFullyLocked(offset int64) error {
	fail := func(err error) error {
		if !errors.Is(err, ErrStorage) {
			err = fmt.Errorf("%w: truncate %q: %w", ErrStorage, l.dir, err)
		}
		l.wr.err = err
		return err
	}
	if err := writeTruncation(l.dir, truncateFully, offset); err != nil {
		return fail(storageErr("write", filepath.Join(l.dir, truncationFile), err))
	}
	old := l.mu.segs
	if err := l.active().closeIndexFiles(); err != nil {
		return fail(storageErr("close index of", l.active().logPath, err))
	}
	ns, err := resetDir(l.dir, offset)
	if err != nil {
		return fail(err)
	}
	ns.jitterDraw = l.rand()
	l.mu.Lock()
	l.mu.segs = []*segment{ns}
	l.mu.epochs = nil
	l.mu.Unlock()
	for _, s := range old {
		s.release()
	}
	l.wr.producers = make(producerState)
	l.wr.unflushedMsgs, l.wr.unflushedSince = 0, time.Time{}
	l.cl.ck.Store(&cleanCheckpoint{})
	if err := removeTruncation(l.dir); err != nil {
		return fail(storageErr("remove", filepath.Join(l.dir, truncationFile), err))
	}
	l.logger.Info("emptied log", "dir", l.dir, "logStartOffset", offset, "segmentsRemoved", len(old))
	return nil
}

// resetDir is the disk part of a full truncation, run by the log or by
// Open after a crash: it removes every segment, index and snapshot file and
// the checkpoints, and creates the empty segment at offset, fsynced.
func resetDir(dir string, offset int64) (*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, storageErr("read log directory", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		_, suffix, ok := parseOffsetName(name)
		if ok && suffix != logSuffix && suffix != indexSuffix && suffix != timeIndexSuffix && suffix != snapshotSuffix {
			ok = false
		}
		if !ok && name != leaderEpochFile && name != cleanerCheckpointFile && name != recoveryPointFile {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, storageErr("remove", filepath.Join(dir, name), err)
		}
	}
	ns, err := newSegment(dir, offset)
	if err != nil {
		return nil, storageErr("create segment", logPath(dir, offset), err)
	}
	err = ns.f.Sync()
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		ns.release()
		return nil, storageErr("fsync", ns.logPath, err)
	}
	return ns, nil
}

// removeSnapshotsAbove removes the producer snapshots beyond off: they
// describe batches that are gone.
func removeSnapshotsAbove(dir string, off int64) error {
	offs, err := listSnapshots(dir)
	if err != nil {
		return err
	}
	for _, o := range offs {
		if o > off {
			if err := os.Remove(snapshotPath(dir, o)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// truncateCleanCheckpoint moves the cleaner's first dirty offset and
// history down to end: offsets written again after a truncation are dirty.
// Caller holds wr.
func (l *Log) truncateCleanCheckpoint(end int64) error {
	ck := l.checkpoint()
	if ck.firstDirty <= end {
		return nil
	}
	n := &cleanCheckpoint{firstDirty: end, lastCleaned: ck.lastCleaned}
	for _, h := range ck.history {
		if h[0] >= end {
			n.history = append(n.history, [2]int64{end, h[1]})
			break
		}
		n.history = append(n.history, h)
	}
	l.cl.ck.Store(n)
	path := filepath.Join(l.dir, cleanerCheckpointFile)
	if err := writeFileAtomic(path, n.encode()); err != nil {
		return storageErr("write", path, err)
	}
	return nil
}
