package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ClusterResult is `strata bench --cluster N`: N child-process brokers on
// this machine (cluster.go, clusterproc.go).
type ClusterResult struct {
	Brokers          int   `json:"brokers"`
	SessionTimeoutMs int64 `json:"broker_session_timeout_ms"`
	HeartbeatMs      int64 `json:"broker_heartbeat_interval_ms,omitempty"` // 0: strata's default
	// Case is the producer of both throughput rows (its Acks is replaced:
	// acks=1 at RF 1, acks=all at RF 3).
	Case ProduceCase `json:"case"`
	// RF1 is acks=1 at replication factor 1, RF3 acks=all at replication
	// factor 3: payload bytes over ClusterRounds alternating rounds each.
	RF1 Throughput `json:"rf1_acks1"`
	RF3 Throughput `json:"rf3_acks_all"`
	// RF1BrokerCPU and RF3BrokerCPU are the brokers' CPU seconds (utime +
	// stime of the three processes, /proc/<pid>/stat) over those phases.
	RF1BrokerCPU float64 `json:"rf1_brokers_cpu_s"`
	RF3BrokerCPU float64 `json:"rf3_brokers_cpu_s"`
	// Latency is produce to consume at RF 3, acks=all, one partition.
	Latency Latency `json:"latency_rf3"`
	// Failover is one entry per kill -9 of a partition's leader.
	Failover []Failover `json:"failover"`
	// FailoverP50 and FailoverMax are over Failover's AllAckedSeconds.
	FailoverP50 float64 `json:"failover_p50_s"`
	FailoverMax float64 `json:"failover_max_s"`
	// FailedProbes are produces of the failover probe that returned an
	// error (the client retries the retriable ones itself).
	FailedProbes int64              `json:"failover_failed_produces"`
	Shutdown     ControlledShutdown `json:"controlled_shutdown"`
}

// Failover is one kill -9 of a leader, timed from just before SIGKILL.
type Failover struct {
	Kill       int     `json:"kill"`
	Node       int32   `json:"node"`       // node.id killed
	Partitions []int32 `json:"partitions"` // the partitions it led
	// EtcdLeader says whether the node was also the embedded etcd
	// cluster's leader (etcd must elect another before leases expire).
	EtcdLeader bool `json:"etcd_leader"`
	// ElectedSeconds: until a survivor's Metadata named a new leader for
	// every one of them (lease expiry plus the controller's writes).
	ElectedSeconds float64 `json:"elected_s"`
	// ExpiredSeconds: until etcd deleted the node's registration (its
	// lease expired), as a watch on /strata/ saw it; WrittenSeconds: until
	// the controller's write of the last of its partitions' new states.
	// Zero if the watch missed them.
	ExpiredSeconds float64 `json:"registration_deleted_s"`
	WrittenSeconds float64 `json:"partitions_written_s"`
	// FirstAckSeconds: until the first acknowledged produce, issued after
	// the kill, on any of them; AllAckedSeconds: on every one of them.
	FirstAckSeconds float64 `json:"first_ack_s"`
	AllAckedSeconds float64 `json:"all_acked_s"`
}

// ControlledShutdown is SIGTERM of a leader under acks=all load.
type ControlledShutdown struct {
	Node       int32   `json:"node"`
	Partitions []int32 `json:"partitions"` // the partitions it led
	Acked      int64   `json:"acked"`      // produces acknowledged during the phase
	Failed     int64   `json:"failed"`     // produces that returned an error
	FirstError string  `json:"first_error,omitempty"`
	// ExitSeconds is SIGTERM to the process's exit; ExitCode its status.
	ExitSeconds float64 `json:"exit_s"`
	ExitCode    int     `json:"exit_code"`
	// ElectedSeconds: SIGTERM until a survivor's Metadata named other
	// leaders for all its partitions.
	ElectedSeconds float64 `json:"elected_s"`
	// PauseSeconds is the longest time, from SIGTERM until a second after
	// the exit, with no acknowledgement on one of its partitions (the
	// time until produces flow again).
	PauseSeconds float64 `json:"longest_pause_s"`
}

// ClusterRounds is how many alternating rounds (RF 1, RF 3, RF 1, RF 3)
// the throughput comparison makes, each of half the bytes.
const clusterRounds = 2

// clusterTopicPartitions is the partition count of the failover and
// controlled-shutdown topic (RF 3): leaders spread over the brokers.
const clusterTopicPartitions = 6

func (r *runner) runCluster(ctx context.Context) error {
	cfg := r.cfg
	rep := r.rep
	rep.Machine = describeMachine()
	bin, err := strataBinary(&cfg)
	if err != nil {
		return err
	}
	res := &ClusterResult{Brokers: cfg.Cluster, SessionTimeoutMs: cfg.ClusterSessionTimeout.Milliseconds(), HeartbeatMs: cfg.ClusterHeartbeat.Milliseconds(), Case: cfg.Headline}
	rep.Cluster = res
	rep.Mode = fmt.Sprintf("%d child-process brokers (strata serve, each a broker and an embedded etcd member), file:// shared tier", cfg.Cluster)
	extra := []string{
		fmt.Sprintf("broker.session.timeout.ms=%d", res.SessionTimeoutMs),
		"message.max.bytes=16777216",
		"log.retention.check.interval.ms=1000",
	}
	if res.HeartbeatMs > 0 {
		extra = append(extra, fmt.Sprintf("broker.heartbeat.interval.ms=%d", res.HeartbeatMs))
	}
	r.prog.step(fmt.Sprintf("start %d brokers", cfg.Cluster))
	c, err := startProcCluster(ctx, bin, filepath.Join(r.dir, "cluster"), cfg.Cluster, extra)
	if err != nil {
		return err
	}
	defer c.close()

	// Throughput: acks=1 at RF 1 beside acks=all at RF 3, same producer.
	// The same producer on both sides: one produce request in flight per
	// broker. franz-go sends one at a time with idempotence (acks=all) and
	// five without (acks=1, its default): compared as they come, the ratio
	// measured the client's pipelining more than the replication.
	rf1, rf3 := cfg.Headline, cfg.Headline
	rf1.Acks, rf3.Acks = "1", "all"
	rf1.InFlight, rf3.InFlight = 1, 1
	for round := range clusterRounds {
		for _, side := range []struct {
			pc  ProduceCase
			rf  int
			out *Throughput
			cpu *float64
		}{{rf1, 1, &res.RF1, &res.RF1BrokerCPU}, {rf3, 3, &res.RF3, &res.RF3BrokerCPU}} {
			topic := fmt.Sprintf("bench-cluster-rf%d-%d", side.rf, round)
			r.prog.step(fmt.Sprintf("produce RF %d acks=%s, round %d", side.rf, side.pc.Acks, round+1))
			if err := createTopicRF(ctx, c.seeds(), topic, side.pc.Partitions, side.rf, nil); err != nil {
				return err
			}
			if err := c.waitInSync(ctx, topic, side.rf); err != nil {
				return err
			}
			// Every leader takes a record first: a leader applies a new
			// topic's state a moment after etcd has it, and a client that
			// meets it before then backs off (franz-go: 250 ms and up),
			// which measured the client's backoff, not the replication.
			if err := warmPartitions(ctx, c.seeds(), topic, side.pc.Partitions); err != nil {
				return err
			}
			var t Throughput
			cpu0 := c.cpu()
			t, err := produce(ctx, c.addr(0), topic, side.pc, cfg.ClusterProduceBytes/clusterRounds, false)
			if err != nil {
				return err
			}
			*side.out = side.out.add(t)
			*side.cpu += (c.cpu() - cpu0).Seconds()
		}
	}

	r.prog.step("latency RF 3 acks=all")
	if err := createTopicRF(ctx, c.seeds(), "bench-cluster-latency", 1, 3, nil); err != nil {
		return err
	}
	if err := c.waitInSync(ctx, "bench-cluster-latency", 3); err != nil {
		return err
	}
	if res.Latency, err = latencyAcks(ctx, c.seeds(), "bench-cluster-latency", cfg.LatencyRate, cfg.LatencyDuration, cfg.LatencyRecordBytes, kgo.AllISRAcks()); err != nil {
		return err
	}

	const topic = "bench-cluster-failover"
	if err := createTopicRF(ctx, c.seeds(), topic, clusterTopicPartitions, 3, nil); err != nil {
		return err
	}
	if err := c.waitInSync(ctx, topic, 3); err != nil {
		return err
	}

	r.prog.step("controlled shutdown")
	if res.Shutdown, err = r.controlledShutdown(ctx, c, topic); err != nil {
		return err
	}

	pr, err := startProbe(ctx, c.seeds(), topic, clusterTopicPartitions, 5*time.Millisecond)
	if err != nil {
		return err
	}
	defer pr.stop()
	ew, err := c.watchEtcd(ctx)
	if err != nil {
		return err
	}
	defer ew.stop()
	var all []float64
	for k := range cfg.ClusterKills {
		r.prog.step(fmt.Sprintf("failover %d of %d", k+1, cfg.ClusterKills))
		if err := c.waitInSync(ctx, topic, 3); err != nil {
			return err
		}
		f, victim, err := r.failover(ctx, c, pr, ew, topic, k)
		if err != nil {
			return err
		}
		res.Failover = append(res.Failover, f)
		all = append(all, f.AllAckedSeconds)
		if err := c.restart(ctx, victim); err != nil {
			return err
		}
	}
	pr.stop()
	res.FailedProbes = pr.failed.Load()
	if len(all) > 0 {
		sort.Float64s(all)
		res.FailoverP50 = quantile(all, 0.5)
		res.FailoverMax = all[len(all)-1]
	}
	r.prog.finish()
	return nil
}

// quantile of sorted xs, nearest rank.
func quantile(xs []float64, q float64) float64 {
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// ledBy is the partitions of topic node id leads, as a survivor sees it.
func ledBy(ps map[int32]int32, id int32) []int32 {
	var out []int32
	for p, l := range ps {
		if l == id {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// leaders is partition -> leader of topic, asked of a running node other
// than not.
func (c *procCluster) leaders(ctx context.Context, topic string, not int) (map[int32]int32, error) {
	ps, err := c.partitions(ctx, topic, not)
	if err != nil {
		return nil, err
	}
	out := map[int32]int32{}
	for p, d := range ps {
		out[p] = d.Leader
	}
	return out, nil
}

// waitMoved polls a survivor's Metadata until none of parts is led by id
// (every one has another leader) and returns when that was first seen.
func (c *procCluster) waitMoved(ctx context.Context, topic string, id int32, parts []int32, deadline time.Time) (time.Time, error) {
	for {
		ls, err := c.leaders(ctx, topic, int(id-1))
		if err == nil {
			moved := true
			for _, p := range parts {
				if l, ok := ls[p]; !ok || l == id || l < 0 {
					moved = false
				}
			}
			if moved {
				return time.Now(), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("bench: leaders of %s %v did not move off node %d in time", topic, parts, id)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// failover kills the leader of partition k mod the topic's partitions with
// SIGKILL and times the way back; it returns the killed node's index.
func (r *runner) failover(ctx context.Context, c *procCluster, pr *probe, ew *etcdWatch, topic string, k int) (Failover, int, error) {
	ls, err := c.leaders(ctx, topic, -1)
	if err != nil {
		return Failover{}, 0, err
	}
	id := ls[int32(k%clusterTopicPartitions)]
	if id <= 0 {
		return Failover{}, 0, fmt.Errorf("bench: %s-%d has no leader", topic, k%clusterTopicPartitions)
	}
	f := Failover{Kill: k + 1, Node: id, Partitions: ledBy(ls, id)}
	f.EtcdLeader = c.etcdLeader(ctx) == int(id)
	victim := int(id - 1)
	// Acknowledgements flowing on every partition before the kill.
	if err := pr.waitAcks(ctx, f.Partitions, time.Now(), time.Now().Add(time.Minute)); err != nil {
		return f, victim, err
	}
	t0 := time.Now()
	if err := c.kill9(victim); err != nil {
		return f, victim, err
	}
	deadline := t0.Add(2*time.Minute + time.Duration(r.cfg.ClusterSessionTimeout))
	var elected time.Time
	var eerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); elected, eerr = c.waitMoved(ctx, topic, id, f.Partitions, deadline) }()
	perr := pr.waitAcks(ctx, f.Partitions, t0, deadline)
	wg.Wait()
	if err := errors.Join(eerr, perr); err != nil {
		return f, victim, err
	}
	f.ElectedSeconds = elected.Sub(t0).Seconds()
	first, last := pr.acksAfter(f.Partitions, t0)
	f.FirstAckSeconds, f.AllAckedSeconds = first.Sub(t0).Seconds(), last.Sub(t0).Seconds()
	if exp := ew.first(t0, fmt.Sprintf("/strata/brokers/%d", id), true); !exp.IsZero() {
		f.ExpiredSeconds = exp.Sub(t0).Seconds()
		var written time.Time
		for _, p := range f.Partitions {
			w := ew.first(exp, fmt.Sprintf("/strata/partitions/%s/%d", topic, p), false)
			if w.IsZero() {
				written = time.Time{}
				break
			}
			if w.After(written) {
				written = w
			}
		}
		if !written.IsZero() {
			f.WrittenSeconds = written.Sub(t0).Seconds()
		}
	}
	return f, victim, nil
}

// controlledShutdown sends SIGTERM to the leader of partition 0 while a
// probe with no pause between produces keeps every partition busy with
// acks=all, then restarts it.
func (r *runner) controlledShutdown(ctx context.Context, c *procCluster, topic string) (ControlledShutdown, error) {
	var cs ControlledShutdown
	pr, err := startProbe(ctx, c.seeds(), topic, clusterTopicPartitions, 0)
	if err != nil {
		return cs, err
	}
	defer pr.stop()
	ls, err := c.leaders(ctx, topic, -1)
	if err != nil {
		return cs, err
	}
	cs.Node = ls[0]
	cs.Partitions = ledBy(ls, cs.Node)
	victim := int(cs.Node - 1)
	if err := pr.waitAcks(ctx, cs.Partitions, time.Now(), time.Now().Add(time.Minute)); err != nil {
		return cs, err
	}
	t0 := time.Now()
	var elected time.Time
	var eerr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		elected, eerr = c.waitMoved(ctx, topic, cs.Node, cs.Partitions, t0.Add(3*time.Minute))
	}()
	code, err := c.terminate(victim)
	exited := time.Now()
	wg.Wait()
	if err := errors.Join(err, eerr); err != nil {
		return cs, err
	}
	cs.ExitSeconds, cs.ExitCode = exited.Sub(t0).Seconds(), code
	cs.ElectedSeconds = elected.Sub(t0).Seconds()
	// Produces go on for a second after the exit (and at least until
	// every partition has an acknowledgement issued after it).
	end := exited.Add(time.Second)
	time.Sleep(time.Until(end))
	if err := pr.waitAcks(ctx, cs.Partitions, exited, time.Now().Add(time.Minute)); err != nil {
		return cs, err
	}
	pr.stop()
	cs.PauseSeconds = pr.longestPause(cs.Partitions, t0, end).Seconds()
	cs.Acked, cs.Failed = pr.acked.Load(), pr.failed.Load()
	if e := pr.firstErr.Load(); e != nil {
		cs.FirstError = (*e).Error()
	}
	if err := c.restart(ctx, victim); err != nil {
		return cs, err
	}
	return cs, c.waitInSync(ctx, topic, 3)
}

// probe produces one small record at a time to each partition of a topic
// with acks=all (idempotent), pausing between produces, and records when
// each was issued and acknowledged. The client is set as Kafka's Java
// producer's defaults are (retry.backoff.ms 100 doubling to
// retry.backoff.max.ms 1000, metadata refreshed as soon as an error asks),
// not franz-go's (250 ms doubling to 5 s, metadata at most every 5 s), so
// the client's own waits do not dominate a failover.
type probe struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	acked, failed atomic.Int64
	firstErr      atomic.Pointer[error]

	mu   sync.Mutex
	acks map[int32][]ack // guarded by mu, in order of issue per partition
}

type ack struct{ issued, acked time.Time }

func startProbe(ctx context.Context, seeds []string, topic string, partitions int, pause time.Duration) (*probe, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(fails int) time.Duration {
			return min(100*time.Millisecond<<min(max(fails-1, 0), 4), time.Second)
		}),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &probe{cl: cl, cancel: cancel, acks: map[int32][]ack{}}
	value := make([]byte, 100)
	for part := range int32(partitions) {
		p.wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
			defer p.wg.Done()
			for ctx.Err() == nil {
				issued := time.Now()
				err := cl.ProduceSync(ctx, &kgo.Record{Partition: part, Value: value}).FirstErr()
				now := time.Now()
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					p.failed.Add(1)
					p.firstErr.CompareAndSwap(nil, &err)
				default:
					p.acked.Add(1)
					p.mu.Lock()
					p.acks[part] = append(p.acks[part], ack{issued, now})
					p.mu.Unlock()
				}
				if pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		})
	}
	return p, nil
}

// stop ends the produces (those in flight are abandoned, not counted) and
// closes the client; safe to call twice.
func (p *probe) stop() {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.cl.Close()
	})
}

// acksAfter returns when the first acknowledgement of a record issued at or
// after t came on any of parts, and when every one of parts had had one
// (zero times if one has none yet).
func (p *probe) acksAfter(parts []int32, t time.Time) (first, all time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range parts {
		as := p.acks[part]
		i := sort.Search(len(as), func(i int) bool { return !as[i].issued.Before(t) })
		if i == len(as) {
			return time.Time{}, time.Time{}
		}
		a := as[i].acked
		if first.IsZero() || a.Before(first) {
			first = a
		}
		if a.After(all) {
			all = a
		}
	}
	return first, all
}

// waitAcks waits until each of parts has an acknowledgement of a record
// issued at or after t.
func (p *probe) waitAcks(ctx context.Context, parts []int32, t, deadline time.Time) error {
	for {
		if _, all := p.acksAfter(parts, t); !all.IsZero() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: no acknowledged produce on partitions %v by the deadline (%d failed; first error: %v)", parts, p.failed.Load(), p.errString())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *probe) errString() string {
	if e := p.firstErr.Load(); e != nil {
		return (*e).Error()
	}
	return "none"
}

// longestPause is the longest time in [from, to] without an
// acknowledgement on one of parts.
func (p *probe) longestPause(parts []int32, from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var longest time.Duration
	for _, part := range parts {
		last := from
		for _, a := range p.acks[part] {
			if a.acked.Before(from) || a.acked.After(to) {
				continue
			}
			longest = max(longest, a.acked.Sub(last))
			last = a.acked
		}
		longest = max(longest, to.Sub(last))
	}
	return longest
}

// figures are the cluster benchmark's rows of the summary table, with the
// issue's goals.
func (c *ClusterResult) figures() []Figure {
	var fs []Figure
	judge := func(f Figure, pass bool) Figure { f.Pass = &pass; return f }
	pc := c.Case
	pc.Acks = "all"
	if c.RF3.Seconds > 0 && c.RF1.PayloadMBps > 0 {
		f := Figure{Name: fmt.Sprintf("cluster produce, payload, acks=all at RF 3 (%s)", pc), Unit: "MB/s", Value: c.RF3.PayloadMBps,
			Baseline: "acks=1 at RF 1, same producer", BaselineValue: c.RF1.PayloadMBps, Target: ">= 0.45"}
		f.Ratio = f.Value / f.BaselineValue
		fs = append(fs, judge(f, f.Ratio >= 0.45))
	}
	if c.Latency.Records > 0 {
		fs = append(fs,
			Figure{Name: fmt.Sprintf("cluster e2e latency p50 at %d rec/s, RF 3 acks=all", c.Latency.Rate), Unit: "ms", Value: c.Latency.P50},
			Figure{Name: "cluster e2e latency p99, RF 3 acks=all", Unit: "ms", Value: c.Latency.P99},
			Figure{Name: "cluster e2e latency p99.9, RF 3 acks=all", Unit: "ms", Value: c.Latency.P999})
	}
	if n := len(c.Failover); n > 0 {
		session := float64(c.SessionTimeoutMs) / 1000
		goal := fmt.Sprintf("<= %s s (session + 1 s)", num(session+1))
		for _, q := range []struct {
			name string
			v    float64
		}{{fmt.Sprintf("failover p50, kill -9 of a leader to an acknowledged produce on each of its partitions (%d kills)", n), c.FailoverP50},
			{"failover max", c.FailoverMax}} {
			f := Figure{Name: q.name, Unit: "s", Value: q.v, Baseline: "broker.session.timeout.ms", BaselineValue: session, Target: goal}
			f.Ratio = q.v / session
			fs = append(fs, judge(f, q.v <= session+1))
		}
	}
	if s := c.Shutdown; s.Node > 0 {
		fs = append(fs, judge(Figure{Name: "controlled shutdown (SIGTERM of a leader under acks=all), failed produces", Unit: "produces", Value: float64(s.Failed), Target: "0"}, s.Failed == 0),
			Figure{Name: "controlled shutdown, longest pause in acknowledgements on its partitions", Unit: "s", Value: s.PauseSeconds})
	}
	return fs
}

// markdown is the cluster benchmark's detail tables.
func (c *ClusterResult) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	hb := "strata's default"
	if c.HeartbeatMs > 0 {
		hb = fmt.Sprintf("%d ms", c.HeartbeatMs)
	}
	w("\n### Cluster: %d brokers, broker.session.timeout.ms %d, broker.heartbeat.interval.ms %s\n\n", c.Brokers, c.SessionTimeoutMs, hb)
	w("| throughput | payload MB/s | records/s | payload | seconds | brokers' CPU s | brokers' CPU s per GB of payload |\n|---|---|---|---|---|---|---|\n")
	for _, t := range []struct {
		name string
		t    Throughput
		cpu  float64
	}{{"acks=1, RF 1", c.RF1, c.RF1BrokerCPU}, {"acks=all, RF 3", c.RF3, c.RF3BrokerCPU}} {
		perGB := 0.0
		if t.t.PayloadBytes > 0 {
			perGB = t.cpu / (float64(t.t.PayloadBytes) / 1e9)
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", t.name, num(t.t.PayloadMBps), num(t.t.RecordsPerS), mib(t.t.PayloadBytes), num(t.t.Seconds), num(t.cpu), num(perGB))
	}
	if len(c.Failover) > 0 {
		w("\nSeconds from kill -9: registration deleted (lease expired) and the controller's last partition write, seen by a watch on /strata/; leaders moved, seen by polling a survivor's Metadata every 20 ms; acknowledged produces issued after the kill.\n\n")
		w("| kill | node | partitions it led | also etcd leader | registration deleted s | partitions written s | leaders moved s | first ack s | ack on every one s |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, f := range c.Failover {
			w("| %d | %d | %v | %v | %s | %s | %s | %s | %s |\n", f.Kill, f.Node, f.Partitions, f.EtcdLeader, num(f.ExpiredSeconds), num(f.WrittenSeconds), num(f.ElectedSeconds), num(f.FirstAckSeconds), num(f.AllAckedSeconds))
		}
		w("\nFailed produces of the failover probe: %d (the client retries retriable errors itself).\n", c.FailedProbes)
	}
	if s := c.Shutdown; s.Node > 0 {
		w("\nControlled shutdown: SIGTERM of node %d (leader of %v) under acks=all load: exit after %s s (status %d), leaders moved after %s s, longest pause in acknowledgements %s s, %d produces acknowledged, %d failed",
			s.Node, s.Partitions, num(s.ExitSeconds), s.ExitCode, num(s.ElectedSeconds), num(s.PauseSeconds), s.Acked, s.Failed)
		if s.FirstError != "" {
			w(" (first: %s)", s.FirstError)
		}
		w(".\n")
	}
	return b.String()
}

// warmPartitions produces one acks=all record to each partition of topic and
// waits for every acknowledgement.
func warmPartitions(ctx context.Context, seeds []string, topic string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range partitions {
		recs = append(recs, &kgo.Record{Partition: int32(p), Value: []byte("warm")})
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}
