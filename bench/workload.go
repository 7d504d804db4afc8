package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sample is one point of a throughput series.
type Sample struct {
	T    float64 `json:"t"`    // seconds since the phase started
	MBps float64 `json:"mbps"` // MB/s over the last interval: payload (kgo consumer, producer) or record-batch bytes (protocol-level consumer)
}

// Series is the throughput over time of one phase.
type Series struct {
	Name    string   `json:"name"`
	Samples []Sample `json:"samples"`
}

// sampler turns a byte counter into a Series every 100ms until stopped.
func sampler(name string, n *atomic.Int64) (stop func() Series) {
	s := Series{Name: name}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last, lastT := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				v := n.Load()
				s.Samples = append(s.Samples, Sample{T: now.Sub(start).Seconds(), MBps: float64(v-last) / 1e6 / now.Sub(lastT).Seconds()})
				last, lastT = v, now
			}
		}
	}()
	return func() Series { close(done); <-finished; return s }
}

// Throughput is the result of one produce or consume phase.
type Throughput struct {
	// Client is the consumer that measured a consume phase: clientDecoding
	// or clientProtocol (empty for produce).
	Client       string  `json:"client,omitempty"`
	FetchVersion int16   `json:"fetch_version,omitempty"` // protocol-level consumer: the Fetch version kgo negotiated
	Records      int64   `json:"records"`
	PayloadBytes int64   `json:"payload_bytes"`           // keys and values; 0 for the protocol-level consumer (it does not decode)
	FetchedBytes int64   `json:"fetched_bytes,omitempty"` // protocol-level consumer: record-batch bytes received
	LogBytes     int64   `json:"log_bytes,omitempty"`     // record-batch bytes, as the broker counted them where it can
	Seconds      float64 `json:"seconds"`
	PayloadMBps  float64 `json:"payload_mbps"`
	LogMBps      float64 `json:"log_mbps,omitempty"`
	RecordsPerS  float64 `json:"records_per_s"`
	Series       Series  `json:"-"`
}

// add returns the sum of t and u, two runs of the same phase: counts and
// seconds add up, rates are recomputed; the client, version and series are
// the first run's.
func (t Throughput) add(u Throughput) Throughput {
	if t.Client == "" && t.Seconds == 0 {
		t.Client, t.FetchVersion, t.Series = u.Client, u.FetchVersion, u.Series
	}
	t.Records += u.Records
	t.PayloadBytes += u.PayloadBytes
	t.FetchedBytes += u.FetchedBytes
	t.LogBytes += u.LogBytes
	t.finish(time.Duration((t.Seconds + u.Seconds) * float64(time.Second)))
	return t
}

func (t *Throughput) finish(d time.Duration) {
	t.Seconds = d.Seconds()
	if t.Seconds > 0 {
		t.PayloadMBps = float64(t.PayloadBytes) / 1e6 / t.Seconds
		t.LogMBps = float64(t.LogBytes) / 1e6 / t.Seconds
		t.RecordsPerS = float64(t.Records) / t.Seconds
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// codecs are the producer compression codecs a ProduceCase may name.
var codecs = map[string]kgo.CompressionCodec{
	"": kgo.NoCompression(), "none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// compressibleValues are distinct values of size bytes, made of 8-byte
// words drawn at random from a dictionary of 256 random words: text-like
// data that lz4 shrinks about 2.5 times and zstd more. There are enough
// values (up to 1024, 8 MiB at most) that a record rarely repeats one
// inside a codec's window.
func compressibleValues(size int) [][]byte {
	words := randomBytes(256 * 8)
	idx := randomBytes(8 << 20)
	n := max(16, min(1024, (8<<20)/size))
	out := make([][]byte, n)
	k := 0
	for i := range out {
		v := make([]byte, 0, size+8)
		for len(v) < size {
			w := int(idx[k%len(idx)])
			k++
			v = append(v, words[w*8:w*8+8]...)
		}
		out[i] = v[:size]
	}
	return out
}

func createTopic(ctx context.Context, addr, topic string, partitions int, configs map[string]*string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("bench: create topic %s: %w", topic, err)
	}
	return nil
}

// produce sends payload bytes of records of pc to topic with franz-go.
// roundRobin spreads records over every partition (many-partitions workload);
// otherwise batches stick to a partition until full, as producers do.
func produce(ctx context.Context, addr, topic string, pc ProduceCase, payload int64, roundRobin bool) (Throughput, error) {
	var res Throughput
	var err error
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		res, err = produceLabelled(ctx, addr, topic, pc, payload, roundRobin)
	})
	return res, err
}

func produceLabelled(ctx context.Context, addr, topic string, pc ProduceCase, payload int64, roundRobin bool) (Throughput, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(int32(pc.BatchBytes)),
		kgo.ProducerBatchCompression(codecs[pc.Compression]),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.MaxBufferedBytes(max(64<<20, 4*pc.BatchBytes*pc.Partitions)),
		kgo.MaxBufferedRecords(1 << 30),
	}
	if roundRobin {
		opts = append(opts, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	} else {
		opts = append(opts, kgo.RecordPartitioner(kgo.UniformBytesPartitioner(pc.BatchBytes, false, false, nil)))
	}
	switch pc.Acks {
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if pc.InFlight > 0 && pc.Acks != "all" {
		opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(pc.InFlight))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return Throughput{}, err
	}
	defer cl.Close()
	values := [][]byte{randomBytes(pc.RecordBytes)}
	if pc.Compression != "" && pc.Compression != "none" {
		values = compressibleValues(pc.RecordBytes)
	}
	n := payload / int64(pc.RecordBytes)
	var (
		done     atomic.Int64
		firstErr error
		errOnce  sync.Once
	)
	stop := sampler("produce "+topic, &done)
	cb := func(r *kgo.Record, err error) {
		if err != nil {
			errOnce.Do(func() { firstErr = err })
			return
		}
		done.Add(int64(len(r.Value)))
	}
	start := time.Now()
	for i := int64(0); i < n && ctx.Err() == nil; i++ {
		cl.Produce(ctx, &kgo.Record{Value: values[i%int64(len(values))]}, cb)
	}
	if err := cl.Flush(ctx); err != nil {
		return Throughput{}, err
	}
	res := Throughput{Records: n, PayloadBytes: done.Load()}
	res.finish(time.Since(start))
	res.Series = stop()
	if firstErr != nil {
		return res, fmt.Errorf("bench: produce to %s: %w", topic, firstErr)
	}
	return res, nil
}

// consume reads topic from offset 0 until every partition p has given
// upTo[p] records (offsets 0..upTo[p]-1), then stops.
func consume(ctx context.Context, addr, topic string, upTo map[int32]int64, name string) (Throughput, error) {
	return consumeFor(ctx, addr, topic, upTo, name, 0)
}

// consumeFor repeats whole passes of consume until minDur has passed, so a
// phase lasts long enough for its CPU profile to hold enough samples.
func consumeFor(ctx context.Context, addr, topic string, upTo map[int32]int64, name string, minDur time.Duration) (Throughput, error) {
	var total Throughput
	var err error
	start := time.Now()
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		for pass := 0; pass == 0 || time.Since(start) < minDur; pass++ {
			var res Throughput
			res, err = consumeLabelled(ctx, addr, topic, upTo, name)
			if err != nil {
				return
			}
			total.Records += res.Records
			total.PayloadBytes += res.PayloadBytes
			if pass == 0 {
				total.Series = res.Series
			}
		}
	})
	total.Client = clientDecoding
	total.finish(time.Since(start))
	return total, err
}

func consumeLabelled(ctx context.Context, addr, topic string, upTo map[int32]int64, name string) (Throughput, error) {
	offsets := map[int32]kgo.Offset{}
	var want int64
	for p, n := range upTo {
		if n > 0 {
			offsets[p] = kgo.NewOffset().At(0)
			want += n
		}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
		kgo.FetchMaxWait(fetchMaxWait),
	)
	if err != nil {
		return Throughput{}, err
	}
	defer cl.Close()
	var got atomic.Int64
	stop := sampler(name, &got)
	var res Throughput
	start := time.Now()
	for res.Records < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			stop()
			return res, fmt.Errorf("bench: consume %s: %d of %d records: %w", topic, res.Records, want, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = errors.Join(ferr, fmt.Errorf("%s[%d]: %w", t, p, err)) })
		if ferr != nil {
			stop()
			return res, fmt.Errorf("bench: consume %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < upTo[r.Partition] {
				res.Records++
				res.PayloadBytes += int64(len(r.Value) + len(r.Key))
			}
		})
		got.Store(res.PayloadBytes)
	}
	res.finish(time.Since(start))
	res.Series = stop()
	return res, nil
}

// Latency is the end-to-end latency workload's result, in milliseconds.
type Latency struct {
	Rate      int                `json:"rate"`
	Seconds   float64            `json:"seconds"`
	Records   int64              `json:"records"`
	P50, P99  float64            `json:"-"`
	P999, Max float64            `json:"-"`
	Quantiles map[string]float64 `json:"quantiles_ms"`
	CDF       []CDFPoint         `json:"cdf"`
}

// CDFPoint is one point of the latency distribution.
type CDFPoint struct {
	Quantile float64 `json:"q"`
	Ms       float64 `json:"ms"`
}

// latency produces rate records/s for d and measures, per record, the time
// from Produce to the consumer's poll returning it (one process, one clock;
// the send time travels in the first 8 bytes of the value).
func latency(ctx context.Context, addr, topic string, rate int, d time.Duration, recBytes int) (Latency, error) {
	return latencyAcks(ctx, []string{addr}, topic, rate, d, recBytes, kgo.LeaderAck())
}

// latencyAcks is latency with the producer's acks (idempotent with
// acks=all), the clients bootstrapped from seeds.
func latencyAcks(ctx context.Context, seeds []string, topic string, rate int, d time.Duration, recBytes int, acks kgo.Acks) (Latency, error) {
	var res Latency
	var err error
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		res, err = latencyLabelled(ctx, seeds, topic, rate, d, recBytes, acks)
	})
	return res, err
}

func latencyLabelled(ctx context.Context, seeds []string, topic string, rate int, d time.Duration, recBytes int, acks kgo.Acks) (Latency, error) {
	_, hist, err := timedProduce(ctx, seeds, topic, rate, d, recBytes, acks, "latency")
	if err != nil {
		return Latency{}, err
	}
	ms := func(q float64) float64 { return float64(hist.ValueAtQuantile(q)) / 1000 }
	res := Latency{Rate: rate, Seconds: d.Seconds(), Records: hist.TotalCount(),
		P50: ms(50), P99: ms(99), P999: ms(99.9), Max: float64(hist.Max()) / 1000}
	res.Quantiles = map[string]float64{"p50": res.P50, "p90": ms(90), "p99": res.P99, "p99.9": res.P999, "max": res.Max}
	for _, q := range []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100} {
		res.CDF = append(res.CDF, CDFPoint{Quantile: q / 100, Ms: ms(q)})
	}
	return res, nil
}

// timedProduce produces rate records/s of recBytes into partition 0 of
// topic for d (at least one) with a tail consumer from offset 0, and
// measures, per record, the time from Produce to its acknowledgement
// (produce) and to the consumer's poll returning it (e2e), in
// microseconds: one process, one clock; the send time travels in the first
// 8 bytes of the value. Both clients are warmed by one record before the
// clock starts. what names the workload in errors.
func timedProduce(ctx context.Context, seeds []string, topic string, rate int, d time.Duration, recBytes int, acks kgo.Acks, what string) (produce, e2e *hdrhistogram.Histogram, err error) {
	n := max(int64(float64(rate)*d.Seconds()), 1)
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	if err != nil {
		return nil, nil, err
	}
	defer cons.Close()
	popts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(acks), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression())}
	if acks != kgo.AllISRAcks() {
		popts = append(popts, kgo.DisableIdempotentWrite())
	}
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return nil, nil, err
	}
	defer prod.Close()
	// Warm both connections before the clock starts.
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: make([]byte, recBytes)}).FirstErr(); err != nil {
		return nil, nil, err
	}
	for got := 0; got < 1; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		got += fs.NumRecords()
	}
	e2e = hdrhistogram.New(1, 60_000_000, 3)
	errc := make(chan error, 1)
	go func() {
		var seen int64
		for seen < n {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				errc <- fmt.Errorf("bench: %s tail consumer: %d of %d records: %w", what, seen, n, ctx.Err())
				return
			}
			now := time.Now().UnixNano()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) >= 8 {
					if sent := int64(binary.BigEndian.Uint64(r.Value)); sent > 0 { // the warm-up record has none
						e2e.RecordValue(max(1, (now-sent)/1000))
						seen++
					}
				}
			})
		}
		errc <- nil
	}()
	var (
		pmu  sync.Mutex
		perr atomic.Pointer[error]
	)
	produce = hdrhistogram.New(1, 60_000_000, 3)
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
		return nil, nil, err
	}
	if e := perr.Load(); e != nil {
		return nil, nil, fmt.Errorf("bench: %s produce: %w", what, *e)
	}
	if err := <-errc; err != nil {
		return nil, nil, err
	}
	pmu.Lock()
	defer pmu.Unlock()
	return produce, e2e, nil
}
