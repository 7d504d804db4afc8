package broker

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metrics are the broker's own Prometheus metrics. Names:
//
//	strata_broker_connections                   open client connections (gauge)
//	strata_broker_connections_refused_total{limit}  connections closed at accept: limit is
//	                                            max.connections or max.connections.per.ip
//	strata_broker_connections_idle_closed_total connections closed after connections.max.idle.ms
//	strata_broker_request_memory_bytes          bytes of requests read and not yet handled
//	                                            (bounded by queued.max.request.bytes; gauge)
//	strata_broker_request_memory_waits_total    frames that waited for request memory
//	strata_broker_bad_frames_total              frames that closed their connection
//	strata_broker_request_seconds{api}          request handling latency (histogram)
//	strata_broker_produce_bytes_total           record bytes appended
//	strata_broker_produce_errors_total          partitions whose produce was refused
//	strata_broker_fetch_requests_total          fetch responses written
//	strata_broker_fetch_bytes_total             record bytes sent to consumers
//	strata_broker_fetch_sendfile_bytes_total    of which through sendfile(2)
//	strata_broker_fetch_copied_bytes_total      of which read into memory and written
//	strata_broker_remote_fetch_bytes_total      record bytes served from the remote tier
//	strata_broker_topic_deletions_pending       deleted topics whose cleanup has not finished
//	strata_broker_quota_throttled_total{quota}  responses throttled by a client quota; quota is
//	                                            produce, fetch or request (the one that set the time)
//	strata_broker_quota_throttle_seconds_total{quota}  throttle time imposed by client quotas
//	strata_log_cleaner_runs_total               partition cleanings finished (compaction)
//	strata_log_cleaner_errors_total             partition cleanings that failed
//	strata_log_cleaner_read_bytes_total         bytes the log cleaner read
//	strata_log_cleaner_written_bytes_total      bytes the log cleaner wrote
//	strata_log_cleaner_records_removed_total    records the log cleaner removed
//	strata_log_cleaner_dirty_ratio{topic,partition}  dirty/cleanable bytes of a compacted partition (gauge)
//	strata_log_cleaner_seconds_since_last_clean{topic,partition}  since its last cleaning (gauge)
type Metrics struct {
	connections        prometheus.Gauge
	connsRefused       *prometheus.CounterVec
	idleClosed         prometheus.Counter
	requestMemory      prometheus.Gauge
	requestMemoryWaits prometheus.Counter
	badFrames          prometheus.Counter
	requestSeconds     *prometheus.HistogramVec
	produceBytes       prometheus.Counter
	produceErrors      prometheus.Counter
	fetchRequests      prometheus.Counter
	fetchBytes         prometheus.Counter
	sendfileBytes      countingCounter
	copiedBytes        countingCounter
	remoteFetchBytes   countingCounter
	deletionsPending   prometheus.Gauge
	cleanerMetrics
	quotaMetrics
}

// countingCounter is a Prometheus counter whose value tests and the
// benchmark can also read directly.
type countingCounter struct {
	prometheus.Counter
	n *atomic.Int64
}

func (c countingCounter) Add(v float64) {
	c.Counter.Add(v)
	c.n.Add(int64(v))
}

// NewMetrics registers the broker metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_broker_connections", Help: "Open client connections."}),
		badFrames:   f("strata_broker_bad_frames_total", "Request frames that closed their connection."),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_connections_refused_total",
			Help: "Connections closed at accept because a connection limit was reached."}, []string{"limit"}),
		idleClosed:         f("strata_broker_connections_idle_closed_total", "Connections closed after connections.max.idle.ms without a request."),
		requestMemory:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_broker_request_memory_bytes", Help: "Bytes of requests read and not yet handled."}),
		requestMemoryWaits: f("strata_broker_request_memory_waits_total", "Request frames that waited for queued.max.request.bytes."),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_broker_request_seconds", Help: "Request handling latency by API.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"api"}),
		produceBytes:     f("strata_broker_produce_bytes_total", "Record bytes appended."),
		produceErrors:    f("strata_broker_produce_errors_total", "Partitions whose produce was refused."),
		fetchRequests:    f("strata_broker_fetch_requests_total", "Fetch responses written."),
		fetchBytes:       f("strata_broker_fetch_bytes_total", "Record bytes sent to consumers."),
		sendfileBytes:    countingCounter{f("strata_broker_fetch_sendfile_bytes_total", "Record bytes sent with sendfile."), new(atomic.Int64)},
		copiedBytes:      countingCounter{f("strata_broker_fetch_copied_bytes_total", "Record bytes read into memory and written."), new(atomic.Int64)},
		remoteFetchBytes: countingCounter{f("strata_broker_remote_fetch_bytes_total", "Record bytes served from the remote tier."), new(atomic.Int64)},
		deletionsPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_broker_topic_deletions_pending",
			Help: "Deleted topics whose directories, remote objects or cached chunks are not yet removed."}),
		cleanerMetrics: newCleanerMetrics(f),
		quotaMetrics:   newQuotaMetrics(),
	}
	if reg != nil {
		reg.MustRegister(m.connections, m.connsRefused, m.idleClosed, m.requestMemory, m.requestMemoryWaits, m.badFrames, m.requestSeconds, m.produceBytes, m.produceErrors,
			m.fetchRequests, m.fetchBytes, m.sendfileBytes.Counter, m.copiedBytes.Counter, m.remoteFetchBytes.Counter,
			m.deletionsPending)
		reg.MustRegister(m.cleanerMetrics.collectors()...)
		reg.MustRegister(m.quotaMetrics.quotaThrottled, m.quotaMetrics.quotaThrottleSeconds)
	}
	return m
}

var apiNames = func() map[int16]string {
	m := map[int16]string{}
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		m[k] = kmsg.NameForKey(k)
	}
	return m
}()

func (m *Metrics) observeRequest(key int16, d time.Duration) {
	name, ok := apiNames[key]
	if !ok {
		name = strconv.Itoa(int(key))
	}
	m.requestSeconds.WithLabelValues(name).Observe(d.Seconds())
}

// SendfileBytes is how many record bytes went out through sendfile(2).
func (m *Metrics) SendfileBytes() int64 { return m.sendfileBytes.n.Load() }

// CopiedBytes is how many record bytes went out through the read-and-write path.
func (m *Metrics) CopiedBytes() int64 { return m.copiedBytes.n.Load() }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// RemoteFetchBytes is how many record bytes were served from the remote tier.
func (m *Metrics) RemoteFetchBytes() int64 { return m.remoteFetchBytes.n.Load() }
