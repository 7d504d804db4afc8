// Package storetest is the acceptance suite every remotestore backend and
// decorator passes: Run it from the backend's tests with a function that
// returns a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/remotestore"
)

// Sizes the suite uses. Backends with a multipart path should set their
// multipart threshold below LargeObjectSize and part size at most PartSize,
// so the large-object test crosses part boundaries.
const (
	PartSize        = 5 << 20
	LargeObjectSize = 12 << 20
	ManyKeys        = 1100 // more than S3's 1000 keys per list page
)

// Run runs the suite. newStore must return an empty store, distinct for each
// call (a new directory, bucket or prefix); the suite calls it once per
// subtest.
func Run(t *testing.T, newStore func(t *testing.T) remotestore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s remotestore.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyObject", testEmptyObject},
		{"RangeEdges", testRangeEdges},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"ListOrderAndPrefix", testList},
		{"ListStopsOnCallbackError", testListCallbackError},
		{"ManyKeys", testManyKeys},
		{"LargeObject", testLargeObject},
		{"Concurrent", testConcurrent},
		{"OddKeys", testOddKeys},
		{"InvalidKeys", testInvalidKeys},
		{"ShortReaderLeavesNothing", testShortReader},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Data returns n pseudo-random bytes determined by seed.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// MustPut stores data under key or fails the test.
func MustPut(t testing.TB, ctx context.Context, s remotestore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

// Get reads a range and returns the bytes, or the error of GetRange or of
// reading the body.
func Get(ctx context.Context, s remotestore.Store, key string, off, length int64) ([]byte, error) {
	rc, err := s.GetRange(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// MustGet reads a range or fails the test.
func MustGet(t testing.TB, ctx context.Context, s remotestore.Store, key string, off, length int64) []byte {
	t.Helper()
	b, err := Get(ctx, s, key, off, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, off, length, err)
	}
	return b
}

// Keys lists the keys under prefix.
func Keys(ctx context.Context, s remotestore.Store, prefix string) ([]string, error) {
	var keys []string
	err := s.List(ctx, prefix, func(info remotestore.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	return keys, err
}

func mustKeys(t *testing.T, ctx context.Context, s remotestore.Store, prefix string) []string {
	t.Helper()
	keys, err := Keys(ctx, s, prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testRoundTrip(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	const key = "topic/0/00000000000000000000-abc.log"
	data := Data(1, 100_000)
	before := time.Now()
	MustPut(t, c, s, key, data)
	if got := MustGet(t, c, s, key, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("GetRange whole: got %d bytes, want the %d put", len(got), len(data))
	}
	info, err := s.Head(c, key)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if info.Key != key || info.Size != int64(len(data)) {
		t.Fatalf("Head = %+v, want key %q size %d", info, key, len(data))
	}
	// Allow for clock skew between us and a server, and for second precision.
	if d := info.LastModified.Sub(before); d < -time.Hour || d > time.Hour {
		t.Fatalf("Head LastModified %v, far from now %v", info.LastModified, before)
	}
}

func testEmptyObject(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	const key = "empty/object"
	MustPut(t, c, s, key, nil)
	info, err := s.Head(c, key)
	if err != nil || info.Size != 0 {
		t.Fatalf("Head = %+v, %v; want size 0", info, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 0}, {0, 10}} {
		if got := MustGet(t, c, s, key, r[0], r[1]); len(got) != 0 {
			t.Fatalf("GetRange(%d, %d) = %d bytes, want 0", r[0], r[1], len(got))
		}
	}
	if _, err := Get(c, s, key, 1, -1); !errors.Is(err, remotestore.ErrInvalidRange) {
		t.Fatalf("GetRange(1, -1) on empty object: %v, want ErrInvalidRange", err)
	}
	if keys := mustKeys(t, c, s, "empty/"); !slices.Equal(keys, []string{key}) {
		t.Fatalf("List = %q", keys)
	}
}

func testRangeEdges(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	const key = "range/object"
	const size = 1000
	data := Data(2, size)
	MustPut(t, c, s, key, data)
	for _, tc := range []struct {
		off, length int64
		want        []byte // nil with wantErr
		wantErr     error
	}{
		{0, 10, data[:10], nil},
		{0, -1, data, nil},
		{1, -1, data[1:], nil},
		{500, 1, data[500:501], nil},
		{990, 10, data[990:], nil},
		{995, 10, data[995:], nil}, // runs past the end: cut short
		{0, 1 << 40, data, nil},    // far past the end
		{999, -1, data[999:], nil}, // last byte
		{size, -1, []byte{}, nil},  // at the end: empty
		{size, 5, []byte{}, nil},   // at the end: empty
		{size, 0, []byte{}, nil},   // at the end, zero length: empty
		{500, 0, []byte{}, nil},    // zero length
		{0, 0, []byte{}, nil},      // zero length
		{size + 1, -1, nil, remotestore.ErrInvalidRange},
		{size + 1, 0, nil, remotestore.ErrInvalidRange},
		{size + 100, 10, nil, remotestore.ErrInvalidRange},
		{-1, 10, nil, remotestore.ErrInvalidRange},
	} {
		got, err := Get(c, s, key, tc.off, tc.length)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("GetRange(%d, %d) = %d bytes, %v; want %v", tc.off, tc.length, len(got), err, tc.wantErr)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("GetRange(%d, %d) = %d bytes, %v; want %d bytes", tc.off, tc.length, len(got), err, len(tc.want))
		}
	}
}

func testNotFound(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	MustPut(t, c, s, "nf/present", []byte("x"))
	for _, key := range []string{"nf/missing", "nf/present/under", "nf", "other/missing"} {
		if _, err := Get(c, s, key, 0, -1); !remotestore.IsNotFound(err) {
			t.Errorf("GetRange(%q, 0, -1): %v, want not found", key, err)
		}
		if _, err := Get(c, s, key, 0, 0); !remotestore.IsNotFound(err) {
			t.Errorf("GetRange(%q, 0, 0): %v, want not found", key, err)
		}
		if _, err := Get(c, s, key, 10, 5); !remotestore.IsNotFound(err) {
			t.Errorf("GetRange(%q, 10, 5): %v, want not found", key, err)
		}
		if _, err := s.Head(c, key); !remotestore.IsNotFound(err) {
			t.Errorf("Head(%q): %v, want not found", key, err)
		}
	}
}

func testDelete(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	const key = "del/a/b"
	MustPut(t, c, s, key, []byte("hello"))
	MustPut(t, c, s, "del/a/c", []byte("keep"))
	if err := s.Delete(c, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Head(c, key); !remotestore.IsNotFound(err) {
		t.Fatalf("Head after Delete: %v, want not found", err)
	}
	if _, err := Get(c, s, key, 0, -1); !remotestore.IsNotFound(err) {
		t.Fatalf("GetRange after Delete: %v, want not found", err)
	}
	if err := s.Delete(c, key); err != nil {
		t.Fatalf("second Delete: %v, want nil", err)
	}
	if err := s.Delete(c, "del/never/was"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	if keys := mustKeys(t, c, s, "del/"); !slices.Equal(keys, []string{"del/a/c"}) {
		t.Fatalf("List after Delete = %q", keys)
	}
	if err := s.Delete(c, "del/a/c"); err != nil {
		t.Fatal(err)
	}
	if keys := mustKeys(t, c, s, ""); len(keys) != 0 {
		t.Fatalf("List after deleting everything = %q", keys)
	}
	// The key can be written again after its "directory" emptied.
	MustPut(t, c, s, key, []byte("again"))
	if got := MustGet(t, c, s, key, 0, -1); string(got) != "again" {
		t.Fatalf("got %q", got)
	}
}

func testList(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	// Byte order traps: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30).
	keys := []string{"t/a0", "t/a/b", "t/a-c", "t/a.x", "t/a/c/d", "t/b", "u/x", "t/A", "t/a/c/e"}
	for i, k := range keys {
		MustPut(t, c, s, k, Data(uint64(i), i+1))
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	filter := func(prefix string) []string {
		var out []string
		for _, k := range sorted {
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "t/", "t/a", "t/a/", "t/a/c/", "t/a/c/d", "t/a-", "u", "nope", "t/a/c/dd"} {
		got := mustKeys(t, c, s, prefix)
		if want := filter(prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	// Sizes come with the listing.
	err := s.List(c, "t/", func(info remotestore.ObjectInfo) error {
		i := slices.Index(keys, info.Key)
		if info.Size != int64(i+1) {
			return fmt.Errorf("List: %q has size %d, want %d", info.Key, info.Size, i+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testListCallbackError(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	for i := range 5 {
		MustPut(t, c, s, fmt.Sprintf("stop/%d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	var seen []string
	err := s.List(c, "stop/", func(info remotestore.ObjectInfo) error {
		seen = append(seen, info.Key)
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List returned %v, want the callback's error", err)
	}
	if !slices.Equal(seen, []string{"stop/0", "stop/1"}) {
		t.Fatalf("List called back for %q after the error", seen)
	}
}

// parallel runs fn(i) for i in [0, n) on workers goroutines.
func parallel(t *testing.T, n, workers int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func testManyKeys(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	key := func(i int) string { return fmt.Sprintf("many/%05d", i) }
	parallel(t, ManyKeys, 16, func(i int) error {
		b := []byte(key(i))
		return s.Put(c, key(i), bytes.NewReader(b), int64(len(b)))
	})
	MustPut(t, c, s, "manz", []byte("after")) // sorts after the prefix
	got := mustKeys(t, c, s, "many/")
	if len(got) != ManyKeys {
		t.Fatalf("List(many/) gave %d keys, want %d", len(got), ManyKeys)
	}
	for i, k := range got {
		if k != key(i) {
			t.Fatalf("List(many/)[%d] = %q, want %q", i, k, key(i))
		}
	}
	if got := mustKeys(t, c, s, "many/00"); len(got) != 1000 {
		t.Fatalf("List(many/00) gave %d keys, want 1000", len(got))
	}
	if got := mustKeys(t, c, s, ""); len(got) != ManyKeys+1 || got[len(got)-1] != "manz" {
		t.Fatalf("List() gave %d keys, last %q", len(got), got[len(got)-1])
	}
}

func testLargeObject(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	const key = "large/object.log"
	data := Data(3, LargeObjectSize)
	MustPut(t, c, s, key, data)
	info, err := s.Head(c, key)
	if err != nil || info.Size != LargeObjectSize {
		t.Fatalf("Head = %+v, %v; want size %d", info, err, LargeObjectSize)
	}
	got := MustGet(t, c, s, key, 0, -1)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("GetRange whole: %d bytes, content differs from the %d put", len(got), len(data))
	}
	for _, r := range [][2]int64{
		{PartSize - 10, 20}, // across the first part boundary
		{2*PartSize - 1, 2},
		{LargeObjectSize - 7, -1},
		{LargeObjectSize - 7, 100},
		{3 << 20, 4 << 20},
	} {
		want := data[r[0]:]
		if r[1] >= 0 && r[1] < int64(len(want)) {
			want = want[:r[1]]
		}
		if got := MustGet(t, c, s, key, r[0], r[1]); !bytes.Equal(got, want) {
			t.Fatalf("GetRange(%d, %d): %d bytes, want %d, or content differs", r[0], r[1], len(got), len(want))
		}
	}
	if keys := mustKeys(t, c, s, "large/"); !slices.Equal(keys, []string{key}) {
		t.Fatalf("List = %q", keys)
	}
}

func testConcurrent(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	shared := Data(4, 256<<10)
	MustPut(t, c, s, "conc/shared", shared)
	const n = 64
	parallel(t, n, 16, func(i int) error {
		key := fmt.Sprintf("conc/own/%02d", i)
		data := Data(uint64(100+i), 1000*i+i)
		if err := s.Put(c, key, bytes.NewReader(data), int64(len(data))); err != nil {
			return fmt.Errorf("Put(%q): %w", key, err)
		}
		got, err := Get(c, s, key, 0, -1)
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Errorf("GetRange(%q): %d bytes, %v; want %d", key, len(got), err, len(data))
		}
		off := int64(i * 4096)
		got, err = Get(c, s, "conc/shared", off, 4096)
		if err != nil || !bytes.Equal(got, shared[off:off+4096]) {
			return fmt.Errorf("GetRange(shared, %d, 4096): %d bytes, %v", off, len(got), err)
		}
		if info, err := s.Head(c, key); err != nil || info.Size != int64(len(data)) {
			return fmt.Errorf("Head(%q) = %+v, %v", key, info, err)
		}
		if i%2 == 0 {
			if err := s.Delete(c, key); err != nil {
				return fmt.Errorf("Delete(%q): %w", key, err)
			}
		}
		if _, err := Keys(c, s, "conc/"); err != nil {
			return fmt.Errorf("List: %w", err)
		}
		return nil
	})
	if got := mustKeys(t, c, s, "conc/own/"); len(got) != n/2 {
		t.Fatalf("List after concurrent puts and deletes: %d keys, want %d", len(got), n/2)
	}
}

// OddKeys are valid keys with characters that need escaping somewhere
// (URLs, shells, file names).
var OddKeys = []string{
	"odd/space in key",
	" odd-leading-space",
	"odd/plus+sign",
	"odd/percent%20encoded%2F",
	"odd/unicode-ñ-日本語-🙂",
	"odd/query?x=1&y=2",
	"odd/hash#fragment",
	"odd/quotes'\"`",
	"odd/back\\slash",
	"odd/tilde~colon:semi;",
	"odd/star*brackets[]{}()",
	"odd/at@dollar$bang!",
	"odd/trailing.",
	"odd/..dots..",
	"odd/.hidden",
	"odd/tab\tand\nnewline",
	"odd/" + strings.Repeat("long", 50),
}

func testOddKeys(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	for i, key := range OddKeys {
		data := []byte(fmt.Sprintf("%d:%s", i, key))
		MustPut(t, c, s, key, data)
		if got := MustGet(t, c, s, key, 0, -1); !bytes.Equal(got, data) {
			t.Errorf("GetRange(%q) = %q, want %q", key, got, data)
		}
		if info, err := s.Head(c, key); err != nil || info.Key != key {
			t.Errorf("Head(%q) = %+v, %v", key, info, err)
		}
	}
	want := slices.Clone(OddKeys)
	slices.Sort(want)
	if got := mustKeys(t, c, s, ""); !slices.Equal(got, want) {
		t.Errorf("List() = %q\nwant %q", got, want)
	}
	for _, key := range OddKeys {
		if err := s.Delete(c, key); err != nil {
			t.Errorf("Delete(%q): %v", key, err)
		}
	}
	if got := mustKeys(t, c, s, ""); len(got) != 0 {
		t.Errorf("List after deletes = %q", got)
	}
}

// InvalidKeys are keys every backend refuses with ErrInvalidKey.
var InvalidKeys = []string{"", "/abs", "a//b", "a/", "../x", "a/../b", "./a", "a/.", "a\x00b", "\xff\xfe", strings.Repeat("k", remotestore.MaxKeyLen+1)}

func testInvalidKeys(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	for _, key := range InvalidKeys {
		if err := s.Put(c, key, bytes.NewReader([]byte("x")), 1); !errors.Is(err, remotestore.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.GetRange(c, key, 0, -1); !errors.Is(err, remotestore.ErrInvalidKey) {
			t.Errorf("GetRange(%q): %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Head(c, key); !errors.Is(err, remotestore.ErrInvalidKey) {
			t.Errorf("Head(%q): %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(c, key); !errors.Is(err, remotestore.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want ErrInvalidKey", key, err)
		}
	}
	if got := mustKeys(t, c, s, ""); len(got) != 0 {
		t.Errorf("List after invalid puts = %q", got)
	}
}

func testShortReader(t *testing.T, s remotestore.Store) {
	c := ctx(t)
	const key = "short/object"
	if err := s.Put(c, key, bytes.NewReader([]byte("only ten b")), 20); err == nil {
		t.Fatalf("Put of 20 bytes from a 10-byte reader succeeded")
	}
	if _, err := s.Head(c, key); !remotestore.IsNotFound(err) {
		t.Fatalf("Head after a failed Put: %v, want not found", err)
	}
	if got := mustKeys(t, c, s, ""); len(got) != 0 {
		t.Fatalf("List after a failed Put = %q", got)
	}
}

func testCanceled(t *testing.T, s remotestore.Store) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	const key = "canceled/object"
	if err := s.Put(c, key, bytes.NewReader([]byte("data")), 4); err == nil {
		t.Fatalf("Put with a canceled context succeeded")
	}
	if _, err := s.Head(ctx(t), key); !remotestore.IsNotFound(err) {
		t.Fatalf("Head after a canceled Put: %v, want not found", err)
	}
	if _, err := s.GetRange(c, key, 0, -1); err == nil {
		t.Fatalf("GetRange with a canceled context succeeded")
	}
}
