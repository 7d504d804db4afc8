package bench

// The isolation workload (issue 13, "replays that hurt no one"): does a
// cold replay of a tiered topic hurt the other users of the broker?
//
// One broker of its own (remote.cache.max.bytes IsoCacheBytes,
// remote.chunk.bytes IsoChunkBytes) holds three topics: iso-cold, tiered,
// at least 4 times the chunk cache; iso-hot, tiered just before, smaller
// than the cache; and a live topic per window, local only. Each window runs
// for IsoWindow, its workloads side by side:
//
//   - baseline: a producer at IsoRate records/s (below saturation) and a
//     tail consumer (produce and end-to-end latency), and the hot reader
//     re-reading iso-hot from the remote tier, hotPasses passes spread over
//     the window (its byte hit rate);
//   - replay: the same, while the protocol-level consumer replays iso-cold
//     from offset 0 at full speed, pass after pass;
//   - limited: the same, with remote.log.manager.fetch.max.bytes.per.second
//     set to half the replay's full-speed download rate by
//     IncrementalAlterConfigs (a dynamic broker config: no restart), and
//     the replay's download rate set against that limit;
//
// then the broker restarts on an empty cache with remote.cache.policy=lru
// (the policy before S3-FIFO) and the hot reader runs without and with the
// replay again. Raw GETs of iso-cold's objects (alone) are the replay's
// baseline.
//
// The hot reader's hit rate is by bytes: 1 - the bytes downloaded for
// iso-hot (chunks, read-ahead and sidecars: the tier's
// strata_tier_topic_read_bytes_total) over the record-batch bytes the hot
// reader received, in the window. The hot set is read twice before the
// first window (and after the restart), so that it is cached under either
// policy.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/tier"
)

// Isolation is the isolation workload's result.
type Isolation struct {
	CacheBytes  int64   `json:"cache_bytes"`
	ChunkBytes  int64   `json:"chunk_bytes"`
	HotBytes    int64   `json:"hot_bytes"`    // iso-hot's tiered bytes
	ReplayBytes int64   `json:"replay_bytes"` // iso-cold's tiered bytes (one pass)
	Rate        int     `json:"rate"`         // live producer, records/s
	RecordBytes int     `json:"record_bytes"`
	Window      float64 `json:"window_s"`

	// S3-FIFO (the default policy).
	Baseline IsoWindow `json:"baseline"`
	Replay   IsoWindow `json:"replay"`
	Limited  IsoWindow `json:"limited"`
	// LimitBytesPerSec is the fetch limit of the limited window.
	LimitBytesPerSec int64 `json:"limit_bytes_per_s"`
	// LRU, after a restart with remote.cache.policy=lru: the hot reader
	// without and with the replay.
	LRUBaseline IsoWindow `json:"lru_baseline"`
	LRUReplay   IsoWindow `json:"lru_replay"`
	// RawGet reads iso-cold's objects in ranged GETs of ChunkBytes, alone.
	RawGet Rate `json:"raw_get"`
}

// IsoWindow is one window of the isolation workload.
type IsoWindow struct {
	Live LiveLatency `json:"live"`
	Hot  HotRead     `json:"hot"`
	// ReplayRead is what the replay consumer received (record-batch
	// bytes); ReplayDownloaded the bytes downloaded for iso-cold meanwhile,
	// over ReplaySeconds.
	ReplayRead       Throughput `json:"replay_read"`
	ReplayDownloaded int64      `json:"replay_downloaded"`
	ReplayDownMBps   float64    `json:"replay_download_mbps"`
}

// LiveLatency is the live producer's and tail consumer's latency: produce
// from Produce to its acknowledgement, end to end from Produce to the
// consumer's poll returning the record.
type LiveLatency struct {
	Records    int64   `json:"records"`
	ProduceP50 float64 `json:"produce_p50_ms"`
	ProduceP99 float64 `json:"produce_p99_ms"`
	E2EP50     float64 `json:"e2e_p50_ms"`
	E2EP99     float64 `json:"e2e_p99_ms"`
}

// HotRead is the hot reader's window: bytes received, bytes downloaded for
// its topic, and the byte hit rate.
type HotRead struct {
	ReadBytes       int64   `json:"read_bytes"`
	DownloadedBytes int64   `json:"downloaded_bytes"`
	HitRate         float64 `json:"hit_rate"`
}

const (
	isoCold = "iso-cold"
	isoHot  = "iso-hot"
	isoDir  = "iso"
)

// isoRun is the isolation workload's moving parts.
type isoRun struct {
	r       *runner
	st      *strata
	coldTo  map[int32]int64 // iso-cold's tiered offsets, per partition
	hotTo   map[int32]int64
	windows int // live topics created
}

// isolationPhases runs the isolation workload into r.rep.Isolation.
func (r *runner) isolationPhases(ctx context.Context) error {
	cfg := r.cfg
	res := &Isolation{CacheBytes: cfg.IsoCacheBytes, ChunkBytes: cfg.IsoChunkBytes, Rate: cfg.IsoRate,
		RecordBytes: cfg.LatencyRecordBytes, Window: cfg.IsoWindow.Seconds()}
	r.rep.Isolation = res
	ir := &isoRun{r: r}
	r.prog.step("isolation: tier the replay and hot topics")
	var err error
	if ir.st, err = ir.start("s3fifo"); err != nil {
		return err
	}
	defer func() { ir.st.stop() }()
	st := ir.st
	coldSeg := max(cfg.IsoCacheBytes/8, 2*cfg.IsoChunkBytes)
	coldStatus, err := ir.tiered(ctx, isoCold, cfg.ColdPartitions, coldSeg, cfg.IsoReplayBytes)
	if err != nil {
		return err
	}
	var objs []object
	ir.coldTo = map[int32]int64{}
	for _, ps := range coldStatus {
		ir.coldTo[ps.Partition] = ps.HighestOffset + 1
		for _, rs := range ps.Remote {
			objs = append(objs, object{Key: rs.LogKey, Size: rs.Size})
			res.ReplayBytes += rs.Size
		}
	}
	hotSeg := max(cfg.IsoHotBytes/4, 2*cfg.IsoChunkBytes)
	hotStatus, err := ir.tiered(ctx, isoHot, 1, hotSeg, cfg.IsoHotBytes+hotSeg)
	if err != nil {
		return err
	}
	ir.hotTo = map[int32]int64{}
	for _, ps := range hotStatus {
		ir.hotTo[ps.Partition] = ps.HighestOffset + 1
		for _, rs := range ps.Remote {
			res.HotBytes += rs.Size
		}
	}
	if res.ReplayBytes < 4*cfg.IsoCacheBytes || res.HotBytes >= cfg.IsoCacheBytes {
		return fmt.Errorf("bench: isolation: %s tiered to replay, %s hot, for a %s cache: want a replay of at least 4 caches and a hot set under one",
			mib(res.ReplayBytes), mib(res.HotBytes), mib(cfg.IsoCacheBytes))
	}

	r.prog.step("isolation: baseline (S3-FIFO)")
	if err := ir.warmHot(ctx); err != nil {
		return err
	}
	if res.Baseline, err = ir.measured(ctx, "isolation-baseline", true, false); err != nil {
		return err
	}
	r.prog.step("isolation: cold replay at full speed (S3-FIFO)")
	if res.Replay, err = ir.measured(ctx, "isolation-replay", true, true); err != nil {
		return err
	}

	// The limit: half the full-speed download rate, so that it binds.
	limit := max(int64(res.Replay.ReplayDownMBps*1e6/2)/1e5*1e5, 1e6) // whole tenths of MB/s
	res.LimitBytesPerSec = limit
	r.prog.step(fmt.Sprintf("isolation: replay with the fetch limit at %s MB/s", num(float64(limit)/1e6)))
	if err := ir.setFetchLimit(ctx, &limit); err != nil {
		return err
	}
	if got := st.mgr.FetchMaxBytesPerSecond(); got != limit {
		return fmt.Errorf("bench: isolation: the tier's fetch limit is %d after IncrementalAlterConfigs set %d", got, limit)
	}
	if res.Limited, err = ir.measured(ctx, "isolation-limited", true, true); err != nil {
		return err
	}
	if err := ir.setFetchLimit(ctx, nil); err != nil {
		return err
	}

	r.prog.step(fmt.Sprintf("isolation: raw GETs x%d", cfg.ColdPartitions*(1+cfg.Readahead)))
	if res.RawGet, err = rawGets(ctx, r.objs, objs, cfg.IsoChunkBytes, cfg.ColdPartitions*(1+cfg.Readahead)); err != nil {
		return err
	}

	// The old policy, on an empty cache.
	r.prog.step("isolation: hot reader without and with the replay (LRU)")
	if err := ir.st.stop(); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(r.dir, isoDir, "cache")); err != nil {
		return err
	}
	if ir.st, err = ir.start("lru"); err != nil {
		return err
	}
	// The limit was deleted after its window; a stored one would apply
	// again at start-up.
	if got := ir.st.mgr.FetchMaxBytesPerSecond(); got > 0 {
		return fmt.Errorf("bench: isolation: the fetch limit (%d B/s) outlived its window", got)
	}
	if err := ir.warmHot(ctx); err != nil {
		return err
	}
	if res.LRUBaseline, err = ir.measured(ctx, "isolation-lru-baseline", false, false); err != nil {
		return err
	}
	if res.LRUReplay, err = ir.measured(ctx, "isolation-lru-replay", false, true); err != nil {
		return err
	}
	return nil
}

// start starts the isolation broker on its directory with a cache policy.
func (ir *isoRun) start(policy string) (*strata, error) {
	cfg := ir.r.cfg
	return startStrata(filepath.Join(ir.r.dir, isoDir), ir.r.storeURL, &cfg,
		"remote.cache.max.bytes="+strconv.FormatInt(cfg.IsoCacheBytes, 10),
		"remote.chunk.bytes="+strconv.FormatInt(cfg.IsoChunkBytes, 10),
		"remote.cache.policy="+policy)
}

// tiered creates topic, produces payload bytes into it and waits until its
// closed segments are tiered and gone from local disk.
func (ir *isoRun) tiered(ctx context.Context, topic string, partitions int, segment, payload int64) ([]tier.PartitionStatus, error) {
	st, cfg := ir.st, ir.r.cfg
	err := createTopic(ctx, st.addr, topic, partitions, map[string]*string{
		"segment.bytes":         kadm.StringPtr(fmt.Sprint(segment)),
		"local.retention.bytes": kadm.StringPtr("0"),
		"retention.ms":          kadm.StringPtr("-1"),
	})
	if err != nil {
		return nil, err
	}
	// Batches of a quarter chunk: a chunk is a run of whole batches, so
	// the headline's 1 MiB batches would make every chunk one batch,
	// whatever remote.chunk.bytes says.
	pc := cfg.Headline
	pc.Partitions = partitions
	pc.BatchBytes = int(max(cfg.IsoChunkBytes/4, int64(pc.RecordBytes)+128))
	if _, err := produce(ctx, st.addr, topic, pc, payload, false); err != nil {
		return nil, err
	}
	return waitTiered(ctx, st.mgr, topic, partitions, 3*time.Minute+time.Duration(payload/(1<<20))*time.Second)
}

// warmHot reads the hot set twice, so that either policy holds it.
func (ir *isoRun) warmHot(ctx context.Context) error {
	for range 2 {
		if _, err := fetchConsumeFor(ctx, ir.st.addr, isoHot, ir.hotTo, "isolation hot reader, warm-up", 0, viaWire); err != nil {
			return err
		}
	}
	return nil
}

// setFetchLimit sets (nil: deletes) the cluster-wide dynamic
// remote.log.manager.fetch.max.bytes.per.second by IncrementalAlterConfigs.
func (ir *isoRun) setFetchLimit(ctx context.Context, limit *int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(ir.st.addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	ac := kadm.AlterConfig{Op: kadm.DeleteConfig, Name: "remote.log.manager.fetch.max.bytes.per.second"}
	if limit != nil {
		ac.Op, ac.Value = kadm.SetConfig, kadm.StringPtr(strconv.FormatInt(*limit, 10))
	}
	rs, err := kadm.NewClient(cl).AlterBrokerConfigs(ctx, []kadm.AlterConfig{ac})
	if err == nil && len(rs) > 0 && rs[0].Err != nil {
		err = fmt.Errorf("%w: %s", rs[0].Err, rs[0].ErrMessage)
	}
	if err != nil {
		return fmt.Errorf("bench: isolation: IncrementalAlterConfigs of the fetch limit: %w", err)
	}
	return nil
}

// measured is window under the run's CPU measurement (the phase's row of
// the CPU table, and its profile in Config.Out).
func (ir *isoRun) measured(ctx context.Context, phase string, live, replay bool) (IsoWindow, error) {
	var w IsoWindow
	err := ir.r.cpu(phase, func() (err error) {
		w, err = ir.window(ctx, live, replay)
		return err
	})
	return w, err
}

// window runs one window: the hot reader, with live the producer and tail
// consumer, with replay the cold replay, side by side for IsoWindow.
func (ir *isoRun) window(ctx context.Context, live, replay bool) (IsoWindow, error) {
	cfg, st := ir.r.cfg, ir.st
	var w IsoWindow
	liveTopic := ""
	if live {
		ir.windows++
		liveTopic = fmt.Sprintf("iso-live-%d", ir.windows)
		if err := createTopic(ctx, st.addr, liveTopic, 1, map[string]*string{"remote.storage.enable": kadm.StringPtr("false")}); err != nil {
			return w, err
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cold0, hot0 := st.mgr.TopicCost(isoCold).ReadBytes, st.mgr.TopicCost(isoHot).ReadBytes
	if replay {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tp, err := fetchConsumeFor(ctx, st.addr, isoCold, ir.coldTo, "isolation cold replay", cfg.IsoWindow, viaWire)
			if err != nil {
				fail(err)
				cancel()
				return
			}
			w.ReplayRead = tp
			w.ReplayDownloaded = st.mgr.TopicCost(isoCold).ReadBytes - cold0
			if tp.Seconds > 0 {
				w.ReplayDownMBps = float64(w.ReplayDownloaded) / 1e6 / tp.Seconds
			}
		}()
	}
	if live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := liveLatency(ctx, st.addr, liveTopic, cfg.IsoRate, cfg.IsoWindow, cfg.LatencyRecordBytes)
			if err != nil {
				fail(err)
				cancel()
				return
			}
			w.Live = l
		}()
	}
	hot, err := ir.hotReader(ctx)
	if err != nil {
		fail(err)
		cancel()
	} else {
		w.Hot = HotRead{ReadBytes: hot, DownloadedBytes: st.mgr.TopicCost(isoHot).ReadBytes - hot0}
		if w.Hot.ReadBytes > 0 {
			w.Hot.HitRate = max(0, 1-float64(w.Hot.DownloadedBytes)/float64(w.Hot.ReadBytes))
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return w, errs[0]
	}
	return w, nil
}

// hotPasses is how many times a window's hot reader reads the hot set,
// evenly spaced: a reader that comes back to recent data now and then, while
// the replay streams several caches' worth between two of its passes.
const hotPasses = 5

// hotReader reads the hot set hotPasses times over the window and returns
// the record-batch bytes it received.
func (ir *isoRun) hotReader(ctx context.Context) (int64, error) {
	every := ir.r.cfg.IsoWindow / hotPasses
	start := time.Now()
	var n int64
	for i := range hotPasses {
		if w := time.Until(start.Add(time.Duration(i) * every)); w > 0 {
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(w):
			}
		}
		tp, err := fetchConsumeFor(ctx, ir.st.addr, isoHot, ir.hotTo, "isolation hot reader", 0, viaWire)
		if err != nil {
			return n, err
		}
		n += tp.FetchedBytes
	}
	return n, nil
}

// liveLatency produces rate records/s into topic for d and measures, per
// record, its produce latency (Produce to acknowledgement) and its end-to-end
// latency (Produce to the tail consumer's poll returning it; one process,
// one clock: the send time travels in the first 8 bytes of the value).
func liveLatency(ctx context.Context, addr, topic string, rate int, d time.Duration, recBytes int) (LiveLatency, error) {
	var res LiveLatency
	var err error
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		res, err = liveLatencyLabelled(ctx, addr, topic, rate, d, recBytes)
	})
	return res, err
}

func liveLatencyLabelled(ctx context.Context, addr, topic string, rate int, d time.Duration, recBytes int) (LiveLatency, error) {
	n := max(int64(float64(rate)*d.Seconds()), 1)
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		return LiveLatency{}, err
	}
	defer cons.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return LiveLatency{}, err
	}
	defer prod.Close()
	// Warm both connections before the clock starts.
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: make([]byte, recBytes)}).FirstErr(); err != nil {
		return LiveLatency{}, err
	}
	for got := 0; got < 1; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return LiveLatency{}, ctx.Err()
		}
		got += fs.NumRecords()
	}
	e2e := hdrhistogram.New(1, 60_000_000, 3) // microseconds
	errc := make(chan error, 1)
	go func() {
		var seen int64
		for seen < n {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				errc <- fmt.Errorf("bench: isolation tail consumer: %d of %d records: %w", seen, n, ctx.Err())
				return
			}
			now := time.Now().UnixNano()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					if sent := int64(binary.BigEndian.Uint64(r.Value)); sent > 0 {
						e2e.RecordValue(max(1, (now-sent)/1000))
						seen++
					}
				}
			})
		}
		errc <- nil
	}()
	var (
		pmu     sync.Mutex
		produce = hdrhistogram.New(1, 60_000_000, 3)
		perr    atomic.Pointer[error]
	)
	interval := time.Duration(float64(time.Second) / float64(rate))
	start := time.Now()
	for i := int64(0); i < n; i++ {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		v := make([]byte, recBytes)
		sent := time.Now()
		binary.BigEndian.PutUint64(v, uint64(sent.UnixNano()))
		prod.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				perr.Store(&err)
				return
			}
			us := max(1, time.Since(sent).Microseconds())
			pmu.Lock()
			produce.RecordValue(us)
			pmu.Unlock()
		})
	}
	if err := prod.Flush(ctx); err != nil {
		return LiveLatency{}, err
	}
	if e := perr.Load(); e != nil {
		return LiveLatency{}, fmt.Errorf("bench: isolation produce: %w", *e)
	}
	if err := <-errc; err != nil {
		return LiveLatency{}, err
	}
	ms := func(h *hdrhistogram.Histogram, q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	pmu.Lock()
	defer pmu.Unlock()
	return LiveLatency{Records: e2e.TotalCount(),
		ProduceP50: ms(produce, 50), ProduceP99: ms(produce, 99),
		E2EP50: ms(e2e, 50), E2EP99: ms(e2e, 99)}, nil
}

// figures are the isolation workload's rows of the summary table, each with
// its baseline, ratio and, where the issue sets one, target.
func (iso *Isolation) figures() []Figure {
	var fs []Figure
	fig := func(name, unit string, v float64, base string, bv float64, target string, pass func(ratio float64) bool) {
		f := Figure{Name: "isolation: " + name, Unit: unit, Value: v, Baseline: base, BaselineValue: bv, Target: target}
		if bv > 0 {
			f.Ratio = v / bv
			if pass != nil {
				p := pass(f.Ratio)
				f.Pass = &p
			}
		}
		fs = append(fs, f)
	}
	atMost := func(x float64) func(float64) bool { return func(r float64) bool { return r <= x } }
	atLeast := func(x float64) func(float64) bool { return func(r float64) bool { return r >= x } }
	b, rp, lim := iso.Baseline.Live, iso.Replay.Live, iso.Limited.Live
	if b.Records > 0 && rp.Records > 0 {
		fig(fmt.Sprintf("produce p50 at %d rec/s, cold replay at full speed", iso.Rate), "ms", rp.ProduceP50, "no replay", b.ProduceP50, "", nil)
		fig("produce p99, cold replay at full speed", "ms", rp.ProduceP99, "no replay", b.ProduceP99, "<= 1.5", atMost(1.5))
		fig("tail consumer p50 (end to end), cold replay at full speed", "ms", rp.E2EP50, "no replay", b.E2EP50, "", nil)
		fig("tail consumer p99 (end to end), cold replay at full speed", "ms", rp.E2EP99, "no replay", b.E2EP99, "<= 1.5", atMost(1.5))
	}
	if b.Records > 0 && lim.Records > 0 {
		fig("produce p99, replay at the fetch limit", "ms", lim.ProduceP99, "no replay", b.ProduceP99, "", nil)
		fig("tail consumer p99 (end to end), replay at the fetch limit", "ms", lim.E2EP99, "no replay", b.E2EP99, "", nil)
	}
	if iso.Baseline.Hot.ReadBytes > 0 && iso.Replay.Hot.ReadBytes > 0 {
		fig("hot reader byte hit rate, cold replay at full speed (S3-FIFO)", "", iso.Replay.Hot.HitRate, "no replay (S3-FIFO)", iso.Baseline.Hot.HitRate, ">= 0.9", atLeast(0.9))
	}
	if iso.Baseline.Hot.ReadBytes > 0 && iso.Limited.Hot.ReadBytes > 0 {
		fig("hot reader byte hit rate, replay at the fetch limit (S3-FIFO)", "", iso.Limited.Hot.HitRate, "no replay (S3-FIFO)", iso.Baseline.Hot.HitRate, "", nil)
	}
	if iso.LRUBaseline.Hot.ReadBytes > 0 && iso.LRUReplay.Hot.ReadBytes > 0 {
		fig("hot reader byte hit rate, cold replay at full speed (LRU, the old policy)", "", iso.LRUReplay.Hot.HitRate, "no replay (LRU)", iso.LRUBaseline.Hot.HitRate, "", nil)
	}
	if iso.Replay.Hot.ReadBytes > 0 && iso.LRUReplay.Hot.HitRate > 0 { // (a ratio to no hit at all is no figure)
		fig("hot reader byte hit rate during the replay, S3-FIFO", "", iso.Replay.Hot.HitRate, "LRU", iso.LRUReplay.Hot.HitRate, "", nil)
	}
	if iso.LimitBytesPerSec > 0 && iso.Limited.ReplayRead.Seconds > 0 {
		fig("replay download rate with the fetch limit set", "MB/s", iso.Limited.ReplayDownMBps, "remote.log.manager.fetch.max.bytes.per.second", float64(iso.LimitBytesPerSec)/1e6,
			"0.9 to 1.1", func(r float64) bool { return r >= 0.9 && r <= 1.1 })
	}
	if iso.RawGet.MBps > 0 && iso.Replay.ReplayRead.Seconds > 0 {
		fig("cold replay at full speed, bytes received (beside the live and hot workloads)", "MB/s", iso.Replay.ReplayRead.LogMBps,
			fmt.Sprintf("raw GETs x%d, alone", iso.RawGet.Concurrency), iso.RawGet.MBps, ">= 0.8", atLeast(0.8))
	}
	return fs
}

// markdown is the isolation workload's detail table.
func (iso *Isolation) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n### Isolation: a cold replay beside a live producer, a tail consumer and a hot reader\n\n")
	w("A broker of its own: chunk cache %s (remote.chunk.bytes %s); the replayed topic %s tiered (%.1f caches), read from offset 0 at full speed pass after pass by the protocol-level consumer; the hot set %s tiered, read %d times per window; a producer at %d records/s of %d B (acks=1) and a tail consumer on a local topic; windows of %s s. Hit rate by bytes: 1 - bytes downloaded for the hot topic / bytes the hot reader received. The fetch limit is set by IncrementalAlterConfigs (cluster-wide default) to half the full-speed replay's download rate, and deleted after; LRU runs after a restart with remote.cache.policy=lru on an empty cache.\n\n",
		mib(iso.CacheBytes), sizeStr(iso.ChunkBytes), mib(iso.ReplayBytes), float64(iso.ReplayBytes)/float64(max(iso.CacheBytes, 1)), mib(iso.HotBytes), hotPasses, iso.Rate, iso.RecordBytes, num(iso.Window))
	w("| window | policy | produce p50 ms | produce p99 ms | tail p50 ms | tail p99 ms | hot read | hot downloaded | hot hit rate | replay MB/s received | replay MB/s downloaded |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(name, policy string, x IsoWindow) {
		live := func(v float64) string {
			if x.Live.Records == 0 {
				return "-"
			}
			return num(v)
		}
		replay, down := "-", "-"
		if x.ReplayRead.Seconds > 0 {
			replay, down = num(x.ReplayRead.LogMBps), num(x.ReplayDownMBps)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %.3f | %s | %s |\n", name, policy, live(x.Live.ProduceP50), live(x.Live.ProduceP99), live(x.Live.E2EP50), live(x.Live.E2EP99),
			mib(x.Hot.ReadBytes), mib(x.Hot.DownloadedBytes), x.Hot.HitRate, replay, down)
	}
	row("no replay", "S3-FIFO", iso.Baseline)
	row("cold replay, full speed", "S3-FIFO", iso.Replay)
	row(fmt.Sprintf("cold replay, fetch limit %s MB/s", num(float64(iso.LimitBytesPerSec)/1e6)), "S3-FIFO", iso.Limited)
	row("no replay", "LRU", iso.LRUBaseline)
	row("cold replay, full speed", "LRU", iso.LRUReplay)
	w("\nRaw GETs of the replayed topic's objects, alone: %s MB/s (%s).\n", num(iso.RawGet.MBps), iso.RawGet.How)
	return b.String()
}
