package chunkcache

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// On-disk layout; see the package doc.
const (
	chunkSuffix  = ".chunk"
	tmpSuffix    = ".tmp"
	lockFileName = "LOCK"
	hashHexLen   = 32 // 128 bits of SHA-256
)

// errStale reports a cached file that was missing or corrupt and has been
// dropped: Get looks the chunk up again.
var errStale = errors.New("chunkcache: stale entry")

// entry is one cached chunk file. All fields are guarded by Cache.mu.
type entry struct {
	name string
	size int64
	// q is the queue the entry is in; elem is its element there.
	q    *queue
	elem *list.Element
	// freq counts Gets that hit the entry since it entered its queue (or,
	// in main, since its last reinsertion), capped at maxFreq.
	freq uint8
	// prefetched marks an entry a read-ahead download brought in that no
	// Get has touched yet: the first Get is its first access, not a re-read.
	prefetched bool
	// ghosted marks a prefetched entry whose name was in the ghost queue:
	// its first Get counts as the ghost hit a miss would have been.
	ghosted bool
	// pins counts callers about to open the file; a pinned entry is never
	// evicted.
	pins int
	// verified is false for files indexed from a previous run until a Get
	// has checked their size and CRC.
	verified bool
	// removed is set once the entry left the index, for late unpins.
	removed bool
}

// maxFreq caps entry.freq: S3-FIFO's two-bit counter.
const maxFreq = 3

// smallShare is the small queue's share of MaxBytes, in tenths: S3-FIFO's
// 10%.
const smallShare = 10

// queue is one of S3-FIFO's two FIFO queues of cached entries, newest at
// the front.
type queue struct {
	l     list.List
	bytes int64
	gauge *atomic.Int64 // the queue's bytes metric
}

func (q *queue) push(e *entry) {
	e.q, e.elem = q, q.l.PushFront(e)
	q.bytes += e.size
	q.gauge.Store(q.bytes)
}

func (q *queue) remove(e *entry) {
	q.l.Remove(e.elem)
	e.q, e.elem = nil, nil
	q.bytes -= e.size
	q.gauge.Store(q.bytes)
}

// ghost is S3-FIFO's ghost queue: the names (and sizes) of entries evicted
// from the small queue without a re-read, newest at the front, bounded to
// the main queue's share of MaxBytes, summed over the evicted entries'
// sizes: at most as many names as main can hold chunks.
type ghost struct {
	l     list.List                // of ghostRec
	names map[string]*list.Element // into l
	bytes int64
	max   int64
}

type ghostRec struct {
	name string
	size int64
}

// fileName maps a chunk to its file name: a hash of everything that defines
// its bytes, length-prefixed so no two chunks encode alike.
func fileName(c Chunk) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{c.Key, c.ObjectKey} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	for _, v := range []uint64{uint64(c.Offset), uint64(c.Length), uint64(c.CRC32C)} {
		binary.BigEndian.PutUint64(n[:], v)
		h.Write(n[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:hashHexLen/2]) + chunkSuffix
}

// isChunkName reports whether name is one fileName could return.
func isChunkName(name string) bool {
	hexPart, ok := strings.CutSuffix(name, chunkSuffix)
	if !ok || len(hexPart) != hashHexLen {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

func (c *Cache) path(name string) string { return filepath.Join(c.cfg.Dir, name) }

// admitLocked adds a new entry to the index: into main if its name is in
// the ghost queue (it was evicted from small recently and is asked for
// again), else into small. A read-ahead entry always goes to small, and a
// ghost name it had is kept on the entry for its first Get (touchLocked).
// It then evicts what no longer fits, e itself last. c.mu must be held.
func (c *Cache) admitLocked(e *entry) {
	q := &c.mu.small
	if c.lru {
		q = &c.mu.main
	} else if c.ghostRemoveLocked(e.name) {
		if e.prefetched {
			e.ghosted = true
		} else {
			c.m.ghostHits.Add(1)
			q = &c.mu.main
		}
	}
	c.insertLocked(e, q)
	// As in S3-FIFO, a new entry is not evicted to make room for itself:
	// it is held while the others are considered, and evicted only if
	// nothing else can go (a chunk bigger than the cache, or all pinned).
	e.pins++
	c.evictLocked()
	e.pins--
	c.evictLocked()
}

// insertLocked adds e at the front of q. c.mu must be held.
func (c *Cache) insertLocked(e *entry, q *queue) {
	q.push(e)
	c.mu.entries[e.name] = e
	c.mu.bytes += e.size
	c.m.bytes.Store(c.mu.bytes)
	c.m.entries.Store(int64(len(c.mu.entries)))
}

// touchLocked records a Get that hit e. The first Get of a read-ahead entry
// is its first access: it counts nothing, or, if its name was a ghost, moves
// it to main as a miss would have. Any other hit raises e's frequency.
// c.mu must be held.
//
// reread false (GetContinued) records the access without raising the
// frequency: the reader touched the chunk already.
func (c *Cache) touchLocked(e *entry, reread bool) {
	if c.lru {
		e.prefetched = false
		if e.q != nil {
			e.q.l.MoveToFront(e.elem)
		}
		return
	}
	if e.prefetched {
		e.prefetched = false
		if e.ghosted {
			e.ghosted = false
			c.m.ghostHits.Add(1)
			if e.q == &c.mu.small {
				c.mu.small.remove(e)
				c.mu.main.push(e)
			}
		}
		return
	}
	if reread && e.freq < maxFreq {
		e.freq++
	}
}

// removeLocked drops e from the index and unlinks its file; open
// descriptors keep reading it. Unlinking under c.mu keeps a late unlink from
// removing a file a new download has renamed to the same name. c.mu must be
// held.
func (c *Cache) removeLocked(e *entry) {
	if e.removed {
		return
	}
	e.removed = true
	e.q.remove(e)
	delete(c.mu.entries, e.name)
	c.mu.bytes -= e.size
	c.m.bytes.Store(c.mu.bytes)
	c.m.entries.Store(int64(len(c.mu.entries)))
	if err := os.Remove(c.path(e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.logger.Warn("cannot remove cached chunk", "file", e.name, "err", err)
	}
}

// evictLocked evicts unpinned entries until the cached bytes fit in
// MaxBytes, by S3-FIFO: from the small queue while it holds at least its
// share of MaxBytes (or main has nothing to give), else from main. Pinned
// entries are skipped where they are. c.mu must be held.
func (c *Cache) evictLocked() {
	for c.mu.bytes > c.cfg.MaxBytes {
		var ok bool
		if c.lru {
			ok = c.evictLRULocked()
		} else if c.mu.small.bytes >= c.smallMax() || c.mu.main.l.Len() == 0 {
			ok = c.evictSmallLocked() || c.evictMainLocked()
		} else {
			ok = c.evictMainLocked() || c.evictSmallLocked()
		}
		if !ok { // everything left is pinned
			return
		}
	}
}

// smallMax is the small queue's share of MaxBytes.
func (c *Cache) smallMax() int64 { return max(c.cfg.MaxBytes/smallShare, 1) }

// evictSmallLocked walks the small queue from its oldest entry: an entry a
// Get has re-read since it came in moves to main (its frequency spent on the
// move), the first one nobody re-read is evicted and its name goes to the
// ghost queue. It reports whether it evicted one. c.mu must be held.
func (c *Cache) evictSmallLocked() bool {
	for el := c.mu.small.l.Back(); el != nil; {
		prev := el.Prev()
		e := el.Value.(*entry)
		switch {
		case e.pins > 0:
		case e.freq > 0:
			c.mu.small.remove(e)
			e.freq = 0
			c.mu.main.push(e)
			c.m.promotions.Add(1)
		default:
			// A read-ahead chunk evicted before any Get read it leaves no
			// ghost: nothing accessed it, so asking for it later is a first
			// access (into small), not a return (into main). Else a
			// read-ahead deeper than small holds would send a scan to main.
			if !e.prefetched {
				c.ghostAddLocked(e.name, e.size)
			}
			c.removeLocked(e)
			c.m.evictions.Add(1)
			return true
		}
		el = prev
	}
	return false
}

// evictLRULocked evicts the least recently used unpinned entry (Policy
// lru: every entry is in main, most recent at the front). It reports
// whether it evicted one. c.mu must be held.
func (c *Cache) evictLRULocked() bool {
	for el := c.mu.main.l.Back(); el != nil; el = el.Prev() {
		if e := el.Value.(*entry); e.pins == 0 {
			c.removeLocked(e)
			c.m.evictions.Add(1)
			return true
		}
	}
	return false
}

// evictMainLocked walks the main queue from its oldest entry: an entry
// re-read since it was (re)inserted goes back to the front with one read
// less, the first other one is evicted. It reports whether it evicted one;
// it stops when a whole walk found only pinned entries. c.mu must be held.
func (c *Cache) evictMainLocked() bool {
	for {
		moved := false
		for el := c.mu.main.l.Back(); el != nil; {
			prev := el.Prev()
			e := el.Value.(*entry)
			switch {
			case e.pins > 0:
			case e.freq > 0:
				e.freq--
				c.mu.main.l.MoveToFront(el)
				moved = true
			default:
				c.removeLocked(e)
				c.m.evictions.Add(1)
				return true
			}
			el = prev
		}
		if !moved { // each walk that moves one lowers a frequency: this ends
			return false
		}
	}
}

// ghostAddLocked remembers the name of an entry evicted from small, and
// forgets the oldest names beyond the ghost's bound. c.mu must be held.
func (c *Cache) ghostAddLocked(name string, size int64) {
	g := &c.mu.ghost
	c.ghostRemoveLocked(name)
	g.names[name] = g.l.PushFront(ghostRec{name, size})
	g.bytes += size
	for g.bytes > g.max {
		c.ghostRemoveLocked(g.l.Back().Value.(ghostRec).name)
	}
	c.m.ghostEntries.Store(int64(len(g.names)))
}

// ghostRemoveLocked forgets name and reports whether it was a ghost. c.mu
// must be held.
func (c *Cache) ghostRemoveLocked(name string) bool {
	g := &c.mu.ghost
	el, ok := g.names[name]
	if !ok {
		return false
	}
	g.bytes -= g.l.Remove(el).(ghostRec).size
	delete(g.names, name)
	c.m.ghostEntries.Store(int64(len(g.names)))
	return true
}

// unpin drops one pin on e and evicts what a pin held back. It locks c.mu.
func (c *Cache) unpin(e *entry) {
	c.mu.Lock()
	e.pins--
	if e.pins == 0 && c.mu.bytes > c.cfg.MaxBytes {
		c.evictLocked()
	}
	c.mu.Unlock()
}

// openCached opens a cached entry the caller has pinned. A file from a
// previous run (verified false) is checked first. A missing or corrupt file
// is dropped and errStale returned. It locks c.mu to read and to record
// whether the file was checked.
func (c *Cache) openCached(e *entry, ch Chunk) (*os.File, error) {
	c.mu.Lock()
	verified := e.verified
	c.mu.Unlock()
	path := c.path(e.name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.logger.Warn("cached chunk file vanished; fetching again", "file", e.name, "key", ch.Key)
		c.drop(e)
		return nil, errStale
	}
	if err != nil {
		return nil, fmt.Errorf("chunkcache: cannot open %s in %q: %w", ch, path, err)
	}
	if verified {
		return f, nil
	}
	if err := verifyFile(f, ch); err != nil {
		_ = f.Close()
		if !errors.Is(err, ErrCorruptChunk) {
			return nil, fmt.Errorf("chunkcache: cannot check %q: %w", path, err)
		}
		_ = c.corrupt(ch, "cached", err)
		c.drop(e)
		return nil, errStale
	}
	c.mu.Lock()
	e.verified = true
	c.mu.Unlock()
	return f, nil
}

// drop removes e from the index. It locks c.mu.
func (c *Cache) drop(e *entry) {
	c.mu.Lock()
	c.removeLocked(e)
	c.mu.Unlock()
}

// verifyFile checks f's size and CRC against ch with positioned reads, so
// f's offset stays 0.
func verifyFile(f *os.File, ch Chunk) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != ch.Length {
		return fmt.Errorf("%w: %s: cached file has %d bytes", ErrCorruptChunk, ch, fi.Size())
	}
	h := crc32.New(castagnoli)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, ch.Length), make([]byte, copyBufSize)); err != nil {
		return err
	}
	if got := h.Sum32(); got != ch.CRC32C {
		return fmt.Errorf("%w: %s: cached file has CRC-32C %08x, want %08x", ErrCorruptChunk, ch, got, ch.CRC32C)
	}
	return nil
}

// load indexes the chunk files a previous run left in the directory into the
// main queue with no re-reads, oldest modification at the back, removes temp
// files and empty chunk files, and evicts down to MaxBytes. Unknown files are left alone. It runs
// in New, before the Cache is shared, and locks c.mu to fill the index.
func (c *Cache) load() error {
	des, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		return fmt.Errorf("chunkcache: cannot read cache directory %q: %w", c.cfg.Dir, err)
	}
	type found struct {
		name  string
		size  int64
		mtime time.Time
	}
	var chunks []found
	var removed, unknown int
	for _, de := range des {
		name := de.Name()
		switch {
		case name == lockFileName:
		case strings.HasSuffix(name, tmpSuffix) && de.Type().IsRegular():
			if err := os.Remove(c.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("chunkcache: cannot remove temp file %q: %w", c.path(name), err)
			}
			removed++
		case isChunkName(name) && de.Type().IsRegular():
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("chunkcache: cannot stat %q: %w", c.path(name), err)
			}
			if fi.Size() == 0 { // torn: a chunk is never empty
				if err := os.Remove(c.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("chunkcache: cannot remove empty chunk %q: %w", c.path(name), err)
				}
				removed++
				continue
			}
			chunks = append(chunks, found{name, fi.Size(), fi.ModTime()})
		default:
			unknown++
			c.logger.Warn("unknown file in cache directory left alone", "file", name)
		}
	}
	slices.SortFunc(chunks, func(a, b found) int {
		if n := a.mtime.Compare(b.mtime); n != 0 {
			return n
		}
		return strings.Compare(a.name, b.name)
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range chunks { // oldest first, so the newest ends at the front
		c.insertLocked(&entry{name: f.name, size: f.size}, &c.mu.main)
	}
	c.evictLocked()
	c.logger.Info("chunk cache opened", "dir", c.cfg.Dir, "chunks", len(c.mu.entries),
		"bytes", c.mu.bytes, "max_bytes", c.cfg.MaxBytes, "removed", removed, "unknown", unknown)
	return nil
}

// Remove drops ch from the cache, if it is there: a reader holding its file
// keeps reading it. For the chunks of deleted segments, which nothing will
// read again.
func (c *Cache) Remove(ch Chunk) {
	name := fileName(ch)
	c.mu.Lock()
	if e := c.mu.entries[name]; e != nil {
		c.removeLocked(e)
	}
	c.mu.Unlock()
}
