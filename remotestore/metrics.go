package remotestore

import (
	"context"
	"errors"
	"github.com/stratalog/strata/internal/metricsreg"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation label values used by WithMetrics.
const (
	OpPut      = "put"
	OpGetRange = "get_range"
	OpHead     = "head"
	OpDelete   = "delete"
	OpList     = "list"
)

var allOps = []string{OpPut, OpGetRange, OpHead, OpDelete, OpList}

type storeMetrics struct {
	ops      *prometheus.CounterVec
	errs     *prometheus.CounterVec
	notFound *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	written  prometheus.Counter
	read     prometheus.Counter
	listed   prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	const ns = "strata_remote_store_"
	opLabel := []string{"operation"}
	m := &storeMetrics{
		ops: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "operations_total",
			Help: "Remote store operations started, by operation.",
		}, opLabel)),
		errs: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "operation_failures_total",
			Help: "Remote store operations that failed, by operation (not-found and caller cancellation excluded).",
		}, opLabel)),
		notFound: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "not_found_total",
			Help: "Remote store operations that found no object, by operation.",
		}, opLabel)),
		duration: metricsreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    ns + "operation_duration_seconds",
			Help:    "Latency of remote store operations, by operation; get_range until the body is ready to read.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, opLabel)),
		inflight: metricsreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ns + "inflight_operations",
			Help: "Remote store operations in progress, by operation.",
		}, opLabel)),
		written: metricsreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: ns + "written_bytes_total",
			Help: "Bytes of objects written by successful puts.",
		})),
		read: metricsreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: ns + "read_bytes_total",
			Help: "Bytes read from get_range bodies.",
		})),
		listed: metricsreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: ns + "listed_objects_total",
			Help: "Objects reported by list operations.",
		})),
	}
	for _, op := range allOps {
		// Make every series exist from the start, so rates work at once.
		m.ops.WithLabelValues(op)
		m.errs.WithLabelValues(op)
		m.notFound.WithLabelValues(op)
		m.duration.WithLabelValues(op)
		m.inflight.WithLabelValues(op)
	}
	return m
}

// WithMetrics returns a Store that records the operations of s in reg under
// the names listed in the package doc. Wrapping several stores with one
// registry shares the series; to tell stores apart, pass
// prometheus.WrapRegistererWith(prometheus.Labels{"store": name}, reg).
// Wrap it outside WithRetries to measure what callers see.
func WithMetrics(s Store, reg prometheus.Registerer) Store {
	return &instrumented{s: s, m: newStoreMetrics(reg)}
}

type instrumented struct {
	s Store
	m *storeMetrics
}

var _ Store = (*instrumented)(nil)

// Unwrap returns the decorated store.
func (in *instrumented) Unwrap() Store { return in.s }

// begin counts an operation start and returns the function that ends it.
func (in *instrumented) begin(op string) func(error) {
	in.m.ops.WithLabelValues(op).Inc()
	g := in.m.inflight.WithLabelValues(op)
	g.Inc()
	start := time.Now()
	return func(err error) {
		g.Dec()
		in.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
		in.countErr(op, err)
	}
}

func (in *instrumented) countErr(op string, err error) {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case IsNotFound(err):
		in.m.notFound.WithLabelValues(op).Inc()
	default:
		in.m.errs.WithLabelValues(op).Inc()
	}
}

func (in *instrumented) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	end := in.begin(OpPut)
	err := in.s.Put(ctx, key, r, size)
	end(err)
	if err == nil {
		in.m.written.Add(float64(size))
	}
	return err
}

func (in *instrumented) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	end := in.begin(OpGetRange)
	rc, err := in.s.GetRange(ctx, key, off, length)
	end(err)
	if err != nil {
		return nil, err
	}
	return &countingReader{rc: rc, in: in}, nil
}

// countingReader counts body bytes and a failed body read as a get_range
// failure (once).
type countingReader struct {
	rc     io.ReadCloser
	in     *instrumented
	failed sync.Once
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.in.m.read.Add(float64(n))
	if err != nil && err != io.EOF {
		c.failed.Do(func() { c.in.countErr(OpGetRange, err) })
	}
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

func (in *instrumented) Head(ctx context.Context, key string) (ObjectInfo, error) {
	end := in.begin(OpHead)
	info, err := in.s.Head(ctx, key)
	end(err)
	return info, err
}

func (in *instrumented) Delete(ctx context.Context, key string) error {
	end := in.begin(OpDelete)
	err := in.s.Delete(ctx, key)
	end(err)
	return err
}

func (in *instrumented) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	end := in.begin(OpList)
	var callerErr error
	err := in.s.List(ctx, prefix, func(info ObjectInfo) error {
		in.m.listed.Inc()
		callerErr = fn(info)
		return callerErr
	})
	if err != nil && errors.Is(err, callerErr) && callerErr != nil {
		end(nil) // the caller stopped the listing; the store did not fail
	} else {
		end(err)
	}
	return err
}
