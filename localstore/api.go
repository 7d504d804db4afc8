package localstore

// This file is the package's contract with the broker and the tiering manager.
// The implementation lives beside it; signatures here change only with both sides.

import (
	"errors"
	"os"
	"time"
)

// Errors returned by Log methods. The broker maps them to Kafka error codes.
var (
	ErrOffsetOutOfRange     = errors.New("localstore: offset out of range")
	ErrCorruptBatch         = errors.New("localstore: corrupt record batch")           // CORRUPT_MESSAGE
	ErrBatchTooLarge        = errors.New("localstore: record batch too large")         // MESSAGE_TOO_LARGE
	ErrInvalidRecord        = errors.New("localstore: invalid record")                 // INVALID_RECORD
	ErrUnsupportedMagic     = errors.New("localstore: unsupported record batch magic") // UNSUPPORTED_FOR_MESSAGE_FORMAT
	ErrOutOfOrderSequence   = errors.New("localstore: out of order sequence number")   // OUT_OF_ORDER_SEQUENCE_NUMBER
	ErrInvalidProducerEpoch = errors.New("localstore: producer epoch is fenced")       // INVALID_PRODUCER_EPOCH
	ErrUnknownProducerID    = errors.New("localstore: unknown producer id")            // UNKNOWN_PRODUCER_ID
	ErrInvalidTimestamp     = errors.New("localstore: timestamp out of range")         // INVALID_TIMESTAMP
	ErrClosed               = errors.New("localstore: log is closed")
	ErrStorage              = errors.New("localstore: storage error") // KAFKA_STORAGE_ERROR (wrapped)

	// ErrOffsetMismatch: AppendReplica got batches that do not continue the
	// log (the first starts below the log end offset, or they overlap).
	ErrOffsetMismatch = errors.New("localstore: replicated batches do not continue the log")
	// ErrFencedLeaderEpoch: AppendLeader was called with an epoch below the
	// latest epoch of the log (FENCED_LEADER_EPOCH).
	ErrFencedLeaderEpoch = errors.New("localstore: leader epoch below the log's latest")
)

// EpochEntry is one entry of the leader-epoch cache: the first offset
// written under a leader epoch (Kafka's EpochEntry).
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// UndefinedEpoch and UndefinedEpochOffset are Kafka's UNDEFINED_EPOCH and
// UNDEFINED_EPOCH_OFFSET, which EndOffsetForEpoch answers for an epoch it
// cannot place.
const (
	UndefinedEpoch       int32 = -1
	UndefinedEpochOffset int64 = -1
)

// Config holds one partition log's settings, already resolved from topic and
// broker configuration. Zero values mean "off" where stated.
type Config struct {
	SegmentBytes       int64 // segment.bytes: roll when the active segment would exceed this
	SegmentMs          int64 // segment.ms: roll when the active segment's first batch is older (0 = never)
	SegmentJitterMs    int64 // segment.jitter.ms: each segment rolls a random 0..min(this, SegmentMs)-1 ms early
	SegmentIndexBytes  int64 // segment.index.bytes: maximum size of an offset index (roll when full)
	IndexIntervalBytes int64 // index.interval.bytes: bytes between offset/time index entries
	FlushMessages      int64 // flush.messages: fsync after this many messages (1 = every append)
	FlushMs            int64 // flush.ms: fsync when the oldest unflushed append is older (0 = off)
	LogAppendTime      bool  // message.timestamp.type=LogAppendTime
	FileDeleteDelayMs  int64 // file.delete.delay.ms: a deleted segment's files are renamed .deleted and removed this much later (0 = at once)
}

// AppendResult says where an append landed.
type AppendResult struct {
	BaseOffset     int64 // offset of the first record appended
	LastOffset     int64 // offset of the last record appended
	LogAppendTime  int64 // ms, -1 unless LogAppendTime
	LogStartOffset int64
	Duplicate      bool // a retried idempotent batch: nothing was written, offsets are the original ones
}

// Slice is a range of a segment file (local or a cached remote chunk) that starts
// and ends on batch boundaries. The holder must call Release once the bytes are sent;
// the file stays open and readable until then, even if the segment is deleted.
type Slice struct {
	File *os.File
	Pos  int64
	Len  int64
	// Release drops the holder's reference. Safe to call on a zero Slice.
	Release func()
}

// Done releases the slice's reference if it holds one.
func (s Slice) Done() {
	if s.Release != nil {
		s.Release()
	}
}

// SegmentInfo describes one segment of a log.
type SegmentInfo struct {
	BaseOffset     int64
	NextOffset     int64 // one past the last offset in the segment
	Size           int64
	FirstTimestamp int64 // -1 if empty
	MaxTimestamp   int64 // -1 if empty
	LogPath        string
	IndexPath      string
	TimeIndexPath  string
	Active         bool      // the segment being appended to
	RolledAt       time.Time // zero for the active segment
}

// BatchHeader is the fixed 61-byte header of a v2 record batch.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// TotalSize is the batch's size on the wire: 12 bytes of offset and length plus Length.
func (h BatchHeader) TotalSize() int64 { return 12 + int64(h.Length) }

// Compression returns the codec bits of the attributes (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & 0x7) }

// Transactional reports the transactional bit.
func (h BatchHeader) Transactional() bool { return h.Attributes&0x10 != 0 }

// Control reports the control bit.
func (h BatchHeader) Control() bool { return h.Attributes&0x20 != 0 }

// HeaderSize is the size of a v2 record batch header.
const HeaderSize = 61
