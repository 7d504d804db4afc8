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

	"github.com/stratalog/strata/tier/internal/flight"
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
	// Policy is the eviction policy (remote.cache.policy): PolicyS3FIFO
	// (the default, also for "") or PolicyLRU, the policy before S3-FIFO,
	// kept to measure S3-FIFO against (a benchmark and diagnostic knob).
	Policy string
}

// Eviction policies of Config.Policy.
const (
	PolicyS3FIFO = "s3fifo"
	PolicyLRU    = "lru"
)

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
	case cfg.Policy != "" && cfg.Policy != PolicyS3FIFO && cfg.Policy != PolicyLRU:
		return fmt.Errorf("chunkcache: Policy %q is neither %s nor %s", cfg.Policy, PolicyS3FIFO, PolicyLRU)
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
	// S3-FIFO: the bytes in each queue (they add up to Bytes), Hits split
	// by the queue the chunk was in, chunks moved from small to main by a
	// re-read, misses (or first reads of read-ahead chunks) whose name was
	// in the ghost queue, and the names the ghost queue holds.
	SmallBytes, MainBytes int64
	SmallHits, MainHits   int64
	Promotions            int64
	GhostHits             int64
	GhostEntries          int64
}

// Cache is a disk cache of chunks. Its methods are safe for concurrent use.
type Cache struct {
	cfg    Config
	fetch  FetchFunc
	logger *slog.Logger
	m      *metrics
	lock   *os.File // the flock'd LOCK file
	// lru: Config.Policy is PolicyLRU (index.go's lru* methods); the main
	// queue is then the one LRU list, most recent at the front.
	lru bool

	queue chan request
	// ctx is cancelled by Close; it stops the read-ahead workers.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the read-ahead workers.
	wg sync.WaitGroup
	// flights runs the downloads into the files by tier/internal/flight's
	// rules (one per chunk, detached from the callers, ended by
	// Config.FetchTimeout or Close). Its lock is taken before c.mu, never
	// while c.mu is held.
	flights *flight.Group[string, *entry]

	mu struct {
		sync.Mutex
		closed  bool
		entries map[string]*entry // by file name
		// small, main and ghost are S3-FIFO's queues; see the package doc.
		small, main queue
		ghost       ghost
		bytes       int64 // sum of entries' sizes
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
		lru:    cfg.Policy == PolicyLRU,
		queue:  make(chan request, cfg.ReadaheadQueue),
	}
	c.mu.entries = make(map[string]*entry)
	c.mu.small = queue{gauge: &c.m.smallBytes}
	c.mu.main = queue{gauge: &c.m.mainBytes}
	c.mu.ghost = ghost{names: make(map[string]*list.Element), max: cfg.MaxBytes - c.smallMax()}
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
	c.flights = flight.New[string, *entry]((*files)(c), flight.Options{Timeout: cfg.FetchTimeout})
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
// The flight group looks the chunk up and pins it (files.Get) or joins or
// starts its flight under its lock; Get opens, verifies and waits unlocked.
func (c *Cache) Get(ctx context.Context, ch Chunk) (*os.File, func(), error) {
	return c.get(ctx, ch, true)
}

// GetContinued is Get for a read that continues the caller's previous read
// of the chunk (the tier's reads of one chunk in a row on a partition: a
// fetch that warms a chunk then reads it, a sequential consumer whose last
// fetch ended inside it): the access was counted then, so a hit is not a
// re-read and does not raise the chunk's frequency. Otherwise a scan would
// re-read one chunk in a few, and S3-FIFO would promote those to main, where
// they push out the chunks other readers do re-read.
func (c *Cache) GetContinued(ctx context.Context, ch Chunk) (*os.File, func(), error) {
	return c.get(ctx, ch, false)
}

func (c *Cache) get(ctx context.Context, ch Chunk, reread bool) (*os.File, func(), error) {
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
		e, cached, err := c.flights.Do(ctx, name, c.fetcher(name, ch, false))
		switch {
		case errors.Is(err, flight.ErrClosed):
			return nil, nil, ErrClosed
		case err != nil && ctx.Err() != nil:
			return nil, nil, fmt.Errorf("chunkcache: waiting for %s: %w", ch, err)
		case err != nil:
			return nil, nil, err
		}
		// e is pinned for us, cached or just downloaded.
		if cached {
			c.mu.Lock()
			c.touchLocked(e, reread)
			c.mu.Unlock()
		}
		f, err := c.openCached(e, ch)
		c.unpin(e)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if cached {
			c.m.hits.Add(1)
			c.mu.Lock()
			inMain := e.q == &c.mu.main
			c.mu.Unlock()
			if inMain {
				c.m.mainHits.Add(1)
			} else {
				c.m.smallHits.Add(1)
			}
		}
		return f, releaseFunc(f), nil
	}
	return nil, nil, fmt.Errorf("chunkcache: get %s: cached file kept vanishing", ch)
}

func releaseFunc(f *os.File) func() {
	return func() { _ = f.Close() }
}

// Prefetch queues a background download of ch, shared with any Get of it,
// unless it is cached or in flight already. A read-ahead is not an access:
// the chunk it brings in enters the small queue, and its first Get counts as
// its first access (see the package doc). It never blocks: when the queue is full, or the cache closed, the
// request is dropped. Invalid chunks are dropped too.
//
// Prefetch locks c.mu for the lookup, then the flight group's lock.
func (c *Cache) Prefetch(ch Chunk) {
	if ch.validate() != nil {
		c.m.raDropped.Add(1)
		return
	}
	name := fileName(ch)
	c.mu.Lock()
	closed := c.mu.closed
	_, cached := c.mu.entries[name]
	c.mu.Unlock()
	switch {
	case closed:
		c.m.raDropped.Add(1)
		return
	case cached || c.flights.InFlight(name):
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

// readahead downloads r's chunk on the worker's goroutine unless it got
// cached or in flight since it was queued; Gets that come meanwhile share
// the download. The fetch counts it as fetched when it starts.
func (c *Cache) readahead(r request) {
	ran, err := c.flights.Run(context.Background(), r.name, c.fetcher(r.name, r.chunk, true))
	switch {
	case errors.Is(err, flight.ErrClosed):
		c.m.raDropped.Add(1)
	case !ran:
		c.m.raSkipped.Add(1)
	}
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
		SmallBytes:       m.smallBytes.Load(),
		MainBytes:        m.mainBytes.Load(),
		SmallHits:        m.smallHits.Load(),
		MainHits:         m.mainHits.Load(),
		Promotions:       m.promotions.Load(),
		GhostHits:        m.ghostHits.Load(),
		GhostEntries:     m.ghostEntries.Load(),
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
	c.flights.Close()
	c.cancel()
	c.wg.Wait()
	for len(c.queue) > 0 { // no worker is left to take them
		<-c.queue
		c.m.raDropped.Add(1)
	}
	return unlockDir(c.lock)
}
