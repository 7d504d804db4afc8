package localstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

var codecNames = [8]string{"none", "gzip", "snappy", "lz4", "zstd", "codec5", "codec6", "codec7"}

// DumpSegment prints every batch of the segment file at logPath and the
// entries of its .index and .timeindex (found beside it), for
// `strata segments dump FILE`. A torn or corrupt tail is reported, not fatal.
// The gaps a compacted segment has are shown: offsets with no batch, and a
// batch's offsets whose records the cleaner removed.
func DumpSegment(w io.Writer, logPath string) error {
	f, err := os.Open(logPath)
	if err != nil {
		return fmt.Errorf("cannot open segment %q: %w", logPath, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot open segment %q: %w", logPath, err)
	}
	size := fi.Size()
	fmt.Fprintf(w, "segment %s (%d bytes)\n", logPath, size)
	hdr := make([]byte, HeaderSize)
	var buf []byte
	batches := 0
	next := int64(-1) // the offset after the previous batch; a cleaned segment has gaps
	if off, _, ok := parseOffsetName(baseName(logPath)); ok {
		next = off
	}
	for pos := int64(0); pos < size; {
		n, err := f.ReadAt(hdr, pos)
		if n < HeaderSize {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("cannot read segment %q: %w", logPath, err)
			}
			fmt.Fprintf(w, "torn header at position %d: %d bytes remain\n", pos, size-pos)
			break
		}
		h := parseHeader(hdr)
		if h.Magic != 2 || h.Length < minBatchLength || pos+h.TotalSize() > size {
			fmt.Fprintf(w, "bad or torn batch at position %d: magic %d length %d, %d bytes remain\n", pos, h.Magic, h.Length, size-pos)
			break
		}
		if int64(cap(buf)) < h.TotalSize() {
			buf = make([]byte, h.TotalSize())
		}
		buf = buf[:h.TotalSize()]
		if _, err := f.ReadAt(buf, pos); err != nil {
			return fmt.Errorf("cannot read segment %q: %w", logPath, err)
		}
		if next >= 0 && h.BaseOffset > next {
			fmt.Fprintf(w, "gap: offsets %d to %d hold no batch (removed by the log cleaner)\n", next, h.BaseOffset-1)
		}
		next = h.lastOffset() + 1
		fmt.Fprintf(w, "baseOffset: %d lastOffset: %d count: %d position: %d size: %d crc: %d crcValid: %t"+
			" firstTimestamp: %d maxTimestamp: %d logAppendTime: %t producerId: %d producerEpoch: %d baseSequence: %d"+
			" leaderEpoch: %d codec: %s transactional: %t control: %t\n",
			h.BaseOffset, h.lastOffset(), h.NumRecords, pos, h.TotalSize(), h.CRC, crcOK(buf),
			h.FirstTimestamp, h.MaxTimestamp, h.logAppendTime(), h.ProducerID, h.ProducerEpoch, h.BaseSequence,
			h.PartitionLeaderEpoch, codecNames[h.Compression()], h.Transactional(), h.Control())
		if n := int64(h.LastOffsetDelta) + 1 - int64(h.NumRecords); n > 0 {
			fmt.Fprintf(w, "  %d of the batch's %d offsets hold no record (removed by the log cleaner)\n", n, h.LastOffsetDelta+1)
		}
		batches++
		pos += h.TotalSize()
	}
	fmt.Fprintf(w, "%d batches\n", batches)

	base := strings.TrimSuffix(logPath, logSuffix)
	var segBase int64
	if off, _, ok := parseOffsetName(baseName(logPath)); ok {
		segBase = off
	}
	if idx, err := os.ReadFile(base + indexSuffix); err != nil {
		fmt.Fprintf(w, "offset index: %v\n", err)
	} else {
		fmt.Fprintf(w, "offset index %s (%d entries)\n", base+indexSuffix, len(idx)/offsetEntrySize)
		for i := 0; i < len(idx)/offsetEntrySize; i++ {
			rel, p := offsetEntry(idx, i)
			fmt.Fprintf(w, "offset: %d position: %d\n", segBase+int64(rel), p)
		}
		if r := len(idx) % offsetEntrySize; r != 0 {
			fmt.Fprintf(w, "%d trailing bytes\n", r)
		}
	}
	if tidx, err := os.ReadFile(base + timeIndexSuffix); err != nil {
		fmt.Fprintf(w, "time index: %v\n", err)
	} else {
		fmt.Fprintf(w, "time index %s (%d entries)\n", base+timeIndexSuffix, len(tidx)/timeEntrySize)
		for i := 0; i < len(tidx)/timeEntrySize; i++ {
			ts, rel := timeEntry(tidx, i)
			fmt.Fprintf(w, "timestamp: %d offset: %d\n", ts, segBase+int64(rel))
		}
		if r := len(tidx) % timeEntrySize; r != 0 {
			fmt.Fprintf(w, "%d trailing bytes\n", r)
		}
	}
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
