package localstore

// The cleaner's record filter for segments that are not the log's own: the
// remote tier's (package tier, compact.go). The same key map, the same rule
// for a record (keepRule) and the same batch rewrite (cleanBatch) as Clean,
// over segment files the caller downloaded, with the log's own records as
// the newest values of their keys.

import (
	"io"
	"math"
	"os"
	"time"
)

// Compactor compacts segment files against a key map of the log's dirty
// part: the files given to AddKeys (a remote tier's dirty range, in offset
// order) and then the log's own records (AddLogKeys). Not safe for
// concurrent use; Close releases its decoders.
type Compactor struct {
	l      *Log
	m      *offsetMap
	mapEnd int64 // records at or above are kept: the map stopped there
	full   bool
	lastOf map[int64]int64
	ck     *cleanCheckpoint
	nowMs  int64
	delMs  int64
	dec    decoders
}

// NewCompactor returns a compactor with a key map of at most bufferBytes
// (log.cleaner.dedupe.buffer.size; <= 0: the default) sized for about
// records records. Tombstones go once the log's cleaner checkpoint says
// they have been clean for deleteRetentionMs at now; the last batch of each
// of the log's idempotent producers is kept, emptied, as Clean keeps it.
func (l *Log) NewCompactor(bufferBytes, records int64, now time.Time, deleteRetentionMs int64) *Compactor {
	if bufferBytes <= 0 {
		bufferBytes = DefaultDedupeBufferBytes
	}
	lastOf, _ := l.producerLastOffsets()
	return &Compactor{
		l: l, m: newOffsetMap(offsetMapSlots(bufferBytes, max(records, 1))), mapEnd: math.MaxInt64,
		lastOf: lastOf, ck: l.checkpoint(), nowMs: now.UnixMilli(), delMs: deleteRetentionMs,
	}
}

// Close releases the compactor's decoders.
func (c *Compactor) Close() { c.dec.close() }

// MapEnd is the offset the key map stopped at when it filled
// (math.MaxInt64 if it did not): records from it on are kept.
func (c *Compactor) MapEnd() int64 { return c.mapEnd }

// AddKeys maps the keys of f's records (size bytes of whole batches) at
// offsets from from on. Files are added in offset order, before the log's
// own keys. It reports false once the map is full: nothing more is mapped.
func (c *Compactor) AddKeys(f *os.File, size, from int64) (bool, error) {
	if c.full {
		return false, nil
	}
	full, err := mapKeys(&c.dec, c.m, f, 0, size, from, math.MaxInt64)
	if err != nil {
		return false, err
	}
	if full >= 0 {
		c.full, c.mapEnd = true, full
	}
	return !c.full, nil
}

// AddLogKeys maps the keys of the log's own records at offsets in [from,
// upTo): their values are newer than any remote one. It reports false once
// the map is full.
func (c *Compactor) AddLogKeys(from, upTo int64) (bool, error) {
	if c.full {
		return false, nil
	}
	vs, err := c.l.views()
	if err != nil {
		return false, err
	}
	defer releaseViews(vs)
	for _, v := range vs {
		if v.st.next <= from || v.s.base >= upTo {
			continue
		}
		pos := int64(0)
		if from > v.s.base {
			pos = lookupOffset(v.idx, uint32(from-v.s.base))
		}
		full, err := mapKeys(&c.dec, c.m, v.s.f, pos, v.st.size, from, upTo)
		if err != nil {
			return false, err
		}
		if full >= 0 {
			c.full, c.mapEnd = true, full
			return false, nil
		}
	}
	return true, nil
}

// Filter writes to w f's batches (size bytes) with the records a later
// record of their key supersedes removed, as Clean removes them: a batch
// keeps its header fields and codec, an emptied batch goes (but the last
// one of an idempotent producer), a control batch stays. It returns the
// records removed and the bytes written.
func (c *Compactor) Filter(f *os.File, size int64, w io.Writer) (removed, written int64, err error) {
	keep := keepRule(c.m, c.mapEnd, func(off int64) bool { return c.ck.tombstoneExpired(off, c.nowMs, c.delMs) })
	all := func(BatchHeader) bool { return true }
	err = forEachBatch(f, 0, size, all, func(_ int64, h BatchHeader, b []byte) (bool, error) {
		nb, n, err := cleanBatch(&c.dec, b, h, keep, c.lastOf)
		if err != nil {
			return false, err
		}
		removed += n
		if nb == nil {
			return true, nil
		}
		k, err := w.Write(nb)
		written += int64(k)
		return err == nil, err
	})
	return removed, written, err
}
