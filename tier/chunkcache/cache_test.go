package chunkcache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/wait"
)

func TestMissThenHit(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{})
	f.get(1)
	if s := f.cache.Stats(); s.Misses != 1 || s.Hits != 0 || s.Fetches != 1 || s.FetchBytes != 1000 || s.Bytes != 1000 || s.Entries != 1 {
		t.Fatalf("after a miss: %+v", s)
	}
	f.get(1)
	f.get(1)
	if s := f.cache.Stats(); s.Misses != 1 || s.Hits != 2 || s.Fetches != 1 {
		t.Fatalf("after two hits: %+v", s)
	}
	if n := f.store.calls.Load(); n != 1 {
		t.Fatalf("fetch calls = %d, want 1", n)
	}
	// Each Get has its own descriptor at offset 0.
	a, relA, err := f.cache.Get(context.Background(), f.chunk(1))
	if err != nil {
		t.Fatal(err)
	}
	defer relA()
	if _, err := a.Seek(500, 0); err != nil {
		t.Fatal(err)
	}
	b, relB, err := f.cache.Get(context.Background(), f.chunk(1))
	if err != nil {
		t.Fatal(err)
	}
	defer relB()
	checkFile(t, b, f.want(1))
}

func TestConcurrentGetsOneFetch(t *testing.T) {
	f := newFixture(t, 4, 64<<10, Config{})
	release := f.store.hold()
	defer release()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if err := f.check(2); err != nil {
				errs <- err
			}
		})
	}
	// Every Get has joined the flight before the download may finish.
	wait.Eventually(t, "50 misses", func() bool { return f.cache.Stats().Misses == n })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := f.store.calls.Load(); c != 1 {
		t.Fatalf("fetch calls = %d, want 1", c)
	}
	if s := f.cache.Stats(); s.Fetches != 1 || s.Hits != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCorruptFetchNotCached(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{})
	f.store.corruptNext(1)
	_, _, err := f.cache.Get(context.Background(), f.chunk(0))
	if !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("Get of corrupt bytes: err %v, want ErrCorruptChunk", err)
	}
	if names, _ := dirFiles(t, f.dir); len(names) != 0 {
		t.Fatalf("files left after a corrupt fetch: %v", names)
	}
	if s := f.cache.Stats(); s.CorruptChunks != 1 || s.FetchFailures != 1 || s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("stats %+v", s)
	}
	f.get(0)
	if c := f.store.calls.Load(); c != 2 {
		t.Fatalf("fetch calls = %d, want 2 (a refetch)", c)
	}
}

func TestWrongLengthIsCorrupt(t *testing.T) {
	t.Run("short", func(t *testing.T) {
		f := newFixture(t, 2, 1000, Config{})
		// The object ends before the chunk does: the store cuts the read short.
		ch := f.chunk(1)
		ch.Offset += 500
		if _, _, err := f.cache.Get(context.Background(), ch); !errors.Is(err, ErrCorruptChunk) {
			t.Fatalf("err %v, want ErrCorruptChunk", err)
		}
	})
	t.Run("long", func(t *testing.T) {
		f := newFixture(t, 2, 1000, Config{})
		f.cache.Close()
		// A store that returns more than it was asked for.
		c, err := New(Config{Dir: f.dir, MaxBytes: 2000}, func(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
			return f.store.Fetch(ctx, key, off, length+1)
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := c.Get(context.Background(), f.chunk(0)); !errors.Is(err, ErrCorruptChunk) {
			t.Fatalf("err %v, want ErrCorruptChunk", err)
		}
		if s := c.Stats(); s.CorruptChunks != 1 || s.Entries != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestFetchErrorPropagates(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{})
	boom := errors.New("store down")
	f.store.failNext(boom)
	_, _, err := f.cache.Get(context.Background(), f.chunk(0))
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want it to wrap %v", err, boom)
	}
	if errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("a store error is not corruption: %v", err)
	}
	missing := f.chunk(0)
	missing.ObjectKey = "gone"
	if _, _, err := f.cache.Get(context.Background(), missing); !errors.Is(err, errNotFound) {
		t.Fatalf("err %v, want it to wrap the store's not-found", err)
	}
	f.get(0)
	if s := f.cache.Stats(); s.FetchFailures != 2 || s.Fetches != 3 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFetchTimeout(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{FetchTimeout: 20 * time.Millisecond})
	release := f.store.hold()
	defer release()
	_, _, err := f.cache.Get(context.Background(), f.chunk(0))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
}

// TestEvictionS3FIFO walks the S3-FIFO queues step by step. A cache of 3
// chunks: the small queue's 10% is less than one chunk, so small is evicted
// first whenever it holds anything unpinned.
func TestEvictionS3FIFO(t *testing.T) {
	f := newFixture(t, 6, 1000, Config{MaxBytes: 3000})
	state := func(step string, wantSmall, wantMain, wantGhost []int, wantFetches int64) {
		t.Helper()
		small, main, ghost := f.queues()
		if !slices.Equal(small, wantSmall) || !slices.Equal(main, wantMain) || !slices.Equal(ghost, wantGhost) {
			t.Fatalf("%s: small %v main %v ghost %v, want small %v main %v ghost %v",
				step, small, main, ghost, wantSmall, wantMain, wantGhost)
		}
		if n := f.store.calls.Load(); n != wantFetches {
			t.Fatalf("%s: %d fetches, want %d", step, n, wantFetches)
		}
		s := f.cache.Stats()
		if s.Bytes > 3000 || s.SmallBytes+s.MainBytes != s.Bytes {
			t.Fatalf("%s: stats %+v", step, s)
		}
		if _, total := dirFiles(t, f.dir); total != s.Bytes {
			t.Fatalf("%s: %d bytes of chunk files on disk, %d in the index", step, total, s.Bytes)
		}
		if n := spareFiles(t, f.dir); n > maxSpares {
			t.Fatalf("%s: %d spare files, at most %d", step, n, maxSpares)
		}
	}
	f.get(0)
	f.get(1)
	f.get(2)
	state("new chunks enter small", []int{2, 1, 0}, nil, nil, 3)
	f.get(0) // re-read: 0 moves to main when it reaches small's tail
	f.get(3)
	state("0 promoted, 1 evicted to the ghost", []int{3, 2}, []int{0}, []int{1}, 4)
	f.get(1)
	state("a ghost hit goes to main", []int{3}, []int{1, 0}, []int{2}, 5)
	// A scan of chunks read once only cycles through small: main keeps
	// the re-read chunks (LRU would have evicted 0 here). The ghost holds
	// at most main's 2700 bytes of names.
	f.get(4)
	f.get(5)
	state("a scan passes through small", []int{5}, []int{1, 0}, []int{4, 3}, 7)
	f.get(0)
	f.get(1)
	state("main kept 0 and 1", []int{5}, []int{1, 0}, []int{4, 3}, 7)
	f.get(3)
	state("ghost hit on 3; 5 evicted from small", nil, []int{3, 1, 0}, []int{5, 4}, 8)
	// Small is below its share: main evicts. 0 and 1 were re-read in
	// main: reinserted, one read less. 3 was not: evicted, not to the
	// ghost. 2 (new, pinned while its Get opens it) is skipped by small.
	f.get(2)
	state("main reinserts re-read chunks", []int{2}, []int{1, 0}, []int{5, 4}, 9)
	if s := f.cache.Stats(); s.Evictions != 6 || s.Promotions != 1 || s.GhostHits != 2 || s.MainHits != 2 || s.SmallHits != 1 || s.Hits != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHeldFileSurvivesEviction(t *testing.T) {
	f := newFixture(t, 3, 1000, Config{MaxBytes: 1000})
	held, release, err := f.cache.Get(context.Background(), f.chunk(0))
	if err != nil {
		t.Fatal(err)
	}
	f.get(1)
	f.get(2)
	if s := f.cache.Stats(); s.Evictions != 2 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, err := os.Stat(f.cache.path(fileName(f.chunk(0)))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("evicted file still in the directory: %v", err)
	}
	checkFile(t, held, f.want(0))
	release()
}

// Chunks bigger than the whole cache are served, then evicted.
func TestChunkLargerThanCache(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{MaxBytes: 600})
	f.get(0)
	f.get(1)
	if s := f.cache.Stats(); s.Bytes != 0 || s.Entries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Many readers of many chunks through a cache that holds two: every Get
// must open the bytes it asked for, though eviction runs all the time.
func TestChurn(t *testing.T) {
	f := newFixture(t, 10, 4096, Config{MaxBytes: 2 * 4096})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				k := (g*7 + i*3) % 10
				if err := f.check(k); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 0 {
					f.cache.Prefetch(f.chunk((k + 1) % 10))
				}
			}
		})
	}
	wg.Wait()
	if err := f.cache.Close(); err != nil {
		t.Fatal(err)
	}
	if s := f.cache.Stats(); s.Bytes > 2*4096 {
		t.Fatalf("cache bytes %d > max", s.Bytes)
	}
	if _, total := dirFiles(t, f.dir); total > 2*4096 {
		t.Fatalf("disk bytes %d > max", total)
	}
}

func TestPrefetch(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{})
	f.cache.Prefetch(f.chunk(3))
	wait.Eventually(t, "read-ahead", func() bool { return f.cache.Stats().Entries == 1 })
	f.get(3)
	s := f.cache.Stats()
	if s.Hits != 1 || s.Misses != 0 || s.ReadaheadFetched != 1 || f.store.calls.Load() != 1 {
		t.Fatalf("stats %+v, fetches %d", s, f.store.calls.Load())
	}
	f.cache.Prefetch(f.chunk(3)) // cached: skipped
	if s := f.cache.Stats(); s.ReadaheadSkipped != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPrefetchSharesGetsDownload(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{})
	release := f.store.hold()
	defer release()
	f.cache.Prefetch(f.chunk(1))
	wait.Eventually(t, "read-ahead download", func() bool { return f.store.calls.Load() == 1 })
	done := make(chan error)
	go func() { done <- f.check(1) }()
	wait.Eventually(t, "Get to join", func() bool { return f.cache.Stats().Misses == 1 })
	f.cache.Prefetch(f.chunk(1)) // in flight: skipped
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := f.store.calls.Load(); c != 1 {
		t.Fatalf("fetch calls = %d, want 1", c)
	}
	// And the other way round: a Get in flight, then a Prefetch.
	release = f.store.hold()
	defer release()
	go func() { done <- f.check(2) }()
	wait.Eventually(t, "Get download", func() bool { return f.store.calls.Load() == 2 })
	f.cache.Prefetch(f.chunk(2))
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := f.cache.Stats(); s.ReadaheadSkipped != 2 || f.store.calls.Load() != 2 {
		t.Fatalf("stats %+v, fetches %d", s, f.store.calls.Load())
	}
}

func TestPrefetchNeverBlocks(t *testing.T) {
	f := newFixture(t, 100, 100, Config{ReadaheadWorkers: 1, ReadaheadQueue: 2})
	release := f.store.hold()
	defer release()
	// The store is held: a Prefetch that waited for a download or for
	// room in the queue would not return before the test ends.
	queued := make(chan struct{})
	go func() {
		for i := range 100 {
			f.cache.Prefetch(f.chunk(i))
		}
		close(queued)
	}()
	select {
	case <-queued:
	case <-time.After(wait.Timeout):
		t.Fatal("Prefetch blocked while the store is held")
	}
	// One in the worker, at most two queued; the rest dropped.
	wait.Eventually(t, "worker busy", func() bool { return f.store.inFlight.Load() == 1 })
	s := f.cache.Stats()
	if s.ReadaheadDropped < 97 || s.ReadaheadDropped+s.ReadaheadFetched > 100 {
		t.Fatalf("stats %+v", s)
	}
	// Close cancels the stalled download; nothing is left running.
	if err := f.cache.Close(); err != nil {
		t.Fatal(err)
	}
	if n := f.store.inFlight.Load(); n != 0 {
		t.Fatalf("%d fetches still running after Close", n)
	}
	if s := f.cache.Stats(); s.ReadaheadDropped+s.ReadaheadFetched+s.ReadaheadSkipped != 100 {
		t.Fatalf("every Prefetch counted once: %+v", s)
	}
	f.cache.Prefetch(f.chunk(0)) // after Close: dropped, no panic
}

func TestWaiterCancel(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{})
	release := f.store.hold()
	defer release()

	// Two waiters; one gives up, the other gets the chunk.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, _, err := f.cache.Get(ctx, f.chunk(0))
		gaveUp <- err
	}()
	stayed := make(chan error)
	go func() { stayed <- f.check(0) }()
	wait.Eventually(t, "two waiters", func() bool { return f.cache.Stats().Misses == 2 })
	cancel()
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled waiter kept waiting")
	}
	release()
	if err := <-stayed; err != nil {
		t.Fatal(err)
	}

	// The only waiter gives up: the download goes on and the chunk is cached.
	release = f.store.hold()
	defer release()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := f.cache.Get(ctx, f.chunk(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
	release()
	wait.Eventually(t, "abandoned download to finish", func() bool { return f.cache.Stats().Entries == 2 })
	f.get(1)
	if c := f.store.calls.Load(); c != 2 {
		t.Fatalf("fetch calls = %d, want 2", c)
	}

	// A ctx already done fails fast, even for a cached chunk.
	if _, _, err := f.cache.Get(ctx, f.chunk(0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want DeadlineExceeded", err)
	}
}

func TestCloseCancelsWaiters(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{})
	release := f.store.hold()
	defer release()
	got := make(chan error, 1)
	go func() {
		_, _, err := f.cache.Get(context.Background(), f.chunk(0))
		got <- err
	}()
	wait.Eventually(t, "a waiter", func() bool { return f.cache.Stats().Misses == 1 })
	if err := f.cache.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter during Close: err %v", err)
	}
	if n := f.store.inFlight.Load(); n != 0 {
		t.Fatalf("%d fetches running after Close", n)
	}
	if _, _, err := f.cache.Get(context.Background(), f.chunk(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: err %v", err)
	}
	if err := f.cache.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if names, _ := dirFiles(t, f.dir); len(names) != 0 {
		t.Fatalf("files left by a cancelled download: %v", names)
	}
}

func TestRestart(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{})
	for i := range 4 {
		f.get(i)
	}
	if err := f.cache.Close(); err != nil {
		t.Fatal(err)
	}
	// What a crash can leave: a temp file, a torn chunk, a chunk whose
	// bytes never reached the disk, an empty chunk. And a stranger's file.
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(f.dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("123456.tmp", []byte("half a download"))
	write("notes.txt", []byte("not ours"))
	torn, zeroed := fileName(f.chunk(1)), fileName(f.chunk(2))
	if err := os.Truncate(filepath.Join(f.dir, torn), 600); err != nil {
		t.Fatal(err)
	}
	write(zeroed, make([]byte, 1000))
	write(fileName(Chunk{Key: "x", ObjectKey: "y", Length: 1}), nil)

	f.open(Config{MaxBytes: 4000})
	if s := f.cache.Stats(); s.Entries != 4 || s.Bytes != 3600 {
		t.Fatalf("after restart: %+v", s)
	}
	names, _ := dirFiles(t, f.dir)
	for _, n := range names {
		if strings.HasSuffix(n, tmpSuffix) {
			t.Errorf("temp file %s survived the restart", n)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dir, "notes.txt")); err != nil {
		t.Errorf("unknown file removed: %v", err)
	}
	f.get(0)
	f.get(3)
	if c := f.store.calls.Load(); c != 4 {
		t.Fatalf("intact chunks refetched: %d fetches, want 4", c)
	}
	f.get(1)
	f.get(2)
	s := f.cache.Stats()
	if c := f.store.calls.Load(); c != 6 || s.CorruptChunks != 2 || s.Hits != 2 || s.Misses != 2 {
		t.Fatalf("damaged chunks: %d fetches (want 6), stats %+v", c, s)
	}
	f.get(1) // verified now: a plain hit
	f.get(2)
	if c := f.store.calls.Load(); c != 6 {
		t.Fatalf("%d fetches, want 6", c)
	}
}

func TestRestartEvictsToMaxBytes(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{})
	for i := range 4 {
		f.get(i)
		// Distinct modification times, so the restart knows the order.
		old := time.Now().Add(time.Duration(i-10) * time.Minute)
		if err := os.Chtimes(f.cache.path(fileName(f.chunk(i))), old, old); err != nil {
			t.Fatal(err)
		}
	}
	f.cache.Close()
	f.open(Config{MaxBytes: 2000})
	if s := f.cache.Stats(); s.Entries != 2 || s.Bytes != 2000 || s.Evictions != 2 {
		t.Fatalf("stats %+v", s)
	}
	// Chunks from a previous run enter main, newest at the front, with no
	// re-reads: main evicts them oldest first.
	if small, main, _ := f.queues(); len(small) != 0 || !slices.Equal(main, []int{3, 2}) {
		t.Fatalf("after restart: small %v main %v, want main [3 2]", small, main)
	}
	f.get(2)
	f.get(3)
	if c := f.store.calls.Load(); c != 4 {
		t.Fatalf("the two newest chunks should have been kept: %d fetches", c)
	}
}

func TestDirInUse(t *testing.T) {
	f := newFixture(t, 1, 100, Config{})
	if _, err := New(Config{Dir: f.dir, MaxBytes: 100}, f.store.Fetch, nil, nil); err == nil {
		t.Fatal("a second cache opened the same directory")
	}
	f.cache.Close()
	f.open(Config{MaxBytes: 100})
}

func TestKeysStayInDir(t *testing.T) {
	f := newFixture(t, 1, 100, Config{})
	for _, key := range []string{"../../escape", "/abs/path", "a/b/../../c", "\x00nul", strings.Repeat("k", 5000)} {
		ch := f.chunk(0)
		ch.Key = key
		file, rel, err := f.cache.Get(context.Background(), ch)
		if err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		checkFile(t, file, f.want(0))
		if filepath.Dir(file.Name()) != filepath.Clean(f.dir) {
			t.Fatalf("key %q cached at %q, outside the directory", key, file.Name())
		}
		rel()
	}
	// The same key under another definition is another file.
	a, b := f.chunk(0), f.chunk(0)
	b.Length--
	if fileName(a) == fileName(b) {
		t.Fatal("a chunk redefined under the same key shares its file")
	}
}

func TestInvalid(t *testing.T) {
	f := newFixture(t, 1, 100, Config{})
	for _, ch := range []Chunk{
		{ObjectKey: "o", Length: 1},
		{Key: "k", Length: 1},
		{Key: "k", ObjectKey: "o", Offset: -1, Length: 1},
		{Key: "k", ObjectKey: "o"},
	} {
		if _, _, err := f.cache.Get(context.Background(), ch); !errors.Is(err, ErrInvalidChunk) {
			t.Errorf("Get(%+v): err %v", ch, err)
		}
	}
	for _, cfg := range []Config{{MaxBytes: 1}, {Dir: t.TempDir()}, {Dir: t.TempDir(), MaxBytes: 1, FetchTimeout: -1}} {
		if _, err := New(cfg, f.store.Fetch, nil, nil); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{})
	f.cache.Close()
	reg := prometheus.NewRegistry()
	c, err := New(Config{Dir: f.dir, MaxBytes: 2000}, f.store.Fetch, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.cache = c
	f.get(0)
	f.get(0)
	f.cache.Prefetch(f.chunk(1))
	wait.Eventually(t, "read-ahead", func() bool { return c.Stats().Entries == 2 })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				values[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				values[name] = m.Gauge.GetValue()
			case m.Histogram != nil:
				values[name] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"strata_remote_cache_hits_total":                      1,
		"strata_remote_cache_misses_total":                    1,
		"strata_remote_cache_bytes":                           2000,
		"strata_remote_cache_entries":                         2,
		"strata_remote_cache_evictions_total":                 0,
		"strata_remote_cache_fetches_total":                   2,
		"strata_remote_cache_fetch_failures_total":            0,
		"strata_remote_cache_fetch_bytes_total":               2000,
		"strata_remote_cache_fetch_seconds":                   2,
		"strata_remote_cache_corrupt_chunks_total":            0,
		"strata_remote_cache_readahead_total{result=fetched}": 1,
		"strata_remote_cache_readahead_total{result=skipped}": 0,
		"strata_remote_cache_readahead_total{result=dropped}": 0,
		"strata_remote_cache_queue_bytes{queue=small}":        2000,
		"strata_remote_cache_queue_bytes{queue=main}":         0,
		"strata_remote_cache_queue_hits_total{queue=small}":   1,
		"strata_remote_cache_queue_hits_total{queue=main}":    0,
		"strata_remote_cache_promotions_total":                0,
		"strata_remote_cache_ghost_hits_total":                0,
		"strata_remote_cache_ghost_entries":                   0,
	}
	for name, v := range want {
		if got, ok := values[name]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	if len(values) != len(want) {
		t.Errorf("gathered %v", values)
	}
	// A second cache on the same registry is refused, and leaves the
	// first one's metrics alone.
	if _, err := New(Config{Dir: t.TempDir(), MaxBytes: 1}, f.store.Fetch, nil, reg); err == nil {
		t.Fatal("second registration accepted")
	}
	if mfs, _ := reg.Gather(); len(mfs) != 16 {
		t.Fatalf("%d metric families after a failed registration, want 16", len(mfs))
	}
}

// A cached file someone removed behind the cache's back is fetched again.
func TestVanishedFile(t *testing.T) {
	f := newFixture(t, 2, 1000, Config{})
	f.get(0)
	if err := os.Remove(f.cache.path(fileName(f.chunk(0)))); err != nil {
		t.Fatal(err)
	}
	f.get(0)
	if s := f.cache.Stats(); f.store.calls.Load() != 2 || s.Entries != 1 || s.Bytes != 1000 {
		t.Fatalf("%d fetches, stats %+v", f.store.calls.Load(), s)
	}
}

// A body that fails part-way leaves nothing behind.
func TestBodyErrorMidway(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("connection reset")
	c, err := New(Config{Dir: dir, MaxBytes: 1 << 20}, func(context.Context, string, int64, int64) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader(strings.Repeat("x", 300)), iotest.ErrReader(boom))), nil
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = c.Get(context.Background(), Chunk{Key: "k", ObjectKey: "o", Length: 1000})
	if !errors.Is(err, boom) || errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("err %v, want %v", err, boom)
	}
	if names, _ := dirFiles(t, dir); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
	if s := c.Stats(); s.FetchBytes != 300 || s.FetchFailures != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// An evicted chunk file nobody has open is kept as a spare and overwritten
// by a later download instead of a new file (fewer creations); one a Get
// still holds is never reused: the holder reads its own chunk's bytes to
// the end, whatever the cache downloads meanwhile.
func TestEvictedFilesReusedNotWhileOpen(t *testing.T) {
	f := newFixture(t, 40, 1000, Config{MaxBytes: 3000})
	held, release, err := f.cache.Get(context.Background(), f.chunk(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 40; i++ {
		f.get(i) // evicts, among others, chunk 0 while held
	}
	checkFile(t, held, f.want(0))
	release()
	if n := spareFiles(t, f.dir); n == 0 || n > maxSpares {
		t.Fatalf("%d spare files after 39 evictions, want 1 to %d", n, maxSpares)
	}
	// Spares are reused: fetches go on without the spare count growing,
	// every chunk read back whole, also chunks of another size (a spare
	// longer than the chunk is cut).
	for i := 0; i < 40; i++ {
		f.get(i)
		f.getChunk(f.rangeChunk(int64(i)*1000, 700))
	}
	if n := spareFiles(t, f.dir); n > maxSpares {
		t.Fatalf("%d spare files, at most %d", n, maxSpares)
	}
	// Closing removes them; a new cache starts without.
	f.cache.Close()
	if n := spareFiles(t, f.dir); n != 0 {
		t.Fatalf("%d spare files after Close", n)
	}
}
