package tier

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/internal/pricing"
	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/s3"
)

// topicProxy stands between the tier and MinIO and counts object requests
// and GET body bytes by the topic the key names: the object store's own
// count, independent of the tier's.
type topicProxy struct {
	bucket, prefix string
	mu             sync.Mutex
	reqs           map[string]map[string]int64 // topic -> kind -> n
	getBytes       map[string]int64
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func startTopicProxy(t *testing.T, target, bucket, prefix string) (*topicProxy, string) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &topicProxy{bucket: bucket, prefix: prefix, reqs: map[string]map[string]int64{}, getBytes: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/"+bucket+"/"+prefix+"/")
		topic := ""
		if key != r.URL.Path && !r.URL.Query().Has("list-type") {
			topic = keyTopic(key)
		}
		kind := map[string]string{http.MethodPut: KindPut, http.MethodGet: KindGet, http.MethodHead: KindHead, http.MethodDelete: KindDelete}[r.Method]
		cw := &countWriter{ResponseWriter: w}
		rp.ServeHTTP(cw, r)
		if topic == "" || kind == "" {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.reqs[topic] == nil {
			p.reqs[topic] = map[string]int64{}
		}
		p.reqs[topic][kind]++
		if kind == KindGet && cw.n > 0 {
			p.getBytes[topic] += cw.n
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p, "http://" + l.Addr().String()
}

// TestTopicCostAgainstProxy: two topics upload and read back through a real
// MinIO behind a counting proxy; the tier's per-topic request counts (in
// TopicCost and strata_tier_topic_requests_total) and read bytes equal what
// the proxy saw for each topic's keys, its remote bytes equal the .log
// objects in the bucket, and its dollars per day follow the configured prices.
func TestTopicCostAgainstProxy(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	const prefix = "cost"
	proxy, endpoint := startTopicProxy(t, srv.Endpoint, bucket, prefix)
	s3store, err := s3.New(t.Context(), s3.Config{
		Bucket: bucket, Endpoint: endpoint, PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxAttempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := remotestore.WithPrefix(s3store, prefix)
	if err != nil {
		t.Fatal(err)
	}
	prices := pricing.S3{GBMonth: 30, PutPer1000: 7, GetPer1000: 3}
	e := newEnv(t, func(c *Config) { c.FetchMaxWait = wait.Timeout; c.Prices = &prices })
	e.store = store
	e.open()

	// A second topic, with its own log.
	const other = "clicks"
	if err := e.meta.CreateTopic(metadata.Topic{Name: other, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	l2, err := localstore.Open(filepath.Join(e.dir, "logs", other+"-0"), localstore.Config{SegmentBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l2.Close() })
	mt, err := e.meta.Topic(other)
	if err != nil {
		t.Fatal(err)
	}
	pl2 := PartitionLog{Topic: other, TopicID: mt.ID, Partition: 0, Log: l2, Remote: true}
	for i := range 2 {
		if _, err := l2.Append(makeBatch(t, 5, int64(1000+i), "c")); err != nil {
			t.Fatal(err)
		}
		if err := l2.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		e.segment(4, 10)
	}
	e.m.TopicChanged(other)
	e.m.Manage(context.Background(), []PartitionLog{e.pl, pl2})
	e.m.waitIdle()
	if !wait.Until(wait.Timeout, func() bool { return e.m.ManifestsPending() == 0 }) {
		t.Fatal("manifests not written")
	}
	// Reads of both topics, from the store (nothing is cached at upload).
	if got := e.readAll(0, 120, 1<<20); len(got) == 0 {
		t.Fatal("nothing read")
	}
	sls, err := e.m.ReadMany(context.Background(), other, 0, 0, 1<<20, true)
	if err != nil || len(sls) == 0 {
		t.Fatalf("read %s: %v", other, err)
	}
	for _, sl := range sls {
		sl.Done()
	}
	if !wait.Until(wait.Timeout, func() bool { return e.m.ManifestsPending() == 0 }) {
		t.Fatal("manifests not written")
	}

	// The bucket's .log bytes per topic.
	logBytes := map[string]int64{}
	if err := store.List(context.Background(), "", func(o remotestore.ObjectInfo) error {
		if n, ok := parseKey(o.Key); ok && n.Suffix == logSuffix {
			logBytes[n.Topic] += o.Size
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	for _, topic := range []string{testTopic, other} {
		c := e.m.TopicCost(topic)
		for _, kind := range requestKinds {
			want := proxy.reqs[topic][kind]
			if c.Requests[kind] != want {
				t.Errorf("%s %s: tier counted %d, the store saw %d", topic, kind, c.Requests[kind], want)
			}
			if got := counterValue(t, e, "strata_tier_topic_requests_total", map[string]string{"topic": topic, "kind": kind}); int64(got) != want {
				t.Errorf("strata_tier_topic_requests_total{%s,%s} = %v, the store saw %d", topic, kind, got, want)
			}
		}
		if c.Requests[KindPut] < 2 || c.Requests[KindGet] < 2 {
			t.Errorf("%s: %v: want uploads and reads", topic, c.Requests)
		}
		if c.ReadBytes != proxy.getBytes[topic] || c.ReadBytes == 0 {
			t.Errorf("%s: tier read %d bytes, the store sent %d", topic, c.ReadBytes, proxy.getBytes[topic])
		}
		if got := counterValue(t, e, "strata_tier_topic_read_bytes_total", map[string]string{"topic": topic}); int64(got) != c.ReadBytes {
			t.Errorf("strata_tier_topic_read_bytes_total{%s} = %v, want %d", topic, got, c.ReadBytes)
		}
		if c.RemoteBytes != logBytes[topic] || c.RemoteBytes == 0 {
			t.Errorf("%s: remote bytes %d, the bucket holds %d of .log", topic, c.RemoteBytes, logBytes[topic])
		}
		if got := counterValue(t, e, "strata_tier_topic_remote_bytes", map[string]string{"topic": topic}); int64(got) != c.RemoteBytes {
			t.Errorf("strata_tier_topic_remote_bytes{%s} = %v, want %d", topic, got, c.RemoteBytes)
		}
		// The fake clock stands still: requests are averaged over the one-hour floor.
		want := float64(c.RemoteBytes)/(1<<30)*30/30 +
			(float64(c.Requests[KindPut])*7/1000+float64(c.Requests[KindGet]+c.Requests[KindHead])*3/1000)*24
		if math.Abs(c.DollarsPerDay-want) > 1e-9 {
			t.Errorf("%s: $%g per day, want $%g", topic, c.DollarsPerDay, want)
		}
		if got := counterValue(t, e, "strata_tier_topic_dollars_per_day", map[string]string{"topic": topic}); math.Abs(got-want) > 1e-9 {
			t.Errorf("strata_tier_topic_dollars_per_day{%s} = %v, want %v", topic, got, want)
		}
		st := e.m.Status(topic)
		if len(st) == 0 || st[0].TopicCost == nil || st[0].TopicCost.Requests[KindPut] != c.Requests[KindPut] {
			t.Errorf("Status(%s) does not carry the topic's cost: %+v", topic, st)
		}
	}
}

// counterValue is the value of the series of name with the given labels in
// the manager's registry (0 if absent).
func counterValue(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return metricValue(m)
		}
	}
	return 0
}
