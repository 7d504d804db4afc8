package chunkcache

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeStore is an in-memory object store whose Fetch counts calls and can
// fail, stall or corrupt them.
type fakeStore struct {
	objects map[string][]byte // read-only once tests start

	calls    atomic.Int64
	inFlight atomic.Int64

	mu struct {
		sync.Mutex
		errs    []error       // returned by the next calls, in order
		corrupt int           // the next this many calls flip a byte
		gate    chan struct{} // when set, calls wait for it to close (or ctx)
		byOff   map[int64]int // calls by offset
	}
}

func newFakeStore(objects map[string][]byte) *fakeStore {
	return &fakeStore{objects: objects}
}

// failNext makes the next call return err.
func (s *fakeStore) failNext(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.errs = append(s.mu.errs, err)
}

func (s *fakeStore) corruptNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.corrupt += n
}

// hold makes calls wait until the returned func is called.
func (s *fakeStore) hold() (release func()) {
	g := make(chan struct{})
	s.mu.Lock()
	s.mu.gate = g
	s.mu.Unlock()
	return sync.OnceFunc(func() {
		s.mu.Lock()
		if s.mu.gate == g {
			s.mu.gate = nil
		}
		s.mu.Unlock()
		close(g)
	})
}

func (s *fakeStore) Fetch(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	s.calls.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.mu.Lock()
	if s.mu.byOff == nil {
		s.mu.byOff = make(map[int64]int)
	}
	s.mu.byOff[off]++
	gate := s.mu.gate
	var injected error
	if len(s.mu.errs) > 0 {
		injected, s.mu.errs = s.mu.errs[0], s.mu.errs[1:]
	}
	corrupt := s.mu.corrupt > 0
	if corrupt {
		s.mu.corrupt--
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if injected != nil {
		return nil, injected
	}
	obj, ok := s.objects[key]
	if !ok {
		return nil, fmt.Errorf("fake: %q: %w", key, errNotFound)
	}
	if off > int64(len(obj)) {
		return nil, fmt.Errorf("fake: %q: offset %d past %d", key, off, len(obj))
	}
	b := bytes.Clone(obj[off:min(off+length, int64(len(obj)))])
	if corrupt && len(b) > 0 {
		b[len(b)/2] ^= 0x40
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// callsAt returns how many calls read from offset off.
func (s *fakeStore) callsAt(off int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.byOff[off]
}

var errNotFound = errors.New("not found")

// fixture is a cache over a fake store holding one object "obj" of
// nChunks chunks of chunkSize bytes.
type fixture struct {
	t         testing.TB
	dir       string
	store     *fakeStore
	obj       []byte
	chunkSize int64
	cache     *Cache
}

const testObject = "topic/0/00000000000000000000-u1.log"

func newFixture(t testing.TB, nChunks int, chunkSize int64, cfg Config) *fixture {
	t.Helper()
	obj := make([]byte, int64(nChunks)*chunkSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range obj {
		obj[i] = byte(rng.Uint32())
	}
	f := &fixture{
		t:         t,
		dir:       cfg.Dir,
		store:     newFakeStore(map[string][]byte{testObject: obj}),
		obj:       obj,
		chunkSize: chunkSize,
	}
	if f.dir == "" {
		f.dir = t.TempDir()
	}
	cfg.Dir = f.dir
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = int64(nChunks) * chunkSize
	}
	f.open(cfg)
	return f
}

// open (re)opens the cache on f.dir with cfg, closing it at cleanup.
func (f *fixture) open(cfg Config) {
	f.t.Helper()
	cfg.Dir = f.dir
	c, err := New(cfg, f.store.Fetch, nil, nil)
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	f.cache = c
	f.t.Cleanup(func() { c.Close() })
}

// chunk returns chunk i of the object.
func (f *fixture) chunk(i int) Chunk {
	off := int64(i) * f.chunkSize
	return Chunk{
		Key:       fmt.Sprintf("u1/%d", i),
		ObjectKey: testObject,
		Offset:    off,
		Length:    f.chunkSize,
		CRC32C:    crc32.Checksum(f.obj[off:off+f.chunkSize], castagnoli),
	}
}

// rangeChunk is a chunk of length bytes of the object from off, for chunks
// of varying sizes.
func (f *fixture) rangeChunk(off, length int64) Chunk {
	return Chunk{
		Key:       fmt.Sprintf("r/%d/%d", off, length),
		ObjectKey: testObject,
		Offset:    off,
		Length:    length,
		CRC32C:    crc32.Checksum(f.obj[off:off+length], castagnoli),
	}
}

// getChunk Gets ch, checks its bytes and releases the file.
func (f *fixture) getChunk(ch Chunk) {
	f.t.Helper()
	file, release, err := f.cache.Get(context.Background(), ch)
	if err != nil {
		f.t.Fatalf("Get(%s): %v", ch, err)
	}
	defer release()
	if err := readEqual(file, f.obj[ch.Offset:ch.Offset+ch.Length]); err != nil {
		f.t.Fatal(err)
	}
}

// cached reports whether ch is in the cache's index.
func (f *fixture) cached(ch Chunk) bool {
	c := f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.entries[fileName(ch)] != nil
}

// queues lists the fixed-size chunks (by index) in the small, main and
// ghost queues, newest first. Names of other chunks are listed as -1.
func (f *fixture) queues() (small, main, ghost []int) {
	idx := make(map[string]int)
	for i := range int64(len(f.obj)) / f.chunkSize {
		idx[fileName(f.chunk(int(i)))] = int(i)
	}
	index := func(name string) int {
		if i, ok := idx[name]; ok {
			return i
		}
		return -1
	}
	c := f.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range []struct {
		l   *list.List
		out *[]int
	}{{&c.mu.small.l, &small}, {&c.mu.main.l, &main}} {
		for el := q.l.Front(); el != nil; el = el.Next() {
			*q.out = append(*q.out, index(el.Value.(*entry).name))
		}
	}
	for el := c.mu.ghost.l.Front(); el != nil; el = el.Next() {
		ghost = append(ghost, index(el.Value.(ghostRec).name))
	}
	return small, main, ghost
}

func (f *fixture) want(i int) []byte {
	off := int64(i) * f.chunkSize
	return f.obj[off : off+f.chunkSize]
}

// get Gets chunk i, checks the bytes and releases the file.
func (f *fixture) get(i int) {
	f.t.Helper()
	if err := f.check(i); err != nil {
		f.t.Fatal(err)
	}
}

// check is get for goroutines other than the test's: it returns the error.
func (f *fixture) check(i int) error {
	file, release, err := f.cache.Get(context.Background(), f.chunk(i))
	if err != nil {
		return fmt.Errorf("Get(%d): %w", i, err)
	}
	defer release()
	return readEqual(file, f.want(i))
}

// checkFile reads file from its current offset, which must be 0, and
// compares the bytes.
func checkFile(t testing.TB, file *os.File, want []byte) {
	t.Helper()
	if err := readEqual(file, want); err != nil {
		t.Fatal(err)
	}
}

func readEqual(file *os.File, want []byte) error {
	got, err := io.ReadAll(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file.Name(), err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read %d bytes from %s, not the %d bytes of the chunk", len(got), file.Name(), len(want))
	}
	return nil
}

// dirFiles lists the names in dir, LOCK excluded, and their total size.
func dirFiles(t *testing.T, dir string) (names []string, total int64) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.Name() == lockFileName || isSpare(de.Name()) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, de.Name())
		total += fi.Size()
	}
	return names, total
}

func isSpare(name string) bool {
	return strings.HasPrefix(name, "spare-") && strings.HasSuffix(name, tmpSuffix)
}

// spareFiles counts the evicted files kept for reuse in dir.
func spareFiles(t *testing.T, dir string) int {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, de := range des {
		if isSpare(de.Name()) {
			n++
		}
	}
	return n
}
