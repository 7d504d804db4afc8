package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
)

// tiered builds three uploaded segments of 6 batches of 10 records, deletes
// them locally, and leaves an active segment at offset 180.
func tiered(t *testing.T, tweak func(*Config)) *env {
	e := newEnv(t, tweak)
	e.ret.LocalRetentionBytes = 0
	for range 3 {
		e.segment(6, 10)
	}
	e.active(10)
	e.manage()
	if len(e.remote()) != 3 || e.log.LogStartOffset() != 180 {
		t.Fatalf("setup: remote %+v, local start %d", e.remote(), e.log.LogStartOffset())
	}
	return e
}

func TestReadAcrossSegmentsByteIdentical(t *testing.T) {
	e := tiered(t, nil)
	want := e.bytesBetween(0, 180)
	for _, maxBytes := range []int64{1, 700, 3000, 1 << 20} {
		got := e.readAll(0, 180, maxBytes)
		if !bytes.Equal(got, want) {
			t.Fatalf("maxBytes %d: %d bytes read, want %d identical", maxBytes, len(got), len(want))
		}
	}
	// An offset in the middle of a batch serves that whole batch.
	sl, err := e.m.Read(context.Background(), testTopic, 0, 65, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	b := sliceBytes(t, sl)
	if !bytes.Equal(b, e.bytesBetween(65, 66)) {
		t.Errorf("read at 65 gave %d bytes", len(b))
	}
	// Never past the end of a chunk (chunks are 2048 bytes here).
	sl, err = e.m.Read(context.Background(), testTopic, 0, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if sl.Len > 2048 {
		t.Errorf("slice of %d bytes crosses a chunk", sl.Len)
	}
	sl.Done()
	sl.Done() // Release twice is harmless
	if v := gauge(t, e.reg, "strata_tier_remote_fetch_requests_total"); v == 0 {
		t.Error("no fetch requests counted")
	}
}

func TestReadMinOneBatch(t *testing.T) {
	e := tiered(t, nil)
	sl, err := e.m.Read(context.Background(), testTopic, 0, 0, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if sl.Len != 0 {
		t.Errorf("maxBytes 1 without minOneBatch: %d bytes", sl.Len)
	}
	sl.Done()
	sl, err = e.m.Read(context.Background(), testTopic, 0, 0, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	b := sliceBytes(t, sl)
	if countBatches(t, b) != 1 || !bytes.Equal(b, e.appended[0]) {
		t.Errorf("minOneBatch gave %d batches", countBatches(t, b))
	}
}

func TestReadOutOfRange(t *testing.T) {
	e := tiered(t, nil)
	for _, off := range []int64{180, 500} {
		if _, err := e.m.Read(context.Background(), testTopic, 0, off, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("offset %d: %v", off, err)
		}
	}
	if _, err := e.m.Read(context.Background(), "nope", 0, 0, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("unknown topic: %v", err)
	}
}

// settle waits until the chunk cache has resolved requests read-ahead
// requests (each is fetched, skipped or dropped) and has no download in
// progress.
func settle(t *testing.T, e *env, requests int64) {
	t.Helper()
	wait.Eventually(t, fmt.Sprintf("%d read-ahead requests resolved and downloaded", requests), func() bool {
		st := e.m.cache.Stats()
		return st.ReadaheadFetched+st.ReadaheadSkipped+st.ReadaheadDropped == requests &&
			st.Fetches == st.FetchFailures+st.Entries+st.Evictions
	})
}

func TestReadAhead(t *testing.T) {
	e := tiered(t, func(c *Config) { c.ReadaheadChunks, c.ChunkBytes = 2, 1024 })
	segs := e.remote()
	sc := e.m.sidecars.get(sidecarKey(testTopic, 0, 0, segs[0].UploadID))
	// Each read below asks for 2 chunks ahead, of its own segment up to the
	// last chunk.
	if sc == nil || len(sc.Chunks) < 5 {
		t.Fatalf("want a cached sidecar with at least 5 chunks")
	}
	read := func(off int64) {
		t.Helper()
		sl, err := e.m.Read(context.Background(), testTopic, 0, off, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		sl.Done()
	}
	read(0)
	settle(t, e, 2)
	if st := e.m.cache.Stats(); st.Entries != 3 || st.Misses != 1 {
		t.Fatalf("after one read with read-ahead 2: %+v", st)
	}
	// The prefetched chunks are hits.
	for c := 1; c <= 2; c++ {
		read(sc.Batches[sc.Chunks[c].FirstBatch].BaseOffset)
	}
	if st := e.m.cache.Stats(); st.Misses != 1 || st.Hits != 2 {
		t.Fatalf("reads of prefetched chunks: %+v", st)
	}
	settle(t, e, 6)

	// Reading the last chunk of the first segment prefetches the next
	// segment's first chunks, loading its sidecar first.
	e.m.sidecars.remove(sidecarKey(testTopic, 0, 60, segs[1].UploadID))
	last := sc.Chunks[len(sc.Chunks)-1]
	read(sc.Batches[last.FirstBatch].BaseOffset)
	wait.Eventually(t, "the next sidecar", func() bool {
		return e.m.sidecars.get(sidecarKey(testTopic, 0, 60, segs[1].UploadID)) != nil
	})
	settle(t, e, 8) // the last chunk has none after it in its segment: 2 of the next
	misses := e.m.cache.Stats().Misses
	read(60)
	if st := e.m.cache.Stats(); st.Misses != misses {
		t.Fatalf("first chunk of the next segment not prefetched: %+v", st)
	}
}

func TestReadStoreDown(t *testing.T) {
	e := tiered(t, nil)
	e.open() // a cold sidecar cache
	remove := e.fault.Inject(faultstore.Fault{})
	sl, err := e.m.Read(context.Background(), testTopic, 0, 0, 1<<20, true)
	if !errors.Is(err, ErrUnavailable) || sl.File != nil {
		t.Fatalf("store down: %+v, %v", sl, err)
	}
	if v := gauge(t, e.reg, "strata_tier_store_available"); v != 0 {
		t.Errorf("store available %v", v)
	}
	// A body that fails part-way serves nothing either.
	remove()
	remove = e.fault.Inject(faultstore.Fault{Op: remotestore.OpGetRange, Mode: faultstore.MidBody, BodyBytes: 100, KeyPrefix: logKey(testTopic, 0, 0, e.remote()[0].UploadID)})
	if _, err := e.m.Read(context.Background(), testTopic, 0, 0, 1<<20, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("mid-body failure: %v", err)
	}
	remove()
	got := e.readAll(0, 180, 1<<20)
	if !bytes.Equal(got, e.bytesBetween(0, 180)) {
		t.Fatal("reads after the store came back differ")
	}
	if v := gauge(t, e.reg, "strata_tier_store_available"); v != 1 {
		t.Errorf("store available %v", v)
	}
}

func TestReadCorruptChunkNeverServed(t *testing.T) {
	e := tiered(t, nil)
	e.open()
	seg := e.remote()[0]
	k := logKey(testTopic, 0, seg.BaseOffset, seg.UploadID)
	data := e.object(k)
	data[100] ^= 0xff
	if err := e.mem.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	if err := e.mem.Put(context.Background(), k, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	sl, err := e.m.Read(context.Background(), testTopic, 0, 0, 1<<20, true)
	if !errors.Is(err, ErrUnavailable) || sl.File != nil {
		t.Fatalf("corrupt chunk: %+v, %v", sl, err)
	}
	// The next segment is fine.
	if _, err := e.m.Read(context.Background(), testTopic, 0, 60, 1<<20, true); err != nil {
		t.Fatal(err)
	}
}

// TestReadBoundedByFetchMaxWait: a read whose download hangs gives up at
// remote.fetch.max.wait.ms, while the download is still blocked.
func TestReadBoundedByFetchMaxWait(t *testing.T) {
	e := tiered(t, func(c *Config) { c.FetchMaxWait = 50 * time.Millisecond })
	blocked := &blockingStore{Store: e.fault, release: make(chan struct{})}
	t.Cleanup(blocked.unblock)
	e.store = blocked
	e.open()
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Read(context.Background(), testTopic, 0, 0, 1<<20, true)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("blocked store: %v", err)
		}
	case <-time.After(wait.Timeout):
		t.Fatal("the read waited for the blocked store, not remote.fetch.max.wait.ms")
	}
	if blocked.calls.Load() == 0 || blocked.returned.Load() != 0 {
		t.Errorf("%d GETs, %d returned: want the read to end while a GET is blocked", blocked.calls.Load(), blocked.returned.Load())
	}
}

// blockingStore's GetRange blocks until unblock or its context ends.
type blockingStore struct {
	remotestore.Store
	release         chan struct{}
	once            sync.Once
	calls, returned atomic.Int64
}

func (s *blockingStore) unblock() { s.once.Do(func() { close(s.release) }) }

func (s *blockingStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	s.calls.Add(1)
	defer s.returned.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.GetRange(ctx, key, off, length)
}

func TestOffsetForTimestamp(t *testing.T) {
	e := tiered(t, nil)
	e.open() // cold caches
	// Records carry timestamps 1_000_000 + offset.
	for _, tc := range []struct{ ts, off int64 }{{0, 0}, {1_000_000, 0}, {1_000_065, 65}, {1_000_179, 179}} {
		off, ts, ok, err := e.m.OffsetForTimestamp(context.Background(), testTopic, 0, tc.ts)
		if err != nil || !ok || off != tc.off || ts != 1_000_000+tc.off {
			t.Errorf("ts %d: %d %d %v %v, want offset %d", tc.ts, off, ts, ok, err, tc.off)
		}
	}
	if _, _, ok, err := e.m.OffsetForTimestamp(context.Background(), testTopic, 0, 1_000_180); ok || err != nil {
		t.Errorf("past the remote tier: %v %v", ok, err)
	}
}

// The broker's Tier interface, restated: tier cannot import broker.
var _ interface {
	LogStartOffset(topic string, partition int32) (int64, bool)
	HighestOffset(topic string, partition int32) (int64, bool)
	Read(ctx context.Context, topic string, partition int32, offset, maxBytes int64, minOneBatch bool) (localstore.Slice, error)
	OffsetForTimestamp(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, ok bool, err error)
	Manage(ctx context.Context, parts []PartitionLog)
	ForgetTopic(topic string, id [16]byte)
	PurgeTopic(ctx context.Context, d metadata.TopicDeletion) error
} = (*Manager)(nil)

// ReadMany continues across chunks and segments up to maxBytes: one call
// serves what Read would in several, byte for byte.
func TestReadManyCrossesChunksAndSegments(t *testing.T) {
	e := tiered(t, nil)
	want := e.bytesBetween(0, 180)
	slices, err := e.m.ReadMany(context.Background(), testTopic, 0, 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, sl := range slices {
		got = append(got, sliceBytes(t, sl)...)
	}
	if len(slices) < 2 {
		t.Fatalf("%d slices: the read did not continue past the first chunk", len(slices))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%d bytes in %d slices, want the %d bytes of offsets 0-179", len(got), len(slices), len(want))
	}
	// A limit is a limit: whole batches, at most maxBytes after the first.
	slices, err = e.m.ReadMany(context.Background(), testTopic, 0, 0, 3000, true)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var part []byte
	for _, sl := range slices {
		n += sl.Len
		part = append(part, sliceBytes(t, sl)...)
	}
	if n > 3000 || n == 0 || !bytes.HasPrefix(want, part) {
		t.Fatalf("maxBytes 3000: %d bytes, prefix %v", n, bytes.HasPrefix(want, part))
	}
	// Past the remote tier: out of range, as Read.
	if _, err := e.m.ReadMany(context.Background(), testTopic, 0, 180, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("offset 180: %v", err)
	}
}

// TestScanIsNotReread: a consumer's fetches, each warming its chunk
// (partition.Log.Warm: one batch) then reading a few batches, so that one
// chunk is read by several fetches in a row, through a cache smaller than
// the topic. Reads of one chunk in a row on a partition are one access: no
// chunk of the scan is promoted to S3-FIFO's main queue. A later read of a
// chunk, after reads of others, is a re-read again.
func TestScanIsNotReread(t *testing.T) {
	e := tiered(t, func(c *Config) { c.CacheMaxBytes = 4 * 2048 })
	ctx := context.Background()
	for off := int64(0); off < 180; {
		warm, err := e.m.ReadMany(ctx, testTopic, 0, off, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, sl := range warm {
			sl.Done()
		}
		sl, err := e.m.Read(ctx, testTopic, 0, off, 700, true)
		if err != nil {
			t.Fatal(err)
		}
		off = lastOffset(t, sliceBytes(t, sl)) + 1
	}
	s := e.m.cache.Stats()
	if s.Evictions == 0 || s.Promotions != 0 || s.MainBytes != 0 {
		t.Fatalf("after the scan: %d evictions, %d promotions, %d bytes in main; want evictions and nothing promoted: %+v",
			s.Evictions, s.Promotions, s.MainBytes, s)
	}
	// Chunk 0 of the last segment, re-read after the others: a re-read.
	for range 2 {
		for _, off := range []int64{120, 170} {
			sl, err := e.m.Read(ctx, testTopic, 0, off, 1, true)
			if err != nil {
				t.Fatal(err)
			}
			sl.Done()
		}
	}
	for off := int64(0); off < 120; off += 10 { // push it to small's tail
		sl, err := e.m.Read(ctx, testTopic, 0, off, 1, true)
		if err != nil {
			t.Fatal(err)
		}
		sl.Done()
	}
	if s := e.m.cache.Stats(); s.Promotions == 0 {
		t.Fatalf("chunks re-read between other reads were not promoted: %+v", s)
	}
}
