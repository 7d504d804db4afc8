package tier

// Live cost per topic: the object-store requests the manager makes, counted
// by the topic their key names, the bytes read back, the bytes stored (the
// index's COPY_FINISHED segments), and what that costs per day at
// Config.Prices (the remote.storage.price.* keys).

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/internal/metricsreg"
	"github.com/stratalog/strata/internal/pricing"
	"github.com/stratalog/strata/remotestore"
)

// Request kinds of strata_tier_topic_requests_total and TopicCost.Requests.
// PUT and GET are billed at their rates (HEAD at GET's), DELETE is free.
// LIST is not per topic (the reconciler lists the whole bucket) and is not
// counted here: strata_s3_requests_total has it.
const (
	KindPut    = "put"
	KindGet    = "get"
	KindHead   = "head"
	KindDelete = "delete"
)

var requestKinds = []string{KindPut, KindGet, KindHead, KindDelete}

// TopicCost is a topic's object-store use since the broker started, and its
// cost at the configured prices.
type TopicCost struct {
	// Requests by kind (put, get, head, delete): one per store call the
	// tier made; a store's own retries, and the parts of a multipart upload,
	// are not seen here.
	Requests map[string]int64
	// RemoteBytes are the bytes of the topic's COPY_FINISHED segments.
	RemoteBytes int64
	// ReadBytes are the bytes downloaded from the store for the topic.
	ReadBytes int64
	// DollarsPerDay is RemoteBytes' storage per day plus the requests' cost
	// averaged per day since the broker started (over at least an hour, so
	// the first requests after a start do not read as a daily rate).
	DollarsPerDay float64
}

// topicCounts are one topic's counters.
type topicCounts struct {
	mu        sync.Mutex
	requests  map[string]int64
	readBytes int64
}

// costs counts requests and read bytes per topic.
type costs struct {
	prices   pricing.S3
	start    time.Time
	now      func() time.Time
	requests *prometheus.CounterVec
	read     *prometheus.CounterVec
	mu       sync.Mutex
	topics   map[string]*topicCounts
}

func newCosts(prices pricing.S3, now func() time.Time, reg prometheus.Registerer) *costs {
	return &costs{
		prices: prices, start: now(), now: now, topics: map[string]*topicCounts{},
		requests: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tier_topic_requests_total",
			Help: "Object-store requests the tier made for a topic, by kind (put, get, head, delete); LIST is not per topic.",
		}, []string{"topic", "kind"})),
		read: metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_tier_topic_read_bytes_total",
			Help: "Bytes downloaded from the object store for a topic (chunks, sidecars, manifests).",
		}, []string{"topic"})),
	}
}

func (c *costs) topic(t string) *topicCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := c.topics[t]
	if tc == nil {
		tc = &topicCounts{requests: map[string]int64{}}
		c.topics[t] = tc
	}
	return tc
}

func (c *costs) request(topic, kind string) {
	if topic == "" {
		return
	}
	tc := c.topic(topic)
	tc.mu.Lock()
	tc.requests[kind]++
	tc.mu.Unlock()
	c.requests.WithLabelValues(topic, kind).Inc()
}

func (c *costs) readBytes(topic string, n int) {
	if topic == "" || n <= 0 {
		return
	}
	tc := c.topic(topic)
	tc.mu.Lock()
	tc.readBytes += int64(n)
	tc.mu.Unlock()
	c.read.WithLabelValues(topic).Add(float64(n))
}

// TopicCost returns the topic's cost as of now.
func (m *Manager) TopicCost(topic string) TopicCost {
	out := TopicCost{Requests: map[string]int64{}}
	for _, k := range requestKinds {
		out.Requests[k] = 0
	}
	m.costs.mu.Lock()
	tc := m.costs.topics[topic]
	m.costs.mu.Unlock()
	if tc != nil {
		tc.mu.Lock()
		for k, n := range tc.requests {
			out.Requests[k] = n
		}
		out.ReadBytes = tc.readBytes
		tc.mu.Unlock()
	}
	for _, ps := range m.allParts() {
		if ps.key.topic == topic {
			out.RemoteBytes += m.viewOf(ps).bytes
		}
	}
	days := max(m.costs.now().Sub(m.costs.start), time.Hour).Hours() / 24
	p := m.costs.prices
	out.DollarsPerDay = p.StoragePerDay(out.RemoteBytes) +
		p.Requests(out.Requests[KindPut], out.Requests[KindGet]+out.Requests[KindHead])/days
	return out
}

// costTopics are the topics with remote segments or counted requests.
func (m *Manager) costTopics() []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, ps := range m.allParts() {
		add(ps.key.topic)
	}
	m.costs.mu.Lock()
	for t := range m.costs.topics {
		add(t)
	}
	m.costs.mu.Unlock()
	return out
}

// costCollector exports the gauges computed at scrape time:
// strata_tier_topic_remote_bytes and strata_tier_topic_dollars_per_day.
type costCollector struct {
	m                   *Manager
	remoteBytes, perDay *prometheus.Desc
}

func newCostCollector(m *Manager) *costCollector {
	return &costCollector{
		m:           m,
		remoteBytes: prometheus.NewDesc("strata_tier_topic_remote_bytes", "Bytes of a topic's COPY_FINISHED remote segments.", []string{"topic"}, nil),
		perDay: prometheus.NewDesc("strata_tier_topic_dollars_per_day",
			"A topic's object-store cost per day at the remote.storage.price.* keys: its stored bytes, plus its requests averaged per day since the broker started (over at least an hour).",
			[]string{"topic"}, nil),
	}
}

func (c *costCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.remoteBytes
	ch <- c.perDay
}

func (c *costCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.m.costTopics() {
		tc := c.m.TopicCost(t)
		ch <- prometheus.MustNewConstMetric(c.remoteBytes, prometheus.GaugeValue, float64(tc.RemoteBytes), t)
		ch <- prometheus.MustNewConstMetric(c.perDay, prometheus.GaugeValue, tc.DollarsPerDay, t)
	}
}

// keyTopic is the topic a tier key names: a segment's .log or .idx, or a
// manifest; "" for any other key.
func keyTopic(key string) string {
	if n, ok := parseKey(key); ok {
		return n.Topic
	}
	if n, ok := parseManifestKey(key); ok {
		return n.Topic
	}
	return ""
}

// meteredStore is the store the manager calls: it counts each call by the
// topic its key names, and paces downloads through the fetch limiter
// (remote.log.manager.fetch.max.bytes.per.second). Chunk downloads, read-ahead
// and sidecars all go through its GetRange.
type meteredStore struct {
	remotestore.Store
	costs   *costs
	limiter *tokenBucket
}

func (s *meteredStore) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	s.costs.request(keyTopic(key), KindPut)
	return s.Store.Put(ctx, key, r, size)
}

func (s *meteredStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	topic := keyTopic(key)
	s.costs.request(topic, KindGet)
	rc, err := s.Store.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	return &meteredReader{ctx: ctx, rc: rc, b: s.limiter, costs: s.costs, topic: topic}, nil
}

func (s *meteredStore) Head(ctx context.Context, key string) (remotestore.ObjectInfo, error) {
	s.costs.request(keyTopic(key), KindHead)
	return s.Store.Head(ctx, key)
}

func (s *meteredStore) Delete(ctx context.Context, key string) error {
	s.costs.request(keyTopic(key), KindDelete)
	return s.Store.Delete(ctx, key)
}

// meteredReader counts a download's bytes and paces them through the limiter:
// each read takes at most the bucket's step and then waits until the bucket
// covers what it read.
type meteredReader struct {
	ctx   context.Context
	rc    io.ReadCloser
	b     *tokenBucket
	costs *costs
	topic string
}

func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(r.b.chunk(p))
	r.costs.readBytes(r.topic, n)
	if n > 0 {
		if werr := r.b.wait(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (r *meteredReader) Close() error { return r.rc.Close() }
