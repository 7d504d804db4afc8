package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/minioserver"
	"github.com/stratalog/strata/tier"
)

const bucket = "strata-bench"

// runner holds one run's moving parts.
type runner struct {
	cfg      Config
	dir      string
	storeURL string
	prog     *progress
	rep      *Report

	strata *strata
	mio    *minioserver.Server
	proxy  *countingProxy
	// baseProxy carries the raw baselines' requests to MinIO.
	baseProxy *countingProxy
	objs      objectStore
	// reqCarry are the object-store requests counted by brokers of this run
	// that have been stopped (a restarted broker counts from zero).
	reqCarry map[string]int64
}

// Run runs the benchmark and returns its report. Progress goes to progressW
// (nil: none). The report's files are written by Report.WriteFiles.
func Run(ctx context.Context, cfg Config, progressW io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, rep: newReport(cfg)}
	if cfg.Cluster > 0 {
		r.prog = newProgress(progressW, 3+2*clusterRounds+cfg.ClusterKills)
	}
	if len(cfg.Brokers) > 0 {
		r.prog = newProgress(progressW, 5+len(cfg.Variants)+len(cfg.ManyPartitions))
		return r.rep, r.runExternal(ctx)
	}
	if r.prog == nil {
		r.prog = newProgress(progressW, 27+2*hotRounds+2*coldRounds+2*childRounds+len(cfg.Variants)+len(cfg.ManyPartitions))
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "strata-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r.dir = dir
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return nil, err
		}
	}
	defer r.cleanup()
	if cfg.Cluster > 0 {
		if err := r.runCluster(ctx); err != nil {
			r.prog.finish()
			return r.rep, err
		}
		r.rep.buildFigures()
		return r.rep, nil
	}
	if err := r.runLocal(ctx); err != nil {
		r.prog.finish()
		return r.rep, err
	}
	r.prog.finish()
	r.rep.buildFigures()
	return r.rep, nil
}

func (r *runner) cleanup() {
	if r.strata != nil {
		r.strata.stop()
	}
	if r.baseProxy != nil {
		r.baseProxy.close()
	}
	if r.proxy != nil {
		r.proxy.close()
	}
	if r.mio != nil {
		r.mio.Stop()
	}
}

func (r *runner) openStore(ctx context.Context) error {
	if !r.cfg.S3 {
		root := filepath.Join(r.dir, "remote")
		r.storeURL = "file://" + root
		r.objs = fsStore{root: root}
		r.rep.Mode = "in-process broker, file:// remote store (embedded default)"
		return nil
	}
	bin, err := minioserver.FindBinary()
	if err != nil {
		return fmt.Errorf("bench: --s3 needs a MinIO binary: %w", err)
	}
	r.mio, err = minioserver.Launch(filepath.Join(r.dir, "minio"), minioserver.Options{Binary: bin})
	if err != nil {
		return err
	}
	if err := r.mio.CreateBucket(ctx, bucket); err != nil {
		return err
	}
	r.proxy, err = startCountingProxy(r.mio.Endpoint)
	if err != nil {
		return err
	}
	// The raw GET/PUT baselines reach MinIO through a proxy of their own, the
	// same relay the broker's requests take, so both sides of a ratio pay for
	// it (and the broker's proxy counts only the broker's requests).
	r.baseProxy, err = startCountingProxy(r.mio.Endpoint)
	if err != nil {
		return err
	}
	cl, err := minio.New(r.baseProxy.addr, &minio.Options{
		Creds:  credentials.NewStaticV4(r.mio.AccessKey, r.mio.SecretKey, ""),
		Region: minioserver.Region,
	})
	if err != nil {
		return err
	}
	r.objs = minioStore{cl: cl, bucket: bucket}
	r.storeURL = fmt.Sprintf("s3://%s?endpoint=http://%s&region=%s&access_key=%s&secret_key=%s",
		bucket, r.proxy.addr, minioserver.Region, r.mio.AccessKey, r.mio.SecretKey)
	r.rep.Mode = "in-process broker, MinIO on loopback (s3 backend through a request-counting proxy)"
	return nil
}

func (r *runner) cpu(phase string, fn func() error) error {
	pid := 0
	if r.mio != nil {
		pid = r.mio.Pid()
	}
	c, err := measureCPU(phase, r.cfg.Out, pid, fn)
	r.rep.CPU = append(r.rep.CPU, c)
	return err
}

// partitionEnds returns the end offset of every partition of topic.
func partitionEnds(ctx context.Context, addr, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	var ferr error
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = o.Err
		}
		out[o.Partition] = o.Offset
	})
	return out, ferr
}

func (r *runner) runLocal(ctx context.Context) error {
	cfg := r.cfg
	rep := r.rep
	rep.Machine = describeMachine()
	r.prog.step("object store")
	if err := r.openStore(ctx); err != nil {
		return err
	}
	r.prog.step("start strata")
	var err error
	r.strata, err = startStrata(filepath.Join(r.dir, "strata"), r.storeURL, &cfg)
	if err != nil {
		return err
	}
	st := r.strata
	r.prog.step("start kfake")
	kf, kaddr, err := startKfake()
	if err != nil {
		return err
	}
	defer kf.Close()

	// Produce: the headline case on Strata, on kfake, then the variants.
	h := cfg.Headline
	const hot = "hot"
	for _, t := range []struct{ addr, name string }{{st.addr, "strata"}, {kaddr, "kfake"}} {
		if err := createTopic(ctx, t.addr, hot, h.Partitions, nil); err != nil {
			return err
		}
	}
	r.prog.step("produce " + h.String())
	before := st.counter("strata_broker_produce_bytes_total")
	var tp Throughput
	err = r.cpu("produce-strata", func() (err error) {
		tp, err = produce(ctx, st.addr, hot, h, cfg.ProduceBytes, false)
		return err
	})
	if err != nil {
		return err
	}
	tp.LogBytes = int64(st.counter("strata_broker_produce_bytes_total") - before)
	tp.finish(time.Duration(tp.Seconds * float64(time.Second)))
	rep.Produce = append(rep.Produce, ProduceResult{Case: h, Strata: tp})
	rep.Series = append(rep.Series, named(tp.Series, "produce strata"))

	r.prog.step("produce on kfake")
	var tk Throughput
	err = r.cpu("produce-kfake", func() (err error) {
		tk, err = produce(ctx, kaddr, hot, h, cfg.ProduceBytes, false)
		return err
	})
	if err != nil {
		return err
	}
	rep.ProduceKfake = tk
	rep.Series = append(rep.Series, named(tk.Series, "produce kfake"))

	for i, v := range cfg.Variants {
		r.prog.step("produce " + v.String())
		topic := fmt.Sprintf("produce-%d", i)
		if err := createTopic(ctx, st.addr, topic, v.Partitions, nil); err != nil {
			return err
		}
		before := st.counter("strata_broker_produce_bytes_total")
		var t Throughput
		run := func() (err error) {
			t, err = produce(ctx, st.addr, topic, v, cfg.ProduceBytes, false)
			return err
		}
		if v.Compression != "" {
			// The broker's CPU beside produce-strata's shows what
			// decompressing and validating the batches costs.
			err = r.cpu("produce-"+v.Compression, run)
		} else {
			err = run()
		}
		if err != nil {
			return err
		}
		t.LogBytes = int64(st.counter("strata_broker_produce_bytes_total") - before)
		t.finish(time.Duration(t.Seconds * float64(time.Second)))
		rep.Produce = append(rep.Produce, ProduceResult{Case: v, Strata: t})
	}

	// The headline topic's segment files feed the raw sink and raw sendfile.
	files, err := filepath.Glob(filepath.Join(r.dir, "strata", "log", hot+"-*", "*.log"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("bench: no segment files of topic %s found", hot)
	}
	sort.Strings(files)
	if err := warmFiles(files); err != nil {
		return err
	}
	r.prog.step("raw sink")
	err = r.cpu("raw-sink", func() (err error) {
		rep.Baselines.RawSink, err = rawSink(ctx, files, h.BatchBytes, r.dir)
		return err
	})
	if err != nil {
		return err
	}

	// Hot consume, twice: the protocol-level consumer (no record decoding)
	// for the ratio to raw sendfile, which decodes nothing either; franz-go's
	// decoding consumer for the comparison with kfake, read the same way.
	ends, err := partitionEnds(ctx, st.addr, hot)
	if err != nil {
		return err
	}
	// A second broker, with the copy path, holds the headline topic for the
	// decoded consume that is set against sendfile's.
	r.prog.step("produce on a broker with sendfile off")
	cp, cpEnds, err := r.startCopyBroker(ctx, hot)
	if err != nil {
		return err
	}
	defer cp.stop()
	// Write back what the produce phases left dirty (4.5 GiB in the
	// full run, both brokers) so that no writeback competes with the consume phases;
	// then raw sendfile right before the protocol-level consume it is set
	// against.
	if err := syncFiles(filepath.Join(r.dir, "strata", "log")); err != nil {
		return err
	}
	if err := syncFiles(filepath.Join(r.dir, copyBrokerDir, "log")); err != nil {
		return err
	}
	if err := warmFiles(files); err != nil {
		return err
	}
	// Raw sendfile and the protocol-level consume it is set against, in
	// alternating rounds (raw, Strata, raw, Strata): on a shared machine a
	// phase can catch a quiet or a busy spell, and the ratio is taken over
	// the totals of both rounds.
	sfBefore := st.srv.Metrics().SendfileBytes()
	for round := 1; round <= hotRounds; round++ {
		suffix, of := "", fmt.Sprintf(" (%d/%d)", round, hotRounds)
		if round > 1 {
			suffix = fmt.Sprint("-", round)
		}
		r.prog.step("raw sendfile" + of)
		var raw Rate
		err = r.cpu("raw-sendfile"+suffix, func() (err error) {
			raw, err = rawSendfile(ctx, files, cfg.MinPhase, wireFetchBytes)
			return err
		})
		if err != nil {
			return err
		}
		rep.Baselines.RawSendfile = rep.Baselines.RawSendfile.add(raw)

		r.prog.step("hot consume, protocol-level fetch" + of)
		before = st.counter("strata_broker_fetch_bytes_total")
		var tp Throughput
		err = r.cpu("consume-sendfile"+suffix, func() (err error) {
			tp, err = fetchConsumeFor(ctx, st.addr, hot, ends, "hot consume strata, protocol-level fetch", cfg.MinPhase, viaWire)
			return err
		})
		if err != nil {
			return err
		}
		tp.LogBytes = int64(st.counter("strata_broker_fetch_bytes_total") - before)
		rep.HotConsume = rep.HotConsume.add(tp)
	}
	rep.HotConsumeSendfileBytes = st.srv.Metrics().SendfileBytes() - sfBefore
	rep.Series = append(rep.Series, rep.HotConsume.Series)

	r.prog.step("raw sendfile, one stream")
	err = r.cpu("raw-sendfile-stream", func() (err error) {
		rep.Baselines.RawSendfileStream, err = rawSendfile(ctx, files, cfg.MinPhase, 0)
		return err
	})
	if err != nil {
		return err
	}

	r.prog.step("hot consume on kfake, protocol-level fetch")
	kends, err := partitionEnds(ctx, kaddr, hot)
	if err != nil {
		return err
	}
	err = r.cpu("consume-kfake-wire", func() (err error) {
		rep.HotConsumeKfakeWire, err = fetchConsumeFor(ctx, kaddr, hot, kends, "hot consume kfake, protocol-level fetch", cfg.MinPhase, viaWire)
		return err
	})
	if err != nil {
		return err
	}

	r.prog.step("hot consume, protocol-level fetch over kgo's connection")
	before = st.counter("strata_broker_fetch_bytes_total")
	err = r.cpu("consume-kgo-conn", func() (err error) {
		rep.HotConsumeKgoConn, err = fetchConsumeFor(ctx, st.addr, hot, ends, "hot consume strata, protocol-level fetch over kgo's connection", cfg.MinPhase, viaKgo)
		return err
	})
	if err != nil {
		return err
	}
	rep.HotConsumeKgoConn.LogBytes = int64(st.counter("strata_broker_fetch_bytes_total") - before)
	rep.HotConsumeKgoConn.finish(time.Duration(rep.HotConsumeKgoConn.Seconds * float64(time.Second)))

	r.prog.step("hot consume, decoded by kgo")
	before = st.counter("strata_broker_fetch_bytes_total")
	err = r.cpu("consume-kgo", func() (err error) {
		rep.HotConsumeDecoded, err = consumeFor(ctx, st.addr, hot, ends, "hot consume strata, decoded by kgo", cfg.MinPhase)
		return err
	})
	if err != nil {
		return err
	}
	rep.HotConsumeDecoded.LogBytes = int64(st.counter("strata_broker_fetch_bytes_total") - before)
	rep.HotConsumeDecoded.finish(time.Duration(rep.HotConsumeDecoded.Seconds * float64(time.Second)))
	rep.Series = append(rep.Series, rep.HotConsumeDecoded.Series)

	r.prog.step("hot consume, decoded by kgo, sendfile off")
	cpFiles, err := filepath.Glob(filepath.Join(r.dir, copyBrokerDir, "log", hot+"-*", "*.log"))
	if err == nil {
		err = warmFiles(cpFiles)
	}
	if err != nil {
		return err
	}
	err = r.cpu("consume-kgo-copy", func() (err error) {
		rep.HotConsumeDecodedCopy, err = consumeFor(ctx, cp.addr, hot, cpEnds, "hot consume strata, sendfile off, decoded by kgo", cfg.MinPhase)
		return err
	})
	if err != nil {
		return err
	}
	if err := cp.stop(); err != nil {
		return err
	}

	r.prog.step("hot consume on kfake, decoded by kgo")
	err = r.cpu("consume-kfake", func() (err error) {
		rep.HotConsumeKfake, err = consumeFor(ctx, kaddr, hot, kends, "hot consume kfake", cfg.MinPhase)
		return err
	})
	if err != nil {
		return err
	}
	rep.Series = append(rep.Series, rep.HotConsumeKfake.Series)
	kf.Close()

	// End-to-end latency.
	r.prog.step(fmt.Sprintf("latency at %d rec/s", cfg.LatencyRate))
	if err := createTopic(ctx, st.addr, "latency", 1, nil); err != nil {
		return err
	}
	rep.Latency, err = latency(ctx, st.addr, "latency", cfg.LatencyRate, cfg.LatencyDuration, cfg.LatencyRecordBytes)
	if err != nil {
		return err
	}

	// Many partitions.
	for _, n := range cfg.ManyPartitions {
		r.prog.step(fmt.Sprintf("%d partitions", n))
		m, err := r.many(ctx, st.addr, n, "many")
		if err != nil {
			return err
		}
		rep.Many = append(rep.Many, m)
	}

	if err := r.coldPhases(ctx); err != nil {
		return err
	}

	// The log cleaner beside the disk's raw read-and-write rate.
	if err := r.compactionPhases(ctx); err != nil {
		return err
	}

	// Broker CPU per GB, sendfile on and off: the broker in a child
	// process, so that its CPU (user and kernel) is its own.
	if err := r.childPhases(ctx); err != nil {
		return err
	}
	// Does a cold replay hurt the other users of a broker?
	return r.isolationPhases(ctx)
}

func named(s Series, name string) Series { s.Name = name; return s }

// copyBrokerDir is the second in-process broker's directory under the run's.
const copyBrokerDir = "strata-copy"

// startCopyBroker starts a second broker in this process, with
// strata.sendfile.enable=false and a file:// store of its own, and produces
// the headline case into topic there, untiered. It returns the broker and the
// topic's end offsets.
func (r *runner) startCopyBroker(ctx context.Context, topic string) (*strata, map[int32]int64, error) {
	dir := filepath.Join(r.dir, copyBrokerDir)
	cp, err := startStrata(dir, "file://"+filepath.Join(dir, "remote"), &r.cfg, "strata.sendfile.enable=false")
	if err != nil {
		return nil, nil, err
	}
	h := r.cfg.Headline
	err = createTopic(ctx, cp.addr, topic, h.Partitions, map[string]*string{"remote.storage.enable": kadm.StringPtr("false")})
	if err == nil {
		_, err = produce(ctx, cp.addr, topic, h, r.cfg.ProduceBytes, false)
	}
	var ends map[int32]int64
	if err == nil {
		ends, err = partitionEnds(ctx, cp.addr, topic)
	}
	if err != nil {
		cp.stop()
		return nil, nil, err
	}
	return cp, ends, nil
}

// many produces ManyBytes over n partitions, round robin, and consumes them.
func (r *runner) many(ctx context.Context, addr string, n int, prefix string) (ManyResult, error) {
	topic := fmt.Sprintf("%s-%d", prefix, n)
	pc := r.cfg.Headline
	pc.Partitions = n
	if err := createTopic(ctx, addr, topic, n, map[string]*string{"remote.storage.enable": kadm.StringPtr("false")}); err != nil {
		return ManyResult{}, err
	}
	m := ManyResult{Partitions: n}
	var err error
	m.Produce, err = produce(ctx, addr, topic, pc, r.cfg.ManyBytes, true)
	if err != nil {
		return m, err
	}
	ends, err := partitionEnds(ctx, addr, topic)
	if err != nil {
		return m, err
	}
	m.Consume, err = consume(ctx, addr, topic, ends, topic)
	return m, err
}

// requests are the object-store requests the broker counted so far, by S3
// operation; for the file:// store, the store operations an S3 store would
// have received (one request each).
func (r *runner) requests() map[string]int64 {
	out := r.brokerRequests()
	for k, v := range r.reqCarry {
		out[k] += v
	}
	return out
}

// brokerRequests are the requests counted by the running broker.
func (r *runner) brokerRequests() map[string]int64 {
	if r.cfg.S3 {
		return r.strata.byLabel("strata_s3_requests_total", "operation")
	}
	names := map[string]string{"put": "PutObject", "get_range": "GetObject", "head": "HeadObject", "delete": "DeleteObject", "list": "ListObjectsV2"}
	out := map[string]int64{}
	for op, n := range r.strata.byLabel("strata_remote_store_operations_total", "operation") {
		if s, ok := names[op]; ok {
			op = s
		}
		out[op] = n
	}
	return out
}

// restartEmptyCache restarts the broker on an empty chunk cache, carrying
// its request counts over.
func (r *runner) restartEmptyCache() error {
	r.prog.note("chunk cache not empty: restarting with an empty one")
	carry := r.requests()
	if err := r.strata.stop(); err != nil {
		return err
	}
	r.strata, r.reqCarry = nil, carry
	if err := os.RemoveAll(filepath.Join(r.dir, "strata", "cache")); err != nil {
		return err
	}
	st, err := startStrata(filepath.Join(r.dir, "strata"), r.storeURL, &r.cfg)
	if err != nil {
		return err
	}
	r.strata = st
	return nil
}

// addCounts adds the bucket counts b of a histogram to a (nil: none yet).
func addCounts(a, b []uint64) []uint64 {
	if a == nil {
		return append([]uint64(nil), b...)
	}
	for i := range min(len(a), len(b)) {
		a[i] += b[i]
	}
	return a
}

func diff(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func (r *runner) coldPhases(ctx context.Context) error {
	cfg, rep, st := r.cfg, r.rep, r.strata
	const cold = "cold"
	r.prog.step("produce the tiered topic")
	err := createTopic(ctx, st.addr, cold, cfg.ColdPartitions, map[string]*string{
		"segment.bytes":         kadm.StringPtr(fmt.Sprint(cfg.ColdSegmentBytes)),
		"local.retention.bytes": kadm.StringPtr("0"),
		"retention.ms":          kadm.StringPtr("-1"),
	})
	if err != nil {
		return err
	}
	req0 := r.requests()
	copy0 := st.counter("strata_tier_copy_bytes_total")
	pc := cfg.Headline
	pc.Partitions = cfg.ColdPartitions
	if _, err := produce(ctx, st.addr, cold, pc, cfg.ColdBytes, false); err != nil {
		return err
	}
	r.prog.step("wait until tiered")
	status, err := waitTiered(ctx, st.mgr, cold, cfg.ColdPartitions, 3*time.Minute+time.Duration(cfg.ColdBytes/(1<<20))*time.Second)
	if err != nil {
		return err
	}
	rep.Cost.Requests = diff(r.requests(), req0)
	rep.Cost.IngestPuts, rep.Cost.IngestGets = classify(rep.Cost.Requests)
	rep.Cost.IngestedBytes = int64(st.counter("strata_tier_copy_bytes_total") - copy0)
	bounds, counts, total := st.histogram("strata_tier_time_to_tier_seconds")
	rep.TimeToTier = TimeToTier{Segments: total, P50: histQuantile(0.5, bounds, counts, total), P99: histQuantile(0.99, bounds, counts, total),
		Source:       "strata_tier_time_to_tier_seconds (roll to COPY_FINISHED), quantiles interpolated within its buckets as histogram_quantile does",
		TaskInterval: cfg.TaskInterval.Seconds()}
	rep.Upload = r.uploadRate()

	var objs []object
	upTo := map[int32]int64{}
	for _, ps := range status {
		upTo[ps.Partition] = ps.HighestOffset + 1
		for _, rs := range ps.Remote {
			objs = append(objs, object{Key: rs.LogKey, Size: rs.Size})
		}
	}

	var want int64
	for _, n := range upTo {
		want += n
	}
	// Cold replay and the raw GETs it is set against, in alternating rounds
	// (cold, raw, cold, raw) like the hot pair; each cold round starts on
	// an empty chunk cache, restarting the broker on a fresh one if
	// anything is in it.
	conc := cfg.ColdPartitions * (1 + cfg.Readahead)
	var (
		fetchCounts []uint64 // cumulative, summed over the rounds
		fetchBounds []float64
		reads       uint64
	)
	rep.Cost.ReplayRequests = map[string]int64{}
	for round := 1; round <= coldRounds; round++ {
		suffix, of := "", fmt.Sprintf(" (%d/%d)", round, coldRounds)
		if round > 1 {
			suffix = fmt.Sprint("-", round)
		}
		if r.strata.counter("strata_remote_cache_entries") > 0 {
			if err := r.restartEmptyCache(); err != nil {
				return err
			}
		}
		st = r.strata
		rep.ColdCacheEntriesBefore = max(rep.ColdCacheEntriesBefore, int64(st.counter("strata_remote_cache_entries")))
		r.prog.step("cold replay" + of)
		req1 := r.requests()
		remote0 := st.srv.Metrics().RemoteFetchBytes()
		var tp Throughput
		err = r.cpu("cold-replay"+suffix, func() (err error) {
			tp, err = fetchConsumeFor(ctx, st.addr, cold, upTo, "cold replay, protocol-level fetch", 0, viaWire)
			return err
		})
		if err != nil {
			return err
		}
		if tp.Records != want {
			return fmt.Errorf("bench: cold replay counted %d records from batch headers, want %d", tp.Records, want)
		}
		tp.LogBytes = st.srv.Metrics().RemoteFetchBytes() - remote0
		rep.ColdReplay = rep.ColdReplay.add(tp)
		// No remote read happens before a cold round on its broker, so the
		// histogram holds the round's reads.
		bounds, counts, n := st.histogram("strata_tier_remote_fetch_seconds")
		fetchBounds, fetchCounts, reads = bounds, addCounts(fetchCounts, counts), reads+n
		for k, v := range diff(r.requests(), req1) {
			rep.Cost.ReplayRequests[k] += v
		}

		r.prog.step(fmt.Sprintf("raw GETs x%d%s", conc, of))
		var g Rate
		err = r.cpu("raw-gets"+suffix, func() (err error) {
			g, err = rawGets(ctx, r.objs, objs, cfg.ChunkBytes, conc)
			return err
		})
		if err != nil {
			return err
		}
		rep.Baselines.RawGet = rep.Baselines.RawGet.add(g)
	}
	rep.RemoteFetch = RemoteFetch{Reads: reads,
		P50:    1000 * histQuantile(0.5, fetchBounds, fetchCounts, reads),
		P99:    1000 * histQuantile(0.99, fetchBounds, fetchCounts, reads),
		Source: "strata_tier_remote_fetch_seconds (one tier read: index, sidecar, chunk cache Get or GET, read-ahead) over the cold replay rounds, quantiles interpolated within its buckets"}
	rep.Series = append(rep.Series, rep.ColdReplay.Series)
	rep.Cost.ReplayPuts, rep.Cost.ReplayGets = classify(rep.Cost.ReplayRequests)
	rep.Cost.ReplayedBytes = rep.ColdReplay.LogBytes
	for k, v := range rep.Cost.ReplayRequests {
		rep.Cost.Requests[k] += v
	}

	r.prog.step("warm replay")
	hits0 := st.counter("strata_remote_cache_hits_total")
	remote0 := st.srv.Metrics().RemoteFetchBytes()
	req2 := r.requests()
	rep.WarmReplay, err = fetchConsumeFor(ctx, st.addr, cold, upTo, "warm replay, protocol-level fetch", 0, viaWire)
	if err != nil {
		return err
	}
	if rep.WarmReplay.Records != want {
		return fmt.Errorf("bench: warm replay counted %d records from batch headers, want %d", rep.WarmReplay.Records, want)
	}
	rep.WarmReplay.LogBytes = st.srv.Metrics().RemoteFetchBytes() - remote0
	rep.WarmReplay.finish(time.Duration(rep.WarmReplay.Seconds * float64(time.Second)))
	rep.WarmCacheHits = int64(st.counter("strata_remote_cache_hits_total") - hits0)
	rep.WarmRequests = diff(r.requests(), req2)
	rep.Series = append(rep.Series, rep.WarmReplay.Series)

	r.prog.step("raw PUTs")
	rep.Baselines.RawPut, err = rawPuts(ctx, r.objs, objs, 1)
	if err != nil {
		return err
	}

	r.prog.step("cost")
	return r.cost(ctx)
}

// uploadRate is the tier's upload speed of one stream: bytes written by
// successful puts over the seconds spent in puts (the tier uploads one segment
// per partition at a time, so this is per stream, like the raw PUT baseline).
func (r *runner) uploadRate() Rate {
	st := r.strata
	var secs float64
	mfs, _ := st.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "strata_remote_store_operation_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "operation" && lp.GetValue() == "put" && m.GetHistogram() != nil {
					secs = m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	n := int64(st.counter("strata_remote_store_written_bytes_total"))
	return rate(n, time.Duration(secs*float64(time.Second)), "tier uploads (segments and sidecars): bytes written by puts over the seconds spent in puts, one stream")
}

// waitTiered waits until every closed segment of topic is COPY_FINISHED and
// gone from local disk, and returns the topic's status.
func waitTiered(ctx context.Context, m *tier.Manager, topic string, partitions int, timeout time.Duration) ([]tier.PartitionStatus, error) {
	if m == nil {
		return nil, errors.New("bench: the broker has no tier manager")
	}
	deadline := time.Now().Add(timeout)
	for {
		st := m.Status(topic)
		if tieredAll(st, partitions) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("bench: topic %s not tiered after %s: %+v", topic, timeout, st)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tieredAll(st []tier.PartitionStatus, partitions int) bool {
	if len(st) != partitions {
		return false
	}
	for _, ps := range st {
		if ps.LogStartOffset != 0 || ps.HighestOffset < 0 || len(ps.Local) != 1 || !ps.Local[0].Active || ps.Local[0].BaseOffset != ps.HighestOffset+1 {
			return false
		}
		for _, rs := range ps.Remote {
			if rs.State != "COPY_FINISHED" {
				return false
			}
		}
	}
	return true
}

// cost fills the cost model: requests checked against the store's own count,
// bytes stored, prices.
func (r *runner) cost(ctx context.Context) error {
	c := &r.rep.Cost
	if r.cfg.S3 {
		c.Checked = r.proxy.counts()
		delete(c.Checked, "CreateBucket")
		c.CheckSource = "a counting HTTP proxy between the broker and MinIO (every request the broker sent, by method and query), compared with strata_s3_requests_total"
		all := r.requests()
		c.RunRequests = all
		c.CheckOK = equalCounts(all, c.Checked)
		cl, err := r.mio.Client()
		if err != nil {
			return err
		}
		for o := range cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				return o.Err
			}
			if strings.HasPrefix(o.Key, "bench-rawput/") {
				continue
			}
			c.StoredBytes += o.Size
			if strings.HasSuffix(o.Key, ".log") {
				c.LogBytes += o.Size
			}
		}
	} else {
		all := r.requests()
		c.RunRequests = all
		var files int64
		root := filepath.Join(r.dir, "remote")
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.Contains(p, "bench-rawput") || strings.HasPrefix(d.Name(), ".") {
				return nil
			}
			if info, err := d.Info(); err == nil {
				files++
				c.StoredBytes += info.Size()
				if strings.HasSuffix(p, ".log") {
					c.LogBytes += info.Size()
				}
			}
			return nil
		})
		c.Checked = map[string]int64{"objects in the store": files}
		c.CheckSource = "the file:// store has no request log: its object count must equal the store's puts minus deletes (strata_remote_store_operations_total); S3 request counts are what the same operations would send to S3 without multipart (use --s3 for the real S3 requests)"
		c.CheckOK = files == all["PutObject"]-all["DeleteObject"]
	}
	c.compute(r.cfg.Prices)
	r.rep.RetentionCurve = c.retentionCurve()
	return nil
}

func equalCounts(a, b map[string]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// runExternal measures a broker given by address: the client-side workloads
// only (no CPU split, no raw baselines on its files, no tier internals).
func (r *runner) runExternal(ctx context.Context) error {
	cfg, rep := r.cfg, r.rep
	addr := strings.Join(cfg.Brokers, ",")
	rep.Mode = "external broker " + addr
	rep.Machine = describeMachine()
	suffix := fmt.Sprintf("-%d", time.Now().UnixNano())
	h := cfg.Headline
	r.prog.step("produce " + h.String())
	if err := createTopic(ctx, addr, "bench-hot"+suffix, h.Partitions, nil); err != nil {
		return err
	}
	tp, err := produce(ctx, addr, "bench-hot"+suffix, h, cfg.ProduceBytes, false)
	if err != nil {
		return err
	}
	rep.Produce = append(rep.Produce, ProduceResult{Case: h, Strata: tp})
	for i, v := range cfg.Variants {
		r.prog.step("produce " + v.String())
		topic := fmt.Sprintf("bench-produce-%d%s", i, suffix)
		if err := createTopic(ctx, addr, topic, v.Partitions, nil); err != nil {
			return err
		}
		t, err := produce(ctx, addr, topic, v, cfg.ProduceBytes, false)
		if err != nil {
			return err
		}
		rep.Produce = append(rep.Produce, ProduceResult{Case: v, Strata: t})
	}
	r.prog.step("hot consume")
	ends, err := partitionEnds(ctx, addr, "bench-hot"+suffix)
	if err != nil {
		return err
	}
	if rep.HotConsume, err = fetchConsumeFor(ctx, addr, "bench-hot"+suffix, ends, "hot consume, protocol-level fetch", cfg.MinPhase, viaWire); err != nil {
		return err
	}
	r.prog.step("hot consume, decoded by kgo")
	if rep.HotConsumeDecoded, err = consumeFor(ctx, addr, "bench-hot"+suffix, ends, "hot consume, decoded by kgo", cfg.MinPhase); err != nil {
		return err
	}
	r.prog.step("latency")
	if err := createTopic(ctx, addr, "bench-latency"+suffix, 1, nil); err != nil {
		return err
	}
	if rep.Latency, err = latency(ctx, addr, "bench-latency"+suffix, cfg.LatencyRate, cfg.LatencyDuration, cfg.LatencyRecordBytes); err != nil {
		return err
	}
	for _, n := range cfg.ManyPartitions {
		r.prog.step(fmt.Sprintf("%d partitions", n))
		m, err := r.many(ctx, addr, n, "bench-many"+suffix)
		if err != nil {
			return err
		}
		rep.Many = append(rep.Many, m)
	}
	r.prog.finish()
	rep.Skipped = append(rep.Skipped, "with --brokers: raw sendfile/sink, raw GETs/PUTs, kfake, sendfile off (child-process broker), CPU split, cold/warm replay, time to tier and cost need a broker the harness starts and are not run")
	rep.buildFigures()
	return nil
}

// childRounds is how many times each of sendfile on and off is measured,
// alternating (on, off, on, off), so that drift on a shared machine falls on
// both.
const childRounds = 2

// hotRounds is how many alternating rounds of raw sendfile and the
// protocol-level hot consume a run makes.
const hotRounds = 2

// coldRounds is how many alternating rounds of cold replay and raw GETs a
// run makes.
const coldRounds = 2

// childPhases measures the broker's CPU per GB served with sendfile on and
// off. Splitting this process's CPU by pprof labels cannot tell the kernel
// time of sendfile(2) from that of read+write, so the broker runs as a child
// process (`strata serve`, Config.StrataBinary) on its own
// directory: the headline topic is produced into it and its segment files
// synced to disk (no writeback during the measurement), then it is consumed
// with the protocol-level consumer for MinPhase while the child's utime and
// stime (/proc/<pid>/stat) are read before and after. Each round restarts
// the child on the same log directory with strata.sendfile.enable on, then
// off.
func (r *runner) childPhases(ctx context.Context) error {
	cfg, rep := r.cfg, r.rep
	bin, err := strataBinary(&cfg)
	if err == nil {
		_, _, err = procCPU(os.Getpid())
	}
	if err != nil {
		rep.Skipped = append(rep.Skipped, "broker CPU per GB, sendfile on and off (child-process broker): "+err.Error())
		r.prog.note("skipped the child-process broker: " + err.Error())
		return nil
	}
	dir := filepath.Join(r.dir, "child")
	var ends map[int32]int64
	for round := 1; round <= childRounds; round++ {
		for _, sendfile := range []bool{true, false} {
			r.prog.step(fmt.Sprintf("child broker, sendfile %s (%d/%d)", onOff(sendfile), round, childRounds))
			c, err := startChild(ctx, bin, dir, sendfile)
			if err != nil {
				return err
			}
			res, err := r.childConsume(ctx, c, sendfile, round, &ends)
			if serr := c.stop(); err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
			rep.Child = append(rep.Child, res)
			if sendfile && (res.SendfileBytes <= 0 || res.CopiedBytes != 0) {
				return fmt.Errorf("bench: child broker with sendfile on: %d bytes through sendfile, %d copied", res.SendfileBytes, res.CopiedBytes)
			}
			if !sendfile && (res.CopiedBytes <= 0 || res.SendfileBytes != 0) {
				return fmt.Errorf("bench: child broker with sendfile off: %d bytes copied, %d through sendfile", res.CopiedBytes, res.SendfileBytes)
			}
		}
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// warmFiles reads files once, so that the hot phases find them in the page
// cache. Memory managers may evict page cache that has not been touched for
// a while (on the machine of docs/benchmarks.md, DAMON pages out what has
// not been accessed for about a minute), and the produce phases take longer
// than that: without this the first hot phase read its files from disk.
func warmFiles(files []string) error {
	buf := make([]byte, 1<<20)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncFiles fsyncs every file under dir.
func syncFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// childConsume produces the headline topic into c if *ends is nil (the
// first child), then consumes it and reads the child's CPU around the
// consume. The consumer's CPU profile goes to child-sendfile-<on|off>-<round>.pprof.
func (r *runner) childConsume(ctx context.Context, c *childStrata, sendfile bool, round int, ends *map[int32]int64) (ChildConsume, error) {
	cfg := r.cfg
	const topic = "hot"
	if *ends == nil {
		h := cfg.Headline
		if err := createTopic(ctx, c.addr, topic, h.Partitions, nil); err != nil {
			return ChildConsume{}, err
		}
		if _, err := produce(ctx, c.addr, topic, h, cfg.ProduceBytes, false); err != nil {
			return ChildConsume{}, err
		}
		e, err := partitionEnds(ctx, c.addr, topic)
		if err != nil {
			return ChildConsume{}, err
		}
		if err := syncFiles(filepath.Join(r.dir, "child", "log")); err != nil {
			return ChildConsume{}, err
		}
		*ends = e
	}
	names := []string{"strata_broker_fetch_bytes_total", "strata_broker_fetch_sendfile_bytes_total", "strata_broker_fetch_copied_bytes_total"}
	m0, err := c.metrics(ctx, names...)
	if err != nil {
		return ChildConsume{}, err
	}
	var (
		tp             Throughput
		u0, s0, u1, s1 time.Duration
	)
	phase := fmt.Sprintf("child-sendfile-%s-%d", onOff(sendfile), round)
	client, err := measureCPU(phase, cfg.Out, 0, func() error {
		var err error
		if u0, s0, err = c.cpu(); err != nil {
			return err
		}
		tp, err = fetchConsumeFor(ctx, c.addr, topic, *ends, "hot consume, child broker, sendfile "+onOff(sendfile), cfg.MinPhase, viaWire)
		if err != nil {
			return err
		}
		u1, s1, err = c.cpu()
		return err
	})
	if err != nil {
		return ChildConsume{}, err
	}
	m1, err := c.metrics(ctx, names...)
	if err != nil {
		return ChildConsume{}, err
	}
	res := ChildConsume{
		Sendfile:      sendfile,
		Round:         round,
		UserSeconds:   (u1 - u0).Seconds(),
		SystemSeconds: (s1 - s0).Seconds(),
		ClientSeconds: client.ProcessSecs,
		ClientProfile: client.Profile,
		FetchBytes:    int64(m1[names[0]] - m0[names[0]]),
		SendfileBytes: int64(m1[names[1]] - m0[names[1]]),
		CopiedBytes:   int64(m1[names[2]] - m0[names[2]]),
	}
	res.BrokerSeconds = res.UserSeconds + res.SystemSeconds
	tp.LogBytes = res.FetchBytes
	tp.finish(time.Duration(tp.Seconds * float64(time.Second)))
	res.Consume = tp
	if res.FetchBytes > 0 {
		res.CPUPerGB = res.BrokerSeconds / (float64(res.FetchBytes) / 1e9)
	}
	return res, nil
}
