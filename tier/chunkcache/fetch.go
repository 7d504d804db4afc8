package chunkcache

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/stratalog/strata/tier/internal/flight"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// copyBufSize is the buffer a download copies the body through.
const copyBufSize = 256 << 10

// files is the Cache the flight group fills: the index of chunk files. The
// group calls its methods with its own lock held; each locks c.mu.
type files Cache

// Get pins and returns the entry of a cached chunk for a Get, or counts the
// miss that Get now waits for.
func (fs *files) Get(name string) (*entry, bool) {
	c := (*Cache)(fs)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.entries[name]
	if e == nil {
		c.m.misses.Add(1)
		return nil, false
	}
	e.pins++ // Cache.get records the access (touchLocked) once it has the entry
	return e, true
}

// Has reports whether a chunk is cached.
func (fs *files) Has(name string) bool {
	c := (*Cache)(fs)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.mu.entries[name]
	return ok
}

// Add indexes a downloaded chunk file, pinned once per Get waiting for it
// (each unpins it once it has opened the file), and evicts what no longer
// fits. A read-ahead download that a Get joined is that Get's miss: it is
// no longer a read-ahead entry.
func (fs *files) Add(name string, e *entry, waiters int) {
	c := (*Cache)(fs)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.pins = waiters
	if waiters > 0 {
		e.prefetched = false
	}
	c.admitLocked(e)
}

// fetcher returns the download of ch into the file name, for the flight
// group: it fills the file and returns its entry, not yet indexed; the group
// adds it. A read-ahead download counts as fetched when it starts.
func (c *Cache) fetcher(name string, ch Chunk, readahead bool) flight.Fetch[*entry] {
	return func(ctx context.Context) (*entry, error) {
		if readahead {
			c.m.raFetched.Add(1)
		}
		c.m.fetches.Add(1)
		start := time.Now()
		if err := c.fill(ctx, name, ch); err != nil {
			c.m.fetchFailures.Add(1)
			return nil, err
		}
		c.m.fetchSeconds.Observe(time.Since(start).Seconds())
		return &entry{name: name, size: ch.Length, verified: true, prefetched: readahead}, nil
	}
}

// fill downloads ch to a temp file, checks its length and CRC, and renames
// it to name. It takes no lock: the name is not in the index while its
// flight runs.
func (c *Cache) fill(ctx context.Context, name string, ch Chunk) (err error) {
	tmp, err := os.CreateTemp(c.cfg.Dir, "*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("chunkcache: cannot create temp file for %s: %w", ch, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	body, err := c.fetch(ctx, ch.ObjectKey, ch.Offset, ch.Length)
	if err != nil {
		return fmt.Errorf("chunkcache: fetch %s: %w", ch, err)
	}
	h := crc32.New(castagnoli)
	// One byte more than the chunk, to notice a body that runs long.
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), io.LimitReader(body, ch.Length+1), make([]byte, copyBufSize))
	_ = body.Close()
	c.m.fetchBytes.Add(n)
	if err != nil {
		return fmt.Errorf("chunkcache: fetch %s: after %d bytes: %w", ch, n, err)
	}
	if n != ch.Length {
		return c.corrupt(ch, "fetched", fmt.Errorf("%w: %s: fetched %d bytes", ErrCorruptChunk, ch, n))
	}
	if got := h.Sum32(); got != ch.CRC32C {
		return c.corrupt(ch, "fetched", fmt.Errorf("%w: %s: fetched bytes have CRC-32C %08x, want %08x", ErrCorruptChunk, ch, got, ch.CRC32C))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("chunkcache: cannot write %q: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), c.path(name)); err != nil {
		return fmt.Errorf("chunkcache: cannot rename %q into place: %w", tmp.Name(), err)
	}
	return nil
}

// corrupt counts and logs a corrupt chunk and returns err.
func (c *Cache) corrupt(ch Chunk, where string, err error) error {
	c.m.corrupt.Add(1)
	c.logger.Warn("corrupt chunk", "where", where, "key", ch.Key, "object", ch.ObjectKey,
		"offset", ch.Offset, "length", ch.Length, "err", err)
	return err
}
