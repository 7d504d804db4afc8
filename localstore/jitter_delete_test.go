package localstore

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// segment.jitter.ms: each segment rolls segment.ms minus its own random
// jitter, drawn from [0, min(segment.jitter.ms, segment.ms)). The draw is
// injected, so the roll decision is checked at exact instants.
func TestSegmentJitterRollsEarly(t *testing.T) {
	cases := []struct {
		name           string
		segMs, jitMs   int64
		draw           uint64
		noRoll, roll   int64 // ms after the first batch's timestamp
		wantJitterUsed int64
	}{
		{"jitter taken off segment.ms", 1000, 500, 400, 600, 601, 400},
		{"draw wraps within the jitter", 1000, 500, 1400, 600, 601, 400},
		{"no jitter", 1000, 0, 400, 1000, 1001, 0},
		{"jitter capped at segment.ms", 1000, 5000, 999, 1, 2, 999},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := openLog(t, t.TempDir(), Config{SegmentMs: c.segMs, SegmentJitterMs: c.jitMs})
			defer l.Close()
			l.rand = func() uint64 { return c.draw }
			ts := time.Now().UnixMilli()
			mustAppend(t, l, simpleBatch(t, "a", 1, ts))
			if err := l.Roll(); err != nil { // the next segment takes the injected draw
				t.Fatal(err)
			}
			mustAppend(t, l, simpleBatch(t, "b", 1, ts))
			at := func(ms int64) time.Time { return time.UnixMilli(ts + ms) }
			if err := l.Tick(at(c.noRoll)); err != nil || len(l.Segments()) != 2 {
				t.Fatalf("%d ms after the first batch: %d segments (%v), want no roll yet", c.noRoll, len(l.Segments()), err)
			}
			if err := l.Tick(at(c.roll)); err != nil || len(l.Segments()) != 3 {
				t.Fatalf("%d ms after the first batch: %d segments (%v), want a roll (segment.ms %d less jitter %d)", c.roll, len(l.Segments()), err, c.segMs, c.wantJitterUsed)
			}
		})
	}
}

// Append rolls by the jittered age too, not only Tick.
func TestSegmentJitterAppliesOnAppend(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentMs: 1000, SegmentJitterMs: 1000})
	defer l.Close()
	l.rand = func() uint64 { return 900 }
	old := time.Now().Add(-500 * time.Millisecond).UnixMilli() // 500 ms old: past 1000-900
	mustAppend(t, l, simpleBatch(t, "a", 1, old))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, simpleBatch(t, "b", 1, old))
	mustAppend(t, l, simpleBatch(t, "c", 1, old))
	if n := len(l.Segments()); n != 3 {
		t.Fatalf("%d segments, want the append to roll a segment 500 ms old with 900 ms of jitter", n)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func countSuffix(names []string, suffix string) int {
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, suffix) {
			n++
		}
	}
	return n
}

// file.delete.delay.ms: a deleted segment's files are renamed .deleted at
// once (reads no longer see the segment, a slice already taken stays
// readable), removed by Tick once the delay has passed, and removed at Open
// if the broker stopped first.
func TestFileDeleteDelay(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{FileDeleteDelayMs: 60000})
	now := time.Now().UnixMilli()
	for i := 0; i < 3; i++ {
		mustAppend(t, l, simpleBatch(t, "d", 10, now))
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	held, err := l.Read(0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if n, err := l.DeleteSegmentsBefore(20); err != nil || n != 2 {
		t.Fatalf("deleted %d %v", n, err)
	}
	if _, err := l.Read(5, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read of a deleted segment: %v, want out of range", err)
	}
	for _, base := range []int64{0, 10} {
		for _, p := range []string{logPath(dir, base), indexPathFor(dir, base), timeIndexPathFor(dir, base)} {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still under its name: %v", filepath.Base(p), err)
			}
			if _, err := os.Stat(p + ".deleted"); err != nil {
				t.Fatalf("%s.deleted: %v", filepath.Base(p), err)
			}
		}
	}
	// The producer snapshot written at the roll to 10 goes with segment 10.
	if _, err := os.Stat(snapshotPath(dir, 10) + ".deleted"); err != nil {
		t.Fatalf("snapshot of a deleted segment: %v", err)
	}
	if got := sliceBytes(t, held); len(splitBatches(t, got)) != 1 {
		t.Fatal("a slice taken before the deletion is no longer readable")
	}

	if err := l.Tick(before.Add(59 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := countSuffix(dirNames(t, dir), ".deleted"); n != 7 {
		t.Fatalf("%d .deleted files before the delay, want 7: %v", n, dirNames(t, dir))
	}
	if err := l.Tick(time.Now().Add(61 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := countSuffix(dirNames(t, dir), ".deleted"); n != 0 {
		t.Fatalf(".deleted files left after the delay: %v", dirNames(t, dir))
	}

	// Deleted again, then stopped before the delay: Open removes them.
	if n, err := l.DeleteSegmentsBefore(30); err != nil || n != 1 {
		t.Fatalf("deleted %d %v", n, err)
	}
	if n := countSuffix(dirNames(t, dir), ".deleted"); n == 0 {
		t.Fatal("no .deleted files")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{FileDeleteDelayMs: 60000})
	defer l.Close()
	if n := countSuffix(dirNames(t, dir), ".deleted"); n != 0 {
		t.Fatalf(".deleted files left after Open: %v", dirNames(t, dir))
	}
	if l.LogStartOffset() != 30 || l.LogEndOffset() != 30 {
		t.Fatalf("reopened: start %d end %d, want 30 30", l.LogStartOffset(), l.LogEndOffset())
	}
}

// file.delete.delay.ms=0 removes the files at once.
func TestFileDeleteDelayZero(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	defer l.Close()
	mustAppend(t, l, simpleBatch(t, "d", 10, time.Now().UnixMilli()))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if n, err := l.DeleteSegmentsBefore(10); err != nil || n != 1 {
		t.Fatalf("deleted %d %v", n, err)
	}
	names := dirNames(t, dir)
	if countSuffix(names, ".deleted") != 0 || countSuffix(names, ".log") != 1 {
		t.Fatalf("files after deleting with no delay: %v", names)
	}
}

// Kafka's "never" values (Long.MAX_VALUE ms, flush.ms's default) do not
// overflow into "at once": a tick a day later neither fsyncs nor removes
// deleted files.
func TestMaxMsSettingsMeanNever(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{FlushMs: math.MaxInt64, FileDeleteDelayMs: math.MaxInt64})
	defer l.Close()
	mustAppend(t, l, simpleBatch(t, "d", 10, time.Now().UnixMilli()))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if n, err := l.DeleteSegmentsBefore(10); err != nil || n != 1 {
		t.Fatalf("deleted %d %v", n, err)
	}
	mustAppend(t, l, simpleBatch(t, "e", 1, time.Now().UnixMilli()))
	if err := l.Tick(time.Now().Add(24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	l.wr.Lock()
	flushed := l.wr.unflushedSince.IsZero()
	l.wr.Unlock()
	if flushed {
		t.Fatal("flush.ms=9223372036854775807 flushed after a day")
	}
	if n := countSuffix(dirNames(t, dir), ".deleted"); n == 0 {
		t.Fatal("file.delete.delay.ms=9223372036854775807 removed the files after a day")
	}
}
