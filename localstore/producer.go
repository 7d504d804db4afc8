package localstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"slices"
)

// producerBatchesKept is how many recent batches per producer are remembered
// to answer retries (Kafka's max.in.flight.requests.per.connection limit).
const producerBatchesKept = 5

// batchMeta is what the idempotence check remembers of one batch.
type batchMeta struct {
	firstSeq, lastSeq int32
	firstOff, lastOff int64
	ts                int64
}

// producerEntry is one producer id's state.
type producerEntry struct {
	epoch   int16
	n       int
	batches [producerBatchesKept]batchMeta // oldest first
}

func (e *producerEntry) push(m batchMeta) {
	if e.n == producerBatchesKept {
		copy(e.batches[:], e.batches[1:])
		e.n--
	}
	e.batches[e.n] = m
	e.n++
}

// duplicate returns the remembered batch with the same sequence range.
func (e *producerEntry) duplicate(firstSeq, lastSeq int32) (batchMeta, bool) {
	for _, b := range e.batches[:e.n] {
		if b.firstSeq == firstSeq && b.lastSeq == lastSeq {
			return b, true
		}
	}
	return batchMeta{}, false
}

// producerView is the state a check compares against: a remembered entry or
// the effect of an earlier batch of the same append.
type producerView struct {
	known   bool
	epoch   int16
	hasLast bool
	lastSeq int32
}

func (e *producerEntry) view() producerView {
	if e == nil {
		return producerView{}
	}
	v := producerView{known: true, epoch: e.epoch, hasLast: e.n > 0}
	if v.hasLast {
		v.lastSeq = e.batches[e.n-1].lastSeq
	}
	return v
}

// checkSequence applies Kafka's idempotence rules to a batch of producer
// epoch/sequences against v.
func checkSequence(v producerView, pid int64, epoch int16, firstSeq int32) error {
	switch {
	case !v.known:
		return nil // unknown (or expired) producer: any sequence
	case epoch < v.epoch:
		return fmt.Errorf("%w: producer %d epoch %d, current epoch %d", ErrInvalidProducerEpoch, pid, epoch, v.epoch)
	case epoch > v.epoch:
		if firstSeq != 0 {
			return fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d, want 0", ErrOutOfOrderSequence, pid, epoch, firstSeq)
		}
		return nil
	case !v.hasLast:
		return nil
	}
	if want := addSeq(v.lastSeq, 1); firstSeq != want {
		return fmt.Errorf("%w: producer %d epoch %d sequence %d, expected %d", ErrOutOfOrderSequence, pid, epoch, firstSeq, want)
	}
	return nil
}

// producerState maps producer id to its state. Guarded by Log.wr.
type producerState map[int64]*producerEntry

// apply records a written batch.
func (ps producerState) apply(h BatchHeader) {
	if h.ProducerID < 0 || h.Control() {
		return
	}
	e := ps[h.ProducerID]
	if e == nil {
		e = &producerEntry{epoch: h.ProducerEpoch}
		ps[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.epoch {
		*e = producerEntry{epoch: h.ProducerEpoch}
	}
	e.push(batchMeta{
		firstSeq: h.BaseSequence, lastSeq: h.lastSequence(),
		firstOff: h.BaseOffset, lastOff: h.lastOffset(), ts: h.MaxTimestamp,
	})
}

func (ps producerState) encode() []byte {
	ids := make([]int64, 0, len(ps))
	for id := range ps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b := make([]byte, snapshotHeaderSize, snapshotHeaderSize+4+len(ids)*(11+producerBatchesKept*snapshotEntrySize))
	be := binary.BigEndian
	b = be.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := ps[id]
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(e.epoch))
		b = append(b, byte(e.n))
		for _, m := range e.batches[:e.n] {
			b = be.AppendUint32(b, uint32(m.firstSeq))
			b = be.AppendUint32(b, uint32(m.lastSeq))
			b = be.AppendUint64(b, uint64(m.firstOff))
			b = be.AppendUint64(b, uint64(m.lastOff))
			b = be.AppendUint64(b, uint64(m.ts))
		}
	}
	be.PutUint32(b[0:], snapshotMagic)
	be.PutUint16(b[4:], snapshotVersion)
	be.PutUint32(b[6:], crc32.Checksum(b[snapshotHeaderSize:], castagnoli))
	return b
}

var errBadSnapshot = errors.New("localstore: bad producer snapshot")

func decodeProducerState(b []byte) (producerState, error) {
	be := binary.BigEndian
	if len(b) < snapshotHeaderSize+4 || be.Uint32(b) != snapshotMagic || be.Uint16(b[4:]) != snapshotVersion ||
		be.Uint32(b[6:]) != crc32.Checksum(b[snapshotHeaderSize:], castagnoli) {
		return nil, errBadSnapshot
	}
	b = b[snapshotHeaderSize:]
	count := be.Uint32(b)
	b = b[4:]
	ps := make(producerState, min(count, math.MaxUint16))
	for i := uint32(0); i < count; i++ {
		if len(b) < 11 {
			return nil, errBadSnapshot
		}
		id, epoch, n := int64(be.Uint64(b)), int16(be.Uint16(b[8:])), int(b[10])
		b = b[11:]
		if n > producerBatchesKept || len(b) < n*snapshotEntrySize {
			return nil, errBadSnapshot
		}
		e := &producerEntry{epoch: epoch, n: n}
		for j := 0; j < n; j++ {
			e.batches[j] = batchMeta{
				firstSeq: int32(be.Uint32(b)), lastSeq: int32(be.Uint32(b[4:])),
				firstOff: int64(be.Uint64(b[8:])), lastOff: int64(be.Uint64(b[16:])), ts: int64(be.Uint64(b[24:])),
			}
			b = b[snapshotEntrySize:]
		}
		ps[id] = e
	}
	if len(b) != 0 {
		return nil, errBadSnapshot
	}
	return ps, nil
}

// writeSnapshot persists ps as the state at offset off and keeps only the
// newest snapshotsKept snapshots.
func writeSnapshot(dir string, off int64, ps producerState) error {
	if err := writeFileAtomic(snapshotPath(dir, off), ps.encode()); err != nil {
		return err
	}
	offs, err := listSnapshots(dir)
	if err != nil {
		return err
	}
	for len(offs) > snapshotsKept {
		os.Remove(snapshotPath(dir, offs[0]))
		offs = offs[1:]
	}
	return nil
}

// listSnapshots returns the offsets of the snapshot files in dir, ascending.
func listSnapshots(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var offs []int64
	for _, e := range ents {
		if off, suf, ok := parseOffsetName(e.Name()); ok && suf == snapshotSuffix {
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	return offs, nil
}
