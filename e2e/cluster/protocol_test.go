package clustere2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/kwire"
	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/internal/wait"
)

// A follower serves a consumer's Fetch (v11+, KIP-392) and answers a Produce
// with NOT_LEADER_OR_FOLLOWER and KIP-951's hint: the current leader and its
// epoch, with the leader's endpoint; a fetch at an old leader epoch gets
// FENCED_LEADER_EPOCH with the hint, one at a future epoch
// UNKNOWN_LEADER_EPOCH; Metadata lists the three brokers, the controller and
// the partition's replicas and ISR.
func TestClusterProtocolAnswers(t *testing.T) {
	c := start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.Client(t))
	const topic = "hints"
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	leader := leaderOf(t, c, topic, 0)
	follower := (leader + 1) % 3
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 || md.Controller < 1 || md.Controller > 3 {
		t.Fatalf("metadata: %d brokers, controller %d", len(md.Brokers), md.Controller)
	}
	pd := md.Topics[topic].Partitions[0]
	if len(pd.Replicas) != 3 || len(pd.ISR) != 3 || pd.Leader != int32(leader+1) {
		t.Fatalf("partition: leader %d replicas %v isr %v", pd.Leader, pd.Replicas, pd.ISR)
	}
	epoch := pd.LeaderEpoch

	conn, err := kwire.Dial(ctx, c.Addr(follower), "hint-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fetch := func(addr *kwire.Conn, leaderEpoch int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.ReplicaState.ID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, -1, 0, 1<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, md.Topics[topic].ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = 0, leaderEpoch, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := addr.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.FetchResponse)
	}
	// The follower answers once it has applied the topic (brokers apply
	// metadata a moment apart, as Kafka's do: UNKNOWN_TOPIC_ID until then).
	var fr *kmsg.FetchResponse
	wait.For(t, time.Minute, "the follower knows the topic", func() bool {
		fr = fetch(conn, epoch)
		return fr.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code
	})
	if p := fr.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.PreferredReadReplica != -1 || len(fr.Brokers) != 0 {
		t.Fatalf("follower fetch: error %d, preferred read replica %d, endpoints %+v; want records from the follower (KIP-392)", p.ErrorCode, p.PreferredReadReplica, fr.Brokers)
	}

	lconn, err := kwire.Dial(ctx, c.Addr(leader), "hint-test")
	if err != nil {
		t.Fatal(err)
	}
	defer lconn.Close()
	// The leader too may apply the topic a moment after the broker that
	// answered Metadata: UNKNOWN_TOPIC_ID until then.
	var code int16
	wait.For(t, time.Minute, "the leader knows the topic", func() bool {
		code = fetch(lconn, epoch+1).Topics[0].Partitions[0].ErrorCode
		return code != kerr.UnknownTopicID.Code
	})
	if code != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("fetch at a future epoch: error %d, want UNKNOWN_LEADER_EPOCH", code)
	}

	preq := kmsg.NewPtrProduceRequest()
	preq.Acks, preq.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic, pt.TopicID = topic, md.Topics[topic].ID
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition, pp.Records = 0, recbatch.Make(1, time.Now().UnixMilli(), "hint")
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	kresp, err := conn.Request(ctx, preq)
	if err != nil {
		t.Fatal(err)
	}
	pr := kresp.(*kmsg.ProduceResponse)
	sp := pr.Topics[0].Partitions[0]
	if sp.ErrorCode != kerr.NotLeaderForPartition.Code || sp.CurrentLeader.LeaderID != int32(leader+1) || len(pr.Brokers) != 1 {
		t.Fatalf("produce to a follower: error %d, current leader %+v, endpoints %+v", sp.ErrorCode, sp.CurrentLeader, pr.Brokers)
	}

	// The leader dies: its successor leads at a higher epoch and fences a
	// fetch at the old one.
	c.Kill9(leader)
	var next int
	wait.For(t, time.Minute, "a new leader", func() bool { next = leaderOf(t, c, topic, 0); return next != leader })
	nconn, err := kwire.Dial(ctx, c.Addr(next), "hint-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	// Once it has applied its leadership (a moment after etcd has it), the
	// new leader fences the old epoch; before, it answers as a follower.
	wait.For(t, time.Minute, "the new leader fences the old epoch", func() bool {
		fr = fetch(nconn, epoch)
		code = fr.Topics[0].Partitions[0].ErrorCode
		return code == kerr.FencedLeaderEpoch.Code || (code != kerr.NotLeaderForPartition.Code && code != kerr.UnknownTopicID.Code && code != 0)
	})
	p := fr.Topics[0].Partitions[0]
	if code != kerr.FencedLeaderEpoch.Code || p.CurrentLeader.LeaderID != int32(next+1) || p.CurrentLeader.LeaderEpoch <= epoch {
		t.Fatalf("fetch at the old epoch %d from the new leader: error %d, current leader %+v; want FENCED_LEADER_EPOCH and leader %d at a newer epoch", epoch, code, p.CurrentLeader, next+1)
	}
	if len(fr.Brokers) != 1 || fr.Brokers[0].NodeID != int32(next+1) {
		t.Fatalf("fenced fetch: node endpoints %+v, want the leader's", fr.Brokers)
	}
	// The remaining follower, once it follows the new leader, fences a
	// consumer's fetch at the old epoch too (it serves the current one).
	third := 3 - leader - next
	tconn, err := kwire.Dial(ctx, c.Addr(third), "hint-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tconn.Close()
	wait.For(t, time.Minute, "the follower fences the old epoch", func() bool {
		code = fetch(tconn, epoch).Topics[0].Partitions[0].ErrorCode
		return code != 0
	})
	if code != kerr.FencedLeaderEpoch.Code {
		t.Fatalf("fetch at the old epoch %d from the follower: error %d, want FENCED_LEADER_EPOCH", epoch, code)
	}
}
