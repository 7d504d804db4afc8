package localstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// The codecs of batchOpts: 1 gzip, 2 snappy (xerial), 3 lz4, 4 zstd, 5 raw snappy.
var testCodecs = []struct {
	name  string
	codec int8
}{{"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}, {"raw-snappy", 5}}

// rawRecord encodes one record, length included, with the given offset delta.
func rawRecord(offsetDelta int64, key, value []byte, headers ...[2][]byte) []byte {
	body := []byte{0}
	body = appendVarint(body, 0)
	body = appendVarint(body, offsetDelta)
	body = appendBytes(body, key)
	body = appendBytes(body, value)
	body = appendVarint(body, int64(len(headers)))
	for _, h := range headers {
		body = appendBytes(body, h[0])
		body = appendBytes(body, h[1])
	}
	return append(appendVarint(nil, int64(len(body))), body...)
}

// testZstd encodes as franz-go does (a 64 KiB window); EncodeAll is safe
// for concurrent use.
var testZstd, _ = zstd.NewWriter(nil, zstd.WithWindowSize(64<<10), zstd.WithEncoderConcurrency(1))

// compress encodes a records section with a batchOpts codec.
func compress(t testing.TB, codec int8, raw []byte) []byte {
	t.Helper()
	switch codec {
	case 0:
		return raw
	case 1:
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		zw.Close()
		return buf.Bytes()
	case 2:
		return xerial.Encode(nil, raw)
	case 3:
		var buf bytes.Buffer
		zw := lz4.NewWriter(&buf)
		zw.Apply(lz4.BlockSizeOption(lz4.Block64Kb)) // as Kafka's Java client does
		zw.Write(raw)
		zw.Close()
		return buf.Bytes()
	case 4:
		return testZstd.EncodeAll(raw, nil)
	case 5:
		return snappy.Encode(nil, raw)
	}
	t.Fatalf("codec %d", codec)
	return nil
}

// wrapBatch makes a batch of the compressed records section body that
// claims n records, with a CRC that holds.
func wrapBatch(codec int8, n int32, body []byte) []byte {
	if codec == 5 {
		codec = 2
	}
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	be := binary.BigEndian
	be.PutUint32(b[batchOffLength:], uint32(HeaderSize-12+len(body)))
	b[batchOffMagic] = 2
	be.PutUint16(b[batchOffAttributes:], uint16(codec))
	be.PutUint32(b[batchOffLastOffsetDelta:], uint32(n-1))
	be.PutUint64(b[batchOffProducerID:], ^uint64(0))
	be.PutUint16(b[batchOffProducerEpoch:], 0xffff)
	be.PutUint32(b[batchOffBaseSequence:], 0xffffffff)
	be.PutUint32(b[batchOffNumRecords:], uint32(n))
	return recrc(append(b, body...))
}

// records is a records section of n records with offset deltas 0..n-1.
func records(n int) []byte {
	var raw []byte
	for i := range n {
		raw = append(raw, rawRecord(int64(i), []byte("k"), fmt.Appendf(nil, "value-%d", i),
			[2][]byte{[]byte("h"), []byte("v")})...)
	}
	return raw
}

func TestValidateCompressedBatches(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80 kB: longer than the scanner's buffer
	longRecs := append(rawRecord(0, big, nil), rawRecord(1, nil, big, [2][]byte{big, big})...)
	// A long record whose key length runs past the record's own length,
	// with more bytes after it, so the stream does not end there.
	body := append([]byte{0, 0, 0}, appendVarint(nil, int64(len(big)+10))...)
	body = append(append(body, big...), 1, 0)
	badLong := append(append(appendVarint(nil, int64(len(body))), body...), make([]byte, 20)...)
	garbage := make([]byte, 300)
	for i := range garbage {
		garbage[i] = byte(i*131 + i*i*7 + 3)
	}
	for _, c := range testCodecs {
		cases := []struct {
			name string
			b    []byte
			want error
		}{
			{"valid", wrapBatch(c.codec, 3, compress(t, c.codec, records(3))), nil},
			{"valid long records", wrapBatch(c.codec, 2, compress(t, c.codec, longRecs)), nil},
			{"garbage with a valid CRC", wrapBatch(c.codec, 1, garbage), ErrCorruptBatch},
			{"empty body", wrapBatch(c.codec, 1, nil), ErrCorruptBatch},
			{"count claims more", wrapBatch(c.codec, 100000, compress(t, c.codec, records(1))), ErrCorruptBatch},
			{"count claims fewer", wrapBatch(c.codec, 1, compress(t, c.codec, records(3))), ErrCorruptBatch},
			{"no records", wrapBatch(c.codec, 1, compress(t, c.codec, []byte{})), ErrCorruptBatch},
			{"offset deltas 0,2", wrapBatch(c.codec, 2,
				compress(t, c.codec, append(rawRecord(0, nil, []byte("a")), rawRecord(2, nil, []byte("b"))...))), ErrInvalidRecord},
			{"offset deltas 1,0", wrapBatch(c.codec, 2,
				compress(t, c.codec, append(rawRecord(1, nil, []byte("a")), rawRecord(0, nil, []byte("b"))...))), ErrInvalidRecord},
			{"offset deltas 0,0", wrapBatch(c.codec, 2,
				compress(t, c.codec, append(rawRecord(0, nil, []byte("a")), rawRecord(0, nil, []byte("b"))...))), ErrInvalidRecord},
			{"truncated record", wrapBatch(c.codec, 3, compress(t, c.codec, records(3)[:len(records(3))-4])), ErrCorruptBatch},
			{"truncated long record", wrapBatch(c.codec, 2, compress(t, c.codec, longRecs[:len(longRecs)-100])), ErrCorruptBatch},
			{"trailing bytes", wrapBatch(c.codec, 3, compress(t, c.codec, append(records(3), 1, 2, 3))), ErrCorruptBatch},
			{"trailing zero", wrapBatch(c.codec, 3, compress(t, c.codec, append(records(3), 0))), ErrCorruptBatch},
			{"bad key length", wrapBatch(c.codec, 1, compress(t, c.codec, func() []byte {
				r := records(1)
				r[4] = 0x41 // length, attributes, ts delta, offset delta, key length -33
				return r
			}())), ErrInvalidRecord},
			{"long record key past its end", wrapBatch(c.codec, 1, compress(t, c.codec, badLong)), ErrInvalidRecord},
			{"bytes after the headers", wrapBatch(c.codec, 1, compress(t, c.codec, func() []byte {
				r := rawRecord(0, nil, []byte("v"))
				r[0] += 2 // the length claims two bytes more
				return append(r, 0, 0)
			}())), ErrInvalidRecord},
		}
		for _, k := range cases {
			hs, err := ValidateBatches(k.b, 0)
			if k.want == nil {
				if err != nil || len(hs) != 1 {
					t.Errorf("%s %s: %v", c.name, k.name, err)
				}
				continue
			}
			if !errors.Is(err, k.want) {
				t.Errorf("%s %s: got %v, want %v", c.name, k.name, err, k.want)
			}
		}
	}
}

// TestValidateCompressedAllOrNothing: one bad batch among good ones refuses
// the whole records field.
func TestValidateCompressedAllOrNothing(t *testing.T) {
	good := wrapBatch(3, 2, compress(t, 3, records(2)))
	bad := wrapBatch(1, 1, []byte("not gzip at all, but the CRC holds"))
	if _, err := ValidateBatches(append(bytes.Clone(good), bad...), 0); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("good then bad: %v", err)
	}
}

func TestValidateUnknownCodec(t *testing.T) {
	for codec := int16(5); codec <= 7; codec++ {
		b := wrapBatch(0, 2, records(2))
		binary.BigEndian.PutUint16(b[batchOffAttributes:], uint16(codec))
		if _, err := ValidateBatches(recrc(b), 0); !errors.Is(err, ErrCorruptBatch) {
			t.Errorf("codec %d: %v", codec, err)
		}
	}
}

// TestValidateZstdWindow: a zstd frame whose window is larger than
// zstdMaxWindow is refused before the decoder allocates for it.
func TestValidateZstdWindow(t *testing.T) {
	raw := rawRecord(0, nil, make([]byte, zstdMaxWindow+1024))
	for _, single := range []bool{true, false} {
		zw, err := zstd.NewWriter(nil, zstd.WithWindowSize(16<<20), zstd.WithSingleSegment(single))
		if err != nil {
			t.Fatal(err)
		}
		b := wrapBatch(4, 1, zw.EncodeAll(raw, nil))
		zw.Close()
		if _, err := ValidateBatches(b, 0); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("single segment %v: got %v, want ErrInvalidRecord", single, err)
		}
	}
	// The same records with franz-go's window pass.
	if _, err := ValidateBatches(wrapBatch(4, 1, compress(t, 4, raw)), 0); err != nil {
		t.Fatal(err)
	}
}

// bomb is a records section of one record whose value is zeros, compressed
// as frames (chunks) of zeros repeated so that building it is cheap: it
// decompresses to more than maxDecompressed.
func bomb(t *testing.T, codec int8) []byte {
	const chunk = 1 << 20
	n := maxDecompressed/chunk + 16
	value := int64(n) * chunk
	hdr := []byte{0, 0, 0, 1} // attributes, ts delta, offset delta, null key
	hdr = appendVarint(hdr, value)
	rec := appendVarint(nil, int64(len(hdr))+value+1)
	rec = append(rec, hdr...)
	zeros := make([]byte, chunk)
	var out []byte
	switch codec {
	case 2: // xerial: its header once, then length-prefixed snappy blocks
		frame := func(b []byte) []byte {
			e := snappy.Encode(nil, b)
			return append(binary.BigEndian.AppendUint32(nil, uint32(len(e))), e...)
		}
		out = append(xerial.Encode(nil, []byte{1})[:xerialHeaderSize], frame(rec)...)
		z := frame(zeros)
		for range n {
			out = append(out, z...)
		}
		return append(out, frame([]byte{0})...)
	default: // gzip members, lz4 and zstd frames decode one after another
		out = compress(t, codec, rec)
		z := compress(t, codec, zeros)
		for range n {
			out = append(out, z...)
		}
		return append(out, compress(t, codec, []byte{0})...)
	}
}

// TestValidateDecompressionBomb: a small batch that expands past
// maxDecompressed is refused, and validating it allocates a bounded amount,
// nowhere near what it expands to.
func TestValidateDecompressionBomb(t *testing.T) {
	for _, c := range testCodecs[:4] {
		b := wrapBatch(c.codec, 1, bomb(t, c.codec))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := ValidateBatches(b, 0)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s bomb of %d bytes: got %v, want ErrInvalidRecord", c.name, len(b), err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		inuse := int64(after.HeapInuse) - int64(before.HeapInuse)
		t.Logf("%s: %d-byte batch; validating it allocated %d bytes, heap in use %+d", c.name, len(b), alloc, inuse)
		if alloc > 32<<20 || inuse > 32<<20 {
			t.Errorf("%s: validating a bomb allocated %d bytes (heap in use %+d), want <= 32 MiB", c.name, alloc, inuse)
		}
	}
	// A raw snappy block that claims a decoded length no block of its size
	// can have is refused before anything is allocated for it.
	raw := binary.AppendUvarint(nil, maxDecompressed-1)
	raw = append(raw, snappy.Encode(nil, records(1))[1:]...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ValidateBatches(wrapBatch(5, 1, raw), 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorruptBatch) {
		t.Errorf("raw snappy claiming %d bytes: %v", maxDecompressed-1, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("raw snappy claiming %d bytes allocated %d", maxDecompressed-1, alloc)
	}
}

// TestScannerSmallBuffer: a records section streamed through a buffer too
// small for its records is judged as it is in memory.
func TestScannerSmallBuffer(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100)
	sections := map[string][]byte{
		"valid":    append(rawRecord(0, big, big, [2][]byte{big, nil}), rawRecord(1, nil, nil)...),
		"trailing": append(rawRecord(0, big, big), 7),
		"truncated": func() []byte {
			r := rawRecord(0, big, big)
			return r[:len(r)-1]
		}(),
		"offset delta": append(rawRecord(0, big, nil), rawRecord(3, big, nil)...),
		"key past end": func() []byte {
			r := rawRecord(0, big, nil)
			r[4] = 0xfe // key length 127
			return r
		}(),
		"bytes after headers": func() []byte {
			r := rawRecord(0, big, nil)
			r[0] += 2
			return append(r, 0, 0)
		}(),
	}
	for name, sec := range sections {
		for _, n := range []int32{1, 2, 3} {
			want := checkSection(sec, n, nil)
			for _, size := range []int{16, 17, 31, 64, 4096} {
				got := checkSection(sec, n, make([]byte, size))
				if (got == nil) != (want == nil) || (want != nil && !sameClass(got, want)) {
					t.Errorf("%s, %d records, buffer %d: streamed %v, in memory %v", name, n, size, got, want)
				}
			}
		}
	}
}

// checkSection checks a records section of n records as checkBatch does,
// in memory when buf is nil, else streamed through buf.
func checkSection(sec []byte, n int32, buf []byte) error {
	s := &recordScanner{buf: sec, end: len(sec), limit: maxDecompressed}
	if buf != nil {
		s = &recordScanner{r: bytes.NewReader(sec), buf: buf, limit: maxDecompressed}
	}
	return s.check(n)
}

func sameClass(a, b error) bool {
	for _, e := range []error{ErrCorruptBatch, ErrInvalidRecord} {
		if errors.Is(a, e) != errors.Is(b, e) {
			return false
		}
	}
	return true
}
