package localstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestAppendReadAcrossRolls(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 4096, IndexIntervalBytes: 256}
	l := openLog(t, dir, cfg)
	now := time.Now().UnixMilli()
	var want []AppendResult
	var payloads [][]byte
	for i := 0; i < 200; i++ {
		b := simpleBatch(t, fmt.Sprintf("b%d", i), 1+i%7, now)
		payloads = append(payloads, bytes.Clone(b))
		res := mustAppend(t, l, b)
		if i == 0 && res.BaseOffset != 0 {
			t.Fatalf("first base offset %d", res.BaseOffset)
		}
		if len(want) > 0 && res.BaseOffset != want[len(want)-1].LastOffset+1 {
			t.Fatalf("append %d: base %d after last %d", i, res.BaseOffset, want[len(want)-1].LastOffset)
		}
		if res.LastOffset-res.BaseOffset != int64(i%7) || res.LogAppendTime != -1 {
			t.Fatalf("append %d: %+v", i, res)
		}
		want = append(want, res)
	}
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("expected several segments, got %d", len(segs))
	}
	for i, s := range segs {
		if s.Size > cfg.SegmentBytes {
			t.Errorf("segment %d is %d bytes", s.BaseOffset, s.Size)
		}
		if i > 0 && s.BaseOffset != segs[i-1].NextOffset {
			t.Errorf("segment %d does not follow %d", s.BaseOffset, segs[i-1].NextOffset)
		}
		if s.Active != (i == len(segs)-1) || (!s.Active && s.RolledAt.IsZero()) {
			t.Errorf("segment %d: active %v rolledAt %v", s.BaseOffset, s.Active, s.RolledAt)
		}
		if filepath.Base(s.LogPath) != fmt.Sprintf("%020d.log", s.BaseOffset) {
			t.Errorf("bad name %s", s.LogPath)
		}
	}
	check := func(l *Log) {
		t.Helper()
		hs := readAll(t, l)
		if len(hs) != len(want) {
			t.Fatalf("read %d batches, appended %d", len(hs), len(want))
		}
		for i, h := range hs {
			if h.BaseOffset != want[i].BaseOffset || h.lastOffset() != want[i].LastOffset {
				t.Fatalf("batch %d: %d..%d, want %d..%d", i, h.BaseOffset, h.lastOffset(), want[i].BaseOffset, want[i].LastOffset)
			}
		}
		// Every offset reads from the batch holding it, with the bytes as appended.
		for i, w := range want {
			for off := w.BaseOffset; off <= w.LastOffset; off++ {
				s, err := l.Read(off, 1, true)
				if err != nil {
					t.Fatalf("Read(%d): %v", off, err)
				}
				got := sliceBytes(t, s)
				if !bytes.Equal(got[12:], payloads[i][12:]) {
					t.Fatalf("Read(%d): bytes differ from what was appended", off)
				}
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	check(l)
	if got := len(l.Segments()); got != len(segs) {
		t.Fatalf("reopened with %d segments, had %d", got, len(segs))
	}
}

func TestKmsgBatchRoundTrip(t *testing.T) {
	// A batch built by franz-go's kmsg passes validation and reads back.
	var recs []byte
	for i := 0; i < 3; i++ {
		r := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Value: []byte("v")}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	rb := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: 2, FirstTimestamp: 1000, MaxTimestamp: 1002,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 3, Records: recs}
	b := rb.AppendTo(nil)
	rb.Length = int32(len(b) - 12)
	b = rb.AppendTo(nil)
	rb.CRC = int32(batchCRC(b))
	b = rb.AppendTo(nil)
	if _, err := ValidateBatches(b, 1<<20); err != nil {
		t.Fatalf("ValidateBatches: %v", err)
	}
	l := openLog(t, t.TempDir(), Config{})
	defer l.Close()
	mustAppend(t, l, b)
	off, ts, ok, err := l.OffsetForTimestamp(1001)
	if err != nil || !ok || off != 1 || ts != 1001 {
		t.Fatalf("OffsetForTimestamp = %d %d %v %v", off, ts, ok, err)
	}
}

func TestReadKIP74(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	defer l.Close()
	now := time.Now().UnixMilli()
	var sizes []int64
	for i := 0; i < 4; i++ {
		b := simpleBatch(t, strings.Repeat("x", 100), 5, now)
		sizes = append(sizes, int64(len(b)))
		mustAppend(t, l, b)
	}
	// Smaller than one batch: only with minOneBatch.
	s, err := l.Read(0, 10, true)
	if err != nil || s.Len != sizes[0] || s.Pos != 0 {
		t.Fatalf("minOneBatch: %+v %v", s, err)
	}
	s.Done()
	s, err = l.Read(0, 10, false)
	if err != nil || s.Len != 0 {
		t.Fatalf("without minOneBatch: %+v %v", s, err)
	}
	s.Done()
	// Two and a half batches fit: two whole ones come back.
	s, err = l.Read(2, sizes[0]+sizes[1]+sizes[2]/2, false)
	if err != nil || s.Len != sizes[0]+sizes[1] {
		t.Fatalf("2.5 batches: %+v %v", s, err)
	}
	s.Done()
	// From the middle of the second batch.
	s, err = l.Read(7, 1<<20, false)
	if err != nil || s.Pos != sizes[0] || s.Len != sizes[1]+sizes[2]+sizes[3] {
		t.Fatalf("from offset 7: %+v %v", s, err)
	}
	s.Done()
	s.Done() // a second release is harmless
	// At the end: empty; beyond: out of range.
	if s, err := l.Read(20, 100, true); err != nil || s.Len != 0 {
		t.Fatalf("at LEO: %+v %v", s, err)
	}
	if _, err := l.Read(21, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond LEO: %v", err)
	}
	if _, err := l.Read(-1, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("below start: %v", err)
	}
}

func TestRollBySizeTimeIndex(t *testing.T) {
	now := time.Now()
	t.Run("size", func(t *testing.T) {
		b := simpleBatch(t, "s", 1, now.UnixMilli())
		l := openLog(t, t.TempDir(), Config{SegmentBytes: int64(len(b)) * 3})
		defer l.Close()
		for i := 0; i < 7; i++ {
			mustAppend(t, l, simpleBatch(t, "s", 1, now.UnixMilli()))
		}
		if n := len(l.Segments()); n != 3 {
			t.Fatalf("%d segments, want 3", n)
		}
	})
	t.Run("time", func(t *testing.T) {
		l := openLog(t, t.TempDir(), Config{SegmentMs: 1000})
		defer l.Close()
		mustAppend(t, l, simpleBatch(t, "t", 1, now.UnixMilli()))
		if err := l.Tick(now.Add(500 * time.Millisecond)); err != nil || len(l.Segments()) != 1 {
			t.Fatalf("rolled too early: %v %d", err, len(l.Segments()))
		}
		if err := l.Tick(now.Add(2 * time.Second)); err != nil || len(l.Segments()) != 2 {
			t.Fatalf("did not roll: %v %d", err, len(l.Segments()))
		}
		// An empty active segment is not rolled.
		if err := l.Tick(now.Add(time.Hour)); err != nil || len(l.Segments()) != 2 {
			t.Fatalf("rolled an empty segment: %v %d", err, len(l.Segments()))
		}
		// An old first batch makes the next append roll.
		mustAppend(t, l, simpleBatch(t, "t", 1, now.UnixMilli()-5000))
		mustAppend(t, l, simpleBatch(t, "t", 1, now.UnixMilli()))
		if n := len(l.Segments()); n != 3 {
			t.Fatalf("%d segments, want 3", n)
		}
	})
	t.Run("index full", func(t *testing.T) {
		// An index entry every batch after the first; room for 3 entries.
		l := openLog(t, t.TempDir(), Config{IndexIntervalBytes: 1, SegmentIndexBytes: 3 * timeEntrySize})
		defer l.Close()
		for i := 0; i < 10; i++ {
			mustAppend(t, l, simpleBatch(t, "i", 1, now.UnixMilli()+int64(i)))
		}
		segs := l.Segments()
		if len(segs) < 2 {
			t.Fatalf("%d segments", len(segs))
		}
		for _, s := range segs {
			if n := fileSize(t, s.TimeIndexPath); n > 3*timeEntrySize {
				t.Errorf("time index of %d has %d bytes", s.BaseOffset, n)
			}
			if n := fileSize(t, s.IndexPath); n > 3*timeEntrySize {
				t.Errorf("offset index of %d has %d bytes", s.BaseOffset, n)
			}
		}
		if hs := readAll(t, l); len(hs) != 10 {
			t.Fatalf("read %d batches", len(hs))
		}
	})
	t.Run("explicit", func(t *testing.T) {
		l := openLog(t, t.TempDir(), Config{})
		defer l.Close()
		if err := l.Roll(); err != nil || len(l.Segments()) != 1 {
			t.Fatalf("rolled empty: %v", err)
		}
		mustAppend(t, l, simpleBatch(t, "e", 2, now.UnixMilli()))
		if err := l.Roll(); err != nil || len(l.Segments()) != 2 || l.Segments()[1].BaseOffset != 2 {
			t.Fatalf("roll: %v %+v", err, l.Segments())
		}
	})
}

func TestConcurrentAppendRead(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 8192, IndexIntervalBytes: 512})
	defer l.Close()
	const appenders, perAppender = 3, 150
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	done := make(chan struct{})
	for a := 0; a < appenders; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perAppender; i++ {
				if _, err := l.Append(simpleBatch(t, "c", 1+i%4, now)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var rwg sync.WaitGroup
	for r := 0; r < 3; r++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-done:
					return
				default:
				}
				leo := l.LogEndOffset()
				if leo == 0 {
					continue
				}
				off := rng.Int64N(leo)
				s, err := l.Read(off, int64(rng.IntN(4096)), rng.IntN(2) == 0)
				if err != nil {
					t.Error(err)
					return
				}
				if s.Len == 0 {
					continue
				}
				b := make([]byte, s.Len)
				if _, err := s.File.ReadAt(b, s.Pos); err != nil {
					t.Error(err)
				}
				s.Done()
				for len(b) > 0 {
					h := parseHeader(b)
					if h.TotalSize() > int64(len(b)) || !crcOK(b[:h.TotalSize()]) {
						t.Errorf("read at %d: partial or corrupt batch", off)
						return
					}
					b = b[h.TotalSize():]
				}
				l.OffsetForTimestamp(now)
			}
		}()
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	hs := readAll(t, l)
	var n int64
	for _, h := range hs {
		n += int64(h.NumRecords)
	}
	if n != l.LogEndOffset() || len(hs) != appenders*perAppender {
		t.Fatalf("%d batches, %d records, LEO %d", len(hs), n, l.LogEndOffset())
	}
}

func TestSliceSurvivesDeletion(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	now := time.Now().UnixMilli()
	b := simpleBatch(t, "keep", 3, now)
	mustAppend(t, l, bytes.Clone(b))
	s, err := l.Read(0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, simpleBatch(t, "more", 2, now))
	n, err := l.DeleteSegmentsBefore(5)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSegmentsBefore: %d %v", n, err)
	}
	if _, err := os.Stat(logPath(dir, 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment file still there: %v", err)
	}
	if l.LogStartOffset() != 5 || l.LogEndOffset() != 5 {
		t.Fatalf("start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	if _, err := l.Read(0, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := sliceBytes(t, s) // still readable after deletion and Close
	if !bytes.Equal(got[12:], b[12:]) {
		t.Fatal("slice bytes changed")
	}
	if _, err := s.File.Stat(); err == nil {
		t.Fatal("file still open after the last release")
	}
	l = openLog(t, dir, Config{})
	defer l.Close()
	if l.LogStartOffset() != 5 || l.LogEndOffset() != 5 {
		t.Fatalf("reopened: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	if res := mustAppend(t, l, simpleBatch(t, "x", 1, now)); res.BaseOffset != 5 || res.LogStartOffset != 5 {
		t.Fatalf("append after delete: %+v", res)
	}
}

func TestDeleteSegmentsBefore(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	defer l.Close()
	now := time.Now().UnixMilli()
	for i := 0; i < 5; i++ {
		mustAppend(t, l, simpleBatch(t, "d", 10, now))
		if err := l.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	// Segments 0,10,20,30,40 and the empty active 50.
	if n, err := l.DeleteSegmentsBefore(25); err != nil || n != 2 {
		t.Fatalf("deleted %d %v", n, err)
	}
	if l.LogStartOffset() != 20 {
		t.Fatalf("start %d", l.LogStartOffset())
	}
	if n, err := l.DeleteSegmentsBefore(1000); err != nil || n != 3 {
		t.Fatalf("deleted %d %v", n, err)
	}
	if l.LogStartOffset() != 50 || len(l.Segments()) != 1 {
		t.Fatalf("start %d segments %d", l.LogStartOffset(), len(l.Segments()))
	}
}

func TestLogAppendTime(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{LogAppendTime: true})
	defer l.Close()
	before := time.Now().UnixMilli()
	b := makeBatch(t, noProducer(), rec{ts: 5, value: []byte("a")}, rec{ts: 7, value: []byte("b")})
	res := mustAppend(t, l, b)
	if res.LogAppendTime < before || res.LogAppendTime > time.Now().UnixMilli() {
		t.Fatalf("LogAppendTime %d", res.LogAppendTime)
	}
	s, err := l.Read(0, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	got := sliceBytes(t, s)
	hs, err := ValidateBatches(got, 1<<20)
	if err != nil {
		t.Fatalf("rewritten batch does not validate: %v", err)
	}
	h := hs[0]
	if !h.logAppendTime() || h.FirstTimestamp != res.LogAppendTime || h.MaxTimestamp != res.LogAppendTime {
		t.Fatalf("header %+v", h)
	}
	off, ts, ok, err := l.OffsetForTimestamp(res.LogAppendTime)
	if err != nil || !ok || off != 0 || ts != res.LogAppendTime {
		t.Fatalf("OffsetForTimestamp: %d %d %v %v", off, ts, ok, err)
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	codecs := []struct {
		name  string
		codec int8
	}{{"none", 0}, {"gzip", 1}, {"snappy-xerial", 2}, {"snappy-raw", 5}, {"lz4", 3}, {"zstd", 4}}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{SegmentBytes: 2048, IndexIntervalBytes: 200}
			l := openLog(t, dir, cfg)
			// Timestamps base+10*offset, but inside each batch out of order,
			// so the answer must come from the records, not the header.
			base := time.Now().UnixMilli() - 1_000_000
			var off int64
			for i := 0; i < 60; i++ {
				recs := make([]rec, 4)
				order := []int64{2, 0, 3, 1}
				for j := range recs {
					recs[j] = rec{ts: base + 10*(off+order[j]), value: bytes.Repeat([]byte{'v'}, 20)}
				}
				o := noProducer()
				o.codec = c.codec
				b := makeBatch(t, o, recs...)
				if _, err := ValidateBatches(b, 1<<20); err != nil {
					t.Fatal(err)
				}
				mustAppend(t, l, b)
				off += 4
			}
			if len(l.Segments()) < 2 {
				t.Fatalf("want several segments")
			}
			// Record at offset o has timestamp base+10*(batchStart+order[o%4]).
			tsOf := func(o int64) int64 {
				order := []int64{2, 0, 3, 1}
				return base + 10*(o-o%4+order[o%4])
			}
			check := func(l *Log) {
				t.Helper()
				for target := base - 5; target <= base+10*off+5; target += 7 {
					wantOff, wantTs, wantOK := int64(0), int64(0), false
					for o := int64(0); o < off; o++ {
						if tsOf(o) >= target {
							wantOff, wantTs, wantOK = o, tsOf(o), true
							break
						}
					}
					gotOff, gotTs, ok, err := l.OffsetForTimestamp(target)
					if err != nil || ok != wantOK || gotOff != wantOff || gotTs != wantTs {
						t.Fatalf("OffsetForTimestamp(%d) = %d %d %v %v, want %d %d %v", target, gotOff, gotTs, ok, err, wantOff, wantTs, wantOK)
					}
				}
				mo, mts, ok, err := l.MaxTimestamp()
				if err != nil || !ok || mts != tsOf(off-2) || mo != off-2 {
					t.Fatalf("MaxTimestamp = %d %d %v %v, want %d %d", mo, mts, ok, err, off-2, tsOf(off-2))
				}
			}
			check(l)
			l.Close()
			l = openLog(t, dir, cfg)
			defer l.Close()
			check(l)
		})
	}
}

func TestMaxTimestampEmpty(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	defer l.Close()
	if _, _, ok, err := l.MaxTimestamp(); ok || err != nil {
		t.Fatalf("empty log: %v %v", ok, err)
	}
	if _, _, ok, err := l.OffsetForTimestamp(0); ok || err != nil {
		t.Fatalf("empty log: %v %v", ok, err)
	}
}

func TestStickyWriteError(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	defer l.Close()
	mustAppend(t, l, simpleBatch(t, "a", 1, time.Now().UnixMilli()))
	l.active().f.Close() // the disk goes away under the log
	_, err1 := l.Append(simpleBatch(t, "b", 1, time.Now().UnixMilli()))
	_, err2 := l.Append(simpleBatch(t, "c", 1, time.Now().UnixMilli()))
	if !errors.Is(err1, ErrStorage) || err2 != err1 {
		t.Fatalf("errors %v, %v", err1, err2)
	}
	if l.LogEndOffset() != 1 {
		t.Fatalf("LEO moved to %d", l.LogEndOffset())
	}
	if err := l.Flush(); !errors.Is(err, ErrStorage) {
		t.Fatalf("Flush: %v", err)
	}
}

func TestClosedLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(simpleBatch(t, "a", 1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append: %v", err)
	}
	if _, err := l.Read(0, 1, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l = openLog(t, dir, Config{})
	if l.Dir() != dir {
		t.Fatalf("Dir %q", l.Dir())
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory still there: %v", err)
	}
}

func TestFlushPolicies(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{FlushMessages: 3, FlushMs: 1000})
	defer l.Close()
	now := time.Now()
	mustAppend(t, l, simpleBatch(t, "f", 2, now.UnixMilli()))
	l.wr.Lock()
	n := l.wr.unflushedMsgs
	l.wr.Unlock()
	if n != 2 {
		t.Fatalf("unflushed %d", n)
	}
	mustAppend(t, l, simpleBatch(t, "f", 1, now.UnixMilli()))
	l.wr.Lock()
	n = l.wr.unflushedMsgs
	l.wr.Unlock()
	if n != 0 {
		t.Fatalf("not flushed by flush.messages: %d", n)
	}
	mustAppend(t, l, simpleBatch(t, "f", 1, now.UnixMilli()))
	if err := l.Tick(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	l.wr.Lock()
	since := l.wr.unflushedSince
	l.wr.Unlock()
	if !since.IsZero() {
		t.Fatal("not flushed by flush.ms")
	}
	l.SetConfig(Config{})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestDumpSegment(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{IndexIntervalBytes: 1})
	o := batchOpts{pid: 7, epoch: 1, seq: 0, codec: 4}
	mustAppend(t, l, makeBatch(t, o, rec{ts: 100, value: []byte("z")}))
	mustAppend(t, l, simpleBatch(t, "d", 3, 200))
	l.Close()
	var buf bytes.Buffer
	if err := DumpSegment(&buf, logPath(dir, 0)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"baseOffset: 0 lastOffset: 0", "producerId: 7", "codec: zstd", "baseOffset: 1 lastOffset: 3", "crcValid: true", "2 batches", "offset: 3 position:", "timestamp: 202 offset: 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
}
