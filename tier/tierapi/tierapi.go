// Package tierapi holds the types the broker and the tiering manager share, so
// the broker depends on them without depending on the tier's implementation.
package tierapi

import (
	"errors"

	"github.com/stratalog/strata/localstore"
)

// Errors the broker maps to Kafka codes.
var (
	// ErrUnavailable: the object store cannot be read now. Fetches get a
	// retriable error (KAFKA_STORAGE_ERROR), never partial data.
	ErrUnavailable = errors.New("tier: remote tier unavailable")
	// ErrOffsetOutOfRange: no remote segment holds the offset.
	ErrOffsetOutOfRange = errors.New("tier: offset not in the remote tier")
)

// PartitionLog is what the tier needs of one partition, handed over by the broker
// at each management round.
type PartitionLog struct {
	Topic string
	// TopicID tells a topic from a deleted one of the same name.
	TopicID   [16]byte
	Partition int32
	Log       *localstore.Log
	// Remote reports whether the topic tiers now (remote.storage.enable).
	Remote bool
	// CopyDisabled: remote.log.copy.disable (KIP-950). The remote tier is
	// read-only: nothing is uploaded, what is there is served and expired.
	CopyDisabled bool

	// Replicated: the partition is a replica in a cluster. The bucket, which
	// every broker shares, is then the truth of its remote index: each
	// replica learns it by listing the partition's prefix, and only the
	// leader uploads and deletes objects.
	Replicated bool
	// Leader (Replicated only): this broker leads the partition at
	// LeaderEpoch. Uploads record the epoch in their sidecar.
	Leader      bool
	LeaderEpoch int32
	// StillLeader (Replicated only) reports whether this broker still leads
	// the partition at the epoch; an upload checks it before it commits.
	// nil: always.
	StillLeader func(epoch int32) bool
	// HighWatermark (nil: the log end offset) bounds the uploads: only
	// segments wholly below it are copied, so nothing a new leader could
	// truncate ever reaches the bucket.
	HighWatermark func() int64

	// Compaction is the topic's compaction settings if its cleanup.policy
	// includes compact (nil: not compacted). A compacted topic uploads a
	// segment only once it is cleaned once, and the tier compacts its
	// remote part.
	Compaction *Compaction
}

// Compaction is a compacted topic's settings, as the tier needs them.
type Compaction struct {
	MinCompactionLagMs     int64   // min.compaction.lag.ms
	MaxCompactionLagMs     int64   // max.compaction.lag.ms
	DeleteRetentionMs      int64   // delete.retention.ms
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio
}
