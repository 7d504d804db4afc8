package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/localstore"
)

// The compaction phase measures the local log cleaner itself, through the
// localstore API (no broker): a log of keyed records, each key written
// compactOverwrites times, in several closed segments, cleaned in one call
// to Log.Clean. Beside it, on the same disk in the same run, the raw
// sequential read-and-write rate: the same segment files read in 1 MiB
// pieces and written to copies, each copy fsynced at its end as the
// cleaner fsyncs its .cleaned files.

const (
	compactRecordBytes   = 1024 // value size
	compactBatchRecords  = 64
	compactOverwrites    = 8 // versions of each key
	compactSegmentsWhole = 8 // the log fills about this many segments
)

// Compaction is the result of the compaction phase.
type Compaction struct {
	LogBytes int64 `json:"log_bytes"` // closed segment bytes before cleaning
	Segments int   `json:"segments"`  // closed segments before cleaning
	Records  int64 `json:"records"`
	Keys     int64 `json:"keys"`
	// Cleaner is the bytes the cleaner read (it reads the dirty part to map
	// its keys, then every segment it rewrites: about twice the log on a
	// first cleaning) over the wall time of Log.Clean.
	Cleaner        Rate  `json:"cleaner"`
	CleanerWritten int64 `json:"cleaner_written_bytes"`
	RecordsRemoved int64 `json:"records_removed"`
	SegmentsAfter  int   `json:"segments_after"`
	Passes         int   `json:"passes"`
	// Raw is the bytes read from the same segment files, read sequentially
	// and written to copies (fsynced), over its wall time.
	Raw Rate `json:"raw_read_write"`
}

// compactionPhases builds the log under the run's directory, measures the
// raw read-and-write baseline on its segment files, then cleans it.
func (r *runner) compactionPhases(ctx context.Context) error {
	dir := filepath.Join(r.dir, "compact")
	defer os.RemoveAll(dir)
	total := r.cfg.CompactBytes
	r.prog.step("compaction: build " + sizeStr(total) + " keyed log")
	l, res, err := buildCompactLog(filepath.Join(dir, "log"), total)
	if err != nil {
		return err
	}
	defer l.Close()
	files, err := closedSegmentFiles(l)
	if err != nil {
		return err
	}
	if err := syncFiles(l.Dir()); err != nil {
		return err
	}
	res.Segments = len(files)
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return err
		}
		res.LogBytes += fi.Size()
	}

	r.prog.step("compaction: raw read+write, then the cleaner")
	if err := warmFiles(files); err != nil {
		return err
	}
	err = r.cpu("compact-raw", func() (err error) {
		pprof.Do(ctx, pprof.Labels("side", "broker"), func(context.Context) {
			res.Raw, err = rawReadWrite(files, filepath.Join(dir, "copy"))
		})
		return err
	})
	if err != nil {
		return err
	}
	if err := warmFiles(files); err != nil {
		return err
	}
	err = r.cpu("compact-clean", func() (err error) {
		pprof.Do(ctx, pprof.Labels("side", "broker"), func(context.Context) {
			start := time.Now()
			var st localstore.CleanStats
			st, err = l.Clean(localstore.CleanConfig{Ctx: ctx})
			res.Cleaner = rate(st.BytesRead, time.Since(start), "Log.Clean on the closed segments, one call (default log.cleaner.dedupe.buffer.size), bytes the cleaner read over its wall time")
			res.CleanerWritten, res.RecordsRemoved, res.SegmentsAfter, res.Passes = st.BytesWritten, st.RecordsRemoved, st.SegmentsAfter, st.Passes
		})
		return err
	})
	if err != nil {
		return err
	}
	if res.Cleaner.Bytes <= 0 || res.RecordsRemoved <= 0 {
		return fmt.Errorf("bench: the cleaner read %d bytes and removed %d records of a log with %d overwrites per key", res.Cleaner.Bytes, res.RecordsRemoved, compactOverwrites)
	}
	r.rep.Compaction = res
	return nil
}

// buildCompactLog appends about total bytes of keyed records to a new log
// in dir, each key compactOverwrites times, and rolls so that every segment
// is closed.
func buildCompactLog(dir string, total int64) (*localstore.Log, Compaction, error) {
	var res Compaction
	segBytes := max(total/compactSegmentsWhole, 64<<10)
	l, err := localstore.Open(dir, localstore.Config{SegmentBytes: segBytes}, nil)
	if err != nil {
		return nil, res, err
	}
	recs := total / (compactRecordBytes + 40)
	res.Keys = max(recs/compactOverwrites, 1)
	pool := randomBytes(1 << 20)
	rnd := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UnixMilli()
	for res.Records < recs {
		n := int(min(compactBatchRecords, recs-res.Records))
		b := compactBatch(n, now, func(i int) (key, value []byte) {
			k := (res.Records + int64(i)) * 7919 % res.Keys // 7919 is prime: every key once per round (unless it divides Keys), scattered
			off := rnd.IntN(len(pool) - compactRecordBytes)
			return fmt.Appendf(nil, "key-%010d", k), pool[off : off+compactRecordBytes]
		})
		if _, err := l.Append(b); err != nil {
			l.Close()
			return nil, res, err
		}
		res.Records += int64(n)
	}
	if err := l.Roll(); err != nil {
		l.Close()
		return nil, res, err
	}
	return l, res, nil
}

// compactBatch encodes an uncompressed v2 record batch of n records (base
// offset 0: the log assigns offsets) with the keys and values kv gives.
func compactBatch(n int, ts int64, kv func(i int) (key, value []byte)) []byte {
	var recs []byte
	for i := range n {
		k, v := kv(i)
		r := kmsg.Record{OffsetDelta: int32(i), Key: k, Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the zero Length took one byte
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n), Records: recs,
	}
	b.Length = int32(recordBatchHeader - 12 + len(recs))
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// closedSegmentFiles returns the segment files of l but the active one's.
func closedSegmentFiles(l *localstore.Log) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(l.Dir(), "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	segs := l.Segments()
	if len(segs) < 3 || len(files) != len(segs) {
		return nil, fmt.Errorf("bench: compaction log has %d segments (%d files), want at least 3", len(segs), len(files))
	}
	return files[:len(files)-1], nil // the last is the active segment, empty after the roll
}

// rawReadWrite reads each file sequentially in 1 MiB pieces and writes it
// to a copy in dir, fsyncing each copy at its end; the rate is of the bytes
// read. The copies are removed after.
func rawReadWrite(files []string, dir string) (Rate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Rate{}, err
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, 1<<20)
	var n int64
	start := time.Now()
	for _, name := range files {
		k, err := copyFile(name, filepath.Join(dir, filepath.Base(name)), buf)
		n += k
		if err != nil {
			return Rate{}, err
		}
	}
	return rate(n, time.Since(start), "the same segment files read in 1 MiB pieces and written to copies, each fsynced at its end; bytes read over wall time"), nil
}

func copyFile(src, dst string, buf []byte) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}
