package localstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Byte positions inside a v2 record batch header (KIP-98).
const (
	batchOffBaseOffset      = 0
	batchOffLength          = 8
	batchOffLeaderEpoch     = 12
	batchOffMagic           = 16
	batchOffCRC             = 17
	batchOffAttributes      = 21 // the CRC covers from here to the end of the batch
	batchOffLastOffsetDelta = 23
	batchOffFirstTimestamp  = 27
	batchOffMaxTimestamp    = 35
	batchOffProducerID      = 43
	batchOffProducerEpoch   = 51
	batchOffBaseSequence    = 53
	batchOffNumRecords      = 57

	batchLogOverhead  = 12 // baseOffset + length: the bytes not counted by Length
	minBatchLength    = HeaderSize - batchLogOverhead
	attrTimestampType = 0x08 // attributes bit 3: LogAppendTime
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ParseBatchHeader decodes the first 61 bytes of b.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < HeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes, a batch header needs %d", ErrCorruptBatch, len(b), HeaderSize)
	}
	return parseHeader(b), nil
}

// parseHeader decodes a header from b, which holds at least HeaderSize bytes.
func parseHeader(b []byte) BatchHeader {
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:           int64(be.Uint64(b[batchOffBaseOffset:])),
		Length:               int32(be.Uint32(b[batchOffLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[batchOffLeaderEpoch:])),
		Magic:                int8(b[batchOffMagic]),
		CRC:                  be.Uint32(b[batchOffCRC:]),
		Attributes:           int16(be.Uint16(b[batchOffAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[batchOffLastOffsetDelta:])),
		FirstTimestamp:       int64(be.Uint64(b[batchOffFirstTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[batchOffMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[batchOffProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[batchOffProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[batchOffBaseSequence:])),
		NumRecords:           int32(be.Uint32(b[batchOffNumRecords:])),
	}
}

// lastOffset is the offset of the batch's last record.
func (h BatchHeader) lastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// logAppendTime reports the timestamp-type bit.
func (h BatchHeader) logAppendTime() bool { return h.Attributes&attrTimestampType != 0 }

// lastSequence is the sequence of the batch's last record; sequences wrap
// from MaxInt32 to 0.
func (h BatchHeader) lastSequence() int32 {
	return addSeq(h.BaseSequence, h.LastOffsetDelta)
}

func addSeq(seq, n int32) int32 {
	if int64(seq)+int64(n) > math.MaxInt32 {
		return int32(int64(seq) + int64(n) - math.MaxInt32 - 1)
	}
	return seq + n
}

// batchCRC computes the CRC-32C of a whole batch held in b.
func batchCRC(b []byte) uint32 { return crc32.Checksum(b[batchOffAttributes:], castagnoli) }

// crcOK reports whether the stored CRC of the whole batch b holds.
func crcOK(b []byte) bool {
	return binary.BigEndian.Uint32(b[batchOffCRC:]) == batchCRC(b)
}

// ValidateBatches checks a produce request's records field: one or more whole v2
// batches, each with magic 2, a consistent length, a CRC-32C that holds, a known
// codec, and a total size <= maxBatchBytes; and, as Kafka's LogValidator does,
// each batch's records, decompressed as a stream if the batch is compressed:
// exactly the header's count of well-formed records, offset deltas 0, 1, 2, ...
// and nothing after the last (compress.go says what bounds the decompression).
// It returns the headers of the batches. maxBatchBytes <= 0 means no limit.
func ValidateBatches(b []byte, maxBatchBytes int64) ([]BatchHeader, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no record batch", ErrCorruptBatch)
	}
	var hs []BatchHeader
	var dec decoders
	defer dec.close()
	for pos := 0; pos < len(b); {
		rest := b[pos:]
		if len(rest) <= batchOffMagic {
			return nil, fmt.Errorf("%w: %d trailing bytes at position %d", ErrCorruptBatch, len(rest), pos)
		}
		if m := int8(rest[batchOffMagic]); m != 2 {
			if m == 0 || m == 1 {
				return nil, fmt.Errorf("%w: magic %d at position %d", ErrUnsupportedMagic, m, pos)
			}
			return nil, fmt.Errorf("%w: magic %d at position %d", ErrCorruptBatch, m, pos)
		}
		if len(rest) < HeaderSize {
			return nil, fmt.Errorf("%w: truncated header at position %d (%d bytes)", ErrCorruptBatch, pos, len(rest))
		}
		h := parseHeader(rest)
		if h.Length < minBatchLength {
			return nil, fmt.Errorf("%w: length %d at position %d", ErrCorruptBatch, h.Length, pos)
		}
		size := h.TotalSize()
		if maxBatchBytes > 0 && size > maxBatchBytes {
			return nil, fmt.Errorf("%w: %d bytes at position %d, limit %d", ErrBatchTooLarge, size, pos, maxBatchBytes)
		}
		if size > int64(len(rest)) {
			return nil, fmt.Errorf("%w: batch at position %d is %d bytes, only %d remain", ErrCorruptBatch, pos, size, len(rest))
		}
		batch := rest[:size]
		if !crcOK(batch) {
			return nil, fmt.Errorf("%w: CRC mismatch at position %d", ErrCorruptBatch, pos)
		}
		if h.NumRecords <= 0 {
			return nil, fmt.Errorf("%w: %d records at position %d", ErrInvalidRecord, h.NumRecords, pos)
		}
		if h.LastOffsetDelta != h.NumRecords-1 {
			return nil, fmt.Errorf("%w: lastOffsetDelta %d with %d records at position %d", ErrInvalidRecord, h.LastOffsetDelta, h.NumRecords, pos)
		}
		if c := h.Compression(); c > 4 {
			return nil, fmt.Errorf("%w: unknown compression codec %d at position %d", ErrCorruptBatch, c, pos)
		}
		if err := dec.checkBatch(batch, h); err != nil {
			return nil, fmt.Errorf("%w (batch at position %d)", err, pos)
		}
		hs = append(hs, h)
		pos += int(size)
	}
	return hs, nil
}

// record is what a timestamp lookup needs of a decoded record.
type record struct {
	timestampDelta int64
	offsetDelta    int32
}

// parseRecord decodes one record body (after its length) and checks that its
// fields fill it exactly.
func parseRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 {
		return r, fmt.Errorf("empty record")
	}
	b = b[1:] // attributes, unused in v2
	ts, k := binary.Varint(b)
	if k <= 0 {
		return r, fmt.Errorf("bad timestamp delta")
	}
	r.timestampDelta = ts
	b = b[k:]
	od, k := readVarint(b)
	if k <= 0 || od < 0 || od > math.MaxInt32 {
		return r, fmt.Errorf("bad offset delta")
	}
	r.offsetDelta = int32(od)
	b = b[k:]
	for _, what := range [2]string{"key", "value"} {
		var err error
		if b, err = skipBytes(b, true); err != nil {
			return r, fmt.Errorf("%s: %v", what, err)
		}
	}
	nh, k := readVarint(b)
	if k <= 0 || nh < 0 {
		return r, fmt.Errorf("bad header count")
	}
	b = b[k:]
	for j := int64(0); j < nh; j++ {
		var err error
		if b, err = skipBytes(b, false); err != nil {
			return r, fmt.Errorf("header %d key: %v", j, err)
		}
		if b, err = skipBytes(b, true); err != nil {
			return r, fmt.Errorf("header %d value: %v", j, err)
		}
	}
	if len(b) != 0 {
		return r, fmt.Errorf("%d bytes after the headers", len(b))
	}
	return r, nil
}

// skipBytes skips a varint-length-prefixed byte string; -1 is null.
func skipBytes(b []byte, nullable bool) ([]byte, error) {
	l, k := readVarint(b)
	if k <= 0 || l < -1 || (l == -1 && !nullable) {
		return nil, fmt.Errorf("bad length")
	}
	b = b[k:]
	if l > int64(len(b)) {
		return nil, fmt.Errorf("length %d, %d bytes remain", l, len(b))
	}
	if l > 0 {
		b = b[l:]
	}
	return b, nil
}

// readVarint decodes a zig-zag varint that must fit in an int32, as the
// record format's lengths do. k <= 0 on error.
func readVarint(b []byte) (int64, int) {
	v, k := binary.Varint(b)
	if k <= 0 || k > 5 || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, -1
	}
	return v, k
}
