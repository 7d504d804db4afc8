package clustere2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
)

// ElectLeaders (kadm, as kafka-leader-election.sh): with automatic
// rebalancing off, a restarted preferred replica gets its leadership back
// only when asked; a partition already led by its preferred replica answers
// ELECTION_NOT_NEEDED; with the preferred replica down,
// PREFERRED_LEADER_NOT_AVAILABLE; an unclean election of a partition that has
// a leader, ELECTION_NOT_NEEDED.
func TestClusterElectLeaders(t *testing.T) {
	c := start(t, 3, "auto.leader.rebalance.enable=false")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "elect"
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, reps := range [][]int32{{1, 2, 3}, {2, 3, 1}} {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(p), reps
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
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
	adm := kadm.NewClient(c.Client(t))
	elect := func(typ kadm.ElectLeadersHow) kadm.ElectLeadersResults {
		t.Helper()
		set := kadm.TopicsSet{}
		set.Add(topic, 0, 1)
		res, err := adm.ElectLeaders(ctx, typ, set)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	c.Kill9(0)
	wait.For(t, time.Minute, "another leader of "+topic+"-0", func() bool { return leaderOf(t, c, topic, 0) != 0 })
	if r := elect(kadm.ElectPreferredReplica)[topic][0]; r.Err != kerr.PreferredLeaderNotAvailable {
		t.Fatalf("preferred replica down: %v, want PREFERRED_LEADER_NOT_AVAILABLE", r.Err)
	}
	c.Restart(0)
	waitInISR(t, c, topic, 2, 1)
	if l := leaderOf(t, c, topic, 0); l == 0 {
		t.Fatal("the restarted preferred replica leads again without an election (auto.leader.rebalance.enable=false)")
	}
	res := elect(kadm.ElectPreferredReplica)
	if r := res[topic][0]; r.Err != nil {
		t.Fatalf("%s-0: %v %s", topic, r.Err, r.ErrMessage)
	}
	if r := res[topic][1]; r.Err != kerr.ElectionNotNeeded {
		t.Fatalf("%s-1, led by its preferred replica: %v, want ELECTION_NOT_NEEDED", topic, r.Err)
	}
	wait.For(t, time.Minute, "node 1 leading "+topic+"-0 again", func() bool { return leaderOf(t, c, topic, 0) == 0 })
	if r := elect(kadm.ElectLiveReplica)[topic][0]; r.Err != kerr.ElectionNotNeeded {
		t.Fatalf("unclean election with a live leader: %v, want ELECTION_NOT_NEEDED", r.Err)
	}

	// The new leader serves: a produce with acks=all and a read back.
	prod := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
