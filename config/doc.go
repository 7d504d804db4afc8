// Package config is Strata's configuration: the broker's static keys, Kafka's
// broker-level topic defaults, and the topic-level keys of CreateTopics,
// AlterConfigs and DescribeConfigs. Names, defaults and ranges are Kafka's
// unless this page says otherwise.
//
// # Sources
//
// Load applies, each over the previous:
//
//  1. the defaults below;
//  2. a Java properties file (strata serve --config FILE): "key=value",
//     "key: value" or "key value"; '#' and '!' comment lines; a trailing '\'
//     continues a line; escapes \t \n \r \f \uXXXX; see ParseProperties;
//  3. environment variables STRATA_<KEY>: the key upper-cased with '.' as '_'
//     (STRATA_LOG_RETENTION_MS sets log.retention.ms; STRATA_SENDFILE_ENABLE
//     sets strata.sendfile.enable). Any other STRATA_ variable is an error;
//  4. --set key=value, in order.
//
// An unknown key or a bad value stops Load with an *Error naming the key, what
// is allowed and where it was set, for example
//
//	config: log.segment.bytes: "12x" is not an integer (allowed: 14 to 2147483647); from --set
//	config: unknown key "log.segmnt.bytes" (did you mean "log.segment.bytes"?); from server.properties line 3
//
// Values are trimmed before they are parsed, as Kafka does; booleans are true
// or false in any case; integers are decimal. Where two keys set one value
// (log.retention.ms, .minutes, .hours), the finer one wins, as in Kafka.
//
// # Broker keys
//
//	key                                  default                       allowed
//	broker.id                            0                             0 to 2147483647
//	node.id                              (broker.id)                   0 to 2147483647, or -1 (unset); KRaft's alias of broker.id: both set to different values is an error
//	listeners                            PLAINTEXT://127.0.0.1:9092    one PLAINTEXT://host:port, and on a controller CONTROLLER://host:port beside it (see "A cluster"); empty host or 0.0.0.0: every interface; port 0: a free port
//	advertised.listeners                 (listeners)                   one PLAINTEXT://host:port, or empty; a wildcard host is advertised as 127.0.0.1
//	log.dirs                             (log.dir)                     one directory: Strata has no JBOD
//	log.dir                              ./data                        one directory; used if log.dirs is unset
//	num.partitions                       1                             1 to 2147483647
//	default.replication.factor           1                             1 on a single node; 1 to 32767 in a cluster
//	auto.create.topics.enable            true                          true, false
//	delete.topic.enable                  true                          true, false
//	log.retention.check.interval.ms      300000                        1 to 9223372036854775807
//	message.max.bytes                    1048588                       0 to 2147483647; default of max.message.bytes
//	socket.request.max.bytes             104857600                     1 to 2147483647
//	group.min.session.timeout.ms         6000                          0 to group.max.session.timeout.ms
//	group.max.session.timeout.ms         1800000                       0 to 2147483647
//	group.initial.rebalance.delay.ms     3000                          0 to 2147483647
//	offsets.retention.minutes            10080                         1 to 2147483647
//	metrics.listen                       "" (off)                      host:port of the Prometheus endpoint, or empty (Strata)
//	strata.sendfile.enable               true                          true, false; false serves fetches by read+write (Strata)
//	num.recovery.threads.per.data.dir    1                             1 to 2147483647; partition logs opened (recovered) at once at start-up
//	offsets.topic.num.partitions         50                            1 to 100000; partitions of __consumer_offsets at its creation
//	offsets.topic.segment.bytes          104857600                     14 to 2147483647; its segment.bytes at its creation
//
// Connections and request memory:
//
//	queued.max.request.bytes             536870912 (512 MiB; Kafka: -1) -1 (unbounded), or socket.request.max.bytes to 9223372036854775807
//	max.connections                      2147483647                    0 to 2147483647
//	max.connections.per.ip               2147483647                    0 to 2147483647; 0 only with overrides
//	max.connections.per.ip.overrides     ""                            host:n,host2:n (n 0 to 2147483647), or empty
//	connections.max.idle.ms              600000                        -1 (never), or 1 to 9223372036854775807
//	socket.send.buffer.bytes             -1 (OS default; Kafka: 102400) -1 to 2147483647
//	socket.receive.buffer.bytes          -1 (OS default; Kafka: 102400) -1 to 2147483647
//
// Client quotas:
//
//	quota.window.num                     11                            1 to 2147483647
//	quota.window.size.seconds            1                             1 to 2147483647
//
// A client quota (producer_byte_rate, consumer_byte_rate, request_percentage
// of a user, a client id, both, or their defaults; set with AlterClientQuotas)
// is a rate measured over quota.window.num samples of
// quota.window.size.seconds each, as Kafka's ClientQuotaManager measures it.
//
// queued.max.request.bytes bounds the bytes of requests that have been read
// but not yet handled, all connections together. Kafka's default, -1, bounds
// nothing: any client that declares a large frame makes the broker allocate
// it. Strata's default is 512 MiB, raised to socket.request.max.bytes when
// that is larger; a value below socket.request.max.bytes (other than -1) is
// refused, since the largest request could then never be read. A connection
// is charged for the bytes it has received, not for the size it declared, and
// waits, without reading, while the budget is spent (broker/reqmem.go).
//
// A connection beyond max.connections, or beyond its address's limit
// (max.connections.per.ip, or its entry in max.connections.per.ip.overrides;
// host names are resolved at start-up), is closed as soon as it is accepted.
//
// socket.send.buffer.bytes and socket.receive.buffer.bytes set SO_SNDBUF and
// SO_RCVBUF on client connections (the receive buffer on the listener too, so
// the TCP window scale agrees). Strata's default is -1 where Kafka's is 102400:
// on Linux, setting either turns off the kernel's buffer autotuning for that
// socket, and a fixed 100 KiB send buffer cuts the throughput of sendfile
// fetches.
//
// # A cluster
//
// With process.roles or etcd.endpoints set, the node is part of a cluster
// (Broker.ClusterMode; Broker.Cluster parses these keys for package cluster).
// Names and defaults are KRaft's; etcd is the quorum:
//
//	key                                  default                       allowed
//	process.roles                        "" (a single node)            broker, controller, broker,controller
//	controller.quorum.voters             ""                            id@host:port,... (distinct ids; ports 1 to 65534)
//	controller.quorum.bootstrap.servers  ""                            host:port,... of controller listeners
//	controller.listener.names            CONTROLLER                    listener names (not PLAINTEXT)
//	etcd.endpoints                       "" (Strata)                   http(s)://host:port,... of an external etcd
//	etcd.log.level                       error                         debug, info, warn, error (the embedded member's etcd.log)
//	metadata.log.dir                     "" (log.dirs)                 a directory for the etcd member's data
//	broker.rack                          ""                            any string
//	replica.selector.class               "" (the leader)               org.apache.kafka.common.replica.RackAwareReplicaSelector (or RackAwareReplicaSelector)
//	broker.session.timeout.ms            9000                          1 to 2147483647
//	broker.heartbeat.interval.ms         2000                          1 to broker.session.timeout.ms - 1
//	offsets.topic.replication.factor     3                             1 to 32767; lowered, with a warning, to the live brokers at creation
//	min.insync.replicas                  1                             1 to 2147483647; default of the topic key
//	unclean.leader.election.enable       false                         true, false; default of the topic key
//	replica.lag.time.max.ms              30000                         1 to 9223372036854775807
//	replica.fetch.max.bytes              1048576                       0 to 2147483647
//	replica.fetch.min.bytes              1                             1 to 2147483647
//	replica.fetch.wait.max.ms            500                           0 to replica.lag.time.max.ms
//	replica.fetch.backoff.ms             1000                          0 to 2147483647
//	replica.fetch.response.max.bytes     10485760                      0 to 2147483647
//	num.replica.fetchers                 1                             1 to 2147483647
//	replica.high.watermark.checkpoint.interval.ms  5000                1 to 9223372036854775807
//	controlled.shutdown.enable           true                          true, false
//	auto.leader.rebalance.enable         true                          true, false
//	leader.imbalance.per.broker.percentage  10                         0 to 100
//	leader.imbalance.check.interval.seconds 300                        1 to 2147483647
//
// The etcd port rule: a node with the controller role runs an etcd member
// whose PEER URL is its CONTROLLER listener, the address in
// controller.quorum.voters, and whose CLIENT URL is the same host at the
// CONTROLLER port + 1 (controller 127.0.0.1:9093 serves etcd clients at
// 127.0.0.1:9094). Every node dials the voters' (or the bootstrap servers')
// host:port+1; etcd.endpoints names client URLs directly. The member's data
// lives in <metadata.log.dir>/etcd, by default <log.dirs>/etcd.
//
// Start-up refuses, with a message naming the key: a role other than broker
// and controller; a controller without a CONTROLLER listener at its own
// controller.quorum.voters entry (same host and port, as written); voters that
// do not parse or repeat an id; a broker-only node with none of
// controller.quorum.voters, controller.quorum.bootstrap.servers and
// etcd.endpoints; etcd.endpoints with the controller role (an external etcd
// replaces the embedded one; every broker then campaigns to be the
// controller); node.id -1; broker.heartbeat.interval.ms not below
// broker.session.timeout.ms; a CONTROLLER listener on a node without the
// controller role; and, with remote.storage.enable on, remote.storage.url
// unset (its default, file://<log.dirs>/remote, is one broker's own, where
// every broker of a cluster must share one store).
//
// replica.selector.class is Kafka's KIP-392 key: with RackAwareReplicaSelector
// a partition's leader answers a consumer's Fetch (v11+) whose client.rack is
// the broker.rack of an in-sync follower, and not its own, with that
// follower as the preferred read replica; the consumer then reads from it.
// Any other value than the two spellings of that class or empty stops
// start-up. A follower serves a consumer's Fetch v11+ whatever this key says
// (up to its own high watermark), as Kafka's does.
//
// Remote storage (Strata's own keys, beside Kafka's remote.log.manager.*):
//
//	remote.storage.url                   file://<abs log dir>/remote   a URL with a scheme (file, s3, ...: the remotestore package decides)
//	remote.log.manager.task.interval.ms  30000                         1 to 9223372036854775807
//	remote.log.manager.copy.max.bytes.per.second  -1 (unlimited)       -1, or 1 to 9223372036854775807 (KIP-956, Kafka's default is Long.MAX; 0 would stop uploads); dynamic
//	remote.log.compaction.max.bytes.per.second    -1 (unlimited)       -1, or 1 to 9223372036854775807; remote compaction's downloads and uploads, all partitions together (Strata; see Compaction)
//	remote.fetch.max.wait.ms             500                           1 to 2147483647
//	remote.cache.dir                     <log dir>/remote-cache        a directory
//	remote.cache.max.bytes               1073741824 (1 GiB)            remote.chunk.bytes to 9223372036854775807; the cached chunks' bound (downloads in progress and up to 4 evicted files kept for reuse come on top)
//	remote.cache.policy                  s3fifo                        s3fifo, lru; the chunk cache's eviction (lru: the policy before S3-FIFO, a benchmark and diagnostic knob)
//	remote.chunk.bytes                   4194304 (4 MiB)               1 to 1073741824
//	remote.readahead.chunks              2                             0 to 9223372036854775807
//	remote.log.reader.threads            10                            1 to 4096; read-ahead downloads at once, all partitions (Kafka's key)
//	remote.orphan.grace.ms               3600000                       0 to 9223372036854775807; the reconciler also runs that often (between every minute and every hour)
//	remote.storage.request.timeout.ms    10000                         1 to 2147483647; one attempt of HEAD, DELETE, a GET until its body starts, a LIST's wait (Strata)
//	remote.storage.stall.timeout.ms      30000                         1 to 2147483647; an upload or download that moves no byte this long (Strata)
//	remote.log.manager.fetch.max.bytes.per.second  -1 (unlimited)      -1, or 1 to 9223372036854775807; remote downloads (chunks, sidecars, read-ahead) of all partitions together (KIP-956, Kafka's default Long.MAX); dynamic
//	remote.log.reader.max.pending.tasks  100                           1 to 2147483647; remote reads in progress at once; beyond it a fetch partition gets KAFKA_STORAGE_ERROR (retriable) at once (Kafka's key and default)
//	remote.storage.price.gb.month        0.023                         0 to 1e9; $ per GB-month stored, for strata_tier_topic_dollars_per_day (S3 Standard list price, as strata bench)
//	remote.storage.price.put.per.1000    0.005                         0 to 1e9; $ per 1,000 PUT-class requests (PUT, LIST)
//	remote.storage.price.get.per.1000    0.0004                        0 to 1e9; $ per 1,000 GET-class requests (GET, HEAD); DELETE is free
//
// The two KIP-956 limits are dynamic broker configs, as in Kafka: AlterConfigs
// or IncrementalAlterConfigs on the broker resource (type 4) with this
// broker's id (DYNAMIC_BROKER_CONFIG) or an empty name (the cluster-wide
// default, DYNAMIC_DEFAULT_BROKER_CONFIG) changes them at once, without a
// restart; the broker stores them in its metadata and applies them again at
// start-up, over the static value (dynamic.go). Every other broker key is
// static: altering it is refused with INVALID_REQUEST ("Cannot update these
// configs dynamically: ..."). In a cluster they live in etcd: any broker
// alters any registered broker's or the default, and every broker applies
// its own and the default as soon as its view of etcd has them.
//
// Every object-store call is retried (with backoff) after a failure; an
// attempt that overruns its timeout fails with an error naming the store and
// the operation. The stall timeout bounds progress, not size: a 1 GiB upload
// that keeps moving is never cut, a stopped store is. Progress is counted
// where the store client reads the segment, so for an s3 multipart upload the
// stall timeout must exceed the time one part (part_size, 32 MiB by default)
// takes to send.
//
// remote.storage.url is sensitive, as Kafka's password keys are: it may carry
// credentials (s3://key:secret@bucket, secret_key=, session_token=), so
// DescribeConfigs answers it as null with IsSensitive whatever its value,
// a bad value is refused without quoting it, and a printed or logged Broker
// shows it as [hidden]. Prefer to keep the secret out of the URL: the AWS
// chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, shared
// credentials file) or secret_key_file=/path (see the remotestore/backend
// package). A key marked sensitive in keys.go (spec.secret) gets all of this.
//
// # Topic keys and their broker defaults
//
// Each topic key's default is its broker key's value. DescribeTopic reports the
// source: SourceTopic for an override, SourceStaticBroker when a broker key for
// it was set, SourceDefault otherwise.
//
//	topic key                        broker key(s)                         default               allowed
//	cleanup.policy                   log.cleanup.policy                    delete                delete, compact, compact,delete; see below
//	compression.gzip.level           compression.gzip.level                -1 (= 6)              -1, or 1 to 9; see below
//	compression.type                 compression.type                      producer              producer, uncompressed, gzip, snappy, lz4, zstd; see below
//	compression.zstd.level           compression.zstd.level                3                     -131072 to 22; see below
//	delete.retention.ms              log.cleaner.delete.retention.ms       86400000              0 to 9223372036854775807
//	file.delete.delay.ms             log.segment.delete.delay.ms           60000                 0 to 9223372036854775807
//	flush.messages                   log.flush.interval.messages           9223372036854775807   1 to 9223372036854775807
//	flush.ms                         log.flush.interval.ms                 9223372036854775807   0 to 9223372036854775807 (unset broker key: never)
//	index.interval.bytes             log.index.interval.bytes              4096                  0 to 2147483647
//	max.message.bytes                message.max.bytes                     1048588               0 to 2147483647
//	message.timestamp.type           log.message.timestamp.type            CreateTime            CreateTime, LogAppendTime
//	message.timestamp.before.max.ms  log.message.timestamp.before.max.ms   9223372036854775807   0 to 9223372036854775807
//	message.timestamp.after.max.ms   log.message.timestamp.after.max.ms    9223372036854775807   0 to 9223372036854775807
//	min.insync.replicas              min.insync.replicas                   1                     1 to 2147483647
//	preallocate                      log.preallocate                       false                 true, false
//	retention.bytes                  log.retention.bytes                   -1 (no limit)         -1 to 9223372036854775807
//	retention.ms                     log.retention.ms                      (from .minutes/.hours) -1 (forever) to 9223372036854775807
//	                                 log.retention.minutes                 (from .hours)         -1 to 2147483647
//	                                 log.retention.hours                   168                   -1 to 2147483647
//	segment.bytes                    log.segment.bytes                     1073741824            14 to 2147483647
//	segment.index.bytes              log.index.size.max.bytes              10485760              4 to 2147483647
//	segment.jitter.ms                log.roll.jitter.ms                    (from .hours)         0 to 9223372036854775807
//	                                 log.roll.jitter.hours                 0                     0 to 2147483647
//	segment.ms                       log.roll.ms                           (from .hours)         1 to 9223372036854775807
//	                                 log.roll.hours                        168                   1 to 2147483647
//	unclean.leader.election.enable   unclean.leader.election.enable        false                 true, false
//	remote.storage.enable            remote.storage.enable                 true (Kafka: false)   true, false
//	local.retention.ms               log.local.retention.ms                -2 (= retention.ms)   -2 to 9223372036854775807, see below
//	local.retention.bytes            log.local.retention.bytes             -2 (= retention.bytes) -2 to 9223372036854775807, see below
//	remote.log.copy.disable          (none, as in Kafka)                   false                 true, false; see below
//	remote.log.delete.on.disable     (none, as in Kafka)                   false                 true, false; see below
//	max.compaction.lag.ms            log.cleaner.max.compaction.lag.ms     9223372036854775807   1 to 9223372036854775807
//	min.compaction.lag.ms            log.cleaner.min.compaction.lag.ms     0                     0 to 9223372036854775807
//	min.cleanable.dirty.ratio        log.cleaner.min.cleanable.ratio       0.5                   0 to 1
//
// compression.type producer (the default) stores each batch as the producer
// sent it: a produce writes the request's bytes as they came (zero-copy). A
// codec (uncompressed, gzip, snappy, lz4, zstd) makes the broker rewrite every
// batch in another codec on append, as Kafka does (control batches excepted):
// its records are decompressed and compressed again, so such a produce costs
// CPU and a copy and is not zero-copy. The records and the header (timestamps,
// producer id, epoch and sequence, attributes) are kept; a batch that the
// rewrite makes larger than max.message.bytes gets MESSAGE_TOO_LARGE. A change
// applies from the next append; stored batches keep their codec. Fetches are
// zero-copy either way. The levels of KIP-390 apply to the batches the broker
// writes (a batch already in the topic's codec is kept whatever its level, as
// in Kafka): compression.gzip.level as Kafka's; compression.zstd.level mapped
// onto the four speeds of the Go zstd encoder (below 3, 3 to 5, 6 to 9, 10 and
// up). compression.lz4.level is not supported (an unknown key): Kafka's lz4
// levels are lz4-java's HC levels, which the Go lz4 encoder does not offer;
// lz4 is written at its fast level (localstore/recompress.go).
//
// segment.bytes keeps Kafka's lower bound of 14 bytes (Kafka 4 raised it to
// 1 MiB): tiny segments are useful in tests, and a segment smaller than a batch
// simply holds one batch. In production each closed segment becomes an object
// upload, so small values cost object-store requests.
//
// With remote.storage.enable true, Kafka's rule holds for the resolved values:
// when retention.ms is not -1 and local.retention.ms is not -2,
// local.retention.ms must be 0 to retention.ms (not -1); the same for the
// bytes pair. Topic.LocalRetention resolves -2.
//
// KIP-950, tiered storage disablement (both keys are topic keys only, with
// fixed defaults, as in Kafka):
//
//   - remote.log.copy.disable=true makes the topic's remote tier read-only:
//     no more segments are uploaded, what is there is still served and
//     retention.* still expires it. Nothing new leaves local disk, so the
//     local log grows up to retention.* (it keeps every segment above the
//     last uploaded one until retention.* expires it); as in Kafka,
//     local.retention.ms and local.retention.bytes must then be -2 or equal
//     retention.ms and retention.bytes. Setting it back to false resumes the
//     uploads from the last uploaded offset.
//   - remote.storage.enable from true to false is refused (INVALID_CONFIG)
//     unless remote.log.delete.on.disable=true is set in the same request (or
//     already): then the topic's remote data is deleted in the background,
//     the topic keeps serving its local log, and its log start offset
//     becomes the local log start. Setting remote.storage.enable back to
//     true tiers afresh from the local log.
//
// # Compaction
//
// cleanup.policy=compact (or compact,delete) hands the topic's partitions to
// the log cleaner (package localstore, clean.go; scheduled by the broker),
// which keeps the latest record of each key, as Kafka's does. With compact
// alone retention.ms and retention.bytes do not apply; with compact,delete
// both do. A produce of a record without a key to a compacted topic is
// refused with INVALID_RECORD. A topic whose cleanup.policy includes compact
// tiers only if the topic sets remote.storage.enable=true (the broker default
// does not apply to it, so compacted topics made before tiered compaction
// stay local); changing a tiering topic to compact needs the same request to
// say remote.storage.enable: true to keep tiering (tiered compaction), or
// false with remote.log.delete.on.disable=true (KIP-950's rule).
//
// Tiered compaction (no Kafka release has it; KIP-1272 is a proposal): a
// compacted topic uploads a closed segment only once it is older than
// min.compaction.lag.ms and the local cleaner has cleaned it once (or its
// oldest record is older than max.compaction.lag.ms), and the local cleaner
// never rewrites a segment uploaded or being uploaded. The tier then
// compacts its remote part in the background (package tier, compact.go):
// when the remote part's dirty ratio reaches min.cleanable.dirty.ratio it
// rewrites the remote segments under fresh keys, dropping every record whose
// key has a newer one, remote or local, and tombstones older than
// delete.retention.ms.
//
// Remote compaction's key map takes log.cleaner.dedupe.buffer.size, as one
// cleaner thread's map would; remote.log.compaction.max.bytes.per.second
// (Strata's own key, Kafka has none; default -1, unlimited; 0 refused)
// bounds the bytes it downloads and uploads, all partitions together. It
// runs on a single broker only: in a cluster a compacted topic tiers but its
// remote part is not compacted yet.
//
//	broker key                             default                   allowed
//	log.cleaner.enable                     true                      true, false
//	log.cleaner.threads                    1                         0 to 256 (0: no cleaning)
//	log.cleaner.dedupe.buffer.size         134217728                 1024 to 9223372036854775807 (all threads together)
//	log.cleaner.io.max.bytes.per.second    1.7976931348623157e+308   1 to 1.7976931348623157e+308 (read and written, all threads)
//	log.cleaner.backoff.ms                 15000                     0 to 9223372036854775807
//
// min.compaction.lag.ms may not exceed max.compaction.lag.ms (Kafka's rule).
// A log is cleaned when its dirty ratio reaches min.cleanable.dirty.ratio or
// its oldest dirty record is older than max.compaction.lag.ms. Each cleaner
// thread's key-to-offset map takes 24 bytes a key out of its share of
// log.cleaner.dedupe.buffer.size; a log with more distinct dirty keys than
// that holds is cleaned in several passes.
//
// # Accepted for compatibility, no effect
//
// This topic key (and its broker key) validates as in Kafka and changes
// nothing: preallocate (segments grow as written). min.insync.replicas and
// unclean.leader.election.enable apply in a cluster; a single node is one
// replica, always the leader and the whole ISR.
//
// These broker keys from Kafka's sample server.properties do not apply to one
// node; they are accepted and validated as Kafka does so a Kafka file needs few
// edits, and DescribeConfigs lists them only when set:
//
//	num.network.threads                       3
//	num.io.threads                            8
//	transaction.state.log.replication.factor  3
//	transaction.state.log.min.isr             2
//	zookeeper.connect                         ""
//	zookeeper.connection.timeout.ms           18000
//
// Any other key is an error. A key of either list that is set (not left at its
// default) is logged once at start-up, as a warning that names the key and
// why it has no effect (Broker.WarnNoEffect).
//
// # Topic fields consumers apply
//
// Resolve fills Topic; the keys without a "no effect" note above take effect
// only where the package that owns the behaviour reads the field: localstore
// (segment.*, index.interval.bytes, flush.*, file.delete.delay.ms,
// local.retention.*), the broker (max.message.bytes, message.timestamp.*),
// the tier (remote.storage.enable, retention.*).
package config
