package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/metadata"
)

// The offsets-topic test: a franz-go group commits offsets (each
// partition at a different offset), the broker is killed with kill -9 and
// restarted; kcat reads __consumer_offsets byte-exactly (lengths from %K/%S)
// and kmsg decodes its keys and values: the group's commit of each partition
// and its GroupMetadata record with the member are there. A new member of the
// group then resumes exactly at the committed offsets: no record read twice,
// none skipped.
func TestOffsetsTopicSurvivesKill9AndKcatReadsIt(t *testing.T) {
	kc := kcat(t)
	p := startProc(t, "num.partitions=3", "offsets.topic.num.partitions=3")
	const (
		topic   = "ot"
		group   = "ot-group"
		perPart = 50
	)
	processed := map[int32]int64{0: 10, 1: 20, 2: 35} // records of each partition the first member commits

	prod, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var recs []*kgo.Record
	for i := 0; i < perPart; i++ {
		for part := int32(0); part < 3; part++ {
			recs = append(recs, &kgo.Record{Partition: part, Value: []byte(fmt.Sprintf("p%d-%d", part, i))})
		}
	}
	if err := prod.ProduceSync(ctxFor(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// First member: reads, commits only what it processed.
	m1, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.RebalanceTimeout(6*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	read := map[int32][]*kgo.Record{}
	ctx := ctxFor(t, time.Minute)
	enough := func() bool {
		for part, n := range processed {
			if int64(len(read[part])) < n {
				return false
			}
		}
		return true
	}
	for !enough() {
		fs := m1.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("first member read %v records per partition", lens(read))
		}
		fs.EachError(func(tp string, part int32, err error) { t.Fatalf("first member: %s[%d]: %v", tp, part, err) })
		fs.EachRecord(func(r *kgo.Record) { read[r.Partition] = append(read[r.Partition], r) })
	}
	var last []*kgo.Record
	for part, n := range processed {
		last = append(last, read[part][n-1])
	}
	if err := m1.CommitRecords(ctx, last...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	memberID, _ := m1.GroupMetadata()

	// kill -9 with the member still in the group; it never leaves.
	p.kill9()
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	m1.LeaveGroupContext(cctx) // a canceled context: no LeaveGroup, Close is immediate
	m1.Close()
	p.start()
	restarted := time.Now()

	// kcat reads the offsets topic from the beginning; %K and %S give the
	// lengths, so binary keys and values come through byte-exact.
	out := runCmd(t, time.Minute, nil, kc, "-b", p.addr(), "-C", "-t", "__consumer_offsets", "-o", "beginning", "-e", "-q",
		"-f", "%p %o %K %S %k%s")
	kcatRecs := parseKcatSized(t, out)
	if len(kcatRecs) == 0 {
		t.Fatal("kcat read no records from __consumer_offsets")
	}
	commits := map[int32]int64{} // the latest commit of each partition of topic by group
	sawMember := false
	for _, r := range kcatRecs {
		if len(r.key) < 2 {
			t.Fatalf("__consumer_offsets[%d]@%d: key of %d bytes", r.part, r.offset, len(r.key))
		}
		switch ver := int16(r.key[0])<<8 | int16(r.key[1]); ver {
		case 0, 1:
			var k kmsg.OffsetCommitKey
			if err := k.ReadFrom(r.key); err != nil {
				t.Fatalf("__consumer_offsets[%d]@%d: OffsetCommitKey: %v", r.part, r.offset, err)
			}
			if k.Group != group || k.Topic != topic {
				continue
			}
			if r.value == nil {
				delete(commits, k.Partition)
				continue
			}
			var v kmsg.OffsetCommitValue
			if err := v.ReadFrom(r.value); err != nil {
				t.Fatalf("__consumer_offsets[%d]@%d: OffsetCommitValue: %v", r.part, r.offset, err)
			}
			commits[k.Partition] = v.Offset
		case 2:
			var k kmsg.GroupMetadataKey
			if err := k.ReadFrom(r.key); err != nil {
				t.Fatalf("__consumer_offsets[%d]@%d: GroupMetadataKey: %v", r.part, r.offset, err)
			}
			if k.Group != group || r.value == nil {
				continue
			}
			var v kmsg.GroupMetadataValue
			if err := v.ReadFrom(r.value); err != nil {
				t.Fatalf("__consumer_offsets[%d]@%d: GroupMetadataValue: %v", r.part, r.offset, err)
			}
			for _, m := range v.Members {
				if m.MemberID == memberID && v.ProtocolType == "consumer" {
					sawMember = true
				}
			}
		default:
			t.Fatalf("__consumer_offsets[%d]@%d: key version %d", r.part, r.offset, ver)
		}
	}
	for part, n := range processed {
		if got, ok := commits[part]; !ok || got != n {
			t.Fatalf("kcat: committed offset of %s[%d] is %d (present %v), want %d; all: %v", topic, part, got, ok, n, commits)
		}
	}
	if len(commits) != len(processed) {
		t.Fatalf("kcat: commits for partitions %v, want only %v", commits, processed)
	}
	if !sawMember {
		t.Fatalf("kcat: no GroupMetadata record of %s with member %s", group, memberID)
	}

	// A new member resumes at the committed offsets. The old member's
	// session (6s) expires first, counted from the restart.
	m2, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	next := map[int32]int64{}
	for part, n := range processed {
		next[part] = n
	}
	remaining := 0
	for _, n := range processed {
		remaining += perPart - int(n)
	}
	ctx2 := ctxFor(t, time.Minute)
	for remaining > 0 {
		fs := m2.PollFetches(ctx2)
		if ctx2.Err() != nil {
			t.Fatalf("new member: %d records still unread; next offsets %v", remaining, next)
		}
		fs.EachError(func(tp string, part int32, err error) { t.Fatalf("new member: %s[%d]: %v", tp, part, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next[r.Partition] {
				t.Fatalf("new member read %s[%d]@%d, want offset %d (committed %d)", r.Topic, r.Partition, r.Offset, next[r.Partition], processed[r.Partition])
			}
			if want := "p" + strconv.Itoa(int(r.Partition)) + "-" + strconv.FormatInt(r.Offset, 10); string(r.Value) != want {
				t.Fatalf("%s[%d]@%d: value %q, want %q", r.Topic, r.Partition, r.Offset, r.Value, want)
			}
			next[r.Partition]++
			remaining--
		})
	}
	t.Logf("new member read the rest %v after the restart", time.Since(restarted).Round(time.Millisecond))
	for part, n := range next {
		if n != perPart {
			t.Fatalf("new member read %s[%d] up to %d, want %d", topic, part, n, perPart)
		}
	}
}

func lens(m map[int32][]*kgo.Record) map[int32]int {
	out := map[int32]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// kcatRecord is one record kcat printed with -f '%p %o %K %S %k%s'; a nil
// key or value was NULL (length -1).
type kcatRecord struct {
	part       int32
	offset     int64
	key, value []byte
}

// parseKcatSized parses kcat output in the format '%p %o %K %S %k%s': four
// space-terminated numbers, then exactly %K key bytes and %S value bytes.
func parseKcatSized(t *testing.T, out []byte) []kcatRecord {
	t.Helper()
	var recs []kcatRecord
	num := func() int64 {
		i := bytes.IndexByte(out, ' ')
		if i < 0 {
			t.Fatalf("kcat output: no number at %q", out)
		}
		n, err := strconv.ParseInt(string(out[:i]), 10, 64)
		if err != nil {
			t.Fatalf("kcat output: %v", err)
		}
		out = out[i+1:]
		return n
	}
	take := func(n int64) []byte {
		if n < 0 {
			return nil
		}
		if int64(len(out)) < n {
			t.Fatalf("kcat output: %d bytes left, want %d", len(out), n)
		}
		b := append([]byte{}, out[:n]...)
		out = out[n:]
		return b
	}
	for len(out) > 0 {
		var r kcatRecord
		r.part = int32(num())
		r.offset = num()
		klen, vlen := num(), num()
		r.key = take(klen)
		r.value = take(vlen)
		recs = append(recs, r)
	}
	return recs
}

// A data directory from before the offsets topic (committed offsets in
// bbolt) is opened by a broker that dies in the middle of moving them into
// __consumer_offsets: at the crash point after a group's offsets are in the
// topic and before they leave bbolt, then by kill -9 at random instants of
// the move of 2,000 groups. After each restart every group's offsets are
// there, exactly as committed, and bbolt ends up holding none.
func TestOffsetsMigrationSurvivesCrashes(t *testing.T) {
	const groups = 2000
	p := &proc{t: t, dir: t.TempDir(), port: freePort(t)}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("broker log:\n%s", p.logs.String())
		}
	})
	meta, err := metadata.Open(filepath.Join(p.dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.CreateTopic(metadata.Topic{Name: "old", ID: [16]byte{7}, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	want := func(g int, part int32) int64 { return int64(g*10) + int64(part) }
	for g := range groups {
		var offs []metadata.OffsetCommit
		for part := range int32(4) {
			offs = append(offs, metadata.OffsetCommit{Topic: "old", Partition: part, Offset: want(g, part), LeaderEpoch: -1, CommitTimestamp: now})
		}
		if err := meta.CommitOffsets(fmt.Sprintf("g%04d", g), offs); err != nil {
			t.Fatal(err)
		}
	}
	meta.Close()

	// The crash point: after the first group's append, before its delete.
	p.env = []string{"STRATATEST_CRASH_AT=offsets-migrated-group"}
	p.launch()
	if err := p.wait(); err == nil {
		t.Fatal("the broker did not stop at the crash point")
	}
	p.env = nil
	// kill -9 at random instants of the start-up, while the move runs.
	left := func() int {
		meta, err := metadata.Open(filepath.Join(p.dir, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer meta.Close()
		gs, err := meta.OffsetGroups()
		if err != nil {
			t.Fatal(err)
		}
		return len(gs)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	midway := 0
	for kill := range 5 {
		p.launch()
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		p.kill9()
		n := left()
		t.Logf("kill %d: %d groups left in bbolt", kill, n)
		if n > 0 && n < groups {
			midway++
		}
	}
	if midway == 0 {
		t.Fatal("no kill landed in the middle of the move: the test proves nothing")
	}
	p.start()

	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var names []string
	for g := range groups {
		names = append(names, fmt.Sprintf("g%04d", g))
	}
	fetched := kadm.NewClient(cl).FetchManyOffsets(ctxFor(t, 2*time.Minute), names...)
	for g, name := range names {
		r, ok := fetched[name]
		if !ok || r.Err != nil {
			t.Fatalf("group %s: %v", name, r.Err)
		}
		for part := range int32(4) {
			if o, _ := r.Fetched.Lookup("old", part); o.At != want(g, part) {
				t.Fatalf("group %s old-%d: committed %d, want %d", name, part, o.At, want(g, part))
			}
		}
	}
	p.stop()
	if n := left(); n != 0 {
		t.Fatalf("bbolt still holds the offsets of %d groups", n)
	}
}
