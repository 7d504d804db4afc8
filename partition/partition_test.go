package partition

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/tier/tierapi"
)

// fakeRemote is a remote tier that holds offsets [start, highest] in
// segments of segSize records, and records what the partition asks of it.
type fakeRemote struct {
	mu       sync.Mutex
	start    int64 // -1: holds nothing
	highest  int64
	segSize  int64
	reads    []int64 // offsets read
	cut      int64   // the last DeleteRemoteBefore
	maxTs    int64   // every remote segment's max timestamp
	segBytes int64
}

func (f *fakeRemote) LogStartOffset(string, int32) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.start, f.start >= 0
}

func (f *fakeRemote) HighestOffset(string, int32) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.highest, f.start >= 0
}

var errRemoteRead = errors.New("read from the fake remote tier")

func (f *fakeRemote) ReadMany(_ context.Context, _ string, _ int32, offset, _ int64, _ bool) ([]localstore.Slice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, offset)
	if offset > f.highest {
		return nil, tierapi.ErrOffsetOutOfRange
	}
	return nil, errRemoteRead
}

func (f *fakeRemote) OffsetForTimestamp(context.Context, string, int32, int64) (int64, int64, bool, error) {
	return 0, 0, false, nil
}

func (f *fakeRemote) RetentionItems(string, int32) ([]localstore.RetentionItem, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.start < 0 {
		return nil, -1
	}
	var items []localstore.RetentionItem
	for b := f.start; b <= f.highest; b += f.segSize {
		items = append(items, localstore.RetentionItem{NextOffset: b + f.segSize, Size: f.segBytes, MaxTimestamp: f.maxTs})
	}
	return items, f.highest
}

func (f *fakeRemote) DeleteRemoteBefore(_ string, _ int32, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = offset
}

type fakeStarts struct{ last int64 }

func (s *fakeStarts) SetLogStartOffset(_ string, _ int32, off int64) error {
	s.last = off
	return nil
}

// newLog opens a local log with segments of 10 records each (one batch of
// 10 per segment), offsets [0, 10*segments), plus an active segment with one
// batch when active.
func newLog(t *testing.T, segments int, active bool, ts int64) *localstore.Log {
	t.Helper()
	l, err := localstore.Open(filepath.Join(t.TempDir(), "p-0"), localstore.Config{SegmentBytes: 1 << 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range segments {
		if _, err := l.Append(recbatch.Make(10, ts+int64(10*i), fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	if active {
		if _, err := l.Append(recbatch.Make(10, ts+int64(10*segments), "active")); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func listOffset(t *testing.T, l *Log, ts int64, version int16) int64 {
	t.Helper()
	off, _, err := l.ListOffset(context.Background(), ts, version)
	if err != nil {
		t.Fatalf("ListOffset(%d, v%d): %v", ts, version, err)
	}
	return off
}

// The special values, each from its version on; -6 is the first offset the
// remote tier does not hold while closed segments wait for upload.
func TestListOffsetSpecials(t *testing.T) {
	local := newLog(t, 4, true, 1_000) // offsets 0..49, 40..49 active
	if _, err := local.DeleteSegmentsBefore(10); err != nil {
		t.Fatal(err)
	}
	// The remote tier holds 0..19: 20..39 are closed and waiting.
	r := &fakeRemote{start: 0, highest: 19, segSize: 10}
	l := New("t", [16]byte{1}, 0, local, r, nil, Config{Tiered: true, RetentionMs: -1, RetentionBytes: -1, LocalRetentionMs: -1, LocalRetentionBytes: -1}, nil)
	for _, c := range []struct {
		ts      int64
		version int16
		want    int64
	}{
		{Latest, 0, 50}, {Earliest, 0, 0}, {EarliestLocal, 8, 10}, {LatestTiered, 9, 19},
		{EarliestPendingCopy, 11, 20}, {MaxTimestamp, 7, 49},
	} {
		if got := listOffset(t, l, c.ts, c.version); got != c.want {
			t.Errorf("ListOffset(%d) = %d, want %d", c.ts, got, c.want)
		}
	}
	for _, c := range []struct {
		ts      int64
		version int16
	}{{EarliestPendingCopy, 10}, {LatestTiered, 8}, {EarliestLocal, 7}, {MaxTimestamp, 6}, {-7, 11}} {
		if _, _, err := l.ListOffset(context.Background(), c.ts, c.version); !errors.Is(err, ErrUnsupportedTimestamp) {
			t.Errorf("ListOffset(%d) at v%d: %v, want ErrUnsupportedTimestamp", c.ts, c.version, err)
		}
	}
	// Once the tier holds everything up to the log end, nothing is pending.
	r.highest = 49
	if got := listOffset(t, l, EarliestPendingCopy, 11); got != -1 {
		t.Errorf("nothing pending: -6 = %d, want -1", got)
	}
	// A topic that does not tier has nothing pending either.
	l.SetConfig(Config{Tiered: false})
	r.highest = 19
	if got := listOffset(t, l, EarliestPendingCopy, 11); got != -1 {
		t.Errorf("not tiered: -6 = %d, want -1", got)
	}
}

// Below the local log start the remote tier is read; at and above it the
// local log.
func TestReadChoosesLocalOrRemote(t *testing.T) {
	local := newLog(t, 3, true, 1_000)
	if _, err := local.DeleteSegmentsBefore(20); err != nil {
		t.Fatal(err)
	}
	r := &fakeRemote{start: 0, highest: 19, segSize: 10}
	l := New("t", [16]byte{1}, 0, local, r, nil, Config{Tiered: true}, nil)
	if _, err := l.Read(context.Background(), 5, 1<<20, true); !errors.Is(err, errRemoteRead) {
		t.Fatalf("read at 5: %v, want the remote tier's", err)
	}
	sls, err := l.Read(context.Background(), 20, 1<<20, true)
	if err != nil || len(sls) != 1 || sls[0].Len == 0 {
		t.Fatalf("read at 20: %v %v", sls, err)
	}
	sls[0].Done()
	if len(r.reads) != 1 || r.reads[0] != 5 {
		t.Errorf("remote reads %v, want [5]", r.reads)
	}
	// Warm reads only below the local log.
	l.Warm(context.Background(), 25)
	l.Warm(context.Background(), 7)
	if len(r.reads) != 2 || r.reads[1] != 7 {
		t.Errorf("remote reads after Warm %v, want [5 7]", r.reads)
	}
	// Without a remote tier nothing below the local log exists.
	nl := New("t", [16]byte{1}, 0, local, nil, nil, Config{Tiered: true}, nil)
	if _, err := nl.Read(context.Background(), 5, 1<<20, true); !errors.Is(err, localstore.ErrOffsetOutOfRange) {
		t.Fatalf("read at 5 without a tier: %v", err)
	}
	if nl.LogStartOffset() != 20 || nl.Config().Tiered {
		t.Errorf("without a tier: start %d, tiered %v", nl.LogStartOffset(), nl.Config().Tiered)
	}
}

// Retention is one cut-off over the remote and the local segments: the local
// segments below it are deleted, the tier is asked to delete the remote ones,
// and local retention never deletes a segment the tier does not hold.
func TestRetentionOneCutOff(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	old := now.Add(-time.Hour).UnixMilli()
	local := newLog(t, 4, true, old) // 0..49
	size := local.Segments()[0].Size
	// The remote tier holds 0..19 (two segments); the local log still has them.
	r := &fakeRemote{start: 0, highest: 19, segSize: 10, maxTs: old, segBytes: size}
	starts := &fakeStarts{last: -1}
	cfg := Config{Tiered: true, RetentionMs: -1, RetentionBytes: 3*size + size/2, LocalRetentionMs: -1, LocalRetentionBytes: 0}
	l := New("t", [16]byte{1}, 0, local, r, starts, cfg, nil)
	if _, err := l.Retention(now); err != nil {
		t.Fatal(err)
	}
	// Five segments' worth (0..49, each range once) against a limit of three
	// and a half: the two oldest go, in the remote tier and locally.
	if r.cut != 20 {
		t.Errorf("remote cut %d, want 20", r.cut)
	}
	if got := local.LogStartOffset(); got != 20 {
		t.Errorf("local log start %d, want 20", got)
	}
	// Local retention 0 would delete every uploaded local segment, but
	// 20..39 are not uploaded: they stay.
	if segs := local.Segments(); len(segs) != 3 || segs[0].BaseOffset != 20 {
		t.Errorf("local segments %+v", segs)
	}
	// The tier deletes below the cut; the next pass persists the new start.
	r.start = 20
	r.highest = 29
	if _, err := l.Retention(now); err != nil {
		t.Fatal(err)
	}
	if starts.last != 20 {
		t.Errorf("persisted log start %d, want 20", starts.last)
	}
	if segs := local.Segments(); segs[0].BaseOffset != 30 {
		t.Errorf("after 20..29 was uploaded, local segments start at %d, want 30", segs[0].BaseOffset)
	}
}

// cleanup.policy=compact alone: retention.ms and retention.bytes delete
// nothing (Kafka's rule); compact,delete applies them.
func TestRetentionSkippedForCompactOnly(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	old := now.Add(-time.Hour).UnixMilli()
	for _, compactOnly := range []bool{true, false} {
		local := newLog(t, 3, true, old)
		l := New("t", [16]byte{1}, 0, local, nil, nil, Config{RetentionMs: 1000, RetentionBytes: 1, LocalRetentionMs: -1, LocalRetentionBytes: -1, CompactOnly: compactOnly}, nil)
		n, err := l.Retention(now)
		if err != nil {
			t.Fatal(err)
		}
		if compactOnly && (n != 0 || local.LogStartOffset() != 0) {
			t.Errorf("compact only: retention deleted %d segments, log start %d", n, local.LogStartOffset())
		}
		if !compactOnly && n == 0 {
			t.Errorf("compact,delete: retention deleted nothing")
		}
	}
}

// A compacted log tiered may end its remote part before the local log
// starts (the cleaner removed the batches between): a read in that gap is
// served from the local log's first batch, as Kafka serves the next batch.
func TestReadInGapBetweenRemoteAndLocal(t *testing.T) {
	local := newLog(t, 3, true, 1_000) // 0..39
	if _, err := local.DeleteSegmentsBefore(30); err != nil {
		t.Fatal(err)
	}
	r := &fakeRemote{start: 0, highest: 19, segSize: 10} // 20..29 is a gap
	l := New("t", [16]byte{1}, 0, local, r, nil, Config{Tiered: true}, nil)
	sls, err := l.Read(context.Background(), 25, 1<<20, true)
	if err != nil || len(sls) != 1 {
		t.Fatalf("read at 25: %v %v", sls, err)
	}
	defer sls[0].Done()
	var h [8]byte
	if _, err := sls[0].File.ReadAt(h[:], sls[0].Pos); err != nil {
		t.Fatal(err)
	}
	if got := int64(binary.BigEndian.Uint64(h[:])); got != 30 {
		t.Fatalf("read at 25 served the batch at %d, want 30", got)
	}
}
