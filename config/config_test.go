package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "server.properties")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, path string, env, sets []string) *Broker {
	t.Helper()
	b, err := Load(path, env, sets)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaults(t *testing.T) {
	b := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"broker.id", b.BrokerID, int32(0)},
		{"listeners", b.Listeners, "PLAINTEXT://127.0.0.1:9092"},
		{"log dir", b.LogDir(), "./data"},
		{"num.partitions", b.NumPartitions, int32(1)},
		{"default.replication.factor", b.DefaultReplicationFactor, int16(1)},
		{"auto create", b.AutoCreateTopicsEnable, true},
		{"delete topic", b.DeleteTopicEnable, true},
		{"retention check", b.LogRetentionCheckIntervalMs, int64(300000)},
		{"message.max.bytes", b.MessageMaxBytes, int64(1048588)},
		{"socket.request.max.bytes", b.SocketRequestMaxBytes, int64(104857600)},
		{"group min", b.GroupMinSessionTimeoutMs, int64(6000)},
		{"group max", b.GroupMaxSessionTimeoutMs, int64(1800000)},
		{"rebalance delay", b.GroupInitialRebalanceDelayMs, int64(3000)},
		{"offsets retention", b.OffsetsRetentionMinutes, int64(10080)},
		{"metrics", b.MetricsListen, ""},
		{"sendfile", b.SendfileEnable, true},
		{"task interval", b.RemoteLogManagerTaskIntervalMs, int64(30000)},
		{"copy rate", b.RemoteLogManagerCopyMaxBytesPerSec, int64(-1)},
		{"remote wait", b.RemoteFetchMaxWaitMs, int64(500)},
		{"cache dir", b.RemoteCacheDir, filepath.Join("data", "remote-cache")},
		{"cache bytes", b.RemoteCacheMaxBytes, int64(1 << 30)},
		{"chunk", b.RemoteChunkBytes, int64(4 << 20)},
		{"readahead", b.RemoteReadaheadChunks, int64(2)},
		{"grace", b.RemoteOrphanGraceMs, int64(3600000)},
		{"request memory", b.QueuedMaxRequestBytes, int64(512 << 20)},
		{"max connections", b.MaxConnections, int64(2147483647)},
		{"per ip", b.MaxConnectionsPerIP, int64(2147483647)},
		{"per ip overrides", b.MaxConnectionsPerIPOverrides, ""},
		{"idle", b.ConnectionsMaxIdleMs, int64(600000)},
		{"send buffer", b.SocketSendBufferBytes, int64(-1)},
		{"receive buffer", b.SocketReceiveBufferBytes, int64(-1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(b.RemoteStorageURL, "file:///") || !strings.HasSuffix(b.RemoteStorageURL, "/data/remote") {
		t.Errorf("remote.storage.url = %q, want file:///<abs>/data/remote", b.RemoteStorageURL)
	}
	topic, err := b.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Topic{
		CleanupPolicy: "delete", RetentionMs: 168 * hourMs, RetentionBytes: -1, SegmentBytes: 1073741824,
		SegmentMs: 168 * hourMs, SegmentIndexBytes: 10485760, IndexIntervalBytes: 4096, MaxMessageBytes: 1048588,
		FlushMessages: math.MaxInt64, FlushMs: math.MaxInt64, TimestampType: "CreateTime", RemoteStorageEnable: true,
		LocalRetentionMs: -2, LocalRetentionBytes: -2, SegmentJitterMs: 0, FileDeleteDelayMs: 60000,
		MessageTimestampBeforeMaxMs: math.MaxInt64, MessageTimestampAfterMaxMs: math.MaxInt64,
		CompressionType: "producer", CompressionGzipLevel: -1, CompressionZstdLevel: 3, DeleteRetentionMs: 86400000, MaxCompactionLagMs: math.MaxInt64, MinCleanableDirtyRatio: 0.5,
		MinInsyncReplicas: 1,
	}
	if topic != want {
		t.Errorf("Resolve(nil) = %+v\nwant %+v", topic, want)
	}
	if ms, bytes := topic.LocalRetention(); ms != 168*hourMs || bytes != -1 {
		t.Errorf("LocalRetention = %d, %d", ms, bytes)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "log.segment.bytes=1000\nlog.retention.bytes=1\nnum.partitions=2\nbroker.id=7\n")
	env := []string{
		"STRATA_LOG_RETENTION_BYTES=2", "STRATA_NUM_PARTITIONS=3", "PATH=/bin", "STRATATEST_MINIO=x",
		"STRATA_SENDFILE_ENABLE=false",
	}
	sets := []string{"num.partitions=4", "auto.create.topics.enable = FALSE", "num.partitions=5"}
	b := mustLoad(t, file, env, sets)
	if b.LogSegmentBytes != 1000 || b.LogRetentionBytes != 2 || b.NumPartitions != 5 || b.BrokerID != 7 {
		t.Errorf("segment %d (file), retention.bytes %d (env), partitions %d (last --set), id %d",
			b.LogSegmentBytes, b.LogRetentionBytes, b.NumPartitions, b.BrokerID)
	}
	if b.AutoCreateTopicsEnable || b.SendfileEnable {
		t.Errorf("auto create %v, sendfile %v: want false, false", b.AutoCreateTopicsEnable, b.SendfileEnable)
	}
	if b := mustLoad(t, "", []string{"STRATA_STRATA_SENDFILE_ENABLE=false"}, nil); b.SendfileEnable {
		t.Error("STRATA_STRATA_SENDFILE_ENABLE ignored")
	}
}

func TestDerivedDurations(t *testing.T) {
	cases := []struct {
		sets                    []string
		retention, roll, jitter int64
		flushMs                 int64
	}{
		{nil, 168 * hourMs, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.retention.hours=1"}, hourMs, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.retention.hours=1", "log.retention.minutes=2"}, 2 * minuteMs, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.retention.hours=1", "log.retention.minutes=2", "log.retention.ms=3"}, 3, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.retention.ms=-1", "log.retention.hours=1"}, -1, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.retention.hours=-1"}, -1, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.retention.minutes=-1"}, -1, 168 * hourMs, 0, math.MaxInt64},
		{[]string{"log.roll.hours=2", "log.roll.jitter.hours=1"}, 168 * hourMs, 2 * hourMs, hourMs, math.MaxInt64},
		{[]string{"log.roll.hours=2", "log.roll.ms=5", "log.roll.jitter.hours=1", "log.roll.jitter.ms=4"}, 168 * hourMs, 5, 4, math.MaxInt64},
		{[]string{"log.flush.interval.ms=1000"}, 168 * hourMs, 168 * hourMs, 0, 1000},
	}
	for _, c := range cases {
		b := mustLoad(t, "", nil, c.sets)
		topic, err := b.Resolve(nil)
		if err != nil {
			t.Fatal(err)
		}
		if topic.RetentionMs != c.retention || topic.SegmentMs != c.roll || topic.SegmentJitterMs != c.jitter || topic.FlushMs != c.flushMs {
			t.Errorf("%v: retention %d roll %d jitter %d flush %d; want %d %d %d %d", c.sets,
				topic.RetentionMs, topic.SegmentMs, topic.SegmentJitterMs, topic.FlushMs, c.retention, c.roll, c.jitter, c.flushMs)
		}
	}
}

// TestLoadErrors: every error names the key (or variable), says what is
// allowed, and where the value was set.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  []string
		sets []string
		want []string
	}{
		{"not an integer", "", nil, []string{"log.segment.bytes=12x"},
			[]string{`config: log.segment.bytes: "12x" is not an integer (allowed: 14 to 2147483647); from --set`}},
		{"below range", "", nil, []string{"log.segment.bytes=13"}, []string{"log.segment.bytes: 13 is out of range (allowed: 14 to 2147483647)"}},
		{"above int32", "", nil, []string{"log.segment.bytes=2147483648"}, []string{"log.segment.bytes: 2147483648 is out of range"}},
		{"long overflow", "", nil, []string{"log.retention.ms=9223372036854775808"}, []string{"log.retention.ms: 9223372036854775808 is out of range"}},
		{"unknown key", "", nil, []string{"log.segmnt.bytes=1"}, []string{`config: unknown key "log.segmnt.bytes" (did you mean "log.segment.bytes"?); from --set`}},
		{"topic key at broker level", "", nil, []string{"retention.ms=1"}, []string{`unknown key "retention.ms"`, "broker default is log.retention.ms"}},
		{"unknown key in file", "broker.id=1\n\nnope=2\n", nil, nil, []string{`unknown key "nope"`, "server.properties line 3"}},
		{"bad value in file", "num.partitions = 0\n", nil, nil, []string{"num.partitions: 0 is out of range (allowed: 1 to 2147483647)", "line 1"}},
		{"malformed escape in file", "a=\\uXYZW\n", nil, nil, []string{"server.properties", "line 1", `malformed \uXXXX`}},
		{"unknown env", "", []string{"STRATA_LOG_SEGMNT_BYTES=5"}, nil, []string{"STRATA_LOG_SEGMNT_BYTES", `"log.segmnt.bytes"`, "did you mean"}},
		{"bad env value", "", []string{"STRATA_NUM_PARTITIONS=many"}, nil, []string{`num.partitions: "many" is not an integer`, "environment variable STRATA_NUM_PARTITIONS"}},
		{"set without =", "", nil, []string{"log.segment.bytes"}, []string{`--set "log.segment.bytes": want key=value`}},
		{"boolean", "", nil, []string{"delete.topic.enable=yes"}, []string{`delete.topic.enable: "yes" is not a boolean (allowed: true, false)`}},
		{"listener scheme", "", nil, []string{"listeners=SSL://:9093"}, []string{"listeners:", "Strata serves PLAINTEXT only", "allowed: PLAINTEXT://host:port"}},
		{"two listeners", "", nil, []string{"listeners=PLAINTEXT://:9092,PLAINTEXT://:9093"}, []string{"listeners:", "serves one"}},
		{"listener port", "", nil, []string{"listeners=PLAINTEXT://host:99999"}, []string{"listeners:", "bad port"}},
		{"listener no port", "", nil, []string{"listeners=PLAINTEXT://host"}, []string{"listeners:", "host:port"}},
		{"advertised", "", nil, []string{"advertised.listeners=localhost:9092"}, []string{"advertised.listeners:", "NAME://host:port"}},
		{"two log dirs", "", nil, []string{"log.dirs=/a,/b"}, []string{"log.dirs:", "Strata uses one"}},
		{"empty log dir", "", nil, []string{"log.dir= "}, []string{"log.dir:", "empty"}},
		{"replication factor", "", nil, []string{"default.replication.factor=3"}, []string{"default.replication.factor: 3 is out of range (allowed: 1: Strata is a single node)"}},
		{"cleanup policy value", "", nil, []string{"log.cleanup.policy=remove"}, []string{`log.cleanup.policy: "remove" is not allowed (allowed: delete, compact)`}},
		{"dedupe buffer", "", nil, []string{"log.cleaner.dedupe.buffer.size=10"}, []string{"log.cleaner.dedupe.buffer.size: 10 is out of range (allowed: 1024 to 9223372036854775807)"}},
		{"cleaner io rate", "", nil, []string{"log.cleaner.io.max.bytes.per.second=0"}, []string{"log.cleaner.io.max.bytes.per.second: 0 is out of range"}},
		{"compression", "", nil, []string{"compression.type=none"}, []string{`compression.type: "none" is not allowed (allowed: uncompressed, zstd, lz4, snappy, gzip, producer)`}},
		{"timestamp type", "", nil, []string{"log.message.timestamp.type=createtime"}, []string{"log.message.timestamp.type:", "allowed: CreateTime, LogAppendTime"}},
		{"ratio", "", nil, []string{"log.cleaner.min.cleanable.ratio=1.5"}, []string{"log.cleaner.min.cleanable.ratio: 1.5 is out of range (allowed: 0 to 1)"}},
		{"metrics.listen", "", nil, []string{"metrics.listen=9100"}, []string{"metrics.listen:", "host:port"}},
		{"remote url", "", nil, []string{"remote.storage.url=/just/a/path"}, []string{"remote.storage.url:", "scheme"}},
		{"copy rate zero", "", nil, []string{"remote.log.manager.copy.max.bytes.per.second=0"}, []string{"remote.log.manager.copy.max.bytes.per.second:", "stop uploads", "allowed: -1 (unlimited) or 1"}},
		{"fetch rate zero", "", nil, []string{"remote.log.manager.fetch.max.bytes.per.second=0"}, []string{"remote.log.manager.fetch.max.bytes.per.second:", "stop remote reads", "allowed: -1 (unlimited) or 1"}},
		{"pending tasks zero", "", nil, []string{"remote.log.reader.max.pending.tasks=0"}, []string{"remote.log.reader.max.pending.tasks: 0 is out of range", "allowed: 1 to 2147483647"}},
		{"negative price", "", nil, []string{"remote.storage.price.get.per.1000=-0.1"}, []string{"remote.storage.price.get.per.1000: -0.1 is out of range", "allowed: 0 to 1e+09"}},
		{"chunk size", "", nil, []string{"remote.chunk.bytes=0"}, []string{"remote.chunk.bytes: 0 is out of range (allowed: 1 to 1073741824)"}},
		{"cache below chunk", "", nil, []string{"remote.cache.max.bytes=100"}, []string{"remote.cache.max.bytes: 100 cannot hold one chunk", "from --set"}},
		{"session timeouts", "", nil, []string{"group.max.session.timeout.ms=5000"}, []string{"group.min.session.timeout.ms: 6000 is above group.max.session.timeout.ms (5000)", "from --set"}},
		{"local retention above retention", "", nil, []string{"log.retention.ms=1000", "log.local.retention.ms=2000"},
			[]string{"log.local.retention.ms: 2000 is more than log.retention.ms (1000)", "allowed: -2, or 0 to 1000", "from --set"}},
		{"local retention unlimited", "", nil, []string{"log.retention.bytes=1000", "log.local.retention.bytes=-1"},
			[]string{"log.local.retention.bytes: -1 (unlimited) is not allowed while log.retention.bytes is 1000"}},
		{"replica selector", "", nil, []string{"replica.selector.class=com.example.Closest"},
			[]string{`replica.selector.class: "com.example.Closest" is not allowed`, "org.apache.kafka.common.replica.RackAwareReplicaSelector"}},
		{"compat key validated", "", nil, []string{"num.io.threads=0"}, []string{"num.io.threads: 0 is out of range (allowed: 1 to 2147483647)"}},
		{"local retention below -2", "", nil, []string{"log.local.retention.ms=-3"}, []string{"log.local.retention.ms: -3 is out of range"}},
		{"request memory below the largest request", "", nil, []string{"queued.max.request.bytes=1048576"},
			[]string{"queued.max.request.bytes: 1048576 is below socket.request.max.bytes (104857600)", "allowed: -1, or 104857600 to", "from --set"}},
		{"request memory zero", "", nil, []string{"socket.request.max.bytes=100", "queued.max.request.bytes=0"}, []string{"queued.max.request.bytes: 0 is below socket.request.max.bytes (100)"}},
		{"request memory below -1", "", nil, []string{"queued.max.request.bytes=-2"}, []string{"queued.max.request.bytes: -2 is out of range (allowed: -1 (unbounded), or socket.request.max.bytes to"}},
		{"per-ip zero without overrides", "", nil, []string{"max.connections.per.ip=0"}, []string{"max.connections.per.ip: 0 is allowed only with max.connections.per.ip.overrides set"}},
		{"per-ip overrides format", "", nil, []string{"max.connections.per.ip.overrides=127.0.0.1=5"}, []string{"max.connections.per.ip.overrides:", `"127.0.0.1=5" is not host:n`}},
		{"per-ip overrides count", "", nil, []string{"max.connections.per.ip.overrides=h:-1"}, []string{"max.connections.per.ip.overrides:", "n from 0 to 2147483647"}},
		{"idle zero", "", nil, []string{"connections.max.idle.ms=0"}, []string{"connections.max.idle.ms:", "close every connection", "allowed: -1 (never), or 1 to"}},
		{"send buffer", "", nil, []string{"socket.send.buffer.bytes=-2"}, []string{"socket.send.buffer.bytes: -2 is out of range (allowed: -1 to 2147483647)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.file != "" {
				path = writeFile(t, c.file)
			}
			_, err := Load(path, c.env, c.sets)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n lacks %q", err, w)
				}
			}
		})
	}
	// Errors are *Error with the key.
	_, err := Load("", nil, []string{"log.segment.bytes=1"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "log.segment.bytes" || ce.Value != "1" || ce.Origin != "--set" {
		t.Errorf("error %#v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.properties"), nil, nil); err == nil || !strings.Contains(err.Error(), "missing.properties") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLocalRetentionOnlyCheckedWhenTiered(t *testing.T) {
	// Kafka checks local.retention.* against retention.* only with remote storage on.
	mustLoad(t, "", nil, []string{"remote.storage.enable=false", "log.retention.ms=1000", "log.local.retention.ms=2000"})
	b := mustLoad(t, "", nil, []string{"log.retention.ms=1000"})
	if err := b.ValidateTopicConfigs(map[string]string{"local.retention.ms": "1000"}); err != nil {
		t.Errorf("equal local retention: %v", err)
	}
	if err := b.ValidateTopicConfigs(map[string]string{"local.retention.ms": "-1", "retention.ms": "-1"}); err != nil {
		t.Errorf("both unlimited: %v", err)
	}
	if err := b.ValidateTopicConfigs(map[string]string{"local.retention.ms": "5000", "remote.storage.enable": "false"}); err != nil {
		t.Errorf("not tiered: %v", err)
	}
}

func TestCompatKeys(t *testing.T) {
	file := writeFile(t, `# a trimmed Kafka sample server.properties
broker.id=0
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kafka-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
zookeeper.connect=localhost:2181
zookeeper.connection.timeout.ms=18000
group.initial.rebalance.delay.ms=0
`)
	b := mustLoad(t, file, nil, nil)
	if b.LogDir() != "/tmp/kafka-logs" || b.GroupInitialRebalanceDelayMs != 0 {
		t.Errorf("log dir %q, delay %d", b.LogDir(), b.GroupInitialRebalanceDelayMs)
	}
	entries := map[string]Entry{}
	for _, e := range b.DescribeBroker() {
		entries[e.Name] = e
	}
	if e, ok := entries["num.io.threads"]; !ok || e.Source != SourceStaticBroker || !strings.Contains(e.Doc, "no effect") {
		t.Errorf("num.io.threads entry = %+v", e)
	}
	for _, e := range Default().DescribeBroker() {
		if e.Name == "num.io.threads" {
			t.Error("unset compatibility key listed")
		}
	}
}

func TestListeners(t *testing.T) {
	cases := []struct {
		sets   []string
		listen string
		host   string
		port   int32
	}{
		{nil, "127.0.0.1:9092", "127.0.0.1", 9092},
		{[]string{"listeners=PLAINTEXT://:0"}, ":0", "127.0.0.1", 0},
		{[]string{"listeners=PLAINTEXT://0.0.0.0:9092"}, "0.0.0.0:9092", "127.0.0.1", 9092},
		{[]string{"listeners=plaintext://[::]:9092"}, "[::]:9092", "127.0.0.1", 9092},
		{[]string{"listeners=PLAINTEXT://[::1]:9092"}, "[::1]:9092", "::1", 9092},
		{[]string{"listeners=PLAINTEXT://0.0.0.0:9092", "advertised.listeners=PLAINTEXT://broker.example:19092"}, "0.0.0.0:9092", "broker.example", 19092},
		{[]string{"advertised.listeners=PLAINTEXT://:9093"}, "127.0.0.1:9092", "127.0.0.1", 9093},
	}
	for _, c := range cases {
		b := mustLoad(t, "", nil, c.sets)
		addr, err := b.ListenAddress()
		if err != nil || addr != c.listen {
			t.Errorf("%v: ListenAddress = %q, %v; want %q", c.sets, addr, err, c.listen)
		}
		host, port, err := b.Advertised()
		if err != nil || host != c.host || port != c.port {
			t.Errorf("%v: Advertised = %q %d %v; want %q %d", c.sets, host, port, err, c.host, c.port)
		}
	}
	// A field changed after Load is checked when used.
	b := Default()
	b.Listeners = "SSL://x:1"
	if _, err := b.ListenAddress(); err == nil || !strings.Contains(err.Error(), "listeners") {
		t.Errorf("ListenAddress on a bad field: %v", err)
	}
}

func TestLogDir(t *testing.T) {
	cases := []struct {
		sets []string
		want string
	}{
		{nil, "./data"},
		{[]string{"log.dir=/var/lib/strata"}, "/var/lib/strata"},
		{[]string{"log.dirs= /srv/strata ", "log.dir=/ignored"}, "/srv/strata"},
	}
	for _, c := range cases {
		b := mustLoad(t, "", nil, c.sets)
		if got := b.LogDir(); got != c.want {
			t.Errorf("%v: LogDir = %q, want %q", c.sets, got, c.want)
		}
	}
	b := mustLoad(t, "", nil, []string{"log.dirs=/srv/strata"})
	if b.RemoteStorageURL != "file:///srv/strata/remote" || b.RemoteCacheDir != "/srv/strata/remote-cache" {
		t.Errorf("remote defaults from log.dirs: %q, %q", b.RemoteStorageURL, b.RemoteCacheDir)
	}
	b = mustLoad(t, "", nil, []string{"log.dirs=/srv/strata", "remote.storage.url=s3://bucket/prefix", "remote.cache.dir=/cache"})
	if b.RemoteStorageURL != "s3://bucket/prefix" || b.RemoteCacheDir != "/cache" {
		t.Errorf("explicit remote: %q, %q", b.RemoteStorageURL, b.RemoteCacheDir)
	}
}

func TestResolveAndDescribeTopic(t *testing.T) {
	b := mustLoad(t, "", nil, []string{"log.retention.hours=1", "log.segment.bytes=2048", "message.max.bytes=500"})
	overrides := map[string]string{"segment.bytes": " 1024 ", "cleanup.policy": "delete", "min.insync.replicas": "2"}
	topic, err := b.Resolve(overrides)
	if err != nil {
		t.Fatal(err)
	}
	if topic.SegmentBytes != 1024 || topic.RetentionMs != hourMs || topic.MaxMessageBytes != 500 || topic.IndexIntervalBytes != 4096 {
		t.Errorf("Resolve = %+v", topic)
	}
	want := map[string]struct {
		value  string
		source Source
		typ    Type
	}{
		"segment.bytes":             {"1024", SourceTopic, TypeInt},
		"cleanup.policy":            {"delete", SourceTopic, TypeList},
		"min.insync.replicas":       {"2", SourceTopic, TypeInt},
		"retention.ms":              {"3600000", SourceStaticBroker, TypeLong}, // via log.retention.hours
		"max.message.bytes":         {"500", SourceStaticBroker, TypeInt},
		"retention.bytes":           {"-1", SourceDefault, TypeLong},
		"segment.ms":                {"604800000", SourceDefault, TypeLong},
		"remote.storage.enable":     {"true", SourceDefault, TypeBoolean},
		"min.cleanable.dirty.ratio": {"0.5", SourceDefault, TypeDouble},
		"flush.ms":                  {"9223372036854775807", SourceDefault, TypeLong},
		"compression.type":          {"producer", SourceDefault, TypeString},
	}
	entries := b.DescribeTopic(overrides)
	if len(entries) != len(topicSpecs) {
		t.Errorf("DescribeTopic lists %d keys, want %d", len(entries), len(topicSpecs))
	}
	for _, e := range entries {
		if !IsTopicConfig(e.Name) || e.ReadOnly || e.Doc == "" {
			t.Errorf("entry %+v", e)
		}
		w, ok := want[e.Name]
		if !ok {
			continue
		}
		if e.Value != w.value || e.Source != w.source || e.Type != w.typ {
			t.Errorf("%s = %q source %d type %d; want %q %d %d", e.Name, e.Value, e.Source, e.Type, w.value, w.source, w.typ)
		}
		delete(want, e.Name)
	}
	if len(want) != 0 {
		t.Errorf("missing entries: %v", want)
	}

	// A field changed after Load is what Resolve applies.
	b.LogSegmentBytes = 4096
	if topic, _ := b.Resolve(nil); topic.SegmentBytes != 4096 {
		t.Errorf("field change ignored: %d", topic.SegmentBytes)
	}
}

func TestValidateTopicConfigs(t *testing.T) {
	b := Default()
	ok := []map[string]string{
		nil,
		{"retention.ms": "-1", "retention.bytes": "1048576", "segment.bytes": "14", "segment.ms": "1"},
		{"message.timestamp.type": "LogAppendTime", "compression.type": "producer", "preallocate": "TRUE"},
		{"local.retention.ms": "1000", "local.retention.bytes": "-2", "min.cleanable.dirty.ratio": "0"},
		{"unclean.leader.election.enable": "false", "max.compaction.lag.ms": "1", "min.compaction.lag.ms": "0", "delete.retention.ms": "0"},
	}
	for _, o := range ok {
		if err := b.ValidateTopicConfigs(o); err != nil {
			t.Errorf("%v: %v", o, err)
		}
	}
	bad := []struct {
		o    map[string]string
		want string
	}{
		{map[string]string{"cleanup.policy": "compacted"}, `config: cleanup.policy: "compacted" is not allowed (allowed: delete, compact)`},
		{map[string]string{"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}, "config: min.compaction.lag.ms: 10 is more than max.compaction.lag.ms (5)"},
		{map[string]string{"min.cleanable.dirty.ratio": "1.5"}, "config: min.cleanable.dirty.ratio: 1.5 is out of range (allowed: 0 to 1)"},
		{map[string]string{"compression.type": "GZIP"}, `config: compression.type: "GZIP" is not allowed (allowed: uncompressed, zstd, lz4, snappy, gzip, producer)`},
		{map[string]string{"segment.bytes": "13"}, "config: segment.bytes: 13 is out of range (allowed: 14 to 2147483647)"},
		{map[string]string{"segment.ms": "0"}, "config: segment.ms: 0 is out of range"},
		{map[string]string{"retention.ms": "-2"}, "config: retention.ms: -2 is out of range"},
		{map[string]string{"flush.messages": "0"}, "config: flush.messages: 0 is out of range (allowed: 1 to 9223372036854775807)"},
		{map[string]string{"segment.index.bytes": "3"}, "config: segment.index.bytes: 3 is out of range (allowed: 4 to 2147483647)"},
		{map[string]string{"max.message.bytes": "big"}, `config: max.message.bytes: "big" is not an integer`},
		{map[string]string{"min.insync.replicas": "0"}, "config: min.insync.replicas: 0 is out of range"},
		{map[string]string{"preallocate": "1"}, `config: preallocate: "1" is not a boolean`},
		{map[string]string{"message.timestamp.type": "Now"}, `config: message.timestamp.type: "Now" is not allowed (allowed: CreateTime, LogAppendTime)`},
		{map[string]string{"retention.ms": "1000", "local.retention.ms": "2000"}, "config: local.retention.ms: 2000 is more than retention.ms (1000)"},
		{map[string]string{"retention.bytes": "10", "local.retention.bytes": "-1"}, "config: local.retention.bytes: -1 (unlimited) is not allowed while retention.bytes is 10"},
		{map[string]string{"retention.mss": "1"}, `config: unknown topic config "retention.mss" (did you mean "retention.ms"?)`},
		{map[string]string{"log.retention.ms": "1"}, `config: unknown topic config "log.retention.ms" (log.retention.ms is a broker config; the topic config is retention.ms)`},
		{map[string]string{"message.max.bytes": "1"}, "the topic config is max.message.bytes"},
	}
	for _, c := range bad {
		err := b.ValidateTopicConfigs(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v\nwant %q", c.o, err, c.want)
		}
		if _, rerr := b.Resolve(c.o); rerr == nil {
			t.Errorf("%v: Resolve accepted what ValidateTopicConfigs refused", c.o)
		}
	}
}

func TestDescribeBroker(t *testing.T) {
	b := mustLoad(t, "", nil, []string{"log.retention.minutes=5", "remote.storage.url=s3://AKID:secret@minio:9000/bucket"})
	got := map[string]Entry{}
	for _, e := range b.DescribeBroker() {
		if dyn := slices.Contains(DynamicBrokerKeys(), e.Name); e.ReadOnly == dyn {
			t.Errorf("%s: read-only %v, dynamic %v", e.Name, e.ReadOnly, dyn)
		}
		got[e.Name] = e
	}
	for _, s := range brokerSpecs {
		if _, ok := got[s.name]; !ok && !s.compat {
			t.Errorf("DescribeBroker lacks %s", s.name)
		}
	}
	check := func(name, value string, src Source) {
		t.Helper()
		if e := got[name]; e.Value != value || e.Source != src {
			t.Errorf("%s = %q source %d; want %q %d", name, e.Value, e.Source, value, src)
		}
	}
	check("log.retention.minutes", "5", SourceStaticBroker)
	check("log.retention.ms", "300000", SourceDefault) // derived, not set
	check("log.retention.hours", "168", SourceDefault)
	check("num.partitions", "1", SourceDefault)
	check("remote.storage.url", "", SourceStaticBroker) // sensitive: TestSensitiveKeys
	check("log.cleaner.min.cleanable.ratio", "0.5", SourceDefault)
}

func TestEnvNames(t *testing.T) {
	for _, s := range brokerSpecs {
		if got := EnvKey(EnvName(s.name)); got != s.name {
			t.Errorf("EnvKey(EnvName(%q)) = %q", s.name, got)
		}
	}
	if EnvKey("STRATA_SENDFILE_ENABLE") != "strata.sendfile.enable" {
		t.Error("short form of strata.* keys")
	}
}

// TestDocListsEveryKey keeps doc.go the complete reference.
func TestDocListsEveryKey(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range brokerSpecs {
		if !strings.Contains(string(doc), s.name+" ") {
			t.Errorf("doc.go does not document %s", s.name)
		}
	}
	for _, s := range topicSpecs {
		if !strings.Contains(string(doc), s.name+" ") {
			t.Errorf("doc.go does not document %s", s.name)
		}
	}
}

func TestRequestMemoryAndConnectionKeys(t *testing.T) {
	// The default follows a larger socket.request.max.bytes; -1 stays unbounded.
	if b := mustLoad(t, "", nil, []string{"socket.request.max.bytes=1073741824"}); b.QueuedMaxRequestBytes != 1<<30 {
		t.Errorf("queued.max.request.bytes = %d, want socket.request.max.bytes", b.QueuedMaxRequestBytes)
	}
	if b := mustLoad(t, "", nil, []string{"queued.max.request.bytes=-1"}); b.QueuedMaxRequestBytes != -1 {
		t.Errorf("queued.max.request.bytes = %d, want -1", b.QueuedMaxRequestBytes)
	}
	b := mustLoad(t, "", nil, []string{"max.connections.per.ip=0", "max.connections.per.ip.overrides= 10.0.0.1:5 , [::1]:7,localhost:0",
		"socket.send.buffer.bytes=65536", "connections.max.idle.ms=-1"})
	got, err := ParseIPOverrides(b.MaxConnectionsPerIPOverrides)
	if err != nil || len(got) != 3 || got["10.0.0.1"] != 5 || got["::1"] != 7 || got["localhost"] != 0 {
		t.Errorf("overrides %q = %v, %v", b.MaxConnectionsPerIPOverrides, got, err)
	}
	if b.SocketSendBufferBytes != 65536 || b.ConnectionsMaxIdleMs != -1 {
		t.Errorf("send buffer %d, idle %d", b.SocketSendBufferBytes, b.ConnectionsMaxIdleMs)
	}
}

// TestCompressionType: every Kafka value of compression.type is accepted, as a
// broker key and as a topic key, and resolves into Topic.CompressionType; the
// topic key overrides the broker's.
func TestCompressionType(t *testing.T) {
	for _, v := range []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"} {
		b := mustLoad(t, "", nil, []string{"compression.type=" + v})
		if b.CompressionType != v {
			t.Errorf("broker compression.type=%s: field %q", v, b.CompressionType)
		}
		topic, err := b.Resolve(nil)
		if err != nil || topic.CompressionType != v {
			t.Errorf("broker compression.type=%s: topic %q, %v", v, topic.CompressionType, err)
		}
		topic, err = Default().Resolve(map[string]string{"compression.type": " " + v})
		if err != nil || topic.CompressionType != v {
			t.Errorf("topic compression.type=%s: %q, %v", v, topic.CompressionType, err)
		}
	}
	if topic, _ := Default().Resolve(nil); topic.CompressionType != "producer" {
		t.Errorf("default compression.type %q, want producer", topic.CompressionType)
	}
}

// TestCompressionLevels: compression.gzip.level and compression.zstd.level
// (KIP-390) take Kafka's ranges, as broker and topic keys.
func TestCompressionLevels(t *testing.T) {
	b := mustLoad(t, "", nil, []string{"compression.gzip.level=9", "compression.zstd.level=-7"})
	topic, err := b.Resolve(nil)
	if err != nil || topic.CompressionGzipLevel != 9 || topic.CompressionZstdLevel != -7 {
		t.Errorf("broker levels: gzip %d zstd %d, %v", topic.CompressionGzipLevel, topic.CompressionZstdLevel, err)
	}
	topic, err = b.Resolve(map[string]string{"compression.gzip.level": "1", "compression.zstd.level": "22"})
	if err != nil || topic.CompressionGzipLevel != 1 || topic.CompressionZstdLevel != 22 {
		t.Errorf("topic levels: gzip %d zstd %d, %v", topic.CompressionGzipLevel, topic.CompressionZstdLevel, err)
	}
	for _, ok := range []map[string]string{
		{"compression.gzip.level": "-1"}, {"compression.zstd.level": "-131072"}, {"compression.zstd.level": "0"},
	} {
		if err := b.ValidateTopicConfigs(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, c := range []struct {
		o    map[string]string
		want string
	}{
		{map[string]string{"compression.gzip.level": "0"}, "compression.gzip.level: 0 is not a gzip level (allowed: -1 (the default, 6), or 1 to 9)"},
		{map[string]string{"compression.gzip.level": "10"}, "compression.gzip.level: 10 is out of range"},
		{map[string]string{"compression.zstd.level": "23"}, "compression.zstd.level: 23 is out of range (allowed: -131072 to 22)"},
		{map[string]string{"compression.zstd.level": "-131073"}, "compression.zstd.level: -131073 is out of range"},
		{map[string]string{"compression.lz4.level": "9"}, `unknown topic config "compression.lz4.level"`},
	} {
		if err := b.ValidateTopicConfigs(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.o, err, c.want)
		}
	}
}

// cleanup.policy takes compact, delete and both, and the compaction keys
// take effect: Resolve carries them. A compacted topic does not tier unless
// asked, and asking is refused.
func TestCompactionConfigs(t *testing.T) {
	b, err := Load("", nil, []string{"log.cleaner.threads=2", "log.cleaner.dedupe.buffer.size=1048576", "log.cleaner.backoff.ms=100",
		"log.cleaner.io.max.bytes.per.second=1e6", "log.cleaner.enable=false"})
	if err != nil {
		t.Fatal(err)
	}
	if b.LogCleanerThreads != 2 || b.LogCleanerDedupeBufferSize != 1<<20 || b.LogCleanerBackoffMs != 100 ||
		b.LogCleanerIoMaxBytesPerSecond != 1e6 || b.LogCleanerEnable {
		t.Fatalf("cleaner keys: %+v", b)
	}
	if d := Default(); !d.LogCleanerEnable || d.LogCleanerThreads != 1 || d.LogCleanerDedupeBufferSize != 128<<20 ||
		d.LogCleanerBackoffMs != 15000 || d.LogCleanerIoMaxBytesPerSecond != math.MaxFloat64 {
		t.Fatalf("cleaner defaults: %+v", d)
	}
	for _, c := range []struct {
		policy          string
		compact, delete bool
	}{{"delete", false, true}, {"compact", true, false}, {"compact,delete", true, true}, {"delete, compact", true, true}} {
		top, err := b.Resolve(map[string]string{"cleanup.policy": c.policy, "delete.retention.ms": "5", "min.compaction.lag.ms": "6",
			"max.compaction.lag.ms": "7", "min.cleanable.dirty.ratio": "0.01"})
		if err != nil {
			t.Fatalf("%s: %v", c.policy, err)
		}
		if top.Compact() != c.compact || top.Delete() != c.delete || top.RemoteStorageEnable != !c.compact {
			t.Errorf("%s: compact %t delete %t remote %t", c.policy, top.Compact(), top.Delete(), top.RemoteStorageEnable)
		}
		if top.DeleteRetentionMs != 5 || top.MinCompactionLagMs != 6 || top.MaxCompactionLagMs != 7 || top.MinCleanableDirtyRatio != 0.01 {
			t.Errorf("%s: %+v", c.policy, top)
		}
	}
	if top, err := b.Resolve(map[string]string{"cleanup.policy": "compact", "remote.storage.enable": "false"}); err != nil || top.RemoteStorageEnable {
		t.Fatalf("compact with remote.storage.enable=false: %+v %v", top, err)
	}
	// Tiered compaction: the topic asks for it.
	for _, policy := range []string{"compact", "compact,delete"} {
		top, err := b.Resolve(map[string]string{"cleanup.policy": policy, "remote.storage.enable": "true", "local.retention.bytes": "0"})
		if err != nil || !top.RemoteStorageEnable || !top.Compact() {
			t.Fatalf("%s with remote.storage.enable=true: %+v %v", policy, top, err)
		}
	}
	for _, e := range b.DescribeTopic(map[string]string{"cleanup.policy": "compact", "remote.storage.enable": "true"}) {
		if e.Name == "remote.storage.enable" && e.Value != "true" {
			t.Fatalf("DescribeTopic of a tiered compacted topic shows remote.storage.enable=%s", e.Value)
		}
	}
	for _, e := range b.DescribeTopic(map[string]string{"cleanup.policy": "compact"}) {
		if e.Name == "remote.storage.enable" && e.Value != "false" {
			t.Fatalf("DescribeTopic of a compacted topic shows remote.storage.enable=%s", e.Value)
		}
	}
	bc, err := Load("", nil, []string{"log.cleanup.policy=compact"})
	if err != nil {
		t.Fatal(err)
	}
	if top, err := bc.Resolve(nil); err != nil || !top.Compact() || top.RemoteStorageEnable {
		t.Fatalf("log.cleanup.policy=compact: %+v %v", top, err)
	}
}
