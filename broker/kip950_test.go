package broker

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
)

// alterTopic sends one IncrementalAlterConfigs for topic and returns the
// resource's error (nil, or a *kerr.Error with the broker's message).
func alterTopic(t *testing.T, tb *testBroker, topic string, validateOnly bool, ops ...kadm.AlterConfig) error {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	var resp kadm.AlterConfigsResponses
	var err error
	if validateOnly {
		resp, err = tb.admin().ValidateAlterTopicConfigs(ctx, ops, topic)
	} else {
		resp, err = tb.admin().AlterTopicConfigs(ctx, ops, topic)
	}
	if err != nil {
		t.Fatalf("IncrementalAlterConfigs: %v", err)
	}
	if len(resp) != 1 {
		t.Fatalf("IncrementalAlterConfigs: %d resources", len(resp))
	}
	if resp[0].Err != nil {
		return errors.Join(resp[0].Err, errors.New(resp[0].ErrMessage))
	}
	return nil
}

func set(k, v string) kadm.AlterConfig { return kadm.AlterConfig{Name: k, Value: kadm.StringPtr(v)} }
func unset(k string) kadm.AlterConfig  { return kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k} }

// describeTopicValue is a topic config's effective value as DescribeConfigs shows it.
func describeTopicValue(t *testing.T, tb *testBroker, topic, key string) string {
	t.Helper()
	rc, err := tb.admin().DescribeTopicConfigs(ctxT(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Configs {
		if e.Key == key {
			return e.MaybeValue()
		}
	}
	t.Fatalf("DescribeConfigs of %s has no %s", topic, key)
	return ""
}

// checkFrom asserts got holds want's records of one partition from offset
// from on, in order, with their offsets.
func checkFrom(t *testing.T, want []*kgo.Record, from int64, got []*kgo.Record) {
	t.Helper()
	if int64(len(got)) != int64(len(want))-from {
		t.Fatalf("got %d records, want %d (offsets %d to %d)", len(got), int64(len(want))-from, from, len(want)-1)
	}
	for i, r := range got {
		off := from + int64(i)
		w := want[off]
		if r.Offset != off || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) {
			t.Fatalf("record %d: offset %d key %q, want offset %d key %q", i, r.Offset, r.Key, off, w.Key)
		}
	}
}

// remote.log.copy.disable=true (KIP-950) makes the remote tier read-only: no
// new segment is uploaded, the remote data is still served and still expired
// by retention.ms, and the local segments above the last uploaded one stay.
// Setting it back to false resumes the uploads.
func TestRemoteLogCopyDisable(t *testing.T) {
	tb := startBroker(t, tierSets...)
	const topic = "readonly"
	tb.createTopic(topic, 1, tieredTopic)
	now := time.Now()
	// 200 records three hours old, then 200 of now: retention.ms=1h set
	// later expires the old segments only.
	want := append(timedRecords(topic, 200, 1, now.Add(-3*time.Hour)), timedRecords(topic, 200, 1, now)...)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50))
	for i := 0; i < len(want); i += 50 {
		produceSync(t, prod, want[i:i+50]...)
	}
	waitTiered(t, tb, topic, 1)
	part := tb.srv.topics.get(topic).partition(0)
	tiered, _ := tb.srv.tier.HighestOffset(topic, 0)

	// Kafka's rule: with copy disabled local.retention.* must be -2 or
	// retention.*; the topic's local.retention.bytes=0 is refused, and
	// nothing changes.
	err := alterTopic(t, tb, topic, false, set("remote.log.copy.disable", "true"))
	if !errors.Is(err, kerr.InvalidConfig) || !strings.Contains(err.Error(), "local.retention.bytes") || !strings.Contains(err.Error(), "remote.log.copy.disable") {
		t.Fatalf("copy disable with local.retention.bytes=0: %v, want INVALID_CONFIG naming both keys", err)
	}
	if v := describeTopicValue(t, tb, topic, "remote.log.copy.disable"); v != "false" {
		t.Fatalf("after a refused alter remote.log.copy.disable = %q", v)
	}
	if err := alterTopic(t, tb, topic, false, set("remote.log.copy.disable", "true"), unset("local.retention.bytes")); err != nil {
		t.Fatal(err)
	}
	if v := describeTopicValue(t, tb, topic, "remote.log.copy.disable"); v != "true" {
		t.Fatalf("remote.log.copy.disable = %q", v)
	}

	// More records of now: several closed segments, never uploaded.
	more := timedRecords(topic, 400, 1, now)
	for _, r := range more {
		r.Key = append([]byte("m"), r.Key...)
	}
	for i := 0; i < len(more); i += 50 {
		produceSync(t, prod, more[i:i+50]...)
	}
	want = append(want, more...)
	if n := len(part.log.Local().Segments()); n < 3 {
		t.Fatalf("%d local segments, want several closed ones", n)
	}

	// Everything is served from offset 0: the start from the remote tier.
	before := tb.srv.Metrics().RemoteFetchBytes()
	cons := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(64<<10))
	checkFrom(t, want, 0, consumeN(t, cons, len(want), 60*time.Second))
	cons.Close()
	if tb.srv.Metrics().RemoteFetchBytes() == before {
		t.Fatal("nothing was served from the remote tier")
	}

	// retention.ms=1h: the three-hour-old remote segments expire. The rounds
	// that delete them run after the new segments closed, with copy disabled.
	if err := alterTopic(t, tb, topic, false, set("retention.ms", "3600000")); err != nil {
		t.Fatal(err)
	}
	var start int64
	wait.For(t, 2*time.Minute, "old remote segments expired", func() bool {
		var ok bool
		start, ok = tb.srv.tier.LogStartOffset(topic, 0)
		return ok && start > 0
	})
	if start > 200 {
		t.Fatalf("remote start %d: retention deleted records of now (the first is 200)", start)
	}
	if hi, ok := tb.srv.tier.HighestOffset(topic, 0); !ok || hi != tiered {
		t.Fatalf("highest remote offset %d %v, want %d: a segment was uploaded with copy disabled", hi, ok, tiered)
	}
	if ls := part.log.LocalLogStartOffset(); ls != tiered+1 {
		t.Fatalf("local log start %d, want %d: a segment that is not uploaded was deleted", ls, tiered+1)
	}
	if got := listOffsetRaw(t, tb, topic, 0, -2); got != start {
		t.Fatalf("earliest %d, want the remote start %d", got, start)
	}
	cons = tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(64<<10))
	checkFrom(t, want, start, consumeN(t, cons, len(want)-int(start), 60*time.Second))
	cons.Close()

	// Back to false: the closed segments are uploaded.
	if err := alterTopic(t, tb, topic, false, set("remote.log.copy.disable", "false")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Minute, "uploads resumed", func() bool {
		segs := part.log.Local().Segments()
		active := segs[len(segs)-1].BaseOffset
		hi, ok := tb.srv.tier.HighestOffset(topic, 0)
		return ok && hi+1 == active && active > tiered+1
	})
}

// remote.storage.enable=false (KIP-950): refused without
// remote.log.delete.on.disable=true; with it, the topic keeps serving its
// local log, its log start becomes the local log start, and its remote
// objects are deleted in the background, across a restart while the store
// is down too. Enabling it again tiers afresh.
func TestRemoteStorageDisableDeletesRemoteData(t *testing.T) {
	const topic = "disabled"
	mio, bucket, tb, prod := tieredOnMinIO(t, "kip950", topic)
	want := recordsFor(topic, 400, 2) // what tieredOnMinIO produced
	ctx := ctxT(t, 2*time.Minute)
	segmentKeys := func() []string {
		t.Helper()
		keys, err := mio.ObjectKeys(ctx, bucket, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range keys {
			if strings.Contains(k, "/"+topic+"/") && !strings.HasPrefix(k, "kip950/manifests/") {
				out = append(out, k)
			}
		}
		return out
	}
	keysBefore := segmentKeys()
	if len(keysBefore) == 0 {
		t.Fatal("no segment objects in the bucket")
	}
	perPart := func(p int32) []*kgo.Record {
		var out []*kgo.Record
		for _, r := range want {
			if r.Partition == p {
				out = append(out, r)
			}
		}
		return out
	}
	pending := func() []DeletionStatus {
		t.Helper()
		d, err := tb.srv.PendingDeletions()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// Refused without remote.log.delete.on.disable, as Kafka does; even as
	// validate-only. Nothing changes.
	for _, vo := range []bool{false, true} {
		err := alterTopic(t, tb, topic, vo, set("remote.storage.enable", "false"))
		if !errors.Is(err, kerr.InvalidConfig) || !strings.Contains(err.Error(), "remote.log.delete.on.disable=true") {
			t.Fatalf("disable without delete.on.disable (validate only %v): %v", vo, err)
		}
	}
	err := alterTopic(t, tb, topic, false, set("remote.storage.enable", "false"), set("remote.log.delete.on.disable", "false"))
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("disable with delete.on.disable=false: %v", err)
	}
	if v := describeTopicValue(t, tb, topic, "remote.storage.enable"); v != "true" {
		t.Fatalf("after the refusals remote.storage.enable = %q", v)
	}
	if start, ok := tb.srv.tier.LogStartOffset(topic, 0); !ok || start != 0 || len(pending()) != 0 || len(segmentKeys()) != len(keysBefore) {
		t.Fatalf("a refused alter changed something: remote start %d %v, pending %+v", start, ok, pending())
	}
	// Validate-only with it: accepted, and still nothing changes.
	if err := alterTopic(t, tb, topic, true, set("remote.storage.enable", "false"), set("remote.log.delete.on.disable", "true")); err != nil {
		t.Fatalf("validate only: %v", err)
	}
	if v := describeTopicValue(t, tb, topic, "remote.storage.enable"); v != "true" || len(pending()) != 0 {
		t.Fatalf("validate only changed the topic: %q %+v", v, pending())
	}

	// With the store down, so that the deletion cannot run yet.
	mio.Stop()
	if err := alterTopic(t, tb, topic, false, set("remote.storage.enable", "false"), set("remote.log.delete.on.disable", "true")); err != nil {
		t.Fatalf("disable with delete.on.disable: %v", err)
	}
	localStart := map[int32]int64{}
	for p := int32(0); p < 2; p++ {
		localStart[p] = tb.srv.topics.get(topic).partition(p).log.LocalLogStartOffset()
		if localStart[p] == 0 {
			t.Fatalf("partition %d: nothing was local-only", p)
		}
	}
	checkLocalOnly := func(stage string) {
		t.Helper()
		for p := int32(0); p < 2; p++ {
			if off, ok := tb.srv.tier.LogStartOffset(topic, p); ok {
				t.Fatalf("%s: partition %d still has a remote start %d", stage, p, off)
			}
			if got := listOffsetRaw(t, tb, topic, p, -2); got != localStart[p] {
				t.Fatalf("%s: partition %d earliest %d, want the local start %d", stage, p, got, localStart[p])
			}
			if off, _, err := tb.srv.meta.LogStartOffset(topic, p); err != nil || off < localStart[p] {
				t.Fatalf("%s: partition %d recorded log start %d (%v), below the local start %d", stage, p, off, err, localStart[p])
			}
			cons := tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
			pw := perPart(p)
			checkFrom(t, pw, localStart[p], consumeN(t, cons, len(pw)-int(localStart[p]), 30*time.Second))
			cons.Close()
			// Offset 0 went with the remote tier.
			fr := fetchAt(t, tb, topic, p, 0)
			if fr.ErrorCode != kerr.OffsetOutOfRange.Code || fr.LogStartOffset != localStart[p] {
				t.Fatalf("%s: fetch at 0 of partition %d: code %d log start %d", stage, p, fr.ErrorCode, fr.LogStartOffset)
			}
		}
	}
	checkLocalOnly("after the disablement")
	if v := describeTopicValue(t, tb, topic, "remote.storage.enable"); v != "false" {
		t.Fatalf("remote.storage.enable = %q", v)
	}
	wait.For(t, 2*time.Minute, "a failed remote deletion reported", func() bool {
		d := pending()
		return len(d) == 1 && d[0].RemoteOnly && d[0].Topic == topic && d[0].RemoteSegments > 0 && d[0].LastError != ""
	})
	if id := tb.srv.topics.get(topic).id; pending()[0].TopicID != hex.EncodeToString(id[:]) {
		t.Fatalf("pending deletion names topic ID %s, want %s", pending()[0].TopicID, hex.EncodeToString(id[:]))
	}

	// A restart with the store still down: the deletion stays pending, the
	// remote segments are not attached again.
	tb.restart()
	if d := pending(); len(d) != 1 || !d[0].RemoteOnly || d[0].RemoteSegments == 0 {
		t.Fatalf("after a restart: %+v", d)
	}
	checkLocalOnly("after a restart")
	if err := mio.Restart(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Minute, "the remote data deleted", func() bool { return len(pending()) == 0 })
	if left := segmentKeys(); len(left) != 0 {
		t.Fatalf("segment objects left in the bucket: %v", left)
	}
	checkLocalOnly("after the purge")
	if tb.srv.topics.get(topic) == nil {
		t.Fatal("the topic is gone")
	}

	// Enabling it again tiers afresh from the local log.
	prod.Close()
	prod = tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50))
	more := recordsFor(topic, 800, 2) // several segments of 4 KiB each
	for i := 0; i < len(more); i += 50 {
		produceSync(t, prod, more[i:i+50]...)
	}
	if err := alterTopic(t, tb, topic, false, set("remote.storage.enable", "true")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Minute, "tiering again", func() bool {
		for p := int32(0); p < 2; p++ {
			start, ok := tb.srv.tier.LogStartOffset(topic, p)
			if !ok || start < localStart[p] {
				return false
			}
		}
		return len(segmentKeys()) > 0
	})
}

// fetchAt sends one Fetch v12 for a partition at offset.
func fetchAt(t *testing.T, tb *testBroker, topic string, p int32, offset int64) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = p, offset, 1<<20, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := tb.raw().request(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
}
