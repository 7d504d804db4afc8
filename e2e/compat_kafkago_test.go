package e2e

// segmentio/kafka-go against the strata binary: kafka.Conn CreateTopics
// (v0-2), the Writer (Produce up to v8, Metadata up to v8), a Reader without a
// group (Fetch 2/5/10 through Conn.ReadBatch), and Readers with a GroupID,
// which speak the old group versions: FindCoordinator 0, JoinGroup 1/2,
// SyncGroup 0, Heartbeat 0, LeaveGroup 0, OffsetCommit 2, OffsetFetch 1.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/stratalog/strata/internal/wait"
)

var kafkagoLog = &clientLog{}

func kafkagoLogger(prefix string) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		kafkagoLog.Printf(time.Now().Format("15:04:05.000000")+" "+prefix+format, args...)
	})
}

func kgFromMessage(m kafka.Message) clientRec {
	var b bytes.Buffer
	for _, h := range m.Headers {
		fmt.Fprintf(&b, "%q=%q;", h.Key, h.Value)
	}
	return clientRec{int32(m.Partition), m.Offset, m.Key, m.Value, b.String(), m.Time.UnixMilli()}
}

func TestCompatKafkaGo(t *testing.T) {
	kafkagoLog.capture(t, "kafka-go")
	_, vp := startCompatBroker(t)
	defer vp.report(t)
	testKafkaGo(t, singleTarget(vp.addr()), func() {
		// The group reader and the Writer, before the calls after use newer versions.
		vp.expect(t, map[int16][2]int16{
			0:  {3, 8},   // Produce (Writer, through kafka.Transport)
			1:  {10, 10}, // Fetch (Conn.ReadBatch picks the newest of 2, 5, 10)
			3:  {0, 8},   // Metadata
			10: {0, 2},   // FindCoordinator: v0 from the group reader
			11: {1, 2},   // JoinGroup
			14: {0, 0},   // SyncGroup
			12: {0, 0},   // Heartbeat
			13: {0, 0},   // LeaveGroup
			8:  {2, 2},   // OffsetCommit
			9:  {1, 1},   // OffsetFetch
			19: {0, 2},   // CreateTopics
		})
	})
}

// testKafkaGo is kafka-go's scenario against target: CreateTopics through the
// controller, the Writer, partition readers, group readers that commit and
// resume, two members, auto-created topics with each codec, acks=0,
// kafka.Conn and kafka.Client's admin calls. afterGroups, if not nil, runs
// once the group readers are done.
func testKafkaGo(t *testing.T, target compatTarget, afterGroups func()) {
	addrs, addr := target.addrs, target.addrs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// kafka.Conn CreateTopics, sent to the controller as Metadata names it.
	topic := uniqueName(t, "kafkago")
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatalf("Controller: %v", err)
	}
	cconn, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("Dial controller %v: %v", ctrl, err)
	}
	defer cconn.Close()
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: int(target.rf),
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "86400000"}}}
	if err := cconn.CreateTopics(tc); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	if err := cconn.CreateTopics(tc); err != nil {
		t.Fatalf("CreateTopics of an existing topic (kafka-go ignores TOPIC_ALREADY_EXISTS): %v", err)
	}
	if err := cconn.CreateTopics(kafka.TopicConfig{Topic: topic + "-bad", NumPartitions: 1, ReplicationFactor: int(target.rf),
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "bogus"}}}); err == nil {
		t.Errorf("CreateTopics with a bad config succeeded")
	}
	parts, err := conn.ReadPartitions(topic)
	if err != nil || len(parts) != 3 {
		t.Fatalf("ReadPartitions: %v %v", parts, err)
	}
	for _, p := range parts {
		if len(p.Replicas) != int(target.rf) {
			t.Errorf("ReadPartitions: partition %d has replicas %v, want %d", p.ID, p.Replicas, target.rf)
		}
	}

	// Writer, acks=all, hash-partitioned by key.
	const n = 3000
	written := kafkagoWrite(ctx, t, addrs, topic, 0, n)

	// Reader without a group, from offset 0 on each partition.
	var got []clientRec
	for part := 0; part < 3; part++ {
		got = append(got, kafkagoReadPartition(ctx, t, addrs, topic, part, countKG(written, part))...)
	}
	compareRecs(t, "partition readers", got, written)

	// Reader with a GroupID: the first reads and commits part of the topic,
	// then leaves; a second in the same group reads the rest, from the
	// committed offsets (no committed record again).
	group := uniqueName(t, "kafkago-group")
	first := kafkagoGroupRead(ctx, t, addrs, group, topic, "reader-1", n/3)
	more := kafkagoWrite(ctx, t, addrs, topic, n, 600)
	all := append(append([]clientRec(nil), written...), more...)
	second := kafkagoGroupRead(ctx, t, addrs, group, topic, "reader-2", len(all)-len(first))
	compareRecs(t, "group readers", append(first, second...), all)

	// Two members at once: both get partitions; a third reader afterwards
	// finds nothing left.
	kafkagoTwoMembers(ctx, t, addrs, group, topic)
	if afterGroups != nil {
		afterGroups()
	}

	kafkagoAutoCreateAndCodecs(ctx, t, addrs)
	kafkagoAcksNone(ctx, t, addrs)
	kafkagoConn(ctx, t, addr)
	kafkagoClient(ctx, t, target, topic, group, len(all))
}

func countKG(recs []clientRec, part int) int {
	n := 0
	for _, r := range recs {
		if r.partition == int32(part) {
			n++
		}
	}
	return n
}

func kafkagoWrite(ctx context.Context, t *testing.T, addrs []string, topic string, from, n int) []clientRec {
	t.Helper()
	return kafkagoWriteWith(ctx, t, addrs, topic, from, n, func(*kafka.Writer) {})
}

func kafkagoWriteWith(ctx context.Context, t *testing.T, addrs []string, topic string, from, n int, opt func(*kafka.Writer)) []clientRec {
	t.Helper()
	var mu sync.Mutex
	var recs []clientRec
	w := &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    200,
		Logger:       kafkagoLogger("writer: "),
		ErrorLogger:  kafkagoLogger("writer ERROR: "),
		Completion: func(msgs []kafka.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return
			}
			for _, m := range msgs {
				recs = append(recs, kgFromMessage(m))
			}
		},
	}
	opt(w)
	defer w.Close()
	base := time.Now().Add(-time.Hour).UnixMilli()
	var msgs []kafka.Message
	for i := from; i < from+n; i++ {
		m := kafka.Message{Key: compatKey(i), Value: compatValue(topic, i), Time: time.UnixMilli(base + int64(i))}
		if i%3 == 0 {
			m.Headers = []kafka.Header{{Key: "h", Value: []byte(strconv.Itoa(i))}, {Key: "empty", Value: []byte{}}}
		}
		msgs = append(msgs, m)
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recs) != n {
		t.Fatalf("Completion saw %d records, wrote %d", len(recs), n)
	}
	return recs
}

func kafkagoReadPartition(ctx context.Context, t *testing.T, addrs []string, topic string, part, n int) []clientRec {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     addrs,
		Topic:       topic,
		Partition:   part,
		MinBytes:    1,
		MaxBytes:    1 << 20,
		MaxWait:     200 * time.Millisecond,
		StartOffset: kafka.FirstOffset,
		Logger:      kafkagoLogger(fmt.Sprintf("reader p%d: ", part)),
		ErrorLogger: kafkagoLogger(fmt.Sprintf("reader p%d ERROR: ", part)),
	})
	defer r.Close()
	if err := r.SetOffset(0); err != nil {
		t.Fatalf("SetOffset: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []clientRec
	for len(got) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("partition %d: ReadMessage after %d of %d: %v", part, len(got), n, err)
		}
		got = append(got, kgFromMessage(m))
	}
	if lag := r.Lag(); lag != 0 {
		t.Errorf("partition %d: lag %d after reading everything", part, lag)
	}
	return got
}

func kafkagoGroupReader(addrs []string, group, topic, name string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           addrs,
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           200 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // CommitMessages commits synchronously
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		Logger:            kafkagoLogger(name + ": "),
		ErrorLogger:       kafkagoLogger(name + " ERROR: "),
	})
}

// kafkagoGroupRead reads and commits n records as a member of group, then
// closes the reader (leaving the group). It returns the committed records.
func kafkagoGroupRead(ctx context.Context, t *testing.T, addrs []string, group, topic, name string, n int) []clientRec {
	t.Helper()
	r := kafkagoGroupReader(addrs, group, topic, name)
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []clientRec
	for len(got) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("%s: FetchMessage after %d of %d: %v", name, len(got), n, err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("%s: CommitMessages: %v", name, err)
		}
		got = append(got, kgFromMessage(m))
	}
	return got
}

// kafkagoTwoMembers runs two readers in a group whose offsets are at the end,
// waits until each has been assigned partitions in the same generation, then
// checks that neither reads a record.
func kafkagoTwoMembers(ctx context.Context, t *testing.T, addrs []string, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stray := 0
	readers := []*kafka.Reader{kafkagoGroupReader(addrs, group, topic, "member-a"), kafkagoGroupReader(addrs, group, topic, "member-b")}
	rctx, rcancel := context.WithCancel(ctx)
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := r.FetchMessage(rctx)
				if err != nil {
					return
				}
				mu.Lock()
				stray++
				mu.Unlock()
			}
		}()
	}
	defer func() {
		rcancel()
		wg.Wait()
		for _, r := range readers {
			r.Close()
		}
	}()
	// kafka-go's Reader offers no view of its assignment; the broker's
	// DescribeGroups does.
	var desc kafka.DescribeGroupsResponseGroup
	var err error
	if !wait.Until(30*time.Second, func() bool {
		desc, err = kafkagoDescribeGroup(ctx, addrs, group)
		if err != nil || len(desc.Members) != 2 || desc.GroupState != "Stable" {
			return false
		}
		total := 0
		for _, m := range desc.Members {
			n := 0
			for _, a := range m.MemberAssignments.Topics {
				n += len(a.Partitions)
			}
			if n == 0 {
				return false
			}
			total += n
		}
		return total == 3
	}) {
		t.Fatalf("two members: group never stable with both assigned: %+v %v", desc, err)
	}
	time.Sleep(500 * time.Millisecond) // let both fetch once from the committed offsets
	mu.Lock()
	defer mu.Unlock()
	if stray != 0 {
		t.Errorf("two members read %d records below or past the committed end", stray)
	}
}

func kafkagoDescribeGroup(ctx context.Context, addrs []string, group string) (kafka.DescribeGroupsResponseGroup, error) {
	cl := &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 5 * time.Second}
	resp, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return kafka.DescribeGroupsResponseGroup{}, err
	}
	if len(resp.Groups) != 1 {
		return kafka.DescribeGroupsResponseGroup{}, errors.New("no group in DescribeGroups")
	}
	if resp.Groups[0].Error != nil {
		return resp.Groups[0], resp.Groups[0].Error
	}
	return resp.Groups[0], nil
}

// kafkagoAutoCreateAndCodecs writes with each codec to a topic the Writer has
// auto-created, and reads it back.
func kafkagoAutoCreateAndCodecs(ctx context.Context, t *testing.T, addrs []string) {
	t.Helper()
	for _, codec := range []kafka.Compression{kafka.Gzip, kafka.Snappy, kafka.Lz4, kafka.Zstd} {
		topic := uniqueName(t, "kafkago-auto-"+codec.String())
		written := kafkagoWriteWith(ctx, t, addrs, topic, 0, 500, func(w *kafka.Writer) {
			w.AllowAutoTopicCreation = true
			w.Compression = codec
		})
		compareRecs(t, codec.String(), kafkagoReadPartition(ctx, t, addrs, topic, 0, 500), written)
	}
}

// kafkagoConn uses a kafka.Conn to a partition leader of a topic that
// DialLeader's Metadata v1 request auto-creates: produce, offsets, seek, and a
// fetch whose max bytes is below one batch (the broker still returns the
// first batch whole, KIP-74).
func kafkagoConn(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	topic := uniqueName(t, "kafkago-conn")
	// Kafka answers LEADER_NOT_AVAILABLE while it creates the topic, and in a
	// cluster the leader Metadata names may not have taken the new partition
	// yet (UNKNOWN_TOPIC_OR_PARTITION, which kafka.Conn does not retry): dial
	// until the leader answers for it.
	var conn *kafka.Conn
	var err error
	if !wait.Until(30*time.Second, func() bool {
		if conn, err = kafka.DialLeader(ctx, "tcp", addr, topic, 0); err != nil {
			return false
		}
		if _, err = conn.ReadLastOffset(); err != nil {
			conn.Close()
			return false
		}
		return true
	}) {
		t.Fatalf("DialLeader(%s): %v", topic, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var msgs []kafka.Message
	for i := 0; i < 200; i++ {
		msgs = append(msgs, kafka.Message{Key: compatKey(i), Value: compatValue(topic, i)})
	}
	for _, codec := range []kafka.CompressionCodec{nil, kafka.Snappy.Codec()} {
		if _, part, off, _, err := conn.WriteCompressedMessagesAt(codec, msgs[:100]...); err != nil || part != 0 {
			t.Fatalf("WriteCompressedMessagesAt(%v): partition %d offset %d: %v", codec, part, off, err)
		}
		msgs = msgs[100:]
	}
	first, last, err := conn.ReadOffsets()
	if err != nil || first != 0 || last != 200 {
		t.Fatalf("ReadOffsets: %d %d %v; want 0 200", first, last, err)
	}
	if _, err := conn.Seek(0, kafka.SeekAbsolute); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	read := 0
	for read < 200 {
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 1000, MaxWait: time.Second})
		n := 0
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset != int64(read) || !bytes.Equal(m.Value, compatValue(topic, read)) {
				t.Fatalf("conn read offset %d, want %d", m.Offset, read)
			}
			read++
			n++
		}
		if err := batch.Close(); err != nil && !errors.Is(err, kafka.RequestTimedOut) {
			t.Fatalf("batch after %d records: %v", read, err)
		}
		if n == 0 {
			t.Fatalf("a fetch with max bytes 1000 at offset %d returned no record", read)
		}
	}
}

// kafkagoClient drives kafka.Client's admin calls, which negotiate versions
// through ApiVersions.
func kafkagoClient(ctx context.Context, t *testing.T, target compatTarget, topic, group string, total int) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(target.addrs...), Timeout: 10 * time.Second}
	dc, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"retention.ms"}}}})
	if err != nil || len(dc.Resources) != 1 || dc.Resources[0].Error != nil || len(dc.Resources[0].ConfigEntries) != 1 ||
		dc.Resources[0].ConfigEntries[0].ConfigValue != "86400000" {
		t.Errorf("DescribeConfigs: %+v %v", dc, err)
	}
	ac, err := cl.AlterConfigs(ctx, &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, Configs: []kafka.AlterConfigRequestConfig{{Name: "retention.ms", Value: "3600000"}}}}})
	if err != nil || len(ac.Errors) != 1 || ac.Errors[kafka.AlterConfigsResponseResource{Type: int8(kafka.ResourceTypeTopic), Name: topic}] != nil {
		t.Errorf("AlterConfigs: %+v %v", ac, err)
	}
	ic, err := cl.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, Configs: []kafka.IncrementalAlterConfigsRequestConfig{
			{Name: "retention.bytes", Value: "1048576", ConfigOperation: kafka.ConfigOperationSet}}}}})
	if err != nil || len(ic.Resources) != 1 || ic.Resources[0].Error != nil {
		t.Errorf("IncrementalAlterConfigs: %+v %v", ic, err)
	}
	dc, err = cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"retention.ms", "retention.bytes"}}}})
	if err != nil || len(dc.Resources) != 1 {
		t.Fatalf("DescribeConfigs: %+v %v", dc, err)
	}
	got := map[string]string{}
	for _, e := range dc.Resources[0].ConfigEntries {
		got[e.ConfigName] = e.ConfigValue
	}
	if got["retention.ms"] != "3600000" || got["retention.bytes"] != "1048576" {
		t.Errorf("configs after alter: %v", got)
	}

	// ListGroups asks every broker (each lists the groups it coordinates);
	// the cluster also holds the other clients' groups.
	lg, err := cl.ListGroups(ctx, &kafka.ListGroupsRequest{})
	listed := 0
	if err == nil && lg.Error == nil {
		for _, g := range lg.Groups {
			if g.GroupID == group && g.ProtocolType == "consumer" {
				listed++
			}
		}
	}
	if listed != 1 || (target.brokers == 1 && len(lg.Groups) != 1) {
		t.Errorf("ListGroups: %+v %v; want %s once", lg, err, group)
	}
	of, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	if err != nil || of.Error != nil {
		t.Fatalf("OffsetFetch: %+v %v", of, err)
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2)}}})
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	ends := map[int]int64{}
	sum := int64(0)
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("ListOffsets partition %d: %v", po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
		sum += po.LastOffset
	}
	for _, po := range of.Topics[topic] {
		if po.Error != nil || po.CommittedOffset != ends[po.Partition] {
			t.Errorf("partition %d: committed %d (%v), end %d", po.Partition, po.CommittedOffset, po.Error, ends[po.Partition])
		}
	}
	if sum != int64(total) {
		t.Errorf("partition ends add up to %d, wrote %d", sum, total)
	}

	cp, err := cl.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 4}}})
	if err != nil || len(cp.Errors) != 1 || cp.Errors[topic] != nil {
		t.Errorf("CreatePartitions: %+v %v", cp, err)
	}
	// A new Transport: the default one answers Metadata from its cache.
	fresh := &kafka.Client{Addr: kafka.TCP(target.addrs...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	md, err := fresh.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 4 || len(md.Brokers) != target.brokers ||
		!slices.ContainsFunc(md.Brokers, func(b kafka.Broker) bool { return b.ID == md.Controller.ID }) {
		t.Errorf("Metadata after CreatePartitions: %+v %v", md, err)
	} else {
		for _, p := range md.Topics[0].Partitions {
			if len(p.Replicas) != int(target.rf) {
				t.Errorf("Metadata after CreatePartitions: partition %d has replicas %v, want %d", p.ID, p.Replicas, target.rf)
			}
		}
	}
	dt, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic, "no-such-topic"}})
	if err != nil || dt.Errors[topic] != nil || !errors.Is(dt.Errors["no-such-topic"], kafka.UnknownTopicOrPartition) {
		t.Errorf("DeleteTopics: %+v %v", dt, err)
	}
}

// kafkagoAcksNone writes with the zero Writer's RequiredAcks, RequireNone
// (acks=0: the broker sends no response), then reads every record back,
// each batch in order.
func kafkagoAcksNone(ctx context.Context, t *testing.T, addrs []string) {
	t.Helper()
	topic := uniqueName(t, "kafkago-acks0")
	// Nothing tells an acks=0 writer of an error but a closed connection, so
	// write once the topic's leader serves it: in a cluster a broker may list
	// a new topic's leader before that leader has taken the partition, and
	// what reaches it meanwhile is lost, as with Kafka. DialLeader's Metadata
	// creates the topic.
	if !wait.Until(30*time.Second, func() bool {
		conn, err := kafka.DialLeader(ctx, "tcp", addrs[0], topic, 0)
		if err != nil {
			return false
		}
		defer conn.Close()
		last, err := conn.ReadLastOffset()
		return err == nil && last == 0
	}) {
		t.Fatalf("acks=0: the leader of %s never served it", topic)
	}
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: topic, AllowAutoTopicCreation: true, BatchTimeout: 5 * time.Millisecond,
		Logger: kafkagoLogger("acks0 writer: "), ErrorLogger: kafkagoLogger("acks0 writer ERROR: ")}
	const n = 1000
	var want []clientRec
	for start := 0; start < n; start += 100 {
		var msgs []kafka.Message
		for i := start; i < start+100; i++ {
			msgs = append(msgs, kafka.Message{Key: compatKey(i), Value: compatValue(topic, i), Time: time.UnixMilli(1_700_000_000_000 + int64(i))})
			want = append(want, clientRec{0, int64(i), compatKey(i), compatValue(topic, i), "", 1_700_000_000_000 + int64(i)})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("WriteMessages with acks=0: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Writer.Close: %v", err)
	}
	// Nothing acknowledges an acks=0 write: wait for the end offset.
	if !wait.Until(10*time.Second, func() bool {
		conn, err := kafka.DialLeader(ctx, "tcp", addrs[0], topic, 0)
		if err != nil {
			return false
		}
		defer conn.Close()
		last, err := conn.ReadLastOffset()
		return err == nil && last == n
	}) {
		t.Fatalf("acks=0: %d records not all written within 10s", n)
	}
	// kafka-go's Transport answers an acks=0 write once it is on the socket
	// and only then puts the connection back in its pool: the next write may
	// go out on a new connection, and the broker may take the two in either
	// order (so would Kafka). Each record is there once, at the offset the
	// log gave it: match them by timestamp, one per record.
	got := kafkagoReadPartition(ctx, t, addrs, topic, 0, n)
	at := make(map[int64]int64, len(got))
	for _, r := range got {
		at[r.ts] = r.offset
	}
	for i := range want {
		if off, ok := at[want[i].ts]; ok {
			want[i].offset = off
		}
	}
	for i := 1; i < len(want); i++ {
		if i%100 != 0 && want[i].offset != want[i-1].offset+1 {
			t.Fatalf("acks=0: record %d of a batch is at offset %d, the one before at %d", i, want[i].offset, want[i-1].offset)
		}
	}
	compareRecs(t, "acks=0", got, want)
}
