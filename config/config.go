package config

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Broker is the broker's static configuration. Field comments name the key.
// Make one with Load or Default; fields may be changed afterwards (tests do),
// and Resolve reads the topic defaults from the fields.
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
	NumRecoveryThreadsPerDataDir int64  // num.recovery.threads.per.data.dir (1): partition logs opened at once at start-up
	OffsetsTopicNumPartitions    int64  // offsets.topic.num.partitions (50)
	OffsetsTopicSegmentBytes     int64  // offsets.topic.segment.bytes (104857600)

	// Connections and request memory.
	QueuedMaxRequestBytes        int64  // queued.max.request.bytes (512 MiB, at least socket.request.max.bytes; -1 = unbounded)
	MaxConnections               int64  // max.connections (2147483647)
	MaxConnectionsPerIP          int64  // max.connections.per.ip (2147483647)
	MaxConnectionsPerIPOverrides string // max.connections.per.ip.overrides ("": none); see ParseIPOverrides
	ConnectionsMaxIdleMs         int64  // connections.max.idle.ms (600000; -1 = never)
	SocketSendBufferBytes        int64  // socket.send.buffer.bytes (-1 = OS default)
	SocketReceiveBufferBytes     int64  // socket.receive.buffer.bytes (-1 = OS default)
	QuotaWindowNum               int64  // quota.window.num (11)
	QuotaWindowSizeSeconds       int64  // quota.window.size.seconds (1)

	// Remote storage (tiering).
	RemoteStorageURL                    string  // remote.storage.url (default file://<log.dirs>/remote)
	RemoteLogManagerTaskIntervalMs      int64   // remote.log.manager.task.interval.ms (30000)
	RemoteLogManagerCopyMaxBytesPerSec  int64   // remote.log.manager.copy.max.bytes.per.second (-1 = unlimited)
	RemoteLogCompactionMaxBytesPerSec   int64   // remote.log.compaction.max.bytes.per.second (Strata's; -1 = unlimited)
	RemoteFetchMaxWaitMs                int64   // remote.fetch.max.wait.ms (500)
	RemoteCacheDir                      string  // remote.cache.dir (default <log.dirs>/remote-cache)
	RemoteCacheMaxBytes                 int64   // remote.cache.max.bytes (1 GiB)
	RemoteCachePolicy                   string  // remote.cache.policy (s3fifo; lru: a benchmark knob)
	RemoteChunkBytes                    int64   // remote.chunk.bytes (4 MiB)
	RemoteReadaheadChunks               int64   // remote.readahead.chunks (2)
	RemoteLogReaderThreads              int64   // remote.log.reader.threads (10)
	RemoteOrphanGraceMs                 int64   // remote.orphan.grace.ms (3600000)
	RemoteStorageRequestTimeoutMs       int64   // remote.storage.request.timeout.ms (10000)
	RemoteLogManagerFetchMaxBytesPerSec int64   // remote.log.manager.fetch.max.bytes.per.second (-1 = unlimited)
	RemoteLogReaderMaxPendingTasks      int64   // remote.log.reader.max.pending.tasks (100)
	RemoteStoragePriceGBMonth           float64 // remote.storage.price.gb.month (0.023)
	RemoteStoragePricePutPer1000        float64 // remote.storage.price.put.per.1000 (0.005)
	RemoteStoragePriceGetPer1000        float64 // remote.storage.price.get.per.1000 (0.0004)
	RemoteStorageStallTimeoutMs         int64   // remote.storage.stall.timeout.ms (30000)

	// Topic defaults, with their broker-level keys (log.*). Resolve applies them.
	// MessageMaxBytes above is the default of max.message.bytes.
	LogCleanupPolicy               string // log.cleanup.policy (delete)
	CompressionType                string // compression.type (producer)
	LogRetentionMs                 int64  // log.retention.ms, else .minutes, else .hours (168 h); -1 = forever
	LogRetentionBytes              int64  // log.retention.bytes (-1 = no limit)
	LogSegmentBytes                int64  // log.segment.bytes (1073741824)
	LogRollMs                      int64  // log.roll.ms, else log.roll.hours (168 h)
	LogRollJitterMs                int64  // log.roll.jitter.ms, else log.roll.jitter.hours (0)
	LogIndexSizeMaxBytes           int64  // log.index.size.max.bytes (10485760)
	LogIndexIntervalBytes          int64  // log.index.interval.bytes (4096)
	LogFlushIntervalMessages       int64  // log.flush.interval.messages (MaxInt64)
	LogFlushIntervalMs             int64  // log.flush.interval.ms (unset: MaxInt64, never)
	LogSegmentDeleteDelayMs        int64  // log.segment.delete.delay.ms (60000)
	LogMessageTimestampType        string // log.message.timestamp.type (CreateTime)
	LogMessageTimestampBeforeMaxMs int64  // log.message.timestamp.before.max.ms (MaxInt64)
	LogMessageTimestampAfterMaxMs  int64  // log.message.timestamp.after.max.ms (MaxInt64)
	RemoteStorageEnable            bool   // remote.storage.enable (true)
	LogLocalRetentionMs            int64  // log.local.retention.ms (-2 = retention.ms)
	LogLocalRetentionBytes         int64  // log.local.retention.bytes (-2 = retention.bytes)

	// The log cleaner.
	LogCleanerEnable              bool    // log.cleaner.enable (true)
	LogCleanerThreads             int64   // log.cleaner.threads (1)
	LogCleanerDedupeBufferSize    int64   // log.cleaner.dedupe.buffer.size (128 MiB, all threads)
	LogCleanerIoMaxBytesPerSecond float64 // log.cleaner.io.max.bytes.per.second (Double.MAX_VALUE: unlimited)
	LogCleanerBackoffMs           int64   // log.cleaner.backoff.ms (15000)

	// A cluster (process.roles or etcd.endpoints set); Cluster() parses
	// and checks them. BrokerID above is node.id when that is set.
	ProcessRoles                        string // process.roles ("": a single node)
	ControllerQuorumVoters              string // controller.quorum.voters (id@host:port,...)
	ControllerQuorumBootstrapServers    string // controller.quorum.bootstrap.servers (host:port,...)
	ControllerListenerNames             string // controller.listener.names (CONTROLLER)
	EtcdEndpoints                       string // etcd.endpoints (http://host:port,...)
	MetadataLogDir                      string // metadata.log.dir (default: log.dirs)
	BrokerRack                          string // broker.rack ("")
	ReplicaSelectorClass                string // replica.selector.class ("": consumers read from the leader)
	EtcdLogLevel                        string // etcd.log.level (error)
	BrokerSessionTimeoutMs              int64  // broker.session.timeout.ms (9000)
	BrokerHeartbeatIntervalMs           int64  // broker.heartbeat.interval.ms (2000)
	OffsetsTopicReplicationFactor       int16  // offsets.topic.replication.factor (3)
	MinInsyncReplicas                   int64  // min.insync.replicas (1), the topic default
	UncleanLeaderElectionEnable         bool   // unclean.leader.election.enable (false), the topic default
	ReplicaLagTimeMaxMs                 int64  // replica.lag.time.max.ms (30000)
	ReplicaFetchMaxBytes                int64  // replica.fetch.max.bytes (1048576)
	ReplicaFetchMinBytes                int64  // replica.fetch.min.bytes (1)
	ReplicaFetchWaitMaxMs               int64  // replica.fetch.wait.max.ms (500)
	ReplicaFetchBackoffMs               int64  // replica.fetch.backoff.ms (1000)
	ReplicaFetchResponseMaxBytes        int64  // replica.fetch.response.max.bytes (10485760)
	NumReplicaFetchers                  int64  // num.replica.fetchers (1)
	ReplicaHighWatermarkCheckpointIntMs int64  // replica.high.watermark.checkpoint.interval.ms (5000)
	ControlledShutdownEnable            bool   // controlled.shutdown.enable (true)
	AutoLeaderRebalanceEnable           bool   // auto.leader.rebalance.enable (true)
	LeaderImbalancePerBrokerPercentage  int64  // leader.imbalance.per.broker.percentage (10)
	LeaderImbalanceCheckIntervalSeconds int64  // leader.imbalance.check.interval.seconds (300)

	values map[string]string // every key as given (canonical form), for DescribeConfigs of the broker
}

// brokerFields reads the keys that have a field, in canonical form; the
// others are read from values or their default.
var brokerFields = map[string]func(b *Broker) string{
	"broker.id":                           func(b *Broker) string { return i64(int64(b.BrokerID)) },
	"listeners":                           func(b *Broker) string { return b.Listeners },
	"advertised.listeners":                func(b *Broker) string { return b.AdvertisedListeners },
	"log.dirs":                            func(b *Broker) string { return b.LogDirs },
	"num.partitions":                      func(b *Broker) string { return i64(int64(b.NumPartitions)) },
	"default.replication.factor":          func(b *Broker) string { return i64(int64(b.DefaultReplicationFactor)) },
	"auto.create.topics.enable":           func(b *Broker) string { return strconv.FormatBool(b.AutoCreateTopicsEnable) },
	"delete.topic.enable":                 func(b *Broker) string { return strconv.FormatBool(b.DeleteTopicEnable) },
	"log.retention.check.interval.ms":     func(b *Broker) string { return i64(b.LogRetentionCheckIntervalMs) },
	"message.max.bytes":                   func(b *Broker) string { return i64(b.MessageMaxBytes) },
	"socket.request.max.bytes":            func(b *Broker) string { return i64(b.SocketRequestMaxBytes) },
	"group.min.session.timeout.ms":        func(b *Broker) string { return i64(b.GroupMinSessionTimeoutMs) },
	"group.max.session.timeout.ms":        func(b *Broker) string { return i64(b.GroupMaxSessionTimeoutMs) },
	"group.initial.rebalance.delay.ms":    func(b *Broker) string { return i64(b.GroupInitialRebalanceDelayMs) },
	"offsets.retention.minutes":           func(b *Broker) string { return i64(b.OffsetsRetentionMinutes) },
	"metrics.listen":                      func(b *Broker) string { return b.MetricsListen },
	"strata.sendfile.enable":              func(b *Broker) string { return strconv.FormatBool(b.SendfileEnable) },
	"num.recovery.threads.per.data.dir":   func(b *Broker) string { return i64(b.NumRecoveryThreadsPerDataDir) },
	"offsets.topic.num.partitions":        func(b *Broker) string { return i64(b.OffsetsTopicNumPartitions) },
	"offsets.topic.segment.bytes":         func(b *Broker) string { return i64(b.OffsetsTopicSegmentBytes) },
	"queued.max.request.bytes":            func(b *Broker) string { return i64(b.QueuedMaxRequestBytes) },
	"max.connections":                     func(b *Broker) string { return i64(b.MaxConnections) },
	"max.connections.per.ip":              func(b *Broker) string { return i64(b.MaxConnectionsPerIP) },
	"max.connections.per.ip.overrides":    func(b *Broker) string { return b.MaxConnectionsPerIPOverrides },
	"connections.max.idle.ms":             func(b *Broker) string { return i64(b.ConnectionsMaxIdleMs) },
	"socket.send.buffer.bytes":            func(b *Broker) string { return i64(b.SocketSendBufferBytes) },
	"socket.receive.buffer.bytes":         func(b *Broker) string { return i64(b.SocketReceiveBufferBytes) },
	"quota.window.num":                    func(b *Broker) string { return i64(b.QuotaWindowNum) },
	"quota.window.size.seconds":           func(b *Broker) string { return i64(b.QuotaWindowSizeSeconds) },
	"remote.storage.url":                  func(b *Broker) string { return b.RemoteStorageURL },
	"remote.log.manager.task.interval.ms": func(b *Broker) string { return i64(b.RemoteLogManagerTaskIntervalMs) },
	"remote.log.manager.copy.max.bytes.per.second": func(b *Broker) string {
		return i64(b.RemoteLogManagerCopyMaxBytesPerSec)
	},
	"remote.log.compaction.max.bytes.per.second": func(b *Broker) string {
		return i64(b.RemoteLogCompactionMaxBytesPerSec)
	},
	"remote.fetch.max.wait.ms":          func(b *Broker) string { return i64(b.RemoteFetchMaxWaitMs) },
	"remote.cache.dir":                  func(b *Broker) string { return b.RemoteCacheDir },
	"remote.cache.max.bytes":            func(b *Broker) string { return i64(b.RemoteCacheMaxBytes) },
	"remote.cache.policy":               func(b *Broker) string { return b.RemoteCachePolicy },
	"remote.chunk.bytes":                func(b *Broker) string { return i64(b.RemoteChunkBytes) },
	"remote.readahead.chunks":           func(b *Broker) string { return i64(b.RemoteReadaheadChunks) },
	"remote.log.reader.threads":         func(b *Broker) string { return i64(b.RemoteLogReaderThreads) },
	"remote.orphan.grace.ms":            func(b *Broker) string { return i64(b.RemoteOrphanGraceMs) },
	"remote.storage.request.timeout.ms": func(b *Broker) string { return i64(b.RemoteStorageRequestTimeoutMs) },
	"remote.storage.stall.timeout.ms":   func(b *Broker) string { return i64(b.RemoteStorageStallTimeoutMs) },
	"remote.log.manager.fetch.max.bytes.per.second": func(b *Broker) string {
		return i64(b.RemoteLogManagerFetchMaxBytesPerSec)
	},
	"remote.log.reader.max.pending.tasks": func(b *Broker) string { return i64(b.RemoteLogReaderMaxPendingTasks) },
	"remote.storage.price.gb.month":       func(b *Broker) string { return f64(b.RemoteStoragePriceGBMonth) },
	"remote.storage.price.put.per.1000":   func(b *Broker) string { return f64(b.RemoteStoragePricePutPer1000) },
	"remote.storage.price.get.per.1000":   func(b *Broker) string { return f64(b.RemoteStoragePriceGetPer1000) },
	"log.cleanup.policy":                  func(b *Broker) string { return b.LogCleanupPolicy },
	"compression.type":                    func(b *Broker) string { return b.CompressionType },
	"log.retention.ms":                    func(b *Broker) string { return i64(b.LogRetentionMs) },
	"log.retention.bytes":                 func(b *Broker) string { return i64(b.LogRetentionBytes) },
	"log.segment.bytes":                   func(b *Broker) string { return i64(b.LogSegmentBytes) },
	"log.roll.ms":                         func(b *Broker) string { return i64(b.LogRollMs) },
	"log.roll.jitter.ms":                  func(b *Broker) string { return i64(b.LogRollJitterMs) },
	"log.index.size.max.bytes":            func(b *Broker) string { return i64(b.LogIndexSizeMaxBytes) },
	"log.index.interval.bytes":            func(b *Broker) string { return i64(b.LogIndexIntervalBytes) },
	"log.flush.interval.messages":         func(b *Broker) string { return i64(b.LogFlushIntervalMessages) },
	"log.flush.interval.ms":               func(b *Broker) string { return i64(b.LogFlushIntervalMs) },
	"log.segment.delete.delay.ms":         func(b *Broker) string { return i64(b.LogSegmentDeleteDelayMs) },
	"log.message.timestamp.type":          func(b *Broker) string { return b.LogMessageTimestampType },
	"log.message.timestamp.before.max.ms": func(b *Broker) string { return i64(b.LogMessageTimestampBeforeMaxMs) },
	"log.message.timestamp.after.max.ms":  func(b *Broker) string { return i64(b.LogMessageTimestampAfterMaxMs) },
	"remote.storage.enable":               func(b *Broker) string { return strconv.FormatBool(b.RemoteStorageEnable) },
	"log.local.retention.ms":              func(b *Broker) string { return i64(b.LogLocalRetentionMs) },
	"log.local.retention.bytes":           func(b *Broker) string { return i64(b.LogLocalRetentionBytes) },
	"node.id":                             func(b *Broker) string { return i64(int64(b.BrokerID)) },
	"process.roles":                       func(b *Broker) string { return b.ProcessRoles },
	"controller.quorum.voters":            func(b *Broker) string { return b.ControllerQuorumVoters },
	"controller.quorum.bootstrap.servers": func(b *Broker) string { return b.ControllerQuorumBootstrapServers },
	"controller.listener.names":           func(b *Broker) string { return b.ControllerListenerNames },
	"etcd.endpoints":                      func(b *Broker) string { return b.EtcdEndpoints },
	"metadata.log.dir":                    func(b *Broker) string { return b.MetadataLogDir },
	"broker.rack":                         func(b *Broker) string { return b.BrokerRack },
	"replica.selector.class":              func(b *Broker) string { return b.ReplicaSelectorClass },
	"etcd.log.level":                      func(b *Broker) string { return b.EtcdLogLevel },
	"broker.session.timeout.ms":           func(b *Broker) string { return i64(b.BrokerSessionTimeoutMs) },
	"broker.heartbeat.interval.ms":        func(b *Broker) string { return i64(b.BrokerHeartbeatIntervalMs) },
	"offsets.topic.replication.factor":    func(b *Broker) string { return i64(int64(b.OffsetsTopicReplicationFactor)) },
	"min.insync.replicas":                 func(b *Broker) string { return i64(b.MinInsyncReplicas) },
	"unclean.leader.election.enable":      func(b *Broker) string { return strconv.FormatBool(b.UncleanLeaderElectionEnable) },
	"replica.lag.time.max.ms":             func(b *Broker) string { return i64(b.ReplicaLagTimeMaxMs) },
	"replica.fetch.max.bytes":             func(b *Broker) string { return i64(b.ReplicaFetchMaxBytes) },
	"replica.fetch.min.bytes":             func(b *Broker) string { return i64(b.ReplicaFetchMinBytes) },
	"replica.fetch.wait.max.ms":           func(b *Broker) string { return i64(b.ReplicaFetchWaitMaxMs) },
	"replica.fetch.backoff.ms":            func(b *Broker) string { return i64(b.ReplicaFetchBackoffMs) },
	"replica.fetch.response.max.bytes":    func(b *Broker) string { return i64(b.ReplicaFetchResponseMaxBytes) },
	"num.replica.fetchers":                func(b *Broker) string { return i64(b.NumReplicaFetchers) },
	"replica.high.watermark.checkpoint.interval.ms": func(b *Broker) string {
		return i64(b.ReplicaHighWatermarkCheckpointIntMs)
	},
	"controlled.shutdown.enable":              func(b *Broker) string { return strconv.FormatBool(b.ControlledShutdownEnable) },
	"auto.leader.rebalance.enable":            func(b *Broker) string { return strconv.FormatBool(b.AutoLeaderRebalanceEnable) },
	"leader.imbalance.per.broker.percentage":  func(b *Broker) string { return i64(b.LeaderImbalancePerBrokerPercentage) },
	"leader.imbalance.check.interval.seconds": func(b *Broker) string { return i64(b.LeaderImbalanceCheckIntervalSeconds) },
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func f64(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// EnvPrefix starts the environment variables Load reads.
const EnvPrefix = "STRATA_"

// EnvKey maps an environment variable name to its key: STRATA_LOG_RETENTION_MS
// is log.retention.ms. Strata's own keys (strata.*) may drop their prefix:
// STRATA_SENDFILE_ENABLE and STRATA_STRATA_SENDFILE_ENABLE both set
// strata.sendfile.enable.
func EnvKey(name string) string {
	key := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "_", ".")
	if _, ok := brokerByName[key]; !ok {
		if _, ok := brokerByName["strata."+key]; ok {
			return "strata." + key
		}
	}
	return key
}

// EnvName is the environment variable for key: log.retention.ms is STRATA_LOG_RETENTION_MS.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Default is the configuration with every key at its default.
func Default() *Broker {
	b, err := Load("", nil, nil)
	if err != nil {
		panic(err) // the defaults are valid; TestDefaults keeps them so
	}
	return b
}

// loader collects the keys as given, layer by layer.
type loader struct {
	given  map[string]string // canonical values
	origin map[string]string // where each was set
}

func (l *loader) set(key, raw, origin string) error {
	s, ok := brokerByName[key]
	if !ok {
		e := unknownBrokerKey(key)
		if !keyName.MatchString(key) {
			// Perhaps a value given without its key: it may be a secret.
			e = &Error{Msg: "an unknown key that is not a key name (not shown: it may be a value; keys look like log.retention.ms)"}
		}
		e.Origin = origin
		return e
	}
	v, err := s.parse(key, raw)
	if err != nil {
		if s.sensitive {
			hideValue(err, raw)
		}
		err.Origin = origin
		return err
	}
	l.given[key], l.origin[key] = v, origin
	return nil
}

// keyName is what a key looks like; anything else is not quoted in errors.
var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Hidden stands for a sensitive value in logs and printed configurations,
// as Kafka's "[hidden]".
const Hidden = "[hidden]"

// hideValue takes a sensitive value out of e: the message says why the
// value was refused without quoting it.
func hideValue(e *Error, raw string) {
	e.Value = Hidden
	for _, v := range []string{raw, strings.TrimSpace(raw)} {
		if v == "" {
			continue
		}
		e.Msg = strings.ReplaceAll(e.Msg, strconv.Quote(v), "the value ("+Hidden+": "+e.Key+" is sensitive)")
		if len(v) >= 6 { // shorter, it would match words of the message
			e.Msg = strings.ReplaceAll(e.Msg, v, Hidden)
		}
	}
}

func unknownBrokerKey(key string) *Error {
	msg := fmt.Sprintf("unknown key %q", key)
	if hint := brokerKeyHint(key); hint != "" {
		msg += " (" + hint + ")"
	}
	return &Error{Key: key, Msg: msg}
}

// brokerKeyHint suggests what an unknown broker key may have meant.
func brokerKeyHint(key string) string {
	if t, ok := topicByName[key]; ok && t.own != nil {
		return fmt.Sprintf("%s is a topic config with no broker default (as in Kafka)", key)
	}
	if t, ok := topicByName[key]; ok && t.synonyms[0] != key {
		return fmt.Sprintf("%s is a topic config; the broker default is %s", key, t.synonyms[0])
	}
	if near := suggest(key, brokerNames()); near != "" {
		return fmt.Sprintf("did you mean %q?", near)
	}
	return ""
}

// Load builds the configuration from defaults, then the properties file at path
// (if non-empty), then STRATA_ environment variables (STRATA_LOG_RETENTION_MS for
// log.retention.ms), then sets ("key=value", from --set). An unknown key or a bad
// value is an error that names the key and what is allowed; errors are *Error.
func Load(path string, environ []string, sets []string) (*Broker, error) {
	l := &loader{given: map[string]string{}, origin: map[string]string{}}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: cannot read %q: %w", path, err)
		}
		props, err := ParseProperties(string(data))
		if err != nil {
			return nil, fmt.Errorf("config: %s %w", path, err)
		}
		for _, p := range props {
			if err := l.set(p.Key, p.Value, fmt.Sprintf("%s line %d", path, p.Line)); err != nil {
				return nil, err
			}
		}
	}
	// Sorted, so two variables for one key apply in a fixed order.
	env := slices.Clone(environ)
	slices.Sort(env)
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key := EnvKey(name)
		if _, known := brokerByName[key]; !known {
			msg := fmt.Sprintf("unknown environment variable %s (key %q", name, key)
			if hint := brokerKeyHint(key); hint != "" {
				msg += "; " + hint
			}
			return nil, &Error{Key: key, Msg: msg + ")"}
		}
		if err := l.set(key, val, "environment variable "+name); err != nil {
			return nil, err
		}
	}
	for _, s := range sets {
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			if k := strings.TrimSpace(s); !keyName.MatchString(k) {
				return nil, &Error{Msg: "--set: want key=value (the argument is not shown: it may hold a value)", Origin: "--set"}
			}
			return nil, &Error{Key: strings.TrimSpace(s), Msg: fmt.Sprintf("--set %q: want key=value", s), Origin: "--set"}
		}
		if err := l.set(strings.TrimSpace(key), val, "--set"); err != nil {
			return nil, err
		}
	}
	return l.build()
}

// build turns the given keys into a Broker and checks what spans keys.
func (l *loader) build() (*Broker, error) {
	get := func(name string) string {
		if v, ok := l.given[name]; ok {
			return v
		}
		return brokerByName[name].def
	}
	num := func(name string) int64 {
		n, _ := strconv.ParseInt(get(name), 10, 64) // parse validated it
		return n
	}
	boolean := func(name string) bool { return get(name) == "true" }
	double := func(name string) float64 {
		f, _ := strconv.ParseFloat(get(name), 64)
		return f
	}
	isSet := func(name string) bool { _, ok := l.given[name]; return ok }
	// orMs is Kafka's "ms key, else coarser keys" rule; any negative is -1.
	orMs := func(ms string, coarse ...string) int64 {
		if isSet(ms) {
			return num(ms)
		}
		for i := 0; i < len(coarse); i += 2 {
			unit, _ := strconv.ParseInt(coarse[i+1], 10, 64)
			if isSet(coarse[i]) || i+2 == len(coarse) {
				if n := num(coarse[i]); n >= 0 {
					return n * unit
				}
				return -1
			}
		}
		return -1
	}

	b := &Broker{
		BrokerID:                     int32(num("broker.id")),
		Listeners:                    get("listeners"),
		AdvertisedListeners:          get("advertised.listeners"),
		LogDirs:                      get("log.dir"),
		NumPartitions:                int32(num("num.partitions")),
		DefaultReplicationFactor:     int16(num("default.replication.factor")),
		AutoCreateTopicsEnable:       boolean("auto.create.topics.enable"),
		DeleteTopicEnable:            boolean("delete.topic.enable"),
		LogRetentionCheckIntervalMs:  num("log.retention.check.interval.ms"),
		MessageMaxBytes:              num("message.max.bytes"),
		SocketRequestMaxBytes:        num("socket.request.max.bytes"),
		GroupMinSessionTimeoutMs:     num("group.min.session.timeout.ms"),
		GroupMaxSessionTimeoutMs:     num("group.max.session.timeout.ms"),
		GroupInitialRebalanceDelayMs: num("group.initial.rebalance.delay.ms"),
		OffsetsRetentionMinutes:      num("offsets.retention.minutes"),
		MetricsListen:                get("metrics.listen"),
		SendfileEnable:               boolean("strata.sendfile.enable"),
		NumRecoveryThreadsPerDataDir: num("num.recovery.threads.per.data.dir"),
		OffsetsTopicNumPartitions:    num("offsets.topic.num.partitions"),
		OffsetsTopicSegmentBytes:     num("offsets.topic.segment.bytes"),

		QueuedMaxRequestBytes:        num("queued.max.request.bytes"),
		MaxConnections:               num("max.connections"),
		MaxConnectionsPerIP:          num("max.connections.per.ip"),
		MaxConnectionsPerIPOverrides: get("max.connections.per.ip.overrides"),
		ConnectionsMaxIdleMs:         num("connections.max.idle.ms"),
		SocketSendBufferBytes:        num("socket.send.buffer.bytes"),
		SocketReceiveBufferBytes:     num("socket.receive.buffer.bytes"),
		QuotaWindowNum:               num("quota.window.num"),
		QuotaWindowSizeSeconds:       num("quota.window.size.seconds"),

		RemoteStorageURL:                    get("remote.storage.url"),
		RemoteLogManagerTaskIntervalMs:      num("remote.log.manager.task.interval.ms"),
		RemoteLogManagerCopyMaxBytesPerSec:  num("remote.log.manager.copy.max.bytes.per.second"),
		RemoteLogCompactionMaxBytesPerSec:   num("remote.log.compaction.max.bytes.per.second"),
		RemoteFetchMaxWaitMs:                num("remote.fetch.max.wait.ms"),
		RemoteCacheDir:                      get("remote.cache.dir"),
		RemoteCacheMaxBytes:                 num("remote.cache.max.bytes"),
		RemoteCachePolicy:                   get("remote.cache.policy"),
		RemoteChunkBytes:                    num("remote.chunk.bytes"),
		RemoteReadaheadChunks:               num("remote.readahead.chunks"),
		RemoteLogReaderThreads:              num("remote.log.reader.threads"),
		RemoteOrphanGraceMs:                 num("remote.orphan.grace.ms"),
		RemoteStorageRequestTimeoutMs:       num("remote.storage.request.timeout.ms"),
		RemoteLogManagerFetchMaxBytesPerSec: num("remote.log.manager.fetch.max.bytes.per.second"),
		RemoteLogReaderMaxPendingTasks:      num("remote.log.reader.max.pending.tasks"),
		RemoteStoragePriceGBMonth:           double("remote.storage.price.gb.month"),
		RemoteStoragePricePutPer1000:        double("remote.storage.price.put.per.1000"),
		RemoteStoragePriceGetPer1000:        double("remote.storage.price.get.per.1000"),
		RemoteStorageStallTimeoutMs:         num("remote.storage.stall.timeout.ms"),

		LogCleanupPolicy:               get("log.cleanup.policy"),
		CompressionType:                get("compression.type"),
		LogRetentionMs:                 orMs("log.retention.ms", "log.retention.minutes", i64(minuteMs), "log.retention.hours", i64(hourMs)),
		LogRetentionBytes:              num("log.retention.bytes"),
		LogSegmentBytes:                num("log.segment.bytes"),
		LogRollMs:                      orMs("log.roll.ms", "log.roll.hours", i64(hourMs)),
		LogRollJitterMs:                orMs("log.roll.jitter.ms", "log.roll.jitter.hours", i64(hourMs)),
		LogIndexSizeMaxBytes:           num("log.index.size.max.bytes"),
		LogIndexIntervalBytes:          num("log.index.interval.bytes"),
		LogFlushIntervalMessages:       num("log.flush.interval.messages"),
		LogFlushIntervalMs:             math.MaxInt64,
		LogSegmentDeleteDelayMs:        num("log.segment.delete.delay.ms"),
		LogMessageTimestampType:        get("log.message.timestamp.type"),
		LogMessageTimestampBeforeMaxMs: num("log.message.timestamp.before.max.ms"),
		LogMessageTimestampAfterMaxMs:  num("log.message.timestamp.after.max.ms"),
		RemoteStorageEnable:            boolean("remote.storage.enable"),
		LogLocalRetentionMs:            num("log.local.retention.ms"),
		LogLocalRetentionBytes:         num("log.local.retention.bytes"),

		LogCleanerEnable:           boolean("log.cleaner.enable"),
		LogCleanerThreads:          num("log.cleaner.threads"),
		LogCleanerDedupeBufferSize: num("log.cleaner.dedupe.buffer.size"),
		LogCleanerBackoffMs:        num("log.cleaner.backoff.ms"),

		ProcessRoles:                        get("process.roles"),
		ControllerQuorumVoters:              get("controller.quorum.voters"),
		ControllerQuorumBootstrapServers:    get("controller.quorum.bootstrap.servers"),
		ControllerListenerNames:             get("controller.listener.names"),
		EtcdEndpoints:                       get("etcd.endpoints"),
		MetadataLogDir:                      get("metadata.log.dir"),
		BrokerRack:                          get("broker.rack"),
		ReplicaSelectorClass:                get("replica.selector.class"),
		EtcdLogLevel:                        get("etcd.log.level"),
		BrokerSessionTimeoutMs:              num("broker.session.timeout.ms"),
		BrokerHeartbeatIntervalMs:           num("broker.heartbeat.interval.ms"),
		OffsetsTopicReplicationFactor:       int16(num("offsets.topic.replication.factor")),
		MinInsyncReplicas:                   num("min.insync.replicas"),
		UncleanLeaderElectionEnable:         boolean("unclean.leader.election.enable"),
		ReplicaLagTimeMaxMs:                 num("replica.lag.time.max.ms"),
		ReplicaFetchMaxBytes:                num("replica.fetch.max.bytes"),
		ReplicaFetchMinBytes:                num("replica.fetch.min.bytes"),
		ReplicaFetchWaitMaxMs:               num("replica.fetch.wait.max.ms"),
		ReplicaFetchBackoffMs:               num("replica.fetch.backoff.ms"),
		ReplicaFetchResponseMaxBytes:        num("replica.fetch.response.max.bytes"),
		NumReplicaFetchers:                  num("num.replica.fetchers"),
		ReplicaHighWatermarkCheckpointIntMs: num("replica.high.watermark.checkpoint.interval.ms"),
		ControlledShutdownEnable:            boolean("controlled.shutdown.enable"),
		AutoLeaderRebalanceEnable:           boolean("auto.leader.rebalance.enable"),
		LeaderImbalancePerBrokerPercentage:  num("leader.imbalance.per.broker.percentage"),
		LeaderImbalanceCheckIntervalSeconds: num("leader.imbalance.check.interval.seconds"),

		values: l.given,
	}
	if isSet("log.dirs") {
		b.LogDirs = get("log.dirs")
	}
	if isSet("node.id") && num("node.id") >= 0 {
		if isSet("broker.id") && num("broker.id") != num("node.id") {
			return nil, l.spanError("node.id", "broker.id",
				"%d differs from broker.id (%d): node.id is an alias of broker.id, set one of them (allowed: 0 to 2147483647)", num("node.id"), num("broker.id"))
		}
		b.BrokerID = int32(num("node.id"))
	}
	b.LogCleanerIoMaxBytesPerSecond, _ = strconv.ParseFloat(get("log.cleaner.io.max.bytes.per.second"), 64)
	if isSet("log.flush.interval.ms") {
		b.LogFlushIntervalMs = num("log.flush.interval.ms")
	}
	if b.RemoteStorageURL == "" {
		dir, err := filepath.Abs(filepath.Join(b.LogDir(), "remote"))
		if err != nil {
			return nil, fmt.Errorf("config: remote.storage.url: cannot make the default from log.dirs: %w", err)
		}
		b.RemoteStorageURL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
	}
	if b.RemoteCacheDir == "" {
		b.RemoteCacheDir = filepath.Join(b.LogDir(), "remote-cache")
	}

	if !isSet("queued.max.request.bytes") && b.QueuedMaxRequestBytes < b.SocketRequestMaxBytes {
		b.QueuedMaxRequestBytes = b.SocketRequestMaxBytes
	}

	// Checks that span keys.
	if q := b.QueuedMaxRequestBytes; q != -1 && q < b.SocketRequestMaxBytes {
		return nil, l.spanError("queued.max.request.bytes", "socket.request.max.bytes",
			"%d is below socket.request.max.bytes (%d): the largest request could never be read (allowed: -1, or %d to %d)",
			q, b.SocketRequestMaxBytes, b.SocketRequestMaxBytes, int64(math.MaxInt64))
	}
	if b.MaxConnectionsPerIP == 0 && strings.TrimSpace(b.MaxConnectionsPerIPOverrides) == "" {
		return nil, l.spanError("max.connections.per.ip", "max.connections.per.ip.overrides",
			"0 is allowed only with max.connections.per.ip.overrides set (allowed: 1 to 2147483647)")
	}
	if b.GroupMinSessionTimeoutMs > b.GroupMaxSessionTimeoutMs {
		return nil, l.spanError("group.min.session.timeout.ms", "group.max.session.timeout.ms",
			"%d is above group.max.session.timeout.ms (%d) (allowed: 0 to %d)", b.GroupMinSessionTimeoutMs, b.GroupMaxSessionTimeoutMs, b.GroupMaxSessionTimeoutMs)
	}
	if b.RemoteCacheMaxBytes < b.RemoteChunkBytes {
		return nil, l.spanError("remote.cache.max.bytes", "remote.chunk.bytes",
			"%d cannot hold one chunk of remote.chunk.bytes (%d) (allowed: %d to %d)", b.RemoteCacheMaxBytes, b.RemoteChunkBytes, b.RemoteChunkBytes, int64(math.MaxInt64))
	}
	if _, err := b.resolve(nil, l.origin); err != nil {
		return nil, err
	}
	if err := l.checkCluster(b); err != nil {
		return nil, err
	}
	return b, nil
}

// spanError reports a check between two keys under the one that was set
// (the first, if both or neither were).
func (l *loader) spanError(a, other, format string, args ...any) *Error {
	key := a
	if _, ok := l.given[a]; !ok {
		if _, ok := l.given[other]; ok {
			key = other
		}
	}
	e := valueError(a, l.given[a], format, args...)
	e.Key, e.Origin = key, l.origin[key]
	return e
}

// ListenAddress is the host:port of the PLAINTEXT listener in listeners.
func (b *Broker) ListenAddress() (string, error) {
	host, port, err := b.listener("PLAINTEXT")
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// listener is the host and port of the listener called name in listeners.
func (b *Broker) listener(name string) (string, int, error) {
	l := strings.TrimSpace(b.Listeners)
	if l == "" {
		l = defaultListeners
	}
	ls, why := parseListeners(l)
	if why != "" {
		return "", 0, &Error{Key: "listeners", Value: l, Msg: "listeners: " + why + " (allowed: " + brokerByName["listeners"].allowed + ")"}
	}
	for _, e := range ls {
		if strings.EqualFold(e.name, name) {
			return e.host, e.port, nil
		}
	}
	return "", 0, &Error{Key: "listeners", Value: l, Msg: fmt.Sprintf("listeners: %q has no %s listener (allowed: %s)", l, name, brokerByName["listeners"].allowed)}
}

// Advertised is the host and port that Metadata answers with: advertised.listeners,
// else listeners, with a wildcard host replaced by 127.0.0.1. port 0 means "the
// port actually bound", which the broker fills in.
func (b *Broker) Advertised() (host string, port int32, err error) {
	l := strings.TrimSpace(b.AdvertisedListeners)
	if l == "" {
		h, p, err := b.listener("PLAINTEXT")
		if err != nil {
			return "", 0, err
		}
		return advertisedHost(h), int32(p), nil
	}
	h, p, why := parseListener(l)
	if why != "" {
		return "", 0, &Error{Key: "advertised.listeners", Value: l, Msg: "advertised.listeners: " + why + " (allowed: PLAINTEXT://host:port)"}
	}
	return advertisedHost(h), int32(p), nil
}

// advertisedHost replaces a wildcard host by 127.0.0.1.
func advertisedHost(h string) string {
	switch h {
	case "", "0.0.0.0", "::":
		h = "127.0.0.1"
	}
	return h
}

// LogDir is the single directory of log.dirs.
func (b *Broker) LogDir() string {
	if d := strings.TrimSpace(b.LogDirs); d != "" {
		return d
	}
	return defaultLogDir
}

// brokerValue is a broker key's effective value, canonical.
func (b *Broker) brokerValue(name string) string {
	if f, ok := brokerFields[name]; ok {
		return f(b)
	}
	if v, ok := b.values[name]; ok {
		return v
	}
	return brokerByName[name].def
}

// DescribeBroker lists every broker config with value and source. Kafka keys
// that do not apply to one node appear only when set.
func (b *Broker) DescribeBroker() []Entry {
	var out []Entry
	for _, s := range brokerSpecs {
		_, set := b.values[s.name]
		if s.compat && !set {
			continue
		}
		e := Entry{
			Name:     s.name,
			Value:    b.brokerValue(s.name),
			Source:   SourceDefault,
			Type:     s.kind.typ(),
			ReadOnly: !s.dynamic, // see dynamic.go
			Doc:      s.doc,
		}
		if set {
			e.Source = SourceStaticBroker
		}
		if s.noEffect {
			e.Doc += " Accepted for compatibility, no effect."
		}
		if s.sensitive {
			// As Kafka answers a password: the value is never sent.
			e.Value, e.Sensitive = "", true
		}
		out = append(out, e)
	}
	return out
}

// WarnNoEffect logs one warning for each key set (in the file, the
// environment or --set; defaults do not count) that Strata accepts for
// compatibility with a Kafka server.properties but that changes nothing,
// naming the key and why. The broker calls it once at start-up.
func (b *Broker) WarnNoEffect(logger *slog.Logger) {
	for _, s := range brokerSpecs {
		if _, set := b.values[s.name]; !set || !s.noEffect {
			continue
		}
		why := s.doc
		if t, ok := topicByName[s.topic]; ok && !s.compat {
			why = t.doc // a topic default's doc says what it defaults, the topic key's why it does nothing
		}
		logger.Warn("config key has no effect in Strata, accepted for Kafka compatibility", "key", s.name, "value", b.values[s.name], "why", why)
	}
}

// String lists every broker config as DescribeBroker shows it, key=value,
// with sensitive values shown as [hidden]: a Broker may be printed or
// logged without leaking a secret.
func (b *Broker) String() string {
	var sb strings.Builder
	sb.WriteString("config.Broker{")
	for i, e := range b.DescribeBroker() {
		if i > 0 {
			sb.WriteByte(' ')
		}
		v := e.Value
		if e.Sensitive {
			v = Hidden
		}
		sb.WriteString(e.Name + "=" + strconv.Quote(v))
	}
	sb.WriteByte('}')
	return sb.String()
}

// GoString is String, so %#v hides secrets too.
func (b *Broker) GoString() string { return b.String() }

// LogValue is the keys that were set (properties file, environment, --set),
// in DescribeBroker order, with sensitive values shown as [hidden].
func (b *Broker) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, e := range b.DescribeBroker() {
		if e.Source != SourceStaticBroker {
			continue
		}
		v := e.Value
		if e.Sensitive {
			v = Hidden
		}
		attrs = append(attrs, slog.String(e.Name, v))
	}
	return slog.GroupValue(attrs...)
}

func brokerNames() []string {
	names := make([]string, len(brokerSpecs))
	for i, s := range brokerSpecs {
		names[i] = s.name
	}
	return names
}

// suggest returns the name closest to key within an edit distance of 2.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
