// Package clustere2e runs three-broker clusters of separate strata
// processes (internal/clustertest: each with its embedded etcd member, the
// issue's command lines) and checks their histories (package checker):
// acknowledged records lost, duplicates, divergent offsets and per-producer
// order violations must all be zero.
package clustere2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/checker"
	"github.com/stratalog/strata/internal/clustertest"
	"github.com/stratalog/strata/internal/wait"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.RemoveBinary()
	os.Exit(code)
}

// sessionMs is broker.session.timeout.ms in these tests: short, so a dead
// broker's leaderships move soon.
const sessionMs = 3000

func start(t *testing.T, brokers int, extra ...string) *clustertest.Cluster {
	return clustertest.Start(t, options(brokers, extra...))
}

// options are start's: short sessions and lags, ready once every node is listed.
func options(brokers int, extra ...string) clustertest.Options {
	return clustertest.Options{
		Brokers: brokers,
		Extra: append([]string{
			fmt.Sprintf("broker.session.timeout.ms=%d", sessionMs),
			"broker.heartbeat.interval.ms=500",
			"replica.lag.time.max.ms=5000",
			"replica.fetch.backoff.ms=100",
			"offsets.topic.num.partitions=6",
			"group.initial.rebalance.delay.ms=0",
		}, extra...),
		WaitReady: clustertest.MetadataListsAll,
	}
}

// leaderOf is the node index (node.id - 1) leading partition p of topic.
func leaderOf(t *testing.T, c *clustertest.Cluster, topic string, p int32) int {
	t.Helper()
	var leader int32 = -1
	wait.For(t, time.Minute, fmt.Sprintf("a leader for %s-%d", topic, p), func() bool {
		for i := 0; i < c.Brokers(); i++ {
			if !c.Running(i) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(c.DialContext))
			if err != nil {
				cancel()
				continue
			}
			md, err := kadm.NewClient(cl).Metadata(ctx, topic)
			cl.Close()
			cancel()
			if err != nil {
				continue
			}
			if pd, ok := md.Topics[topic].Partitions[p]; ok && pd.Leader >= 0 {
				leader = pd.Leader
				return true
			}
		}
		return false
	})
	return int(leader - 1)
}

// workload runs three acks=all idempotent producers and a consumer group for
// d, calling during once records flow, then reads every partition and
// analyzes the whole history.
func workload(t *testing.T, c *clustertest.Cluster, topic string, d time.Duration, during func()) (checker.Report, checker.History) {
	t.Helper()
	ctx := context.Background()
	cl := checker.Client{Brokers: c.Bootstrap(), Topic: topic, Dial: c.DialContext}
	if err := checker.CreateTopic(ctx, cl, 6, 3); err != nil {
		t.Fatal(err)
	}
	run := checker.StartRun(ctx, checker.ProduceConfig{Client: cl, Producers: 3, Duration: d, Rate: 200, Name: "w", DeliveryTimeout: 2 * time.Minute},
		checker.ConsumeConfig{Client: cl, Group: "g-" + topic, Duration: d + 5*time.Second})
	if during != nil {
		wait.For(t, time.Minute, "300 acknowledged records", func() bool { return run.Acked() >= 300 })
		during()
	}
	r, prod := finishClean(t, ctx, run, cl, topic)
	return r, prod
}

// finishClean ends a checker run with a final read and fails the test unless
// something was acknowledged and the history has no anomaly.
func finishClean(t *testing.T, ctx context.Context, run *checker.Run, cl checker.Client, topic string) (checker.Report, checker.History) {
	t.Helper()
	prod, cons, final, err := run.Finish(ctx, checker.ReadConfig{Client: cl})
	if err != nil {
		t.Fatal(err)
	}
	r := checker.Analyze(prod, cons, final)
	t.Logf("%s\n%s", topic, r)
	if !r.OK() || r.Acknowledged == 0 {
		t.Fatalf("history of %s has anomalies:\n%s", topic, r)
	}
	return r, prod
}

// Scenario 1: kill -9 the leader of a partition, then of the next one (on
// another broker), restarting each and waiting for it to be in sync again,
// while three producers and a consumer group run: nothing acknowledged is
// lost, duplicated or reordered.
func TestClusterKillLeadersInTurn(t *testing.T) {
	c := start(t, 3)
	const topic = "kill-leaders"
	workload(t, c, topic, 25*time.Second, func() {
		killed := map[int]bool{}
		for p := int32(0); p < 6 && len(killed) < c.Brokers(); p++ {
			i := leaderOf(t, c, topic, p)
			if killed[i] {
				continue
			}
			killed[i] = true
			t.Logf("kill -9 node %d, leader of %s-%d", i+1, topic, p)
			c.Kill9(i)
			// The partition gets a new leader before the broker comes back.
			wait.For(t, time.Minute, "a new leader", func() bool { return leaderOf(t, c, topic, p) != i })
			c.Restart(i)
			// Back in every ISR before the next kill: killed while it was the
			// only in-sync replica of a partition, the next leader would
			// leave that partition with none to elect (with
			// unclean.leader.election.enable false, as in Kafka). CI killed
			// one 3 s after restarting the one before, under load, and the
			// partition waited for its old leader, as it should.
			waitInISR(t, c, topic, 6, int32(i+1))
		}
	})
}

// Scenario 6: min.insync.replicas=2 with two brokers down: acks=all gets
// NOT_ENOUGH_REPLICAS and nothing is acknowledged; with one back, produce
// goes on. Five nodes, so that the etcd quorum (three of five voters)
// outlives the two dead replicas.
func TestClusterMinInsyncReplicas(t *testing.T) {
	c := start(t, 5)
	adm := kadm.NewClient(c.Client(t))
	ctx := context.Background()
	const topic = "min-isr"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil {
		t.Fatal(err)
	}
	leader := leaderOf(t, c, topic, 0)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var others []int
	for _, id := range md.Topics[topic].Partitions[0].Replicas {
		if int(id-1) != leader {
			others = append(others, int(id-1))
		}
	}
	for _, i := range others {
		c.Kill9(i)
	}
	// Once the leader's ISR shrank to itself, acks=all is refused.
	prod := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.RecordRetries(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProduceRequestTimeout(3*time.Second))
	// A produce that timed out in the purgatory (before the ISR shrank) is
	// indeterminate: the ISR that shrank to the leader then commits it, as
	// in Kafka. One refused with NOT_ENOUGH_REPLICAS was never written.
	var last error
	refused := map[string]bool{}
	n := 0
	wait.For(t, 2*time.Minute, "NOT_ENOUGH_REPLICAS", func() bool {
		n++
		v := fmt.Sprintf("attempt-%d", n)
		res := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)})
		last = res.FirstErr()
		if errors.Is(last, kerr.NotEnoughReplicas) {
			refused[v] = true
		}
		return len(refused) >= 3
	})
	c.Restart(others[0])
	wait.For(t, 2*time.Minute, "produce accepted again", func() bool {
		res := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("accepted")})
		last = res.FirstErr()
		return last == nil
	})
	cons := c.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	wait.For(t, time.Minute, "the accepted record read back", func() bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		for _, r := range cons.PollFetches(pctx).Records() {
			got = append(got, string(r.Value))
		}
		return len(got) > 0 && got[len(got)-1] == "accepted"
	})
	for _, v := range got {
		if refused[v] {
			t.Fatalf("%s was refused with NOT_ENOUGH_REPLICAS but written: %q", v, got)
		}
	}
}

// Scenario 2: SIGSTOP the leader for longer than broker.session.timeout.ms,
// then SIGCONT it: the paused leader is fenced (its registration expired; a
// new leader took over at a higher epoch), nothing it acknowledged is lost,
// and it rejoins by itself as a follower and comes back into the ISR.
func TestClusterPausedLeaderIsFenced(t *testing.T) {
	c := start(t, 3)
	const topic = "paused"
	workload(t, c, topic, 20*time.Second, func() {
		i := leaderOf(t, c, topic, 0)
		t.Logf("SIGSTOP node %d, leader of %s-0", i+1, topic)
		c.Stop(i)
		wait.For(t, time.Minute, "a new leader", func() bool { return leaderOf(t, c, topic, 0) != i })
		c.Cont(i)
		waitInISR(t, c, topic, 6, int32(i+1))
	})
}

// isr is partition p's ISR as node j's Metadata shows it.
func isrOf(c *clustertest.Cluster, j int, topic string) map[int32][]int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(j)), kgo.Dialer(c.DialContext))
	if err != nil {
		return nil
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return nil
	}
	out := map[int32][]int32{}
	for p, pd := range md.Topics[topic].Partitions {
		out[p] = pd.ISR
	}
	return out
}

// waitInISR waits until broker id is in the ISR of every partition of topic.
func waitInISR(t *testing.T, c *clustertest.Cluster, topic string, partitions int32, id int32) {
	t.Helper()
	wait.For(t, 2*time.Minute, fmt.Sprintf("broker %d in every ISR of %s", id, topic), func() bool {
		for j := 0; j < c.Brokers(); j++ {
			if !c.Running(j) {
				continue
			}
			isr := isrOf(c, j, topic)
			if int32(len(isr)) != partitions {
				return false
			}
			for _, ids := range isr {
				if !slices.Contains(ids, id) {
					return false
				}
			}
			return true
		}
		return false
	})
}

// Scenario 4: a rolling restart of all three brokers under load, each
// stopped with SIGTERM (a controlled shutdown: its leaderships move first)
// and back in every ISR before the next one stops.
//
// With auto.leader.rebalance.enable, every partition is then led by its
// preferred replica again (the first of its assignment).
func TestClusterRollingRestart(t *testing.T) {
	c := start(t, 3, "leader.imbalance.check.interval.seconds=1")
	const topic = "rolling"
	defer func() {
		if t.Failed() {
			return
		}
		wait.For(t, time.Minute, "every partition led by its preferred replica", func() bool {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.Dialer(c.DialContext))
			if err != nil {
				return false
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			md, err := kadm.NewClient(cl).Metadata(ctx, topic)
			if err != nil {
				return false
			}
			for _, pd := range md.Topics[topic].Partitions {
				if len(pd.Replicas) == 0 || pd.Leader != pd.Replicas[0] {
					return false
				}
			}
			return true
		})
	}()
	workload(t, c, topic, 30*time.Second, func() {
		for i := 0; i < c.Brokers(); i++ {
			t.Logf("SIGTERM node %d", i+1)
			if code := c.Terminate(i); code != 0 {
				t.Errorf("node %d exited with status %d after SIGTERM", i+1, code)
			}
			c.Restart(i)
			waitInISR(t, c, topic, 6, int32(i+1))
			waitInISR(t, c, "__consumer_offsets", 6, int32(i+1))
		}
	})
}

// Scenario 5: a follower's data directory is wiped (a replaced disk; its
// etcd member's data is on metadata.log.dir, another disk): it copies the
// log back from the leader and re-joins every ISR; then its old leader is
// killed, it leads every partition (it is second in every assignment), and
// the final read, served by it, holds every acknowledged record.
func TestClusterWipedFollowerRejoins(t *testing.T) {
	meta := t.TempDir()
	c := clustertest.Start(t, clustertest.Options{
		Brokers: 3,
		Extra: []string{fmt.Sprintf("broker.session.timeout.ms=%d", sessionMs), "broker.heartbeat.interval.ms=500",
			"replica.lag.time.max.ms=5000", "replica.fetch.backoff.ms=100", "offsets.topic.num.partitions=6",
			"log.segment.bytes=65536"},
		PerNode:   func(i int) []string { return []string{fmt.Sprintf("metadata.log.dir=%s/meta-%d", meta, i+1)} },
		WaitReady: clustertest.MetadataListsAll,
	})
	const topic = "wiped"
	// Every partition: node 1 leads, node 2 follows (the one wiped), node 3.
	var assignment [][]int32
	for range 6 {
		assignment = append(assignment, []int32{1, 2, 3})
	}
	createAssigned(t, c, topic, assignment, nil)
	const wiped = 1 // node 2
	_, prod := workload(t, c, topic, 25*time.Second, func() {
		c.Kill9(wiped)
		c.WipeData(wiped)
		c.Restart(wiped)
		waitInISR(t, c, topic, 6, wiped+1)
	})
	waitInISR(t, c, topic, 6, wiped+1)
	c.Kill9(0)
	for p := int32(0); p < 6; p++ {
		wait.For(t, time.Minute, "the wiped node leads", func() bool { return leaderOf(t, c, topic, p) == wiped })
	}
	ctx := context.Background()
	final, err := checker.FinalRead(ctx, checker.ReadConfig{Client: checker.Client{Brokers: c.Bootstrap(), Topic: topic, Dial: c.DialContext}})
	if err != nil {
		t.Fatal(err)
	}
	r := checker.Analyze(prod, final)
	t.Logf("read from the wiped node:\n%s", r)
	if !r.OK() || r.FinalRead < r.Acknowledged {
		t.Fatalf("the wiped node's log misses acknowledged records:\n%s", r)
	}
}

// Scenario 3: the leader is isolated from the other brokers, from etcd and
// from the clients by a real network partition (each broker in its own
// network namespace; its link to the bridge goes down) for 30 s under load,
// then healed: the rest of the cluster elects a new leader and goes on; the
// isolated broker, fenced, acknowledges nothing that is lost, and once
// healed it rejoins, truncates what it appended alone and comes back into
// every ISR.
func TestClusterPartitionedLeader(t *testing.T) {
	clustertest.SkipUnlessNetns(t)
	c := clustertest.Start(t, clustertest.Options{
		Brokers: 3,
		Netns:   true,
		Extra: []string{fmt.Sprintf("broker.session.timeout.ms=%d", sessionMs), "broker.heartbeat.interval.ms=500",
			"replica.lag.time.max.ms=5000", "replica.fetch.backoff.ms=100", "offsets.topic.num.partitions=6"},
		WaitReady: clustertest.MetadataListsAll,
	})
	const topic = "partitioned"
	workload(t, c, topic, 45*time.Second, func() {
		i := leaderOf(t, c, topic, 0)
		t.Logf("cut node %d, leader of %s-0, off the network", i+1, topic)
		c.Cut(i)
		cut := time.Now()
		wait.For(t, time.Minute, "a new leader", func() bool { return leaderOf(t, c, topic, 0) != i })
		time.Sleep(30*time.Second - time.Since(cut)) // the scenario: 30 s apart, under load
		c.Heal(i)
		waitInISR(t, c, topic, 6, int32(i+1))
	})
}

// A follower that stops fetching (SIGSTOP) for longer than
// replica.lag.time.max.ms, but not for the session timeout, leaves the ISR
// by the leader's own shrink (the controller does not fence it), acks=all
// produce goes on without it, and once it runs again it catches up and the
// leader takes it back into the ISR.
func TestClusterLaggingFollowerLeavesAndRejoinsISR(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{
		Brokers: 3,
		Extra: []string{"broker.session.timeout.ms=60000", "broker.heartbeat.interval.ms=500",
			"replica.lag.time.max.ms=2000", "replica.fetch.wait.max.ms=200", "replica.fetch.backoff.ms=100", "offsets.topic.num.partitions=6"},
		WaitReady: clustertest.MetadataListsAll,
	})
	const topic = "lagging"
	workload(t, c, topic, 20*time.Second, func() {
		leader := leaderOf(t, c, topic, 0)
		follower := (leader + 1) % 3
		t.Logf("SIGSTOP node %d, a follower of %s-0", follower+1, topic)
		c.Stop(follower)
		wait.For(t, time.Minute, "the stopped follower out of the ISR", func() bool {
			isr := isrOf(c, leader, topic)
			return len(isr[0]) == 2 && !slices.Contains(isr[0], int32(follower+1))
		})
		c.Cont(follower)
		waitInISR(t, c, topic, 6, int32(follower+1))
	})
}

// createAssigned creates topic with the given replicas for each partition
// (the first leads) and topic configs, as kafka-topics --replica-assignment.
func createAssigned(t *testing.T, c *clustertest.Cluster, topic string, assignment [][]int32, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, reps := range assignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), reps
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	for k, v := range configs {
		rc := kmsg.NewCreateTopicsRequestTopicConfig()
		rc.Name, rc.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, rc)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := req.RequestWith(ctx, c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}
