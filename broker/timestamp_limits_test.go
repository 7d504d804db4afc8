package broker

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// tsBatch builds a v2 batch whose records carry the given timestamps, in
// order (a later record may be earlier: its delta is negative). codec 4
// compresses the records with zstd.
func tsBatch(t *testing.T, codec int16, tss ...int64) []byte {
	t.Helper()
	var recs []byte
	maxTs := tss[0]
	for i, ts := range tss {
		maxTs = max(maxTs, ts)
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: ts - tss[0], Value: []byte("v" + strconv.Itoa(i))}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = append(recs, r.AppendTo(nil)...)
	}
	if codec == 4 {
		zw, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		recs = zw.EncodeAll(recs, nil)
		zw.Close()
	}
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: codec,
		LastOffsetDelta: int32(len(tss) - 1), FirstTimestamp: tss[0], MaxTimestamp: maxTs,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(tss)), Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// KIP-937: with CreateTime, a partition whose records are too far behind or
// ahead of the broker's clock gets INVALID_TIMESTAMP and nothing of it is
// written; LogAppendTime topics are exempt; topic overrides beat the broker
// default.
func TestMessageTimestampBeforeAfterMax(t *testing.T) {
	const hour = int64(time.Hour / time.Millisecond)
	tb := startBroker(t, "log.message.timestamp.after.max.ms="+strconv.FormatInt(hour, 10))
	tb.createTopic("ts", 1, map[string]*string{"message.timestamp.before.max.ms": tsStrPtr(strconv.FormatInt(hour, 10))})
	tb.createTopic("ts-lenient", 1, map[string]*string{"message.timestamp.after.max.ms": tsStrPtr("9223372036854775807")})
	tb.createTopic("ts-append", 1, map[string]*string{"message.timestamp.type": tsStrPtr("LogAppendTime"),
		"message.timestamp.before.max.ms": tsStrPtr("0"), "message.timestamp.after.max.ms": tsStrPtr("0")})
	r := tb.raw()
	produce := func(topic string, batches ...[]byte) int16 {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, 1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = bytes.Join(batches, nil)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := r.request(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	end := func(topic string) int64 {
		t.Helper()
		offs, err := tb.admin().ListEndOffsets(ctxT(t, 5*time.Second), topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, 0)
		return o.Offset
	}
	now := time.Now().UnixMilli()
	ok := tsBatch(t, 0, now, now+1)
	cases := []struct {
		name    string
		topic   string
		batches [][]byte
		want    *kerr.Error
	}{
		{"within both limits", "ts", [][]byte{ok}, nil},
		{"two hours old (topic before.max.ms)", "ts", [][]byte{tsBatch(t, 0, now-2*hour)}, kerr.InvalidTimestamp},
		{"two hours ahead (broker after.max.ms)", "ts", [][]byte{tsBatch(t, 0, now+2*hour)}, kerr.InvalidTimestamp},
		{"a later record two hours older than the first", "ts", [][]byte{tsBatch(t, 0, now, now-2*hour)}, kerr.InvalidTimestamp},
		{"a good batch then a bad one: none written", "ts", [][]byte{ok, tsBatch(t, 0, now, now+2*hour)}, kerr.InvalidTimestamp},
		{"compressed, max timestamp ahead", "ts", [][]byte{tsBatch(t, 4, now, now+2*hour)}, kerr.InvalidTimestamp},
		{"compressed, first timestamp old", "ts", [][]byte{tsBatch(t, 4, now-2*hour, now)}, kerr.InvalidTimestamp},
		{"compressed within limits", "ts", [][]byte{tsBatch(t, 4, now, now+1)}, nil},
		{"no timestamp (-1) is not checked", "ts", [][]byte{tsBatch(t, 0, -1)}, nil},
		{"topic override lifts the broker's after.max.ms", "ts-lenient", [][]byte{tsBatch(t, 0, now+2*hour)}, nil},
		{"before.max.ms is off by default", "ts-lenient", [][]byte{tsBatch(t, 0, now-100*hour)}, nil},
		{"LogAppendTime ignores both", "ts-append", [][]byte{tsBatch(t, 0, now-2*hour, now+2*hour)}, nil},
	}
	for _, c := range cases {
		before := end(c.topic)
		var n int64
		for _, b := range c.batches {
			n += int64(binary.BigEndian.Uint32(b[23:])) + 1
		}
		got := produce(c.topic, c.batches...)
		after := end(c.topic)
		switch {
		case c.want == nil && got != 0:
			t.Errorf("%s: error %v, want success", c.name, kerr.ErrorForCode(got))
		case c.want == nil && after != before+n:
			t.Errorf("%s: log end %d -> %d, want %d records written", c.name, before, after, n)
		case c.want != nil && got != c.want.Code:
			t.Errorf("%s: code %d (%v), want %s", c.name, got, kerr.ErrorForCode(got), c.want.Message)
		case c.want != nil && after != before:
			t.Errorf("%s: log end %d -> %d, want nothing written", c.name, before, after)
		}
	}
}

func tsStrPtr(s string) *string { return &s }
