package localstore

// Encoding a cleaned batch's records with the batch's own codec. The cleaner
// keeps each batch's codec; these encoders are the only ones it needs.

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// cleanEncode compresses raw records with codec (1 gzip, 2 snappy in xerial
// framing as Kafka's Java client writes it, 3 lz4 frame, 4 zstd).
func cleanEncode(codec int8, raw []byte) ([]byte, error) {
	switch codec {
	case 0:
		return raw, nil
	case 1:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(raw); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case 2:
		return xerial.Encode(nil, raw), nil
	case 3:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb)); err != nil {
			return nil, err
		}
		if _, err := w.Write(raw); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case 4:
		w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		if err != nil {
			return nil, err
		}
		defer w.Close()
		return w.EncodeAll(raw, nil), nil
	}
	return nil, fmt.Errorf("unknown codec %d", codec)
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
