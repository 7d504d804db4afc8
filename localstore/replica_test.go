package localstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// rawLog reads every byte of l from offset from, batch by batch, as a
// follower's fetches would get them.
func rawLog(t testing.TB, l *Log, from int64) []byte {
	t.Helper()
	var out []byte
	for off := from; off < l.LogEndOffset(); {
		b := sliceBytes(t, mustRead(t, l, off, 1<<20))
		hs := splitBatches(t, b)
		if len(hs) == 0 {
			t.Fatalf("Read(%d) returned nothing below LEO %d", off, l.LogEndOffset())
		}
		out = append(out, b...)
		off = hs[len(hs)-1].lastOffset() + 1
	}
	return out
}

func mustRead(t testing.TB, l *Log, off, max int64) Slice {
	t.Helper()
	s, err := l.Read(off, max, true)
	if err != nil {
		t.Fatalf("Read(%d): %v", off, err)
	}
	return s
}

// replicate copies the leader's log from the follower's end, in fetches of
// at most maxBytes cut anywhere (a cut batch is fetched again next time).
func replicate(t testing.TB, leader, follower *Log, maxBytes int) {
	t.Helper()
	for follower.LogEndOffset() < leader.LogEndOffset() {
		leo := follower.LogEndOffset()
		b := rawLog(t, leader, leo)
		if len(b) > maxBytes {
			b = b[:maxBytes]
		}
		res, err := follower.AppendReplica(b)
		if err != nil {
			t.Fatalf("AppendReplica at %d: %v", leo, err)
		}
		if res.LastOffset < leo {
			b = rawLog(t, leader, leo)
			h := parseHeader(b)
			if res, err = follower.AppendReplica(b[:h.TotalSize()]); err != nil || res.BaseOffset != leo {
				t.Fatalf("AppendReplica of one batch at %d: %+v %v", leo, res, err)
			}
		}
	}
}

func mustAppendLeader(t testing.TB, l *Log, epoch int32, b []byte) AppendResult {
	t.Helper()
	res, err := l.AppendLeader(b, epoch)
	if err != nil {
		t.Fatalf("AppendLeader(epoch %d): %v", epoch, err)
	}
	return res
}

func wantEpochs(t testing.TB, l *Log, want ...EpochEntry) {
	t.Helper()
	if got := l.EpochEntries(); !slices.Equal(got, want) {
		t.Fatalf("epoch entries %v, want %v", got, want)
	}
}

func reopen(t testing.TB, l *Log, dir string, cfg Config, clean bool) *Log {
	t.Helper()
	if clean {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	} else {
		crash(t, l)
	}
	return openLog(t, dir, cfg)
}

func TestAppendLeaderStampsAndRecoversEpochs(t *testing.T) {
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 100}
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	now := time.Now().UnixMilli()
	mustAppendLeader(t, l, 0, simpleBatch(t, "a", 3, now))
	mustAppendLeader(t, l, 0, simpleBatch(t, "b", 2, now))
	r := mustAppendLeader(t, l, 3, simpleBatch(t, "c", 4, now))
	if r.BaseOffset != 5 || r.LastOffset != 8 {
		t.Fatalf("epoch 3 batch at %d..%d, want 5..8", r.BaseOffset, r.LastOffset)
	}
	mustAppendLeader(t, l, 3, simpleBatch(t, "d", 1, now))
	for _, e := range []int32{2, -1} {
		if _, err := l.AppendLeader(simpleBatch(t, "x", 1, now), e); !errors.Is(err, ErrFencedLeaderEpoch) {
			t.Fatalf("AppendLeader(epoch %d): %v, want ErrFencedLeaderEpoch", e, err)
		}
	}
	if l.LogEndOffset() != 10 {
		t.Fatalf("LEO %d after fenced appends, want 10", l.LogEndOffset())
	}
	want := []EpochEntry{{0, 0}, {3, 5}}
	wantEpochs(t, l, want...)
	if e, ok := l.LatestEpoch(); !ok || e != 3 {
		t.Fatalf("LatestEpoch %d %v", e, ok)
	}
	wantHeaderEpochs := []int32{0, 0, 3, 3}
	check := func(l *Log) {
		t.Helper()
		hs := readAll(t, l) // checks every CRC
		if len(hs) != len(wantHeaderEpochs) {
			t.Fatalf("%d batches, want %d", len(hs), len(wantHeaderEpochs))
		}
		for i, h := range hs {
			if h.PartitionLeaderEpoch != wantHeaderEpochs[i] {
				t.Fatalf("batch %d epoch %d, want %d", i, h.PartitionLeaderEpoch, wantHeaderEpochs[i])
			}
		}
		wantEpochs(t, l, want...)
	}
	check(l)
	b, err := os.ReadFile(filepath.Join(dir, leaderEpochFile))
	if err != nil || string(b) != "0\n2\n0 0\n3 5\n" {
		t.Fatalf("checkpoint file %q %v", b, err)
	}

	l = reopen(t, l, dir, cfg, true)
	check(l)
	l = reopen(t, l, dir, cfg, false)
	check(l)
	damage := map[string]func(){
		"deleted":   func() { os.Remove(filepath.Join(dir, leaderEpochFile)) },
		"garbage":   func() { os.WriteFile(filepath.Join(dir, leaderEpochFile), []byte("\x00\xffnot a checkpoint"), 0o644) },
		"bad count": func() { os.WriteFile(filepath.Join(dir, leaderEpochFile), []byte("0\n3\n0 0\n3 5\n"), 0o644) },
		"backwards": func() { os.WriteFile(filepath.Join(dir, leaderEpochFile), []byte("0\n2\n3 0\n0 5\n"), 0o644) },
		"truncated": func() { os.WriteFile(filepath.Join(dir, leaderEpochFile), []byte("0\n2\n0 0\n3"), 0o644) },
	}
	for _, name := range []string{"deleted", "garbage", "bad count", "backwards", "truncated"} {
		crash(t, l)
		damage[name]()
		l = openLog(t, dir, cfg)
		check(l)
		if b, err := os.ReadFile(filepath.Join(dir, leaderEpochFile)); err != nil || string(b) != "0\n2\n0 0\n3 5\n" {
			t.Fatalf("%s: checkpoint file not rewritten: %q %v", name, b, err)
		}
	}
	// A crash after a new epoch's entry was written but before its batch:
	// the entry at the log end is dropped.
	crash(t, l)
	os.WriteFile(filepath.Join(dir, leaderEpochFile), []byte("0\n3\n0 0\n3 5\n7 10\n"), 0o644)
	l = openLog(t, dir, cfg)
	check(l)
	// The next append goes on with the latest epoch.
	r = mustAppendLeader(t, l, 7, simpleBatch(t, "e", 1, now))
	want = append(want, EpochEntry{7, r.BaseOffset})
	wantHeaderEpochs = append(wantHeaderEpochs, 7)
	check(l)
	l.Close()
}

func TestAppendRecordsStampedEpochs(t *testing.T) {
	// Append (single node) keeps what the broker stamped and records it, so
	// that a rebuilt cache is the cache Append kept.
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	now := time.Now().UnixMilli()
	b := simpleBatch(t, "a", 2, now)
	mustAppend(t, l, b) // epoch 0 as makeBatch leaves it
	b = simpleBatch(t, "b", 2, now)
	binary.BigEndian.PutUint32(b[batchOffLeaderEpoch:], 0xffffffff) // -1: no epoch
	mustAppend(t, l, b)
	wantEpochs(t, l, EpochEntry{0, 0})
	os.Remove(filepath.Join(dir, leaderEpochFile))
	l = reopen(t, l, dir, Config{}, false)
	wantEpochs(t, l, EpochEntry{0, 0})
	l.Close()
}

func TestEndOffsetForEpoch(t *testing.T) {
	cfg := Config{SegmentBytes: 400}
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	if e, off := l.EndOffsetForEpoch(0); e != UndefinedEpoch || off != UndefinedEpochOffset {
		t.Fatalf("empty log: (%d, %d)", e, off)
	}
	if _, ok := l.LatestEpoch(); ok {
		t.Fatal("empty log has a latest epoch")
	}
	now := time.Now().UnixMilli()
	for _, e := range []int32{1, 3, 5} {
		for i := 0; i < 5; i++ {
			mustAppendLeader(t, l, e, simpleBatch(t, "x", 2, now))
		}
	}
	wantEpochs(t, l, EpochEntry{1, 0}, EpochEntry{3, 10}, EpochEntry{5, 20})
	cases := []struct {
		epoch     int32
		wantEpoch int32
		wantOff   int64
	}{
		{-1, -1, -1},
		{5, 5, 30},  // the latest: the log end offset
		{6, -1, -1}, // above the latest: undefined
		{4, 3, 20},  // between: the epoch below and the start of the next
		{3, 3, 20},
		{2, 1, 10},
		{1, 1, 10},
		{0, 0, 0}, // below the first: the first entry's start
	}
	run := func() {
		t.Helper()
		for _, c := range cases {
			if e, off := l.EndOffsetForEpoch(c.epoch); e != c.wantEpoch || off != c.wantOff {
				t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", c.epoch, e, off, c.wantEpoch, c.wantOff)
			}
		}
	}
	run()
	l = reopen(t, l, dir, cfg, false)
	run()

	// Retention: the entry covering the new log start stays, moved up.
	segs := l.Segments()
	var cut int64 = -1
	for _, s := range segs {
		if s.BaseOffset > 10 && s.BaseOffset < 20 {
			cut = s.BaseOffset
			break
		}
	}
	if cut < 0 {
		t.Fatalf("no segment starts inside epoch 3: %+v", segs)
	}
	if _, err := l.DeleteSegmentsBefore(cut); err != nil {
		t.Fatal(err)
	}
	wantEpochs(t, l, EpochEntry{3, cut}, EpochEntry{5, 20})
	if e, off := l.EndOffsetForEpoch(1); e != 1 || off != cut {
		t.Fatalf("EndOffsetForEpoch(1) after retention = (%d, %d), want (1, %d)", e, off, cut)
	}
	l = reopen(t, l, dir, cfg, false)
	wantEpochs(t, l, EpochEntry{3, cut}, EpochEntry{5, 20})
	l.Close()
}

// TestDivergingLogs plays KIP-101's and KIP-279's scenarios with two real
// logs: a follower finds where its log leaves its leader's, truncates there
// and then holds exactly the leader's bytes.
func TestDivergingLogs(t *testing.T) {
	cfg := Config{SegmentBytes: 500, IndexIntervalBytes: 64}
	now := time.Now().UnixMilli()
	// truncationOffset is the follower's side of KIP-279: ask the leader for
	// the end of the follower's latest epoch; if the leader answers an
	// older epoch, the follower's own end of that epoch may be lower.
	truncationOffset := func(leader, follower *Log) int64 {
		fe, _ := follower.LatestEpoch()
		le, lend := leader.EndOffsetForEpoch(fe)
		if le == UndefinedEpoch {
			t.Fatalf("leader cannot place epoch %d", fe)
		}
		_, fend := follower.EndOffsetForEpoch(le)
		return min(lend, fend, follower.LogEndOffset())
	}

	t.Run("KIP-279 leader epochs 0,1,3 follower 0,2", func(t *testing.T) {
		leader, follower := openLog(t, t.TempDir(), cfg), openLog(t, t.TempDir(), cfg)
		defer leader.Close()
		fdir := follower.Dir()
		for i := 0; i < 5; i++ {
			mustAppendLeader(t, leader, 0, simpleBatch(t, "c", 1, now))
		}
		replicate(t, leader, follower, 1<<20)
		// The leader went on alone in epoch 1 and later 3; the follower, a
		// leader for a while in epoch 2, wrote what nobody else has.
		mustAppendLeader(t, leader, 1, simpleBatch(t, "l1", 5, now))
		mustAppendLeader(t, leader, 3, simpleBatch(t, "l3", 5, now))
		mustAppendLeader(t, follower, 2, simpleBatch(t, "f2", 4, now))
		mustAppendLeader(t, follower, 2, simpleBatch(t, "f2", 4, now))
		wantEpochs(t, follower, EpochEntry{0, 0}, EpochEntry{2, 5})

		if e, off := leader.EndOffsetForEpoch(2); e != 1 || off != 10 {
			t.Fatalf("leader EndOffsetForEpoch(2) = (%d, %d), want (1, 10)", e, off)
		}
		to := truncationOffset(leader, follower)
		if to != 5 {
			t.Fatalf("truncation offset %d, want 5", to)
		}
		if leo, err := follower.TruncateTo(to); err != nil || leo != 5 {
			t.Fatalf("TruncateTo(5) = %d, %v", leo, err)
		}
		wantEpochs(t, follower, EpochEntry{0, 0})
		replicate(t, leader, follower, 150)
		if !bytes.Equal(rawLog(t, leader, 0), rawLog(t, follower, 0)) {
			t.Fatal("follower's bytes differ from the leader's")
		}
		wantEpochs(t, follower, EpochEntry{0, 0}, EpochEntry{1, 5}, EpochEntry{3, 10})
		follower = reopen(t, follower, fdir, cfg, false)
		if !bytes.Equal(rawLog(t, leader, 0), rawLog(t, follower, 0)) {
			t.Fatal("follower's bytes differ from the leader's after a reopen")
		}
		wantEpochs(t, follower, EpochEntry{0, 0}, EpochEntry{1, 5}, EpochEntry{3, 10})
		follower.Close()
	})

	t.Run("KIP-101 follower has an uncommitted tail", func(t *testing.T) {
		leader, follower := openLog(t, t.TempDir(), cfg), openLog(t, t.TempDir(), cfg)
		defer leader.Close()
		defer follower.Close()
		for i := 0; i < 5; i++ {
			mustAppendLeader(t, leader, 0, simpleBatch(t, "c", 1, now))
		}
		replicate(t, leader, follower, 1<<20)
		// The follower got offsets 5..7 of epoch 0 from an old leader
		// that died; the new leader never had them and starts epoch 1 at 5.
		for i := 0; i < 3; i++ {
			mustAppendLeader(t, follower, 0, simpleBatch(t, "lost", 1, now))
		}
		mustAppendLeader(t, leader, 1, simpleBatch(t, "new", 2, now))
		if e, off := leader.EndOffsetForEpoch(0); e != 0 || off != 5 {
			t.Fatalf("leader EndOffsetForEpoch(0) = (%d, %d), want (0, 5)", e, off)
		}
		to := truncationOffset(leader, follower)
		if leo, err := follower.TruncateTo(to); err != nil || leo != 5 {
			t.Fatalf("TruncateTo(%d) = %d, %v", to, leo, err)
		}
		replicate(t, leader, follower, 1<<20)
		if !bytes.Equal(rawLog(t, leader, 0), rawLog(t, follower, 0)) {
			t.Fatal("follower's bytes differ from the leader's")
		}
		wantEpochs(t, follower, EpochEntry{0, 0}, EpochEntry{1, 5})
	})
}

func TestAppendReplica(t *testing.T) {
	cfg := Config{SegmentBytes: 700, IndexIntervalBytes: 100}
	now := time.Now().UnixMilli()
	leader := openLog(t, t.TempDir(), cfg)
	defer leader.Close()
	for i := 0; i < 30; i++ {
		mustAppendLeader(t, leader, int32(i/10), simpleBatch(t, "v", 1+i%4, now+int64(i)))
	}
	fdir := t.TempDir()
	follower := openLog(t, fdir, cfg)
	replicate(t, leader, follower, 333) // cut mid-batch every time
	if !bytes.Equal(rawLog(t, leader, 0), rawLog(t, follower, 0)) {
		t.Fatal("follower's bytes differ from the leader's")
	}
	if n := len(follower.Segments()); n < 3 {
		t.Fatalf("follower has %d segments, want it to roll", n)
	}
	wantEpochs(t, follower, leader.EpochEntries()...)
	// The indexes work: the same answers as the leader's.
	for _, ts := range []int64{now, now + 7, now + 29, now + 100} {
		lo, lt, lok, lerr := leader.OffsetForTimestamp(ts)
		fo, ft, fok, ferr := follower.OffsetForTimestamp(ts)
		if lo != fo || lt != ft || lok != fok || lerr != nil || ferr != nil {
			t.Fatalf("OffsetForTimestamp(%d): leader (%d %d %v %v), follower (%d %d %v %v)", ts, lo, lt, lok, lerr, fo, ft, fok, ferr)
		}
	}
	// Segment boundaries may differ (a follower rolls per fetched set, as
	// Kafka's does), so compare the batch each read starts with.
	for off := int64(0); off < leader.LogEndOffset(); off += 3 {
		if a, b := leaderBatchAt(t, leader, off), leaderBatchAt(t, follower, off); !bytes.Equal(a, b) {
			t.Fatalf("Read(%d) differs", off)
		}
	}
	follower = reopen(t, follower, fdir, cfg, false)
	if !bytes.Equal(rawLog(t, leader, 0), rawLog(t, follower, 0)) {
		t.Fatal("follower's bytes differ from the leader's after a reopen")
	}

	// Nothing whole to append: no error, nothing written.
	leo := follower.LogEndOffset()
	next := leaderBatchAt(t, leader, 0)
	for name, b := range map[string][]byte{"empty": nil, "partial": next[:40], "partial header": next[:10]} {
		res, err := follower.AppendReplica(b)
		if err != nil || res.BaseOffset != leo || res.LastOffset != leo-1 {
			t.Fatalf("%s: %+v %v", name, res, err)
		}
	}

	// A leader's batches continuing the log.
	fresh := func(base int64, epoch int32, n int) []byte {
		b := simpleBatch(t, "f", n, now)
		binary.BigEndian.PutUint64(b[batchOffBaseOffset:], uint64(base))
		binary.BigEndian.PutUint32(b[batchOffLeaderEpoch:], uint32(epoch))
		return b
	}
	size := fileSize(t, follower.Segments()[len(follower.Segments())-1].LogPath)
	rejects := []struct {
		name string
		b    []byte
		want error
	}{
		{"overlap", fresh(leo-1, 2, 2), ErrOffsetMismatch},
		{"starts at 0", fresh(0, 2, 1), ErrOffsetMismatch},
		{"out of order", append(fresh(leo, 2, 3), fresh(leo+2, 2, 1)...), ErrOffsetMismatch},
		{"far beyond", fresh(leo+math.MaxUint32+1, 2, 1), ErrOffsetMismatch},
		{"epoch goes back", fresh(leo, 1, 1), ErrCorruptBatch},
		{"epoch goes back inside", append(fresh(leo, 5, 1), fresh(leo+1, 4, 1)...), ErrCorruptBatch},
		{"bad CRC", func() []byte { b := fresh(leo, 2, 2); b[len(b)-1] ^= 1; return b }(), ErrCorruptBatch},
		{"garbage under a good CRC", func() []byte {
			b := fresh(leo, 2, 2)
			b[HeaderSize] = 0x7f // first record's length varint
			binary.BigEndian.PutUint32(b[batchOffCRC:], batchCRC(b))
			return b
		}(), ErrCorruptBatch},
		{"length below a header", func() []byte {
			b := fresh(leo, 2, 1)
			binary.BigEndian.PutUint32(b[batchOffLength:], 10)
			return b
		}(), ErrCorruptBatch},
		{"bad magic", func() []byte { b := fresh(leo, 2, 1); b[batchOffMagic] = 7; return b }(), ErrCorruptBatch},
	}
	for _, c := range rejects {
		_, err := follower.AppendReplica(c.b)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: err %v, want %v", c.name, err, c.want)
		}
		if follower.LogEndOffset() != leo || fileSize(t, follower.Segments()[len(follower.Segments())-1].LogPath) != size {
			t.Fatalf("%s: the log changed", c.name)
		}
	}
	wantEpochs(t, follower, leader.EpochEntries()...)

	// A whole batch with a partial one after it: the whole one is appended.
	two := append(fresh(leo, 2, 2), fresh(leo+2, 4, 3)...)
	res, err := follower.AppendReplica(two[:len(two)-5])
	if err != nil || res.BaseOffset != leo || res.LastOffset != leo+1 {
		t.Fatalf("whole + partial: %+v %v", res, err)
	}
	// A gap, as a compacted leader's log has: kept as it is.
	res, err = follower.AppendReplica(fresh(leo+10, 4, 1))
	if err != nil || res.BaseOffset != leo+10 || res.LastOffset != leo+10 {
		t.Fatalf("after a gap: %+v %v", res, err)
	}
	if got := parseHeader(sliceBytes(t, mustRead(t, follower, leo+3, 1000))); got.BaseOffset != leo+10 {
		t.Fatalf("Read in the gap got batch %d, want %d", got.BaseOffset, leo+10)
	}
	wantEpochs(t, follower, append(leader.EpochEntries(), EpochEntry{4, leo + 10})...)
	follower = reopen(t, follower, fdir, cfg, false)
	if follower.LogEndOffset() != leo+11 {
		t.Fatalf("LEO %d after reopen, want %d", follower.LogEndOffset(), leo+11)
	}
	wantEpochs(t, follower, append(leader.EpochEntries(), EpochEntry{4, leo + 10})...)
	follower.Close()
}

// leaderBatchAt returns the whole batch holding off.
func leaderBatchAt(t testing.TB, l *Log, off int64) []byte {
	t.Helper()
	b := sliceBytes(t, mustRead(t, l, off, 1))
	return b[:parseHeader(b).TotalSize()]
}

func TestReplicaRebuildsProducerState(t *testing.T) {
	cfg := Config{SegmentBytes: 400}
	now := time.Now().UnixMilli()
	leader := openLog(t, t.TempDir(), cfg)
	defer leader.Close()
	pb := func(epoch int16, seq int32, n int) []byte {
		recs := make([]rec, n)
		for i := range recs {
			recs[i] = rec{ts: now, value: []byte("p")}
		}
		return makeBatch(t, batchOpts{pid: 7, epoch: epoch, seq: seq}, recs...)
	}
	var orig []AppendResult
	seq := int32(0)
	for i := 0; i < 8; i++ {
		mustAppendLeader(t, leader, 0, simpleBatch(t, "other", 2, now))
		orig = append(orig, mustAppendLeader(t, leader, 0, pb(0, seq, 3)))
		seq += 3
	}
	// The leader's producer state expired and it took a batch out of
	// sequence; a follower must take it as it is.
	mustAppendLeader(t, leader, 1, pb(1, 0, 2))
	orig = append(orig, mustAppendLeader(t, leader, 1, pb(1, 2, 2)))

	fdir := t.TempDir()
	follower := openLog(t, fdir, cfg)
	replicate(t, leader, follower, 1<<20)
	for _, clean := range []bool{true, false, true} {
		// The follower is the new leader: a retry of the producer's last
		// batch is answered with its original offsets, not written again.
		leo := follower.LogEndOffset()
		res, err := follower.AppendLeader(pb(1, 2, 2), 2)
		last := orig[len(orig)-1]
		if err != nil || !res.Duplicate || res.BaseOffset != last.BaseOffset || res.LastOffset != last.LastOffset {
			t.Fatalf("retry on the new leader: %+v %v, want %d..%d duplicate", res, err, last.BaseOffset, last.LastOffset)
		}
		if follower.LogEndOffset() != leo {
			t.Fatal("the retry was written")
		}
		if _, err := follower.AppendLeader(pb(1, 7, 1), 2); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("out of sequence on the new leader: %v", err)
		}
		if _, err := follower.AppendLeader(pb(0, 24, 1), 2); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("fenced producer epoch on the new leader: %v", err)
		}
		follower = reopen(t, follower, fdir, cfg, clean)
	}
	res := mustAppendLeader(t, follower, 2, pb(1, 4, 1))
	if res.Duplicate || res.BaseOffset != leader.LogEndOffset() {
		t.Fatalf("next batch: %+v", res)
	}
	follower.Close()
}

// truncLog writes a log of batches of 3 records with increasing timestamps
// over several segments; epochs change every 4 batches; producer 9 writes
// every third batch.
func truncLog(t *testing.T, dir string, cfg Config, now int64) (*Log, []BatchHeader) {
	t.Helper()
	l := openLog(t, dir, cfg)
	seq := int32(0)
	for i := 0; i < 24; i++ {
		recs := []rec{{ts: now + int64(3*i)}, {ts: now + int64(3*i+1)}, {ts: now + int64(3*i+2)}}
		o := noProducer()
		if i%3 == 0 {
			o = batchOpts{pid: 9, epoch: 0, seq: seq}
			seq += 3
		}
		mustAppendLeader(t, l, int32(i/4), makeBatch(t, o, recs...))
	}
	if len(l.Segments()) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(l.Segments()))
	}
	return l, readAll(t, l)
}

func TestTruncateTo(t *testing.T) {
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 100}
	now := time.Now().UnixMilli()
	segBase := func(l *Log, k int) int64 { return l.Segments()[k].BaseOffset }
	cases := []struct {
		name   string
		offset func(l *Log) int64
	}{
		{"mid-batch", func(l *Log) int64 { return 40 }},
		{"batch boundary", func(l *Log) int64 { return 39 }},
		{"segment boundary", func(l *Log) int64 { return segBase(l, 2) }},
		{"inside the active segment", func(l *Log) int64 { return l.LogEndOffset() - 2 }},
		{"older segment", func(l *Log) int64 { return segBase(l, 1) + 4 }},
		{"to 0", func(l *Log) int64 { return 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, hs := truncLog(t, dir, cfg, now)
			oldLEO := l.LogEndOffset()
			off := c.offset(l)
			// A reader holding a slice of a segment that goes reads it whole.
			last := l.Segments()[len(l.Segments())-1]
			held := mustRead(t, l, last.BaseOffset, 1<<20)
			heldWant := make([]byte, held.Len)
			held.File.ReadAt(heldWant, held.Pos)

			leo, err := l.TruncateTo(off)
			if err != nil {
				t.Fatal(err)
			}
			// Every batch holding an offset >= off is gone.
			keep := 0
			for keep < len(hs) && hs[keep].lastOffset() < off {
				keep++
			}
			wantLEO := int64(0)
			if keep > 0 {
				wantLEO = hs[keep-1].lastOffset() + 1
			}
			if leo != wantLEO || l.LogEndOffset() != wantLEO {
				t.Fatalf("TruncateTo(%d) = %d, LEO %d, want %d", off, leo, l.LogEndOffset(), wantLEO)
			}
			if c.name == "mid-batch" && leo >= off {
				t.Fatalf("a straddling batch stayed: LEO %d", leo)
			}
			if l.LogEndOffset() > last.BaseOffset || c.name == "inside the active segment" {
				// the held segment is still in the log; nothing to check
			} else {
				got := sliceBytes(t, held)
				if !bytes.Equal(got, heldWant) {
					t.Fatal("a held slice of a removed segment changed")
				}
			}
			held.Done()
			if _, err := os.Stat(filepath.Join(dir, truncationFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("truncation intent left behind: %v", err)
			}

			check := func(l *Log, extra int) {
				t.Helper()
				got := readAll(t, l)
				if len(got) != keep+extra {
					t.Fatalf("%d batches, want %d", len(got), keep+extra)
				}
				for i := 0; i < keep; i++ {
					if got[i] != hs[i] {
						t.Fatalf("batch %d is %+v, want %+v", i, got[i], hs[i])
					}
				}
				var want []EpochEntry
				for _, h := range got {
					if len(want) == 0 || h.PartitionLeaderEpoch > want[len(want)-1].Epoch {
						want = append(want, EpochEntry{h.PartitionLeaderEpoch, h.BaseOffset})
					}
				}
				wantEpochs(t, l, want...)
			}
			check(l, 0)
			if n := len(l.Segments()); off > 0 && l.Segments()[n-1].BaseOffset > leo {
				t.Fatalf("active segment starts at %d, above the log end %d", l.Segments()[n-1].BaseOffset, leo)
			}

			// Appends go on from the new end with a new epoch; the indexes
			// answer for them at once.
			newTs := now + 1000
			var recs []rec
			for i := 0; i < 3; i++ {
				recs = append(recs, rec{ts: newTs + int64(i), value: []byte("new")})
			}
			res := mustAppendLeader(t, l, 50, makeBatch(t, noProducer(), recs...))
			if res.BaseOffset != leo || res.LastOffset != leo+2 {
				t.Fatalf("append after truncation at %d..%d, want %d..", res.BaseOffset, res.LastOffset, leo)
			}
			if h := parseHeader(sliceBytes(t, mustRead(t, l, leo+1, 1<<20))); h.BaseOffset != leo {
				t.Fatalf("Read(%d) got batch %d", leo+1, h.BaseOffset)
			}
			for _, q := range []struct{ ts, want int64 }{{newTs + 1, leo + 1}, {now + 3*int64(len(hs)), leo}} {
				o, _, ok, err := l.OffsetForTimestamp(q.ts)
				if err != nil || !ok || o != q.want {
					t.Fatalf("OffsetForTimestamp(%d) = %d %v %v, want %d", q.ts, o, ok, err, q.want)
				}
			}
			if e, end := l.EndOffsetForEpoch(50); e != 50 || end != leo+3 {
				t.Fatalf("EndOffsetForEpoch(50) = (%d, %d)", e, end)
			}
			// Producer state is the truncated log's: the producer's next
			// sequence after its last kept batch is accepted, a retry of a
			// kept batch is a duplicate.
			var kept []BatchHeader
			for _, h := range hs[:keep] {
				if h.ProducerID == 9 {
					kept = append(kept, h)
				}
			}
			nextSeq := int32(0)
			if len(kept) > 0 {
				k := kept[len(kept)-1]
				nextSeq = k.lastSequence() + 1
				retry := makeBatch(t, batchOpts{pid: 9, epoch: 0, seq: k.BaseSequence}, rec{ts: now}, rec{ts: now}, rec{ts: now})
				if r, err := l.AppendLeader(retry, 50); err != nil || !r.Duplicate || r.BaseOffset != k.BaseOffset {
					t.Fatalf("retry of a kept batch: %+v %v", r, err)
				}
			}
			p := mustAppendLeader(t, l, 50, makeBatch(t, batchOpts{pid: 9, epoch: 0, seq: nextSeq}, rec{ts: newTs + 5}))
			if p.Duplicate || p.BaseOffset != leo+3 {
				t.Fatalf("producer's next batch after truncation: %+v", p)
			}

			for _, clean := range []bool{false, true} {
				l = reopen(t, l, dir, cfg, clean)
				check(l, 2)
				if l.LogEndOffset() != leo+4 {
					t.Fatalf("LEO %d after reopen, want %d", l.LogEndOffset(), leo+4)
				}
				o, _, ok, err := l.OffsetForTimestamp(newTs + 1)
				if err != nil || !ok || o != leo+1 {
					t.Fatalf("OffsetForTimestamp after reopen = %d %v %v", o, ok, err)
				}
			}
			if oldLEO <= leo {
				t.Fatal("nothing was truncated")
			}
			l.Close()
		})
	}
}

func TestTruncateToEdges(t *testing.T) {
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 100}
	now := time.Now().UnixMilli()
	l, hs := truncLog(t, t.TempDir(), cfg, now)
	defer l.Close()
	leo := l.LogEndOffset()
	if got, err := l.TruncateTo(leo + 5); err != nil || got != leo {
		t.Fatalf("TruncateTo past the end = %d, %v", got, err)
	}
	if got, err := l.TruncateTo(leo); err != nil || got != leo {
		t.Fatalf("TruncateTo(LEO) = %d, %v", got, err)
	}
	if _, err := l.TruncateTo(-1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("TruncateTo(-1): %v", err)
	}
	if len(readAll(t, l)) != len(hs) {
		t.Fatal("a no-op truncation changed the log")
	}
	// Below the log start: the log restarts empty there (Kafka's truncateTo).
	if _, err := l.DeleteSegmentsBefore(l.Segments()[2].BaseOffset); err != nil {
		t.Fatal(err)
	}
	start := l.LogStartOffset()
	if got, err := l.TruncateTo(start - 3); err != nil || got != start-3 {
		t.Fatalf("TruncateTo below the start = %d, %v", got, err)
	}
	if l.LogStartOffset() != start-3 || l.LogEndOffset() != start-3 || len(l.EpochEntries()) != 0 {
		t.Fatalf("log %d..%d epochs %v", l.LogStartOffset(), l.LogEndOffset(), l.EpochEntries())
	}
	if err := l.TruncateFullyAndStartAt(-1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("TruncateFullyAndStartAt(-1): %v", err)
	}
	l.Close()
	if _, err := l.TruncateTo(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("TruncateTo on a closed log: %v", err)
	}
	if err := l.TruncateFullyAndStartAt(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("TruncateFullyAndStartAt on a closed log: %v", err)
	}
	if _, err := l.AppendReplica(simpleBatch(t, "x", 1, now)); !errors.Is(err, ErrClosed) {
		t.Fatalf("AppendReplica on a closed log: %v", err)
	}
}

// TestTruncateCrash leaves the directory as a kill -9 would at each step of
// a truncation and checks that Open finishes it.
func TestTruncateCrash(t *testing.T) {
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 100}
	now := time.Now().UnixMilli()
	// Each step does the truncation's disk work up to a point, by hand.
	steps := []string{"intent only", "snapshots removed", "last segment removed", "later segments removed", "segment cut, index stale", "all but the intent"}
	for k, step := range steps {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			l, hs := truncLog(t, dir, cfg, now)
			segs := l.Segments()
			cutSeg := segs[1]
			off := cutSeg.BaseOffset + 4
			keep := 0
			for keep < len(hs) && hs[keep].lastOffset() < off {
				keep++
			}
			wantLEO := hs[keep-1].lastOffset() + 1
			if k == len(steps)-1 {
				// The log did everything; the crash came before the intent went.
				if _, err := l.TruncateTo(off); err != nil {
					t.Fatal(err)
				}
				crash(t, l)
				if err := writeTruncation(dir, truncateTo, off); err != nil {
					t.Fatal(err)
				}
			} else {
				crash(t, l)
				if err := writeTruncation(dir, truncateTo, off); err != nil {
					t.Fatal(err)
				}
				if k >= 1 {
					if err := removeSnapshotsAbove(dir, wantLEO); err != nil {
						t.Fatal(err)
					}
				}
				if k >= 2 {
					last := segs[len(segs)-1]
					os.Remove(last.LogPath)
					os.Remove(last.IndexPath)
					os.Remove(last.TimeIndexPath)
				}
				if k >= 3 {
					for _, s := range segs[2:] {
						os.Remove(s.LogPath)
						os.Remove(s.IndexPath)
						os.Remove(s.TimeIndexPath)
					}
				}
				if k >= 4 {
					var size int64
					for _, h := range hs[:keep] {
						if h.BaseOffset >= cutSeg.BaseOffset {
							size += h.TotalSize()
						}
					}
					if err := os.Truncate(cutSeg.LogPath, size); err != nil {
						t.Fatal(err)
					}
				}
			}
			l = openLog(t, dir, cfg)
			defer l.Close()
			if l.LogEndOffset() != wantLEO {
				t.Fatalf("LEO %d after the crash, want %d", l.LogEndOffset(), wantLEO)
			}
			got := readAll(t, l)
			if len(got) != keep {
				t.Fatalf("%d batches, want %d", len(got), keep)
			}
			for i := range got {
				if got[i] != hs[i] {
					t.Fatalf("batch %d differs", i)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, truncationFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("truncation intent left behind: %v", err)
			}
			for _, e := range l.EpochEntries() {
				if e.StartOffset >= wantLEO {
					t.Fatalf("epoch entry %v at or past the log end %d", e, wantLEO)
				}
			}
			res := mustAppendLeader(t, l, 99, simpleBatch(t, "after", 2, now+5000))
			if res.BaseOffset != wantLEO {
				t.Fatalf("append after recovery at %d, want %d", res.BaseOffset, wantLEO)
			}
		})
	}

	t.Run("full, segments half removed", func(t *testing.T) {
		dir := t.TempDir()
		l, _ := truncLog(t, dir, cfg, now)
		segs := l.Segments()
		crash(t, l)
		if err := writeTruncation(dir, truncateFully, 5000); err != nil {
			t.Fatal(err)
		}
		for _, s := range segs[:2] {
			os.Remove(s.LogPath)
		}
		l = openLog(t, dir, cfg)
		defer l.Close()
		if l.LogStartOffset() != 5000 || l.LogEndOffset() != 5000 || len(l.Segments()) != 1 || len(l.EpochEntries()) != 0 {
			t.Fatalf("log %d..%d, %d segments, epochs %v", l.LogStartOffset(), l.LogEndOffset(), len(l.Segments()), l.EpochEntries())
		}
	})

	t.Run("damaged intent", func(t *testing.T) {
		dir := t.TempDir()
		l, _ := truncLog(t, dir, cfg, now)
		crash(t, l)
		os.WriteFile(filepath.Join(dir, truncationFile), []byte("garbage"), 0o644)
		if _, err := Open(dir, cfg, nil); !errors.Is(err, ErrStorage) {
			t.Fatalf("Open with a damaged truncation intent: %v", err)
		}
	})
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 100}
	now := time.Now().UnixMilli()
	dir := t.TempDir()
	l, _ := truncLog(t, dir, cfg, now)
	held := mustRead(t, l, 0, 1<<20)
	want := make([]byte, held.Len)
	held.File.ReadAt(want, held.Pos)
	if err := l.TruncateFullyAndStartAt(1000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sliceBytes(t, held), want) {
		t.Fatal("a held slice changed")
	}
	if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1000 || len(l.Segments()) != 1 || len(l.EpochEntries()) != 0 {
		t.Fatalf("log %d..%d, %d segments, epochs %v", l.LogStartOffset(), l.LogEndOffset(), len(l.Segments()), l.EpochEntries())
	}
	if _, err := l.Read(999, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read below the new start: %v", err)
	}
	if snaps, _ := listSnapshots(dir); len(snaps) != 0 {
		t.Fatalf("snapshots left: %v", snaps)
	}
	// The leader's batches from 1000 on; the producer is unknown here, so
	// any sequence is taken.
	lb := makeBatch(t, batchOpts{pid: 9, epoch: 0, seq: 300}, rec{ts: now}, rec{ts: now + 1})
	binary.BigEndian.PutUint64(lb[batchOffBaseOffset:], 1000)
	binary.BigEndian.PutUint32(lb[batchOffLeaderEpoch:], 4)
	if _, err := l.AppendReplica(lb[:len(lb)-1]); err != nil {
		t.Fatalf("partial batch: %v", err)
	}
	if l.LogEndOffset() != 1000 {
		t.Fatal("a partial batch was written")
	}
	res, err := l.AppendReplica(lb)
	if err != nil || res.BaseOffset != 1000 || res.LastOffset != 1001 {
		t.Fatalf("AppendReplica at the new start: %+v %v", res, err)
	}
	wantEpochs(t, l, EpochEntry{4, 1000})
	for _, clean := range []bool{false, true} {
		l = reopen(t, l, dir, cfg, clean)
		if l.LogStartOffset() != 1000 || l.LogEndOffset() != 1002 {
			t.Fatalf("after reopen: log %d..%d", l.LogStartOffset(), l.LogEndOffset())
		}
		wantEpochs(t, l, EpochEntry{4, 1000})
		if r, err := l.AppendLeader(lb, 5); err != nil || !r.Duplicate || r.BaseOffset != 1000 {
			t.Fatalf("retry of the replicated batch: %+v %v", r, err)
		}
	}
	// Starting again lower than the log held is fine too (a leader's log start).
	if err := l.TruncateFullyAndStartAt(10); err != nil {
		t.Fatal(err)
	}
	l = reopen(t, l, dir, cfg, false)
	if l.LogStartOffset() != 10 || l.LogEndOffset() != 10 {
		t.Fatalf("after reopen: log %d..%d", l.LogStartOffset(), l.LogEndOffset())
	}
	l.Close()
}

// TestTruncateConcurrentReaders reads and truncates at once: readers get
// data or a clean error, never a crash, and -race sees no race.
func TestTruncateConcurrentReaders(t *testing.T) {
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 100}
	now := time.Now().UnixMilli()
	l, _ := truncLog(t, t.TempDir(), cfg, now)
	defer l.Close()
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); !stop.Load(); i++ {
				start, end := l.LogStartOffset(), l.LogEndOffset()
				if end <= start {
					continue
				}
				s, err := l.Read(start+i%(end-start), 300, true)
				if err == nil {
					b := make([]byte, s.Len)
					s.File.ReadAt(b, s.Pos)
					s.Done()
				}
				l.OffsetForTimestamp(now + i%80)
				l.EndOffsetForEpoch(int32(i % 8))
				reads.Add(1)
			}
		}()
	}
	for round := 0; round < 20; round++ {
		leo := l.LogEndOffset()
		if _, err := l.TruncateTo(leo - 7); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			mustAppendLeader(t, l, int32(10+round), simpleBatch(t, "c", 3, now+int64(i)))
		}
		if round%5 == 4 {
			if err := l.TruncateFullyAndStartAt(l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 8; i++ {
				mustAppendLeader(t, l, int32(10+round), simpleBatch(t, "d", 3, now+int64(i)))
			}
		}
		n := reads.Load()
		wait.Eventually(t, "the readers to run between rounds", func() bool { return reads.Load() >= n+2 })
	}
	stop.Store(true)
	wg.Wait()
	readAll(t, l)
}

// TestCompactedLogReplicaAndTruncate replicates a compacted leader, whose
// log has gaps, and truncates a compacted log: offsets written again after
// a truncation are dirty for the cleaner.
func TestCompactedLogReplicaAndTruncate(t *testing.T) {
	cfg := Config{SegmentBytes: 1024, IndexIntervalBytes: 128}
	leader := openLog(t, t.TempDir(), cfg)
	defer leader.Close()
	fillKeyed(t, leader, 200, 7, 0)
	cleanNow(t, leader, CleanConfig{DeleteRetentionMs: 86400000})
	dirty := leader.CleanState(0, time.Now()).FirstDirtyOffset
	if dirty <= 0 {
		t.Fatalf("first dirty offset %d after cleaning", dirty)
	}
	fdir := t.TempDir()
	follower := openLog(t, fdir, cfg)
	replicate(t, leader, follower, 1<<20)
	if !bytes.Equal(rawLog(t, leader, 0), rawLog(t, follower, 0)) {
		t.Fatal("follower's bytes differ from the compacted leader's")
	}
	follower.Close()

	hs := splitBatches(t, rawLog(t, leader, 0)) // readAll wants no gaps
	cut := hs[len(hs)/4].BaseOffset             // inside the cleaned part
	if cut >= dirty {
		t.Fatalf("cut %d not below first dirty %d", cut, dirty)
	}
	leo, err := leader.TruncateTo(cut)
	if err != nil || leo > cut {
		t.Fatalf("TruncateTo(%d) = %d, %v", cut, leo, err)
	}
	if got := leader.CleanState(0, time.Now()).FirstDirtyOffset; got != leo {
		t.Fatalf("first dirty offset %d after truncation to %d", got, leo)
	}
	ldir := leader.Dir()
	leader = reopen(t, leader, ldir, cfg, false)
	if got := leader.CleanState(0, time.Now()).FirstDirtyOffset; got != leo {
		t.Fatalf("first dirty offset %d after reopen, want %d", got, leo)
	}
	if got := splitBatches(t, rawLog(t, leader, 0)); len(got) != len(hs)/4 || got[len(got)-1] != hs[len(hs)/4-1] {
		t.Fatalf("%d batches after truncation, want %d", len(got), len(hs)/4)
	}
}

func TestAppendReplicaKeepsLogAppendTime(t *testing.T) {
	leader := openLog(t, t.TempDir(), Config{LogAppendTime: true})
	defer leader.Close()
	follower := openLog(t, t.TempDir(), Config{LogAppendTime: true})
	defer follower.Close()
	mustAppendLeader(t, leader, 1, simpleBatch(t, "a", 3, 1000))
	b := rawLog(t, leader, 0)
	res, err := follower.AppendReplica(slices.Clone(b))
	if err != nil || res.LogAppendTime != -1 {
		t.Fatalf("AppendReplica: %+v %v", res, err)
	}
	if !bytes.Equal(rawLog(t, follower, 0), b) {
		t.Fatal("the follower restamped the leader's batch")
	}
}

func TestEpochRebuildAcrossSegments(t *testing.T) {
	cfg := Config{SegmentBytes: 500}
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	now := time.Now().UnixMilli()
	noEpoch := func() []byte {
		b := simpleBatch(t, "n", 1, now)
		binary.BigEndian.PutUint32(b[batchOffLeaderEpoch:], 0xffffffff)
		return b
	}
	for i := 0; i < 60; i++ {
		switch {
		case i == 20 || i == 41:
			if err := l.Roll(); err != nil { // an epoch starting a segment
				t.Fatal(err)
			}
			mustAppendLeader(t, l, int32(i), simpleBatch(t, "e", 2, now))
		case i%7 == 3:
			mustAppend(t, l, noEpoch())
		case i%9 == 0:
			mustAppendLeader(t, l, int32(i), simpleBatch(t, "e", 2, now))
		default:
			e, _ := l.LatestEpoch()
			mustAppendLeader(t, l, max(e, 0), simpleBatch(t, "e", 1, now))
		}
	}
	if len(l.Segments()) < 5 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}
	want := l.EpochEntries()
	if len(want) < 6 {
		t.Fatalf("want several epochs, got %v", want)
	}
	os.Remove(filepath.Join(dir, leaderEpochFile))
	l = reopen(t, l, dir, cfg, false)
	wantEpochs(t, l, want...)
	l.Close()
}
