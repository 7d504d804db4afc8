package e2e

// IBM/sarama against the strata binary, at sarama's default protocol version
// (2.8: Produce 9, Fetch 12, Metadata 11, ...) and at 2.1 (Produce 7, Fetch 10,
// Metadata 7, JoinGroup 3, OffsetCommit 6, ...).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/stratalog/strata/internal/wait"
)

var saramaLog = &clientLog{}

func init() {
	sarama.Logger = log.New(saramaLog, "[sarama] ", log.Lmicroseconds)
}

func saramaConfig(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "strata-compat-sarama"
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 5 * time.Second
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Metadata.Retry.Max = 20
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Flush.Messages = 200
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	c.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	c.Admin.Timeout = 10 * time.Second
	return c
}

func TestCompatSarama(t *testing.T) {
	// The versions each sarama version speaks for Produce, Fetch, Metadata,
	// JoinGroup, OffsetCommit and OffsetFetch, as observed: the test fails if
	// sarama moved (then update the table) or never sent one of them.
	for _, c := range []struct {
		v                    sarama.KafkaVersion
		prod, fetch, md      int16
		join, commit, ofetch int16
		codec                sarama.CompressionCodec
	}{
		{sarama.DefaultVersion, 9, 12, 11, 7, 8, 7, sarama.CompressionZSTD}, // 2.8
		{sarama.V2_1_0_0, 7, 10, 7, 3, 6, 5, sarama.CompressionLZ4},
		{sarama.V1_0_0_0, 5, 6, 5, 2, 3, 3, sarama.CompressionSnappy},
		{sarama.V0_11_0_0, 3, 5, 4, 2, 3, 3, sarama.CompressionGZIP}, // the oldest with v2 record batches
	} {
		t.Run("v"+c.v.String(), func(t *testing.T) {
			saramaLog.capture(t, "sarama")
			_, vp := startCompatBroker(t)
			testSarama(t, singleTarget(vp.addr()), c.v, c.codec)
			vp.report(t)
			vp.expect(t, map[int16][2]int16{
				0: {c.prod, c.prod}, 1: {c.fetch, c.fetch}, 3: {c.md, c.md},
				11: {c.join, c.join}, 8: {c.commit, c.commit}, 9: {c.ofetch, c.ofetch},
			})
		})
	}
}

func saramaHeaders[H sarama.RecordHeader | *sarama.RecordHeader](hs []H) string {
	var b bytes.Buffer
	for _, h := range hs {
		var rh sarama.RecordHeader
		switch h := any(h).(type) {
		case sarama.RecordHeader:
			rh = h
		case *sarama.RecordHeader:
			rh = *h
		}
		fmt.Fprintf(&b, "%q=%q;", rh.Key, rh.Value)
	}
	return b.String()
}

// testSarama is sarama's scenario at version v against target: admin, sync
// producers (acks=all, codec, idempotent), partition consumers, configs, a
// consumer group that commits and resumes, static members, the rest of the
// admin API, acks=0.
func testSarama(t *testing.T, target compatTarget, v sarama.KafkaVersion, codec sarama.CompressionCodec) {
	addrs := target.addrs
	cfg := saramaConfig(v)
	client, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatalf("sarama.NewClient: %v", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}

	autoTopic := uniqueName(t, "sarama-auto")
	adminTopic := uniqueName(t, "sarama-admin")
	if err := admin.CreateTopic(adminTopic, &sarama.TopicDetail{
		NumPartitions: 3, ReplicationFactor: target.rf,
		ConfigEntries: map[string]*string{"retention.ms": ptr("86400000")},
	}, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if err := admin.CreateTopic(adminTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: target.rf}, false); !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Errorf("CreateTopic of an existing topic: %v, want %v", err, sarama.ErrTopicAlreadyExists)
	}

	// SyncProducer, acks=all: an auto-created topic and the admin-created one.
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer prod.Close()
	const n = 3000
	want := map[string][]clientRec{}
	for _, topic := range []string{autoTopic, adminTopic} {
		want[topic] = saramaProduce(t, prod, topic, 0, n)
	}
	// A compressing producer and an idempotent one (InitProducerId, then
	// sequence numbers per partition) to topics of their own.
	zipTopic, idemTopic := uniqueName(t, "sarama-"+codec.String()), uniqueName(t, "sarama-idem")
	zcfg := saramaConfig(v)
	zcfg.Producer.Compression = codec
	zprod, err := sarama.NewSyncProducer(addrs, zcfg)
	if err != nil {
		t.Fatalf("NewSyncProducer(%v): %v", codec, err)
	}
	defer zprod.Close()
	want[zipTopic] = saramaProduce(t, zprod, zipTopic, 0, n)
	icfg := saramaConfig(v)
	icfg.Producer.Idempotent = true
	icfg.Net.MaxOpenRequests = 1
	iprod, err := sarama.NewSyncProducer(addrs, icfg)
	if err != nil {
		t.Fatalf("NewSyncProducer(idempotent): %v", err)
	}
	defer iprod.Close()
	want[idemTopic] = saramaProduce(t, iprod, idemTopic, 0, n)

	// PartitionConsumer from the oldest offset: byte-identical.
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer cons.Close()
	for _, topic := range []string{autoTopic, adminTopic, zipTopic, idemTopic} {
		parts, err := cons.Partitions(topic)
		if err != nil {
			t.Fatalf("Partitions(%s): %v", topic, err)
		}
		var got []clientRec
		for _, part := range parts {
			got = append(got, saramaConsumePartition(t, cons, topic, part, sarama.OffsetOldest, countIn(want[topic], part))...)
		}
		compareRecs(t, topic, got, want[topic])
	}

	// Topic configs: describe, alter (which replaces a topic's overrides), describe.
	saramaCheckConfig(t, admin, v, adminTopic, "retention.ms", "86400000", sarama.SourceTopic)
	if err := admin.AlterConfig(sarama.TopicResource, adminTopic, map[string]*string{"segment.bytes": ptr("2097152")}, false); err != nil {
		t.Fatalf("AlterConfig: %v", err)
	}
	saramaCheckConfig(t, admin, v, adminTopic, "segment.bytes", "2097152", sarama.SourceTopic)
	saramaCheckConfig(t, admin, v, adminTopic, "retention.ms", "604800000", sarama.SourceDefault)
	if err := admin.AlterConfig(sarama.TopicResource, adminTopic, map[string]*string{"cleanup.policy": ptr("no-such-policy")}, false); err == nil {
		t.Errorf("AlterConfig with a bad value succeeded")
	}

	saramaGroup(t, addrs, v, client, admin, prod, adminTopic, want[adminTopic])
	if v.IsAtLeast(sarama.V2_3_0_0) {
		saramaStatic(t, addrs, v, adminTopic)
	}
	saramaAdmin(t, target, v, client, admin, autoTopic)
	saramaAcksNone(t, addrs, v, client, cons)
}

// saramaAcksNone produces with RequiredAcks NoResponse (acks=0: the broker
// answers nothing) and reads the records back in order.
func saramaAcksNone(t *testing.T, addrs []string, v sarama.KafkaVersion, client sarama.Client, cons sarama.Consumer) {
	topic := uniqueName(t, "sarama-acks0")
	// Nothing tells an acks=0 producer of an error but a closed connection,
	// so produce once the topic's leader serves it: in a cluster a broker may
	// list a new topic's leader before that leader has taken the partition,
	// and what reaches it meanwhile is lost, as with Kafka. The Metadata
	// request creates the topic.
	if !wait.Until(30*time.Second, func() bool {
		if client.RefreshMetadata(topic) != nil {
			return false
		}
		end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
		return err == nil && end == 0
	}) {
		t.Fatalf("acks=0: the leader of %s never served it", topic)
	}
	cfg := saramaConfig(v)
	cfg.Producer.RequiredAcks = sarama.NoResponse
	prod, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer(acks=0): %v", err)
	}
	defer prod.Close()
	produced := saramaProduce(t, prod, topic, 0, 1000)
	if !wait.Until(10*time.Second, func() bool {
		client.RefreshMetadata(topic)
		end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
		return err == nil && end == int64(len(produced))
	}) {
		t.Fatalf("acks=0: %d records not all written within 10s", len(produced))
	}
	for i := range produced {
		produced[i].partition, produced[i].offset = 0, int64(i) // no response, so no offsets
	}
	compareRecs(t, "acks=0", saramaConsumePartition(t, cons, topic, 0, sarama.OffsetOldest, len(produced)), produced)
}

// saramaAdmin covers the rest of ClusterAdmin.
func saramaAdmin(t *testing.T, target compatTarget, v sarama.KafkaVersion, client sarama.Client, admin sarama.ClusterAdmin, topic string) {
	brokers, ctrl, err := admin.DescribeCluster()
	if err != nil || len(brokers) != target.brokers || !slices.ContainsFunc(brokers, func(b *sarama.Broker) bool { return b.ID() == ctrl }) {
		t.Errorf("DescribeCluster: %v brokers, controller %d, %v; want %d brokers, the controller among them", len(brokers), ctrl, err, target.brokers)
	}
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if d, ok := topics[topic]; !ok || d.NumPartitions != 1 {
		t.Errorf("ListTopics: %s is %+v (found %v)", topic, d, ok)
	}
	// sarama's own minimum versions: CreatePartitions from 1.0, DeleteGroups
	// from 1.1, OffsetDelete from 2.4, IncrementalAlterConfigs from 2.3.
	if v.IsAtLeast(sarama.V1_0_0_0) {
		if err := admin.CreatePartitions(topic, 4, nil, false); err != nil {
			t.Fatalf("CreatePartitions: %v", err)
		}
		md, err := admin.DescribeTopics([]string{topic})
		if err != nil || len(md) != 1 || len(md[0].Partitions) != 4 {
			t.Fatalf("DescribeTopics after CreatePartitions: %+v %v", md, err)
		}
	}
	// The group that saramaGroup used, all of its members gone.
	g := uniqueName(t, "sarama-group")
	groups, err := admin.ListConsumerGroups()
	if err != nil || groups[g] != "consumer" {
		t.Fatalf("ListConsumerGroups: %v %v", groups, err)
	}
	desc, err := admin.DescribeConsumerGroups([]string{g})
	if err != nil || len(desc) != 1 || desc[0].State != "Empty" || desc[0].ProtocolType != "consumer" {
		t.Errorf("DescribeConsumerGroups(%s): %+v %v", g, desc, err)
	}
	if v.IsAtLeast(sarama.V2_4_0_0) {
		if err := admin.DeleteConsumerGroupOffset(g, "no-such-topic", 0); err == nil {
			t.Errorf("DeleteConsumerGroupOffset of an unknown topic succeeded")
		}
	}
	if v.IsAtLeast(sarama.V1_1_0_0) {
		if err := admin.DeleteConsumerGroup(g); err != nil {
			t.Errorf("DeleteConsumerGroup(%s): %v", g, err)
		}
		if groups, err := admin.ListConsumerGroups(); err != nil || groups[g] != "" {
			t.Errorf("ListConsumerGroups after delete: %v %v", groups, err)
		}
	}
	if v.IsAtLeast(sarama.V2_3_0_0) {
		if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.bytes": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: ptr("1048576")},
		}, false); err != nil {
			t.Errorf("IncrementalAlterConfig: %v", err)
		}
		saramaCheckConfig(t, admin, v, topic, "retention.bytes", "1048576", sarama.SourceTopic)
	}
	if err := admin.DeleteTopic(topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if err := admin.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Errorf("DeleteTopic again: %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
	}
}

func ptr[T any](v T) *T { return &v }

func countIn(recs []clientRec, part int32) int {
	n := 0
	for _, r := range recs {
		if r.partition == part {
			n++
		}
	}
	return n
}

// saramaProduce sends records [from, from+n) in batches through the sync
// producer and returns them with the partition and offset each got.
func saramaProduce(t *testing.T, prod sarama.SyncProducer, topic string, from, n int) []clientRec {
	t.Helper()
	base := time.Now().Add(-time.Hour).UnixMilli()
	var recs []clientRec
	for start := from; start < from+n; start += 500 {
		var msgs []*sarama.ProducerMessage
		for i := start; i < min(start+500, from+n); i++ {
			m := &sarama.ProducerMessage{
				Topic:     topic,
				Key:       sarama.ByteEncoder(compatKey(i)),
				Value:     sarama.ByteEncoder(compatValue(topic, i)),
				Timestamp: time.UnixMilli(base + int64(i)),
			}
			if i%3 == 0 {
				m.Headers = []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(fmt.Sprint(i))}, {Key: []byte("empty"), Value: []byte{}}}
			}
			msgs = append(msgs, m)
		}
		if err := prod.SendMessages(msgs); err != nil {
			t.Fatalf("SendMessages to %s: %v", topic, err)
		}
		for _, m := range msgs {
			k, _ := m.Key.Encode()
			val, _ := m.Value.Encode()
			recs = append(recs, clientRec{m.Partition, m.Offset, k, val, saramaHeaders(m.Headers), m.Timestamp.UnixMilli()})
		}
	}
	return recs
}

func saramaConsumePartition(t *testing.T, cons sarama.Consumer, topic string, part int32, from int64, n int) []clientRec {
	t.Helper()
	pc, err := cons.ConsumePartition(topic, part, from)
	if err != nil {
		t.Fatalf("ConsumePartition(%s, %d): %v", topic, part, err)
	}
	defer pc.Close()
	var got []clientRec
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case m := <-pc.Messages():
			got = append(got, clientRec{m.Partition, m.Offset, m.Key, m.Value, saramaHeaders(m.Headers), m.Timestamp.UnixMilli()})
		case err := <-pc.Errors():
			t.Fatalf("consuming %s/%d: %v", topic, part, err)
		case <-timeout:
			t.Fatalf("consuming %s/%d: %d of %d records in 30s", topic, part, len(got), n)
		}
	}
	if hwm := pc.HighWaterMarkOffset(); hwm != got[len(got)-1].offset+1 {
		t.Errorf("%s/%d: high watermark %d after offset %d", topic, part, hwm, got[len(got)-1].offset)
	}
	return got
}

// saramaCheckConfig checks a topic config's value and source; before sarama
// version 1.1 DescribeConfigs is v0, which has only an is_default flag.
// sarama sends each admin call to a broker it picks at random: in a cluster
// the broker that describes may not have applied the change another broker
// made yet (Kafka's brokers learn configs from the metadata log, a moment
// apart), so it asks again until the value is there.
func saramaCheckConfig(t *testing.T, admin sarama.ClusterAdmin, v sarama.KafkaVersion, topic, name, value string, source sarama.ConfigSource) {
	t.Helper()
	isDefault := source == sarama.SourceDefault
	if !v.IsAtLeast(sarama.V1_1_0_0) && !isDefault { // sarama reads is_default as SourceDefault
		source = sarama.SourceUnknown
	}
	var last string
	if !wait.Until(10*time.Second, func() bool {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			last = fmt.Sprintf("DescribeConfig: %v", err)
			return false
		}
		for _, e := range entries {
			if e.Name == name {
				last = fmt.Sprintf("%s: value %q source %v default %v, want %q %v", name, e.Value, e.Source, e.Default, value, source)
				return e.Value == value && e.Source == source && e.Default == isDefault
			}
		}
		last = fmt.Sprintf("DescribeConfig of %s has no %s among %d entries", topic, name, len(entries))
		return false
	}) {
		t.Error(last)
	}
}

// saramaMember is one consumer group member: what it consumed, per generation
// the partitions it was given.
type saramaMember struct {
	name   string
	mu     sync.Mutex
	recs   []clientRec
	claims map[string][]int32
	gens   []int32         // generation of each session
	first  map[int32]int64 // first offset consumed per partition
}

func (m *saramaMember) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = s.Claims()
	m.gens = append(m.gens, s.GenerationID())
	return nil
}

func (m *saramaMember) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	return nil
}

func (m *saramaMember) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			m.mu.Lock()
			m.recs = append(m.recs, clientRec{msg.Partition, msg.Offset, msg.Key, msg.Value, saramaHeaders(msg.Headers), msg.Timestamp.UnixMilli()})
			if _, ok := m.first[msg.Partition]; !ok {
				m.first[msg.Partition] = msg.Offset
			}
			m.mu.Unlock()
			s.MarkMessage(msg, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

// generations returns the generation of each of the member's sessions so far.
func (m *saramaMember) generations() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.gens)
}

func (m *saramaMember) snapshot() ([]clientRec, map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]clientRec(nil), m.recs...), m.claims
}

// runMember starts a group member consuming topic until stop is called, which
// also closes the group (leaving it).
func runMember(t *testing.T, addrs []string, v sarama.KafkaVersion, group, topic, name string) (*saramaMember, func()) {
	t.Helper()
	return runMemberWith(t, addrs, saramaConfig(v), group, topic, name)
}

func runMemberWith(t *testing.T, addrs []string, cfg *sarama.Config, group, topic, name string) (*saramaMember, func()) {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	m := &saramaMember{name: name, first: map[int32]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
				t.Logf("%s: Consume: %v", name, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			t.Logf("%s: group error: %v", name, err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("%s: Consume did not return within 20s of cancel", name)
			}
			if err := cg.Close(); err != nil {
				t.Errorf("%s: Close: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return m, stop
}

func saramaGroup(t *testing.T, addrs []string, v sarama.KafkaVersion, client sarama.Client, admin sarama.ClusterAdmin, prod sarama.SyncProducer, topic string, produced []clientRec) {
	group := uniqueName(t, "sarama-group")
	a, stopA := runMember(t, addrs, v, group, topic, "member-a")
	b, stopB := runMember(t, addrs, v, group, topic, "member-b")

	// Both members end up in one generation with the range split (2 + 1
	// partitions), and together they consume everything.
	var unique map[[2]int64]bool
	var ca, cb map[string][]int32
	if !wait.Until(45*time.Second, func() bool {
		var ra, rb []clientRec
		ra, ca = a.snapshot()
		rb, cb = b.snapshot()
		unique = map[[2]int64]bool{}
		for _, r := range append(ra, rb...) {
			unique[[2]int64{int64(r.partition), r.offset}] = true
		}
		na, nb := len(ca[topic]), len(cb[topic])
		return len(unique) == len(produced) && na+nb == 3 && min(na, nb) == 1
	}) {
		t.Fatalf("group: %d of %d records consumed; claims a=%v b=%v", len(unique), len(produced), ca, cb)
	}
	stopA()
	stopB()
	ra, _ := a.snapshot()
	rb, _ := b.snapshot()
	all := map[[2]int64]clientRec{}
	for _, r := range append(ra, rb...) {
		all[[2]int64{int64(r.partition), r.offset}] = r
	}
	var got []clientRec
	for _, r := range all {
		got = append(got, r)
	}
	compareRecs(t, "group", got, produced)

	// Committed offsets are the partitions' ends.
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	for part := int32(0); part < 3; part++ {
		end, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("GetOffset: %v", err)
		}
		blk := resp.GetBlock(topic, part)
		if blk == nil || blk.Err != sarama.ErrNoError || blk.Offset != end {
			t.Fatalf("partition %d: committed %+v, end %d", part, blk, end)
		}
	}

	// A restarted member resumes from the committed offsets: it reads only
	// what was produced after.
	more := saramaProduce(t, prod, topic, len(produced), 600)
	c, stopC := runMember(t, addrs, v, group, topic, "member-c")
	var rc []clientRec
	if !wait.Until(30*time.Second, func() bool {
		rc, _ = c.snapshot()
		return len(rc) >= len(more)
	}) {
		t.Fatalf("restarted member: %d of %d new records", len(rc), len(more))
	}
	stopC()
	rc, _ = c.snapshot()
	compareRecs(t, "restarted member", rc, more)
}

// saramaStatic restarts a static member (KIP-345: group.instance.id, which
// sends no LeaveGroup on Close): it gets its partitions back and the group
// does not rebalance, so the other member keeps its generation.
func saramaStatic(t *testing.T, addrs []string, v sarama.KafkaVersion, topic string) {
	group := uniqueName(t, "sarama-static")
	static := func(id string) *sarama.Config {
		cfg := saramaConfig(v)
		cfg.Consumer.Group.InstanceId = id
		return cfg
	}
	a, stopA := runMemberWith(t, addrs, static("static-a"), group, topic, "static-a")
	b, _ := runMemberWith(t, addrs, static("static-b"), group, topic, "static-b")
	// stable waits for both members to be in one generation with the
	// partitions split between them. (They start together: the first to
	// join may have had a generation of its own before the other came.)
	stable := func(what string, a, b *saramaMember) (ca, cb []int32) {
		t.Helper()
		if !wait.Until(30*time.Second, func() bool {
			_, ma := a.snapshot()
			_, mb := b.snapshot()
			ca, cb = ma[topic], mb[topic]
			ga, gb := a.generations(), b.generations()
			return len(ca) > 0 && len(cb) > 0 && len(ca)+len(cb) == 3 &&
				len(ga) > 0 && len(gb) > 0 && ga[len(ga)-1] == gb[len(gb)-1]
		}) {
			t.Fatalf("%s: claims %v and %v, generations %v and %v", what, ca, cb, a.generations(), b.generations())
		}
		return ca, cb
	}
	ca, _ := stable("static members", a, b)
	gensB := b.generations()

	stopA()
	a2, _ := runMemberWith(t, addrs, static("static-a"), group, topic, "static-a restarted")
	ca2, _ := stable("restarted static member", a2, b)
	if !slices.Equal(ca, ca2) {
		t.Errorf("restarted static member claims %v, had %v", ca2, ca)
	}
	time.Sleep(500 * time.Millisecond) // past a few heartbeats: b would have been told to rejoin
	if after := b.generations(); !slices.Equal(after, gensB) {
		t.Errorf("the other static member went from generations %v to %v: the restart rebalanced the group", gensB, after)
	}
}
