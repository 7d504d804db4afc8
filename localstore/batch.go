package localstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
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

	// maxDecompressed bounds what a codec may expand one batch to when
	// records are decoded for a timestamp lookup.
	maxDecompressed = 256 << 20
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
// batches, each with magic 2, a consistent length, a CRC-32C that holds, a record
// count that matches (for uncompressed batches), and a total size <= maxBatchBytes.
// It returns the headers of the batches. maxBatchBytes <= 0 means no limit.
func ValidateBatches(b []byte, maxBatchBytes int64) ([]BatchHeader, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no record batch", ErrCorruptBatch)
	}
	var hs []BatchHeader
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
		switch c := h.Compression(); {
		case c == 0:
			if err := checkRecords(batch[HeaderSize:], h.NumRecords); err != nil {
				return nil, fmt.Errorf("%w (batch at position %d)", err, pos)
			}
		case c > 4:
			return nil, fmt.Errorf("%w: unknown compression codec %d at position %d", ErrCorruptBatch, c, pos)
		}
		hs = append(hs, h)
		pos += int(size)
	}
	return hs, nil
}

// checkRecords parses n uncompressed records that must fill b exactly.
func checkRecords(b []byte, n int32) error {
	var i int32
	for ; len(b) > 0; i++ {
		if i >= n {
			return fmt.Errorf("%w: more than %d records", ErrCorruptBatch, n)
		}
		l, k := readVarint(b)
		if k <= 0 || l < 0 || int64(len(b)-k) < l {
			return fmt.Errorf("%w: record %d: bad length", ErrCorruptBatch, i)
		}
		rec := b[k : k+int(l)]
		b = b[k+int(l):]
		r, err := parseRecord(rec)
		if err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrInvalidRecord, i, err)
		}
		if r.offsetDelta != i {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalidRecord, i, r.offsetDelta)
		}
	}
	if i != n {
		return fmt.Errorf("%w: %d records, header says %d", ErrCorruptBatch, i, n)
	}
	return nil
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

// decoders holds reusable decompressors for decoding records; the zero
// value is ready. Not safe for concurrent use.
type decoders struct {
	gzip *gzip.Reader
	lz4  *lz4.Reader
	zstd *zstd.Decoder
}

func (d *decoders) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}

// batchRecords returns the uncompressed records section of the whole batch b.
func (d *decoders) batchRecords(b []byte, h BatchHeader) ([]byte, error) {
	body := b[HeaderSize:]
	var (
		out []byte
		err error
	)
	switch h.Compression() {
	case 0:
		return body, nil
	case 1:
		if d.gzip == nil {
			d.gzip, err = gzip.NewReader(bytes.NewReader(body))
		} else {
			err = d.gzip.Reset(bytes.NewReader(body))
		}
		if err == nil {
			out, err = readCapped(d.gzip)
		}
	case 2:
		out, err = xerial.Decode(body)
	case 3:
		if d.lz4 == nil {
			d.lz4 = lz4.NewReader(bytes.NewReader(body))
		} else {
			d.lz4.Reset(bytes.NewReader(body))
		}
		out, err = readCapped(d.lz4)
	case 4:
		if d.zstd == nil {
			d.zstd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecompressed))
		}
		if err == nil {
			out, err = d.zstd.DecodeAll(body, nil)
		}
	default:
		err = fmt.Errorf("unknown codec %d", h.Compression())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: batch at offset %d: decompress: %v", ErrCorruptBatch, h.BaseOffset, err)
	}
	return out, nil
}

func readCapped(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err == nil && len(out) > maxDecompressed {
		err = fmt.Errorf("more than %d bytes", maxDecompressed)
	}
	return out, err
}

// forEachRecord calls fn with the offset and timestamp of each record of the
// whole batch b, in order, until fn returns false.
func (d *decoders) forEachRecord(b []byte, h BatchHeader, fn func(offset, ts int64) bool) error {
	recs, err := d.batchRecords(b, h)
	if err != nil {
		return err
	}
	for i := int32(0); len(recs) > 0 && i < h.NumRecords; i++ {
		l, k := readVarint(recs)
		if k <= 0 || l < 0 || int64(len(recs)-k) < l {
			return fmt.Errorf("%w: batch at offset %d: record %d: bad length", ErrCorruptBatch, h.BaseOffset, i)
		}
		r, err := parseRecord(recs[k : k+int(l)])
		if err != nil {
			return fmt.Errorf("%w: batch at offset %d: record %d: %v", ErrCorruptBatch, h.BaseOffset, i, err)
		}
		recs = recs[k+int(l):]
		ts := h.FirstTimestamp + r.timestampDelta
		if h.logAppendTime() {
			ts = h.MaxTimestamp
		}
		if !fn(h.BaseOffset+int64(r.offsetDelta), ts) {
			return nil
		}
	}
	return nil
}
