package tier

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/partition"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
	"github.com/stratalog/strata/remotestore/mem"
)

const testTopic = "events"

// makeBatch encodes a v2 record batch of n records (recbatch.Make).
func makeBatch(t testing.TB, n int, ts int64, tag string) []byte {
	t.Helper()
	return recbatch.Make(n, ts, tag)
}

// env is a partition log, a faulty in-memory store, a metadata store and
// a manager over them.
type env struct {
	t        *testing.T
	dir      string
	mem      *mem.Store
	fault    *faultstore.Store
	store    remotestore.Store
	meta     *metadata.Store
	log      *localstore.Log
	cfg      Config
	reg      *prometheus.Registry
	logger   *slog.Logger // nil: none
	m        *Manager
	clock    *fakeClock
	pl       PartitionLog
	ret      partition.Config // the partition's retention
	nextTs   int64
	appended [][]byte // every batch as stored, in offset order
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, mem: mem.New(), clock: &fakeClock{now: time.Now()}, nextTs: 1_000_000}
	e.fault = faultstore.New(e.mem)
	e.store = e.fault
	meta, err := metadata.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close() })
	e.meta = meta
	if err := meta.CreateTopic(metadata.Topic{Name: testTopic, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	l, err := localstore.Open(filepath.Join(dir, "logs", testTopic+"-0"), localstore.Config{SegmentBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.log = l
	mt, err := meta.Topic(testTopic)
	if err != nil {
		t.Fatal(err)
	}
	e.pl = PartitionLog{Topic: testTopic, TopicID: mt.ID, Partition: 0, Log: l, Remote: true}
	e.ret = partition.Config{Tiered: true, RetentionMs: -1, RetentionBytes: -1, LocalRetentionMs: -1, LocalRetentionBytes: -1}
	e.cfg = Config{
		CacheDir: filepath.Join(dir, "cache"), CacheMaxBytes: 64 << 20, ChunkBytes: 2048,
		ReadaheadChunks: 0, FetchMaxWait: 5 * time.Second, ReconcileInterval: -1,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: 10 * time.Millisecond, Now: e.clock.Now,
	}
	if tweak != nil {
		tweak(&e.cfg)
	}
	e.open()
	return e
}

// open (re)starts the manager.
func (e *env) open() {
	e.t.Helper()
	if e.m != nil {
		e.m.Close()
	}
	e.reg = prometheus.NewRegistry()
	m, err := New(e.cfg, e.store, e.meta, e.logger, e.reg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	e.t.Cleanup(func() { m.Close() })
}

// segment appends batches batches of records records each, then rolls.
func (e *env) segment(batches, records int) {
	e.t.Helper()
	for range batches {
		b := makeBatch(e.t, records, e.nextTs, fmt.Sprintf("b%d", len(e.appended)))
		e.nextTs += int64(records)
		res, err := e.log.Append(b)
		if err != nil {
			e.t.Fatal(err)
		}
		binary.BigEndian.PutUint64(b, uint64(res.BaseOffset))
		e.appended = append(e.appended, b)
	}
	if err := e.log.Roll(); err != nil {
		e.t.Fatal(err)
	}
}

// active appends records to the active segment without rolling.
func (e *env) active(records int) {
	e.t.Helper()
	b := makeBatch(e.t, records, e.nextTs, "active")
	e.nextTs += int64(records)
	res, err := e.log.Append(b)
	if err != nil {
		e.t.Fatal(err)
	}
	binary.BigEndian.PutUint64(b, uint64(res.BaseOffset))
	e.appended = append(e.appended, b)
}

// manage runs one round for the partition and waits for it.
// manage runs a round as the broker does: the tier's round (uploads), the
// partition's retention (package partition, which deletes local segments and
// sets the remote cut-off), then a round that deletes the remote segments
// below the cut-off.
func (e *env) manage() {
	e.m.Manage(context.Background(), []PartitionLog{e.pl})
	e.m.waitIdle()
	p := partition.New(testTopic, e.pl.TopicID, 0, e.pl.Log, e.m, e.meta, e.ret, nil)
	if _, err := p.Retention(e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	e.m.Manage(context.Background(), []PartitionLog{e.pl})
	e.m.waitIdle()
	if _, err := p.Retention(e.clock.Now()); err != nil { // persists the log start the deletions moved
		e.t.Fatal(err)
	}
}

func (e *env) remote() []metadata.RemoteSegment {
	e.t.Helper()
	segs, err := e.meta.RemoteSegments(testTopic, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return segs
}

// keys lists the bucket's keys except the topic manifests (manifest.go),
// which the manager writes in the background.
func (e *env) keys() []string {
	e.t.Helper()
	var keys []string
	if err := e.mem.List(context.Background(), "", func(o remotestore.ObjectInfo) error {
		if !strings.HasPrefix(o.Key, manifestRoot) {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return keys
}

func (e *env) object(key string) []byte {
	e.t.Helper()
	rc, err := e.mem.GetRange(context.Background(), key, 0, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// batchesFrom returns the appended batches whose offsets are >= from,
// concatenated, up to (not including) offset to.
func (e *env) bytesBetween(from, to int64) []byte {
	var out []byte
	for _, b := range e.appended {
		h, _ := localstore.ParseBatchHeader(b)
		last := h.BaseOffset + int64(h.LastOffsetDelta)
		if last >= from && h.BaseOffset < to {
			out = append(out, b...)
		}
	}
	return out
}

// readAll reads the remote tier from offset from up to offset to, slice by
// slice, and returns the bytes.
func (e *env) readAll(from, to, maxBytes int64) []byte {
	e.t.Helper()
	var out []byte
	for off := from; off < to; {
		sl, err := e.m.Read(context.Background(), testTopic, 0, off, maxBytes, true)
		if err != nil {
			e.t.Fatalf("read at %d: %v", off, err)
		}
		b := sliceBytes(e.t, sl)
		if len(b) == 0 {
			e.t.Fatalf("read at %d: empty", off)
		}
		out = append(out, b...)
		off = lastOffset(e.t, b) + 1
	}
	return out
}

func sliceBytes(t testing.TB, sl localstore.Slice) []byte {
	t.Helper()
	defer sl.Done()
	if sl.Len == 0 {
		return nil
	}
	b := make([]byte, sl.Len)
	if _, err := sl.File.ReadAt(b, sl.Pos); err != nil {
		t.Fatal(err)
	}
	return b
}

// lastOffset is the last offset of the last batch in b (whole batches).
func lastOffset(t testing.TB, b []byte) int64 {
	t.Helper()
	var last int64 = -1
	for len(b) > 0 {
		h, err := localstore.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		last = h.BaseOffset + int64(h.LastOffsetDelta)
		b = b[h.TotalSize():]
	}
	return last
}

func countBatches(t testing.TB, b []byte) int {
	n := 0
	for len(b) > 0 {
		h, err := localstore.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		b = b[h.TotalSize():]
		n++
	}
	return n
}

func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += metricValue(m)
		}
		return v
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
