package checker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DialFunc dials a broker; tests pass one that dials from inside a network
// namespace. Nil is net.Dialer's.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Client is what every workload needs to reach the cluster.
type Client struct {
	Brokers []string
	Topic   string
	Dial    DialFunc
}

func (c Client) opts(more ...kgo.Opt) ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("checker: no brokers given")
	}
	if c.Topic == "" {
		return nil, errors.New("checker: no topic given")
	}
	o := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.Dial != nil {
		o = append(o, kgo.Dialer(c.Dial))
	}
	return append(o, more...), nil
}

// ProduceConfig is the produce workload.
type ProduceConfig struct {
	Client
	Producers int           // concurrent producers, each its own client (producer ID); default 3
	Duration  time.Duration // how long to produce; then in-flight records get Drain to finish
	Name      string        // producer names are Name0, Name1, ...; must be unique per run (no '-')
	Rate      int           // records per second per producer; 0 is as fast as acknowledgements allow
	Keys      int           // distinct keys, spread over the partitions by the default partitioner; default 64
	// DeliveryTimeout bounds one record's retries (kgo.RecordDeliveryTimeout);
	// default 30s. A record that times out is recorded as failed.
	DeliveryTimeout time.Duration
	// Drain bounds the wait for in-flight records after Duration; default DeliveryTimeout.
	Drain time.Duration
	// OnAck, if set, is called after each acknowledgement is recorded (tests
	// time their faults by it).
	OnAck func()
}

// Produce runs P idempotent acks=all producers writing "<name><i>-<seq>"
// until Duration passes or ctx ends, and records each record's outcome:
// acknowledged at (partition, offset), or failed with the client's error.
func Produce(ctx context.Context, cfg ProduceConfig) (History, error) {
	if cfg.Producers <= 0 {
		cfg.Producers = 3
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 64
	}
	if cfg.Name == "" {
		cfg.Name = "p"
	}
	for _, c := range cfg.Name {
		if c == '-' {
			return nil, fmt.Errorf("checker: producer name %q contains '-'", cfg.Name)
		}
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	if cfg.Drain <= 0 {
		cfg.Drain = cfg.DeliveryTimeout
	}
	var (
		mu sync.Mutex
		h  History
	)
	record := func(e Event) {
		mu.Lock()
		h = append(h, e)
		mu.Unlock()
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	clients := make([]*kgo.Client, cfg.Producers)
	for i := range clients {
		opts, err := cfg.opts(
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
			kgo.MaxBufferedRecords(2000),
			kgo.ProducerLinger(2*time.Millisecond),
		)
		if err != nil {
			return nil, err
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return nil, fmt.Errorf("checker: producer client: %w", err)
		}
		clients[i] = cl
	}
	var wg sync.WaitGroup
	for i, cl := range clients {
		name := cfg.Name + strconv.Itoa(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick <-chan time.Time
			if cfg.Rate > 0 {
				t := time.NewTicker(time.Second / time.Duration(cfg.Rate))
				defer t.Stop()
				tick = t.C
			}
			var pending sync.WaitGroup
			for seq := int64(0); runCtx.Err() == nil; seq++ {
				if tick != nil {
					select {
					case <-tick:
					case <-runCtx.Done():
					}
					if runCtx.Err() != nil {
						break
					}
				}
				v := name + "-" + strconv.FormatInt(seq, 10)
				rec := &kgo.Record{Topic: cfg.Topic, Key: []byte("k" + strconv.FormatInt(seq%int64(cfg.Keys), 10)), Value: []byte(v)}
				pending.Add(1)
				// The record's context is ctx, not runCtx: once Duration
				// passes, records in flight still get Drain to finish.
				cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
					defer pending.Done()
					if err != nil {
						record(Event{Kind: KindFail, Topic: cfg.Topic, Partition: r.Partition, Value: v, Err: err.Error()})
						return
					}
					record(Event{Kind: KindAck, Topic: cfg.Topic, Partition: r.Partition, Offset: r.Offset, Value: v})
					if cfg.OnAck != nil {
						cfg.OnAck()
					}
				})
			}
			drainCtx, cancelDrain := context.WithTimeout(ctx, cfg.Drain)
			defer cancelDrain()
			// A flush that times out leaves records buffered: Close fails
			// them, and their callbacks record them as failed.
			cl.Flush(drainCtx)
			cl.Close()
			pending.Wait()
		}()
	}
	wg.Wait()
	return h, nil
}

// ConsumeConfig is the consume workload.
type ConsumeConfig struct {
	Client
	Group    string
	Duration time.Duration // how long to consume (or until ctx ends)
}

// Consume reads the topic as a member of a consumer group, from the start
// when the group has no committed offsets, and records every record it reads.
func Consume(ctx context.Context, cfg ConsumeConfig) (History, error) {
	if cfg.Group == "" {
		return nil, errors.New("checker: no consumer group given")
	}
	opts, err := cfg.opts(kgo.ConsumerGroup(cfg.Group), kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("checker: consumer client: %w", err)
	}
	defer cl.Close()
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var h History
	for runCtx.Err() == nil {
		fs := cl.PollFetches(runCtx)
		fs.EachRecord(func(r *kgo.Record) {
			h = append(h, Event{Kind: KindConsume, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
		})
	}
	return h, nil
}

// ReadConfig is the final read.
type ReadConfig struct {
	Client
	Timeout time.Duration // bounds the whole read; default 2 minutes
}

// FinalRead reads every partition of the topic from its log start offset to
// its high watermark (as listed when the read starts) and records each record
// and each partition's range.
func FinalRead(ctx context.Context, cfg ReadConfig) (History, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	opts, err := cfg.opts()
	if err != nil {
		return nil, err
	}
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListStartOffsets(ctx, cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("checker: list start offsets of %q: %w", cfg.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("checker: list end offsets of %q: %w", cfg.Topic, err)
	}
	var h History
	assign := map[int32]kgo.Offset{}
	next := map[int32]int64{} // partitions still to read -> offset wanted next
	end := map[int32]int64{}
	starts.Each(func(s kadm.ListedOffset) {
		e, _ := ends.Lookup(s.Topic, s.Partition)
		h = append(h, Event{Kind: KindRange, Topic: cfg.Topic, Partition: s.Partition, Offset: s.Offset, End: e.Offset})
		if e.Offset > s.Offset {
			assign[s.Partition] = kgo.NewOffset().At(s.Offset)
			next[s.Partition] = s.Offset
			end[s.Partition] = e.Offset
		}
	})
	if len(next) == 0 {
		return h, nil
	}
	opts, _ = cfg.opts(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: assign}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(next) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return h, fmt.Errorf("checker: final read stopped (%v) with %d partitions unfinished, e.g. %s", ctx.Err(), len(next), unfinished(next, end))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := next[r.Partition]; !ok || r.Offset >= end[r.Partition] {
				return
			}
			h = append(h, Event{Kind: KindFinal, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			next[r.Partition] = r.Offset + 1
			if r.Offset+1 >= end[r.Partition] {
				delete(next, r.Partition)
			}
		})
	}
	return h, nil
}

func unfinished(next, end map[int32]int64) string {
	for p, o := range next {
		return fmt.Sprintf("partition %d at %d of %d", p, o, end[p])
	}
	return ""
}

// CreateTopic creates the topic with the given partitions and replication
// factor (-1: the broker's default); a topic that exists already is no error.
func CreateTopic(ctx context.Context, c Client, partitions int32, replicationFactor int16) error {
	opts, err := c.opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, replicationFactor, nil, c.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("checker: create topic %q: %w", c.Topic, err)
	}
	return nil
}

// Ping sends ApiVersions to the broker at addr and checks the answer.
func Ping(ctx context.Context, addr string, dial DialFunc) error {
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0)}
	if dial != nil {
		opts = append(opts, kgo.Dialer(dial))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("ApiVersions to %s: %w", addr, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("ApiVersions to %s: %w", addr, err)
	}
	return nil
}

// Run is a produce workload and a consume workload running at once (what a
// fault test runs while it injects its faults): Start it, watch Acked, then
// Wait for both histories.
type Run struct {
	acked      atomic.Int64
	wg         sync.WaitGroup
	prod, cons History
	perr, cerr error
}

// StartRun starts pc (its OnAck is wrapped to count acknowledgements) and,
// concurrently, cc.
func StartRun(ctx context.Context, pc ProduceConfig, cc ConsumeConfig) *Run {
	r := &Run{}
	onAck := pc.OnAck
	pc.OnAck = func() {
		r.acked.Add(1)
		if onAck != nil {
			onAck()
		}
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.prod, r.perr = Produce(ctx, pc)
	}()
	go func() {
		defer r.wg.Done()
		r.cons, r.cerr = Consume(ctx, cc)
	}()
	return r
}

// Acked is how many records have been acknowledged so far.
func (r *Run) Acked() int64 { return r.acked.Load() }

// Wait waits for both workloads and returns their histories.
func (r *Run) Wait() (prod, cons History, err error) {
	r.wg.Wait()
	if r.perr != nil || r.cerr != nil {
		return r.prod, r.cons, fmt.Errorf("checker: produce: %v, consume: %v", r.perr, r.cerr)
	}
	return r.prod, r.cons, nil
}

// Finish waits for both workloads, then reads every partition from its log
// start to its high watermark (FinalRead): the three histories Analyze takes.
func (r *Run) Finish(ctx context.Context, rc ReadConfig) (prod, cons, final History, err error) {
	if prod, cons, err = r.Wait(); err != nil {
		return prod, cons, nil, err
	}
	final, err = FinalRead(ctx, rc)
	return prod, cons, final, err
}
