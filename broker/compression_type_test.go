package broker

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/localstore"
)

// storedBatches reads partition 0's first segment as it is on disk; the
// batches must validate (CRC-32C, codec, every record).
func (tb *testBroker) storedBatches(topic string) ([]byte, []localstore.BatchHeader) {
	tb.t.Helper()
	b, err := os.ReadFile(filepath.Join(tb.dir, topic+"-0", "00000000000000000000.log"))
	if err != nil {
		tb.t.Fatal(err)
	}
	if len(b) == 0 {
		return nil, nil
	}
	hs, err := localstore.ValidateBatches(b, 0)
	if err != nil {
		tb.t.Fatalf("stored batches of %s: %v", topic, err)
	}
	return b, hs
}

func codecsOf(hs []localstore.BatchHeader) []int8 {
	var out []int8
	for _, h := range hs {
		out = append(out, h.Compression())
	}
	return out
}

// rawProduce sends one partition's records with a raw Produce v7 and
// returns the partition's answer.
func rawProduce(t *testing.T, r *rawConn, topic string, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := r.request(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

// describedConfig is the value DescribeConfigs gives key of topic.
func describedConfig(t *testing.T, tb *testBroker, topic, key string) (string, kmsg.ConfigSource) {
	t.Helper()
	rc, err := tb.admin().DescribeTopicConfigs(ctxT(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On(topic, nil)
	if err != nil || c.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, c.Err)
	}
	for _, e := range c.Configs {
		if e.Key == key {
			return e.MaybeValue(), e.Source
		}
	}
	t.Fatalf("describe %s: no %s", topic, key)
	return "", 0
}

// TestCompressionTypeRecompresses: a topic with compression.type=zstd stores
// every batch in zstd whatever the producer sent (lz4, none, gzip, from an
// idempotent franz-go producer: its producer id and sequences are kept), and
// consumers read the records as produced; compression.type=uncompressed
// stores gzip batches uncompressed.
func TestCompressionTypeRecompresses(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("zstd", 1, map[string]*string{"compression.type": kadm.StringPtr("zstd")})
	tb.createTopic("plain", 1, map[string]*string{"compression.type": kadm.StringPtr("uncompressed")})
	if v, src := describedConfig(t, tb, "zstd", "compression.type"); v != "zstd" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("DescribeConfigs compression.type = %q (source %v), want zstd from the topic", v, src)
	}

	var all []*kgo.Record
	cl := map[string]*kgo.Client{}
	for i, codec := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"lz4", kgo.Lz4Compression()}, {"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"lz4", kgo.Lz4Compression()}} {
		recs := recordsFor("zstd", 60, 1)
		for _, r := range recs {
			r.Value = append(r.Value, byte(i))
		}
		if cl[codec.name] == nil {
			cl[codec.name] = tb.client(kgo.ProducerBatchCompression(codec.codec), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		}
		produceSync(t, cl[codec.name], recs...)
		all = append(all, recs...)
	}
	_, hs := tb.storedBatches("zstd")
	if len(hs) == 0 {
		t.Fatal("nothing stored")
	}
	next := map[int64]int32{} // producer id -> next sequence
	for i, h := range hs {
		if h.Compression() != localstore.CodecZstd {
			t.Errorf("stored batch %d has codec %d, want zstd (4); codecs %v", i, h.Compression(), codecsOf(hs))
		}
		if h.ProducerID < 0 || h.BaseSequence < 0 {
			t.Errorf("stored batch %d lost its producer fields: id %d seq %d", i, h.ProducerID, h.BaseSequence)
		}
		if want := next[h.ProducerID]; h.BaseSequence != want {
			t.Errorf("stored batch %d: producer %d sequence %d, want %d", i, h.ProducerID, h.BaseSequence, want)
		}
		next[h.ProducerID] = h.BaseSequence + h.NumRecords
	}
	if len(next) != 3 {
		t.Errorf("%d producer ids in the log, want 3 (one per client)", len(next))
	}
	got := consumeN(t, tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"zstd": {0: kgo.NewOffset().AtStart()}})),
		len(all), 20*time.Second)
	checkSame(t, all, got)

	recs := recordsFor("plain", 50, 1)
	produceSync(t, tb.client(kgo.ProducerBatchCompression(kgo.GzipCompression())), recs...)
	_, hs = tb.storedBatches("plain")
	for i, h := range hs {
		if h.Compression() != localstore.CodecNone {
			t.Errorf("plain: stored batch %d has codec %d, want none", i, h.Compression())
		}
	}
	got = consumeN(t, tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"plain": {0: kgo.NewOffset().AtStart()}})),
		len(recs), 20*time.Second)
	checkSame(t, recs, got)
}

// idempotentBatch is an lz4 batch of n records from producer pid, epoch 0,
// base sequence seq.
func idempotentBatch(pid int64, seq, n int32) []byte {
	var deltas []int32
	for i := range n {
		deltas = append(deltas, i)
	}
	raw := compressedBatch(3, n, lz4ed(recordsSection(deltas...)))
	binary.BigEndian.PutUint64(raw[43:], uint64(pid))
	binary.BigEndian.PutUint16(raw[51:], 0)
	binary.BigEndian.PutUint32(raw[53:], uint32(seq))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// TestCompressionTypeIdempotentRetry: with recompression, a retried
// idempotent batch is answered with its original offset and not written
// again, and a sequence gap is still OUT_OF_ORDER_SEQUENCE_NUMBER.
func TestCompressionTypeIdempotentRetry(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("idem", 1, map[string]*string{"compression.type": kadm.StringPtr("gzip")})
	r := tb.raw()
	ireq := kmsg.NewPtrInitProducerIDRequest()
	ireq.Version = 4
	iresp, err := r.request(ireq)
	if err != nil {
		t.Fatal(err)
	}
	pid := iresp.(*kmsg.InitProducerIDResponse).ProducerID
	first := idempotentBatch(pid, 0, 3)
	for i, c := range []struct {
		records []byte
		err     *kerr.Error
		base    int64
	}{
		{first, nil, 0},
		{idempotentBatch(pid, 3, 2), nil, 3},
		{first, nil, 0}, // a retry: its original offset
		{idempotentBatch(pid, 9, 1), kerr.OutOfOrderSequenceNumber, -1},
	} {
		sp := rawProduce(t, r, "idem", c.records)
		if err := kerr.ErrorForCode(sp.ErrorCode); err != c.err && !(c.err == nil && sp.ErrorCode == 0) {
			t.Fatalf("produce %d: %v, want %v", i, err, c.err)
		}
		if sp.BaseOffset != c.base {
			t.Errorf("produce %d: base offset %d, want %d", i, sp.BaseOffset, c.base)
		}
	}
	_, hs := tb.storedBatches("idem")
	if len(hs) != 2 {
		t.Fatalf("%d batches stored, want 2", len(hs))
	}
	for i, h := range hs {
		if h.Compression() != localstore.CodecGzip || h.ProducerID != pid || h.BaseSequence != []int32{0, 3}[i] || h.BaseOffset != []int64{0, 3}[i] {
			t.Errorf("stored batch %d: %+v", i, h)
		}
	}
}

// TestCompressionTypeProducerIsZeroCopy: with compression.type=producer the
// stored batch is the sent one byte for byte but for baseOffset and
// partitionLeaderEpoch; altering compression.type at runtime takes effect on
// the next append (earlier batches stay as stored), and DescribeConfigs
// shows it.
func TestCompressionTypeProducerIsZeroCopy(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("asis", 1, nil)
	if v, src := describedConfig(t, tb, "asis", "compression.type"); v != "producer" || src != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("DescribeConfigs compression.type = %q (source %v), want the default producer", v, src)
	}
	r := tb.raw()
	sent := compressedBatch(3, 2, lz4ed(recordsSection(0, 1)))
	if sp := rawProduce(t, r, "asis", bytes.Clone(sent)); sp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(sp.ErrorCode))
	}
	if sp := rawProduce(t, r, "asis", bytes.Clone(sent)); sp.ErrorCode != 0 || sp.BaseOffset != 2 {
		t.Fatalf("second produce: %v at %d", kerr.ErrorForCode(sp.ErrorCode), sp.BaseOffset)
	}
	stored, hs := tb.storedBatches("asis")
	if len(hs) != 2 || int64(len(stored)) != 2*int64(len(sent)) {
		t.Fatalf("stored %d batches, %d bytes; want 2 of %d", len(hs), len(stored), len(sent))
	}
	for i := range 2 {
		got := bytes.Clone(stored[i*len(sent) : (i+1)*len(sent)])
		want := bytes.Clone(sent)
		binary.BigEndian.PutUint64(want[0:], uint64(2*i)) // baseOffset
		binary.BigEndian.PutUint32(want[12:], 0)          // partitionLeaderEpoch
		if !bytes.Equal(got, want) {
			t.Errorf("stored batch %d differs from the sent one beyond baseOffset and partitionLeaderEpoch", i)
		}
	}

	adm := tb.admin()
	if res, err := adm.AlterTopicConfigs(ctxT(t, 10*time.Second), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "compression.type", Value: kadm.StringPtr("snappy")}}, "asis"); err != nil || res[0].Err != nil {
		t.Fatalf("alter compression.type=snappy: %v %v", err, res)
	}
	if v, _ := describedConfig(t, tb, "asis", "compression.type"); v != "snappy" {
		t.Errorf("after alter, DescribeConfigs compression.type = %q, want snappy", v)
	}
	if sp := rawProduce(t, r, "asis", bytes.Clone(sent)); sp.ErrorCode != 0 || sp.BaseOffset != 4 {
		t.Fatalf("produce after alter: %v at %d", kerr.ErrorForCode(sp.ErrorCode), sp.BaseOffset)
	}
	_, hs = tb.storedBatches("asis")
	if got := codecsOf(hs); !bytes.Equal([]byte{byte(got[0]), byte(got[1]), byte(got[2])}, []byte{3, 3, 2}) || len(got) != 3 {
		t.Errorf("stored codecs %v, want [3 3 2]", got)
	}

	// A bad value is refused, naming the key and the values allowed.
	res, err := adm.AlterTopicConfigs(ctxT(t, 10*time.Second), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "compression.type", Value: kadm.StringPtr("brotli")}}, "asis")
	if err == nil && (len(res) != 1 || res[0].Err == nil) {
		t.Fatal("compression.type=brotli accepted")
	}
	if len(res) == 1 && res[0].Err != nil && (res[0].Err != kerr.InvalidConfig || !bytes.Contains([]byte(res[0].ErrMessage), []byte("allowed: uncompressed, zstd, lz4, snappy, gzip, producer"))) {
		t.Errorf("compression.type=brotli: %v %q", res[0].Err, res[0].ErrMessage)
	}
}

// TestCompressionTypeBrokerDefault: the broker key compression.type is the
// default of topics without an override (DescribeConfigs says where it came
// from), and a batch that grows past max.message.bytes when decompressed
// for compression.type=uncompressed gets MESSAGE_TOO_LARGE, nothing written.
func TestCompressionTypeBrokerDefault(t *testing.T) {
	tb := startBroker(t, "compression.type=snappy")
	tb.createTopic("dflt", 1, nil)
	if v, src := describedConfig(t, tb, "dflt", "compression.type"); v != "snappy" || src != kmsg.ConfigSourceStaticBrokerConfig {
		t.Errorf("DescribeConfigs compression.type = %q (source %v), want snappy from the broker", v, src)
	}
	recs := recordsFor("dflt", 40, 1)
	produceSync(t, tb.client(kgo.ProducerBatchCompression(kgo.NoCompression())), recs...)
	_, hs := tb.storedBatches("dflt")
	for i, h := range hs {
		if h.Compression() != localstore.CodecSnappy {
			t.Errorf("stored batch %d has codec %d, want snappy (2)", i, h.Compression())
		}
	}
	got := consumeN(t, tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"dflt": {0: kgo.NewOffset().AtStart()}})),
		len(recs), 20*time.Second)
	checkSame(t, recs, got)

	tb.createTopic("small", 1, map[string]*string{"compression.type": kadm.StringPtr("uncompressed"), "max.message.bytes": kadm.StringPtr("10000")})
	big := kmsg.Record{Value: bytes.Repeat([]byte("a"), 50000)}
	big.Length = int32(len(big.AppendTo(nil)) - 1)
	batch := compressedBatch(1, 1, gzipped(big.AppendTo(nil)))
	sp := rawProduce(t, tb.raw(), "small", batch)
	if sp.ErrorCode != kerr.MessageTooLarge.Code {
		t.Fatalf("a gzip batch of %d bytes that is 50 kB uncompressed: %v, want MESSAGE_TOO_LARGE", len(batch), kerr.ErrorForCode(sp.ErrorCode))
	}
	if stored, _ := tb.storedBatches("small"); len(stored) != 0 {
		t.Errorf("%d bytes written", len(stored))
	}
}

// TestCompressionLevelsApply: compression.gzip.level and
// compression.zstd.level set the level the broker writes at: the same
// records produced uncompressed are stored smaller at a higher level.
func TestCompressionLevelsApply(t *testing.T) {
	tb := startBroker(t, "compression.zstd.level=19")
	words := []string{"alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta "}
	// One uncompressed batch of compressible records, sent raw, so each
	// topic stores exactly it.
	var body []byte
	for i := range 100 {
		var v []byte
		for j := range 300 {
			v = append(v, words[(i*31+j*j*7+j/3)%len(words)]...)
		}
		r := kmsg.Record{OffsetDelta: int32(i), Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		body = append(body, r.AppendTo(nil)...)
	}
	batch := compressedBatch(0, 100, body)
	r := tb.raw()
	stored := map[string]int{}
	for _, c := range []struct{ topic, codec, level, key string }{
		{"gz1", "gzip", "1", "compression.gzip.level"},
		{"gz9", "gzip", "9", "compression.gzip.level"},
		{"zs1", "zstd", "1", "compression.zstd.level"},
		{"zs19", "zstd", "", "compression.zstd.level"}, // the broker's 19
	} {
		cfgs := map[string]*string{"compression.type": kadm.StringPtr(c.codec)}
		if c.level != "" {
			cfgs[c.key] = kadm.StringPtr(c.level)
		}
		tb.createTopic(c.topic, 1, cfgs)
		want := c.level
		if want == "" {
			want = "19"
		}
		if v, _ := describedConfig(t, tb, c.topic, c.key); v != want {
			t.Errorf("%s: DescribeConfigs %s = %q, want %q", c.topic, c.key, v, want)
		}
		if sp := rawProduce(t, r, c.topic, bytes.Clone(batch)); sp.ErrorCode != 0 {
			t.Fatalf("%s: %v", c.topic, kerr.ErrorForCode(sp.ErrorCode))
		}
		b, hs := tb.storedBatches(c.topic)
		if len(hs) != 1 {
			t.Fatalf("%s: %d batches stored, want 1", c.topic, len(hs))
		}
		stored[c.topic] = len(b)
	}
	if stored["gz9"] >= stored["gz1"] {
		t.Errorf("gzip level 9 stored %d bytes, level 1 %d: compression.gzip.level has no effect", stored["gz9"], stored["gz1"])
	}
	if stored["zs19"] >= stored["zs1"] {
		t.Errorf("zstd level 19 stored %d bytes, level 1 %d: compression.zstd.level has no effect", stored["zs19"], stored["zs1"])
	}
}
