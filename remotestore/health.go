package remotestore

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// Health follows whether a store answers, from the outcome of its calls: the
// store is available unless its last failed call ended after its last
// successful one. A call that finds no object, or is refused for a bad key or
// range, is a success (the store answered); a call whose caller gave up
// (its context done, or cancelled) counts as neither. It is safe for
// concurrent use.
type Health struct {
	name string
	mu   struct {
		sync.Mutex
		lastOK, lastFail time.Time
		op               string
		err              error
		down             bool
		watchers         map[int]func(HealthState)
		next             int
	}
}

// HealthState is a Health's view at one moment.
type HealthState struct {
	Name        string // the store's description (a redacted URL)
	Available   bool
	LastSuccess time.Time // zero: none yet
	LastFailure time.Time // zero: none yet
	Op          string    // of the last failure
	Err         error     // of the last failure
}

// NewHealth returns the Health of the store name describes (never put a
// secret in it: it is logged).
func NewHealth(name string) *Health {
	h := &Health{name: name}
	h.mu.watchers = make(map[int]func(HealthState))
	return h
}

// Name is the store's description.
func (h *Health) Name() string { return h.name }

// State returns the current state.
func (h *Health) State() HealthState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stateLocked()
}

func (h *Health) stateLocked() HealthState {
	return HealthState{Name: h.name, Available: !h.mu.down, LastSuccess: h.mu.lastOK,
		LastFailure: h.mu.lastFail, Op: h.mu.op, Err: h.mu.err}
}

// Watch calls fn with the new state whenever the store becomes unavailable
// or available again, once per change, in order. fn runs under the Health's
// lock: it must be quick and must not call the Health. stop ends the watch.
func (h *Health) Watch(fn func(HealthState)) (stop func()) {
	h.mu.Lock()
	id := h.mu.next
	h.mu.next++
	h.mu.watchers[id] = fn
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.mu.watchers, id)
		h.mu.Unlock()
	}
}

// Observe records the outcome of one call of op; ctx is the caller's.
func (h *Health) Observe(ctx context.Context, op string, err error) {
	failed := false
	switch {
	case err == nil, IsNotFound(err), errors.Is(err, ErrInvalidKey), errors.Is(err, ErrInvalidRange):
	case ctx.Err() != nil, errors.Is(err, context.Canceled):
		return // the caller gave up; the store said nothing
	default:
		failed = true
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if failed {
		h.mu.lastFail, h.mu.op, h.mu.err = now, op, err
	} else {
		h.mu.lastOK = now
	}
	if failed == h.mu.down {
		return
	}
	h.mu.down = failed
	st := h.stateLocked()
	for _, fn := range h.mu.watchers {
		fn(st)
	}
}

// WithHealth returns a Store that reports the outcome of every call of s to
// h, GetRange body reads included. Wrap it inside WithRetries to see every
// attempt, so a hung store shows at its first timeout.
func WithHealth(s Store, h *Health) Store {
	return &observed{s: s, h: h}
}

type observed struct {
	s Store
	h *Health
}

var _ Store = (*observed)(nil)

// Unwrap returns the decorated store.
func (o *observed) Unwrap() Store { return o.s }

func (o *observed) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	err := o.s.Put(ctx, key, r, size)
	o.h.Observe(ctx, OpPut, err)
	return err
}

func (o *observed) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := o.s.GetRange(ctx, key, off, length)
	o.h.Observe(ctx, OpGetRange, err)
	if err != nil {
		return nil, err
	}
	return &observedBody{ctx: ctx, rc: rc, h: o.h}, nil
}

// observedBody reports a body read that fails (once).
type observedBody struct {
	ctx    context.Context
	rc     io.ReadCloser
	h      *Health
	failed bool
}

func (b *observedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && !b.failed {
		b.failed = true
		b.h.Observe(b.ctx, "read", err)
	}
	return n, err
}

func (b *observedBody) Close() error { return b.rc.Close() }

func (o *observed) Head(ctx context.Context, key string) (ObjectInfo, error) {
	info, err := o.s.Head(ctx, key)
	o.h.Observe(ctx, OpHead, err)
	return info, err
}

func (o *observed) Delete(ctx context.Context, key string) error {
	err := o.s.Delete(ctx, key)
	o.h.Observe(ctx, OpDelete, err)
	return err
}

func (o *observed) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var callerErr error
	err := o.s.List(ctx, prefix, func(info ObjectInfo) error {
		callerErr = fn(info)
		return callerErr
	})
	if err != nil && callerErr != nil && errors.Is(err, callerErr) {
		o.h.Observe(ctx, OpList, nil) // the caller stopped the listing
	} else {
		o.h.Observe(ctx, OpList, err)
	}
	return err
}
