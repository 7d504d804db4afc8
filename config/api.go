package config

// This file is the package's contract with cmd/strata and the broker.

// Source says where a config value came from, with the DescribeConfigs codes.
type Source int8

const (
	SourceTopic          Source = 1 // DYNAMIC_TOPIC_CONFIG
	SourceDynamicBroker  Source = 2 // DYNAMIC_BROKER_CONFIG: AlterConfigs on this broker's id
	SourceDynamicDefault Source = 3 // DYNAMIC_DEFAULT_BROKER_CONFIG: AlterConfigs on the broker resource with an empty name
	SourceStaticBroker   Source = 4 // STATIC_BROKER_CONFIG: properties file, --set, STRATA_ env
	SourceDefault        Source = 5 // DEFAULT_CONFIG
)

// Type is a config's type, with the DescribeConfigs (v3+) codes.
type Type int8

const (
	TypeBoolean  Type = 1
	TypeString   Type = 2
	TypeInt      Type = 3
	TypeShort    Type = 4
	TypeLong     Type = 5
	TypeDouble   Type = 6
	TypeList     Type = 7
	TypeClass    Type = 8
	TypePassword Type = 9
)

// Entry is one config as DescribeConfigs shows it.
type Entry struct {
	Name      string
	Value     string
	Source    Source
	Type      Type
	ReadOnly  bool
	Sensitive bool
	Doc       string
}

// Topic is a topic's effective configuration: broker defaults with the topic's
// overrides applied. Field comments name the topic-level key.
type Topic struct {
	CleanupPolicy       string // cleanup.policy: delete | compact | compact,delete
	RetentionMs         int64  // retention.ms (-1 = forever)
	RetentionBytes      int64  // retention.bytes (-1 = no limit)
	SegmentBytes        int64  // segment.bytes
	SegmentMs           int64  // segment.ms
	SegmentIndexBytes   int64  // segment.index.bytes
	IndexIntervalBytes  int64  // index.interval.bytes
	MaxMessageBytes     int64  // max.message.bytes
	FlushMessages       int64  // flush.messages
	FlushMs             int64  // flush.ms
	TimestampType       string // message.timestamp.type: CreateTime | LogAppendTime
	RemoteStorageEnable bool   // remote.storage.enable
	LocalRetentionMs    int64  // local.retention.ms (-2 = retention.ms)
	LocalRetentionBytes int64  // local.retention.bytes (-2 = retention.bytes)

	// Added beyond the first contract, so the keys can take effect where
	// their consumers apply them.
	SegmentJitterMs             int64 // segment.jitter.ms
	FileDeleteDelayMs           int64 // file.delete.delay.ms
	MessageTimestampBeforeMaxMs int64 // message.timestamp.before.max.ms
	MessageTimestampAfterMaxMs  int64 // message.timestamp.after.max.ms

	// KIP-950 (topic keys only, default false).
	RemoteLogCopyDisable     bool // remote.log.copy.disable
	RemoteLogDeleteOnDisable bool // remote.log.delete.on.disable

	// compression.type: producer (batches stored as produced), or the codec
	// every batch is stored in: uncompressed, gzip, snappy, lz4, zstd.
	CompressionType      string
	CompressionGzipLevel int64 // compression.gzip.level (-1 = 6, or 1 to 9)
	CompressionZstdLevel int64 // compression.zstd.level (-131072 to 22)
	// Compaction (cleanup.policy compact).
	DeleteRetentionMs      int64   // delete.retention.ms
	MinCompactionLagMs     int64   // min.compaction.lag.ms
	MaxCompactionLagMs     int64   // max.compaction.lag.ms
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio
	// Replication (a cluster; a single node is one replica).
	MinInsyncReplicas           int64 // min.insync.replicas
	UncleanLeaderElectionEnable bool  // unclean.leader.election.enable
}

// Compact reports whether cleanup.policy includes compact.
func (t Topic) Compact() bool { return policyHas(t.CleanupPolicy, "compact") }

// Delete reports whether cleanup.policy includes delete: retention.ms and
// retention.bytes apply only then (a compact-only log keeps every key).
func (t Topic) Delete() bool { return policyHas(t.CleanupPolicy, "delete") }
