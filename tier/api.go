package tier

// This file is the package's contract with the broker and cmd/strata; the
// package doc is in doc.go.

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratalog/strata/internal/pricing"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/tier/tierapi"
)

// The types the broker shares with the tier live in tierapi, so the broker
// builds without the tier's implementation; these aliases keep one name here.
var (
	ErrUnavailable      = tierapi.ErrUnavailable
	ErrOffsetOutOfRange = tierapi.ErrOffsetOutOfRange
)

// PartitionLog is what the tier needs of one partition (see tierapi).
type PartitionLog = tierapi.PartitionLog

// Compaction is a compacted topic's settings (see tierapi).
type Compaction = tierapi.Compaction

// Config holds the tiering manager's settings, resolved from the broker's
// configuration. New applies the default named beside each field whose zero
// value would be meaningless.
type Config struct {
	// CacheDir is the chunk cache directory (remote.cache.dir); required.
	CacheDir string
	// CacheMaxBytes bounds the chunk cache on disk (remote.cache.max.bytes,
	// default 1 GiB).
	CacheMaxBytes int64
	// CachePolicy is the chunk cache's eviction policy (remote.cache.policy):
	// chunkcache.PolicyS3FIFO (default) or chunkcache.PolicyLRU.
	CachePolicy string
	// ChunkBytes is the target size of a chunk, the unit of a ranged GET and
	// of a cache entry (remote.chunk.bytes, default 4 MiB). It applies to
	// segments uploaded from now on: each sidecar records its own chunk table.
	ChunkBytes int64
	// ReadaheadChunks is how many chunks after the one read are prefetched
	// (remote.readahead.chunks; 0: none).
	ReadaheadChunks int
	// ReaderThreads is how many read-ahead downloads run at once, for all
	// partitions together (remote.log.reader.threads, default 10). A read
	// that misses the cache downloads its chunk itself, beside these.
	ReaderThreads int
	// CopyMaxBytesPerSecond limits upload bandwidth, all uploads together
	// (remote.log.manager.copy.max.bytes.per.second; <= 0: unlimited).
	CopyMaxBytesPerSecond int64
	// CompactMaxBytesPerSecond limits remote compaction's bandwidth, bytes
	// downloaded and uploaded, all partitions together
	// (remote.log.compaction.max.bytes.per.second, Strata's; <= 0: unlimited).
	CompactMaxBytesPerSecond int64
	// CompactDedupeBufferBytes bounds remote compaction's key map
	// (log.cleaner.dedupe.buffer.size; <= 0: localstore's default).
	CompactDedupeBufferBytes int64
	// FetchMaxBytesPerSecond limits download bandwidth, all remote reads
	// together: chunks on a miss, read-ahead and sidecars
	// (remote.log.manager.fetch.max.bytes.per.second, KIP-956; <= 0: unlimited).
	FetchMaxBytesPerSecond int64
	// ReaderMaxPendingTasks bounds the remote reads in progress at once; a
	// read beyond it fails at once with ErrUnavailable, which the broker
	// answers with KAFKA_STORAGE_ERROR, a retriable error
	// (remote.log.reader.max.pending.tasks, default 100).
	ReaderMaxPendingTasks int
	// Prices are the object-store prices of the cost metrics
	// (remote.storage.price.*); nil: pricing.DefaultS3.
	Prices *pricing.S3
	// UploadConcurrency is the number of partitions uploading at once
	// (default 2). One partition uploads one segment at a time, in order.
	UploadConcurrency int
	// FetchMaxWait bounds a remote read (remote.fetch.max.wait.ms, default 500ms).
	FetchMaxWait time.Duration
	// OrphanGrace is the age an object without an index entry must reach
	// before the reconciler deletes it (remote.orphan.grace.ms; 0: none).
	OrphanGrace time.Duration
	// ReconcileInterval is how often the manager reconciles the bucket with
	// the index (default: OrphanGrace, at least a minute and at most an
	// hour, so that an orphan is gone within about twice the grace; < 0:
	// never).
	ReconcileInterval time.Duration
	// SidecarCacheBytes bounds the decoded sidecars kept in memory (default 64 MiB).
	SidecarCacheBytes int64
	// RetryBackoff and MaxRetryBackoff bound the wait before a partition whose
	// upload or delete failed is tried again; it doubles per failure
	// (defaults 1s and 5m).
	RetryBackoff, MaxRetryBackoff time.Duration
	// Health follows whether the store answers. Give the one the store's own
	// decorators feed (backend.Options.Health, which sees every attempt, so
	// a hung store shows at its first timeout); nil: the manager follows the
	// calls it makes itself (after their retries).
	Health *remotestore.Health
	// Replicated: this broker is a member of a cluster. Interrupted uploads
	// are not rolled back at start-up (the bucket may hold them complete,
	// and another broker may have learned them): each partition's rounds
	// settle them against the bucket; the periodic reconciler deletes
	// orphans only of the partitions this broker leads.
	Replicated bool
	// Now is the clock (default time.Now); for tests.
	Now func() time.Time
}

// Config defaults.
const (
	DefaultCacheMaxBytes     = 1 << 30
	DefaultChunkBytes        = 4 << 20
	DefaultUploadConcurrency = 2
	DefaultReaderThreads     = 10
	DefaultReaderMaxPending  = 100
	DefaultFetchMaxWait      = 500 * time.Millisecond
	DefaultReconcileInterval = time.Hour
	DefaultSidecarCacheBytes = 64 << 20
	DefaultRetryBackoff      = time.Second
	DefaultMaxRetryBackoff   = 5 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.CacheMaxBytes <= 0 {
		c.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = DefaultChunkBytes
	}
	if c.UploadConcurrency <= 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	if c.ReaderThreads <= 0 {
		c.ReaderThreads = DefaultReaderThreads
	}
	if c.ReaderMaxPendingTasks <= 0 {
		c.ReaderMaxPendingTasks = DefaultReaderMaxPending
	}
	if c.Prices == nil {
		p := pricing.DefaultS3()
		c.Prices = &p
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = min(max(c.OrphanGrace, time.Minute), DefaultReconcileInterval)
	}
	if c.SidecarCacheBytes <= 0 {
		c.SidecarCacheBytes = DefaultSidecarCacheBytes
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		c.MaxRetryBackoff = max(DefaultMaxRetryBackoff, c.RetryBackoff)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first problem of c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.CacheDir == "":
		return errors.New("tier: no cache directory")
	case c.ChunkBytes > 1<<30:
		return fmt.Errorf("tier: chunk bytes %d above 1 GiB", c.ChunkBytes)
	case c.CacheMaxBytes < c.ChunkBytes:
		return fmt.Errorf("tier: cache max bytes %d below chunk bytes %d", c.CacheMaxBytes, c.ChunkBytes)
	case c.ReadaheadChunks < 0:
		return fmt.Errorf("tier: readahead chunks %d", c.ReadaheadChunks)
	case c.OrphanGrace < 0:
		return fmt.Errorf("tier: orphan grace %v", c.OrphanGrace)
	}
	return nil
}

// PartitionStatus is one partition as `strata tier ls` shows it.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// Local lists the local segments, as of the last management round (empty
	// if the manager has not seen the partition's log yet).
	Local []LocalSegmentStatus
	// Remote lists the remote index, every state included.
	Remote []RemoteSegmentStatus
	// LogStartOffset and HighestOffset are the remote tier's first offset and
	// last copied offset; -1 when nothing is copied.
	LogStartOffset, HighestOffset int64
	// CopyLagBytes and CopyLagSegments measure the closed local segments
	// not yet covered by a COPY_FINISHED entry (an upload in progress
	// included), as of the last Manage or round.
	CopyLagBytes    int64
	CopyLagSegments int
	// LastError is the last upload or delete error, empty after a success.
	LastError string
	// TopicCost is the partition's topic's cost, the same on each of its
	// partitions; nil where no running manager counted it (offline).
	TopicCost *TopicCost `json:",omitempty"`
}

// LocalSegmentStatus is a local segment.
type LocalSegmentStatus struct {
	BaseOffset, NextOffset, Size int64
	Active                       bool
	Uploaded                     bool // a COPY_FINISHED entry covers it
}

// RemoteSegmentStatus is a remote index entry.
type RemoteSegmentStatus struct {
	BaseOffset, EndOffset, Size int64
	State                       string // COPY_STARTED, COPY_FINISHED, DELETE_STARTED
	UploadID                    string
	CRC32C                      uint32
	MaxTimestamp                int64
	LogKey, SidecarKey          string
}
