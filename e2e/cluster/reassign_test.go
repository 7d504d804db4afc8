package clustere2e

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
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

// Partition reassignment (KIP-455, kadm as kafka-reassign-partitions.sh)
// under an acks=all workload and a consumer group. A partition on brokers
// {1,2,3}, led by 1, moves to {2,3,4} while broker 4 is down: the move is
// listed as pending (replicas the union, 4 adding, 1 removing) until 4 is
// back and has caught up; then 1 is out of the replicas and the ISR, the
// leadership moved off it, and its copy is deleted. It then moves to
// {4,1,2} with the controller killed (kill -9) as the move is written: the
// next controller completes it; and to {4,1,3} while broker 2 is down: it
// deletes its copy once back. The checker finds nothing lost,
// duplicated, divergent or out of order.
func TestClusterReassignPartition(t *testing.T) {
	c := start(t, 4, "auto.leader.rebalance.enable=false")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const topic = "reassign"
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	a.Partition, a.Replicas = 0, []int32{1, 2, 3}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatal(err)
	}
	if l := leaderOf(t, c, topic, 0); l != 0 {
		t.Fatalf("%s-0 led by node %d, want 1", topic, l+1)
	}

	cl := checker.Client{Brokers: c.Bootstrap(), Topic: topic, Dial: c.DialContext}
	const d = 40 * time.Second
	run := checker.StartRun(ctx, checker.ProduceConfig{Client: cl, Producers: 3, Duration: d, Rate: 200, Name: "w", DeliveryTimeout: 2 * time.Minute},
		checker.ConsumeConfig{Client: cl, Group: "g-" + topic, Duration: d + 5*time.Second})
	wait.For(t, time.Minute, "300 acknowledged records", func() bool { return run.Acked() >= 300 })

	// {1,2,3} -> {2,3,4} with 4 down: pending until 4 is back.
	reassignWhileDown(t, c, topic, 3, []int32{2, 3, 4})
	// Every running node lists it (once its view has the write) while 4
	// is down, and Metadata's replicas are the union.
	for j := range 3 {
		var last string
		wait.For(t, time.Minute, fmt.Sprintf("node %d listing the pending move", j+1), func() bool {
			l, err := listReassignments(c, j)
			if err != nil {
				return false
			}
			last = fmt.Sprintf("%+v", l.Topics)
			if len(l.Topics) != 1 || l.Topics[0].Topic != topic || len(l.Topics[0].Partitions) != 1 {
				return false
			}
			p := l.Topics[0].Partitions[0]
			return p.Partition == 0 && slices.Equal(p.Replicas, []int32{2, 3, 4, 1}) && slices.Equal(p.AddingReplicas, []int32{4}) && slices.Equal(p.RemovingReplicas, []int32{1})
		})
		t.Logf("node %d lists %s", j+1, last)
	}
	if md, err := kadm.NewClient(c.Client(t)).Metadata(ctx, topic); err != nil || !slices.Equal(md.Topics[topic].Partitions[0].Replicas, []int32{2, 3, 4, 1}) {
		t.Fatalf("Metadata during the move: %v %+v", err, md.Topics[topic].Partitions[0])
	}
	c.Restart(3)
	waitReassigned(t, c, topic, []int32{2, 3, 4})
	if l := leaderOf(t, c, topic, 0); l == 0 {
		t.Fatal("the removed broker 1 still leads")
	}
	wait.For(t, time.Minute, "broker 1's copy of "+topic+"-0 deleted", func() bool { return logBytes(c.DataDir(0), topic+"-0") == 0 })
	// And it serves it no more: a consumer's Fetch (v11+, which a follower
	// would serve) is NOT_LEADER_OR_FOLLOWER.
	// (kgo sends the highest version both sides speak: the topic ID too.)
	md, err := kadm.NewClient(c.Client(t)).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	freq := kmsg.NewPtrFetchRequest()
	freq.ReplicaID, freq.MaxWaitMillis, freq.MaxBytes = -1, 0, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, md.Topics[topic].ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	var fresp *kmsg.FetchResponse
	if err := nodeRequest(c, 0, freq, &fresp); err != nil {
		t.Fatal(err)
	}
	if len(fresp.Topics) != 1 || len(fresp.Topics[0].Partitions) != 1 || fresp.Topics[0].Partitions[0].ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("a fetch of %s-0 from the removed broker 1: %+v", topic, fresp.Topics)
	}

	// {2,3,4} -> {4,1,2}, the controller killed first: the move is written
	// (and completed) under the next one.
	reassignWhileDown(t, c, topic, -1, []int32{4, 1, 2})
	waitReassigned(t, c, topic, []int32{4, 1, 2})
	// Broker 3 left: its copy goes too (also when it was the controller,
	// killed during the move: on its restart).
	wait.For(t, time.Minute, "broker 3's copy of "+topic+"-0 deleted", func() bool { return logBytes(c.DataDir(2), topic+"-0") == 0 })

	// The preferred replica is the new assignment's first: 4.
	set := kadm.TopicsSet{}
	set.Add(topic, 0)
	wait.For(t, time.Minute, "broker 4 leading "+topic+"-0 after a preferred election", func() bool {
		res, err := kadm.NewClient(c.Client(t)).ElectLeaders(ctx, kadm.ElectPreferredReplica, set)
		if err != nil {
			return false
		}
		r := res[topic][0]
		return (r.Err == nil || r.Err == kerr.ElectionNotNeeded) && leaderOf(t, c, topic, 0) == 3
	})

	// {4,1,2} -> {4,1,3} with broker 2 down all along: it deletes its copy
	// when it is back and sees it is no longer a replica.
	c.Kill9(1)
	if err := reassign(t, c, 0, topic, []int32{4, 1, 3}); err != nil {
		t.Fatalf("reassign %s-0 to [4 1 3]: %v", topic, err)
	}
	waitReassigned(t, c, topic, []int32{4, 1, 3})
	if logBytes(c.DataDir(1), topic+"-0") == 0 {
		t.Fatal("broker 2's copy is empty before it restarted")
	}
	c.Restart(1)
	wait.For(t, time.Minute, "broker 2's copy of "+topic+"-0 deleted after its restart", func() bool { return logBytes(c.DataDir(1), topic+"-0") == 0 })

	finishClean(t, ctx, run, cl, topic)
}

// reassignWhileDown kills node i (-1: the controller) with kill -9 and at
// once reassigns topic-0 to target through another node, before the dead
// broker's registration is removed (a target naming an unregistered broker
// is refused: then the node is restarted and it is tried again). The dead
// node is restarted by the caller when i >= 0, here when it is the
// controller.
func reassignWhileDown(t *testing.T, c *clustertest.Cluster, topic string, i int, target []int32) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		victim := i
		if victim < 0 {
			victim = controllerOf(t, c)
		}
		via := (victim + 1) % c.Brokers()
		t.Logf("kill -9 node %d, then reassign %s-0 to %v through node %d", victim+1, topic, target, via+1)
		c.Kill9(victim)
		err := reassign(t, c, via, topic, target)
		if err == nil {
			if i < 0 {
				c.Restart(victim)
			}
			return
		}
		if attempt == 3 || err != kerr.InvalidReplicaAssignment {
			t.Fatalf("reassign %s-0 to %v: %v", topic, target, err)
		}
		c.Restart(victim) // fenced before the write: again
	}
}

// reassign asks node via to reassign topic-0 to target, again while etcd
// is electing a leader (the write may fail: REQUEST_TIMED_OUT).
func reassign(t *testing.T, c *clustertest.Cluster, via int, topic string, target []int32) error {
	t.Helper()
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, target
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var err error
	for try := 0; try < 5; try++ {
		var resp *kmsg.AlterPartitionAssignmentsResponse
		if err = nodeRequest(c, via, req, &resp); err != nil {
			continue
		}
		rp := resp.Topics[0].Partitions[0]
		if err = kerr.ErrorForCode(rp.ErrorCode); err == nil || err == kerr.InvalidReplicaAssignment {
			return err
		}
		t.Logf("reassign %s-0 to %v: %v (%s)", topic, target, err, deref(rp.ErrorMessage))
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// nodeRequest sends req to node j itself (kgo would send an admin request
// to the controller, which may be the node just killed) and sets *resp.
func nodeRequest[R kmsg.Response](c *clustertest.Cluster, j int, req kmsg.Request, resp *R) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(j)), kgo.Dialer(c.DialContext))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kresp, err := cl.Broker(j+1).Request(ctx, req)
	if err != nil {
		return err
	}
	r, ok := kresp.(R)
	if !ok {
		return fmt.Errorf("response %T", kresp)
	}
	*resp = r
	return nil
}

// controllerOf is the node index of the active controller, as a running
// node's Metadata names it.
func controllerOf(t *testing.T, c *clustertest.Cluster) int {
	t.Helper()
	id := int32(-1)
	wait.For(t, time.Minute, "a controller", func() bool {
		md, err := kadm.NewClient(c.Client(t)).BrokerMetadata(context.Background())
		if err != nil {
			return false
		}
		id = md.Controller
		return id > 0
	})
	return int(id - 1)
}

// listReassignments is ListPartitionReassignments of every topic (null
// topics), as node j answers it.
func listReassignments(c *clustertest.Cluster, j int) (*kmsg.ListPartitionReassignmentsResponse, error) {
	var resp *kmsg.ListPartitionReassignmentsResponse
	err := nodeRequest(c, j, kmsg.NewPtrListPartitionReassignmentsRequest(), &resp)
	return resp, err
}

// waitReassigned waits until no running node lists a reassignment and
// every running node's Metadata has topic-0's replicas want, its leader
// and ISR within them.
func waitReassigned(t *testing.T, c *clustertest.Cluster, topic string, want []int32) {
	t.Helper()
	wait.For(t, 2*time.Minute, fmt.Sprintf("%s-0 reassigned to %v", topic, want), func() bool {
		for j := 0; j < c.Brokers(); j++ {
			if !c.Running(j) {
				continue
			}
			l, err := listReassignments(c, j)
			if err != nil || len(l.Topics) > 0 {
				return false
			}
			req := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, mt)
			var md *kmsg.MetadataResponse
			if err := nodeRequest(c, j, req, &md); err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 1 {
				return false
			}
			p := md.Topics[0].Partitions[0]
			if !slices.Equal(p.Replicas, want) || !slices.Contains(want, p.Leader) {
				return false
			}
			for _, id := range p.ISR {
				if !slices.Contains(want, id) {
					return false
				}
			}
		}
		return true
	})
}

// logBytes is the size of the .log files of the partition directory name
// under dir.
func logBytes(dir, name string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(filepath.Dir(path)) != name || !strings.HasSuffix(path, ".log") {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}
