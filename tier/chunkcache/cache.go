package chunkcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Errors returned (wrapped) by the cache.
var (
	// ErrCorruptChunk marks bytes that do not match their chunk: a CRC-32C
	// mismatch, or a body shorter or longer than the chunk. Such bytes are
	// never served and never cached.
	ErrCorruptChunk = errors.New("chunkcache: corrupt chunk")
	// ErrClosed is returned by Get after Close.
	ErrClosed = errors.New("chunkcache: cache closed")
	// ErrInvalidChunk is returned for a chunk with an empty key or object
	// key, a negative offset, or a length that is not positive.
	ErrInvalidChunk = errors.New("chunkcache: invalid chunk")
)

// Defaults applied by New to zero Config fields.
const (
	DefaultReadaheadWorkers = 4
	DefaultFetchTimeout     = 30 * time.Second
	// defaultQueuePerWorker sizes Config.ReadaheadQueue when it is zero.
	defaultQueuePerWorker = 4
)

// FetchFunc reads length bytes of objectKey from off; the tier passes
// remotestore.Store.GetRange. It must honour ctx: Close waits for
// downloads to end.
type FetchFunc func(ctx context.Context, objectKey string, off, length int64) (io.ReadCloser, error)

// Config configures a Cache.
type Config struct {
	// Dir is the cache directory (remote.cache.dir), created if missing. It
	// belongs to the Cache: nothing else may write there.
	Dir string
	// MaxBytes bounds the bytes of cached chunks (remote.cache.max.bytes).
	MaxBytes int64
	// ReadaheadWorkers bounds concurrent read-ahead downloads; 0 means
	// DefaultReadaheadWorkers.
	ReadaheadWorkers int
	// ReadaheadQueue is how many Prefetch requests may wait for a worker
	// before more are dropped; 0 means 4 per worker.
	ReadaheadQueue int
	// FetchTimeout bounds one download, GET and body; 0 means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
}

// Validate reports a Config that New cannot use. Zero fields that have
// defaults are valid.
func (cfg Config) Validate() error {
	switch {
	case cfg.Dir == "":
		return errors.New("chunkcache: Dir is empty")
	case cfg.MaxBytes <= 0:
		return fmt.Errorf("chunkcache: MaxBytes %d is not positive", cfg.MaxBytes)
	case cfg.ReadaheadWorkers < 0:
		return fmt.Errorf("chunkcache: ReadaheadWorkers %d is negative", cfg.ReadaheadWorkers)
	case cfg.ReadaheadQueue < 0:
		return fmt.Errorf("chunkcache: ReadaheadQueue %d is negative", cfg.ReadaheadQueue)
	case cfg.FetchTimeout < 0:
		return fmt.Errorf("chunkcache: FetchTimeout %v is negative", cfg.FetchTimeout)
	}
	return nil
}

func (cfg Config) withDefaults() Config {
	if cfg.ReadaheadWorkers == 0 {
		cfg.ReadaheadWorkers = DefaultReadaheadWorkers
	}
	if cfg.ReadaheadQueue == 0 {
		cfg.ReadaheadQueue = defaultQueuePerWorker * cfg.ReadaheadWorkers
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	return cfg
}

// Chunk is a byte range of one remote object.
type Chunk struct {
	// Key names the chunk, e.g. "<upload id>/<chunk index>"; the caller
	// chooses it. Concurrent Gets of the same chunk share one download.
	Key string
	// ObjectKey is the object the bytes are read from.
	ObjectKey string
	// Offset and Length locate the bytes in the object.
	Offset, Length int64
	// CRC32C is the CRC-32C (Castagnoli) of the chunk's bytes.
	CRC32C uint32
}

func (c Chunk) String() string {
	return fmt.Sprintf("chunk %q (%q [%d, +%d))", c.Key, c.ObjectKey, c.Offset, c.Length)
}

func (c Chunk) validate() error {
	switch {
	case c.Key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidChunk)
	case c.ObjectKey == "":
		return fmt.Errorf("%w: %s: empty object key", ErrInvalidChunk, c)
	case c.Offset < 0:
		return fmt.Errorf("%w: %s: negative offset", ErrInvalidChunk, c)
	case c.Length <= 0:
		return fmt.Errorf("%w: %s: length not positive", ErrInvalidChunk, c)
	}
	return nil
}

// Stats are the cache's counters as plain numbers; see the package doc for
// the metric each one backs.
type Stats struct {
	Hits, Misses     int64
	Entries, Bytes   int64
	Evictions        int64
	Fetches          int64
	FetchFailures    int64
	FetchBytes       int64
	CorruptChunks    int64
	ReadaheadFetched int64
	ReadaheadSkipped int64
	ReadaheadDropped int64
}

// Cache is a disk cache of chunks. Its methods are safe for concurrent use.
type Cache struct {
	cfg    Config
	fetch  FetchFunc
	logger *slog.Logger
	m      *metrics
	lock   *os.File // the flock'd LOCK file

	queue chan request
	// ctx is cancelled by Close; every download runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts read-ahead workers and download goroutines started by Get.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		closed  bool
		entries map[string]*entry  // by file name
		lru     list.List          // of *entry, most recently used at the front
		bytes   int64              // sum of entries' sizes
		flights map[string]*flight // downloads in progress, by file name
	}
}

// request is a queued Prefetch.
type request struct {
	name  string
	chunk Chunk
}

// New opens the cache in cfg.Dir, indexing the chunks a previous run left
// there (see the package doc), and starts the read-ahead workers. fetch reads
// the object store. logger and reg may be nil.
func New(cfg Config, fetch FetchFunc, logger *slog.Logger, reg prometheus.Registerer) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fetch == nil {
		return nil, errors.New("chunkcache: nil FetchFunc")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkcache: cannot create cache directory %q: %w", cfg.Dir, err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		cfg:    cfg,
		fetch:  fetch,
		logger: logger.With("component", "chunkcache"),
		m:      newMetrics(),
		lock:   lock,
		queue:  make(chan request, cfg.ReadaheadQueue),
	}
	c.mu.entries = make(map[string]*entry)
	c.mu.flights = make(map[string]*flight)
	if err := c.load(); err != nil {
		unlockDir(lock)
		return nil, err
	}
	if reg != nil {
		if err := c.m.register(reg); err != nil {
			unlockDir(lock)
			return nil, err
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(cfg.ReadaheadWorkers)
	for range cfg.ReadaheadWorkers {
		go c.worker()
	}
	return c, nil
}

// Get returns an open file holding exactly c's bytes, position 0 at the
// chunk start, and a func that releases (closes) it. The file stays readable
// until released even if the chunk is evicted meanwhile. On a miss Get waits
// for the download, shared with every other Get and Prefetch of the chunk,
// until it ends or ctx does; see the package doc for what happens to the
// download then. Errors wrap ErrCorruptChunk, ErrInvalidChunk, ErrClosed, the
// fetch error, or ctx's error.
//
// Get locks c.mu to look the chunk up, pin it and join or start its flight;
// it opens, verifies and waits with c.mu unlocked.
func (c *Cache) Get(ctx context.Context, ch Chunk) (*os.File, func(), error) {
	if err := ch.validate(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("chunkcache: get %s: %w", ch, context.Cause(ctx))
	}
	name := fileName(ch)
	// A cached file found missing or corrupt is dropped and looked up again;
	// the second time round it is in flight or freshly downloaded.
	for range 3 {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return nil, nil, ErrClosed
		}
		if e := c.mu.entries[name]; e != nil {
			e.pins++
			c.mu.lru.MoveToFront(e.elem)
			verified := e.verified
			c.mu.Unlock()
			f, err := c.openCached(e, ch, verified)
			c.unpin(e)
			if errors.Is(err, errStale) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			c.m.hits.Add(1)
			return f, releaseFunc(f), nil
		}
		fl := c.mu.flights[name]
		if fl == nil {
			fl = c.startFlightLocked(name, ch)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				// The download outlives the caller: keep ctx's values, not its end.
				c.download(context.WithoutCancel(ctx), fl)
			}()
		}
		fl.waiters++
		c.mu.Unlock()
		c.m.misses.Add(1)
		return c.wait(ctx, fl)
	}
	return nil, nil, fmt.Errorf("chunkcache: get %s: cached file kept vanishing", ch)
}

func releaseFunc(f *os.File) func() {
	return func() { _ = f.Close() }
}

// wait waits for fl on behalf of one waiter counted in fl.waiters, then
// opens the downloaded file. It locks c.mu when ctx ends, to leave the
// flight, and to unpin the entry.
func (c *Cache) wait(ctx context.Context, fl *flight) (*os.File, func(), error) {
	select {
	case <-fl.done:
	case <-ctx.Done():
		c.mu.Lock()
		finished := fl.finished
		if !finished {
			fl.waiters--
		}
		c.mu.Unlock()
		if !finished {
			return nil, nil, fmt.Errorf("chunkcache: waiting for %s: %w", fl.chunk, context.Cause(ctx))
		}
		// It finished meanwhile and counted us in its pins: take the result.
	}
	if fl.err != nil {
		return nil, nil, fl.err
	}
	path := c.path(fl.entry.name)
	f, err := os.Open(path)
	c.unpin(fl.entry)
	if err != nil {
		return nil, nil, fmt.Errorf("chunkcache: cannot open %s in %q: %w", fl.chunk, path, err)
	}
	return f, releaseFunc(f), nil
}

// Prefetch queues a background download of ch, shared with any Get of it,
// unless it is cached or in flight already (it then counts as used, for
// LRU). It never blocks: when the queue is full, or the cache closed, the
// request is dropped. Invalid chunks are dropped too.
//
// Prefetch locks c.mu for the lookup.
func (c *Cache) Prefetch(ch Chunk) {
	if ch.validate() != nil {
		c.m.raDropped.Add(1)
		return
	}
	name := fileName(ch)
	c.mu.Lock()
	closed := c.mu.closed
	e, cached := c.mu.entries[name]
	if cached {
		c.mu.lru.MoveToFront(e.elem)
	}
	_, inFlight := c.mu.flights[name]
	c.mu.Unlock()
	switch {
	case closed:
		c.m.raDropped.Add(1)
		return
	case cached || inFlight:
		c.m.raSkipped.Add(1)
		return
	}
	select {
	case c.queue <- request{name: name, chunk: ch}:
	default:
		c.m.raDropped.Add(1)
	}
}

// worker runs queued read-ahead downloads, one at a time, until Close.
func (c *Cache) worker() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case r := <-c.queue:
			c.readahead(r)
		}
	}
}

// readahead downloads r's chunk unless it got cached or in flight since it
// was queued. It locks c.mu for the lookup.
func (c *Cache) readahead(r request) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		c.m.raDropped.Add(1)
		return
	}
	_, cached := c.mu.entries[r.name]
	_, inFlight := c.mu.flights[r.name]
	if cached || inFlight {
		c.mu.Unlock()
		c.m.raSkipped.Add(1)
		return
	}
	fl := c.startFlightLocked(r.name, r.chunk)
	c.mu.Unlock()
	c.m.raFetched.Add(1)
	c.download(context.Background(), fl)
}

// Stats returns the counters. It takes no lock: each number is read
// atomically, the set is not a snapshot.
func (c *Cache) Stats() Stats {
	m := c.m
	return Stats{
		Hits:             m.hits.Load(),
		Misses:           m.misses.Load(),
		Entries:          m.entries.Load(),
		Bytes:            m.bytes.Load(),
		Evictions:        m.evictions.Load(),
		Fetches:          m.fetches.Load(),
		FetchFailures:    m.fetchFailures.Load(),
		FetchBytes:       m.fetchBytes.Load(),
		CorruptChunks:    m.corrupt.Load(),
		ReadaheadFetched: m.raFetched.Load(),
		ReadaheadSkipped: m.raSkipped.Load(),
		ReadaheadDropped: m.raDropped.Load(),
	}
}

// Close cancels downloads in progress (their waiters get an error), stops
// the read-ahead workers, waits for every goroutine the cache started, and
// unlocks the directory. Cached files stay for the next run, and files
// returned by Get stay readable until released. Close is idempotent.
//
// Close locks c.mu to mark the cache closed, then waits unlocked.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	for len(c.queue) > 0 { // no worker is left to take them
		<-c.queue
		c.m.raDropped.Add(1)
	}
	return unlockDir(c.lock)
}
