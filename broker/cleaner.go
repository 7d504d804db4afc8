package broker

// The log cleaner's scheduling: which partition to compact, when, and how
// fast. The cleaning of one log is localstore.Log.Clean.
//
// log.cleaner.threads goroutines each take, in turn, the partition of a
// compacted topic (cleanup.policy includes compact) that most needs it: one
// whose oldest dirty record is older than max.compaction.lag.ms first, else
// the one with the highest dirty ratio at or above min.cleanable.dirty.ratio,
// as Kafka's LogCleanerManager picks. With none, a thread sleeps
// log.cleaner.backoff.ms. A partition is cleaned by one thread at a time.
// Each thread's key-to-offset map gets an equal share of
// log.cleaner.dedupe.buffer.size; log.cleaner.io.max.bytes.per.second bounds
// the bytes all threads read and write together.

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/localstore"
)

type logCleaner struct {
	s       *Server
	backoff time.Duration
	buf     int64 // dedupe buffer of one thread
	limit   *ioLimiter

	mu     sync.Mutex
	busy   map[*partition]bool
	failed map[*partition]time.Time // a failed partition waits log.cleaner.backoff.ms
	series map[[2]string]bool       // the gauges' label pairs set by the last pick
}

// startCleaner starts the cleaner threads (none with log.cleaner.enable=false
// or log.cleaner.threads=0).
func (s *Server) startCleaner() {
	cfg := s.cfg
	if !cfg.LogCleanerEnable || cfg.LogCleanerThreads <= 0 {
		return
	}
	c := &logCleaner{
		s:       s,
		backoff: ms(cfg.LogCleanerBackoffMs),
		buf:     max(cfg.LogCleanerDedupeBufferSize/cfg.LogCleanerThreads, 1024),
		limit:   newIOLimiter(cfg.LogCleanerIoMaxBytesPerSecond),
		busy:    map[*partition]bool{},
		failed:  map[*partition]time.Time{},
		series:  map[[2]string]bool{},
	}
	for range cfg.LogCleanerThreads {
		s.wg.Add(1)
		go c.run()
	}
}

func (c *logCleaner) run() {
	defer c.s.wg.Done()
	ctx := c.s.ctx
	for ctx.Err() == nil {
		p := c.pick(time.Now())
		if p == nil {
			t := time.NewTimer(c.backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		ok := c.clean(ctx, p)
		c.mu.Lock()
		delete(c.busy, p)
		if ok {
			delete(c.failed, p)
		} else {
			c.failed[p] = time.Now().Add(c.backoff)
		}
		c.mu.Unlock()
	}
}

// pick returns the partition to clean next, marked busy, or nil. It also
// refreshes the per-partition gauges.
func (c *logCleaner) pick(now time.Time) *partition {
	m := c.s.metrics
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[[2]string]bool, len(c.series))
	var (
		best      *partition
		bestRatio float64
		bestLag   bool
	)
	for _, t := range c.s.topics.all() {
		eff := t.cfg.Load().eff
		if !eff.Compact() {
			continue
		}
		for _, p := range t.parts() {
			st := p.log.Local().CleanState(eff.MinCompactionLagMs, now)
			ratio := st.DirtyRatio()
			labels := []string{t.name, strconv.Itoa(int(p.index))}
			seen[[2]string{labels[0], labels[1]}] = true
			m.cleanerDirtyRatio.WithLabelValues(labels...).Set(ratio)
			if !st.LastCleaned.IsZero() {
				m.cleanerSinceClean.WithLabelValues(labels...).Set(now.Sub(st.LastCleaned).Seconds())
			}
			if c.busy[p] || st.DirtyBytes == 0 || now.Before(c.failed[p]) {
				continue
			}
			lag := eff.MaxCompactionLagMs < math.MaxInt64 && st.FirstDirtyTimestamp >= 0 &&
				now.UnixMilli()-st.FirstDirtyTimestamp > eff.MaxCompactionLagMs
			if !lag && ratio < eff.MinCleanableDirtyRatio {
				continue
			}
			if best == nil || (lag && !bestLag) || (lag == bestLag && ratio > bestRatio) {
				best, bestRatio, bestLag = p, ratio, lag
			}
		}
	}
	// Drop the series of partitions no longer compacted (or deleted).
	for k := range c.series {
		if !seen[k] {
			m.cleanerDirtyRatio.DeleteLabelValues(k[0], k[1])
			m.cleanerSinceClean.DeleteLabelValues(k[0], k[1])
		}
	}
	c.series = seen
	if best != nil {
		c.busy[best] = true
	}
	for p := range c.failed {
		if now.After(c.failed[p]) {
			delete(c.failed, p)
		}
	}
	return best
}

// clean compacts p's log and accounts for it; false if it failed.
func (c *logCleaner) clean(ctx context.Context, p *partition) bool {
	eff := p.topic.cfg.Load().eff
	m := c.s.metrics
	start := time.Now()
	st, err := p.log.Local().Clean(localstore.CleanConfig{
		DeleteRetentionMs:  eff.DeleteRetentionMs,
		MinCompactionLagMs: eff.MinCompactionLagMs,
		DedupeBufferBytes:  c.buf,
		Now:                start,
		IO: func(read, written int64) {
			m.cleanerBytesRead.Add(float64(read))
			m.cleanerBytesWritten.Add(float64(written))
			c.limit.wait(ctx, read+written)
		},
		Ctx:    ctx,
		Tiered: eff.RemoteStorageEnable && c.s.tier != nil,
	})
	m.cleanerRecordsRemoved.Add(float64(st.RecordsRemoved))
	switch {
	case err == nil:
		m.cleanerRuns.Add(1)
		c.s.log.Debug("cleaned partition", "topic", p.topic.name, "partition", p.index, "passes", st.Passes,
			"segments", st.SegmentsBefore, "into", st.SegmentsAfter, "records_removed", st.RecordsRemoved,
			"bytes_read", st.BytesRead, "bytes_written", st.BytesWritten, "took", time.Since(start))
	case errors.Is(err, localstore.ErrClosed), errors.Is(err, context.Canceled):
		// The topic was deleted, or the broker is stopping.
	default:
		m.cleanerErrors.Inc()
		c.s.log.Warn("log cleaner failed; the partition is retried after log.cleaner.backoff.ms", "topic", p.topic.name, "partition", p.index, "err", err)
		return false
	}
	return true
}

// ioLimiter spreads bytes over time at a rate (bytes per second), for all
// cleaner threads together.
type ioLimiter struct {
	rate float64
	mu   sync.Mutex
	next time.Time // when the bytes granted so far are paid for
}

func newIOLimiter(rate float64) *ioLimiter { return &ioLimiter{rate: rate} }

// wait sleeps until n more bytes fit in the rate (at once if unlimited).
func (l *ioLimiter) wait(ctx context.Context, n int64) {
	if l.rate >= math.MaxFloat64/2 || n <= 0 {
		return
	}
	d := time.Duration(float64(n) / l.rate * float64(time.Second))
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(d)
	until := l.next
	l.mu.Unlock()
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// cleanerMetrics are the log cleaner's metrics (see Metrics).
type cleanerMetrics struct {
	cleanerRuns           countingCounter
	cleanerErrors         prometheus.Counter
	cleanerBytesRead      prometheus.Counter
	cleanerBytesWritten   prometheus.Counter
	cleanerRecordsRemoved countingCounter
	cleanerDirtyRatio     *prometheus.GaugeVec
	cleanerSinceClean     *prometheus.GaugeVec
}

func newCleanerMetrics(f func(name, help string) prometheus.Counter) cleanerMetrics {
	return cleanerMetrics{
		cleanerRuns:           countingCounter{f("strata_log_cleaner_runs_total", "Partition cleanings finished."), new(atomic.Int64)},
		cleanerErrors:         f("strata_log_cleaner_errors_total", "Partition cleanings that failed."),
		cleanerBytesRead:      f("strata_log_cleaner_read_bytes_total", "Bytes the log cleaner read."),
		cleanerBytesWritten:   f("strata_log_cleaner_written_bytes_total", "Bytes the log cleaner wrote."),
		cleanerRecordsRemoved: countingCounter{f("strata_log_cleaner_records_removed_total", "Records the log cleaner removed."), new(atomic.Int64)},
		cleanerDirtyRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_log_cleaner_dirty_ratio",
			Help: "Dirty bytes over cleanable bytes of each partition of a compacted topic."}, []string{"topic", "partition"}),
		cleanerSinceClean: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_log_cleaner_seconds_since_last_clean",
			Help: "Seconds since each partition of a compacted topic was last cleaned."}, []string{"topic", "partition"}),
	}
}

func (m cleanerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.cleanerRuns.Counter, m.cleanerErrors, m.cleanerBytesRead, m.cleanerBytesWritten,
		m.cleanerRecordsRemoved.Counter, m.cleanerDirtyRatio, m.cleanerSinceClean}
}

// CleanerRuns is how many partition cleanings finished.
func (m *Metrics) CleanerRuns() int64 { return m.cleanerRuns.n.Load() }

// CleanerRecordsRemoved is how many records the log cleaner removed.
func (m *Metrics) CleanerRecordsRemoved() int64 { return m.cleanerRecordsRemoved.n.Load() }
