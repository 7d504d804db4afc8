package localstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kv is one record read back from a log.
type kv struct {
	off       int64
	key       string
	value     string
	tombstone bool
	keyless   bool
}

// logRecords reads the whole log through Read, as a consumer does: each
// fetch from the offset after the last batch seen, gaps included, and
// returns every record and every batch header.
func logRecords(t testing.TB, l *Log) ([]kv, []BatchHeader) {
	t.Helper()
	var out []kv
	var hs []BatchHeader
	var dec decoders
	defer dec.close()
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		s, err := l.Read(off, 1<<20, true)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		b := sliceBytes(t, s)
		got := splitBatches(t, b)
		if len(got) == 0 {
			t.Fatalf("Read(%d) returned nothing below LEO %d", off, l.LogEndOffset())
		}
		if got[0].lastOffset() < off {
			t.Fatalf("Read(%d) starts with batch %d..%d, before the offset", off, got[0].BaseOffset, got[0].lastOffset())
		}
		for _, h := range got {
			recs, err := cleanDecode(&dec, b[:h.TotalSize()], h)
			if err != nil {
				t.Fatalf("batch %d: %v", h.BaseOffset, err)
			}
			n := int32(0)
			err = forEachCleanRecord(recs, h.BaseOffset, func(r cleanRecord) bool {
				n++
				v := kv{off: r.offset, key: string(r.key), keyless: !r.hasKey, tombstone: r.tombstone}
				if !r.tombstone {
					v.value = string(valueOf(t, r.raw))
				}
				out = append(out, v)
				return true
			})
			if err != nil || n != h.NumRecords {
				t.Fatalf("batch %d: %d records, header says %d: %v", h.BaseOffset, n, h.NumRecords, err)
			}
			b = b[h.TotalSize():]
		}
		hs = append(hs, got...)
		off = got[len(got)-1].lastOffset() + 1
	}
	return out, hs
}

// valueOf returns the value of a raw record (with its length prefix).
func valueOf(t testing.TB, raw []byte) []byte {
	_, k := readVarint(raw)
	b := raw[k+1:]
	for i := 0; i < 2; i++ { // timestamp delta, offset delta
		_, n := readVarint(b)
		if i == 0 {
			_, n = varint64(b)
		}
		b = b[n:]
	}
	kl, n := readVarint(b)
	b = b[n:]
	if kl > 0 {
		b = b[kl:]
	}
	vl, n := readVarint(b)
	return b[n : n+int(vl)]
}

func varint64(b []byte) (int64, int) {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(v>>1) ^ -int64(v&1), i + 1
		}
	}
	return 0, -1
}

func keyed(ts int64, key, value string) rec {
	r := rec{ts: ts, key: []byte(key)}
	if value != "" {
		r.value = []byte(value)
	}
	return r
}

// latest is what a compacted log must hold: the last record of each key, in offset order.
func latest(all []kv) []kv {
	last := map[string]int64{}
	for _, r := range all {
		if !r.keyless {
			last[r.key] = r.off
		}
	}
	var out []kv
	for _, r := range all {
		if !r.keyless && last[r.key] == r.off {
			out = append(out, r)
		}
	}
	return out
}

func cleanNow(t testing.TB, l *Log, cc CleanConfig) CleanStats {
	t.Helper()
	st, err := l.Clean(cc)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	return st
}

// fillKeyed appends n batches of keys k0..k(keys-1), overwritten round after
// round, one record per batch, then rolls so that all of it is cleanable.
func fillKeyed(t testing.TB, l *Log, n, keys int, codec int8) {
	t.Helper()
	for i := 0; i < n; i++ {
		o := noProducer()
		o.codec = codec
		mustAppend(t, l, makeBatch(t, o, keyed(int64(1000+i), fmt.Sprintf("k%d", i%keys), fmt.Sprintf("v%d", i))))
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
}

func TestCleanKeepsLatestPerKeyAndOffsets(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 1024, IndexIntervalBytes: 128})
	defer l.Close()
	fillKeyed(t, l, 200, 7, 0)
	// A keyless record from before the topic was compacted: the cleaner drops it.
	mustAppend(t, l, makeBatch(t, noProducer(), rec{ts: 5000, value: []byte("nokey")}))
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(5001, "k0", "last0")))
	l.Roll()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(6000, "k1", "active"))) // active: never cleaned
	before, _ := logRecords(t, l)
	segsBefore := len(l.Segments())
	leo := l.LogEndOffset()

	st := cleanNow(t, l, CleanConfig{DeleteRetentionMs: 86400000})
	if st.RecordsRemoved == 0 || st.Passes != 1 {
		t.Fatalf("stats %+v", st)
	}
	after, hs := logRecords(t, l)
	act := before[len(before)-1]
	want := append(latest(before[:len(before)-1]), act)
	if !slices.Equal(after, want) {
		t.Fatalf("after cleaning:\n got %v\nwant %v", after, want)
	}
	if l.LogEndOffset() != leo || l.LogStartOffset() != 0 {
		t.Fatalf("offsets moved: LEO %d (was %d), start %d", l.LogEndOffset(), leo, l.LogStartOffset())
	}
	if n := len(l.Segments()); n >= segsBefore || n < 2 {
		t.Fatalf("%d segments after cleaning (%d before): small cleaned segments are merged", n, segsBefore)
	}
	for _, sg := range l.Segments() {
		if sg.Size > 1024 {
			t.Fatalf("cleaned segment %d is %d bytes, more than segment.bytes", sg.BaseOffset, sg.Size)
		}
	}
	for _, h := range hs {
		if h.NumRecords != 1 {
			t.Fatalf("batch %d holds %d records", h.BaseOffset, h.NumRecords)
		}
	}
	// Every offset of a gap reads as the next batch, inside a segment and between segments.
	for off := int64(0); off < leo; off++ {
		s, err := l.Read(off, 1<<20, false)
		if err != nil {
			t.Fatalf("Read(%d) in a gap: %v", off, err)
		}
		got := splitBatches(t, sliceBytes(t, s))
		i := slices.IndexFunc(after, func(r kv) bool { return r.off >= off })
		if len(got) == 0 || got[0].BaseOffset != after[i].off {
			t.Fatalf("Read(%d): got %v, want the batch at %d", off, got, after[i].off)
		}
	}
	// A second clean with nothing new dirty changes nothing.
	if st := cleanNow(t, l, CleanConfig{DeleteRetentionMs: 86400000}); st.Passes != 0 {
		t.Fatalf("second clean made %d passes", st.Passes)
	}
	// Reopen: the cleaned segments load and read the same.
	l.Close()
	l = openLog(t, dir, Config{SegmentBytes: 1024, IndexIntervalBytes: 128})
	if again, _ := logRecords(t, l); !slices.Equal(again, after) {
		t.Fatalf("after reopen:\n got %v\nwant %v", again, after)
	}
}

func TestCleanTombstonesKeptThenRemoved(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1 << 20})
	defer l.Close()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(1, "a", "1"), keyed(2, "b", "1")))
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(3, "a", ""))) // tombstone for a
	l.Roll()
	t0 := time.UnixMilli(1_000_000_000)
	const retention = 60_000
	cleanNow(t, l, CleanConfig{DeleteRetentionMs: retention, Now: t0})
	got, _ := logRecords(t, l)
	want := []kv{{off: 1, key: "b", value: "1"}, {off: 2, key: "a", tombstone: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("after the first clean: got %v, want %v (the tombstone stays)", got, want)
	}
	// More data so the log is dirty again; the tombstone is now in the clean part.
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(4, "b", "2")))
	l.Roll()
	cleanNow(t, l, CleanConfig{DeleteRetentionMs: retention, Now: t0.Add(retention*time.Millisecond - time.Millisecond)})
	got, _ = logRecords(t, l)
	want = []kv{{off: 2, key: "a", tombstone: true}, {off: 3, key: "b", value: "2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("before delete.retention.ms: got %v, want %v", got, want)
	}
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(5, "c", "1")))
	l.Roll()
	cleanNow(t, l, CleanConfig{DeleteRetentionMs: retention, Now: t0.Add(retention * time.Millisecond)})
	got, _ = logRecords(t, l)
	want = []kv{{off: 3, key: "b", value: "2"}, {off: 4, key: "c", value: "1"}}
	if !slices.Equal(got, want) {
		t.Fatalf("after delete.retention.ms: got %v, want %v (the tombstone goes)", got, want)
	}
}

func TestCleanKeepsEmptiedBatchOfIdempotentProducer(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{SegmentBytes: 1 << 20})
	p := batchOpts{pid: 7, epoch: 3, seq: 0}
	mustAppend(t, l, makeBatch(t, p, keyed(1, "a", "1"), keyed(2, "a", "2")))
	p.seq = 2
	mustAppend(t, l, makeBatch(t, p, keyed(3, "a", "3"), keyed(4, "b", "1")))
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(5, "a", "4"), keyed(6, "b", "2")))
	ctl := noProducer()
	ctl.attrsExt = 0x20 | 0x10
	mustAppend(t, l, makeBatch(t, ctl, rec{ts: 7, key: []byte{0, 0, 0, 0}, value: []byte{0, 0, 0, 0, 0, 0}}))
	l.Roll()
	cleanNow(t, l, CleanConfig{DeleteRetentionMs: 1})
	_, hs := logRecords(t, l)
	if len(hs) != 3 {
		t.Fatalf("batches %+v: want the producer's last batch (emptied), the plain one, the control one", hs)
	}
	h := hs[0]
	if h.BaseOffset != 2 || h.LastOffsetDelta != 1 || h.NumRecords != 0 || h.ProducerID != 7 || h.ProducerEpoch != 3 ||
		h.BaseSequence != 2 || h.FirstTimestamp != 3 || h.MaxTimestamp != 4 {
		t.Fatalf("emptied batch header %+v", h)
	}
	if !hs[2].Control() || hs[2].NumRecords != 1 {
		t.Fatalf("control batch %+v", hs[2])
	}
	// The producer's sequence survives a restart that replays the cleaned log.
	crash(t, l)
	os.Remove(filepath.Join(dir, recoveryPointFile))
	for _, off := range []int64{l.LogEndOffset(), 4} {
		os.Remove(snapshotPath(dir, off))
	}
	l = openLog(t, dir, Config{SegmentBytes: 1 << 20})
	defer l.Close()
	p.seq = 4
	if _, err := l.Append(makeBatch(t, p, keyed(8, "c", "1"))); err != nil {
		t.Fatalf("next batch of the producer after cleaning and restart: %v", err)
	}
	p.seq = 9
	if _, err := l.Append(makeBatch(t, p, keyed(9, "c", "2"))); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("a sequence gap after cleaning: %v, want ErrOutOfOrderSequence", err)
	}
	// Once the producer has written after it, the empty header goes too.
	l.Roll()
	cleanNow(t, l, CleanConfig{})
	if _, hs := logRecords(t, l); hs[0].NumRecords == 0 {
		t.Fatalf("the emptied batch is kept after the producer's next batch: %+v", hs[0])
	}
}

func TestCleanInPassesWithSmallDedupeBuffer(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 2048, IndexIntervalBytes: 64})
	defer l.Close()
	fillKeyed(t, l, 300, 40, 0)
	before, _ := logRecords(t, l)
	// Room for 9 keys: 40 distinct keys take several passes.
	st := cleanNow(t, l, CleanConfig{DedupeBufferBytes: 10 * offsetMapSlotSize})
	if st.Passes < 4 {
		t.Fatalf("%d passes with a map of 10 slots", st.Passes)
	}
	after, _ := logRecords(t, l)
	if want := latest(before); !slices.Equal(after, want) {
		t.Fatalf("after %d passes:\n got %v\nwant %v", st.Passes, after, want)
	}
}

func TestCleanKeepsEachBatchCodec(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1 << 20})
	defer l.Close()
	for codec := int8(0); codec <= 5; codec++ {
		o := noProducer()
		o.codec = codec
		var recs []rec
		for i := 0; i < 20; i++ {
			recs = append(recs, keyed(int64(i), fmt.Sprintf("c%d-k%d", codec, i%3), fmt.Sprintf("codec %d value %d", codec, i)))
		}
		mustAppend(t, l, makeBatch(t, o, recs...))
	}
	l.Roll()
	before, hsBefore := logRecords(t, l)
	cleanNow(t, l, CleanConfig{})
	after, hs := logRecords(t, l)
	if want := latest(before); !slices.Equal(after, want) {
		t.Fatalf("got %v\nwant %v", after, want)
	}
	if len(hs) != len(hsBefore) {
		t.Fatalf("%d batches, want %d", len(hs), len(hsBefore))
	}
	for i, h := range hs {
		b := hsBefore[i]
		if h.Compression() != b.Compression() || h.BaseOffset != b.BaseOffset || h.LastOffsetDelta != b.LastOffsetDelta ||
			h.FirstTimestamp != b.FirstTimestamp || h.MaxTimestamp != b.MaxTimestamp || h.NumRecords != 3 {
			t.Fatalf("batch %d: %+v, was %+v", i, h, b)
		}
	}
}

func TestCleanCrashAtEachSwapStep(t *testing.T) {
	// Find the steps of one swap.
	var steps []string
	{
		l := openLog(t, t.TempDir(), Config{SegmentBytes: 1024, IndexIntervalBytes: 128})
		fillKeyed(t, l, 120, 5, 0)
		l.cl.hook = func(s string) error { steps = append(steps, s); return nil }
		cleanNow(t, l, CleanConfig{})
		l.Close()
	}
	if len(steps) < 6 || !slices.Contains(steps, "manifest") || steps[len(steps)-1] != "done" {
		t.Fatalf("swap steps %v", steps)
	}
	errCrash := errors.New("crash")
	for i, step := range steps {
		t.Run(fmt.Sprintf("%d-%s", i, strings.ReplaceAll(step, " ", "-")), func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{SegmentBytes: 1024, IndexIntervalBytes: 128}
			l := openLog(t, dir, cfg)
			fillKeyed(t, l, 120, 5, 0)
			before, _ := logRecords(t, l)
			leo := l.LogEndOffset()
			l.cl.hook = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			if _, err := l.Clean(CleanConfig{}); !errors.Is(err, errCrash) {
				t.Fatalf("Clean: %v, want the injected crash", err)
			}
			crash(t, l)
			l = openLog(t, dir, cfg)
			defer l.Close()
			got, _ := logRecords(t, l)
			committed := slices.Index(steps, "manifest") <= i
			want := before
			if committed {
				want = latest(before)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("after a crash at %q (committed %t):\n got %v\nwant %v", step, committed, got, want)
			}
			if l.LogEndOffset() != leo {
				t.Fatalf("LEO %d, want %d", l.LogEndOffset(), leo)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), cleanedSuffix) || e.Name() == cleanSwapFile {
					t.Fatalf("%s left after reopening", e.Name())
				}
			}
			// And the log cleans to the same result afterwards.
			cleanNow(t, l, CleanConfig{})
			if got, _ := logRecords(t, l); !slices.Equal(got, latest(before)) {
				t.Fatalf("cleaning after recovery:\n got %v\nwant %v", got, latest(before))
			}
		})
	}
}

func TestCleanSkipsSegmentsInsideMinCompactionLag(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1 << 20})
	defer l.Close()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(1000, "a", "1"), keyed(1001, "a", "2")))
	l.Roll()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(9000, "a", "3"), keyed(9001, "a", "4")))
	l.Roll()
	now := time.UnixMilli(10_000)
	cs := l.CleanState(5000, now)
	if cs.CleanableEnd != 2 || cs.DirtyBytes == 0 || cs.DirtyRatio() != 1 {
		t.Fatalf("clean state %+v", cs)
	}
	cleanNow(t, l, CleanConfig{MinCompactionLagMs: 5000, Now: now})
	got, _ := logRecords(t, l)
	want := []kv{{off: 1, key: "a", value: "2"}, {off: 2, key: "a", value: "3"}, {off: 3, key: "a", value: "4"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if cs := l.CleanState(5000, now); cs.FirstDirtyOffset != 2 || cs.DirtyRatio() != 0 {
		t.Fatalf("clean state after %+v", cs)
	}
}

// A gap at the end of a cleaned segment: a read inside it gets the first
// batch of the next segment, not one found through the next segment's
// index with an offset below its base.
func TestReadInGapBeforeNextSegment(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1 << 20, IndexIntervalBytes: 1})
	defer l.Close()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(1, "a", "1")))
	mustAppend(t, l, makeBatch(t, noProducer(), rec{ts: 2, value: []byte("keyless")}))
	mustAppend(t, l, makeBatch(t, noProducer(), rec{ts: 3, value: []byte("keyless")}))
	l.Roll()
	for i := 0; i < 10; i++ {
		mustAppend(t, l, makeBatch(t, noProducer(), keyed(int64(10+i), fmt.Sprintf("b%d", i), "x")))
	}
	cleanNow(t, l, CleanConfig{})
	if segs := l.Segments(); segs[0].NextOffset != 1 || segs[1].BaseOffset != 3 {
		t.Fatalf("segments %+v", segs)
	}
	for _, off := range []int64{1, 2} {
		s, err := l.Read(off, 1<<20, false)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if hs := splitBatches(t, sliceBytes(t, s)); len(hs) != 10 || hs[0].BaseOffset != 3 {
			t.Fatalf("Read(%d) in the gap: %d batches from %d, want 10 from 3", off, len(hs), hs[0].BaseOffset)
		}
	}
}

func TestRequireKeys(t *testing.T) {
	for codec := int8(0); codec <= 5; codec++ {
		o := noProducer()
		o.codec = codec
		var recs []rec
		for i := 0; i < 200; i++ {
			recs = append(recs, keyed(int64(i), fmt.Sprintf("key-%d", i), strings.Repeat("v", i)))
		}
		good := makeBatch(t, o, recs...)
		recs[150].key = nil
		bad := makeBatch(t, o, recs...)
		for _, c := range []struct {
			b    []byte
			want error
		}{{good, nil}, {bad, ErrInvalidRecord}, {append(slices.Clone(good), bad...), ErrInvalidRecord}} {
			hs, err := ValidateBatches(c.b, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if err := RequireKeys(c.b, hs); !errors.Is(err, c.want) || (c.want != nil && !strings.Contains(err.Error(), "record 150")) {
				t.Errorf("codec %d: RequireKeys = %v, want %v for record 150", codec, err, c.want)
			}
		}
	}
}

// strata segments dump shows the gaps of a cleaned segment.
func TestDumpShowsCleanedGaps(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 1 << 20})
	defer l.Close()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(1, "a", "1"), keyed(2, "b", "1")))
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(3, "a", "2"), keyed(4, "a", "3")))
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(5, "b", "2")))
	l.Roll()
	mustAppend(t, l, makeBatch(t, noProducer(), keyed(6, "c", "1")))
	cleanNow(t, l, CleanConfig{})
	var out strings.Builder
	if err := DumpSegment(&out, l.Segments()[0].LogPath); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"gap: offsets 0 to 1 hold no batch (removed by the log cleaner)",
		"baseOffset: 2 lastOffset: 3 count: 1",
		"1 of the batch's 2 offsets hold no record",
		"baseOffset: 4 lastOffset: 4 count: 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dump lacks %q:\n%s", want, out.String())
		}
	}
}
