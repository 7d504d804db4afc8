// Package partition owns one partition's whole log, as Kafka's UnifiedLog
// does: its local log on disk (localstore) and its view of the remote tier.
// Every caller asks it, never the two halves, for a record set at an offset,
// the log start offset, the local log start offset, the high watermark, the
// offset for a timestamp and ListOffsets' special values. DeleteRecords moves
// the log start offset (logstart.go), durably, and it never moves back;
// retention is one cut-off computed here, which deletes local segments and
// asks the tier to delete remote ones.
//
// The tier is reached through the Remote interface, so this package builds
// without the tier's implementation. On one node the high watermark is the
// log end offset; a replicated partition's leader moves it with its ISR
// (SetReplicated, SetHighWatermark) and consumers read below it.
package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/tier/tierapi"
)

// Remote is the remote tier as a partition sees it; package tier implements
// it. Every method is safe for concurrent use.
type Remote interface {
	// LogStartOffset is the partition's first offset in the remote tier.
	LogStartOffset(topic string, partition int32) (int64, bool)
	// HighestOffset is the last offset copied to the remote tier (KIP-1005).
	HighestOffset(topic string, partition int32) (int64, bool)
	// ReadMany serves the batches from offset out of the remote tier.
	ReadMany(ctx context.Context, topic string, partition int32, offset, maxBytes int64, minOneBatch bool) ([]localstore.Slice, error)
	// OffsetForTimestamp finds the first record at or after ts in the remote tier.
	OffsetForTimestamp(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, ok bool, err error)
	// RetentionItems describes the partition's finished remote segments for
	// the retention cut-off, in offset order, and the highest offset they hold
	// (-1: none).
	RetentionItems(topic string, partition int32) (items []localstore.RetentionItem, highest int64)
	// DeleteRemoteBefore asks the tier to delete the partition's remote
	// segments that end below offset. It does not wait for the store: the
	// tier deletes them in its next round, retrying while the store is down.
	DeleteRemoteBefore(topic string, partition int32, offset int64)
}

// StartStore persists the log start offset (the metadata store).
type StartStore interface {
	SetLogStartOffset(topic string, partition int32, offset int64) error
}

// Config is a partition's settings, resolved from its topic's.
type Config struct {
	// Tiered: the topic tiers (remote.storage.enable) and a tier exists.
	Tiered bool
	// Retention of the whole log, local and remote; -1: no limit.
	RetentionMs, RetentionBytes int64
	// Retention of the local copy of tiered segments (local.retention.*,
	// -2 already replaced by retention.*); -1: no limit.
	LocalRetentionMs, LocalRetentionBytes int64
	// CompactOnly: cleanup.policy is compact without delete, so retention.ms
	// and retention.bytes delete nothing (Kafka's rule); the log cleaner
	// keeps the log's size down.
	CompactOnly bool
}

// Log is one partition's whole log. Safe for concurrent use.
type Log struct {
	topic  string
	id     [16]byte
	index  int32
	local  *localstore.Log
	remote Remote // nil: the broker runs without a remote tier
	starts StartStore
	logger *slog.Logger

	cfg atomic.Pointer[Config]

	// floor is the log start floor (logstart.go): DeleteRecords' start.
	floor atomic.Int64

	// replicated: hw is the high watermark, set by replication; otherwise
	// the high watermark is the log end offset.
	replicated atomic.Bool
	hw         atomic.Int64

	retMu     sync.Mutex // one retention pass at a time
	persisted int64      // the log start last persisted; guarded by retMu
}

// New wraps an open local log. remote and starts may be nil.
func New(topic string, id [16]byte, index int32, local *localstore.Log, remote Remote, starts StartStore, cfg Config, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{topic: topic, id: id, index: index, local: local, remote: remote, starts: starts, logger: logger, persisted: -1}
	l.SetConfig(cfg)
	return l
}

// Topic, TopicID and Index name the partition.
func (l *Log) Topic() string     { return l.topic }
func (l *Log) TopicID() [16]byte { return l.id }
func (l *Log) Index() int32      { return l.index }

// Local is the local log, for what only the local log does: append, roll,
// flush, close, and the tier's uploads of closed segments.
func (l *Log) Local() *localstore.Log { return l.local }

// SetConfig replaces the partition's settings.
func (l *Log) SetConfig(cfg Config) {
	if l.remote == nil {
		cfg.Tiered = false
	}
	l.cfg.Store(&cfg)
}

// Config is the partition's settings.
func (l *Log) Config() Config { return *l.cfg.Load() }

// Append appends record batches to the local log.
func (l *Log) Append(batches []byte) (localstore.AppendResult, error) {
	return l.local.Append(batches)
}

// LogEndOffset is the offset the next append gets.
func (l *Log) LogEndOffset() int64 { return l.local.LogEndOffset() }

// HighWatermark is the offset below which records are committed: on one node
// every appended record is, so it is the log end offset; a replicated
// partition's is what its leader computed from the in-sync replicas
// (SetHighWatermark), never above the log end offset.
func (l *Log) HighWatermark() int64 {
	leo := l.local.LogEndOffset()
	if !l.replicated.Load() {
		return leo
	}
	return min(l.hw.Load(), leo)
}

// SetReplicated makes the high watermark the one SetHighWatermark sets,
// starting at hw (on: a replica of a replicated partition), or the log end
// offset again (off).
func (l *Log) SetReplicated(on bool, hw int64) {
	l.hw.Store(hw)
	l.replicated.Store(on)
}

// Replicated reports whether the high watermark is set by replication.
func (l *Log) Replicated() bool { return l.replicated.Load() }

// SetHighWatermark sets a replicated partition's high watermark (a leader
// advancing it, a follower taking the leader's). It reports whether it moved
// up.
func (l *Log) SetHighWatermark(hw int64) bool {
	return l.hw.Swap(hw) < hw
}

// LocalLogStartOffset is the first offset on local disk, never below the
// log start offset (as Kafka's after DeleteRecords).
func (l *Log) LocalLogStartOffset() int64 { return max(l.local.LogStartOffset(), l.floorOf()) }

// LogStartOffset is the first offset of the whole log, remote tier included,
// never below the start DeleteRecords set.
func (l *Log) LogStartOffset() int64 {
	start := l.local.LogStartOffset()
	if l.remote != nil {
		if off, ok := l.remote.LogStartOffset(l.topic, l.index); ok && off < start {
			start = off
		}
	}
	return max(start, l.floorOf())
}

// HighestTieredOffset is the last offset in the remote tier (KIP-1005).
func (l *Log) HighestTieredOffset() (int64, bool) {
	if l.remote == nil {
		return -1, false
	}
	return l.remote.HighestOffset(l.topic, l.index)
}

// IsRemote reports whether offset is below the local log and the remote tier
// may hold it (not below the log start offset DeleteRecords set).
func (l *Log) IsRemote(offset int64) bool {
	return l.remote != nil && offset < l.local.LogStartOffset() && offset >= l.floorOf()
}

// Read returns the batches from offset within maxBytes (at least one whole
// batch when minOneBatch), from the local log or, below its start, from the
// remote tier: one file slice locally, consecutive chunk slices remotely.
// Local retention may delete segments between the choice and the read; an
// offset that has just left the local log is then read remotely. The caller
// releases every slice.
func (l *Log) Read(ctx context.Context, offset, maxBytes int64, minOneBatch bool) ([]localstore.Slice, error) {
	return l.read(ctx, offset, l.HighWatermark(), maxBytes, minOneBatch)
}

// ReadReplica is Read for a follower's fetch: up to the log end offset, not
// the high watermark.
func (l *Log) ReadReplica(ctx context.Context, offset, maxBytes int64, minOneBatch bool) ([]localstore.Slice, error) {
	return l.read(ctx, offset, math.MaxInt64, maxBytes, minOneBatch)
}

func (l *Log) read(ctx context.Context, offset, maxOffset, maxBytes int64, minOneBatch bool) ([]localstore.Slice, error) {
	if offset < l.floorOf() {
		return nil, fmt.Errorf("%w: %d is below the log start offset %d", localstore.ErrOffsetOutOfRange, offset, l.floorOf())
	}
	if l.IsRemote(offset) && offset >= l.LogStartOffset() {
		sls, err := l.remote.ReadMany(ctx, l.topic, l.index, offset, maxBytes, minOneBatch)
		if hi, ok := l.HighestTieredOffset(); errors.Is(err, tierapi.ErrOffsetOutOfRange) && (!ok || offset > hi) {
			// Between the remote tier's last offset and the local log's
			// first (a compacted log's gap): as in Kafka, the next batch
			// that exists is served, the local log's first.
			offset = l.local.LogStartOffset()
		} else {
			return sls, err
		}
	}
	sl, err := l.local.ReadUpTo(offset, maxOffset, maxBytes, minOneBatch)
	if errors.Is(err, localstore.ErrOffsetOutOfRange) && l.IsRemote(offset) {
		return l.remote.ReadMany(ctx, l.topic, l.index, offset, maxBytes, minOneBatch)
	}
	if err != nil || sl.Len == 0 {
		sl.Done()
		return nil, err
	}
	return []localstore.Slice{sl}, nil
}

// Warm brings the remote bytes at offset into the chunk cache without
// reading past them: the first batch only. A fetch warms its remote
// partitions concurrently, so that it waits for one round of GETs, then reads
// each within its exact limit in order. Errors are left for the read.
func (l *Log) Warm(ctx context.Context, offset int64) {
	if !l.IsRemote(offset) {
		return
	}
	sls, err := l.remote.ReadMany(ctx, l.topic, l.index, offset, 0, true)
	if err != nil {
		return
	}
	for _, sl := range sls {
		sl.Done()
	}
}

// Tick rolls and flushes the local log on time.
func (l *Log) Tick(now time.Time) error { return l.local.Tick(now) }

// Close closes the local log.
func (l *Log) Close() error { return l.local.Close() }
