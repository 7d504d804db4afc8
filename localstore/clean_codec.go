package localstore

// Encoding a cleaned batch's records with the batch's own codec (the cleaner
// keeps each batch's codec), through the encoders compression.type uses.

import (
	"bytes"
	"io"
	"math"
)

// cleanEncode compresses raw records with codec (1 gzip, 2 snappy in xerial
// framing as Kafka's Java client writes it, 3 lz4 frame, 4 zstd) at the
// codec's default level, with recompress.go's encoders.
func cleanEncode(codec int8, raw []byte) ([]byte, error) {
	if codec == CodecNone {
		return raw, nil
	}
	var enc encoders
	defer enc.close()
	out := &capWriter{limit: -1, total: math.MaxInt64}
	buf := make([]byte, 32<<10)
	// Level 0: each codec's default.
	if err := encodeStream(&enc, out, bytes.NewReader(raw), buf, Target{Codec: codec}); err != nil {
		return nil, err
	}
	return out.buf, nil
}

// cleanDecode returns the records section of the whole batch b, decompressed.
func cleanDecode(d *decoders, b []byte, h BatchHeader) ([]byte, error) {
	body := b[HeaderSize:]
	if h.Compression() == 0 {
		return body, nil
	}
	r, err := d.get().open(h.Compression(), body)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, errTooLarge
	}
	return out, nil
}
