package tier

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/metricsreg"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/tier/chunkcache"
)

// recoveryTimeout bounds the start-up roll-back and roll-forward in New; what
// is left (the store is down) is retried by the partitions' rounds.
const recoveryTimeout = 30 * time.Second

// tp names a partition.
type tp struct {
	topic     string
	partition int32
}

// view is the in-memory copy of one partition's remote index, replaced (never
// modified in place) on every state change, so a reader may keep a view after
// unlocking.
type view struct {
	segs     []metadata.RemoteSegment // by base offset, every state
	finished []metadata.RemoteSegment // the COPY_FINISHED ones
	start    int64                    // first finished base; -1: none
	highest  int64                    // largest finished end; -1: none
	bytes    int64                    // of finished segments
	deleting int                      // DELETE_STARTED entries
}

func newView(segs []metadata.RemoteSegment) *view {
	v := &view{segs: segs, start: -1, highest: -1}
	for _, s := range segs {
		switch s.State {
		case metadata.CopyFinished:
			v.finished = append(v.finished, s)
			if v.start < 0 {
				v.start = s.BaseOffset
			}
			v.highest = max(v.highest, s.EndOffset)
			v.bytes += s.Size
		case metadata.DeleteStarted:
			v.deleting++
		}
	}
	return v
}

// tierFloor is one past the highest offset any entry holds, whatever its
// state (0: none): the local cleaner must not rewrite below it.
func (v *view) tierFloor() int64 {
	f := int64(0)
	for _, s := range v.segs {
		f = max(f, s.EndOffset+1)
	}
	return f
}

// partState is one partition's state in the manager.
type partState struct {
	key tp
	// topicID is the ID of the topic Manage last named for key (zero until then).
	topicID [16]byte
	// opMu serialises everything that changes the partition's index: its
	// round (uploads, retention), ForgetTopic. Held for a whole round.
	opMu sync.Mutex
	// learnedEpoch is the leader epoch at which this broker, leading the
	// partition, last learned its index from the bucket (-1: not since it
	// last led or failed). Guarded by opMu.
	learnedEpoch int32

	// Guarded by Manager.viewMu.
	v *view

	// Guarded by Manager.jobs.
	log          PartitionLog
	hasLog       bool
	queued       bool // a round is queued or running
	deleted      bool
	cancel       context.CancelFunc // of the running round
	retryAt      time.Time
	failures     int
	lastErr      string
	retentionCut int64 // remote segments ending below it are deleted (DeleteRemoteBefore)
	lagBytes     int64
	lagSegs      int
	lagOldest    time.Time // roll time of the oldest lagging segment; zero: none

	// lagMu serialises updateLag's reading of the log with its writing of
	// the lag, so a slower computation never overwrites a newer one.
	lagMu sync.Mutex

	// lastChunk is the cache key of the chunk the partition's last remote
	// read touched (read.go: reads of one chunk in a row are one access).
	lastChunk atomic.Pointer[string]
}

// Manager is the tiering manager. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	store   remotestore.Store // the store given to New, under health if it had none
	health  *remotestore.Health
	started time.Time
	// stopWatch ends the health watch (Close).
	stopWatch func()
	// downSince is when the store became unavailable; guarded by the
	// health's lock (onHealth runs under it).
	downSince time.Time
	meta      *metadata.Store
	logger    *slog.Logger
	m         *metrics
	cache     *chunkcache.Cache
	limiter   *tokenBucket // uploads (the copy limit); its rate may be unlimited
	// fetchLimiter paces downloads (the fetch limit), in the metered store.
	fetchLimiter *tokenBucket
	// compactLimiter paces remote compaction (compact.go); nil: unlimited.
	compactLimiter *tokenBucket
	// compactHook, tests only, is called after each step of a remote
	// compaction; an error stops it there (errCompactCrash: as a crash).
	compactHook func(step string) error
	costs       *costs
	// pending counts the remote reads in progress (serve), bounded by
	// Config.ReaderMaxPendingTasks.
	pending  atomic.Int64
	sidecars *sidecarCache
	// prefetchSem bounds the goroutines that load a next segment's sidecar
	// for read-ahead.
	prefetchSem chan struct{}

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	viewMu struct {
		sync.RWMutex
		parts map[tp]*partState
	}

	jobs struct {
		sync.Mutex
		cond     *sync.Cond // signalled when queue, running or closed change
		queue    []*partState
		running  int
		closed   bool
		outage   bool // an upload/delete failure has been logged and no success since
		lagBytes int64
		lagSegs  int
		// forgotten holds the IDs of deleted topics (ForgetTopic): a Manage
		// that still names one is ignored.
		forgotten map[[16]byte]bool
		// remoteOff holds the IDs of topics whose remote storage was
		// disabled (DropRemote) until ResumeRemote: their partitions do not
		// tier, whatever a Manage still says.
		remoteOff map[[16]byte]bool
	}

	// manifests are the topics whose manifest is to be checked and written
	// (manifest.go); manifestMu serialises manifest writes and deletes.
	manifests struct {
		sync.Mutex
		pending map[string]manifestPending
		gen     uint64
		wake    chan struct{}
	}
	manifestMu sync.Mutex
}

// New opens the tiering manager: it opens the chunk cache, loads the remote
// index into memory, rolls back the uploads a crash interrupted
// (COPY_STARTED) and finishes the interrupted deletes (DELETE_STARTED), then
// starts the upload workers and the periodic reconciler. logger and reg may
// be nil.
func New(cfg Config, store remotestore.Store, meta *metadata.Store, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if store == nil || meta == nil {
		return nil, errors.New("tier: New needs a store and a metadata store")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "tier")
	health := cfg.Health
	if health == nil {
		health = remotestore.NewHealth("object store")
		store = remotestore.WithHealth(store, health)
	}
	// Every call the manager makes goes through the metered store: counted
	// per topic, downloads paced by the fetch limit.
	costs := newCosts(*cfg.Prices, cfg.Now, reg)
	metered := &meteredStore{Store: store, costs: costs, limiter: newTokenBucket(cfg.FetchMaxBytesPerSecond)}
	store = metered
	m := &Manager{
		costs: costs, fetchLimiter: metered.limiter,
		cfg: cfg, store: store, meta: meta, logger: logger, health: health, started: time.Now(),
		m:           newMetrics(reg),
		sidecars:    newSidecarCache(cfg.SidecarCacheBytes, sidecarLoadTimeout),
		prefetchSem: make(chan struct{}, 4),
	}
	if st := health.State(); !st.Available {
		m.m.storeAvailable.Set(0)
	}
	m.stopWatch = health.Watch(m.onHealth)
	m.limiter = newTokenBucket(cfg.CopyMaxBytesPerSecond)
	if cfg.CompactMaxBytesPerSecond > 0 {
		m.compactLimiter = newTokenBucket(cfg.CompactMaxBytesPerSecond)
	}
	if err := resetCompactDir(cfg.CacheDir); err != nil {
		return nil, fmt.Errorf("tier: remote compaction directory: %w", err)
	}
	metricsreg.Register(reg, newCostCollector(m))
	m.viewMu.parts = make(map[tp]*partState)
	m.jobs.cond = sync.NewCond(&m.jobs)
	m.jobs.forgotten = map[[16]byte]bool{}
	m.jobs.remoteOff = map[[16]byte]bool{}
	m.manifests.pending = make(map[string]manifestPending)
	m.manifests.wake = make(chan struct{}, 1)

	tps, err := meta.RemotePartitions()
	if err != nil {
		return nil, fmt.Errorf("tier: cannot load the remote index: %w", err)
	}
	for _, p := range tps {
		segs, err := meta.RemoteSegments(p.Topic, p.Partition)
		if err != nil {
			return nil, fmt.Errorf("tier: cannot load the remote index of %s-%d: %w", p.Topic, p.Partition, err)
		}
		ps := m.part(tp{p.Topic, p.Partition})
		m.setView(ps, segs)
	}
	// A partition with a remote compaction in progress is settled below
	// with the others (finishPending).
	ctps, err := meta.RemoteCompactions()
	if err != nil {
		return nil, fmt.Errorf("tier: cannot load the remote compactions: %w", err)
	}
	for _, p := range ctps {
		m.part(tp{p.Topic, p.Partition})
	}
	m.m.compactIntents.Set(float64(len(ctps)))
	cache, err := chunkcache.New(chunkcache.Config{Dir: cfg.CacheDir, MaxBytes: cfg.CacheMaxBytes, ReadaheadWorkers: cfg.ReaderThreads,
		Policy: cfg.CachePolicy},
		store.GetRange, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("tier: %w", err)
	}
	m.cache = cache
	m.ctx, m.cancel = context.WithCancel(context.Background())

	rctx, cancel := context.WithTimeout(m.ctx, recoveryTimeout)
	for _, ps := range m.allParts() {
		if cfg.Replicated {
			// In a cluster an interrupted upload may be complete in the
			// bucket and learned by the partition's new leader: the
			// partition's rounds settle it against the bucket (learn).
			break
		}
		if err := m.finishPending(rctx, ps); err != nil {
			logger.Warn("cannot finish interrupted uploads and deletes; retrying later",
				"topic", ps.key.topic, "partition", ps.key.partition, "err", err)
		}
	}
	cancel()

	m.wg.Add(cfg.UploadConcurrency)
	for range cfg.UploadConcurrency {
		go m.worker()
	}
	if cfg.ReconcileInterval > 0 {
		m.wg.Add(1)
		go m.reconcileLoop()
	}
	// Every topic's manifest is checked once at start-up: one that a crash
	// or an outage kept from landing is written now (see manifest.go).
	topics, err := meta.Topics()
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("tier: cannot list topics: %w", err)
	}
	for _, t := range topics {
		m.TopicChanged(t.Name)
	}
	m.wg.Add(1)
	go m.manifestLoop()
	return m, nil
}

// Close stops the workers (an upload in progress is cancelled and rolled
// back at the next start), waits for every goroutine the manager started, and
// closes the chunk cache. Slices already returned by Read stay readable until
// released.
func (m *Manager) Close() error {
	m.jobs.Lock()
	if m.jobs.closed {
		m.jobs.Unlock()
		return nil
	}
	m.jobs.closed = true
	m.jobs.queue = nil
	m.jobs.cond.Broadcast()
	m.jobs.Unlock()
	m.cancel()
	m.sidecars.close()
	m.wg.Wait()
	m.stopWatch()
	return m.cache.Close()
}

// onHealth reports a change of the store's availability: the gauge, and one
// log line per change. It runs under the health's lock.
func (m *Manager) onHealth(st remotestore.HealthState) {
	if !st.Available {
		m.downSince = st.LastFailure
		m.m.storeAvailable.Set(0)
		m.logger.Warn("object store unavailable; segments wait on local disk, calls are retried",
			"store", st.Name, "op", st.Op, "err", st.Err)
		return
	}
	m.m.storeAvailable.Set(1)
	m.logger.Info("object store available again", "store", st.Name, "down_for", st.LastSuccess.Sub(m.downSince).Round(time.Millisecond))
}

// part returns the partition's state, created if missing.
func (m *Manager) part(key tp) *partState {
	m.viewMu.RLock()
	ps := m.viewMu.parts[key]
	m.viewMu.RUnlock()
	if ps != nil {
		return ps
	}
	m.viewMu.Lock()
	defer m.viewMu.Unlock()
	if ps = m.viewMu.parts[key]; ps == nil {
		ps = &partState{key: key, v: newView(nil), learnedEpoch: -1}
		m.viewMu.parts[key] = ps
	}
	return ps
}

// lookup returns the partition's state, or nil.
func (m *Manager) lookup(key tp) *partState {
	m.viewMu.RLock()
	defer m.viewMu.RUnlock()
	return m.viewMu.parts[key]
}

func (m *Manager) allParts() []*partState {
	m.viewMu.RLock()
	defer m.viewMu.RUnlock()
	out := make([]*partState, 0, len(m.viewMu.parts))
	for _, ps := range m.viewMu.parts {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b *partState) int {
		if a.key.topic != b.key.topic {
			if a.key.topic < b.key.topic {
				return -1
			}
			return 1
		}
		return int(a.key.partition - b.key.partition)
	})
	return out
}

// viewOf returns the partition's current view.
func (m *Manager) viewOf(ps *partState) *view {
	m.viewMu.RLock()
	defer m.viewMu.RUnlock()
	return ps.v
}

// setView replaces the partition's view and updates the gauges.
func (m *Manager) setView(ps *partState, segs []metadata.RemoteSegment) {
	nv := newView(segs)
	m.viewMu.Lock()
	old := ps.v
	ps.v = nv
	m.viewMu.Unlock()
	m.m.remoteLogBytes.Add(float64(nv.bytes - old.bytes))
	m.m.deleteLagSegs.Add(float64(nv.deleting - old.deleting))
}

// putEntry writes seg to the index, then to the view. The index is the truth:
// the view changes only once bbolt has the new state.
func (m *Manager) putEntry(ps *partState, seg metadata.RemoteSegment) error {
	seg.UpdatedAtMs = m.cfg.Now().UnixMilli()
	if err := m.meta.PutRemoteSegment(ps.key.topic, ps.key.partition, seg); err != nil {
		return fmt.Errorf("tier: cannot write remote segment %d of %s-%d (%s): %w",
			seg.BaseOffset, ps.key.topic, ps.key.partition, seg.State, err)
	}
	m.updateView(ps, seg, false)
	return nil
}

// dropEntry removes the entry at base from the index and the view. A missing
// entry (or a deleted topic, whose index went with it) is not an error.
func (m *Manager) dropEntry(ps *partState, seg metadata.RemoteSegment) error {
	err := m.meta.DeleteRemoteSegment(ps.key.topic, ps.key.partition, seg.BaseOffset)
	if err != nil && !errors.Is(err, metadata.ErrNotFound) && !errors.Is(err, metadata.ErrTopicNotFound) {
		return fmt.Errorf("tier: cannot drop remote segment %d of %s-%d: %w", seg.BaseOffset, ps.key.topic, ps.key.partition, err)
	}
	m.updateView(ps, seg, true)
	m.sidecars.remove(sidecarKey(ps.key.topic, ps.key.partition, seg.BaseOffset, seg.UploadID))
	return nil
}

func (m *Manager) updateView(ps *partState, seg metadata.RemoteSegment, drop bool) {
	cur := m.viewOf(ps).segs
	segs := make([]metadata.RemoteSegment, 0, len(cur)+1)
	for _, s := range cur {
		if s.BaseOffset != seg.BaseOffset {
			segs = append(segs, s)
		}
	}
	if !drop {
		segs = append(segs, seg)
		slices.SortFunc(segs, func(a, b metadata.RemoteSegment) int { return cmp.Compare(a.BaseOffset, b.BaseOffset) })
	}
	m.setView(ps, segs)
}

// deleteObjects deletes a remote segment's two objects; deleting a missing
// object is not an error, so it may be repeated after a crash.
func (m *Manager) deleteObjects(ctx context.Context, key tp, seg metadata.RemoteSegment) error {
	var errs []error
	for _, k := range []string{
		logKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID),
		sidecarKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID),
	} {
		if err := m.store.Delete(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("tier: cannot delete %q: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// finishPending rolls back COPY_STARTED entries and finishes DELETE_STARTED
// ones. Called with no upload of the partition in progress: at start-up, or
// at the start of a round (holding opMu).
func (m *Manager) finishPending(ctx context.Context, ps *partState) error {
	if err := m.finishCompaction(ctx, ps, true); err != nil {
		return err
	}
	for _, seg := range m.viewOf(ps).segs {
		switch seg.State {
		case metadata.CopyStarted:
			if err := m.deleteObjects(ctx, ps.key, seg); err != nil {
				return err
			}
			if err := m.dropEntry(ps, seg); err != nil {
				return err
			}
			m.logger.Info("rolled back an interrupted upload", "topic", ps.key.topic, "partition", ps.key.partition,
				"base", seg.BaseOffset, "upload_id", seg.UploadID)
		case metadata.DeleteStarted:
			if err := m.deleteRemote(ctx, ps, seg); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteRemote takes a remote segment through DELETE_STARTED, deletes its
// objects and drops its entry.
func (m *Manager) deleteRemote(ctx context.Context, ps *partState, seg metadata.RemoteSegment) error {
	if seg.State != metadata.DeleteStarted {
		seg.State = metadata.DeleteStarted
		if err := m.putEntry(ps, seg); err != nil {
			return err
		}
	}
	if err := m.deleteObjects(ctx, ps.key, seg); err != nil {
		return err
	}
	return m.dropEntry(ps, seg)
}

// LogStartOffset is the partition's first offset in the remote tier (the
// first COPY_FINISHED segment's base), if it has one. Cheap: an in-memory view.
func (m *Manager) LogStartOffset(topic string, partition int32) (int64, bool) {
	ps := m.lookup(tp{topic, partition})
	if ps == nil {
		return 0, false
	}
	v := m.viewOf(ps)
	return v.start, v.start >= 0
}

// HighestOffset is the last offset copied to the remote tier (the largest
// end offset of a COPY_FINISHED segment), if any (KIP-1005).
func (m *Manager) HighestOffset(topic string, partition int32) (int64, bool) {
	ps := m.lookup(tp{topic, partition})
	if ps == nil {
		return 0, false
	}
	v := m.viewOf(ps)
	return v.highest, v.highest >= 0
}
