package tier

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// TestRemoteFetchBandwidthLimit: with remote.log.manager.fetch.max.bytes.per.second
// at L, reading N bytes back from the store (sidecars and chunks, cold cache)
// takes at least (N - burst)/L: a lower bound from the bytes the store
// delivered and the test's clock, never an upper bound on the machine's speed.
func TestRemoteFetchBandwidthLimit(t *testing.T) {
	const limit = 16 << 10 // bytes per second
	e := tiered(t, func(c *Config) { c.FetchMaxBytesPerSecond = limit })
	ms := e.m.store.(*meteredStore)
	if ms.limiter == nil {
		t.Fatal("FetchMaxBytesPerSecond set, but downloads have no limiter")
	}
	burst := ms.limiter.burst
	before := e.m.TopicCost(testTopic).ReadBytes
	start := time.Now()
	got := e.readAll(0, 180, 1<<20)
	elapsed := time.Since(start)
	if want := e.bytesBetween(0, 180); string(got) != string(want) {
		t.Fatalf("read %d bytes, want the %d appended", len(got), len(want))
	}
	n := e.m.TopicCost(testTopic).ReadBytes - before
	if n < int64(len(got)) {
		t.Fatalf("the store delivered %d bytes for %d served", n, len(got))
	}
	floor := time.Duration((float64(n) - burst) / limit * float64(time.Second))
	if elapsed < floor {
		t.Fatalf("%d bytes downloaded in %v at a limit of %d B/s (burst %.0f): want at least %v", n, elapsed, limit, burst, floor)
	}
	t.Logf("%d bytes in %v (floor %v)", n, elapsed, floor)
}

// TestRemoteReaderMaxPendingTasks: with remote.log.reader.max.pending.tasks
// reads waiting on the store, one more is refused at once with ErrUnavailable
// (the broker's KAFKA_STORAGE_ERROR, retriable) instead of queueing; once the
// store answers, the waiting reads succeed and new reads are taken again.
func TestRemoteReaderMaxPendingTasks(t *testing.T) {
	const maxPending = 3
	e := tiered(t, func(c *Config) {
		c.ReaderMaxPendingTasks = maxPending
		c.FetchMaxWait = wait.Timeout
	})
	blocked := &blockingStore{Store: e.fault, release: make(chan struct{})}
	t.Cleanup(blocked.unblock)
	e.store = blocked
	e.open()

	done := make(chan error, maxPending)
	for i := range maxPending {
		go func() {
			sl, err := e.m.Read(context.Background(), testTopic, 0, int64(i*60), 1<<20, true)
			if err == nil {
				sl.Done()
			}
			done <- err
		}()
	}
	if !wait.Until(wait.Timeout, func() bool { return e.m.pending.Load() == maxPending && blocked.calls.Load() > 0 }) {
		t.Fatalf("%d reads pending, %d GETs: want %d reads waiting on the store", e.m.pending.Load(), blocked.calls.Load(), maxPending)
	}
	for range 2 {
		_, err := e.m.Read(context.Background(), testTopic, 0, 0, 1<<20, true)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "remote.log.reader.max.pending.tasks") {
			t.Fatalf("read beyond %d pending: %v; want ErrUnavailable naming remote.log.reader.max.pending.tasks", maxPending, err)
		}
	}
	if blocked.returned.Load() != 0 {
		t.Fatal("the store answered before the refusals: they prove nothing")
	}
	if got := gauge(t, e.reg, "strata_tier_remote_fetch_rejected_total"); got != 2 {
		t.Errorf("strata_tier_remote_fetch_rejected_total = %v, want 2", got)
	}
	blocked.unblock()
	for range maxPending {
		if err := <-done; err != nil {
			t.Fatalf("a waiting read failed: %v", err)
		}
	}
	if p := e.m.pending.Load(); p != 0 {
		t.Fatalf("%d reads pending after all returned", p)
	}
	got := e.readAll(0, 180, 1<<20)
	if want := e.bytesBetween(0, 180); string(got) != string(want) {
		t.Fatal("reads after the refusals do not return the appended bytes")
	}
}
