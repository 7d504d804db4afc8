package clustere2e

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
)

// throttledBy counts, per broker, the responses that carried a throttle.
type throttledBy struct {
	mu sync.Mutex
	n  map[int32]int
}

func (h *throttledBy) OnBrokerThrottle(m kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d <= 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[m.NodeID]++
}

func (h *throttledBy) count(id int32) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[id]
}

// Client quotas live in etcd: a producer_byte_rate set through one broker
// is described by every broker and enforced by each leader, also by a broker
// restarted after it was set (it reads the quota back from etcd). Kafka's
// quotas are per broker, so each leader throttles the client on its own.
func TestClusterClientQuotas(t *testing.T) {
	c := start(t, 3, "quota.window.num=2", "quota.window.size.seconds=1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "quoted"
	adm := kadm.NewClient(c.Client(t))
	if _, err := adm.CreateTopic(ctx, 3, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	name := "slow"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &name}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 32 << 10}},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("alter: %v %v", err, res)
	}
	// A broker restarted after the quota was set gets it from etcd.
	c.Kill9(2)
	c.Restart(2)
	for i := range c.Brokers() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(c.DialContext))
		if err != nil {
			t.Fatal(err)
		}
		one := kadm.NewClient(cl)
		wait.For(t, time.Minute, "every broker describes the quota", func() bool {
			qs, err := one.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchName: &name, MatchType: 0}})
			return err == nil && len(qs) == 1 && len(qs[0].Values) == 1 && qs[0].Values[0].Value == 32<<10
		})
		cl.Close()
	}

	// Each partition's leader throttles the slow client: 256 KiB to every
	// partition, eight times the rate.
	leaders := map[int32]bool{}
	for p := range int32(3) {
		leaders[int32(leaderOf(t, c, topic, p)+1)] = true
	}
	hook := &throttledBy{n: map[int32]int{}}
	prod := c.Client(t, kgo.ClientID("slow"), kgo.WithHooks(hook), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for range 16 {
		var recs []*kgo.Record
		for p := range int32(3) {
			v := make([]byte, 16<<10)
			rand.Read(v)
			recs = append(recs, &kgo.Record{Partition: p, Value: v})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for id := range leaders {
		if hook.count(id) == 0 {
			t.Errorf("broker %d leads a partition of %s and never throttled the slow client", id, topic)
		}
	}
}
