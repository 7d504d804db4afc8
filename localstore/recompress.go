package localstore

// Rewriting batches in a topic's compression.type, as Kafka's LogValidator
// does when the topic's codec is not "producer" and differs from a batch's.
//
// A rewritten batch keeps everything but its records' encoding: the header
// (base offset, partition leader epoch, first and max timestamps, producer id,
// epoch and base sequence, last offset delta, record count, and every
// attribute but the codec bits) and each record byte for byte; only the
// codec bits, the length and the CRC-32C change. Control batches are never
// rewritten (Kafka). The records stream from the decompressor (compress.go's
// pooled readers) straight into the compressor, so the rewrite holds the
// output, never the decompressed records as well. The bounds:
//
//   - a rewritten batch larger than max.message.bytes is refused with
//     ErrBatchTooLarge (MESSAGE_TOO_LARGE), as Kafka re-checks the size after a
//     recompression; the writer stops as soon as it passes the limit;
//   - one call's output is at most its input plus maxDecompressed (256 MiB),
//     whatever max.message.bytes is: a request of many small batches that
//     each expand a thousandfold cannot make the broker allocate without end.
//
// Levels (KIP-390): gzip takes Kafka's compression.gzip.level as it is (-1,
// the default, is 6); zstd maps compression.zstd.level onto klauspost's four
// speeds as its EncoderLevelFromZstd does (below 3 fastest, 3 to 5 default,
// 6 to 9 better, 10 and up best; 0 is libzstd's default, 3), each with a
// 1 MiB window, well under the 8 MiB that validation and most consumers
// accept. lz4 has no level here (compression.lz4.level is not implemented:
// Kafka's levels are lz4-java's HC levels, which pierrec/lz4 does not
// offer): it is written at pierrec's fast level with 64 KiB blocks, the
// block size of Kafka's Java client. snappy is written in xerial framing
// with 32 KiB blocks, as Kafka's Java snappy stream does.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codecs: the low three bits of a batch's attributes.
const (
	CodecNone   int8 = 0
	CodecGzip   int8 = 1
	CodecSnappy int8 = 2
	CodecLZ4    int8 = 3
	CodecZstd   int8 = 4
)

const (
	zstdWriteWindow  = 1 << 20  // window of the zstd frames we write
	snappyBlockInput = 32 << 10 // uncompressed bytes per xerial block we write
)

// CompressionCodec maps a compression.type value to the codec batches are
// stored in: ok is false for "producer" (batches are stored as produced) and
// for a value that is not a codec.
func CompressionCodec(compressionType string) (codec int8, ok bool) {
	switch compressionType {
	case "uncompressed":
		return CodecNone, true
	case "gzip":
		return CodecGzip, true
	case "snappy":
		return CodecSnappy, true
	case "lz4":
		return CodecLZ4, true
	case "zstd":
		return CodecZstd, true
	}
	return 0, false
}

var compressionTypes = [...]string{"uncompressed", "gzip", "snappy", "lz4", "zstd"}

// Target is what Recompress writes batches in.
type Target struct {
	Codec int8 // CodecNone to CodecZstd
	// Level is the codec's level, as Kafka's compression.<codec>.level:
	// gzip -1 or 1 to 9, zstd -131072 to 22; 0 is the codec's default. lz4
	// and snappy ignore it.
	Level int
}

// Recompress returns the batches b, validated by ValidateBatches (hs are the
// headers it returned), with every batch that is not a control batch and
// whose codec is not target.Codec rewritten in it, and the headers of the
// result. A batch already in the codec is kept whatever its level, as in Kafka. When no batch needs it, b and hs come back as they are, without a
// copy. maxBatchBytes (max.message.bytes; <= 0: no limit) bounds each
// rewritten batch. b is not modified.
func Recompress(b []byte, hs []BatchHeader, target Target, maxBatchBytes int64) ([]byte, []BatchHeader, error) {
	codec := target.Codec
	if codec < CodecNone || codec > CodecZstd {
		return nil, nil, fmt.Errorf("localstore: recompress: unknown codec %d", codec)
	}
	if !needsRewrite(hs, codec) {
		return b, hs, nil
	}
	var dec decoders
	defer dec.close()
	var enc encoders
	defer enc.close()
	out := &capWriter{buf: make([]byte, 0, len(b)), total: int64(len(b)) + maxDecompressed}
	nhs := make([]BatchHeader, 0, len(hs))
	pos := int64(0)
	for i, h := range hs {
		batch := b[pos : pos+h.TotalSize()]
		pos += h.TotalSize()
		if h.Compression() == codec || h.Control() {
			out.buf = append(out.buf, batch...)
			nhs = append(nhs, h)
			continue
		}
		start := len(out.buf)
		out.buf = append(out.buf, batch[:HeaderSize]...)
		out.limit = int64(start) + maxBatchBytes
		if maxBatchBytes <= 0 {
			out.limit = -1
		}
		if err := rewriteRecords(&dec, &enc, out, batch, h, target); err != nil {
			switch {
			case errors.Is(err, errOutputTooLarge) && out.overBatch:
				return nil, nil, fmt.Errorf("%w: batch %d rewritten as %s is more than max.message.bytes (%d)", ErrBatchTooLarge, i, compressionTypes[codec], maxBatchBytes)
			case errors.Is(err, errOutputTooLarge):
				return nil, nil, fmt.Errorf("%w: batches rewritten as %s grow by more than %d bytes", ErrBatchTooLarge, compressionTypes[codec], maxDecompressed)
			}
			return nil, nil, fmt.Errorf("%w: batch %d: rewrite as %s: %v", ErrCorruptBatch, i, compressionTypes[codec], err)
		}
		nb := out.buf[start:]
		be := binary.BigEndian
		be.PutUint16(nb[batchOffAttributes:], uint16(h.Attributes&^0x7|int16(codec)))
		be.PutUint32(nb[batchOffLength:], uint32(len(nb)-batchLogOverhead))
		be.PutUint32(nb[batchOffCRC:], batchCRC(nb))
		nhs = append(nhs, parseHeader(nb))
	}
	return out.buf, nhs, nil
}

func needsRewrite(hs []BatchHeader, codec int8) bool {
	for _, h := range hs {
		if h.Compression() != codec && !h.Control() {
			return true
		}
	}
	return false
}

// rewriteRecords appends the records section of batch, re-encoded in codec, to out.
func rewriteRecords(dec *decoders, enc *encoders, out *capWriter, batch []byte, h BatchHeader, target Target) error {
	body := batch[HeaderSize:]
	var src io.Reader
	c := dec.get()
	if h.Compression() == CodecNone {
		c.br.Reset(body)
		src = &c.br
	} else {
		r, err := c.open(h.Compression(), body)
		if err != nil {
			return err
		}
		src = r
	}
	// Validation bounded the decompressed size already; this keeps the
	// rewrite bounded even if it is called on unvalidated bytes.
	src = &io.LimitedReader{R: src, N: maxDecompressed}
	return encodeStream(enc, out, src, c.buf, target)
}

// encodeStream writes what src yields to out, compressed with target's
// codec and level. buf is scratch space. The recompression of
// compression.type and the log cleaner's rewritten batches both encode here.
func encodeStream(enc *encoders, out *capWriter, src io.Reader, buf []byte, target Target) error {
	var w io.WriteCloser
	switch target.Codec {
	case CodecNone:
		_, err := io.CopyBuffer(out, src, buf)
		return err
	case CodecGzip:
		w = enc.gzip(out, target.Level)
	case CodecSnappy:
		return writeXerial(out, src, buf)
	case CodecLZ4:
		w = enc.lz4(out)
	case CodecZstd:
		zw, err := enc.zstd(out, target.Level)
		if err != nil {
			return err
		}
		w = zw
	default:
		return fmt.Errorf("unknown codec %d", target.Codec)
	}
	if _, err := io.CopyBuffer(w, src, buf); err != nil {
		return err
	}
	return w.Close()
}

// writeXerial writes what src yields as xerial-framed snappy: the 16-byte
// header (magic, version 1, compatible version 1), then blocks each of at
// most snappyBlockInput uncompressed bytes, prefixed by their 4-byte
// big-endian compressed length.
func writeXerial(out *capWriter, src io.Reader, buf []byte) error {
	var hdr [xerialHeaderSize]byte
	copy(hdr[:], xerialMagic)
	binary.BigEndian.PutUint32(hdr[8:], 1)
	binary.BigEndian.PutUint32(hdr[12:], 1)
	if _, err := out.Write(hdr[:]); err != nil {
		return err
	}
	in := buf[:min(len(buf), snappyBlockInput)]
	var block []byte
	for {
		n, err := io.ReadFull(src, in)
		if n > 0 {
			block = snappy.Encode(block[:cap(block)], in[:n])
			var l [4]byte
			binary.BigEndian.PutUint32(l[:], uint32(len(block)))
			if _, werr := out.Write(l[:]); werr != nil {
				return werr
			}
			if _, werr := out.Write(block); werr != nil {
				return werr
			}
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return err
		}
	}
}

var errOutputTooLarge = errors.New("rewritten batch too large")

// capWriter appends to buf; a write that would take it past limit (>= 0) or
// total fails with errOutputTooLarge and sets overBatch or overTotal.
type capWriter struct {
	buf       []byte
	limit     int64 // the current batch's end; -1: none
	total     int64 // the whole output's
	overBatch bool
	overTotal bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	n := int64(len(w.buf) + len(p))
	w.overBatch = w.limit >= 0 && n > w.limit
	w.overTotal = n > w.total
	if w.overBatch || w.overTotal {
		return 0, errOutputTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Pooled compressors, each reset onto its output: gzip by level (index
// level+1, -1 to 9), zstd by klauspost speed.
var (
	gzipWriters [11]sync.Pool // *gzip.Writer
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1), lz4.CompressionLevelOption(lz4.Fast)); err != nil {
			panic(err) // static options
		}
		return w
	}}
	zstdWriters [zstd.SpeedBestCompression + 1]sync.Pool // *zstd.Encoder
)

// gzipLevel is a Kafka gzip level as klauspost's: 0 and anything outside
// 1 to 9 is the default.
func gzipLevel(level int) int {
	if level < 1 || level > 9 {
		return gzip.DefaultCompression
	}
	return level
}

// zstdSpeed maps a Kafka (libzstd) level onto klauspost's speeds; 0 is
// libzstd's default level, 3.
func zstdSpeed(level int) zstd.EncoderLevel {
	if level == 0 {
		level = 3
	}
	return zstd.EncoderLevelFromZstd(level)
}

// encoders lends compressors from the pools for one call; close returns them.
type encoders struct {
	gz      *gzip.Writer
	gzLevel int
	lz      *lz4.Writer
	zs      *zstd.Encoder
	zsSpeed zstd.EncoderLevel
}

func (e *encoders) gzip(w io.Writer, level int) *gzip.Writer {
	if e.gz == nil {
		e.gzLevel = gzipLevel(level)
		if z, ok := gzipWriters[e.gzLevel+1].Get().(*gzip.Writer); ok {
			e.gz = z
		} else {
			e.gz, _ = gzip.NewWriterLevel(nil, e.gzLevel) // a valid level
		}
	}
	e.gz.Reset(w)
	return e.gz
}

func (e *encoders) lz4(w io.Writer) *lz4.Writer {
	if e.lz == nil {
		e.lz = lz4Writers.Get().(*lz4.Writer)
	}
	e.lz.Reset(w)
	return e.lz
}

func (e *encoders) zstd(w io.Writer, level int) (*zstd.Encoder, error) {
	if e.zs == nil {
		e.zsSpeed = zstdSpeed(level)
		if z, ok := zstdWriters[e.zsSpeed].Get().(*zstd.Encoder); ok {
			e.zs = z
		} else {
			// Concurrency 1 encodes in the caller's goroutine: nothing to
			// close when the pool drops the encoder.
			z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWriteWindow),
				zstd.WithEncoderLevel(e.zsSpeed))
			if err != nil {
				return nil, err
			}
			e.zs = z
		}
	}
	e.zs.Reset(w)
	return e.zs, nil
}

func (e *encoders) close() {
	// Reset onto nil so the pools do not pin the output.
	if e.gz != nil {
		e.gz.Reset(nil)
		gzipWriters[e.gzLevel+1].Put(e.gz)
	}
	if e.lz != nil {
		e.lz.Reset(nil)
		lz4Writers.Put(e.lz)
	}
	if e.zs != nil {
		e.zs.Reset(nil)
		zstdWriters[e.zsSpeed].Put(e.zs)
	}
	*e = encoders{}
}
