package tier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
)

// logRecorder keeps every log record, for assertions on what was logged.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// at returns the records of one level, as "message key=value ...".
func (h *logRecorder) at(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		if r.Level != level {
			continue
		}
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// stalledStoreEnv is an env whose store is wrapped as the broker wraps it
// (retries around health around timeouts), the timeouts short, and the
// manager's log recorded.
func stalledStoreEnv(t *testing.T, name string, inner remotestore.Store, timeout time.Duration) (*env, *remotestore.Health, *logRecorder) {
	t.Helper()
	health := remotestore.NewHealth(name)
	logs := &logRecorder{}
	e := newEnv(t, func(c *Config) { c.Health = health })
	if inner == nil {
		inner = e.fault
	}
	e.logger = slog.New(logs)
	e.store = remotestore.WithRetries(
		remotestore.WithHealth(remotestore.WithTimeouts(inner, remotestore.Timeouts{Request: timeout, Stall: timeout, Name: name}), health),
		remotestore.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	e.open()
	return e, health, logs
}

// checkLag asserts the copy lag gauges against the local segments the
// remote index does not cover.
func checkLag(t *testing.T, e *env, segs []localstore.SegmentInfo) {
	t.Helper()
	var bytes int64
	age := 0.0
	for i, s := range segs {
		bytes += s.Size
		if i == 0 {
			age = max(0, e.clock.Now().Sub(s.RolledAt).Seconds())
		}
	}
	if v := gauge(t, e.reg, "strata_tier_copy_lag_bytes"); v != float64(bytes) {
		t.Errorf("copy lag bytes %v, want %d", v, bytes)
	}
	if v := gauge(t, e.reg, "strata_tier_copy_lag_segments"); v != float64(len(segs)) {
		t.Errorf("copy lag segments %v, want %d", v, len(segs))
	}
	if v := gauge(t, e.reg, "strata_tier_copy_lag_oldest_seconds"); v != age {
		t.Errorf("copy lag oldest %vs, want %vs", v, age)
	}
}

// A store that stops answering in the middle of an upload (SIGSTOP) must
// show at once: the upload ends with a timeout naming the store, the store
// is marked unavailable with one warning, the copy lag (computed from the
// log on each tick, not when a round ends) counts the waiting segments and
// ages while the upload hangs; when the store answers again, one info line,
// the gauge back to 1, the lag drained.
func TestHungStoreMovesTheGauges(t *testing.T) {
	const name = "s3://tier-bucket/cluster-a"
	e, health, logs := stalledStoreEnv(t, name, nil, 300*time.Millisecond)
	ctx := t.Context()
	e.segment(3, 10) // 0..29
	e.segment(3, 10) // 30..59
	e.active(1)
	closed := e.log.Segments()[:2]

	// Every call hangs, as against a stopped process; a put after 100
	// bytes of its body.
	release := e.fault.Inject(faultstore.Fault{Mode: faultstore.Hang, BodyBytes: 100})
	e.m.Manage(ctx, []PartitionLog{e.pl})
	wait.Eventually(t, "the upload to start", func() bool { return e.fault.Calls(remotestore.OpPut) >= 1 })
	// A housekeeping tick while the upload hangs: the lag is there, and
	// ages with the clock.
	e.clock.Advance(time.Hour)
	e.m.Manage(ctx, []PartitionLog{e.pl})
	checkLag(t, e, closed)
	e.clock.Advance(time.Minute)
	e.m.Manage(ctx, []PartitionLog{e.pl})
	checkLag(t, e, closed)

	// The hung upload ends with a timeout that names the store and the
	// operation; the store is unavailable.
	expectUploadTimedOut(t, e, name)
	if len(e.remote()) != 0 {
		t.Errorf("index %+v after the failed upload", e.remote())
	}
	// Another failing round: no second warning.
	e.clock.Advance(time.Minute)
	e.manage()
	checkLag(t, e, closed)
	warns := logs.at(slog.LevelWarn)
	if len(warns) != 1 {
		t.Fatalf("%d warnings during one outage, want 1: %q", len(warns), warns)
	}
	if w := warns[0]; !strings.Contains(w, "object store unavailable") || !strings.Contains(w, "store="+name) ||
		!strings.Contains(w, remotestore.ErrTimeout.Error()) {
		t.Errorf("warning %q does not name the store and the error", w)
	}
	if st := health.State(); st.Available || !errors.Is(st.Err, remotestore.ErrTimeout) {
		t.Errorf("health %+v", st)
	}

	// The store answers again.
	release()
	expectRecovered(t, e, logs, 2, name)
}

// expectRecovered runs a round once the store answers again and checks that
// the store counts as available, the lag drained, the index holds segments
// entries with the last COPY_FINISHED, and the outage logged one WARN and
// one "available again" INFO (naming store, when not empty).
func expectRecovered(t *testing.T, e *env, logs *logRecorder, segments int, store string) {
	t.Helper()
	e.clock.Advance(time.Minute)
	e.manage()
	if v := gauge(t, e.reg, "strata_tier_store_available"); v != 1 {
		t.Errorf("store available %v after the outage", v)
	}
	checkLag(t, e, nil)
	if segs := e.remote(); len(segs) != segments || segs[segments-1].State != metadata.CopyFinished {
		t.Errorf("index after the outage: %+v", segs)
	}
	if warns := logs.at(slog.LevelWarn); len(warns) != 1 {
		t.Errorf("warnings %q, want the one of the outage", warns)
	}
	back := 0
	for _, l := range logs.at(slog.LevelInfo) {
		if strings.Contains(l, "object store available again") && (store == "" || strings.Contains(l, "store="+store)) {
			back++
		}
	}
	if back != 1 {
		t.Errorf("%d 'available again' lines, want 1: %q", back, logs.at(slog.LevelInfo))
	}
}

// The shared download of a sidecar must not run under the deadline of the
// fetch that started it: that fetch gives up at remote.fetch.max.wait.ms,
// the download goes on, is cached, and serves the next fetch with no second
// GET.
func TestSidecarDownloadOutlivesTheFirstFetch(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FetchMaxWait = 50 * time.Millisecond })
	ctx := t.Context()
	e.segment(3, 10) // 0..29
	e.active(1)
	e.manage()
	segs := e.remote()
	if len(segs) != 1 {
		t.Fatalf("index %+v", segs)
	}
	e.open() // the sidecar is no longer in memory
	idx := sidecarKey(testTopic, 0, segs[0].BaseOffset, segs[0].UploadID)
	release := e.fault.Inject(faultstore.Fault{Op: remotestore.OpGetRange, KeyPrefix: idx, Mode: faultstore.Hang})

	_, err := e.m.Read(ctx, testTopic, 0, 0, 1<<20, true)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch while the sidecar GET hangs: %v, want ErrUnavailable for the fetch's deadline", err)
	}
	release() // the slow GET completes
	want := e.bytesBetween(0, 30)
	wait.Eventually(t, "a fetch to be served", func() bool {
		sl, err := e.m.Read(ctx, testTopic, 0, 0, 1<<20, true)
		if err != nil {
			return false
		}
		got := sliceBytes(t, sl)
		if len(got) == 0 || !bytes.HasPrefix(want, got) {
			t.Fatalf("served %d bytes that differ from what was appended", len(got))
		}
		return true
	})
	if n := e.fault.KeyCalls(remotestore.OpGetRange, idx); n != 1 {
		t.Errorf("%d GETs of the sidecar, want 1", n)
	}
}

// expectUploadTimedOut waits for the rounds to end and checks that the
// upload ended with a timeout naming the store and the operation, and that
// the store counts as unavailable.
func expectUploadTimedOut(t *testing.T, e *env, name string) {
	t.Helper()
	e.m.waitIdle()
	var lastErr string
	for _, st := range e.m.Status(testTopic) {
		if st.Partition == 0 {
			lastErr = st.LastError
		}
	}
	for _, want := range []string{remotestore.ErrTimeout.Error(), name, "put"} {
		if !strings.Contains(lastErr, want) {
			t.Errorf("upload error %q does not say %q", lastErr, want)
		}
	}
	if v := gauge(t, e.reg, "strata_tier_store_available"); v != 0 {
		t.Errorf("store available %v during the outage", v)
	}
}
