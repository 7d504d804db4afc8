package s3

import (
	"github.com/stratalog/strata/internal/metricsreg"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RequestMetrics is an Observer that counts the HTTP requests the SDK sends,
// by S3 operation, for the cost model:
//
//	strata_s3_requests_total{operation}
//	strata_s3_request_failures_total{operation}
//	strata_s3_request_duration_seconds{operation}
type RequestMetrics struct {
	requests *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var _ Observer = (*RequestMetrics)(nil)

// NewRequestMetrics registers the request metrics with reg (sharing them if
// another RequestMetrics already registered them there).
func NewRequestMetrics(reg prometheus.Registerer) *RequestMetrics {
	op := []string{"operation"}
	return &RequestMetrics{
		requests: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_s3_requests_total",
			Help: "HTTP requests sent to S3, by S3 operation (retries and multipart parts included).",
		}, op)),
		failures: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_s3_request_failures_total",
			Help: "S3 HTTP requests that got no response or an HTTP status of 400 or more, by S3 operation.",
		}, op)),
		duration: metricsreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_s3_request_duration_seconds",
			Help:    "Latency of one S3 HTTP request until its response headers, by S3 operation.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, op)),
	}
}

// ObserveRequest implements Observer.
func (m *RequestMetrics) ObserveRequest(operation string, status int, took time.Duration, err error) {
	m.requests.WithLabelValues(operation).Inc()
	if err != nil || status >= 400 {
		m.failures.WithLabelValues(operation).Inc()
	}
	m.duration.WithLabelValues(operation).Observe(took.Seconds())
}
