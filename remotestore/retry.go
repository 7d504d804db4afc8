package remotestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how WithRetries retries. The zero value is usable: every
// zero field takes the default named beside it.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts per operation, the first
	// included (default 4; 1 disables retries).
	MaxAttempts int
	// InitialBackoff is the base of the first wait (default 100ms); each
	// later wait doubles, up to MaxBackoff (default 5s). A wait is drawn
	// uniformly from [base/2, base] so that retrying brokers spread out.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Retryable says whether an error is worth another attempt (default
	// DefaultRetryable). It is not asked once the context is done.
	Retryable func(error) bool
	// OnRetry, if set, is called before each wait, with the operation
	// ("put", "get_range", "head", "delete", "list", "read"), the attempt
	// that failed (1 for the first) and its error. For logs and tests.
	OnRetry func(op string, attempt int, err error)
}

// DefaultRetryPolicy is the policy the zero RetryPolicy stands for.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:    4,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     5 * time.Second,
		Retryable:      DefaultRetryable,
	}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Retryable == nil {
		p.Retryable = d.Retryable
	}
	return p
}

// backoff returns the wait after the given failed attempt (1-based).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// DefaultRetryable retries every error but the ones another attempt cannot
// change: ErrNotFound, ErrInvalidKey, ErrInvalidRange, context.Canceled and
// errors marked with Permanent.
func DefaultRetryable(err error) bool {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrInvalidRange), errors.Is(err, context.Canceled),
		IsPermanent(err):
		return false
	}
	return true
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix (a missing bucket, a
// refused credential), so DefaultRetryable gives up at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// WithRetries returns a Store that retries the operations of s under policy,
// with exponential backoff and jitter, and stops waiting when the context is
// done.
//
//   - Put seeks its reader back to where it was at the call before each
//     attempt, so the reader must start at the object's first byte (offset 0
//     for a file or bytes.Reader).
//   - GetRange retries opening the object, and the returned reader, when a
//     read fails part-way, re-issues GetRange for the bytes not yet read.
//   - List, when it fails part-way, starts again and skips the keys it has
//     already reported (keys come in order), so fn sees each key once. An
//     error returned by fn is never retried.
func WithRetries(s Store, policy RetryPolicy) Store {
	return &retrying{s: s, p: policy.withDefaults()}
}

type retrying struct {
	s Store
	p RetryPolicy
}

var _ Store = (*retrying)(nil)

// Unwrap returns the decorated store.
func (r *retrying) Unwrap() Store { return r.s }

// do runs f until it succeeds, fails for good, or the attempts run out.
func (r *retrying) do(ctx context.Context, op string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var ce *callerError
		if attempt >= r.p.MaxAttempts || ctx.Err() != nil || errors.As(err, &ce) || !r.p.Retryable(err) {
			return err
		}
		if r.p.OnRetry != nil {
			r.p.OnRetry(op, attempt, err)
		}
		if werr := sleep(ctx, r.p.backoff(attempt)); werr != nil {
			return fmt.Errorf("%w (while waiting to retry after: %w)", werr, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *retrying) Put(ctx context.Context, key string, rd io.ReadSeeker, size int64) error {
	start, err := rd.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("remotestore: put %q: cannot seek reader: %w", key, err)
	}
	first := true
	return r.do(ctx, "put", func() error {
		if !first {
			if _, err := rd.Seek(start, io.SeekStart); err != nil {
				return Permanent(fmt.Errorf("remotestore: put %q: cannot rewind reader: %w", key, err))
			}
		}
		first = false
		return r.s.Put(ctx, key, rd, size)
	})
}

func (r *retrying) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if length < 0 {
		length = -1
	}
	var body io.ReadCloser
	err := r.do(ctx, "get_range", func() error {
		var err error
		body, err = r.s.GetRange(ctx, key, off, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &resumingReader{r: r, ctx: ctx, key: key, off: off, remaining: length, body: body}, nil
}

// resumingReader re-opens the range at the first unread byte when a read
// fails part-way.
type resumingReader struct {
	r         *retrying
	ctx       context.Context
	key       string
	off       int64 // of the next byte to read
	remaining int64 // -1: to the end
	body      io.ReadCloser
	failures  int
}

func (rr *resumingReader) Read(p []byte) (int, error) {
	for {
		if rr.body == nil {
			return 0, io.ErrClosedPipe
		}
		if rr.remaining >= 0 && int64(len(p)) > rr.remaining {
			p = p[:rr.remaining]
			if len(p) == 0 {
				return 0, io.EOF
			}
		}
		n, err := rr.body.Read(p)
		rr.off += int64(n)
		if rr.remaining >= 0 {
			rr.remaining -= int64(n)
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		rr.failures++
		if rr.failures >= rr.r.p.MaxAttempts || rr.ctx.Err() != nil || !rr.r.p.Retryable(err) {
			return n, err
		}
		if rr.r.p.OnRetry != nil {
			rr.r.p.OnRetry("read", rr.failures, err)
		}
		_ = rr.body.Close()
		rr.body = nil
		if werr := sleep(rr.ctx, rr.r.p.backoff(rr.failures)); werr != nil {
			return n, err
		}
		var body io.ReadCloser
		oerr := rr.r.do(rr.ctx, "get_range", func() error {
			var err error
			body, err = rr.r.s.GetRange(rr.ctx, rr.key, rr.off, rr.remaining)
			return err
		})
		if oerr != nil {
			return n, fmt.Errorf("remotestore: read %q: %w (re-opening at offset %d: %w)", rr.key, err, rr.off, oerr)
		}
		rr.body = body
		if n > 0 {
			return n, nil
		}
	}
}

func (rr *resumingReader) Close() error {
	if rr.body == nil {
		return nil
	}
	err := rr.body.Close()
	rr.body = nil
	return err
}

func (r *retrying) Head(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	err := r.do(ctx, "head", func() error {
		var err error
		info, err = r.s.Head(ctx, key)
		return err
	})
	return info, err
}

func (r *retrying) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete", func() error { return r.s.Delete(ctx, key) })
}

// callerError carries an error returned by List's fn through the inner
// store, so it is not retried.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

func (r *retrying) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var last string
	seen := false
	err := r.do(ctx, "list", func() error {
		err := r.s.List(ctx, prefix, func(info ObjectInfo) error {
			if seen && info.Key <= last {
				return nil
			}
			if err := fn(info); err != nil {
				return &callerError{err}
			}
			last, seen = info.Key, true
			return nil
		})
		return err
	})
	var ce *callerError
	if errors.As(err, &ce) {
		return ce.err
	}
	return err
}
