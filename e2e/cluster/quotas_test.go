package clustere2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
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

// Dynamic broker configs live in etcd: the KIP-956 fetch limit set as the
// cluster-wide default through one broker and for broker 3 through another
// is described by each broker with Kafka's sources, also by broker 3 after
// a restart; a static key is refused as static.
func TestClusterDynamicBrokerConfigs(t *testing.T) {
	c := start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	via := func(i int) *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(i)), kgo.Dialer(c.DialContext))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	const key = "remote.log.manager.fetch.max.bytes.per.second"
	set := func(adm *kadm.Client, v string, broker ...int32) {
		t.Helper()
		res, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: key, Value: kadm.StringPtr(v)}}, broker...)
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatalf("alter broker %v: %v", broker, err)
		}
	}
	// No broker: the cluster-wide default (the empty resource name).
	set(via(0), "5000000")
	set(via(1), "2000000", 3)
	source := func(i int) (string, string) {
		rcs, err := via(i).DescribeBrokerConfigs(ctx, int32(i+1))
		if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
			return "", ""
		}
		for _, cfg := range rcs[0].Configs {
			if cfg.Key == key && cfg.Value != nil {
				return *cfg.Value, cfg.Source.String()
			}
		}
		return "", ""
	}
	want := map[int][2]string{
		0: {"5000000", "DYNAMIC_DEFAULT_BROKER_CONFIG"},
		1: {"5000000", "DYNAMIC_DEFAULT_BROKER_CONFIG"},
		2: {"2000000", "DYNAMIC_BROKER_CONFIG"},
	}
	check := func() {
		for i, w := range want {
			wait.For(t, time.Minute, fmt.Sprintf("broker %d describes %s=%s (%s)", i+1, key, w[0], w[1]), func() bool {
				v, src := source(i)
				return v == w[0] && src == w[1]
			})
		}
	}
	check()
	c.Kill9(2)
	c.Restart(2)
	check()

	res, err := via(2).AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "log.retention.ms", Value: kadm.StringPtr("1")}}, 2)
	if err == nil && (len(res) != 1 || res[0].Err == nil || !strings.Contains(res[0].ErrMessage, "Cannot update these configs dynamically")) {
		t.Fatalf("a static key altered dynamically: %+v", res)
	}
}
