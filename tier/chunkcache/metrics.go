package chunkcache

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the counters Stats reads; the prometheus collectors read
// the same atomics, so the two never disagree.
type metrics struct {
	hits, misses           atomic.Int64
	bytes, entries         atomic.Int64
	evictions              atomic.Int64
	fetches, fetchFailures atomic.Int64
	fetchBytes             atomic.Int64
	corrupt                atomic.Int64
	raFetched, raSkipped   atomic.Int64
	raDropped              atomic.Int64
	smallBytes, mainBytes  atomic.Int64
	smallHits, mainHits    atomic.Int64
	promotions, ghostHits  atomic.Int64
	ghostEntries           atomic.Int64
	fetchSeconds           prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_remote_cache_fetch_seconds",
			Help:    "Successful chunk downloads, ranged GET to rename, in seconds.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms to ~41s
		}),
	}
}

// register registers every collector with reg, or none: on a failure it
// unregisters what it registered.
func (m *metrics) register(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Int64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, v *atomic.Int64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	const ns = "strata_remote_cache_"
	const qbHelp = "Bytes of cached chunks by S3-FIFO queue: small (new chunks) or main (re-read chunks)."
	const qhHelp = "Gets served from the chunk cache, by the S3-FIFO queue the chunk was in."
	const raHelp = "Read-ahead requests, by result: fetched, skipped (cached or in flight), dropped (queue full or closed)."
	cs := []prometheus.Collector{
		counter(ns+"hits_total", "Gets served from the chunk cache.", &m.hits, nil),
		counter(ns+"misses_total", "Gets that waited for a chunk download.", &m.misses, nil),
		gauge(ns+"bytes", "Bytes of cached chunks.", &m.bytes, nil),
		gauge(ns+"entries", "Cached chunks.", &m.entries, nil),
		counter(ns+"evictions_total", "Chunks evicted to stay within the cache's max bytes.", &m.evictions, nil),
		counter(ns+"fetches_total", "Chunk downloads started.", &m.fetches, nil),
		counter(ns+"fetch_failures_total", "Chunk downloads that cached nothing.", &m.fetchFailures, nil),
		counter(ns+"fetch_bytes_total", "Bytes read from the object store into the chunk cache.", &m.fetchBytes, nil),
		m.fetchSeconds,
		counter(ns+"corrupt_chunks_total", "Chunks whose bytes failed their CRC-32C or length, fetched or cached.", &m.corrupt, nil),
		counter(ns+"readahead_total", raHelp, &m.raFetched, prometheus.Labels{"result": "fetched"}),
		counter(ns+"readahead_total", raHelp, &m.raSkipped, prometheus.Labels{"result": "skipped"}),
		counter(ns+"readahead_total", raHelp, &m.raDropped, prometheus.Labels{"result": "dropped"}),
		gauge(ns+"queue_bytes", qbHelp, &m.smallBytes, prometheus.Labels{"queue": "small"}),
		gauge(ns+"queue_bytes", qbHelp, &m.mainBytes, prometheus.Labels{"queue": "main"}),
		counter(ns+"queue_hits_total", qhHelp, &m.smallHits, prometheus.Labels{"queue": "small"}),
		counter(ns+"queue_hits_total", qhHelp, &m.mainHits, prometheus.Labels{"queue": "main"}),
		counter(ns+"promotions_total", "Chunks moved from the small queue to main because a Get re-read them.", &m.promotions, nil),
		counter(ns+"ghost_hits_total", "Misses (or first reads of read-ahead chunks) of chunks recently evicted from the small queue; they enter main.", &m.ghostHits, nil),
		gauge(ns+"ghost_entries", "Names of chunks evicted from the small queue that the ghost queue remembers.", &m.ghostEntries, nil),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("chunkcache: cannot register metrics: %w", err)
		}
	}
	return nil
}
