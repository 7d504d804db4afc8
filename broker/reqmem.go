package broker

import (
	"cmp"
	"context"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// reqMem is queued.max.request.bytes: a budget, shared by every connection,
// for the bytes of requests that have been read but not yet handled.
//
// A frame is not allocated at the size its prefix declares. Its buffer starts
// at the declared size halved until it is at most firstFrameChunk, and doubles
// (ending exactly at the declared size) each time it fills; the buffer's
// capacity is charged before it is allocated. So a connection holds at most
// twice what it has sent, and 30 clients that each declare 100 MB and send
// slowly hold what they sent, not 3 GB. When a growth step does not fit, the
// connection stops reading its socket and waits; the budget comes back when
// the request has been handled, or its connection closes.
//
// Waiting for memory while holding memory can deadlock: if every connection
// holds part of a large frame and waits for more, none completes and none
// releases. reqMem never grants a step that could lead there. It treats the
// frames as Dijkstra's banker treats processes: a frame's claim is its
// declared size, what it holds is its buffer, its need the difference. A
// request being handled needs nothing more and returns what it holds when its
// handler does. A grant is made only if, after it, the frames being read can
// complete one after another, each with what the handled requests and the
// frames before it return: sorted by need, each need is at most the budget
// less what the frames being read hold, plus what the frames before it hold
// (for one kind of resource this order is the best one). In such a state the
// frame with the least need always gets its next step (once memory that
// handled requests hold has returned): the step lowers its need and raises
// its holding by the same amount, so it stays first and the sums behind it do
// not change, and on its last step it becomes a handled request that returns
// what it holds. So reading never stops for good for want of memory while
// senders send. The start is such a state because every declared size is at
// most socket.request.max.bytes, which config keeps at or below
// queued.max.request.bytes.
//
// The argument assumes handlers return. The ones that wait for other clients
// (JoinGroup, SyncGroup, a long-polling Fetch) are bounded by their timeouts.
// A sender that stops halfway holds its part until its frame deadline
// (frameTimeout) closes the connection; the broker logs that. While a buffer
// doubles, the old one lives until the copy is done and then until the
// collector frees it; that is not charged (it is at most half of the new
// buffer, which is). The RSS test in e2e measures all of it.
type reqMem struct {
	limit   int64 // -1: unbounded
	held    prometheus.Gauge
	waits   prometheus.Counter
	waiting atomic.Int64 // connections waiting in grow

	mu struct {
		sync.Mutex
		used    int64
		partial map[*frameMem]struct{} // frames that hold memory and need more
		sumNeed int64                  // of partial
		sumHeld int64                  // of partial
		peak    int64                  // highest used (tests)
		wake    chan struct{}          // closed when memory is released
	}
}

// frameMem is one frame's account.
type frameMem struct {
	size int64 // declared
	held int64 // charged: the capacity of its buffer
}

func (f *frameMem) need() int64 { return f.size - f.held }

// firstFrameChunk bounds a frame's first buffer.
const firstFrameChunk = 64 << 10

func newReqMem(limit int64, m *Metrics) *reqMem {
	r := &reqMem{limit: limit, held: m.requestMemory, waits: m.requestMemoryWaits}
	r.mu.partial = map[*frameMem]struct{}{}
	r.mu.wake = make(chan struct{})
	return r
}

// grow charges f for a buffer of to bytes (to > f.held), waiting until the
// grant is safe. It returns ctx's error if ctx ends first; f is unchanged then.
func (r *reqMem) grow(ctx context.Context, f *frameMem, to int64) error {
	waited := false
	for {
		r.mu.Lock()
		if r.limit < 0 || r.safeLocked(f, to) {
			r.setLocked(f, to)
			r.mu.Unlock()
			return nil
		}
		wake := r.mu.wake
		r.mu.Unlock()
		if !waited {
			waited = true
			r.waits.Inc()
			r.waiting.Add(1)
			defer r.waiting.Add(-1)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release returns everything f holds. The caller has dropped the frame.
func (r *reqMem) release(f *frameMem) {
	if f == nil || f.held == 0 {
		return
	}
	if f.held >= collectAfterBytes && r.waiting.Load() > 0 {
		// Left to itself, Go's collector lets the heap grow to twice what was
		// live at its last cycle, and returns freed pages to the OS slowly, so
		// a dropped 100 MB frame (and the smaller buffers it grew out of)
		// would stay resident beside the frames the budget lets in next. When
		// connections wait for the budget, hand the memory back before the
		// budget, so that the budget bounds what is resident. Without waiters
		// the collector paces itself.
		debug.FreeOSMemory()
	}
	r.mu.Lock()
	r.setLocked(f, 0)
	close(r.mu.wake)
	r.mu.wake = make(chan struct{})
	r.mu.Unlock()
}

// collectAfterBytes is the size of a released frame for which release runs
// the collector while connections wait: at most one collection per 8 MiB.
const collectAfterBytes = 8 << 20

// setLocked moves f to holding n bytes and keeps the sums. r.mu must be held.
func (r *reqMem) setLocked(f *frameMem, n int64) {
	if _, ok := r.mu.partial[f]; ok {
		delete(r.mu.partial, f)
		r.mu.sumNeed -= f.need()
		r.mu.sumHeld -= f.held
	}
	r.mu.used += n - f.held
	r.held.Add(float64(n - f.held))
	f.held = n
	if f.held > 0 && f.need() > 0 {
		r.mu.partial[f] = struct{}{}
		r.mu.sumNeed += f.need()
		r.mu.sumHeld += f.held
	}
	r.mu.peak = max(r.mu.peak, r.mu.used)
}

// safeLocked reports whether f may hold to bytes: whether, after that, every
// frame being read can still complete (the banker's check; see reqMem). r.mu
// must be held.
func (r *reqMem) safeLocked(f *frameMem, to int64) bool {
	free := r.limit - r.mu.used - (to - f.held)
	if free < 0 {
		return false
	}
	needAfter := f.size - to
	need, held := r.mu.sumNeed, r.mu.sumHeld
	if _, ok := r.mu.partial[f]; ok {
		need, held = need-f.need(), held-f.held
	}
	if needAfter > 0 {
		need, held = need+needAfter, held+to
	}
	if need <= free { // every frame could complete at once
		return true
	}
	type acct struct{ need, held int64 }
	frames := make([]acct, 0, len(r.mu.partial)+1)
	for p := range r.mu.partial {
		if p != f {
			frames = append(frames, acct{p.need(), p.held})
		}
	}
	if needAfter > 0 {
		frames = append(frames, acct{needAfter, to})
	}
	slices.SortFunc(frames, func(a, b acct) int { return cmp.Compare(a.need, b.need) })
	// Requests being handled need nothing more and return what they hold.
	avail := r.limit - held
	for _, a := range frames {
		if a.need > avail {
			return false
		}
		avail += a.held
	}
	return true
}

// used and peak are for tests.
func (r *reqMem) used() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.used
}

func (r *reqMem) peak() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.peak
}
