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
	elem *list.Element // in Cache.mu.lru
	// pins counts callers about to open the file; a pinned entry is never
	// evicted.
	pins int
	// verified is false for files indexed from a previous run until a Get
	// has checked their size and CRC.
	verified bool
	// removed is set once the entry left the index, for late unpins.
	removed bool
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

// insertLocked adds e as the most recently used entry. c.mu must be held.
func (c *Cache) insertLocked(e *entry) {
	e.elem = c.mu.lru.PushFront(e)
	c.mu.entries[e.name] = e
	c.mu.bytes += e.size
	c.m.bytes.Store(c.mu.bytes)
	c.m.entries.Store(int64(len(c.mu.entries)))
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
	c.mu.lru.Remove(e.elem)
	delete(c.mu.entries, e.name)
	c.mu.bytes -= e.size
	c.m.bytes.Store(c.mu.bytes)
	c.m.entries.Store(int64(len(c.mu.entries)))
	if err := os.Remove(c.path(e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.logger.Warn("cannot remove cached chunk", "file", e.name, "err", err)
	}
}

// evictLocked evicts unpinned entries, least recently used first, until the
// cached bytes fit in MaxBytes. c.mu must be held.
func (c *Cache) evictLocked() {
	for el := c.mu.lru.Back(); el != nil && c.mu.bytes > c.cfg.MaxBytes; {
		prev := el.Prev()
		if e := el.Value.(*entry); e.pins == 0 {
			c.removeLocked(e)
			c.m.evictions.Add(1)
		}
		el = prev
	}
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

// load indexes the chunk files a previous run left in the directory, oldest
// modification least recently used, removes temp files and empty chunk
// files, and evicts down to MaxBytes. Unknown files are left alone. It runs
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
		c.insertLocked(&entry{name: f.name, size: f.size})
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
