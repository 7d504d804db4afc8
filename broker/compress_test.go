package broker

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// compressedBatch builds a v2 batch claiming n records around body, the
// records section compressed with codec, with a CRC that holds.
func compressedBatch(codec int16, n int32, body []byte) []byte {
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: codec, LastOffsetDelta: n - 1,
		FirstTimestamp: now, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: n, Records: body,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// recordsSection encodes records with the given offset deltas.
func recordsSection(deltas ...int32) []byte {
	var out []byte
	for _, d := range deltas {
		r := kmsg.Record{OffsetDelta: d, Value: []byte("value-" + strconv.Itoa(int(d)))}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		out = append(out, r.AppendTo(nil)...)
	}
	return out
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func lz4ed(b []byte) []byte {
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestCompressedBatchesAreValidated: in one produce request, a partition
// whose records hold a gzip batch of garbage (with a CRC that holds) gets
// CORRUPT_MESSAGE and nothing of it is written, not even the good batch
// before it; a compressed batch whose offset deltas skip gets INVALID_RECORD;
// a good gzip batch to another partition is written. The refused partition
// then takes every codec from franz-go and consumes from offset 0.
func TestCompressedBatchesAreValidated(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("zipped", 3, nil)
	good := compressedBatch(3, 2, lz4ed(recordsSection(0, 1)))
	garbage := compressedBatch(1, 1, []byte("\x1f\x8b\x08\x00 this is not a gzip stream at all"))
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "zipped"
	for p, recs := range [][]byte{
		append(bytes.Clone(good), garbage...),
		compressedBatch(1, 3, gzipped(recordsSection(0, 1, 2))),
		compressedBatch(3, 2, lz4ed(recordsSection(0, 2))),
	} {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = int32(p), recs
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := tb.raw().request(req)
	if err != nil {
		t.Fatal(err)
	}
	want := []*kerr.Error{kerr.CorruptMessage, nil, kerr.InvalidRecord}
	for _, sp := range resp.(*kmsg.ProduceResponse).Topics[0].Partitions {
		w := want[sp.Partition]
		if (w == nil && sp.ErrorCode != 0) || (w != nil && sp.ErrorCode != w.Code) {
			t.Errorf("partition %d: %v, want %v", sp.Partition, kerr.ErrorForCode(sp.ErrorCode), w)
		}
	}
	end, err := tb.admin().ListEndOffsets(ctxT(t, 5*time.Second), "zipped")
	if err != nil {
		t.Fatal(err)
	}
	for p, wantEnd := range []int64{0, 3, 0} {
		if o, _ := end.Lookup("zipped", int32(p)); o.Offset != wantEnd {
			t.Errorf("partition %d: log end offset %d, want %d", p, o.Offset, wantEnd)
		}
	}

	// The refused partition is clean: every codec from a real client lands
	// and all of it reads back from offset 0.
	var all []*kgo.Record
	for i, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(),
		kgo.Lz4Compression(), kgo.ZstdCompression(), kgo.NoCompression()} {
		recs := recordsFor("zipped", 50, 1)
		for _, r := range recs {
			r.Value = append(r.Value, byte(i))
		}
		produceSync(t, tb.client(kgo.ProducerBatchCompression(codec), kgo.RecordPartitioner(kgo.ManualPartitioner())), recs...)
		all = append(all, recs...)
	}
	got := consumeN(t, tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"zipped": {0: kgo.NewOffset().AtStart()}})),
		len(all), 20*time.Second)
	checkSame(t, all, got)
}
