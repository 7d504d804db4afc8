package clustere2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/wait"
)

// kill -9 of the broker handling a CreateTopics of 400 partitions (four etcd
// transactions) at a random instant: after its restart the topic is either
// absent or whole, every partition with a leader that takes an acks=all
// produce; it is never left with partitions nobody leads.
func TestClusterKill9DuringLargeCreateTopic(t *testing.T) {
	c := start(t, 3)
	const parts = 400
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for round := range 3 {
		topic := fmt.Sprintf("big-%d", round)
		victim := round % 3
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr(victim)), kgo.Dialer(c.DialContext), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			kadm.NewClient(cl).CreateTopic(ctx, parts, 2, nil, topic)
		}()
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		time.Sleep(delay)
		c.Kill9(victim)
		cl.Close()
		t.Logf("round %d: node %d killed %v after the CreateTopics was sent", round, victim+1, delay)
		c.Restart(victim)

		adm := kadm.NewClient(c.Client(t))
		var led, listed int
		wait.For(t, 2*time.Minute, topic+" absent or every partition led", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			md, err := adm.Metadata(ctx, topic)
			if err != nil {
				return false
			}
			td, ok := md.Topics[topic]
			if !ok || td.Err != nil {
				listed, led = 0, 0
				return true // absent (UNKNOWN_TOPIC_OR_PARTITION)
			}
			listed, led = len(td.Partitions), 0
			for _, p := range td.Partitions {
				if p.Leader >= 0 && p.Err == nil {
					led++
				}
			}
			return listed == parts && led == parts
		})
		t.Logf("round %d: %s has %d partitions, %d led", round, topic, listed, led)
		if listed == 0 {
			continue
		}
		prod := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		var recs []*kgo.Record
		for p := range int32(parts) {
			recs = append(recs, &kgo.Record{Partition: p, Value: []byte("v")})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("round %d: produce to every partition of %s: %v", round, topic, err)
		}
		cancel()
	}
}
