package localstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// section returns the decompressed records section of the whole batch b.
func section(t testing.TB, b []byte) []byte {
	t.Helper()
	h := parseHeader(b)
	if h.Compression() == CodecNone {
		return bytes.Clone(b[HeaderSize:])
	}
	var d decoders
	defer d.close()
	r, err := d.get().open(h.Compression(), b[HeaderSize:h.TotalSize()])
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recompressRecs are records with keys, null keys and values, headers and
// timestamps out of order.
func recompressRecs(n int) []rec {
	recs := make([]rec, n)
	for i := range recs {
		recs[i] = rec{ts: 1_700_000_000_000 + int64((i*7919)%101), value: fmt.Appendf(nil, "value-%d-%s", i, bytes.Repeat([]byte{'x'}, i%50))}
		if i%3 != 0 {
			recs[i].key = fmt.Appendf(nil, "key-%d", i)
		}
		if i%5 == 4 {
			recs[i].value = nil
		}
	}
	return recs
}

// checkRewritten checks that out is in, rewritten in codec: a valid batch
// whose header differs only by its codec bits, length and CRC, and whose
// records decode to the same bytes.
func checkRewritten(t *testing.T, in, out []byte, codec int8) {
	t.Helper()
	hs, err := ValidateBatches(out, 0)
	if err != nil {
		t.Fatalf("the rewritten batch does not validate: %v", err)
	}
	if len(hs) != 1 {
		t.Fatalf("%d batches, want 1", len(hs))
	}
	hi, ho := parseHeader(in), hs[0]
	if ho.Compression() != codec {
		t.Errorf("codec %d, want %d", ho.Compression(), codec)
	}
	if ho.Attributes&^7 != hi.Attributes&^7 {
		t.Errorf("attributes %#x, want %#x with codec %d", ho.Attributes, hi.Attributes, codec)
	}
	want := hi
	want.Length, want.CRC, want.Attributes = ho.Length, ho.CRC, ho.Attributes
	if ho != want {
		t.Errorf("header\n got %+v\nwant %+v", ho, want)
	}
	if got, want := section(t, out), section(t, in); !bytes.Equal(got, want) {
		t.Errorf("records differ after a decode: %d bytes, want %d", len(got), len(want))
	}
}

// TestRecompressEveryCodecPair rewrites a batch of every codec (raw snappy
// included) in every codec: same records after a decode, a CRC that holds,
// the header kept; the input is not modified, and a batch already in the
// target codec comes back as it is, without a copy.
func TestRecompressEveryCodecPair(t *testing.T) {
	sources := append([]struct {
		name  string
		codec int8
	}{{"none", 0}}, testCodecs...)
	for _, src := range sources {
		for target := CodecNone; target <= CodecZstd; target++ {
			t.Run(fmt.Sprintf("%s-to-%s", src.name, compressionTypes[target]), func(t *testing.T) {
				// LogAppendTime and producer fields set: all must be kept.
				o := batchOpts{codec: src.codec, pid: 4242, epoch: 7, seq: 1000, attrsExt: attrTimestampType}
				in := makeBatch(t, o, recompressRecs(40)...)
				in[batchOffLeaderEpoch+3] = 9 // not covered by the CRC, kept too
				orig := bytes.Clone(in)
				hs, err := ValidateBatches(in, 0)
				if err != nil {
					t.Fatal(err)
				}
				out, ohs, err := Recompress(in, hs, Target{Codec: target}, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(in, orig) {
					t.Fatal("Recompress modified its input")
				}
				if src.codec == target {
					if &out[0] != &in[0] || len(out) != len(in) {
						t.Error("a batch already in the target codec was copied")
					}
				}
				checkRewritten(t, in, out, target)
				if len(ohs) != 1 || ohs[0] != parseHeader(out) {
					t.Errorf("returned headers %+v, want the output's %+v", ohs, parseHeader(out))
				}
			})
		}
	}
}

// TestRecompressSeveralBatches: in one call, batches of several codecs are
// each rewritten, a batch already in the target codec and a control batch are
// kept byte for byte, and the returned headers describe the output.
func TestRecompressSeveralBatches(t *testing.T) {
	opts := []batchOpts{
		{codec: 3, pid: 1, epoch: 0, seq: 0},
		{codec: 4, pid: 1, epoch: 0, seq: 40},
		{codec: 0, pid: 1, epoch: 0, seq: 80},
		{codec: 1, pid: 1, epoch: 0, seq: 120, attrsExt: 0x30}, // a control batch, transactional
		{codec: 2, pid: 1, epoch: 0, seq: 160},
	}
	var in [][]byte
	var all []byte
	for _, o := range opts {
		b := makeBatch(t, o, recompressRecs(40)...)
		in = append(in, b)
		all = append(all, b...)
	}
	hs, err := ValidateBatches(all, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, ohs, err := Recompress(all, hs, Target{Codec: CodecZstd}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ohs) != len(in) {
		t.Fatalf("%d headers, want %d", len(ohs), len(in))
	}
	pos := int64(0)
	for i, h := range ohs {
		ob := out[pos : pos+h.TotalSize()]
		pos += h.TotalSize()
		if h != parseHeader(ob) {
			t.Errorf("batch %d: returned header %+v, output's %+v", i, h, parseHeader(ob))
		}
		switch i {
		case 1, 3: // zstd already; control
			if !bytes.Equal(ob, in[i]) {
				t.Errorf("batch %d was rewritten", i)
			}
		default:
			checkRewritten(t, in[i], ob, CodecZstd)
		}
	}
	if pos != int64(len(out)) {
		t.Errorf("%d bytes after the last batch", int64(len(out))-pos)
	}
}

// TestRecompressLargeBatch: records larger than every buffer (scanner, lz4
// and snappy blocks, the zstd window) rewrite and validate in every codec.
func TestRecompressLargeBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]rec, 12)
	for i := range recs {
		v := make([]byte, 300<<10)
		for j := range v {
			v[j] = "abcdefgh"[rng.IntN(8)] // compressible, not trivially
		}
		recs[i] = rec{ts: int64(i), value: v}
	}
	for _, src := range []int8{0, 4} {
		in := makeBatch(t, batchOpts{codec: src, pid: -1, epoch: -1, seq: -1}, recs...)
		hs, err := ValidateBatches(in, 0)
		if err != nil {
			t.Fatal(err)
		}
		for target := CodecNone; target <= CodecZstd; target++ {
			out, _, err := Recompress(in, hs, Target{Codec: target}, 0)
			if err != nil {
				t.Fatalf("%d to %d: %v", src, target, err)
			}
			checkRewritten(t, in, out, target)
		}
	}
}

// TestRecompressTooLarge: a gzip batch that decompresses past
// max.message.bytes cannot be stored uncompressed: ErrBatchTooLarge, which
// names the key.
func TestRecompressTooLarge(t *testing.T) {
	recs := []rec{{value: bytes.Repeat([]byte("a"), 200<<10)}}
	in := makeBatch(t, batchOpts{codec: 1, pid: -1, epoch: -1, seq: -1}, recs...)
	limit := int64(100 << 10)
	hs, err := ValidateBatches(in, limit)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Recompress(in, hs, Target{Codec: CodecNone}, limit)
	if !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("err %v, want ErrBatchTooLarge", err)
	}
	if want := "max.message.bytes (102400)"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not say %q", err, want)
	}
	// Within the limit it is stored.
	if _, _, err := Recompress(in, hs, Target{Codec: CodecNone}, 300<<10); err != nil {
		t.Fatal(err)
	}
}

func TestCompressionCodec(t *testing.T) {
	for i, name := range compressionTypes {
		if c, ok := CompressionCodec(name); !ok || c != int8(i) {
			t.Errorf("%s: %d %v", name, c, ok)
		}
	}
	for _, name := range []string{"producer", "none", "ZSTD", ""} {
		if _, ok := CompressionCodec(name); ok {
			t.Errorf("%q is a codec", name)
		}
	}
}

// TestRecompressLevels: compression.gzip.level and compression.zstd.level
// take effect (a higher level writes a smaller batch of the same records),
// and a batch already in the codec is kept whatever its level (Kafka).
func TestRecompressLevels(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta "}
	recs := make([]rec, 200)
	for i := range recs {
		var v []byte
		for range 200 {
			v = append(v, words[rng.IntN(len(words))]...)
		}
		recs[i] = rec{ts: int64(i), value: v}
	}
	in := makeBatch(t, batchOpts{codec: 3, pid: -1, epoch: -1, seq: -1}, recs...)
	hs, err := ValidateBatches(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	size := func(target Target) int {
		t.Helper()
		out, _, err := Recompress(in, hs, target, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRewritten(t, in, out, target.Codec)
		return len(out)
	}
	for _, c := range []struct {
		codec       int8
		fast, small int
	}{{CodecGzip, 1, 9}, {CodecZstd, -5, 19}} {
		fast, small := size(Target{c.codec, c.fast}), size(Target{c.codec, c.small})
		if small >= fast {
			t.Errorf("codec %d: level %d wrote %d bytes, level %d %d: the level has no effect", c.codec, c.small, small, c.fast, fast)
		}
		// The default (0, and gzip's -1) lies between.
		for _, l := range []int{0, -1} {
			if c.codec == CodecZstd && l == -1 {
				continue
			}
			if d := size(Target{c.codec, l}); d < small || d > fast {
				t.Errorf("codec %d: default level %d wrote %d bytes, outside %d..%d", c.codec, l, d, small, fast)
			}
		}
	}
	// Already zstd: not rewritten at another level.
	z, _, err := Recompress(in, hs, Target{Codec: CodecZstd, Level: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	zh, _ := ValidateBatches(z, 0)
	again, _, err := Recompress(z, zh, Target{Codec: CodecZstd, Level: 19}, 0)
	if err != nil || &again[0] != &z[0] {
		t.Errorf("a zstd batch was rewritten for its level (%v)", err)
	}
}

// FuzzRecompress: whatever ValidateBatches accepts, Recompress rewrites in
// every codec into batches that validate, each with the same header fields
// and the same records after a decode.
func FuzzRecompress(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The CRCs made to hold, so the fuzzer reaches the records.
		b = bytes.Clone(b)
		for p := 0; len(b)-p >= HeaderSize; {
			size := int64(binary.BigEndian.Uint32(b[p+batchOffLength:])) + 12
			if size < HeaderSize || size > int64(len(b)-p) {
				break
			}
			recrc(b[p : p+int(size)])
			p += int(size)
		}
		hs, err := ValidateBatches(b, 0)
		if err != nil {
			return
		}
		for codec := CodecNone; codec <= CodecZstd; codec++ {
			out, ohs, err := Recompress(b, hs, Target{Codec: codec}, 0)
			if err != nil {
				t.Fatalf("codec %d: %v", codec, err)
			}
			if _, err := ValidateBatches(out, 0); err != nil {
				t.Fatalf("codec %d: output does not validate: %v", codec, err)
			}
			var ip, op int64
			for i, h := range hs {
				in, ob := b[ip:ip+h.TotalSize()], out[op:op+ohs[i].TotalSize()]
				ip, op = ip+h.TotalSize(), op+ohs[i].TotalSize()
				if h.Control() || h.Compression() == codec {
					if !bytes.Equal(in, ob) {
						t.Fatalf("codec %d: batch %d changed", codec, i)
					}
					continue
				}
				checkRewritten(t, in, ob, codec)
			}
		}
	})
}
