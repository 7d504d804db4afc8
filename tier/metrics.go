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
	deleteLagSegs  prometheus.Gauge
	fetchBytes     prometheus.Counter
	fetchRequests  prometheus.Counter
	fetchErrors    prometheus.Counter
	fetchSeconds   prometheus.Histogram
	remoteLogBytes prometheus.Gauge
	timeToTier     prometheus.Histogram
	storeAvailable prometheus.Gauge
	// retentionPasses counts rounds whose remote retention ran to the end.
	retentionPasses  prometheus.Counter
	manifestWrites   prometheus.Counter
	manifestsPending prometheus.Gauge
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
		copyLagBytes:     gauge("copy_lag_bytes", "Bytes of closed local segments waiting for upload."),
		copyLagSegs:      gauge("copy_lag_segments", "Closed local segments waiting for upload."),
		deleteLagSegs:    gauge("delete_lag_segments", "Remote segments in DELETE_STARTED whose objects are not yet deleted."),
		fetchBytes:       counter("remote_fetch_bytes_total", "Bytes served from the remote tier."),
		fetchRequests:    counter("remote_fetch_requests_total", "Reads served from the remote tier."),
		fetchErrors:      counter("remote_fetch_errors_total", "Reads from the remote tier that failed."),
		remoteLogBytes:   gauge("remote_log_bytes", "Bytes of COPY_FINISHED remote segments."),
		storeAvailable:   gauge("store_available", "1 if the last object-store operation of the tier succeeded, else 0."),
		retentionPasses:  counter("retention_passes_total", "Partition rounds whose remote retention pass completed."),
		manifestWrites:   counter("manifest_writes_total", "Topic manifests written to the object store."),
		manifestsPending: gauge("manifests_pending", "Topics whose manifest is not yet known to be in the object store."),
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
