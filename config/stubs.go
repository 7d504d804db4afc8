package config

// TEMPORARY: signatures the config implementation must provide. The helper that
// implements the package deletes this file and keeps the signatures.

// Broker is the broker's static configuration. Field comments name the key.
type Broker struct {
	BrokerID                     int32  // broker.id (default 0)
	Listeners                    string // listeners (default PLAINTEXT://127.0.0.1:9092)
	AdvertisedListeners          string // advertised.listeners (default: listeners)
	LogDirs                      string // log.dirs (default ./data); log.dir is accepted too
	NumPartitions                int32  // num.partitions (1)
	DefaultReplicationFactor     int16  // default.replication.factor (1)
	AutoCreateTopicsEnable       bool   // auto.create.topics.enable (true)
	DeleteTopicEnable            bool   // delete.topic.enable (true)
	LogRetentionCheckIntervalMs  int64  // log.retention.check.interval.ms (300000)
	MessageMaxBytes              int64  // message.max.bytes (1048588)
	SocketRequestMaxBytes        int64  // socket.request.max.bytes (104857600)
	GroupMinSessionTimeoutMs     int64  // group.min.session.timeout.ms (6000)
	GroupMaxSessionTimeoutMs     int64  // group.max.session.timeout.ms (1800000)
	GroupInitialRebalanceDelayMs int64  // group.initial.rebalance.delay.ms (3000)
	OffsetsRetentionMinutes      int64  // offsets.retention.minutes (10080)
	MetricsListen                string // metrics.listen: host:port of the Prometheus endpoint ("" = off)
	SendfileEnable               bool   // strata.sendfile.enable (true): false serves fetches by read+write

	// Remote storage (tiering).
	RemoteStorageURL                   string // remote.storage.url (default file://<log.dirs>/remote)
	RemoteLogManagerTaskIntervalMs     int64  // remote.log.manager.task.interval.ms (30000)
	RemoteLogManagerCopyMaxBytesPerSec int64  // remote.log.manager.copy.max.bytes.per.second (-1 = unlimited)
	RemoteFetchMaxWaitMs               int64  // remote.fetch.max.wait.ms (500)
	RemoteCacheDir                     string // remote.cache.dir (default <log.dirs>/remote-cache)
	RemoteCacheMaxBytes                int64  // remote.cache.max.bytes (1 GiB)
	RemoteChunkBytes                   int64  // remote.chunk.bytes (4 MiB)
	RemoteReadaheadChunks              int64  // remote.readahead.chunks (2)
	RemoteOrphanGraceMs                int64  // remote.orphan.grace.ms (3600000)

	// Topic defaults, with their broker-level keys (log.*). Resolve applies them.
	values map[string]string // every key as given, for DescribeConfigs of the broker
}

// Load builds the configuration from defaults, then the properties file at path
// (if non-empty), then STRATA_ environment variables (STRATA_LOG_RETENTION_MS for
// log.retention.ms), then sets ("key=value", from --set). An unknown key or a bad
// value is an error that names the key and what is allowed.
func Load(path string, environ []string, sets []string) (*Broker, error) { panic("todo") }

// Resolve returns a topic's effective configuration for the given overrides.
func (b *Broker) Resolve(overrides map[string]string) (Topic, error) { panic("todo") }

// ValidateTopicConfigs checks topic-level overrides (CreateTopics, AlterConfigs):
// each key known, each value valid. The error names the key and what is allowed.
func (b *Broker) ValidateTopicConfigs(overrides map[string]string) error { panic("todo") }

// DescribeTopic lists every topic-level config with value and source.
func (b *Broker) DescribeTopic(overrides map[string]string) []Entry { panic("todo") }

// DescribeBroker lists every broker config with value and source.
func (b *Broker) DescribeBroker() []Entry { panic("todo") }

// IsTopicConfig reports whether key is a topic-level config name.
func IsTopicConfig(key string) bool { panic("todo") }

// ListenAddress is the host:port of the PLAINTEXT listener in listeners.
func (b *Broker) ListenAddress() (string, error) { panic("todo") }

// Advertised is the host and port that Metadata answers with: advertised.listeners,
// else listeners, with a wildcard host replaced by 127.0.0.1. port 0 means "the
// port actually bound", which the broker fills in.
func (b *Broker) Advertised() (host string, port int32, err error) { panic("todo") }

// LogDir is the single directory of log.dirs.
func (b *Broker) LogDir() string { panic("todo") }
