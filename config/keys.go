package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/pricing"
)

// kind is how a key's value parses; each maps to a DescribeConfigs Type.
type kind uint8

const (
	kindInt   kind = iota // 32-bit
	kindShort             // 16-bit
	kindLong              // 64-bit
	kindBool
	kindString
	kindList // comma-separated
	kindDouble
)

func (k kind) typ() Type {
	return [...]Type{TypeInt, TypeShort, TypeLong, TypeBoolean, TypeString, TypeList, TypeDouble}[k]
}

// spec describes one key: how it parses, what it allows, its default.
type spec struct {
	name     string
	kind     kind
	def      string // default, already in canonical form
	null     bool   // Kafka's null default: unset means "derived from another key"
	min, max int64  // integers (set by the constructors to the type's range)
	minF     float64
	maxF     float64
	allowed  string            // replaces the generated "allowed" text
	oneOf    []string          // strings and list elements (case-sensitive, as in Kafka)
	refuse   map[string]string // value -> why Strata does not support it
	check    func(v string) string
	doc      string
	noEffect bool   // accepted for Kafka compatibility, changes nothing
	compat   bool   // a Kafka key that does not apply to one node (listed in doc.go)
	topic    string // the topic key this broker key is the default of
	dynamic  bool   // a dynamic broker config: AlterConfigs on the broker may change it (dynamic.go)
	// sensitive marks a value that may hold a secret: DescribeConfigs
	// answers it as null with IsSensitive, and logs and errors hide it.
	sensitive bool
}

// Error is a configuration error: an unknown key or a bad value. The message
// names the key and what is allowed.
type Error struct {
	Key    string // the key (or, for an unknown STRATA_ variable, the key it maps to)
	Value  string // the value as given ("[hidden]" for a sensitive key); empty for an unknown key
	Msg    string // the message without the "config: " prefix
	Origin string // where it was set: "server.properties line 3", "environment variable STRATA_X", "--set"; empty for topic configs
}

func (e *Error) Error() string {
	if e.Origin == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Msg + "; from " + e.Origin
}

func valueError(key, value, format string, args ...any) *Error {
	return &Error{Key: key, Value: value, Msg: key + ": " + fmt.Sprintf(format, args...)}
}

// allowedText is what an error message offers as allowed.
func (s *spec) allowedText() string {
	switch {
	case s.allowed != "":
		return s.allowed
	case s.kind == kindBool:
		return "true, false"
	case s.kind == kindDouble:
		return fmt.Sprintf("%g to %g", s.minF, s.maxF)
	case s.kind == kindString || s.kind == kindList:
		return strings.Join(s.oneOf, ", ")
	}
	return fmt.Sprintf("%d to %d", s.min, s.max)
}

// parse validates a raw value for key name (s.name, or the topic key that s
// validates) and returns it in canonical form. Values are trimmed first, as
// Kafka's ConfigDef does.
func (s *spec) parse(name, raw string) (string, *Error) {
	v := strings.TrimSpace(raw)
	bad := func(format string, args ...any) (string, *Error) {
		return "", valueError(name, raw, format+" (allowed: %s)", append(args, s.allowedText())...)
	}
	switch s.kind {
	case kindInt, kindShort, kindLong:
		bits := map[kind]int{kindInt: 32, kindShort: 16, kindLong: 64}[s.kind]
		n, err := strconv.ParseInt(v, 10, bits)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return bad("%s is out of range", v)
			}
			return bad("%q is not an integer", raw)
		}
		if n < s.min || n > s.max {
			return bad("%d is out of range", n)
		}
		v = strconv.FormatInt(n, 10)
	case kindDouble:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) {
			return bad("%q is not a number", raw)
		}
		if f < s.minF || f > s.maxF {
			return bad("%s is out of range", v)
		}
		v = strconv.FormatFloat(f, 'g', -1, 64)
	case kindBool:
		switch strings.ToLower(v) {
		case "true":
			v = "true"
		case "false":
			v = "false"
		default:
			return bad("%q is not a boolean", raw)
		}
	case kindString:
		if why, ok := s.refuse[v]; ok {
			return bad("%q is not supported: %s", v, why)
		}
		if s.oneOf != nil && !contains(s.oneOf, v) {
			return bad("%q is not allowed", v)
		}
	case kindList:
		var elems []string
		if v != "" {
			for e := range strings.SplitSeq(v, ",") {
				e = strings.TrimSpace(e)
				if why, ok := s.refuse[e]; ok {
					return bad("%q is not supported: %s", e, why)
				}
				if s.oneOf != nil && !contains(s.oneOf, e) {
					return bad("%q is not allowed", e)
				}
				elems = append(elems, e)
			}
		}
		if len(elems) == 0 && s.oneOf != nil {
			return bad("an empty list is not allowed")
		}
		v = strings.Join(elems, ",")
	}
	if s.check != nil {
		if why := s.check(v); why != "" {
			return bad("%s", why)
		}
	}
	return v, nil
}

func contains(list []string, v string) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

// Constructors keep the tables below readable.

func intKey(name string, def, min, max int64, doc string) *spec {
	return &spec{name: name, kind: kindInt, def: strconv.FormatInt(def, 10), min: min, max: max, doc: doc}
}

func longKey(name string, def, min int64, doc string) *spec {
	return &spec{name: name, kind: kindLong, def: strconv.FormatInt(def, 10), min: min, max: math.MaxInt64, doc: doc}
}

// priceKey is a price in dollars, 0 to 1e9.
func priceKey(name string, def float64, doc string) *spec {
	return &spec{name: name, kind: kindDouble, def: strconv.FormatFloat(def, 'g', -1, 64), minF: 0, maxF: 1e9, doc: doc}
}

func boolKey(name string, def bool, doc string) *spec {
	return &spec{name: name, kind: kindBool, def: strconv.FormatBool(def), doc: doc}
}

func stringKey(name, def, doc string) *spec {
	return &spec{name: name, kind: kindString, def: def, doc: doc}
}

// Option-style modifiers.

func (s *spec) nullDefault() *spec          { s.null, s.def = true, ""; return s }
func (s *spec) allow(text string) *spec     { s.allowed = text; return s }
func (s *spec) defaults(topic string) *spec { s.topic = topic; return s }
func (s *spec) ineffective() *spec          { s.noEffect = true; return s }
func (s *spec) compatOnly() *spec           { s.noEffect, s.compat = true, true; return s }
func (s *spec) secret() *spec               { s.sensitive = true; return s }
func (s *spec) dynamicBroker() *spec        { s.dynamic = true; return s }
func (s *spec) checked(f func(string) string) *spec {
	s.check = f
	return s
}

const (
	maxInt32 = math.MaxInt32
	maxInt64 = math.MaxInt64
	hourMs   = 3600000
	minuteMs = 60000
)

// Defaults named in several places.
const (
	defaultListeners = "PLAINTEXT://127.0.0.1:9092"
	defaultLogDir    = "./data"

	// defaultQueuedMaxRequestBytes bounds request memory where Kafka's -1 does
	// not (doc.go says why); raised to socket.request.max.bytes if that is larger.
	defaultQueuedMaxRequestBytes = 512 << 20
)

// brokerSpecs lists every broker key, in the order DescribeBroker and doc.go
// show them.
var brokerSpecs = []*spec{
	// Server.
	intKey("broker.id", 0, 0, maxInt32, "The id of this broker in Metadata responses."),
	intKey("node.id", -1, -1, maxInt32, "KRaft's name of broker.id (an alias); -1 (unset): broker.id. Setting both to different values is an error.").
		allow("0 to 2147483647 (-1: unset, broker.id applies)").nullDefault(),
	stringKey("listeners", defaultListeners, "The client listener PLAINTEXT://host:port, and on a controller node the listener named by controller.listener.names (CONTROLLER://host:port), comma-separated; an empty host or 0.0.0.0 binds every interface, port 0 a free port.").
		allow("PLAINTEXT://host:port, with CONTROLLER://host:port beside it on a controller").checked(checkListeners),
	stringKey("advertised.listeners", "", "The listener Metadata answers with; empty: listeners, with a wildcard host replaced by 127.0.0.1.").
		allow("PLAINTEXT://host:port, or empty").checked(checkListener),
	stringKey("log.dirs", "", "The data directory (one only). Overrides log.dir.").
		allow("a single directory").nullDefault().checked(checkLogDir),
	stringKey("log.dir", defaultLogDir, "The data directory if log.dirs is not set.").
		allow("a single directory").checked(checkLogDir),
	intKey("num.partitions", 1, 1, maxInt32, "Partitions of an auto-created topic, or of CreateTopics with -1."),
	{name: "default.replication.factor", kind: kindShort, def: "1", min: 1, max: math.MaxInt16,
		doc: "Replication factor of auto-created topics and of CreateTopics with -1; a single node (no process.roles, no etcd.endpoints) allows 1 only."},
	boolKey("auto.create.topics.enable", true, "Create a topic on Metadata or Produce for an unknown name."),
	boolKey("delete.topic.enable", true, "Allow DeleteTopics."),
	longKey("log.retention.check.interval.ms", 300000, 1, "How often retention (local and remote) runs."),
	intKey("message.max.bytes", 1048588, 0, maxInt32, "Largest record batch accepted; the default of the topic key max.message.bytes.").defaults("max.message.bytes"),
	intKey("socket.request.max.bytes", 104857600, 1, maxInt32, "Largest request accepted; a larger request closes the connection."),
	intKey("group.min.session.timeout.ms", 6000, 0, maxInt32, "Smallest session timeout a group member may ask for."),
	intKey("group.max.session.timeout.ms", 1800000, 0, maxInt32, "Largest session timeout a group member may ask for."),
	intKey("group.initial.rebalance.delay.ms", 3000, 0, maxInt32, "How long the first rebalance of an empty group waits for more members."),
	intKey("offsets.retention.minutes", 10080, 1, maxInt32, "How long committed offsets of an empty group are kept."),
	stringKey("metrics.listen", "", "host:port of the Prometheus /metrics endpoint; empty: off.").
		allow("host:port, or empty").checked(checkHostPort),
	boolKey("strata.sendfile.enable", true, "Serve fetches with sendfile; false copies through user space (read+write)."),
	intKey("num.recovery.threads.per.data.dir", 1, 1, maxInt32, "Partition logs opened (and, after an unclean shutdown, recovered) at once at start-up."),
	intKey("offsets.topic.num.partitions", 50, 1, 100000, "Partitions of __consumer_offsets when it is created; an existing topic keeps its count."),
	intKey("offsets.topic.segment.bytes", 104857600, 14, maxInt32, "segment.bytes of __consumer_offsets when it is created."),

	// Connections and request memory.
	longKey("queued.max.request.bytes", defaultQueuedMaxRequestBytes, -1, "Bytes of requests read but not yet handled, all connections together; a connection waits for room before it reads more; -1: unbounded (Kafka's default).").
		allow("-1 (unbounded), or socket.request.max.bytes to 9223372036854775807"),
	intKey("max.connections", maxInt32, 0, maxInt32, "Open client connections; a connection beyond it is closed at accept."),
	intKey("max.connections.per.ip", maxInt32, 0, maxInt32, "Open connections from one IP address; a connection beyond it is closed at accept."),
	stringKey("max.connections.per.ip.overrides", "", "Per-IP limits that replace max.connections.per.ip: host:n,host2:n.").
		allow("host:n,host2:n with n from 0 to 2147483647, or empty").checked(checkIPOverrides),
	longKey("connections.max.idle.ms", 600000, -1, "A connection with no request for this long is closed; -1: never.").
		allow("-1 (never), or 1 to 9223372036854775807").checked(func(v string) string {
		if v == "0" {
			return "0 would close every connection as soon as it is idle"
		}
		return ""
	}),
	intKey("socket.send.buffer.bytes", -1, -1, maxInt32, "SO_SNDBUF of client connections; -1: the OS default, which Linux autotunes (Kafka: 102400)."),
	intKey("socket.receive.buffer.bytes", -1, -1, maxInt32, "SO_RCVBUF of the listener and client connections; -1: the OS default, which Linux autotunes (Kafka: 102400)."),

	// Client quotas (KIP-13, KIP-124, KIP-546): the rate window.
	intKey("quota.window.num", 11, 1, maxInt32, "Samples a client quota's rate is measured over."),
	intKey("quota.window.size.seconds", 1, 1, maxInt32, "Seconds each sample of a client quota's rate spans."),

	// Remote storage.
	stringKey("remote.storage.url", "", "The object store: file://<dir>, s3://bucket/prefix, ... ; default file://<log dir>/remote (absolute).").
		allow("a URL with a scheme, or empty for the default").checked(checkURL).secret(),
	longKey("remote.log.manager.task.interval.ms", 30000, 1, "How often the tiering manager looks for segments to copy and delete."),
	longKey("remote.log.manager.copy.max.bytes.per.second", -1, -1, "Upload bandwidth limit, all uploads together (KIP-956); -1: unlimited. Dynamic: AlterConfigs on the broker changes it at once.").
		allow("-1 (unlimited) or 1 to 9223372036854775807").checked(func(v string) string {
		if v == "0" {
			return "0 would stop uploads"
		}
		return ""
	}).dynamicBroker(),
	longKey("remote.log.compaction.max.bytes.per.second", -1, -1, "Remote compaction's bandwidth limit, bytes downloaded and uploaded, all partitions together (Strata's own key); -1: unlimited.").
		allow("-1 (unlimited) or 1 to 9223372036854775807").checked(func(v string) string {
		if v == "0" {
			return "0 would stop remote compaction"
		}
		return ""
	}),
	intKey("remote.fetch.max.wait.ms", 500, 1, maxInt32, "Longest a fetch served from the remote tier waits for its data."),
	stringKey("remote.cache.dir", "", "Directory of the remote chunk cache; default <log dir>/remote-cache."),
	longKey("remote.cache.max.bytes", 1<<30, 1, "Bound of the cached chunks on disk (downloads in progress and up to 4 evicted files kept for reuse come on top); at least remote.chunk.bytes."),
	{name: "remote.cache.policy", kind: kindString, def: "s3fifo", oneOf: []string{"s3fifo", "lru"},
		doc: "Eviction policy of the chunk cache: s3fifo, or lru (the policy before S3-FIFO, a benchmark and diagnostic knob to measure S3-FIFO against)."},
	{name: "remote.chunk.bytes", kind: kindLong, def: strconv.Itoa(4 << 20), min: 1, max: 1 << 30,
		doc: "Size of a ranged read from the object store, and of a cache entry."},
	longKey("remote.readahead.chunks", 2, 0, "Chunks fetched ahead of a sequential remote reader."),
	intKey("remote.log.reader.threads", 10, 1, 4096, "Read-ahead downloads from the remote tier running at once, for all partitions together (Kafka's name and default)."),
	longKey("remote.orphan.grace.ms", 3600000, 0, "Age an object without an index entry must reach before the reconciler deletes it; the reconciler runs that often (at least every hour, at most every minute)."),
	intKey("remote.storage.request.timeout.ms", 10000, 1, maxInt32, "Longest one attempt of a small object-store call (HEAD, DELETE, the start of a GET, a LIST's wait for the store) may take; it is then retried."),
	intKey("remote.storage.stall.timeout.ms", 30000, 1, maxInt32, "Longest an object-store upload or download may go without moving a byte (an upload's wait for the answer included) before the attempt fails and is retried; never bounds a transfer that keeps moving."),
	longKey("remote.log.manager.fetch.max.bytes.per.second", -1, -1, "Download bandwidth limit of remote reads (chunks, sidecars, read-ahead), all partitions together (KIP-956); -1: unlimited. Dynamic: AlterConfigs on the broker changes it at once.").
		allow("-1 (unlimited) or 1 to 9223372036854775807").checked(func(v string) string {
		if v == "0" {
			return "0 would stop remote reads"
		}
		return ""
	}).dynamicBroker(),
	intKey("remote.log.reader.max.pending.tasks", 100, 1, maxInt32, "Remote reads in progress at once; a fetch partition beyond it gets KAFKA_STORAGE_ERROR (retriable) at once instead of waiting (Kafka's name and default)."),
	priceKey("remote.storage.price.gb.month", pricing.S3GBMonth, "Dollars per GB-month stored in the object store, for the tier's cost metrics (S3 Standard list price)."),
	priceKey("remote.storage.price.put.per.1000", pricing.S3PutPer1000, "Dollars per 1,000 PUT-class object-store requests, for the tier's cost metrics."),
	priceKey("remote.storage.price.get.per.1000", pricing.S3GetPer1000, "Dollars per 1,000 GET-class object-store requests, for the tier's cost metrics."),

	// A cluster (process.roles or etcd.endpoints set): KRaft's keys, with
	// etcd as the quorum (doc.go, "A cluster").
	{name: "process.roles", kind: kindList, def: "", allowed: "broker, controller, broker,controller, or empty (a single node)",
		check: checkRoles, doc: "The roles of this node: broker serves clients and replicas, controller runs an etcd member of the quorum; empty: a single node."},
	{name: "controller.quorum.voters", kind: kindList, def: "", allowed: "id@host:port,... with distinct ids, or empty",
		check: checkVoters, doc: "The controller nodes: id@host:port of each one's CONTROLLER listener (its etcd peer URL; its etcd client URL is port + 1)."},
	{name: "controller.quorum.bootstrap.servers", kind: kindList, def: "", allowed: "host:port,... of controller listeners, or empty",
		check: checkHostPorts, doc: "Controller listeners a broker-only node joins through (the etcd client at each port + 1), instead of controller.quorum.voters."},
	{name: "controller.listener.names", kind: kindList, def: "CONTROLLER", allowed: "listener names, such as CONTROLLER",
		check: checkListenerNames, doc: "The names in listeners of the controller's listener."},
	{name: "etcd.endpoints", kind: kindList, def: "", allowed: "http://host:port,... or https://host:port,..., or empty",
		check: checkEndpoints, doc: "Client URLs of an external etcd cluster that replaces the embedded one (Strata); every broker then campaigns to be the controller."},
	{name: "etcd.log.level", kind: kindString, def: "error", oneOf: []string{"debug", "info", "warn", "error"},
		allowed: "debug, info, warn or error",
		doc:     "How much the embedded etcd member logs, to etcd.log beside its data (<metadata.log.dir or log.dirs>/etcd.log): error by default; info shows its raft elections and peer connections."},
	stringKey("metadata.log.dir", "", "Where a controller node's etcd member keeps its data (<dir>/etcd); empty: log.dirs. Kafka's key for the KRaft metadata log: put it on another disk than log.dirs so a replaced data disk leaves the member intact."),
	stringKey("broker.rack", "", "The rack of this broker: replica assignment places the replicas of a partition in different racks."),
	{name: "replica.selector.class", kind: kindString, def: "", oneOf: []string{"", RackAwareReplicaSelector, "RackAwareReplicaSelector"},
		allowed: "empty (consumers read from the leader), " + RackAwareReplicaSelector + " or RackAwareReplicaSelector",
		doc:     "How a partition's leader picks the replica a consumer reads from (KIP-392): empty, the leader; RackAwareReplicaSelector, an in-sync replica in the consumer's client.rack when the leader is not in it."},
	intKey("broker.session.timeout.ms", 9000, 1, maxInt32, "A broker whose registration lease is not renewed for this long is fenced and leaves every ISR."),
	intKey("broker.heartbeat.interval.ms", 2000, 1, maxInt32, "How often a broker renews its registration lease; below broker.session.timeout.ms."),
	{name: "offsets.topic.replication.factor", kind: kindShort, def: "3", min: 1, max: math.MaxInt16,
		doc: "Replication factor of __consumer_offsets at its creation; lowered, with a warning, to the live brokers when there are fewer."},
	longKey("replica.lag.time.max.ms", 30000, 1, "A follower that has not caught up to the leader's end for this long leaves the ISR."),
	intKey("replica.fetch.max.bytes", 1048576, 0, maxInt32, "Bytes a follower asks for per partition in a fetch."),
	intKey("replica.fetch.min.bytes", 1, 1, maxInt32, "Bytes a follower's fetch waits for."),
	intKey("replica.fetch.wait.max.ms", 500, 0, maxInt32, "Longest a follower's fetch waits on the leader; at most replica.lag.time.max.ms."),
	intKey("replica.fetch.backoff.ms", 1000, 0, maxInt32, "How long a follower waits before fetching a partition again after its leader answered an error."),
	intKey("replica.fetch.response.max.bytes", 10485760, 0, maxInt32, "Bytes a follower asks for in a whole fetch response."),
	intKey("num.replica.fetchers", 1, 1, maxInt32, "Fetcher connections a follower opens to each leader broker."),
	longKey("replica.high.watermark.checkpoint.interval.ms", 5000, 1, "How often each partition's high watermark is written to disk."),
	boolKey("controlled.shutdown.enable", true, "On SIGTERM, move this broker's leaderships away before it stops."),
	boolKey("auto.leader.rebalance.enable", true, "The controller moves leaderships back to each partition's preferred replica (the first of its assignment) when a broker's share of them is off by more than leader.imbalance.per.broker.percentage."),
	intKey("leader.imbalance.per.broker.percentage", 10, 0, 100, "The share of a broker's preferred partitions it may not lead before the controller rebalances them."),
	intKey("leader.imbalance.check.interval.seconds", 300, 1, maxInt32, "How often the controller checks the leader imbalance."),

	// Topic defaults.
	{name: "log.cleanup.policy", kind: kindList, def: "delete", oneOf: []string{"delete", "compact"},
		doc: "Default cleanup.policy."},
	{name: "compression.type", kind: kindString, def: "producer", oneOf: []string{"uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"},
		doc: "Default compression.type: producer stores batches as produced; a codec rewrites every batch in another codec on append.", topic: "compression.type"},
	intKey("compression.gzip.level", -1, -1, 9, "Default compression.gzip.level (KIP-390).").
		allow("-1 (the default, 6), or 1 to 9").checked(func(v string) string {
		if v == "0" {
			return "0 is not a gzip level"
		}
		return ""
	}),
	intKey("compression.zstd.level", 3, -131072, 22, "Default compression.zstd.level (KIP-390)."),
	longKey("log.cleaner.delete.retention.ms", 86400000, 0, "Default delete.retention.ms."),
	longKey("log.segment.delete.delay.ms", 60000, 0, "Default file.delete.delay.ms."),
	longKey("log.flush.interval.messages", maxInt64, 1, "Default flush.messages."),
	longKey("log.flush.interval.ms", 0, 0, "Default flush.ms; unset: never (9223372036854775807).").nullDefault(),
	intKey("log.index.interval.bytes", 4096, 0, maxInt32, "Default index.interval.bytes."),
	{name: "log.message.timestamp.type", kind: kindString, def: "CreateTime", oneOf: []string{"CreateTime", "LogAppendTime"},
		doc: "Default message.timestamp.type."},
	longKey("log.message.timestamp.before.max.ms", maxInt64, 0, "Default message.timestamp.before.max.ms."),
	longKey("log.message.timestamp.after.max.ms", maxInt64, 0, "Default message.timestamp.after.max.ms."),
	intKey("min.insync.replicas", 1, 1, maxInt32, "Default min.insync.replicas."),
	boolKey("log.preallocate", false, "Default preallocate.").ineffective(),
	longKey("log.retention.bytes", -1, -1, "Default retention.bytes; -1: no limit."),
	longKey("log.retention.ms", 0, -1, "Default retention.ms; unset: log.retention.minutes, else log.retention.hours. -1: forever.").nullDefault(),
	intKey("log.retention.minutes", 0, -1, maxInt32, "Default retention.ms in minutes, if log.retention.ms is unset.").nullDefault(),
	intKey("log.retention.hours", 168, -1, maxInt32, "Default retention.ms in hours, if log.retention.ms and log.retention.minutes are unset."),
	intKey("log.segment.bytes", 1073741824, 14, maxInt32, "Default segment.bytes."),
	intKey("log.index.size.max.bytes", 10485760, 4, maxInt32, "Default segment.index.bytes."),
	longKey("log.roll.jitter.ms", 0, 0, "Default segment.jitter.ms; unset: log.roll.jitter.hours.").nullDefault(),
	intKey("log.roll.jitter.hours", 0, 0, maxInt32, "Default segment.jitter.ms in hours, if log.roll.jitter.ms is unset."),
	longKey("log.roll.ms", 0, 1, "Default segment.ms; unset: log.roll.hours.").nullDefault(),
	intKey("log.roll.hours", 168, 1, maxInt32, "Default segment.ms in hours, if log.roll.ms is unset."),
	boolKey("unclean.leader.election.enable", false, "Default unclean.leader.election.enable."),
	boolKey("remote.storage.enable", true, "Default remote.storage.enable: tier closed segments to the object store (on by default in Strata)."),
	longKey("log.local.retention.ms", -2, -2, "Default local.retention.ms; -2: the topic's retention.ms."),
	longKey("log.local.retention.bytes", -2, -2, "Default local.retention.bytes; -2: the topic's retention.bytes."),
	longKey("log.cleaner.max.compaction.lag.ms", maxInt64, 1, "Default max.compaction.lag.ms."),
	longKey("log.cleaner.min.compaction.lag.ms", 0, 0, "Default min.compaction.lag.ms."),
	{name: "log.cleaner.min.cleanable.ratio", kind: kindDouble, def: "0.5", minF: 0, maxF: 1,
		doc: "Default min.cleanable.dirty.ratio."},

	// The log cleaner (compaction).
	boolKey("log.cleaner.enable", true, "Run the log cleaner: compact the topics whose cleanup.policy includes compact."),
	intKey("log.cleaner.threads", 1, 0, 256, "Partitions cleaned at once; 0: none (as log.cleaner.enable=false)."),
	longKey("log.cleaner.dedupe.buffer.size", 134217728, 1024, "Memory of the key-to-offset maps, all cleaner threads together; a log too large for a thread's share is cleaned in several passes."),
	{name: "log.cleaner.io.max.bytes.per.second", kind: kindDouble, def: "1.7976931348623157e+308", minF: 1, maxF: math.MaxFloat64,
		doc: "Bytes the cleaner threads read and write per second, together."},
	longKey("log.cleaner.backoff.ms", 15000, 0, "How long the cleaner sleeps when no log needs cleaning."),

	// Kafka keys that do not apply to one node: accepted so a Kafka
	// server.properties needs few edits, validated as Kafka does, no effect.
	intKey("num.network.threads", 3, 1, maxInt32, "Kafka's network thread count; Strata runs a goroutine per connection.").compatOnly(),
	intKey("num.io.threads", 8, 1, maxInt32, "Kafka's request handler thread count; Strata handles requests on the connection's goroutine.").compatOnly(),
	{name: "transaction.state.log.replication.factor", kind: kindShort, def: "3", min: 1, max: math.MaxInt16, noEffect: true, compat: true,
		doc: "Kafka's __transaction_state replication; Strata has no transaction log."},
	intKey("transaction.state.log.min.isr", 2, 1, maxInt32, "Kafka's __transaction_state min ISR; Strata has no transaction log.").compatOnly(),
	stringKey("zookeeper.connect", "", "Kafka's ZooKeeper address; Strata needs none.").compatOnly(),
	intKey("zookeeper.connection.timeout.ms", 18000, 0, maxInt32, "Kafka's ZooKeeper timeout; Strata needs none.").compatOnly(),
}

// topicSpec is a topic-level key; its values validate as its broker synonym's do.
type topicSpec struct {
	name     string
	synonyms []string // broker keys that set the default, highest precedence first
	noEffect bool
	doc      string
	base     *spec // validation: the first synonym's spec, or its own
	// own is the spec of a topic key that no broker key defaults (Kafka
	// has none for it): its default is fixed, own.def. No synonyms then.
	own *spec
}

// topicSpecs lists every topic key, in Kafka's documentation order.
var topicSpecs = []*topicSpec{
	{name: "cleanup.policy", synonyms: []string{"log.cleanup.policy"}, doc: "delete: segments past retention are deleted; compact: the log cleaner keeps the latest record of each key; compact,delete: both."},
	{name: "compression.gzip.level", synonyms: []string{"compression.gzip.level"}, doc: "Level of the gzip batches the broker writes (compression.type=gzip); -1: 6."},
	{name: "compression.type", synonyms: []string{"compression.type"}, doc: "producer: batches are stored as produced (zero-copy); uncompressed, gzip, snappy, lz4, zstd: a batch in another codec is recompressed on append."},
	{name: "compression.zstd.level", synonyms: []string{"compression.zstd.level"}, doc: "Level of the zstd batches the broker writes (compression.type=zstd), mapped onto four speeds: below 3, 3 to 5, 6 to 9, 10 and up."},
	{name: "delete.retention.ms", synonyms: []string{"log.cleaner.delete.retention.ms"}, doc: "How long a tombstone stays in the cleaned part of a compacted log."},
	{name: "file.delete.delay.ms", synonyms: []string{"log.segment.delete.delay.ms"}, doc: "Delay before a deleted segment's files are removed."},
	{name: "flush.messages", synonyms: []string{"log.flush.interval.messages"}, doc: "fsync after this many messages."},
	{name: "flush.ms", synonyms: []string{"log.flush.interval.ms"}, doc: "fsync after this many milliseconds."},
	{name: "index.interval.bytes", synonyms: []string{"log.index.interval.bytes"}, doc: "Bytes between offset and time index entries."},
	{name: "max.message.bytes", synonyms: []string{"message.max.bytes"}, doc: "Largest record batch accepted."},
	{name: "message.timestamp.type", synonyms: []string{"log.message.timestamp.type"}, doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's time."},
	{name: "message.timestamp.before.max.ms", synonyms: []string{"log.message.timestamp.before.max.ms"}, doc: "Largest age of a CreateTime timestamp accepted."},
	{name: "message.timestamp.after.max.ms", synonyms: []string{"log.message.timestamp.after.max.ms"}, doc: "Largest lead of a CreateTime timestamp over the broker's clock."},
	{name: "min.insync.replicas", synonyms: []string{"min.insync.replicas"}, doc: "In-sync replicas a produce with acks=all needs; fewer: NOT_ENOUGH_REPLICAS. A single node is one replica."},
	{name: "preallocate", synonyms: []string{"log.preallocate"}, noEffect: true, doc: "Segments are not preallocated."},
	{name: "retention.bytes", synonyms: []string{"log.retention.bytes"}, doc: "Size limit of a partition's whole log (local and remote); -1: none."},
	{name: "retention.ms", synonyms: []string{"log.retention.ms", "log.retention.minutes", "log.retention.hours"}, doc: "Age limit of the whole log; -1: forever."},
	{name: "segment.bytes", synonyms: []string{"log.segment.bytes"}, doc: "Size at which the active segment rolls."},
	{name: "segment.index.bytes", synonyms: []string{"log.index.size.max.bytes"}, doc: "Largest offset index of a segment; a full index rolls the segment."},
	{name: "segment.jitter.ms", synonyms: []string{"log.roll.jitter.ms", "log.roll.jitter.hours"}, doc: "Random amount taken off segment.ms, so partitions do not roll together."},
	{name: "segment.ms", synonyms: []string{"log.roll.ms", "log.roll.hours"}, doc: "Age at which the active segment rolls."},
	{name: "unclean.leader.election.enable", synonyms: []string{"unclean.leader.election.enable"}, doc: "When no in-sync replica is alive, elect an out-of-sync one (records it lacks are lost). A single node is always the leader."},
	{name: "remote.storage.enable", synonyms: []string{"remote.storage.enable"}, doc: "Tier closed segments to the object store."},
	{name: "local.retention.ms", synonyms: []string{"log.local.retention.ms"}, doc: "Age limit of the local copy of tiered segments; -2: retention.ms."},
	{name: "local.retention.bytes", synonyms: []string{"log.local.retention.bytes"}, doc: "Size limit of the local log; -2: retention.bytes."},
	// KIP-950: topic keys only, with fixed defaults (Kafka has no broker key for them).
	{name: "remote.log.copy.disable", own: boolKey("remote.log.copy.disable", false, ""),
		doc: "Stop uploading the topic's segments; the remote tier stays readable and retention.* keeps expiring it. The local log then grows up to retention.*."},
	{name: "remote.log.delete.on.disable", own: boolKey("remote.log.delete.on.disable", false, ""),
		doc: "Must be true to turn remote.storage.enable from true to false; the topic's remote data is then deleted in the background."},
	{name: "max.compaction.lag.ms", synonyms: []string{"log.cleaner.max.compaction.lag.ms"}, doc: "Longest a record stays uncompacted: a log whose first dirty record is older is cleaned whatever its dirty ratio."},
	{name: "min.compaction.lag.ms", synonyms: []string{"log.cleaner.min.compaction.lag.ms"}, doc: "Shortest time a record stays uncompacted: younger segments are not cleaned."},
	{name: "min.cleanable.dirty.ratio", synonyms: []string{"log.cleaner.min.cleanable.ratio"}, doc: "Dirty bytes over cleanable bytes at which a log is cleaned."},
}

var (
	brokerByName = map[string]*spec{}
	topicByName  = map[string]*topicSpec{}
)

func init() {
	for _, s := range brokerSpecs {
		if s.max == 0 && s.min == 0 && (s.kind == kindInt || s.kind == kindLong || s.kind == kindShort) {
			panic("config: key without a range: " + s.name)
		}
		brokerByName[s.name] = s
	}
	for _, t := range topicSpecs {
		if t.own != nil {
			t.base = t.own
			topicByName[t.name] = t
			continue
		}
		t.base = brokerByName[t.synonyms[0]]
		for _, syn := range t.synonyms {
			brokerByName[syn].topic = t.name
		}
		topicByName[t.name] = t
	}
}

// IsTopicConfig reports whether key is a topic-level config name.
func IsTopicConfig(key string) bool {
	_, ok := topicByName[key]
	return ok
}

// Listener and path checks.

// parseListener splits PLAINTEXT://host:port.
func parseListener(v string) (host string, port int, why string) {
	if strings.Contains(v, ",") {
		return "", 0, fmt.Sprintf("%q names several listeners: Strata serves one", v)
	}
	name, hostport, ok := strings.Cut(v, "://")
	if !ok {
		return "", 0, fmt.Sprintf("%q is not NAME://host:port", v)
	}
	if !strings.EqualFold(name, "PLAINTEXT") {
		return "", 0, fmt.Sprintf("%q is not supported: Strata serves PLAINTEXT only", v)
	}
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, fmt.Sprintf("%q has no valid host:port", v)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Sprintf("%q has a bad port (0 to 65535)", v)
	}
	return h, n, ""
}

func checkListener(v string) string {
	if v == "" {
		return ""
	}
	_, _, why := parseListener(v)
	return why
}

// listener is one entry of listeners.
type listener struct {
	name, host string // name upper-cased
	port       int
}

// securityProtocols are Kafka's protocols that Strata does not serve; as a
// listener name each means its protocol.
var securityProtocols = []string{"SSL", "SASL_PLAINTEXT", "SASL_SSL"}

// parseListeners splits listeners: PLAINTEXT://host:port at most once, and
// other names (the controller's, checked against controller.listener.names
// by the loader) beside it.
func parseListeners(v string) ([]listener, string) {
	if !strings.Contains(v, ",") {
		name, _, _ := strings.Cut(v, "://")
		if strings.EqualFold(name, "PLAINTEXT") || contains(securityProtocols, strings.ToUpper(name)) || !strings.Contains(v, "://") {
			h, p, why := parseListener(v)
			if why != "" {
				return nil, why
			}
			return []listener{{name: "PLAINTEXT", host: h, port: p}}, ""
		}
	}
	var out []listener
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		name, hostport, ok := strings.Cut(e, "://")
		if !ok || name == "" {
			return nil, fmt.Sprintf("%q is not NAME://host:port", e)
		}
		name = strings.ToUpper(name)
		if contains(securityProtocols, name) {
			return nil, fmt.Sprintf("%q is not supported: Strata serves PLAINTEXT only", e)
		}
		h, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, fmt.Sprintf("%q has no valid host:port", e)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return nil, fmt.Sprintf("%q has a bad port (0 to 65535)", e)
		}
		for _, o := range out {
			if o.name == name {
				if name == "PLAINTEXT" {
					return nil, fmt.Sprintf("%q names several PLAINTEXT listeners: Strata serves one", v)
				}
				return nil, fmt.Sprintf("%q names listener %s twice", v, name)
			}
			if n != 0 && o.port == n && o.host == h {
				return nil, fmt.Sprintf("%q binds %s twice", v, net.JoinHostPort(h, p))
			}
		}
		out = append(out, listener{name: name, host: h, port: n})
	}
	return out, ""
}

func checkListeners(v string) string {
	if v == "" {
		return ""
	}
	_, why := parseListeners(v)
	return why
}

// roles are the values of process.roles.
var roles = []string{"broker", "controller"}

func checkRoles(v string) string {
	if v == "" {
		return ""
	}
	seen := map[string]bool{}
	for r := range strings.SplitSeq(v, ",") {
		if !contains(roles, r) {
			return fmt.Sprintf("%q is not a role", r)
		}
		if seen[r] {
			return fmt.Sprintf("%q is given twice", r)
		}
		seen[r] = true
	}
	return ""
}

// Voter is one entry of controller.quorum.voters: a controller node's id and
// the host:port of its CONTROLLER listener (its etcd peer URL).
type Voter struct {
	ID   int32
	Host string
	Port int
}

// ParseVoters parses controller.quorum.voters: id@host:port,... with
// distinct ids and ports 1 to 65534 (the etcd client URL is port + 1).
func ParseVoters(v string) ([]Voter, error) {
	var out []Voter
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		id, hostport, ok := strings.Cut(e, "@")
		if !ok {
			return nil, fmt.Errorf("%q is not id@host:port", e)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: the id is not 0 to 2147483647", e)
		}
		h, p, err := net.SplitHostPort(strings.TrimSpace(hostport))
		if err != nil || h == "" {
			return nil, fmt.Errorf("%q is not id@host:port", e)
		}
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65534 {
			return nil, fmt.Errorf("%q has a bad port (1 to 65534: the etcd client URL is port + 1)", e)
		}
		for _, o := range out {
			if o.ID == int32(n) {
				return nil, fmt.Errorf("id %d is given twice", n)
			}
			if o.Host == h && o.Port == port {
				return nil, fmt.Errorf("%s is given twice", net.JoinHostPort(h, p))
			}
		}
		out = append(out, Voter{ID: int32(n), Host: h, Port: port})
	}
	return out, nil
}

func checkVoters(v string) string {
	if _, err := ParseVoters(v); err != nil {
		return err.Error()
	}
	return ""
}

func checkHostPorts(v string) string {
	if v == "" {
		return ""
	}
	for e := range strings.SplitSeq(v, ",") {
		h, p, err := net.SplitHostPort(e)
		if err != nil || h == "" {
			return fmt.Sprintf("%q is not host:port", e)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65534 {
			return fmt.Sprintf("%q has a bad port (1 to 65534: the etcd client URL is port + 1)", e)
		}
	}
	return ""
}

var listenerName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkListenerNames(v string) string {
	for e := range strings.SplitSeq(v, ",") {
		if !listenerName.MatchString(e) {
			return fmt.Sprintf("%q is not a listener name", e)
		}
		if strings.EqualFold(e, "PLAINTEXT") {
			return "PLAINTEXT is the client listener"
		}
	}
	return ""
}

func checkEndpoints(v string) string {
	if v == "" {
		return ""
	}
	for e := range strings.SplitSeq(v, ",") {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
			return fmt.Sprintf("%q is not http://host:port or https://host:port", e)
		}
	}
	return ""
}

func checkLogDir(v string) string {
	if strings.Contains(v, ",") {
		return fmt.Sprintf("%q names several directories: Strata uses one", v)
	}
	if v == "" {
		return "the directory is empty"
	}
	return ""
}

func checkIPOverrides(v string) string {
	if _, err := ParseIPOverrides(v); err != nil {
		return err.Error()
	}
	return ""
}

// ParseIPOverrides parses max.connections.per.ip.overrides, Kafka's
// "host:n,host2:n" (split at the last colon, so IPv6 addresses work).
func ParseIPOverrides(v string) (map[string]int64, error) {
	out := map[string]int64{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		i := strings.LastIndex(e, ":")
		if i <= 0 {
			return nil, fmt.Errorf("%q is not host:n", e)
		}
		host := strings.Trim(strings.TrimSpace(e[:i]), "[]")
		n, err := strconv.ParseInt(strings.TrimSpace(e[i+1:]), 10, 32)
		if err != nil || n < 0 || host == "" {
			return nil, fmt.Errorf("%q is not host:n with n from 0 to 2147483647", e)
		}
		out[host] = n
	}
	return out, nil
}

func checkHostPort(v string) string {
	if v == "" {
		return ""
	}
	_, p, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", v)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q has a bad port (0 to 65535)", v)
	}
	return ""
}

func checkURL(v string) string {
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" {
		return fmt.Sprintf("%q is not a URL with a scheme", v)
	}
	return ""
}
