// Package faultstore wraps a remotestore.Store and fails chosen operations on
// demand, for tests of the code above the store (retries, the tier's upload
// state machine, reads that fail part-way). Faults live in this decorator,
// never in the backends.
package faultstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/stratalog/strata/remotestore"
)

// ErrInjected is the error of a Fault with no Err.
var ErrInjected = errors.New("faultstore: injected fault")

// Mode is when a fault strikes.
type Mode int

const (
	// Before fails the operation without calling the inner store.
	Before Mode = iota
	// After calls the inner store, then returns the error anyway: the
	// object is written or deleted but the caller hears it failed (a lost
	// acknowledgement).
	After
	// MidBody lets GetRange succeed, and fails its reader after
	// BodyBytes bytes. Only meaningful for remotestore.OpGetRange.
	MidBody
	// Hang blocks the operation, as a stopped store does, until its
	// context is done (it then returns the context's error) or the fault is
	// removed (it then goes on to the inner store). A Put first reads
	// BodyBytes bytes of its body, so the hang strikes mid-upload. Err is
	// not used.
	Hang
)

// Fault is one injected failure rule. The first matching rule with Times
// left applies to an operation.
type Fault struct {
	Op        string // remotestore.OpPut, OpGetRange, ...; "" matches every operation
	KeyPrefix string // matches keys (List: prefixes) starting with it; "" matches all
	Err       error  // default ErrInjected
	Mode      Mode
	BodyBytes int64 // MidBody: bytes served before the read fails
	Times     int   // how many operations it fails; 0: until removed

	release chan struct{} // Hang: closed when the fault is removed
}

type rule struct {
	Fault
	left int // -1: unlimited
}

// Store is the fault-injecting decorator.
type Store struct {
	inner remotestore.Store

	mu struct {
		sync.Mutex
		rules    []*rule
		calls    map[string]int
		keyCalls map[string]int
	}
}

var _ remotestore.Store = (*Store)(nil)

// New wraps inner with no faults.
func New(inner remotestore.Store) *Store {
	s := &Store{inner: inner}
	s.mu.calls = make(map[string]int)
	s.mu.keyCalls = make(map[string]int)
	return s
}

// Inject adds a fault and returns a function that removes it.
func (s *Store) Inject(f Fault) (remove func()) {
	if f.Err == nil {
		f.Err = ErrInjected
	}
	f.release = make(chan struct{})
	r := &rule{Fault: f, left: f.Times}
	if f.Times <= 0 {
		r.left = -1
	}
	s.mu.Lock()
	s.mu.rules = append(s.mu.rules, r)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.mu.rules {
			if x == r {
				s.mu.rules = append(s.mu.rules[:i], s.mu.rules[i+1:]...)
				close(r.release)
				return
			}
		}
	}
}

// Clear removes every fault (hung operations go on).
func (s *Store) Clear() {
	s.mu.Lock()
	for _, r := range s.mu.rules {
		close(r.release)
	}
	s.mu.rules = nil
	s.mu.Unlock()
}

// Calls returns how many times op was called (faulted calls included).
func (s *Store) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.calls[op]
}

// KeyCalls returns how many times op was called with key (List: prefix),
// faulted calls included.
func (s *Store) KeyCalls(op, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.keyCalls[op+"\x00"+key]
}

// hang blocks until ctx is done (its error) or f is removed (nil).
func hang(ctx context.Context, f *Fault) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.release:
		return nil
	}
}

// Unwrap returns the decorated store.
func (s *Store) Unwrap() remotestore.Store { return s.inner }

// check counts the call and returns the fault that applies, if any.
func (s *Store) check(op, key string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.calls[op]++
	s.mu.keyCalls[op+"\x00"+key]++
	for _, r := range s.mu.rules {
		if r.left == 0 || (r.Op != "" && r.Op != op) || !strings.HasPrefix(key, r.KeyPrefix) {
			continue
		}
		if r.left > 0 {
			r.left--
		}
		f := r.Fault
		return &f
	}
	return nil
}

// Put implements remotestore.Store.
func (s *Store) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	f := s.check(remotestore.OpPut, key)
	if f != nil && f.Mode == Hang {
		n, err := io.CopyN(io.Discard, r, min(f.BodyBytes, size))
		if err != nil {
			return err
		}
		if err := hang(ctx, f); err != nil {
			return err
		}
		if _, err := r.Seek(-n, io.SeekCurrent); err != nil {
			return err
		}
		f = nil
	}
	if f != nil && f.Mode != After {
		return f.Err
	}
	err := s.inner.Put(ctx, key, r, size)
	if f != nil && err == nil {
		return f.Err
	}
	return err
}

// GetRange implements remotestore.Store.
func (s *Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	f := s.check(remotestore.OpGetRange, key)
	if f != nil && f.Mode == Hang {
		if err := hang(ctx, f); err != nil {
			return nil, err
		}
		f = nil
	}
	if f != nil && f.Mode == Before {
		return nil, f.Err
	}
	rc, err := s.inner.GetRange(ctx, key, off, length)
	if f == nil || err != nil {
		return rc, err
	}
	if f.Mode == After {
		_ = rc.Close()
		return nil, f.Err
	}
	return &failingReader{rc: rc, left: f.BodyBytes, err: f.Err}, nil
}

type failingReader struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, r.err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *failingReader) Close() error { return r.rc.Close() }

// Head implements remotestore.Store.
func (s *Store) Head(ctx context.Context, key string) (remotestore.ObjectInfo, error) {
	f := s.check(remotestore.OpHead, key)
	if f != nil && f.Mode == Hang {
		if err := hang(ctx, f); err != nil {
			return remotestore.ObjectInfo{}, err
		}
		f = nil
	}
	if f != nil && f.Mode != After {
		return remotestore.ObjectInfo{}, f.Err
	}
	info, err := s.inner.Head(ctx, key)
	if f != nil && err == nil {
		return remotestore.ObjectInfo{}, f.Err
	}
	return info, err
}

// Delete implements remotestore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	f := s.check(remotestore.OpDelete, key)
	if f != nil && f.Mode == Hang {
		if err := hang(ctx, f); err != nil {
			return err
		}
		f = nil
	}
	if f != nil && f.Mode != After {
		return f.Err
	}
	err := s.inner.Delete(ctx, key)
	if f != nil && err == nil {
		return f.Err
	}
	return err
}

// List implements remotestore.Store. With Mode After (or MidBody), the
// listing fails after reporting BodyBytes objects.
func (s *Store) List(ctx context.Context, prefix string, fn func(remotestore.ObjectInfo) error) error {
	f := s.check(remotestore.OpList, prefix)
	if f != nil && f.Mode == Hang {
		if err := hang(ctx, f); err != nil {
			return err
		}
		f = nil
	}
	if f != nil && f.Mode == Before {
		return f.Err
	}
	n := int64(0)
	err := s.inner.List(ctx, prefix, func(info remotestore.ObjectInfo) error {
		if f != nil && n >= f.BodyBytes {
			return f.Err
		}
		n++
		return fn(info)
	})
	if f != nil && err == nil {
		return f.Err
	}
	return err
}
