package localstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Log is one partition's log on local disk. All methods are safe for concurrent use.
//
// Writers (Append, Roll, Tick, DeleteSegmentsBefore, Flush, Close) serialize
// on wr and do their disk I/O holding it; they publish what they wrote under
// mu, which readers hold only long enough to pick a segment and copy its
// bounds. Lock order: wr, then mu.
type Log struct {
	dir      string
	logger   *slog.Logger
	readBufs sync.Pool     // *[]byte of readBufSize, for scanning headers in Read
	rand     func() uint64 // draws each segment's roll jitter; tests replace it

	wr struct {
		sync.Mutex
		cfg            Config
		producers      producerState
		err            error // sticky: once a write fails, every later write returns it
		unflushedMsgs  int64
		unflushedSince time.Time // zero when everything appended is fsynced
		idxScratch     []byte
		tidxScratch    []byte
		deletions      []pendingDeletion // renamed .deleted, waiting for file.delete.delay.ms
	}

	mu struct {
		sync.RWMutex
		segs   []*segment   // offset order, the active segment last; never empty
		epochs []EpochEntry // leader-epoch cache (epoch.go); replaced whole, never changed in place
		closed bool
	}

	cl cleanerState // compaction (clean.go)
}

func withDefaults(cfg Config) Config {
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = defaultSegmentBytes
	}
	if cfg.SegmentIndexBytes <= 0 {
		cfg.SegmentIndexBytes = defaultSegmentIndexBytes
	}
	if cfg.IndexIntervalBytes <= 0 {
		cfg.IndexIntervalBytes = defaultIndexIntervalBytes
	}
	return cfg
}

func maxIndexEntries(cfg Config) (idx, tidx int) {
	return int(cfg.SegmentIndexBytes / offsetEntrySize), int(cfg.SegmentIndexBytes / timeEntrySize)
}

func storageErr(op, path string, err error) error {
	return fmt.Errorf("%w: %s %q: %w", ErrStorage, op, path, err)
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// active returns the segment being appended to. Caller holds wr or mu.
func (l *Log) active() *segment { return l.mu.segs[len(l.mu.segs)-1] }

// newSegment creates the empty segment base, truncating leftovers.
func newSegment(dir string, base int64) (*segment, error) {
	s := &segment{base: base, logPath: logPath(dir, base), idxPath: indexPathFor(dir, base), tidxPath: timeIndexPathFor(dir, base), st: newStats(base)}
	var err error
	for _, p := range []string{s.idxPath, s.tidxPath} {
		if err = os.Truncate(p, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if s.f, err = os.OpenFile(s.logPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm); err != nil {
		return nil, err
	}
	s.refs.Store(1)
	if err = s.openIndexFiles(); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

// Append assigns offsets from the log end offset by rewriting each batch's
// baseOffset, checks idempotent sequences (a retried batch among the producer's
// last five is answered with its original offsets and not written again), and
// writes the bytes as they came. batches must have passed ValidateBatches.
// A batch whose PartitionLeaderEpoch is above the log's latest epoch starts
// a leader-epoch cache entry (the broker stamps it); a lower one is left as
// it is.
func (l *Log) Append(batches []byte) (AppendResult, error) {
	return l.append(batches, appendClient, UndefinedEpoch)
}

// AppendLeader is Append on a partition's leader: it also stamps every
// batch's PartitionLeaderEpoch (outside the CRC) with leaderEpoch, which
// starts a leader-epoch cache entry if it is above the latest. An epoch
// below the latest is ErrFencedLeaderEpoch and writes nothing.
func (l *Log) AppendLeader(batches []byte, leaderEpoch int32) (AppendResult, error) {
	if leaderEpoch < 0 {
		return AppendResult{}, fmt.Errorf("%w: leader epoch %d", ErrFencedLeaderEpoch, leaderEpoch)
	}
	return l.append(batches, appendLeader, leaderEpoch)
}

// appendMode says whose batches an append writes.
type appendMode uint8

const (
	appendClient  appendMode = iota // a producer's: offsets assigned, sequences checked
	appendLeader                    // as appendClient, and the leader epoch stamped
	appendReplica                   // a leader's, as fetched: offsets, epochs and bytes kept
)

// append is Append, AppendLeader and AppendReplica (replica.go): one path,
// so that a follower's log is laid out, indexed, rolled and flushed exactly
// as its leader's.
func (l *Log) append(batches []byte, mode appendMode, leaderEpoch int32) (AppendResult, error) {
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return AppendResult{}, ErrClosed
	}
	if l.wr.err != nil {
		return AppendResult{}, l.wr.err
	}
	cfg := &l.wr.cfg
	now := time.Now()
	nowMs := now.UnixMilli()
	leo := l.active().st.next
	epochs := l.mu.epochs
	latestEpoch := UndefinedEpoch
	if len(epochs) > 0 {
		latestEpoch = epochs[len(epochs)-1].Epoch
	}
	if mode == appendLeader && leaderEpoch < latestEpoch {
		return AppendResult{}, fmt.Errorf("%w: epoch %d, the log is at epoch %d", ErrFencedLeaderEpoch, leaderEpoch, latestEpoch)
	}

	// Pass 1: frame the batches and check producer sequences (a replica:
	// offsets and epochs), changing nothing.
	var (
		records, nBatches, nDup int64
		dupFirst, dupLast       int64
		pending                 map[int64]producerView // only for several batches of one producer
		nextOff                 = leo                  // a replica: the lowest offset the next batch may have
		replicaEpoch            = latestEpoch
	)
	for pos := 0; pos < len(batches); {
		if len(batches)-pos < HeaderSize {
			return AppendResult{}, fmt.Errorf("%w: %d trailing bytes", ErrCorruptBatch, len(batches)-pos)
		}
		h := parseHeader(batches[pos:])
		if h.Length < minBatchLength || h.TotalSize() > int64(len(batches)-pos) || h.LastOffsetDelta < 0 {
			return AppendResult{}, fmt.Errorf("%w: bad length or offset delta at position %d", ErrCorruptBatch, pos)
		}
		pos += int(h.TotalSize())
		records += int64(h.LastOffsetDelta) + 1
		nBatches++
		if mode == appendReplica {
			if err := checkReplicaBatch(h, leo, nextOff, replicaEpoch); err != nil {
				return AppendResult{}, err
			}
			nextOff = h.lastOffset() + 1
			replicaEpoch = max(replicaEpoch, h.PartitionLeaderEpoch)
			continue // the leader checked the sequences; the state is rebuilt below
		}
		if h.ProducerID < 0 || h.Control() {
			continue
		}
		e := l.wr.producers[h.ProducerID]
		v, inRequest := pending[h.ProducerID]
		if !inRequest {
			v = e.view()
			if v.known && h.ProducerEpoch == v.epoch {
				if m, ok := e.duplicate(h.BaseSequence, h.lastSequence()); ok {
					if nDup == 0 {
						dupFirst = m.firstOff
					}
					dupLast = m.lastOff
					nDup++
					continue
				}
			}
		}
		if err := checkSequence(v, h.ProducerID, h.ProducerEpoch, h.BaseSequence); err != nil {
			return AppendResult{}, err
		}
		if nBatches > 1 || pos < len(batches) {
			if pending == nil {
				pending = make(map[int64]producerView)
			}
			pending[h.ProducerID] = producerView{known: true, epoch: h.ProducerEpoch, hasLast: true, lastSeq: h.lastSequence()}
		}
	}
	if nBatches == 0 {
		return AppendResult{}, fmt.Errorf("%w: no record batch", ErrCorruptBatch)
	}
	if nDup > 0 {
		if nDup != nBatches {
			return AppendResult{}, fmt.Errorf("%w: request mixes retried and new batches", ErrOutOfOrderSequence)
		}
		return AppendResult{BaseOffset: dupFirst, LastOffset: dupLast, LogAppendTime: -1, LogStartOffset: l.logStartOffset(), Duplicate: true}, nil
	}

	lastOff := leo + records - 1
	if mode == appendReplica {
		lastOff = nextOff - 1
	}
	if err := l.maybeRollLocked(now, int64(len(batches)), lastOff); err != nil {
		return AppendResult{}, err
	}
	act := l.active()

	// Pass 2: assign offsets, stamp the leader epoch and LogAppendTime, work
	// out the index entries and the new leader epochs.
	st := act.st
	base := st.next
	idxRoom, tidxRoom := maxIndexEntries(*cfg)
	idxRoom -= len(act.idx) / offsetEntrySize
	tidxRoom -= len(act.tidx) / timeEntrySize
	idxNew, tidxNew := l.wr.idxScratch[:0], l.wr.tidxScratch[:0]
	newEpochs := epochs
	off := base
	for pos := 0; pos < len(batches); {
		b := batches[pos:]
		if mode != appendReplica {
			binary.BigEndian.PutUint64(b[batchOffBaseOffset:], uint64(off))
		}
		if mode == appendLeader {
			binary.BigEndian.PutUint32(b[batchOffLeaderEpoch:], uint32(leaderEpoch))
		}
		h := parseHeader(b)
		if pos == 0 {
			base = h.BaseOffset
		}
		if e := h.PartitionLeaderEpoch; e >= 0 && (len(newEpochs) == 0 || e > newEpochs[len(newEpochs)-1].Epoch) {
			if len(newEpochs) == len(epochs) {
				newEpochs = slices.Clone(epochs)
			}
			newEpochs = append(newEpochs, EpochEntry{Epoch: e, StartOffset: h.BaseOffset})
		}
		if cfg.LogAppendTime && mode != appendReplica {
			binary.BigEndian.PutUint16(b[batchOffAttributes:], uint16(h.Attributes|attrTimestampType))
			binary.BigEndian.PutUint64(b[batchOffFirstTimestamp:], uint64(nowMs))
			binary.BigEndian.PutUint64(b[batchOffMaxTimestamp:], uint64(nowMs))
			binary.BigEndian.PutUint32(b[batchOffCRC:], batchCRC(b[:h.TotalSize()]))
			h = parseHeader(b)
		}
		idxNew, tidxNew = st.add(act.base, h, st.size, cfg.IndexIntervalBytes, idxNew, tidxNew,
			idxRoom-len(idxNew)/offsetEntrySize, tidxRoom-len(tidxNew)/timeEntrySize)
		off = h.lastOffset() + 1
		pos += int(h.TotalSize())
	}
	l.wr.idxScratch, l.wr.tidxScratch = idxNew, tidxNew

	// A new epoch reaches the disk before its first batch: after a crash
	// the file names every epoch of the log (Open drops entries past its end).
	if len(newEpochs) != len(epochs) {
		if err := l.writeEpochsLocked(newEpochs); err != nil {
			return AppendResult{}, err
		}
	}
	if _, err := act.f.WriteAt(batches, act.st.size); err != nil {
		l.wr.err = storageErr("write", act.logPath, err)
		return AppendResult{}, l.wr.err
	}
	if len(idxNew) > 0 {
		if err := act.writeIndex(false, idxNew, int64(len(act.idx))); err != nil {
			l.wr.err = err
			return AppendResult{}, l.wr.err
		}
	}
	if len(tidxNew) > 0 {
		if err := act.writeIndex(true, tidxNew, int64(len(act.tidx))); err != nil {
			l.wr.err = err
			return AppendResult{}, l.wr.err
		}
	}

	// Publish: from here readers see the new batches.
	l.mu.Lock()
	act.st = st
	act.idx = append(act.idx, idxNew...)
	act.tidx = append(act.tidx, tidxNew...)
	start := l.mu.segs[0].base
	l.mu.Unlock()

	for pos := 0; pos < len(batches); {
		h := parseHeader(batches[pos:])
		l.wr.producers.apply(h)
		pos += int(h.TotalSize())
	}

	res := AppendResult{BaseOffset: base, LastOffset: off - 1, LogAppendTime: -1, LogStartOffset: start}
	if cfg.LogAppendTime && mode != appendReplica {
		res.LogAppendTime = nowMs
	}
	if l.wr.unflushedSince.IsZero() {
		l.wr.unflushedSince = now
	}
	l.wr.unflushedMsgs += records
	if cfg.FlushMessages > 0 && l.wr.unflushedMsgs >= cfg.FlushMessages {
		if err := l.flushLocked(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// maybeRollLocked rolls the active segment if appending size bytes whose
// last offset is lastOff would break one of its limits. Caller holds wr.
func (l *Log) maybeRollLocked(now time.Time, size, lastOff int64) error {
	act := l.active()
	if act.st.size == 0 {
		return nil
	}
	cfg := &l.wr.cfg
	maxIdx, maxTidx := maxIndexEntries(*cfg)
	switch {
	case act.st.size+size > cfg.SegmentBytes,
		act.st.size+size > math.MaxUint32,
		act.rollDue(cfg, now.UnixMilli()),
		len(act.idx)/offsetEntrySize >= maxIdx,
		len(act.tidx)/timeEntrySize >= maxTidx,
		lastOff-act.base > math.MaxUint32:
		return l.rollLocked(now)
	}
	return nil
}

// Roll closes the active segment (if non-empty) and starts a new one.
func (l *Log) Roll() error {
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	return l.rollLocked(time.Now())
}

// rollLocked closes the active segment, fsyncs it, and starts a new one at
// the log end offset; then it snapshots producer state and moves the recovery
// point. Caller holds wr.
func (l *Log) rollLocked(now time.Time) error {
	if l.wr.err != nil {
		return l.wr.err
	}
	act := l.active()
	if act.st.size == 0 {
		return nil
	}
	st := act.st
	final := st.finalTimeEntry(act.base, nil)
	if len(final) > 0 {
		if err := act.writeIndex(true, final, int64(len(act.tidx))); err != nil {
			l.wr.err = err
			return l.wr.err
		}
	}
	if err := act.syncAll(); err != nil {
		l.wr.err = err
		return err
	}
	if err := act.closeIndexFiles(); err != nil {
		l.wr.err = storageErr("close index of", act.logPath, err)
		return l.wr.err
	}
	ns, err := newSegment(l.dir, st.next)
	if err != nil {
		l.wr.err = storageErr("create segment", logPath(l.dir, st.next), err)
		return l.wr.err
	}
	if err := syncDir(l.dir); err != nil {
		l.wr.err = storageErr("fsync directory", l.dir, err)
		return l.wr.err
	}
	ns.jitterDraw = l.rand()
	l.mu.Lock()
	act.st = st
	act.tidx = append(act.tidx, final...)
	act.rolledAt = now
	l.mu.segs = append(l.mu.segs, ns)
	l.mu.Unlock()
	l.wr.unflushedMsgs, l.wr.unflushedSince = 0, time.Time{}

	// Both are optimizations for the next start: a failure costs replay time, not data.
	if err := writeSnapshot(l.dir, ns.base, l.wr.producers); err != nil {
		l.logger.Warn("cannot write producer snapshot", "dir", l.dir, "offset", ns.base, "err", err)
	}
	if err := writeRecoveryPoint(l.dir, ns.base); err != nil {
		l.logger.Warn("cannot write recovery point", "dir", l.dir, "offset", ns.base, "err", err)
	}
	l.logger.Debug("rolled segment", "dir", l.dir, "base", act.base, "next", ns.base, "size", st.size)
	return nil
}

// Tick rolls by segment.ms (less the segment's jitter), flushes by flush.ms,
// and removes the files of deleted segments whose file.delete.delay.ms has
// passed; the broker calls it periodically.
func (l *Log) Tick(now time.Time) error {
	l.wr.Lock()
	if l.mu.closed {
		l.wr.Unlock()
		return ErrClosed
	}
	err := l.tickLocked(now)
	due := l.dueDeletionsLocked(now)
	l.wr.Unlock()
	for _, p := range due {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			l.logger.Warn("cannot remove deleted segment file", "path", p, "err", rerr)
		}
	}
	return err
}

// tickLocked is Tick's roll and flush. Caller holds wr.
func (l *Log) tickLocked(now time.Time) error {
	cfg := &l.wr.cfg
	if l.active().rollDue(cfg, now.UnixMilli()) {
		if err := l.rollLocked(now); err != nil {
			return err
		}
	}
	if cfg.FlushMs > 0 && !l.wr.unflushedSince.IsZero() && now.Sub(l.wr.unflushedSince) >= msDuration(cfg.FlushMs) {
		return l.flushLocked()
	}
	return nil
}

// msDuration converts a config value in ms, saturating: Kafka's "never" is
// Long.MAX_VALUE ms, which overflows a time.Duration.
func msDuration(ms int64) time.Duration {
	if ms > int64(math.MaxInt64/time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// pendingDeletion is a deleted segment's files, renamed with deletedSuffix,
// to be removed at due.
type pendingDeletion struct {
	paths []string
	due   time.Time
}

// dueDeletionsLocked takes the paths whose delay has passed. Caller holds wr.
func (l *Log) dueDeletionsLocked(now time.Time) []string {
	var due []string
	keep := l.wr.deletions[:0]
	for _, d := range l.wr.deletions {
		if now.Before(d.due) {
			keep = append(keep, d)
		} else {
			due = append(due, d.paths...)
		}
	}
	clear(l.wr.deletions[len(keep):])
	l.wr.deletions = keep
	return due
}

// SetConfig applies changed configuration.
func (l *Log) SetConfig(cfg Config) {
	l.wr.Lock()
	l.wr.cfg = withDefaults(cfg)
	l.wr.Unlock()
}

// Flush fsyncs everything appended.
func (l *Log) Flush() error {
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	return l.flushLocked()
}

// flushLocked fsyncs the active segment. Caller holds wr.
func (l *Log) flushLocked() error {
	if l.wr.err != nil {
		return l.wr.err
	}
	if err := l.active().syncAll(); err != nil {
		l.wr.err = err
		return err
	}
	l.wr.unflushedMsgs, l.wr.unflushedSince = 0, time.Time{}
	return nil
}

// LogStartOffset is the first offset held locally.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logStartOffset()
}

// logStartOffset: caller holds wr or mu.
func (l *Log) logStartOffset() int64 { return l.mu.segs[0].base }

// LogEndOffset is one past the last offset appended (the high watermark on one node).
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.active().st.next
}

// Read returns the bytes from the batch that contains offset, within one segment,
// at most maxBytes long but at least one whole batch when minOneBatch, ending
// on a batch boundary. offset == LogEndOffset gives an empty slice.
func (l *Log) Read(offset int64, maxBytes int64, minOneBatch bool) (Slice, error) {
	return l.ReadUpTo(offset, math.MaxInt64, maxBytes, minOneBatch)
}

// ReadUpTo is Read that stops before the batch holding maxOffset: a
// replicated partition's consumers read below its high watermark, which is
// always on a batch boundary. An offset at or past maxOffset (but within the
// log) gives an empty slice, as Kafka answers a fetch between the high
// watermark and the log end.
func (l *Log) ReadUpTo(offset, maxOffset int64, maxBytes int64, minOneBatch bool) (Slice, error) {
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return Slice{}, ErrClosed
	}
	segs := l.mu.segs
	start, leo := segs[0].base, segs[len(segs)-1].st.next
	if offset < start || offset > leo {
		l.mu.RUnlock()
		return Slice{}, fmt.Errorf("%w: offset %d, log holds %d..%d", ErrOffsetOutOfRange, offset, start, leo)
	}
	if offset == leo || offset >= maxOffset {
		l.mu.RUnlock()
		return Slice{}, nil
	}
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	for i < len(segs)-1 && max(offset, segs[i].base) >= segs[i].st.next {
		i++ // offset falls in a gap between segments: serve the next one
	}
	s := segs[i]
	size, idx, next := s.st.size, s.idx, s.st.next
	s.acquire()
	l.mu.RUnlock()
	// A cleaned log has gaps: an offset before the segment's first batch
	// reads from its start.
	offset = max(offset, s.base)

	if maxOffset < next {
		// Cut the segment at the batch that holds maxOffset.
		if maxOffset <= s.base {
			s.release()
			return Slice{}, nil
		}
		cut, _, err := l.locate(s, maxOffset, size, idx, 0, false)
		if err != nil {
			s.release()
			return Slice{}, err
		}
		size = cut
	}
	pos, end, err := l.locate(s, offset, size, idx, maxBytes, minOneBatch)
	if err != nil || end == pos {
		s.release()
		return Slice{}, err
	}
	return Slice{File: s.f, Pos: pos, Len: end - pos, Release: s.releaser()}, nil
}

// headerReader reads batch headers of one segment through a buffer, so a
// scan over small batches costs one pread per buffer, not one per batch.
type headerReader struct {
	f     *os.File
	size  int64  // readable bytes of the segment
	buf   []byte // holds the file's bytes from start
	start int64
	n     int
}

// header returns the batch header at pos, a batch boundary below size.
func (r *headerReader) header(pos int64) (BatchHeader, error) {
	if pos < r.start || pos+HeaderSize > r.start+int64(r.n) {
		want := min(int64(cap(r.buf)), r.size-pos)
		if want < HeaderSize {
			return BatchHeader{}, fmt.Errorf("%w: batch header at position %d of %q runs past %d", ErrStorage, pos, r.f.Name(), r.size)
		}
		n, err := r.f.ReadAt(r.buf[:want], pos)
		if n < HeaderSize {
			return BatchHeader{}, storageErr("read", r.f.Name(), err)
		}
		r.start, r.n = pos, n
	}
	h := parseHeader(r.buf[pos-r.start:])
	if h.Magic != 2 || h.Length < minBatchLength || pos+h.TotalSize() > r.size {
		return h, fmt.Errorf("%w: bad batch header at position %d of %q", ErrStorage, pos, r.f.Name())
	}
	return h, nil
}

// readBufSize is the buffer a Read scans batch headers through: about one
// index interval, so the scan to the wanted batch is usually one pread.
const readBufSize = 8 << 10

// locate finds the batch of s holding offset and the end of the whole
// batches after it that fit in maxBytes. s holds a reference for the caller.
func (l *Log) locate(s *segment, offset, size int64, idx []byte, maxBytes int64, minOneBatch bool) (pos, end int64, err error) {
	bp, _ := l.readBufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, readBufSize)
		bp = &b
	}
	defer l.readBufs.Put(bp)
	r := headerReader{f: s.f, size: size, buf: *bp}
	pos = lookupOffset(idx, uint32(offset-s.base))
	var h BatchHeader
	for {
		if pos >= size {
			return 0, 0, fmt.Errorf("%w: offset %d not found in %q", ErrStorage, offset, s.logPath)
		}
		if h, err = r.header(pos); err != nil {
			return 0, 0, err
		}
		if h.lastOffset() >= offset {
			break
		}
		pos += h.TotalSize()
	}
	end = pos + h.TotalSize()
	if h.TotalSize() > maxBytes && !minOneBatch {
		return pos, pos, nil
	}
	if maxBytes >= size-pos {
		return pos, size, nil
	}
	limit := pos + maxBytes
	if b := lookupPosition(idx, limit); b > end {
		end = b
	}
	for end < limit {
		if h, err = r.header(end); err != nil {
			return 0, 0, err
		}
		if end+h.TotalSize() > limit {
			break
		}
		end += h.TotalSize()
	}
	return pos, end, nil
}

// releaser returns a Release func that drops one reference at most once.
func (s *segment) releaser() func() {
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			s.release()
		}
	}
}

// segView is a segment and its published bounds, copied under mu.
type segView struct {
	s         *segment
	st        segStats
	idx, tidx []byte
}

// views returns every segment with a reference taken; release with
// releaseViews.
func (l *Log) views() ([]segView, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	vs := make([]segView, len(l.mu.segs))
	for i, s := range l.mu.segs {
		s.acquire()
		vs[i] = segView{s: s, st: s.st, idx: s.idx, tidx: s.tidx}
	}
	return vs, nil
}

func releaseViews(vs []segView) {
	for _, v := range vs {
		v.s.release()
	}
}

// OffsetForTimestamp finds the first record whose timestamp is >= ts; ok is false if none.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool, err error) {
	vs, err := l.views()
	if err != nil {
		return 0, 0, false, err
	}
	defer releaseViews(vs)
	var dec decoders
	defer dec.close()
	for _, v := range vs {
		if v.st.size == 0 || v.st.maxTs < ts {
			continue
		}
		from := v.s.base
		if rel, found := lookupTime(v.tidx, ts); found {
			from = v.s.base + int64(rel) + 1
		}
		pos := lookupOffset(v.idx, uint32(from-v.s.base))
		want := func(h BatchHeader) bool { return h.lastOffset() >= from && h.MaxTimestamp >= ts }
		err = forEachBatch(v.s.f, pos, v.st.size, want, func(_ int64, h BatchHeader, b []byte) (bool, error) {
			err := dec.forEachRecord(b, h, func(o, t int64) bool {
				if t >= ts && o >= from {
					offset, timestamp, ok = o, t, true
					return false
				}
				return true
			})
			return !ok, err
		})
		if err != nil || ok {
			return offset, timestamp, ok, err
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp returns the offset and timestamp of the record with the largest timestamp.
func (l *Log) MaxTimestamp() (offset, timestamp int64, ok bool, err error) {
	vs, err := l.views()
	if err != nil {
		return 0, 0, false, err
	}
	defer releaseViews(vs)
	best := -1
	for i, v := range vs {
		if v.st.size > 0 && (best < 0 || v.st.maxTs > vs[best].st.maxTs) {
			best = i
		}
	}
	if best < 0 {
		return 0, 0, false, nil
	}
	v := vs[best]
	var dec decoders
	defer dec.close()
	pos := lookupOffset(v.idx, uint32(v.st.maxTsOff-v.s.base))
	want := func(h BatchHeader) bool { return h.lastOffset() >= v.st.maxTsOff }
	err = forEachBatch(v.s.f, pos, v.st.size, want, func(_ int64, h BatchHeader, b []byte) (bool, error) {
		err := dec.forEachRecord(b, h, func(o, t int64) bool {
			if !ok || t > timestamp {
				offset, timestamp, ok = o, t, true
			}
			return true
		})
		return false, err
	})
	return offset, timestamp, ok, err
}

// OpenSegment returns the whole of the closed segment based at base, for the
// tier's upload: a slice of its file holding a reference, so the file stays
// readable until the slice is released, even if retention deletes the
// segment meanwhile. The active segment, or one that is gone, is an error.
func (l *Log) OpenSegment(base int64) (Slice, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return Slice{}, ErrClosed
	}
	segs := l.mu.segs
	for i, s := range segs[:len(segs)-1] {
		if s.base == base {
			segs[i].acquire()
			return Slice{File: s.f, Pos: 0, Len: s.st.size, Release: s.releaser()}, nil
		}
	}
	return Slice{}, fmt.Errorf("%w: no closed segment at %d", ErrOffsetOutOfRange, base)
}

// Segments lists the segments in offset order, the active one last.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.mu.segs))
	for i, s := range l.mu.segs {
		out[i] = SegmentInfo{
			BaseOffset: s.base, NextOffset: s.st.next, Size: s.st.size,
			FirstTimestamp: s.st.firstTs, MaxTimestamp: s.st.maxTs,
			LogPath: s.logPath, IndexPath: s.idxPath, TimeIndexPath: s.tidxPath,
			Active: i == len(l.mu.segs)-1, RolledAt: s.rolledAt,
		}
		if s.st.size == 0 {
			out[i].FirstTimestamp, out[i].MaxTimestamp = -1, -1
		}
	}
	return out
}

// DeleteSegmentsBefore deletes closed segments whose NextOffset <= offset and moves
// the log start offset to the first remaining segment. The active segment is rolled
// first if it is entirely below offset and non-empty.
func (l *Log) DeleteSegmentsBefore(offset int64) (deleted int, err error) {
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	if act := l.active(); act.st.size > 0 && act.st.next <= offset {
		if err := l.rollLocked(time.Now()); err != nil {
			return 0, err
		}
	}
	segs := l.mu.segs
	n := 0
	for n < len(segs)-1 && segs[n].st.next <= offset {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	l.mu.Lock()
	l.mu.segs = slices.Clone(segs[n:])
	l.mu.Unlock()
	// As in Kafka, the files are renamed .deleted at once and removed after
	// file.delete.delay.ms (by Tick, or by the next Open); reads already
	// holding the open file go on either way.
	delay := msDuration(l.wr.cfg.FileDeleteDelayMs)
	var errs []error
	pd := pendingDeletion{due: time.Now().Add(delay)}
	for _, s := range segs[:n] {
		for _, p := range []string{s.logPath, s.idxPath, s.tidxPath, snapshotPath(l.dir, s.base)} {
			var err error
			if delay > 0 {
				if err = os.Rename(p, p+deletedSuffix); err == nil {
					pd.paths = append(pd.paths, p+deletedSuffix)
				}
			} else {
				err = os.Remove(p)
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, storageErr("remove", p, err))
			}
		}
		s.release() // the file stays open for slices still being sent
	}
	if len(pd.paths) > 0 {
		l.wr.deletions = append(l.wr.deletions, pd)
	}
	// The epoch covering the new log start stays, moved up to it. Open trims
	// the same way, so a failure here only costs a rewrite then.
	if es := epochsTrimmedStart(l.mu.epochs, segs[n].base); len(es) != len(l.mu.epochs) || (len(es) > 0 && es[0] != l.mu.epochs[0]) {
		p := filepath.Join(l.dir, leaderEpochFile)
		if err := writeFileAtomic(p, encodeEpochs(es)); err != nil {
			errs = append(errs, storageErr("write", p, err))
		}
		l.mu.Lock()
		l.mu.epochs = es
		l.mu.Unlock()
	}
	l.logger.Info("deleted segments", "dir", l.dir, "count", n, "logStartOffset", segs[n].base, "fileDeleteDelay", delay)
	return n, errors.Join(errs...)
}

// Close flushes, snapshots producer state, and closes files (slices in flight stay readable).
func (l *Log) Close() error {
	l.wr.Lock()
	defer l.wr.Unlock()
	if l.mu.closed {
		return nil
	}
	act := l.active()
	err := l.wr.err
	if err == nil {
		err = act.syncAll()
	}
	if cerr := act.closeIndexFiles(); err == nil && cerr != nil {
		err = storageErr("close index of", act.logPath, cerr)
	}
	if err == nil {
		leo := act.st.next
		if err = writeSnapshot(l.dir, leo, l.wr.producers); err == nil {
			if err = writeRecoveryPoint(l.dir, leo); err == nil {
				err = writeFileAtomic(cleanShutdownPath(l.dir), nil)
			}
		}
		if err != nil {
			err = storageErr("close", l.dir, err)
		}
	}
	l.mu.Lock()
	l.mu.closed = true
	segs := l.mu.segs
	l.mu.Unlock()
	for _, s := range segs {
		s.release()
	}
	return err
}

// Remove closes the log and deletes its directory.
func (l *Log) Remove() error {
	err := l.Close()
	if rerr := os.RemoveAll(l.dir); rerr != nil {
		return storageErr("remove", l.dir, rerr)
	}
	if errors.Is(err, ErrStorage) {
		return nil // the files are gone: a failed flush of them does not matter
	}
	return err
}
