package tier

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/tier/chunkcache"
	"github.com/stratalog/strata/tier/internal/flight"
)

// maxSidecarBytes bounds a sidecar read from the store (a 2 GiB segment of
// 100-byte batches would need 500 MB: far beyond any sane segment).
const maxSidecarBytes = 512 << 20

// Read serves the batches from the one holding offset out of the remote
// tier, like localstore.Log.Read: whole batches, at most maxBytes but at
// least one batch if minOneBatch, never past the end of the chunk that holds
// the first one. The slice is a cached chunk file; Release closes it. It
// prefetches the next Config.ReadaheadChunks chunks, into the next segment if
// need be. Errors wrap ErrOffsetOutOfRange (no COPY_FINISHED segment holds
// offset) or ErrUnavailable (the store or the cache failed, a checksum did not
// hold, or Config.FetchMaxWait passed): never partial or wrong data.
func (m *Manager) Read(ctx context.Context, topic string, partition int32, offset, maxBytes int64, minOneBatch bool) (localstore.Slice, error) {
	var sl localstore.Slice
	err := m.serve(ctx, tp{topic, partition}, offset, func(ctx context.Context, key tp) (int64, error) {
		var err error
		sl, _, err = m.read(ctx, key, offset, maxBytes, minOneBatch)
		return sl.Len, err
	})
	return sl, err
}

// ReadMany is Read continued across chunk and segment boundaries: consecutive
// slices (each whole batches of one cached chunk) holding at most maxBytes in
// all. A fetch thus gets as much as its partition limit allows, not one chunk.
// The read stops early, with what it has, where the remote tier ends or a
// later chunk cannot be had.
func (m *Manager) ReadMany(ctx context.Context, topic string, partition int32, offset, maxBytes int64, minOneBatch bool) ([]localstore.Slice, error) {
	var out []localstore.Slice
	err := m.serve(ctx, tp{topic, partition}, offset, func(ctx context.Context, key tp) (int64, error) {
		var total int64
		for total < maxBytes || len(out) == 0 {
			sl, next, err := m.read(ctx, key, offset, maxBytes-total, minOneBatch && len(out) == 0)
			if err != nil {
				if len(out) > 0 {
					return total, nil
				}
				return 0, err
			}
			if sl.Len == 0 {
				break
			}
			out = append(out, sl)
			total += sl.Len
			offset = next
		}
		return total, nil
	})
	return out, err
}

// serve runs one remote read with the metrics and the remote.fetch.max.wait.ms
// bound; read returns the bytes it served.
func (m *Manager) serve(ctx context.Context, key tp, offset int64, read func(context.Context, tp) (int64, error)) error {
	start := time.Now()
	m.m.fetchRequests.Inc()
	// Kafka's remote reader queue is bounded (remote.log.reader.max.pending.tasks);
	// a read beyond it is refused at once rather than queued without bound.
	if n := m.pending.Add(1); n > int64(m.cfg.ReaderMaxPendingTasks) {
		m.pending.Add(-1)
		m.m.fetchErrors.Inc()
		m.m.fetchRejected.Inc()
		return fmt.Errorf("%w: %s-%d: %d remote reads in progress (remote.log.reader.max.pending.tasks=%d)",
			ErrUnavailable, key.topic, key.partition, n-1, m.cfg.ReaderMaxPendingTasks)
	}
	defer m.pending.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, m.cfg.FetchMaxWait)
	defer cancel()
	n, err := read(ctx, key)
	if err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
		// Remote retention may have deleted the segment meanwhile: then the
		// offset is out of range, not the store unavailable.
		if _, _, lerr := m.locate(key, offset); lerr != nil {
			err = fmt.Errorf("%w (%w)", lerr, err)
		}
	}
	m.m.fetchSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		if !errors.Is(err, ErrOffsetOutOfRange) {
			m.m.fetchErrors.Inc()
		}
		return err
	}
	m.m.fetchBytes.Add(float64(n))
	return nil
}

// locate finds the COPY_FINISHED segment holding offset, or, for an offset
// in a gap between segments (a compacted log's), the next segment: its index
// in finished. As in Kafka, a read inside a gap is served from the next
// batch that exists.
func (m *Manager) locate(key tp, offset int64) ([]metadata.RemoteSegment, int, error) {
	ps := m.lookup(key)
	var finished []metadata.RemoteSegment
	if ps != nil {
		finished = m.viewOf(ps).finished
	}
	i := sort.Search(len(finished), func(i int) bool { return finished[i].BaseOffset > offset }) - 1
	if i >= 0 && finished[i].EndOffset < offset {
		i++ // in a gap after finished[i]: the next segment, if any
	}
	if i < 0 || i >= len(finished) {
		return nil, 0, fmt.Errorf("%w: offset %d of %s-%d", ErrOffsetOutOfRange, offset, key.topic, key.partition)
	}
	return finished, i, nil
}

// read serves whole batches of one chunk from offset; next is the offset after
// the last batch served.
func (m *Manager) read(ctx context.Context, key tp, offset, maxBytes int64, minOneBatch bool) (sl localstore.Slice, next int64, err error) {
	finished, i, err := m.locate(key, offset)
	if err != nil {
		return localstore.Slice{}, 0, err
	}
	for ; i < len(finished); i++ {
		seg := finished[i]
		offset = max(offset, seg.BaseOffset)
		sc, err := m.sidecar(ctx, key, seg)
		if err != nil {
			return localstore.Slice{}, 0, err
		}
		b := sc.findBatch(offset)
		if b == len(sc.Batches) {
			// No batch holds offset or any after it here: the next segment
			// does, if there is one (after a compaction gap, perhaps).
			if i+1 < len(finished) {
				continue
			}
			break
		}
		return m.readBatches(ctx, key, finished, i, sc, b, maxBytes, minOneBatch)
	}
	return localstore.Slice{}, 0, fmt.Errorf("%w: offset %d of %s-%d", ErrOffsetOutOfRange, offset, key.topic, key.partition)
}

// readBatches returns a slice of chunk file from batch b of finished[i], and
// the offset after its last batch.
func (m *Manager) readBatches(ctx context.Context, key tp, finished []metadata.RemoteSegment, i int, sc *sidecar, b int, maxBytes int64, minOneBatch bool) (localstore.Slice, int64, error) {
	seg := finished[i]
	c := sc.chunkOf(b)
	ch := sc.Chunks[c]
	first := sc.Batches[b].Pos
	end := sc.batchEnd(b)
	if end-first > maxBytes && !minOneBatch {
		return localstore.Slice{}, 0, nil
	}
	// Reads of one chunk in a row on a partition are one access for the
	// cache's policy: a fetch warming the chunk (partition.Log.Warm) then
	// reading it, or a sequential consumer's fetch resuming inside the chunk
	// where its previous one stopped, is no re-read.
	cc := m.chunk(key, seg, c, ch)
	get := m.cache.Get
	if ps := m.lookup(key); ps != nil {
		if prev := ps.lastChunk.Swap(&cc.Key); prev != nil && *prev == cc.Key {
			get = m.cache.GetContinued
		}
	}
	f, release, err := get(ctx, cc)
	if err != nil {
		return localstore.Slice{}, 0, fmt.Errorf("%w: %s-%d offset %d: %w", ErrUnavailable, key.topic, key.partition, sc.Batches[b].BaseOffset, err)
	}
	last := b
	for j := b + 1; j < ch.FirstBatch+ch.NumBatches; j++ {
		e := sc.batchEnd(j)
		if e-first > maxBytes {
			break
		}
		end, last = e, j
	}
	m.readAhead(key, finished, i, sc, c)
	var once atomic.Bool
	return localstore.Slice{
		File: f, Pos: first - ch.Pos, Len: end - first,
		Release: func() {
			if once.CompareAndSwap(false, true) {
				release()
			}
		},
	}, sc.Batches[last].LastOffset + 1, nil
}

// chunk describes chunk c of a remote segment to the cache.
func (m *Manager) chunk(key tp, seg metadata.RemoteSegment, c int, ch chunkEntry) chunkcache.Chunk {
	obj := logKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID)
	return chunkcache.Chunk{
		Key:       fmt.Sprintf("%s#%d", obj, c),
		ObjectKey: obj,
		Offset:    ch.Pos, Length: ch.Len, CRC32C: ch.CRC,
	}
}

// readAhead prefetches the Config.ReadaheadChunks chunks after chunk c of
// finished[i], crossing into the following segments as needed. The sidecar
// of a following segment not in memory yet is loaded in the background.
func (m *Manager) readAhead(key tp, finished []metadata.RemoteSegment, i int, sc *sidecar, c int) {
	n := m.cfg.ReadaheadChunks
	for c++; n > 0; c++ {
		if c < len(sc.Chunks) {
			m.cache.Prefetch(m.chunk(key, finished[i], c, sc.Chunks[c]))
			n--
			continue
		}
		if i++; i >= len(finished) {
			return
		}
		next := finished[i]
		if sc = m.sidecars.get(sidecarKey(key.topic, key.partition, next.BaseOffset, next.UploadID)); sc == nil {
			m.prefetchSegment(key, next, n)
			return
		}
		c = -1
	}
}

// prefetchSegment loads seg's sidecar in the background, then prefetches its
// first n chunks. It gives up if too many such loads are running.
func (m *Manager) prefetchSegment(key tp, seg metadata.RemoteSegment, n int) {
	select {
	case m.prefetchSem <- struct{}{}:
	default:
		return
	}
	m.jobs.Lock()
	closed := m.jobs.closed
	if !closed {
		m.wg.Add(1)
	}
	m.jobs.Unlock()
	if closed {
		<-m.prefetchSem
		return
	}
	go func() {
		defer m.wg.Done()
		defer func() { <-m.prefetchSem }()
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		defer cancel()
		sc, err := m.sidecar(ctx, key, seg)
		if err != nil {
			return
		}
		for c := 0; c < n && c < len(sc.Chunks); c++ {
			m.cache.Prefetch(m.chunk(key, seg, c, sc.Chunks[c]))
		}
	}()
}

// sidecarLoadTimeout bounds a shared sidecar download, beyond the store's
// own per-attempt timeouts.
const sidecarLoadTimeout = 2 * time.Minute

// sidecar returns seg's sidecar, from memory or fetched once (concurrent
// callers share one GET) and checked against the index entry. The download
// is not the caller's (see sidecarCache.load): a caller that stops waiting
// (remote.fetch.max.wait.ms) leaves it to finish and be cached for the next
// read; Close cancels it.
func (m *Manager) sidecar(ctx context.Context, key tp, seg metadata.RemoteSegment) (*sidecar, error) {
	k := sidecarKey(key.topic, key.partition, seg.BaseOffset, seg.UploadID)
	sc, err := m.sidecars.load(ctx, k, func(ctx context.Context) (*sidecar, error) {
		sc, err := fetchSidecar(ctx, m.store, k)
		if err != nil {
			return nil, err
		}
		if err := sc.matches(key, seg); err != nil {
			return nil, err
		}
		return sc, nil
	})
	if err != nil {
		if errors.Is(err, errBadSidecar) {
			m.logger.Error("remote segment has a bad sidecar; it cannot be served", "key", k, "err", err)
		}
		return nil, fmt.Errorf("%w: sidecar %q: %w", ErrUnavailable, k, err)
	}
	return sc, nil
}

// matches checks a sidecar against its index entry.
func (s *sidecar) matches(key tp, seg metadata.RemoteSegment) error {
	if s.Topic != key.topic || s.Partition != key.partition || s.BaseOffset != seg.BaseOffset ||
		s.EndOffset != seg.EndOffset || s.Size != seg.Size || (seg.State == metadata.CopyFinished && s.LogCRC != seg.CRC32C) {
		return fmt.Errorf("%w: describes %s-%d %d..%d (%d bytes, crc %08x), the index says %d..%d (%d bytes, crc %08x)",
			errBadSidecar, s.Topic, s.Partition, s.BaseOffset, s.EndOffset, s.Size, s.LogCRC,
			seg.BaseOffset, seg.EndOffset, seg.Size, seg.CRC32C)
	}
	return nil
}

// OffsetForTimestamp finds the first record of the remote tier whose
// timestamp is >= ts: the index's max timestamps pick the segment, the
// sidecar's batch list the batch, and decoding the batch the record.
func (m *Manager) OffsetForTimestamp(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, ok bool, err error) {
	key := tp{topic, partition}
	ps := m.lookup(key)
	if ps == nil {
		return 0, 0, false, nil
	}
	for _, seg := range m.viewOf(ps).finished {
		if seg.MaxTimestamp < ts {
			continue
		}
		sc, err := m.sidecar(ctx, key, seg)
		if err != nil {
			return 0, 0, false, err
		}
		for b, be := range sc.Batches {
			if be.MaxTimestamp < ts {
				continue
			}
			buf, err := m.batchBytes(ctx, key, seg, sc, b)
			if err != nil {
				return 0, 0, false, err
			}
			err = localstore.ForEachRecord(buf, func(o, t int64) bool {
				if t >= ts {
					offset, timestamp, ok = o, t, true
				}
				return !ok
			})
			if err != nil {
				return 0, 0, false, fmt.Errorf("%w: %s-%d batch %d: %w", ErrUnavailable, topic, partition, be.BaseOffset, err)
			}
			if ok {
				return offset, timestamp, true, nil
			}
		}
	}
	return 0, 0, false, nil
}

// batchBytes reads batch b of a remote segment through the chunk cache.
func (m *Manager) batchBytes(ctx context.Context, key tp, seg metadata.RemoteSegment, sc *sidecar, b int) ([]byte, error) {
	c := sc.chunkOf(b)
	ch := sc.Chunks[c]
	f, release, err := m.cache.Get(ctx, m.chunk(key, seg, c, ch))
	if err != nil {
		return nil, fmt.Errorf("%w: %s-%d: %w", ErrUnavailable, key.topic, key.partition, err)
	}
	defer release()
	buf := make([]byte, sc.batchEnd(b)-sc.Batches[b].Pos)
	if _, err := f.ReadAt(buf, sc.Batches[b].Pos-ch.Pos); err != nil {
		return nil, fmt.Errorf("%w: %s-%d: read cached chunk: %w", ErrUnavailable, key.topic, key.partition, err)
	}
	return buf, nil
}

// sidecarCache keeps decoded sidecars, least recently used out first, within
// a byte bound; its group loads them, one download per sidecar shared by
// every caller (tier/internal/flight's rules).
type sidecarCache struct {
	max     int64
	flights *flight.Group[string, *sidecar]
	mu      struct {
		sync.Mutex
		lru     list.List // of *scEntry, most recent at the front
		entries map[string]*list.Element
		bytes   int64
	}
}

type scEntry struct {
	key string
	sc  *sidecar
}

// newSidecarCache returns a cache of at most maxBytes of sidecars whose
// downloads each run for at most timeout.
func newSidecarCache(maxBytes int64, timeout time.Duration) *sidecarCache {
	c := &sidecarCache{max: maxBytes}
	c.mu.entries = make(map[string]*list.Element)
	c.flights = flight.New[string, *sidecar]((*sidecarLRU)(c), flight.Options{Timeout: timeout})
	return c
}

// get returns a cached sidecar or nil.
func (c *sidecarCache) get(key string) *sidecar {
	sc, _ := (*sidecarLRU)(c).Get(key)
	return sc
}

func (c *sidecarCache) put(key string, sc *sidecar) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, sc)
}

func (c *sidecarCache) putLocked(key string, sc *sidecar) {
	if e := c.mu.entries[key]; e != nil {
		c.mu.bytes -= e.Value.(*scEntry).sc.memSize()
		c.mu.lru.Remove(e)
	}
	c.mu.entries[key] = c.mu.lru.PushFront(&scEntry{key: key, sc: sc})
	c.mu.bytes += sc.memSize()
	for c.mu.bytes > c.max && c.mu.lru.Len() > 1 {
		e := c.mu.lru.Back()
		ent := e.Value.(*scEntry)
		c.mu.lru.Remove(e)
		delete(c.mu.entries, ent.key)
		c.mu.bytes -= ent.sc.memSize()
	}
}

func (c *sidecarCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.mu.entries[key]; e != nil {
		c.mu.bytes -= e.Value.(*scEntry).sc.memSize()
		c.mu.lru.Remove(e)
		delete(c.mu.entries, key)
	}
}

// load returns the cached sidecar or downloads it with fetch, once for all
// concurrent callers, by the rules of tier/internal/flight: the download
// runs on its own goroutine under its own deadline (sidecarLoadTimeout),
// every caller waits with its own ctx, and one whose ctx ends first gets
// its error while the download goes on and caches its result for the next.
func (c *sidecarCache) load(ctx context.Context, key string, fetch flight.Fetch[*sidecar]) (*sidecar, error) {
	sc, _, err := c.flights.Do(ctx, key, fetch)
	return sc, err
}

// close cancels the downloads in progress and waits for them to end.
func (c *sidecarCache) close() { c.flights.Close() }

// sidecarLRU is the Cache the flight group fills; each method locks c.mu.
type sidecarLRU sidecarCache

func (l *sidecarLRU) Get(key string) (*sidecar, bool) {
	c := (*sidecarCache)(l)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.mu.entries[key]; e != nil {
		c.mu.lru.MoveToFront(e)
		return e.Value.(*scEntry).sc, true
	}
	return nil, false
}

func (l *sidecarLRU) Has(key string) bool {
	c := (*sidecarCache)(l)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.entries[key] != nil
}

func (l *sidecarLRU) Add(key string, sc *sidecar, _ int) {
	(*sidecarCache)(l).put(key, sc)
}
