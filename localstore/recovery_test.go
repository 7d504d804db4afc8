package localstore

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// recoverySetup writes a log of three or more segments, abandons it as a
// crash would, and returns the batches it held.
func recoverySetup(t *testing.T, cfg Config) (string, []BatchHeader) {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	now := time.Now().UnixMilli()
	for i := 0; i < 40; i++ {
		mustAppend(t, l, simpleBatch(t, "r", 1+i%5, now+int64(i)))
	}
	hs := readAll(t, l)
	if n := len(l.Segments()); n < 3 {
		t.Fatalf("want at least 3 segments, got %d", n)
	}
	crash(t, l)
	return dir, hs
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	return m
}

// lastBatchPos returns the position and size of the last batch of a segment file.
func lastBatchPos(t *testing.T, path string) (int64, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pos, size int64
	for p := int64(0); p < int64(len(b)); {
		h := parseHeader(b[p:])
		pos, size = p, h.TotalSize()
		p += size
	}
	return pos, size
}

func TestRecovery(t *testing.T) {
	cfg := Config{SegmentBytes: 1500, IndexIntervalBytes: 100}
	cases := []struct {
		name string
		// damage changes the files and returns how many batches at the end are lost.
		damage func(t *testing.T, dir string) int
	}{
		{"no damage", func(t *testing.T, dir string) int { return 0 }},
		{"truncate mid-batch", func(t *testing.T, dir string) int {
			segs := segmentFiles(t, dir)
			last := segs[len(segs)-1]
			pos, size := lastBatchPos(t, last)
			if err := os.Truncate(last, pos+size/2); err != nil {
				t.Fatal(err)
			}
			return 1
		}},
		{"truncate mid-header", func(t *testing.T, dir string) int {
			segs := segmentFiles(t, dir)
			last := segs[len(segs)-1]
			pos, _ := lastBatchPos(t, last)
			if err := os.Truncate(last, pos+20); err != nil {
				t.Fatal(err)
			}
			return 1
		}},
		{"junk appended", func(t *testing.T, dir string) int {
			segs := segmentFiles(t, dir)
			f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(bytes.Repeat([]byte{0xAB}, 300))
			f.Close()
			return 0
		}},
		{"zeros appended", func(t *testing.T, dir string) int {
			segs := segmentFiles(t, dir)
			f, _ := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
			f.Write(make([]byte, 4096))
			f.Close()
			return 0
		}},
		{"flipped byte in last batch", func(t *testing.T, dir string) int {
			segs := segmentFiles(t, dir)
			last := segs[len(segs)-1]
			pos, size := lastBatchPos(t, last)
			b, _ := os.ReadFile(last)
			b[pos+size-3] ^= 0x40
			os.WriteFile(last, b, 0o644)
			return 1
		}},
		{"deleted indexes", func(t *testing.T, dir string) int {
			for _, p := range segmentFiles(t, dir) {
				os.Remove(p[:len(p)-4] + indexSuffix)
				os.Remove(p[:len(p)-4] + timeIndexSuffix)
			}
			return 0
		}},
		{"corrupt indexes", func(t *testing.T, dir string) int {
			for _, p := range segmentFiles(t, dir) {
				os.WriteFile(p[:len(p)-4]+indexSuffix, []byte{0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0}, 0o644)
				os.WriteFile(p[:len(p)-4]+timeIndexSuffix, bytes.Repeat([]byte{0xff}, 24), 0o644)
			}
			return 0
		}},
		{"plausible but wrong index", func(t *testing.T, dir string) int {
			segs := segmentFiles(t, dir)
			idx := appendOffsetEntry(nil, 1, 1) // sane-looking, points inside a batch
			os.WriteFile(segs[0][:len(segs[0])-4]+indexSuffix, idx, 0o644)
			return 0
		}},
		{"torn middle segment", func(t *testing.T, dir string) int {
			// Without a recovery point every segment is scanned; a torn
			// segment ends the log and the segments after it go.
			os.Remove(filepath.Join(dir, recoveryPointFile))
			segs := segmentFiles(t, dir)
			mid := segs[1]
			pos, _ := lastBatchPos(t, mid)
			if err := os.Truncate(mid, pos+7); err != nil {
				t.Fatal(err)
			}
			lost := 1
			for _, p := range segs[2:] {
				b, _ := os.ReadFile(p)
				for len(b) > 0 {
					lost++
					b = b[parseHeader(b).TotalSize():]
				}
			}
			return lost
		}},
		{"leftover files", func(t *testing.T, dir string) int {
			os.WriteFile(filepath.Join(dir, "00000000000000000000.snapshot.tmp"), []byte("x"), 0o644)
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("keep me"), 0o644)
			os.WriteFile(filepath.Join(dir, "00000000000000099999.index"), []byte("orphan"), 0o644)
			return 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, want := recoverySetup(t, cfg)
			lost := c.damage(t, dir)
			want = want[:len(want)-lost]
			l := openLog(t, dir, cfg)
			got := readAll(t, l)
			if len(got) != len(want) {
				t.Fatalf("recovered %d batches, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("batch %d: %+v, want %+v", i, got[i], want[i])
				}
			}
			leo := want[len(want)-1].lastOffset() + 1
			if l.LogEndOffset() != leo {
				t.Fatalf("LEO %d, want %d", l.LogEndOffset(), leo)
			}
			if _, _, ok, err := l.OffsetForTimestamp(0); !ok || err != nil {
				t.Fatalf("OffsetForTimestamp: %v %v", ok, err)
			}
			if res := mustAppend(t, l, simpleBatch(t, "after", 2, time.Now().UnixMilli())); res.BaseOffset != leo {
				t.Fatalf("append after recovery at %d, want %d", res.BaseOffset, leo)
			}
			if _, err := os.Stat(filepath.Join(dir, "00000000000000000000.snapshot.tmp")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temp file left: %v", err)
			}
			if c.name == "leftover files" {
				if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
					t.Errorf("unknown file removed: %v", err)
				}
			}
			// Every index on disk now matches a fresh rebuild of its segment.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			checkIndexesMatch(t, dir, cfg)
			l = openLog(t, dir, cfg)
			if got := readAll(t, l); len(got) != len(want)+1 {
				t.Fatalf("after clean reopen: %d batches", len(got))
			}
			l.Close()
		})
	}
}

func checkIndexesMatch(t *testing.T, dir string, cfg Config) {
	t.Helper()
	cfg = withDefaults(cfg)
	maxIdx, maxTidx := maxIndexEntries(cfg)
	segs := segmentFiles(t, dir)
	for i, p := range segs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		base, _, _ := parseOffsetName(filepath.Base(p))
		r, err := scanSegment(f, base, cfg.IndexIntervalBytes, maxIdx, maxTidx)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if i < len(segs)-1 {
			r.tidx = r.st.finalTimeEntry(base, r.tidx)
		}
		idx, _ := os.ReadFile(p[:len(p)-4] + indexSuffix)
		tidx, _ := os.ReadFile(p[:len(p)-4] + timeIndexSuffix)
		if !bytes.Equal(idx, r.idx) || !bytes.Equal(tidx, r.tidx) {
			t.Errorf("%s: indexes do not match the segment (%d/%d vs %d/%d bytes)", filepath.Base(p), len(idx), len(tidx), len(r.idx), len(r.tidx))
		}
	}
}

func TestRecoveryAfterCleanShutdownScansActive(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	for i := 0; i < 3; i++ {
		mustAppend(t, l, simpleBatch(t, "c", 2, time.Now().UnixMilli()))
	}
	l.Close()
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
		t.Fatalf("no clean shutdown marker: %v", err)
	}
	p := logPath(dir, 0)
	os.Truncate(p, fileSize(t, p)-1)
	l = openLog(t, dir, Config{})
	defer l.Close()
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker not removed at Open: %v", err)
	}
	if l.LogEndOffset() != 4 {
		t.Fatalf("LEO %d, want 4", l.LogEndOffset())
	}
}

// ---- idempotent producers ----

func pbatch(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]rec, n)
	for i := range recs {
		recs[i] = rec{ts: time.Now().UnixMilli(), value: []byte("p")}
	}
	return makeBatch(t, batchOpts{pid: pid, epoch: epoch, seq: seq}, recs...)
}

func TestIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	res := mustAppend(t, l, pbatch(t, 1, 0, 0, 3))
	if res.BaseOffset != 0 || res.LastOffset != 2 || res.Duplicate {
		t.Fatalf("%+v", res)
	}
	// A retry gets the original offsets and writes nothing.
	res = mustAppend(t, l, pbatch(t, 1, 0, 0, 3))
	if !res.Duplicate || res.BaseOffset != 0 || res.LastOffset != 2 || l.LogEndOffset() != 3 {
		t.Fatalf("retry: %+v LEO %d", res, l.LogEndOffset())
	}
	mustAppend(t, l, simpleBatch(t, "other", 1, time.Now().UnixMilli())) // offset 3
	res = mustAppend(t, l, pbatch(t, 1, 0, 3, 2))
	if res.BaseOffset != 4 || res.LastOffset != 5 {
		t.Fatalf("%+v", res)
	}
	// An older batch still among the last five is a duplicate too.
	if res = mustAppend(t, l, pbatch(t, 1, 0, 0, 3)); !res.Duplicate || res.BaseOffset != 0 {
		t.Fatalf("older retry: %+v", res)
	}
	// A gap, and a batch overlapping the last one, are out of order.
	if _, err := l.Append(pbatch(t, 1, 0, 10, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := l.Append(pbatch(t, 1, 0, 4, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("overlap: %v", err)
	}
	// Push the first batch out of the window of five.
	seq := int32(5)
	for i := 0; i < 5; i++ {
		mustAppend(t, l, pbatch(t, 1, 0, seq, 1))
		seq++
	}
	if _, err := l.Append(pbatch(t, 1, 0, 0, 3)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("retry beyond the window: %v", err)
	}
	// A new epoch must start at 0; then the old epoch is fenced.
	if _, err := l.Append(pbatch(t, 1, 1, seq, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("new epoch not at 0: %v", err)
	}
	mustAppend(t, l, pbatch(t, 1, 1, 0, 2))
	if _, err := l.Append(pbatch(t, 1, 0, seq, 1)); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("fenced epoch: %v", err)
	}
	// An unknown producer id starts anywhere; producer -1 is never checked.
	mustAppend(t, l, pbatch(t, 2, 0, 42, 1))
	mustAppend(t, l, simpleBatch(t, "x", 1, time.Now().UnixMilli()))
	mustAppend(t, l, simpleBatch(t, "x", 1, time.Now().UnixMilli()))
	// Sequences wrap from MaxInt32 to 0.
	mustAppend(t, l, pbatch(t, 3, 0, math.MaxInt32-1, 2))
	mustAppend(t, l, pbatch(t, 3, 0, 0, 1))
	// Several batches of one producer in one append are checked in order.
	two := append(pbatch(t, 4, 0, 0, 2), pbatch(t, 4, 0, 2, 1)...)
	if res := mustAppend(t, l, two); res.LastOffset-res.BaseOffset != 2 {
		t.Fatalf("two batches: %+v", res)
	}
	bad := append(pbatch(t, 5, 0, 0, 2), pbatch(t, 5, 0, 3, 1)...)
	leo := l.LogEndOffset()
	if _, err := l.Append(bad); !errors.Is(err, ErrOutOfOrderSequence) || l.LogEndOffset() != leo {
		t.Fatalf("bad pair: %v", err)
	}

	lastRetry := pbatch(t, 1, 1, 0, 2)
	wantRes := mustAppend(t, l, bytes.Clone(lastRetry))
	if !wantRes.Duplicate {
		t.Fatalf("not a duplicate: %+v", wantRes)
	}
	check := func(l *Log) {
		t.Helper()
		res, err := l.Append(bytes.Clone(lastRetry))
		if err != nil || !res.Duplicate || res.BaseOffset != wantRes.BaseOffset {
			t.Fatalf("after reopen: %+v %v", res, err)
		}
		if _, err := l.Append(pbatch(t, 1, 0, 0, 1)); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("after reopen, fencing: %v", err)
		}
		if _, err := l.Append(pbatch(t, 4, 0, 5, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("after reopen, gap: %v", err)
		}
	}
	// Clean restart.
	l.Close()
	l = openLog(t, dir, Config{})
	check(l)
	// Unclean restart with batches after the snapshot.
	mustAppend(t, l, pbatch(t, 6, 0, 0, 1))
	crash(t, l)
	l = openLog(t, dir, Config{})
	check(l)
	if _, err := l.Append(pbatch(t, 6, 0, 0, 1)); err != nil {
		t.Fatalf("replayed batch: %v", err)
	} else if res, _ := l.Append(pbatch(t, 6, 0, 1, 1)); res.Duplicate {
		t.Fatal("unexpected duplicate")
	}
	crash(t, l)
	// Unclean restart with no snapshot at all: everything is replayed.
	snaps, _ := filepath.Glob(filepath.Join(dir, "*.snapshot"))
	for _, s := range snaps {
		os.Remove(s)
	}
	l = openLog(t, dir, Config{})
	defer l.Close()
	check(l)
}

func TestProducerStateAcrossRolls(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 300})
	var seq int32
	var batches [][]byte
	for i := 0; i < 20; i++ {
		b := pbatch(t, 9, 0, seq, 2)
		batches = append(batches, bytes.Clone(b))
		mustAppend(t, l, b)
		seq += 2
	}
	if len(l.Segments()) < 5 {
		t.Fatalf("%d segments", len(l.Segments()))
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "*.snapshot"))
	if len(snaps) == 0 || len(snaps) > snapshotsKept {
		t.Fatalf("%d snapshots", len(snaps))
	}
	crash(t, l)
	// A snapshot from the future (beyond the log end) is ignored and removed.
	os.WriteFile(snapshotPath(dir, 1000), producerState{}.encode(), 0o644)
	// A damaged newest snapshot is skipped in favour of an older one.
	snaps, _ = filepath.Glob(filepath.Join(dir, "*.snapshot"))
	os.WriteFile(snaps[len(snaps)-2], []byte("garbage"), 0o644)
	l = openLog(t, dir, Config{SegmentBytes: 300})
	defer l.Close()
	if _, err := os.Stat(snapshotPath(dir, 1000)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("future snapshot kept: %v", err)
	}
	res, err := l.Append(batches[len(batches)-1])
	if err != nil || !res.Duplicate || res.BaseOffset != 38 {
		t.Fatalf("retry after crash: %+v %v", res, err)
	}
	if _, err := l.Append(pbatch(t, 9, 0, seq+1, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap after crash: %v", err)
	}
	mustAppend(t, l, pbatch(t, 9, 0, seq, 1))
}
