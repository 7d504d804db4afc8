package tier

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
)

// runningGets counts the GetRange calls in progress, by key suffix.
type runningGets struct {
	remotestore.Store
	suffix  string
	running atomic.Int64
}

func (s *runningGets) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if strings.HasSuffix(key, s.suffix) {
		s.running.Add(1)
		defer s.running.Add(-1)
	}
	return s.Store.GetRange(ctx, key, off, length)
}

// A shared sidecar download outlives the fetch that started it, but not the
// manager: Close cancels it and returns only once it has ended.
func TestCloseEndsSidecarDownload(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.FetchMaxWait = 50 * time.Millisecond })
	e.segment(3, 10)
	e.active(1)
	e.manage()
	segs := e.remote()
	if len(segs) != 1 {
		t.Fatalf("index %+v", segs)
	}
	gets := &runningGets{Store: e.fault, suffix: ".idx"}
	e.store = gets
	e.open() // cold: the sidecar is not in memory
	idx := sidecarKey(testTopic, 0, segs[0].BaseOffset, segs[0].UploadID)
	if !strings.HasSuffix(idx, gets.suffix) {
		t.Fatalf("sidecar key %q", idx)
	}
	release := e.fault.Inject(faultstore.Fault{Op: remotestore.OpGetRange, KeyPrefix: idx, Mode: faultstore.Hang})
	defer release()

	if _, err := e.m.Read(t.Context(), testTopic, 0, 0, 1<<20, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch while the sidecar GET hangs: %v", err)
	}
	// The shared GET goes on after the fetch gave up.
	wait.Eventually(t, "the sidecar GET to run", func() bool { return gets.running.Load() == 1 })
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := gets.running.Load(); n != 0 {
		t.Fatalf("%d sidecar GETs still running after Close", n)
	}
	if _, err := e.m.Read(t.Context(), testTopic, 0, 0, 1<<20, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read after Close: %v", err)
	}
}
