package localstore

// TEMPORARY: signatures the localstore implementation must provide. The helper
// that implements the package deletes this file and keeps the signatures.

import (
	"log/slog"
	"time"
)

// Log is one partition's log on local disk. All methods are safe for concurrent use.
type Log struct{}

// Open opens (creating if needed) the log in dir, recovering the active segment
// (and every segment after an unclean shutdown): torn tails are truncated at the
// last batch whose CRC holds, indexes that do not match are rebuilt, and producer
// state is restored from its snapshot plus the batches after it.
func Open(dir string, cfg Config, logger *slog.Logger) (*Log, error) { panic("todo") }

// ValidateBatches checks a produce request's records field: one or more whole v2
// batches, each with magic 2, a consistent length, a CRC-32C that holds, a record
// count that matches (for uncompressed batches), and a total size <= maxBatchBytes.
// It returns the headers of the batches.
func ValidateBatches(b []byte, maxBatchBytes int64) ([]BatchHeader, error) { panic("todo") }

// ParseBatchHeader decodes the first 61 bytes of b.
func ParseBatchHeader(b []byte) (BatchHeader, error) { panic("todo") }

// Append assigns offsets from the log end offset by rewriting each batch's
// baseOffset, checks idempotent sequences (a retried batch among the producer's
// last five is answered with its original offsets and not written again), and
// writes the bytes as they came. batches must have passed ValidateBatches.
func (l *Log) Append(batches []byte) (AppendResult, error) { panic("todo") }

// Read returns the bytes from the batch that contains offset, within one segment,
// at most maxBytes long but at least one whole batch when minOneBatch, ending
// on a batch boundary. offset == LogEndOffset gives an empty slice.
func (l *Log) Read(offset int64, maxBytes int64, minOneBatch bool) (Slice, error) { panic("todo") }

// LogStartOffset is the first offset held locally.
func (l *Log) LogStartOffset() int64 { panic("todo") }

// LogEndOffset is one past the last offset appended (the high watermark on one node).
func (l *Log) LogEndOffset() int64 { panic("todo") }

// OffsetForTimestamp finds the first record whose timestamp is >= ts; ok is false if none.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool, err error) {
	panic("todo")
}

// MaxTimestamp returns the offset and timestamp of the record with the largest timestamp.
func (l *Log) MaxTimestamp() (offset, timestamp int64, ok bool, err error) { panic("todo") }

// Segments lists the segments in offset order, the active one last.
func (l *Log) Segments() []SegmentInfo { panic("todo") }

// Roll closes the active segment (if non-empty) and starts a new one.
func (l *Log) Roll() error { panic("todo") }

// Tick rolls by segment.ms and flushes by flush.ms; the broker calls it periodically.
func (l *Log) Tick(now time.Time) error { panic("todo") }

// SetConfig applies changed configuration.
func (l *Log) SetConfig(cfg Config) { panic("todo") }

// DeleteSegmentsBefore deletes closed segments whose NextOffset <= offset and moves
// the log start offset to the first remaining segment. The active segment is rolled
// first if it is entirely below offset and non-empty.
func (l *Log) DeleteSegmentsBefore(offset int64) (deleted int, err error) { panic("todo") }

// Flush fsyncs everything appended.
func (l *Log) Flush() error { panic("todo") }

// Close flushes, snapshots producer state, and closes files (slices in flight stay readable).
func (l *Log) Close() error { panic("todo") }

// Remove closes the log and deletes its directory.
func (l *Log) Remove() error { panic("todo") }
