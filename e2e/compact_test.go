package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
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

// keyedLog is a compacted topic under test: what was produced at each
// offset and the latest offset of each key.
type keyedLog struct {
	t        *testing.T
	p        *proc
	topic    string
	produced map[int64]string // offset -> key=value
	latest   map[string]int64
	end      int64 // the last offset produced
	round    int
}

func newKeyedLog(t *testing.T, p *proc, topic string) *keyedLog {
	// segment.ms rolls the last records out of the active segment, which
	// is never cleaned, a second after the produce.
	createCompacted(t, p.addr(), topic, map[string]string{"segment.bytes": "16384", "segment.ms": "1000", "min.cleanable.dirty.ratio": "0.01"})
	return &keyedLog{t: t, p: p, topic: topic, produced: map[int64]string{}, latest: map[string]int64{}}
}

// produceRound writes one record for each of 300 keys.
func (kl *keyedLog) produceRound() {
	t := kl.t
	cl, err := kgo.NewClient(kgo.SeedBrokers(kl.p.addr()), kgo.DefaultProduceTopic(kl.topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for k := 0; k < 300; k++ {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("k%03d", k)), Value: []byte(fmt.Sprintf("r%02d-%s", kl.round, strings.Repeat("v", k%40)))})
	}
	kl.round++
	if err := cl.ProduceSync(ctxFor(t, time.Minute), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		kl.produced[r.Offset] = string(r.Key) + "=" + string(r.Value)
		kl.latest[string(r.Key)] = r.Offset
		kl.end = max(kl.end, r.Offset)
	}
}

// read reads the topic from offset 0 up to the last offset produced: each
// offset at most once, each record the one produced at its offset (it fails
// the test otherwise). It returns the last offset read of each key and how
// many records it read.
func (kl *keyedLog) read() (seen map[string]int64, n int) {
	t := kl.t
	c, err := kgo.NewClient(kgo.SeedBrokers(kl.p.addr()), kgo.ConsumeTopics(kl.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxFor(t, time.Minute)
	seen = map[string]int64{}
	last := int64(-1)
	for last < kl.end {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed up to offset %d of %d before the timeout", last, kl.end)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		for _, r := range fs.Records() {
			if r.Offset <= last {
				t.Fatalf("offset %d after %d: a doubled or reordered record", r.Offset, last)
			}
			if got := string(r.Key) + "=" + string(r.Value); kl.produced[r.Offset] != got {
				t.Fatalf("offset %d holds %q, produced %q", r.Offset, got, kl.produced[r.Offset])
			}
			last = r.Offset
			seen[string(r.Key)] = r.Offset
			n++
		}
	}
	return seen, n
}

// check reads the topic from offset 0 (read's checks) and fails the test if
// the latest record of a key is missing; with exact, it reports whether
// nothing else is left.
func (kl *keyedLog) check(exact bool) bool {
	seen, n := kl.read()
	for k, off := range kl.latest {
		if seen[k] != off {
			kl.t.Fatalf("key %s: latest record at %d, consumer's last at %d: a lost record", k, off, seen[k])
		}
	}
	return !exact || n == len(kl.latest)
}

// kill -9 at 20 random instants of cleanings: before each kill a round of
// overwrites makes the log dirty, the test waits for a cleaning to start
// (bytes read, the run not finished) and kills at a random moment up to half
// a second later, inside the rewrite or the swap. After each restart the log
// holds either the old or the new segments, so a consumer from 0 sees each
// offset at most once, every record it sees is the one produced at that
// offset, and the latest record of every key is there. Once the cleaner
// finishes, exactly the latest record of each key is left.
func TestKill9DuringCleaning(t *testing.T) {
	if testing.Short() {
		t.Skip("a long kill -9 test")
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	// A slow cleaner (io rate) so that the kills land inside cleanings.
	p := startProc(t, "metrics.listen="+maddr, "log.cleaner.backoff.ms=20", "log.cleaner.io.max.bytes.per.second=200000")
	kl := newKeyedLog(t, p, "compact-kill")
	for range 10 {
		kl.produceRound()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for kill := range 20 {
		kl.produceRound()
		// Kill while a cleaning is under way: bytes read, the run not done.
		// A run that ends meanwhile moves the baseline to after it.
		read, runs := metricValue(t, maddr, "strata_log_cleaner_read_bytes_total"), metricValue(t, maddr, "strata_log_cleaner_runs_total")
		if !wait.Until(30*time.Second, func() bool {
			r, n := metricValue(t, maddr, "strata_log_cleaner_read_bytes_total"), metricValue(t, maddr, "strata_log_cleaner_runs_total")
			if n != runs {
				read, runs = r, n
				return false
			}
			return r > read
		}) {
			t.Fatalf("kill %d: no cleaning started within 30 s of a round of overwrites", kill)
		}
		delay := time.Duration(rng.IntN(500)) * time.Millisecond
		time.Sleep(delay)
		t.Logf("kill %d, %v into a cleaning", kill, delay)
		p.kill9()
		p.start()
		kl.check(false)
	}
	if !wait.Until(120*time.Second, func() bool { return kl.check(true) }) {
		t.Fatal("the log was not compacted to the latest record of each key")
	}
}

// The broker stops (STRATATEST_CRASH_AT, as kill -9 would) at each step of
// the cleaner's swap: the cleaned files written, the swap manifest written,
// the first old segment removed, the first cleaned file renamed into place,
// all renamed, the manifest removed. After each restart the keyed check
// holds, and the cleaner then finishes compacting the log.
func TestCleanerSwapCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("a long kill -9 test")
	}
	p := startProc(t, "log.cleaner.backoff.ms=20")
	kl := newKeyedLog(t, p, "swap-crash")
	for _, point := range []string{"clean-cleaned", "clean-manifest", "clean-remove", "clean-rename", "clean-renamed", "clean-done"} {
		p.stop()
		p.env = []string{"STRATATEST_CRASH_AT=" + point}
		p.start()
		p.env = nil
		for range 3 {
			kl.produceRound()
		}
		done := make(chan error, 1)
		go func() { done <- p.wait() }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("the broker did not reach crash point %s", point)
		}
		p.mu.Lock()
		reached := strings.Contains(p.logs.String(), "STRATATEST_CRASH_AT="+point)
		p.mu.Unlock()
		if !reached {
			t.Fatalf("the broker exited, but not at %s", point)
		}
		p.start()
		kl.check(false)
		t.Logf("%s: the log read back whole after the restart", point)
	}
	if !wait.Until(120*time.Second, func() bool { return kl.check(true) }) {
		t.Fatal("the log was not compacted to the latest record of each key")
	}
}

// kcatKeyed is the kcat workload on a compacted topic: records
// keyed records over keys keys (kcat -K), a tenth of them tombstones (-Z,
// empty values), then tail records of fresh keys; it knows what a consumer
// from offset 0 must read once the log is clean.
type kcatKeyed struct {
	t       *testing.T
	kc      string
	p       *proc
	topic   string
	records int
	live    []kcatLast // the latest record of each key, in offset order
	names   map[int]string
	tails   []string
}

type kcatLast struct {
	n    int // the record's index, its offset
	tomb bool
}

func newKcatKeyed(t *testing.T, p *proc, topic string, records, keys int) *kcatKeyed {
	k := &kcatKeyed{t: t, kc: kcat(t), p: p, topic: topic, records: records, names: map[int]string{}}
	rng := rand.New(rand.NewPCG(11, 12))
	var in bytes.Buffer
	in.Grow(records * 16)
	latest := make(map[string]kcatLast, keys)
	for i := range records {
		key := fmt.Sprintf("k%05d", rng.IntN(keys))
		if rng.IntN(10) == 0 {
			fmt.Fprintf(&in, "%s:\n", key) // -Z: an empty value is a NULL, a tombstone
			latest[key] = kcatLast{i, true}
			continue
		}
		fmt.Fprintf(&in, "%s:v%07d\n", key, i)
		latest[key] = kcatLast{i, false}
	}
	k.produce(in.Bytes())
	for key, l := range latest {
		k.live = append(k.live, l)
		k.names[l.n] = key
	}
	slices.SortFunc(k.live, func(a, b kcatLast) int { return a.n - b.n })
	k.tail()
	return k
}

func (k *kcatKeyed) produce(b []byte) {
	runCmd(k.t, 5*time.Minute, b, k.kc, "-b", k.p.addr(), "-P", "-t", k.topic, "-K", ":", "-Z")
}

// tail produces one record of a fresh key: it rolls what came before out of
// the active segment (after segment.ms) and makes the log dirty again.
func (k *kcatKeyed) tail() {
	k.produce([]byte(fmt.Sprintf("tail%d:end\n", len(k.tails))))
	k.tails = append(k.tails, fmt.Sprintf("tail%d=end", len(k.tails)))
}

// want is what kcat must read once the log is clean and delete.retention.ms
// has passed: one line per live key at its latest value, in offset order,
// then the tails; no tombstone.
func (k *kcatKeyed) want() string {
	var b strings.Builder
	for _, l := range k.live {
		if !l.tomb {
			fmt.Fprintf(&b, "%d %s=v%07d\n", l.n, k.names[l.n], l.n)
		}
	}
	for i, tail := range k.tails {
		fmt.Fprintf(&b, "%d %s\n", k.records+i, tail)
	}
	return b.String()
}

func (k *kcatKeyed) consume() string {
	return string(runCmd(k.t, 2*time.Minute, nil, k.kc, "-b", k.p.addr(), "-C", "-t", k.topic, "-o", "beginning", "-e", "-q", "-Z", "-f", "%o %k=%s\n"))
}

// waitClean reads with kcat until it reads want: the tombstones go at a
// cleaning after delete.retention.ms, so while only they (or superseded
// records) are left it produces a tail record every segment.ms to make the
// log dirty again.
func (k *kcatKeyed) waitClean(d time.Duration) {
	var got string
	if !wait.Until(d, func() bool {
		if got = k.consume(); got == k.want() {
			return true
		}
		if len(k.tails) < 60 && strings.Count(got, "\n") <= len(k.live)+len(k.tails) {
			time.Sleep(1100 * time.Millisecond)
			k.tail()
		}
		return false
	}) {
		w := k.want()
		k.t.Fatalf("after cleaning kcat read %d lines, want %d (first difference at line %d)",
			strings.Count(got, "\n"), strings.Count(w, "\n"), firstDiffLine(got, w))
	}
	k.t.Logf("%d records: %d live keys read back", k.records, strings.Count(k.want(), "\n")-len(k.tails))
}

// The scale: kcat -K produces 1,000,000 keyed records over 10,000
// keys, a tenth of them tombstones, to a compacted topic with small
// segments, min.cleanable.dirty.ratio 0.01 and a delete.retention.ms of a
// few seconds. After cleaning, kcat from offset 0 reads exactly one record
// per live key, its latest value, in offset order, and no tombstone once
// delete.retention.ms has passed; the log on disk shrinks accordingly.
func TestKcatCompactsAMillionRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("produces and compacts 1,000,000 records")
	}
	// The cleaner starts off, so that the log's size before cleaning is
	// measured; the restart turns it on.
	p := startProc(t, "log.cleaner.enable=false", "log.cleaner.backoff.ms=50")
	const topic = "kcat-compact-1m"
	createCompacted(t, p.addr(), topic, map[string]string{
		"segment.bytes": "1048576", "segment.ms": "1000",
		"min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "3000",
	})
	k := newKcatKeyed(t, p, topic, 1_000_000, 10_000)
	before := dirBytes(t, p.dir, topic)
	p.stop()
	p.sets = slices.DeleteFunc(p.sets, func(s string) bool { return s == "log.cleaner.enable=false" })
	p.start()
	k.waitClean(4 * time.Minute)
	after := dirBytes(t, p.dir, topic)
	t.Logf("log %d bytes before cleaning, %d after", before, after)
	if after*20 > before {
		t.Fatalf("the log holds %d bytes after cleaning, %d before: it did not shrink to a twentieth", after, before)
	}
}

// dirBytes sums the sizes of the files of a topic's partition directories.
func dirBytes(t *testing.T, root, topic string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.Contains(path, topic+"-") {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}
