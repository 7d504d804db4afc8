package flight

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Every test runs in a synctest bubble: time is the bubble's fake clock, so
// deadlines are exact and nothing waits on the wall clock, synctest.Wait
// says when every goroutine is blocked (all waiters have joined, say), and
// synctest.Test fails if any goroutine the test started is still blocked at
// its end.

// mapCache is a Cache that records what the Group does with it.
type mapCache struct {
	mu     sync.Mutex
	values map[string]string
	hits   int
	misses int
	adds   []int // the waiters of each Add
}

func newMapCache() *mapCache { return &mapCache{values: map[string]string{}} }

func (c *mapCache) Get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.values[key]
	if ok {
		c.hits++
	} else {
		c.misses++
	}
	return v, ok
}

func (c *mapCache) Has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.values[key]
	return ok
}

func (c *mapCache) Add(key, v string, waiters int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[key] = v
	c.adds = append(c.adds, waiters)
}

func (c *mapCache) stats() (hits, misses int, adds []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, append([]int(nil), c.adds...)
}

// gatedFetch is a fetch that counts its calls and blocks until released or
// its ctx ends; then it returns value, or the error set with failNext.
type gatedFetch struct {
	calls   atomic.Int64
	running atomic.Int64
	gate    chan struct{}
	value   string
	// ctxs are the contexts the calls got, in order.
	mu   sync.Mutex
	ctxs []context.Context
	errs []error
}

func newGatedFetch(value string) *gatedFetch {
	return &gatedFetch{gate: make(chan struct{}), value: value}
}

func (f *gatedFetch) release() { close(f.gate) }

func (f *gatedFetch) failNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *gatedFetch) lastCtx() context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctxs[len(f.ctxs)-1]
}

func (f *gatedFetch) fetch(ctx context.Context) (string, error) {
	f.calls.Add(1)
	f.running.Add(1)
	defer f.running.Add(-1)
	f.mu.Lock()
	f.ctxs = append(f.ctxs, ctx)
	gate := f.gate
	f.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return "", err
	}
	return f.value, nil
}

type result struct {
	v      string
	cached bool
	err    error
}

// do runs g.Do on a goroutine; the result arrives on the channel.
func do(ctx context.Context, g *Group[string, string], key string, fetch Fetch[string]) <-chan result {
	ch := make(chan result, 1)
	go func() {
		v, cached, err := g.Do(ctx, key, fetch)
		ch <- result{v, cached, err}
	}()
	return ch
}

func TestOneDownloadForNWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{})
		defer g.Close()
		f := newGatedFetch("v1")
		const n = 50
		var results []<-chan result
		for range n {
			results = append(results, do(t.Context(), g, "k", f.fetch))
		}
		synctest.Wait() // every Do has joined the flight
		if _, misses, _ := cache.stats(); misses != n || !g.InFlight("k") {
			t.Fatalf("%d misses, in flight %v; want %d waiters of one flight", misses, g.InFlight("k"), n)
		}
		f.release()
		for _, r := range results {
			if got := <-r; got.err != nil || got.v != "v1" || got.cached {
				t.Fatalf("waiter got %+v", got)
			}
		}
		if c := f.calls.Load(); c != 1 {
			t.Fatalf("%d downloads for %d waiters, want 1", c, n)
		}
		// Added once, for every waiter, before they were released.
		if _, _, adds := cache.stats(); len(adds) != 1 || adds[0] != n {
			t.Fatalf("adds %v, want one for %d waiters", adds, n)
		}
		// The next caller finds it cached.
		v, cached, err := g.Do(t.Context(), "k", f.fetch)
		if err != nil || v != "v1" || !cached || f.calls.Load() != 1 || g.InFlight("k") {
			t.Fatalf("after the download: %q cached %v err %v, %d downloads", v, cached, err, f.calls.Load())
		}
	})
}

// A waiter whose ctx ends gets its own error at once; the download goes on,
// under a ctx of its own that keeps the first caller's values but none of
// its deadline, and is cached for the next caller.
func TestWaiterLeavesDownloadGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{Timeout: time.Hour})
		defer g.Close()
		f := newGatedFetch("v1")

		type ctxKey struct{}
		first, cancelFirst := context.WithTimeout(context.WithValue(t.Context(), ctxKey{}, "trace-1"), time.Second)
		defer cancelFirst()
		leaver := do(first, g, "k", f.fetch)
		synctest.Wait() // the first caller started the download
		stayer := do(t.Context(), g, "k", f.fetch)
		synctest.Wait()

		time.Sleep(time.Second) // the first caller's deadline passes
		got := <-leaver
		if !errors.Is(got.err, context.DeadlineExceeded) {
			t.Fatalf("waiter past its deadline: %+v, want DeadlineExceeded", got)
		}
		synctest.Wait()
		select {
		case r := <-stayer:
			t.Fatalf("the other waiter returned %+v while the download runs", r)
		default:
		}
		dctx := f.lastCtx()
		if dctx.Err() != nil || f.running.Load() != 1 {
			t.Fatalf("the download stopped with its first caller: ctx err %v, running %d", dctx.Err(), f.running.Load())
		}
		if v := dctx.Value(ctxKey{}); v != "trace-1" {
			t.Errorf("download ctx value %v, want the first caller's", v)
		}
		if dl, ok := dctx.Deadline(); !ok || dl != time.Now().Add(time.Hour-time.Second) {
			t.Errorf("download deadline %v (set %v), want the Group's own, an hour after it started", dl, ok)
		}

		f.release()
		if r := <-stayer; r.err != nil || r.v != "v1" {
			t.Fatalf("remaining waiter: %+v", r)
		}
		if _, _, adds := cache.stats(); len(adds) != 1 || adds[0] != 1 {
			t.Fatalf("adds %v, want one, for the waiter that stayed", adds)
		}

		// The only waiter leaves: the download still finishes and is cached.
		f2 := newGatedFetch("v2")
		ctx, cancel := context.WithCancelCause(t.Context())
		only := do(ctx, g, "k2", f2.fetch)
		synctest.Wait()
		why := errors.New("client went away")
		cancel(why)
		if r := <-only; r.err != why {
			t.Fatalf("cancelled waiter got %+v, want its ctx's cause", r)
		}
		f2.release()
		synctest.Wait()
		if v, cached, err := g.Do(t.Context(), "k2", f2.fetch); err != nil || v != "v2" || !cached || f2.calls.Load() != 1 {
			t.Fatalf("after an abandoned download: %q cached %v err %v, %d downloads", v, cached, err, f2.calls.Load())
		}
		if _, _, adds := cache.stats(); len(adds) != 2 || adds[1] != 0 {
			t.Fatalf("adds %v, want the second with no waiters", adds)
		}

		// A ctx already done fails fast, even for a cached value.
		if _, _, err := g.Do(ctx, "k", f.fetch); err != why {
			t.Fatalf("Do with a done ctx: %v", err)
		}
	})
}

// The download's own deadline (Options.Timeout) ends it, whoever waits.
func TestDownloadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{Timeout: time.Minute})
		defer g.Close()
		f := newGatedFetch("v")
		start := time.Now()
		r := <-do(t.Context(), g, "k", f.fetch)
		if !errors.Is(r.err, context.DeadlineExceeded) || time.Since(start) != time.Minute {
			t.Fatalf("got %+v after %v, want DeadlineExceeded after the Group's minute", r, time.Since(start))
		}
		if _, _, adds := cache.stats(); len(adds) != 0 {
			t.Fatalf("a timed-out download was cached: %v", adds)
		}
	})
}

func TestErrorNotCached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{})
		defer g.Close()
		f := newGatedFetch("v")
		boom := errors.New("store down")
		f.failNext(boom)
		a := do(t.Context(), g, "k", f.fetch)
		b := do(t.Context(), g, "k", f.fetch)
		synctest.Wait()
		f.release()
		for _, r := range []result{<-a, <-b} {
			if r.err != boom {
				t.Fatalf("waiter got %+v, want %v", r, boom)
			}
		}
		if _, _, adds := cache.stats(); len(adds) != 0 || g.InFlight("k") || cache.Has("k") {
			t.Fatalf("after an error: adds %v, in flight %v", adds, g.InFlight("k"))
		}
		// The next call downloads again.
		v, cached, err := g.Do(t.Context(), "k", f.fetch)
		if err != nil || v != "v" || cached || f.calls.Load() != 2 {
			t.Fatalf("retry: %q cached %v err %v, %d downloads", v, cached, err, f.calls.Load())
		}
	})
}

func TestCloseCancelsDownloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{})
		f := newGatedFetch("v")
		waiter := do(t.Context(), g, "a", f.fetch)
		ran := make(chan error, 1)
		go func() {
			_, err := g.Run(context.Background(), "b", f.fetch)
			ran <- err
		}()
		synctest.Wait()
		if n := f.running.Load(); n != 2 {
			t.Fatalf("%d downloads running, want 2", n)
		}
		f.mu.Lock()
		ctxs := append([]context.Context(nil), f.ctxs...)
		f.mu.Unlock()
		g.Close()
		// Close returned: both downloads have ended.
		if n := f.running.Load(); n != 0 {
			t.Fatalf("%d downloads still running after Close", n)
		}
		for _, ctx := range ctxs {
			if context.Cause(ctx) != ErrClosed {
				t.Errorf("download ctx cause %v, want ErrClosed", context.Cause(ctx))
			}
		}
		if r := <-waiter; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("waiter during Close: %+v", r)
		}
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run during Close: %v", err)
		}
		if _, _, err := g.Do(t.Context(), "a", f.fetch); err != ErrClosed {
			t.Fatalf("Do after Close: %v", err)
		}
		if ran, err := g.Run(t.Context(), "a", f.fetch); ran || err != ErrClosed {
			t.Fatalf("Run after Close: %v %v", ran, err)
		}
		g.Close() // idempotent
		if c := f.calls.Load(); c != 2 {
			t.Fatalf("%d downloads, want 2", c)
		}
		if _, _, adds := cache.stats(); len(adds) != 0 {
			t.Fatalf("cancelled downloads were cached: %v", adds)
		}
	})
}

// Run downloads on its caller's goroutine, shared with Do; it skips what is
// cached or in flight.
func TestRunSharesWithDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{})
		defer g.Close()
		f := newGatedFetch("v")
		ran := make(chan bool, 1)
		go func() {
			r, _ := g.Run(t.Context(), "k", f.fetch)
			ran <- r
		}()
		synctest.Wait()
		if r, err := g.Run(t.Context(), "k", f.fetch); r || err != nil {
			t.Fatalf("Run of a key in flight: %v %v", r, err)
		}
		w := do(t.Context(), g, "k", f.fetch)
		synctest.Wait()
		f.release()
		if r := <-w; r.err != nil || r.v != "v" || r.cached {
			t.Fatalf("Do sharing a Run: %+v", r)
		}
		if !<-ran {
			t.Fatal("Run did not report its download")
		}
		if r, err := g.Run(t.Context(), "k", f.fetch); r || err != nil {
			t.Fatalf("Run of a cached key: %v %v", r, err)
		}
		if _, _, adds := cache.stats(); f.calls.Load() != 1 || len(adds) != 1 || adds[0] != 1 {
			t.Fatalf("%d downloads, adds %v", f.calls.Load(), adds)
		}
	})
}

// With Options.CancelAbandoned, a download whose last waiter left is
// cancelled and not cached; one started by Run is not.
func TestCancelAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{CancelAbandoned: true})
		defer g.Close()
		f := newGatedFetch("v")
		ctx1, cancel1 := context.WithCancel(t.Context())
		ctx2, cancel2 := context.WithCancel(t.Context())
		a, b := do(ctx1, g, "k", f.fetch), do(ctx2, g, "k", f.fetch)
		synctest.Wait()
		cancel1()
		<-a
		synctest.Wait()
		if f.running.Load() != 1 {
			t.Fatal("cancelled with a waiter left")
		}
		cancel2()
		<-b
		synctest.Wait()
		if f.running.Load() != 0 || context.Cause(f.lastCtx()) != errAbandoned {
			t.Fatalf("abandoned download: running %d, cause %v", f.running.Load(), context.Cause(f.lastCtx()))
		}
		if g.InFlight("k") || cache.Has("k") {
			t.Fatal("an abandoned download left a flight or a value")
		}

		// A Run's download has its caller: a Do that joins and leaves does
		// not cancel it.
		go g.Run(t.Context(), "r", f.fetch)
		synctest.Wait()
		ctx3, cancel3 := context.WithCancel(t.Context())
		c := do(ctx3, g, "r", f.fetch)
		synctest.Wait()
		cancel3()
		<-c
		synctest.Wait()
		if f.running.Load() != 1 {
			t.Fatal("a Run's download was cancelled when a Do left it")
		}
		f.release()
		synctest.Wait()
		if !cache.Has("r") {
			t.Fatal("the Run's download was not cached")
		}
	})
}

// A waiter whose ctx ends at the instant the download ends either gets the
// value, and was counted in the Add, or its ctx error, and was not: the
// count handed to the Cache is exactly the callers that got the value.
func TestWaitersCountedAtAddGetTheValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{})
		defer g.Close()
		fetch := func(ctx context.Context) (string, error) {
			time.Sleep(time.Second)
			return "v", nil
		}
		got := 0
		for i := range 200 {
			key := fmt.Sprint(i)
			var rs []<-chan result
			for range 3 {
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				rs = append(rs, do(ctx, g, key, fetch))
			}
			for _, r := range rs {
				if res := <-r; res.err == nil {
					got++
				} else if !errors.Is(res.err, context.DeadlineExceeded) {
					t.Fatal(res.err)
				}
			}
		}
		synctest.Wait()
		_, _, adds := cache.stats()
		sum := 0
		for _, n := range adds {
			sum += n
		}
		if len(adds) != 200 || sum != got {
			t.Fatalf("%d adds for %d waiters, %d waiters got the value", len(adds), sum, got)
		}
	})
}

// No goroutine of the Group outlives Close, whatever its downloads and
// waiters were doing.
func TestNoGoroutineLeak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMapCache()
		g := New[string, string](cache, Options{Timeout: time.Minute})
		f := newGatedFetch("v")
		boom := errors.New("boom")
		f.failNext(boom)
		var rs []<-chan result
		for i := range 20 {
			ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i)*time.Second)
			defer cancel()
			rs = append(rs, do(ctx, g, fmt.Sprint(i%5), f.fetch))
		}
		go g.Run(t.Context(), "run", f.fetch)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		g.Close()
		for _, r := range rs {
			<-r
		}
		synctest.Wait()
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if strings.Contains(stacks, "flight.(*Group") {
			t.Fatalf("goroutines of the Group left after Close:\n%s", stacks)
		}
		if n := f.running.Load(); n != 0 {
			t.Fatalf("%d downloads running after Close", n)
		}
	})
}
