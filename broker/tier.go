package broker

import (
	"context"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/tier"
	"github.com/stratalog/strata/tier/tierapi"
)

// Tier is the remote tier as the broker sees it; package tier implements it.
// Every method is safe for concurrent use.
type Tier interface {
	// LogStartOffset is the partition's first offset in the remote tier, if it has one.
	LogStartOffset(topic string, partition int32) (int64, bool)
	// HighestOffset is the last offset copied to the remote tier, if any (KIP-1005 latest-tiered).
	HighestOffset(topic string, partition int32) (int64, bool)
	// ReadMany serves the batches from offset out of the remote tier, like
	// Log.Read but as consecutive slices that may cross chunks and segments.
	ReadMany(ctx context.Context, topic string, partition int32, offset, maxBytes int64, minOneBatch bool) ([]localstore.Slice, error)
	// OffsetForTimestamp finds the first record with timestamp >= ts in the remote tier.
	OffsetForTimestamp(ctx context.Context, topic string, partition int32, ts int64) (offset, timestamp int64, ok bool, err error)
	// Manage runs one round of tiering for the partitions: upload closed segments,
	// enforce local and remote retention. The broker calls it periodically.
	Manage(ctx context.Context, parts []tierapi.PartitionLog)
	// ForgetTopic stops tiering a deleted topic (its rounds cancelled and
	// waited for); PurgeTopic then deletes its remote objects and cached
	// chunks, and may be repeated until it succeeds (deletion.go).
	ForgetTopic(topic string, id [16]byte)
	PurgeTopic(ctx context.Context, d metadata.TopicDeletion) error
	// DropRemote stops tiering a live topic and forgets its remote view,
	// holding its rounds while commit runs (KIP-950 disablement,
	// remote_disable.go); ResumeRemote lets it tier again.
	DropRemote(topic string, id [16]byte, commit func() error) error
	ResumeRemote(id [16]byte)
}

var _ Tier = (*tier.Manager)(nil)
