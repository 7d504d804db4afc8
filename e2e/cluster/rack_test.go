package clustere2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/kwire"
	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/tier"
)

// recordsBy counts, per broker, the records a consumer read from it.
type recordsBy struct {
	mu sync.Mutex
	n  map[int32]int
}

func (h *recordsBy) OnFetchBatchRead(m kgo.BrokerMetadata, _ string, _ int32, fm kgo.FetchBatchMetrics) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[m.NodeID] += fm.NumRecords
}

func (h *recordsBy) get() map[int32]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int32]int{}
	for id, n := range h.n {
		out[id] = n
	}
	return out
}

// consumeN reads n more records with cl into got (offsets must follow on).
func consumeN(t *testing.T, ctx context.Context, cl *kgo.Client, n int, got *[]*kgo.Record) {
	t.Helper()
	want := len(*got) + n
	for len(*got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(*got), want, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { *got = append(*got, r) })
	}
}

// checkHistory fails unless got holds offsets 0..n-1 in order with the
// values produced: nothing lost, nothing twice.
func checkHistory(t *testing.T, got []*kgo.Record, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf("v%04d", i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
}

// KIP-392: three brokers in racks r1, r2, r3 with the rack-aware replica
// selector; node 1 (r1) leads a partition replicated on all three. A
// consumer with client.rack r2 is sent by the leader to node 2 and reads
// every record there; a consumer without a rack reads from the leader. Once
// node 2 is killed, the rack consumer goes back to the leader (franz-go
// rechecks its preferred replica) and reads on: nothing lost or duplicated.
func TestClusterFetchFromClosestReplica(t *testing.T) {
	opts := options(3, "replica.selector.class="+config.RackAwareReplicaSelector)
	metrics := []string{}
	for range 3 {
		metrics = append(metrics, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	opts.PerNode = racks(metrics)
	c := clustertest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic = "near"

	createAssigned(t, c, topic, [][]int32{{1, 2, 3}}, nil)
	if l := leaderOf(t, c, topic, 0); l != 0 {
		t.Fatalf("leader is node %d, want node 1 (the first of the assignment)", l+1)
	}
	waitInISR(t, c, topic, 1, 2)
	waitInISR(t, c, topic, 1, 3)

	prod := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := prod.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: fmt.Appendf(nil, "v%04d", i)}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	const n = 200
	produce(0, n)

	wireChecks(t, ctx, c, topic, n)

	consumer := func(h *recordsBy, opts ...kgo.Opt) *kgo.Client {
		return c.Client(t, append([]kgo.Opt{
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
			kgo.WithHooks(h),
			kgo.FetchMaxWait(500 * time.Millisecond),
		}, opts...)...)
	}

	// The rack consumer reads everything from node 2: the leader only
	// redirects it (a response without records).
	near := &recordsBy{n: map[int32]int{}}
	rackCl := consumer(near, kgo.Rack("r2"), kgo.RecheckPreferredReplicaInterval(time.Second))
	var got []*kgo.Record
	consumeN(t, ctx, rackCl, n, &got)
	checkHistory(t, got, n)
	if by := near.get(); by[2] != n || by[1] != 0 || by[3] != 0 {
		t.Fatalf("records read per broker by the r2 consumer: %v, want all %d from node 2", by, n)
	}
	// The brokers count it too: node 2 served consumers as a follower,
	// node 1 redirected and served none as a follower.
	wait.For(t, time.Minute, "node 2 counts the bytes it served as a follower", func() bool {
		return clustertest.Metric(metrics[1], "strata_broker_fetch_follower_bytes_total") > 0
	})
	if v := clustertest.Metric(metrics[0], "strata_broker_fetch_preferred_replica_total"); v <= 0 {
		t.Fatalf("node 1 answered %v fetches with a preferred read replica", v)
	}
	if v := clustertest.Metric(metrics[0], "strata_broker_fetch_follower_bytes_total"); v != 0 {
		t.Fatalf("node 1, the leader, served %v bytes as a follower", v)
	}

	// Without a rack: the leader.
	plain := &recordsBy{n: map[int32]int{}}
	var gotPlain []*kgo.Record
	consumeN(t, ctx, consumer(plain), n, &gotPlain)
	checkHistory(t, gotPlain, n)
	if by := plain.get(); by[1] != n {
		t.Fatalf("records read per broker by a consumer without a rack: %v, want all %d from the leader", by, n)
	}

	// Node 2 dies: the rack consumer falls back to the leader (node 2
	// leaves the ISR and the cluster; no replica in r2 is left) and
	// reads on.
	c.Kill9(1)
	produce(n, 2*n)
	consumeN(t, ctx, rackCl, n, &got)
	checkHistory(t, got, 2*n)
	by := near.get()
	if by[2] != n || by[1] != n {
		t.Fatalf("records read per broker by the r2 consumer: %v, want %d from node 2, then %d from the leader", by, n, n)
	}
	t.Logf("r2 consumer: %v records per broker", by)
}

// wireChecks asks the brokers directly (Fetch at the highest version): the
// leader names node 2 as the preferred read replica of an r2 consumer, with
// no records, and answers r1 (its own rack) and r9 (no replica's) itself; a
// follower serves records up to its high watermark, and answers a future
// leader epoch with UNKNOWN_LEADER_EPOCH and an offset past its log end with
// OFFSET_OUT_OF_RANGE.
func wireChecks(t *testing.T, ctx context.Context, c *clustertest.Cluster, topic string, n int) {
	t.Helper()
	id, epoch := topicIDAndEpoch(t, ctx, c, topic)
	fetch := func(i int, rack string, offset int64, leaderEpoch int32) kmsg.FetchResponseTopicPartition {
		t.Helper()
		return consumerFetch(t, ctx, c.Addr(i), topic, id, rack, offset, leaderEpoch)
	}
	if p := fetch(0, "r2", 0, epoch); p.ErrorCode != 0 || p.PreferredReadReplica != 2 || len(p.RecordBatches) != 0 || p.HighWatermark != int64(n) {
		t.Fatalf("leader, r2 consumer: error %d, preferred %d, %d record bytes, hw %d; want node 2, no records, hw %d", p.ErrorCode, p.PreferredReadReplica, len(p.RecordBatches), p.HighWatermark, n)
	}
	for _, rack := range []string{"r1", "r9", ""} {
		if p := fetch(0, rack, 0, epoch); p.ErrorCode != 0 || p.PreferredReadReplica != -1 || len(p.RecordBatches) == 0 {
			t.Fatalf("leader, consumer in rack %q: error %d, preferred %d, %d record bytes; want records from the leader", rack, p.ErrorCode, p.PreferredReadReplica, len(p.RecordBatches))
		}
	}
	if p := fetch(2, "r2", 0, epoch); p.ErrorCode != 0 || p.PreferredReadReplica != -1 || len(p.RecordBatches) == 0 || p.HighWatermark > int64(n) {
		t.Fatalf("follower: error %d, preferred %d, %d record bytes, hw %d; want records up to its high watermark", p.ErrorCode, p.PreferredReadReplica, len(p.RecordBatches), p.HighWatermark)
	}
	if p := fetch(2, "", 0, epoch+1); p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("follower, future epoch: error %d, want UNKNOWN_LEADER_EPOCH", p.ErrorCode)
	}
	if p := fetch(2, "", int64(n)+1000, epoch); p.ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("follower, offset past its end: error %d, want OFFSET_OUT_OF_RANGE", p.ErrorCode)
	}

	// Before v11 (no rack_id, no KIP-392) a consumer reads from the leader only.
	old := c.Client(t, kgo.MaxVersions(kversion.V2_2_0()))
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, 0, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = 0, epoch, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, old.Broker(3))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version != 10 {
		t.Fatalf("fetch at v%d, want v10", resp.Version)
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("follower, fetch v10: error %d, want NOT_LEADER_OR_FOLLOWER", p.ErrorCode)
	}
}

// racks puts node i in rack r<i+1> with its metrics at metrics[i].
func racks(metrics []string) func(i int) []string {
	return func(i int) []string {
		return []string{fmt.Sprintf("broker.rack=r%d", i+1), "metrics.listen=" + metrics[i]}
	}
}

// consumerFetch sends one consumer Fetch (v11+, with rack) of partition 0
// of topic to addr and returns its answer for the partition.
func consumerFetch(t *testing.T, ctx context.Context, addr, topic string, id [16]byte, rack string, offset int64, leaderEpoch int32) kmsg.FetchResponseTopicPartition {
	t.Helper()
	conn, err := kwire.Dial(ctx, addr, "rack-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.ReplicaState.ID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, -1, 0, 1<<20, -1
	req.Rack = rack
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = 0, offset, leaderEpoch, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := conn.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
}

// With tiering, only fetches of the leader's local log go to a follower in
// the consumer's rack: a replay from offset 0, below the leader's local log
// start, is served by the leader from the remote tier (a follower learns
// the remote index lazily), while a fetch at the log's end is sent to the
// follower.
func TestClusterColdReadsStayWithLeader(t *testing.T) {
	opts, metrics := tieredCluster(t, "file://"+t.TempDir(), "replica.selector.class="+config.RackAwareReplicaSelector)
	opts.PerNode = racks(metrics)
	c := clustertest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "cold-rack"
	createAssigned(t, c, topic, [][]int32{{1, 2, 3}}, map[string]string{"remote.storage.enable": "true"})
	prod := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 40 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("v%04d-%s", i, strings.Repeat("x", 500)))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var localStart int64
	wait.For(t, 2*time.Minute, "the leader's local log to start past offset 0 (the rest tiered)", func() bool {
		st, ok := tierStatus(metrics[0], topic)
		localStart = localStart0(st, ok)
		return localStart > 0
	})
	id, epoch := topicIDAndEpoch(t, ctx, c, topic)
	if p := consumerFetch(t, ctx, c.Addr(0), topic, id, "r2", 0, epoch); p.ErrorCode != 0 || p.PreferredReadReplica != -1 || len(p.RecordBatches) == 0 {
		t.Fatalf("leader, r2 consumer at offset 0 (below the local log start %d): error %d, preferred %d, %d record bytes; want records from the leader",
			localStart, p.ErrorCode, p.PreferredReadReplica, len(p.RecordBatches))
	}
	waitInISR(t, c, topic, 1, 2)
	wait.For(t, time.Minute, "the leader to send an r2 consumer at the log's end to node 2", func() bool {
		p := consumerFetch(t, ctx, c.Addr(0), topic, id, "r2", 40, epoch)
		return p.ErrorCode == 0 && p.PreferredReadReplica == 2
	})
}

// localStart0 is localStart for a status that may be missing (-1).
func localStart0(st tier.PartitionStatus, ok bool) int64 {
	if !ok {
		return -1
	}
	return localStart(st)
}

// topicIDAndEpoch is topic's ID and its partition 0's leader epoch from
// Metadata (-1 if Metadata does not list it).
func topicIDAndEpoch(t *testing.T, ctx context.Context, c *clustertest.Cluster, topic string) (id [16]byte, epoch int32) {
	t.Helper()
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	epoch = -1
	for _, mt := range md.Topics {
		if mt.Topic != nil && *mt.Topic == topic {
			id, epoch = mt.TopicID, mt.Partitions[0].LeaderEpoch
		}
	}
	return id, epoch
}
