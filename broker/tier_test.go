package broker

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/internal/wait"
)

// tierSets make a broker tier quickly: small chunks, a fast task interval.
var tierSets = []string{
	"remote.log.manager.task.interval.ms=100",
	"remote.chunk.bytes=8192",
	"remote.readahead.chunks=2",
	"log.retention.check.interval.ms=100",
}

// tieredTopic is a topic of 4 KiB segments that keeps nothing local once uploaded.
var tieredTopic = map[string]*string{
	"segment.bytes":         kadm.StringPtr("4096"),
	"local.retention.bytes": kadm.StringPtr("0"),
	"retention.ms":          kadm.StringPtr("-1"),
}

// waitTiered waits until every closed segment of the topic is uploaded and
// gone from local disk: the local log starts above offset 0 and the remote
// tier holds everything below it.
func waitTiered(t *testing.T, tb *testBroker, topic string, partitions int32) {
	t.Helper()
	wait.For(t, time.Minute, "closed segments uploaded and deleted locally", func() bool {
		for p := int32(0); p < partitions; p++ {
			part := tb.srv.topics.get(topic).partition(p)
			segs := part.log.Local().Segments()
			if len(segs) != 1 || part.log.LocalLogStartOffset() == 0 {
				return false // closed segments still local
			}
			hi, ok := tb.srv.tier.HighestOffset(topic, p)
			if !ok || hi+1 != part.log.LocalLogStartOffset() {
				return false
			}
			if start, ok := tb.srv.tier.LogStartOffset(topic, p); !ok || start != 0 {
				return false
			}
		}
		return true
	})
}

// timedRecords makes n records with timestamps one second apart from base.
func timedRecords(topic string, n int, partitions int, base time.Time) []*kgo.Record {
	recs := recordsFor(topic, n, partitions)
	for i, r := range recs {
		r.Timestamp = base.Add(time.Duration(i) * time.Second)
	}
	return recs
}

func runTierScenario(t *testing.T, tb *testBroker) {
	const topic = "history"
	tb.createTopic(topic, 2, tieredTopic)
	base := time.UnixMilli(1_600_000_000_000)
	want := timedRecords(topic, 2000, 2, base)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50))
	for i := 0; i < len(want); i += 50 {
		produceSync(t, prod, want[i:i+50]...)
	}
	waitTiered(t, tb, topic, 2)

	replay := func() {
		t.Helper()
		before := tb.srv.Metrics().RemoteFetchBytes()
		cons := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(64<<10))
		got := consumeN(t, cons, len(want), 60*time.Second)
		checkSame(t, want, got)
		if tb.srv.Metrics().RemoteFetchBytes() == before {
			t.Fatal("nothing was served from the remote tier")
		}
	}
	replay()

	// Offsets: earliest is the remote start, earliest-local and latest-tiered meet.
	adm := tb.admin()
	ctx := ctxT(t, 20*time.Second)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if o, _ := starts.Lookup(topic, p); o.Offset != 0 {
			t.Fatalf("partition %d earliest %d, want 0", p, o.Offset)
		}
		local := listOffsetRaw(t, tb, topic, p, -4)
		tiered := listOffsetRaw(t, tb, topic, p, -5)
		if local <= 0 || tiered != local-1 {
			t.Fatalf("partition %d: earliest-local %d, latest-tiered %d", p, local, tiered)
		}
	}
	// A timestamp in a remote segment: record 100 of partition 0 is want[200].
	ts := want[200].Timestamp.UnixMilli()
	lo, err := adm.ListOffsetsAfterMilli(ctx, ts-500, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup(topic, 0); o.Offset != 100 || o.Timestamp != ts {
		t.Fatalf("by timestamp: offset %d ts %d, want 100 at %d", o.Offset, o.Timestamp, ts)
	}

	// The same after a restart.
	tb.restart()
	replay()
}

func TestTierFilesystemReplayFromZero(t *testing.T) {
	tb := startBroker(t, tierSets...)
	runTierScenario(t, tb)
}

func TestTierMinIOReplayFromZero(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	tb := startBroker(t, append([]string{minioURL(mio, bucket, "cluster-a")}, tierSets...)...)
	runTierScenario(t, tb)
	// What really is in the bucket, seen with minio-go: a .log and a .idx per
	// remote segment, under the prefix, nothing else.
	keys, err := mio.ObjectKeys(ctxT(t, 10*time.Second), bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	var logs, idxs int
	for _, k := range keys {
		switch {
		case !strings.HasPrefix(k, "cluster-a/"):
			t.Fatalf("object %s outside the prefix", k)
		case strings.HasSuffix(k, ".log"):
			logs++
		case strings.HasSuffix(k, ".idx"):
			idxs++
		case strings.HasPrefix(k, "cluster-a/manifests/history/"): // the topic's manifest (tier/manifest.go)
		default:
			t.Fatalf("unexpected object %s", k)
		}
	}
	remote := 0
	for _, p := range []int32{0, 1} {
		for _, st := range tb.mgr.Status("history") {
			if st.Partition == p {
				remote += len(st.Remote)
			}
		}
	}
	if logs == 0 || logs != idxs || logs != remote {
		t.Fatalf("%d .log and %d .idx objects for %d remote segments", logs, idxs, remote)
	}
}

func TestTierMinIODownThenBack(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	tb := startBroker(t, append([]string{minioURL(mio, bucket, "")}, tierSets...)...)
	const topic = "outage"
	tb.createTopic(topic, 1, tieredTopic)
	want := recordsFor(topic, 600, 1)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	for i := 0; i < 300; i += 50 {
		produceSync(t, prod, want[i:i+50]...)
	}
	waitTiered(t, tb, topic, 1)

	mio.Stop()
	// Produce and local fetches go on; segments wait on local disk.
	for i := 300; i < 600; i += 50 {
		produceSync(t, prod, want[i:i+50]...)
	}
	end := tb.srv.topics.get(topic).partition(0).log.LogEndOffset()
	if end != 600 {
		t.Fatalf("log end %d, want 600", end)
	}
	// A remote read fails with a retriable error, never with wrong data.
	r := tb.raw()
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	mresp, err := r.request(md)
	if err != nil {
		t.Fatal(err)
	}
	id := mresp.(*kmsg.MetadataResponse).Topics[0].TopicID
	freq := kmsg.NewPtrFetchRequest()
	freq.Version, freq.MaxBytes, freq.SessionEpoch = 13, 1<<20, -1
	freq.Topics = []kmsg.FetchRequestTopic{{TopicID: id, Partitions: []kmsg.FetchRequestTopicPartition{{FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}}}
	fresp, err := r.request(freq)
	if err != nil {
		t.Fatal(err)
	}
	fp := fresp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if fp.ErrorCode == 0 || len(fp.RecordBatches) != 0 {
		t.Fatalf("remote fetch with the store down: code %d, %d bytes", fp.ErrorCode, len(fp.RecordBatches))
	}
	// Local data is still served.
	local := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().At(590)))
	if got := consumeN(t, local, 10, 20*time.Second); got[0].Offset != 590 {
		t.Fatalf("local fetch from 590 got offset %d", got[0].Offset)
	}

	if err := mio.Restart(); err != nil {
		t.Fatal(err)
	}
	// The backlog uploads, and everything replays from 0.
	waitTiered(t, tb, topic, 1)
	cons := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	checkSame(t, want, consumeN(t, cons, len(want), 60*time.Second))
}

func minioURL(mio *minioserver.Server, bucket, prefix string) string {
	return fmt.Sprintf("remote.storage.url=s3://%s/%s?endpoint=%s&access_key=%s&secret_key=%s&region=us-east-1",
		bucket, prefix, mio.Endpoint, mio.AccessKey, mio.SecretKey)
}

// listOffsetRaw asks ListOffsets v9 for a special timestamp.
func listOffsetRaw(t *testing.T, tb *testBroker, topic string, p int32, ts int64) int64 {
	t.Helper()
	return listOffsetV(t, tb, topic, p, ts, 9)
}

// listOffsetV asks ListOffsets at version v for a special timestamp.
func listOffsetV(t *testing.T, tb *testBroker, topic string, p int32, ts int64, v int16) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = v
	req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: topic, Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: p, Timestamp: ts, CurrentLeaderEpoch: -1}}}}
	resp, err := tb.raw().request(req)
	if err != nil {
		t.Fatal(err)
	}
	sp := resp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		t.Fatalf("list offset %d: code %d", ts, sp.ErrorCode)
	}
	return sp.Offset
}

// ListOffsets v11's -6 (KIP-1023) is the first offset the remote tier does
// not hold: while the store is down and closed segments wait for upload it
// stays one past the last tiered offset, below the log end; once the backlog
// is uploaded it moves on.
func TestListOffsetsEarliestPendingUpload(t *testing.T) {
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	tb := startBroker(t, append([]string{minioURL(mio, bucket, "")}, tierSets...)...)
	const topic = "backlog"
	tb.createTopic(topic, 1, tieredTopic)
	want := recordsFor(topic, 400, 1)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := 0; i < 200; i += 50 {
		produceSync(t, prod, want[i:i+50]...)
	}
	waitTiered(t, tb, topic, 1)
	tiered := listOffsetV(t, tb, topic, 0, -5, 11)
	if got := listOffsetV(t, tb, topic, 0, -6, 11); got != tiered+1 {
		t.Fatalf("after the upload: -6 = %d, want %d", got, tiered+1)
	}

	mio.Stop()
	for i := 200; i < 400; i += 20 {
		produceSync(t, prod, want[i:i+20]...)
	}
	part := tb.srv.topics.get(topic).partition(0)
	if closed := len(part.log.Local().Segments()) - 1; closed < 2 {
		t.Fatalf("%d closed segments wait for upload, want a backlog", closed)
	}
	if got := listOffsetV(t, tb, topic, 0, -6, 11); got != tiered+1 || got >= part.log.LogEndOffset() {
		t.Fatalf("with a backlog: -6 = %d, want %d (log end %d)", got, tiered+1, part.log.LogEndOffset())
	}
	if got := listOffsetV(t, tb, topic, 0, -5, 11); got != tiered {
		t.Fatalf("with a backlog: -5 = %d, want %d", got, tiered)
	}

	if err := mio.Restart(); err != nil {
		t.Fatal(err)
	}
	waitTiered(t, tb, topic, 1)
	now := listOffsetV(t, tb, topic, 0, -5, 11)
	if now <= tiered {
		t.Fatalf("the backlog was not uploaded: -5 = %d", now)
	}
	if got, end := listOffsetV(t, tb, topic, 0, -6, 11), part.log.LogEndOffset(); (got != now+1 || got >= end) && got != -1 {
		t.Fatalf("after the backlog: -6 = %d, want %d or -1 (log end %d)", got, now+1, end)
	}
}

// tieredOnMinIO starts a broker tiering to a fresh MinIO bucket under prefix,
// creates a tiered topic of two partitions, produces 400 records to it and
// waits until its closed segments live only in the bucket.
func tieredOnMinIO(t *testing.T, prefix, topic string) (*minioserver.Server, string, *testBroker, *kgo.Client) {
	t.Helper()
	mio := minioserver.Start(t)
	bucket := mio.NewBucket(t)
	tb := startBroker(t, append([]string{minioURL(mio, bucket, prefix)}, tierSets...)...)
	tb.createTopic(topic, 2, tieredTopic)
	prod := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(50))
	want := recordsFor(topic, 400, 2)
	for i := 0; i < len(want); i += 50 {
		produceSync(t, prod, want[i:i+50]...)
	}
	waitTiered(t, tb, topic, 2)
	return mio, bucket, tb, prod
}
