package localstore

// The log cleaner: compaction of one partition's log, as Kafka's LogCleaner
// does it (cleanup.policy=compact).
//
// The log is split at the cleaner checkpoint: below it the "clean" part,
// already compacted, and from it to the end of the cleanable part the
// "dirty" part. The cleanable part is the closed segments up to the first one
// still inside min.compaction.lag.ms; the active segment is never cleaned. A
// pass maps each key of the dirty part to its latest offset (an offsetMap
// bounded by log.cleaner.dedupe.buffer.size; when it fills, the pass ends
// there and the next pass goes on), then rewrites every segment from the
// start of the log to the map's end, keeping of each keyed record only the
// latest, merging neighbours into segments of at most segment.bytes.
//
// Offsets never change: a batch keeps its base offset, last offset delta,
// timestamps and producer fields, and holds the surviving records compressed
// again with its own codec. A batch left without records is dropped, except
// the last batch of an idempotent producer, whose header is kept so that its
// sequence survives a restart. Control batches are kept. A tombstone (a null
// value) is kept until it has been in the clean part for delete.retention.ms;
// records without a key are dropped.
//
// The rewrite runs without the writer lock, reading segments through their
// references, so appends and reads go on. Only the swap takes the lock. The
// swap is crash-safe: the new segments are written beside the old ones with
// cleanedSuffix and fsynced, then the manifest file cleanSwapFile is written
// atomically naming the old and the new segments: the commit point. The old
// segments are removed and the new ones renamed into place, then the
// manifest is removed. Open finishes a swap whose manifest exists (every step
// can be redone) and removes .cleaned files without one, so a crash at any
// point leaves either the old segments or the new ones.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/crashpoint"
)

const (
	cleanedSuffix         = ".cleaned"           // a cleaned segment file written, not yet swapped in
	cleanSwapFile         = "cleaner-swap"       // the swap in progress: old and new segment bases
	cleanerCheckpointFile = "cleaner-checkpoint" // first dirty offset and when offsets became clean
	cleanHistoryMax       = 64                   // entries of the checkpoint's history kept

	// DefaultDedupeBufferBytes is log.cleaner.dedupe.buffer.size's default.
	DefaultDedupeBufferBytes = 128 << 20
)

// CleanConfig is one cleaning's settings, resolved from topic and broker configuration.
type CleanConfig struct {
	DeleteRetentionMs  int64 // delete.retention.ms: how long a tombstone stays in the clean part
	MinCompactionLagMs int64 // min.compaction.lag.ms: younger segments are not cleaned
	DedupeBufferBytes  int64 // log.cleaner.dedupe.buffer.size (of this cleaner thread); 0 = the default
	Now                time.Time
	// IO, if set, is called with each count of bytes read or written, as
	// they are (metrics, log.cleaner.io.max.bytes.per.second); it may sleep.
	IO func(read, written int64)
	// Ctx, if set, stops the cleaning between segments when done; nothing
	// is swapped in then.
	Ctx context.Context
	// Tiered: the topic tiers (remote.storage.enable). Segments below the
	// tier floor are the tier's and are not rewritten; while the floor is
	// unknown (after a restart, before the tier's first look) nothing is
	// cleaned (clean_tier.go). Tombstones are kept: remote compaction
	// removes them.
	Tiered bool
}

// CleanStats says what a Clean did.
type CleanStats struct {
	Passes         int
	BytesRead      int64
	BytesWritten   int64
	RecordsRemoved int64
	SegmentsBefore int // segments rewritten
	SegmentsAfter  int // segments they became
}

// CleanState is what the scheduler needs to pick a log to clean.
type CleanState struct {
	FirstDirtyOffset    int64
	CleanableEnd        int64 // the cleanable part ends here
	CleanBytes          int64 // closed segments wholly below FirstDirtyOffset
	DirtyBytes          int64 // cleanable segments holding dirty offsets
	FirstDirtyTimestamp int64 // first timestamp of the first dirty segment, -1 if none
	LastCleaned         time.Time
}

// DirtyRatio is DirtyBytes over all cleanable bytes (0 when there are none).
func (s CleanState) DirtyRatio() float64 {
	if s.CleanBytes+s.DirtyBytes == 0 {
		return 0
	}
	return float64(s.DirtyBytes) / float64(s.CleanBytes+s.DirtyBytes)
}

// cleanCheckpoint is the cleaner's persistent state. history lists, in
// increasing order, (end, ms): every offset below end has been in the clean
// part since ms. It is immutable once published.
type cleanCheckpoint struct {
	firstDirty  int64
	lastCleaned int64 // ms, 0 if never
	history     [][2]int64
}

// cleanerState is the cleaner's part of a Log.
type cleanerState struct {
	run  sync.Mutex // one Clean at a time
	ck   atomic.Pointer[cleanCheckpoint]
	hook func(step string) error // tests: fail at a step of the swap

	// The tier floor (clean_tier.go): written under Log.wr, read anywhere.
	tierFloor      atomic.Int64
	tierFloorKnown atomic.Bool
}

// tombstoneExpired reports whether the record at off has been in the clean
// part for retention ms at nowMs.
func (c *cleanCheckpoint) tombstoneExpired(off, nowMs, retentionMs int64) bool {
	i := sort.Search(len(c.history), func(i int) bool { return c.history[i][0] > off })
	return i < len(c.history) && off < c.firstDirty && nowMs-c.history[i][1] >= retentionMs
}

// advanced returns the checkpoint after a pass that cleaned up to end at nowMs.
func (c *cleanCheckpoint) advanced(end, nowMs, retentionMs int64) *cleanCheckpoint {
	n := &cleanCheckpoint{firstDirty: end, lastCleaned: nowMs}
	// Of the entries old enough to free their tombstones only the highest matters.
	h := c.history
	i := 0
	for i+1 < len(h) && nowMs-h[i+1][1] >= retentionMs {
		i++
	}
	n.history = append(slices.Clone(h[i:]), [2]int64{end, nowMs})
	for len(n.history) > cleanHistoryMax {
		// Merge the second entry into the third: its offsets get the later
		// time, so their tombstones stay longer, never shorter.
		n.history = slices.Delete(n.history, 1, 2)
	}
	return n
}

func (c *cleanCheckpoint) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.firstDirty))
	b = binary.BigEndian.AppendUint64(b, uint64(c.lastCleaned))
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.history)))
	for _, e := range c.history {
		b = binary.BigEndian.AppendUint64(b, uint64(e[0]))
		b = binary.BigEndian.AppendUint64(b, uint64(e[1]))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeCleanCheckpoint(b []byte) (*cleanCheckpoint, bool) {
	if len(b) < 24 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, false
	}
	be := binary.BigEndian
	c := &cleanCheckpoint{firstDirty: int64(be.Uint64(b)), lastCleaned: int64(be.Uint64(b[8:]))}
	n := int(be.Uint32(b[16:]))
	if len(b) != 24+16*n {
		return nil, false
	}
	for i := 0; i < n; i++ {
		e := b[20+16*i:]
		c.history = append(c.history, [2]int64{int64(be.Uint64(e)), int64(be.Uint64(e[8:]))})
	}
	return c, true
}

// loadCleanCheckpoint reads the checkpoint; a missing or damaged one means
// nothing is clean yet.
func (l *Log) loadCleanCheckpoint() {
	c := &cleanCheckpoint{}
	if b, err := os.ReadFile(filepath.Join(l.dir, cleanerCheckpointFile)); err == nil {
		if d, ok := decodeCleanCheckpoint(b); ok {
			c = d
		} else {
			l.logger.Warn("ignoring damaged cleaner checkpoint", "dir", l.dir)
		}
	}
	l.cl.ck.Store(c)
}

func (l *Log) checkpoint() *cleanCheckpoint {
	if c := l.cl.ck.Load(); c != nil {
		return c
	}
	return &cleanCheckpoint{}
}

// cleanableCount returns how many leading segments of vs may be cleaned:
// closed ones, up to the first whose newest record is younger than minLagMs.
func cleanableCount(vs []segView, minLagMs, nowMs int64) int {
	n := 0
	for n < len(vs)-1 {
		if minLagMs > 0 && vs[n].st.size > 0 && vs[n].st.maxTs > nowMs-minLagMs {
			break
		}
		n++
	}
	return n
}

// CleanState reports the log's clean and dirty parts as of now; the
// segments below the tier floor (clean_tier.go) are in neither.
func (l *Log) CleanState(minCompactionLagMs int64, now time.Time) CleanState {
	vs, err := l.views()
	if err != nil {
		return CleanState{FirstDirtyTimestamp: -1}
	}
	defer releaseViews(vs)
	ck := l.checkpoint()
	floor, _ := l.TierFloor()
	first := max(ck.firstDirty, vs[0].s.base, floor)
	n := cleanableCount(vs, minCompactionLagMs, now.UnixMilli())
	s := CleanState{FirstDirtyOffset: first, CleanableEnd: vs[n].s.base, FirstDirtyTimestamp: -1}
	if ck.lastCleaned > 0 {
		s.LastCleaned = time.UnixMilli(ck.lastCleaned)
	}
	for _, v := range vs[:n] {
		if v.st.next <= floor {
			// The tier's (uploaded or being uploaded): not the local
			// cleaner's to rewrite, so not in its ratio either, or a
			// large local copy of the remote part would hold back the
			// cleaning, and so the uploads, of what follows.
			continue
		}
		if v.st.next <= first {
			s.CleanBytes += v.st.size
			continue
		}
		s.DirtyBytes += v.st.size
		if s.FirstDirtyTimestamp < 0 && v.st.size > 0 {
			s.FirstDirtyTimestamp = v.st.firstTs
		}
	}
	return s
}

// Clean compacts the cleanable part of the log, in as many passes as the
// key-to-offset map needs.
func (l *Log) Clean(cc CleanConfig) (CleanStats, error) {
	l.cl.run.Lock()
	defer l.cl.run.Unlock()
	if cc.Now.IsZero() {
		cc.Now = time.Now()
	}
	if cc.DedupeBufferBytes <= 0 {
		cc.DedupeBufferBytes = DefaultDedupeBufferBytes
	}
	if cc.Ctx == nil {
		cc.Ctx = context.Background()
	}
	var st CleanStats
	for {
		more, err := l.cleanPass(cc, &st)
		if err != nil || !more {
			return st, err
		}
	}
}

// cleanRecord is what the cleaner reads of a record.
type cleanRecord struct {
	raw       []byte // the record with its length prefix
	offset    int64
	key       []byte
	hasKey    bool
	tombstone bool
}

// forEachCleanRecord calls fn for each record of the decompressed records section.
func forEachCleanRecord(recs []byte, base int64, fn func(r cleanRecord) bool) error {
	for len(recs) > 0 {
		l, k := readVarint(recs)
		if k <= 0 || l < 0 || int64(len(recs)-k) < l {
			return fmt.Errorf("%w: bad record length", ErrCorruptBatch)
		}
		r := cleanRecord{raw: recs[:k+int(l)]}
		b := recs[k : k+int(l)]
		recs = recs[k+int(l):]
		if _, err := parseRecord(b); err != nil {
			return fmt.Errorf("%w: %v", ErrCorruptBatch, err)
		}
		b = b[1:]
		_, n := binary.Varint(b) // timestamp delta
		b = b[n:]
		od, n := readVarint(b)
		b = b[n:]
		r.offset = base + od
		kl, n := readVarint(b)
		b = b[n:]
		if kl >= 0 {
			r.hasKey, r.key = true, b[:kl]
			b = b[kl:]
		}
		vl, _ := readVarint(b)
		r.tombstone = vl < 0
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// cleanPass runs one pass; more is true if the map filled before the end
// of the cleanable part.
func (l *Log) cleanPass(cc CleanConfig, stats *CleanStats) (more bool, err error) {
	vs, err := l.views()
	if err != nil {
		return false, err
	}
	defer releaseViews(vs)
	nowMs := cc.Now.UnixMilli()
	ck := l.checkpoint()
	floor, ok := l.cleanFloor(cc.Tiered)
	if !ok {
		return false, nil
	}
	// The rewrite starts at the first segment wholly at or above the tier
	// floor: below it the segments are the tier's.
	j := 0
	for j < len(vs)-1 && vs[j].s.base < floor {
		j++
	}
	firstDirty := max(ck.firstDirty, vs[j].s.base)
	n := cleanableCount(vs, cc.MinCompactionLagMs, nowMs)
	end := vs[n].s.base
	if n <= j || firstDirty >= end {
		return false, nil
	}
	throttle := func(read, written int64) {
		if cc.IO != nil && read+written > 0 {
			cc.IO(read, written)
		}
	}

	// Map every key of the dirty part to its latest offset.
	var dec decoders
	defer dec.close()
	m := newOffsetMap(offsetMapSlots(cc.DedupeBufferBytes, end-firstDirty))
	mapEnd := end
	for _, v := range vs[j:n] {
		if v.st.next <= firstDirty || mapEnd < end {
			continue
		}
		if err := cc.Ctx.Err(); err != nil {
			return false, err
		}
		pos := int64(0)
		if firstDirty > v.s.base {
			pos = lookupOffset(v.idx, uint32(firstDirty-v.s.base))
		}
		full, err := mapKeys(&dec, m, v.s.f, pos, v.st.size, firstDirty, end)
		if err != nil {
			return false, fmt.Errorf("clean %q: %w", v.s.logPath, err)
		}
		if full >= 0 {
			mapEnd = full
		}
		stats.BytesRead += v.st.size - pos
		throttle(v.st.size-pos, 0)
	}

	// The segments to rewrite: from the first not the tier's to the map's end.
	k := j
	for k < n && vs[k].s.base < mapEnd {
		k++
	}
	lastOf, cfg := l.producerLastOffsets()
	// A tiered log keeps its tombstones locally: an older record of the key
	// may be in the remote tier, which only remote compaction, seeing both,
	// may drop along with the tombstone.
	keep := keepRule(m, mapEnd, func(off int64) bool {
		return !cc.Tiered && ck.tombstoneExpired(off, nowMs, cc.DeleteRetentionMs)
	})

	cw := &cleanedWriter{l: l, cfg: cfg, stats: stats, throttle: throttle, ctx: cc.Ctx}
	if err := cw.write(vs[j:k], &dec, keep, lastOf); err != nil {
		cw.discard()
		return false, err
	}
	out := cw.done
	stats.Passes++
	stats.SegmentsBefore += k - j
	stats.SegmentsAfter += len(out)

	swapped, err := l.swapCleaned(vs[j:k], out)
	if err != nil || !swapped {
		return false, err
	}
	nck := ck.advanced(mapEnd, nowMs, cc.DeleteRetentionMs)
	l.cl.ck.Store(nck)
	if err := writeFileAtomic(filepath.Join(l.dir, cleanerCheckpointFile), nck.encode()); err != nil {
		l.logger.Warn("cannot write cleaner checkpoint", "dir", l.dir, "err", err)
	}
	l.logger.Debug("cleaned log", "dir", l.dir, "segments", k-j, "into", len(out), "firstDirty", mapEnd)
	return mapEnd < end, nil
}

// mapKeys puts into m the key of every keyed record of f's batches between
// positions pos and size whose offset is in [from, upTo), as its latest
// offset. full is the offset of the first record that did not fit (the map
// stops there), -1 if all did.
func mapKeys(dec *decoders, m *offsetMap, f *os.File, pos, size, from, upTo int64) (full int64, err error) {
	full = -1
	all := func(BatchHeader) bool { return true }
	err = forEachBatch(f, pos, size, all, func(_ int64, h BatchHeader, b []byte) (bool, error) {
		if h.BaseOffset >= upTo {
			return false, nil
		}
		if h.Control() || h.lastOffset() < from {
			return true, nil
		}
		recs, err := cleanDecode(dec, b, h)
		if err != nil {
			return false, fmt.Errorf("%w: batch at offset %d: %v", ErrCorruptBatch, h.BaseOffset, err)
		}
		err = forEachCleanRecord(recs, h.BaseOffset, func(r cleanRecord) bool {
			if r.offset < from || r.offset >= upTo || !r.hasKey {
				return true
			}
			if !m.put(r.key, r.offset) {
				full = r.offset
				return false
			}
			return true
		})
		return err == nil && full < 0, err
	})
	return full, err
}

// producerLastOffsets returns, per producer id, the last offset of its last
// batch (the batch the cleaner keeps even emptied), and the log's config.
func (l *Log) producerLastOffsets() (map[int64]int64, Config) {
	lastOf := make(map[int64]int64)
	l.wr.Lock()
	defer l.wr.Unlock()
	for pid, e := range l.wr.producers {
		if e.n > 0 {
			lastOf[pid] = e.batches[e.n-1].lastOff
		}
	}
	return lastOf, l.wr.cfg
}

// keepRule is the cleaner's rule for a record, given the key map of the
// dirty part up to mapEnd: records from mapEnd on are kept; below it a
// record without a key goes, one whose key has a later offset goes, and a
// tombstone goes once expired says so.
func keepRule(m *offsetMap, mapEnd int64, expired func(off int64) bool) func(cleanRecord) bool {
	return func(r cleanRecord) bool {
		switch {
		case r.offset >= mapEnd:
			return true
		case !r.hasKey:
			return false
		case m.get(r.key) > r.offset:
			return false
		case r.tombstone:
			return !expired(r.offset)
		}
		return true
	}
}

// cleanedWriter writes the cleaned copy of a run of segments as new
// segments of at most segment.bytes (files with cleanedSuffix, fsynced): the
// first based where the run starts, each next one at its first batch.
type cleanedWriter struct {
	l        *Log
	cfg      Config
	stats    *CleanStats
	throttle func(read, written int64)
	ctx      context.Context

	cur       *segment
	w         *bufio.Writer
	idx, tidx []byte
	done      []*segment
}

func (cw *cleanedWriter) write(vs []segView, dec *decoders, keep func(cleanRecord) bool, lastOf map[int64]int64) error {
	if err := cw.start(vs[0].s.base, vs[len(vs)-1].s.rolledAt); err != nil {
		return err
	}
	all := func(BatchHeader) bool { return true }
	for _, v := range vs {
		if err := cw.ctx.Err(); err != nil {
			return err
		}
		err := forEachBatch(v.s.f, 0, v.st.size, all, func(_ int64, h BatchHeader, b []byte) (bool, error) {
			nb, removed, err := cleanBatch(dec, b, h, keep, lastOf)
			if err != nil {
				return false, fmt.Errorf("%w: batch at offset %d: %v", ErrCorruptBatch, h.BaseOffset, err)
			}
			cw.stats.RecordsRemoved += removed
			if nb == nil {
				return true, nil
			}
			return true, cw.add(nb, v.s.rolledAt)
		})
		if err != nil {
			return fmt.Errorf("clean %q: %w", v.s.logPath, err)
		}
		cw.stats.BytesRead += v.st.size
		cw.throttle(v.st.size, 0)
	}
	return cw.finish()
}

func (cw *cleanedWriter) start(base int64, rolledAt time.Time) error {
	l := cw.l
	l.mu.RLock()
	closed := l.mu.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed // a deleted topic: its directory is going
	}
	s := &segment{base: base, logPath: logPath(l.dir, base), idxPath: indexPathFor(l.dir, base),
		tidxPath: timeIndexPathFor(l.dir, base), st: newStats(base), rolledAt: rolledAt}
	f, err := os.OpenFile(s.logPath+cleanedSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return storageErr("create", s.logPath+cleanedSuffix, err)
	}
	s.f = f
	s.refs.Store(1)
	cw.cur, cw.idx, cw.tidx = s, nil, nil
	if cw.w == nil {
		cw.w = bufio.NewWriterSize(f, 256<<10)
	} else {
		cw.w.Reset(f)
	}
	return nil
}

// add appends the batch nb, first starting a new segment if it would
// overflow segment.bytes or the relative offsets of the indexes.
func (cw *cleanedWriter) add(nb []byte, rolledAt time.Time) error {
	h := parseHeader(nb)
	s := cw.cur
	if s.st.size > 0 && (s.st.size+h.TotalSize() > cw.cfg.SegmentBytes || h.lastOffset()-s.base > math.MaxUint32) {
		if err := cw.finish(); err != nil {
			return err
		}
		if err := cw.start(h.BaseOffset, rolledAt); err != nil {
			return err
		}
		s = cw.cur
	}
	s.rolledAt = rolledAt
	maxIdx, maxTidx := maxIndexEntries(cw.cfg)
	cw.idx, cw.tidx = s.st.add(s.base, h, s.st.size, cw.cfg.IndexIntervalBytes, cw.idx, cw.tidx,
		maxIdx-len(cw.idx)/offsetEntrySize, maxTidx-len(cw.tidx)/timeEntrySize)
	if _, err := cw.w.Write(nb); err != nil {
		return storageErr("write", s.f.Name(), err)
	}
	return nil
}

// finish fsyncs the current segment and writes its indexes.
func (cw *cleanedWriter) finish() error {
	s := cw.cur
	cw.cur = nil
	cw.done = append(cw.done, s)
	cw.tidx = s.st.finalTimeEntry(s.base, cw.tidx)
	if err := cw.w.Flush(); err != nil {
		return storageErr("write", s.f.Name(), err)
	}
	if err := s.f.Sync(); err != nil {
		return storageErr("fsync", s.f.Name(), err)
	}
	s.idx, s.tidx = cw.idx, cw.tidx
	if s.idx == nil {
		s.idx = []byte{}
	}
	for _, p := range []struct {
		path string
		b    []byte
	}{{s.idxPath, s.idx}, {s.tidxPath, s.tidx}} {
		if err := writeFileAtomic(p.path+cleanedSuffix, p.b); err != nil {
			return storageErr("write", p.path+cleanedSuffix, err)
		}
	}
	cw.stats.BytesWritten += s.st.size
	cw.throttle(0, s.st.size)
	return nil
}

// discard closes and removes everything written.
func (cw *cleanedWriter) discard() {
	if cw.cur != nil {
		cw.done = append(cw.done, cw.cur)
	}
	discardCleaned(cw.done)
}

func discardCleaned(segs []*segment) {
	for _, s := range segs {
		s.f.Close()
		for _, p := range []string{s.logPath, s.idxPath, s.tidxPath} {
			os.Remove(p + cleanedSuffix)
		}
	}
}

// cleanBatch returns the batch b with the records keep says no to removed:
// b itself if none is, nil if the batch is to go. removed counts records.
func cleanBatch(dec *decoders, b []byte, h BatchHeader, keep func(cleanRecord) bool, lastOf map[int64]int64) ([]byte, int64, error) {
	if h.Control() {
		return b, 0, nil
	}
	recs, err := cleanDecode(dec, b, h)
	if err != nil {
		return nil, 0, err
	}
	var kept []byte
	var nKept, nAll int32
	err = forEachCleanRecord(recs, h.BaseOffset, func(r cleanRecord) bool {
		nAll++
		if keep(r) {
			kept = append(kept, r.raw...)
			nKept++
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	removed := int64(nAll - nKept)
	if removed == 0 && nKept > 0 {
		return b, 0, nil
	}
	body := kept
	attrs := h.Attributes
	if nKept == 0 {
		// Kafka keeps the last batch of an idempotent producer, empty, so
		// that the producer's sequence survives; any other goes, an empty
		// one kept before included once the producer wrote after it.
		if last, ok := lastOf[h.ProducerID]; h.ProducerID < 0 || !ok || last != h.lastOffset() {
			return nil, removed, nil
		}
		if nAll == 0 {
			return b, 0, nil
		}
		attrs &^= 0x7
	} else if body, err = cleanEncode(h.Compression(), kept); err != nil {
		return nil, 0, err
	}
	nb := make([]byte, HeaderSize, HeaderSize+len(body))
	copy(nb, b[:HeaderSize])
	nb = append(nb, body...)
	be := binary.BigEndian
	be.PutUint32(nb[batchOffLength:], uint32(len(nb)-batchLogOverhead))
	be.PutUint16(nb[batchOffAttributes:], uint16(attrs))
	be.PutUint32(nb[batchOffNumRecords:], uint32(nKept))
	be.PutUint32(nb[batchOffCRC:], batchCRC(nb))
	return nb, removed, nil
}

// cleanStep calls the test hook, if any, after a step of the swap; the
// kill -9 tests stop the process there with STRATATEST_CRASH_AT=clean-<the
// step's first word> (clean-cleaned, clean-manifest, clean-remove,
// clean-rename, clean-renamed, clean-done: the first such step).
func (l *Log) cleanStep(step string) error {
	kind, _, _ := strings.Cut(step, " ")
	crashpoint.At("clean-" + kind)
	if l.cl.hook != nil {
		return l.cl.hook(step)
	}
	return nil
}

// swapCleaned replaces the run of closed segments old by out. swapped is
// false, and the new files are removed, if the log changed meanwhile
// (retention deleted one of them) or the tier pinned one of them
// (clean_tier.go: the floor is read under l.wr, which PinForUpload takes).
// Caller holds cl.run.
func (l *Log) swapCleaned(old []segView, out []*segment) (swapped bool, err error) {
	l.wr.Lock()
	defer l.wr.Unlock()
	discard := func() { discardCleaned(out) }
	l.mu.RLock()
	at := slices.IndexFunc(l.mu.segs, func(s *segment) bool { return s == old[0].s })
	same := !l.mu.closed && at >= 0 && len(l.mu.segs) > at+len(old)
	for i := 0; same && i < len(old); i++ {
		same = l.mu.segs[at+i] == old[i].s
	}
	l.mu.RUnlock()
	if floor, _ := l.TierFloor(); old[0].s.base < floor {
		same = false // the tier pinned a segment of the run
	}
	if !same || l.wr.err != nil {
		discard()
		return false, nil
	}
	if err := l.cleanStep("cleaned"); err != nil {
		discard()
		return false, err
	}
	oldBases := make([]int64, len(old))
	for i, v := range old {
		oldBases[i] = v.s.base
	}
	newBases := make([]int64, len(out))
	for i, s := range out {
		newBases[i] = s.base
	}
	if err := writeFileAtomic(filepath.Join(l.dir, cleanSwapFile), encodeSwap(oldBases, newBases)); err != nil {
		discard()
		return false, storageErr("write", filepath.Join(l.dir, cleanSwapFile), err)
	}
	// Committed: from here Open finishes the swap whatever happens.
	fail := func(err error) (bool, error) {
		for _, s := range out {
			s.f.Close()
		}
		if !errors.Is(err, ErrStorage) {
			err = fmt.Errorf("%w: %w", ErrStorage, err)
		}
		l.wr.err = err // read-only until reopened, which finishes the swap
		return false, err
	}
	if err := l.cleanStep("manifest"); err != nil {
		return fail(err)
	}
	if err := applySwap(l.dir, oldBases, newBases, l.cleanStep); err != nil {
		return fail(err)
	}
	l.mu.Lock()
	segs := slices.Clone(l.mu.segs[:at])
	segs = append(segs, out...)
	l.mu.segs = append(segs, l.mu.segs[at+len(old):]...)
	l.mu.Unlock()
	for _, v := range old {
		v.s.release() // the log's reference; readers' slices keep the files open
	}
	return true, nil
}

func encodeSwap(oldBases, newBases []int64) []byte {
	var b []byte
	for _, list := range [][]int64{oldBases, newBases} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(list)))
		for _, o := range list {
			b = binary.BigEndian.AppendUint64(b, uint64(o))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeSwap(b []byte) (oldBases, newBases []int64, ok bool) {
	if len(b) < 12 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, nil, false
	}
	b = b[:len(b)-4]
	var lists [2][]int64
	for i := range lists {
		if len(b) < 4 {
			return nil, nil, false
		}
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if len(b) < 8*n {
			return nil, nil, false
		}
		for j := 0; j < n; j++ {
			lists[i] = append(lists[i], int64(binary.BigEndian.Uint64(b[8*j:])))
		}
		b = b[8*n:]
	}
	return lists[0], lists[1], len(b) == 0
}

// applySwap removes the old segments' files and renames the new ones into
// place, then removes the manifest. Every step may be redone after a crash.
func applySwap(dir string, oldBases, newBases []int64, step func(string) error) error {
	for _, b := range oldBases {
		if slices.Contains(newBases, b) {
			continue // replaced by the rename below
		}
		for _, p := range []string{logPath(dir, b), indexPathFor(dir, b), timeIndexPathFor(dir, b)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return storageErr("remove", p, err)
			}
		}
		if err := step(fmt.Sprintf("remove %d", b)); err != nil {
			return err
		}
	}
	for _, b := range newBases {
		for _, p := range []string{indexPathFor(dir, b), timeIndexPathFor(dir, b), logPath(dir, b)} {
			if err := os.Rename(p+cleanedSuffix, p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return storageErr("rename", p+cleanedSuffix, err)
			}
			if err := step("rename " + filepath.Base(p)); err != nil {
				return err
			}
		}
	}
	if err := syncDir(dir); err != nil {
		return storageErr("fsync directory", dir, err)
	}
	if err := step("renamed"); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, cleanSwapFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return storageErr("remove", filepath.Join(dir, cleanSwapFile), err)
	}
	if err := syncDir(dir); err != nil {
		return storageErr("fsync directory", dir, err)
	}
	return step("done")
}

// recoverCleanSwap, at Open, finishes a swap whose manifest was written, or
// else removes the files of a cleaning that never got that far.
// changed reports whether a file was touched.
func recoverCleanSwap(dir string, ents []os.DirEntry, logger *slog.Logger) (changed bool, err error) {
	p := filepath.Join(dir, cleanSwapFile)
	manifest := false
	for _, e := range ents {
		name := e.Name()
		if name == cleanSwapFile {
			manifest = true
		}
		if strings.HasSuffix(name, cleanedSuffix) {
			changed = true
		}
	}
	if !manifest {
		for _, e := range ents {
			if name := e.Name(); strings.HasSuffix(name, cleanedSuffix) {
				logger.Info("removing the file of an unfinished cleaning", "path", filepath.Join(dir, name))
				os.Remove(filepath.Join(dir, name))
			}
		}
		return changed, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return true, storageErr("read", p, err)
	}
	oldBases, newBases, ok := decodeSwap(b)
	if !ok {
		return true, fmt.Errorf("%w: damaged cleaner swap manifest %q", ErrStorage, p)
	}
	logger.Info("finishing an interrupted cleaner swap", "dir", dir, "old", oldBases, "new", newBases)
	return true, applySwap(dir, oldBases, newBases, func(string) error { return nil })
}
