package chunkcache

import (
	"container/list"
	"context"
	"slices"
	"testing"

	"github.com/stratalog/strata/internal/wait"
)

// scanTrace is the scan-resistance workload: a working set of 10 chunks
// (about 20% of the cache) read twice, then a sequential scan of 20 times
// the cache's bytes read once, with the working set re-read after every
// cache-size worth of scan chunks. Chunk sizes vary (128 to 383 bytes).
type scanTrace struct {
	maxBytes int64
	working  []Chunk
	// rounds[i] is the i-th cache-size run of scan chunks; the working set
	// is re-read after each.
	rounds [][]Chunk
}

const (
	scanCacheBytes = 50 * 256
	scanRounds     = 20
)

func newScanTrace(f *fixture) scanTrace {
	tr := scanTrace{maxBytes: scanCacheBytes}
	var off int64
	next := func(i int) Chunk {
		n := 128 + int64(i*97%256) // deterministic, varied sizes
		ch := f.rangeChunk(off, n)
		off += n
		return ch
	}
	var wBytes int64
	for i := range 10 {
		ch := next(i)
		tr.working = append(tr.working, ch)
		wBytes += ch.Length
	}
	if wBytes*10 >= 3*tr.maxBytes {
		f.t.Fatalf("working set of %d bytes is not under 30%% of %d", wBytes, tr.maxBytes)
	}
	i := 0
	for range scanRounds {
		var round []Chunk
		for b := int64(0); b < tr.maxBytes; i++ {
			ch := next(i)
			round = append(round, ch)
			b += ch.Length
		}
		tr.rounds = append(tr.rounds, round)
	}
	if off > int64(len(f.obj)) {
		f.t.Fatalf("trace needs %d bytes of object, fixture has %d", off, len(f.obj))
	}
	return tr
}

// run feeds the trace to access, which reports a hit, and returns the
// working set's and the scan's hit counts and accesses. Only re-reads count
// (the working set's first read is a cold miss under any policy).
func (tr scanTrace) run(access func(Chunk) bool) (wHits, wReads, scanHits, scanReads int) {
	for _, ch := range tr.working {
		access(ch)
	}
	readW := func() {
		for _, ch := range tr.working {
			if access(ch) {
				wHits++
			}
			wReads++
		}
	}
	readW()
	for _, round := range tr.rounds {
		for _, ch := range round {
			if access(ch) {
				scanHits++
			}
			scanReads++
		}
		readW()
	}
	return wHits, wReads, scanHits, scanReads
}

// lruRef is the reference policy the cache used before S3-FIFO: least
// recently used, bounded in bytes.
type lruRef struct {
	max, bytes int64
	l          list.List // of Chunk, most recent at the front
	byKey      map[string]*list.Element
}

func (c *lruRef) access(ch Chunk) (hit bool) {
	if el, ok := c.byKey[ch.Key]; ok {
		c.l.MoveToFront(el)
		return true
	}
	c.byKey[ch.Key] = c.l.PushFront(ch)
	c.bytes += ch.Length
	for c.bytes > c.max {
		old := c.l.Remove(c.l.Back()).(Chunk)
		delete(c.byKey, old.Key)
		c.bytes -= old.Length
	}
	return false
}

// TestScanKeepsWorkingSet: a sequential scan 20 times the cache's size
// does not evict a working set that is re-read once per cache-size of scan.
// The same trace run through an LRU of the same bytes refetches the whole
// working set every round.
func TestScanKeepsWorkingSet(t *testing.T) {
	f := newFixture(t, 1300, 256, Config{MaxBytes: scanCacheBytes})
	tr := newScanTrace(f)

	lru := &lruRef{max: tr.maxBytes, byKey: make(map[string]*list.Element)}
	lwHits, lwReads, lsHits, lsReads := tr.run(lru.access)

	wHits, wReads, sHits, sReads := tr.run(func(ch Chunk) bool {
		before := f.store.calls.Load()
		f.getChunk(ch)
		if s := f.cache.Stats(); s.Bytes > tr.maxBytes {
			t.Fatalf("cache holds %d bytes, max %d", s.Bytes, tr.maxBytes)
		}
		return f.store.calls.Load() == before
	})
	t.Logf("working-set hit rate: LRU %d/%d (%.0f%%), S3-FIFO %d/%d (%.0f%%); scan hit rate: LRU %d/%d, S3-FIFO %d/%d",
		lwHits, lwReads, pct(lwHits, lwReads), wHits, wReads, pct(wHits, wReads), lsHits, lsReads, sHits, sReads)

	for i, ch := range tr.working {
		if n := f.store.callsAt(ch.Offset); n != 1 {
			t.Errorf("working-set chunk %d fetched %d times, want once (the first load)", i, n)
		}
		if !f.cached(ch) {
			t.Errorf("working-set chunk %d not cached after the scan", i)
		}
	}
	if wHits != wReads {
		t.Errorf("working-set re-reads: %d hits of %d", wHits, wReads)
	}
	// The reference: under LRU each round of scan pushes the working set
	// out, so every round's re-read misses.
	if want := len(tr.working) * scanRounds; lwReads-lwHits < want {
		t.Errorf("LRU reference missed %d working-set re-reads, want at least %d: the trace does not test scan resistance",
			lwReads-lwHits, want)
	}
	s := f.cache.Stats()
	if s.Promotions != int64(len(tr.working)) {
		t.Errorf("%d promotions to main, want %d (the working set only): %+v", s.Promotions, len(tr.working), s)
	}
	if _, total := dirFiles(t, f.dir); total > tr.maxBytes {
		t.Errorf("%d bytes on disk, max %d", total, tr.maxBytes)
	}
}

// TestScanReadaheadDoesNotPromote: the same trace, with each scan chunk
// brought in by read-ahead before its Get, as the tier's read-ahead does. A
// read-ahead is not an access and the scan's single Get of a chunk is its
// first: no scan chunk reaches main, and the working set stays.
func TestScanReadaheadDoesNotPromote(t *testing.T) {
	f := newFixture(t, 1300, 256, Config{MaxBytes: scanCacheBytes})
	tr := newScanTrace(f)
	var wMisses int
	// Two empty rounds first: the working set is read twice before the
	// scan, as in TestScanKeepsWorkingSet.
	for _, round := range append([][]Chunk{nil, nil}, tr.rounds...) {
		for _, ch := range round {
			f.cache.Prefetch(ch)
			wait.Eventually(t, "read-ahead of the next scan chunk", func() bool { return f.cached(ch) })
			before := f.store.calls.Load()
			f.getChunk(ch)
			if f.store.calls.Load() != before {
				t.Fatalf("%s: prefetched, yet fetched again", ch)
			}
		}
		for _, ch := range tr.working { // the first round loads them
			before := f.store.calls.Load()
			f.getChunk(ch)
			if f.store.calls.Load() != before {
				wMisses++
			}
		}
	}
	s := f.cache.Stats()
	if wMisses != len(tr.working) {
		t.Errorf("%d working-set reads missed, want %d (the first load)", wMisses, len(tr.working))
	}
	if s.Promotions != int64(len(tr.working)) {
		t.Errorf("%d promotions to main, want %d (the working set only): %+v", s.Promotions, len(tr.working), s)
	}
	var wBytes int64
	for _, ch := range tr.working {
		wBytes += ch.Length
	}
	if s.MainBytes != wBytes {
		t.Errorf("main holds %d bytes, want the working set's %d: %+v", s.MainBytes, wBytes, s)
	}
	if s.ReadaheadFetched < int64(scanRounds*40) {
		t.Errorf("only %d read-ahead downloads: %+v", s.ReadaheadFetched, s)
	}
}

// TestLRUPolicyMatchesReference: the cache with Policy lru (the policy before
// S3-FIFO, kept as remote.cache.policy=lru to measure S3-FIFO against) gives
// the reference LRU's hit for every access of the scan trace: the same
// hits, the working set lost every round, the bytes bounded.
func TestLRUPolicyMatchesReference(t *testing.T) {
	f := newFixture(t, 1300, 256, Config{MaxBytes: scanCacheBytes, Policy: PolicyLRU})
	tr := newScanTrace(f)
	ref := &lruRef{max: tr.maxBytes, byKey: make(map[string]*list.Element)}
	var accesses, mismatches int
	wHits, wReads, _, _ := tr.run(func(ch Chunk) bool {
		want := ref.access(ch)
		before := f.store.calls.Load()
		f.getChunk(ch)
		hit := f.store.calls.Load() == before
		if s := f.cache.Stats(); s.Bytes > tr.maxBytes {
			t.Fatalf("cache holds %d bytes, max %d", s.Bytes, tr.maxBytes)
		}
		accesses++
		if hit != want {
			mismatches++
		}
		return hit
	})
	if mismatches > 0 {
		t.Fatalf("%d of %d accesses differ from the reference LRU", mismatches, accesses)
	}
	if miss := wReads - wHits; miss < len(tr.working)*scanRounds {
		t.Fatalf("LRU missed %d working-set re-reads, want at least %d", miss, len(tr.working)*scanRounds)
	}
	if s := f.cache.Stats(); s.SmallBytes != 0 || s.Promotions != 0 || s.GhostEntries != 0 {
		t.Fatalf("LRU used S3-FIFO's queues: %+v", s)
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []string{"", PolicyS3FIFO, PolicyLRU} {
		if err := (Config{Dir: "d", MaxBytes: 1, Policy: p}).Validate(); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	if err := (Config{Dir: "d", MaxBytes: 1, Policy: "arc"}).Validate(); err == nil {
		t.Error("policy arc accepted")
	}
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}

// TestReadaheadNotEvictedForItself: a read-ahead chunk arriving when every
// other chunk in the small queue was re-read must not be the one evicted to
// make room for it: S3-FIFO makes room before it inserts.
func TestReadaheadNotEvictedForItself(t *testing.T) {
	f := newFixture(t, 4, 1000, Config{MaxBytes: 3000})
	for i := range 3 {
		f.get(i)
		f.get(i) // re-read: each would move to main
	}
	f.cache.Prefetch(f.chunk(3))
	wait.Eventually(t, "the read-ahead to be indexed and room made", func() bool {
		return f.cached(f.chunk(3)) || f.cache.Stats().Evictions > 0
	})
	wait.Eventually(t, "room made", func() bool { return f.cache.Stats().Evictions == 1 })
	if !f.cached(f.chunk(3)) {
		small, main, ghost := f.queues()
		t.Fatalf("the read-ahead chunk was evicted on arrival: small %v main %v ghost %v", small, main, ghost)
	}
	before := f.store.calls.Load()
	f.get(3)
	if n := f.store.calls.Load(); n != before {
		t.Fatalf("prefetched chunk fetched again: %d fetches, want %d", n, before)
	}
}

// TestScanStraddlingFetchesKeepsWorkingSet: the scan trace read as a
// sequential consumer reads it, each fetch ending inside a chunk so that the
// next one continues it (GetContinued). The continuation is not a re-read:
// no scan chunk is promoted, and the working set stays. Counted as re-reads
// (Get twice), the same scan is promoted to main and pushes the working set
// out: the reference run shows the trace tests that.
func TestScanStraddlingFetchesKeepsWorkingSet(t *testing.T) {
	run := func(continued bool) (wHits, wReads int, promotions int64) {
		f := newFixture(t, 1300, 256, Config{MaxBytes: scanCacheBytes})
		tr := newScanTrace(f)
		scan := map[string]bool{}
		for _, round := range tr.rounds {
			for _, ch := range round {
				scan[ch.Key] = true
			}
		}
		wHits, wReads, _, _ = tr.run(func(ch Chunk) bool {
			before := f.store.calls.Load()
			f.getChunk(ch)
			hit := f.store.calls.Load() == before
			if scan[ch.Key] { // the next fetch resumes inside the chunk
				if continued {
					file, release, err := f.cache.GetContinued(context.Background(), ch)
					if err != nil {
						t.Fatal(err)
					}
					checkFile(t, file, f.obj[ch.Offset:ch.Offset+ch.Length])
					release()
				} else {
					f.getChunk(ch)
				}
			}
			return hit
		})
		return wHits, wReads, f.cache.Stats().Promotions
	}
	wHits, wReads, promotions := run(true)
	if wHits != wReads || promotions != 10 {
		t.Errorf("continued: working set %d hits of %d re-reads, %d promotions (want all hits, the 10 working-set chunks)", wHits, wReads, promotions)
	}
	rHits, rReads, rPromotions := run(false)
	if rHits == rReads || rPromotions <= 10 {
		t.Errorf("counted as re-reads: working set %d hits of %d, %d promotions: the trace does not test straddling", rHits, rReads, rPromotions)
	}
	t.Logf("working set hits: continued %d/%d, as re-reads %d/%d (%d promotions)", wHits, wReads, rHits, rReads, rPromotions)
}

// TestUnreadReadaheadLeavesNoGhost: a read-ahead chunk evicted from small
// before any Get read it leaves no ghost name, so its later Get is a first
// access into small, not a ghost hit into main.
func TestUnreadReadaheadLeavesNoGhost(t *testing.T) {
	f := newFixture(t, 10, 1000, Config{MaxBytes: 3000})
	f.get(0)
	f.get(0) // re-read: 0 moves to main when small is evicted
	for i := 1; i <= 3; i++ {
		f.cache.Prefetch(f.chunk(i))
		wait.Eventually(t, "the read-ahead", func() bool { return f.cached(f.chunk(i)) })
	}
	small, main, ghost := f.queues()
	if len(ghost) != 0 || slices.Contains(small, 1) || slices.Contains(main, 1) {
		t.Fatalf("unread read-ahead chunk 1 not evicted without a ghost: small %v main %v ghost %v", small, main, ghost)
	}
	f.get(1)
	small, main, _ = f.queues()
	if !slices.Contains(small, 1) || slices.Contains(main, 1) {
		t.Fatalf("chunk 1's Get went to main: small %v main %v", small, main)
	}
	if s := f.cache.Stats(); s.GhostHits != 0 {
		t.Fatalf("%d ghost hits", s.GhostHits)
	}
}
