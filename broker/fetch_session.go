package broker

// Incremental fetch sessions (KIP-227).
//
// A client opens a session with a full fetch (session id 0, epoch 0); the
// broker remembers the partitions and what it last told the client about each.
// Later fetches (same id, next epoch) carry only changes, and the response
// carries only partitions with news: records, a moved high watermark or log
// start offset, or an error. Epoch -1 closes a session. The cache holds a
// bounded number of sessions and evicts the least recently used.

import (
	"math/rand/v2"
	"sync"
	"time"
)

// sessKey names a partition in a session: by topic ID from Fetch v13, by name before.
type sessKey struct {
	name  string
	id    [16]byte
	index int32
}

// sessPart is one partition of a session: the client's fetch position and
// what the broker last sent.
type sessPart struct {
	key                sessKey
	fetchOffset        int64
	maxBytes           int32
	currentLeaderEpoch int32
	lastFetchedEpoch   int32 // v12+, -1: none (a follower's divergence check)

	sentHW       int64
	sentLogStart int64
	sentErr      int16
	sent         bool
}

type fetchSession struct {
	// inUse serialises fetches on one session; a well-behaved client never
	// has two in flight, but a misbehaving one must not race the state.
	inUse sync.Mutex
	id    int32
	epoch int32 // the epoch the next request must carry
	parts []*sessPart
	index map[sessKey]*sessPart
	used  time.Time
}

func (fs *fetchSession) upsert(p sessPart) {
	if cur, ok := fs.index[p.key]; ok {
		cur.fetchOffset, cur.maxBytes, cur.currentLeaderEpoch = p.fetchOffset, p.maxBytes, p.currentLeaderEpoch
		return
	}
	np := p
	fs.parts = append(fs.parts, &np)
	fs.index[p.key] = &np
}

func (fs *fetchSession) forget(k sessKey) {
	if _, ok := fs.index[k]; !ok {
		return
	}
	delete(fs.index, k)
	for i, p := range fs.parts {
		if p.key == k {
			fs.parts = append(fs.parts[:i], fs.parts[i+1:]...)
			return
		}
	}
}

// rotate moves the partitions that returned data to the back, so a partition
// that cannot fit in one response is first in line the next time.
func (fs *fetchSession) rotate(gotData map[sessKey]bool) {
	if len(gotData) == 0 {
		return
	}
	front := fs.parts[:0:0]
	var back []*sessPart
	for _, p := range fs.parts {
		if gotData[p.key] {
			back = append(back, p)
		} else {
			front = append(front, p)
		}
	}
	fs.parts = append(front, back...)
}

func nextEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

// fetchSessions is the session cache. A session is used by one fetch at a
// time: the client sends the next epoch only after the previous answer.
type fetchSessions struct {
	max int
	mu  struct {
		sync.Mutex
		byID map[int32]*fetchSession
	}
}

func newFetchSessions(max int) *fetchSessions {
	c := &fetchSessions{max: max}
	c.mu.byID = map[int32]*fetchSession{}
	return c
}

// create makes a new session, evicting the least recently used one if full.
func (c *fetchSessions) create() *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.mu.byID) >= c.max {
		var oldest *fetchSession
		for _, s := range c.mu.byID {
			if oldest == nil || s.used.Before(oldest.used) {
				oldest = s
			}
		}
		delete(c.mu.byID, oldest.id)
	}
	var id int32
	for id == 0 || c.mu.byID[id] != nil {
		id = rand.Int32()
	}
	// Epoch 0 is the full fetch that creates the session; fetchSet advances
	// the epoch after every request, so the first incremental fetch is 1.
	s := &fetchSession{id: id, epoch: 0, index: map[sessKey]*sessPart{}, used: time.Now()}
	c.mu.byID[id] = s
	return s
}

func (c *fetchSessions) get(id int32) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.mu.byID[id]
	if s != nil {
		s.used = time.Now()
	}
	return s
}

func (c *fetchSessions) remove(id int32) {
	c.mu.Lock()
	delete(c.mu.byID, id)
	c.mu.Unlock()
}
