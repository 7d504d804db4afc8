package flight

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Do and Run after Close.
var ErrClosed = errors.New("flight: closed")

// errAbandoned is the cancellation cause of a download whose last waiter
// left, under Options.CancelAbandoned.
var errAbandoned = errors.New("flight: every waiter left")

// Cache is the storage a Group fills. The Group calls its methods with the
// Group's lock held, so the lookup of a key and the start or end of its
// flight are atomic; they must not call back into the Group.
type Cache[K comparable, V any] interface {
	// Get returns the cached value of key for one caller of Do, which will
	// use it (a cache may count a use or pin the value here). Do calls it
	// once per call that reaches the cache: false means that caller now
	// waits for a download.
	Get(key K) (V, bool)
	// Has reports whether key is cached; no value is handed out.
	Has(key K) bool
	// Add caches v, the result of a successful download of key, for which
	// waiters callers of Do are still waiting (possibly none). Each of them
	// is handed v.
	Add(key K, v V, waiters int)
}

// Fetch downloads one value. ctx ends at the Group's timeout, on Close, or
// when the download is abandoned (Options.CancelAbandoned).
type Fetch[V any] func(ctx context.Context) (V, error)

// Options configure a Group.
type Options struct {
	// Timeout bounds one download; 0 means no bound but Close.
	Timeout time.Duration
	// CancelAbandoned cancels a download started by Do when its last
	// waiter leaves (a download started by Run is never abandoned).
	CancelAbandoned bool
}

// Group runs single-flight downloads into a Cache. Its methods are safe for
// concurrent use.
type Group[K comparable, V any] struct {
	cache Cache[K, V]
	opts  Options
	// ctx is cancelled by Close; every download's ctx ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts downloads running, on the Group's goroutines or in Run.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		closed  bool
		flights map[K]*call[V]
	}
}

// call is one download in flight.
type call[V any] struct {
	done   chan struct{} // closed when v and err are set
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Guarded by Group.mu.
	waiters  int  // callers of Do waiting
	run      bool // started by Run: never abandoned
	finished bool // v and err are set; the waiters counted were handed v

	// Written under Group.mu before done is closed; read-only after.
	v   V
	err error
}

// New returns a Group that fills cache.
func New[K comparable, V any](cache Cache[K, V], opts Options) *Group[K, V] {
	g := &Group[K, V]{cache: cache, opts: opts}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.mu.flights = make(map[K]*call[V])
	return g
}

// Do returns key's value: from the Cache, or from a download with fetch,
// shared with every caller that asks for key while it runs. cached reports
// that the value came from the Cache. Errors: ctx's cause when ctx ends
// first, ErrClosed, or the download's error.
//
// Do locks the Group to look key up and join or start its flight, and to
// leave it; it waits unlocked.
func (g *Group[K, V]) Do(ctx context.Context, key K, fetch Fetch[V]) (v V, cached bool, err error) {
	if ctx.Err() != nil {
		return v, false, context.Cause(ctx)
	}
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return v, false, ErrClosed
	}
	if v, ok := g.cache.Get(key); ok {
		g.mu.Unlock()
		return v, true, nil
	}
	c := g.mu.flights[key]
	if c == nil {
		c = g.startLocked(ctx, key)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.download(key, c, fetch)
		}()
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.v, false, c.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if c.finished {
		// It ended meanwhile and handed us the value: take it.
		g.mu.Unlock()
		return c.v, false, c.err
	}
	c.waiters--
	abandoned := c.waiters == 0 && !c.run && g.opts.CancelAbandoned
	g.mu.Unlock()
	if abandoned {
		c.cancel(errAbandoned)
	}
	return v, false, context.Cause(ctx)
}

// Run downloads key with fetch on the calling goroutine, unless key is
// cached or in flight already (ran is false). Callers of Do that ask for key
// meanwhile share the download. ctx gives values only: the download ends on
// the Group's timeout or Close. err is the download's error, or ErrClosed.
//
// Run locks the Group to look key up and to publish the result.
func (g *Group[K, V]) Run(ctx context.Context, key K, fetch Fetch[V]) (ran bool, err error) {
	g.mu.Lock()
	if g.mu.closed {
		g.mu.Unlock()
		return false, ErrClosed
	}
	if _, busy := g.mu.flights[key]; busy || g.cache.Has(key) {
		g.mu.Unlock()
		return false, nil
	}
	c := g.startLocked(ctx, key)
	c.run = true
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	g.download(key, c, fetch)
	return true, c.err
}

// InFlight reports whether a download of key is running. It locks the Group.
func (g *Group[K, V]) InFlight(key K) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.mu.flights[key]
	return ok
}

// startLocked registers a flight for key; its ctx keeps parent's values
// only. g.mu must be held and the Group open.
func (g *Group[K, V]) startLocked(parent context.Context, key K) *call[V] {
	c := &call[V]{done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancelCause(context.WithoutCancel(parent))
	g.mu.flights[key] = c
	return c
}

// download runs fetch for c, adds a success to the Cache, and releases the
// waiters. It locks the Group to publish the result.
func (g *Group[K, V]) download(key K, c *call[V], fetch Fetch[V]) {
	defer c.cancel(nil)
	stop := context.AfterFunc(g.ctx, func() { c.cancel(ErrClosed) })
	defer stop()
	ctx := c.ctx
	if g.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.opts.Timeout)
		defer cancel()
	}
	v, err := fetch(ctx)

	g.mu.Lock()
	delete(g.mu.flights, key)
	c.finished = true
	c.v, c.err = v, err
	if err == nil {
		g.cache.Add(key, v, c.waiters)
	}
	g.mu.Unlock()
	close(c.done)
}

// Close cancels the downloads in progress (their waiters get the error they
// end with), waits for every one to end, and makes later calls return
// ErrClosed. Close is idempotent.
func (g *Group[K, V]) Close() {
	g.mu.Lock()
	g.mu.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
