package chunkcache

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// copyBufSize is the buffer a download copies the body through.
const copyBufSize = 256 << 10

// flight is one download of a chunk, shared by every Get and Prefetch that
// asks for the chunk while it runs.
type flight struct {
	name  string
	chunk Chunk
	done  chan struct{} // closed when the download has ended

	// Guarded by Cache.mu.
	waiters  int  // Gets waiting; each gets a pin on the entry
	finished bool // err and entry are set

	// Written under Cache.mu before done is closed; read-only after.
	err   error
	entry *entry
}

// startFlightLocked registers a flight for name. c.mu must be held.
func (c *Cache) startFlightLocked(name string, ch Chunk) *flight {
	fl := &flight{name: name, chunk: ch, done: make(chan struct{})}
	c.mu.flights[name] = fl
	return fl
}

// download fills fl's chunk, caches it pinned once per waiter, and wakes the
// waiters. parent carries values only: the download ends on its own
// timeout or on Close. It locks c.mu to publish the result.
func (c *Cache) download(parent context.Context, fl *flight) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.FetchTimeout)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	c.m.fetches.Add(1)
	start := time.Now()
	err := c.fill(ctx, fl)
	if err == nil {
		c.m.fetchSeconds.Observe(time.Since(start).Seconds())
	} else {
		c.m.fetchFailures.Add(1)
	}

	c.mu.Lock()
	delete(c.mu.flights, fl.name)
	fl.finished = true
	fl.err = err
	if err == nil {
		e := &entry{name: fl.name, size: fl.chunk.Length, verified: true, pins: fl.waiters}
		c.insertLocked(e)
		c.evictLocked()
		fl.entry = e
	}
	c.mu.Unlock()
	close(fl.done)
}

// fill downloads fl's chunk to a temp file, checks its length and CRC, and
// renames it to the chunk's name. It takes no lock: the name is not in the
// index while its flight runs.
func (c *Cache) fill(ctx context.Context, fl *flight) (err error) {
	ch := fl.chunk
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
	if err := os.Rename(tmp.Name(), c.path(fl.name)); err != nil {
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
