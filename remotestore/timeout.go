package remotestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ErrTimeout is wrapped by the error of a call WithTimeouts ended. It is
// retryable (DefaultRetryable): the next attempt gets its own deadline.
var ErrTimeout = errors.New("remotestore: store call timed out")

// Timeouts says how long WithTimeouts lets one call run. A zero field
// leaves that bound out.
type Timeouts struct {
	// Request bounds the calls that move little data: Head, Delete,
	// GetRange until its body is ready to read, and List while it waits for
	// the store (the time List's fn runs is not counted).
	Request time.Duration
	// Stall bounds the calls that move a body, by progress rather than
	// size: a Put fails when no byte of its body has been read for Stall
	// (the wait for the store's answer after the last byte included); a
	// GetRange body's Read fails when it has waited Stall without a byte.
	// A large healthy transfer is never cut; a hung store is.
	Stall time.Duration
	// Name describes the store in errors (a redacted URL: never a secret).
	Name string
}

// WithTimeouts returns a Store whose calls end with an error wrapping
// ErrTimeout, and naming the store, the operation and the key, when they
// overrun t. The inner call's context is cancelled then, so the backend
// stops. Wrap it inside WithRetries so that each attempt gets its own bound.
// With both bounds zero it returns s.
func WithTimeouts(s Store, t Timeouts) Store {
	if t.Request <= 0 && t.Stall <= 0 {
		return s
	}
	if t.Name == "" {
		t.Name = "object store"
	}
	return &timed{s: s, t: t}
}

type timed struct {
	s Store
	t Timeouts
}

var _ Store = (*timed)(nil)

// Unwrap returns the decorated store.
func (d *timed) Unwrap() Store { return d.s }

// watchdog cancels a call's context when its timer fires.
type watchdog struct {
	cancel context.CancelCauseFunc
	timer  *time.Timer // nil: no bound
	mu     sync.Mutex
	fired  bool
	d      time.Duration // of the last arming, for the error
}

// watch returns ctx with a watchdog armed for d (d <= 0: not armed).
func watch(ctx context.Context, d time.Duration) (context.Context, *watchdog) {
	cctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{cancel: cancel, d: d}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	if d > 0 {
		w.timer.Reset(d)
	}
	return cctx, w
}

func (w *watchdog) fire() {
	w.mu.Lock()
	w.fired = true
	w.mu.Unlock()
	w.cancel(ErrTimeout)
}

// arm (re)starts the timer for d; d <= 0 stops it.
func (w *watchdog) arm(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fired {
		return
	}
	w.timer.Stop()
	if d > 0 {
		w.d = d
		w.timer.Reset(d)
	}
}

func (w *watchdog) disarm() { w.arm(0) }

// done stops the timer and releases the context.
func (w *watchdog) done() {
	w.disarm()
	w.cancel(context.Canceled)
}

func (w *watchdog) hasFired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired
}

// err turns the error of a call the watchdog ended into a timeout error.
// The inner error (a cancellation, as the backend saw it) is kept as text
// only, so that retry policies do not take it for the caller's.
func (d *timed) err(ctx context.Context, w *watchdog, op, key string, err error) error {
	if err == nil || !w.hasFired() || ctx.Err() != nil {
		return err
	}
	w.mu.Lock()
	bound := w.d
	w.mu.Unlock()
	return fmt.Errorf("remotestore: %s: %s %q: %w: no answer or progress for %v (%v)", d.t.Name, op, key, ErrTimeout, bound, err)
}

func (d *timed) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	cctx, w := watch(ctx, d.t.Stall)
	defer w.done()
	var body io.ReadSeeker = r
	if d.t.Stall > 0 {
		body = &progressReader{r: r, w: w, d: d.t.Stall}
	}
	return d.err(ctx, w, OpPut, key, d.s.Put(cctx, key, body, size))
}

// progressReader re-arms the watchdog whenever the store takes a byte of a
// Put's body.
type progressReader struct {
	r io.ReadSeeker
	w *watchdog
	d time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.arm(p.d)
	}
	return n, err
}

func (p *progressReader) Seek(off int64, whence int) (int64, error) { return p.r.Seek(off, whence) }

func (d *timed) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	cctx, w := watch(ctx, d.t.Request)
	rc, err := d.s.GetRange(cctx, key, off, length)
	if err != nil {
		err = d.err(ctx, w, OpGetRange, key, err)
		w.done()
		return nil, err
	}
	w.disarm()
	return &stallReader{ctx: ctx, rc: rc, w: w, t: d, key: key}, nil
}

// stallReader bounds each Read of a GetRange body by Timeouts.Stall; the
// time between Reads (the caller's) is not counted.
type stallReader struct {
	ctx context.Context // the caller's
	rc  io.ReadCloser
	w   *watchdog
	t   *timed
	key string
}

func (s *stallReader) Read(b []byte) (int, error) {
	s.w.arm(s.t.t.Stall)
	n, err := s.rc.Read(b)
	s.w.disarm()
	if err != nil && err != io.EOF {
		err = s.t.err(s.ctx, s.w, "read", s.key, err)
	}
	return n, err
}

func (s *stallReader) Close() error {
	err := s.rc.Close()
	s.w.done()
	return err
}

func (d *timed) Head(ctx context.Context, key string) (ObjectInfo, error) {
	cctx, w := watch(ctx, d.t.Request)
	defer w.done()
	info, err := d.s.Head(cctx, key)
	return info, d.err(ctx, w, OpHead, key, err)
}

func (d *timed) Delete(ctx context.Context, key string) error {
	cctx, w := watch(ctx, d.t.Request)
	defer w.done()
	return d.err(ctx, w, OpDelete, key, d.s.Delete(cctx, key))
}

func (d *timed) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	cctx, w := watch(ctx, d.t.Request)
	defer w.done()
	err := d.s.List(cctx, prefix, func(info ObjectInfo) error {
		w.disarm()
		defer w.arm(d.t.Request)
		return fn(info)
	})
	return d.err(ctx, w, OpList, prefix, err)
}
