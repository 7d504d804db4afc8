package clustere2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
)

// partitionDirs lists node i's partition directories of topic (including
// ones set aside for deletion).
func partitionDirs(t *testing.T, dir, topic string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), topic+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// DeleteTopics removes the topic from every replica, also from a broker that
// was dead when it was deleted (it drops its copy when it comes back, since
// etcd no longer has the topic); the name can be created again, with a new
// ID, and the new topic starts empty on every replica.
func TestClusterDeleteTopicEverywhere(t *testing.T) {
	c := start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.Client(t))
	const topic = "doomed"
	created, err := adm.CreateTopic(ctx, 3, 3, nil, topic)
	if err != nil || created.Err != nil {
		t.Fatal(err, created.Err)
	}
	prod := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	for i := 0; i < 300; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("old")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if n := len(partitionDirs(t, c.DataDir(i), topic)); n != 3 {
			t.Fatalf("node %d holds %d partition directories of %s, want 3", i+1, n, topic)
		}
	}
	c.Kill9(2)
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		wait.For(t, time.Minute, "the topic's directories gone", func() bool { return len(partitionDirs(t, c.DataDir(i), topic)) == 0 })
	}
	c.Restart(2)
	wait.For(t, time.Minute, "the restarted node dropped its copy", func() bool { return len(partitionDirs(t, c.DataDir(2), topic)) == 0 })

	again, err := adm.CreateTopic(ctx, 3, 3, nil, topic)
	if err != nil || again.Err != nil {
		t.Fatal(err, again.Err)
	}
	if again.ID == created.ID {
		t.Fatal("the re-created topic has the old topic's ID")
	}
	wait.For(t, time.Minute, "the new topic on every node", func() bool {
		for i := 0; i < 3; i++ {
			if len(partitionDirs(t, c.DataDir(i), topic)) != 3 {
				return false
			}
		}
		return true
	})
	// Each leader answers once it has applied the creation (as Kafka's
	// brokers apply metadata a moment apart): the new topic starts empty.
	wait.For(t, time.Minute, "every new partition empty", func() bool {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false
		}
		ok := len(ends[topic]) == 3
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				ok = false
			} else if o.Offset != 0 {
				t.Fatalf("new %s-%d ends at %d, want 0", topic, o.Partition, o.Offset)
			}
		})
		return ok
	})
}

// DeleteRecords moves the log start on every replica (followers take the
// leader's log start from their fetches, as Kafka's do): after the leader
// dies, the new leader's log starts where DeleteRecords put it.
func TestClusterDeleteRecordsReachesFollowers(t *testing.T) {
	c := start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.Client(t))
	const topic = "trimmed"
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	for i := 0; i < 100; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 50})
	res, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 50 {
		t.Fatalf("DeleteRecords: %+v", r)
	}
	// One more acknowledged produce: the followers have fetched past the
	// new log start, so they know it.
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	leader := leaderOf(t, c, topic, 0)
	c.Kill9(leader)
	wait.For(t, time.Minute, "a new leader whose log starts at 50", func() bool {
		if leaderOf(t, c, topic, 0) == leader {
			return false
		}
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return false
		}
		o, ok := starts.Lookup(topic, 0)
		return ok && o.Err == nil && o.Offset == 50
	})
}
