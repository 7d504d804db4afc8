package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
)

// deleteSets tier a topic fast on the default fs tier: 4 KiB segments,
// nothing kept locally once uploaded, 100 ms rounds.
var deleteSets = append([]string{"num.partitions=1"}, tierSets...)

// acked maps partition -> the values acknowledged at offsets 0, 1, ...
type acked map[int32][]string

// produceAcked produces n rounds of two records of about 1 KiB to each
// partition of topic, each round its own batch, so that 4 KiB segments roll,
// and adds what was acknowledged to have, checking that offsets follow on
// from what was there.
func produceAcked(t *testing.T, addr, topic string, partitions int32, n int, tag string, have acked) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RequestRetries(20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pad := strings.Repeat("x", 1000)
	for i := range n {
		var recs []*kgo.Record
		for p := range partitions {
			for j := range 2 {
				recs = append(recs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d-%d-%d-%s", tag, p, i, j, pad)})
			}
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", tag, err)
		}
		// ProduceSync keeps the order within a partition; offsets must
		// continue exactly where the acknowledged ones end.
		for _, r := range res {
			p := r.Record.Partition
			if r.Record.Offset != int64(len(have[p])) {
				t.Fatalf("%s: partition %d acknowledged offset %d, want %d", tag, p, r.Record.Offset, len(have[p]))
			}
			have[p] = append(have[p], string(r.Record.Value))
		}
	}
}

// readAll consumes every partition of topic from offset 0 up to its high
// watermark and compares with want, record for record.
func readAll(t *testing.T, addr, topic string, partitions int32, want acked) {
	t.Helper()
	ends := listOffsets(t, addr, topic, partitions, -1)
	for p := range partitions {
		if ends[p] != int64(len(want[p])) {
			t.Fatalf("partition %d of %s ends at %d, want %d acknowledged records", p, topic, ends[p], len(want[p]))
		}
	}
	offs := map[int32]kgo.Offset{}
	total := 0
	for p := range partitions {
		offs[p] = kgo.NewOffset().AtStart()
		total += len(want[p])
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxBytes(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got := acked{}
	n := 0
	for n < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", n, total, topic)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != int64(len(got[r.Partition])) {
				t.Fatalf("partition %d: offset %d after %d records", r.Partition, r.Offset, len(got[r.Partition]))
			}
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			n++
		})
	}
	for p := range partitions {
		for i, v := range want[p] {
			if got[p][i] != v {
				t.Fatalf("partition %d offset %d: read %.40q, acknowledged %.40q", p, i, got[p][i], v)
			}
		}
	}
}

// listOffsets asks for a special timestamp's offset of every partition.
func listOffsets(t *testing.T, addr, topic string, partitions int32, ts int64) []int64 {
	t.Helper()
	offs, err := requestOffsets(addr, topic, partitions, ts)
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

// requestOffsets sends one ListOffsets v9 for partitions 0..partitions-1.
func requestOffsets(addr, topic string, partitions int32, ts int64) ([]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 9
	rt := kmsg.ListOffsetsRequestTopic{Topic: topic}
	for p := range partitions {
		rt.Partitions = append(rt.Partitions, kmsg.ListOffsetsRequestTopicPartition{Partition: p, Timestamp: ts, CurrentLeaderEpoch: -1})
	}
	req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := make([]int64, partitions)
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			return nil, fmt.Errorf("ListOffsets %s/%d: error %d", topic, p.Partition, p.ErrorCode)
		}
		out[p.Partition] = p.Offset
	}
	return out, nil
}

// waitAllTiered waits until every partition of topic has a segment in the
// remote tier and has no local copy below it.
func waitAllTiered(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	done := 0
	if !wait.Until(3*time.Minute, func() bool {
		tiered := listOffsets(t, addr, topic, partitions, -5)
		local := listOffsets(t, addr, topic, partitions, -4)
		done = 0
		for p := range partitions {
			if tiered[p] >= 0 && local[p] > 0 {
				done++
			}
		}
		return done == int(partitions)
	}) {
		t.Fatalf("%s: %d of %d partitions tiered", topic, done, partitions)
	}
}

// topicPartitions is the topic's partition count, or 0 when it does not exist.
func topicPartitions(t *testing.T, addr, topic string) int32 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tds, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	td, ok := tds[topic]
	if !ok {
		return 0
	}
	return int32(len(td.Partitions))
}

func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// waitNoDeletions waits until the broker reports no pending topic deletion.
func waitNoDeletions(t *testing.T, maddr string) {
	t.Helper()
	var err error
	if !wait.Until(2*time.Minute, func() bool {
		var resp *http.Response
		if resp, err = http.Get("http://" + maddr + "/v1/tier/deletions"); err != nil {
			return false
		}
		defer resp.Body.Close()
		var dels []json.RawMessage
		return json.NewDecoder(resp.Body).Decode(&dels) == nil && len(dels) == 0
	}) {
		t.Fatalf("topic deletions still pending after 2 minutes (%v)", err)
	}
}

// deleteSetAside reports whether a partition directory of a deletion is in
// the log directory (this version's or an older one's "-delete" names).
func deleteSetAside(dir string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), "-delete") {
			return true
		}
	}
	return false
}

// TestKill9DuringDeleteTopics kills the broker at several instants of the
// deletion of a tiered 1,000-partition topic. After each restart the topic is
// either whole, with every acknowledged record, or gone; records produced
// after the restart (to the surviving topic, or to a new topic of the same
// name) are all read back, from the remote tier too; and once the cleanup
// has drained, the bucket holds only objects that the index owns.
func TestKill9DuringDeleteTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("a long kill -9 test")
	}
	const parts = 1000
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, append([]string{"metrics.listen=" + maddr}, deleteSets...)...)
	instants := []struct {
		name string
		// crash is a crash point (STRATATEST_CRASH_AT) the broker exits at;
		// empty: the test kills it with -9 when kill says so.
		crash string
		kill  func() bool
	}{
		// When the first partition directory is renamed aside: a version
		// that renamed before committing lost the topic's data here.
		{name: "first-dir-set-aside", kill: func() bool { return deleteSetAside(p.dir) }},
		{name: "request-sent", kill: func() bool { return true }},
		{name: "after-commit", crash: "delete-committed"},
		{name: "after-local-cleanup", crash: "delete-local-removed"},
		{name: "after-remote-purge", crash: "delete-remote-purged"},
	}
	for i, in := range instants {
		topic := fmt.Sprintf("doomed-%d", i)
		createTopic(t, p.addr(), topic, parts)
		have := acked{}
		produceAcked(t, p.addr(), topic, parts, 4, "before", have)
		waitAllTiered(t, p.addr(), topic, parts)

		if in.crash != "" {
			// The deleter crashes at its point for whatever deletion it
			// handles: let the earlier ones drain first.
			waitNoDeletions(t, maddr)
			p.stop()
			p.env = []string{"STRATATEST_CRASH_AT=" + in.crash}
			p.start()
			p.env = nil
		}
		reqDone := make(chan struct{})
		go func() {
			defer close(reqDone)
			cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.RequestRetries(0))
			if err != nil {
				return
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topic) // cut short by the crash
			if err == nil {
				err = resp[topic].Err
			}
			t.Logf("%s: DeleteTopics returned %v", in.name, err)
		}()
		if in.crash != "" {
			done := make(chan error, 1)
			go func() { done <- p.wait() }()
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("%s: the broker did not reach crash point %s", in.name, in.crash)
			}
		} else {
			deadline := time.Now().Add(2 * time.Minute)
			for !in.kill() {
				if time.Now().After(deadline) {
					t.Fatalf("%s: the instant to kill at never came", in.name)
				}
				time.Sleep(time.Millisecond / 2)
			}
			p.kill9()
		}
		<-reqDone // the crash cut it short, or it was answered
		p.start()

		n := topicPartitions(t, p.addr(), topic)
		after := acked{}
		switch n {
		case parts:
			t.Logf("%s: the topic survived whole", in.name)
			readAll(t, p.addr(), topic, parts, have)
			after = have
		case 0:
			t.Logf("%s: the topic is gone", in.name)
			// A new topic of the same name reads nothing of the old one.
			createTopic(t, p.addr(), topic, 10)
			n = 10
		default:
			t.Fatalf("%s: after the restart the topic has %d of %d partitions", in.name, n, parts)
		}
		produceAcked(t, p.addr(), topic, n, 4, "after", after)
		waitAllTiered(t, p.addr(), topic, n)
		readAll(t, p.addr(), topic, n, after)
	}

	// The cleanup drains: no deletion pending, no directory set aside, and
	// every object in the bucket belongs to an index entry.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p.stop()
		out := runStrata(t, p, "tier", "ls")
		pending := strings.Contains(out, "deleted topic")
		if !pending && !deleteSetAside(p.dir) {
			index := remoteIndex(t, p)
			objs := 0
			// One manifest directory (topic ID) per topic name: those of the
			// deleted IDs are gone.
			mdir := filepath.Join(p.dir, "remote", "manifests")
			names, _ := os.ReadDir(mdir)
			if len(names) != len(instants) {
				t.Fatalf("manifests of %d topic names, want %d", len(names), len(instants))
			}
			for _, n := range names {
				if ids, _ := os.ReadDir(filepath.Join(mdir, n.Name())); len(ids) != 1 {
					t.Fatalf("manifests of %d topic IDs named %s, want 1", len(ids), n.Name())
				}
			}
			filepath.WalkDir(filepath.Join(p.dir, "remote"), func(_ string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() && (d.Name() == ".strata-tmp" || d.Name() == "manifests") {
					return filepath.SkipDir // puts a kill cut short; manifests, checked above
				}
				if err == nil && !d.IsDir() {
					objs++
				}
				return nil
			})
			if objs != 2*len(index) {
				t.Fatalf("%d objects in the bucket for %d index entries", objs, len(index))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cleanup of deleted topics did not drain:\n%s", out)
		}
		p.start()
		time.Sleep(time.Second)
	}
}
