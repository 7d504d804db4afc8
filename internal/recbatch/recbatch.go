// Package recbatch builds v2 record batches for tests: n records with keys
// and values that name their batch, consecutive timestamps and a real CRC-32C.
package recbatch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// headerSize is the size of a v2 record batch header.
const headerSize = 61

// Make encodes an uncompressed v2 record batch of n records (base offset 0,
// which a log overwrites) with timestamps ts, ts+1, ... and values tagged tag.
func Make(n int, ts int64, tag string) []byte {
	var recs []byte
	for i := range n {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              fmt.Appendf(nil, "k%d", i),
			Value:            bytes.Repeat(fmt.Appendf(nil, "%s-%d|", tag, i), 8),
		}
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - 1) // the zero Length took one byte
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: ts, MaxTimestamp: ts + int64(n-1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs,
	}
	b.Length = int32(headerSize - 12 + len(recs))
	raw := b.AppendTo(nil)
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(raw[17:], crc)
	return raw
}
