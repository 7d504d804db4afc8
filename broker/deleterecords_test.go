package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/metadata"
)

// deleteRecords asks DeleteRecords through kadm for one partition and
// returns its answer.
func deleteRecords(t *testing.T, tb *testBroker, topic string, p int32, offset int64) kadm.DeleteRecordsResponse {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: p, At: offset, LeaderEpoch: -1})
	resp, err := tb.admin().DeleteRecords(ctxT(t, 20*time.Second), os)
	if err != nil {
		t.Fatalf("delete records %s/%d at %d: %v", topic, p, offset, err)
	}
	r, ok := resp.Lookup(topic, p)
	if !ok {
		t.Fatalf("delete records %s/%d: no answer for the partition: %+v", topic, p, resp)
	}
	return r
}

// deleteRecordsRaw sends one DeleteRecords request at version v.
func deleteRecordsRaw(t *testing.T, tb *testBroker, v int16, topic string, p int32, offset int64) kmsg.DeleteRecordsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.Version = v
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: topic, Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: p, Offset: offset}}}}
	resp, err := tb.raw().request(req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.(*kmsg.DeleteRecordsResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		t.Fatalf("delete records: response %+v", r)
	}
	return r.Topics[0].Partitions[0]
}

// checkStart asserts the partition's log start offset as clients see it:
// ListOffsets earliest (and earliest-local, which is never below it), a
// timestamp lookup before every record, a fetch just below it
// (OFFSET_OUT_OF_RANGE with the start), a fetch at it, and a consumer from
// the start that begins there and reads every record up to want's end.
func checkStart(t *testing.T, tb *testBroker, stage, topic string, p int32, want []*kgo.Record, start int64) {
	t.Helper()
	starts, err := tb.admin().ListStartOffsets(ctxT(t, 20*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup(topic, p); o.Err != nil || o.Offset != start {
		t.Fatalf("%s: ListOffsets earliest %d (%v), want %d", stage, o.Offset, o.Err, start)
	}
	if got := listOffsetRaw(t, tb, topic, p, -4); got < start {
		t.Fatalf("%s: ListOffsets earliest-local %d, below the log start %d", stage, got, start)
	}
	byTime, err := tb.admin().ListOffsetsAfterMilli(ctxT(t, 20*time.Second), 0, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup(topic, p); o.Offset != start {
		t.Fatalf("%s: ListOffsets for timestamp 0: %d, want the log start %d", stage, o.Offset, start)
	}
	if start > 0 {
		fr := fetchAt(t, tb, topic, p, start-1)
		if fr.ErrorCode != kerr.OffsetOutOfRange.Code || fr.LogStartOffset != start {
			t.Fatalf("%s: fetch at %d: error %d, log start %d; want OFFSET_OUT_OF_RANGE and %d", stage, start-1, fr.ErrorCode, fr.LogStartOffset, start)
		}
		if fr := fetchAt(t, tb, topic, p, 0); fr.ErrorCode != kerr.OffsetOutOfRange.Code {
			t.Fatalf("%s: fetch at 0: error %d, want OFFSET_OUT_OF_RANGE", stage, fr.ErrorCode)
		}
	}
	if start < int64(len(want)) {
		fr := fetchAt(t, tb, topic, p, start)
		if fr.ErrorCode != 0 || len(fr.RecordBatches) == 0 || fr.LogStartOffset != start {
			t.Fatalf("%s: fetch at the log start %d: error %d, %d bytes, log start %d", stage, start, fr.ErrorCode, len(fr.RecordBatches), fr.LogStartOffset)
		}
	}
	cons := tb.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))
	defer cons.Close()
	checkFrom(t, want, start, consumeN(t, cons, len(want)-int(start), 30*time.Second))
}

// DeleteRecords (KIP-107) on a topic that does not tier: the log start
// offset moves to the offset given, inside a segment; the segments wholly
// below it leave the disk; ListOffsets earliest returns it, a fetch below it
// gets OFFSET_OUT_OF_RANGE and a consumer from the start begins there; a
// deletion below the start changes nothing; an offset beyond the high
// watermark gets OFFSET_OUT_OF_RANGE; -1 means the high watermark. All of
// it holds after a restart.
func TestDeleteRecordsLocal(t *testing.T) {
	tb := startBroker(t)
	const topic = "purge"
	tb.createTopic(topic, 1, map[string]*string{"segment.bytes": kadm.StringPtr("2048"), "remote.storage.enable": kadm.StringPtr("false")})
	want := recordsFor(topic, 300, 1)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(10))
	for i := 0; i < len(want); i += 10 {
		produceSync(t, prod, want[i:i+10]...)
	}
	part := tb.srv.topics.get(topic).partition(0)
	segs := part.log.Local().Segments()
	if len(segs) < 4 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	// An offset inside the third segment, not at its base.
	cut := segs[2].BaseOffset + 3
	if cut >= segs[2].NextOffset {
		t.Fatalf("third segment too short: %+v", segs[2])
	}

	r := deleteRecords(t, tb, topic, 0, cut)
	if r.Err != nil || r.LowWatermark != cut {
		t.Fatalf("delete records to %d: low watermark %d, err %v", cut, r.LowWatermark, r.Err)
	}
	if got := part.log.Local().Segments(); got[0].BaseOffset != segs[2].BaseOffset {
		t.Fatalf("local segments now start at %d, want %d (the two below the cut deleted, the one holding it kept)", got[0].BaseOffset, segs[2].BaseOffset)
	}
	if off, ok, err := tb.meta.LogStartOffset(topic, 0); err != nil || !ok || off != cut {
		t.Fatalf("recorded log start %d %v %v, want %d", off, ok, err, cut)
	}
	checkStart(t, tb, "after DeleteRecords", topic, 0, want, cut)

	// Below the start: nothing changes, the answer is the current start.
	if r := deleteRecords(t, tb, topic, 0, cut-2); r.Err != nil || r.LowWatermark != cut {
		t.Fatalf("delete records below the start: low watermark %d, err %v", r.LowWatermark, r.Err)
	}
	// Beyond the high watermark, and a negative offset other than -1.
	for _, off := range []int64{int64(len(want)) + 1, -2} {
		if r := deleteRecords(t, tb, topic, 0, off); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
			t.Fatalf("delete records to %d (high watermark %d): err %v, want OFFSET_OUT_OF_RANGE", off, len(want), r.Err)
		}
	}
	// An unknown partition and topic, every version.
	for v := int16(0); v <= 2; v++ {
		if sp := deleteRecordsRaw(t, tb, v, topic, 7, 1); sp.ErrorCode != kerr.UnknownTopicOrPartition.Code || sp.LowWatermark != -1 {
			t.Fatalf("v%d unknown partition: code %d low watermark %d", v, sp.ErrorCode, sp.LowWatermark)
		}
		if sp := deleteRecordsRaw(t, tb, v, "nope", 0, 1); sp.ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("v%d unknown topic: code %d", v, sp.ErrorCode)
		}
		if sp := deleteRecordsRaw(t, tb, v, topic, 0, cut); sp.ErrorCode != 0 || sp.LowWatermark != cut {
			t.Fatalf("v%d at the start: code %d low watermark %d", v, sp.ErrorCode, sp.LowWatermark)
		}
	}
	checkStart(t, tb, "after the refusals", topic, 0, want, cut)

	tb.restart()
	part = tb.srv.topics.get(topic).partition(0)
	checkStart(t, tb, "after a restart", topic, 0, want, cut)

	// -1: the high watermark. Everything is gone; new records start there.
	hw := int64(len(want))
	if r := deleteRecords(t, tb, topic, 0, -1); r.Err != nil || r.LowWatermark != hw {
		t.Fatalf("delete records to the high watermark: low watermark %d, err %v", r.LowWatermark, r.Err)
	}
	if got := part.log.Local().Segments(); len(got) != 1 || got[0].BaseOffset != hw {
		t.Fatalf("after deleting everything, local segments %+v", got)
	}
	checkStart(t, tb, "after deleting to the high watermark", topic, 0, want, hw)
	tb.restart()
	checkStart(t, tb, "after deleting to the high watermark and a restart", topic, 0, want, hw)
	more := recordsFor(topic, 350, 1)
	prod = tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	produceSync(t, prod, more[hw:]...)
	checkStart(t, tb, "after producing again", topic, 0, more, hw)
}

// DeleteRecords on a tiered topic, to an offset inside the remote part: the
// remote segments wholly below it are deleted from the bucket by the tier
// (asynchronously), the one holding it stays; fetches below get
// OFFSET_OUT_OF_RANGE and reads from the new start come from the remote
// tier. A second deletion followed at once by a restart is carried out by
// the restarted broker (the start was durable before the response).
func TestDeleteRecordsTiered(t *testing.T) {
	const topic = "tiered-purge"
	mio, bucket, tb, _ := tieredOnMinIO(t, "dr", topic)
	all := recordsFor(topic, 400, 2) // what tieredOnMinIO produced
	var want []*kgo.Record
	for _, r := range all {
		if r.Partition == 0 {
			want = append(want, r)
		}
	}
	// Several more remote segments: uncompressed, small batches.
	more := recordsFor(topic, 300, 1)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := 0; i < len(more); i += 10 {
		produceSync(t, prod, more[i:i+10]...)
	}
	want = append(want, more...)
	waitTiered(t, tb, topic, 2)
	ctx := ctxT(t, 3*time.Minute)
	keys := func() string {
		t.Helper()
		ks, err := mio.ObjectKeys(ctx, bucket, "")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ks, "\n")
	}
	remote, err := tb.meta.RemoteSegments(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(remote) < 4 {
		t.Fatalf("want several remote segments, got %d", len(remote))
	}
	for _, s := range remote {
		if s.State != metadata.CopyFinished || !strings.Contains(keys(), "-"+s.UploadID) {
			t.Fatalf("remote segment %+v not in the bucket", s)
		}
	}
	localStart := tb.srv.topics.get(topic).partition(0).log.Local().LogStartOffset()

	// checkRemote waits until the remote segments ending below cut are gone
	// from the index and the bucket, and checks the others are still there.
	checkRemote := func(stage string, cut int64) {
		t.Helper()
		wait.For(t, 2*time.Minute, stage+": remote segments below the cut deleted", func() bool {
			ks := keys()
			for _, s := range remote {
				if s.EndOffset < cut && strings.Contains(ks, "-"+s.UploadID) {
					return false
				}
			}
			start, ok := tb.srv.tier.LogStartOffset(topic, 0)
			return ok && start <= cut
		})
		ks := keys()
		for _, s := range remote {
			if s.EndOffset >= cut && !strings.Contains(ks, "-"+s.UploadID) {
				t.Fatalf("%s: remote segment %d-%d (holding offsets at or above %d) deleted", stage, s.BaseOffset, s.EndOffset, cut)
			}
		}
	}
	checkRemoteRead := func(stage string, start int64) {
		t.Helper()
		before := tb.srv.Metrics().RemoteFetchBytes()
		checkStart(t, tb, stage, topic, 0, want, start)
		if tb.srv.Metrics().RemoteFetchBytes() == before {
			t.Fatalf("%s: nothing was served from the remote tier", stage)
		}
		// Partition 1 is untouched.
		if got := listOffsetRaw(t, tb, topic, 1, -2); got != 0 {
			t.Fatalf("%s: partition 1 earliest %d, want 0", stage, got)
		}
	}

	// Inside the third remote segment.
	cut := remote[2].BaseOffset + 2
	if cut > remote[2].EndOffset || cut >= localStart {
		t.Fatalf("third remote segment %+v too short, or local start %d", remote[2], localStart)
	}
	if r := deleteRecords(t, tb, topic, 0, cut); r.Err != nil || r.LowWatermark != cut {
		t.Fatalf("delete records to %d: low watermark %d, err %v", cut, r.LowWatermark, r.Err)
	}
	checkRemoteRead("after DeleteRecords", cut)
	checkRemote("after DeleteRecords", cut)
	checkRemoteRead("after the remote deletion", cut)

	tb.restart()
	checkRemoteRead("after a restart", cut)

	// Into the fourth remote segment, then a restart straight away.
	cut2 := remote[3].BaseOffset + 1
	if r := deleteRecords(t, tb, topic, 0, cut2); r.Err != nil || r.LowWatermark != cut2 {
		t.Fatalf("delete records to %d: low watermark %d, err %v", cut2, r.LowWatermark, r.Err)
	}
	tb.restart()
	checkRemote("deleted, then restarted", cut2)
	checkRemoteRead("deleted, then restarted", cut2)
}
