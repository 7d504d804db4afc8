package tier

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/backend"
)

// TestMinIOStopped is TestHungStoreMovesTheGauges against a real MinIO
// stopped with SIGSTOP (it accepts connections and never answers), through
// the store stack the broker builds (backend.Open with timeouts and health).
func TestMinIOStopped(t *testing.T) {
	srv := minioserver.Start(t)
	bucket := srv.NewBucket(t)
	ctx := t.Context()
	rawURL := fmt.Sprintf("s3://%s/cluster-b?endpoint=%s&access_key=%s&secret_key=%s&max_attempts=1",
		bucket, url.QueryEscape(srv.Endpoint), url.QueryEscape(srv.AccessKey), url.QueryEscape(srv.SecretKey))
	name := backend.Redact(rawURL)
	health := remotestore.NewHealth(name)
	store, err := backend.Open(ctx, rawURL, backend.Options{
		Timeouts: remotestore.Timeouts{Request: time.Second, Stall: time.Second},
		Health:   health,
		Retry:    remotestore.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	e := newEnv(t, func(c *Config) { c.Health = health; c.FetchMaxWait = 10 * time.Second })
	e.logger = slog.New(logs)
	e.store = store
	e.open()

	e.segment(3, 10) // 0..29, uploaded while MinIO runs
	e.active(1)
	e.manage()
	if segs := e.remote(); len(segs) != 1 || segs[0].State != metadata.CopyFinished {
		t.Fatalf("index with MinIO running: %+v", segs)
	}

	pid := srv.Pid()
	if pid == 0 {
		t.Fatal("MinIO is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	e.segment(3, 10) // 31..60
	e.segment(3, 10) // 61..90
	e.active(1)
	segs := e.log.Segments()
	closed := segs[len(segs)-3 : len(segs)-1]
	e.m.Manage(ctx, []PartitionLog{e.pl}) // the upload hangs on the stopped MinIO
	e.clock.Advance(time.Hour)
	e.m.Manage(ctx, []PartitionLog{e.pl}) // a tick meanwhile
	checkLag(t, e, closed)

	expectUploadTimedOut(t, e, name)
	e.clock.Advance(time.Minute)
	e.manage() // fails again: no second warning
	checkLag(t, e, closed)
	warns := logs.at(slog.LevelWarn)
	if len(warns) != 1 || !strings.Contains(warns[0], "object store unavailable") || !strings.Contains(warns[0], "store="+name) ||
		!strings.Contains(warns[0], remotestore.ErrTimeout.Error()) {
		t.Fatalf("warnings %q, want one naming the store and the timeout", warns)
	}

	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	expectRecovered(t, e, logs, 3, "")
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		for _, l := range logs.at(level) {
			if strings.Contains(l, srv.SecretKey) {
				t.Errorf("the log shows the store's secret: %q", l)
			}
		}
	}
}
