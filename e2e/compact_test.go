package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
)

// createCompacted creates a one-partition compacted topic with configs.
func createCompacted(t *testing.T, addr, topic string, configs map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
	for k, v := range configs {
		c[k] = kadm.StringPtr(v)
	}
	ctx := ctxFor(t, 30*time.Second)
	if r, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, c, topic); err != nil || r.Err != nil {
		t.Fatalf("create %s: %v %v %s", topic, err, r.Err, r.ErrMessage)
	}
}

// The kcat test: kcat -K produces keyed records with overwrites and
// -Z tombstones to a compacted topic; kcat reads back the latest record of
// each key, tombstones shown as NULL, and once delete.retention.ms is 0 the
// tombstones go too.
func TestKcatCompactedTopic(t *testing.T) {
	kc := kcat(t)
	p := startProc(t, "log.cleaner.backoff.ms=20")
	const topic = "kcat-compact"
	// segment.bytes=14: each batch rolls the segment, so all but the last
	// batch is cleanable.
	createCompacted(t, p.addr(), topic, map[string]string{"segment.bytes": "14", "min.cleanable.dirty.ratio": "0.01"})
	var in bytes.Buffer
	for round := 0; round <= 10; round++ {
		for k := 0; k < 20; k++ {
			if round == 10 && k%5 == 0 {
				fmt.Fprintf(&in, "key-%02d:\n", k) // -Z: an empty value is sent as NULL, a tombstone
				continue
			}
			fmt.Fprintf(&in, "key-%02d:value-%d-%d\n", k, round, k)
		}
	}
	produce := func(b []byte) {
		runCmd(t, time.Minute, b, kc, "-b", p.addr(), "-P", "-t", topic, "-K", ":", "-Z")
	}
	produce(in.Bytes())
	produce([]byte("tail:end\n")) // rolls the last batch of the rounds out of the active segment
	want := func(tombstones bool, tails ...string) string {
		var b strings.Builder
		for k := 0; k < 20; k++ {
			switch {
			case k%5 != 0:
				fmt.Fprintf(&b, "key-%02d=value-10-%d\n", k, k)
			case tombstones:
				fmt.Fprintf(&b, "key-%02d=NULL\n", k)
			}
		}
		for _, t := range tails {
			b.WriteString(t + "\n")
		}
		return b.String()
	}
	var got string
	consume := func() string {
		return string(runCmd(t, time.Minute, nil, kc, "-b", p.addr(), "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-Z", "-f", "%k=%s\n"))
	}
	if !wait.Until(60*time.Second, func() bool { got = consume(); return got == want(true, "tail=end") }) {
		t.Fatalf("kcat read after cleaning:\n%s\nwant:\n%s", got, want(true, "tail=end"))
	}
	// delete.retention.ms=0: the tombstones go at the next cleaning.
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if r, err := kadm.NewClient(cl).AlterTopicConfigs(ctxFor(t, 30*time.Second),
		[]kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("0")}}, topic); err != nil || r[0].Err != nil {
		t.Fatalf("alter: %v %v", err, r)
	}
	produce([]byte("tail2:end\n"))
	if !wait.Until(60*time.Second, func() bool { got = consume(); return got == want(false, "tail=end", "tail2=end") }) {
		t.Fatalf("kcat read after delete.retention.ms:\n%s\nwant:\n%s", got, want(false, "tail=end", "tail2=end"))
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// kill -9 while the cleaner rewrites and swaps segments: after each restart
// the log holds either the old or the new segments, so a consumer from 0
// sees each offset at most once, every record it sees is the one produced at
// that offset, and the latest record of every key is there. Once the
// cleaner finishes, exactly the latest record of each key is left.
func TestKill9DuringCleaning(t *testing.T) {
	if testing.Short() {
		t.Skip("a long kill -9 test")
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// A slow cleaner (io rate) so that the kills land inside cleanings.
	p := startProc(t, "metrics.listen="+maddr, "log.cleaner.backoff.ms=20", "log.cleaner.io.max.bytes.per.second=200000")
	const topic = "compact-kill"
	// segment.ms rolls the last records out of the active segment, which
	// is never cleaned, a second after the produce.
	createCompacted(t, p.addr(), topic, map[string]string{"segment.bytes": "16384", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01"})
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	produced := map[int64]string{} // offset -> key=value
	latest := map[string]int64{}
	for round := 0; round < 20; round++ {
		var recs []*kgo.Record
		for k := 0; k < 300; k++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%03d", k)), Value: []byte(fmt.Sprintf("r%02d-%s", round, strings.Repeat("v", k%40)))})
		}
		if err := cl.ProduceSync(ctxFor(t, time.Minute), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			produced[r.Offset] = string(r.Key) + "=" + string(r.Value)
			latest[string(r.Key)] = r.Offset
		}
	}
	tail := &kgo.Record{Key: []byte("tail"), Value: []byte("end")}
	if err := cl.ProduceSync(ctxFor(t, time.Minute), tail).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produced[tail.Offset], latest["tail"] = "tail=end", tail.Offset
	cl.Close()

	check := func(exact bool) bool {
		c, err := kgo.NewClient(kgo.SeedBrokers(p.addr()), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := ctxFor(t, time.Minute)
		seen := map[string]int64{}
		last, n := int64(-1), 0
		for last < tail.Offset {
			fs := c.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed up to offset %d of %d before the timeout", last, tail.Offset)
			}
			fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
			for _, r := range fs.Records() {
				if r.Offset <= last {
					t.Fatalf("offset %d after %d: a doubled or reordered record", r.Offset, last)
				}
				if got := string(r.Key) + "=" + string(r.Value); produced[r.Offset] != got {
					t.Fatalf("offset %d holds %q, produced %q", r.Offset, got, produced[r.Offset])
				}
				last = r.Offset
				seen[string(r.Key)] = r.Offset
				n++
			}
		}
		for k, off := range latest {
			if seen[k] != off {
				t.Fatalf("key %s: latest record at %d, consumer's last at %d: a lost record", k, off, seen[k])
			}
		}
		return !exact || n == len(latest)
	}
	for kill := 0; kill < 4; kill++ {
		// Kill while a cleaning is under way: bytes read, the cleaning not done.
		runs := metricValue(t, maddr, "strata_log_cleaner_runs_total")
		if !wait.Until(15*time.Second, func() bool {
			return metricValue(t, maddr, "strata_log_cleaner_read_bytes_total") > 0 &&
				metricValue(t, maddr, "strata_log_cleaner_runs_total") == runs
		}) {
			if kill == 0 {
				t.Fatal("no cleaning started")
			}
			t.Logf("kill %d: no cleaning under way (the log is clean)", kill)
			break
		}
		t.Logf("kill %d during a cleaning", kill)
		p.kill9()
		p.start()
		check(false)
	}
	if !wait.Until(120*time.Second, func() bool { return check(true) }) {
		t.Fatal("the log was not compacted to the latest record of each key")
	}
}
