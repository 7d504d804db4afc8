package localstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// rec is a record to put in a test batch.
type rec struct {
	ts    int64
	key   []byte
	value []byte
}

// batchOpts are the producer fields and codec of a test batch.
type batchOpts struct {
	codec    int8 // 0 none, 1 gzip, 2 snappy (xerial framed), 3 lz4, 4 zstd, 5 = raw snappy
	pid      int64
	epoch    int16
	seq      int32
	attrsExt int16
}

func noProducer() batchOpts { return batchOpts{pid: -1, epoch: -1, seq: -1} }

func appendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return appendVarint(b, -1)
	}
	return append(appendVarint(b, int64(len(v))), v...)
}

// makeBatch encodes a v2 record batch with base offset 0 and a real CRC.
func makeBatch(t testing.TB, o batchOpts, recs ...rec) []byte {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("makeBatch: no records")
	}
	first, maxTs := recs[0].ts, recs[0].ts
	var raw []byte
	for i, r := range recs {
		maxTs = max(maxTs, r.ts)
		var body []byte
		body = append(body, 0)
		body = appendVarint(body, r.ts-first)
		body = appendVarint(body, int64(i))
		body = appendBytes(body, r.key)
		body = appendBytes(body, r.value)
		body = appendVarint(body, 0)
		raw = appendVarint(raw, int64(len(body)))
		raw = append(raw, body...)
	}
	codec := o.codec
	recsBytes := raw
	switch o.codec {
	case 1:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		recsBytes = buf.Bytes()
	case 2:
		recsBytes = xerial.Encode(nil, raw)
	case 5:
		codec = 2
		recsBytes = snappy.Encode(nil, raw)
	case 3:
		var buf bytes.Buffer
		zw := lz4.NewWriter(&buf)
		zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)) // as Kafka's clients do
		zw.Write(raw)
		zw.Close()
		recsBytes = buf.Bytes()
	case 4:
		zw, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		recsBytes = zw.EncodeAll(raw, nil)
		zw.Close()
	}
	b := make([]byte, HeaderSize, HeaderSize+len(recsBytes))
	be := binary.BigEndian
	be.PutUint32(b[batchOffLength:], uint32(HeaderSize-12+len(recsBytes)))
	b[batchOffMagic] = 2
	be.PutUint16(b[batchOffAttributes:], uint16(int16(codec)|o.attrsExt))
	be.PutUint32(b[batchOffLastOffsetDelta:], uint32(len(recs)-1))
	be.PutUint64(b[batchOffFirstTimestamp:], uint64(first))
	be.PutUint64(b[batchOffMaxTimestamp:], uint64(maxTs))
	be.PutUint64(b[batchOffProducerID:], uint64(o.pid))
	be.PutUint16(b[batchOffProducerEpoch:], uint16(o.epoch))
	be.PutUint32(b[batchOffBaseSequence:], uint32(o.seq))
	be.PutUint32(b[batchOffNumRecords:], uint32(len(recs)))
	b = append(b, recsBytes...)
	be.PutUint32(b[batchOffCRC:], batchCRC(b))
	return b
}

// simpleBatch is an uncompressed batch of n records with values "<tag>-i".
func simpleBatch(t testing.TB, tag string, n int, ts int64) []byte {
	t.Helper()
	recs := make([]rec, n)
	for i := range recs {
		recs[i] = rec{ts: ts + int64(i), value: fmt.Appendf(nil, "%s-%d", tag, i)}
	}
	return makeBatch(t, noProducer(), recs...)
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// sliceBytes reads a slice's bytes and releases it.
func sliceBytes(t testing.TB, s Slice) []byte {
	t.Helper()
	defer s.Done()
	if s.Len == 0 {
		return nil
	}
	b := make([]byte, s.Len)
	if _, err := s.File.ReadAt(b, s.Pos); err != nil {
		t.Fatalf("reading slice: %v", err)
	}
	return b
}

// splitBatches parses whole batches and checks their CRCs.
func splitBatches(t testing.TB, b []byte) []BatchHeader {
	t.Helper()
	var hs []BatchHeader
	for len(b) > 0 {
		h, err := ParseBatchHeader(b)
		if err != nil {
			t.Fatalf("ParseBatchHeader: %v", err)
		}
		if h.TotalSize() > int64(len(b)) {
			t.Fatalf("slice ends inside a batch: %d > %d", h.TotalSize(), len(b))
		}
		if !crcOK(b[:h.TotalSize()]) {
			t.Fatalf("batch at offset %d: CRC does not hold", h.BaseOffset)
		}
		hs = append(hs, h)
		b = b[h.TotalSize():]
	}
	return hs
}

// readAll reads the whole log from its start and returns the batch headers.
func readAll(t testing.TB, l *Log) []BatchHeader {
	t.Helper()
	var hs []BatchHeader
	for off := l.LogStartOffset(); off < l.LogEndOffset(); {
		s, err := l.Read(off, 1<<20, true)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		got := splitBatches(t, sliceBytes(t, s))
		if len(got) == 0 {
			t.Fatalf("Read(%d) returned nothing below LEO %d", off, l.LogEndOffset())
		}
		if got[0].BaseOffset > off || got[0].lastOffset() < off {
			t.Fatalf("Read(%d) starts with batch %d..%d", off, got[0].BaseOffset, got[0].lastOffset())
		}
		hs = append(hs, got...)
		off = got[len(got)-1].lastOffset() + 1
	}
	return hs
}

// crash abandons l as kill -9 would: files are closed, nothing is written.
func crash(t testing.TB, l *Log) {
	t.Helper()
	l.wr.Lock()
	defer l.wr.Unlock()
	l.active().closeIndexFiles()
	l.mu.Lock()
	l.mu.closed = true
	segs := l.mu.segs
	l.mu.Unlock()
	for _, s := range segs {
		s.release()
	}
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

var testingWriteCorpus = os.Getenv("STRATA_WRITE_CORPUS")

// writeCorpus writes seeds in go's fuzz corpus format.
func writeCorpus(t *testing.T, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", "FuzzValidateBatches")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
