package tier

import (
	"github.com/stratalog/strata/internal/metricsreg"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the manager's series; see doc.go for the list.
type metrics struct {
	copyBytes      prometheus.Counter
	copyRequests   prometheus.Counter
	copyErrors     prometheus.Counter
	copyLagBytes   prometheus.Gauge
	copyLagSegs    prometheus.Gauge
	copyLagOldest  prometheus.Gauge
	deleteLagSegs  prometheus.Gauge
	fetchBytes     prometheus.Counter
	fetchRequests  prometheus.Counter
	fetchErrors    prometheus.Counter
	fetchRejected  prometheus.Counter
	fetchSeconds   prometheus.Histogram
	remoteLogBytes prometheus.Gauge
	timeToTier     prometheus.Histogram
	storeAvailable prometheus.Gauge
	storeSinceOK   prometheus.Gauge
	// retentionPasses counts rounds whose remote retention ran to the end.
	retentionPasses  prometheus.Counter
	manifestWrites   prometheus.Counter
	manifestsPending prometheus.Gauge
	// Replicas (replicated.go): learning the index from the bucket.
	learnLists      prometheus.Counter
	learnGets       prometheus.Counter
	learnSuperseded prometheus.Counter
	// Remote compaction (compact.go).
	compactRuns    prometheus.Counter
	compactErrors  prometheus.Counter
	compactRead    prometheus.Counter
	compactWritten prometheus.Counter
	compactRemoved prometheus.Counter
	compactActive  prometheus.Gauge
	compactIntents prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "strata_tier_"
	counter := func(name, help string) prometheus.Counter {
		return metricsreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: ns + name, Help: help}))
	}
	gauge := func(name, help string) prometheus.Gauge {
		return metricsreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + name, Help: help}))
	}
	m := &metrics{
		copyBytes:        counter("copy_bytes_total", "Segment bytes copied to the remote tier."),
		copyRequests:     counter("copy_requests_total", "Segment uploads started."),
		copyErrors:       counter("copy_errors_total", "Segment uploads that failed (rolled back, retried later)."),
		copyLagBytes:     gauge("copy_lag_bytes", "Bytes of closed local segments not yet covered by a COPY_FINISHED entry."),
		copyLagSegs:      gauge("copy_lag_segments", "Closed local segments not yet covered by a COPY_FINISHED entry."),
		copyLagOldest:    gauge("copy_lag_oldest_seconds", "Age since its roll of the oldest closed local segment not yet covered by a COPY_FINISHED entry; 0: none."),
		deleteLagSegs:    gauge("delete_lag_segments", "Remote segments in DELETE_STARTED whose objects are not yet deleted."),
		fetchBytes:       counter("remote_fetch_bytes_total", "Bytes served from the remote tier."),
		fetchRequests:    counter("remote_fetch_requests_total", "Reads served from the remote tier."),
		fetchErrors:      counter("remote_fetch_errors_total", "Reads from the remote tier that failed."),
		fetchRejected:    counter("remote_fetch_rejected_total", "Reads from the remote tier refused at once: remote.log.reader.max.pending.tasks were in progress."),
		remoteLogBytes:   gauge("remote_log_bytes", "Bytes of COPY_FINISHED remote segments."),
		storeAvailable:   gauge("store_available", "0 if the last failed object-store call ended after the last successful one, else 1."),
		storeSinceOK:     gauge("store_last_success_age_seconds", "Seconds from the last successful object-store call (or the manager's start) to the last management tick."),
		retentionPasses:  counter("retention_passes_total", "Partition rounds whose remote retention pass completed."),
		manifestWrites:   counter("manifest_writes_total", "Topic manifests written to the object store."),
		manifestsPending: gauge("manifests_pending", "Topics whose manifest is not yet known to be in the object store."),
		learnLists:       counter("learn_lists_total", "Partition prefixes listed to learn the remote index from the bucket (cluster replicas)."),
		learnGets:        counter("learn_sidecar_gets_total", "Sidecars downloaded to learn remote segments from the bucket (cluster replicas)."),
		learnSuperseded:  counter("superseded_segments_total", "Remote segments a leader deleted because a higher leader epoch's covers the same offsets."),
		compactRuns:      counter("compaction_runs_total", "Remote compactions of a partition finished."),
		compactErrors:    counter("compaction_errors_total", "Remote compactions of a partition that failed (rolled back or finished later)."),
		compactRead:      counter("compaction_read_bytes_total", "Remote segment bytes remote compaction filtered."),
		compactWritten:   counter("compaction_written_bytes_total", "Bytes of the replacement segments remote compaction uploaded."),
		compactRemoved:   counter("compaction_records_removed_total", "Records remote compaction removed."),
		compactActive:    gauge("compactions_in_progress", "Partitions whose remote part is being compacted now."),
		compactIntents:   gauge("compaction_intents", "Remote compaction records (COMPACT_STARTED, COMPACT_SWITCHED) not yet settled."),
		fetchSeconds: metricsreg.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    ns + "remote_fetch_seconds",
			Help:    "Latency of a read served from the remote tier.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		})),
		timeToTier: metricsreg.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    ns + "time_to_tier_seconds",
			Help:    "Time from a segment's roll to its COPY_FINISHED.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 18),
		})),
	}
	m.storeAvailable.Set(1)
	return m
}
