package broker

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
)

// recordsFor makes n records spread over the partitions with recognisable values.
func recordsFor(topic string, n, partitions int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{
			Topic:     topic,
			Partition: int32(i % partitions),
			Key:       []byte("k" + strconv.Itoa(i)),
			Value:     bytes.Repeat([]byte{byte(i)}, 10+i%200),
			Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(strconv.Itoa(i))}},
		}
	}
	return recs
}

// checkSame asserts got holds exactly want, in order within each partition.
func checkSame(t *testing.T, want, got []*kgo.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	per := map[int32][]*kgo.Record{}
	for _, r := range want {
		per[r.Partition] = append(per[r.Partition], r)
	}
	next := map[int32]int{}
	for _, r := range got {
		w := per[r.Partition][next[r.Partition]]
		next[r.Partition]++
		if !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) || len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) {
			t.Fatalf("partition %d record %d: got key %q, want %q", r.Partition, next[r.Partition]-1, r.Key, w.Key)
		}
		if r.Offset != int64(next[r.Partition]-1) {
			t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition]-1)
		}
	}
}

func TestProduceConsumeAcrossPartitions(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("orders", 3, nil)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	want := recordsFor("orders", 3000, 3)
	produceSync(t, prod, want...)

	before := tb.srv.Metrics().SendfileBytes()
	cons := tb.client(kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, cons, len(want), 30*time.Second)
	checkSame(t, want, got)
	if sent := tb.srv.Metrics().SendfileBytes() - before; sent <= 0 {
		t.Fatalf("no bytes went out through sendfile")
	}
	if tb.srv.Metrics().CopiedBytes() != 0 {
		t.Fatalf("%d bytes went through the copy path with sendfile on", tb.srv.Metrics().CopiedBytes())
	}
}

func TestEveryCodecPassesThrough(t *testing.T) {
	tb := startBroker(t)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			tb.createTopic(topic, 1, nil)
			want := recordsFor(topic, 500, 1)
			produceSync(t, tb.client(kgo.ProducerBatchCompression(codec), kgo.RecordPartitioner(kgo.ManualPartitioner())), want...)
			got := consumeN(t, tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), len(want), 20*time.Second)
			checkSame(t, want, got)
		})
	}
}

func TestCopyPathWhenSendfileOff(t *testing.T) {
	tb := startBroker(t, "strata.sendfile.enable=false")
	tb.createTopic("copy", 1, nil)
	want := recordsFor("copy", 200, 1)
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), want...)
	got := consumeN(t, tb.client(kgo.ConsumeTopics("copy"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), len(want), 20*time.Second)
	checkSame(t, want, got)
	if tb.srv.Metrics().SendfileBytes() != 0 || tb.srv.Metrics().CopiedBytes() == 0 {
		t.Fatalf("sendfile %d, copied %d: want everything copied", tb.srv.Metrics().SendfileBytes(), tb.srv.Metrics().CopiedBytes())
	}
}

func TestRestartKeepsData(t *testing.T) {
	tb := startBroker(t, "log.segment.bytes=4096")
	tb.createTopic("durable", 2, map[string]*string{"retention.ms": kadm.StringPtr("86400000")})
	want := recordsFor("durable", 1000, 2)
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), want...)
	tb.restart()
	got := consumeN(t, tb.client(kgo.ConsumeTopics("durable"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), len(want), 30*time.Second)
	checkSame(t, want, got)
	// The topic config survived too.
	rc, err := tb.admin().DescribeTopicConfigs(ctxT(t, 10*time.Second), "durable")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On("durable", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range c.Configs {
		if e.Key == "retention.ms" {
			found = true
			if e.MaybeValue() != "86400000" || e.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Fatalf("retention.ms = %q source %v after restart", e.MaybeValue(), e.Source)
			}
		}
	}
	if !found {
		t.Fatal("retention.ms not described")
	}
}

func TestIdempotentRetryIsNotWrittenTwice(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("idem", 1, nil)
	r := tb.raw()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version = 4
	resp, err := r.request(init)
	if err != nil {
		t.Fatal(err)
	}
	ip := resp.(*kmsg.InitProducerIDResponse)
	if ip.ErrorCode != 0 || ip.ProducerID < 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ip.ErrorCode))
	}
	produce := func(seq int32) *kmsg.ProduceResponseTopicPartition {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "idem"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = makeBatch(ip.ProducerID, ip.ProducerEpoch, seq, 3)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := r.request(req)
		if err != nil {
			t.Fatal(err)
		}
		return &resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	first := produce(0)
	retry := produce(0)
	if first.ErrorCode != 0 || retry.ErrorCode != 0 || retry.BaseOffset != first.BaseOffset {
		t.Fatalf("first %d@%d, retry %d@%d: a retry must get the original offset", first.ErrorCode, first.BaseOffset, retry.ErrorCode, retry.BaseOffset)
	}
	if next := produce(3); next.ErrorCode != 0 || next.BaseOffset != 3 {
		t.Fatalf("next batch: code %d offset %d, want offset 3", next.ErrorCode, next.BaseOffset)
	}
	if gap := produce(10); gap.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: code %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", gap.ErrorCode)
	}
	// Producer state survives a restart: the retry is still recognised.
	tb.restart()
	r = tb.raw()
	if again := produce(3); again.ErrorCode != 0 || again.BaseOffset != 3 {
		t.Fatalf("retry after restart: code %d offset %d, want 3", again.ErrorCode, again.BaseOffset)
	}
	end, _ := tb.admin().ListEndOffsets(ctxT(t, 5*time.Second), "idem")
	if o, _ := end.Lookup("idem", 0); o.Offset != 6 {
		t.Fatalf("log end offset %d, want 6 (nothing written twice)", o.Offset)
	}
}

// makeBatch builds an uncompressed v2 batch of n records with a valid CRC.
func makeBatch(pid int64, epoch int16, seq int32, n int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: 0, Key: []byte("k"), Value: []byte("value-" + strconv.Itoa(i))}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the length varint of 0 is one byte
		recs = append(recs, r.AppendTo(nil)...)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		FirstOffset: 0, PartitionLeaderEpoch: -1, Magic: 2, Attributes: 0,
		LastOffsetDelta: int32(n - 1), FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(n), Records: recs,
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	crc := crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(raw[17:], crc)
	return raw
}

func TestBadProduceInputGetsKafkaErrors(t *testing.T) {
	tb := startBroker(t, "auto.create.topics.enable=false", "message.max.bytes=2000")
	tb.createTopic("strict", 1, nil)
	r := tb.raw()
	produce := func(topic string, records []byte) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 7, 1, 5000
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
		return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	good := makeBatch(-1, -1, -1, 2)
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	big := makeBatch(-1, -1, -1, 300)
	cases := []struct {
		name  string
		topic string
		recs  []byte
		want  *kerr.Error
	}{
		{"wrong CRC", "strict", corrupt, kerr.CorruptMessage},
		{"oversized batch", "strict", big, kerr.MessageTooLarge},
		{"truncated batch", "strict", good[:len(good)-5], kerr.CorruptMessage},
		{"bad topic name", "bad/name", good, kerr.InvalidTopicException},
		{"missing topic, auto-create off", "nope", good, kerr.UnknownTopicOrPartition},
	}
	for _, c := range cases {
		if got := produce(c.topic, c.recs); got != c.want.Code {
			t.Errorf("%s: code %d (%v), want %s", c.name, got, kerr.ErrorForCode(got), c.want.Message)
		}
	}
	if got := produce("strict", good); got != 0 {
		t.Fatalf("good batch after bad ones: %v", kerr.ErrorForCode(got))
	}
	end, _ := tb.admin().ListEndOffsets(ctxT(t, 5*time.Second), "strict")
	if o, _ := end.Lookup("strict", 0); o.Offset != 2 {
		t.Fatalf("log end offset %d, want 2: only the good batch is written", o.Offset)
	}
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	tb := startBroker(t, "socket.request.max.bytes=1048576")
	tb.createTopic("safe", 1, nil)
	frames := map[string][]byte{
		"oversized frame":                     {0x7f, 0xff, 0xff, 0xff},
		"negative size":                       {0xff, 0xff, 0xff, 0xff},
		"garbage":                             append([]byte{0, 0, 0, 12}, []byte("hello world!")...),
		"unknown api key":                     {0, 0, 0, 10, 0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0},
		"unsupported version of a served key": {0, 0, 0, 10, 0, 3, 0x00, 99, 0, 0, 0, 1, 0, 0},
		"header cut short":                    {0, 0, 0, 3, 0, 3, 0},
	}
	for name, f := range frames {
		t.Run(name, func(t *testing.T) {
			r := tb.raw()
			if err := r.send(f); err != nil {
				t.Fatal(err)
			}
			r.expectClosed()
		})
	}
	t.Run("truncated frame then hang up", func(t *testing.T) {
		r := tb.raw()
		r.send([]byte{0, 0, 1, 0, 0, 3})
		r.c.Close()
	})
	// The broker still serves everyone else, and nothing was written.
	want := recordsFor("safe", 10, 1)
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), want...)
	got := consumeN(t, tb.client(kgo.ConsumeTopics("safe"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), 10, 10*time.Second)
	checkSame(t, want, got)
}

func TestApiVersionsTooNewFallsBackToV0(t *testing.T) {
	tb := startBroker(t)
	r := tb.raw()
	// ApiVersions v99: the body is whatever; the answer is v0 with UNSUPPORTED_VERSION.
	frame := []byte{0, 0, 0, 12, 0, 18, 0, 99, 0, 0, 0, 7, 0, 2, 'c', 'l'}
	if err := r.send(frame); err != nil {
		t.Fatal(err)
	}
	body, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("code %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 18 && k.MaxVersion < 3 {
			t.Fatalf("ApiVersions range %d-%d", k.MinVersion, k.MaxVersion)
		}
	}
}

// TestLongPollWakesOnAppend: a fetch parked for MinBytes returns when an
// append arrives, not at its MaxWait.
func TestLongPollWakesOnAppend(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("poll", 1, nil)
	r := tb.raw()
	mdReq := kmsg.NewPtrMetadataRequest()
	mdReq.Version = 12
	md, err := r.request(mdReq)
	if err != nil {
		t.Fatal(err)
	}
	id := md.(*kmsg.MetadataResponse).Topics[0].TopicID
	// MaxWait is longer than the raw connection's 10s read deadline: a fetch
	// the append does not wake fails the read instead of answering.
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 13, 60000, 1, 1<<20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	type result struct {
		resp kmsg.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := r.request(req)
		done <- result{resp, err}
	}()
	p := tb.srv.topics.get("poll").partition(0)
	wait.Eventually(t, "the fetch parked on the partition", func() bool {
		p.waitMu.Lock()
		defer p.waitMu.Unlock()
		return len(p.waiters) > 0
	})
	produceSync(t, tb.client(), &kgo.Record{Topic: "poll", Value: []byte("wake")})
	res := <-done
	if res.err != nil {
		t.Fatalf("fetch: %v (not woken by the append?)", res.err)
	}
	fr := res.resp.(*kmsg.FetchResponse)
	rp0 := fr.Topics[0].Partitions[0]
	if rp0.ErrorCode != 0 || len(rp0.RecordBatches) == 0 {
		t.Fatalf("code %d, %d bytes", rp0.ErrorCode, len(rp0.RecordBatches))
	}
}

func TestAdminAPIs(t *testing.T) {
	tb := startBroker(t)
	adm := tb.admin()
	ctx := ctxT(t, 30*time.Second)

	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compacted")}, "compacted"); err == nil {
		t.Fatal("cleanup.policy=compacted accepted")
	} else if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("compacted: %v, want INVALID_CONFIG", err)
	}
	if r, _ := adm.CreateTopic(ctx, 2, 3, nil, "rf3"); !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf 3: %v", r.Err)
	}
	if r, _ := adm.CreateTopic(ctx, 2, 1, nil, "bad name"); !errors.Is(r.Err, kerr.InvalidTopicException) {
		t.Fatalf("bad name: %v", r.Err)
	}
	tb.createTopic("admin", 2, map[string]*string{"retention.ms": kadm.StringPtr("3600000")})
	if r, _ := adm.CreateTopic(ctx, 2, 1, nil, "admin"); !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate: %v", r.Err)
	}

	// Describe: sources.
	source := func(key string) (string, kmsg.ConfigSource) {
		rc, err := adm.DescribeTopicConfigs(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		c, _ := rc.On("admin", nil)
		for _, e := range c.Configs {
			if e.Key == key {
				return e.MaybeValue(), e.Source
			}
		}
		t.Fatalf("%s not described", key)
		return "", 0
	}
	if v, s := source("retention.ms"); v != "3600000" || s != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms %s %v", v, s)
	}
	if v, s := source("segment.bytes"); v != "1073741824" || s != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("segment.bytes %s %v", v, s)
	}

	// Incremental alter: set, then delete back to default.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("1048576")}}, "admin"); err != nil {
		t.Fatal(err)
	}
	if v, s := source("segment.bytes"); v != "1048576" || s != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("after set: segment.bytes %s %v", v, s)
	}
	if r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr("lots")}}, "admin"); err == nil && r[0].Err == nil {
		t.Fatal("segment.bytes=lots accepted")
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "segment.bytes"}}, "admin"); err != nil {
		t.Fatal(err)
	}
	if v, s := source("segment.bytes"); v != "1073741824" || s != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("after delete: segment.bytes %s %v", v, s)
	}

	// Partitions grow, never shrink.
	if _, err := adm.UpdatePartitions(ctx, 4, "admin"); err != nil {
		t.Fatal(err)
	}
	if r, _ := adm.UpdatePartitions(ctx, 3, "admin"); r["admin"].Err == nil {
		t.Fatal("shrinking accepted")
	}
	td, err := adm.ListTopics(ctx, "admin")
	if err != nil || len(td["admin"].Partitions) != 4 {
		t.Fatalf("partitions after grow: %v %d", err, len(td["admin"].Partitions))
	}

	// Cluster: this broker is the controller.
	md, err := adm.BrokerMetadata(ctx)
	if err != nil || md.Controller != 0 || len(md.Brokers) != 1 {
		t.Fatalf("metadata: %v controller %d", err, md.Controller)
	}

	// Delete.
	if _, err := adm.DeleteTopics(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	td, _ = adm.ListTopics(ctx)
	if td.Has("admin") {
		t.Fatal("topic still listed after delete")
	}
}

func TestListOffsets(t *testing.T) {
	tb := startBroker(t)
	// Not tiered and kept forever: the 2023 timestamps make the housekeeping
	// tick roll the segment, and a slow run would see it uploaded, or deleted
	// by the default 7-day retention, before the checks.
	tb.createTopic("times", 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("false"), "retention.ms": kadm.StringPtr("-1")})
	cl := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.UnixMilli(1_700_000_000_000)
	var recs []*kgo.Record
	for i := 0; i < 100; i++ {
		recs = append(recs, &kgo.Record{Topic: "times", Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	// One record per produce so batches have distinct timestamps.
	for _, r := range recs {
		produceSync(t, cl, r)
	}
	adm := tb.admin()
	ctx := ctxT(t, 20*time.Second)
	lookup := func(lo kadm.ListedOffsets, err error) kadm.ListedOffset {
		if err != nil {
			t.Fatal(err)
		}
		o, ok := lo.Lookup("times", 0)
		if !ok || o.Err != nil {
			t.Fatalf("lookup: %v", o.Err)
		}
		return o
	}
	if o := lookup(adm.ListStartOffsets(ctx, "times")); o.Offset != 0 {
		t.Fatalf("earliest %d", o.Offset)
	}
	if o := lookup(adm.ListEndOffsets(ctx, "times")); o.Offset != 100 {
		t.Fatalf("latest %d", o.Offset)
	}
	if o := lookup(adm.ListOffsetsAfterMilli(ctx, base.Add(42*time.Second).UnixMilli(), "times")); o.Offset != 42 {
		t.Fatalf("by timestamp: %d, want 42", o.Offset)
	}
	if o := lookup(adm.ListOffsetsAfterMilli(ctx, base.Add(41500*time.Millisecond).UnixMilli(), "times")); o.Offset != 42 {
		t.Fatalf("between timestamps: %d, want 42", o.Offset)
	}
	if o := lookup(adm.ListMaxTimestampOffsets(ctx, "times")); o.Offset != 99 {
		t.Fatalf("max timestamp: %d, want 99", o.Offset)
	}
	// KIP-1005 on a log with no remote tier.
	for _, c := range []struct {
		ts   int64
		want int64
	}{{-4, 0}, {-5, -1}} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = 9
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "times"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = c.ts
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := tb.raw().request(req)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Offset != c.want {
			t.Fatalf("timestamp %d: code %d offset %d, want %d", c.ts, p.ErrorCode, p.Offset, c.want)
		}
	}
}

func TestConsumerGroupRebalanceAndResume(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("grp", 6, nil)
	want := recordsFor("grp", 600, 6)
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), want...)

	var mu sync.Mutex
	assigned := map[string]map[int32]bool{}
	member := func(name string) *kgo.Client {
		return tb.client(
			kgo.WithLogger(testClientLogger(name)),
			kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("grp"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.AutoCommitInterval(200*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				if assigned[name] == nil {
					assigned[name] = map[int32]bool{}
				}
				for _, p := range m["grp"] {
					assigned[name][p] = true
				}
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				for _, p := range m["grp"] {
					delete(assigned[name], p)
				}
			}),
		)
	}
	a, b, c := member("a"), member("b"), member("c")
	// Poll all three until every record is consumed once and partitions are spread.
	ctx := ctxT(t, 60*time.Second)
	seen := map[string]bool{}
	var smu sync.Mutex
	poll := func(cl *kgo.Client, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := cl.PollFetches(pctx)
			cancel()
			smu.Lock()
			for _, r := range fs.Records() {
				seen[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = true
			}
			smu.Unlock()
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, cl := range []*kgo.Client{a, b, c} {
		wg.Add(1)
		go func(cl *kgo.Client) { defer wg.Done(); poll(cl, stop) }(cl)
	}
	wait.For(t, time.Minute, "three members with two partitions each and every record seen", func() bool {
		mu.Lock()
		defer mu.Unlock()
		smu.Lock()
		defer smu.Unlock()
		return len(assigned["a"]) == 2 && len(assigned["b"]) == 2 && len(assigned["c"]) == 2 && len(seen) == 600
	})
	// c leaves: a and b take its partitions.
	close(stop)
	wg.Wait()
	c.Close()
	stop = make(chan struct{})
	for _, cl := range []*kgo.Client{a, b} {
		wg.Add(1)
		go func(cl *kgo.Client) { defer wg.Done(); poll(cl, stop) }(cl)
	}
	wait.For(t, time.Minute, "a and b share all six partitions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(assigned["a"])+len(assigned["b"]) == 6 && len(assigned["a"]) == 3
	})
	// c's own commits ran every 200 ms, so the records it read last may not be
	// committed: a and b read them again from c's last commit and their
	// auto-commits carry every partition to its end.
	var offs kadm.OffsetResponses
	wait.For(t, time.Minute, "every partition committed at its end, 100", func() bool {
		var err error
		if offs, err = tb.admin().FetchOffsets(ctx, "g1"); err != nil {
			return false
		}
		for p := int32(0); p < 6; p++ {
			if o, ok := offs.Lookup("grp", p); !ok || o.At != 100 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	a.Close()
	b.Close()
	// Committed offsets stay where they were: a new member resumes at the end, not from the start.
	offs, err := tb.admin().FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 6; p++ {
		if o, ok := offs.Lookup("grp", p); !ok || o.At != 100 {
			t.Fatalf("partition %d committed %d, want 100", p, o.At)
		}
	}
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), &kgo.Record{Topic: "grp", Partition: 0, Value: []byte("after")})
	d := member("d")
	got := consumeN(t, d, 1, 30*time.Second)
	if string(got[0].Value) != "after" || got[0].Offset != 100 {
		t.Fatalf("resumed at %d %q, want offset 100 'after'", got[0].Offset, got[0].Value)
	}
}

func TestLocalRetentionByBytesAndTime(t *testing.T) {
	tb := startBroker(t, "log.retention.check.interval.ms=100")
	tb.createTopic("bybytes", 1, map[string]*string{
		"remote.storage.enable": kadm.StringPtr("false"),
		"segment.bytes":         kadm.StringPtr("4096"),
		"retention.bytes":       kadm.StringPtr("16384"),
	})
	tb.createTopic("bytime", 1, map[string]*string{
		"remote.storage.enable": kadm.StringPtr("false"),
		"segment.bytes":         kadm.StringPtr("4096"),
		"retention.ms":          kadm.StringPtr("60000"),
	})
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	old := time.Now().Add(-time.Hour)
	for i := 0; i < 40; i++ {
		var recs []*kgo.Record
		for j := 0; j < 20; j++ {
			recs = append(recs,
				&kgo.Record{Topic: "bybytes", Value: randomBytes(60)},
				&kgo.Record{Topic: "bytime", Value: randomBytes(60), Timestamp: old})
		}
		produceSync(t, prod, recs...)
	}
	ctx := ctxT(t, 30*time.Second)
	adm := tb.admin()
	wait.Eventually(t, "retention moves both log starts", func() bool {
		starts, err := adm.ListStartOffsets(ctx, "bybytes", "bytime")
		if err != nil {
			return false
		}
		b, _ := starts.Lookup("bybytes", 0)
		tm, _ := starts.Lookup("bytime", 0)
		return b.Offset > 0 && tm.Offset > 0
	})
	// retention.bytes keeps at least the limit; time retention empties the
	// old log. (A retention pass during the produce moved the log start
	// already: the next one brings the size down.)
	size := func() int64 {
		var n int64
		for _, sg := range tb.srv.topics.get("bybytes").partition(0).log.Local().Segments() {
			n += sg.Size
		}
		return n
	}
	wait.Eventually(t, "bybytes down to about retention.bytes", func() bool { return size() <= 16384+4096 })
	if n := size(); n < 16384-4096 {
		t.Fatalf("bybytes holds %d bytes, want about retention.bytes (16384)", n)
	}
	// Reading below the log start is out of range; from the start it works.
	starts, _ := adm.ListStartOffsets(ctx, "bybytes")
	b, _ := starts.Lookup("bybytes", 0)
	cons := tb.client(kgo.ConsumeTopics("bybytes"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if got := consumeN(t, cons, 1, 10*time.Second); got[0].Offset != b.Offset {
		t.Fatalf("consumed from %d, log start %d", got[0].Offset, b.Offset)
	}
}

// randomBytes makes incompressible values.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}
