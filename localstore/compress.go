package localstore

// Reading the records of a batch, compressed or not, as a stream.
//
// A produce checks every record of every batch (ValidateBatches), and a
// timestamp lookup reads the records of the batches it visits. Both go through
// a recordScanner: over the records section itself when the batch is not
// compressed, or over a decompressor through a fixed buffer when it is. Record
// bodies are skipped, never held, so what a batch expands to costs time, not
// memory. The bounds:
//
//   - maxDecompressed: a batch may expand to at most 256 MiB of records; beyond
//     that it is refused with ErrInvalidRecord (INVALID_RECORD). Kafka has no such
//     bound. Ours caps the CPU a decompression bomb costs (a 1 MB gzip batch can
//     expand to 1 GB, a zstd one to far more), and the consumers we serve
//     (franz-go, librdkafka) decompress a whole batch into memory, so a batch past
//     it would be unreadable to them anyway.
//   - zstdMaxWindow: a zstd decoder keeps a window of history, which cannot be
//     streamed through a small buffer; frames whose window (or, for single-segment
//     frames, whose content) exceeds 8 MiB are refused with ErrInvalidRecord. Every
//     client's default and levels up to 19 stay under it (franz-go 64 KiB, klauspost
//     encoders in sarama and kafka-go 8 MiB at most, libzstd 2 MiB at level 3 and
//     8 MiB at 19).
//   - snappy: a block is decoded whole (the format needs it); its declared length
//     must be one a valid block of its size can have (snappy expands at most 64/3
//     times), so the buffer is bounded by the batch's own size, itself bounded by
//     max.message.bytes.
//   - gzip keeps a 32 KiB window and lz4 one block of at most 4 MiB.

import (
	"bytes"
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

const (
	maxDecompressed = 256 << 20 // records bytes one batch may expand to
	zstdMaxWindow   = 8 << 20   // zstd window (or single-segment content) accepted
	scanBufSize     = 32 << 10  // the scanner's buffer over a decompressor
	snappyMaxRatio  = 22        // > 64/3: the most a snappy block can expand
	keepSnappyBuf   = 1 << 20   // larger snappy buffers are not kept in the pool
)

var (
	errTruncated = errors.New("records end inside a record")
	errTooLarge  = fmt.Errorf("batch decompresses to more than %d bytes", maxDecompressed)
	xerialMagic  = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}
)

const xerialHeaderSize = 16 // magic, version, compatible version

// codecState holds one set of reusable decompressors and buffers.
type codecState struct {
	br   bytes.Reader // the compressed records; every decoder reads from it
	gzip *gzip.Reader
	lz4  *lz4.Reader
	zstd *zstd.Decoder
	sn   snappyReader
	buf  []byte // the scanner's buffer
	sc   recordScanner
}

var codecPool = sync.Pool{New: func() any { return &codecState{buf: make([]byte, scanBufSize)} }}

// decoders lends a codecState from the pool for a run of batches; the zero
// value is ready and close returns what it borrowed. Not safe for concurrent use.
type decoders struct{ c *codecState }

func (d *decoders) get() *codecState {
	if d.c == nil {
		d.c = codecPool.Get().(*codecState)
	}
	return d.c
}

func (d *decoders) close() {
	c := d.c
	if c == nil {
		return
	}
	d.c = nil
	// Drop every reference to the batch so the pool does not pin it.
	c.br.Reset(nil)
	c.sc = recordScanner{}
	c.sn.src, c.sn.out = nil, nil
	if cap(c.sn.buf) > keepSnappyBuf {
		c.sn.buf = nil
	}
	if c.zstd != nil {
		c.zstd.Reset(nil)
	}
	codecPool.Put(c)
}

// scanner returns a scanner over the records section of the whole batch b.
func (d *decoders) scanner(b []byte, h BatchHeader) (*recordScanner, error) {
	c := d.get()
	body := b[HeaderSize:]
	c.sc = recordScanner{limit: maxDecompressed}
	if h.Compression() == 0 {
		c.sc.buf, c.sc.end = body, len(body)
		return &c.sc, nil
	}
	r, err := c.open(h.Compression(), body)
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrCorruptBatch, err)
	}
	c.sc.r, c.sc.buf = r, c.buf
	return &c.sc, nil
}

// open returns a reader of the decompressed body.
func (c *codecState) open(codec int8, body []byte) (io.Reader, error) {
	c.br.Reset(body)
	var err error
	switch codec {
	case 1:
		if c.gzip == nil {
			c.gzip, err = gzip.NewReader(&c.br)
		} else {
			err = c.gzip.Reset(&c.br)
		}
		return c.gzip, err
	case 2:
		c.sn.reset(body)
		return &c.sn, nil
	case 3:
		if c.lz4 == nil {
			c.lz4 = lz4.NewReader(&c.br)
		} else {
			c.lz4.Reset(&c.br)
		}
		return c.lz4, nil
	case 4:
		if c.zstd == nil {
			// Concurrency 1 decodes in the caller's goroutine: nothing to
			// close when the pool drops the decoder.
			c.zstd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(zstdMaxWindow))
			if err != nil {
				return nil, err
			}
		}
		return c.zstd, c.zstd.Reset(&c.br)
	}
	return nil, fmt.Errorf("unknown codec %d", codec)
}

// checkBatch checks the records of the whole batch b: exactly h.NumRecords
// well-formed records with offset deltas 0, 1, 2, ... and nothing after them.
func (d *decoders) checkBatch(b []byte, h BatchHeader) error {
	s, err := d.scanner(b, h)
	if err != nil {
		return err
	}
	return s.check(h.NumRecords)
}

// check reads the whole section: exactly n well-formed records with offset
// deltas 0, 1, 2, ... and nothing after them.
func (s *recordScanner) check(n int32) error {
	for i := int32(0); i < n; i++ {
		end, err := s.atEnd()
		if err != nil {
			return s.classify(err, i)
		}
		if end {
			return fmt.Errorf("%w: %d records, header says %d", ErrCorruptBatch, i, n)
		}
		r, err := s.record()
		if err != nil {
			return s.classify(err, i)
		}
		if r.offsetDelta != i {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalidRecord, i, r.offsetDelta)
		}
	}
	end, err := s.atEnd()
	if err != nil {
		return s.classify(err, n)
	}
	if !end {
		return fmt.Errorf("%w: more than %d records", ErrCorruptBatch, n)
	}
	return nil
}

// forEachRecord calls fn with the offset and timestamp of each record of the
// whole batch b, in order, until fn returns false or the records end.
func (d *decoders) forEachRecord(b []byte, h BatchHeader, fn func(offset, ts int64) bool) error {
	s, err := d.scanner(b, h)
	if err != nil {
		return fmt.Errorf("%w: batch at offset %d: %v", ErrCorruptBatch, h.BaseOffset, err)
	}
	for i := int32(0); i < h.NumRecords; i++ {
		end, err := s.atEnd()
		if err == nil && end {
			return nil
		}
		var r record
		if err == nil {
			r, err = s.record()
		}
		if err != nil {
			return fmt.Errorf("%w: batch at offset %d: record %d: %v", ErrCorruptBatch, h.BaseOffset, i, err)
		}
		ts := h.FirstTimestamp + r.timestampDelta
		if h.logAppendTime() {
			ts = h.MaxTimestamp
		}
		if !fn(h.BaseOffset+int64(r.offsetDelta), ts) {
			return nil
		}
	}
	return nil
}

// recordScanner reads the records section of a batch: from buf alone when r
// is nil (an uncompressed batch in memory), else from r through buf.
type recordScanner struct {
	r        io.Reader
	buf      []byte // buf[pos:end] is read and not yet consumed
	pos, end int
	base     int64 // position in the section of buf[0]
	pulled   int64 // bytes read from r
	limit    int64 // bytes r may yield
	eof      bool
	err      error // sticky: a decompression error or errTooLarge
}

// classify wraps an error met while reading record i.
func (s *recordScanner) classify(err error, i int32) error {
	switch {
	case errors.Is(err, ErrCorruptBatch), errors.Is(err, ErrInvalidRecord):
		return fmt.Errorf("record %d: %w", i, err)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("%w: zstd window larger than %d bytes: %v", ErrInvalidRecord, zstdMaxWindow, err)
	case errors.Is(err, errTruncated):
		return fmt.Errorf("%w: record %d: %v", ErrCorruptBatch, i, err)
	}
	return fmt.Errorf("%w: decompress: %v", ErrCorruptBatch, err)
}

// consumed is the position in the section of the next unread byte.
func (s *recordScanner) consumed() int64 { return s.base + int64(s.pos) }

// fill tries to have n <= len(s.buf) bytes buffered; false if the section
// ends first or reading fails (s.err).
func (s *recordScanner) fill(n int) bool {
	for s.end-s.pos < n {
		if s.r == nil || s.eof || s.err != nil {
			return false
		}
		if s.pos > 0 {
			copy(s.buf, s.buf[s.pos:s.end])
			s.end -= s.pos
			s.base += int64(s.pos)
			s.pos = 0
		}
		k, err := s.r.Read(s.buf[s.end:])
		s.end += k
		s.pulled += int64(k)
		switch {
		case s.pulled > s.limit:
			s.err = errTooLarge
		case err == io.EOF:
			s.eof = true
		case err != nil:
			s.err = err
		}
	}
	return true
}

// fail is the error for a read that found too few bytes.
func (s *recordScanner) fail() error {
	if s.err != nil {
		return s.err
	}
	return errTruncated
}

// atEnd reports whether the section has no byte left. Reaching the end of a
// compressed stream checks its trailer (gzip CRC, lz4 and zstd checksums).
func (s *recordScanner) atEnd() (bool, error) {
	if s.fill(1) {
		return false, nil
	}
	return s.err == nil, s.err
}

// skip consumes n bytes.
func (s *recordScanner) skip(n int64) error {
	for n > 0 {
		if s.pos == s.end && !s.fill(1) {
			return s.fail()
		}
		k := min(n, int64(s.end-s.pos))
		s.pos += int(k)
		n -= k
	}
	return nil
}

// varint reads a zig-zag varint; 32-bit ones (wide false) must fit an int32.
// A malformed varint is errBadVarint, a missing one s.fail().
func (s *recordScanner) varint(wide bool) (int64, error) {
	s.fill(binary.MaxVarintLen64)
	v, k := binary.Varint(s.buf[s.pos:s.end])
	if k == 0 {
		return 0, s.fail()
	}
	if k < 0 {
		return 0, errBadVarint
	}
	if !wide {
		if _, k32 := readVarint(s.buf[s.pos:s.end]); k32 <= 0 {
			return 0, errBadVarint
		}
	}
	s.pos += k
	return v, nil
}

var errBadVarint = errors.New("bad varint")

// record reads one record: its length, then its body, whose fields must fill
// it exactly. A record too long for the buffer is read field by field.
func (s *recordScanner) record() (record, error) {
	l, err := s.varint(false)
	switch {
	case err == nil && l >= 0 && (s.r != nil || l <= int64(s.end-s.pos)):
	case err == nil, err == errBadVarint, err == errTruncated:
		return record{}, fmt.Errorf("%w: bad length", ErrCorruptBatch)
	default:
		return record{}, err // decompression failed or errTooLarge
	}
	if l <= int64(len(s.buf)) {
		if !s.fill(int(l)) {
			if s.err != nil {
				return record{}, s.err
			}
			return record{}, fmt.Errorf("%w: bad length", ErrCorruptBatch)
		}
		r, err := parseRecord(s.buf[s.pos : s.pos+int(l)])
		s.pos += int(l)
		if err != nil {
			return r, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
		}
		return r, nil
	}
	return s.longRecord(s.consumed() + l)
}

// longRecord reads the fields of a record that ends at position end, as
// parseRecord does, skipping its key, value and headers. As for a record
// in memory, a record that runs past the records is truncated (corrupt)
// even if a field of it is invalid too.
func (s *recordScanner) longRecord(end int64) (record, error) {
	r, err := s.longFields(end)
	if errors.Is(err, ErrInvalidRecord) {
		if left := end - s.consumed(); left > 0 && errors.Is(s.skip(left), errTruncated) {
			return r, fmt.Errorf("%w: bad length", ErrCorruptBatch)
		}
	}
	return r, err
}

func (s *recordScanner) longFields(end int64) (record, error) {
	var r record
	invalid := func(format string, args ...any) (record, error) {
		return r, fmt.Errorf("%w: "+format, append([]any{ErrInvalidRecord}, args...)...)
	}
	// field reads one varint of the body; a malformed one is invalid.
	field := func(wide bool) (int64, error) {
		v, err := s.varint(wide)
		if err == errBadVarint {
			return 0, fmt.Errorf("%w: bad varint", ErrInvalidRecord)
		}
		if err == nil && s.consumed() > end {
			return 0, fmt.Errorf("%w: field runs past the record", ErrInvalidRecord)
		}
		return v, err
	}
	// bytesField skips a length-prefixed byte string; -1 is null.
	bytesField := func(what string, nullable bool) error {
		l, err := field(false)
		if err != nil {
			return err
		}
		if l < -1 || (l == -1 && !nullable) {
			return fmt.Errorf("%w: %s: bad length", ErrInvalidRecord, what)
		}
		if l > end-s.consumed() {
			return fmt.Errorf("%w: %s: length %d, %d bytes remain", ErrInvalidRecord, what, l, end-s.consumed())
		}
		return s.skip(max(l, 0))
	}
	if err := s.skip(1); err != nil { // attributes, unused in v2
		return r, err
	}
	var err error
	if r.timestampDelta, err = field(true); err != nil {
		return r, err
	}
	od, err := field(false)
	if err != nil {
		return r, err
	}
	if od < 0 {
		return invalid("bad offset delta")
	}
	r.offsetDelta = int32(od)
	if err := bytesField("key", true); err != nil {
		return r, err
	}
	if err := bytesField("value", true); err != nil {
		return r, err
	}
	nh, err := field(false)
	if err != nil {
		return r, err
	}
	if nh < 0 {
		return invalid("bad header count")
	}
	for j := int64(0); j < nh; j++ {
		if err := bytesField(fmt.Sprintf("header %d key", j), false); err != nil {
			return r, err
		}
		if err := bytesField(fmt.Sprintf("header %d value", j), true); err != nil {
			return r, err
		}
	}
	if left := end - s.consumed(); left > 0 {
		return invalid("%d bytes after the headers", left)
	}
	return r, nil
}

// snappyReader decodes Kafka's snappy: xerial framing (a 16-byte header, then
// blocks each prefixed by a 4-byte big-endian length) or, as Kafka's Java
// client also reads, one raw snappy block.
type snappyReader struct {
	src    []byte // what is left to decode
	raw    bool
	out    []byte // decoded, not yet read
	buf    []byte // reused decode buffer
	failed error
}

func (r *snappyReader) reset(src []byte) {
	r.out, r.failed = nil, nil
	r.raw = len(src) < xerialHeaderSize || !bytes.Equal(src[:len(xerialMagic)], xerialMagic)
	if !r.raw {
		src = src[xerialHeaderSize:]
	}
	r.src = src
}

func (r *snappyReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.failed != nil {
			return 0, r.failed
		}
		if len(r.src) == 0 {
			return 0, io.EOF
		}
		block := r.src
		if r.raw {
			r.src = nil
		} else {
			if len(r.src) < 4 {
				r.failed = errors.New("snappy: truncated chunk length")
				return 0, r.failed
			}
			n := binary.BigEndian.Uint32(r.src)
			if int64(n) > int64(len(r.src)-4) {
				r.failed = fmt.Errorf("snappy: chunk of %d bytes, %d remain", n, len(r.src)-4)
				return 0, r.failed
			}
			block, r.src = r.src[4:4+n], r.src[4+n:]
		}
		if r.failed = r.decode(block); r.failed != nil {
			return 0, r.failed
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// decode decodes one block into r.out, refusing a declared length that no
// valid block of its size can have before allocating for it.
func (r *snappyReader) decode(block []byte) error {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return fmt.Errorf("snappy: %v", err)
	}
	if n > maxDecompressed {
		return errTooLarge
	}
	if int64(n) > snappyMaxRatio*int64(len(block)) {
		return fmt.Errorf("snappy: a %d-byte block cannot decode to %d bytes", len(block), n)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	out, err := snappy.DecodeStrict(r.buf[:cap(r.buf)], block)
	if err != nil {
		return fmt.Errorf("snappy: %v", err)
	}
	r.out = out
	return nil
}
