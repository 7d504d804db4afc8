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
	if got := e.m.FetchMaxBytesPerSecond(); got != limit {
		t.Fatalf("fetch limit in force %d, want %d", got, limit)
	}
	replayAtLeast(t, e, limit)
}

// TestRemoteFetchLimitDynamic: the fetch limit set at run time
// (SetFetchMaxBytesPerSecond, what the broker calls on a dynamic broker
// config) applies at once to a manager started unlimited: a replay of N
// bytes after it takes at least (N - burst)/L by the bytes the store
// delivered and the test's clock. Set back to unlimited, it no longer paces.
func TestRemoteFetchLimitDynamic(t *testing.T) {
	const limit = 16 << 10
	e := tiered(t, nil)
	if got := e.m.FetchMaxBytesPerSecond(); got > 0 {
		t.Fatalf("fetch limit %d in force, want unlimited", got)
	}
	e.m.SetFetchMaxBytesPerSecond(limit)
	if got := e.m.FetchMaxBytesPerSecond(); got != limit {
		t.Fatalf("fetch limit in force %d after setting %d", got, limit)
	}
	replayAtLeast(t, e, limit)
	e.m.SetFetchMaxBytesPerSecond(-1)
	if _, _, step := e.m.fetchLimiter.limits(); step != 0 {
		t.Fatalf("unlimited, yet reads are cut to %d bytes", step)
	}
}

// TestLimiterRateChangeWakesWaiters: a waiter sleeping out its deficit at a
// low rate is woken by a change of rate and waits only what is left at the
// new one: nothing once unlimited. The bucket's sleep is replaced by one that
// returns only when woken, so the test needs no clock.
func TestLimiterRateChangeWakesWaiters(t *testing.T) {
	b := newTokenBucket(10) // 10 B/s: a 1000-byte reservation owes ~100 s
	slept := make(chan struct{}, 1)
	b.sleep = func(ctx context.Context, _ time.Duration, wake <-chan struct{}) error {
		slept <- struct{}{}
		select {
		case <-wake:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	done := make(chan error, 1)
	go func() { done <- b.wait(context.Background(), 1000) }()
	<-slept
	b.setRate(-1)
	if err := <-done; err != nil {
		t.Fatalf("wait after the limit was lifted: %v", err)
	}
	if err := b.wait(context.Background(), 1<<30); err != nil {
		t.Fatalf("unlimited wait: %v", err)
	}
	select {
	case <-slept:
		t.Fatal("an unlimited bucket slept")
	default:
	}
}

// replayAtLeast reads the test topic back from a cold cache and checks the
// download took at least (N - burst)/limit, N the bytes the store delivered.
func replayAtLeast(t *testing.T, e *env, limit float64) {
	t.Helper()
	_, burst, _ := e.m.fetchLimiter.limits()
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
		t.Fatalf("%d bytes downloaded in %v at a limit of %.0f B/s (burst %.0f): want at least %v", n, elapsed, limit, burst, floor)
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
