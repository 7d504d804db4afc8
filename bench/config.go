package bench

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ProduceCase is one produce workload.
type ProduceCase struct {
	RecordBytes int    `json:"record_bytes"`
	Partitions  int    `json:"partitions"`
	Acks        string `json:"acks"` // "0", "1" or "all"
	BatchBytes  int    `json:"batch_bytes"`
	// Compression is the producer's codec: "" (none), gzip, snappy, lz4 or
	// zstd. A compressed case produces compressible values (see
	// compressibleValues), so the broker has real work to decompress and
	// validate.
	Compression string `json:"compression,omitempty"`
	// InFlight is the producer's produce requests in flight per broker
	// without idempotence (0: franz-go's default, 5; with idempotence,
	// which acks=all has, franz-go sends one at a time and takes no other
	// value).
	InFlight int `json:"in_flight,omitempty"`
}

func (c ProduceCase) String() string {
	s := fmt.Sprintf("rec=%dB parts=%d acks=%s batch=%s", c.RecordBytes, c.Partitions, c.Acks, sizeStr(int64(c.BatchBytes)))
	if c.InFlight > 0 {
		s += fmt.Sprintf(" in-flight=%d", c.InFlight)
	}
	if c.Compression != "" {
		s += " compression=" + c.Compression
	}
	return s
}

// Config is one benchmark run. Defaults gives the full run, Quick the small one.
type Config struct {
	// Brokers, if set, is a running broker to measure (host:port,...);
	// the harness then skips what needs the broker in-process (CPU split,
	// sendfile off, cold replay set-up through the tier, raw sendfile).
	Brokers []string
	// S3 tiers to a MinIO child process (internal/minioserver) instead of
	// the embedded file:// store.
	S3 bool
	// Dir is the working directory (empty: a temporary one, removed after).
	Dir string
	// Out is where the report, charts and profiles go (empty: none written).
	Out string
	// StrataBinary is the strata executable run as a child process for the
	// broker CPU per GB, sendfile on and off (empty: that comparison is
	// skipped with a note).
	StrataBinary string `json:"-"`

	// Headline is the produce case the baselines, kfake and hot consume use.
	Headline ProduceCase
	// Variants are the other produce cases (one factor changed each).
	Variants []ProduceCase
	// ProduceBytes is the payload produced per produce case.
	ProduceBytes int64
	// ColdBytes is the payload of the tiered topic; ColdSegmentBytes its segment.bytes.
	ColdBytes        int64
	ColdSegmentBytes int64
	ColdPartitions   int
	// ChunkBytes is remote.chunk.bytes; Readahead remote.readahead.chunks.
	ChunkBytes int64
	Readahead  int
	// TaskInterval is remote.log.manager.task.interval.ms: it bounds time to tier.
	TaskInterval time.Duration
	// LatencyRate records/s for LatencyDuration, records of LatencyRecordBytes.
	LatencyRate        int
	LatencyDuration    time.Duration
	LatencyRecordBytes int
	// ManyPartitions are the partition counts of the scaling workload, each
	// producing ManyBytes in total.
	ManyPartitions []int
	ManyBytes      int64
	// CompactBytes is the size of the keyed log the compaction phase cleans.
	CompactBytes int64

	// The isolation workload (isolation.go): a broker of its own with a
	// chunk cache of IsoCacheBytes and remote.chunk.bytes IsoChunkBytes; a
	// tiered topic of IsoReplayBytes (at least 4 caches) replayed cold; a
	// tiered hot set of IsoHotBytes (under one cache) re-read; a live
	// producer at IsoRate records/s (of LatencyRecordBytes) and a tail
	// consumer; each window IsoWindow long.
	IsoCacheBytes  int64
	IsoChunkBytes  int64
	IsoReplayBytes int64
	IsoHotBytes    int64
	IsoRate        int
	IsoWindow      time.Duration

	// MinPhase is the least duration of the hot-consume phases and raw
	// sendfile (whole passes repeat), for steady rates and CPU profiles.
	MinPhase time.Duration

	Prices PriceTable

	// Cluster, if at least 3, runs the cluster benchmark instead of the
	// single-node one: that many child-process brokers (cluster.go).
	Cluster int
	// ClusterProduceBytes is the payload of each throughput side (acks=1
	// at RF 1, acks=all at RF 3), split over the alternating rounds.
	ClusterProduceBytes int64
	// ClusterKills is how many times a leader is killed with SIGKILL.
	ClusterKills int
	// ClusterSessionTimeout is broker.session.timeout.ms;
	// ClusterHeartbeat broker.heartbeat.interval.ms (0: strata's default).
	ClusterSessionTimeout time.Duration
	ClusterHeartbeat      time.Duration
}

// Defaults is the full run.
func Defaults() Config {
	h := ProduceCase{RecordBytes: 1024, Partitions: 4, Acks: "1", BatchBytes: 1 << 20}
	return Config{
		Headline:           h,
		Variants:           variants(h),
		ProduceBytes:       512 << 20,
		ColdBytes:          640 << 20,
		ColdSegmentBytes:   128 << 20,
		ColdPartitions:     2,
		ChunkBytes:         4 << 20,
		Readahead:          2,
		TaskInterval:       200 * time.Millisecond,
		LatencyRate:        5000,
		LatencyDuration:    20 * time.Second,
		LatencyRecordBytes: 1024,
		ManyPartitions:     []int{1, 100, 1000},
		ManyBytes:          128 << 20,
		CompactBytes:       256 << 20,
		IsoCacheBytes:      128 << 20,
		IsoChunkBytes:      1 << 20,
		IsoReplayBytes:     640 << 20,
		IsoHotBytes:        32 << 20,
		IsoRate:            2000,
		IsoWindow:          10 * time.Second,
		MinPhase:           5 * time.Second,
		Prices:             DefaultPrices(),

		ClusterProduceBytes:   512 << 20,
		ClusterKills:          10,
		ClusterSessionTimeout: 9 * time.Second, // strata's (and Kafka's) default
	}
}

// Quick is the run of `strata bench --quick`: the same workloads, smaller.
func Quick() Config {
	c := Defaults()
	c.ProduceBytes = 256 << 20
	c.ColdBytes = 128 << 20
	c.ColdSegmentBytes = 8 << 20
	c.ColdPartitions = 4
	c.MinPhase = 2 * time.Second
	c.LatencyRate = 2000
	c.LatencyDuration = 5 * time.Second
	c.ManyPartitions = []int{1, 10, 100}
	c.ManyBytes = 16 << 20
	c.CompactBytes = 64 << 20
	c.IsoCacheBytes = 16 << 20
	c.IsoChunkBytes = 256 << 10
	c.IsoReplayBytes = 80 << 20
	c.IsoHotBytes = 4 << 20
	c.IsoRate = 1000
	c.IsoWindow = 3 * time.Second
	c.ClusterProduceBytes = 128 << 20
	c.ClusterKills = 3
	return c
}

// variants changes one factor of h at a time.
func variants(h ProduceCase) []ProduceCase {
	var vs []ProduceCase
	add := func(f func(*ProduceCase)) {
		c := h
		f(&c)
		vs = append(vs, c)
	}
	add(func(c *ProduceCase) { c.RecordBytes = 100 })
	add(func(c *ProduceCase) { c.RecordBytes = 10 << 10 })
	add(func(c *ProduceCase) { c.Partitions = 1 })
	add(func(c *ProduceCase) { c.Partitions = 16 })
	add(func(c *ProduceCase) { c.Acks = "0" })
	add(func(c *ProduceCase) { c.Acks = "all" })
	add(func(c *ProduceCase) { c.BatchBytes = 16 << 10 })
	// What validating compressed batches costs (the broker decompresses
	// every batch to check its records).
	add(func(c *ProduceCase) { c.Compression = "lz4" })
	add(func(c *ProduceCase) { c.Compression = "zstd" })
	return vs
}

// Validate reports a configuration the harness cannot run.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("bench: "+format, args...))
		}
	}
	for _, pc := range append([]ProduceCase{c.Headline}, c.Variants...) {
		check(pc.RecordBytes >= 16, "record size %d: at least 16 bytes", pc.RecordBytes)
		check(pc.Partitions >= 1, "partitions %d: at least 1", pc.Partitions)
		check(pc.Acks == "0" || pc.Acks == "1" || pc.Acks == "all", "acks %q: 0, 1 or all", pc.Acks)
		check(pc.BatchBytes >= pc.RecordBytes+128, "batch %d bytes: smaller than a record", pc.BatchBytes)
		_, ok := codecs[pc.Compression]
		check(ok, "compression %q: none, gzip, snappy, lz4 or zstd", pc.Compression)
	}
	check(c.ProduceBytes > 0 && c.ColdBytes > 0 && c.ManyBytes > 0, "byte counts must be positive")
	check(c.ColdSegmentBytes >= 1024, "cold segment bytes %d: at least 1024", c.ColdSegmentBytes)
	check(c.ColdBytes >= 2*c.ColdSegmentBytes*int64(c.ColdPartitions), "cold bytes must fill at least two segments per partition")
	check(c.ColdPartitions >= 1, "cold partitions: at least 1")
	check(c.ChunkBytes > 0 && c.Readahead >= 0, "chunk bytes and readahead")
	check(c.TaskInterval > 0, "task interval must be positive")
	check(c.LatencyRate > 0 && c.LatencyDuration > 0 && c.LatencyRecordBytes >= 16, "latency rate, duration and record size (>= 16)")
	check(c.CompactBytes >= 1<<20, "compact bytes %d: at least 1MiB", c.CompactBytes)
	check(len(c.ManyPartitions) > 0, "many partitions: at least one count")
	check(c.IsoChunkBytes > 0 && c.IsoCacheBytes >= 8*c.IsoChunkBytes, "isolation cache %d bytes: at least 8 chunks of %d", c.IsoCacheBytes, c.IsoChunkBytes)
	check(c.IsoHotBytes >= 2*c.IsoChunkBytes && 2*c.IsoHotBytes <= c.IsoCacheBytes, "isolation hot set %d bytes: at least 2 chunks, at most half the cache (%d)", c.IsoHotBytes, c.IsoCacheBytes)
	check(c.IsoReplayBytes >= 5*c.IsoCacheBytes, "isolation replay %d bytes: at least 5 caches (%d each), so that at least 4 are tiered", c.IsoReplayBytes, c.IsoCacheBytes)
	check(c.IsoRate > 0 && c.IsoWindow > 0, "isolation rate and window must be positive")
	if c.Cluster != 0 {
		check(c.Cluster >= 3, "--cluster %d: at least 3 brokers (the comparison is at replication factor 3)", c.Cluster)
		check(len(c.Brokers) == 0, "--cluster and --brokers: one or the other")
		check(c.ClusterProduceBytes > 0, "cluster produce bytes must be positive")
		check(c.ClusterKills >= 1, "cluster kills %d: at least 1", c.ClusterKills)
		check(c.ClusterSessionTimeout >= time.Second && c.ClusterSessionTimeout%time.Millisecond == 0, "cluster session timeout %v: at least 1s, whole milliseconds", c.ClusterSessionTimeout)
		check(c.ClusterHeartbeat >= 0 && c.ClusterHeartbeat < c.ClusterSessionTimeout, "cluster heartbeat %v: below the session timeout", c.ClusterHeartbeat)
	}
	if err := c.Prices.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RegisterFlags binds the configuration to fs; call before fs.Parse. quick
// is set by --quick, which the caller applies with ApplyQuick before the other
// flags take effect (see cmd/strata-bench).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("brokers", "measure a running broker (host:port,...) instead of starting one", func(s string) error {
		c.Brokers = strings.Split(s, ",")
		return nil
	})
	fs.BoolVar(&c.S3, "s3", c.S3, "tier to MinIO (a child process, built by make minio) instead of the embedded file:// store")
	fs.StringVar(&c.Dir, "dir", c.Dir, "working directory (default: a temporary one, removed after)")
	fs.StringVar(&c.Out, "out", c.Out, "write report.json, report.md, SVG charts and CPU profiles here")
	fs.StringVar(&c.StrataBinary, "strata-binary", c.StrataBinary, "strata executable for the child-process broker of the CPU-per-GB comparison (strata bench passes its own path; default: strata next to strata-bench, else on PATH)")
	fs.Var(bytesFlag{ptr: &c.ProduceBytes}, "produce-bytes", "payload per produce case (KiB/MiB/GiB suffixes)")
	fs.Var(bytesFlag{ptr: &c.ColdBytes}, "cold-bytes", "payload of the tiered topic")
	fs.Var(bytesFlag{ptr: &c.ColdSegmentBytes}, "cold-segment-bytes", "segment.bytes of the tiered topic")
	fs.IntVar(&c.ColdPartitions, "cold-partitions", c.ColdPartitions, "partitions of the tiered topic")
	fs.Var(bytesFlag{ptr: &c.ChunkBytes}, "chunk-bytes", "remote.chunk.bytes")
	fs.IntVar(&c.Readahead, "readahead", c.Readahead, "remote.readahead.chunks")
	fs.DurationVar(&c.TaskInterval, "task-interval", c.TaskInterval, "remote.log.manager.task.interval.ms")
	fs.IntVar(&c.Headline.RecordBytes, "record-bytes", c.Headline.RecordBytes, "record size of the headline case")
	fs.IntVar(&c.Headline.Partitions, "partitions", c.Headline.Partitions, "partitions of the headline case")
	fs.StringVar(&c.Headline.Acks, "acks", c.Headline.Acks, "acks of the headline case: 0, 1 or all")
	fs.Var(bytesFlag{ptr: nil, iptr: &c.Headline.BatchBytes}, "batch-bytes", "producer batch size of the headline case")
	fs.IntVar(&c.LatencyRate, "latency-rate", c.LatencyRate, "records per second of the latency workload")
	fs.DurationVar(&c.LatencyDuration, "latency-duration", c.LatencyDuration, "duration of the latency workload")
	fs.Func("many-partitions", "partition counts of the scaling workload (comma-separated)", func(s string) error {
		var ns []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("bad partition count %q", f)
			}
			ns = append(ns, n)
		}
		c.ManyPartitions = ns
		return nil
	})
	fs.DurationVar(&c.MinPhase, "min-phase", c.MinPhase, "least duration of hot consume and raw sendfile (passes repeat)")
	fs.Var(bytesFlag{ptr: &c.ManyBytes}, "many-bytes", "payload of each scaling run")
	fs.Var(bytesFlag{ptr: &c.CompactBytes}, "compact-bytes", "size of the keyed log the compaction phase cleans")
	fs.Var(bytesFlag{ptr: &c.IsoCacheBytes}, "iso-cache-bytes", "isolation workload: the chunk cache of its broker")
	fs.Var(bytesFlag{ptr: &c.IsoChunkBytes}, "iso-chunk-bytes", "isolation workload: remote.chunk.bytes of its broker")
	fs.Var(bytesFlag{ptr: &c.IsoReplayBytes}, "iso-replay-bytes", "isolation workload: payload of the topic replayed cold (at least 5 caches)")
	fs.Var(bytesFlag{ptr: &c.IsoHotBytes}, "iso-hot-bytes", "isolation workload: payload of the hot set the hot reader re-reads (at most half the cache)")
	fs.IntVar(&c.IsoRate, "iso-rate", c.IsoRate, "isolation workload: records per second of the live producer")
	fs.DurationVar(&c.IsoWindow, "iso-window", c.IsoWindow, "isolation workload: duration of each window")
	fs.IntVar(&c.Cluster, "cluster", c.Cluster, "run the cluster benchmark instead: this many child-process brokers (at least 3): acks=all at RF 3 against acks=1 at RF 1, latency at RF 3, failover after kill -9, controlled shutdown")
	fs.Var(bytesFlag{ptr: &c.ClusterProduceBytes}, "cluster-produce-bytes", "with --cluster: payload of each throughput side (RF 1 and RF 3)")
	fs.IntVar(&c.ClusterKills, "cluster-kills", c.ClusterKills, "with --cluster: how many leaders to kill -9 (restarted between kills)")
	fs.DurationVar(&c.ClusterSessionTimeout, "cluster-session-timeout", c.ClusterSessionTimeout, "with --cluster: broker.session.timeout.ms")
	fs.DurationVar(&c.ClusterHeartbeat, "cluster-heartbeat", c.ClusterHeartbeat, "with --cluster: broker.heartbeat.interval.ms (0: strata's default)")
	c.Prices.RegisterFlags(fs)
}

// bytesFlag parses 64MiB, 1GiB, 512KiB or plain bytes.
type bytesFlag struct {
	ptr  *int64
	iptr *int
}

func (b bytesFlag) String() string {
	switch {
	case b.ptr != nil:
		return strconv.FormatInt(*b.ptr, 10)
	case b.iptr != nil:
		return strconv.Itoa(*b.iptr)
	}
	return ""
}

func (b bytesFlag) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	if b.ptr != nil {
		*b.ptr = n
	} else {
		*b.iptr = int(n)
	}
	return nil
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q (bytes, or with a KiB/MiB/GiB suffix)", s)
	}
	return n * mult, nil
}

func sizeStr(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
