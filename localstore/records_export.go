package localstore

import "fmt"

// ForEachRecord calls fn with the offset and timestamp of each record of the
// whole v2 batch b (header included), in order, until fn returns false. It
// checks the batch's CRC and decompresses as needed. The tiering manager uses
// it to find a timestamp inside a batch read back from the object store; it is
// the same decoder as Log.OffsetForTimestamp.
func ForEachRecord(b []byte, fn func(offset, timestamp int64) bool) error {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return err
	}
	if h.Length < minBatchLength || h.TotalSize() > int64(len(b)) {
		return fmt.Errorf("%w: batch at offset %d: length %d, %d bytes given", ErrCorruptBatch, h.BaseOffset, h.Length, len(b))
	}
	b = b[:h.TotalSize()]
	if !crcOK(b) {
		return fmt.Errorf("%w: batch at offset %d: CRC mismatch", ErrCorruptBatch, h.BaseOffset)
	}
	var d decoders
	defer d.close()
	return d.forEachRecord(b, h, fn)
}
