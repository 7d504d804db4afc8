package localstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// recrc recomputes a batch's CRC after a test changed it.
func recrc(b []byte) []byte {
	binary.BigEndian.PutUint32(b[batchOffCRC:], batchCRC(b))
	return b
}

func TestValidateBatches(t *testing.T) {
	good := makeBatch(t, noProducer(), rec{ts: 1, key: []byte("k"), value: []byte("v")}, rec{ts: 2, value: nil})
	gz := makeBatch(t, batchOpts{codec: 1, pid: -1, epoch: -1, seq: -1}, rec{ts: 1, value: []byte("v")})
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
		max  int64
		want error
	}{
		{"one batch", good, 1 << 20, nil},
		{"two batches", append(bytes.Clone(good), gz...), 1 << 20, nil},
		{"empty", nil, 1 << 20, ErrCorruptBatch},
		{"truncated", good[:len(good)-1], 1 << 20, ErrCorruptBatch},
		{"truncated header", good[:40], 1 << 20, ErrCorruptBatch},
		{"trailing bytes", append(bytes.Clone(good), 1, 2, 3), 1 << 20, ErrCorruptBatch},
		{"too large", good, int64(len(good)) - 1, ErrBatchTooLarge},
		{"exactly the limit", good, int64(len(good)), nil},
		{"magic 1", mod(func(b []byte) []byte { b[batchOffMagic] = 1; return b }), 1 << 20, ErrUnsupportedMagic},
		{"magic 0", mod(func(b []byte) []byte { b[batchOffMagic] = 0; return b }), 1 << 20, ErrUnsupportedMagic},
		{"magic 3", mod(func(b []byte) []byte { b[batchOffMagic] = 3; return b }), 1 << 20, ErrCorruptBatch},
		{"bad crc", mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), 1 << 20, ErrCorruptBatch},
		{"negative length", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0xffffff00); return b }), 1 << 20, ErrCorruptBatch},
		{"length too short", mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 10); return b }), 1 << 20, ErrCorruptBatch},
		{"count mismatch", mod(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchOffNumRecords:], 3)
			binary.BigEndian.PutUint32(b[batchOffLastOffsetDelta:], 2)
			return recrc(b)
		}), 1 << 20, ErrCorruptBatch},
		{"lastOffsetDelta mismatch", mod(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchOffLastOffsetDelta:], 5)
			return recrc(b)
		}), 1 << 20, ErrInvalidRecord},
		{"zero records", mod(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchOffNumRecords:], 0)
			binary.BigEndian.PutUint32(b[batchOffLastOffsetDelta:], 0xffffffff)
			return recrc(b)
		}), 1 << 20, ErrInvalidRecord},
		{"bad record length", mod(func(b []byte) []byte { b[HeaderSize] = 0x7f; return recrc(b) }), 1 << 20, ErrCorruptBatch},
		{"bad key length", mod(func(b []byte) []byte {
			// Record 0: length, attributes, ts delta, offset delta, key length.
			b[HeaderSize+4] = 0x41 // key length -33
			return recrc(b)
		}), 1 << 20, ErrInvalidRecord},
		{"unknown codec", mod(func(b []byte) []byte { b[batchOffAttributes+1] |= 6; return recrc(b) }), 1 << 20, ErrCorruptBatch},
		{"compressed records not parsed", gz, 1 << 20, nil},
	}
	for _, c := range cases {
		hs, err := ValidateBatches(c.b, c.max)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			} else if len(hs) == 0 || hs[0].NumRecords == 0 {
				t.Errorf("%s: headers %+v", c.name, hs)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParseBatchHeader(t *testing.T) {
	b := makeBatch(t, batchOpts{pid: 77, epoch: 3, seq: 9, codec: 3}, rec{ts: 10}, rec{ts: 30}, rec{ts: 20})
	h, err := ParseBatchHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := BatchHeader{Length: int32(len(b) - 12), Magic: 2, CRC: batchCRC(b), Attributes: 3, LastOffsetDelta: 2,
		FirstTimestamp: 10, MaxTimestamp: 30, ProducerID: 77, ProducerEpoch: 3, BaseSequence: 9, NumRecords: 3}
	if h != want || h.Compression() != 3 || h.Transactional() || h.Control() || h.TotalSize() != int64(len(b)) {
		t.Fatalf("got %+v", h)
	}
	if _, err := ParseBatchHeader(b[:60]); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("short: %v", err)
	}
}

func FuzzValidateBatches(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkValidate(t, b)
		// Again with the CRCs made to hold, so the checks behind the CRC get
		// fuzzed too.
		fixed := bytes.Clone(b)
		for p := 0; len(fixed)-p >= HeaderSize; {
			size := int64(binary.BigEndian.Uint32(fixed[p+batchOffLength:])) + 12
			if size < HeaderSize || size > int64(len(fixed)-p) {
				break
			}
			recrc(fixed[p : p+int(size)])
			p += int(size)
		}
		checkValidate(t, fixed)
		checkSections(t, b)
	})
}

// checkSections takes b as a records section: streamed through a small
// buffer it is judged as in memory, and compressed with each codec as
// uncompressed.
func checkSections(t *testing.T, b []byte) {
	n := int32(1)
	if len(b) > 0 {
		n = int32(b[0]%4) + 1
	}
	want := checkSection(b, n, nil)
	if got := checkSection(b, n, make([]byte, 16)); (got == nil) != (want == nil) || (want != nil && !sameClass(got, want)) {
		t.Fatalf("%d records through a 16-byte buffer: %v; in memory: %v", n, got, want)
	}
	_, plain := ValidateBatches(wrapBatch(0, n, b), 0)
	for codec := int8(1); codec <= 5; codec++ {
		_, got := ValidateBatches(wrapBatch(codec, n, compress(t, codec, b)), 0)
		if (got == nil) != (plain == nil) || (plain != nil && !sameClass(got, plain)) {
			t.Fatalf("codec %d: %v; uncompressed: %v", codec, got, plain)
		}
	}
}

// checkValidate: ValidateBatches never panics, errs only with its sentinels,
// and what it accepts appends and reads back.
func checkValidate(t *testing.T, b []byte) {
	hs, err := ValidateBatches(b, 1<<20)
	if err != nil {
		if !errors.Is(err, ErrCorruptBatch) && !errors.Is(err, ErrInvalidRecord) &&
			!errors.Is(err, ErrUnsupportedMagic) && !errors.Is(err, ErrBatchTooLarge) {
			t.Fatalf("unexpected error class: %v", err)
		}
		return
	}
	var total int64
	for _, h := range hs {
		total += h.TotalSize()
		if h.NumRecords <= 0 || h.LastOffsetDelta != h.NumRecords-1 {
			t.Fatalf("accepted header %+v", h)
		}
	}
	if total != int64(len(b)) {
		t.Fatalf("headers cover %d of %d bytes", total, len(b))
	}
	// Whatever validates must append and read back.
	l, err := Open(t.TempDir(), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(bytes.Clone(b)); err != nil && !errors.Is(err, ErrOutOfOrderSequence) &&
		!errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("Append: %v", err)
	}
	l.OffsetForTimestamp(0)
	l.MaxTimestamp()
}

// fuzzSeeds are the batches the committed corpus was made from.
func fuzzSeeds(t testing.TB) [][]byte {
	good := makeBatch(t, noProducer(), rec{ts: 1, key: []byte("k"), value: []byte("v")}, rec{ts: 2})
	var seeds [][]byte
	for codec := int8(0); codec <= 5; codec++ {
		seeds = append(seeds, makeBatch(t, batchOpts{codec: codec, pid: 5, epoch: 1, seq: 0},
			rec{ts: 100, key: []byte("key"), value: []byte("value")}, rec{ts: 90, value: []byte("v2")}))
	}
	withHeader := bytes.Clone(good)
	seeds = append(seeds,
		good,
		append(bytes.Clone(good), good...),
		good[:len(good)-3],
		good[:30],
		withHeader[:HeaderSize],
	)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-2] ^= 0xff
	badCount := bytes.Clone(good)
	binary.BigEndian.PutUint32(badCount[batchOffNumRecords:], 9)
	magic1 := bytes.Clone(good)
	magic1[batchOffMagic] = 1
	seeds = append(seeds, flipped, recrc(badCount), magic1)
	// Compressed batches, valid and not, for every codec (5: raw snappy).
	garbage := bytes.Repeat([]byte{0x1f, 0x8b, 0x28, 0xb5, 0x04, 0x22, 0x82, 0x53}, 8)
	for codec := int8(1); codec <= 5; codec++ {
		seeds = append(seeds,
			wrapBatch(codec, 3, compress(t, codec, records(3))),
			wrapBatch(codec, 1, garbage),
			wrapBatch(codec, 1000, compress(t, codec, records(1))),
			wrapBatch(codec, 2, compress(t, codec, append(records(2), 0))),
			wrapBatch(codec, 2, compress(t, codec, append(rawRecord(0, nil, []byte("a")), rawRecord(2, nil, []byte("b"))...))),
			wrapBatch(codec, 2, compress(t, codec, records(2)[:20])),
		)
	}
	return seeds
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzValidateBatches when
// STRATA_WRITE_CORPUS is set.
func TestWriteFuzzCorpus(t *testing.T) {
	if testingWriteCorpus == "" {
		t.Skip("set STRATA_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	writeCorpus(t, fuzzSeeds(t))
}
