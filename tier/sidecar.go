package tier

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"sort"

	"github.com/stratalog/strata/localstore"
)

// Sidecar format (the .idx object beside each .log), version 3. Big-endian,
// fixed-width, so a reader can check any entry without decoding the rest:
//
//	magic        8  "STRATIDX"
//	version      u16 (3; 1 and 2 are still read)
//	flags        u16 (0)
//	topic        u16 length | bytes
//	partition    i32
//	topic id     [16]byte  version 2 only: the topic's ID (zero: unknown), so
//	                       Recover never attaches a deleted topic's segments
//	                       to a new topic of the same name
//	leader epoch i32   version 3 only: the leader epoch of the broker that
//	                       uploaded it (a cluster keeps, of two segments
//	                       covering the same offsets, the higher epoch's;
//	                       versions 1 and 2 read as -1, below every epoch)
//	base offset  i64   first offset of the segment
//	end offset   i64   last offset of the segment (inclusive)
//	size         i64   bytes of the .log object
//	first ts     i64   first timestamp of the first batch (-1: none)
//	max ts       i64   largest batch max timestamp (-1: none)
//	log crc32c   u32   CRC-32C of the whole .log object
//	chunk bytes  i64   remote.chunk.bytes when the chunk table was cut
//	nbatches     u32
//	  batch      pos u64 | base offset - segment base u32 | last offset - segment base u32 | max ts i64
//	nchunks      u32
//	  chunk      first batch u32 | batch count u32 | pos u64 | length u64 | crc32c u32
//	crc32c       u32   of every byte before it
//
// Chunks are runs of whole batches of at most chunk bytes, at least one batch
// each, covering the object exactly; a chunk's CRC-32C is checked when it is
// fetched, so a corrupt chunk is never served.
const (
	sidecarMagic   = "STRATIDX"
	sidecarVersion = 3
	// sidecarV1 lacks the topic ID, sidecarV2 the leader epoch.
	sidecarV1      = 1
	sidecarV2      = 2
	batchEntrySize = 24
	chunkEntrySize = 28
	sidecarFixed   = 8 + 2 + 2 + 2 + 4 + 8*5 + 4 + 8 + 4 + 4 + 4 // without topic, batches, chunks
)

// errBadSidecar marks a sidecar that does not decode or does not match its
// index entry.
var errBadSidecar = errors.New("tier: bad sidecar")

// sidecar is a remote segment's batch list and chunk table.
type sidecar struct {
	Topic          string
	Partition      int32
	TopicID        [16]byte // zero: unknown (a version 1 sidecar)
	LeaderEpoch    int32    // of the uploading leader; -1: unknown (versions 1 and 2)
	BaseOffset     int64
	EndOffset      int64
	Size           int64
	FirstTimestamp int64
	MaxTimestamp   int64
	LogCRC         uint32
	ChunkBytes     int64
	Batches        []batchEntry
	Chunks         []chunkEntry
}

type batchEntry struct {
	Pos          int64
	BaseOffset   int64
	LastOffset   int64
	MaxTimestamp int64
}

type chunkEntry struct {
	FirstBatch int // index into Batches
	NumBatches int
	Pos, Len   int64
	CRC        uint32
}

// memSize approximates the memory a decoded sidecar holds, for the LRU bound.
func (s *sidecar) memSize() int64 {
	return int64(len(s.Batches))*32 + int64(len(s.Chunks))*40 + int64(len(s.Topic)) + 128
}

// batchEnd is the position one past batch i.
func (s *sidecar) batchEnd(i int) int64 {
	if i+1 < len(s.Batches) {
		return s.Batches[i+1].Pos
	}
	return s.Size
}

// findBatch returns the index of the first batch whose last offset is >=
// offset, or len(Batches).
func (s *sidecar) findBatch(offset int64) int {
	return sort.Search(len(s.Batches), func(i int) bool { return s.Batches[i].LastOffset >= offset })
}

// chunkOf returns the index of the chunk holding batch i.
func (s *sidecar) chunkOf(i int) int {
	return sort.Search(len(s.Chunks), func(c int) bool {
		ch := s.Chunks[c]
		return ch.FirstBatch+ch.NumBatches > i
	})
}

// buildSidecar reads a closed segment of size bytes from r once: it checks the
// batch headers, lists the batches, cuts the chunk table and computes the
// CRC-32C of the whole segment and of each chunk.
func buildSidecar(r io.Reader, topic string, partition int32, base, end, size, chunkBytes int64) (*sidecar, error) {
	if chunkBytes < 1 {
		return nil, fmt.Errorf("tier: chunk bytes %d", chunkBytes)
	}
	sc := &sidecar{
		Topic: topic, Partition: partition, BaseOffset: base, EndOffset: end, Size: size,
		FirstTimestamp: -1, MaxTimestamp: -1, ChunkBytes: chunkBytes,
	}
	br := bufio.NewReaderSize(io.LimitReader(r, size), 1<<20)
	whole := crc32.New(castagnoli)
	var (
		chunk    hash.Hash32
		cur      chunkEntry
		hdr      [localstore.HeaderSize]byte
		pos      int64
		lastSeen = base - 1
	)
	flush := func() {
		if cur.NumBatches > 0 {
			cur.CRC = chunk.Sum32()
			sc.Chunks = append(sc.Chunks, cur)
		}
	}
	for pos < size {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, fmt.Errorf("tier: segment %d: batch header at %d: %w", base, pos, err)
		}
		h, err := localstore.ParseBatchHeader(hdr[:])
		if err != nil {
			return nil, err
		}
		total := h.TotalSize()
		last := h.BaseOffset + int64(h.LastOffsetDelta)
		switch {
		case h.Magic != 2:
			return nil, fmt.Errorf("%w: segment %d: magic %d at %d", localstore.ErrCorruptBatch, base, h.Magic, pos)
		case total < localstore.HeaderSize || pos+total > size:
			return nil, fmt.Errorf("%w: segment %d: batch at %d of length %d runs past %d", localstore.ErrCorruptBatch, base, pos, h.Length, size)
		case h.BaseOffset <= lastSeen || last < h.BaseOffset || last > end:
			return nil, fmt.Errorf("%w: segment %d: batch at %d holds offsets %d..%d after %d (end %d)",
				localstore.ErrCorruptBatch, base, pos, h.BaseOffset, last, lastSeen, end)
		case last-base > math.MaxUint32:
			return nil, fmt.Errorf("%w: segment %d: offset %d too far from the base", localstore.ErrCorruptBatch, base, last)
		}
		lastSeen = last
		if cur.NumBatches > 0 && cur.Len+total > chunkBytes {
			flush()
			cur = chunkEntry{}
		}
		if cur.NumBatches == 0 {
			cur = chunkEntry{FirstBatch: len(sc.Batches), Pos: pos}
			chunk = crc32.New(castagnoli)
		}
		cur.NumBatches++
		cur.Len += total
		sc.Batches = append(sc.Batches, batchEntry{Pos: pos, BaseOffset: h.BaseOffset, LastOffset: last, MaxTimestamp: h.MaxTimestamp})
		if sc.FirstTimestamp < 0 {
			sc.FirstTimestamp = h.FirstTimestamp
		}
		sc.MaxTimestamp = max(sc.MaxTimestamp, h.MaxTimestamp)
		w := io.MultiWriter(whole, chunk)
		w.Write(hdr[:])
		if _, err := io.CopyN(w, br, total-localstore.HeaderSize); err != nil {
			return nil, fmt.Errorf("tier: segment %d: batch at %d: %w", base, pos, err)
		}
		pos += total
	}
	flush()
	sc.LogCRC = whole.Sum32()
	return sc, nil
}

// encode serialises the sidecar.
func (s *sidecar) encode() []byte {
	be := binary.BigEndian
	b := make([]byte, 0, sidecarFixed+16+4+len(s.Topic)+len(s.Batches)*batchEntrySize+len(s.Chunks)*chunkEntrySize)
	b = append(b, sidecarMagic...)
	b = be.AppendUint16(b, sidecarVersion)
	b = be.AppendUint16(b, 0)
	b = be.AppendUint16(b, uint16(len(s.Topic)))
	b = append(b, s.Topic...)
	b = be.AppendUint32(b, uint32(s.Partition))
	b = append(b, s.TopicID[:]...)
	b = be.AppendUint32(b, uint32(s.LeaderEpoch))
	for _, v := range []int64{s.BaseOffset, s.EndOffset, s.Size, s.FirstTimestamp, s.MaxTimestamp} {
		b = be.AppendUint64(b, uint64(v))
	}
	b = be.AppendUint32(b, s.LogCRC)
	b = be.AppendUint64(b, uint64(s.ChunkBytes))
	b = be.AppendUint32(b, uint32(len(s.Batches)))
	for _, e := range s.Batches {
		b = be.AppendUint64(b, uint64(e.Pos))
		b = be.AppendUint32(b, uint32(e.BaseOffset-s.BaseOffset))
		b = be.AppendUint32(b, uint32(e.LastOffset-s.BaseOffset))
		b = be.AppendUint64(b, uint64(e.MaxTimestamp))
	}
	b = be.AppendUint32(b, uint32(len(s.Chunks)))
	for _, c := range s.Chunks {
		b = be.AppendUint32(b, uint32(c.FirstBatch))
		b = be.AppendUint32(b, uint32(c.NumBatches))
		b = be.AppendUint64(b, uint64(c.Pos))
		b = be.AppendUint64(b, uint64(c.Len))
		b = be.AppendUint32(b, c.CRC)
	}
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decoder reads big-endian fields, remembering the first shortfall.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", errBadSidecar)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// decodeSidecar parses and checks a sidecar: checksum, version, and that
// the batch list and chunk table are consistent with each other and the size.
func decodeSidecar(b []byte) (*sidecar, error) {
	if len(b) < sidecarFixed {
		return nil, fmt.Errorf("%w: %d bytes", errBadSidecar, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadSidecar)
	}
	d := &decoder{b: body}
	if string(d.take(len(sidecarMagic))) != sidecarMagic {
		return nil, fmt.Errorf("%w: bad magic", errBadSidecar)
	}
	version := d.u16()
	if version != sidecarVersion && version != sidecarV2 && version != sidecarV1 {
		return nil, fmt.Errorf("%w: unknown version %d", errBadSidecar, version)
	}
	d.u16() // flags
	s := &sidecar{}
	s.Topic = string(d.take(int(d.u16())))
	s.Partition = int32(d.u32())
	if version >= 2 {
		copy(s.TopicID[:], d.take(16))
	}
	s.LeaderEpoch = -1
	if version >= 3 {
		s.LeaderEpoch = int32(d.u32())
	}
	s.BaseOffset = int64(d.u64())
	s.EndOffset = int64(d.u64())
	s.Size = int64(d.u64())
	s.FirstTimestamp = int64(d.u64())
	s.MaxTimestamp = int64(d.u64())
	s.LogCRC = d.u32()
	s.ChunkBytes = int64(d.u64())
	nb := int(d.u32())
	if d.err == nil && nb > len(d.b)/batchEntrySize {
		return nil, fmt.Errorf("%w: %d batches in %d bytes", errBadSidecar, nb, len(d.b))
	}
	s.Batches = make([]batchEntry, 0, nb)
	for range nb {
		e := batchEntry{Pos: int64(d.u64())}
		e.BaseOffset = s.BaseOffset + int64(d.u32())
		e.LastOffset = s.BaseOffset + int64(d.u32())
		e.MaxTimestamp = int64(d.u64())
		s.Batches = append(s.Batches, e)
	}
	nc := int(d.u32())
	if d.err == nil && nc > len(d.b)/chunkEntrySize {
		return nil, fmt.Errorf("%w: %d chunks in %d bytes", errBadSidecar, nc, len(d.b))
	}
	s.Chunks = make([]chunkEntry, 0, nc)
	for range nc {
		c := chunkEntry{FirstBatch: int(d.u32()), NumBatches: int(d.u32())}
		c.Pos, c.Len, c.CRC = int64(d.u64()), int64(d.u64()), d.u32()
		s.Chunks = append(s.Chunks, c)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadSidecar, len(d.b))
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// check verifies the batch list and chunk table describe the object exactly.
func (s *sidecar) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: segment %d: %s", errBadSidecar, s.BaseOffset, fmt.Sprintf(format, args...))
	}
	if s.EndOffset < s.BaseOffset || s.Size < 0 {
		return bad("offsets %d..%d, size %d", s.BaseOffset, s.EndOffset, s.Size)
	}
	prevLast, prevPos := s.BaseOffset-1, int64(-1)
	for i, e := range s.Batches {
		if e.Pos <= prevPos || e.Pos-prevPos < localstore.HeaderSize && i > 0 || e.BaseOffset <= prevLast ||
			e.LastOffset < e.BaseOffset || e.LastOffset > s.EndOffset || e.Pos >= s.Size || (i == 0 && e.Pos != 0) {
			return bad("batch %d out of order", i)
		}
		prevLast, prevPos = e.LastOffset, e.Pos
	}
	if len(s.Batches) == 0 && s.Size != 0 {
		return bad("no batches in %d bytes", s.Size)
	}
	next, pos := 0, int64(0)
	for i, c := range s.Chunks {
		if c.FirstBatch != next || c.NumBatches < 1 || c.FirstBatch+c.NumBatches > len(s.Batches) ||
			c.Pos != pos || c.Pos != s.Batches[c.FirstBatch].Pos ||
			c.Len != s.batchEnd(c.FirstBatch+c.NumBatches-1)-c.Pos {
			return bad("chunk %d does not follow its batches", i)
		}
		next, pos = c.FirstBatch+c.NumBatches, c.Pos+c.Len
	}
	if next != len(s.Batches) || pos != s.Size {
		return bad("chunks cover %d of %d batches, %d of %d bytes", next, len(s.Batches), pos, s.Size)
	}
	return nil
}
