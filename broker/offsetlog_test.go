package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/config"
	"github.com/stratalog/strata/internal/wire"
	"github.com/stratalog/strata/metadata"
)

func TestGroupPartitionIsKafkas(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int32
	}{
		{"", 0}, {"hello", 99162322}, {"Aa", 2112}, {"BB", 2112},
		{"\U0001F600", 1772899}, // a surrogate pair: two UTF-16 units
		{"polygenelubricants", -1 << 31},
	} {
		if got := javaStringHash(c.s); got != c.want {
			t.Errorf("hashCode(%q) = %d, want %d", c.s, got, c.want)
		}
	}
	// Utils.abs(Integer.MIN_VALUE) is 0.
	if p := groupPartition("polygenelubricants", 50); p != 0 {
		t.Errorf("partition of a MinInt32 hash = %d, want 0", p)
	}
	if p := groupPartition("hello", 50); p != 99162322%50 {
		t.Errorf("partition of hello = %d", p)
	}
}

// offsetsRecords reads every record of __consumer_offsets with franz-go, as
// a tool reading Kafka's offsets topic would.
func offsetsRecords(t *testing.T, tb *testBroker) []*kgo.Record {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	ends, err := tb.admin().ListEndOffsets(ctx, offsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl := tb.client(kgo.ConsumeTopics(offsetsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	got := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if got[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %v of %v", offsetsTopic, got, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			got[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// committedInTopic decodes the offsets topic's records into the latest
// committed offset of each group/topic/partition (tombstones remove).
func committedInTopic(t *testing.T, recs []*kgo.Record) (offs map[string]int64, tombstones map[string]int, groups map[string]*kmsg.GroupMetadataValue) {
	offs, tombstones, groups = map[string]int64{}, map[string]int{}, map[string]*kmsg.GroupMetadataValue{}
	for _, r := range recs {
		switch v := int16(r.Key[0])<<8 | int16(r.Key[1]); v {
		case 0, 1:
			var k kmsg.OffsetCommitKey
			if err := k.ReadFrom(r.Key); err != nil {
				t.Fatal(err)
			}
			if r.Partition != groupPartition(k.Group, 50) {
				t.Errorf("group %q on partition %d, Kafka puts it on %d", k.Group, r.Partition, groupPartition(k.Group, 50))
			}
			id := k.Group + "/" + k.Topic + "/" + string(rune('0'+k.Partition))
			if r.Value == nil {
				delete(offs, id)
				tombstones[id]++
				continue
			}
			var val kmsg.OffsetCommitValue
			if err := val.ReadFrom(r.Value); err != nil {
				t.Fatal(err)
			}
			offs[id] = val.Offset
		case 2:
			var k kmsg.GroupMetadataKey
			if err := k.ReadFrom(r.Key); err != nil {
				t.Fatal(err)
			}
			if r.Value == nil {
				delete(groups, k.Group)
				tombstones["group:"+k.Group]++
				continue
			}
			val := new(kmsg.GroupMetadataValue)
			if err := val.ReadFrom(r.Value); err != nil {
				t.Fatal(err)
			}
			groups[k.Group] = val
		}
	}
	return offs, tombstones, groups
}

// A static member commits, the broker restarts: the group comes back from
// __consumer_offsets with its generation and member, so a commit of the old
// generation succeeds, as after a Kafka coordinator load, and a consumer
// with the same instance id resumes from the committed offsets.
func TestOffsetsTopicGroupSurvivesRestart(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("rs", 2, nil)
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recordsFor("rs", 20, 2)...)
	ctx := ctxT(t, 60*time.Second)
	opts := []kgo.Opt{kgo.ConsumerGroup("rg"), kgo.ConsumeTopics("rs"), kgo.InstanceID("inst-1"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(30 * time.Second)}
	cl := tb.client(opts...)
	consumeN(t, cl, 20, 30*time.Second)
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	member, gen := cl.GroupMetadata()
	if gen < 1 {
		t.Fatalf("generation %d", gen)
	}
	cl.Close() // a static member does not leave

	tb.restart()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(8)
	req.Group, req.Generation, req.MemberID, req.InstanceID = "rg", gen, member, kmsg.StringPtr("inst-1")
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "rs"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 5
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := tb.raw().request(req)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit of generation %d after restart: %v, want no error", gen, kerr.ErrorForCode(code))
	}
	offs, err := tb.admin().FetchOffsets(ctx, "rg")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup("rs", 0); o.At != 5 {
		t.Fatalf("partition 0 committed %d, want 5", o.At)
	}
	if o, _ := offs.Lookup("rs", 1); o.At != 10 {
		t.Fatalf("partition 1 committed %d, want 10 (from before the restart)", o.At)
	}
	produceSync(t, tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner())), &kgo.Record{Topic: "rs", Partition: 1, Value: []byte("after")})
	got := consumeN(t, tb.client(opts...), 6, 30*time.Second)
	for _, r := range got {
		if (r.Partition == 1 && r.Offset < 10) || (r.Partition == 0 && r.Offset < 5) {
			t.Fatalf("resumed at %d/%d, want partition 0 from 5 and 1 from 10", r.Partition, r.Offset)
		}
	}
}

// Offsets committed are records of __consumer_offsets in Kafka's schemas,
// on Kafka's partition for the group; DeleteGroups writes tombstones.
func TestOffsetsTopicRecordsAndTombstones(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("ot", 3, nil)
	ctx := ctxT(t, 30*time.Second)
	adm := tb.admin()
	var os kadm.Offsets
	for p := int32(0); p < 3; p++ {
		os.Add(kadm.Offset{Topic: "ot", Partition: p, At: int64(100 + p), LeaderEpoch: -1})
	}
	for _, g := range []string{"og", "hello"} {
		if _, err := adm.CommitOffsets(ctx, g, os); err != nil {
			t.Fatal(err)
		}
	}
	offs, tombs, _ := committedInTopic(t, offsetsRecords(t, tb))
	for _, g := range []string{"og", "hello"} {
		for p := 0; p < 3; p++ {
			if got := offs[g+"/ot/"+string(rune('0'+p))]; got != int64(100+p) {
				t.Errorf("%s ot/%d in the topic: %d, want %d", g, p, got, 100+p)
			}
		}
	}
	if len(tombs) != 0 {
		t.Fatalf("tombstones before any deletion: %v", tombs)
	}
	if _, err := adm.DeleteGroup(ctx, "og"); err != nil {
		t.Fatal(err)
	}
	offs, tombs, _ = committedInTopic(t, offsetsRecords(t, tb))
	for p := 0; p < 3; p++ {
		id := "og/ot/" + string(rune('0'+p))
		if tombs[id] != 1 {
			t.Errorf("%s: %d tombstones, want 1", id, tombs[id])
		}
		if _, ok := offs[id]; ok {
			t.Errorf("%s still committed", id)
		}
		if offs["hello/ot/"+string(rune('0'+p))] != int64(100+p) {
			t.Errorf("hello lost ot/%d", p)
		}
	}

	// Expiry: every commit of the group without members is old enough.
	n, err := tb.srv.offsets.ExpireOffsets(time.Now().Add(time.Hour).UnixMilli(), func(string) bool { return false })
	if err != nil || n != 3 {
		t.Fatalf("expired %d, %v; want 3", n, err)
	}
	offs, tombs, _ = committedInTopic(t, offsetsRecords(t, tb))
	if len(offs) != 0 || tombs["hello/ot/1"] != 1 {
		t.Fatalf("after expiry: offsets %v, tombstones %v", offs, tombs)
	}
	// Nothing comes back after a restart: the replay applies the tombstones.
	tb.restart()
	fo, err := tb.admin().FetchOffsets(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fo.Lookup("ot", 1); ok && o.At >= 0 {
		t.Fatalf("expired offset served after restart: %+v", o)
	}
}

// Metadata lists __consumer_offsets as internal; clients cannot produce to
// it, create it or delete it.
func TestOffsetsTopicIsInternal(t *testing.T) {
	tb := startBroker(t, "offsets.topic.num.partitions=4")
	ctx := ctxT(t, 30*time.Second)
	if _, err := tb.admin().CommitOffsets(ctx, "ig", kadm.Offsets{}); err != nil {
		t.Fatal(err)
	}
	// FindCoordinator creates the topic, as in Kafka.
	if r := tb.admin().FindGroupCoordinators(ctx, "ig"); r["ig"].Err != nil {
		t.Fatal(r["ig"].Err)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	resp, err := tb.raw().request(md)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mt := range resp.(*kmsg.MetadataResponse).Topics {
		if mt.Topic != nil && *mt.Topic == offsetsTopic {
			found = true
			if !mt.IsInternal || len(mt.Partitions) != 4 {
				t.Fatalf("%s: internal %v, %d partitions; want internal, 4", offsetsTopic, mt.IsInternal, len(mt.Partitions))
			}
		}
	}
	if !found {
		t.Fatalf("Metadata does not list %s", offsetsTopic)
	}
	if topics, err := tb.admin().ListTopics(ctx); err != nil || topics.Has(offsetsTopic) {
		t.Fatalf("ListTopics without internal topics lists %s (%v)", offsetsTopic, err)
	}

	cl := tb.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(1))
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: offsetsTopic, Partition: 0, Key: []byte("k"), Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to %s: %v, want INVALID_TOPIC_EXCEPTION", offsetsTopic, err)
	}
	cr, err := tb.admin().CreateTopic(ctx, 1, 1, nil, offsetsTopic)
	if !errors.Is(err, kerr.TopicAlreadyExists) && !errors.Is(cr.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("create %s: %v %v, want TOPIC_ALREADY_EXISTS", offsetsTopic, err, cr.Err)
	}
	dr, err := tb.admin().DeleteTopics(ctx, offsetsTopic)
	if err != nil {
		t.Fatal(err)
	}
	if d := dr[offsetsTopic]; !errors.Is(d.Err, kerr.InvalidRequest) {
		t.Fatalf("delete %s: %v, want INVALID_REQUEST", offsetsTopic, d.Err)
	}
	if tb.srv.topics.get(offsetsTopic) == nil {
		t.Fatal("the offsets topic is gone")
	}
}

// A data directory from before the offsets topic: the offsets in bbolt move
// into the topic at open and leave bbolt; a crash between the append and the
// delete leaves them in both, and the next open finishes idempotently.
func TestOffsetsMigrateFromMetadataStore(t *testing.T) {
	dir := t.TempDir()
	meta, err := metadata.Open(dir + "/meta.db")
	if err != nil {
		t.Fatal(err)
	}
	id := [16]byte{1}
	if err := meta.CreateTopic(metadata.Topic{Name: "mt", ID: id, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for _, g := range []string{"old1", "old2"} {
		if err := meta.CommitOffsets(g, []metadata.OffsetCommit{
			{Topic: "mt", Partition: 0, Offset: 7, LeaderEpoch: -1, Metadata: "m", CommitTimestamp: now},
			{Topic: "mt", Partition: 1, Offset: 9, LeaderEpoch: 3, CommitTimestamp: now},
		}); err != nil {
			t.Fatal(err)
		}
	}
	meta.Close()

	// Crash after the first group's append, before its delete.
	crash := errors.New("crash")
	migrateHook = func(string) error { return crash }
	cfg, err := config.Load("", nil, []string{"log.dirs=" + dir, "listeners=PLAINTEXT://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := wire.Meta(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Options{Meta: m2}); !errors.Is(err, crash) {
		t.Fatalf("New with a crash in the migration: %v", err)
	}
	if gs, _ := m2.OffsetGroups(); len(gs) != 2 {
		t.Fatalf("bbolt groups after the crash: %v, want both", gs)
	}
	m2.Close()
	migrateHook = nil

	tb := &testBroker{t: t, dir: dir}
	tb.start()
	t.Cleanup(tb.stop)
	ctx := ctxT(t, 30*time.Second)
	for _, g := range []string{"old1", "old2"} {
		fo, err := tb.admin().FetchOffsets(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := fo.Lookup("mt", 0); o.At != 7 || o.Metadata != "m" {
			t.Fatalf("%s mt/0: %+v", g, o)
		}
		if o, _ := fo.Lookup("mt", 1); o.At != 9 || o.LeaderEpoch != 3 {
			t.Fatalf("%s mt/1: %+v", g, o)
		}
	}
	if gs, err := tb.meta.OffsetGroups(); err != nil || len(gs) != 0 {
		t.Fatalf("bbolt still holds offsets of %v (%v)", gs, err)
	}
	offs, _, _ := committedInTopic(t, offsetsRecords(t, tb))
	if offs["old1/mt/0"] != 7 || offs["old2/mt/1"] != 9 {
		t.Fatalf("offsets topic: %v", offs)
	}
	// A restart does not migrate again or lose anything.
	tb.restart()
	fo, err := tb.admin().FetchOffsets(ctx, "old2")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := fo.Lookup("mt", 1); o.At != 9 {
		t.Fatalf("after restart: %+v", o)
	}
	_ = context.Background
}
