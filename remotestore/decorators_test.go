package remotestore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
	"github.com/stratalog/strata/remotestore/mem"
	"github.com/stratalog/strata/remotestore/storetest"
)

var fastRetries = remotestore.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func TestPrefixedAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store {
		s, err := remotestore.WithPrefix(mem.New(), "/cluster-a/tier/")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestRetriesAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store { return remotestore.WithRetries(mem.New(), fastRetries) })
}

func TestMetricsAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store {
		return remotestore.WithMetrics(mem.New(), prometheus.NewRegistry())
	})
}

func TestPrefixedKeys(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	storetest.MustPut(t, ctx, inner, "other/x", []byte("not ours"))
	storetest.MustPut(t, ctx, inner, "pre/fixx", []byte("not ours either"))
	s, err := remotestore.WithPrefix(inner, "pre/fix")
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustPut(t, ctx, s, "a/b", []byte("ours"))
	if keys, _ := storetest.Keys(ctx, inner, "pre/fix/"); !slices.Equal(keys, []string{"pre/fix/a/b"}) {
		t.Fatalf("inner keys %q", keys)
	}
	if keys, _ := storetest.Keys(ctx, s, ""); !slices.Equal(keys, []string{"a/b"}) {
		t.Fatalf("prefixed List = %q", keys)
	}
	if info, err := s.Head(ctx, "a/b"); err != nil || info.Key != "a/b" {
		t.Fatalf("Head = %+v, %v", info, err)
	}
	for _, bad := range []string{"a/../b", "..", "a//b"} {
		if _, err := remotestore.WithPrefix(inner, bad); !errors.Is(err, remotestore.ErrInvalidKey) {
			t.Errorf("WithPrefix(%q): %v, want ErrInvalidKey", bad, err)
		}
	}
	if s2, err := remotestore.WithPrefix(inner, "/"); err != nil || s2 != remotestore.Store(inner) {
		t.Errorf("WithPrefix(/) = %v, %v; want the store itself", s2, err)
	}
}

// consumingFailer reads part of the Put body, then fails, failures times.
type consumingFailer struct {
	remotestore.Store
	failures atomic.Int32
}

func (c *consumingFailer) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	if c.failures.Add(-1) >= 0 {
		_, _ = io.CopyN(io.Discard, r, 3)
		return errors.New("connection reset")
	}
	return c.Store.Put(ctx, key, r, size)
}

func TestRetryPutRewinds(t *testing.T) {
	ctx := t.Context()
	inner := &consumingFailer{Store: mem.New()}
	inner.failures.Store(2)
	var retries []int
	p := fastRetries
	p.OnRetry = func(op string, attempt int, err error) { retries = append(retries, attempt) }
	s := remotestore.WithRetries(inner, p)
	data := storetest.Data(1, 1000)
	if err := s.Put(ctx, "k", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got := storetest.MustGet(t, ctx, s, "k", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes differ from the %d put: reader not rewound", len(got), len(data))
	}
	if !slices.Equal(retries, []int{1, 2}) {
		t.Fatalf("retries %v", retries)
	}
}

func TestRetryClassification(t *testing.T) {
	ctx := t.Context()
	fs := faultstore.New(mem.New())
	s := remotestore.WithRetries(fs, fastRetries)

	// Not found: one call.
	if _, err := s.Head(ctx, "missing"); !remotestore.IsNotFound(err) {
		t.Fatal(err)
	}
	if n := fs.Calls(remotestore.OpHead); n != 1 {
		t.Fatalf("Head of a missing key called %d times, want 1", n)
	}
	// Invalid range: one call.
	storetest.MustPut(t, ctx, s, "k", []byte("abc"))
	if _, err := s.GetRange(ctx, "k", 10, 1); !errors.Is(err, remotestore.ErrInvalidRange) {
		t.Fatal(err)
	}
	if n := fs.Calls(remotestore.OpGetRange); n != 1 {
		t.Fatalf("GetRange with a bad range called %d times, want 1", n)
	}
	// A transient error: retried until it clears.
	fs.Inject(faultstore.Fault{Op: remotestore.OpDelete, Times: 2})
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n := fs.Calls(remotestore.OpDelete); n != 3 {
		t.Fatalf("Delete called %d times, want 3", n)
	}
	// A lasting error: MaxAttempts calls, then the error.
	fs.Inject(faultstore.Fault{Op: remotestore.OpHead})
	if _, err := s.Head(ctx, "k"); !errors.Is(err, faultstore.ErrInjected) {
		t.Fatalf("Head: %v, want the injected error", err)
	}
	if n := fs.Calls(remotestore.OpHead); n != 1+4 {
		t.Fatalf("Head called %d times, want 1+4", n)
	}
	// A permanent error: one call.
	fs.Clear()
	fs.Inject(faultstore.Fault{Op: remotestore.OpPut, Err: remotestore.Permanent(errors.New("access denied"))})
	if err := s.Put(ctx, "p", bytes.NewReader(nil), 0); err == nil || !remotestore.IsPermanent(err) {
		t.Fatalf("Put: %v, want a permanent error", err)
	}
	if n := fs.Calls(remotestore.OpPut); n != 2 { // the MustPut above, then one
		t.Fatalf("Put called %d times, want 2", n)
	}
}

func TestRetryStopsWhenContextDone(t *testing.T) {
	fs := faultstore.New(mem.New())
	fs.Inject(faultstore.Fault{Op: remotestore.OpHead})
	s := remotestore.WithRetries(fs, remotestore.RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	// The backoff is an hour: a Head that returns at all stopped waiting
	// when its context ended.
	done := make(chan error, 1)
	go func() {
		_, err := s.Head(ctx, "k")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, faultstore.ErrInjected) {
			t.Fatalf("Head: %v, want the deadline and the last error", err)
		}
	case <-time.After(wait.Timeout):
		t.Fatal("Head kept waiting out its backoff after the context ended")
	}
	if n := fs.Calls(remotestore.OpHead); n != 1 {
		t.Fatalf("Head called %d times, want 1: the backoff outlasts the context", n)
	}
	// A canceled context is not retried at all.
	ctx2, cancel2 := context.WithCancel(t.Context())
	cancel2()
	fs.Clear()
	before := fs.Calls(remotestore.OpPut)
	if err := s.Put(ctx2, "k", bytes.NewReader([]byte("x")), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v", err)
	}
	if n := fs.Calls(remotestore.OpPut) - before; n != 1 {
		t.Fatalf("canceled Put called %d times, want 1", n)
	}
}

func TestRetryResumesRead(t *testing.T) {
	ctx := t.Context()
	fs := faultstore.New(mem.New())
	data := storetest.Data(7, 10_000)
	storetest.MustPut(t, ctx, fs, "obj", data)
	s := remotestore.WithRetries(fs, fastRetries)
	for _, r := range [][2]int64{{0, -1}, {100, 5000}, {9000, -1}} {
		fs.Clear()
		fs.Inject(faultstore.Fault{Op: remotestore.OpGetRange, Mode: faultstore.MidBody, BodyBytes: 300, Times: 2})
		before := fs.Calls(remotestore.OpGetRange)
		got := storetest.MustGet(t, ctx, s, "obj", r[0], r[1])
		want := data[r[0]:]
		if r[1] >= 0 {
			want = want[:r[1]]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("GetRange(%d, %d) across failed reads: %d bytes, want %d, or content differs", r[0], r[1], len(got), len(want))
		}
		if n := fs.Calls(remotestore.OpGetRange) - before; n != 3 {
			t.Fatalf("GetRange issued %d times, want 3 (two re-opens)", n)
		}
	}
	// Failures beyond MaxAttempts reach the reader.
	fs.Clear()
	fs.Inject(faultstore.Fault{Op: remotestore.OpGetRange, Mode: faultstore.MidBody, BodyBytes: 10})
	if _, err := storetest.Get(ctx, s, "obj", 0, -1); !errors.Is(err, faultstore.ErrInjected) {
		t.Fatalf("read: %v, want the injected error", err)
	}
}

func TestRetryListResumes(t *testing.T) {
	ctx := t.Context()
	fs := faultstore.New(mem.New())
	var want []string
	for i := range 10 {
		k := string(rune('a'+i)) + "/obj"
		want = append(want, k)
		storetest.MustPut(t, ctx, fs, k, []byte{byte(i)})
	}
	s := remotestore.WithRetries(fs, fastRetries)
	fs.Inject(faultstore.Fault{Op: remotestore.OpList, Mode: faultstore.After, BodyBytes: 3, Times: 2})
	got, err := storetest.Keys(ctx, s, "")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List across failures = %q, %v; want each key once, in order", got, err)
	}
	// An error from the callback is returned as is, and not retried.
	fs.Clear()
	stop := errors.New("stop")
	before := fs.Calls(remotestore.OpList)
	err = s.List(ctx, "", func(remotestore.ObjectInfo) error { return stop })
	if err != stop {
		t.Fatalf("List: %v, want the callback's error itself", err)
	}
	if n := fs.Calls(remotestore.OpList) - before; n != 1 {
		t.Fatalf("List called %d times, want 1", n)
	}
}

// metricValue returns the value of the named counter or gauge (or the count
// of a histogram) with the given operation label ("" for none).
func metricValue(t *testing.T, reg *prometheus.Registry, name, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if op != "" && !hasLabel(m, "operation", op) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s{operation=%q}", name, op)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestMetrics(t *testing.T) {
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	fs := faultstore.New(mem.New())
	s := remotestore.WithMetrics(fs, reg)
	// A second store on the same registry shares the series, no panic.
	_ = remotestore.WithMetrics(mem.New(), reg)

	storetest.MustPut(t, ctx, s, "a", make([]byte, 1000))
	storetest.MustGet(t, ctx, s, "a", 100, 300)
	_, _ = s.Head(ctx, "missing")
	fs.Inject(faultstore.Fault{Op: remotestore.OpDelete, Times: 1})
	_ = s.Delete(ctx, "a")
	_, _ = storetest.Keys(ctx, s, "")

	const ns = "strata_remote_store_"
	for _, c := range []struct {
		name, op string
		want     float64
	}{
		{ns + "operations_total", "put", 1},
		{ns + "operations_total", "get_range", 1},
		{ns + "operations_total", "head", 1},
		{ns + "operations_total", "delete", 1},
		{ns + "operations_total", "list", 1},
		{ns + "operation_failures_total", "delete", 1},
		{ns + "operation_failures_total", "head", 0},
		{ns + "not_found_total", "head", 1},
		{ns + "operation_duration_seconds", "put", 1},
		{ns + "inflight_operations", "put", 0},
		{ns + "written_bytes_total", "", 1000},
		{ns + "read_bytes_total", "", 300},
		{ns + "listed_objects_total", "", 1},
	} {
		if got := metricValue(t, reg, c.name, c.op); got != c.want {
			t.Errorf("%s{operation=%q} = %v, want %v", c.name, c.op, got, c.want)
		}
	}
}
