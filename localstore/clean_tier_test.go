package localstore

import (
	"slices"
	"testing"
	"time"
)

// A tiered log: nothing is cleaned before the tier floor is known; then the
// segments below it are left as they are and the rest is cleaned.
func TestCleanLeavesSegmentsBelowTheTierFloor(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1024, IndexIntervalBytes: 128})
	defer l.Close()
	fillKeyed(t, l, 200, 7, 0)
	before, _ := logRecords(t, l)
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	if st := cleanNow(t, l, CleanConfig{Tiered: true}); st.Passes != 0 {
		t.Fatalf("cleaned %d passes before the tier floor is known", st.Passes)
	}
	pinned := segs[1]
	if !l.PinForUpload(pinned.BaseOffset, pinned.NextOffset, pinned.Size) {
		t.Fatal("PinForUpload of a closed segment failed")
	}
	if l.PinForUpload(pinned.BaseOffset, pinned.NextOffset+1, pinned.Size) {
		t.Fatal("PinForUpload of a segment that is not the log's succeeded")
	}
	if st := cleanNow(t, l, CleanConfig{Tiered: true}); st.Passes != 1 || st.RecordsRemoved == 0 {
		t.Fatalf("stats %+v", st)
	}
	after := l.Segments()
	if !slices.Equal(after[:2], segs[:2]) {
		t.Fatalf("segments below the floor changed:\n%v\n%v", segs[:2], after[:2])
	}
	got, _ := logRecords(t, l)
	var want []kv
	for _, r := range before {
		if r.off < pinned.NextOffset {
			want = append(want, r)
		}
	}
	// Above the floor the latest of each key of the whole dirty part above it.
	var above []kv
	for _, r := range before {
		if r.off >= pinned.NextOffset {
			above = append(above, r)
		}
	}
	want = append(want, latest(above)...)
	if !slices.Equal(got, want) {
		t.Fatalf("after cleaning above the floor:\n got %v\nwant %v", got, want)
	}
	if st := l.CleanState(0, l.Segments()[0].RolledAt); st.FirstDirtyOffset < pinned.NextOffset {
		t.Fatalf("first dirty %d below the floor %d", st.FirstDirtyOffset, pinned.NextOffset)
	}
}

// A pin taken while a cleaning is under way wins: the cleaning's swap of a
// run that holds the pinned segment is dropped, the log unchanged.
func TestPinDuringCleaningDropsTheSwap(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1024, IndexIntervalBytes: 128})
	defer l.Close()
	fillKeyed(t, l, 200, 7, 0)
	l.SetTierFloor(0)
	before, _ := logRecords(t, l)
	segs := l.Segments()
	pinned := false
	l.cl.hook = func(step string) error {
		// "cleaned" comes after the swap's check of the run.
		if step == "cleaned" {
			t.Fatal("the swap went past its check with a pinned segment")
		}
		return nil
	}
	// The pin lands between the rewrite and the swap: raise the floor from
	// the cleaner's IO callback, which runs during the rewrite.
	st, err := l.Clean(CleanConfig{Tiered: true, IO: func(read, written int64) {
		if !pinned && written > 0 {
			pinned = true
			if !l.PinForUpload(segs[0].BaseOffset, segs[0].NextOffset, segs[0].Size) {
				t.Error("pin failed")
			}
		}
	}})
	if err != nil || !pinned {
		t.Fatalf("Clean: %+v %v (pinned %t)", st, err, pinned)
	}
	if got, _ := logRecords(t, l); !slices.Equal(got, before) {
		t.Fatalf("the log changed under a pin:\n got %v\nwant %v", got, before)
	}
	if !slices.Equal(l.Segments()[:len(segs)-1], segs[:len(segs)-1]) {
		t.Fatal("segments changed under a pin")
	}
}

// A tiered log keeps its tombstones, however old: an older record of the
// key may be in the remote tier, where only remote compaction can drop both.
func TestCleanTieredKeepsTombstones(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1 << 20})
	defer l.Close()
	l.SetTierFloor(0)
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(1, "a", "1"), keyed(2, "b", "1")))
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(3, "a", ""))) // tombstone for a
	l.Roll()
	t0 := time.UnixMilli(1_000_000_000)
	cleanNow(t, l, CleanConfig{DeleteRetentionMs: 0, Now: t0, Tiered: true})
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(4, "b", "2")))
	l.Roll()
	cleanNow(t, l, CleanConfig{DeleteRetentionMs: 0, Now: t0.Add(time.Hour), Tiered: true})
	got, _ := logRecords(t, l)
	want := []kv{{off: 2, key: "a", tombstone: true}, {off: 3, key: "b", value: "2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (the tombstone stays)", got, want)
	}
	// The remote tier's compactor, which reads the same checkpoint, drops it.
	if !l.cl.ck.Load().tombstoneExpired(2, t0.Add(time.Hour).UnixMilli(), 0) {
		t.Fatal("the checkpoint does not say the tombstone expired")
	}
}
