package partition

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stratalog/strata/localstore"
)

// failingStarts is a metadata store whose writes fail.
type failingStarts struct{}

var errStartStore = errors.New("metadata store down")

func (failingStarts) SetLogStartOffset(string, int32, int64) error { return errStartStore }

// DeleteRecordsBefore moves the log start inside a segment: it is persisted
// before the call returns, the segments wholly below it go, the tier is asked
// for the remote ones, reads below it are out of range (never sent to the
// remote tier), ListOffsets earliest and earliest-local return it, and a
// retention pass never moves it back.
func TestDeleteRecordsBefore(t *testing.T) {
	local := newLog(t, 4, true, 1_000) // 0..49, 40..49 active
	r := &fakeRemote{start: 0, highest: 29, segSize: 10}
	starts := &fakeStarts{last: -1}
	l := New("t", [16]byte{1}, 0, local, r, starts, Config{Tiered: true, RetentionMs: -1, RetentionBytes: -1, LocalRetentionMs: -1, LocalRetentionBytes: -1}, nil)

	if _, err := l.DeleteRecordsBefore(51); !errors.Is(err, ErrBeyondHighWatermark) {
		t.Fatalf("beyond the high watermark: %v", err)
	}
	low, err := l.DeleteRecordsBefore(25)
	if err != nil || low != 25 {
		t.Fatalf("DeleteRecordsBefore(25) = %d, %v", low, err)
	}
	if starts.last != 25 || r.cut != 25 {
		t.Fatalf("persisted %d, remote cut %d; want 25, 25", starts.last, r.cut)
	}
	if got := local.LogStartOffset(); got != 20 {
		t.Fatalf("local log start %d, want 20 (the segment holding 25 stays)", got)
	}
	if got := l.LogStartOffset(); got != 25 {
		t.Fatalf("log start %d, want 25 (the remote tier still says 0)", got)
	}
	for _, off := range []int64{0, 10, 24} {
		if _, err := l.Read(context.Background(), off, 1<<20, true); !errors.Is(err, localstore.ErrOffsetOutOfRange) {
			t.Fatalf("read at %d: %v, want out of range", off, err)
		}
		if l.IsRemote(off) {
			t.Fatalf("IsRemote(%d) below the log start", off)
		}
	}
	if len(r.reads) != 0 {
		t.Fatalf("reads below the log start went to the remote tier: %v", r.reads)
	}
	sls, err := l.Read(context.Background(), 25, 1<<20, true)
	if err != nil || len(sls) != 1 {
		t.Fatalf("read at 25: %d slices, %v", len(sls), err)
	}
	sls[0].Done()
	if got := listOffset(t, l, Earliest, 0); got != 25 {
		t.Fatalf("earliest %d", got)
	}
	if got := listOffset(t, l, EarliestLocal, 8); got != 25 {
		t.Fatalf("earliest-local %d", got)
	}
	if got := listOffset(t, l, 0, 1); got != 25 {
		t.Fatalf("offset for timestamp 0: %d, want the log start", got)
	}
	// Below the start: nothing changes.
	if low, err := l.DeleteRecordsBefore(5); err != nil || low != 25 || starts.last != 25 {
		t.Fatalf("below the start: %d %v, persisted %d", low, err, starts.last)
	}
	// A retention pass keeps the start and asks the tier again.
	r.cut = 0
	if _, err := l.Retention(time.UnixMilli(10_000_000)); err != nil {
		t.Fatal(err)
	}
	if got := l.LogStartOffset(); got != 25 || starts.last != 25 || r.cut != 25 {
		t.Fatalf("after retention: start %d, persisted %d, remote cut %d", got, starts.last, r.cut)
	}
}

// The new start is durable before it is answered: when the metadata store
// cannot record it, nothing moves.
func TestDeleteRecordsBeforeNotDurable(t *testing.T) {
	local := newLog(t, 3, true, 1_000)
	l := New("t", [16]byte{1}, 0, local, nil, failingStarts{}, Config{RetentionMs: -1, RetentionBytes: -1, LocalRetentionMs: -1, LocalRetentionBytes: -1}, nil)
	if _, err := l.DeleteRecordsBefore(15); !errors.Is(err, errStartStore) {
		t.Fatalf("err %v", err)
	}
	if l.LogStartOffset() != 0 || local.LogStartOffset() != 0 {
		t.Fatalf("the start moved: %d, local %d", l.LogStartOffset(), local.LogStartOffset())
	}
	sls, err := l.Read(context.Background(), 0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sls {
		s.Done()
	}
}

// A start restored at start-up holds for reads and offsets, and the next
// retention pass deletes what lies wholly below it.
func TestRestoreLogStart(t *testing.T) {
	local := newLog(t, 4, true, 1_000)
	starts := &fakeStarts{last: -1}
	l := New("t", [16]byte{1}, 0, local, nil, starts, Config{RetentionMs: -1, RetentionBytes: -1, LocalRetentionMs: -1, LocalRetentionBytes: -1}, nil)
	l.RestoreLogStart(33)
	if got := listOffset(t, l, Earliest, 0); got != 33 {
		t.Fatalf("earliest %d", got)
	}
	if _, err := l.Read(context.Background(), 32, 1<<20, true); !errors.Is(err, localstore.ErrOffsetOutOfRange) {
		t.Fatalf("read below the restored start: %v", err)
	}
	if _, err := l.Retention(time.UnixMilli(10_000_000)); err != nil {
		t.Fatal(err)
	}
	if got := local.LogStartOffset(); got != 30 {
		t.Fatalf("local start after retention %d, want 30", got)
	}
	if starts.last != -1 {
		t.Fatalf("an unchanged start was written again: %d", starts.last)
	}
}
