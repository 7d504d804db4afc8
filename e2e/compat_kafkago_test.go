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
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

var kafkagoLog = &clientLog{}

func kafkagoLogger(prefix string) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		kafkagoLog.Printf(time.Now().Format("15:04:05.000000")+" "+prefix+format, args...)
	})
}

// kgRec is a record as written or read.
type kgRec struct {
	partition int
	offset    int64
	key, val  []byte
	hdrs      string
	ts        int64
}

func (r kgRec) String() string {
	return fmt.Sprintf("p%d@%d key=%q len(val)=%d hdrs=%q ts=%d", r.partition, r.offset, r.key, len(r.val), r.hdrs, r.ts)
}

func kgFromMessage(m kafka.Message) kgRec {
	var b bytes.Buffer
	for _, h := range m.Headers {
		fmt.Fprintf(&b, "%q=%q;", h.Key, h.Value)
	}
	return kgRec{m.Partition, m.Offset, m.Key, m.Value, b.String(), m.Time.UnixMilli()}
}

func compareKG(t *testing.T, what string, got, want []kgRec) {
	t.Helper()
	got, want = append([]kgRec(nil), got...), append([]kgRec(nil), want...)
	for _, s := range [][]kgRec{got, want} {
		sort.Slice(s, func(i, j int) bool {
			if s[i].partition != s[j].partition {
				return s[i].partition < s[j].partition
			}
			return s[i].offset < s[j].offset
		})
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.partition != w.partition || g.offset != w.offset || !bytes.Equal(g.key, w.key) || !bytes.Equal(g.val, w.val) || g.hdrs != w.hdrs || g.ts != w.ts {
			t.Fatalf("%s: record %d differs:\n got %v\nwant %v", what, i, g, w)
		}
	}
}

func TestCompatKafkaGo(t *testing.T) {
	kafkagoLog.capture(t, "kafka-go")
	_, vp := startCompatBroker(t)
	addr := vp.addr()
	defer vp.report(t)
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
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "86400000"}}}
	if err := cconn.CreateTopics(tc); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	if err := cconn.CreateTopics(tc); err != nil {
		t.Fatalf("CreateTopics of an existing topic (kafka-go ignores TOPIC_ALREADY_EXISTS): %v", err)
	}
	if err := cconn.CreateTopics(kafka.TopicConfig{Topic: topic + "-bad", NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "bogus"}}}); err == nil {
		t.Errorf("CreateTopics with a bad config succeeded")
	}
	parts, err := conn.ReadPartitions(topic)
	if err != nil || len(parts) != 3 {
		t.Fatalf("ReadPartitions: %v %v", parts, err)
	}

	// Writer, acks=all, hash-partitioned by key.
	const n = 3000
	written := kafkagoWrite(ctx, t, addr, topic, 0, n)

	// Reader without a group, from offset 0 on each partition.
	var got []kgRec
	for part := 0; part < 3; part++ {
		got = append(got, kafkagoReadPartition(ctx, t, addr, topic, part, countKG(written, part))...)
	}
	compareKG(t, "partition readers", got, written)

	// Reader with a GroupID: the first reads and commits part of the topic,
	// then leaves; a second in the same group reads the rest, from the
	// committed offsets (no committed record again).
	group := uniqueName(t, "kafkago-group")
	first := kafkagoGroupRead(ctx, t, addr, group, topic, "reader-1", n/3)
	more := kafkagoWrite(ctx, t, addr, topic, n, 600)
	all := append(append([]kgRec(nil), written...), more...)
	second := kafkagoGroupRead(ctx, t, addr, group, topic, "reader-2", len(all)-len(first))
	compareKG(t, "group readers", append(first, second...), all)

	// Two members at once: both get partitions; a third reader afterwards
	// finds nothing left.
	kafkagoTwoMembers(ctx, t, addr, group, topic)

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
}

func countKG(recs []kgRec, part int) int {
	n := 0
	for _, r := range recs {
		if r.partition == part {
			n++
		}
	}
	return n
}

func kafkagoWrite(ctx context.Context, t *testing.T, addr, topic string, from, n int) []kgRec {
	t.Helper()
	var mu sync.Mutex
	var recs []kgRec
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
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

func kafkagoReadPartition(ctx context.Context, t *testing.T, addr, topic string, part, n int) []kgRec {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     []string{addr},
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
	var got []kgRec
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

func kafkagoGroupReader(addr, group, topic, name string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
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
func kafkagoGroupRead(ctx context.Context, t *testing.T, addr, group, topic, name string, n int) []kgRec {
	t.Helper()
	r := kafkagoGroupReader(addr, group, topic, name)
	defer func() {
		if err := r.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []kgRec
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
func kafkagoTwoMembers(ctx context.Context, t *testing.T, addr, group, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	stray := 0
	readers := []*kafka.Reader{kafkagoGroupReader(addr, group, topic, "member-a"), kafkagoGroupReader(addr, group, topic, "member-b")}
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
	for {
		// kafka-go's Reader offers no view of its assignment; the broker's
		// DescribeGroups does.
		desc, err := kafkagoDescribeGroup(ctx, addr, group)
		if err == nil && len(desc.Members) == 2 && desc.GroupState == "Stable" {
			total := 0
			ok := true
			for _, m := range desc.Members {
				n := 0
				for _, a := range m.MemberAssignments.Topics {
					n += len(a.Partitions)
				}
				ok = ok && n > 0
				total += n
			}
			if ok && total == 3 {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("two members: group never stable with both assigned: %+v %v", desc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let both fetch once from the committed offsets
	mu.Lock()
	defer mu.Unlock()
	if stray != 0 {
		t.Errorf("two members read %d records below or past the committed end", stray)
	}
}

func kafkagoDescribeGroup(ctx context.Context, addr, group string) (kafka.DescribeGroupsResponseGroup, error) {
	cl := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
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
