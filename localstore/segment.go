package localstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync/atomic"
	"time"
)

// segment is one .log file with its two indexes.
type segment struct {
	base                       int64
	logPath, idxPath, tidxPath string
	f                          *os.File // closed when refs drops to zero
	refs                       atomic.Int64

	// Guarded by Log.wr: only the writer touches these.
	idxF, tidxF *os.File // open while the segment is active

	// Guarded by Log.mu; written only with Log.wr also held, so the writer
	// may read them holding Log.wr alone.
	st       segStats
	idx      []byte // offset index, the bytes of the file
	tidx     []byte // time index, the bytes of the file
	rolledAt time.Time

	// jitterDraw is drawn once when the segment is created or opened;
	// rollDue turns it into this segment's share of segment.jitter.ms.
	jitterDraw uint64
}

// rollDue reports whether segment.ms (less this segment's jitter) has passed
// since the segment's first batch. As in Kafka, the jitter is a random
// amount in [0, min(segment.jitter.ms, segment.ms)), fixed per segment.
// Caller holds Log.wr.
func (s *segment) rollDue(cfg *Config, nowMs int64) bool {
	if cfg.SegmentMs <= 0 || s.st.size == 0 {
		return false
	}
	jitter := int64(0)
	if cfg.SegmentJitterMs > 0 {
		jitter = int64(s.jitterDraw % uint64(min(cfg.SegmentJitterMs, cfg.SegmentMs)))
	}
	return nowMs-s.st.rollTs > cfg.SegmentMs-jitter
}

// segStats is what appending batches to a segment changes.
type segStats struct {
	size       int64 // bytes of whole batches
	next       int64 // one past the last offset
	firstTs    int64 // first batch's first timestamp, -1 if empty
	rollTs     int64 // first batch's max timestamp: segment.ms counts from it
	maxTs      int64 // -1 if empty
	maxTsOff   int64 // last offset of the first batch carrying maxTs
	sinceIndex int64 // bytes appended since the last index entry
	lastTidxTs int64 // timestamp of the last time-index entry
}

func newStats(base int64) segStats {
	return segStats{next: base, firstTs: -1, rollTs: -1, maxTs: -1, maxTsOff: -1, lastTidxTs: math.MinInt64}
}

// add accounts for batch h written at pos and appends index entries to idx
// and tidx when index.interval.bytes have passed since the last entry.
// idxRoom and tidxRoom say how many entries the indexes may still take.
func (st *segStats) add(base int64, h BatchHeader, pos int64, interval int64, idx, tidx []byte, idxRoom, tidxRoom int) ([]byte, []byte) {
	last := h.lastOffset()
	if st.size == 0 {
		st.firstTs, st.rollTs = h.FirstTimestamp, h.MaxTimestamp
	}
	if h.MaxTimestamp > st.maxTs {
		st.maxTs, st.maxTsOff = h.MaxTimestamp, last
	}
	if st.sinceIndex > interval {
		if idxRoom > 0 {
			idx = appendOffsetEntry(idx, uint32(last-base), uint32(pos))
		}
		if tidxRoom > 0 && st.maxTs > st.lastTidxTs {
			tidx = appendTimeEntry(tidx, st.maxTs, uint32(st.maxTsOff-base))
			st.lastTidxTs = st.maxTs
		}
		st.sinceIndex = 0
	}
	st.sinceIndex += h.TotalSize()
	st.size = pos + h.TotalSize()
	st.next = last + 1
	return idx, tidx
}

// finalTimeEntry appends the entry a closed segment ends with, so that its
// time index's last entry is the segment's largest timestamp.
func (st *segStats) finalTimeEntry(base int64, tidx []byte) []byte {
	if st.maxTs >= 0 && st.maxTs > st.lastTidxTs {
		tidx = appendTimeEntry(tidx, st.maxTs, uint32(st.maxTsOff-base))
		st.lastTidxTs = st.maxTs
	}
	return tidx
}

// acquire takes a reference for a reader. Caller holds Log.mu while the
// segment is still in the log's list, so refs is above zero.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference and closes the file with the last one.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
	}
}

// closeIndexFiles closes the active segment's index files. Caller holds Log.wr.
func (s *segment) closeIndexFiles() error {
	var err error
	for _, f := range []**os.File{&s.idxF, &s.tidxF} {
		if *f != nil {
			if cerr := (*f).Close(); err == nil {
				err = cerr
			}
			*f = nil
		}
	}
	return err
}

// syncAll fsyncs the log and, if open, the index files. Caller holds Log.wr.
func (s *segment) syncAll() error {
	for _, f := range []*os.File{s.f, s.idxF, s.tidxF} {
		if f != nil {
			if err := f.Sync(); err != nil {
				return fmt.Errorf("%w: fsync %q: %w", ErrStorage, f.Name(), err)
			}
		}
	}
	return nil
}

// openIndexFiles makes sure the active segment's index files exist. They
// are opened for writing only when the first entry is written (indexFile):
// an idle partition holds one descriptor, its log, not three, so a broker
// with many quiet partitions needs a third of the descriptors. Caller holds
// Log.wr.
func (s *segment) openIndexFiles() error {
	for _, p := range []string{s.idxPath, s.tidxPath} {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, filePerm)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// indexFile returns the open offset index (time index when timeIdx) of the
// active segment, opening it on first use. Caller holds Log.wr.
func (s *segment) indexFile(timeIdx bool) (*os.File, error) {
	f, path := &s.idxF, s.idxPath
	if timeIdx {
		f, path = &s.tidxF, s.tidxPath
	}
	if *f == nil {
		nf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
		if err != nil {
			return nil, err
		}
		*f = nf
	}
	return *f, nil
}

// readHeaderAt reads the batch header at pos of f into buf (HeaderSize bytes).
func readHeaderAt(f *os.File, pos int64, buf []byte) (BatchHeader, error) {
	if _, err := f.ReadAt(buf[:HeaderSize], pos); err != nil {
		return BatchHeader{}, err
	}
	h := parseHeader(buf)
	if h.Magic != 2 || h.Length < minBatchLength {
		return h, fmt.Errorf("%w: bad batch header at position %d of %q", ErrCorruptBatch, pos, f.Name())
	}
	return h, nil
}

// scanResult is what a full scan of a segment file learned.
type scanResult struct {
	st        segStats
	idx, tidx []byte
	fileSize  int64
	reason    string // why the scan stopped before fileSize
}

// scanSegment reads every batch of f from the start, checking magic, length,
// CRC and offsets, and rebuilds the indexes of the valid prefix. Only an I/O
// error is returned as an error; corruption ends the valid prefix.
func scanSegment(f *os.File, base, interval int64, maxIdx, maxTidx int) (scanResult, error) {
	fi, err := f.Stat()
	if err != nil {
		return scanResult{}, err
	}
	r := scanResult{st: newStats(base), fileSize: fi.Size()}
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, r.fileSize), 256<<10)
	buf := make([]byte, HeaderSize, 64<<10)
	for pos := int64(0); pos < r.fileSize; {
		if _, err := io.ReadFull(br, buf[:HeaderSize]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				r.reason = fmt.Sprintf("torn header at position %d", pos)
				break
			}
			return r, err
		}
		h := parseHeader(buf)
		size := h.TotalSize()
		if h.Magic != 2 || h.Length < minBatchLength || pos+size > r.fileSize {
			r.reason = fmt.Sprintf("bad or torn batch at position %d", pos)
			break
		}
		if int64(cap(buf)) < size {
			nb := make([]byte, size)
			copy(nb, buf[:HeaderSize])
			buf = nb
		}
		buf = buf[:size]
		if _, err := io.ReadFull(br, buf[HeaderSize:]); err != nil {
			return r, err
		}
		if !crcOK(buf) {
			r.reason = fmt.Sprintf("CRC mismatch at position %d", pos)
			break
		}
		if h.BaseOffset < r.st.next || h.LastOffsetDelta < 0 || h.lastOffset()-base > math.MaxUint32 {
			r.reason = fmt.Sprintf("batch at position %d has offsets %d..%d, expected from %d", pos, h.BaseOffset, h.lastOffset(), r.st.next)
			break
		}
		r.idx, r.tidx = r.st.add(base, h, pos, interval, r.idx, r.tidx,
			maxIdx-len(r.idx)/offsetEntrySize, maxTidx-len(r.tidx)/timeEntrySize)
		pos += size
	}
	return r, nil
}

// checkTail verifies a loaded segment cheaply: the batch at the last offset
// index entry must end at that entry's offset, and the headers after it must
// run to the end of the file. It returns the stats the segment implies.
func checkTail(f *os.File, base int64, idx, tidx []byte, size int64) (segStats, bool) {
	st := newStats(base)
	if size == 0 {
		return st, len(idx) == 0 && len(tidx) == 0
	}
	var buf [HeaderSize]byte
	h, err := readHeaderAt(f, 0, buf[:])
	if err != nil || h.BaseOffset < base {
		return st, false
	}
	st.firstTs, st.rollTs = h.FirstTimestamp, h.MaxTimestamp
	if n := len(tidx) / timeEntrySize; n > 0 {
		ts, rel := timeEntry(tidx, n-1)
		st.maxTs, st.maxTsOff, st.lastTidxTs = ts, base+int64(rel), ts
	}
	pos := int64(0)
	wantLast := int64(-1)
	if n := len(idx) / offsetEntrySize; n > 0 {
		rel, p := offsetEntry(idx, n-1)
		pos, wantLast = int64(p), base+int64(rel)
	}
	for first := true; pos < size; first = false {
		h, err := readHeaderAt(f, pos, buf[:])
		if err != nil || pos+h.TotalSize() > size || (first && wantLast >= 0 && h.lastOffset() != wantLast) {
			return st, false
		}
		if h.MaxTimestamp > st.maxTs {
			st.maxTs, st.maxTsOff = h.MaxTimestamp, h.lastOffset()
		}
		st.next = h.lastOffset() + 1
		pos += h.TotalSize()
	}
	st.size = size
	return st, true
}

func readIndexFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// writeIndexes replaces both index files of s with idx and tidx.
func writeIndexes(s *segment, idx, tidx []byte) error {
	if err := writeFileAtomic(s.idxPath, idx); err != nil {
		return err
	}
	return writeFileAtomic(s.tidxPath, tidx)
}

// writeIndex writes entries at off of the active segment's offset index
// (time index when timeIdx). Caller holds Log.wr.
func (s *segment) writeIndex(timeIdx bool, entries []byte, off int64) error {
	path := s.idxPath
	if timeIdx {
		path = s.tidxPath
	}
	f, err := s.indexFile(timeIdx)
	if err == nil {
		_, err = f.WriteAt(entries, off)
	}
	if err != nil {
		return storageErr("write", path, err)
	}
	return nil
}
