package remotestore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
	"github.com/stratalog/strata/remotestore/mem"
	"github.com/stratalog/strata/remotestore/storetest"
)

func TestTimeoutsAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store {
		return remotestore.WithTimeouts(mem.New(), remotestore.Timeouts{Request: time.Minute, Stall: time.Minute})
	})
}

func TestHealthAcceptance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) remotestore.Store {
		return remotestore.WithHealth(mem.New(), remotestore.NewHealth("mem://"))
	})
}

// A Put that hangs mid-body (a stopped store) ends with a timeout naming the
// store, the operation and the key; the retries go on as their policy says,
// and once the store answers again the Put goes through.
func TestTimeoutEndsAHungPut(t *testing.T) {
	ctx := t.Context()
	fault := faultstore.New(mem.New())
	remove := fault.Inject(faultstore.Fault{Op: remotestore.OpPut, Mode: faultstore.Hang, BodyBytes: 3})
	s := remotestore.WithRetries(
		remotestore.WithTimeouts(fault, remotestore.Timeouts{Request: time.Hour, Stall: 20 * time.Millisecond, Name: "s3://bucket/p"}),
		remotestore.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	body := []byte("0123456789")
	err := s.Put(ctx, "seg.log", bytes.NewReader(body), int64(len(body)))
	if !errors.Is(err, remotestore.ErrTimeout) {
		t.Fatalf("hung put: %v, want ErrTimeout", err)
	}
	for _, want := range []string{"s3://bucket/p", "put", `"seg.log"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("timeout error wraps context.Canceled (retries would stop): %v", err)
	}
	if n := fault.Calls(remotestore.OpPut); n != 3 {
		t.Errorf("%d put attempts, want 3 (the retry policy)", n)
	}
	remove()
	if err := s.Put(ctx, "seg.log", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if got := storetest.MustGet(t, ctx, s, "seg.log", 0, -1); !bytes.Equal(got, body) {
		t.Fatalf("stored %q", got)
	}
}

// slowReader hands out one byte per Read, pausing before each.
type slowReader struct {
	*bytes.Reader
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.pause)
	return r.Reader.Read(p[:min(1, len(p))])
}

// The stall bound applies to progress: an upload that takes several times the
// bound in all but keeps moving is not cut.
func TestTimeoutLetsASlowMovingPutThrough(t *testing.T) {
	ctx := t.Context()
	inner := mem.New()
	s := remotestore.WithTimeouts(inner, remotestore.Timeouts{Request: time.Hour, Stall: 300 * time.Millisecond})
	body := bytes.Repeat([]byte("x"), 40) // 40 reads of 25 ms: about 1 s
	if err := s.Put(ctx, "k", &slowReader{bytes.NewReader(body), 25 * time.Millisecond}, int64(len(body))); err != nil {
		t.Fatalf("slow but moving put: %v", err)
	}
}

// Small calls are bounded by the request timeout.
func TestTimeoutEndsHungSmallCalls(t *testing.T) {
	ctx := t.Context()
	fault := faultstore.New(mem.New())
	storetest.MustPut(t, ctx, fault, "a", []byte("abc"))
	fault.Inject(faultstore.Fault{Mode: faultstore.Hang})
	s := remotestore.WithTimeouts(fault, remotestore.Timeouts{Request: 10 * time.Millisecond, Stall: time.Hour, Name: "mem://x"})
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, remotestore.ErrTimeout) || !strings.Contains(err.Error(), "mem://x") || !strings.Contains(err.Error(), op) {
			t.Errorf("%s: %v, want a timeout naming the store and %s", op, err, op)
		}
	}
	_, err := s.Head(ctx, "a")
	check("head", err)
	check("delete", s.Delete(ctx, "a"))
	_, err = s.GetRange(ctx, "a", 0, -1)
	check("get_range", err)
	check("list", s.List(ctx, "", func(remotestore.ObjectInfo) error { return nil }))
}

// stallBody is a GetRange body whose Read blocks until its context is done.
type stallStore struct {
	remotestore.Store
}

func (s stallStore) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	return &stallBody{ctx: ctx}, nil
}

type stallBody struct{ ctx context.Context }

func (b *stallBody) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}
func (b *stallBody) Close() error { return nil }

func TestTimeoutEndsAStalledBody(t *testing.T) {
	s := remotestore.WithTimeouts(stallStore{mem.New()}, remotestore.Timeouts{Request: time.Hour, Stall: 10 * time.Millisecond})
	rc, err := s.GetRange(t.Context(), "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, remotestore.ErrTimeout) {
		t.Fatalf("stalled body: %v, want ErrTimeout", err)
	}
}

// A caller that gives up gets its own error, not a timeout.
func TestTimeoutKeepsTheCallersCancellation(t *testing.T) {
	fault := faultstore.New(mem.New())
	fault.Inject(faultstore.Fault{Mode: faultstore.Hang})
	s := remotestore.WithTimeouts(fault, remotestore.Timeouts{Request: time.Hour, Stall: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Head(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("head with a cancelled context: %v", err)
	}
}

func TestHealth(t *testing.T) {
	ctx := t.Context()
	fault := faultstore.New(mem.New())
	h := remotestore.NewHealth("s3://b")
	var (
		mu      sync.Mutex
		changes []remotestore.HealthState
	)
	h.Watch(func(st remotestore.HealthState) {
		mu.Lock()
		changes = append(changes, st)
		mu.Unlock()
	})
	s := remotestore.WithHealth(fault, h)
	if !h.State().Available {
		t.Fatal("a fresh store is not available")
	}
	// A missing object is an answer.
	if _, err := s.Head(ctx, "missing"); !remotestore.IsNotFound(err) {
		t.Fatal(err)
	}
	remove := fault.Inject(faultstore.Fault{Op: remotestore.OpHead})
	for range 3 {
		_, _ = s.Head(ctx, "missing")
	}
	st := h.State()
	if st.Available || st.Op != remotestore.OpHead || !errors.Is(st.Err, faultstore.ErrInjected) || st.LastFailure.IsZero() {
		t.Fatalf("after failures: %+v", st)
	}
	// A caller that gives up says nothing about the store.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	remove()
	_ = s.Delete(cctx, "x")
	if h.State().Available {
		t.Fatal("a cancelled call made the store available")
	}
	storetest.MustPut(t, ctx, s, "k", []byte("v"))
	if !h.State().Available {
		t.Fatal("a successful put did not make the store available")
	}
	// A body read that fails counts.
	fault.Inject(faultstore.Fault{Op: remotestore.OpGetRange, Mode: faultstore.MidBody, BodyBytes: 0})
	rc, err := s.GetRange(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(rc)
	rc.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 3 || changes[0].Available || !changes[1].Available || changes[2].Available || changes[2].Op != "read" {
		t.Fatalf("changes %+v, want down (head), up, down (read)", changes)
	}
	if changes[0].Name != "s3://b" {
		t.Errorf("name %q", changes[0].Name)
	}
}
