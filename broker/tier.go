package broker

import (
	"context"

	"github.com/stratalog/strata/metadata"
	plog "github.com/stratalog/strata/partition"
	"github.com/stratalog/strata/tier/tierapi"
)

// Tier is the remote tier as the broker sees it; package tier implements it.
// Every method is safe for concurrent use.
type Tier interface {
	// The remote tier as each partition's whole log reads it.
	plog.Remote
	// Manage runs one round of tiering for the partitions: upload closed
	// segments, delete remote segments below their retention cut-offs. The
	// broker calls it periodically.
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
