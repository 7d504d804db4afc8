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
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	return MakeKeyed(keys, ts, tag)
}

// MakeKeyed is Make with one record per key, in order.
func MakeKeyed(keys []string, ts int64, tag string) []byte {
	n := len(keys)
	var recs []byte
	for i := range n {
		r := kmsg.Record{
			TimestampDelta64: int64(i),
			OffsetDelta:      int32(i),
			Key:              []byte(keys[i]),
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

// ProducePrefix is the start of a size-prefixed Produce v7 request frame
// (acks 1) to partition 0 of topic whose one record set is recordsLen bytes
// (at least 17): the size prefix, the header, the body, the record set's
// length and the first 17 bytes of the set, a v2 batch header that claims
// the whole set. The caller sends recordsLen-17 more bytes; a broker that
// reads the whole frame finds one batch larger than message.max.bytes and
// answers MESSAGE_TOO_LARGE, writing nothing.
func ProducePrefix(clientID, topic string, corr int32, recordsLen int) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(7)
	req.Acks = 1
	req.TimeoutMillis = 30000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = []byte{}
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	b := make([]byte, 4, 128)
	b = binary.BigEndian.AppendUint16(b, 0) // Produce
	b = binary.BigEndian.AppendUint16(b, 7)
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	b = req.AppendTo(b)
	b = b[:len(b)-4] // the empty record set's length: the records are the last field
	b = binary.BigEndian.AppendUint32(b, uint32(recordsLen))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4+recordsLen))
	var batch [17]byte // baseOffset, batchLength, partitionLeaderEpoch, magic
	binary.BigEndian.PutUint32(batch[8:], uint32(recordsLen-12))
	batch[16] = 2
	return append(b, batch[:]...)
}
